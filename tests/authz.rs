//! Authorization through the gateway (issue 13 items 5 and 6), attacked for
//! real against a running shop: a second customer's token on the first's
//! order, an order placed as someone else, catalogue writes without the
//! admin role, spoofed identity headers, forged and expired tokens,
//! unsigned tokens and other algorithms, CORS from a foreign origin, and
//! the run's secret on disk. After the attacks, an order still reaches
//! DeliveryStarted through the gateway.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Shop, eventually};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

/// `method path` through the gateway with `token` (none when empty) and
/// extra `headers`: (status, body).
async fn call(shop: &Shop, token: &str, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (u16, Value) {
    shop.request_as(token, method, path, body, headers).await
}

fn order_of(customer: &str) -> Value {
    json!({"productId": 1, "quantity": 1, "customerId": customer, "customerName": "Kim", "customerAddr": "Seoul"})
}

fn reason(body: &Value) -> String {
    body["reason"].as_str().unwrap_or_default().to_string()
}

fn ids(body: &Value) -> Vec<i64> {
    body.as_array().unwrap_or_else(|| panic!("a list: {body}")).iter().filter_map(|o| o["id"].as_i64().or(o["orderId"].as_i64())).collect()
}

fn secret_of(shop: &Shop) -> String {
    std::fs::read_to_string(shop.dir.path().join("jwt-secret")).expect("the run's jwt-secret")
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_acts_only_for_themselves_and_attacks_get_401_or_403() {
    let shop = Shop::up(&[]).await;
    let (user1, user2, admin) = (shop.token_for("user1").await, shop.token_for("user2").await, shop.token_for("admin").await);

    // user1's own order: placed, read, listed.
    let (status, order) = call(&shop, &user1, Method::POST, "/orders", Some(order_of("user1")), &[]).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_i64().unwrap();
    let (status, _) = call(&shop, &user1, Method::GET, &format!("/orders/{id}"), None, &[]).await;
    assert_eq!(status, 200);
    let (_, own) = call(&shop, &user1, Method::GET, "/orders", None, &[]).await;
    assert!(ids(&own).contains(&id), "{own}");
    // Through the Kubernetes API server's service proxy the token travels as
    // X-Forwarded-Authorization (issue 19): verified the same way, and it
    // never outranks an Authorization header.
    let forwarded = format!("Bearer {user1}");
    let (status, body) = call(&shop, "", Method::GET, &format!("/orders/{id}"), None, &[("x-forwarded-authorization", forwarded.as_str())]).await;
    assert_eq!(status, 200, "{body}");
    let forged = sign(Algorithm::HS256, "not-the-secret", &json!({"sub": "user1", "exp": now() + 600}));
    let (status, body) = call(&shop, "", Method::GET, &format!("/orders/{id}"), None, &[("x-forwarded-authorization", format!("Bearer {forged}").as_str())]).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(&shop, &user2, Method::GET, &format!("/orders/{id}"), None, &[("x-forwarded-authorization", forwarded.as_str())]).await;
    assert_eq!(status, 403, "Authorization (user2) is the caller: {body}");

    // A second customer: no reading, cancelling or listing user1's order.
    let (status, body) = call(&shop, &user2, Method::GET, &format!("/orders/{id}"), None, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(reason(&body).contains("user1") && reason(&body).contains("user2"), "{body}");
    let (status, body) = call(&shop, &user2, Method::DELETE, &format!("/orders/{id}"), None, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&shop, &user2, Method::GET, "/orders?customerId=user1", None, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (status, theirs) = call(&shop, &user2, Method::GET, "/orders", None, &[]).await;
    assert_eq!(status, 200, "{theirs}");
    assert!(!ids(&theirs).contains(&id), "user2's unfiltered list shows user1's order: {theirs}");
    let (status, body) = call(&shop, &user2, Method::POST, "/orders", Some(order_of("user1")), &[]).await;
    assert_eq!(status, 403, "an order placed as another customerId: {body}");
    assert!(reason(&body).contains("customerId"), "{body}");

    // mypage rows likewise, once the read model has user1's row.
    eventually(Duration::from_secs(60), "user1's mypage row", || async {
        let (status, rows) = call(&shop, &user1, Method::GET, "/mypages", None, &[]).await;
        if status == 200 && ids(&rows).contains(&id) { Ok(()) } else { Err(format!("{status} {rows}")) }
    })
    .await;
    let (status, body) = call(&shop, &user2, Method::GET, &format!("/mypages/{id}"), None, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&shop, &user2, Method::GET, "/mypages?customerId=user1", None, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (_, theirs) = call(&shop, &user2, Method::GET, "/mypages", None, &[]).await;
    assert!(!ids(&theirs).contains(&id), "{theirs}");

    // The catalogue: a customer may not write it, the admin may.
    let product = json!({"name": "LAMP", "price": 5000, "stock": 10});
    for (method, path, body) in [(Method::POST, "/products", Some(product.clone())), (Method::PATCH, "/products/1", Some(json!({"price": 1}))), (Method::DELETE, "/products/1", None)] {
        let (status, answer) = call(&shop, &user1, method.clone(), path, body, &[]).await;
        assert_eq!(status, 403, "{method} {path} as user1: {answer}");
        assert!(reason(&answer).contains("admin"), "{answer}");
    }
    let (status, created) = call(&shop, &admin, Method::POST, "/products", Some(product), &[]).await;
    assert_eq!(status, 201, "{created}");
    let new_id = created["id"].as_i64().unwrap();
    let (status, body) = call(&shop, &admin, Method::PATCH, &format!("/products/{new_id}"), Some(json!({"price": 6000})), &[]).await;
    assert_eq!((status, body["price"].as_i64()), (200, Some(6000)), "{body}");
    let (status, _) = call(&shop, &admin, Method::DELETE, &format!("/products/{new_id}"), None, &[]).await;
    assert_eq!(status, 204);
    let (status, _) = call(&shop, &admin, Method::GET, &format!("/orders/{id}"), None, &[]).await;
    assert_eq!(status, 200, "the admin reads any customer's order");

    // Spoofed identity headers are dropped: user2 claiming to be user1, an admin.
    let spoof = [("x-stormproof-subject", "user1"), ("x-stormproof-roles", "admin")];
    let (status, body) = call(&shop, &user2, Method::GET, &format!("/orders/{id}"), None, &spoof).await;
    assert_eq!(status, 403, "spoofed subject honoured: {body}");
    let (status, body) = call(&shop, &user2, Method::POST, "/products", Some(json!({"name": "X", "price": 1, "stock": 1})), &spoof).await;
    assert_eq!(status, 403, "spoofed role honoured: {body}");
    let (_, theirs) = call(&shop, &user2, Method::GET, "/orders", None, &spoof).await;
    assert!(!ids(&theirs).contains(&id), "{theirs}");
    let (status, _) = call(&shop, "", Method::GET, "/orders", None, &spoof).await;
    assert_eq!(status, 401, "identity headers are no token");

    // Token attacks, each built from a valid token of user1 and the run's real secret.
    let secret = secret_of(&shop);
    let claims = |exp: u64| json!({"sub": "user1", "iat": now(), "exp": exp, "iss": "stormproof"});
    let payload = user1.split('.').nth(1).unwrap().to_string();
    let attacks = [
        ("missing token", String::new(), "missing"),
        ("forged signature", sign(Algorithm::HS256, "not-the-secret", &claims(now() + 600)), "signature"),
        ("expired", sign(Algorithm::HS256, &secret, &claims(now() - 3600)), "expired"),
        ("alg none", format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)), "none"),
        ("HS384 with the real secret", sign(Algorithm::HS384, &secret, &claims(now() + 600)), "HS384"),
        ("HS512 with the real secret", sign(Algorithm::HS512, &secret, &claims(now() + 600)), "HS512"),
        ("RS256 header", format!("{}.{payload}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode("sig")), "RS256"),
        ("no exp", sign(Algorithm::HS256, &secret, &json!({"sub": "user1", "iss": "stormproof"})), "exp"),
    ];
    for (attack, token, why) in &attacks {
        let (status, body) = call(&shop, token, Method::GET, "/orders", None, &[]).await;
        assert_eq!(status, 401, "{attack}: {body}");
        assert!(reason(&body).contains(why), "{attack}: the reason `{}` does not say `{why}`", reason(&body));
        println!("{attack:>28} → {status} {}", reason(&body));
    }
    // The real secret signs a token the gateway accepts: the attacks above failed for their one flaw.
    let (status, _) = call(&shop, &sign(Algorithm::HS256, &secret, &claims(now() + 600)), Method::GET, "/orders", None, &[]).await;
    assert_eq!(status, 200);

    // The secret is the owner's alone.
    let mode = std::fs::metadata(shop.dir.path().join("jwt-secret")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // CORS: a foreign origin gets no allow-origin, a local dev server does.
    let gateway_origin = shop.gateway.trim_end_matches('/').to_string();
    for (origin, allowed) in [("http://evil.example", false), ("http://localhost:5173", true), ("http://localhost:3000", true), (gateway_origin.as_str(), true)] {
        let response = shop
            .http
            .request(Method::OPTIONS, format!("{}/orders", shop.gateway))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
            .await
            .unwrap();
        let allow = response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(allow.as_deref(), allowed.then_some(origin), "preflight from {origin}");
    }

    // Direct access to a service (the course's direct flows) is as before.
    let order_url = shop.state["services"]["order"].as_str().unwrap();
    let direct = shop.http.get(format!("{order_url}/orders/{id}")).send().await.unwrap();
    assert_eq!(direct.status(), 200);

    // Checkpoint 5's experiment makes the same attacks as flows, as user1.
    let reports = tempfile::tempdir().unwrap();
    let experiment = concat!(env!("CARGO_MANIFEST_DIR"), "/chaos/shop/gateway.yaml");
    let out = shop.cli(&["chaos", "run", experiment, "--reports", reports.path().to_str().unwrap()]);
    let run = std::fs::read_dir(reports.path()).unwrap().next().expect("a run folder").unwrap().path();
    let journal: Value = serde_json::from_str(&std::fs::read_to_string(run.join("journal.json")).unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(journal["status"], "passed", "{journal:#}");
    let evidence = journal["steady_states"]["before"].to_string();
    assert!(evidence.matches("→ 401").count() >= 6 && evidence.matches("→ 403").count() >= 3, "{evidence}");

    // After all that, user1's order flow still reaches DeliveryStarted.
    let (status, order) = call(&shop, &user1, Method::POST, "/orders", Some(order_of("user1")), &[]).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_i64().unwrap();
    eventually(Duration::from_secs(90), "user1's new order DeliveryStarted in mypage", || async {
        let (status, row) = call(&shop, &user1, Method::GET, &format!("/mypages/{id}"), None, &[]).await;
        if status == 200 && row["deliveryStatus"] == "DeliveryStarted" { Ok(()) } else { Err(format!("{status} {row}")) }
    })
    .await;
    let (status, deliveries) = call(&shop, &user1, Method::GET, &format!("/deliveries?orderId={id}"), None, &[]).await;
    assert_eq!((status, deliveries[0]["status"].as_str()), (200, Some("DeliveryStarted")), "{deliveries}");
    shop.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_run_signs_with_its_own_secret_unless_one_is_given() {
    let first = Shop::up(&[]).await;
    let (secret, old_token) = (secret_of(&first), first.token_for("user1").await);
    first.down();
    let second = Shop::up(&[]).await;
    assert_ne!(secret_of(&second), secret, "two runs, one secret");
    assert!(secret.len() >= 32, "a short secret: {secret}");
    let (status, body) = call(&second, &old_token, Method::GET, "/orders", None, &[]).await;
    assert_eq!(status, 401, "the first run's token works on the second: {body}");
    second.down();

    let given = Shop::up(&["--jwt-secret", "a-secret-of-my-own"]).await;
    assert!(!given.dir.path().join("jwt-secret").exists(), "a given secret is not written to the run dir");
    let mine = sign(Algorithm::HS256, "a-secret-of-my-own", &json!({"sub": "user1", "iat": now(), "exp": now() + 600, "iss": "stormproof"}));
    let (status, body) = call(&given, &mine, Method::GET, "/orders", None, &[]).await;
    assert_eq!(status, 200, "{body}");
    given.down();
}
