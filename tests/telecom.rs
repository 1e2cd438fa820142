//! The telecom (seed 004) on the local platform, end to end: real
//! processes, the real embedded broker, HTTP over loopback through the
//! gateway.

mod common;
#[path = "walkthrough/telecom.rs"]
mod walkthrough;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Shop, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use walkthrough::*;

async fn up() -> Shop {
    Shop::up_system("telecom", &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_scenario_runs_through_the_gateway_with_its_compensation() {
    let telecom = up().await;
    walkthrough::run(&telecom).await;
    telecom.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_bill_at_zero_subscriptions_and_cancellations_go_on_and_bill_catches_up_exactly_once() {
    let telecom = up().await;
    let paid_order = subscribe(&telecom, "park").await;
    let bill = bills(&telecom, paid_order, 1).await[0]["billId"].as_i64().unwrap();
    let (status, paid) = pay(&telecom, bill).await;
    assert_eq!(status, 201, "{paid}");
    let pay_id = paid["payId"].as_i64().unwrap();
    until(&telecom, &format!("/myPages?orderId={paid_order}"), "ORDER, PAY", |h| h.as_array().is_some_and(|h| h.len() == 2)).await;

    telecom.scale("telecom.bill", 0);
    let mut orders = Vec::new();
    for _ in 0..10 {
        orders.push(subscribe(&telecom, "choi").await);
    }
    let (status, cancelled) = telecom.request(Method::POST, &format!("/pays/{pay_id}/cancel"), None).await;
    assert_eq!(status, 200, "a payment is cancelled while bill is down: {cancelled}");
    let (status, _) = telecom.get("/bills").await;
    assert_eq!(status, 503, "no bill replica");
    until(&telecom, "/myPages?userName=choi", "10 subscriptions in the history", |h| h.as_array().is_some_and(|h| h.len() == 10)).await;

    telecom.scale("telecom.bill", 1);
    for order in &orders {
        let rows = bills(&telecom, *order, 1).await;
        assert_eq!(rows[0]["billState"], "Unpaid", "{rows:?}");
    }
    until(&telecom, &format!("/bills/{bill}"), "Unpaid again", |b| b["billState"] == "Unpaid" && b["payId"].is_null()).await;
    let history = until(&telecom, &format!("/myPages?billId={bill}"), "PAY then PAY_CANCEL", |h| h.as_array().is_some_and(|h| h.len() == 2)).await;
    assert_eq!(work_types(&history), ["PAY", "PAY_CANCEL"], "{history}");
    // Caught up: nothing more arrives, each order still has exactly one bill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, all) = telecom.get("/bills?userName=choi").await;
    let per_order: BTreeSet<i64> = all.as_array().unwrap().iter().map(|b| b["orderId"].as_i64().unwrap()).collect();
    assert_eq!((all.as_array().unwrap().len(), per_order), (10, orders.iter().copied().collect()), "{all}");
    let (_, history) = telecom.get(&format!("/myPages?billId={bill}")).await;
    assert_eq!(work_types(&history), ["PAY", "PAY_CANCEL"], "the rollback applied once: {history}");
    assert_eq!(pay_when_unpaid(&telecom, bill).await["lookup"], "bill", "paid again once bill is back");
    telecom.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_bill_hanging_or_down_pay_answers_from_its_own_view_within_the_timeout() {
    let telecom = up().await;
    let mut unpaid = Vec::new();
    for _ in 0..6 {
        let order = subscribe(&telecom, "jung").await;
        unpaid.push(bills(&telecom, order, 1).await[0]["billId"].as_i64().unwrap());
    }
    until(&telecom, "/retrieveBills?userName=jung", "6 bills in pay's view", |v| v.as_array().is_some_and(|v| v.len() == 6)).await;
    let bill = telecom.replica_addresses("bill")[0].clone();
    let switches = format!("http://{bill}/_stormproof/switches");
    assert_eq!(telecom.http.put(&switches).json(&json!({"delayMs": 5000})).send().await.unwrap().status(), 200);

    let mut took = Vec::new();
    for id in &unpaid[..4] {
        let started = Instant::now();
        let (status, paid) = pay(&telecom, *id).await;
        took.push(started.elapsed());
        assert_eq!((status, paid["lookup"].clone()), (201, json!("view")), "{paid}");
    }
    // Three timeouts of about 1 s open the breaker; then the view answers at once.
    for elapsed in &took[..3] {
        assert!(*elapsed >= Duration::from_millis(900) && *elapsed < Duration::from_millis(1500), "within the timeout: {took:?}");
    }
    assert!(took[3] < Duration::from_millis(300), "fast once the breaker is open: {took:?}");
    telecom.http.put(&switches).json(&json!({})).send().await.unwrap();

    // Bill down altogether: still paid from the view; a bill the view does
    // not know is 404, not a 5xx.
    telecom.scale("telecom.bill", 0);
    let (status, paid) = pay(&telecom, unpaid[4]).await;
    assert_eq!((status, paid["lookup"].clone()), (201, json!("view")), "{paid}");
    let (status, unknown) = pay(&telecom, 424242).await;
    assert_eq!(status, 404, "{unknown}");
    telecom.scale("telecom.bill", 1);
    // Every payment made from the view reached bill: each bill Paid by it.
    let (_, pays) = telecom.get("/pays?userName=jung").await;
    for made in pays.as_array().unwrap() {
        let id = made["billId"].as_i64().unwrap();
        until(&telecom, &format!("/bills/{id}"), "Paid", |b| b["billState"] == "Paid" && b["payId"] == made["payId"]).await;
    }
    assert_eq!(pays.as_array().unwrap().len(), 5, "{pays}");
    let (status, paid) = pay_when_answered_by_bill(&telecom, unpaid[5]).await;
    assert_eq!(status, 201, "{paid}");
    telecom.down();
}

/// Pays `bill` once bill answers the lookup again (its breaker closed).
async fn pay_when_answered_by_bill(telecom: &Shop, bill: i64) -> (u16, Value) {
    eventually(Duration::from_secs(30), "bill answering pay's lookup", || async {
        let (status, body) = telecom.get(&format!("/bills/{bill}")).await;
        if status == 200 { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = pay(telecom, bill).await;
    assert_eq!(answer.1["lookup"], "bill", "{}", answer.1);
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_on_every_endpoint_gets_a_4xx_with_a_reason() {
    let telecom = up().await;
    let order = subscribe(&telecom, "han").await;
    let bill = bills(&telecom, order, 1).await[0]["billId"].as_i64().unwrap();
    until(&telecom, &format!("/retrieveBills/{bill}"), "in pay's view", |b| b["billId"] == bill).await;
    let (status, free) = telecom.request(Method::POST, "/orders", Some(json!({"userName": "han", "phoneNumber": "010", "monthlyFee": 0}))).await;
    assert_eq!(status, 201, "{free}");
    let free_bill = bills(&telecom, free["orderId"].as_i64().unwrap(), 1).await[0]["billId"].as_i64().unwrap();
    let (_, paid) = pay(&telecom, bill).await;
    let pay_id = paid["payId"].as_i64().unwrap();
    let (_, cancelled) = telecom.request(Method::POST, &format!("/pays/{pay_id}/cancel"), None).await;
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    until(&telecom, &format!("/bills/{bill}"), "Unpaid again", |b| b["billState"] == "Unpaid").await;
    let long = "n".repeat(101);
    let huge = format!(r#"{{"userName": "{}", "phoneNumber": "010"}}"#, "x".repeat(100_000));
    let cases: Vec<(Method, String, Option<String>, u16)> = vec![
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a","#.into()), 400),
        (Method::POST, "/orders".into(), Some("[]".into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"phoneNumber": "010"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": 5, "phoneNumber": "010"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": " ", "phoneNumber": "010"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(format!(r#"{{"userName": "{long}", "phoneNumber": "010"}}"#)), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "call me"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "0101234567890123456789"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": "abc"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": 1.5}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": "100.00"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": -1}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": 1e30}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": 99999999999999999999}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "monthlyFee": 2000000000}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "plan": ""}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(r#"{"userName": "a", "phoneNumber": "010", "status": "Cancelled"}"#.into()), 400),
        (Method::POST, "/orders".into(), Some(huge), 413),
        (Method::GET, "/orders/abc".into(), None, 400),
        (Method::GET, "/orders/424242".into(), None, 404),
        (Method::GET, format!("/orders?userName={long}"), None, 400),
        (Method::GET, "/bills/abc".into(), None, 400),
        (Method::GET, "/bills/424242".into(), None, 404),
        (Method::GET, "/bills?orderId=1.5".into(), None, 400),
        (Method::GET, "/bills?billState=Cancelled".into(), None, 400),
        (Method::GET, "/bills?useYm=2021-01".into(), None, 400),
        (Method::POST, "/bills/issue".into(), Some("{}".into()), 400),
        (Method::POST, "/bills/issue".into(), Some(r#"{"useYm": "202113"}"#.into()), 400),
        (Method::POST, "/bills/issue".into(), Some(r#"{"useYm": 202101}"#.into()), 400),
        (Method::POST, "/bills/issue".into(), Some(r#"{"useYm": "202101", "orderId": "x"}"#.into()), 400),
        (Method::POST, "/bills/issue".into(), Some(r#"{"useYm": "202101", "orderId": 0}"#.into()), 400),
        (Method::POST, "/bills/issue".into(), Some(r#"{"useYm": "209901", "orderId": 424242}"#.into()), 404),
        (Method::POST, "/bills/issue".into(), Some(format!(r#"{{"useYm": "200001", "orderId": {order}}}"#)), 409),
        (Method::POST, "/pays".into(), Some(r#"{"billId": "x"}"#.into()), 400),
        (Method::POST, "/pays".into(), Some("{}".into()), 400),
        (Method::POST, "/pays".into(), Some(r#"{"billId": 0}"#.into()), 400),
        (Method::POST, "/pays".into(), Some(r#"{"billId": 9223372036854775808}"#.into()), 400),
        (Method::POST, "/pays".into(), Some(format!(r#"{{"billId": {bill}, "payAmt": -5}}"#)), 400),
        (Method::POST, "/pays".into(), Some(format!(r#"{{"billId": {bill}, "payAmt": "100.00"}}"#)), 400),
        (Method::POST, "/pays".into(), Some(format!(r#"{{"billId": {bill}, "payAmt": 1}}"#)), 400),
        (Method::POST, "/pays".into(), Some(format!(r#"{{"billId": {bill}, "workType": "PAY"}}"#)), 400),
        (Method::POST, "/pays".into(), Some(r#"{"billId": 424242}"#.into()), 404),
        (Method::POST, "/pays".into(), Some(format!(r#"{{"billId": {free_bill}}}"#)), 409),
        (Method::POST, "/pays/424242/cancel".into(), None, 404),
        (Method::POST, "/pays/abc/cancel".into(), None, 400),
        (Method::POST, format!("/pays/{pay_id}/cancel"), None, 409),
        (Method::POST, "/pays/cancel".into(), Some(r#"{"payId": "x"}"#.into()), 400),
        (Method::POST, "/pays/cancel".into(), Some(r#"{"payId": -1}"#.into()), 400),
        (Method::POST, "/pays/cancel".into(), Some(r#"{"payId": 424242}"#.into()), 404),
        (Method::GET, "/pays/abc".into(), None, 400),
        (Method::GET, "/pays/424242".into(), None, 404),
        (Method::GET, "/pays?workType=REFUND".into(), None, 400),
        (Method::GET, "/pays?billId=x".into(), None, 400),
        (Method::GET, "/retrieveBills/abc".into(), None, 400),
        (Method::GET, "/retrieveBills/424242".into(), None, 404),
        (Method::GET, "/retrieveBills?billState=Paidish".into(), None, 400),
        (Method::GET, "/myPages/abc".into(), None, 400),
        (Method::GET, "/myPages/424242".into(), None, 404),
        (Method::GET, "/myPages?workType=REFUND".into(), None, 400),
        (Method::GET, "/myPages?orderId=-".into(), None, 400),
    ];
    for (method, path, body, expect) in &cases {
        let mut request = telecom.http.request(method.clone(), format!("{}{path}", telecom.gateway)).bearer_auth(telecom.token());
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let shown: String = body.as_deref().unwrap_or("").chars().take(80).collect();
        let shown_path: String = path.chars().take(80).collect();
        assert_eq!(status, *expect, "{method} {shown_path} {shown} → {answer}");
        assert!(answer["reason"].as_str().is_some_and(|r| !r.is_empty()), "{method} {shown_path} {shown}: no reason in {answer}");
    }
    // No content type at all.
    let response = telecom.http.post(format!("{}/pays", telecom.gateway)).bearer_auth(telecom.token()).body(r#"{"billId": 1}"#).send().await.unwrap();
    assert_eq!(response.status(), 400);
    // Nothing above wedged anything: the flow still works end to end.
    assert_eq!(pay_when_unpaid(&telecom, bill).await["payAmt"], 50000);
    let next = subscribe(&telecom, "han").await;
    until(&telecom, &format!("/myPages?orderId={next}"), "the new subscription's row", |h| h.as_array().is_some_and(|h| h.len() == 1)).await;
    telecom.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_telecom_passes_every_checkpoint_with_evidence() {
    // A short autoscaler period and window, as for the shop's check.
    let telecom = Shop::up_system("telecom", &["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"]).await;
    let reports = tempfile::tempdir().unwrap();
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/telecom");
    let out = telecom.cli(&["check", "telecom", "--lang", "ko", "--pacts", pacts, "--reports", reports.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(stormproof::exit::PASSED), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("보상처리"), "Korean checkpoint names: {stdout}");
    let run = std::fs::read_dir(reports.path()).unwrap().next().unwrap().unwrap().path();
    let card: Value = serde_json::from_str(&std::fs::read_to_string(run.join("scorecard.json")).unwrap()).unwrap();
    let checkpoint = |id: u64| card["checkpoints"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    for id in 1..=13 {
        assert_eq!(checkpoint(id)["verdict"], "pass", "checkpoint {id}: {card:#}");
    }
    let breaker = checkpoint(4)["evidence"].as_str().unwrap().to_string();
    assert!(breaker.starts_with("GET /retrieveBills?userName=chaos-hang 100.00 %") && breaker.contains("rows in /bills?userName=chaos-hang&billState=Paid"), "pay's view stays available and every payment reached bill: {breaker}");
    let deploy = checkpoint(10)["evidence"].as_str().unwrap().to_string();
    assert!(deploy.starts_with("with: GET /orders 100.00 %") && deploy.contains("without, as expected"), "{deploy}");
    assert!(checkpoint(12)["evidence"].as_str().unwrap().contains("amount-as-string blocked"), "{card:#}");
    telecom.down();
}

/// Runs order alone (`stormproof serve telecom.order`, no broker: it takes
/// subscriptions while Kafka is away) with `ORDER_LOG_LEVEL=level`, takes
/// one subscription and stops it; returns what it logged.
async fn order_log_at(level: &str) -> String {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("order.log")).unwrap();
    let mut order = tokio::process::Command::new(common::BIN)
        .args(["serve", "telecom.order"])
        .env("STORMPROOF_LISTEN", "127.0.0.1:0")
        .env("STORMPROOF_DATA", dir.path())
        // Nothing listens on port 9 (discard): the broker is away.
        .env("STORMPROOF_KAFKA", "127.0.0.1:9")
        .env("ORDER_LOG_LEVEL", level)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(order.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("order announced its address").unwrap().expect("a line");
        if let Some(addr) = line.strip_prefix("STORMPROOF_LISTENING=") {
            break addr.trim().to_string();
        }
    };
    let answer = reqwest::Client::new().post(format!("http://{addr}/orders")).json(&json!({"userName": "config-dev", "phoneNumber": "010-0000-0001"})).send().await.unwrap();
    assert_eq!(answer.status(), 201, "{level}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(order.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::timeout(Duration::from_secs(30), order.wait()).await.expect("order stopped on SIGTERM").unwrap();
    std::fs::read_to_string(dir.path().join("order.log")).unwrap()
}

/// The seed's ConfigMap (`config-dev`, `ORDER_LOG_LEVEL`) sets order's log
/// level by Spring's names: at DEBUG each subscription taken is logged, at
/// INFO it is not (INFO lines still are), and a level that is none of them
/// stops order at start naming the variable (exit 2).
#[tokio::test(flavor = "multi_thread")]
async fn order_logs_at_the_level_the_configmap_sets() {
    let debug = order_log_at("DEBUG").await;
    assert!(debug.contains("subscription 1 taken"), "at DEBUG: {debug}");
    let info = order_log_at("INFO").await;
    assert!(!info.contains("subscription 1 taken") && info.contains("listening on"), "at INFO: {info}");
    let out = std::process::Command::new(common::BIN).args(["serve", "telecom.order"]).env("ORDER_LOG_LEVEL", "LOUD").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ORDER_LOG_LEVEL=loud") && stderr.contains("DEBUG"), "{stderr}");
}
