//! The telecom seed's scenario through the gateway, on whatever store the
//! telecom was brought up with (tests/telecom.rs: SQLite; tests/postgres.rs).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Shop, eventually};

/// Waits until `GET path` answers 200 and `ok` holds for its body.
pub async fn until(telecom: &Shop, path: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(30), &format!("{path}: {what}"), || async {
        let (status, body) = telecom.get(path).await;
        if status == 200 && ok(&body) { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await
}

/// Subscribes `user` (httpie's strings, as the seed's course sends them).
pub async fn subscribe(telecom: &Shop, user: &str) -> i64 {
    let (status, order) = telecom.request(Method::POST, "/orders", Some(json!({"userName": user, "phoneNumber": "010-1234-5678", "monthlyFee": "50000"}))).await;
    assert_eq!(status, 201, "{order}");
    order["orderId"].as_i64().unwrap()
}

/// The bills of `order`, once there are `n`.
pub async fn bills(telecom: &Shop, order: i64, n: usize) -> Vec<Value> {
    let rows = until(telecom, &format!("/bills?orderId={order}"), &format!("{n} bills"), |b| b.as_array().is_some_and(|b| b.len() == n)).await;
    rows.as_array().unwrap().clone()
}

pub async fn pay(telecom: &Shop, bill: i64) -> (u16, Value) {
    telecom.request(Method::POST, "/pays", Some(json!({"billId": bill.to_string()}))).await
}

/// Pays `bill` once it can be (bill may still be rolling a cancel back).
pub async fn pay_when_unpaid(telecom: &Shop, bill: i64) -> Value {
    eventually(Duration::from_secs(30), &format!("bill {bill} paid"), || async {
        let (status, body) = pay(telecom, bill).await;
        if status == 201 { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await
}

pub fn work_types(rows: &Value) -> Vec<String> {
    rows.as_array().unwrap().iter().map(|r| r["workType"].as_str().unwrap().to_string()).collect()
}

pub fn next_month(month: &str) -> String {
    let (year, m): (u32, u32) = (month[..4].parse().unwrap(), month[4..].parse().unwrap());
    if m == 12 { format!("{}01", year + 1) } else { format!("{year}{:02}", m + 1) }
}

/// Seed 004: subscribe, bill, pay, cancel and its compensation.
pub async fn run(telecom: &Shop) {
    // 1. A customer subscribes (개통/가입); numbers as strings, as httpie sends them.
    let (status, order) = telecom.request(Method::POST, "/orders", Some(json!({"userName": "kim", "phoneNumber": "010-1234-5678", "monthlyFee": "50000"}))).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!((order["monthlyFee"].clone(), order["plan"].clone(), order["status"].clone()), (json!(50000), json!("basic"), json!("Active")), "{order}");
    let id = order["orderId"].as_i64().unwrap();
    assert_eq!(order["id"], id);
    let (status, alias) = telecom.request(Method::POST, "/orders/placeorder", Some(json!({"userName": "lee", "phoneNumber": "010-9999-0000"}))).await;
    assert_eq!((status, alias["monthlyFee"].clone()), (201, json!(50000)), "the repository's placeorder, the default fee: {alias}");

    // 2. Bill issues the first bill, for the order's month; issuing a month
    // again (or twice) gives one bill per order and month.
    let first = bills(telecom, id, 1).await.remove(0);
    assert_eq!((first["billAmt"].clone(), first["billState"].clone(), first["payId"].clone()), (json!(50000), json!("Unpaid"), Value::Null), "{first}");
    let month = first["useYm"].as_str().unwrap().to_string();
    let next = next_month(&month);
    for expected in [1, 0] {
        let (status, issued) = telecom.request(Method::POST, "/bills/issue", Some(json!({"useYm": next, "orderId": id.to_string()}))).await;
        assert_eq!((status, issued["issued"].clone()), (200, json!(expected)), "{issued}");
    }
    let (status, issued) = telecom.request(Method::POST, "/bills/issue", Some(json!({"useYm": month}))).await;
    assert_eq!((status, issued["issued"].clone()), (200, json!(0)), "every subscription has its bill for {month} already: {issued}");
    let all = bills(telecom, id, 2).await;
    let months: BTreeSet<&str> = all.iter().map(|b| b["useYm"].as_str().unwrap()).collect();
    assert_eq!(months, BTreeSet::from([month.as_str(), next.as_str()]), "one bill per month: {all:?}");
    let bill = first["billId"].as_i64().unwrap();
    let second = all.iter().find(|b| b["useYm"] == next.as_str()).unwrap()["billId"].as_i64().unwrap();

    // 3. Pay looks the bill up — bill answers; pay's own view has it too.
    until(telecom, &format!("/retrieveBills?orderId={id}"), "both bills in pay's view", |v| v.as_array().is_some_and(|v| v.len() == 2)).await;

    // 4. An unpaid bill with an amount is paid; bill follows (Paid), a
    // second payment of it is refused, a wrong amount too.
    let (status, paid) = pay(telecom, bill).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!((paid["payAmt"].clone(), paid["workType"].clone(), paid["lookup"].clone(), paid["orderId"].clone()), (json!(50000), json!("PAY"), json!("bill"), json!(id)), "{paid}");
    let pay_id = paid["payId"].as_i64().unwrap();
    until(telecom, &format!("/bills/{bill}"), "Paid", |b| b["billState"] == "Paid" && b["payId"] == pay_id).await;
    let (status, refused) = pay(telecom, bill).await;
    assert_eq!(status, 409, "a paid bill: {refused}");
    let (status, refused) = telecom.request(Method::POST, "/pays/pay", Some(json!({"billId": second, "payAmt": "100"}))).await;
    assert_eq!(status, 400, "not the bill's amount: {refused}");

    // 5. Cancelling the payment rolls the bill back to Unpaid (the
    // compensation); a second cancel is refused; the bill is paid again.
    let (status, cancelled) = telecom.request(Method::POST, &format!("/pays/{pay_id}/cancel"), None).await;
    assert_eq!((status, cancelled["workType"].clone(), cancelled["cancelled"].clone()), (200, json!("CANCEL"), json!(true)), "{cancelled}");
    until(telecom, &format!("/bills/{bill}"), "Unpaid again", |b| b["billState"] == "Unpaid" && b["payId"].is_null()).await;
    let (status, refused) = telecom.request(Method::POST, "/pays/cancel", Some(json!({"payId": pay_id}))).await;
    assert_eq!(status, 409, "already cancelled: {refused}");
    let again = pay_when_unpaid(telecom, bill).await;
    let again_id = again["payId"].as_i64().unwrap();
    assert_ne!(again_id, pay_id);
    until(telecom, &format!("/bills/{bill}"), "Paid by the new payment", |b| b["billState"] == "Paid" && b["payId"] == again_id).await;
    until(telecom, &format!("/retrieveBills/{bill}"), "Paid in pay's view", |b| b["billState"] == "Paid" && b["payId"] == again_id).await;

    // 6. MyPage: the history, one row per event, in order.
    let history = until(telecom, &format!("/myPages?orderId={id}"), "ORDER, PAY, PAY_CANCEL, PAY", |h| h.as_array().is_some_and(|h| h.len() >= 4)).await;
    assert_eq!(work_types(&history), ["ORDER", "PAY", "PAY_CANCEL", "PAY"], "{history}");
    let rows = history.as_array().unwrap();
    let amounts: Vec<Value> = rows.iter().map(|r| r["amount"].clone()).collect();
    assert_eq!(amounts, [Value::Null, json!(50000), json!(-50000), json!(50000)], "{history}");
    assert_eq!((rows[0]["description"].clone(), rows[2]["description"].clone(), rows[0]["contId"].clone()), (json!("가입"), json!("수납취소"), json!(id)));
    assert_eq!((rows[1]["payId"].clone(), rows[2]["payId"].clone(), rows[3]["payId"].clone()), (json!(pay_id), json!(pay_id), json!(again_id)));
    let events: BTreeSet<&str> = rows.iter().map(|r| r["eventId"].as_str().unwrap()).collect();
    assert_eq!(events.len(), rows.len(), "one row per event");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, later) = telecom.get(&format!("/myPages?orderId={id}")).await;
    assert_eq!(later.as_array().unwrap().len(), 4, "no row more: {later}");
    let (_, mine) = telecom.get("/myPages?userName=kim&workType=PAY").await;
    assert_eq!(mine.as_array().unwrap().len(), 2, "{mine}");

    // The seed's siege target, the repository's health method, the course's probes.
    let (status, orders) = telecom.get("/orders").await;
    assert_eq!((status, orders.as_array().unwrap().len()), (200, 2));
    let (status, hello) = telecom.get("/orders/health").await;
    assert_eq!((status, hello), (200, json!("get Hello")));
    for service in ["order", "bill", "pay", "mypage"] {
        let address = &telecom.replica_addresses(service)[0];
        let health: Value = telecom.http.get(format!("http://{address}/actuator/health")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health, json!({"status": "UP"}), "{service}");
    }
}
