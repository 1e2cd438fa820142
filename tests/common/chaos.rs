//! Driving `stormproof chaos` from a test: the shipped experiment files, a
//! run's journal, a run started in the background (to interrupt or kill).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{BIN, Shop};

/// The shop's shipped experiment `name`.
pub fn experiment(name: &str) -> String {
    format!("{}/chaos/shop/{name}.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// The only journal under `reports`.
pub fn journal(reports: &Path) -> (PathBuf, Value) {
    let dir = std::fs::read_dir(reports).unwrap().next().expect("a run folder").unwrap().path();
    let path = dir.join("journal.json");
    let journal = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, journal)
}

/// Polls `done` every 100 ms; panics after 60 s.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within 60s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `stormproof chaos run FILE` against `shop`, in the background.
pub fn start_chaos(shop: &Shop, file: &Path, reports: &Path) -> std::process::Child {
    Command::new(BIN)
        .args(["chaos", "run", file.to_str().unwrap(), "--reports", reports.to_str().unwrap()])
        .env("STORMPROOF_RUN_DIR", shop.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The evidence of check `name` in `phase` of `journal`, with its status.
pub fn check_result(journal: &Value, phase: &str, name: &str) -> (String, String) {
    let checks = journal["steady_states"][phase].as_array().unwrap();
    let found = checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check `{name}` in {phase}: {checks:#?}"));
    (found["status"].as_str().unwrap().to_string(), found["evidence"].as_str().unwrap().to_string())
}

/// What a command printed, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs shipped experiment `name` against `shop` to the end, expecting it
/// to pass with its rollback verified; its journal.
pub fn run(shop: &Shop, name: &str) -> Value {
    let reports = tempfile::tempdir().unwrap();
    let out = shop.cli(&["chaos", "run", &experiment(name), "--reports", reports.path().to_str().unwrap()]);
    let (_, journal) = journal(reports.path());
    assert_eq!(out.status.code(), Some(0), "{name}: {}", said(&out));
    assert_eq!((journal["status"].as_str(), journal["rollback_verified"].as_bool()), (Some("passed"), Some(true)), "{name}");
    journal
}

/// `N in SOURCE, N rows in READ_MODEL`: the N, both sides equal.
pub fn rows(evidence: &str) -> u64 {
    let (source, rows) = evidence.split_once(", ").unwrap();
    let n: u64 = source.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(rows.split(' ').next().unwrap().parse::<u64>().unwrap(), n, "{evidence}");
    n
}
