//! Self-healing: a replica whose liveness probe fails is restarted by the
//! platform, and `stormproof status` shows its restart count.

mod common;

use std::time::Duration;

use common::{Shop, eventually, service};

#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_replica_is_restarted_and_its_restarts_are_shown() {
    let shop = Shop::up(&[]).await;
    let address = shop.replica_addresses("delivery")[0].clone();
    let flipped = shop.http.put(format!("http://{address}/_stormproof/switches")).json(&serde_json::json!({"unhealthy": true})).send().await.unwrap();
    assert_eq!(flipped.status(), 200);
    // Liveness: initial delay 2 s, period 2 s, 5 failures → restarted after about 10 s.
    eventually(Duration::from_secs(40), "delivery restarted and ready", || async {
        let delivery = service(&shop.services(), "delivery");
        let replica = &delivery["replicas"][0];
        if replica["restarts"] == 1 && replica["ready"] == true { Ok(()) } else { Err(delivery.to_string()) }
    })
    .await;
    let table = shop.cli_ok(&["status"]);
    let row = table.lines().find(|l| l.trim_start().starts_with("delivery")).unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[2..6], ["1", "1", "1", "1"], "desired, ready, available, restarts: {row}");
    // The restarted process starts with its switches off: healthy again.
    let (status, _) = shop.place_order(1, 1, "after-healing").await;
    assert_eq!(status, 201);
    shop.down();
}
