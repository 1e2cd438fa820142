//! Hardening of the shop's services and their data (issue 13 items 1–4),
//! each attacked for real against a running shop: hostile numbers, strings
//! and bodies; a poison outbox row; poison records written to the topic by
//! a separate producer; a consumer task killed; a store locked by another
//! program. After each attack, orders still reach DeliveryStarted and no
//! accepted order is lost.

mod common;

use std::time::{Duration, Instant};

use common::{Shop, counter_sum, eventually, mypage_shows};
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::Method;
use serde_json::{Value, json};

/// The order flow still works: `n` new orders of `customer` reach
/// DeliveryStarted, each with its two events applied once.
async fn orders_still_flow(shop: &Shop, customer: &str, n: usize) -> Vec<i64> {
    let ids = shop.place_orders(n, customer).await;
    mypage_shows(shop, customer, &ids, "DeliveryStarted", 2).await;
    ids
}

/// The first replica address of `service`.
fn replica(shop: &Shop, service: &str) -> String {
    shop.replica_addresses(service).into_iter().next().unwrap_or_else(|| panic!("{service} has a replica"))
}

async fn post_raw(shop: &Shop, url: &str, body: String) -> (u16, String) {
    let response = shop.http.post(url).bearer_auth(shop.token()).header("content-type", "application/json").body(body).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

fn order_body(quantity: &str, addr: &str) -> String {
    format!(r#"{{"productId": 1, "quantity": {quantity}, "customerId": "mallory", "customerName": "Mal", "customerAddr": "{addr}"}}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_numbers_strings_and_bodies_get_a_4xx_and_stock_stays_an_integer() {
    let shop = Shop::up(&[]).await;
    let orders = format!("{}/orders", shop.gateway);
    let (_, before) = shop.get("/products/1").await;
    let stock_before = before["stock"].as_i64().expect("stock is an integer");

    // Numbers outside the domain, and numbers JSON cannot make an i64 of.
    for (quantity, expect) in [("9223372036854775807", "quantity"), ("1001", "quantity"), ("-5", "quantity"), ("0", "quantity"), ("1e30", "quantity"), ("\"1\"", "quantity"), ("99999999999999999999", "quantity")] {
        let (status, body) = post_raw(&shop, &orders, order_body(quantity, "Seoul")).await;
        assert_eq!(status, 400, "quantity {quantity}: {body}");
        assert!(body.contains(expect), "quantity {quantity}: {body}");
    }
    let (status, body) = post_raw(&shop, &orders, r#"{"productId": 0, "quantity": 1, "customerId": "m", "customerName": "M", "customerAddr": "A"}"#.into()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_raw(&shop, &orders, r#"{"productId": 9223372036854775807, "quantity": 1, "customerId": "m", "customerName": "M", "customerAddr": "A"}"#.into()).await;
    assert_eq!(status, 404, "{body}");

    // Strings longer than the domain allows, and bodies over the limit.
    let (status, body) = post_raw(&shop, &orders, order_body("1", &"x".repeat(10_000))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("customerAddr must be at most 500 characters"), "{body}");
    let big = order_body("1", &"x".repeat(1_500_000));
    let (status, body) = post_raw(&shop, &orders, big.clone()).await;
    assert_eq!(status, 413, "1.5 MB through the gateway: {body}");
    let (status, body) = post_raw(&shop, &format!("http://{}/orders", replica(&shop, "order")), big.clone()).await;
    assert_eq!(status, 413, "1.5 MB straight at order: {body}");
    let (status, body) = post_raw(&shop, &format!("http://{}/orders", replica(&shop, "order")), order_body("1", &"x".repeat(100_000))).await;
    assert_eq!(status, 413, "100 kB straight at order: {body}");
    // The refused body is read and discarded before the answer, so a client
    // still writing it gets the 413, not a broken pipe (CI once saw one
    // here); the answer ends the connection and says so, so the client's
    // next request goes down a new one instead of a reset.
    for attempt in 0..3 {
        let response = shop.http.post(format!("{}/auth/token", shop.gateway)).header("content-type", "application/json").body(big.clone()).send().await.unwrap();
        assert_eq!(response.status(), 413, "1.5 MB token request, attempt {attempt}");
        assert_eq!(response.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"), "a 413 says Connection: close");
    }

    // Product writes: stock and price bounded, patches checked field by field.
    for body in [
        json!({"name": "X", "price": 1, "stock": i64::MAX}),
        json!({"name": "X", "price": -1, "stock": 1}),
        json!({"name": "X".repeat(101), "price": 1, "stock": 1}),
        json!({"name": "X", "price": 1, "stock": 1, "imageUrl": "u".repeat(3000)}),
    ] {
        let (status, answer) = shop.request(Method::POST, "/products", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {answer}");
    }
    for patch in [json!({"stock": i64::MAX}), json!({"stock": i64::MIN}), json!({"price": 1_000_000_000_001i64}), json!({"name": ""})] {
        let (status, answer) = shop.request(Method::PATCH, "/products/1", Some(patch.clone())).await;
        assert_eq!(status, 400, "{patch} → {answer}");
    }
    let (status, _) = shop.get("/products/99999999999999999999").await;
    assert_eq!(status, 400);
    let (status, _) = shop.get(&format!("/orders?customerId={}", "c".repeat(65))).await;
    assert_eq!(status, 400);
    let (status, answer) = shop.request(Method::PATCH, "/deliveries/1", Some(json!({"status": "S".repeat(100_000)}))).await;
    assert_eq!(status, 413, "{answer}");
    let (status, answer) = shop.request(Method::PATCH, "/deliveries/1", Some(json!({"status": "S".repeat(1000)}))).await;
    assert_eq!(status, 400, "{answer}");
    let switches = format!("http://{}/_stormproof/switches", replica(&shop, "product"));
    let response = shop.http.put(&switches).json(&json!({"delayMs": u64::MAX})).send().await.unwrap();
    assert_eq!(response.status(), 400, "a delay of u64::MAX ms");

    // Nothing above changed the catalogue; the flow works and stock moves by
    // exactly the valid orders, as an integer.
    let ids = orders_still_flow(&shop, "after-hostile-input", 4).await;
    let on_one = ids.len().div_ceil(4) as i64;
    eventually(Duration::from_secs(30), "product 1's stock to drop by the valid orders", || async {
        let (_, p) = shop.get("/products/1").await;
        if p["stock"].as_i64() == Some(stock_before - on_one) { Ok(()) } else { Err(p.to_string()) }
    })
    .await;
    let product = common::service(&shop.services(), "product");
    assert_eq!(product["ready"], 1, "{product}");
    assert_eq!(product["replicas"][0]["restarts"], 0, "no service crashed: {product}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_outbox_row_is_parked_and_its_key_waits_behind_it() {
    let shop = Shop::up(&[]).await;
    // The API refuses an event that could not fit on the topic.
    let (status, body) = post_raw(&shop, &format!("{}/orders", shop.gateway), order_body("1", &"x".repeat(1_500_000))).await;
    assert_eq!(status, 413, "{body}");
    let first = orders_still_flow(&shop, "before-poison", 2).await;

    // A row the broker can never take (what an older build or a bug would
    // leave behind), then a later event of the same key.
    let db = shop.dir.path().join("data").join("shop.order.db");
    let conn = libsql::Builder::new_local(&db).build().await.unwrap().connect().unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let key = "777777";
    let poison = json!({"eventType": "OrderPlaced", "id": "poison-1", "timestamp": "2025-01-01T00:00:00Z", "orderId": 777777, "productId": 1,
                        "productName": "TV", "quantity": 1, "price": 1, "customerId": "poison", "customerName": "P", "customerAddr": "x".repeat(1_500_000)});
    let behind = json!({"eventType": "OrderPlaced", "id": "behind-1", "timestamp": "2025-01-01T00:00:00Z", "orderId": 777777, "productId": 1,
                        "productName": "TV", "quantity": 1, "price": 1, "customerId": "poison", "customerName": "P", "customerAddr": "Seoul"});
    for event in [&poison, &behind] {
        conn.execute(
            "INSERT INTO outbox (topic, key, event_type, payload, created_at) VALUES ('shop', ?1, 'OrderPlaced', ?2, '2025-01-01T00:00:00Z')",
            libsql::params![key, event.to_string()],
        )
        .await
        .unwrap();
    }
    let poison_seq: i64 = {
        let mut rows = conn.query("SELECT MIN(seq) FROM outbox WHERE key = ?1", libsql::params![key]).await.unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    };

    // The relay parks it, counts it, and keeps relaying everything else.
    let order = replica(&shop, "order");
    eventually(Duration::from_secs(30), "the poison row parked and counted", || async {
        let parked = counter_sum(&shop.http, std::slice::from_ref(&order), "stormproof_outbox_dead_letters", "").await;
        let held = counter_sum(&shop.http, std::slice::from_ref(&order), "stormproof_outbox_held", "").await;
        if parked == 1 && held == 1 { Ok(()) } else { Err(format!("{parked} parked, {held} held")) }
    })
    .await;
    let after = orders_still_flow(&shop, "after-poison", 4).await;
    assert_eq!(after.len(), 4);

    // The later event of the poison's key did not overtake it.
    let (_, deliveries) = shop.get("/deliveries?orderId=777777").await;
    assert_eq!(deliveries, json!([]), "an event behind a dead letter of its key was sent");
    assert!(shop.mypage("poison").await.is_empty());
    let status = shop.cli_ok(&["status"]);
    assert!(status.contains("order: 1 outbox row(s) parked as dead letters; 1 later row(s) of their keys held behind them"), "{status}");
    assert!(status.contains(&format!("seq {poison_seq} key {key} OrderPlaced")), "{status}");
    let (_, orders) = shop.get("/orders?customerId=before-poison").await;
    assert_eq!(orders.as_array().unwrap().len(), first.len(), "no accepted order lost");
    shop.down();
}

/// Writes `records` (key, value) into the shop's topic with a producer of
/// the test's own.
async fn produce(shop: &Shop, records: &[(String, Vec<u8>)]) {
    let kafka = shop.state["kafka"].as_str().unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .create()
        .unwrap();
    for (key, value) in records {
        let record = FutureRecord::to("shop").key(key.as_str()).payload(value.as_slice());
        producer.send(record, Duration::from_secs(10)).await.map_err(|(err, _)| err).expect("poison record written");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_from_another_producer_are_skipped_and_counted_and_orders_still_flow() {
    let shop = Shop::up(&[]).await;
    let (_, product) = shop.get("/products/1").await;
    let stock_before = product["stock"].as_i64().unwrap();
    let before = orders_still_flow(&shop, "before-poison-records", 2).await;

    let placed = |fields: Value| {
        let mut event = json!({"eventType": "OrderPlaced", "id": uuid::Uuid::new_v4().to_string(), "timestamp": "2025-01-01T00:00:00Z",
                               "orderId": 888001, "productId": 1, "productName": "TV", "quantity": 1, "price": 1,
                               "customerId": "poison", "customerName": "P", "customerAddr": "A"});
        event.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        event.to_string().into_bytes()
    };
    let poisons: Vec<Vec<u8>> = vec![
        Vec::new(),                                                           // empty value
        b"{not json".to_vec(),                                                // invalid JSON
        b"[1, 2, 3]".to_vec(),                                                // JSON, not an event
        json!({"eventType": "Bogus", "id": "bogus-1"}).to_string().into_bytes(), // unknown eventType
        placed(json!({"orderId": "abc"})),                                    // wrong field type
        placed(json!({"quantity": 9223372036854775807i64})),                  // out of the domain
        placed(json!({"quantity": 1.5})),                                     // wrong field type
        placed(json!({"productId": 999999, "orderId": 888002})),              // a product that does not exist
        json!({"eventType": "OrderCancelled", "id": "cancel-nothing", "orderId": 888003, "productId": 999999, "quantity": 1, "customerId": "p"})
            .to_string()
            .into_bytes(),                                                    // cancels an order nobody has
    ];
    // Keys spread over every partition, each poison before real orders.
    let records: Vec<(String, Vec<u8>)> =
        poisons.iter().enumerate().flat_map(|(i, value)| (0..3).map(move |k| (format!("poison-{i}-{k}"), value.clone()))).collect();
    produce(&shop, &records).await;
    let after = orders_still_flow(&shop, "after-poison-records", 8).await;

    // Skipped with a counter per reason, by every consumer; nobody restarted.
    for service in ["product", "delivery", "mypage"] {
        let address = replica(&shop, service);
        let skipped = counter_sum(&shop.http, std::slice::from_ref(&address), "stormproof_events_skipped_total", "").await;
        for reason in ["empty", "not_json", "not_an_event", "unknown_type", "malformed"] {
            let n = counter_sum(&shop.http, std::slice::from_ref(&address), "stormproof_events_skipped_total", &format!("reason=\"{reason}\"")).await;
            assert!(n >= 3, "{service} skipped {n} records as {reason} ({skipped} in all)");
        }
        let status = common::service(&shop.services(), service);
        assert_eq!(status["replicas"][0]["restarts"], 0, "{service} restarted: {status}");
    }
    let product = replica(&shop, "product");
    let unknown = counter_sum(&shop.http, std::slice::from_ref(&product), "stormproof_events_skipped_total", "reason=\"unknown_entity\"").await;
    assert_eq!(unknown, 6, "product skips the orders and cancellations of a product it does not have");
    let (_, p1) = shop.get("/products/1").await;
    let on_one = (before.len().div_ceil(4) + after.len().div_ceil(4)) as i64;
    eventually(Duration::from_secs(30), "product 1's stock moved by the real orders only", || async {
        let (_, p) = shop.get("/products/1").await;
        if p["stock"].as_i64() == Some(stock_before - on_one) { Ok(()) } else { Err(format!("{p} (was {p1})")) }
    })
    .await;
    let (_, orders) = shop.get("/orders?customerId=before-poison-records").await;
    assert_eq!(orders.as_array().unwrap().len(), before.len(), "no accepted order lost");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_task_that_dies_gets_its_replica_restarted_and_no_order_is_lost() {
    let shop = Shop::up(&[]).await;
    orders_still_flow(&shop, "before-crash", 2).await;
    let delivery = replica(&shop, "delivery");
    let response = shop.http.post(format!("http://{delivery}/_stormproof/crash-consumer")).send().await.unwrap();
    assert_eq!(response.status(), 202);
    // The task dies at its next step; the replica stops passing its probes.
    eventually(Duration::from_secs(10), "delivery to report not ready and not live", || async {
        let ready = shop.http.get(format!("http://{delivery}/health/ready")).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        let live = shop.http.get(format!("http://{delivery}/health/live")).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        if ready == 503 && live == 503 { Ok(()) } else { Err(format!("ready {ready}, live {live}")) }
    })
    .await;
    let during = shop.place_orders(5, "during-crash").await;
    // The platform restarts it; the orders placed meanwhile are delivered once.
    eventually(Duration::from_secs(60), "delivery restarted and ready", || async {
        let status = common::service(&shop.services(), "delivery");
        if status["ready"] == 1 && status["replicas"][0]["restarts"] == 1 { Ok(()) } else { Err(status.to_string()) }
    })
    .await;
    mypage_shows(&shop, "during-crash", &during, "DeliveryStarted", 2).await;
    let (_, deliveries) = shop.get("/deliveries").await;
    for id in &during {
        let count = deliveries.as_array().unwrap().iter().filter(|d| d["orderId"] == *id).count();
        assert_eq!(count, 1, "order {id} has {count} deliveries");
    }
    orders_still_flow(&shop, "after-crash", 2).await;
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_locked_by_another_program_is_retried_without_evicting_the_consumer() {
    let shop = Shop::up(&[]).await;
    orders_still_flow(&shop, "before-lock", 2).await;
    let delivery = replica(&shop, "delivery");
    let assignments = counter_sum(&shop.http, std::slice::from_ref(&delivery), "stormproof_consumer_assignments_total", "").await;
    assert!(assignments >= 1, "delivery has its partitions");

    // Another program takes delivery's write lock and keeps it for longer
    // than the consumer's poll interval (10 s).
    let db = shop.dir.path().join("data").join("shop.delivery.db");
    let conn = libsql::Builder::new_local(&db).build().await.unwrap().connect().unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    let locked = Instant::now();
    let during = shop.place_orders(5, "during-lock").await;
    // Reads still work (WAL); a write waits, then answers 503 — not 500, not forever.
    let (status, _) = shop.get("/deliveries").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let (status, body) = shop.request(Method::PATCH, "/deliveries/1", Some(json!({"status": "DeliveryCompleted"}))).await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "the write waited {:?}", started.elapsed());
    mypage_shows(&shop, "during-lock", &during, "preparing", 1).await;
    while locked.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retries = counter_sum(&shop.http, std::slice::from_ref(&delivery), "stormproof_store_retries_total", "").await;
    assert!(retries > 0, "the consumer retried the locked store");
    conn.execute("COMMIT", ()).await.unwrap();

    mypage_shows(&shop, "during-lock", &during, "DeliveryStarted", 2).await;
    let after = counter_sum(&shop.http, std::slice::from_ref(&delivery), "stormproof_consumer_assignments_total", "").await;
    assert_eq!(after, assignments, "the consumer was never evicted from its group (assignments {assignments} → {after})");
    let status = common::service(&shop.services(), "delivery");
    assert_eq!(status["replicas"][0]["restarts"], 0, "{status}");
    let (_, deliveries) = shop.get("/deliveries").await;
    for id in &during {
        let count = deliveries.as_array().unwrap().iter().filter(|d| d["orderId"] == *id).count();
        assert_eq!(count, 1, "order {id} has {count} deliveries");
    }
    orders_still_flow(&shop, "after-lock", 2).await;
    shop.down();
}
