//! The taxi (seed 001) on the local platform, end to end: real processes,
//! the real embedded broker, HTTP over loopback through the gateway.

mod common;
#[path = "walkthrough/taxi.rs"]
mod walkthrough;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Shop, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use walkthrough::{patch_status, shows};

async fn up() -> Shop {
    Shop::up_system("taxi", &[]).await
}

/// Takes `n` calls (each must be accepted) and returns their ids.
async fn take_calls(taxi: &Shop, n: usize, customer: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = taxi.request(Method::POST, "/calls", Some(json!({"customerId": customer, "destination": "suji", "cost": 100 + i}))).await;
        assert_eq!(status, 201, "call {i} not taken: {body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_walkthrough_runs_as_written_through_the_gateway() {
    let taxi = up().await;
    walkthrough::run(&taxi).await;
    taxi.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_driver_at_zero_calls_are_taken_and_each_gets_one_driver_entry_once_it_returns() {
    let taxi = up().await;
    taxi.scale("taxi.driver", 0);
    let ids = take_calls(&taxi, 20, 7).await;
    eventually(Duration::from_secs(30), "the board showing 20 calls Called", || async {
        let (_, rows) = taxi.get("/callLists?customerId=7").await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let called = rows.iter().filter(|r| r["status"] == "Called" && r["eventsApplied"] == 1).count();
        if called == ids.len() { Ok(()) } else { Err(format!("{} rows, {called} Called", rows.len())) }
    })
    .await;
    let (status, _) = taxi.get("/drivers").await;
    assert_eq!(status, 503, "no driver replica");

    taxi.scale("taxi.driver", 1);
    let drivers = eventually(Duration::from_secs(60), "a driver entry for each call", || async {
        let (_, drivers) = taxi.get("/drivers").await;
        let drivers = drivers.as_array().cloned().unwrap_or_default();
        if ids.iter().all(|id| drivers.iter().any(|d| d["callId"] == *id)) { Ok(drivers) } else { Err(format!("{} entries", drivers.len())) }
    })
    .await;
    for id in &ids {
        let entries: Vec<&Value> = drivers.iter().filter(|d| d["callId"] == *id).collect();
        assert_eq!(entries.len(), 1, "call {id} has {} driver entries", entries.len());
        assert_eq!(entries[0]["status"], "Called");
    }
    taxi.down();
}

/// Every `CalledTaxi` on the taxi topic, as callIds (read by a consumer of
/// the test's own, which disturbs none of the services' groups).
async fn called_taxi_on_the_topic(taxi: &Shop, at_least: &BTreeSet<i64>) -> BTreeSet<i64> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", taxi.state["kafka"].as_str().unwrap())
        .set("group.id", "stormproof-test-called-taxi")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..3 {
        partitions.add_partition_offset("taxi", partition, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Past every expected one, a quiet second says nothing more is coming.
    while Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await else {
            if at_least.is_subset(&seen) {
                break;
            }
            continue;
        };
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        if event["eventType"] == "CalledTaxi" {
            seen.insert(event["callId"].as_i64().unwrap());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn with_payment_hanging_a_call_fails_within_the_timeout_then_fast_and_leaves_nothing() {
    let taxi = up().await;
    let before = take_calls(&taxi, 2, 3).await;
    let payment = taxi.replica_addresses("payment")[0].clone();
    let switches = format!("http://{payment}/_stormproof/switches");
    let response = taxi.http.put(&switches).json(&json!({"delayMs": 5000})).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let mut took = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        let (status, body) = taxi.request(Method::POST, "/calls", Some(json!({"customerId": 3, "destination": "junja", "cost": 500}))).await;
        took.push(started.elapsed());
        assert_eq!(status, 503, "{body}");
        assert!(body["reason"].as_str().unwrap().contains("payment"), "{body}");
    }
    // Three timeouts of about 1 s open the breaker; then refusals are immediate.
    for elapsed in &took[..3] {
        assert!(*elapsed >= Duration::from_millis(900) && *elapsed < Duration::from_millis(2500), "within the timeout: {took:?}");
    }
    for elapsed in &took[3..] {
        assert!(*elapsed < Duration::from_millis(500), "fast once the breaker is open: {took:?}");
    }

    // Payment answers again: after the breaker's window calls are taken.
    taxi.http.put(&switches).json(&json!({})).send().await.unwrap();
    let after = eventually(Duration::from_secs(20), "a call taken again", || async {
        let (status, body) = taxi.request(Method::POST, "/calls", Some(json!({"customerId": 3, "destination": "junja", "cost": 500}))).await;
        if status == 201 { Ok(body["id"].as_i64().unwrap()) } else { Err(format!("{status} {body}")) }
    })
    .await;
    assert!(after > before[1] + 6, "each refused call used an id ({after} after {})", before[1]);

    // No call row and no CalledTaxi for a refused call: the rows, the
    // events and the board name exactly the calls taken.
    let (_, calls) = taxi.get("/calls").await;
    let rows: BTreeSet<i64> = calls.as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let taken: BTreeSet<i64> = before.iter().copied().chain([after]).collect();
    assert_eq!(rows, taken, "call rows");
    assert_eq!(called_taxi_on_the_topic(&taxi, &taken).await, taken, "CalledTaxi events");
    let (_, payments) = taxi.get("/payments").await;
    assert!(payments.as_array().unwrap().iter().all(|p| p["callId"].as_i64().is_some()), "{payments}");

    // Payment down altogether: refused at once, nothing created.
    taxi.scale("taxi.payment", 0);
    let (status, body) = taxi.request(Method::POST, "/calls", Some(json!({"customerId": 3, "destination": "junja", "cost": 500}))).await;
    assert_eq!(status, 503, "{body}");
    let (_, calls) = taxi.get("/calls").await;
    assert_eq!(calls.as_array().unwrap().len(), taken.len(), "{calls}");
    taxi.scale("taxi.payment", 1);
    taxi.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_on_every_endpoint_gets_a_4xx_with_a_reason() {
    let taxi = up().await;
    let call = take_calls(&taxi, 1, 1).await[0];
    shows(&taxi, &format!("/drivers/{call}"), "status", json!("Called")).await;
    let long = "d".repeat(201);
    let huge = format!(r#"{{"customerId": 1, "destination": "{}", "cost": 1}}"#, "x".repeat(100_000));
    let cases: Vec<(Method, String, Option<String>, u16)> = vec![
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1,"#.into()), 400),
        (Method::POST, "/calls".into(), Some("[]".into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "cost": 1}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a"}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": "abc"}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": 1.5}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": -1}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": 1e30}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": 99999999999999999999}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": "9223372036854775808"}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": 2000000000}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 0, "destination": "a", "cost": 1}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": true, "destination": "a", "cost": 1}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": " ", "cost": 1}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(format!(r#"{{"customerId": 1, "destination": "{long}", "cost": 1}}"#)), 400),
        (Method::POST, "/calls".into(), Some(r#"{"customerId": 1, "destination": "a", "cost": 1, "status": "Completed"}"#.into()), 400),
        (Method::POST, "/calls".into(), Some(huge), 413),
        (Method::POST, "/payments".into(), Some(r#"{"callId": "x", "cost": 1}"#.into()), 400),
        (Method::POST, "/payments".into(), Some(r#"{"callId": 5}"#.into()), 400),
        (Method::POST, "/payments".into(), Some(format!(r#"{{"callId": {call}, "cost": 999}}"#)), 409),
        (Method::GET, "/calls/abc".into(), None, 400),
        (Method::GET, "/calls/424242".into(), None, 404),
        (Method::GET, "/calls?customerId=abc".into(), None, 400),
        (Method::GET, "/payments/abc".into(), None, 400),
        (Method::GET, "/payments/424242".into(), None, 404),
        (Method::GET, "/payments/settleCost".into(), None, 400),
        (Method::GET, "/payments/settleCost?callId=x".into(), None, 400),
        (Method::GET, "/payments/settleCost?callId=424242".into(), None, 404),
        (Method::GET, "/drivers/424242".into(), None, 404),
        (Method::GET, "/drivers/9223372036854775808".into(), None, 400),
        (Method::GET, "/callLists/abc".into(), None, 400),
        (Method::GET, "/callLists/424242".into(), None, 404),
        (Method::GET, "/callLists?customerId=1.5".into(), None, 400),
        (Method::PATCH, format!("/drivers/{call}"), Some(r#"{"status": "Flying"}"#.into()), 400),
        (Method::PATCH, format!("/drivers/{call}"), Some("{}".into()), 400),
        (Method::PATCH, format!("/drivers/{call}"), Some(r#"{"status": 5}"#.into()), 400),
        (Method::PATCH, format!("/drivers/{call}"), Some(format!(r#"{{"status": "{}"}}"#, "S".repeat(1000))), 400),
        (Method::PATCH, format!("/drivers/{call}"), Some(r#"{"status": "Completed"}"#.into()), 409),
        (Method::PATCH, "/drivers/424242".into(), Some(r#"{"status": "Accepted"}"#.into()), 404),
    ];
    for (method, path, body, expect) in &cases {
        let mut request = taxi.http.request(method.clone(), format!("{}{path}", taxi.gateway)).bearer_auth(taxi.token());
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let shown: String = body.as_deref().unwrap_or("").chars().take(80).collect();
        assert_eq!(status, *expect, "{method} {path} {shown} → {answer}");
        assert!(answer["reason"].as_str().is_some_and(|r| !r.is_empty()), "{method} {path} {shown}: no reason in {answer}");
    }
    // No content type at all.
    let response = taxi.http.post(format!("{}/calls", taxi.gateway)).bearer_auth(taxi.token()).body(r#"{"customerId": 1}"#).send().await.unwrap();
    assert_eq!(response.status(), 400);
    // Nothing above wedged anything: the flow still works end to end.
    let (_, driver) = taxi.get(&format!("/drivers/{call}")).await;
    assert_eq!(driver["status"], "Called", "{driver}");
    let next = take_calls(&taxi, 1, 1).await[0];
    shows(&taxi, &format!("/callLists/{next}"), "status", json!("Called")).await;
    assert_eq!(patch_status(&taxi, next, "Accepted").await.0, 200);
    taxi.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_taxi_passes_every_applicable_checkpoint_with_evidence() {
    // A short autoscaler period and window, as for the shop's check.
    let taxi = Shop::up_system("taxi", &["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"]).await;
    let reports = tempfile::tempdir().unwrap();
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/taxi");
    let out = taxi.cli(&["check", "taxi", "--lang", "ko", "--pacts", pacts, "--reports", reports.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(stormproof::exit::PASSED), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("장애격리"), "Korean checkpoint names: {stdout}");
    let run = std::fs::read_dir(reports.path()).unwrap().next().unwrap().unwrap().path();
    let card: Value = serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap();
    let checkpoint = |id: u64| card["checkpoints"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    for id in 1..=13 {
        assert_eq!(checkpoint(id)["verdict"], "pass", "checkpoint {id}: {card:#}");
    }
    let correlation = checkpoint(3)["evidence"].as_str().unwrap().to_string();
    assert!(correlation.contains(" events of 3 flows inspected on taxi") && correlation.contains("keyed by it"), "{correlation}");
    let late = checkpoint(13)["evidence"].as_str().unwrap().to_string();
    assert!(late.contains("in /calls?customerId=912") && late.contains("built from scratch") && late.contains("caught up"), "rows and the catch-up time: {late}");
    let breaker = checkpoint(4)["evidence"].as_str().unwrap().to_string();
    assert!(breaker.contains("POST /calls → 503") && breaker.contains("GET /payments → 200 in 50"), "the hang and the refusals are seen: {breaker}");
    assert!(checkpoint(6)["evidence"].as_str().unwrap().starts_with("POST /calls 100.00 %"), "{card:#}");
    let contract = checkpoint(12)["evidence"].as_str().unwrap().to_string();
    assert!(contract.contains("drop-call-id blocked"), "{contract}");
    taxi.down();
}
