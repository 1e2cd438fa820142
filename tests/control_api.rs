//! The local platform's control API, attacked as another local user or a
//! stale file would: no token or a wrong one is 401; a rollout may set only
//! the settings the definition declares (no `LD_PRELOAD`); and a state file
//! or pid file whose pid now names an unrelated process never gets that
//! process signalled.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::{BIN, Shop, service};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn the_control_api_needs_the_runs_token_and_rollouts_set_only_declared_settings() {
    let shop = Shop::up(&["--hpa-sync-period", "1h"]).await;
    let state_path = shop.dir.path().join("state.json");
    let mode = std::fs::metadata(&state_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the state file holds the token: owner only");
    let control = shop.state["control"].as_str().unwrap().to_string();
    let token = shop.state["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 32, "a token of its own for this run: {token}");
    let http = reqwest::Client::new();

    // No token, a wrong one: 401, and nothing done.
    let scale = format!("{control}/v1/services/delivery/replicas");
    let none = http.put(&scale).json(&json!({"replicas": 0})).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().contains("Bearer"), "{body}");
    let wrong = http.put(&scale).bearer_auth(format!("{token}x")).json(&json!({"replicas": 0})).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(http.post(format!("{control}/v1/shutdown")).send().await.unwrap().status(), 401, "not even a shutdown");
    assert_eq!(http.get(format!("{control}/v1/services")).send().await.unwrap().status(), 401, "nor a read");
    let services: Value = http.get(format!("{control}/v1/services")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(service(&services, "delivery")["desired"], 1, "the unauthorized scale did nothing");
    // stormproof's own clients read the token from the state file.
    assert!(shop.cli_ok(&["status"]).contains("delivery"));

    // An environment injection through the CLI: exit 2, naming the variable.
    let before = shop.cli_ok(&["rollout", "status", "order", "--timeout", "5s"]);
    let out = shop.cli(&["rollout", "order", "--to", "v2", "--env", "LD_PRELOAD=/tmp/x.so"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR), "{stderr}");
    assert!(stderr.contains("`LD_PRELOAD`"), "{stderr}");
    // Straight to the control API, with the token: 422 naming it.
    let rollout = format!("{control}/v1/services/order/rollout");
    let injected = json!({"version": "v2", "env": {"STORMPROOF_WARMUP": "1s", "LD_PRELOAD": "/tmp/x.so"}});
    let answer = http.post(&rollout).bearer_auth(&token).json(&injected).send().await.unwrap();
    assert_eq!(answer.status(), 422);
    let body: Value = answer.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().contains("`LD_PRELOAD`"), "{body}");
    let arbitrary = json!({"version": "v2", "env": {"PATH": "/tmp"}});
    assert_eq!(http.post(&rollout).bearer_auth(&token).json(&arbitrary).send().await.unwrap().status(), 422);
    // Nothing was rolled: same revision, every replica still v1.
    assert_eq!(shop.cli_ok(&["rollout", "status", "order", "--timeout", "5s"]), before);
    let services: Value = http.get(format!("{control}/v1/services")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let order = service(&services, "order");
    let versions: Vec<&str> = order["replicas"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["v1"]);
    // A declared setting (the built-in's warm-up) is accepted.
    let out = shop.cli_ok(&["rollout", "order", "--to", "v2", "--env", "STORMPROOF_WARMUP=1s", "--timeout", "90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_state_file_naming_a_live_unrelated_process_does_not_get_it_killed() {
    let shop = Shop::up(&["--hpa-sync-period", "1h"]).await;
    // The stale file: a copy of the real one, its pid now an unrelated `sleep`.
    let mut unrelated = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let stale_dir = tempfile::tempdir().unwrap();
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(shop.dir.path().join("state.json")).unwrap()).unwrap();
    // As if `up` had died and its pid been reused: the recorded start time is `up`'s.
    state["pid"] = json!(unrelated.id());
    state["process"]["pid"] = json!(unrelated.id());
    std::fs::write(stale_dir.path().join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    let out = common::stormproof(stale_dir.path(), &["down"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("stale") && stderr.contains(&format!("pid {} was not signalled", unrelated.id())), "{stderr}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(unrelated.try_wait().unwrap().is_none(), "the unrelated process is still alive");
    assert!(!stale_dir.path().join("state.json").exists(), "the stale file is removed");
    // Nor was the real system (whose control address the copy names) shut down.
    let (status, _) = shop.get("/products").await;
    assert_eq!(status, 200, "the real shop still serves");
    // Status on the stale file says so too, and signals nothing.
    std::fs::write(stale_dir.path().join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    let out = common::stormproof(stale_dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(unrelated.try_wait().unwrap().is_none());
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
    shop.down();
}

/// `chaos abort` signals a harness only if its pid file's pid still names
/// it: a pid file left behind, its pid now an unrelated process, is refused
/// (exit 2) and that process keeps running.
#[test]
fn chaos_abort_does_not_signal_a_reused_pid() {
    let reports = tempfile::tempdir().unwrap();
    let run = reports.path().join("20260101T000000-000-stale");
    std::fs::create_dir_all(&run).unwrap();
    let mut unrelated = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    // Who the harness was (this test's own start time), not the sleep.
    let me = stormproof::process::Identity::current();
    let stale = stormproof::process::Identity { pid: unrelated.id(), ..me };
    std::fs::write(run.join("pid"), serde_json::to_vec(&stale).unwrap()).unwrap();
    std::fs::write(run.join("journal.json"), "{}").unwrap();
    let abort = |args: &[&str]| std::process::Command::new(BIN).args(["chaos", "abort"]).args(args).output().unwrap();
    let out = abort(&[run.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR), "{stderr}");
    assert!(stderr.contains("nothing was signalled"), "{stderr}");
    // A pid file of the old kind (a bare number) names no process that may be signalled.
    std::fs::write(run.join("pid"), unrelated.id().to_string()).unwrap();
    let out = abort(&[run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR), "{}", String::from_utf8_lossy(&out.stderr));
    // And the newest-running search skips it.
    let out = abort(&["--reports", reports.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR));
    std::thread::sleep(Duration::from_millis(300));
    assert!(unrelated.try_wait().unwrap().is_none(), "the unrelated process is still alive");
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}
