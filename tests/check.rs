//! `stormproof check SYSTEM`: the full scorecard against a running shop, a
//! system added as data only (a folder), and the input errors a folder can
//! have. Every scorecard.json is validated against the shipped schema.

mod common;

use std::path::{Path, PathBuf};

use common::Shop;
use serde_json::Value;
use stormproof::exit::{ERROR, PASSED};

/// The scorecard of the one run under `reports`, validated against the schema.
fn scorecard(reports: &Path) -> (PathBuf, Value) {
    let run = std::fs::read_dir(reports).unwrap().next().unwrap().unwrap().path();
    let card: Value = serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap();
    let schema: Value = serde_json::from_str(stormproof::report::SCORECARD_SCHEMA).unwrap();
    if let Err(err) = jsonschema::validate(&schema, &card) {
        panic!("scorecard.json does not match scorecard.schema.json: {err} at {}\n{card:#}", err.instance_path());
    }
    (run, card)
}

fn verdict(card: &Value, id: u64) -> String {
    card["checkpoints"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()["verdict"].as_str().unwrap().to_string()
}

fn evidence(card: &Value, id: u64) -> String {
    card["checkpoints"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()["evidence"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_shop_scores_every_checkpoint() {
    // A short autoscaler period and window, as `check` itself uses.
    let shop = Shop::up(&["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"]).await;
    let reports = tempfile::tempdir().unwrap();
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/shop");
    let out = shop.cli(&["check", "shop", "--lang", "ko", "--pacts", pacts, "--reports", reports.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(PASSED), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("장애격리"), "Korean checkpoint names: {stdout}");
    let (run, card) = scorecard(reports.path());
    assert_eq!((card["schema_version"].as_u64(), card["system"].as_str(), card["passed"].as_bool()), (Some(2), Some("shop"), Some(true)));
    assert_eq!(card["checkpoints"].as_array().unwrap().len(), 13);
    for id in 1..=13 {
        assert_eq!(verdict(&card, id), "pass", "checkpoint {id}: {card:#}");
    }
    assert!(evidence(&card, 3).contains(" events of 3 flows inspected on shop"), "{}", evidence(&card, 3));
    let late = evidence(&card, 13);
    assert!(late.contains("in /orders?customerId=chaos-late") && late.contains("built from scratch") && late.contains("caught up"), "rows and the catch-up time: {late}");
    let deploy = evidence(&card, 10);
    assert!(deploy.starts_with("with: POST /orders 100.00 %") && deploy.contains("without, as expected"), "{deploy}");
    assert!(evidence(&card, 6).starts_with("POST /orders 100.00 %"), "figures first: {}", evidence(&card, 6));
    assert!(evidence(&card, 9).starts_with("order: desired"), "the autoscaler's decision leads: {}", evidence(&card, 9));
    assert!(run.join("delivery-outage/report.html").exists());
    let contract = evidence(&card, 12);
    assert!(contract.contains("item-rename blocked") && contract.contains("item-rename-compatible passes"), "{contract}");
    // Figures, not just "held": every pass names counts.
    assert!(evidence(&card, 4).contains("transactions") && evidence(&card, 4).contains("ms"), "{}", evidence(&card, 4));
    // A clean console: a line per experiment and contract case, then the
    // scorecard; the verifier's own text (FAILED lines of the variants that
    // must break included) is in the report files only.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("Verifying a pact between") && !stderr.contains("Verifying a pact between"), "verifier text on the console:\n{stdout}\n{stderr}");
    assert!(stderr.contains("▸ saga: ") && stderr.contains("  saga: passed in "), "{stderr}");
    assert!(stderr.contains("rolling-update-without-readiness: failed in") && stderr.contains("as expected"), "{stderr}");
    assert!(stderr.contains("▸ contract shop.product as item-rename: blocked by the pacts"), "{stderr}");
    assert!(!stderr.contains("UNEXPECTED"), "{stderr}");
    let transcript = std::fs::read_to_string(run.join("contract-verification/shop.product-item-rename.txt")).unwrap();
    assert!(transcript.contains("Verifying a pact between") && transcript.contains("FAILED"), "{transcript}");
    assert!(run.join("contract-verification/shop.product.json").exists());
    scorecard_page_renders(&run);
    shop.down();
}

/// `scorecard.html` renders in headless Chromium with the Korean names and
/// labels, a row per checkpoint, and every link leads to a file of the run.
fn scorecard_page_renders(run: &Path) {
    let dom = common::chromium_dom(&run.join("scorecard.html"));
    assert!(dom.contains("lang=\"ko\"") && dom.contains("<th>판정</th>") && dom.contains("<th>증거</th>"), "{dom}");
    assert!(dom.contains("장애격리") && dom.contains("무정지 재배포 (Readiness Probe)"), "the course's Korean names: {dom}");
    assert_eq!(dom.matches("<tr id=\"checkpoint-").count(), 13, "{dom}");
    assert_eq!(dom.matches("✔ 통과").count(), 14, "13 passes and the overall result: {dom}");
    assert_eq!(dom.matches("… 자동화 예정").count(), 0, "{dom}");
    let hrefs: Vec<&str> = dom.split("href=\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    for href in &hrefs {
        assert!(!href.contains(':') && !href.starts_with('/'), "relative: {href}");
        assert!(run.join(href).is_file(), "{href} leads to a file of the run");
    }
    for expected in ["delivery-outage/report.html", "rolling-update-without-readiness/report.html", "contract-verification/shop.product-item-rename.txt", "scorecard.json"] {
        assert!(hrefs.contains(&expected), "{expected} is linked: {hrefs:?}");
    }
}

/// A copy of the shop's folder as a system of its own: its files only, in
/// the one-folder layout (system.yaml, checkpoints.yaml, chaos/, contracts/).
fn shop_folder(root: &Path, checkpoints: &str, drop_experiment: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("my-shop");
    std::fs::create_dir_all(dir.join("chaos")).unwrap();
    std::fs::create_dir_all(dir.join("contracts")).unwrap();
    for entry in std::fs::read_dir(repo.join("scenarios/shop")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    for (from, to) in [("chaos/shop", "chaos"), ("contracts/shop", "contracts")] {
        for entry in std::fs::read_dir(repo.join(from)).unwrap() {
            let path = entry.unwrap().path();
            if path.file_stem().is_some_and(|s| s != drop_experiment) {
                std::fs::copy(&path, dir.join(to).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::write(dir.join("checkpoints.yaml"), checkpoints).unwrap();
    dir
}

/// Quick experiments only (steady-state checks), to keep the test short.
const CHECKPOINTS: &str = "checkpoints:
  - { id: 1, en: Saga / pub-sub, ko: Saga (Pub/Sub), experiment: saga, phases: [before] }
  - { id: 5, en: Gateway, ko: Gateway / Ingress, experiment: gateway, phases: [before] }
  - id: 11
    en: Self-healing
    ko: Self-healing (Liveness Probe)
    not_applicable: this copy ships no self-healing experiment
  - id: 12
    en: Contract test
    ko: Contract Test
    contract:
      provider: shop.product
      cases:
        - { expect: pass }
        - { variant: item-rename, expect: fail }
";

#[test]
fn a_system_added_as_data_only_is_checked_by_path() {
    let root = tempfile::tempdir().unwrap();
    let folder = shop_folder(root.path(), CHECKPOINTS, "self-healing");
    assert!(!folder.join("chaos/self-healing.yaml").exists());
    let reports = root.path().join("reports");
    let out = common::stormproof(&root.path().join("run"), &["check", folder.to_str().unwrap(), "--reports", reports.to_str().unwrap(), "-v"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(PASSED), "{stdout}\n{stderr}");
    assert!(stderr.contains("Verifying a pact between"), "-v shows the verifier's own text: {stderr}");
    assert!(stdout.contains("NOT APPLICABLE") && stdout.contains("3 passed, 0 failed, 0 not yet automated, 1 not applicable"), "{stdout}");
    let (run, card) = scorecard(&reports);
    assert_eq!(card["checkpoints"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 5, 11, 12]);
    for id in [1, 5, 12] {
        assert_eq!(verdict(&card, id), "pass", "checkpoint {id}: {card:#}");
    }
    assert_eq!(verdict(&card, 11), "not applicable", "never reported as a pass");
    assert_eq!(evidence(&card, 11), "this copy ships no self-healing experiment");
    assert!(evidence(&card, 12).contains("product passes; item-rename blocked"), "{}", evidence(&card, 12));
    assert!(run.join("saga/journal.json").exists() && !run.join("self-healing").exists(), "only the experiments the checkpoints read ran");
    assert!(!root.path().join("run/state.json").exists(), "the system check started is down again");
}

#[test]
fn a_checkpoint_naming_an_experiment_the_folder_lacks_is_an_input_error() {
    let root = tempfile::tempdir().unwrap();
    let checkpoints = CHECKPOINTS.replace("not_applicable: this copy ships no self-healing experiment", "experiment: self-healing\n    phases: [during]");
    let folder = shop_folder(root.path(), &checkpoints, "self-healing");
    let out = common::stormproof(&root.path().join("run"), &["check", folder.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(ERROR), "{stderr}");
    assert!(stderr.contains("checkpoints.yaml:4: checkpoint 11 is scored by experiment `self-healing`") && stderr.contains("chaos/self-healing.yaml"), "{stderr}");
    assert!(!root.path().join("run/state.json").exists(), "nothing was started");
}

#[test]
fn a_malformed_checkpoints_file_names_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let folder = shop_folder(root.path(), &CHECKPOINTS.replace("phases: [before] }\n  - { id: 5", "phases: [bfore] }\n  - { id: 5"), "");
    let out = common::stormproof(&root.path().join("run"), &["check", folder.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(ERROR), "{stderr}");
    assert!(stderr.contains(&format!("{}: error: line 2", folder.join("checkpoints.yaml").display())) && stderr.contains("bfore"), "{stderr}");
}

#[test]
fn an_unknown_system_lists_the_known_ones() {
    let root = tempfile::tempdir().unwrap();
    let out = common::stormproof(root.path(), &["check", "taxi-someday"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(ERROR), "{stderr}");
    assert!(stderr.contains("unknown system `taxi-someday` (known: library, shop, taxi, telecom"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_13_fails_when_the_late_read_model_starts_from_the_latest_offset() {
    let shop = Shop::up(&["--variant", "mypage-late=from-latest"]).await;
    let root = tempfile::tempdir().unwrap();
    let only_13 = "checkpoints:\n  - { id: 13, en: Open architecture, ko: 확장성, experiment: late-read-model, phases: [during] }\n";
    let folder = shop_folder(root.path(), only_13, "");
    let reports = root.path().join("reports");
    // Checked where the broken shop runs (the shop's run dir): not started anew.
    let out = shop.cli(&["check", folder.to_str().unwrap(), "--reports", reports.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(stormproof::exit::FAILED), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let (_, card) = scorecard(&reports);
    assert_eq!(verdict(&card, 13), "fail", "{card:#}");
    let why = evidence(&card, 13);
    assert!(why.contains("mypage-late has a row for every order, each event applied once (deviated): 5 in /orders?customerId=chaos-late, 0 rows") && why.contains("missing 5"), "the rows it lacks are named: {why}");
    shop.down();
}

/// Ctrl-C during `check`: the running experiment aborts and rolls back, no
/// further experiment starts, the system the check started is stopped, and
/// the check exits 2 saying how many experiments did not run.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_check_rolls_back_starts_nothing_more_and_stops_the_system() {
    use tokio::io::AsyncBufReadExt;
    let checkpoints = "checkpoints:
  - { id: 1, en: Saga / pub-sub, ko: Saga (Pub/Sub), experiment: saga, phases: [before] }
  - { id: 4, en: Request-response, ko: Req/Resp, experiment: product-hang, phases: [during] }
  - { id: 6, en: Failure isolation, ko: 장애격리, experiment: delivery-outage, phases: [during] }
";
    let root = tempfile::tempdir().unwrap();
    let folder = shop_folder(root.path(), checkpoints, "");
    let reports = root.path().join("reports");
    let mut check = tokio::process::Command::new(common::BIN)
        .args(["check", folder.to_str().unwrap(), "--reports", reports.to_str().unwrap()])
        .env("STORMPROOF_RUN_DIR", root.path().join("run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The console's progress lines are on stderr.
    let mut lines = tokio::io::BufReader::new(check.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(120), lines.next_line()).await.expect("the check went on").unwrap();
        let line = line.unwrap_or_else(|| panic!("the check ended early: {seen:?}"));
        seen.push(line.clone());
        if line.contains("▸ product-hang") {
            break;
        }
    }
    // Into product-hang's method (its hypothesis takes a moment).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(check.id().unwrap() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), check.wait()).await.expect("the check stopped").unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        seen.push(line);
    }
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(ERROR), "{stderr}");
    assert!(stderr.contains("interrupted: 1 of 3 experiments not run"), "{stderr}");
    let run = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    let journal: Value = serde_json::from_slice(&std::fs::read(run.join("product-hang/journal.json")).unwrap()).unwrap();
    assert_eq!(journal["status"], "aborted", "{journal:#}");
    assert!(journal["rollbacks"].as_array().is_some_and(|r| !r.is_empty() && r.iter().all(|s| s["status"] == "restored")), "{journal:#}");
    assert_eq!(journal["rollback_verified"], true, "{journal:#}");
    assert!(!run.join("delivery-outage").exists(), "no experiment started after the interrupt");
    assert!(!root.path().join("run/state.json").exists(), "the system the check started is down again");
}
