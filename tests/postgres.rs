//! The shop with its services' data in PostgreSQL (`up --store postgres`:
//! a private cluster `up` creates and stops): the flows of tests/shop.rs,
//! order replicas that never hand out the same id, and a replica killed
//! mid-run losing no accepted order; the taxi's, the library's and the
//! telecom's seed walkthroughs on PostgreSQL too. Skipped when no
//! PostgreSQL server is installed (initdb in /usr/local/bin or
//! /usr/lib/postgresql/*/bin).

mod common;
#[path = "walkthrough/library.rs"]
mod library;
#[path = "walkthrough/taxi.rs"]
mod taxi;
#[path = "walkthrough/telecom.rs"]
mod telecom;

use std::collections::HashSet;
use std::time::Duration;

use common::{Shop, eventually, mypage_shows, skipped};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

async fn shop_on_postgres(extra: &[&str]) -> Option<Shop> {
    on_postgres("shop", extra).await
}

/// `system` up with `--store postgres` (a private cluster), or `None`
/// (saying so) without a PostgreSQL server.
async fn on_postgres(system: &str, extra: &[&str]) -> Option<Shop> {
    if stormproof::platform::local::server_binaries().is_none() {
        skipped("no PostgreSQL server installed (initdb); .ci/run installs Debian's");
        return None;
    }
    let mut args = vec!["--store", "postgres"];
    args.extend_from_slice(extra);
    Some(Shop::up_system(system, &args).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_reaches_delivery_and_mypage_and_cancelling_restores_stock() {
    let Some(shop) = shop_on_postgres(&[]).await else { return };
    let (_, before) = shop.get("/products/2").await;
    let (status, order) = shop.place_order(2, 3, "alice").await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["productName"], "RADIO");
    let id = order["id"].as_i64().unwrap();
    let rows = mypage_shows(&shop, "alice", &[id], "DeliveryStarted", 2).await;
    assert_eq!(rows[0]["orderStatus"], "OrderPlaced");
    let (_, deliveries) = shop.get("/deliveries").await;
    assert_eq!(deliveries.as_array().unwrap().iter().filter(|d| d["orderId"] == id).count(), 1);
    eventually(Duration::from_secs(30), "stock to drop by 3", || async {
        let (_, p) = shop.get("/products/2").await;
        if p["stock"].as_i64() == before["stock"].as_i64().map(|s| s - 3) { Ok(()) } else { Err(p.to_string()) }
    })
    .await;
    // A product created after the seed gets an id past the seeded ones.
    let (status, created) = shop.request(Method::POST, "/products", Some(serde_json::json!({"name": "LAMP", "price": 500, "stock": 5}))).await;
    assert_eq!((status, created["id"].as_i64()), (201, Some(5)), "{created}");

    let (status, cancelled) = shop.request(Method::DELETE, &format!("/orders/{id}"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    eventually(Duration::from_secs(30), "mypage showing the cancellation", || async {
        let (_, row) = shop.get(&format!("/mypages/{id}")).await;
        if row["orderStatus"] == "OrderCancelled" && row["deliveryStatus"] == "DeliveryCancelled" { Ok(()) } else { Err(row.to_string()) }
    })
    .await;
    let (status, again) = shop.request(Method::DELETE, &format!("/orders/{id}"), None).await;
    assert_eq!(status, 409, "cancelling twice is a conflict: {again}");
    let outbox = shop.http.get(format!("http://{}/_stormproof/outbox", shop.replica_addresses("order")[0])).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(outbox["deadLetterCount"], 0, "{outbox}");
    shop.down();
}

/// Places `n` orders of `customer` at concurrency 16; (status, id) of each.
async fn place_concurrently(shop: &Shop, n: usize, customer: &str) -> Vec<(u16, Option<i64>)> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let (status, body) = shop.place_order(1 + (i as i64 % 4), 1, customer).await;
            (status, body["id"].as_i64())
        })
        .buffer_unordered(16)
        .collect()
        .await
}

async fn each_has_one_delivery_and_a_mypage_row(shop: &Shop, customer: &str, ids: &[i64]) {
    let wanted: HashSet<i64> = ids.iter().copied().collect();
    eventually(Duration::from_secs(120), "every order delivered and on mypage", || async {
        let (_, deliveries) = shop.get("/deliveries").await;
        let mut delivered: Vec<i64> = deliveries.as_array().into_iter().flatten().filter_map(|d| d["orderId"].as_i64()).filter(|id| wanted.contains(id)).collect();
        delivered.sort();
        let rows = shop.mypage(customer).await;
        let started = rows.iter().filter(|r| r["deliveryStatus"] == "DeliveryStarted" && wanted.contains(&r["orderId"].as_i64().unwrap_or(-1))).count();
        if delivered.len() == wanted.len() && started == wanted.len() { Ok(delivered) } else { Err(format!("{} deliveries, {started} mypage rows of {}", delivered.len(), wanted.len())) }
    })
    .await
    .windows(2)
    .for_each(|pair| assert_ne!(pair[0], pair[1], "order {} has two deliveries", pair[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_order_replicas_hand_out_500_distinct_ids_each_delivered_once() {
    let Some(shop) = shop_on_postgres(&["--replicas", "order=2"]).await else { return };
    assert_eq!(shop.replica_addresses("order").len(), 2);
    let placed = place_concurrently(&shop, 500, "dave").await;
    let refused: Vec<_> = placed.iter().filter(|(status, _)| *status != 201).collect();
    assert!(refused.is_empty(), "{} of 500 orders refused: {:?}", refused.len(), &refused[..refused.len().min(5)]);
    let ids: Vec<i64> = placed.iter().filter_map(|(_, id)| *id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 500, "500 distinct order ids");
    each_has_one_delivery_and_a_mypage_row(&shop, "dave", &ids).await;
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_replica_killed_mid_run_loses_no_accepted_order() {
    let Some(shop) = shop_on_postgres(&["--replicas", "order=2"]).await else { return };
    let services = shop.services();
    let order = common::service(&services, "order");
    let victim = order["replicas"][0]["pid"].as_u64().expect("a running order replica") as i32;
    let started = std::time::Instant::now();
    let placing = async {
        let placed = place_concurrently(&shop, 600, "erin").await;
        (placed, started.elapsed())
    };
    let killing = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // SAFETY: kill(2) on a replica pid the platform reported.
        assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0, "SIGKILL the order replica");
    };
    let ((placed, took), ()) = tokio::join!(placing, killing);
    assert!(took > Duration::from_millis(900), "the orders were all placed before the kill ({took:?}): place more");
    let accepted: Vec<i64> = placed.iter().filter(|(status, _)| (200..300).contains(status)).filter_map(|(_, id)| *id).collect();
    assert!(accepted.len() > 200, "only {} of 600 orders accepted", accepted.len());
    for id in &accepted {
        // Until the platform notices the dead replica, a read may reach it
        // (502): only a 404 is a lost order.
        let found = eventually(Duration::from_secs(30), "the order read back", || async {
            match shop.get(&format!("/orders/{id}")).await {
                (status, body) if status == 200 || status == 404 => Ok((status, body)),
                (status, body) => Err(format!("{status} {body}")),
            }
        })
        .await;
        assert_eq!(found.0, 200, "accepted order {id} is gone: {}", found.1);
    }
    each_has_one_delivery_and_a_mypage_row(&shop, "erin", &accepted).await;
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_taxi_walkthrough_runs_on_postgres() {
    let Some(system) = on_postgres("taxi", &[]).await else { return };
    taxi::run(&system).await;
    system.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_walkthrough_and_its_compensations_run_on_postgres() {
    let Some(system) = on_postgres("library", &[]).await else { return };
    library::run(&system).await;
    system.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_telecom_scenario_and_its_compensation_run_on_postgres() {
    let Some(system) = on_postgres("telecom", &[]).await else { return };
    telecom::run(&system).await;
    system.down();
}

/// The children of `parent` whose command is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid …
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// `up` SIGKILLed takes its private PostgreSQL server with it (the kernel
/// tells the server: a fast shutdown), and the next `up` in the same run
/// directory starts, on a fresh cluster, and stops with `down`.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_up_leaves_no_postgres_behind_and_the_next_up_starts() {
    let Some(shop) = shop_on_postgres(&[]).await else { return };
    let up = shop.state["pid"].as_u64().unwrap() as u32;
    let servers = children_named(up, "postgres");
    assert_eq!(servers.len(), 1, "up's one PostgreSQL server: {servers:?}");
    let (status, _) = shop.place_order(1, 1, "frank").await;
    assert_eq!(status, 201);
    // SAFETY: kill(2) on the pid of the `up` this test started.
    assert_eq!(unsafe { libc::kill(up as i32, libc::SIGKILL) }, 0);
    eventually(Duration::from_secs(20), "the server gone with up", || async {
        if stormproof::platform::local::pid_alive(servers[0]) { Err(format!("postgres {} still runs", servers[0])) } else { Ok(()) }
    })
    .await;
    let again = common::stormproof(shop.dir.path(), &["up", "shop", "--detach", "--port", "0", "--grace", "5s", "--store", "postgres"]);
    assert!(again.status.success(), "the next up: {}", String::from_utf8_lossy(&again.stderr));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(shop.dir.path().join("state.json")).unwrap()).unwrap();
    let next = state["pid"].as_u64().unwrap() as u32;
    let servers = children_named(next, "postgres");
    assert_eq!(servers.len(), 1, "a fresh server: {servers:?}");
    let down = common::stormproof(shop.dir.path(), &["down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!stormproof::platform::local::pid_alive(next) && !stormproof::platform::local::pid_alive(servers[0]), "down stopped up and its server");
}
