//! The library's message pacts (`contracts/library/`): every message a
//! consumer's pact states is one its real handler applies — and without the
//! field the breaking variant drops (`requestId` of the decisions) request
//! refuses it as malformed, so the pact pins down what the compensation
//! needs. Then the real provider, verified against them: books as it is
//! passes, `drop-request-id` is blocked (checkpoint 12).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use stormproof::exit::{FAILED, PASSED};
use stormproof::systems::kit::{HandleOutcome, Poison};
use stormproof::systems::library::{bookdetail, books, request};

fn pacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/library")
}

async fn apply(consumer: &str, db: PathBuf, message: &Value) -> HandleOutcome {
    let payload = message.to_string();
    match consumer {
        "library.request" => {
            // The request a decision names exists, for the book it names.
            if let (Some(book), Some(id)) = (message["bookId"].as_i64(), message["requestId"].as_i64()) {
                for _ in 0..id {
                    request::seed_request(&db, book).await.unwrap();
                }
            }
            request::apply_event(&db, payload.as_bytes()).await
        }
        "library.books" => books::apply_event(&db, payload.as_bytes()).await,
        "library.bookdetail" => bookdetail::apply_event(&db, payload.as_bytes()).await,
        other => panic!("no handler for consumer {other}"),
    }
    .unwrap()
}

fn message_pacts() -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(pacts()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let pact: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let consumer = pact["consumer"]["name"].as_str().unwrap().to_string();
            for interaction in pact["interactions"].as_array().unwrap() {
                assert_eq!(interaction["type"], "Asynchronous/Messages", "{path:?}");
                found.push((consumer.clone(), interaction["description"].as_str().unwrap().to_string(), interaction["contents"]["content"].clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_pact_message_is_applied_by_its_consumers_handler_and_needs_its_ids() {
    let pacts = message_pacts();
    assert_eq!(pacts.len(), 7, "BookDonated and CheckoutRequested to books; three decisions to request; BookRegistered and BookCheckedOut to bookdetail");
    for (consumer, description, message) in pacts {
        let dir = tempfile::tempdir().unwrap();
        let outcome = apply(&consumer, dir.path().join("a.db"), &message).await;
        assert_eq!(outcome, HandleOutcome::Applied, "{consumer} did not apply {description}: {message}");
        // The field each consumer cannot do without: the request to decide, or the book.
        let field = if consumer == "library.request" { "requestId" } else { "bookId" };
        let mut without = message.clone();
        without.as_object_mut().unwrap().remove(field);
        let outcome = apply(&consumer, dir.path().join("b.db"), &without).await;
        assert!(matches!(outcome, HandleOutcome::Skipped(Poison::Malformed(_))), "{consumer} {description} without {field}: {outcome:?}");
    }
}

fn verify(provider: &str, variant: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let pacts = pacts();
    let mut args = vec!["contract", "verify", "--provider", provider, "--pacts", pacts.to_str().unwrap()];
    if let Some(variant) = variant {
        args.extend(["--variant", variant]);
    }
    let out = std::process::Command::new(common::BIN)
        .args(&args)
        .current_dir(dir.path())
        .env("PACT_DO_NOT_TRACK", "true")
        .env_remove("STORMPROOF_VARIANT")
        .output()
        .expect("run stormproof");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("stormproof {args:?}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn every_provider_honours_its_consumers_and_a_books_without_request_id_is_blocked() {
    for provider in ["library.donate", "library.request", "library.books"] {
        let (code, out) = verify(provider, None);
        assert_eq!(code, PASSED, "{provider}: {out}");
    }
    let (code, out) = verify("library.books", Some("drop-request-id"));
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("FAIL library.books ← library.request: a NonexistentBook event [message]"), "{out}");
    assert!(out.contains("ok   library.books ← library.bookdetail: a BookRegistered event [message]"), "the rest still holds: {out}");
}
