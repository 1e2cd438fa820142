//! Test harness: a real shop on the local platform (real processes, real
//! broker, loopback HTTP) in a temp run dir, and helpers to drive it.
#![allow(dead_code)]

pub mod chaos;
pub mod pact;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_stormproof");

/// Says that the running test is skipped, and why, where `cargo test`
/// shows it even when the test passes: libtest captures `println!` and
/// `eprintln!`, not a direct write to stdout.
pub fn skipped(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = writeln!(std::io::stdout(), "SKIPPED {test}: {why}");
}

/// Runs the stormproof binary with `args` in run dir `dir`.
pub fn stormproof(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("STORMPROOF_RUN_DIR", dir)
        .env_remove("STORMPROOF_PORT")
        .output()
        .expect("run stormproof")
}

/// A shop running in the background for one test.
pub struct Shop {
    pub dir: tempfile::TempDir,
    pub gateway: String,
    pub state: Value,
    pub http: reqwest::Client,
    token: String,
    stopped: bool,
}

impl Shop {
    /// `stormproof up shop --detach --port 0` plus `extra` arguments.
    pub async fn up(extra: &[&str]) -> Shop {
        Shop::up_system("shop", extra).await
    }

    /// `stormproof up SYSTEM --detach --port 0` plus `extra` arguments: any
    /// system, driven through the same helpers.
    pub async fn up_system(system: &str, extra: &[&str]) -> Shop {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["up", system, "--detach", "--port", "0", "--grace", "5s"];
        args.extend_from_slice(extra);
        let out = stormproof(dir.path(), &args);
        assert!(out.status.success(), "up failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap()).unwrap();
        let gateway = state["gateway"].as_str().unwrap().to_string();
        let http = stormproof::http_client().timeout(Duration::from_secs(15)).build().unwrap();
        let token = token(&http, &gateway, "admin", "stormproof").await;
        Shop { dir, gateway, state, http, token, stopped: false }
    }

    /// The demo staff user's bearer token (the admin role: the tests drive
    /// many synthetic customers and write the catalogue).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A bearer token of demo user `user`.
    pub async fn token_for(&self, user: &str) -> String {
        token(&self.http, &self.gateway, user, "stormproof").await
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        stormproof(self.dir.path(), args)
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "stormproof {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn scale(&self, service: &str, replicas: u32) {
        self.cli_ok(&["scale", service, &replicas.to_string(), "--wait", "--timeout", "90s"]);
    }

    /// The platform's service list (`status --json`).
    pub fn services(&self) -> Value {
        serde_json::from_str(&self.cli_ok(&["status", "--json"])).unwrap()
    }

    /// Every process the platform runs now, plus `up` itself.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.state["pid"].as_u64().unwrap() as u32];
        for service in self.services().as_array().unwrap() {
            for replica in service["replicas"].as_array().unwrap() {
                if let Some(pid) = replica["pid"].as_u64() {
                    pids.push(pid as u32);
                }
            }
        }
        pids
    }

    /// Addresses of the ready replicas of `service`.
    pub fn replica_addresses(&self, service: &str) -> Vec<String> {
        let services = self.services();
        let service = services.as_array().unwrap().iter().find(|s| s["name"] == service).unwrap().clone();
        service["replicas"].as_array().unwrap().iter().filter_map(|r| r["address"].as_str().map(str::to_string)).collect()
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.request_as(&self.token, method, path, body, &[]).await
    }

    /// `method path` through the gateway with `token` (none when empty) and
    /// extra `headers`: (status, body).
    pub async fn request_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.gateway));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request through the gateway");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// Places an order for `product` and returns (status, body).
    pub async fn place_order(&self, product: i64, quantity: i64, customer: &str) -> (u16, Value) {
        let body = json!({"productId": product, "quantity": quantity, "customerId": customer,
                          "customerName": "Kim", "customerAddr": "Seoul"});
        self.request(reqwest::Method::POST, "/orders", Some(body)).await
    }

    /// Places `n` orders and returns their ids (each must be accepted).
    pub async fn place_orders(&self, n: usize, customer: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 0..n {
            let (status, body) = self.place_order(1 + (i as i64 % 4), 1, customer).await;
            assert_eq!(status, 201, "order {i} not accepted: {body}");
            ids.push(body["id"].as_i64().unwrap());
        }
        ids
    }

    /// mypage rows of `customer`.
    pub async fn mypage(&self, customer: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/mypages?customerId={customer}")).await;
        if status != 200 {
            return vec![];
        }
        body.as_array().cloned().unwrap_or_default()
    }

    /// Stops the shop and checks that no process it started is left.
    pub fn down(mut self) {
        let pids = self.pids();
        assert!(pids.len() >= 6, "expected up, the broker and the services: {pids:?}");
        self.cli_ok(&["down"]);
        self.stopped = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        let alive = loop {
            let alive: Vec<u32> = pids.iter().copied().filter(|p| stormproof::platform::local::pid_alive(*p)).collect();
            if alive.is_empty() || Instant::now() > deadline {
                break alive;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(alive.is_empty(), "processes left behind after down: {alive:?}");
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = stormproof(self.dir.path(), &["down"]);
        }
    }
}

pub async fn token(http: &reqwest::Client, gateway: &str, user: &str, password: &str) -> String {
    let response = http
        .post(format!("{gateway}/auth/token"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("{what} did not happen within {timeout:?}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until mypage of `customer` shows exactly `ids`, each with
/// `delivery` status and `events` events applied.
pub async fn mypage_shows(shop: &Shop, customer: &str, ids: &[i64], delivery: &str, events: i64) -> Vec<Value> {
    eventually(Duration::from_secs(90), &format!("mypage showing {} orders {delivery}", ids.len()), || async {
        let rows = shop.mypage(customer).await;
        let mut seen: Vec<i64> = rows.iter().map(|r| r["orderId"].as_i64().unwrap()).collect();
        seen.sort();
        let mut want = ids.to_vec();
        want.sort();
        let done = rows.iter().filter(|r| r["deliveryStatus"] == delivery && r["eventsApplied"] == events).count();
        if seen == want && done == ids.len() {
            Ok(rows)
        } else {
            Err(format!("{} rows, {done} {delivery} with {events} events", rows.len()))
        }
    })
    .await
}

/// Sum of a Prometheus counter over the replicas at `addresses`.
pub async fn counter_sum(http: &reqwest::Client, addresses: &[String], metric: &str, label: &str) -> u64 {
    let mut sum = 0;
    for address in addresses {
        let text = http.get(format!("http://{address}/metrics")).send().await.unwrap().text().await.unwrap();
        for line in text.lines() {
            if line.starts_with(metric) && line.contains(label) {
                sum += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64;
            }
        }
    }
    sum
}

/// Orders placed through the gateway by `users` concurrent clients until
/// stopped: what a user of the shop sees during a rollout or a surge.
pub struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

/// Requests answered 2xx, and how each other one ended.
pub struct Served {
    pub ok: u64,
    pub failures: Vec<String>,
}

impl Traffic {
    pub fn start(shop: &Shop, users: usize) -> Traffic {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..users)
            .map(|user| {
                let (http, url, token, stop) = (shop.http.clone(), format!("{}/orders", shop.gateway), shop.token.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failures) = (0, Vec::new());
                    let body = json!({"productId": 1 + (user % 4), "quantity": 1, "customerId": format!("traffic-{user}"),
                                      "customerName": "Lee", "customerAddr": "Daegu"});
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match http.post(&url).bearer_auth(&token).json(&body).send().await {
                            Ok(r) if r.status().is_success() => ok += 1,
                            Ok(r) => failures.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                            Err(err) => failures.push(err.to_string()),
                        }
                    }
                    (ok, failures)
                })
            })
            .collect();
        Traffic { stop, tasks }
    }

    pub async fn stop(self) -> Served {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut served = Served { ok: 0, failures: Vec::new() };
        for task in self.tasks {
            let (ok, failures) = task.await.unwrap();
            served.ok += ok;
            served.failures.extend(failures);
        }
        served
    }
}

/// The `name` entry of `status --json`.
pub fn service(services: &Value, name: &str) -> Value {
    services.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone()
}

/// Opens `page` (a file) in headless Chromium with `extra` flags (say
/// `--dump-dom` or `--screenshot=PNG`), in a profile of its own, and
/// returns what it printed; panics when it fails. Chromium is required,
/// not skipped: `.ci/run` installs Debian's.
pub fn headless_chromium(page: &Path, extra: &[String]) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists());
    let chromium = chromium.expect("Chromium is needed to check the HTML reports (.ci/run installs Debian's chromium)");
    let profile = tempfile::tempdir().unwrap();
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
    let out = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium {extra:?} {}: {}", page.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `page`'s DOM as headless Chromium built it.
pub fn chromium_dom(page: &Path) -> String {
    headless_chromium(page, &["--dump-dom".to_string()])
}
