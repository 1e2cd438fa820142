//! Interoperability: the pacts our consumer tests write are accepted by the
//! official Pact verifier CLI against the running reference provider — HTTP
//! interactions against product's API, and message interactions through
//! stormproof's message endpoint (`stormproof contract serve`), whose events
//! are captured from Kafka.
//!
//! The CLI is found as $PACT_VERIFIER_CLI, `pact_verifier_cli` or
//! `pact-verifier` (its name since 1.4) on PATH, or where
//! `ci/install-pact-verifier-cli.sh` puts it; the consolidated
//! `pact` binary (`pact verifier …`) works too. Without one the test skips
//! with a message.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stormproof::exit::{FAILED, PASSED};

fn verifier_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PACT_VERIFIER_CLI") {
        return Some(PathBuf::from(path));
    }
    // pact_verifier_cli 1.4 installs its binary as `pact-verifier`.
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/stormproof/pact-cli/bin")));
    dirs.iter().flat_map(|d| [d.join("pact_verifier_cli"), d.join("pact-verifier")]).find(|p| p.is_file())
}

/// `stormproof contract serve` for one provider, stopped by pid on drop.
struct Served {
    child: Child,
    port: String,
    messages_port: String,
    states_url: String,
}

impl Served {
    fn start(provider: &str, variant: Option<&str>) -> Served {
        let system = provider.split('.').next().unwrap();
        let triggers = format!("{}/contracts/{system}/triggers.yaml", env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new(common::BIN);
        command.args(["contract", "serve", "--provider", provider, "--triggers", &triggers]);
        if let Some(variant) = variant {
            command.args(["--variant", variant]);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = |key: &str| {
            let line = lines.next().expect("serve printed its URLs").unwrap();
            let url = line.strip_prefix(key).unwrap_or_else(|| panic!("expected {key}, got {line}")).to_string();
            url.rsplit(':').next().unwrap().to_string()
        };
        let port = url("STORMPROOF_PROVIDER_URL=");
        let messages_port = url("STORMPROOF_MESSAGES_URL=");
        url("STORMPROOF_KAFKA=");
        let line = lines.next().expect("serve printed its state-change URL").unwrap();
        let states_url = line.strip_prefix("STORMPROOF_STATES_URL=").unwrap_or_else(|| panic!("expected STORMPROOF_STATES_URL=, got {line}")).to_string();
        Served { child, port, messages_port, states_url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The official verifier on `pacts` (files of `contracts/`) against `served`,
/// its provider states set up at the state-change URL `contract serve` printed.
fn official_verify_files(cli: &PathBuf, served: &Served, pacts: &[&str]) -> (i32, String) {
    let mut command = Command::new(cli);
    if cli.file_name().is_some_and(|n| n == "pact") {
        command.arg("verifier");
    }
    for pact in pacts {
        command.args(["--file", &format!("{}/contracts/{pact}", env!("CARGO_MANIFEST_DIR"))]);
    }
    let transports = format!("message:{}", served.messages_port);
    command.args(["--hostname", "127.0.0.1", "--port", &served.port, "--transports", &transports, "--state-change-url", &served.states_url, "--no-colour"]);
    let out = command.env("PACT_DO_NOT_TRACK", "true").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{cli:?}\n{text}");
    (out.status.code().unwrap_or(-1), text)
}

fn official_verify(cli: &PathBuf, served: &Served) -> (i32, String) {
    official_verify_files(cli, served, &["shop/shop.order-shop.product.json"])
}

#[test]
fn official_verifier_accepts_our_pacts() {
    let Some(cli) = verifier_cli() else {
        return common::skipped("no pact_verifier_cli (set PACT_VERIFIER_CLI or run ci/install-pact-verifier-cli.sh)");
    };
    let served = Served::start("shop.product", None);
    let (code, out) = official_verify(&cli, &served);
    assert_eq!(code, PASSED, "{out}");
    assert!(out.contains("a ProductChanged event"), "{out}");
    drop(served);

    // And it blocks the course's breaking change the same way.
    let served = Served::start("shop.product", Some("drop-product-name"));
    let (code, out) = official_verify(&cli, &served);
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("productName"), "{out}");
}

/// Every pact of the taxi: payment's HTTP pacts — call's `POST /payments`,
/// and driver's settlement, whose provider state ("call 2's fare is
/// registered") is set up through payment's own API by the state-change
/// URL, as `contracts/taxi/states.yaml` says — and the message pacts of
/// call and driver through the message endpoint.
#[test]
fn official_verifier_accepts_the_taxis_pacts_with_their_provider_state() {
    let Some(cli) = verifier_cli() else {
        return common::skipped("no pact_verifier_cli (set PACT_VERIFIER_CLI or run ci/install-pact-verifier-cli.sh)");
    };
    let providers = [
        ("taxi.payment", ["taxi/taxi.call-taxi.payment.json", "taxi/taxi.driver-taxi.payment.json"], ["a fare registered for a new call", "the settlement of call 2's fare"]),
        ("taxi.call", ["taxi/taxi.driver-taxi.call.json", "taxi/taxi.calllist-taxi.call.json"], ["a CalledTaxi event", "a CalledTaxi event"]),
        ("taxi.driver", ["taxi/taxi.call-taxi.driver.json", "taxi/taxi.calllist-taxi.driver.json"], ["an UpdatedStatus event (Accepted)", "an UpdatedStatus event (Accepted) for the board"]),
    ];
    for (provider, pacts, descriptions) in providers {
        let served = Served::start(provider, None);
        let (code, out) = official_verify_files(&cli, &served, &pacts);
        assert_eq!(code, PASSED, "{provider}: {out}");
        assert!(descriptions.iter().all(|d| out.contains(d)), "{provider}: {out}");
    }
    // And it blocks driver's breaking variant.
    let served = Served::start("taxi.driver", Some("drop-call-id"));
    let (code, out) = official_verify_files(&cli, &served, &["taxi/taxi.call-taxi.driver.json"]);
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("callId"), "{out}");
}

/// The telecom's bill with its consumers' pacts: pay's lookup, whose
/// provider state ("an Unpaid bill of 50000 won exists") the state-change
/// URL sets up through bill's own input (an OrderPlaced) and answers with
/// the id bill gave the bill — the verifier asks for `/bills/${billId}`,
/// filled in from it — and pay's and mypage's bill events through the
/// message endpoint, triggered with the bill id captured.
#[test]
fn official_verifier_accepts_the_telecoms_pacts_on_bill_with_the_states_bill_id() {
    let Some(cli) = verifier_cli() else {
        return common::skipped("no pact_verifier_cli (set PACT_VERIFIER_CLI or run ci/install-pact-verifier-cli.sh)");
    };
    let served = Served::start("telecom.bill", None);
    let (code, out) = official_verify_files(&cli, &served, &["telecom/telecom.pay-telecom.bill.json", "telecom/telecom.mypage-telecom.bill.json"]);
    assert_eq!(code, PASSED, "{out}");
    for description in ["a request for an unpaid bill", "a BillCreated event", "a BillCompleted event", "a BillCanceled event"] {
        assert!(out.contains(description), "{description}: {out}");
    }
}

/// The same state-change URL with the Pact verifier stormproof embeds
/// (`contract verify --base-url … --state-change-url …`): the verifier's
/// own state-change protocol reaches `contract serve`, which sets the state
/// up through payment's API. Runs without the official CLI.
#[test]
fn a_served_provider_sets_up_its_states_at_the_state_change_url_it_prints() {
    let served = Served::start("taxi.payment", None);
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/taxi");
    let base_url = format!("http://127.0.0.1:{}", served.port);
    let args = ["contract", "verify", "--provider", "taxi.payment", "--pacts", pacts, "--base-url", &base_url, "--state-change-url", &served.states_url];
    let out = Command::new(common::BIN).args(args).env("PACT_DO_NOT_TRACK", "true").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(PASSED), "{text}");
    assert!(text.contains("ok   taxi.payment ← taxi.driver: the settlement of call 2's fare [GET /payments/settleCost] given call 2's fare is registered"), "{text}");
    // An unknown state is refused at the URL, naming the known ones.
    let (status, reason) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let refused = reqwest::Client::new().post(&served.states_url).json(&serde_json::json!({"state": "call 9 exists", "action": "setup"})).send().await.unwrap();
        (refused.status().as_u16(), refused.text().await.unwrap())
    });
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("unknown provider state `call 9 exists`") && reason.contains("`call 2's fare is registered`"), "{reason}");
}
