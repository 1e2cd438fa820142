//! Manifests: a reference system as Kubernetes objects — a Deployment and a
//! Service per service (probes, CPU requests, the chaos opt-in label), the
//! gateway, an HPA where the definition autoscales, a Secret for the JWT
//! key and a ConfigMap for the Kafka settings — all running the one
//! stormproof image (`stormproof serve SYSTEM.SERVICE`) — and the services'
//! PostgreSQL server ([`database`](super::database)), whose URL each
//! service pod reads from a Secret. No service keeps data in its pod: an
//! eviction or a rollout loses nothing, and replicas share one store. Kafka
//! itself comes from the cluster (e.g. a Strimzi `Kafka`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretEnvSource, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::{Deserialize, Serialize};

use super::database::{self, Database};
use super::{FIELD_MANAGER, NAME, OPT_IN_LABEL, OPT_IN_VALUE, PART_OF, ROLE, VERSION};
use crate::systems::definition::{ProbeDef, Runs, ServiceDef, SystemDef};
use crate::systems::kit::{ServeOptions, serve_env};

/// The port every service listens on inside its pod.
const PORT: i32 = 8080;
/// The pod's one volume, scratch space (see `pod_deployment`).
const SCRATCH: &str = "tmp";
const SCRATCH_PATH: &str = "/tmp";

/// One object of a rendered system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Object {
    /// The JWT key and demo users.
    Secret(Secret),
    /// The Kafka settings.
    ConfigMap(ConfigMap),
    /// A service's stable address.
    Service(Service),
    /// A service's pods.
    Deployment(Deployment),
    /// A service's autoscaler.
    Hpa(HorizontalPodAutoscaler),
    /// The services' PostgreSQL server.
    StatefulSet(StatefulSet),
}

/// What the rendering needs besides the system definition.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The stormproof image (`ci/Dockerfile`).
    pub image: String,
    /// The version label of the first rollout.
    pub version: String,
    /// Kafka bootstrap servers in the cluster.
    pub kafka: String,
    /// HMAC key of the gateway's tokens.
    pub jwt_secret: String,
    /// Demo users, `USER:PASSWORD,...`.
    pub users: String,
    /// Where the services' database comes from.
    pub database: Database,
}

/// The Kafka bootstrap in the cluster when none is given: the Strimzi
/// cluster `SYSTEM-kafka`'s bootstrap Service.
pub fn default_kafka(system: &str) -> String {
    format!("{system}-kafka-kafka-bootstrap:9092")
}

/// Renders `def` as Kubernetes objects, in the order they are applied. A
/// system with services of the user's own is not rendered: they run the
/// user's images, deployed by the user and mapped in `system.yaml`.
pub fn render(def: &SystemDef, options: &RenderOptions) -> anyhow::Result<Vec<Object>> {
    if let Some(service) = def.services.iter().find(|s| matches!(def.runs(s), Runs::Command(_))) {
        anyhow::bail!(
            "{}.{} runs a command of your own: stormproof renders manifests only for its built-in handlers. Deploy your own images, label each Deployment {OPT_IN_LABEL}={OPT_IN_VALUE}, and map each service to its Deployment with `kube:` in system.yaml",
            def.system,
            service.name
        );
    }
    let system = &def.system;
    let mut objects = vec![
        Object::Secret(Secret {
            metadata: meta(&format!("{system}-gateway"), labels(system, None)),
            string_data: Some(BTreeMap::from([
                ("STORMPROOF_JWT_SECRET".to_string(), options.jwt_secret.clone()),
                ("STORMPROOF_USERS".to_string(), options.users.clone()),
            ])),
            ..Secret::default()
        }),
        Object::ConfigMap(ConfigMap {
            metadata: meta(&format!("{system}-kafka"), labels(system, None)),
            data: Some(BTreeMap::from([
                (serve_env::KAFKA.to_string(), options.kafka.clone()),
                (serve_env::KAFKA_IDEMPOTENCE.to_string(), "true".to_string()),
            ])),
            ..ConfigMap::default()
        }),
    ];
    if let Some(server) = database::render(system, &options.database) {
        objects.push(Object::Secret(server.secret));
        objects.push(Object::Service(server.service));
        objects.push(Object::StatefulSet(server.stateful_set));
    }
    if let Some(config) = &def.config {
        objects.push(Object::ConfigMap(ConfigMap { metadata: meta(&config.name, labels(system, None)), data: Some(config.data.clone()), ..ConfigMap::default() }));
    }
    for service in &def.services {
        objects.push(Object::Service(service_object(system, &service.name)));
        objects.push(Object::Deployment(deployment(def, service, options)));
        if let Some(hpa) = autoscaler(system, service) {
            objects.push(Object::Hpa(hpa));
        }
    }
    objects.push(Object::Service(service_object(system, "gateway")));
    objects.push(Object::Deployment(gateway(def, options)));
    Ok(objects)
}

/// The objects as one multi-document YAML file.
pub fn to_yaml(objects: &[Object]) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string_multiple(objects)?)
}

/// Parses a multi-document YAML file into typed objects, by `kind`.
pub fn parse(yaml: &str) -> anyhow::Result<Vec<Object>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml)?;
    docs.into_iter()
        .filter(|doc| !doc.is_null())
        .map(|doc| {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            Ok(match kind.as_str() {
                "Secret" => Object::Secret(serde_json::from_value(doc)?),
                "ConfigMap" => Object::ConfigMap(serde_json::from_value(doc)?),
                "Service" => Object::Service(serde_json::from_value(doc)?),
                "Deployment" => Object::Deployment(serde_json::from_value(doc)?),
                "HorizontalPodAutoscaler" => Object::Hpa(serde_json::from_value(doc)?),
                "StatefulSet" => Object::StatefulSet(serde_json::from_value(doc)?),
                other => anyhow::bail!("unexpected kind `{other}` (expected Secret, ConfigMap, Service, Deployment, HorizontalPodAutoscaler or StatefulSet)"),
            })
        })
        .collect()
}

/// How `apply` sends the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Applied and stored.
    Apply,
    /// The API server's own dry run (`dryRun=All`): validated, defaulted
    /// and admitted by the server, stored nowhere.
    ServerDryRun,
}

/// Applies every object in `namespace` with server-side apply (field
/// manager `stormproof`, forcing conflicts, as a controller owning these
/// fields does); returns `kind/name` of each.
pub async fn apply(client: &Client, namespace: &str, objects: &[Object], mode: ApplyMode) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for object in objects {
        applied.push(match object {
            Object::Secret(o) => apply_one(client, namespace, o, mode).await?,
            Object::ConfigMap(o) => apply_one(client, namespace, o, mode).await?,
            Object::Service(o) => apply_one(client, namespace, o, mode).await?,
            Object::Deployment(o) => apply_one(client, namespace, o, mode).await?,
            Object::Hpa(o) => apply_one(client, namespace, o, mode).await?,
            Object::StatefulSet(o) => apply_one(client, namespace, o, mode).await?,
        });
    }
    Ok(applied)
}

/// Whether the API server behind `client` answers at all (any answer,
/// an error status included, means it is there).
pub async fn reachable(client: &Client) -> Result<(), String> {
    match client.apiserver_version().await {
        Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
        Err(err) => Err(err.to_string()),
    }
}

async fn apply_one<K>(client: &Client, namespace: &str, object: &K, mode: ApplyMode) -> anyhow::Result<String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if mode == ApplyMode::ServerDryRun {
        params = params.dry_run();
    }
    api.patch(&name, &params, &Patch::Apply(object)).await.map_err(|err| anyhow::anyhow!("applying {}/{name}: {err}", K::kind(&())))?;
    Ok(format!("{}/{name}", K::kind(&()).to_lowercase()))
}

fn labels(system: &str, service: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(PART_OF.to_string(), system.to_string())]);
    if let Some(service) = service {
        labels.insert(NAME.to_string(), service.to_string());
    }
    labels
}

fn meta(name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), labels: Some(labels), ..ObjectMeta::default() }
}

fn service_object(system: &str, service: &str) -> Service {
    Service {
        metadata: meta(service, labels(system, Some(service))),
        spec: Some(ServiceSpec {
            selector: Some(labels(system, Some(service))),
            ports: Some(vec![ServicePort { name: Some("http".into()), port: 80, target_port: Some(IntOrString::String("http".into())), ..ServicePort::default() }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn deployment(def: &SystemDef, service: &ServiceDef, options: &RenderOptions) -> Deployment {
    // Only built-in handlers are rendered (see `render`).
    let handler = match def.runs(service) {
        Runs::Builtin(handler) => handler,
        Runs::Command(_) => String::new(),
    };
    let mut container = container(def, &service.name, &handler, options, &service.calls, service.warmup);
    // The service's own settings (`env:`), as the local platform gives them:
    // which instance of its handler it runs as, say.
    container.env.get_or_insert_default().extend(service.env.iter().map(|(name, value)| env(name, value)));
    // Its store: every replica of every service reaches the one database.
    container.env.get_or_insert_default().push(options.database.url_env(&def.system));
    container.readiness_probe = cluster_readiness(def, service).map(probe);
    container.liveness_probe = def.kube.probes.as_ref().map(|p| &p.liveness).or(service.liveness.as_ref()).map(probe);
    container.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".to_string(), Quantity(format!("{}m", service.cpu_request)))])),
        ..ResourceRequirements::default()
    });
    let mut labels = labels(&def.system, Some(&service.name));
    labels.insert(OPT_IN_LABEL.into(), OPT_IN_VALUE.into());
    labels.insert(ROLE.into(), serde_json::to_value(service.role).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
    // With an HPA the autoscaler owns the replica count; a count in the
    // manifest would reset it on every apply.
    let replicas = service.autoscaling.is_none().then_some(service.replicas as i32);
    let strategy = DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment { max_surge: Some(int_or_percent(&service.rollout.max_surge)), max_unavailable: Some(int_or_percent(&service.rollout.max_unavailable)) }),
    };
    let mut deployment = pod_deployment(&def.system, &service.name, labels, replicas, Some(strategy), container, &options.version);
    if let Some(spec) = deployment.spec.as_mut() {
        spec.progress_deadline_seconds = Some(service.rollout.progress_deadline.as_secs().max(1) as i32);
    }
    deployment
}

fn gateway(def: &SystemDef, options: &RenderOptions) -> Deployment {
    let mut routed: Vec<String> = def.gateway.routes.iter().map(|r| r.service.clone()).collect();
    routed.dedup();
    let mut container = container(def, "gateway", &format!("{}.gateway", def.system), options, &routed, Duration::ZERO);
    let routes: Vec<String> = crate::systems::serve::routes(def).iter().map(|(prefix, service)| format!("{prefix}={service}")).collect();
    container.env.get_or_insert_default().push(env(crate::systems::serve::ROUTES_ENV, &routes.join(",")));
    if !def.gateway.admins.is_empty() {
        container.env.get_or_insert_default().push(env(crate::systems::serve::ADMINS_ENV, &def.gateway.admins.join(",")));
    }
    if let Some(origins) = &def.gateway.cors_origins {
        container.env.get_or_insert_default().push(env(crate::systems::serve::CORS_ENV, &origins.join(",")));
    }
    container.env_from.get_or_insert_default().push(EnvFromSource {
        secret_ref: Some(SecretEnvSource { name: format!("{}-gateway", def.system), optional: None }),
        ..EnvFromSource::default()
    });
    let health = |path: &str| Probe { http_get: Some(http_get(path)), period_seconds: Some(2), ..Probe::default() };
    container.readiness_probe = Some(health("/health/ready"));
    container.liveness_probe = Some(health("/health/live"));
    container.resources = Some(ResourceRequirements { requests: Some(BTreeMap::from([("cpu".to_string(), Quantity("100m".into()))])), ..ResourceRequirements::default() });
    let mut labels = labels(&def.system, Some("gateway"));
    labels.insert(ROLE.into(), "infrastructure".into());
    pod_deployment(&def.system, "gateway", labels, Some(1), None, container, &options.version)
}

fn pod_deployment(system: &str, name: &str, labels: BTreeMap<String, String>, replicas: Option<i32>, strategy: Option<DeploymentStrategy>, container: Container, version: &str) -> Deployment {
    let mut pod_labels = self::labels(system, Some(name));
    pod_labels.insert(VERSION.into(), version.into());
    // Scratch only, never service data (that is in the database): the root
    // filesystem is read-only, and /tmp takes what a process writes in
    // passing — the kit's data directory among it, which holds nothing
    // that must outlive the pod once the store is PostgreSQL.
    let scratch = Volume { name: SCRATCH.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() };
    Deployment {
        metadata: meta(name, labels),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector { match_labels: Some(self::labels(system, Some(name))), ..LabelSelector::default() },
            strategy,
            progress_deadline_seconds: Some(120),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The image is one static binary run as an unprivileged user.
                    security_context: Some(PodSecurityContext { run_as_non_root: Some(true), run_as_user: Some(65532), ..PodSecurityContext::default() }),
                    volumes: Some(vec![scratch]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The container of `name`, running `handler`: the service settings from
/// [`ServeOptions::to_env`], Kafka from the system's ConfigMap and the
/// replica id from the pod's name.
fn container(def: &SystemDef, name: &str, handler: &str, options: &RenderOptions, upstreams: &[String], warmup: Duration) -> Container {
    let mut serve = ServeOptions::new(format!("{SCRATCH_PATH}/data").into(), &options.kafka);
    serve.listen = std::net::SocketAddr::from(([0, 0, 0, 0], PORT as u16));
    serve.topic = Some(def.topic.clone());
    serve.partitions = Some(def.partitions);
    serve.upstreams = upstreams.iter().map(|u| (u.clone(), format!("http://{u}:80"))).collect();
    serve.version = options.version.clone();
    serve.warmup = warmup;
    let from_elsewhere = [serve_env::KAFKA, serve_env::KAFKA_IDEMPOTENCE, serve_env::REPLICA_ID];
    let mut env: Vec<EnvVar> = serve
        .to_env()
        .into_iter()
        .filter(|(name, _)| !from_elsewhere.contains(name))
        .map(|(name, value)| self::env(name, &value))
        .collect();
    env.push(EnvVar {
        name: serve_env::REPLICA_ID.into(),
        value_from: Some(EnvVarSource { field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), ..ObjectFieldSelector::default() }), ..EnvVarSource::default() }),
        ..EnvVar::default()
    });
    Container {
        name: name.into(),
        image: Some(options.image.clone()),
        // kind loads the image into its nodes; never pull what is there.
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["serve".into(), handler.to_string()]),
        env: Some(env),
        env_from: Some(env_from(def)),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: PORT, ..ContainerPort::default() }]),
        security_context: Some(SecurityContext { allow_privilege_escalation: Some(false), read_only_root_filesystem: Some(true), ..SecurityContext::default() }),
        volume_mounts: Some(vec![VolumeMount { name: SCRATCH.into(), mount_path: SCRATCH_PATH.into(), ..VolumeMount::default() }]),
        ..Container::default()
    }
}

/// The ConfigMaps every container reads: Kafka's, and the system's own `config:`.
fn env_from(def: &SystemDef) -> Vec<EnvFromSource> {
    let from = |name: String| EnvFromSource { config_map_ref: Some(ConfigMapEnvSource { name, optional: None }), ..EnvFromSource::default() };
    let mut sources = vec![from(format!("{}-kafka", def.system))];
    sources.extend(def.config.as_ref().map(|config| from(config.name.clone())));
    sources
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

fn http_get(path: &str) -> HTTPGetAction {
    HTTPGetAction { path: Some(path.into()), port: IntOrString::String("http".into()), ..HTTPGetAction::default() }
}

/// Kubernetes counts probe times in whole seconds, at least 1.
fn seconds(d: Duration) -> i32 {
    d.as_secs_f64().ceil().max(1.0) as i32
}

/// The readiness probe the built-in definition of `system` gives `service`
/// (what a rollout with readiness puts back after one without).
pub fn defined_readiness(system: &str, service: &str) -> Option<Probe> {
    let def = SystemDef::builtin(system).ok()?;
    cluster_readiness(&def, def.service(service)?).map(probe)
}

/// The readiness probe of `service` on a cluster: the system's cluster
/// probe if it has one (`kube: probes:`), else the service's own.
fn cluster_readiness<'a>(def: &'a SystemDef, service: &'a ServiceDef) -> Option<&'a ProbeDef> {
    def.kube.probes.as_ref().map(|p| &p.readiness).or(service.readiness.as_ref())
}

fn probe(def: &ProbeDef) -> Probe {
    Probe {
        http_get: Some(http_get(&def.path)),
        initial_delay_seconds: (!def.initial_delay.is_zero()).then(|| def.initial_delay.as_secs_f64().ceil() as i32),
        period_seconds: Some(seconds(def.period)),
        timeout_seconds: Some(seconds(def.timeout)),
        failure_threshold: Some(def.failure_threshold as i32),
        success_threshold: Some(def.success_threshold as i32),
        ..Probe::default()
    }
}

fn int_or_percent(value: &str) -> IntOrString {
    value.parse().map(IntOrString::Int).unwrap_or_else(|_| IntOrString::String(value.into()))
}

fn autoscaler(system: &str, service: &ServiceDef) -> Option<HorizontalPodAutoscaler> {
    let policy = service.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: meta(&service.name, labels(system, Some(&service.name))),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference { api_version: Some("apps/v1".into()), kind: "Deployment".into(), name: service.name.clone() },
            min_replicas: Some(policy.min as i32),
            max_replicas: policy.max as i32,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget { type_: "Utilization".into(), average_utilization: Some(policy.cpu_utilization as i32), ..MetricTarget::default() },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}
