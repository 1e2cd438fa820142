//! The library (seed 003) on the local platform, end to end: real
//! processes, the real embedded broker, HTTP over loopback through the
//! gateway (with a token, which the seed's httpie lines lack).

mod common;
#[path = "walkthrough/library.rs"]
mod walkthrough;

use std::time::Duration;

use common::{Shop, counter_sum, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use walkthrough::*;

async fn up() -> Shop {
    Shop::up_system("library", &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_walkthrough_and_its_compensations_run_through_the_gateway() {
    let library = up().await;
    walkthrough::run(&library).await;
    library.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_books_at_zero_requests_are_taken_and_each_is_decided_once_when_it_returns() {
    let library = up().await;
    for book in [101, 102, 103] {
        post(&library, "/donates", json!({"bookId": book})).await;
    }
    shows(&library, "/books/103", "bookStatus", json!("registered")).await;
    library.scale("library.books", 0);
    assert_eq!(library.get("/books").await.0, 503, "no books replica");
    // Donations, requests for existing, missing and doubly asked books: all accepted.
    post(&library, "/donates", json!({"bookId": 104})).await;
    let mut asked = Vec::new();
    for book in [101, 102, 103, 104, 101, 900, 901] {
        let request = post(&library, "/requests", json!({"bookId": book})).await;
        assert_eq!(request["orderStatus"], "requested");
        asked.push((request["id"].as_i64().unwrap(), book));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, requests) = library.get("/requests?orderStatus=requested").await;
    assert_eq!(requests.as_array().unwrap().len(), asked.len(), "nothing decided while books is down: {requests}");
    assert_eq!(library.get("/bookdetails/103").await.1["status"], "등록됨", "the read model answers meanwhile");

    library.scale("library.books", 1);
    eventually(Duration::from_secs(60), "every request decided", || async {
        let (_, left) = library.get("/requests?orderStatus=requested").await;
        if left.as_array().is_some_and(|l| l.is_empty()) { Ok(()) } else { Err(format!("{left}")) }
    })
    .await;
    // First request of an existing book: approved; the second of 101 and the missing ones: cancelled.
    let want = ["approved", "approved", "approved", "approved", "cancelled", "cancelled", "cancelled"];
    let why = [None, None, None, None, Some("AlreadyCheckedOut"), Some("NonexistentBook"), Some("NonexistentBook")];
    for (((id, book), want), why) in asked.iter().zip(want).zip(why) {
        let (_, request) = library.get(&format!("/requests/{id}")).await;
        assert_eq!((request["orderStatus"].as_str(), request["decisions"].as_i64()), (Some(want), Some(1)), "request {id} for book {book}: {request}");
        if let Some(why) = why {
            assert_eq!(request["decidedBy"], why, "{request}");
        }
    }
    let (_, lent) = library.get("/books?bookStatus=lent").await;
    let lent_to: Vec<i64> = lent.as_array().unwrap().iter().map(|b| b["requestId"].as_i64().unwrap()).collect();
    assert_eq!(lent_to, asked[..4].iter().map(|(id, _)| *id).collect::<Vec<_>>(), "each existing book lent to its first request");
    for book in [101, 102, 103, 104] {
        let detail = shows(&library, &format!("/bookdetails/{book}"), "status", json!("대여완료됨")).await;
        assert_eq!(detail["eventsApplied"], 2, "{detail}");
    }
    library.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_on_every_endpoint_gets_a_4xx_with_a_reason() {
    let library = up().await;
    post(&library, "/donates", json!({"bookId": 7})).await;
    let long = "t".repeat(201);
    let huge = format!(r#"{{"bookId": 1, "title": "{}"}}"#, "x".repeat(100_000));
    let cases: Vec<(Method, String, Option<String>, u16)> = vec![
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1,"#.into()), 400),
        (Method::POST, "/donates".into(), Some("[]".into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": "abc"}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1.5}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 0}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": -1}"#.into()), 400),
        // `"bookId": null` is no bookId (the kit's optional_integer): donate numbers the book.
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1e30}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 99999999999999999999}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": "9223372036854775808"}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1000000000001}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": true}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1, "title": " "}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1, "title": 5}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(format!(r#"{{"bookId": 1, "title": "{long}"}}"#)), 400),
        (Method::POST, "/donates".into(), Some(r#"{"bookId": 1, "bookStatus": "lent"}"#.into()), 400),
        (Method::POST, "/donates".into(), Some(huge), 413),
        (Method::POST, "/requests".into(), Some(r#"{"requestId": 1}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": "x"}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": 0}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": 7, "requestId": "abc"}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": 7, "orderStatus": "approved"}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": 7, "orderStatus": "cancelled"}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": 7, "orderStatus": "lent"}"#.into()), 400),
        (Method::POST, "/requests".into(), Some(format!(r#"{{"bookId": 7, "orderStatus": "{}"}}"#, "S".repeat(1000))), 400),
        (Method::POST, "/requests".into(), Some(r#"{"bookId": 7, "extra": 1}"#.into()), 400),
        (Method::GET, "/donates/abc".into(), None, 400),
        (Method::GET, "/donates/424242".into(), None, 404),
        (Method::GET, "/donates?bookId=abc".into(), None, 400),
        (Method::GET, "/requests/abc".into(), None, 400),
        (Method::GET, "/requests/424242".into(), None, 404),
        (Method::GET, "/requests?bookId=1.5".into(), None, 400),
        (Method::GET, "/requests?orderStatus=lost".into(), None, 400),
        (Method::GET, "/books/abc".into(), None, 400),
        (Method::GET, "/books/424242".into(), None, 404),
        (Method::GET, "/books/9223372036854775808".into(), None, 400),
        (Method::GET, "/books?bookStatus=borrowed".into(), None, 400),
        (Method::GET, "/bookdetails/abc".into(), None, 400),
        (Method::GET, "/bookdetails/424242".into(), None, 404),
        (Method::GET, "/bookdetails?bookStatus=x".into(), None, 400),
        (Method::POST, "/books".into(), Some(r#"{"bookId": 9}"#.into()), 405),
        (Method::PATCH, "/requests/1".into(), Some(r#"{"orderStatus": "approved"}"#.into()), 405),
        (Method::DELETE, "/bookdetails/7".into(), None, 405),
        // Paths no route serves, at the gateway and behind it.
        (Method::GET, "/nowhere".into(), None, 404),
        (Method::GET, "/books/7/pages".into(), None, 404),
        (Method::GET, "/auth/token".into(), None, 405),
    ];
    for (method, path, body, expect) in &cases {
        let mut request = library.http.request(method.clone(), format!("{}{path}", library.gateway)).bearer_auth(library.token());
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let shown: String = body.as_deref().unwrap_or("").chars().take(80).collect();
        assert_eq!(status, *expect, "{method} {path} {shown} → {text}");
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(answer["reason"].as_str().is_some_and(|r| !r.is_empty()), "{method} {path} {shown}: no reason in {text}");
    }
    // A 405 still says which methods the path takes.
    let response = library.http.delete(format!("{}/bookdetails/7", library.gateway)).bearer_auth(library.token()).send().await.unwrap();
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"), "{response:?}");
    // No content type at all.
    let response = library.http.post(format!("{}/donates", library.gateway)).bearer_auth(library.token()).body(r#"{"bookId": 1}"#).send().await.unwrap();
    assert_eq!(response.status(), 400);
    // Poison on book 7's partition: not JSON, an unknown type, a decision
    // without its request, a string id, an id out of range, a request that
    // does not exist. Each is skipped; none blocks the partition.
    for poison in [
        "not json".to_string(),
        json!({"eventType": "BookReturned", "id": "p1", "bookId": 7}).to_string(),
        json!({"eventType": "NonexistentBook", "id": "p2", "bookId": 7}).to_string(),
        json!({"eventType": "CheckoutRequested", "id": "p3", "bookId": "seven", "requestId": 1}).to_string(),
        json!({"eventType": "BookDonated", "id": "p4", "donateId": 1, "bookId": 9_999_999_999_999_i64}).to_string(),
        json!({"eventType": "BookCheckedOut", "id": "p5", "bookId": 7, "requestId": 424242, "bookStatus": "lent"}).to_string(),
    ] {
        publish(&library, "7", &poison).await;
    }
    // Nothing above wedged anything: the saga still runs end to end.
    shows(&library, "/books/7", "bookStatus", json!("registered")).await;
    let request = post(&library, "/requests", json!({"bookId": 7})).await;
    shows(&library, &format!("/requests/{}", request["id"]), "orderStatus", json!("approved")).await;
    shows(&library, "/bookdetails/7", "status", json!("대여완료됨")).await;
    let skipped = counter_sum(&library.http, &library.replica_addresses("request"), "stormproof_events_skipped_total", "").await;
    assert!(skipped >= 4, "request skipped the poison meant for it: {skipped}");
    library.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_library_passes_every_applicable_checkpoint_with_evidence() {
    // A short autoscaler period and window, as for the shop's check.
    let library = Shop::up_system("library", &["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"]).await;
    let reports = tempfile::tempdir().unwrap();
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/library");
    let out = library.cli(&["check", "library", "--lang", "ko", "--pacts", pacts, "--reports", reports.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(stormproof::exit::PASSED), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("장애격리"), "Korean checkpoint names: {stdout}");
    let run = std::fs::read_dir(reports.path()).unwrap().next().unwrap().unwrap().path();
    let card: Value = serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap();
    let checkpoint = |id: u64| card["checkpoints"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    for id in [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13] {
        assert_eq!(checkpoint(id)["verdict"], "pass", "checkpoint {id}: {card:#}");
    }
    assert_eq!(checkpoint(4)["verdict"], "not applicable", "no synchronous call in seed 003: {card:#}");
    let saga = checkpoint(1)["evidence"].as_str().unwrap().to_string();
    assert!(saga.contains("GET /requests/") && saga.contains("→ 200"), "{saga}");
    assert!(checkpoint(6)["evidence"].as_str().unwrap().starts_with("POST /donates 100.00 %"), "{card:#}");
    let contract = checkpoint(12)["evidence"].as_str().unwrap().to_string();
    assert!(contract.contains("drop-request-id blocked"), "{contract}");
    library.down();
}
