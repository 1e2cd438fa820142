//! `stormproof contract verify` against real providers: each run starts the
//! embedded broker and the provider (a variant, for the course's breaking
//! changes) as processes on loopback, replays the committed pacts in
//! `contracts/shop/` with the Pact verifier, and captures message events from
//! Kafka. Checks exit codes by their constant names and names the broken
//! path in the report. Checkpoint 12: a contract-breaking change is blocked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

use stormproof::exit::{ERROR, FAILED, PASSED};

/// One verification at a time: each starts a broker and services, and the
/// machine is shared.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn pacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/shop")
}

fn contract(args: &[&str]) -> Output {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["contract"];
    all.extend_from_slice(args);
    let out = std::process::Command::new(common::BIN)
        .args(&all)
        .current_dir(dir.path())
        .env("PACT_DO_NOT_TRACK", "true")
        .env_remove("STORMPROOF_VARIANT")
        .output()
        .expect("run stormproof");
    eprintln!("stormproof {all:?}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn verify(provider: &str, variant: Option<&str>, extra: &[&str]) -> (i32, String) {
    let pacts = pacts();
    let mut args = vec!["verify", "--provider", provider, "--pacts", pacts.to_str().unwrap()];
    if let Some(variant) = variant {
        args.extend(["--variant", variant]);
    }
    args.extend_from_slice(extra);
    let out = contract(&args);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn product_honours_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let (code, out) = verify("shop.product", None, &["--json", json.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(code, PASSED, "{out}");
    assert!(out.contains("ok   shop.product ← shop.order: a request for product 1 [GET /products/1]"), "{out}");
    assert!(out.contains("ok   shop.product ← shop.order: a ProductChanged event [message]"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["passed"], true);
    assert_eq!(report["interactions"].as_array().unwrap().len(), 2);
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(junit.contains("tests=\"2\"") && junit.contains("failures=\"0\"") && junit.matches("<testcase ").count() == 2, "{junit}");
}

/// The course's story: product renames `/products/{id}` to `/items/{id}`.
#[test]
fn item_rename_is_blocked() {
    let (code, out) = verify("shop.product", Some("item-rename"), &[]);
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("FAIL shop.product ← shop.order: a request for product 1 [GET /products/1]"), "{out}");
    assert!(out.contains("StatusMismatch at GET /products/1: expected 200 but was 404"), "{out}");
}

/// The course's message contract: ProductChanged without productName. The
/// event is the one product really published, read back from Kafka.
#[test]
fn drop_product_name_is_blocked() {
    let (code, out) = verify("shop.product", Some("drop-product-name"), &[]);
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("ok   shop.product ← shop.order: a request for product 1"), "{out}");
    assert!(out.contains("FAIL shop.product ← shop.order: a ProductChanged event [message]"), "{out}");
    assert!(out.contains("Actual map is missing the following keys: productName"), "{out}");
}

/// A wrong field, not only a missing one: productPrice published as text.
#[test]
fn a_wrongly_typed_field_is_blocked() {
    let (code, out) = verify("shop.product", Some("price-as-text"), &[]);
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("FAIL shop.product ← shop.order: a ProductChanged event [message]"), "{out}");
    assert!(out.contains("at $.productPrice"), "{out}");
}

/// The course's fix: serve both paths while consumers move.
#[test]
fn backward_compatible_rename_passes() {
    let (code, out) = verify("shop.product", Some("item-rename-compatible"), &[]);
    assert_eq!(code, PASSED, "{out}");
}

#[test]
fn no_pacts_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let out = contract(&["verify", "--provider", "shop.product", "--pacts", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(ERROR));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pacts found for provider shop.product"));
}

/// A V2 pact (another Pact implementation's) naming a provider state the
/// shop does not list fails on that state, naming it and the known ones —
/// not with the verifier's bare "state change handlers has failed".
#[test]
fn an_unknown_provider_state_is_named_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pact = serde_json::json!({
        "consumer": {"name": "shop.order"},
        "provider": {"name": "shop.product"},
        "interactions": [{
            "description": "a request for product 1",
            "providerState": "products exist",
            "request": {"method": "GET", "path": "/products/1"},
            "response": {"status": 200, "body": {"id": 1}}
        }],
        "metadata": {"pactSpecification": {"version": "2.0.0"}}
    });
    std::fs::write(dir.path().join("shop.order-shop.product.json"), pact.to_string()).unwrap();
    let out = contract(&["verify", "--provider", "shop.product", "--pacts", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(FAILED), "{stdout}");
    assert!(stdout.contains("unknown provider state `products exist`"), "{stdout}");
    assert!(stdout.contains("`product 1 exists`, `product 2 exists`"), "the known ones: {stdout}");
}

/// A malformed provider state (here a set-up step capturing with something
/// that is not a JSON pointer) is an input error naming the file, its line
/// and the form expected, before anything starts.
#[test]
fn a_malformed_provider_state_names_file_line_and_form() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("my-shop");
    std::fs::create_dir_all(folder.join("contracts")).unwrap();
    for (from, to) in [("scenarios/shop", ""), ("contracts/shop", "contracts")] {
        for entry in std::fs::read_dir(repo.join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, folder.join(to).join(path.file_name().unwrap())).unwrap();
        }
    }
    let states = "shop.product:\n  product 1 exists: seeded\n  product 9 exists:\n    why: made by POST /products\n    steps:\n      - { method: POST, path: /products, body: { name: X }, capture: { id: id } }\n";
    std::fs::write(folder.join("contracts/states.yaml"), states).unwrap();
    let out = contract(&["verify", "--provider", "shop.product", "--system", folder.to_str().unwrap(), "--pacts", pacts().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(ERROR), "{stderr}");
    let file = folder.join("contracts/states.yaml");
    assert!(stderr.contains(&format!("{}: ", file.display())) && stderr.contains("line 4"), "file and line: {stderr}");
    assert!(stderr.contains("{ why: WORDS, steps: [STEP...] }"), "the form expected: {stderr}");
}

/// A variant the system does not list is refused before anything starts.
#[test]
fn an_unknown_variant_lists_the_known_ones() {
    let (code, _) = verify("shop.product", Some("item-renamed"), &[]);
    assert_eq!(code, ERROR);
    let out = contract(&["verify", "--provider", "shop.product", "--variant", "item-renamed"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shop.product has no variant `item-renamed` (variants: drop-product-name, item-rename"), "{stderr}");
}

/// order's events, captured from Kafka after real orders through its API.
#[test]
fn order_events_honour_delivery_mypage_and_product() {
    let (code, out) = verify("shop.order", None, &[]);
    assert_eq!(code, PASSED, "{out}");
    for consumer in ["shop.delivery", "shop.mypage", "shop.product"] {
        assert!(out.contains(&format!("ok   shop.order ← {consumer}: an OrderPlaced event [message]")), "{out}");
        assert!(out.contains(&format!("ok   shop.order ← {consumer}: an OrderCancelled event [message]")), "{out}");
    }
}

/// delivery publishes DeliveryStarted when it consumes an OrderPlaced.
#[test]
fn delivery_started_honours_mypage() {
    let (code, out) = verify("shop.delivery", None, &[]);
    assert_eq!(code, PASSED, "{out}");
    assert!(out.contains("ok   shop.delivery ← shop.mypage: a DeliveryStarted event [message]"), "{out}");
}

/// A provider that is already running (`--base-url`, `--kafka`), with its
/// provider states sent to a state-change URL the provider team serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_provider_with_a_state_change_url() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    // The provider team's state-change endpoint: records what it is asked.
    let states = std::sync::Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let seen = states.clone();
    let app = axum::Router::new().route(
        "/states",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state_url = format!("http://{}/states", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let triggers = pacts().join("triggers.yaml");
    let mut served = tokio::process::Command::new(common::BIN)
        .args(["contract", "serve", "--provider", "shop.product", "--triggers", triggers.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(served.stdout.take().unwrap()).lines();
    let mut values = Vec::new();
    for key in ["STORMPROOF_PROVIDER_URL=", "STORMPROOF_MESSAGES_URL=", "STORMPROOF_KAFKA="] {
        let line = tokio::time::timeout(std::time::Duration::from_secs(90), lines.next_line()).await;
        let line = line.expect("contract serve announced itself in time").unwrap().expect("contract serve printed its addresses");
        values.push(line.strip_prefix(key).unwrap_or_else(|| panic!("expected {key}: {line}")).to_string());
    }
    let (base_url, kafka) = (values[0].clone(), values[2].clone());

    let pacts = pacts();
    let args = ["verify", "--provider", "shop.product", "--pacts", pacts.to_str().unwrap(), "--base-url", &base_url, "--kafka", &kafka, "--state-change-url", &state_url];
    let out = tokio::process::Command::new(common::BIN).arg("contract").args(args).env("PACT_DO_NOT_TRACK", "true").output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(PASSED), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let asked: Vec<String> = states.lock().unwrap().iter().map(|s| s["state"].as_str().unwrap_or_default().to_string()).collect();
    assert!(asked.iter().filter(|s| *s == "product 1 exists").count() >= 2, "{asked:?}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(served.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), served.wait()).await;
    assert!(status.is_ok(), "contract serve did not stop on SIGTERM");
}

/// One pact file, part of it: `--pacts FILE` and `--filter-description`.
#[test]
fn a_single_pact_file_filtered_by_description() {
    let file = pacts().join("shop.order-shop.product.json");
    let args = ["verify", "--provider", "shop.product", "--pacts", file.to_str().unwrap(), "--filter-description", "^a request"];
    let out = contract(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(PASSED), "{text}");
    assert!(text.contains("PASSED: 1 of 1 interactions passed"), "{text}");
}

/// Checkpoint 12 through the library, as `stormproof check` scores it: the
/// cases come from the shop's checkpoints.yaml.
// The guard only serializes this file's heavy tests, each on its own thread;
// no task of this runtime waits for it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_12_a_breaking_change_is_blocked() {
    // SAFETY: set before the verifier reads it.
    unsafe { std::env::set_var("PACT_DO_NOT_TRACK", "true") };
    stormproof::install_crypto_provider();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = std::path::Path::new(common::BIN);
    let shop = stormproof::systems::System::builtin("shop").unwrap();
    let checkpoints = stormproof::check::checkpoint::load(&shop).unwrap();
    let twelve = checkpoints.list.iter().find(|c| c.id == 12).unwrap();
    let stormproof::check::Scored::Contract(contract) = &twelve.scored else { panic!("checkpoint 12 is a contract checkpoint") };
    let side = stormproof::contract::ProviderSide::of(&shop).unwrap();
    let evidence = stormproof::contract::checkpoint::verify_cases(contract, &pacts(), &side, Some(bin)).await;
    let score = stormproof::check::score_contract(twelve, &evidence, false);
    assert_eq!(score.verdict, stormproof::check::Verdict::Pass, "{evidence:#?}");
    let evidence = evidence.unwrap();
    let rename = evidence.iter().find(|e| e.variant.as_deref() == Some("item-rename")).unwrap();
    assert!(rename.failures.iter().any(|f| f.contains("GET /products/1")), "{rename:#?}");
}
