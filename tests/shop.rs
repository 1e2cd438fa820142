//! The shop on the local platform, end to end: real processes, the real
//! embedded broker, HTTP over loopback (issue 2's "Must show").

mod common;

use std::time::Duration;

use common::{Shop, counter_sum, eventually, mypage_shows};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn an_order_reaches_delivery_and_mypage_and_cancelling_restores_stock() {
    let shop = Shop::up(&[]).await;
    let (_, before) = shop.get("/products/2").await;
    let (status, order) = shop.place_order(2, 3, "alice").await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["productName"], "RADIO");
    let id = order["id"].as_i64().unwrap();

    let rows = mypage_shows(&shop, "alice", &[id], "DeliveryStarted", 2).await;
    assert_eq!(rows[0]["orderStatus"], "OrderPlaced");
    assert_eq!(rows[0]["quantity"], 3);
    let (_, deliveries) = shop.get("/deliveries").await;
    assert_eq!(deliveries.as_array().unwrap().iter().filter(|d| d["orderId"] == id).count(), 1);
    eventually(Duration::from_secs(30), "stock to drop by 3", || async {
        let (_, p) = shop.get("/products/2").await;
        if p["stock"].as_i64() == before["stock"].as_i64().map(|s| s - 3) { Ok(()) } else { Err(p.to_string()) }
    })
    .await;

    let (status, cancelled) = shop.request(Method::DELETE, &format!("/orders/{id}"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    eventually(Duration::from_secs(30), "mypage showing the cancellation", || async {
        let (_, row) = shop.get(&format!("/mypages/{id}")).await;
        if row["orderStatus"] == "OrderCancelled" && row["deliveryStatus"] == "DeliveryCancelled" { Ok(()) } else { Err(row.to_string()) }
    })
    .await;
    eventually(Duration::from_secs(30), "stock restored", || async {
        let (_, p) = shop.get("/products/2").await;
        if p["stock"] == before["stock"] { Ok(()) } else { Err(p.to_string()) }
    })
    .await;
    let (status, again) = shop.request(Method::DELETE, &format!("/orders/{id}"), None).await;
    assert_eq!(status, 409, "cancelling twice is a conflict: {again}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_delivery_at_zero_orders_are_accepted_and_delivered_once_it_returns() {
    let shop = Shop::up(&[]).await;
    shop.scale("shop.delivery", 0);
    let ids = shop.place_orders(20, "bob").await;
    mypage_shows(&shop, "bob", &ids, "preparing", 1).await;

    shop.scale("shop.delivery", 1);
    mypage_shows(&shop, "bob", &ids, "DeliveryStarted", 2).await;
    let (_, deliveries) = shop.get("/deliveries").await;
    let deliveries = deliveries.as_array().unwrap();
    for id in &ids {
        let count = deliveries.iter().filter(|d| d["orderId"] == *id).count();
        assert_eq!(count, 1, "order {id} has {count} deliveries");
    }
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_mypage_replicas_apply_each_event_exactly_once() {
    let shop = Shop::up(&["--replicas", "mypage=2"]).await;
    let mypages = shop.replica_addresses("mypage");
    assert_eq!(mypages.len(), 2);
    // The second member may join the group a little later than the first:
    // keep ordering until both have applied events (each owns partitions).
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.extend(shop.place_orders(10, "carol").await);
        mypage_shows(&shop, "carol", &ids, "DeliveryStarted", 2).await;
        let mut working = 0;
        for address in &mypages {
            if counter_sum(&shop.http, std::slice::from_ref(address), "stormproof_events_consumed_total", "").await > 0 {
                working += 1;
            }
        }
        if working == 2 {
            break;
        }
    }
    // OrderPlaced and DeliveryStarted per order, applied once in the group.
    let applied = counter_sum(&shop.http, &mypages, "stormproof_events_consumed_total", "").await;
    assert_eq!(applied, 2 * ids.len() as u64, "events applied across both replicas");
    for address in &mypages {
        let own = counter_sum(&shop.http, std::slice::from_ref(address), "stormproof_events_consumed_total", "").await;
        assert!(own > 0, "replica {address} never got a partition");
    }
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_broker_while_orders_are_placed_loses_no_event() {
    let shop = Shop::up(&[]).await;
    let first = shop.place_orders(10, "dave").await;
    let killed = shop.cli_ok(&["kill", "shop.broker"]);
    assert!(killed.contains("broker-1"), "{killed}");
    // Orders keep being accepted while the broker restarts: the outbox holds them.
    let during = shop.place_orders(10, "dave").await;
    eventually(Duration::from_secs(60), "a new broker replica ready", || async {
        let services = shop.services();
        let broker = services.as_array().unwrap().iter().find(|s| s["name"] == "broker").unwrap().clone();
        if broker["ready"] == 1 && broker["replicas"][0]["id"] == "broker-2" { Ok(()) } else { Err(broker.to_string()) }
    })
    .await;
    let after = shop.place_orders(10, "dave").await;
    let all: Vec<i64> = first.into_iter().chain(during).chain(after).collect();
    mypage_shows(&shop, "dave", &all, "DeliveryStarted", 2).await;

    // Held down, not just restarted: orders are still accepted, and none of
    // them can reach mypage until the broker is back.
    shop.scale("shop.broker", 0);
    let held = shop.place_orders(10, "frank").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // mypage is up and answering (an empty list from a mypage that is
    // down would prove nothing): it serves the rows it has, none of frank's.
    let (status, frank) = shop.get("/mypages?customerId=frank").await;
    assert_eq!(status, 200, "mypage answers while the broker is down: {frank}");
    assert_eq!(frank.as_array().map(Vec::len), Some(0), "events cannot travel without a broker: {frank}");
    let (status, dave) = shop.get("/mypages?customerId=dave").await;
    assert_eq!((status, dave.as_array().map(Vec::len)), (200, Some(all.len())), "mypage still serves the rows it built: {dave}");
    shop.scale("shop.broker", 1);
    mypage_shows(&shop, "frank", &held, "DeliveryStarted", 2).await;
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mypage_started_late_builds_its_view_from_retained_events() {
    let shop = Shop::up(&["--replicas", "mypage=0"]).await;
    let ids = shop.place_orders(100, "erin").await;
    eventually(Duration::from_secs(60), "100 deliveries", || async {
        let (_, d) = shop.get("/deliveries").await;
        let n = d.as_array().map(|a| a.len()).unwrap_or(0);
        if n == 100 { Ok(()) } else { Err(format!("{n} deliveries")) }
    })
    .await;
    let (status, _) = shop.get("/mypages").await;
    assert_eq!(status, 503, "no mypage replica yet");
    shop.scale("shop.mypage", 1);
    mypage_shows(&shop, "erin", &ids, "DeliveryStarted", 2).await;
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn client_mistakes_get_a_4xx_with_a_reason() {
    let shop = Shop::up(&[]).await;
    let url = format!("{}/orders", shop.gateway);
    let token = common::token(&shop.http, &shop.gateway, "user2", "stormproof").await;

    // Malformed JSON, a missing field, a bad value.
    for (body, expect) in [
        ("{\"productId\": 1,", "EOF"),
        ("{\"productId\": 1, \"quantity\": 1}", "customerId"),
        ("{\"productId\": 1, \"quantity\": 0, \"customerId\": \"x\", \"customerName\": \"x\", \"customerAddr\": \"x\"}", "quantity"),
    ] {
        let response = shop.http.post(&url).bearer_auth(&token).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let reason: serde_json::Value = response.json().await.unwrap();
        assert!(reason["reason"].as_str().unwrap().contains(expect), "{body} → {reason}");
    }
    let (status, body) = shop.place_order(999, 1, "x").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("product 999"), "{body}");
    let (status, _) = shop.get("/orders/abc").await;
    assert_eq!(status, 400);
    let (status, _) = shop.get("/orders/424242").await;
    assert_eq!(status, 404);

    // The gateway: no token, a forged token, wrong password.
    let response = shop.http.get(format!("{}/products", shop.gateway)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyMSIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJl";
    let response = shop.http.get(format!("{}/products", shop.gateway)).bearer_auth(forged).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = shop.http.post(format!("{}/auth/token", shop.gateway)).json(&json!({"username": "user1", "password": "nope"})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = shop.http.get(format!("{}/nowhere", shop.gateway)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 404);

    // The platform's own input errors exit 2 with the reason.
    let out = shop.cli(&["scale", "shop.nosuch", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service `nosuch`"));
    let out = shop.cli(&["scale", "shop.broker", "2"]);
    assert_eq!(out.status.code(), Some(2));
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_on_the_topic_carries_a_type_header_equal_to_its_event_type() {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Headers;

    let shop = Shop::up(&[]).await;
    let ids = shop.place_orders(3, "headers").await;
    mypage_shows(&shop, "headers", &ids, "DeliveryStarted", 2).await;
    // A reader of the test's own: assigned every partition from the start,
    // no group, so it disturbs none of the services' groups.
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", shop.state["kafka"].as_str().unwrap())
        .set("group.id", "stormproof-test-headers")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..3 {
        partitions.add_partition_offset("shop", partition, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.values().sum::<usize>() < 9 {
        assert!(std::time::Instant::now() < deadline, "only {seen:?} read from the topic");
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else { continue };
        let event: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let event_type = event["eventType"].as_str().unwrap().to_string();
        let header = message.headers().and_then(|h| h.iter().find(|h| h.key == "type")).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(header.as_deref(), Some(event_type.as_str()), "the `type` header of {event}");
        *seen.entry(event_type).or_default() += 1;
    }
    assert!(["OrderPlaced", "DeliveryStarted", "ProductChanged"].iter().all(|t| seen.get(*t).copied().unwrap_or(0) >= 1), "{seen:?}");
    shop.down();
}

#[test]
fn commands_without_a_running_system_say_so_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::stormproof(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no system is up"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = common::stormproof(dir.path(), &["down"]);
    assert_eq!(out.status.code(), Some(0), "down with nothing up is not an error");
    let out = common::stormproof(dir.path(), &["up", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_model_that_lost_its_store_rebuilds_from_the_earliest_offset() {
    let shop = Shop::up(&[]).await;
    let ids = shop.place_orders(5, "frank").await;
    mypage_shows(&shop, "frank", &ids, "DeliveryStarted", 2).await;
    // The group's offsets are committed (and again when the replica stops).
    tokio::time::sleep(Duration::from_secs(2)).await;
    shop.scale("shop.mypage", 0);
    let data = shop.dir.path().join("data");
    let mut removed = 0;
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("shop.mypage.db") {
            std::fs::remove_file(entry.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "mypage's SQLite file is in {}", data.display());
    shop.scale("shop.mypage", 1);
    // Each row again from both of its events, not a blind start at the
    // group's committed offsets.
    mypage_shows(&shop, "frank", &ids, "DeliveryStarted", 2).await;
    shop.down();
}
