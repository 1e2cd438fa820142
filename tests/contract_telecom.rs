//! The telecom's message pacts (`contracts/telecom/`) against its consumers'
//! real event handlers: every message a consumer's pact states is one its
//! handler reads — and with the amount bill's breaking variant publishes
//! (`billAmt` as the repository's decimal string "100.00") or without the
//! correlation key the handler refuses it as malformed, so the pact pins
//! down what the consumer needs.
//!
//! The pacts naming bill as provider (pay's HTTP lookup and its BillCreated,
//! mypage's BillCompleted and BillCanceled) are built here with
//! pact_consumer against the consumers' real code — pay's client and model
//! on the Pact mock server, mypage's handler — and must be the committed
//! ones (`STORMPROOF_WRITE_PACTS=1` rewrites them). Then bill itself,
//! verified against them: as it is it passes, `amount-as-string` is blocked
//! (checkpoint 12); and pay, against bill's pact on its payment events.

mod common;

use common::pact::{event, feed};

use std::path::{Path, PathBuf};
use std::time::Duration;

use pact_consumer::mock_server::StartMockServerAsync;
use pact_consumer::prelude::*;
use serde_json::{Value, json};
use stormproof::exit::{FAILED, PASSED};
use stormproof::systems::kit::{HandleOutcome, Poison, Upstream};
use stormproof::systems::telecom::{bill, mypage, pay};

fn pacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/telecom")
}

async fn apply(consumer: &str, db: PathBuf, payload: &[u8]) -> HandleOutcome {
    match consumer {
        "telecom.bill" => bill::apply_event(&db, payload).await,
        "telecom.pay" => pay::apply_event(&db, payload).await,
        "telecom.mypage" => mypage::apply_event(&db, payload).await,
        other => panic!("no handler for consumer {other}"),
    }
    .unwrap()
}

fn message_pacts() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(pacts()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let pact: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let consumer = pact["consumer"]["name"].as_str().unwrap().to_string();
            for interaction in pact["interactions"].as_array().unwrap() {
                if interaction["type"] == "Asynchronous/Messages" {
                    found.push((consumer.clone(), interaction["contents"]["content"].clone()));
                }
            }
        }
    }
    found.sort_by_key(|(consumer, message)| (consumer.clone(), message["eventType"].to_string()));
    found
}

#[tokio::test]
async fn every_pact_message_is_read_by_its_consumers_handler_and_needs_its_order_id_and_an_integer_amount() {
    let pacts = message_pacts();
    let shown: Vec<String> = pacts.iter().map(|(c, m)| format!("{c} {}", m["eventType"].as_str().unwrap())).collect();
    assert_eq!(
        shown,
        ["telecom.bill BillPayed", "telecom.bill OrderPlaced", "telecom.bill PayCanceled", "telecom.mypage BillCanceled", "telecom.mypage BillCompleted", "telecom.mypage OrderPlaced", "telecom.pay BillCreated"]
    );
    for (consumer, message) in pacts {
        let dir = tempfile::tempdir().unwrap();
        let outcome = apply(&consumer, dir.path().join("a.db"), message.to_string().as_bytes()).await;
        // bill has no bill 1 in an empty store: understood, and skipped as unknown.
        let understood = matches!(outcome, HandleOutcome::Applied | HandleOutcome::Skipped(Poison::UnknownEntity(_)));
        assert!(understood, "{consumer} did not apply {message}: {outcome:?}");
        let mut without = message.clone();
        without.as_object_mut().unwrap().remove("orderId");
        let outcome = apply(&consumer, dir.path().join("b.db"), without.to_string().as_bytes()).await;
        assert!(matches!(outcome, HandleOutcome::Skipped(Poison::Malformed(_))), "{consumer} without orderId: {outcome:?}");
        for amount in ["billAmt", "payAmt", "monthlyFee"] {
            if message.get(amount).is_some() {
                let mut decimal = message.clone();
                decimal[amount] = json!("100.00");
                let outcome = apply(&consumer, dir.path().join("c.db"), decimal.to_string().as_bytes()).await;
                assert!(matches!(outcome, HandleOutcome::Skipped(Poison::Malformed(_))), "{consumer} with {amount} \"100.00\": {outcome:?}");
            }
        }
    }
}

/// The payment flow through bill's real handler, one store: a payment
/// completes the bill, its cancellation rolls it back once, a repeat or a
/// stranger's cancellation changes nothing.
#[tokio::test]
async fn bill_completes_a_paid_bill_and_rolls_back_only_its_current_payment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bill.db");
    let event = |fields: Value| {
        let mut doc = json!({"id": uuid::Uuid::new_v4().to_string(), "timestamp": "2026-01-15T00:00:00Z"});
        doc.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        doc.to_string()
    };
    let placed = json!({"eventType": "OrderPlaced", "orderId": 7, "userName": "kim", "phoneNumber": "010", "plan": "basic", "monthlyFee": 50000});
    assert_eq!(apply("telecom.bill", db.clone(), event(placed.clone()).as_bytes()).await, HandleOutcome::Applied);
    assert_eq!(apply("telecom.bill", db.clone(), event(placed).as_bytes()).await, HandleOutcome::Ignored, "one bill per order and month");
    let pay = |kind: &str, pay_id: i64| json!({"eventType": kind, "payId": pay_id, "billId": 1, "orderId": 7, "useYm": "202601", "userName": "kim", "payAmt": 50000,
                                               "workType": if kind == "BillPayed" { "PAY" } else { "CANCEL" }});
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("PayCanceled", 1)).as_bytes()).await, HandleOutcome::Ignored, "nothing paid yet");
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("BillPayed", 1)).as_bytes()).await, HandleOutcome::Applied);
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("BillPayed", 2)).as_bytes()).await, HandleOutcome::Ignored, "already paid");
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("PayCanceled", 2)).as_bytes()).await, HandleOutcome::Ignored, "not its payment");
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("PayCanceled", 1)).as_bytes()).await, HandleOutcome::Applied, "rolled back");
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("PayCanceled", 1)).as_bytes()).await, HandleOutcome::Ignored, "rolled back once");
    assert_eq!(apply("telecom.bill", db.clone(), event(pay("BillPayed", 3)).as_bytes()).await, HandleOutcome::Applied, "paid again");
}

/// A bill's fields as bill sends them; `billState` is one of the two its
/// consumers decode.
fn bill_fields(state: &str) -> JsonPattern {
    json_pattern!({
        "billId": like!(1), "orderId": like!(1), "useYm": like!("202601"), "userName": like!("kim"),
        "phoneNumber": like!("010-1234-5678"), "billAmt": like!(50000), "billState": term!("^(Unpaid|Paid)$", state)
    })
}

fn bill_event(event_type: &str, state: &str, pay_id: bool) -> JsonPattern {
    let mut fields = bill_fields(state);
    if let (JsonPattern::Object(all), true) = (&mut fields, pay_id) {
        all.insert("payId".into(), like!(1).into());
    }
    event(event_type, fields)
}

/// Pact files are written to a scratch directory, then compared with the
/// committed ones (tests in this file read those at the same time).
fn scratch() -> tempfile::TempDir {
    // SAFETY: set before any pact is built; every test here sets the same value.
    unsafe { std::env::set_var("PACT_DO_NOT_TRACK", "true") };
    stormproof::install_crypto_provider();
    tempfile::tempdir().unwrap()
}

/// The pact `name` built in `scratch` is the committed one (its
/// interactions; the metadata names the writer's version), or, with
/// `STORMPROOF_WRITE_PACTS=1`, becomes it.
fn is_committed(scratch: &Path, name: &str) {
    let built = scratch.join(name);
    if std::env::var_os("STORMPROOF_WRITE_PACTS").is_some_and(|v| v == "1") {
        std::fs::copy(&built, pacts().join(name)).unwrap();
        return;
    }
    let read = |path: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default() };
    let interactions = |pact: Value| {
        let mut all = pact["interactions"].as_array().cloned().unwrap_or_default();
        all.sort_by_key(|i| i["description"].to_string());
        all
    };
    assert_eq!(interactions(read(&built)), interactions(read(&pacts().join(name))), "contracts/telecom/{name} is not what the consumer test builds: rerun with STORMPROOF_WRITE_PACTS=1");
}

/// pay looks a bill up with `GET /bills/{billId}` through its real client
/// and model; the id is the one bill gave the bill its provider state set
/// up (`path_from_provider_state`): bill starts with none. And pay's view
/// reads BillCreated.
#[tokio::test]
async fn pay_looks_up_an_unpaid_bill_and_reads_bill_created() {
    let dir = scratch();
    let mut builder = PactBuilderAsync::new_v4("telecom.pay", "telecom.bill");
    builder.output_dir(dir.path());
    builder
        .interaction("a request for an unpaid bill", "", |mut i| async move {
            i.given("an Unpaid bill of 50000 won exists");
            i.request.get().path_from_provider_state("/bills/${billId}", "/bills/1");
            let mut body = bill_fields("Unpaid");
            if let JsonPattern::Object(fields) = &mut body {
                fields.insert("id".into(), like!(1).into());
            }
            i.response.ok().content_type("application/json").json_body(body);
            i
        })
        .await;
    let server = builder.start_mock_server_async(None, None).await;
    let client = Upstream::new("bill", server.url().as_str(), Duration::from_secs(5));
    let got: bill::Bill = client.get_json("/bills/1").await.expect("pay reads the bill");
    assert_eq!((got.bill_id, got.bill_state.as_str(), got.bill_amt), (1, "Unpaid", 50000), "what pay needs to pay it");
    drop(server);

    let mut builder = PactBuilder::new_v4("telecom.pay", "telecom.bill");
    builder.with_output_dir(dir.path());
    builder.message_interaction("a BillCreated event", |mut i| {
        i.json_body(bill_event("BillCreated", "Unpaid", false));
        i
    });
    feed(&builder, |db, payload| async move { pay::apply_event(&db, &payload).await }).await;
    is_committed(dir.path(), "telecom.pay-telecom.bill.json");
}

/// mypage's history rows for a payment and its cancellation, from its real handler.
#[tokio::test]
async fn mypage_reads_bill_completed_and_bill_canceled() {
    let dir = scratch();
    let mut builder = PactBuilder::new_v4("telecom.mypage", "telecom.bill");
    builder.with_output_dir(dir.path());
    builder
        .message_interaction("a BillCompleted event", |mut i| {
            i.json_body(bill_event("BillCompleted", "Paid", true));
            i
        })
        .message_interaction("a BillCanceled event", |mut i| {
            i.json_body(bill_event("BillCanceled", "Unpaid", true));
            i
        });
    feed(&builder, |db, payload| async move { mypage::apply_event(&db, &payload).await }).await;
    is_committed(dir.path(), "telecom.mypage-telecom.bill.json");
}

fn verify_bill(pacts: &Path, variant: Option<&str>) -> (Option<i32>, String) {
    verify("telecom.bill", pacts, variant)
}

/// One verification at a time: each starts a broker and services, and the
/// machine is shared.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn verify(provider: &str, pacts: &Path, variant: Option<&str>) -> (Option<i32>, String) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["contract", "verify", "--provider", provider, "--pacts", pacts.to_str().unwrap()];
    args.extend(variant.map(|v| ["--variant", v]).into_iter().flatten());
    let out = std::process::Command::new(common::BIN).args(&args).current_dir(dir.path()).env("PACT_DO_NOT_TRACK", "true").env_remove("STORMPROOF_VARIANT").output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// bill against all its consumers' pacts, as checkpoint 12 runs it: the
/// lookup's state is set up by an OrderPlaced (bill starts with no bills),
/// the payment events' triggers pay the bill bill issued.
#[test]
fn bill_honours_pay_and_mypage_and_amount_as_string_is_blocked() {
    let (code, out) = verify_bill(&pacts(), None);
    assert_eq!(code, Some(PASSED), "{out}");
    for line in [
        "ok   telecom.bill ← telecom.pay: a request for an unpaid bill [GET /bills/${billId}] given an Unpaid bill of 50000 won exists",
        "ok   telecom.bill ← telecom.pay: a BillCreated event [message]",
        "ok   telecom.bill ← telecom.mypage: a BillCompleted event [message]",
        "ok   telecom.bill ← telecom.mypage: a BillCanceled event [message]",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    let (code, out) = verify_bill(&pacts(), Some("amount-as-string"));
    assert_eq!(code, Some(FAILED), "{out}");
    assert!(out.contains("BodyMismatch at $.billAmt"), "the mismatch names the field: {out}");
    assert!(out.contains("ok   telecom.bill ← telecom.pay: a request for an unpaid bill"), "the HTTP API still sends whole won: {out}");

    // The lookup asks for the bill its state set up, not the pact's example
    // id: with an example bill 999 bill never issues, it still passes.
    let dir = tempfile::tempdir().unwrap();
    let pact = std::fs::read_to_string(pacts().join("telecom.pay-telecom.bill.json")).unwrap().replace("\"path\": \"/bills/1\"", "\"path\": \"/bills/999\"");
    assert!(pact.contains("/bills/999"));
    std::fs::write(dir.path().join("telecom.pay-telecom.bill.json"), pact).unwrap();
    let (code, out) = verify_bill(dir.path(), None);
    assert_eq!(code, Some(PASSED), "{out}");
}

/// pay against bill's pact on its payment events: the triggers wait for
/// the bill in pay's view (bill, started as pay's upstream, issues it on an
/// OrderPlaced), pay it by the id captured, and cancel by the payment's.
#[test]
fn pay_honours_bill() {
    let (code, out) = verify("telecom.pay", &pacts(), None);
    assert_eq!(code, Some(PASSED), "{out}");
    assert!(out.contains("ok   telecom.pay ← telecom.bill: a BillPayed event [message]") && out.contains("ok   telecom.pay ← telecom.bill: a PayCanceled event [message]"), "{out}");
}

/// Checkpoint 12 as `stormproof check telecom` scores it: its cases from
/// the telecom's checkpoints.yaml, against the pacts compiled into the
/// binary (the new ones included).
// The guard only serializes this file's heavy tests, each on its own thread;
// no task of this runtime waits for it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_12_holds_with_every_pact_on_bill() {
    // SAFETY: set before the verifier reads it.
    unsafe { std::env::set_var("PACT_DO_NOT_TRACK", "true") };
    stormproof::install_crypto_provider();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let telecom = stormproof::systems::System::builtin("telecom").unwrap();
    let checkpoints = stormproof::check::checkpoint::load(&telecom).unwrap();
    let twelve = checkpoints.list.iter().find(|c| c.id == 12).unwrap();
    let stormproof::check::Scored::Contract(contract) = &twelve.scored else { panic!("checkpoint 12 is a contract checkpoint") };
    let scratch = tempfile::tempdir().unwrap();
    let pacts = telecom.contracts_dir(scratch.path()).unwrap();
    let side = stormproof::contract::ProviderSide::of(&telecom).unwrap();
    let evidence = stormproof::contract::checkpoint::verify_cases(contract, &pacts, &side, Some(Path::new(common::BIN))).await;
    let score = stormproof::check::score_contract(twelve, &evidence, false);
    assert_eq!(score.verdict, stormproof::check::Verdict::Pass, "{evidence:#?}");
    let evidence = evidence.unwrap();
    let interactions = |e: &stormproof::contract::checkpoint::Evidence| e.verification.as_ref().map_or(0, |v| v.interactions.len());
    assert!(evidence.iter().all(|e| interactions(e) == 4), "pay's lookup and BillCreated, mypage's BillCompleted and BillCanceled: {evidence:#?}");
}
