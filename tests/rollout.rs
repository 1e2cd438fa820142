//! Rolling updates on the local platform, under concurrent order traffic:
//! readiness gating, the drop without it, and a version that never gets
//! ready (progress deadline, old replicas keep serving, undo).

mod common;

use std::time::Duration;

use common::{Shop, Traffic, service};
use serde_json::Value;

/// Versions of the replicas of `name` that are not terminating (a finished
/// rollout may still be stopping old replicas, as pods stay Terminating).
fn versions(services: &Value, name: &str) -> Vec<String> {
    let s = service(services, name);
    let replicas = s["replicas"].as_array().unwrap().iter().filter(|r| r["phase"] != "terminating");
    replicas.map(|r| r["version"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_readiness_every_request_succeeds_through_the_rollout() {
    // A long autoscaler period keeps replica counts still: this is about the rollout.
    let shop = Shop::up(&["--replicas", "order=2", "--hpa-sync-period", "1h"]).await;
    let traffic = Traffic::start(&shop, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = shop.cli_ok(&["rollout", "shop.order", "--to", "v2", "--timeout", "90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served = traffic.stop().await;
    assert!(served.ok > 50, "the traffic ran through the rollout: {} orders", served.ok);
    assert!(served.failures.is_empty(), "{} of {} failed, e.g. {:?}", served.failures.len(), served.ok, &served.failures[..served.failures.len().min(3)]);
    assert_eq!(versions(&shop.services(), "order"), vec!["v2", "v2"]);
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_readiness_warming_replicas_take_traffic_and_fail_it() {
    let shop = Shop::up(&["--hpa-sync-period", "1h"]).await;
    let traffic = Traffic::start(&shop, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    shop.cli_ok(&["rollout", "order", "--to", "v2", "--without-readiness", "--timeout", "90s"]);
    // The new replica counts as ready at once; its warm-up is still running.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let served = traffic.stop().await;
    let warming = served.failures.iter().filter(|f| f.starts_with("503") && f.contains("warming up")).count();
    assert!(warming > 0, "503 warming up answers reached clients: {:?}", &served.failures[..served.failures.len().min(3)]);
    assert!(served.ok > 0);
    // Undo restores v1 with its readiness probe.
    let out = shop.cli_ok(&["rollout", "undo", "order", "--timeout", "90s"]);
    assert!(out.contains("rolling back to v1"), "{out}");
    assert_eq!(versions(&shop.services(), "order"), vec!["v1"]);
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_never_gets_ready_stops_at_max_unavailable_and_fails_its_deadline() {
    let shop = Shop::up(&["--replicas", "order=4", "--progress-deadline", "4s", "--hpa-sync-period", "1h"]).await;
    // An hour of warm-up: this version never passes readiness.
    let out = shop.cli(&["rollout", "order", "--to", "v2-broken", "--env", "STORMPROOF_WARMUP=1h", "--timeout", "60s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a failed rollout is a failed gate: {stdout}");
    assert!(stdout.contains("exceeded its progress deadline"), "{stdout}");
    // 25 % of 4: one surge, one unavailable → 3 old ready, 2 new not ready.
    let order = service(&shop.services(), "order");
    let mut seen: Vec<(String, bool)> = order["replicas"].as_array().unwrap().iter().map(|r| (r["version"].as_str().unwrap().to_string(), r["ready"].as_bool().unwrap())).collect();
    seen.sort();
    let want = [("v1", true), ("v1", true), ("v1", true), ("v2-broken", false), ("v2-broken", false)];
    assert_eq!(seen, want.map(|(v, r)| (v.to_string(), r)).to_vec());
    // The old replicas keep serving.
    let ids = shop.place_orders(10, "during-broken-rollout").await;
    assert_eq!(ids.len(), 10);
    let status = shop.cli(&["rollout", "status", "order", "--timeout", "5s"]);
    assert_eq!(status.status.code(), Some(1));
    let out = shop.cli_ok(&["rollout", "undo", "order", "--timeout", "90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(versions(&shop.services(), "order"), vec!["v1"; 4]);
    shop.down();
}
