//! The library seed's walkthrough and its compensations through the
//! gateway, on whatever store the library was brought up with
//! (tests/library.rs: SQLite; tests/postgres.rs).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Shop, counter_sum, eventually};

/// Waits until `GET path` answers 200 with `field` equal to `want`.
pub async fn shows(library: &Shop, path: &str, field: &str, want: Value) -> Value {
    eventually(Duration::from_secs(30), &format!("{path} showing {field} = {want}"), || async {
        let (status, body) = library.get(path).await;
        if status == 200 && body[field] == want { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await
}

pub async fn post(library: &Shop, path: &str, body: Value) -> Value {
    let (status, answer) = library.request(Method::POST, path, Some(body.clone())).await;
    assert_eq!(status, 201, "POST {path} {body} → {answer}");
    answer
}

/// Every event on the library topic, with its partition and Kafka key (read
/// by a consumer of the test's own, which disturbs none of the services' groups).
pub async fn events_on_the_topic(library: &Shop, until: impl Fn(&[(i32, String, Value)]) -> bool) -> Vec<(i32, String, Value)> {
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
pub async fn redeliver(library: &Shop, event: &Value) {
    publish(library, &event["bookId"].to_string(), &event.to_string()).await;
}

/// Publishes `payload` with Kafka key `key` on the library topic.
pub async fn publish(library: &Shop, key: &str, payload: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", library.state["kafka"].as_str().unwrap()).create().unwrap();
    let kind = serde_json::from_str::<Value>(payload).ok().and_then(|v| v["eventType"].as_str().map(str::to_string));
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header { key: "type", value: kind.as_deref() });
    producer.send(FutureRecord::to("library").key(key).payload(payload).headers(headers), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

/// Seed 003: donate, request, rent, return, and the compensations.
pub async fn run(library: &Shop) {
    // Step 1, httpie's `bookId=1`: a string. books registers it; bookdetail shows "등록됨".
    let donation = post(library, "/donates", json!({"bookId": "1"})).await;
    assert_eq!(donation["bookId"], 1, "{donation}");
    shows(library, "/books/1", "bookStatus", json!("registered")).await;
    let detail = shows(library, "/bookdetails/1", "status", json!("등록됨")).await;
    assert_eq!((detail["bookStatus"].clone(), detail["eventsApplied"].clone()), (json!("registered"), json!(1)), "{detail}");

    // Steps 3–5: a request for book 1 is accepted, approved ([P]), the book lent.
    let request = post(library, "/requests", json!({"bookId": "1", "requestId": "1", "orderStatus": "requested"})).await;
    assert_eq!((request["id"].clone(), request["requestId"].clone(), request["orderStatus"].clone()), (json!(1), json!(1), json!("requested")), "{request}");
    let decided = shows(library, "/requests/1", "orderStatus", json!("approved")).await;
    assert_eq!((decided["decidedBy"].clone(), decided["decisions"].clone()), (json!("BookCheckedOut"), json!(1)), "{decided}");
    let book = shows(library, "/books/1", "bookStatus", json!("lent")).await;
    assert_eq!(book["requestId"], 1, "{book}");
    // CQRS: the checkout reaches the read model as "대여완료됨".
    let detail = shows(library, "/bookdetails/1", "status", json!("대여완료됨")).await;
    assert_eq!((detail["bookStatus"].clone(), detail["eventsApplied"].clone()), (json!("lent"), json!(2)), "{detail}");

    // Steps 6–9: book 2 does not exist; NonexistentBook cancels the request.
    let missing = post(library, "/requests", json!({"bookId": "2", "requestId": "2", "orderStatus": "requested"})).await;
    assert_eq!(missing["id"], 2, "{missing}");
    let cancelled = shows(library, "/requests/2", "orderStatus", json!("cancelled")).await;
    assert_eq!((cancelled["decidedBy"].clone(), cancelled["decisions"].clone()), (json!("NonexistentBook"), json!(1)), "{cancelled}");
    assert_eq!(library.get("/books/2").await.0, 404, "books has no book 2");

    // [P] A lent book: AlreadyCheckedOut cancels the second request.
    let again = post(library, "/requests", json!({"bookId": 1})).await;
    let id = again["id"].as_i64().unwrap();
    let cancelled = shows(library, &format!("/requests/{id}"), "orderStatus", json!("cancelled")).await;
    assert_eq!(cancelled["decidedBy"], "AlreadyCheckedOut", "{cancelled}");
    assert_eq!(library.get("/books/1").await.1["requestId"], 1, "still lent to the first request");

    // [P] A bookId is registered once: a second donation is a donation, not a second book.
    post(library, "/donates", json!({"bookId": 1, "title": "again"})).await;
    let (_, donations) = library.get("/donates?bookId=1").await;
    assert_eq!(donations.as_array().unwrap().len(), 2, "{donations}");
    // Without a bookId donate numbers the next book ([P]).
    let fresh = post(library, "/donates", json!({"title": "numbered"})).await;
    assert_eq!(fresh["bookId"], 2, "the next after the highest donated: {fresh}");
    shows(library, "/bookdetails/2", "status", json!("등록됨")).await;

    // The topic: every event keyed by its bookId (one partition per book),
    // with the envelope and the named ids; book 1 registered exactly once.
    let events = events_on_the_topic(library, |seen| seen.iter().filter(|(_, _, e)| e["eventType"] == "BookRegistered").count() >= 2).await;
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
    redeliver(library, &of("BookCheckedOut", 1)[0]).await;
    let first_request = events.iter().find(|(_, _, e)| e["eventType"] == "CheckoutRequested" && e["requestId"] == 1).unwrap().2.clone();
    redeliver(library, &first_request).await;
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
    taxi_style_health(library, "bookdetail").await;
    for service in ["donate", "request", "books"] {
        library.scale(&format!("library.{service}"), if service == "donate" { 3 } else { 1 });
    }
    for service in ["donate", "request", "books", "bookdetail"] {
        taxi_style_health(library, service).await;
    }
}

/// The course's probes find a Spring-like health endpoint on the service.
async fn taxi_style_health(library: &Shop, service: &str) {
    let address = &library.replica_addresses(service)[0];
    let health: Value = library.http.get(format!("http://{address}/actuator/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "UP"}), "{service}");
}
