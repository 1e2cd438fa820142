//! A user's own system on the local platform: services run from a
//! `command:` — here small Python programs (the standard library only, or
//! the pyshop example's virtualenv) — scaled, killed, rolled out and probed
//! like ours; the clear message for a service that never gets ready, exits
//! at once or ignores SIGTERM; `down` leaving nothing running; and the
//! worked example `scenarios/examples/pyshop` checked end to end.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{BIN, stormproof};
use serde_json::Value;

/// A service in the standard library only: its behaviour is chosen by
/// `MODE` (ok, never-ready, crash, ignore-term); `/info` tells what it was
/// given; with `SPAWN_CHILD=1` it starts a child of its own (which a
/// container's end would take with it).
const SVC: &str = r#"
import json, os, signal, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

mode = os.environ.get("MODE", "ok")
if mode == "crash":
    print("config missing: DATABASE_URL", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if os.environ.get("SPAWN_CHILD") == "1":
    subprocess.Popen(["sleep", "300"])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health/ready" and mode == "never-ready":
            code, body = 503, {"status": "DOWN", "reason": "waiting for a database that never comes"}
        elif self.path in ("/health/ready", "/health/live"):
            code, body = 200, {"status": "UP"}
        elif self.path.startswith("/info"):
            code, body = 200, {k: os.environ.get(k) for k in ("PORT", "REPLICA", "VERSION", "GREETING", "TOPIC", "KAFKA_BOOTSTRAP", "DATA_DIR")}
        else:
            code, body = 404, {"error": "Not Found"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(fmt % args, file=sys.stderr, flush=True)

server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print(f"{os.environ['REPLICA']} ({mode}) listening on {os.environ['PORT']}", file=sys.stderr, flush=True)
server.serve_forever()
"#;

fn python() -> Option<String> {
    let found = Command::new("python3").arg("--version").output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&found.stdout).trim().to_string())
}

/// A one-service system of the user's own in a temp folder, the service in
/// `mode`, with extra service lines `more` (YAML, indented 4).
fn misfit(mode: &str, more: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.py"), SVC).unwrap();
    let yaml = format!(
        "system: misfits\ntopic: misfits\ngateway:\n  auth: none\n  routes: [{{ prefix: /info, service: svc }}]\nservices:\n  - name: svc\n    role: core\n    run: {{ command: [python3, svc.py] }}\n    env: {{ MODE: {mode} }}\n    settings: [GREETING]\n{more}"
    );
    std::fs::write(dir.path().join("system.yaml"), yaml).unwrap();
    dir
}

const FAST_PROBES: &str = "    readiness: { path: /health/ready, period: 200ms }\n    liveness: { path: /health/live, period: 1s }\n";

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn up(system: &Path, run: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["up", system.to_str().unwrap(), "--detach", "--port", "0"];
    args.extend_from_slice(extra);
    stormproof(run, &args)
}

/// Runs `stormproof down` in `run` when dropped, so a failing assertion
/// leaves nothing running either.
struct DownOnDrop<'a>(&'a Path);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = stormproof(self.0, &["down"]);
    }
}

fn state(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

/// Every live process whose environment says it is a replica of the
/// system running in `run` (its DATA_DIR is under the run's data folder).
fn replicas_of(run: &Path) -> Vec<u32> {
    let data = run.join("data").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stormproof::platform::local::pid_alive(*pid))
        .filter(|pid| std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| String::from_utf8_lossy(&env).split('\0').any(|v| v.starts_with("DATA_DIR=") && v.contains(&data))))
        .collect()
}

fn wait_gone(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| stormproof::platform::local::pid_alive(*p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_service_that_never_gets_ready_is_named_with_its_probe_and_last_log_lines() {
    let Some(python) = python() else { return common::skipped("python3 is not installed; a user's service here is a Python program") };
    eprintln!("using {python}");
    // No probes given: a service of the user's own is probed on /health/ready and /health/live.
    let system = misfit("never-ready", "");
    let run = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = up(system.path(), run.path(), &["--ready-timeout", "4s"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("not every replica became ready within 4s"), "{said}");
    assert!(said.contains("svc (0/1 ready)"), "names the service: {said}");
    assert!(said.contains("svc-1: listening on 127.0.0.1:") && said.contains("never passed its readiness probe (last: GET /health/ready → 503 Service Unavailable)"), "{said}");
    assert!(said.contains("last log lines: svc-1 (never-ready) listening on") && said.contains("\"GET /health/ready HTTP/1.1\" 503"), "its own log: {said}");
    assert!(started.elapsed() < Duration::from_secs(40), "gave up on the deadline, not later");
    assert!(wait_gone(&replicas_of(run.path()), Duration::from_secs(10)).is_empty(), "a failed up leaves nothing running");
}

#[test]
fn a_service_that_exits_at_once_fails_up_early_naming_it_and_its_last_log_lines() {
    let Some(_) = python() else { return common::skipped("python3 is not installed; a user's service here is a Python program") };
    let system = misfit("crash", FAST_PROBES);
    let run = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = up(system.path(), run.path(), &["--ready-timeout", "60s"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("svc exits at once: svc-1 ended 3 times before it was ever ready (last: exit status: 3 after"), "{said}");
    assert!(said.contains("svc-1.log: config missing: DATABASE_URL"), "its last log line: {said}");
    assert!(started.elapsed() < Duration::from_secs(30), "fails early, not on the 60 s deadline ({:?})", started.elapsed());
    let missing = misfit("ok", "");
    std::fs::write(missing.path().join("system.yaml"), std::fs::read_to_string(missing.path().join("system.yaml")).unwrap().replace("[python3, svc.py]", "[bin/not-there]")).unwrap();
    let said = text(&up(missing.path(), run.path(), &[]));
    assert!(said.contains("svc exits at once") && said.contains("cannot run") && said.contains("bin/not-there"), "a program that is not there is named: {said}");
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_the_grace_period_and_named_by_down() {
    let Some(_) = python() else { return common::skipped("python3 is not installed; a user's service here is a Python program") };
    let system = misfit("ignore-term", &format!("{FAST_PROBES}    replicas: 2\n"));
    let mut yaml = std::fs::read_to_string(system.path().join("system.yaml")).unwrap();
    yaml = yaml.replace("MODE: ignore-term", "MODE: ignore-term, SPAWN_CHILD: \"1\"");
    std::fs::write(system.path().join("system.yaml"), yaml).unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = up(system.path(), run.path(), &["--grace", "1s"]);
    let _down = DownOnDrop(run.path());
    assert!(out.status.success(), "{}", text(&out));
    let status: Value = serde_json::from_str(&String::from_utf8_lossy(&stormproof(run.path(), &["status", "--json"]).stdout)).unwrap();
    let replicas: Vec<u32> = status.as_array().unwrap().iter().find(|s| s["name"] == "svc").unwrap()["replicas"].as_array().unwrap().iter().map(|r| r["pid"].as_u64().unwrap() as u32).collect();
    assert_eq!(replicas.len(), 2, "two replicas of svc: {replicas:?}");
    // Each replica started a child of its own (it inherits the replica's environment).
    let children: Vec<u32> = replicas_of(run.path()).into_iter().filter(|p| !replicas.contains(p)).collect();
    assert_eq!(children.len(), 2, "each replica's own child runs: {children:?}");
    let up_pid = state(run.path())["pid"].as_u64().unwrap() as u32;

    let out = stormproof(run.path(), &["down"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("warning: svc-") && said.contains("(svc) ignored SIGTERM: still running 1s after it, so it was killed (SIGKILL)"), "{said}");
    assert!(said.contains("last log lines of") && said.contains("(ignore-term) listening on"), "{said}");
    let left = wait_gone(&[&replicas[..], &children[..], &[up_pid]].concat(), Duration::from_secs(10));
    assert!(left.is_empty(), "down left processes running: {left:?}");
    assert!(replicas_of(run.path()).is_empty());
}

#[tokio::test]
async fn a_command_service_is_given_its_settings_scaled_killed_and_rolled_like_ours() {
    let Some(_) = python() else { return common::skipped("python3 is not installed; a user's service here is a Python program") };
    let system = misfit("ok", FAST_PROBES);
    let run = tempfile::tempdir().unwrap();
    let out = up(system.path(), run.path(), &["--grace", "5s"]);
    let _down = DownOnDrop(run.path());
    assert!(out.status.success(), "{}", text(&out));
    let gateway = state(run.path())["gateway"].as_str().unwrap().to_string();
    let http = stormproof::http_client().timeout(Duration::from_secs(5)).build().unwrap();
    // auth: none — routed without a token.
    let info = |http: reqwest::Client, gateway: String| async move { http.get(format!("{gateway}/info")).send().await.unwrap().json::<Value>().await.unwrap() };
    let first = info(http.clone(), gateway.clone()).await;
    assert_eq!((first["REPLICA"].as_str(), first["VERSION"].as_str(), first["TOPIC"].as_str()), (Some("svc-1"), Some("v1"), Some("misfits")), "{first}");
    assert!(first["DATA_DIR"].as_str().unwrap().ends_with("data/svc") && first["KAFKA_BOOTSTRAP"].as_str().unwrap().starts_with("127.0.0.1:"), "{first}");

    let ok = |args: &[&str]| {
        let out = stormproof(run.path(), args);
        assert!(out.status.success(), "stormproof {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["scale", "svc", "2", "--wait", "--timeout", "30s"]);
    assert_eq!(replicas_of(run.path()).len(), 2);
    let killed = ok(&["kill", "svc"]);
    assert!(killed.contains("killed misfits.svc replica svc-"), "{killed}");
    ok(&["scale", "svc", "2", "--wait", "--timeout", "30s"]);
    let status: Value = serde_json::from_str(&ok(&["status", "--json"])).unwrap();
    let ids: Vec<&str> = status.as_array().unwrap().iter().find(|s| s["name"] == "svc").unwrap()["replicas"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"svc-3"), "the killed replica was replaced: {ids:?}");

    let rolled = ok(&["rollout", "svc", "--to", "v2", "--env", "GREETING=hi"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let now = info(http.clone(), gateway.clone()).await;
    assert_eq!((now["VERSION"].as_str(), now["GREETING"].as_str()), (Some("v2"), Some("hi")), "the new version runs with its environment: {now}");
    ok(&["scale", "svc", "0", "--wait", "--timeout", "30s"]);
    assert!(wait_gone(&replicas_of(run.path()), Duration::from_secs(10)).is_empty(), "scaled to 0, none runs");
    ok(&["scale", "svc", "1", "--wait", "--timeout", "30s"]);
    let pids = replicas_of(run.path());
    ok(&["down"]);
    assert!(wait_gone(&pids, Duration::from_secs(10)).is_empty());
}

/// The pyshop example's virtualenv, cached under `$HOME/.cache/stormproof/`
/// and rebuilt when its requirements change; `None` (with the reason) when
/// Python or PyPI cannot provide it.
fn pyshop_venv() -> Result<PathBuf, String> {
    python().ok_or("python3 is not installed")?;
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/pyshop/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| e.to_string())?;
    let home = std::env::var("HOME").map_err(|_| "HOME is not set")?;
    let venv = PathBuf::from(home).join(".cache/stormproof/venvs/pyshop");
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).output().map_err(|e| e.to_string())?;
    if !made.status.success() {
        return Err(format!("python3 -m venv failed (Debian: apt-get install python3-venv): {}", text(&made)));
    }
    let pip = Command::new(venv.join("bin/pip")).args(["install", "-q", "-r"]).arg(&requirements).output().map_err(|e| e.to_string())?;
    if !pip.status.success() {
        return Err(format!("pip install -r requirements.txt failed (is PyPI reachable?): {}", text(&pip)));
    }
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(venv)
}

/// `stormproof ARGS` with the virtualenv active (its `python3` first on PATH).
fn in_venv(venv: &Path, run: &Path, args: &[&str]) -> Output {
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    Command::new(BIN).args(args).env("STORMPROOF_RUN_DIR", run).env("PATH", path).env("VIRTUAL_ENV", venv).env_remove("STORMPROOF_PORT").output().unwrap()
}

fn scorecard(reports: &Path) -> Value {
    let run = std::fs::read_dir(reports).unwrap().next().unwrap().unwrap().path();
    serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap()
}

fn verdicts(card: &Value) -> Vec<(u64, String)> {
    card["checkpoints"].as_array().unwrap().iter().map(|c| (c["id"].as_u64().unwrap(), c["verdict"].as_str().unwrap().to_string())).collect()
}

#[test]
fn the_python_example_passes_check_end_to_end() {
    let venv = match pyshop_venv() {
        Ok(venv) => venv,
        Err(why) => return common::skipped(&format!("the pyshop example needs a Python virtualenv with aiokafka and aiohttp: {why}")),
    };
    let (run, reports) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/pyshop");
    let started = Instant::now();
    let out = in_venv(&venv, run.path(), &["check", example.to_str().unwrap(), "--reports", reports.path().to_str().unwrap()]);
    let said = text(&out);
    eprintln!("{}\n`stormproof check scenarios/examples/pyshop` took {:.0} s", String::from_utf8_lossy(&out.stdout), started.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(0), "{said}");
    let card = scorecard(reports.path());
    let expected: Vec<(u64, String)> = [(1, "pass"), (2, "pass"), (3, "not yet"), (4, "not applicable"), (5, "pass"), (6, "pass"), (7, "pass"), (8, "pass"), (9, "pass"), (10, "pass"), (11, "pass"), (12, "pass"), (13, "not yet")]
        .iter()
        .map(|(id, v)| (*id, v.to_string()))
        .collect();
    assert_eq!(verdicts(&card), expected, "{said}");
    assert_eq!(card["system"], "pyshop");
    // Evidence of real work: transactions, rows, the restart, the blocked variant.
    let evidence = |id: u64| card["checkpoints"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["evidence"].as_str().unwrap().to_string();
    assert!(evidence(2).contains("rows in /mypages?customerId=chaos-mypage"), "{}", evidence(2));
    assert!(evidence(11).contains("1 restarts during the experiment"), "{}", evidence(11));
    assert!(evidence(12).contains("drop-customer blocked") && evidence(12).contains("missing the following keys"), "{}", evidence(12));
    assert!(replicas_of(run.path()).is_empty(), "check stops what it started");
}

#[test]
fn the_example_read_model_started_from_the_latest_offset_fails_cqrs_naming_it() {
    let venv = match pyshop_venv() {
        Ok(venv) => venv,
        Err(why) => return common::skipped(&format!("the pyshop example needs a Python virtualenv with aiokafka and aiohttp: {why}")),
    };
    // The example as it is, scored on the saga and the read model only.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/pyshop");
    let copy = tempfile::tempdir().unwrap();
    for part in ["system.yaml", "requirements.txt"] {
        std::fs::copy(example.join(part), copy.path().join(part)).unwrap();
    }
    for folder in ["services", "chaos"] {
        std::fs::create_dir_all(copy.path().join(folder)).unwrap();
        for file in std::fs::read_dir(example.join(folder)).unwrap() {
            let file = file.unwrap().path();
            if file.is_file() {
                std::fs::copy(&file, copy.path().join(folder).join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    let checkpoints = std::fs::read_to_string(example.join("checkpoints.yaml")).unwrap();
    let two: String = checkpoints.split("\n  - id: ").take(3).collect::<Vec<_>>().join("\n  - id: ");
    std::fs::write(copy.path().join("checkpoints.yaml"), format!("{two}\n")).unwrap();

    let (run, reports) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let system = copy.path().to_str().unwrap();
    let quick = ["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"];
    let out = in_venv(&venv, run.path(), &[&["up", system, "--detach", "--port", "0", "--variant", "mypage=from-latest"][..], &quick].concat());
    let _down = DownOnDrop(run.path());
    assert!(out.status.success(), "{}", text(&out));
    let out = in_venv(&venv, run.path(), &["check", system, "--reports", reports.path().to_str().unwrap()]);
    let said = text(&out);
    let _ = in_venv(&venv, run.path(), &["down"]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "a failed checkpoint exits 1: {said}");
    let line = String::from_utf8_lossy(&out.stdout).lines().find(|l| l.trim_start().starts_with("2 ")).unwrap_or_default().to_string();
    assert!(line.contains("CQRS read model") && line.contains("FAIL"), "checkpoint 2 fails, named: {line}");
    let card = scorecard(reports.path());
    assert_eq!(verdicts(&card), [(1, "pass".to_string()), (2, "fail".to_string())], "{said}");
    let why = card["checkpoints"][1]["evidence"].as_str().unwrap();
    assert!(why.contains("missing"), "the evidence names the rows it misses: {why}");
    assert!(replicas_of(run.path()).is_empty());
}
