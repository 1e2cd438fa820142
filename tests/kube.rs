//! The kube platform against the fake API server (tests/kube_fake): the
//! exact requests each operation sends, Kubernetes' behaviour it follows
//! (rollout completion, eviction, HPA deactivation at 0), the safety
//! rails and dry-run, and the manifests. There is no cluster here; the
//! same operations run on a real kind cluster in ci/github-kind.yml.

mod kube_fake;

use std::sync::{Arc, Mutex};

use kube_fake::FakeKube;
use serde_json::json;
use stormproof::platform::kube::database::Database;
use stormproof::platform::kube::manifests::{self, RenderOptions};
use stormproof::platform::kube::{Allowed, KubePlatform, KubeTarget, Rails, connect};
use stormproof::platform::{Platform, PlatformError, RolloutState, Template};
use stormproof::systems::definition::{Role, SystemDef};

const NS: &str = "shop";
const CONTEXT: &str = "kind-stormproof";

fn render_options() -> RenderOptions {
    RenderOptions {
        image: "stormproof:v1".into(),
        version: "v1".into(),
        kafka: "shop-kafka-kafka-bootstrap:9092".into(),
        jwt_secret: "test-secret".into(),
        users: "user1:stormproof".into(),
        database: Database::with_password("test-db-password".into()),
    }
}

fn shop_yaml() -> String {
    manifests::to_yaml(&manifests::render(&SystemDef::builtin("shop").unwrap(), &render_options()).unwrap()).unwrap()
}

/// The fake with the rendered shop created and settled, and a platform on it.
async fn shop() -> (FakeKube, tempfile::TempDir, KubePlatform) {
    let fake = FakeKube::start();
    fake.create_yaml(NS, &shop_yaml());
    fake.converge();
    fake.clear_log();
    let dir = tempfile::tempdir().unwrap();
    let target = KubeTarget { context: CONTEXT.into(), namespace: NS.into(), kubeconfig: Some(fake.kubeconfig(dir.path())) };
    let client = connect(&target).await.unwrap();
    (fake, dir, KubePlatform::new(client, CONTEXT, NS, "shop"))
}

fn allowed() -> Allowed {
    Allowed { context: CONTEXT.into(), namespace: NS.into() }
}

fn only_mutation(fake: &FakeKube) -> kube_fake::Logged {
    let mutating = fake.mutating_requests();
    assert_eq!(mutating.len(), 1, "{mutating:#?}");
    mutating.into_iter().next().unwrap()
}

#[tokio::test]
async fn services_read_replicas_from_deployment_status_and_restarts_from_container_statuses() {
    let (fake, _dir, kube) = shop().await;
    let services = kube.services().await.unwrap();
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["delivery", "gateway", "mypage", "mypage-late", "order", "product"]);
    let delivery = kube.service("delivery").await.unwrap();
    assert_eq!((delivery.role, delivery.desired, delivery.ready, delivery.available), (Role::Supporting, 1, 1, 1));
    let pod = delivery.replicas[0].id.clone();
    assert_eq!((delivery.replicas[0].phase, delivery.replicas[0].version.as_str()), (stormproof::platform::ReplicaPhase::Running, "v1"));
    assert!(delivery.replicas[0].address.as_deref().unwrap().ends_with(":8080"));
    fake.set_restarts(NS, &pod, 3);
    assert_eq!(kube.service("delivery").await.unwrap().replicas[0].restarts, 3);
    assert!(matches!(kube.service("nope").await, Err(PlatformError::UnknownService(s)) if s == "nope"));
    let paths: Vec<String> = fake.requests().iter().map(|r| format!("{} {}?{}", r.method, r.path, r.query)).collect();
    assert!(paths.contains(&"GET /apis/apps/v1/namespaces/shop/deployments?&labelSelector=app.kubernetes.io%2Fpart-of%3Dshop".to_string()), "{paths:#?}");
    assert!(paths.iter().any(|p| p.starts_with("GET /api/v1/namespaces/shop/pods?&labelSelector=app.kubernetes.io%2Fname%3Ddelivery")), "{paths:#?}");
}

#[tokio::test]
async fn scale_patches_the_scale_subresource_under_stormproofs_field_manager() {
    let (fake, _dir, kube) = shop().await;
    kube.scale("delivery", 0).await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/delivery/scale"));
    assert!(sent.query.contains("fieldManager=stormproof"), "{}", sent.query);
    assert_eq!(sent.content_type, "application/merge-patch+json");
    assert_eq!(sent.json()["spec"], json!({"replicas": 0}));
    let read = fake.requests().into_iter().find(|r| r.method == "GET" && r.path.ends_with("/deployments/delivery")).is_some();
    assert!(read, "the Deployment is read first");
    assert!(sent.json()["metadata"]["resourceVersion"].is_string(), "the change is conditional on the Deployment as read");
    // Like `kubectl scale`, it returns before the pods go.
    let delivery = kube.service("delivery").await.unwrap();
    assert_eq!((delivery.desired, delivery.ready), (0, 1));
    fake.converge();
    let delivery = kube.service("delivery").await.unwrap();
    assert_eq!((delivery.desired, delivery.ready, delivery.replicas.len()), (0, 0, 0));
    assert!(matches!(kube.scale("nope", 1).await, Err(PlatformError::UnknownService(_))));
}

#[tokio::test]
async fn kill_evicts_a_pod_and_its_replicaset_replaces_it_with_restart_count_zero() {
    let (fake, _dir, kube) = shop().await;
    let before = kube.service("delivery").await.unwrap().replicas[0].id.clone();
    fake.set_restarts(NS, &before, 2);
    let killed = kube.kill("delivery", None).await.unwrap();
    assert_eq!(killed, before);
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", format!("/api/v1/namespaces/shop/pods/{before}/eviction").as_str()));
    assert_eq!(sent.content_type, "application/json");
    assert_eq!(sent.json()["metadata"]["name"], before.as_str(), "the Eviction names the pod of the URL");
    assert_eq!(sent.json()["apiVersion"], "policy/v1");
    assert!(sent.json()["deleteOptions"]["preconditions"]["resourceVersion"].is_string(), "evicts only the pod as read");
    assert_eq!(kube.service("delivery").await.unwrap().replicas[0].phase, stormproof::platform::ReplicaPhase::Terminating);
    fake.tick();
    let after = kube.service("delivery").await.unwrap();
    assert_eq!(after.replicas.len(), 1);
    assert_ne!(after.replicas[0].id, before);
    assert_eq!((after.replicas[0].restarts, after.replicas[0].ready), (0, false));
    fake.converge();
    assert_eq!(kube.service("delivery").await.unwrap().ready, 1);
    assert!(matches!(kube.kill("delivery", Some("no-such-pod")).await, Err(PlatformError::UnknownReplica(_))));
}

#[tokio::test]
async fn rollout_patches_the_pod_template_and_completes_only_by_kubectls_rule() {
    let (fake, _dir, kube) = shop().await;
    let mut v2 = Template::version("v2");
    v2.variant = Some("slow-start".into());
    v2.env.insert("FEATURE".into(), "on".into());
    let started = kube.rollout("product", &v2).await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str(), sent.query.as_str()), ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/product", "&fieldManager=stormproof"));
    assert_eq!(sent.content_type, "application/strategic-merge-patch+json");
    let template = &sent.json()["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["app.kubernetes.io/version"], "v2");
    assert!(template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    assert_eq!(
        template["spec"]["containers"],
        json!([{"name": "product", "image": "stormproof:v2", "env": [
            {"name": "STORMPROOF_VERSION", "value": "v2"}, {"name": "STORMPROOF_VARIANT", "value": "slow-start"}, {"name": "FEATURE", "value": "on"}]}])
    );
    // Right after the patch every count still says "done": only
    // observedGeneration < generation tells the rollout has not started.
    assert_eq!((started.updated, started.replicas, started.available, started.total), (1, 1, 1, 1));
    assert!(started.observed_generation < started.generation);
    assert!(matches!(started.state(), RolloutState::Waiting(w) if w.contains("observed")), "{:?}", started.state());

    let mut states = Vec::new();
    for _ in 0..4 {
        fake.tick();
        states.push(kube.rollout_status("product").await.unwrap().state());
    }
    assert!(matches!(&states[0], RolloutState::Waiting(w) if w == "1 old replicas are pending termination"), "{states:?}");
    assert_eq!(states[1], RolloutState::Complete, "{states:?}");
    let done = kube.rollout_status("product").await.unwrap();
    assert_eq!((done.revision, done.template.version.as_str(), done.template.variant.as_deref()), (2, "v2", Some("slow-start")));
    assert_eq!(done.template.env.get("FEATURE").map(String::as_str), Some("on"));
    let pods = kube.service("product").await.unwrap().replicas;
    assert!(pods.iter().all(|p| p.version == "v2"), "{pods:?}");
}

#[tokio::test]
async fn a_rollout_past_its_progress_deadline_is_a_failure() {
    let (fake, _dir, kube) = shop().await;
    fake.set_stuck("product", true);
    let mut v2 = Template::version("v2");
    v2.readiness = false;
    kube.rollout("product", &v2).await.unwrap();
    let sent = only_mutation(&fake);
    assert!(sent.json()["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_null());
    assert!(sent.body.contains("\"readinessProbe\":null"), "{}", sent.body);
    for _ in 0..3 {
        fake.tick();
    }
    let waiting = kube.rollout_status("product").await.unwrap();
    // maxUnavailable 25 % of 1 rounds down to 0: the old pod stays until the new one is ready.
    assert!(matches!(waiting.state(), RolloutState::Waiting(w) if w == "1 old replicas are pending termination"), "{:?}", waiting.state());
    assert_eq!((waiting.updated, waiting.available, waiting.total), (1, 1, 2));
    assert!(!waiting.template.readiness);
    fake.exceed_deadline("product");
    fake.tick();
    let failed = kube.rollout_status("product").await.unwrap().state();
    assert!(matches!(&failed, RolloutState::Failed(m) if m.contains("progress deadline") && m.contains("timed out progressing")), "{failed:?}");
}

#[tokio::test]
async fn a_rollout_with_readiness_after_one_without_puts_the_defined_probe_back() {
    let (fake, _dir, kube) = shop().await;
    let mut unready = Template::version("v2");
    unready.readiness = false;
    kube.rollout("product", &unready).await.unwrap();
    fake.converge();
    let probe = |fake: &FakeKube| fake.get("deployments", NS, "product").unwrap()["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone();
    assert!(probe(&fake).is_null(), "rolled out without readiness");
    fake.clear_log();
    // What a chaos rollback sends: the prior template, readiness on.
    kube.rollout("product", &Template::version("v1")).await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!(sent.json()["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"], "/health/ready");
    assert_eq!(probe(&fake)["periodSeconds"], 1, "the definition's probe (500ms rounded up to 1 s) is back");
    assert!(kube.rollout_status("product").await.unwrap().template.readiness);
}

#[tokio::test]
async fn undo_puts_the_previous_replicasets_template_back() {
    let (fake, _dir, kube) = shop().await;
    let err = kube.rollout_undo("order").await.unwrap_err();
    assert!(err.to_string().contains("no previous revision"), "{err}");
    kube.rollout("order", &Template::version("v2")).await.unwrap();
    fake.converge();
    fake.clear_log();
    let undone = kube.rollout_undo("order").await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str(), sent.query.as_str()), ("PUT", "/apis/apps/v1/namespaces/shop/deployments/order", "&fieldManager=stormproof"));
    let labels = &sent.json()["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/version"], "v1");
    assert!(labels["pod-template-hash"].is_null(), "the hash label is the ReplicaSet's, not the template's");
    assert!(sent.json()["metadata"]["resourceVersion"].is_string(), "a replace carries the resourceVersion it read");
    assert!(matches!(undone.state(), RolloutState::Waiting(_)));
    fake.converge();
    let status = kube.rollout_status("order").await.unwrap();
    assert_eq!((status.revision, status.template.version.as_str(), status.state()), (3, "v1", RolloutState::Complete));
}

#[tokio::test]
async fn scaling_to_zero_deactivates_the_hpa_and_scaling_back_reactivates_it() {
    let (fake, _dir, kube) = shop().await;
    let hpa = kube.autoscaler("order").await.unwrap().unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas, hpa.target_cpu_utilization, hpa.current_cpu_utilization), (1, 4, 50, Some(12)));
    assert!(hpa.scaling_active());
    assert!(kube.autoscaler("delivery").await.unwrap().is_none());
    kube.scale("order", 0).await.unwrap();
    // The HPA's own status changes at its next sync; the target's spec says it now.
    assert!(!kube.autoscaler("order").await.unwrap().unwrap().scaling_active());
    fake.tick();
    let stored = fake.get("horizontalpodautoscalers", NS, "order").unwrap();
    assert_eq!(stored["status"]["conditions"][1]["reason"], "ScalingDisabled");
    assert!(!kube.autoscaler("order").await.unwrap().unwrap().scaling_active());
    kube.scale("order", 1).await.unwrap();
    fake.converge();
    let back = kube.autoscaler("order").await.unwrap().unwrap();
    assert!(back.scaling_active(), "{back:?}");
    assert_eq!(kube.service("order").await.unwrap().ready, 1);
    let list = fake.requests().into_iter().find(|r| r.path.contains("horizontalpodautoscalers")).unwrap();
    assert_eq!(list.path, "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers");
}

#[tokio::test]
async fn rails_refuse_another_context_or_namespace() {
    let (fake, _dir, kube) = shop().await;
    let other_context = Allowed { context: "production".into(), namespace: NS.into() };
    let err = Rails::new(kube.clone(), &other_context).err().unwrap().to_string();
    assert!(err.contains("only context `production`"), "{err}");
    let other_namespace = Allowed { context: CONTEXT.into(), namespace: "default".into() };
    assert!(matches!(Rails::new(kube, &other_namespace), Err(PlatformError::Refused(_))));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn rails_refuse_deployments_without_the_opt_in_label_and_the_harness_pod() {
    let (fake, _dir, kube) = shop().await;
    let rails = Rails::new(kube.clone(), &allowed()).unwrap().with_own_pod(None);
    let err = rails.scale("gateway", 0).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("stormproof.io/chaos=enabled")), "{err}");
    assert!(rails.kill("gateway", None).await.is_err());
    assert!(rails.rollout("gateway", &Template::version("v2")).await.is_err());
    let own = kube.service("delivery").await.unwrap().replicas[0].id.clone();
    let rails = rails.with_own_pod(Some(own.clone()));
    let err = rails.kill("delivery", None).await.unwrap_err();
    assert!(err.to_string().contains(&own), "{err}");
    assert!(rails.scale("delivery", 0).await.is_err());
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    rails.scale("product", 2).await.unwrap();
    assert_eq!(only_mutation(&fake).path, "/apis/apps/v1/namespaces/shop/deployments/product/scale");
}

/// The `switches` fault goes through the platform, so the rails guard it
/// like any other change.
#[tokio::test]
async fn switches_are_a_change_the_rails_guard() {
    let (fake, _dir, kube) = shop().await;
    let on = stormproof::systems::kit::SwitchState { unhealthy: true, ..Default::default() };
    let rails = Rails::new(kube.clone(), &allowed()).unwrap().with_own_pod(None);
    let err = rails.set_switches("gateway", "gateway-1", &on).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("stormproof.io/chaos=enabled")), "{err}");
    let pod = kube.service("delivery").await.unwrap().replicas[0].id.clone();
    let own = rails.with_own_pod(Some(pod.clone()));
    assert!(own.set_switches("delivery", &pod, &on).await.unwrap_err().to_string().contains(&pod), "never the harness's own pod");
    let dry = Rails::new(kube.clone(), &allowed()).unwrap().with_own_pod(None).dry_run(|_| {});
    dry.set_switches("delivery", &pod, &on).await.unwrap();
    let planned = dry.planned();
    let proxied = format!("/api/v1/namespaces/shop/pods/{pod}:8080/proxy/_stormproof/switches");
    assert_eq!((planned[0].method.as_str(), planned[0].path.clone()), ("PUT", proxied.clone()));
    assert_eq!((planned[0].query.as_str(), &planned[0].body["unhealthy"]), ("", &json!(true)));
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    // A pod of another Deployment is not delivery's to flip.
    let product_pod = kube.service("product").await.unwrap().replicas[0].id.clone();
    let rails = Rails::new(kube.clone(), &allowed()).unwrap().with_own_pod(None);
    assert!(matches!(rails.set_switches("delivery", &product_pod, &on).await, Err(PlatformError::UnknownReplica(_))));
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    // For real: through the API server's pod proxy, never the pod's IP.
    rails.set_switches("delivery", &pod, &on).await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("PUT", proxied.as_str()));
    assert_eq!(fake.switches(&pod).unwrap()["unhealthy"], true);
    assert!(rails.switches("delivery", &pod).await.unwrap().unhealthy);
    assert!(fake.requests().iter().all(|r| r.path.starts_with("/api")), "every request went to the API server: {:#?}", fake.requests());
}

/// A label changed between the rails' check and the change: the change
/// carries the resourceVersion checked, so the API server refuses it.
#[tokio::test]
async fn a_deployment_changed_after_the_rails_checked_it_is_not_changed() {
    let (fake, _dir, kube) = shop().await;
    let rails = Rails::new(kube.clone(), &allowed()).unwrap().with_own_pod(None);
    // The opt-in label goes right after the rails read the Deployment.
    fake.before_next_change(NS, "delivery", "stormproof.io/chaos", None);
    let err = rails.scale("delivery", 0).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("409") && m.contains("changed since")), "{err}");
    assert_eq!(fake.get("deployments", NS, "delivery").unwrap()["spec"]["replicas"], 1, "not scaled");
    let conflicts: Vec<_> = fake.requests().into_iter().filter(|r| r.path.ends_with("/delivery/scale")).collect();
    assert_eq!(conflicts.len(), 1, "one attempt, refused: {conflicts:#?}");
    // And now the rails see the label gone.
    let err = rails.scale("delivery", 0).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("has not opted in")), "{err}");
    // The same for a rollout and an undo.
    fake.relabel(NS, "delivery", "stormproof.io/chaos", Some("enabled"));
    fake.before_next_change(NS, "delivery", "stormproof.io/chaos", None);
    let err = rails.rollout("delivery", &Template::version("v2")).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("409")), "{err}");
    let stored = fake.get("deployments", NS, "delivery").unwrap();
    assert_eq!(stored["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"], "v1", "not rolled");
}

#[tokio::test]
async fn dry_run_prints_every_change_and_sends_no_mutating_request() {
    let (fake, _dir, kube) = shop().await;
    kube.rollout("order", &Template::version("v2")).await.unwrap();
    fake.converge();
    fake.clear_log();
    let printed = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = printed.clone();
    let rails = Rails::new(kube, &allowed()).unwrap().with_own_pod(None).dry_run(move |line| sink.lock().unwrap().push(line.to_string()));
    rails.scale("delivery", 0).await.unwrap();
    let victim = rails.kill("delivery", None).await.unwrap();
    let status = rails.rollout("product", &Template::version("v3")).await.unwrap();
    rails.rollout_undo("order").await.unwrap();
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    assert_eq!(status.state(), RolloutState::Complete, "nothing changed, so the rollout stays as it was");
    let planned = rails.planned();
    let requests: Vec<(&str, &str)> = planned.iter().map(|p| (p.method.as_str(), p.path.as_str())).collect();
    let eviction = format!("/api/v1/namespaces/shop/pods/{victim}/eviction");
    assert_eq!(
        requests,
        [
            ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/delivery/scale"),
            ("POST", eviction.as_str()),
            ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/product"),
            ("PUT", "/apis/apps/v1/namespaces/shop/deployments/order"),
        ]
    );
    let version = fake.get("deployments", NS, "delivery").unwrap()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    assert_eq!(planned[0].body, json!({"metadata": {"resourceVersion": version}, "spec": {"replicas": 0}}));
    assert_eq!(planned[3].body["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"], "v1");
    let printed = printed.lock().unwrap();
    assert_eq!(printed.len(), 4);
    assert_eq!(
        printed[0],
        format!("dry-run: would scale deployment/delivery to 0: PATCH /apis/apps/v1/namespaces/shop/deployments/delivery/scale?fieldManager=stormproof (application/merge-patch+json) {{\"metadata\":{{\"resourceVersion\":\"{version}\"}},\"spec\":{{\"replicas\":0}}}}")
    );
}

#[tokio::test]
async fn connect_refuses_a_context_the_kubeconfig_does_not_have() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let target = KubeTarget { context: "kind-typo".into(), namespace: NS.into(), kubeconfig: Some(fake.kubeconfig(dir.path())) };
    let err = connect(&target).await.err().unwrap().to_string();
    assert_eq!(err, "no context `kind-typo` in the kubeconfig (contexts: kind-stormproof, production)");
}

#[test]
fn rendered_manifests_parse_back_into_k8s_openapi_types() {
    let objects = manifests::render(&SystemDef::builtin("shop").unwrap(), &render_options()).unwrap();
    let parsed = manifests::parse(&shop_yaml()).unwrap();
    assert_eq!(parsed, objects);
    let kinds: Vec<&str> = parsed
        .iter()
        .map(|o| match o {
            manifests::Object::Secret(_) => "Secret",
            manifests::Object::ConfigMap(_) => "ConfigMap",
            manifests::Object::Service(_) => "Service",
            manifests::Object::Deployment(_) => "Deployment",
            manifests::Object::Hpa(_) => "HPA",
            manifests::Object::StatefulSet(_) => "StatefulSet",
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "Deployment").count(), 6, "five services (mypage-late among them) and the gateway");
    assert_eq!(kinds.iter().filter(|k| **k == "Service").count(), 7, "one per Deployment, and the database's headless one");
    assert_eq!(kinds.iter().filter(|k| **k == "HPA").count(), 1, "only order autoscales");
    assert_eq!(kinds.iter().filter(|k| **k == "StatefulSet").count(), 1, "the services' PostgreSQL");
    let order = parsed
        .iter()
        .find_map(|o| match o {
            manifests::Object::Deployment(d) if d.metadata.name.as_deref() == Some("order") => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(order.metadata.labels.as_ref().unwrap()["stormproof.io/chaos"], "enabled");
    let spec = order.spec.unwrap();
    assert_eq!(spec.replicas, None, "the HPA owns order's replica count");
    assert_eq!(spec.progress_deadline_seconds, Some(60), "the definition's progress deadline");
    let container = &spec.template.spec.unwrap().containers[0];
    assert_eq!(container.args.as_ref().unwrap(), &["serve", "shop.order"]);
    assert_eq!(container.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0, "200m");
    let readiness = container.readiness_probe.as_ref().unwrap();
    assert_eq!((readiness.period_seconds, readiness.failure_threshold), (Some(1), Some(2)), "500ms rounds up to Kubernetes' 1 s minimum");
    assert_eq!(container.liveness_probe.as_ref().unwrap().initial_delay_seconds, Some(2));
    let env = container.env.as_ref().unwrap();
    assert!(env.iter().any(|e| e.name == "STORMPROOF_UPSTREAMS" && e.value.as_deref() == Some("product=http://product:80")));
    assert!(env.iter().any(|e| e.name == "STORMPROOF_WARMUP" && e.value.as_deref() == Some("2000ms")), "order's warm-up, what readiness protects");
    let late = parsed
        .iter()
        .find_map(|o| match o {
            manifests::Object::Deployment(d) if d.metadata.name.as_deref() == Some("mypage-late") => d.spec.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(late.replicas, Some(0), "deployed late: at 0 until an experiment scales it");
    let container = &late.template.spec.unwrap().containers[0];
    assert_eq!(container.args.as_ref().unwrap(), &["serve", "shop.mypage"], "the mypage handler, as another instance");
    assert!(container.env.as_ref().unwrap().iter().any(|e| e.name == "STORMPROOF_INSTANCE" && e.value.as_deref() == Some("late")), "its own group and routes");
}

/// Issue 19: service data lives in PostgreSQL, not in the pods. The shop
/// renders one StatefulSet (official image, one replica, a claim template
/// for its data, readiness by pg_isready, its password from the Secret),
/// a headless Service, and every service pod reads its URL from that
/// Secret; no pod keeps service data in an emptyDir.
#[test]
fn render_gives_the_services_a_postgres_statefulset_and_their_url_from_a_secret() {
    let objects = manifests::render(&SystemDef::builtin("shop").unwrap(), &render_options()).unwrap();
    let find = |name: &'static str| objects.iter().filter(move |o| object_name(o) == name);
    let Some(manifests::Object::StatefulSet(server)) = find("shop-postgres").find(|o| matches!(o, manifests::Object::StatefulSet(_))).cloned() else {
        panic!("no StatefulSet shop-postgres")
    };
    let spec = server.spec.unwrap();
    assert_eq!((spec.replicas, spec.service_name.as_deref()), (Some(1), Some("shop-postgres")));
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.access_modes.as_ref().unwrap(), &["ReadWriteOnce"]);
    assert_eq!(claim_spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "1Gi");
    let pod = spec.template.spec.unwrap();
    assert!(pod.volumes.is_none(), "its data is the claim's, nothing else");
    let container = &pod.containers[0];
    assert!(container.image.as_deref().unwrap().starts_with("postgres:"), "the official image");
    assert_eq!(container.volume_mounts.as_ref().unwrap()[0].name, "data", "mounted from the claim");
    let ready = container.readiness_probe.as_ref().unwrap().exec.as_ref().unwrap().command.clone().unwrap();
    assert_eq!(ready[0], "pg_isready");
    let password = container.env.as_ref().unwrap().iter().find(|e| e.name == "POSTGRES_PASSWORD").unwrap();
    assert!(password.value.is_none(), "never a literal");
    let from = password.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((from.name.as_str(), from.key.as_str()), ("shop-database", "POSTGRES_PASSWORD"));
    let Some(manifests::Object::Service(headless)) = find("shop-postgres").find(|o| matches!(o, manifests::Object::Service(_))).cloned() else { panic!("no Service") };
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"), "headless");
    let Some(manifests::Object::Secret(secret)) = find("shop-database").next().cloned() else { panic!("no Secret shop-database") };
    let data = secret.string_data.unwrap();
    assert_eq!(data["POSTGRES_PASSWORD"], "test-db-password");
    assert_eq!(data["STORMPROOF_DATABASE_URL"], "postgres://stormproof:test-db-password@shop-postgres:5432/stormproof");
    for deployment in objects.iter().filter_map(|o| if let manifests::Object::Deployment(d) = o { Some(d) } else { None }) {
        let name = deployment.metadata.name.clone().unwrap();
        let pod = deployment.spec.clone().unwrap().template.spec.unwrap();
        for volume in pod.volumes.iter().flatten() {
            assert_eq!(volume.name, "tmp", "{name}: only scratch space in the pod");
        }
        let env = pod.containers[0].env.clone().unwrap();
        let data_dir = env.iter().find(|e| e.name == "STORMPROOF_DATA").and_then(|e| e.value.clone()).unwrap();
        assert!(data_dir.starts_with("/tmp/"), "{name}: the kit's data dir is scratch: {data_dir}");
        let url = env.iter().find(|e| e.name == "STORMPROOF_DATABASE_URL");
        if name == "gateway" {
            assert!(url.is_none(), "the gateway keeps no data");
            continue;
        }
        let from = url.unwrap_or_else(|| panic!("{name} has no STORMPROOF_DATABASE_URL")).value_from.as_ref().unwrap().secret_key_ref.clone().unwrap();
        assert_eq!((from.name.as_str(), from.key.as_str()), ("shop-database", "STORMPROOF_DATABASE_URL"), "{name}");
    }
    let yaml = manifests::to_yaml(&objects).unwrap();
    assert!(yaml.contains("volumeClaimTemplates:") && yaml.contains("secretKeyRef:"), "{yaml}");
    assert_eq!(yaml.matches("test-db-password").count(), 2, "the password is in the Secret only (itself and the URL)");
}

fn object_name(object: &manifests::Object) -> &str {
    let meta = match object {
        manifests::Object::Secret(o) => &o.metadata,
        manifests::Object::ConfigMap(o) => &o.metadata,
        manifests::Object::Service(o) => &o.metadata,
        manifests::Object::Deployment(o) => &o.metadata,
        manifests::Object::Hpa(o) => &o.metadata,
        manifests::Object::StatefulSet(o) => &o.metadata,
    };
    meta.name.as_deref().unwrap_or_default()
}

fn k8s_render(extra: &[&str]) -> Vec<manifests::Object> {
    let out = std::process::Command::new(BIN).args(["k8s", "render", "shop"]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    manifests::parse(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// `k8s render` makes a new password each time (as the JWT key); with
/// `--database-secret` it renders no database and every service reads
/// its URL from the Secret named.
#[test]
fn k8s_render_generates_the_database_password_or_takes_the_url_from_database_secret() {
    let password = |objects: &[manifests::Object]| {
        objects.iter().find_map(|o| match o {
            manifests::Object::Secret(s) if s.metadata.name.as_deref() == Some("shop-database") => s.string_data.clone().map(|d| d["POSTGRES_PASSWORD"].clone()),
            _ => None,
        })
    };
    let (first, second) = (password(&k8s_render(&[])).unwrap(), password(&k8s_render(&[])).unwrap());
    assert!(first.len() >= 32 && first != second, "generated at render time: {first} then {second}");

    let objects = k8s_render(&["--database-secret", "orders-db"]);
    assert!(!objects.iter().any(|o| matches!(o, manifests::Object::StatefulSet(_))), "no StatefulSet for an existing database");
    assert!(!objects.iter().any(|o| ["shop-database", "shop-postgres"].contains(&object_name(o))), "nor its Secret or Service");
    let order = objects.iter().find_map(|o| match o {
        manifests::Object::Deployment(d) if d.metadata.name.as_deref() == Some("order") => Some(d.clone()),
        _ => None,
    });
    let env = order.unwrap().spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
    let from = env.iter().find(|e| e.name == "STORMPROOF_DATABASE_URL").unwrap().value_from.clone().unwrap().secret_key_ref.unwrap();
    assert_eq!((from.name.as_str(), from.key.as_str()), ("orders-db", "STORMPROOF_DATABASE_URL"));
}

/// A second `k8s apply` keeps the database's password: the server's data
/// directory was initialised with the first one.
#[test]
fn a_second_k8s_apply_keeps_the_database_password() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let apply = || {
        let out = std::process::Command::new(BIN)
            .args(["k8s", "apply", "shop", "--context", CONTEXT, "--namespace", NS, "--kubeconfig"])
            .arg(&kubeconfig)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        fake.get("secrets", NS, "shop-database").unwrap()["data"]["POSTGRES_PASSWORD"].clone()
    };
    let first = apply();
    assert!(first.as_str().is_some_and(|p| !p.is_empty()), "{first}");
    assert_eq!(apply(), first);
}

/// `kubernetes-validate` (pip) checks against the bundled OpenAPI schemas
/// offline; `.ci/run` installs it into ~/.cache/stormproof/venv.
fn kubernetes_validate() -> Option<std::path::PathBuf> {
    let home = std::env::var("HOME").ok()?;
    let venv = std::path::Path::new(&home).join(".cache/stormproof/venv/bin/kubernetes-validate");
    if venv.exists() {
        return Some(venv);
    }
    let on_path = std::process::Command::new("kubernetes-validate").arg("--version").output().ok()?;
    on_path.status.success().then(|| "kubernetes-validate".into())
}

#[test]
fn rendered_manifests_pass_kubernetes_validate_strict() {
    let Some(validate) = kubernetes_validate() else {
        // A direct write: libtest would swallow an eprintln! of a passing test.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "SKIPPED rendered_manifests_pass_kubernetes_validate_strict: kubernetes-validate is not installed (pip install kubernetes-validate; .ci/run does it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, shop_yaml()).unwrap();
    let out = std::process::Command::new(validate).args(["--strict", "--kubernetes-version", "1.33.0"]).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("INFO").count(), 18, "{stdout}");
}

#[tokio::test]
async fn apply_uses_server_side_apply_with_stormproofs_field_manager() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let target = KubeTarget { context: CONTEXT.into(), namespace: NS.into(), kubeconfig: Some(fake.kubeconfig(dir.path())) };
    let client = connect(&target).await.unwrap();
    let objects = manifests::render(&SystemDef::builtin("shop").unwrap(), &render_options()).unwrap();
    let applied = manifests::apply(&client, NS, &objects, manifests::ApplyMode::Apply).await.unwrap();
    assert_eq!(applied.len(), 18);
    assert_eq!(applied[0], "secret/shop-gateway");
    assert!(applied.contains(&"statefulset/shop-postgres".to_string()), "{applied:?}");
    let sent = fake.mutating_requests();
    assert_eq!(sent.len(), 18);
    for request in &sent {
        assert_eq!(request.method, "PATCH");
        assert_eq!(request.content_type, "application/apply-patch+yaml");
        assert_eq!(request.query, "&force=true&fieldManager=stormproof");
    }
    assert_eq!(sent[1].path, "/api/v1/namespaces/shop/configmaps/shop-kafka");
    let hpa = sent.iter().find(|r| r.path.ends_with("/horizontalpodautoscalers/order")).unwrap();
    assert_eq!(hpa.path, "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/order");
    assert_eq!(hpa.json()["apiVersion"], "autoscaling/v2");
    let order = fake.get("deployments", NS, "order").unwrap();
    assert_eq!(order["metadata"]["managedFields"][0]["manager"], "stormproof");
    // Applying the same manifests again changes no spec.
    manifests::apply(&client, NS, &objects, manifests::ApplyMode::Apply).await.unwrap();
    assert_eq!(fake.get("deployments", NS, "order").unwrap()["metadata"]["generation"], 1);
}

// ---- the CLI on the kube platform (the binary in another process) ----

const BIN: &str = env!("CARGO_BIN_EXE_stormproof");

/// A stand-in for the shop's gateway: experiments only need a token from
/// it here, since every check below reads the platform. It counts every
/// request it gets (a dry run must send it none).
struct StubGateway {
    url: String,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubGateway {
    fn start() -> StubGateway {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route("/auth/token", axum::routing::post(|| async { axum::Json(json!({"access_token": "stub"})) }))
                    .layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        next.run(request)
                    }));
                axum::serve(listener, app).with_graceful_shutdown(async { let _ = stopped.await; }).await.unwrap();
            });
        });
        StubGateway { url: format!("http://{}", rx.recv().unwrap()), hits, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for StubGateway {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

/// The shop on the fake, settling on every request (the CLI cannot tick it).
fn settled_shop() -> (FakeKube, tempfile::TempDir, StubGateway) {
    let fake = FakeKube::start();
    fake.create_yaml(NS, &shop_yaml());
    fake.converge();
    fake.auto_converge(true);
    fake.clear_log();
    (fake, tempfile::tempdir().unwrap(), StubGateway::start())
}

fn experiment(dir: &std::path::Path, hold: &str) -> std::path::PathBuf {
    let path = dir.join("delivery-outage.yaml");
    let yaml = format!(
        "title: Delivery outage on kube\nsystem: shop\nhypothesis:\n  - name: delivery is up\n    replicas: {{ service: delivery, ready: 1 }}\nmethod:\n  - scale: {{ service: delivery, replicas: 0 }}\n    hold: {hold}\n"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn chaos_run(fake: &FakeKube, dir: &std::path::Path, gateway: &StubGateway, file: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .args(["chaos", "run"])
        .arg(file)
        .args(["--platform", "kube", "--context", CONTEXT, "--namespace", NS, "--gateway-url", &gateway.url])
        .arg("--kubeconfig")
        .arg(fake.kubeconfig(dir))
        .arg("--reports")
        .arg(dir.join("reports"))
        .args(extra)
        .env_remove("STORMPROOF_REPORTS");
    command
}

#[test]
fn chaos_run_dry_run_on_kube_prints_the_changes_and_sends_none() {
    let (fake, dir, gateway) = settled_shop();
    let file = experiment(dir.path(), "0s");
    let out = chaos_run(&fake, dir.path(), &gateway, &file, &["--dry-run"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let version = fake.get("deployments", NS, "delivery").unwrap()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let scale = "PATCH /apis/apps/v1/namespaces/shop/deployments/delivery/scale?fieldManager=stormproof (application/merge-patch+json)";
    let body = |n: u32| format!("{{\"metadata\":{{\"resourceVersion\":\"{version}\"}},\"spec\":{{\"replicas\":{n}}}}}");
    assert!(stdout.contains(&format!("dry-run: would scale deployment/delivery to 0: {scale} {}", body(0))), "{stdout}");
    assert!(stdout.contains(&format!("dry-run: would scale deployment/delivery to 1: {scale} {}", body(1))), "the rollback too:\n{stdout}");
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    assert!(fake.requests().iter().any(|r| r.path == "/apis/apps/v1/namespaces/shop/deployments/delivery"), "it did read the cluster");
}

/// The `switches` fault under `--dry-run`, with load and flows: the API
/// server's log shows reads only — no mutating request, no request to a
/// pod's IP — and the gateway gets nothing at all. The journal says it was
/// a dry run, and rolling it back sends nothing.
#[test]
fn a_dry_run_of_the_switches_fault_sends_no_change_and_no_traffic() {
    let (fake, dir, gateway) = settled_shop();
    let file = dir.path().join("unhealthy.yaml");
    std::fs::write(
        &file,
        "title: Delivery unhealthy on kube\nsystem: shop\nload:\n  users: 2\n  routes:\n    - post: /orders\n      body: { productId: 1, quantity: 1, customerId: dry, customerName: Dry, customerAddr: Seoul }\nhypothesis:\n  - name: an order is accepted\n    flow:\n      - post: /orders\n        body: { productId: 2, quantity: 1, customerId: dry, customerName: Dry, customerAddr: Seoul }\n        expect: { status: 201 }\nmethod:\n  - switches: { service: delivery, unhealthy: true }\n    hold: 0s\n",
    )
    .unwrap();
    let out = chaos_run(&fake, dir.path(), &gateway, &file, &["--dry-run"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let pod = fake.list("pods", NS).into_iter().find(|p| p["metadata"]["labels"]["app.kubernetes.io/name"] == "delivery").unwrap()["metadata"]["name"].as_str().unwrap().to_string();
    let said = format!("{stdout}{stderr}");
    assert!(said.contains(&format!("dry-run: would set the switches of pod/{pod} of delivery: PUT /api/v1/namespaces/shop/pods/{pod}:8080/proxy/_stormproof/switches")), "{said}");
    assert!(said.contains("dry-run: would run load of 2 users") && said.contains("POST /orders"), "the load is printed: {said}");
    assert!(said.contains("dry run: not sent: POST /orders"), "the flow is printed: {said}");
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.path == "/apis/apps/v1/namespaces/shop/deployments/delivery"), "it did read the cluster");
    assert!(requests.iter().all(|r| r.path.starts_with("/api") && !r.path.contains("10.244.")), "API server paths only: {requests:#?}");
    assert_eq!(gateway.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "no business traffic, not even a login");
    let run_dir = std::fs::read_dir(dir.path().join("reports")).unwrap().next().unwrap().unwrap().path();
    let journal_path = run_dir.join("journal.json");
    let journal = stormproof::chaos::Journal::read(&journal_path).unwrap();
    assert!(journal.dry_run, "the journal says it was a dry run");
    assert!(journal.load.is_none(), "no load ran");
    fake.clear_log();
    let rollback = std::process::Command::new(BIN).args(["chaos", "rollback"]).arg(&journal_path).output().unwrap();
    let said = String::from_utf8_lossy(&rollback.stdout);
    assert!(rollback.status.success(), "{said}{}", String::from_utf8_lossy(&rollback.stderr));
    assert!(said.contains("dry run's journal: nothing was changed, so nothing is rolled back (no request sent)"), "{said}");
    assert!(fake.requests().is_empty(), "the rollback of a dry run sends nothing: {:#?}", fake.requests());
}

/// The rails refuse, through the CLI: a Deployment without the opt-in label
/// is not touched (the run cannot judge: inconclusive, exit 1), and a
/// namespace the system's definition does not allow is a usage error (2).
#[test]
fn rails_violations_through_the_cli_are_refused_with_the_standard_exit_codes() {
    let (fake, dir, gateway) = settled_shop();
    fake.relabel(NS, "delivery", "stormproof.io/chaos", None);
    fake.clear_log();
    let file = experiment(dir.path(), "0s");
    let out = chaos_run(&fake, dir.path(), &gateway, &file, &[]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(stormproof::exit::FAILED), "{said}");
    assert!(said.contains("has not opted in") && said.contains("stormproof.io/chaos=enabled"), "{said}");
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    assert_eq!(fake.get("deployments", NS, "delivery").unwrap()["spec"]["replicas"], 1);
}

/// `k8s apply` keeps to the same allowlist as the rails (a folder whose
/// system.yaml names its namespace refuses another, exit 2, before any
/// request), and its `--dry-run` is the API server's: every request
/// carries dryRun=All and nothing is stored.
#[test]
fn k8s_apply_keeps_to_the_allowlist_and_dry_runs_on_the_server() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let apply = |system: &std::path::Path, namespace: &str, extra: &[&str]| {
        std::process::Command::new(BIN)
            .args(["k8s", "apply"])
            .arg(system)
            .args(["--context", CONTEXT, "--namespace", namespace, "--kubeconfig"])
            .arg(&kubeconfig)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = apply(std::path::Path::new("shop"), NS, &["--dry-run"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("deployment/order serverside-applied (server dry run)"), "{said}");
    let sent = fake.mutating_requests();
    assert_eq!(sent.len(), 18, "{sent:#?}");
    assert!(sent.iter().all(|r| r.dry_run()), "every object went to the server's dry run: {sent:#?}");
    assert!(fake.list("deployments", NS).is_empty() && fake.list("secrets", NS).is_empty(), "nothing was stored");
    // A folder that says where it is deployed: another namespace is refused.
    let folder = dir.path().join("my-shop");
    std::fs::create_dir_all(&folder).unwrap();
    let shop = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/shop/system.yaml")).unwrap();
    std::fs::write(folder.join("system.yaml"), format!("{shop}\nkube: {{ context: {CONTEXT}, namespace: {NS} }}\n")).unwrap();
    fake.clear_log();
    let out = apply(&folder, "production", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR), "{stderr}");
    assert!(stderr.contains("--namespace production contradicts shop's system.yaml, which says kube.namespace: shop"), "{stderr}");
    assert!(fake.requests().is_empty(), "refused before any request: {:#?}", fake.requests());
}

#[test]
fn chaos_run_on_kube_without_a_context_is_a_usage_error() {
    let (fake, dir, gateway) = settled_shop();
    let file = experiment(dir.path(), "0s");
    let out = std::process::Command::new(BIN)
        .args(["chaos", "run"])
        .arg(&file)
        .args(["--platform", "kube", "--namespace", NS, "--gateway-url", &gateway.url])
        .arg("--kubeconfig")
        .arg(fake.kubeconfig(dir.path()))
        .env_remove("STORMPROOF_KUBE_CONTEXT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--platform kube needs --context"), "{stderr}");
    assert!(fake.requests().is_empty());
}

#[test]
fn chaos_abort_stops_a_running_kube_experiment_and_rolls_it_back() {
    let (fake, dir, gateway) = settled_shop();
    let file = experiment(dir.path(), "2m");
    let mut run = chaos_run(&fake, dir.path(), &gateway, &file, &[]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Wait for the fault, however long the start takes (no timing assertion).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fake.get("deployments", NS, "delivery").unwrap()["spec"]["replicas"] != 0 {
        assert!(std::time::Instant::now() < deadline, "the experiment never scaled delivery to 0");
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let abort = std::process::Command::new(BIN).args(["chaos", "abort", "--reports"]).arg(dir.path().join("reports")).output().unwrap();
    let said = String::from_utf8_lossy(&abort.stdout);
    assert!(abort.status.success(), "{said}{}", String::from_utf8_lossy(&abort.stderr));
    assert!(said.contains("Aborted") && said.contains("rollback verified"), "{said}");
    let ended = run.wait_with_output().unwrap();
    assert_eq!(ended.status.code(), Some(stormproof::exit::FAILED), "{}", String::from_utf8_lossy(&ended.stderr));
    assert_eq!(fake.get("deployments", NS, "delivery").unwrap()["spec"]["replicas"], 1);
    let scales: Vec<serde_json::Value> = fake.mutating_requests().iter().filter(|r| r.path.ends_with("/delivery/scale")).map(|r| r.json()["spec"].clone()).collect();
    assert_eq!(scales, [json!({"replicas": 0}), json!({"replicas": 1})]);
    let run_dir = std::fs::read_dir(dir.path().join("reports")).unwrap().next().unwrap().unwrap().path();
    let journal = stormproof::chaos::Journal::read(&run_dir.join("journal.json")).unwrap();
    assert_eq!((journal.status, journal.rollback_verified), (stormproof::chaos::Verdict::Aborted, Some(true)));
    assert!(journal.deviated.unwrap().contains("SIGTERM"));
    assert!(!run_dir.join("pid").exists(), "the pid file goes with the run");
}

#[test]
fn an_experiment_scoped_to_another_namespace_is_refused_before_any_request() {
    let (fake, dir, gateway) = settled_shop();
    let file = experiment(dir.path(), "0s");
    let scoped = format!("{}kube: {{ context: {CONTEXT}, namespace: production }}\n", std::fs::read_to_string(&file).unwrap());
    std::fs::write(&file, scoped).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["chaos", "run"])
        .arg(&file)
        .args(["--platform", "kube", "--context", CONTEXT, "--namespace", NS, "--gateway-url", &gateway.url])
        .arg("--kubeconfig")
        .arg(fake.kubeconfig(dir.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--namespace shop contradicts the experiment, which may act only in namespace production"), "{stderr}");
    assert!(fake.requests().is_empty());
}

// ---- a user's own system: Deployments found as its system.yaml maps them ----

const USER_NS: &str = "pyshop";

/// A user's Deployment, not rendered by stormproof: its own name, labels and container.
fn user_deployment(name: &str, app: &str, opted_in: bool) -> String {
    let opt_in = if opted_in { "\n    stormproof.io/chaos: enabled" } else { "" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app: {app}{opt_in}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n    spec:\n      containers:\n        - name: api\n          image: example/{app}:v1\n          ports: [{{ name: http, containerPort: 8000 }}]\n          readinessProbe: {{ httpGet: {{ path: /ready, port: http }}, periodSeconds: 2 }}\n"
    )
}

/// The user's system: order by selector, delivery by name (and label),
/// mypage in another namespace, a report whose selector matches twice.
fn user_system_yaml(gateway: &str) -> String {
    format!(
        "system: pyshop\ntopic: pyshop\nkube: {{ context: {CONTEXT}, namespace: {USER_NS}, gateway_url: \"{gateway}\" }}\ngateway:\n  auth: none\n  routes: []\nservices:\n  - {{ name: order, role: core, run: {{ command: [python3, order.py] }}, kube: {{ selector: {{ app: order }} }} }}\n  - {{ name: delivery, role: supporting, run: {{ command: [python3, delivery.py] }}, kube: {{ deployment: delivery-worker, selector: {{ app: delivery }} }} }}\n  - {{ name: mypage, role: read-model, run: {{ command: [python3, mypage.py] }}, kube: {{ namespace: elsewhere, selector: {{ app: mypage }} }} }}\n  - {{ name: report, role: read-model, run: {{ command: [python3, report.py] }}, kube: {{ selector: {{ tier: reports }} }} }}\n"
    )
}

fn user_cluster() -> FakeKube {
    let fake = FakeKube::start();
    fake.create_yaml(USER_NS, &user_deployment("orders-api", "order", true));
    fake.create_yaml(USER_NS, &user_deployment("delivery-worker", "delivery", true));
    fake.create_yaml(USER_NS, &user_deployment("not-opted-in", "legacy", false));
    fake.create_yaml("elsewhere", &user_deployment("mypage", "mypage", true));
    for name in ["report-a", "report-b"] {
        fake.create_yaml(USER_NS, &user_deployment(name, name, true).replacen("  labels:\n    app:", "  labels:\n    tier: reports\n    app:", 1));
    }
    fake.converge();
    fake.clear_log();
    fake
}

async fn user_platform(fake: &FakeKube, dir: &std::path::Path, def: &SystemDef) -> KubePlatform {
    let target = KubeTarget { context: CONTEXT.into(), namespace: USER_NS.into(), kubeconfig: Some(fake.kubeconfig(dir)) };
    KubePlatform::for_system(connect(&target).await.unwrap(), CONTEXT, USER_NS, def)
}

#[tokio::test]
async fn a_users_deployments_are_found_by_their_selectors_and_scaled_within_the_rails() {
    let fake = user_cluster();
    let dir = tempfile::tempdir().unwrap();
    let def = SystemDef::parse(&user_system_yaml("http://127.0.0.1:1"), "system.yaml").unwrap();
    let kube = user_platform(&fake, dir.path(), &def).await;
    let render = manifests::render(&def, &render_options()).unwrap_err().to_string();
    assert!(render.contains("pyshop.order runs a command of your own") && render.contains("map each service to its Deployment"), "{render}");

    let order = kube.service("order").await.unwrap();
    assert_eq!((order.name.as_str(), order.role, order.desired, order.ready), ("order", Role::Core, 1, 1), "named by its system, found by app=order");
    assert!(order.replicas[0].id.starts_with("orders-api-"), "{:?}", order.replicas);
    let requests: Vec<String> = fake.requests().iter().map(|r| format!("{} {}?{}", r.method, r.path, r.query)).collect();
    assert!(requests.contains(&"GET /apis/apps/v1/namespaces/pyshop/deployments?&labelSelector=app%3Dorder".to_string()), "{requests:#?}");
    let delivery = kube.service("delivery").await.unwrap();
    assert_eq!((delivery.role, delivery.ready), (Role::Supporting, 1));
    assert_eq!(kube.service("mypage").await.unwrap().replicas.len(), 1, "read in its own namespace");
    let twice = kube.service("report").await.unwrap_err().to_string();
    assert!(twice.contains("tier=reports matches 2 Deployments in namespace `pyshop` (report-a, report-b)"), "{twice}");
    assert!(matches!(kube.service("nope").await, Err(PlatformError::UnknownService(_))));

    let rails = Rails::new(kube, &Allowed { context: CONTEXT.into(), namespace: USER_NS.into() }).unwrap().with_own_pod(None);
    fake.clear_log();
    rails.scale("order", 3).await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("PATCH", "/apis/apps/v1/namespaces/pyshop/deployments/orders-api/scale"), "the Deployment's own name");
    assert_eq!(sent.json()["spec"], json!({"replicas": 3}));
    assert!(sent.json()["metadata"]["resourceVersion"].is_string(), "conditional on the Deployment as checked");
    fake.converge();
    assert_eq!(rails.service("order").await.unwrap().ready, 3);
    let killed = rails.kill("delivery", None).await.unwrap();
    assert!(killed.starts_with("delivery-worker-"), "{killed}");

    fake.clear_log();
    let elsewhere = rails.scale("mypage", 0).await.unwrap_err().to_string();
    assert!(elsewhere.contains("deployment/mypage of mypage is in namespace `elsewhere`: only namespace `pyshop` is allowed"), "{elsewhere}");
    assert!(rails.rollout("report", &Template::version("v2")).await.is_err());
    assert!(fake.mutating_requests().is_empty(), "refused before any change: {:#?}", fake.mutating_requests());
}

#[tokio::test]
async fn a_users_deployment_that_did_not_opt_in_or_does_not_match_is_refused() {
    let fake = user_cluster();
    let dir = tempfile::tempdir().unwrap();
    let yaml = user_system_yaml("http://127.0.0.1:1")
        .replace("kube: { deployment: delivery-worker, selector: { app: delivery } }", "kube: { deployment: delivery-worker, selector: { app: shipping } }")
        .replace("kube: { selector: { app: order } }", "kube: { deployment: not-opted-in }");
    let def = SystemDef::parse(&yaml, "system.yaml").unwrap();
    let rails = Rails::new(user_platform(&fake, dir.path(), &def).await, &Allowed { context: CONTEXT.into(), namespace: USER_NS.into() }).unwrap().with_own_pod(None);
    let err = rails.scale("order", 0).await.unwrap_err().to_string();
    assert!(err.contains("deployment/order in namespace `pyshop` has not opted in: it needs the label stormproof.io/chaos=enabled") || err.contains("has not opted in"), "{err}");
    let err = rails.scale("delivery", 0).await.unwrap_err().to_string();
    assert!(err.contains("deployment/delivery-worker in namespace `pyshop` does not carry app=shipping, as system.yaml says it does"), "{err}");
    assert!(fake.mutating_requests().is_empty());
}

#[test]
fn check_a_users_folder_on_kube_maps_its_services_and_keeps_to_the_rails() {
    let fake = user_cluster();
    fake.auto_converge(true);
    let dir = tempfile::tempdir().unwrap();
    let gateway = StubGateway::start();
    let folder = dir.path().join("my-system");
    std::fs::create_dir_all(folder.join("chaos")).unwrap();
    // Without the ambiguous report (which would stop every read of the platform, naming both Deployments).
    let yaml: String = user_system_yaml(&gateway.url).lines().filter(|l| !l.contains("name: report")).map(|l| format!("{l}\n")).collect();
    std::fs::write(folder.join("system.yaml"), yaml).unwrap();
    std::fs::write(
        folder.join("checkpoints.yaml"),
        "checkpoints:\n  - { id: 6, en: Failure isolation, ko: 장애격리, experiment: delivery-outage, phases: [before, during] }\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("chaos/delivery-outage.yaml"),
        "title: Delivery outage\nsystem: pyshop\nhypothesis:\n  - name: delivery is up\n    replicas: { service: delivery, ready: 1 }\nmethod:\n  - scale: { service: delivery, replicas: 0 }\n    hold: 0s\nduring:\n  - name: delivery is down\n    within: 30s\n    replicas: { service: delivery, ready: 0 }\n",
    )
    .unwrap();
    fake.clear_log();
    // Context, namespace and gateway URL come from the folder's system.yaml.
    let out = std::process::Command::new(BIN)
        .args(["check"])
        .arg(&folder)
        .args(["--platform", "kube", "--kubeconfig"])
        .arg(fake.kubeconfig(dir.path()))
        .arg("--reports")
        .arg(dir.path().join("reports"))
        .env_remove("STORMPROOF_KUBE_CONTEXT")
        .env_remove("STORMPROOF_KUBE_NAMESPACE")
        .env_remove("STORMPROOF_GATEWAY_URL")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(stormproof::exit::PASSED), "{said}");
    assert!(said.contains("Failure isolation") && said.contains("PASS") && said.contains("delivery ready 0/0"), "{said}");
    let scales: Vec<(String, serde_json::Value)> = fake.mutating_requests().iter().map(|r| (r.path.clone(), r.json()["spec"].clone())).collect();
    let path = "/apis/apps/v1/namespaces/pyshop/deployments/delivery-worker/scale".to_string();
    assert_eq!(scales, [(path.clone(), json!({"replicas": 0})), (path, json!({"replicas": 1}))], "scaled and restored, nothing else");

    let out = std::process::Command::new(BIN)
        .args(["check"])
        .arg(&folder)
        .args(["--platform", "kube", "--namespace", "production", "--kubeconfig"])
        .arg(fake.kubeconfig(dir.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--namespace production contradicts pyshop's system.yaml, which says kube.namespace: pyshop"), "{stderr}");
}

#[tokio::test]
async fn a_users_deployment_rolled_without_readiness_gets_its_own_probe_back() {
    let fake = user_cluster();
    let dir = tempfile::tempdir().unwrap();
    let def = SystemDef::parse(&user_system_yaml("http://127.0.0.1:1"), "system.yaml").unwrap();
    let kube = user_platform(&fake, dir.path(), &def).await;
    let mut unready = Template::version("v2");
    unready.readiness = false;
    kube.rollout("order", &unready).await.unwrap();
    fake.converge();
    let container = |fake: &FakeKube| fake.get("deployments", USER_NS, "orders-api").unwrap()["spec"]["template"]["spec"]["containers"][0].clone();
    assert!(container(&fake)["readinessProbe"].is_null(), "rolled out without readiness");
    assert_eq!(container(&fake)["image"], "example/order:v2", "the user's image, retagged");
    fake.clear_log();
    // What a chaos rollback sends: the prior template, readiness on. stormproof
    // never defined this probe: it comes from the earlier ReplicaSet.
    kube.rollout("order", &Template::version("v1")).await.unwrap();
    let sent = only_mutation(&fake);
    assert_eq!(sent.path, "/apis/apps/v1/namespaces/pyshop/deployments/orders-api");
    assert_eq!(sent.json()["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container(&fake)["readinessProbe"]["periodSeconds"], 2);
}

/// The taxi (seed 001) renders like the shop: a Deployment and a Service per
/// service and the gateway, call's autoscaler at the seed's 1–10, the
/// synchronous dependency on payment wired, every service probed with the
/// course's values on `/actuator/health`, and kubernetes-validate accepts it.
#[test]
fn the_taxi_renders_and_passes_kubernetes_validate_strict() {
    let objects = manifests::render(&SystemDef::builtin("taxi").unwrap(), &render_options()).unwrap();
    let yaml = manifests::to_yaml(&objects).unwrap();
    assert_eq!(manifests::parse(&yaml).unwrap(), objects);
    let deployments: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            manifests::Object::Deployment(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let mut names: Vec<_> = deployments.iter().map(|d| d.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["call", "calllist", "calllist-late", "driver", "gateway", "payment"]);
    assert_eq!(objects.iter().filter(|o| matches!(o, manifests::Object::Service(_))).count(), 7, "and the database's");
    let hpas: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            manifests::Object::Hpa(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(hpas.len(), 1, "only call autoscales");
    let hpa = hpas[0].spec.as_ref().unwrap();
    assert_eq!((hpa.scale_target_ref.name.as_str(), hpa.min_replicas, hpa.max_replicas), ("call", Some(1), 10), "the seed's --min=1 --max=10");
    for (service, upstream) in [("call", Some("payment=http://payment:80")), ("driver", Some("payment=http://payment:80")), ("calllist", None)] {
        let deployment = deployments.iter().find(|d| d.metadata.name.as_deref() == Some(service)).unwrap();
        let container = &deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.args.as_ref().unwrap(), &["serve".to_string(), format!("taxi.{service}")]);
        let env = container.env.as_ref().unwrap();
        let upstreams = env.iter().find(|e| e.name == "STORMPROOF_UPSTREAMS").and_then(|e| e.value.as_deref());
        assert_eq!(upstreams.filter(|u| !u.is_empty()), upstream, "{service}");
        assert!(container.readiness_probe.is_some() && container.liveness_probe.is_some(), "{service} is probed");
    }
    // The course's probes (SYSTEMS.md 0.3), not the scaled-down local ones.
    for deployment in deployments.iter().filter(|d| d.metadata.name.as_deref() != Some("gateway")) {
        let container = &deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        let timing = |p: &k8s_openapi::api::core::v1::Probe| {
            (p.http_get.as_ref().and_then(|g| g.path.clone()), p.initial_delay_seconds, p.timeout_seconds, p.period_seconds, p.failure_threshold)
        };
        let path = Some("/actuator/health".to_string());
        assert_eq!(timing(container.readiness_probe.as_ref().unwrap()), (path.clone(), Some(10), Some(2), Some(5), Some(10)), "{:?}", deployment.metadata.name);
        assert_eq!(timing(container.liveness_probe.as_ref().unwrap()), (path, Some(120), Some(2), Some(5), Some(5)), "{:?}", deployment.metadata.name);
    }
    let late = deployments.iter().find(|d| d.metadata.name.as_deref() == Some("calllist-late")).unwrap();
    assert_eq!(late.spec.as_ref().unwrap().replicas, Some(0), "the late board waits for its experiment");
    assert_eq!(
        manifests::defined_readiness("taxi", "call").and_then(|p| p.initial_delay_seconds),
        Some(10),
        "a rollout with readiness puts the course's probe back"
    );
    let Some(validate) = kubernetes_validate() else {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "SKIPPED the kubernetes-validate half of the_taxi_renders_and_passes_kubernetes_validate_strict: kubernetes-validate is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taxi.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = std::process::Command::new(validate).args(["--strict", "--kubernetes-version", "1.33.0"]).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("INFO").count(), objects.len(), "{stdout}");
}

/// The library (seed 003) renders like the taxi: a Deployment and a Service
/// per service and the gateway, books' autoscaler at the seed's maximum of
/// 3 with its 200m CPU request, donate at the seed's 3 replicas, the late
/// bookdetail at 0 as another instance, no synchronous upstreams; it applies
/// to the (fake) API server and kubernetes-validate accepts it.
#[tokio::test]
async fn the_library_renders_applies_and_passes_kubernetes_validate_strict() {
    let objects = manifests::render(&SystemDef::builtin("library").unwrap(), &render_options()).unwrap();
    let yaml = manifests::to_yaml(&objects).unwrap();
    assert_eq!(manifests::parse(&yaml).unwrap(), objects);
    let deployments: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            manifests::Object::Deployment(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let mut names: Vec<_> = deployments.iter().map(|d| d.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["bookdetail", "bookdetail-late", "books", "donate", "gateway", "request"]);
    assert_eq!(objects.iter().filter(|o| matches!(o, manifests::Object::Service(_))).count(), 7, "and the database's");
    let hpas: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            manifests::Object::Hpa(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(hpas.len(), 1, "only books autoscales");
    let hpa = hpas[0].spec.as_ref().unwrap();
    assert_eq!((hpa.scale_target_ref.name.as_str(), hpa.min_replicas, hpa.max_replicas), ("books", Some(1), 3), "the seed's maxpods 3");
    let spec_of = |name: &str| deployments.iter().find(|d| d.metadata.name.as_deref() == Some(name)).unwrap().spec.clone().unwrap();
    assert_eq!(spec_of("donate").replicas, Some(3), "the seed's 3 donate replicas for the rolling update");
    assert_eq!(spec_of("bookdetail-late").replicas, Some(0), "deployed late: at 0 until an experiment scales it");
    for (service, handler) in [("donate", "donate"), ("request", "request"), ("books", "books"), ("bookdetail", "bookdetail"), ("bookdetail-late", "bookdetail")] {
        let container = &spec_of(service).template.spec.unwrap().containers[0];
        assert_eq!(container.args.as_ref().unwrap(), &["serve".to_string(), format!("library.{handler}")]);
        let env = container.env.as_ref().unwrap();
        let upstreams = env.iter().find(|e| e.name == "STORMPROOF_UPSTREAMS").and_then(|e| e.value.as_deref());
        assert!(upstreams.is_none_or(str::is_empty), "{service} calls nobody synchronously: {upstreams:?}");
        assert!(container.readiness_probe.is_some() && container.liveness_probe.is_some(), "{service} is probed");
        if service == "books" {
            assert_eq!(container.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0, "200m", "the seed's requests.cpu");
        }
        if service == "bookdetail-late" {
            assert!(env.iter().any(|e| e.name == "STORMPROOF_INSTANCE" && e.value.as_deref() == Some("late")), "its own group and routes");
        }
    }

    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let target = KubeTarget { context: CONTEXT.into(), namespace: NS.into(), kubeconfig: Some(fake.kubeconfig(dir.path())) };
    let client = connect(&target).await.unwrap();
    let applied = manifests::apply(&client, NS, &objects, manifests::ApplyMode::Apply).await.unwrap();
    assert_eq!(applied.len(), objects.len());
    assert_eq!(fake.get("deployments", NS, "donate").unwrap()["spec"]["replicas"], 3);
    assert!(fake.get("horizontalpodautoscalers", NS, "books").is_some());

    let Some(validate) = kubernetes_validate() else {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "SKIPPED the kubernetes-validate half of the_library_renders_applies_and_passes_kubernetes_validate_strict: kubernetes-validate is not installed");
        return;
    };
    let file = dir.path().join("library.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = std::process::Command::new(validate).args(["--strict", "--kubernetes-version", "1.33.0"]).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("INFO").count(), objects.len(), "{stdout}");
}

/// The telecom (seed 004) renders like the taxi: a Deployment and a Service
/// per service and the gateway (mypage-late at 0 replicas), order's
/// autoscaler at 1–3 on its 500m CPU request, pay's synchronous lookup of
/// bill wired, the seed's ConfigMap `config-dev` (ORDER_LOG_LEVEL) read by
/// every pod, and kubernetes-validate accepts it.
#[test]
fn the_telecom_renders_and_passes_kubernetes_validate_strict() {
    let objects = manifests::render(&SystemDef::builtin("telecom").unwrap(), &render_options()).unwrap();
    let yaml = manifests::to_yaml(&objects).unwrap();
    assert_eq!(manifests::parse(&yaml).unwrap(), objects);
    let deployments: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            manifests::Object::Deployment(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let mut names: Vec<_> = deployments.iter().map(|d| d.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["bill", "gateway", "mypage", "mypage-late", "order", "pay"]);
    let hpas: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            manifests::Object::Hpa(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(hpas.len(), 1, "only order autoscales");
    let config = objects.iter().find_map(|o| match o {
        manifests::Object::ConfigMap(c) if c.metadata.name.as_deref() == Some("config-dev") => Some(c.clone()),
        _ => None,
    });
    let data = config.expect("the seed's ConfigMap config-dev").data.unwrap();
    assert_eq!(data.get("ORDER_LOG_LEVEL").map(String::as_str), Some("INFO"));
    let hpa = hpas[0].spec.as_ref().unwrap();
    assert_eq!((hpa.scale_target_ref.name.as_str(), hpa.min_replicas, hpa.max_replicas), ("order", Some(1), 3));
    for (service, upstream) in [("pay", Some("bill=http://bill:80")), ("bill", None), ("order", None), ("mypage", None)] {
        let deployment = deployments.iter().find(|d| d.metadata.name.as_deref() == Some(service)).unwrap();
        let container = &deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.args.as_ref().unwrap(), &["serve".to_string(), format!("telecom.{service}")]);
        let env = container.env.as_ref().unwrap();
        let upstreams = env.iter().find(|e| e.name == "STORMPROOF_UPSTREAMS").and_then(|e| e.value.as_deref());
        assert_eq!(upstreams.filter(|u| !u.is_empty()), upstream, "{service}");
        assert!(container.readiness_probe.is_some() && container.liveness_probe.is_some(), "{service} is probed");
        let from: Vec<_> = container.env_from.iter().flatten().filter_map(|f| f.config_map_ref.as_ref().map(|c| c.name.as_str())).collect();
        assert_eq!(from, ["telecom-kafka", "config-dev"], "{service} reads the seed's ConfigMap");
        if service == "order" {
            let cpu = container.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0.clone();
            assert_eq!(cpu, "500m", "the repository's cpu request");
        }
    }
    let Some(validate) = kubernetes_validate() else {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "SKIPPED the kubernetes-validate half of the_telecom_renders_and_passes_kubernetes_validate_strict: kubernetes-validate is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("telecom.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = std::process::Command::new(validate).args(["--strict", "--kubernetes-version", "1.33.0"]).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("INFO").count(), objects.len(), "{stdout}");
}

/// A `broker` action needs the embedded broker, which a cluster does not
/// have: the run is refused (usage error, 2) before any request, the
/// gateway's token included, and no journal is started.
#[test]
fn a_broker_action_on_kube_is_refused_before_anything_changes() {
    let (fake, dir, gateway) = settled_shop();
    let file = dir.path().join("broker-not-leader.yaml");
    let yaml = "title: t\nsystem: shop\nhypothesis:\n  - name: delivery is up\n    replicas: { service: delivery, ready: 1 }\nmethod:\n  - scale: { service: delivery, replicas: 0 }\n    hold: 0s\n  - broker: { service: order, api: produce, error: NOT_LEADER_OR_FOLLOWER }\n    hold: 5s\n";
    std::fs::write(&file, yaml).unwrap();
    let out = chaos_run(&fake, dir.path(), &gateway, &file, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR), "{stderr}");
    assert!(stderr.contains("broker-not-leader.yaml: method[1]: a `broker` action") && stderr.contains("--platform kube has no embedded broker"), "{stderr}");
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
    assert_eq!(gateway.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "no token asked for");
    assert!(!dir.path().join("reports").exists(), "no run was started");
    assert_eq!(fake.get("deployments", NS, "delivery").unwrap()["spec"]["replicas"], 1, "the scale before it did not happen either");
}

/// A network fault a cluster cannot set (a reset: Chaos Mesh has no RST)
/// is refused the same way, before any request.
#[test]
fn a_network_fault_kube_cannot_set_is_refused_before_anything_changes() {
    let (fake, dir, gateway) = settled_shop();
    let file = dir.path().join("flaky.yaml");
    let yaml = "title: t\nsystem: shop\nmethod:\n  - scale: { service: delivery, replicas: 0 }\n    hold: 0s\n  - network: { from: delivery, to: broker, reset: true }\n    hold: 5s\n";
    std::fs::write(&file, yaml).unwrap();
    let out = chaos_run(&fake, dir.path(), &gateway, &file, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(stormproof::exit::ERROR), "{stderr}");
    assert!(stderr.contains("flaky.yaml: method[1].network: not on --platform kube") && stderr.contains("no RST action"), "{stderr}");
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
    assert_eq!(gateway.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "no token asked for");
    assert!(!dir.path().join("reports").exists(), "no run was started");
}

// Network faults: Chaos Mesh's NetworkChaos for what tc does, a
// NetworkPolicy for a partition, each through the rails.

fn network_fault(yaml: &str) -> stormproof::platform::network::NetworkFault {
    let mut fault = serde_saphyr::from_str::<stormproof::chaos::NetworkAction>(yaml).unwrap().fault;
    fault.expires_after = Some(std::time::Duration::from_secs(70));
    fault
}

fn pod_labels(fake: &FakeKube, deployment: &str) -> serde_json::Value {
    fake.get("deployments", NS, deployment).unwrap()["spec"]["selector"]["matchLabels"].clone()
}

#[tokio::test]
async fn a_latency_fault_is_a_network_chaos_created_only_when_chaos_mesh_is_installed_and_deleted_on_clear() {
    let (fake, _dir, kube) = shop().await;
    let rails = Rails::new(kube, &allowed()).unwrap().with_own_pod(None);
    let slow = network_fault("{ from: order, to: product, latency: 800ms, jitter: 100ms, direction: upstream }");
    let err = rails.set_network_fault(&slow).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("install Chaos Mesh") && m.contains("networkchaos.chaos-mesh.org")), "{err}");
    assert!(fake.mutating_requests().is_empty(), "no CRD, no write: {:#?}", fake.mutating_requests());
    assert!(fake.requests().iter().any(|r| r.path == "/apis/chaos-mesh.org/v1alpha1"), "found out by API discovery");
    fake.install_chaos_mesh();
    fake.clear_log();
    let active = rails.set_network_fault(&slow).await.unwrap();
    assert_eq!((active.id, active.on.len(), &active.fault), (1, 1, &slow));
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/apis/chaos-mesh.org/v1alpha1/namespaces/shop/networkchaos"));
    assert!(sent.query.contains("fieldManager=stormproof"), "{}", sent.query);
    let body = sent.json();
    assert_eq!((body["kind"].as_str(), body["metadata"]["name"].as_str()), (Some("NetworkChaos"), Some("stormproof-network-1")));
    assert_eq!(body["metadata"]["labels"]["stormproof.io/network-fault"], "1");
    let spec = &body["spec"];
    assert_eq!((spec["action"].as_str(), spec["mode"].as_str(), spec["direction"].as_str(), spec["duration"].as_str()), (Some("delay"), Some("all"), Some("to"), Some("70s")));
    assert_eq!(spec["delay"], json!({"latency": "800ms", "jitter": "100ms", "correlation": "0"}));
    assert_eq!(spec["selector"], json!({"namespaces": ["shop"], "labelSelectors": pod_labels(&fake, "order")}));
    assert_eq!(spec["target"], json!({"mode": "all", "selector": {"namespaces": ["shop"], "labelSelectors": pod_labels(&fake, "product")}}));
    assert_eq!(rails.network_faults().await.unwrap(), [active.clone()], "read back from the object");
    // A blackhole is a 100 % loss; a bandwidth is tc's bytes per second.
    rails.set_network_fault(&network_fault("{ from: order, to: broker, blackhole: true }")).await.unwrap();
    rails.set_network_fault(&network_fault("{ from: delivery, to: broker, bandwidth: 10KiB/s }")).await.unwrap();
    let chaos = fake.list("networkchaos", NS);
    assert_eq!(chaos[1]["spec"]["loss"], json!({"loss": "100", "correlation": "0"}));
    assert_eq!(chaos[1]["spec"]["target"]["selector"]["labelSelectors"], json!({"strimzi.io/broker-role": "true"}), "Strimzi's brokers");
    assert_eq!((chaos[2]["spec"]["action"].as_str(), chaos[2]["spec"]["bandwidth"]["rate"].as_str()), (Some("bandwidth"), Some("10240bps")));
    fake.clear_log();
    let cleared = rails.clear_network_fault(1).await.unwrap();
    assert_eq!(cleared.fault, slow);
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("DELETE", "/apis/chaos-mesh.org/v1alpha1/namespaces/shop/networkchaos/stormproof-network-1"));
    assert!(fake.get("networkchaos", NS, "stormproof-network-1").is_none());
    assert!(matches!(rails.clear_network_fault(1).await, Err(PlatformError::Invalid(_))), "cleared once");
}

#[tokio::test]
async fn a_partition_is_a_network_policy_and_clearing_every_fault_deletes_every_object_of_ours() {
    let (fake, _dir, kube) = shop().await;
    let rails = Rails::new(kube, &allowed()).unwrap().with_own_pod(None);
    let cut = network_fault("{ between: [mypage, broker], partition: true }");
    let active = rails.set_network_fault(&cut).await.unwrap();
    assert_eq!(active.on.len(), 2, "both ways of connecting: {:?}", active.on);
    let sent = only_mutation(&fake);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"), "no Chaos Mesh needed");
    let spec = &sent.json()["spec"];
    let others = json!([{"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "strimzi.io/broker-role", "operator": "NotIn", "values": ["true"]}]}}]);
    assert_eq!(spec["podSelector"]["matchLabels"], pod_labels(&fake, "mypage"));
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!((&spec["egress"][0]["to"], &spec["ingress"][0]["from"]), (&others, &others), "every pod but the broker's, both ways");
    // One-way: only the connecting side's egress.
    fake.install_chaos_mesh();
    rails.set_network_fault(&network_fault("{ from: order, to: product, partition: true }")).await.unwrap();
    let policy = fake.get("networkpolicies", NS, "stormproof-network-2").unwrap();
    assert_eq!((policy["spec"]["policyTypes"].clone(), policy["spec"]["ingress"].is_null()), (json!(["Egress"]), true));
    let product = pod_labels(&fake, "product");
    assert_eq!(policy["spec"]["egress"][0]["to"].as_array().unwrap().len(), product.as_object().unwrap().len(), "a peer per label of product's pods");
    rails.set_network_fault(&network_fault("{ from: order, to: product, latency: 1s }")).await.unwrap();
    // Someone else's policy is not ours to clear.
    fake.create_yaml(NS, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  podSelector: {}\n");
    fake.clear_log();
    let cleared = rails.clear_network_faults().await.unwrap();
    assert_eq!(cleared.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 2, 3]);
    let deleted: Vec<String> = fake.mutating_requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        deleted,
        [
            "DELETE /apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/stormproof-network-1",
            "DELETE /apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/stormproof-network-2",
            "DELETE /apis/chaos-mesh.org/v1alpha1/namespaces/shop/networkchaos/stormproof-network-3",
        ]
    );
    assert_eq!(fake.list("networkpolicies", NS).len(), 1, "deny-all stays");
    assert!(rails.network_faults().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_rails_refuse_a_network_fault_on_what_did_not_opt_in_and_what_chaos_mesh_cannot_do() {
    let (fake, _dir, kube) = shop().await;
    fake.install_chaos_mesh();
    let rails = Rails::new(kube.clone(), &allowed()).unwrap().with_own_pod(None);
    let err = rails.set_network_fault(&network_fault("{ from: gateway, to: order, latency: 1s }")).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("deployment/gateway") && m.contains("stormproof.io/chaos=enabled")), "{err}");
    fake.relabel(NS, "product", "stormproof.io/chaos", None);
    let err = rails.set_network_fault(&network_fault("{ between: [order, product], partition: true }")).await.unwrap_err();
    assert!(matches!(&err, PlatformError::Refused(m) if m.contains("deployment/product") && m.contains("has not opted in")), "{err}");
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
    fake.clear_log();
    for (yaml, expected) in [
        ("{ from: delivery, to: broker, reset: true }", "cannot reset connections"),
        ("{ from: delivery, to: broker, slow_close: 2s }", "no slow close"),
        ("{ from: delivery, to: broker, limit_data: 1000 }", "no data limit"),
        ("{ from: delivery, to: broker, latency: 1s, probability: 0.3 }", "not connections"),
        ("{ from: delivery, latency: 1s }", "needs both ends"),
    ] {
        let err = rails.set_network_fault(&network_fault(yaml)).await.unwrap_err();
        assert!(matches!(&err, PlatformError::Refused(m) if m.contains(expected) && m.contains("--platform local")), "{yaml}: {err}");
    }
    assert!(fake.requests().is_empty(), "refused before any request: {:#?}", fake.requests());
    // A dry run prints the object and sends nothing.
    let dry = Rails::new(kube, &allowed()).unwrap().with_own_pod(None).dry_run(|_| {});
    dry.set_network_fault(&network_fault("{ from: order, to: broker, latency: 1s }")).await.unwrap();
    let planned = dry.planned();
    assert_eq!((planned[0].method.as_str(), planned[0].path.as_str()), ("POST", "/apis/chaos-mesh.org/v1alpha1/namespaces/shop/networkchaos"));
    assert_eq!(planned[0].body["spec"]["delay"]["latency"], "1000ms");
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
}

// ---- reaching the cluster from outside: only through the API server ----

/// A stand-in for the gateway's pods behind the fake's Service proxy: it
/// answers with the credentials it was given.
async fn gateway_stand_in() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let echo = |headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        axum::Json(json!({"path": uri.to_string(), "authorization": header("authorization"), "forwarded": header("x-forwarded-authorization")}))
    };
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(echo)).await.unwrap() });
    url
}

/// Where each group in a lag Job's args stands, as `stormproof k8s lag` prints it.
fn lag_answer(job: &serde_json::Value) -> (String, bool) {
    let args: Vec<String> = serde_json::from_value(job["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap();
    assert_eq!(args[..6], ["k8s", "lag", "--bootstrap", "shop-kafka-kafka-bootstrap:9092", "--topic", "shop"], "the in-cluster bootstrap: {args:?}");
    let groups = args.windows(2).filter(|w| w[0] == "--group").map(|w| (w[1].clone(), json!({"behind": 3, "read": 7})));
    (format!("some log line\n{}\n", serde_json::Value::Object(groups.collect())), true)
}

fn kube_settings(fake: &FakeKube, dir: &std::path::Path, dry_run: bool) -> stormproof::chaos::KubeSettings {
    stormproof::chaos::KubeSettings {
        context: Some(CONTEXT.into()),
        namespace: Some(NS.into()),
        kubeconfig: Some(fake.kubeconfig(dir)),
        gateway_url: None,
        kafka: None,
        harness_image: "stormproof:v1".into(),
        dry_run,
    }
}

/// Issue 19: without --gateway-url and --kube-kafka, the harness reaches
/// the gateway through the API server's Service proxy (its token moved to
/// X-Forwarded-Authorization, since the API server drops Authorization)
/// and reads consumer lag with a probe Job in the cluster, read back from
/// the pod's log and deleted; never a pod IP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_outside_the_gateway_and_lag_are_reached_through_the_api_server() {
    let fake = FakeKube::start();
    fake.create_yaml(NS, &shop_yaml());
    fake.converge();
    fake.auto_converge(true);
    fake.serve_service("gateway", &gateway_stand_in().await);
    fake.run_jobs(lag_answer);
    let dir = tempfile::tempdir().unwrap();
    let def = SystemDef::builtin("shop").unwrap();
    let target = stormproof::chaos::Target::kube(&def, &kube_settings(&fake, dir.path(), false), &dir.path().join("run"), None, |_| {}).await.unwrap();
    fake.clear_log();

    let answer: serde_json::Value = reqwest::Client::new().get(format!("{}/orders?mine=1", target.gateway)).bearer_auth("tok").send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["path"], "/orders?mine=1");
    assert_eq!((&answer["authorization"], &answer["forwarded"]), (&json!(null), &json!("Bearer tok")), "{answer}");
    let sent = fake.requests();
    assert_eq!((sent[0].method.as_str(), sent[0].path.as_str(), sent[0].query.as_str()), ("GET", "/api/v1/namespaces/shop/services/gateway:80/proxy/orders", "mine=1"));

    fake.clear_log();
    let reader = target.lag.clone().expect("lag through a probe Job");
    assert!(reader.is_remote());
    let positions = tokio::task::spawn_blocking(move || reader.positions()).await.unwrap().unwrap();
    let groups: Vec<String> = def.consumer_groups().into_iter().map(|(_, g)| g).collect();
    assert!(!groups.is_empty());
    for group in &groups {
        assert_eq!((positions[group].behind, positions[group].read), (3, Some(7)), "{group}");
    }
    let sent = fake.requests();
    let job = sent.iter().find(|r| r.method == "PATCH").expect("the Job applied");
    assert!(job.path.starts_with("/apis/batch/v1/namespaces/shop/jobs/stormproof-lag-"), "{}", job.path);
    assert_eq!(job.json()["metadata"]["labels"]["stormproof.io/harness"], "true", "experiments never touch it");
    assert!(sent.iter().any(|r| r.method == "GET" && r.path.starts_with("/api/v1/namespaces/shop/pods/stormproof-lag-") && r.path.ends_with("/log")), "{sent:#?}");
    assert!(sent.iter().any(|r| r.method == "DELETE" && r.path == job.path), "deleted after: {sent:#?}");
    assert!(fake.list("jobs", NS).is_empty() && !fake.list("pods", NS).iter().any(|p| p["metadata"]["name"].as_str().unwrap().starts_with("stormproof-lag-")));
    assert!(sent.iter().all(|r| r.path.starts_with("/api") && !r.path.contains("10.244.")), "only the API server, never a pod IP: {sent:#?}");

    // A Job that fails is a failed read, and is deleted all the same.
    fake.run_jobs(|_| ("broker unreachable".into(), false));
    let reader = target.lag.clone().unwrap();
    let err = tokio::task::spawn_blocking(move || reader.positions()).await.unwrap().unwrap_err().to_string();
    assert!(err.contains("failed: broker unreachable"), "{err}");
    assert!(fake.list("jobs", NS).is_empty());
}

/// A dry run creates nothing, a probe Job neither: it has no lag reader.
#[tokio::test]
async fn a_dry_run_on_kube_creates_no_probe_job() {
    let fake = FakeKube::start();
    fake.create_yaml(NS, &shop_yaml());
    fake.converge();
    fake.clear_log();
    let dir = tempfile::tempdir().unwrap();
    let def = SystemDef::builtin("shop").unwrap();
    let target = stormproof::chaos::Target::kube(&def, &kube_settings(&fake, dir.path(), true), &dir.path().join("run"), None, |_| {}).await.unwrap();
    assert!(target.lag.is_none());
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
}
