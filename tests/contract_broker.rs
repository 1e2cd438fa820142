//! Pact Broker support against a stand-in: no real Pact Broker (a Ruby
//! application) can run on this machine, so this file serves the broker's
//! documented HTTP endpoints that stormproof and the Pact verifier use —
//! publish a pact, the HAL index, pacts for verification, fetching a pact,
//! publishing verification results and branches, and the can-i-deploy
//! matrix — with the state kept in memory. Selectors are not evaluated: the
//! stand-in hands out the latest pact of each consumer.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use stormproof::exit::{FAILED, PASSED};

#[derive(Default)]
struct Broker {
    base: String,
    /// (provider, consumer) → (consumer version, pact).
    pacts: BTreeMap<(String, String), (String, Value)>,
    /// (provider, provider version, consumer, consumer version) → success.
    results: Vec<(String, String, String, String, bool)>,
    branches: Vec<(String, String, String)>,
}

type Shared = Arc<Mutex<Broker>>;

async fn index(State(b): State<Shared>) -> axum::Json<Value> {
    let base = b.lock().unwrap().base.clone();
    axum::Json(json!({"_links": {
        "pb:provider-pacts-for-verification": {"href": format!("{base}/pacts/provider/{{provider}}/for-verification"), "templated": true}
    }}))
}

async fn for_verification_link(State(b): State<Shared>, Path(provider): Path<String>) -> axum::Json<Value> {
    let base = b.lock().unwrap().base.clone();
    axum::Json(json!({"_links": {"self": {"href": format!("{base}/pacts/provider/{provider}/for-verification")}}}))
}

async fn for_verification(State(b): State<Shared>, Path(provider): Path<String>) -> axum::Json<Value> {
    let b = b.lock().unwrap();
    let pacts: Vec<Value> = b
        .pacts
        .iter()
        .filter(|((p, _), _)| *p == provider)
        .map(|((p, c), (v, _))| {
            json!({"shortDescription": format!("latest of {c}"), "verificationProperties": {"pending": false, "notices": []},
                   "_links": {"self": {"href": format!("{}/pacts/provider/{p}/consumer/{c}/version/{v}", b.base)}}})
        })
        .collect();
    axum::Json(json!({"_embedded": {"pacts": pacts}}))
}

async fn get_pact(State(b): State<Shared>, Path((p, c, v)): Path<(String, String, String)>) -> axum::Json<Value> {
    let b = b.lock().unwrap();
    let mut pact = b.pacts[&(p.clone(), c.clone())].1.clone();
    pact["_links"] = json!({
        "pb:publish-verification-results": {"href": format!("{}/pacts/provider/{p}/consumer/{c}/version/{v}/verification-results", b.base)},
        "pb:provider": {"href": format!("{}/pacticipants/{p}", b.base)}
    });
    axum::Json(pact)
}

async fn put_pact(State(b): State<Shared>, Path((p, c, v)): Path<(String, String, String)>, axum::Json(pact): axum::Json<Value>) -> axum::Json<Value> {
    b.lock().unwrap().pacts.insert((p, c), (v, pact));
    axum::Json(json!({}))
}

async fn post_result(State(b): State<Shared>, Path((p, c, v)): Path<(String, String, String)>, axum::Json(r): axum::Json<Value>) -> axum::Json<Value> {
    let version = r["providerApplicationVersion"].as_str().unwrap().to_string();
    b.lock().unwrap().results.push((p, version, c, v, r["success"].as_bool().unwrap()));
    axum::Json(json!({}))
}

async fn pacticipant(State(b): State<Shared>, Path(name): Path<String>) -> axum::Json<Value> {
    let base = b.lock().unwrap().base.clone();
    axum::Json(json!({"name": name, "_links": {
        "pb:branch-version": {"href": format!("{base}/pacticipants/{name}/branches/{{branch}}/versions/{{version}}"), "templated": true}
    }}))
}

async fn put_branch(State(b): State<Shared>, Path((name, branch, version)): Path<(String, String, String)>) -> axum::Json<Value> {
    b.lock().unwrap().branches.push((name, branch, version));
    axum::Json(json!({}))
}

async fn put_tag() -> axum::Json<Value> {
    axum::Json(json!({}))
}

/// can-i-deploy for a provider version: every consumer's latest pact must
/// have a successful result from that version.
async fn matrix(State(b): State<Shared>, RawQuery(query): RawQuery) -> axum::Json<Value> {
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let (who, version) = (query["q[][pacticipant]"].clone(), query["q[][version]"].clone());
    let b = b.lock().unwrap();
    let mut rows = Vec::new();
    let mut deployable = true;
    for ((p, c), (cv, _)) in b.pacts.iter().filter(|((p, _), _)| *p == who) {
        let success = b.results.iter().rev().find(|r| r.0 == *p && r.1 == version && r.2 == *c && r.3 == *cv).map(|r| r.4);
        deployable &= success == Some(true);
        rows.push(json!({"consumer": {"name": c, "version": {"number": cv}}, "provider": {"name": p, "version": {"number": version}},
                         "verificationResult": success.map(|s| json!({"success": s}))}));
    }
    deployable &= !rows.is_empty();
    let reason = if deployable { "All required verification results are published and successful" } else { "Missing or failed verification results" };
    axum::Json(json!({"summary": {"deployable": deployable, "reason": reason}, "matrix": rows}))
}

async fn start() -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state: Shared = Arc::new(Mutex::new(Broker { base: base.clone(), ..Broker::default() }));
    let app = Router::new()
        .route("/", get(index))
        .route("/pacts/provider/{p}/for-verification", get(for_verification_link).post(for_verification))
        .route("/pacts/provider/{p}/consumer/{c}/version/{v}", get(get_pact).put(put_pact))
        .route("/pacts/provider/{p}/consumer/{c}/version/{v}/verification-results", post(post_result))
        .route("/pacticipants/{name}", get(pacticipant))
        .route("/pacticipants/{name}/branches/{branch}/versions/{version}", put(put_branch))
        .route("/pacticipants/{name}/versions/{version}/tags/{tag}", put(put_tag))
        .route("/matrix", get(matrix))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state)
}

async fn stormproof(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(common::BIN)
        .arg("contract")
        .args(args)
        .current_dir(dir.path())
        .env("PACT_DO_NOT_TRACK", "true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("stormproof contract {args:?}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_verify_and_can_i_deploy_through_a_broker() {
    let (url, broker) = start().await;
    let pacts = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/shop");
    let (code, out) = stormproof(&["publish", pacts, "--consumer-app-version", "c1", "--branch", "main", "--tag", "prod", "--broker-url", &url]).await;
    assert_eq!(code, PASSED, "{out}");
    assert_eq!(broker.lock().unwrap().pacts.len(), 5, "{out}");
    assert!(out.contains("published shop.order → shop.product (c1)"), "{out}");

    // Verified from the broker, results published: deployable.
    let verify = |version: &'static str, variant: Option<&'static str>| {
        let url = url.clone();
        async move {
            let triggers = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/shop/triggers.yaml");
            let mut args = vec!["verify", "--provider", "shop.product", "--broker-url", &url, "--triggers", triggers];
            args.extend(["--publish", "--provider-version", version, "--provider-branch", "main"]);
            if let Some(variant) = variant {
                args.extend(["--variant", variant]);
            }
            stormproof(&args).await
        }
    };
    let (code, out) = verify("p1", None).await;
    assert_eq!(code, PASSED, "{out}");
    {
        let b = broker.lock().unwrap();
        assert_eq!(b.results, vec![("shop.product".into(), "p1".into(), "shop.order".into(), "c1".into(), true)]);
        assert!(b.branches.contains(&("shop.product".into(), "main".into(), "p1".into())));
    }
    let (code, out) = stormproof(&["can-i-deploy", "--pacticipant", "shop.product", "--version", "p1", "--broker-url", &url]).await;
    assert_eq!(code, PASSED, "{out}");

    // The course's breaking change: verification fails, results say so, and
    // can-i-deploy stops it.
    let (code, out) = verify("p2", Some("item-rename")).await;
    assert_eq!(code, FAILED, "{out}");
    assert!(!broker.lock().unwrap().results.last().unwrap().4, "the failure is published");
    let (code, out) = stormproof(&["can-i-deploy", "--pacticipant", "shop.product", "--version", "p2", "--broker-url", &url]).await;
    assert_eq!(code, FAILED, "{out}");
    assert!(out.contains("can I deploy shop.product p2? NO"), "{out}");
}
