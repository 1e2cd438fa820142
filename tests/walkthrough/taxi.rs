//! The taxi seed's walkthrough through the gateway, on whatever store the
//! taxi was brought up with (tests/taxi.rs: SQLite; tests/postgres.rs).
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use reqwest::Method;

use crate::common::{Shop, eventually};

/// Waits until `GET path` answers 200 with `field` equal to `want`.
pub async fn shows(taxi: &Shop, path: &str, field: &str, want: Value) -> Value {
    eventually(Duration::from_secs(30), &format!("{path} showing {field} = {want}"), || async {
        let (status, body) = taxi.get(path).await;
        if status == 200 && body[field] == want { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await
}

pub async fn patch_status(taxi: &Shop, call: i64, status: &str) -> (u16, Value) {
    taxi.request(Method::PATCH, &format!("/drivers/{call}"), Some(json!({"status": status}))).await
}

/// Seed 001, step by step: a call, its fare, the driver, the board.
pub async fn run(taxi: &Shop) {
    // Step 1, httpie's `customerId=1 destination=junja cost=500`: strings.
    let (status, call) = taxi.request(Method::POST, "/calls", Some(json!({"customerId": "1", "destination": "junja", "cost": "500"}))).await;
    assert_eq!(status, 201, "{call}");
    assert_eq!((call["customerId"].clone(), call["cost"].clone(), call["status"].clone()), (json!(1), json!(500), json!("Called")));
    let id = call["id"].as_i64().unwrap();
    // 1-1: the fare is registered synchronously, before call answered.
    let (status, payment) = taxi.get(&format!("/payments/{id}")).await;
    assert_eq!((status, payment["callId"].clone(), payment["cost"].clone(), payment["settled"].clone()), (200, json!(id), json!(500), json!(false)), "{payment}");
    // 1-2, 1-3: the driver got the call; the board shows it.
    shows(taxi, &format!("/drivers/{id}"), "status", json!("Called")).await;
    let row = shows(taxi, &format!("/callLists/{id}"), "status", json!("Called")).await;
    assert_eq!((row["cost"].clone(), row["customerId"].clone(), row["settled"].clone()), (json!(500), json!(1), Value::Null), "{row}");

    // 2: the driver accepts; call and board follow. A repeat changes nothing.
    let (status, driver) = patch_status(taxi, id, "Accepted").await;
    assert_eq!((status, driver["status"].clone()), (200, json!("Accepted")), "{driver}");
    shows(taxi, &format!("/calls/{id}"), "status", json!("Accepted")).await;
    shows(taxi, &format!("/callLists/{id}"), "status", json!("Accepted")).await;
    assert_eq!(patch_status(taxi, id, "Accepted").await.0, 200, "a repeat is idempotent");
    let (status, refused) = patch_status(taxi, id, "Called").await;
    assert_eq!(status, 409, "back to Called: {refused}");

    // 3: completed; payment settles the fare; the board shows the revenue.
    let (status, driver) = patch_status(taxi, id, "Completed").await;
    assert_eq!((status, driver["status"].clone(), driver["cost"].clone()), (200, json!("Completed"), json!(500)), "{driver}");
    shows(taxi, &format!("/calls/{id}"), "status", json!("Completed")).await;
    let row = shows(taxi, &format!("/callLists/{id}"), "status", json!("Completed")).await;
    assert_eq!((row["settled"].clone(), row["eventsApplied"].clone()), (json!(500), json!(3)), "one CalledTaxi and two UpdatedStatus: {row}");
    let (_, payment) = taxi.get(&format!("/payments/{id}")).await;
    assert_eq!(payment["settled"], true, "{payment}");
    assert_eq!(patch_status(taxi, id, "Accepted").await.0, 409, "Completed is final");

    // A second call skipping Accepted is refused and stays Called.
    let (_, second) = taxi.request(Method::POST, "/calls", Some(json!({"customerId": 10, "destination": "suji", "cost": 100}))).await;
    let second = second["id"].as_i64().unwrap();
    shows(taxi, &format!("/drivers/{second}"), "status", json!("Called")).await;
    assert_eq!(patch_status(taxi, second, "Completed").await.0, 409, "Called cannot become Completed");
    let (_, calls) = taxi.get("/calls?customerId=10").await;
    assert_eq!(calls.as_array().map(|c| c.iter().map(|c| c["id"].as_i64().unwrap()).collect::<Vec<_>>()), Some(vec![second]), "{calls}");

    // The course's probes find a Spring-like health endpoint on every service.
    for service in ["call", "payment", "driver", "calllist"] {
        let address = &taxi.replica_addresses(service)[0];
        let health: Value = taxi.http.get(format!("http://{address}/actuator/health")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health, json!({"status": "UP"}), "{service}");
    }
}
