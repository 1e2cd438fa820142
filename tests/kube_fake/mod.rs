//! A fake Kubernetes API server for the kube platform's tests — the one
//! fake the project accepts. It serves the real paths kube-rs uses
//! (Deployments and their `scale` subresource, ReplicaSets, pods and the
//! eviction subresource, autoscaling/v2 HPAs, Services, Secrets,
//! ConfigMaps, StatefulSets, Jobs and their pods' logs, NetworkPolicies,
//! Chaos Mesh's NetworkChaos with its API discovery once the test installs
//! it, and the `proxy` subresources of pods and Services, forwarded to a
//! local server standing in for the pod) over loopback HTTP with
//! Kubernetes' behaviour: merge,
//! strategic-merge and server-side-apply patches, generation bumps on spec
//! changes, `Status` objects for errors, and controllers that only act when
//! the test calls `tick` (see controller.rs). Every request is logged.
#![allow(dead_code)]

mod controller;
mod patch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use controller::{key, timestamp};

/// One request as the API server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
}

impl Logged {
    /// Whether the request changes state (anything but GET).
    pub fn mutating(&self) -> bool {
        self.method != "GET"
    }

    /// Whether it asked for the server's dry run (`dryRun=All`).
    pub fn dry_run(&self) -> bool {
        self.query.split('&').any(|kv| kv == "dryRun=All")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The cluster state behind the fake.
#[derive(Default)]
pub struct Cluster {
    objects: BTreeMap<(String, String, String), Value>,
    log: Vec<Logged>,
    serial: u64,
    resource_version: u64,
    /// Deployments whose new pods never become ready.
    stuck: BTreeSet<String>,
    /// Deployments whose rollout exceeded its progress deadline.
    deadline_exceeded: BTreeSet<String>,
    /// Run the controllers to a steady state before answering each request
    /// (for tests that drive the CLI in another process).
    auto_converge: bool,
    /// Each pod's kit switches, as set through the pod proxy.
    switches: BTreeMap<String, Value>,
    /// A label change another writer makes just before the next change to
    /// a Deployment arrives: (namespace, deployment, label, new value).
    concurrent: Option<(String, String, String, Option<String>)>,
    /// Whether Chaos Mesh's CRDs are installed (its API group is served).
    chaos_mesh: bool,
    /// What a Job's pod does, given the Job: its log, and whether it succeeded.
    /// Without one, Jobs get no pods (as with no node to run them).
    job_runner: Option<JobRunner>,
    /// Each pod's log.
    logs: BTreeMap<String, String>,
    /// The servers standing in for Services' pods, by Service name.
    backends: BTreeMap<String, String>,
}

/// Runs a Job's pod in the fake: its log, and whether it exited 0.
pub type JobRunner = Arc<dyn Fn(&Value) -> (String, bool) + Send + Sync>;

/// The running fake.
pub struct FakeKube {
    pub url: String,
    cluster: Arc<Mutex<Cluster>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Another way into the same fake cluster, for a task that watches it.
#[derive(Clone)]
pub struct FakeView {
    cluster: Arc<Mutex<Cluster>>,
}

impl FakeView {
    pub fn list(&self, plural: &str, namespace: &str) -> Vec<Value> {
        self.cluster.lock().expect("not poisoned").list(plural, namespace)
    }
}

impl FakeKube {
    pub fn view(&self) -> FakeView {
        FakeView { cluster: self.cluster.clone() }
    }

    /// Starts on 127.0.0.1 and a free port, on its own thread.
    pub fn start() -> FakeKube {
        let cluster = Arc::new(Mutex::new(Cluster::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = cluster.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let cluster = shared.clone();
                    async move {
                        match service_backend(&cluster, &method, &uri, &headers, &body) {
                            Some(url) => forward(url, method, headers, body).await,
                            None => handle(&cluster, method, uri, headers, body),
                        }
                    }
                });
                axum::serve(listener, app).with_graceful_shutdown(async { let _ = stopped.await; }).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("fake API server address");
        FakeKube { url: format!("http://{addr}"), cluster, stop: Some(stop), thread: Some(thread) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().expect("not poisoned"))
    }

    /// Creates objects (a multi-document YAML) as `kubectl create` would, unlogged.
    pub fn create_yaml(&self, namespace: &str, yaml: &str) {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("YAML");
        self.with(|c| {
            for doc in docs.into_iter().filter(|d| !d.is_null()) {
                let plural = plural_of(doc["kind"].as_str().expect("kind"));
                let name = doc["metadata"]["name"].as_str().expect("name").to_string();
                c.create(&plural, namespace, &name, doc);
            }
        });
    }

    /// One step of every controller.
    pub fn tick(&self) {
        self.with(Cluster::tick);
    }

    /// Ticks until nothing changes (at most 50 ticks).
    pub fn converge(&self) {
        self.with(Cluster::converge);
    }

    pub fn auto_converge(&self, on: bool) {
        self.with(|c| c.auto_converge = on);
    }

    pub fn set_stuck(&self, deployment: &str, stuck: bool) {
        self.with(|c| if stuck { c.stuck.insert(deployment.into()) } else { c.stuck.remove(deployment) });
    }

    pub fn exceed_deadline(&self, deployment: &str) {
        self.with(|c| c.deadline_exceeded.insert(deployment.into()));
    }

    /// Sets the restart count of every container of `pod`.
    pub fn set_restarts(&self, namespace: &str, pod: &str, restarts: i64) {
        self.with(|c| {
            let pod = c.objects.get_mut(&key("pods", namespace, pod)).expect("pod");
            for s in pod["status"]["containerStatuses"].as_array_mut().expect("statuses") {
                s["restartCount"] = json!(restarts);
            }
        });
    }

    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.with(|c| c.objects.get(&key(plural, namespace, name)).cloned())
    }

    pub fn list(&self, plural: &str, namespace: &str) -> Vec<Value> {
        self.with(|c| c.list(plural, namespace))
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.with(|c| c.log.clone())
    }

    pub fn mutating_requests(&self) -> Vec<Logged> {
        self.requests().into_iter().filter(Logged::mutating).collect()
    }

    /// The switches of `pod` as last set through the pod proxy.
    pub fn switches(&self, pod: &str) -> Option<Value> {
        self.with(|c| c.switches.get(pod).cloned())
    }

    /// Makes another writer change `label` of `deployment` right before
    /// the next change to it arrives — after any check that read it.
    pub fn before_next_change(&self, namespace: &str, deployment: &str, label: &str, value: Option<&str>) {
        self.with(|c| c.concurrent = Some((namespace.into(), deployment.into(), label.into(), value.map(str::to_string))));
    }

    /// Changes `deployment`'s labels behind the client's back (a concurrent
    /// writer), bumping its resourceVersion.
    pub fn relabel(&self, namespace: &str, deployment: &str, label: &str, value: Option<&str>) {
        self.with(|c| c.relabel(namespace, deployment, label, value));
    }

    /// Installs Chaos Mesh: its API group is discovered and NetworkChaos objects are stored.
    pub fn install_chaos_mesh(&self) {
        self.with(|c| c.chaos_mesh = true);
    }

    /// Runs every Job's pod with `runner` (at the next tick).
    pub fn run_jobs(&self, runner: impl Fn(&Value) -> (String, bool) + Send + Sync + 'static) {
        self.with(|c| c.job_runner = Some(Arc::new(runner)));
    }

    /// Makes `url` stand in for the pods behind Service `service`: its proxy
    /// subresource forwards there.
    pub fn serve_service(&self, service: &str, url: &str) {
        self.with(|c| c.backends.insert(service.into(), url.trim_end_matches('/').into()));
    }

    pub fn clear_log(&self) {
        self.with(|c| c.log.clear());
    }

    /// A kubeconfig in `dir` with context `kind-stormproof` (namespace
    /// `shop`) and context `production`, both pointing at this fake.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: kind-stormproof\n  context:\n    cluster: fake\n    user: fake\n    namespace: shop\n- name: production\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: production\n",
            self.url
        );
        std::fs::write(&path, yaml).expect("write kubeconfig");
        path
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn plural_of(kind: &str) -> String {
    match kind {
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers".into(),
        "NetworkChaos" => "networkchaos".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

/// apiVersion and kind of a resource, by its plural.
fn kind_of(plural: &str) -> Option<(&'static str, &'static str)> {
    Some(match plural {
        "pods" => ("v1", "Pod"),
        "services" => ("v1", "Service"),
        "secrets" => ("v1", "Secret"),
        "configmaps" => ("v1", "ConfigMap"),
        "deployments" => ("apps/v1", "Deployment"),
        "replicasets" => ("apps/v1", "ReplicaSet"),
        "horizontalpodautoscalers" => ("autoscaling/v2", "HorizontalPodAutoscaler"),
        "jobs" => ("batch/v1", "Job"),
        "networkpolicies" => ("networking.k8s.io/v1", "NetworkPolicy"),
        "networkchaos" => (CHAOS_MESH, "NetworkChaos"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        _ => return None,
    })
}

impl Cluster {
    fn relabel(&mut self, namespace: &str, deployment: &str, label: &str, value: Option<&str>) {
        let mut object = self.objects[&key("deployments", namespace, deployment)].clone();
        match value {
            Some(v) => object["metadata"]["labels"][label] = json!(v),
            None => {
                object["metadata"]["labels"].as_object_mut().expect("labels").remove(label);
            }
        }
        self.update("deployments", namespace, deployment, object);
    }

    fn converge(&mut self) {
        for _ in 0..50 {
            let before = format!("{:?}", self.objects);
            self.tick();
            if format!("{:?}", self.objects) == before {
                return;
            }
        }
    }

    fn list(&self, plural: &str, ns: &str) -> Vec<Value> {
        self.objects.iter().filter(|((p, n, _), _)| p == plural && n == ns).map(|(_, o)| o.clone()).collect()
    }

    fn insert(&mut self, plural: &str, ns: &str, mut object: Value) {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let name = object["metadata"]["name"].as_str().expect("name").to_string();
        self.objects.insert(key(plural, ns, &name), object);
    }

    /// Creates an object with the API server's defaults.
    fn create(&mut self, plural: &str, ns: &str, name: &str, mut object: Value) -> Value {
        self.serial += 1;
        let (api_version, kind) = kind_of(plural).expect("known kind");
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        object["metadata"]["name"] = json!(name);
        object["metadata"]["namespace"] = json!(ns);
        object["metadata"]["uid"] = json!(format!("{plural}-{name}-{}", self.serial));
        object["metadata"]["creationTimestamp"] = json!(timestamp(self.serial));
        object["metadata"]["generation"] = json!(1);
        if plural == "deployments" {
            default_deployment(&mut object);
        }
        if plural == "secrets" {
            encode_string_data(&mut object);
        }
        self.insert(plural, ns, object.clone());
        self.objects[&key(plural, ns, name)].clone()
    }

    /// Stores `updated` in place of the current object, bumping the
    /// generation when the spec changed.
    fn update(&mut self, plural: &str, ns: &str, name: &str, mut updated: Value) -> Value {
        let current = self.objects[&key(plural, ns, name)].clone();
        if plural == "deployments" {
            default_deployment(&mut updated);
        }
        if plural == "secrets" {
            encode_string_data(&mut updated);
        }
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        let bumped = if updated["spec"] != current["spec"] { generation + 1 } else { generation };
        updated["metadata"]["generation"] = json!(bumped);
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            updated["metadata"][field] = current["metadata"][field].clone();
        }
        updated["status"] = current["status"].clone();
        self.insert(plural, ns, updated);
        self.objects[&key(plural, ns, name)].clone()
    }
}

/// The Deployment defaults the API server fills in.
fn default_deployment(object: &mut Value) {
    let spec = &mut object["spec"];
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
    if spec["strategy"].is_null() {
        spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    }
    if spec["progressDeadlineSeconds"].is_null() {
        spec["progressDeadlineSeconds"] = json!(600);
    }
}

const CHAOS_MESH: &str = "chaos-mesh.org/v1alpha1";

/// Chaos Mesh's group as API discovery lists it (the resources stormproof
/// looks for, and one it does not use).
fn chaos_mesh_resources() -> Value {
    let resource = |name: &str, kind: &str| json!({"name": name, "singularName": name, "namespaced": true, "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]});
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": CHAOS_MESH,
        "resources": [resource("podchaos", "PodChaos"), resource("networkchaos", "NetworkChaos")]})
}

/// A Secret's `stringData` is write-only: the API server merges it into
/// `data`, base64-encoded, and never returns it.
fn encode_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(plain)) = secret.as_object_mut().and_then(|o| o.remove("stringData")) else { return };
    for (key, value) in plain {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_str().unwrap_or_default());
        secret["data"][key] = json!(encoded);
    }
}

/// A `Status` in Kubernetes' JSON shape.
fn status(code: StatusCode, reason: &str, message: String, details: Value) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": if code.is_success() { "Success" } else { "Failure" },
        "message": message, "reason": reason, "details": details, "code": code.as_u16()});
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

fn not_found(plural: &str, group: &str, name: &str) -> Response {
    let resource = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
    status(StatusCode::NOT_FOUND, "NotFound", format!("{resource} \"{name}\" not found"), json!({"name": name, "group": group, "kind": plural}))
}

fn ok(code: StatusCode, body: &Value) -> Response {
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

/// A parsed API path: `/api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]` or `/apis/GROUP/VERSION/...`.
struct Target<'a> {
    group: &'a str,
    namespace: &'a str,
    plural: &'a str,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

fn parse_path(path: &str) -> Option<Target<'_>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural, more @ ..] if more.len() <= 2 => Some(Target { group, namespace: ns, plural, name: more.first().copied(), sub: more.get(1).copied() }),
        _ => None,
    }
}

fn handle(cluster: &Mutex<Cluster>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut c = cluster.lock().expect("not poisoned");
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    c.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if c.auto_converge {
        c.converge();
    }
    let hits = |(ns, name, _, _): &(String, String, String, Option<String>)| uri.path().contains(&format!("/namespaces/{ns}/deployments/{name}"));
    if method != Method::GET && c.concurrent.as_ref().is_some_and(hits) {
        let (ns, name, label, value) = c.concurrent.take().expect("just checked");
        c.relabel(&ns, &name, &label, value.as_deref());
    }
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    if let Some(response) = proxy(&mut c, &method, uri.path(), &body) {
        return response;
    }
    if uri.path().trim_matches('/') == format!("apis/{CHAOS_MESH}") {
        return if c.chaos_mesh { ok(StatusCode::OK, &chaos_mesh_resources()) } else { not_found_path() };
    }
    let Some(target) = parse_path(uri.path()) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource".into(), json!({}));
    };
    if kind_of(target.plural).is_none() || (target.plural == "networkchaos" && !c.chaos_mesh) {
        return not_found_path();
    }
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let response = match (&method, target.name, target.sub) {
        (&Method::GET, None, None) => list(&c, &target, &query),
        (&Method::POST, None, None) => create_posted(&mut c, &target, body),
        (&Method::GET, Some(name), None) => match c.objects.get(&key(target.plural, target.namespace, name)) {
            Some(o) => ok(StatusCode::OK, o),
            None => not_found(target.plural, target.group, name),
        },
        (&Method::PATCH, Some(name), None) => patch(&mut c, &target, name, &content_type, &query, &body),
        (&Method::PUT, Some(name), None) => replace(&mut c, &target, name, body),
        (&Method::DELETE, Some(name), None) => match c.objects.remove(&key(target.plural, target.namespace, name)) {
            Some(o) => {
                if target.plural == "jobs" {
                    // The garbage collector takes the Job's pods with it.
                    c.objects.retain(|(p, n, _), pod| !(p == "pods" && n == target.namespace && pod["metadata"]["labels"][JOB_NAME] == name));
                }
                ok(StatusCode::OK, &o)
            }
            None => not_found(target.plural, target.group, name),
        },
        (&Method::GET, Some(name), Some("log")) if target.plural == "pods" => match c.logs.get(name) {
            Some(log) if c.objects.contains_key(&key("pods", target.namespace, name)) => (StatusCode::OK, [("content-type", "text/plain")], log.clone()).into_response(),
            _ => not_found("pods", "", name),
        },
        (_, Some(name), Some("scale")) if target.plural == "deployments" => scale(&mut c, &target, name, &method, &content_type, &body),
        (&Method::POST, Some(name), Some("eviction")) if target.plural == "pods" => evict(&mut c, &target, name, &body),
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here"), json!({})),
    };
    if c.auto_converge {
        c.converge();
    }
    response
}

/// The label Kubernetes puts a Job's name in, on each of its pods.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// The Service proxy (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`)
/// of a Service with a stand-in server: logs the request and answers where
/// it goes. As the API server does, it passes no `Authorization` on (it
/// authenticated the caller with it).
fn service_backend(cluster: &Mutex<Cluster>, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Option<String> {
    let rest = uri.path().strip_prefix("/api/v1/namespaces/")?;
    let (_, rest) = rest.split_once("/services/")?;
    let (service, rest) = rest.split_once("/proxy")?;
    let name = service.split_once(':').map_or(service, |(name, _)| name);
    let mut c = cluster.lock().expect("not poisoned");
    let backend = c.backends.get(name)?.clone();
    c.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(body).into_owned(),
    });
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("{backend}{}{query}", if rest.is_empty() { "/" } else { rest }))
}

async fn forward(url: String, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = reqwest::Client::new().request(method, &url).body(body);
    for (name, value) in headers.iter().filter(|(n, _)| !["host", "authorization", "content-length", "connection"].contains(&n.as_str())) {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response
        }
        Err(err) => status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", format!("error trying to reach service: {err}"), json!({})),
    }
}

/// The pod proxy (`/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH`) to the
/// kit's switches, which the fake serves for each pod it has.
fn proxy(c: &mut Cluster, method: &Method, path: &str, body: &Bytes) -> Option<Response> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once("/pods/")?;
    let (pod, rest) = rest.split_once("/proxy/")?;
    let pod = pod.split_once(':').map_or(pod, |(name, _)| name);
    if !c.objects.contains_key(&key("pods", ns, pod)) {
        return Some(not_found("pods", "", pod));
    }
    if rest != "_stormproof/switches" {
        return Some((StatusCode::NOT_FOUND, "404 page not found").into_response());
    }
    let off = json!({"unhealthy": false, "unready": false, "delayMs": 0, "errorFraction": 0.0});
    Some(match *method {
        Method::GET => ok(StatusCode::OK, c.switches.get(pod).unwrap_or(&off)),
        Method::PUT => match serde_json::from_slice::<Value>(body) {
            Ok(state) => {
                c.switches.insert(pod.to_string(), state.clone());
                ok(StatusCode::OK, &state)
            }
            Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
        },
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here"), json!({})),
    })
}

/// A `resourceVersion` sent with a change is a precondition: the object
/// must still be at it (409 Conflict otherwise), as the API server does.
fn precondition(current: &Value, sent: &Value, plural: &str, group: &str, name: &str) -> Option<Response> {
    let sent = sent.as_str().filter(|s| !s.is_empty())?;
    if sent == current["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
        return None;
    }
    let message = format!("Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again");
    Some(status(StatusCode::CONFLICT, "Conflict", message, json!({"name": name})))
}

fn list(c: &Cluster, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let selector: Vec<(String, String)> = query
        .get("labelSelector")
        .map(|s| s.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .unwrap_or_default();
    let items: Vec<Value> = c
        .list(target.plural, target.namespace)
        .into_iter()
        .filter(|o| selector.iter().all(|(k, v)| o["metadata"]["labels"][k] == v.as_str()))
        .collect();
    let (api_version, kind) = kind_of(target.plural).expect("checked");
    ok(StatusCode::OK, &json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": c.resource_version.to_string()}, "items": items}))
}

fn patch(c: &mut Cluster, target: &Target, name: &str, content_type: &str, query: &BTreeMap<String, String>, body: &Value) -> Response {
    let current = c.objects.get(&key(target.plural, target.namespace, name)).cloned();
    let content_type = content_type.split(';').next().unwrap_or_default();
    if content_type != "application/apply-patch+yaml"
        && let Some(object) = &current
        && let Some(conflict) = precondition(object, &body["metadata"]["resourceVersion"], target.plural, target.group, name)
    {
        return conflict;
    }
    match (content_type, current) {
        ("application/apply-patch+yaml", current) => {
            let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(), json!({}));
            };
            let mut applied = body.clone();
            applied["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Apply", "apiVersion": body["apiVersion"]}]);
            if query.get("dryRun").map(String::as_str) == Some("All") {
                // Validated and answered as if stored; stored nowhere.
                let mut answer = current.clone().unwrap_or_else(|| json!({}));
                patch::merge(&mut answer, &applied);
                return ok(if current.is_some() { StatusCode::OK } else { StatusCode::CREATED }, &answer);
            }
            match current {
                None => {
                    let created = c.create(target.plural, target.namespace, name, applied);
                    ok(StatusCode::CREATED, &created)
                }
                Some(mut object) => {
                    patch::merge(&mut object, &applied);
                    ok(StatusCode::OK, &c.update(target.plural, target.namespace, name, object))
                }
            }
        }
        (_, None) => not_found(target.plural, target.group, name),
        ("application/merge-patch+json", Some(mut object)) => {
            patch::merge(&mut object, body);
            ok(StatusCode::OK, &c.update(target.plural, target.namespace, name, object))
        }
        ("application/strategic-merge-patch+json", Some(mut object)) => {
            patch::strategic(&mut object, body);
            ok(StatusCode::OK, &c.update(target.plural, target.namespace, name, object))
        }
        (other, Some(_)) => status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"), json!({})),
    }
}

/// A POST to a collection: created as sent, or 409 if the name is taken.
fn create_posted(c: &mut Cluster, target: &Target, body: Value) -> Response {
    let Some(name) = body["metadata"]["name"].as_str().map(str::to_string) else {
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name: Required value".into(), json!({}));
    };
    if c.objects.contains_key(&key(target.plural, target.namespace, &name)) {
        return status(StatusCode::CONFLICT, "AlreadyExists", format!("{}.{} \"{name}\" already exists", target.plural, target.group), json!({"name": name}));
    }
    let created = c.create(target.plural, target.namespace, &name, body);
    ok(StatusCode::CREATED, &created)
}

fn not_found_path() -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource".into(), json!({}))
}

fn replace(c: &mut Cluster, target: &Target, name: &str, body: Value) -> Response {
    let Some(current) = c.objects.get(&key(target.plural, target.namespace, name)).cloned() else {
        return not_found(target.plural, target.group, name);
    };
    let sent = body["metadata"]["resourceVersion"].as_str().unwrap_or_default();
    if !sent.is_empty() && sent != current["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
        let message = format!("Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", target.plural, target.group);
        return status(StatusCode::CONFLICT, "Conflict", message, json!({"name": name}));
    }
    ok(StatusCode::OK, &c.update(target.plural, target.namespace, name, body))
}

fn scale_of(deployment: &Value) -> Value {
    let labels = deployment["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": deployment["metadata"]["name"], "namespace": deployment["metadata"]["namespace"], "resourceVersion": deployment["metadata"]["resourceVersion"]},
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {"replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")}})
}

fn scale(c: &mut Cluster, target: &Target, name: &str, method: &Method, content_type: &str, body: &Value) -> Response {
    let Some(mut deployment) = c.objects.get(&key("deployments", target.namespace, name)).cloned() else {
        return not_found("deployments", "apps", name);
    };
    if method == Method::GET {
        return ok(StatusCode::OK, &scale_of(&deployment));
    }
    if method != Method::PATCH || !content_type.starts_with("application/merge-patch+json") {
        return status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", format!("unsupported {method} {content_type} on scale"), json!({}));
    }
    if let Some(conflict) = precondition(&deployment, &body["metadata"]["resourceVersion"], "deployments", "apps", name) {
        return conflict;
    }
    let mut scale = scale_of(&deployment);
    patch::merge(&mut scale, body);
    match scale["spec"]["replicas"].as_i64() {
        Some(n) if n >= 0 => deployment["spec"]["replicas"] = json!(n),
        _ => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "Scale.autoscaling \"\" is invalid: spec.replicas: Invalid value: must be greater than or equal to 0".into(), json!({})),
    }
    let updated = c.update("deployments", target.namespace, name, deployment);
    ok(StatusCode::OK, &scale_of(&updated))
}

/// Eviction starts the pod's graceful deletion; it is gone at the next
/// tick and its ReplicaSet makes a new one (restartCount 0).
fn evict(c: &mut Cluster, target: &Target, name: &str, body: &Value) -> Response {
    if body["metadata"]["name"] != name {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "name in URL does not match name in Eviction object".into(), json!({}));
    }
    let preconditions = &body["deleteOptions"]["preconditions"];
    if let Some(pod) = c.objects.get(&key("pods", target.namespace, name))
        && let Some(conflict) = precondition(pod, &preconditions["resourceVersion"], "pods", "", name)
    {
        return conflict;
    }
    match c.objects.get_mut(&key("pods", target.namespace, name)) {
        None => not_found("pods", "", name),
        Some(pod) if preconditions["uid"].as_str().is_some_and(|uid| pod["metadata"]["uid"] != uid) => {
            status(StatusCode::CONFLICT, "Conflict", format!("Precondition failed: UID in precondition does not match the UID in record ({name})"), json!({"name": name}))
        }
        Some(pod) => {
            pod["metadata"]["deletionTimestamp"] = json!(timestamp(0));
            status(StatusCode::CREATED, "", String::new(), json!({}))
        }
    }
}
