//! Checkpoint 3 (correlation key) against a real shop: the `correlation`
//! experiment's events check passes on the shop with the events it read
//! counted, and `check` fails the checkpoint on `order=random-key` (events
//! keyed at random) with the offending record quoted — topic, partition,
//! offset. The harness's reader joins no consumer group.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Shop;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use stormproof::exit::PASSED;

/// A copy of the shop's folder whose checkpoints are checkpoint 3 alone.
fn only_checkpoint_3(root: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("shop-3");
    std::fs::create_dir_all(dir.join("chaos")).unwrap();
    std::fs::copy(repo.join("scenarios/shop/system.yaml"), dir.join("system.yaml")).unwrap();
    std::fs::copy(repo.join("chaos/shop/correlation.yaml"), dir.join("chaos/correlation.yaml")).unwrap();
    let shipped = std::fs::read_to_string(repo.join("scenarios/shop/checkpoints.yaml")).unwrap();
    let entry = shipped.split("\n  - id: ").find(|e| e.starts_with("3\n")).expect("checkpoint 3 in the shop's checkpoints.yaml");
    assert!(entry.contains("experiment: correlation"), "checkpoint 3 is scored by the correlation experiment: {entry}");
    std::fs::write(dir.join("checkpoints.yaml"), format!("checkpoints:\n  - id: {}\n", entry.trim_end())).unwrap();
    dir
}

/// `check` of checkpoint 3 alone against `shop`: exit code, the
/// checkpoint's verdict and evidence, the experiment's journal.
fn check_3(shop: &Shop) -> (Option<i32>, String, String, Value) {
    let root = tempfile::tempdir().unwrap();
    let folder = only_checkpoint_3(root.path());
    let reports = root.path().join("reports");
    let out = shop.cli(&["check", folder.to_str().unwrap(), "--reports", reports.to_str().unwrap()]);
    eprintln!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let run = std::fs::read_dir(&reports).unwrap().next().expect("a check run").unwrap().path();
    let card: Value = serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap();
    let score = card["checkpoints"].as_array().unwrap().iter().find(|c| c["id"] == 3).unwrap().clone();
    let journal: Value = serde_json::from_str(&std::fs::read_to_string(run.join("correlation/journal.json")).unwrap()).unwrap();
    (out.status.code(), score["verdict"].as_str().unwrap().to_string(), score["evidence"].as_str().unwrap().to_string(), journal)
}

/// The events check's result in the journal.
fn events_check(journal: &Value) -> Value {
    let before = journal["steady_states"]["before"].as_array().unwrap();
    before.iter().find(|r| r["probe"] == "events").expect("an events check ran").clone()
}

/// The consumer groups the broker knows.
fn groups(shop: &Shop) -> Vec<String> {
    let kafka = shop.state["kafka"].as_str().unwrap();
    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", kafka).set("log_level", "3").create().unwrap();
    let list = client.fetch_group_list(None, Duration::from_secs(5)).expect("the broker lists its groups");
    list.groups().iter().map(|g| g.name().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_3_passes_on_the_shop_with_its_events_counted() {
    let shop = Shop::up(&[]).await;
    let (code, verdict, evidence, journal) = check_3(&shop);
    assert_eq!((code, verdict.as_str()), (Some(PASSED), "pass"), "{evidence}");
    // 3 OrderPlaced, 3 DeliveryStarted and the OrderCancelled at least.
    let inspected: usize = evidence.split(" events of 3 flows inspected").next().and_then(|n| n.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(inspected >= 7, "the evidence counts the events of the 3 flows: {evidence}");
    let check = events_check(&journal);
    assert_eq!(check["status"], "held", "{check}");
    assert!(check["evidence"].as_str().unwrap().contains("keyed by it, `type` header set, one partition per flow"), "{check}");
    let groups = groups(&shop);
    assert!(groups.iter().any(|g| g == "shop.delivery"), "the services' groups are listed: {groups:?}");
    assert!(!groups.iter().any(|g| g.starts_with("stormproof.inspect")), "the reader joined no group: {groups:?}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_3_fails_when_order_keys_its_events_at_random() {
    let shop = Shop::up(&["--variant", "order=random-key"]).await;
    let (code, verdict, evidence, journal) = check_3(&shop);
    assert_eq!((code, verdict.as_str()), (Some(1), "fail"), "{evidence}");
    assert!(evidence.contains("offender(s): shop/") && evidence.contains("Kafka key `") && evidence.contains(", expected "), "the offender is quoted with its place: {evidence}");
    let check = events_check(&journal);
    assert_eq!(check["status"], "deviated", "{check}");
    shop.down();
}
