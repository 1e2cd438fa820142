//! The taxi's message pacts (`contracts/taxi/`) against its consumers' real
//! event handlers: every message a consumer's pact states is one its
//! handler reads — and without the field the breaking variant drops
//! (`callId` of UpdatedStatus) the handler refuses it as malformed, so the
//! pact pins down what the consumer needs. And payment, the provider of
//! the HTTP pacts, verified by `stormproof contract verify` with its
//! provider state set up as `contracts/taxi/states.yaml` says.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use stormproof::systems::kit::{HandleOutcome, Poison};
use stormproof::systems::taxi::{call, calllist, driver};

async fn apply(consumer: &str, db: PathBuf, payload: &[u8]) -> HandleOutcome {
    match consumer {
        "taxi.call" => call::apply_event(&db, payload).await,
        "taxi.driver" => driver::apply_event(&db, payload).await,
        "taxi.calllist" => calllist::apply_event(&db, payload).await,
        other => panic!("no handler for consumer {other}"),
    }
    .unwrap()
}

fn message_pacts() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/taxi");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
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
    found
}

#[tokio::test]
async fn every_pact_message_is_read_by_its_consumers_handler_and_needs_its_call_id() {
    let pacts = message_pacts();
    assert_eq!(pacts.len(), 4, "CalledTaxi to driver and calllist, UpdatedStatus to call and calllist");
    for (consumer, message) in pacts {
        let dir = tempfile::tempdir().unwrap();
        let outcome = apply(&consumer, dir.path().join("a.db"), message.to_string().as_bytes()).await;
        // call has no call 1 in an empty store: understood, and skipped as unknown.
        let understood = matches!(outcome, HandleOutcome::Applied | HandleOutcome::Skipped(Poison::UnknownEntity(_)));
        assert!(understood, "{consumer} did not apply {message}: {outcome:?}");
        let mut without = message.clone();
        without.as_object_mut().unwrap().remove("callId");
        let outcome = apply(&consumer, dir.path().join("b.db"), without.to_string().as_bytes()).await;
        assert!(matches!(outcome, HandleOutcome::Skipped(Poison::Malformed(_))), "{consumer} without callId: {outcome:?}");
    }
}

fn verify_payment(pacts: &Path) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["contract", "verify", "--provider", "taxi.payment", "--pacts", pacts.to_str().unwrap()])
        .current_dir(dir.path())
        .env("PACT_DO_NOT_TRACK", "true")
        .env_remove("STORMPROOF_VARIANT")
        .output()
        .unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn payment_honours_call_and_driver_with_its_provider_state_set_up_as_data() {
    let pacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/taxi");
    let (code, out) = verify_payment(&pacts);
    assert_eq!(code, Some(stormproof::exit::PASSED), "{out}");
    assert!(out.contains("ok   taxi.payment ← taxi.call: a fare registered for a new call [POST /payments]"), "{out}");
    assert!(out.contains("ok   taxi.payment ← taxi.driver: the settlement of call 2's fare [GET /payments/settleCost] given call 2's fare is registered"), "{out}");

    // payment starts with no fares: only the set-up makes settling call 2 answer 500, not 404.
}
