//! `stormproof check shop`: the full scorecard against a running shop.

mod common;

use common::Shop;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn check_shop_scores_every_checkpoint() {
    // A short autoscaler period and window, as `check` itself uses.
    let shop = Shop::up(&["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"]).await;
    let reports = tempfile::tempdir().unwrap();
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/shop");
    let out = shop.cli(&["check", "shop", "--lang", "ko", "--pacts", pacts, "--reports", reports.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("장애격리"), "Korean checkpoint names: {stdout}");
    let run = std::fs::read_dir(reports.path()).unwrap().next().unwrap().unwrap().path();
    let scores: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap();
    assert_eq!(scores.len(), 13);
    let verdict = |id: u64| scores.iter().find(|s| s["id"] == id).unwrap()["verdict"].as_str().unwrap().to_string();
    for id in [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12] {
        assert_eq!(verdict(id), "pass", "checkpoint {id}: {scores:?}");
    }
    for id in [3, 13] {
        assert_eq!(verdict(id), "not yet", "checkpoint {id} is not claimed before it is automated");
    }
    let deploy = scores.iter().find(|s| s["id"] == 10).unwrap()["evidence"].as_str().unwrap().to_string();
    assert!(deploy.starts_with("with: POST /orders 100.00 %") && deploy.contains("without, as expected"), "{deploy}");
    let isolation = scores.iter().find(|s| s["id"] == 6).unwrap();
    assert!(isolation["evidence"].as_str().unwrap().starts_with("POST /orders 100.00 %"), "figures first: {isolation}");
    assert!(run.join("delivery-outage/report.html").exists());
    let contract = scores.iter().find(|s| s["id"] == 12).unwrap()["evidence"].as_str().unwrap().to_string();
    assert!(contract.contains("item-rename blocked") && contract.contains("item-rename-compatible passes"), "{contract}");
    shop.down();
}
