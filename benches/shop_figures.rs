//! Figures of the shop on the local platform, measured in one run:
//! time from `up` to every replica ready, order placement latency through
//! the gateway, and mypage's catch-up rate over a backlog of events.
//!
//! `cargo bench --bench shop_figures` (release build). Loopback only; every
//! shop it starts is stopped with `stormproof down`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_stormproof");

fn stormproof(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env("STORMPROOF_RUN_DIR", dir).output().expect("run stormproof");
    assert!(out.status.success(), "stormproof {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Shop {
    dir: tempfile::TempDir,
    gateway: String,
    http: reqwest::Client,
    token: String,
}

impl Shop {
    async fn up(extra: &[&str]) -> (Shop, Duration) {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["up", "shop", "--detach", "--port", "0"];
        args.extend_from_slice(extra);
        let started = Instant::now();
        stormproof(dir.path(), &args);
        let took = started.elapsed();
        let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap()).unwrap();
        let gateway = state["gateway"].as_str().unwrap().to_string();
        let http = stormproof::http_client().pool_max_idle_per_host(64).build().unwrap();
        let token: Value = http
            .post(format!("{gateway}/auth/token"))
            .json(&json!({"username": "user1", "password": "stormproof"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_string();
        (Shop { dir, gateway, http, token }, took)
    }

    async fn order(&self) -> u16 {
        let body = json!({"productId": 1, "quantity": 1, "customerId": "user1", "customerName": "Kim", "customerAddr": "Seoul"});
        let response = self.http.post(format!("{}/orders", self.gateway)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        response.status().as_u16()
    }

    async fn consumed(&self, service: &str) -> u64 {
        let status: Value = serde_json::from_str(&stormproof(self.dir.path(), &["status", "--json"])).unwrap();
        let service = status.as_array().unwrap().iter().find(|s| s["name"] == service).unwrap().clone();
        let mut sum = 0;
        for replica in service["replicas"].as_array().unwrap() {
            let Some(address) = replica["address"].as_str() else { continue };
            let Ok(response) = self.http.get(format!("http://{address}/metrics")).send().await else { continue };
            let text = response.text().await.unwrap_or_default();
            for line in text.lines() {
                if line.starts_with("stormproof_events_consumed_total") {
                    sum += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap_or(0.0) as u64;
                }
            }
        }
        sum
    }

    fn down(self) {
        stormproof(self.dir.path(), &["down"]);
    }
}

#[tokio::main]
async fn main() {
    let mut ups = Vec::new();
    for _ in 0..3 {
        let (shop, took) = Shop::up(&[]).await;
        ups.push(took);
        shop.down();
    }
    ups.sort();
    println!("up → all replicas ready: median {:.2}s (runs: {:?})", ups[1].as_secs_f64(), ups.iter().map(|d| format!("{:.2}s", d.as_secs_f64())).collect::<Vec<_>>());

    let (shop, _) = Shop::up(&[]).await;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for _ in 0..50 {
        shop.order().await;
    }
    for _ in 0..1000 {
        let started = Instant::now();
        assert_eq!(shop.order().await, 201);
        latency.record(started.elapsed().as_micros() as u64).unwrap();
    }
    println!(
        "order placement through the gateway (1000 sequential POST /orders): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    shop.down();

    let orders = 5000;
    let (shop, _) = Shop::up(&["--replicas", "mypage=0"]).await;
    let placed = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..orders).map(|_| shop.order()).buffer_unordered(32).collect().await;
    assert!(statuses.iter().all(|s| *s == 201));
    println!("placed {orders} orders in {:.1}s ({:.0} orders/s, 32 concurrent)", placed.elapsed().as_secs_f64(), orders as f64 / placed.elapsed().as_secs_f64());
    while shop.consumed("delivery").await < orders as u64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let backlog = 2 * orders as u64; // OrderPlaced + DeliveryStarted per order
    let started = Instant::now();
    stormproof(shop.dir.path(), &["scale", "shop.mypage", "1"]);
    let mut first = None;
    loop {
        let applied = shop.consumed("mypage").await;
        if applied > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if applied >= backlog {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = started.elapsed();
    let first = first.unwrap_or(total);
    println!(
        "mypage catch-up over {backlog} events: {:.1}s from scale-up ({:.1}s to the first event applied), {:.0} events/s after the first",
        total.as_secs_f64(),
        first.as_secs_f64(),
        backlog as f64 / (total - first).as_secs_f64().max(0.001)
    );
    shop.down();
}
