//! The `network` chaos action against a real shop (issue 18): the shipped
//! network experiments end to end with their evidence, product-latency
//! failing on an order without a breaker, and a rollback that clears every
//! link fault after SIGINT and after SIGKILL + `chaos rollback`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Shop;
use common::chaos::{check_result, experiment, journal, rows, run, said, start_chaos, wait_for};
use serde_json::Value;
use stormproof::platform::Platform;
use stormproof::platform::local::{ControlClient, RunState};
use stormproof::platform::network::ActiveNetworkFault;

/// The link faults in force in the shop's platform (from sync code inside
/// the test's runtime).
fn network_faults(shop: &Shop) -> Vec<ActiveNetworkFault> {
    let platform = ControlClient::new(&RunState::read(shop.dir.path()).unwrap());
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(platform.network_faults())).expect("the platform's network faults")
}


/// The connections the journaled fault acted on, from its rollback step
/// (`fault N: H hits`).
fn hits(journal: &Value) -> u64 {
    let detail = journal["rollbacks"][0]["detail"].as_str().unwrap();
    detail.rsplit(": ").next().unwrap().trim_end_matches(" hits").parse().unwrap_or_else(|_| panic!("not cleared by the rollback: {detail}"))
}

/// The orders the load placed while the fault held.
fn placed_during(journal: &Value) -> u64 {
    let during = &journal["load"]["routes"][0]["during"];
    during["requests"].as_u64().unwrap_or_else(|| panic!("no load during the fault: {during}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_network_experiments_pass_against_the_shop() {
    let shop = Shop::up(&[]).await;

    let journal = run(&shop, "product-latency");
    let change = &journal["changes"][0];
    assert_eq!(change["kind"], "network-fault", "{change}");
    assert!(change["id"].as_u64().is_some(), "re-saved with its id: {change}");
    let slowed = hits(&journal);
    assert!(slowed >= 1, "order's connections to product were slowed: {}", journal["rollbacks"]);
    let (status, fast) = check_result(&journal, "during", "orders are placed within 1.5 s on the slow link");
    assert_eq!(status, "held", "{fast}");
    println!("product-latency: {slowed} connections slowed; during: {fast}; {} orders under load", placed_during(&journal));

    let journal = run(&shop, "mypage-broker-partition");
    let cut = hits(&journal);
    assert!(cut >= 1, "mypage's broker connections were cut: {}", journal["rollbacks"]);
    let placed = placed_during(&journal);
    assert!(placed >= 20, "orders were placed under the partition: {placed}");
    let (_, lag) = check_result(&journal, "after", "mypage has caught up with the topic");
    let (_, during) = check_result(&journal, "after", "one mypage row per order placed during the partition, each event once");
    let (_, load) = check_result(&journal, "after", "one mypage row per order of the load, each event once");
    assert_eq!(rows(&during), 3, "{during}");
    assert!(rows(&load) >= placed, "every order of the load has its row: {load} ({placed} placed during the fault)");
    println!("mypage-broker-partition: {cut} connections cut; {placed} orders during; lag: {lag}; {during}; {load}; wall {}–{}", journal["start"], journal["end"]);

    let journal = run(&shop, "delivery-flaky-link");
    let reset = hits(&journal);
    assert!(reset >= 1, "some of delivery's broker connections were reset: {}", journal["rollbacks"]);
    let (_, during) = check_result(&journal, "after", "every order placed on the flaky link reached DeliveryStarted exactly once");
    let (_, load) = check_result(&journal, "after", "every order of the load reached DeliveryStarted exactly once");
    assert_eq!(rows(&during), 2, "{during}");
    assert!(rows(&load) >= 20, "{load}");
    println!("delivery-flaky-link: {reset} connections reset; {during}; {load}");

    assert!(network_faults(&shop).is_empty(), "no fault is left behind");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn product_latency_fails_when_order_has_no_circuit_breaker() {
    let shop = Shop::up(&["--variant", "order=no-breaker"]).await;
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("product-latency"), "--reports", reports.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let (_, journal) = journal(reports.path());
    assert_eq!(journal["status"], "failed");
    let why = journal["deviated"].as_str().unwrap();
    assert!(why.contains("within 1.5 s") || why.contains("stays available"), "order waited out the slow link: {why}");
    assert_eq!(journal["rollback_verified"], true, "rolled back even though it failed");
    assert!(network_faults(&shop).is_empty(), "no fault is left behind");
    shop.down();
}

/// mypage-broker-partition holding its partition for two minutes, to interrupt.
fn long_partition(dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(experiment("mypage-broker-partition")).unwrap().replace("hold: 20s", "hold: 120s");
    let path = dir.join("long-partition.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_network_experiment_clears_its_fault() {
    let shop = Shop::up(&[]).await;
    let work = tempfile::tempdir().unwrap();

    // SIGINT: the run rolls back itself.
    let reports = work.path().join("sigint");
    let mut chaos = start_chaos(&shop, &long_partition(work.path()), &reports);
    wait_for("the partition set", || !network_faults(&shop).is_empty());
    let set = network_faults(&shop);
    assert_eq!(set[0].fault.expires_after, Some(Duration::from_secs(180)), "it expires by itself after its hold plus the slack: {set:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(chaos.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(chaos.wait().unwrap().code(), Some(1));
    let (_, interrupted) = journal(&reports);
    assert_eq!(interrupted["status"], "aborted");
    assert!(interrupted["deviated"].as_str().unwrap().contains("SIGINT"), "{}", interrupted["deviated"]);
    assert_eq!((interrupted["rollbacks"][0]["status"].as_str(), interrupted["rollback_verified"].as_bool()), (Some("restored"), Some(true)), "{}", interrupted["rollbacks"]);
    assert!(network_faults(&shop).is_empty(), "cleared: {:?}", network_faults(&shop));

    // SIGKILL: nothing runs the rollback until `chaos rollback` does.
    let reports = work.path().join("sigkill");
    let mut chaos = start_chaos(&shop, &long_partition(work.path()), &reports);
    wait_for("the partition set", || !network_faults(&shop).is_empty());
    wait_for("the fault's id journaled", || journal(&reports).1["changes"][0]["id"].is_u64());
    chaos.kill().unwrap();
    chaos.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(network_faults(&shop).len(), 1, "nobody cleared it yet");
    let (path, journal_left) = journal(&reports);
    assert_eq!(journal_left["status"], "running", "the harness died mid-run");
    let out = shop.cli(&["chaos", "rollback", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(network_faults(&shop).is_empty(), "cleared: {:?}", network_faults(&shop));
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!((after["status"].as_str(), after["rollback_verified"].as_bool()), (Some("aborted"), Some(true)));
    // mypage reconnects: an order placed now reaches its row.
    let ids = shop.place_orders(1, "after-rollback").await;
    common::mypage_shows(&shop, "after-rollback", &ids, "DeliveryStarted", 2).await;
    shop.down();
}
