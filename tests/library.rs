//! The library (seed 003) on the local platform, end to end: real
//! processes, the real embedded broker, HTTP over loopback through the
//! gateway (with a token, which the seed's httpie lines lack).

mod common;

use std::time::{Duration, Instant};

use common::{Shop, counter_sum, eventually};
use reqwest::Method;
use serde_json::{Value, json};

async fn up() -> Shop {
    Shop::up_system("library", &[]).await
}

/// Waits until `GET path` answers 200 with `field` equal to `want`.
async fn shows(library: &Shop, path: &str, field: &str, want: Value) -> Value {
    eventually(Duration::from_secs(30), &format!("{path} showing {field} = {want}"), || async {
        let (status, body) = library.get(path).await;
        if status == 200 && body[field] == want { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await
}

async fn post(library: &Shop, path: &str, body: Value) -> Value {
    let (status, answer) = library.request(Method::POST, path, Some(body.clone())).await;
    assert_eq!(status, 201, "POST {path} {body} → {answer}");
    answer
}

/// Every event on the library topic, with its partition and Kafka key (read
/// by a consumer of the test's own, which disturbs none of the services' groups).
async fn events_on_the_topic(library: &Shop, until: impl Fn(&[(i32, String, Value)]) -> bool) -> Vec<(i32, String, Value)> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", library.state["kafka"].as_str().unwrap())
        .set("group.id", format!("stormproof-test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..3 {
        partitions.add_partition_offset("library", partition, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await else {
            if until(&seen) {
                break;
            }
            continue;
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        seen.push((message.partition(), key, serde_json::from_slice(message.payload().unwrap()).unwrap()));
    }
    seen
}

/// Publishes `event` again, as a broker redelivery would: same id, same key.
async fn redeliver(library: &Shop, event: &Value) {
    publish(library, &event["bookId"].to_string(), &event.to_string()).await;
}

/// Publishes `payload` with Kafka key `key` on the library topic.
async fn publish(library: &Shop, key: &str, payload: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", library.state["kafka"].as_str().unwrap()).create().unwrap();
    let kind = serde_json::from_str::<Value>(payload).ok().and_then(|v| v["eventType"].as_str().map(str::to_string));
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header { key: "type", value: kind.as_deref() });
    producer.send(FutureRecord::to("library").key(key).payload(payload).headers(headers), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_walkthrough_and_its_compensations_run_through_the_gateway() {
    let library = up().await;
    // Step 1, httpie's `bookId=1`: a string. books registers it; bookdetail shows "등록됨".
    let donation = post(&library, "/donates", json!({"bookId": "1"})).await;
    assert_eq!(donation["bookId"], 1, "{donation}");
    shows(&library, "/books/1", "bookStatus", json!("registered")).await;
    let detail = shows(&library, "/bookdetails/1", "status", json!("등록됨")).await;
    assert_eq!((detail["bookStatus"].clone(), detail["eventsApplied"].clone()), (json!("registered"), json!(1)), "{detail}");

    // Steps 3–5: a request for book 1 is accepted, approved ([P]), the book lent.
    let request = post(&library, "/requests", json!({"bookId": "1", "requestId": "1", "orderStatus": "requested"})).await;
    assert_eq!((request["id"].clone(), request["requestId"].clone(), request["orderStatus"].clone()), (json!(1), json!(1), json!("requested")), "{request}");
    let decided = shows(&library, "/requests/1", "orderStatus", json!("approved")).await;
    assert_eq!((decided["decidedBy"].clone(), decided["decisions"].clone()), (json!("BookCheckedOut"), json!(1)), "{decided}");
    let book = shows(&library, "/books/1", "bookStatus", json!("lent")).await;
    assert_eq!(book["requestId"], 1, "{book}");
    // CQRS: the checkout reaches the read model as "대여완료됨".
    let detail = shows(&library, "/bookdetails/1", "status", json!("대여완료됨")).await;
    assert_eq!((detail["bookStatus"].clone(), detail["eventsApplied"].clone()), (json!("lent"), json!(2)), "{detail}");

    // Steps 6–9: book 2 does not exist; NonexistentBook cancels the request.
    let missing = post(&library, "/requests", json!({"bookId": "2", "requestId": "2", "orderStatus": "requested"})).await;
    assert_eq!(missing["id"], 2, "{missing}");
    let cancelled = shows(&library, "/requests/2", "orderStatus", json!("cancelled")).await;
    assert_eq!((cancelled["decidedBy"].clone(), cancelled["decisions"].clone()), (json!("NonexistentBook"), json!(1)), "{cancelled}");
    assert_eq!(library.get("/books/2").await.0, 404, "books has no book 2");

    // [P] A lent book: AlreadyCheckedOut cancels the second request.
    let again = post(&library, "/requests", json!({"bookId": 1})).await;
    let id = again["id"].as_i64().unwrap();
    let cancelled = shows(&library, &format!("/requests/{id}"), "orderStatus", json!("cancelled")).await;
    assert_eq!(cancelled["decidedBy"], "AlreadyCheckedOut", "{cancelled}");
    assert_eq!(library.get("/books/1").await.1["requestId"], 1, "still lent to the first request");

    // [P] A bookId is registered once: a second donation is a donation, not a second book.
    post(&library, "/donates", json!({"bookId": 1, "title": "again"})).await;
    let (_, donations) = library.get("/donates?bookId=1").await;
    assert_eq!(donations.as_array().unwrap().len(), 2, "{donations}");
    // Without a bookId donate numbers the next book ([P]).
    let fresh = post(&library, "/donates", json!({"title": "numbered"})).await;
    assert_eq!(fresh["bookId"], 2, "the next after the highest donated: {fresh}");
    shows(&library, "/bookdetails/2", "status", json!("등록됨")).await;

    // The topic: every event keyed by its bookId (one partition per book),
    // with the envelope and the named ids; book 1 registered exactly once.
    let events = events_on_the_topic(&library, |seen| seen.iter().filter(|(_, _, e)| e["eventType"] == "BookRegistered").count() >= 2).await;
    for (partition, key, event) in &events {
        assert_eq!(key, &event["bookId"].to_string(), "{event}");
        assert!(event["id"].is_string() && event["timestamp"].is_string(), "{event}");
        let same_book = events.iter().filter(|(_, k, _)| k == key);
        assert!(same_book.clone().all(|(p, _, _)| p == partition), "book {key} on one partition");
    }
    let of = |kind: &str, book: i64| events.iter().filter(|(_, _, e)| e["eventType"] == kind && e["bookId"] == book).map(|(_, _, e)| e.clone()).collect::<Vec<_>>();
    assert_eq!(of("BookDonated", 1).len(), 2);
    assert_eq!(of("BookRegistered", 1).len(), 1, "registered once");
    assert_eq!(of("NonexistentBook", 2)[0]["requestId"], 2, "the compensation names its request");

    // Redelivery: the same BookCheckedOut and CheckoutRequested again decide nothing twice.
    redeliver(&library, &of("BookCheckedOut", 1)[0]).await;
    let first_request = events.iter().find(|(_, _, e)| e["eventType"] == "CheckoutRequested" && e["requestId"] == 1).unwrap().2.clone();
    redeliver(&library, &first_request).await;
    for (service, kind) in [("request", "BookCheckedOut"), ("bookdetail", "BookCheckedOut"), ("books", "CheckoutRequested")] {
        let addresses = library.replica_addresses(service);
        eventually(Duration::from_secs(30), &format!("{service} skipping the redelivered {kind}"), || async {
            let skipped = counter_sum(&library.http, &addresses, "stormproof_events_duplicate_total", kind).await;
            if skipped >= 1 { Ok(()) } else { Err(format!("{skipped} duplicates")) }
        })
        .await;
    }
    let (_, first) = library.get("/requests/1").await;
    assert_eq!((first["orderStatus"].clone(), first["decisions"].clone()), (json!("approved"), json!(1)), "{first}");
    assert_eq!(library.get("/bookdetails/1").await.1["eventsApplied"], 2, "bookdetail applied the redelivered BookCheckedOut once");

    // The seed's CQRS evidence: with every other service at 0, the read model answers.
    for service in ["donate", "request", "books"] {
        library.scale(&format!("library.{service}"), 0);
    }
    for path in ["/donates", "/requests", "/books"] {
        assert_eq!(library.get(path).await.0, 503, "{path} is down");
    }
    let (status, rows) = library.get("/bookdetails").await;
    assert_eq!(status, 200, "{rows}");
    let statuses: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["대여완료됨", "등록됨"], "{rows}");
    taxi_style_health(&library, "bookdetail").await;
    for service in ["donate", "request", "books"] {
        library.scale(&format!("library.{service}"), if service == "donate" { 3 } else { 1 });
    }
    for service in ["donate", "request", "books", "bookdetail"] {
        taxi_style_health(&library, service).await;
    }
    library.down();
}

/// The course's probes find a Spring-like health endpoint on the service.
async fn taxi_style_health(library: &Shop, service: &str) {
    let address = &library.replica_addresses(service)[0];
    let health: Value = library.http.get(format!("http://{address}/actuator/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "UP"}), "{service}");
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
