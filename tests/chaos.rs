//! Chaos experiments against a real shop: the shipped ones pass, a broken
//! system fails them with the right check named, and a rollback always
//! happens — on SIGINT, and after a SIGKILL through `chaos rollback`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Shop;
use common::chaos::{check_result, experiment, journal, start_chaos, wait_for};
use serde_json::Value;

fn delivery(shop: &Shop) -> Value {
    shop.services().as_array().unwrap().iter().find(|s| s["name"] == "delivery").unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_experiments_pass_against_the_shop() {
    let shop = Shop::up(&[]).await;
    for name in ["delivery-outage", "mypage-outage", "consumer-scale-out", "product-hang", "broker-outage"] {
        let reports = tempfile::tempdir().unwrap();
        let out = shop.cli(&["chaos", "run", &experiment(name), "--reports", reports.path().to_str().unwrap()]);
        let (_, journal) = journal(reports.path());
        assert_eq!(out.status.code(), Some(0), "{name}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(journal["status"], "passed", "{name}");
        assert_eq!(journal["rollback_verified"], true, "{name}");
        assert!(!journal["steady_states"]["during"].as_array().unwrap().is_empty(), "{name} checked during the fault");
        let run = reports.path().read_dir().unwrap().next().unwrap().unwrap().path();
        assert!(run.join("junit.xml").exists());
        assert!(journal["load"]["routes"][0]["during"]["requests"].as_u64().unwrap() > 0, "{name}: load ran through the fault");
        if name == "delivery-outage" {
            let catch_up = journal["catch_up"].as_array().unwrap();
            let delivery = catch_up.iter().find(|c| c["group"] == "shop.delivery").expect("delivery's lag was sampled");
            assert!(delivery["peak"].as_i64().unwrap() > 0, "delivery fell behind while it was down: {delivery}");
            assert!(delivery["caught_up_after"].as_f64().is_some(), "and caught up: {delivery}");
            renders_in_chromium(&run.join("report.html"));
        }
    }
    shop.down();
}

/// The HTML report renders in headless Chromium: its DOM carries the
/// charts, and a screenshot is taken (kept beside the report).
fn renders_in_chromium(report: &Path) {
    let dom = common::chromium_dom(report);
    assert!(dom.contains("Delivery outage"), "title rendered");
    assert!(dom.matches("<svg").count() >= 5, "availability, throughput, latency, replica and lag charts");
    assert!(dom.contains("class=\"fault\""), "the fault window is shaded");
    let png = report.with_file_name("report.png");
    common::headless_chromium(report, &["--window-size=900,1900".to_string(), format!("--screenshot={}", png.display())]);
    assert!(std::fs::metadata(&png).unwrap().len() > 20_000, "a real screenshot");
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_outage_fails_when_order_calls_delivery_synchronously() {
    let shop = Shop::up(&["--variant", "order=sync-delivery"]).await;
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("delivery-outage"), "--reports", reports.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, journal) = journal(reports.path());
    assert_eq!(journal["status"], "failed");
    let why = journal["deviated"].as_str().unwrap();
    assert!(why.contains("orders are accepted while delivery is down"), "{why}");
    assert!(why.contains("503"), "the evidence carries the answer: {why}");
    assert_eq!(journal["rollback_verified"], true, "rolled back even though it failed");
    assert_eq!(delivery(&shop)["ready"], 1);
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn product_hang_fails_when_order_has_no_circuit_breaker() {
    let shop = Shop::up(&["--variant", "order=no-breaker"]).await;
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("product-hang"), "--reports", reports.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, journal) = journal(reports.path());
    assert_eq!(journal["status"], "failed");
    let why = journal["deviated"].as_str().unwrap();
    assert!(why.contains("orders are placed within 1.5 s while product hangs") && why.contains("more than 1500 ms"), "{why}");
    assert_eq!(journal["rollback_verified"], true);
    shop.down();
}

/// A delivery outage that holds for a minute, to interrupt.
fn long_outage(dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(experiment("delivery-outage")).unwrap().replace("hold: 5s", "hold: 60s");
    let path = dir.join("long-outage.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_the_fault_restores_the_replicas() {
    let shop = Shop::up(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let mut chaos = start_chaos(&shop, &long_outage(work.path()), &work.path().join("reports"));
    wait_for("delivery scaled to 0", || delivery(&shop)["desired"] == 0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(chaos.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = chaos.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let (_, journal) = journal(&work.path().join("reports"));
    assert_eq!(journal["status"], "aborted");
    assert!(journal["deviated"].as_str().unwrap().contains("SIGINT"));
    assert_eq!(journal["rollback_verified"], true);
    let delivery = delivery(&shop);
    assert_eq!((delivery["desired"].as_u64(), delivery["ready"].as_u64()), (Some(1), Some(1)));
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_chaos_rollback_restores_from_the_journal() {
    let shop = Shop::up(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let reports = work.path().join("reports");
    let mut chaos = start_chaos(&shop, &long_outage(work.path()), &reports);
    wait_for("delivery scaled to 0", || delivery(&shop)["desired"] == 0);
    chaos.kill().unwrap();
    chaos.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(delivery(&shop)["desired"], 0, "nobody restored it yet");
    let (path, journal) = journal(&reports);
    assert_eq!(journal["status"], "running", "the harness died mid-run");
    assert_eq!(journal["changes"][0]["prior"], 1, "the prior state was journaled before the change");

    let out = shop.cli(&["chaos", "rollback", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let delivery = delivery(&shop);
    assert_eq!((delivery["desired"].as_u64(), delivery["ready"].as_u64()), (Some(1), Some(1)));
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(after["status"], "aborted");
    assert_eq!(after["rollback_verified"], true);
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guard_deviated_too_long_aborts_and_rolls_back() {
    let shop = Shop::up(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(long_outage(work.path())).unwrap()
        + "guardrails:\n  abort_when:\n    - name: delivery keeps a replica\n      replicas: { service: delivery, ready: 1 }\n      deviated_for: 2s\n";
    let file = work.path().join("guarded.yaml");
    std::fs::write(&file, yaml).unwrap();
    let reports = work.path().join("reports");
    let started = Instant::now();
    let out = shop.cli(&["chaos", "run", file.to_str().unwrap(), "--reports", reports.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(45), "aborted long before the 60 s hold ended");
    let (_, journal) = journal(&reports);
    assert_eq!(journal["status"], "aborted");
    assert!(journal["deviated"].as_str().unwrap().contains("guardrail: `delivery keeps a replica` deviated for more than 2s"), "{}", journal["deviated"]);
    assert_eq!(journal["rollback_verified"], true);
    assert_eq!(delivery(&shop)["ready"], 1);
    shop.down();
}

#[test]
fn a_malformed_experiment_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "title: t\nsystem: shop\nmethod:\n  - scale: { service: delivery, replicas: zero }\n").unwrap();
    let out = common::stormproof(dir.path(), &["chaos", "run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains('4'), "names file and line 4: {err}");
    let out = common::stormproof(dir.path(), &["chaos", "run", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_under_load_keeps_availability_only_with_readiness_and_is_rolled_back() {
    let shop = Shop::up(&["--hpa-sync-period", "1h"]).await;
    let run = |name: &str| {
        let reports = tempfile::tempdir().unwrap();
        let out = shop.cli(&["chaos", "run", &experiment(name), "--reports", reports.path().to_str().unwrap()]);
        (out, journal(reports.path()).1)
    };
    let (out, with) = run("rolling-update");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(with["changes"][0]["kind"], "rollout", "{}", with["changes"]);
    assert_eq!(with["changes"][0]["prior"]["version"], "v1");
    assert_eq!(with["rollback_verified"], true);
    let (out, without) = run("rolling-update-without-readiness");
    assert_eq!(out.status.code(), Some(1), "the drop fails the hypothesis");
    let deviated = without["deviated"].as_str().unwrap();
    assert!(deviated.contains("order placement stays 100 % available"), "{deviated}");
    assert_eq!(without["rollback_verified"], true, "rolled back to v1 with readiness");
    let order = common::service(&shop.services(), "order");
    let running = order["replicas"].as_array().unwrap().iter().filter(|r| r["phase"] != "terminating");
    assert!(running.clone().count() >= 1 && running.into_iter().all(|r| r["version"] == "v1"), "{order}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_an_autoscaled_service_to_zero_is_restored_with_its_autoscaler() {
    let shop = Shop::up(&["--hpa-sync-period", "1s"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("order-to-zero.yaml");
    let yaml = "title: order at zero\nsystem: shop\nmethod:\n  - scale: { service: order, replicas: 0 }\n    hold: 3s\nduring:\n  - name: the autoscaler stands aside\n    within: 5s\n    replicas: { service: order, ready: 0 }\n";
    std::fs::write(&file, yaml).unwrap();
    let reports = dir.path().join("reports");
    let out = shop.cli(&["chaos", "run", file.to_str().unwrap(), "--reports", reports.to_str().unwrap()]);
    let (_, journal) = journal(&reports);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(journal["changes"][0]["autoscaler_enabled"], true, "the journal recorded the autoscaler: {}", journal["changes"]);
    assert_eq!(journal["rollback_verified"], true, "verified only once ScalingActive is true again");
    let hpa: Value = serde_json::from_str(&shop.cli_ok(&["hpa", "--json"])).unwrap();
    let active = hpa[0]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "ScalingActive").unwrap();
    assert_eq!(active["status"], "True", "{hpa}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn self_healing_counts_only_the_restarts_of_its_own_run() {
    let shop = Shop::up(&[]).await;
    for round in 0..2 {
        let reports = tempfile::tempdir().unwrap();
        let out = shop.cli(&["chaos", "run", &experiment("self-healing"), "--reports", reports.path().to_str().unwrap()]);
        let (_, journal) = journal(reports.path());
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", String::from_utf8_lossy(&out.stdout));
        let restarted = &journal["steady_states"]["during"][0];
        // A second run must wait for a restart of its own, not pass on the first run's.
        assert!(restarted["took_ms"].as_u64().unwrap() > 1000, "round {round}: {restarted}");
        assert!(restarted["evidence"].as_str().unwrap().contains("1 restarts during the experiment"), "round {round}: {restarted}");
    }
    assert_eq!(delivery(&shop)["replicas"][0]["restarts"], 2, "two restarts in total");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_read_model_builds_every_row_from_retained_events_and_touches_no_other_service() {
    let shop = Shop::up(&[]).await;
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("late-read-model"), "--reports", reports.path().to_str().unwrap()]);
    let (_, journal) = journal(reports.path());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!((journal["status"].as_str(), journal["rollback_verified"].as_bool()), (Some("passed"), Some(true)));
    let (status, rows) = check_result(&journal, "during", "mypage-late has a row for every order, each event applied once");
    assert_eq!((status.as_str(), rows.as_str()), ("held", "5 in /orders?customerId=chaos-late, 5 rows in /mypage-late/mypages?customerId=chaos-late"));
    let (status, lag) = check_result(&journal, "during", "mypage-late read the topic from its start and caught up");
    assert!(status == "held" && lag.starts_with("shop.mypage-late built from scratch: ") && lag.contains(", 0 behind, caught up "), "{lag}");
    let read: u64 = lag["shop.mypage-late built from scratch: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(read >= 10, "at least the 5 orders' OrderPlaced and DeliveryStarted were read from the retained log: {lag}");
    for phase in ["during", "after"] {
        let (status, evidence) = check_result(&journal, phase, if phase == "during" { "no other service was touched" } else { "no other service was touched, the rollback included" });
        assert!(status == "held" && evidence.starts_with("5 other services untouched") && evidence.contains("broker, delivery, mypage, order, product"), "{phase}: {evidence}");
    }
    // For the report: the catch-up time measured.
    println!("late-read-model: {rows}; {lag}");
    let late = shop.services().as_array().unwrap().iter().find(|s| s["name"] == "mypage-late").unwrap().clone();
    assert_eq!(late["desired"], 0, "rolled back: {late}");
    // Run again on the same shop: the group now has committed offsets, so
    // a catch-up would start from them — no evidence of a build from scratch.
    let again = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("late-read-model"), "--reports", again.path().to_str().unwrap()]);
    let (_, journal) = self::journal(again.path());
    assert_eq!((out.status.code(), journal["status"].as_str()), (Some(1), Some("inconclusive")), "{}", String::from_utf8_lossy(&out.stdout));
    let (status, lag) = check_result(&journal, "during", "mypage-late read the topic from its start and caught up");
    assert!(status == "inconclusive" && lag.contains("had committed offsets before the experiment"), "{lag}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_read_model_that_starts_from_the_latest_offset_misses_the_retained_rows() {
    let shop = Shop::up(&["--variant", "mypage-late=from-latest"]).await;
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment("late-read-model"), "--reports", reports.path().to_str().unwrap()]);
    let (_, journal) = journal(reports.path());
    assert_eq!((out.status.code(), journal["status"].as_str()), (Some(1), Some("failed")), "{}", String::from_utf8_lossy(&out.stdout));
    let why = journal["deviated"].as_str().unwrap();
    assert!(why.contains("mypage-late has a row for every order") && why.contains("5 in /orders?customerId=chaos-late, 0 rows") && why.contains("missing 5"), "{why}");
    let (status, lag) = check_result(&journal, "during", "mypage-late read the topic from its start and caught up");
    assert!(status == "deviated" && lag.contains("events behind, more than 0"), "it never reads what came before it: {lag}");
    let (status, _) = check_result(&journal, "during", "no other service was touched");
    assert_eq!(status, "held", "only the late read model is at fault");
    assert_eq!(journal["rollback_verified"], true);
    shop.down();
}
