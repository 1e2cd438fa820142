//! The telecom's message pacts (`contracts/telecom/`) against its consumers'
//! real event handlers: every message a consumer's pact states is one its
//! handler reads — and with the amount bill's breaking variant publishes
//! (`billAmt` as the repository's decimal string "100.00") or without the
//! correlation key the handler refuses it as malformed, so the pact pins
//! down what the consumer needs.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stormproof::systems::kit::{HandleOutcome, Poison};
use stormproof::systems::telecom::{bill, mypage, pay};

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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/telecom");
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
    found.sort_by_key(|(consumer, message)| (consumer.clone(), message["eventType"].to_string()));
    found
}

#[tokio::test]
async fn every_pact_message_is_read_by_its_consumers_handler_and_needs_its_order_id_and_an_integer_amount() {
    let pacts = message_pacts();
    let shown: Vec<String> = pacts.iter().map(|(c, m)| format!("{c} {}", m["eventType"].as_str().unwrap())).collect();
    assert_eq!(shown, ["telecom.bill BillPayed", "telecom.bill OrderPlaced", "telecom.bill PayCanceled", "telecom.mypage OrderPlaced", "telecom.pay BillCreated"]);
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
