//! The `broker` chaos action against a real shop: faults inside the
//! embedded broker (Produce errors for order, forced rebalances of mypage's
//! group), the shipped experiments' evidence, and a rollback that clears
//! the fault after SIGINT and after SIGKILL + `chaos rollback`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Shop;
use common::chaos::{check_result, experiment, journal, rows, run, said, start_chaos, wait_for};
use serde_json::Value;

/// The faults in force in the shop's broker, read from its control
/// endpoint (from sync code inside the test's runtime).
fn broker_faults(shop: &Shop) -> Vec<Value> {
    let base = shop.state["brokerFaults"].as_str().expect("the embedded broker's fault endpoint");
    let client = stormproof::broker::FaultClient::new(base, shop.state["token"].as_str().unwrap());
    let faults = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(client.list())).expect("the broker's faults");
    faults.iter().map(|f| serde_json::to_value(f).unwrap()).collect()
}


/// The hits each rollback step reports (`fault N: H hits`).
fn hits(journal: &Value) -> Vec<u64> {
    let steps = journal["rollbacks"].as_array().unwrap();
    steps.iter().map(|s| s["detail"].as_str().unwrap().rsplit(": ").next().unwrap().trim_end_matches(" hits").parse().unwrap_or(0)).collect()
}

#[test]
fn a_malformed_broker_action_exits_2_naming_file_line_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-broker.yaml");
    let cases = [
        ("{ service: order, api: produce }", "`api` needs an `error`"),
        ("{ service: order, group: shop.order, rebalance: true }", "expected exactly one of `service: NAME` or `group: NAME`"),
        ("{ group: shop.mypage, rebalance: false }", "expected exactly one fault: `api` with `error`, `stall_fetch: DURATION`, or `rebalance: true`"),
    ];
    for (action, expected) in cases {
        std::fs::write(&path, format!("title: t\nsystem: shop\nmethod:\n  - broker: {action}\n    hold: 3s\n")).unwrap();
        let out = common::stormproof(dir.path(), &["chaos", "run", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{action}: {err}");
        assert!(err.contains("bad-broker.yaml") && err.contains("line 4") && err.contains(expected), "{action}: {err}");
    }
    std::fs::write(&path, "title: t\nsystem: shop\nmethod:\n  - broker: { service: order, api: produce, error: NOT_A_CODE }\n").unwrap();
    let out = common::stormproof(dir.path(), &["chaos", "run", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad-broker.yaml") && err.contains("NOT_A_CODE") && err.contains("NOT_LEADER_OR_FOLLOWER"), "the known names are listed: {err}");
    // Well formed, but for nothing the system has: it would hit no request.
    let unknown = [("{ service: ordr, rebalance: true }", "shop has no service `ordr` (services: product, order"), ("{ group: mypage, rebalance: true }", "no consumer group `mypage` (groups: shop.product, shop.delivery, shop.mypage")];
    for (action, expected) in unknown {
        std::fs::write(&path, format!("title: t\nsystem: shop\nmethod:\n  - broker: {action}\n")).unwrap();
        let out = common::stormproof(dir.path(), &["chaos", "run", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{action}: {err}");
        assert!(err.contains("bad-broker.yaml: method[0].broker: ") && err.contains(expected), "{action}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_broker_experiments_pass_against_the_shop() {
    let shop = Shop::up(&[]).await;

    let journal = run(&shop, "broker-not-leader");
    let change = &journal["changes"][0];
    assert_eq!((change["kind"].as_str(), change["fault"]["target"]["client_prefix"].as_str()), (Some("broker-fault"), Some("shop.order/")), "every replica of order, not a service whose name extends it: {change}");
    assert_eq!(change["fault"]["fault"]["error"]["error"], "NOT_LEADER_OR_FOLLOWER", "{change}");
    assert_eq!(change["fault"]["expires_after"], "1m 5s", "its 5 s hold plus the slack: {change}");
    assert!(change["id"].as_u64().is_some(), "re-saved with its id: {change}");
    let refused = hits(&journal)[0];
    assert!(refused > 0, "the broker refused order's Produce requests: {}", journal["rollbacks"]);
    let during = &journal["load"]["routes"][0]["during"];
    assert!(during["requests"].as_u64().unwrap() >= 20, "orders were placed under the fault: {during}");
    let (_, placed) = check_result(&journal, "after", "one mypage row per order placed during the fault, delivered, each event once");
    let (_, load) = check_result(&journal, "after", "one mypage row per order of the load, each event once");
    let (_, events) = check_result(&journal, "after", "the held events were published, each order's in causal order on its key");
    assert_eq!(rows(&placed), 3, "{placed}");
    let load_rows = rows(&load);
    assert!(load_rows >= 20, "{load}");
    println!("broker-not-leader: {refused} Produce requests refused; {placed}; {load}; events: {events}; wall {}–{}", journal["start"], journal["end"]);

    let journal = run(&shop, "mypage-rebalance");
    let changes = journal["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "three rebalances, each journaled");
    assert!(changes.iter().all(|c| c["kind"] == "broker-fault" && c["fault"]["target"]["group"] == "shop.mypage" && c["fault"]["fault"] == "rebalance"), "{changes:?}");
    let told = hits(&journal);
    assert!(told.iter().all(|&n| n >= 1), "every rebalance told mypage's member to rejoin: {told:?}");
    let (_, placed) = check_result(&journal, "after", "one mypage row per order placed during the rebalances, each event once");
    let (_, load) = check_result(&journal, "after", "one mypage row per order of the load, each event once");
    assert_eq!(rows(&placed), 2, "{placed}");
    assert!(rows(&load) >= 20, "{load}");
    println!("mypage-rebalance: members told {told:?}; {placed}; {load}; wall {}–{}", journal["start"], journal["end"]);

    assert!(broker_faults(&shop).is_empty(), "no fault is left behind");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_not_leader_fails_when_order_publishes_outside_its_outbox() {
    let shop = Shop::up(&["--variant", "order=publish-outside-outbox"]).await;
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("broker-not-leader"), "--reports", reports.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let (_, journal) = journal(reports.path());
    assert_eq!(journal["status"], "failed");
    let why = journal["deviated"].as_str().unwrap();
    // The dropped OrderPlaced events: orders without their mypage row or events.
    assert!(why.contains("the held events were published") || why.contains("one mypage row per order"), "{why}");
    assert_eq!(journal["rollback_verified"], true, "rolled back even though it failed");
    assert!(broker_faults(&shop).is_empty(), "no fault is left behind");
    shop.down();
}

#[test]
fn a_malformed_network_action_exits_2_naming_file_line_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-network.yaml");
    let cases = [
        ("{ from: order, to: product }", "expected one toxic"),
        ("{ from: order, reset: true, partition: true }", "expected exactly one toxic, got 2"),
        ("{ between: [mypage], partition: true }", "names two peers"),
        ("{ from: order, reset: true, probability: 3 }", "from 0 to 1"),
        ("{ from: order, latency: 10ms, jitter: 20ms }", "jitter is larger"),
    ];
    for (action, expected) in cases {
        std::fs::write(&path, format!("title: t\nsystem: shop\nmethod:\n  - network: {action}\n    hold: 3s\n")).unwrap();
        let out = common::stormproof(dir.path(), &["chaos", "run", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{action}: {err}");
        assert!(err.contains("bad-network.yaml") && err.contains("line 4") && err.contains(expected), "{action}: {err}");
    }
}

/// broker-not-leader holding its fault for a minute, to interrupt.
fn long_not_leader(dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(experiment("broker-not-leader")).unwrap().replace("hold: 5s", "hold: 60s");
    let path = dir.join("long-not-leader.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Loopback is open to every local user: the broker's fault endpoint sets
/// nothing without the run's token (and the same request with it does).
async fn the_fault_endpoint_takes_only_the_runs_token(shop: &Shop) {
    let url = format!("{}/v1/faults", shop.state["brokerFaults"].as_str().unwrap());
    let fault = serde_json::json!({"target": {"group": "shop.mypage"}, "fault": "rebalance", "expires_after": "30s"});
    let http = reqwest::Client::new();
    let bare = http.post(&url).json(&fault).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let reason = bare.text().await.unwrap();
    assert!(reason.contains("Authorization: Bearer") && reason.contains("state.json"), "says what it needs and where: {reason}");
    let wrong = http.post(&url).bearer_auth("not-the-token").json(&fault).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401, "not even a read without it");
    assert!(broker_faults(shop).is_empty(), "nothing was set");
    let token = shop.state["token"].as_str().unwrap();
    let set = http.post(&url).bearer_auth(token).json(&fault).send().await.unwrap();
    assert_eq!(set.status(), 201, "{}", set.text().await.unwrap());
    assert_eq!(http.delete(&url).bearer_auth(token).send().await.unwrap().status(), 200);
    assert!(broker_faults(shop).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_a_broker_fault_clears_it() {
    let shop = Shop::up(&[]).await;
    the_fault_endpoint_takes_only_the_runs_token(&shop).await;
    let work = tempfile::tempdir().unwrap();
    let mut chaos = start_chaos(&shop, &long_not_leader(work.path()), &work.path().join("reports"));
    wait_for("the broker fault set", || !broker_faults(&shop).is_empty());
    let set = broker_faults(&shop);
    assert_eq!(set[0]["expires_after"], "2m", "it expires by itself after its hold plus the slack: {set:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(chaos.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(chaos.wait().unwrap().code(), Some(1));
    let (_, journal) = journal(&work.path().join("reports"));
    assert_eq!(journal["status"], "aborted");
    assert!(journal["deviated"].as_str().unwrap().contains("SIGINT"));
    assert_eq!(journal["rollback_verified"], true);
    assert_eq!(journal["rollbacks"][0]["status"], "restored", "{}", journal["rollbacks"]);
    assert!(broker_faults(&shop).is_empty(), "cleared: {:?}", broker_faults(&shop));
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_chaos_rollback_clears_the_broker_fault() {
    let shop = Shop::up(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let reports = work.path().join("reports");
    let mut chaos = start_chaos(&shop, &long_not_leader(work.path()), &reports);
    wait_for("the broker fault set", || !broker_faults(&shop).is_empty());
    // The journal is re-saved with the id right after the fault is set.
    wait_for("the fault's id journaled", || journal(&reports).1["changes"][0]["id"].is_u64());
    chaos.kill().unwrap();
    chaos.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(broker_faults(&shop).len(), 1, "nobody cleared it yet");
    let (path, mut journal) = journal(&reports);
    assert_eq!(journal["status"], "running", "the harness died mid-run");
    // A harness killed between setting the fault and saving its id: the
    // rollback must find it by what it is.
    journal["changes"][0]["id"] = Value::Null;
    std::fs::write(&path, serde_json::to_vec_pretty(&journal).unwrap()).unwrap();

    let out = shop.cli(&["chaos", "rollback", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(broker_faults(&shop).is_empty(), "cleared: {:?}", broker_faults(&shop));
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!((after["status"].as_str(), after["rollback_verified"].as_bool()), (Some("aborted"), Some(true)));
    let cleared = after["rollbacks"][0]["detail"].as_str().unwrap();
    assert!(cleared.starts_with("fault ") && cleared.ends_with(" hits"), "found by what it is and cleared: {cleared}");
    shop.down();
}
