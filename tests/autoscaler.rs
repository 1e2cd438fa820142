//! The local platform's autoscaler end to end: order placements drive
//! order's CPU over its target and it scales out; when they stop it scales
//! back in after the stabilisation window; scaled to 0 by hand it stands
//! aside until replicas are set by hand again.

mod common;

use std::time::Duration;

use common::{Shop, Traffic, eventually, service};
use serde_json::Value;

fn order_hpa(shop: &Shop) -> Value {
    let all: Value = serde_json::from_str(&shop.cli_ok(&["hpa", "--json"])).unwrap();
    all.as_array().unwrap().iter().find(|a| a["service"] == "order").unwrap().clone()
}

fn condition(hpa: &Value, kind: &str) -> (String, String) {
    let c = hpa["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap();
    (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn order_scales_out_under_load_and_back_in_after_the_window() {
    let shop = Shop::up(&["--hpa-sync-period", "1s", "--hpa-downscale-stabilization", "6s"]).await;
    let traffic = Traffic::start(&shop, 6);
    let hpa = eventually(Duration::from_secs(60), "order scaled out", || async {
        let hpa = order_hpa(&shop);
        let ready = service(&shop.services(), "order")["ready"].as_u64().unwrap();
        if hpa["desiredReplicas"].as_u64().unwrap() >= 2 && ready >= 2 { Ok(hpa) } else { Err(format!("{hpa}, {ready} ready")) }
    })
    .await;
    assert!(hpa["currentCpuUtilization"].as_u64().unwrap() > 50, "scaled because CPU passed the 50 % target: {hpa}");
    assert!(hpa["desiredReplicas"].as_u64().unwrap() <= 4, "never above maxReplicas: {hpa}");
    assert!(hpa["lastScaleTime"].is_string());
    assert_eq!(condition(&hpa, "ScalingActive").0, "True");
    let served = traffic.stop().await;
    assert!(served.failures.is_empty(), "scale-out loses no request: {:?}", &served.failures[..served.failures.len().min(3)]);
    eventually(Duration::from_secs(60), "order back at 1 replica", || async {
        let order = service(&shop.services(), "order");
        let hpa = order_hpa(&shop);
        if order["desired"] == 1 && order["ready"] == 1 && hpa["desiredReplicas"] == 1 { Ok(()) } else { Err(format!("{hpa}")) }
    })
    .await;
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn scaled_to_zero_the_autoscaler_stands_aside_until_replicas_are_set() {
    let shop = Shop::up(&["--hpa-sync-period", "1s"]).await;
    shop.scale("order", 0);
    eventually(Duration::from_secs(20), "ScalingActive=False", || async {
        match condition(&order_hpa(&shop), "ScalingActive") {
            (status, reason) if status == "False" && reason == "ScalingDisabled" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Several syncs later it still has not brought order back to its minimum.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(service(&shop.services(), "order")["desired"], 0);
    shop.scale("order", 1);
    eventually(Duration::from_secs(20), "ScalingActive=True again", || async {
        match condition(&order_hpa(&shop), "ScalingActive") {
            (status, _) if status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    shop.down();
}
