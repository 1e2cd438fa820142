//! `stormproof check shop --prove=IDS`: the mutation matrix on the real
//! local shop for two quick checkpoints (saga, gateway), each broken system
//! started on its own ports in its own folder, two at a time; the same
//! engine on the taxi's correlation and late-read-model checkpoints (its
//! checkpoints.yaml is the only thing that names them); and a malformed
//! `broken:` entry as an input error naming file and line. The full 13 × 2
//! matrix is `benches/prove.sh` (too long for a test).

mod common;

use std::path::Path;

use serde_json::Value;
use stormproof::exit::{ERROR, PASSED};

fn row(proof: &Value, id: u64) -> &Value {
    proof["rows"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()
}

#[test]
fn the_saga_and_gateway_checkpoints_fail_on_their_broken_shops_and_only_there() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    let out = common::stormproof(&root.path().join("run"), &["check", "shop", "--prove=1,5", "--jobs", "2", "--reports", reports.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(PASSED), "{stdout}\n{stderr}");
    let run = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    let proof: Value = serde_json::from_str(&std::fs::read_to_string(run.join("prove.json")).unwrap()).unwrap();
    assert_eq!((proof["holds"].as_bool(), proof["rows"].as_array().unwrap().len()), (Some(true), 2), "{proof:#}");
    for (id, variant) in [(1, "delivery=publish-only"), (5, "gateway=let-anonymous")] {
        let r = row(&proof, id);
        assert_eq!((r["real"]["verdict"].as_str(), r["broken"]["verdict"].as_str(), r["variants"].as_str()), (Some("pass"), Some("fail"), Some(variant)), "{r:#}");
        assert_eq!(r["conclusion"]["conclusion"], "proven", "{r:#}");
        assert!(r["changes"].as_array().unwrap().is_empty(), "no other verdict changed: {r:#}");
    }
    // The reasons are the checks that caught each broken shop.
    let saga = row(&proof, 1)["broken"]["evidence"].as_str().unwrap();
    assert!(saga.contains("an order starts its delivery through Kafka") && saga.contains("deviated"), "{saga}");
    let gateway = row(&proof, 5)["broken"]["evidence"].as_str().unwrap();
    assert!(gateway.contains("no valid token, no entry") && gateway.contains("401"), "{gateway}");
    // Each system ran in its own folder, and none is left up.
    for folder in ["real", "broken-1", "broken-5"] {
        assert!(run.join(folder).join("scorecard.json").exists(), "{folder}");
        assert!(run.join(folder).join("saga/journal.json").exists() && run.join(folder).join("gateway/journal.json").exists(), "{folder}");
        assert!(!run.join(folder).join("run/state.json").exists(), "{folder} is down again");
    }
    assert!(!root.path().join("run/state.json").exists(), "the run dir of --run-dir is not used");
    let md = std::fs::read_to_string(run.join("prove.md")).unwrap();
    assert!(md.contains("| 1 | Saga / pub-sub | PASS | delivery=publish-only | FAIL | proven |") && md.contains("The proof holds."), "{md}");
    assert!(stdout.contains("delivery=publish-only") && stdout.contains("the proof holds"), "the matrix is printed: {stdout}");
    assert!(stderr.contains("[broken-5] the system with gateway=let-anonymous"), "{stderr}");
}

#[test]
fn the_taxis_correlation_and_late_board_checkpoints_fail_on_their_broken_taxis_and_only_there() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    let out = common::stormproof(&root.path().join("run"), &["check", "taxi", "--prove=3,13", "--jobs", "2", "--reports", reports.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(PASSED), "{stdout}\n{stderr}");
    let run = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    let proof: Value = serde_json::from_str(&std::fs::read_to_string(run.join("prove.json")).unwrap()).unwrap();
    assert_eq!((proof["system"].as_str(), proof["holds"].as_bool(), proof["rows"].as_array().unwrap().len()), (Some("taxi"), Some(true), 2), "{proof:#}");
    for (id, variant) in [(3, "call=random-key"), (13, "calllist-late=from-latest")] {
        let r = row(&proof, id);
        assert_eq!((r["real"]["verdict"].as_str(), r["broken"]["verdict"].as_str(), r["variants"].as_str()), (Some("pass"), Some("fail"), Some(variant)), "{r:#}");
        assert_eq!(r["conclusion"]["conclusion"], "proven", "{r:#}");
        assert!(r["changes"].as_array().unwrap().is_empty(), "no other verdict changed: {r:#}");
    }
    // The reasons: CalledTaxi keyed at random; a late board with no rows.
    let correlation = row(&proof, 3)["broken"]["evidence"].as_str().unwrap();
    assert!(correlation.contains("CalledTaxi of flow") && correlation.contains("Kafka key"), "{correlation}");
    let late = row(&proof, 13)["broken"]["evidence"].as_str().unwrap();
    assert!(late.contains("calllist-late has a row for every call") && late.contains("missing 5"), "{late}");
    let real = row(&proof, 3)["real"]["evidence"].as_str().unwrap();
    assert!(real.contains(" events of 3 flows inspected on taxi"), "{real}");
    for folder in ["real", "broken-3", "broken-13"] {
        assert!(run.join(folder).join("correlation/journal.json").exists() && run.join(folder).join("late-read-model/journal.json").exists(), "{folder}");
        assert!(!run.join(folder).join("run/state.json").exists(), "{folder} is down again");
    }
}

/// A copy of the shop's folder with `checkpoints` as its checkpoints.yaml.
fn shop_folder(root: &Path, checkpoints: &str) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("my-shop");
    for (from, to) in [("scenarios/shop", ""), ("chaos/shop", "chaos"), ("contracts/shop", "contracts")] {
        std::fs::create_dir_all(dir.join(to)).unwrap();
        for entry in std::fs::read_dir(repo.join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(to).join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.join("checkpoints.yaml"), checkpoints).unwrap();
    dir
}

#[test]
fn a_broken_variant_the_system_lacks_is_an_input_error_naming_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let checkpoints = "checkpoints:
  - id: 1
    en: Saga / pub-sub
    ko: Saga (Pub/Sub)
    experiment: saga
    phases: [before]
    broken: { variants: [delivery=forgetful], why: a state change in delivery }
";
    let folder = shop_folder(root.path(), checkpoints);
    let out = common::stormproof(&root.path().join("run"), &["check", folder.to_str().unwrap(), "--prove"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(ERROR), "{stderr}");
    let file = folder.join("checkpoints.yaml");
    assert!(stderr.contains(&format!("{}:7: checkpoint 1: broken: shop.delivery has no variant `forgetful` (variants: anonymous-group, live-always, publish-only)", file.display())), "{stderr}");
    assert!(!root.path().join("run/state.json").exists(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_let_anonymous_gateway_lets_a_tokenless_request_through_and_still_refuses_a_bad_token() {
    let shop = common::Shop::up(&["--variant", "gateway=let-anonymous"]).await;
    let orders = format!("{}/orders", shop.gateway);
    let tokenless = shop.http.get(&orders).send().await.unwrap();
    assert_eq!(tokenless.status().as_u16(), 200, "the broken gateway routes a request without a token");
    let forged = shop.http.get(&orders).bearer_auth("not.a.token").send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 401, "a bad token is still refused: only the missing-token check is gone");
    let mine = shop.http.get(&orders).bearer_auth(shop.token()).send().await.unwrap();
    assert_eq!(mine.status().as_u16(), 200);
    shop.down();
}
