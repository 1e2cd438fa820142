//! Tests through the built binary: exit codes, `-j` output, reports.

mod common_siege;

use std::process::Output;

use common_siege::{Behavior, start};
use stormproof::exit::{ERROR, FAILED, PASSED};

async fn stormproof(args: Vec<String>) -> Output {
    common_siege::siege(args).await
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_url_file_exits_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.urls");
    std::fs::write(&file, "# fine\nhttp://127.0.0.1:1/ok\nhttp://127.0.0.1:1/x FETCH body\n").unwrap();
    let out = stormproof(args(&["-c", "1", "-r", "1", "-f", file.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(ERROR));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:3: expected a method", file.display())), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    for bad in [
        vec!["-c", "1", "-r", "1", "--threshold", "latency<5ms", "http://127.0.0.1:1/"],
        vec!["-c", "x", "http://127.0.0.1:1/"],
        vec!["-t", "3X", "http://127.0.0.1:1/"],
        vec!["-r", "1", "-d", "1X", "http://127.0.0.1:1/"],
        vec!["-r", "1"],
        vec!["-r", "1", "https://127.0.0.1:1/"],
        vec!["-r", "1", "-H", "no colon", "http://127.0.0.1:1/"],
        vec!["-r", "1", "--threshold", "p95{GET /nope}<5ms", "http://127.0.0.1:1/"],
        vec!["-r", "1", "http://no-such-host.invalid/"],
    ] {
        let out = stormproof(args(&bad)).await;
        assert_eq!(out.status.code(), Some(ERROR), "{bad:?}: {}", text(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_gate_the_exit_code() {
    let server = start(Behavior::Script(vec![])).await;
    let url = server.url("/");
    let pass = stormproof(args(&[
        "-c", "2", "-r", "20", "--threshold", "availability>=99.9%", "--threshold", "p95<5s", "--threshold",
        "error-rate<1%", "--threshold", "rps>=1", &url,
    ]))
    .await;
    assert_eq!(pass.status.code(), Some(PASSED), "{}", text(&pass.stderr));
    let out = text(&pass.stdout);
    assert!(out.contains("PASS availability>=99.9%"), "{out}");
    assert!(out.contains("Transactions:") && out.contains("Shortest transaction:"), "{out}");

    let fail = stormproof(args(&["-c", "2", "-r", "20", "--threshold", "p95<1us", "--threshold", "rps>=1", &url])).await;
    assert_eq!(fail.status.code(), Some(FAILED));
    let out = text(&fail.stdout);
    assert!(out.contains("FAIL p95<1us") && out.contains("expected < 0.001 ms"), "{out}");
    assert!(out.contains("1 of 2 thresholds failed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_siege_keys_and_the_schema_fields() {
    let server = start(Behavior::Script(vec![200, 200, 200, 200, 404, 404, 500, 500])).await;
    let out = stormproof(args(&["-c", "1", "-r", "8", "-j", "--siege-compat", "-q", &server.url("/")])).await;
    assert_eq!(out.status.code(), Some(PASSED), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["transactions"], 6);
    assert_eq!(v["successful_transactions"], 4);
    assert_eq!(v["failed_transactions"], 2);
    assert_eq!(v["availability"], 75.0);
    assert_eq!(v["status_codes"]["404"], 2);
    assert_eq!(v["counting"], "siege");
    let schema: serde_json::Value = serde_json::from_str(stormproof::report::JSON_SCHEMA).unwrap();
    for key in schema["required"].as_array().unwrap() {
        assert!(v.get(key.as_str().unwrap()).is_some(), "missing {key}");
    }
    for key in schema["$defs"]["latency"]["required"].as_array().unwrap() {
        assert!(v["latency_us"].get(key.as_str().unwrap()).is_some(), "missing latency {key}");
    }
    for point in v["timeline"].as_array().unwrap() {
        for key in ["second", "requests", "transactions", "successful", "failed", "bytes", "availability", "p50_us", "p99_us"] {
            assert!(point.get(key).is_some(), "timeline point misses {key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_dir_gets_json_junit_markdown_and_html() {
    let server = start(Behavior::Script(vec![])).await;
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("out");
    let log = dir.path().join("siege.log");
    let out = stormproof(args(&[
        "-c", "2", "-r", "10", "-q", "--report", reports.to_str().unwrap(), "--threshold", "availability>=99%",
        "--threshold", "p99<1us", "-l", log.to_str().unwrap(), "-m", "first run", &server.url("/"),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(FAILED), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("threshold failed: p99<1us"));
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 2);
    assert_eq!(junit.matches("<failure ").count(), 1);
    assert!(junit.contains("failures=\"1\""));
    let md = std::fs::read_to_string(reports.join("summary.md")).unwrap();
    assert!(md.contains("1 of 2 thresholds failed") && md.contains("| Transactions | 20 hits |"), "{md}");
    let html = std::fs::read_to_string(reports.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Availability per second") && !html.contains("<script"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], false);
    assert_eq!(json["thresholds"].as_array().unwrap().len(), 2);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.starts_with("      Date & Time,") && log.contains("**** first run ****"), "{log}");
    assert_eq!(log.lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_argument_with_method_and_body() {
    let server = start(Behavior::Script(vec![])).await;
    let url = server.url("/orders");
    let out = stormproof(args(&["-c", "1", "-r", "2", "-v", &url, "POST", "{\"productId\":1}"])).await;
    assert_eq!(out.status.code(), Some(PASSED), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("==> POST   /orders").count(), 2, "{stdout}");
    assert!(stdout.contains("Transactions:\t\t           2 hits"), "{stdout}");
}

#[test]
fn shipped_shop_url_files_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/shop");
    for name in ["browse.urls", "orders.urls", "admin.urls"] {
        let t = stormproof::load::parse_url_file(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!t.is_empty(), "{name}");
    }
    let orders = stormproof::load::parse_url_file(&dir.join("orders.urls")).unwrap();
    assert_eq!(orders[0].route, "POST /orders");
    assert!(orders[1].body.as_ref().is_some_and(|b| b.starts_with(b"{\"productId\": 2")));
    assert_eq!(orders[1].content_type.as_deref(), Some("application/json"));
    assert_eq!(orders[4].method, stormproof::load::Method::PATCH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reps_or_time_it_runs_until_ctrl_c_then_prints_the_summary() {
    let server = start(Behavior::Script(vec![])).await;
    let url = server.url("/");
    let out = tokio::task::spawn_blocking(move || {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_stormproof"))
            .args(["siege", "-c", "2", "-d", "0.01", "-j", &url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(PASSED), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary after Ctrl-C");
    assert_eq!(v["stopped_by"], "cancelled");
    assert!(v["transactions"].as_u64().unwrap() > 0);
}
