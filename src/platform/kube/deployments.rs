//! Deployments and their pods: list services with their replicas, scale
//! through the `scale` subresource, kill a pod through the eviction API.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{FIELD_MANAGER, NAME, PART_OF, ROLE, VERSION};
use crate::platform::network::{ActiveNetworkFault, NetworkFault};
use crate::platform::{AutoscalerStatus, Platform, PlatformError, ReplicaPhase, ReplicaStatus, RolloutStatus, ServiceStatus, Template};
use crate::systems::kit::SwitchState;
use crate::systems::definition::{Role, SystemDef};

/// One namespace of a cluster, with the Deployments of one system: a
/// reference system's carry stormproof's labels; a user's are found as its
/// `system.yaml` maps them.
#[derive(Clone)]
pub struct KubePlatform {
    pub(super) client: Client,
    /// The kubeconfig context the client was built from.
    pub(super) context: String,
    pub(super) namespace: String,
    /// Only Deployments labelled `app.kubernetes.io/part-of=SYSTEM` are services.
    pub(super) system: String,
    /// A user's system: each service and where its Deployment is.
    mapped: Option<Vec<Mapped>>,
    /// The definition, when known: what a rollout may set.
    pub(super) def: Option<SystemDef>,
}

/// Where a service of a user's system is: a Deployment by name, or the one
/// its selector matches, in its namespace.
#[derive(Debug, Clone)]
struct Mapped {
    service: String,
    role: Role,
    namespace: String,
    deployment: Option<String>,
    selector: BTreeMap<String, String>,
}

impl KubePlatform {
    /// The services of `system` in `namespace`, reached with `client`
    /// (built from kubeconfig context `context`).
    pub fn new(client: Client, context: &str, namespace: &str, system: &str) -> KubePlatform {
        KubePlatform { client, context: context.into(), namespace: namespace.into(), system: system.into(), mapped: None, def: None }
    }

    /// The services of `def` in `namespace`: when its services say where
    /// their Deployments are (`kube:`), found by those names and selectors
    /// (a service without `kube:` is the Deployment named after it);
    /// otherwise by stormproof's own labels, as [`KubePlatform::new`].
    pub fn for_system(client: Client, context: &str, namespace: &str, def: &SystemDef) -> KubePlatform {
        let mut platform = KubePlatform::new(client, context, namespace, &def.system);
        if !def.services.is_empty() {
            platform.def = Some(def.clone());
        }
        if def.services.iter().any(|s| s.kube.is_some()) {
            let mapped = def.services.iter().map(|s| {
                let kube = s.kube.clone().unwrap_or_default();
                let deployment = kube.deployment.or_else(|| kube.selector.is_empty().then(|| s.name.clone()));
                Mapped { service: s.name.clone(), role: s.role, namespace: kube.namespace.unwrap_or_else(|| namespace.to_string()), deployment, selector: kube.selector }
            });
            platform.mapped = Some(mapped.collect());
        }
        platform
    }

    /// The kubeconfig context and namespace this platform acts in.
    pub fn scope(&self) -> (&str, &str) {
        (&self.context, &self.namespace)
    }

    pub(super) fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Deployments API of the namespace `deployment` is in.
    pub(super) fn deployments_of(&self, deployment: &Deployment) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &deployment.namespace().unwrap_or_else(|| self.namespace.clone()))
    }

    fn pods_of(&self, deployment: &Deployment) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &deployment.namespace().unwrap_or_else(|| self.namespace.clone()))
    }

    /// The Deployment of `service`; a 404 is an unknown service. A user's
    /// service is found as its system maps it.
    pub async fn deployment(&self, service: &str) -> Result<Deployment, PlatformError> {
        let Some(mapped) = &self.mapped else {
            return self.deployments().get(service).await.map_err(|err| api_error(err, || PlatformError::UnknownService(service.into())));
        };
        let m = mapped.iter().find(|m| m.service == service).ok_or_else(|| PlatformError::UnknownService(service.into()))?;
        self.find(m).await
    }

    /// The Deployment `m` names, or the only one its selector matches.
    async fn find(&self, m: &Mapped) -> Result<Deployment, PlatformError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &m.namespace);
        let selector = selector(&m.selector);
        let where_ = || format!("{}.{}: ", self.system, m.service);
        if let Some(name) = &m.deployment {
            let missing = || PlatformError::Refused(format!("{}no deployment/{name} in namespace `{}`", where_(), m.namespace));
            let deployment = api.get(name).await.map_err(|err| api_error(err, missing))?;
            let labels = deployment.labels();
            if let Some((k, v)) = m.selector.iter().find(|(k, v)| labels.get(*k) != Some(v)) {
                return Err(PlatformError::Refused(format!("{}deployment/{name} in namespace `{}` does not carry {k}={v}, as system.yaml says it does", where_(), m.namespace)));
            }
            return Ok(deployment);
        }
        let list = api.list(&ListParams::default().labels(&selector)).await.map_err(|err| api_error(err, || unreachable_ns(&m.namespace)))?;
        let mut found = list.items;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(PlatformError::Refused(format!("{}no Deployment in namespace `{}` carries {selector}", where_(), m.namespace))),
            _ => {
                let names: Vec<String> = found.iter().map(ResourceExt::name_any).collect();
                Err(PlatformError::Refused(format!("{}{selector} matches {} Deployments in namespace `{}` ({}): name one with `kube: {{ deployment: NAME }}`", where_(), found.len(), m.namespace, names.join(", "))))
            }
        }
    }

    /// The Kafka bootstrap the system's pods use (see [`Rails::cluster_kafka`](super::Rails::cluster_kafka)).
    pub(super) async fn cluster_kafka(&self) -> String {
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let rendered = maps.get_opt(&format!("{}-kafka", self.system)).await.ok().flatten();
        rendered
            .and_then(|map| map.data?.remove(crate::systems::kit::serve_env::KAFKA))
            .unwrap_or_else(|| super::manifests::default_kafka(&self.system))
    }

    /// Pod `replica` of `service`'s Deployment (never a pod of another).
    pub(super) async fn pod_of(&self, service: &str, replica: &str) -> Result<Pod, PlatformError> {
        let deployment = self.deployment(service).await?;
        self.pods(&deployment).await?.into_iter().find(|p| p.name_any() == replica).ok_or_else(|| PlatformError::UnknownReplica(replica.into()))
    }

    /// The service a Deployment is, by name (a user's mapped service, or
    /// the Deployment's own name).
    pub(super) async fn service_of(&self, deployment: &str) -> Option<String> {
        let Some(mapped) = &self.mapped else { return Some(deployment.to_string()) };
        for m in mapped {
            if self.find(m).await.is_ok_and(|d| d.name_any() == deployment && d.namespace().as_deref() == Some(self.namespace.as_str())) {
                return Some(m.service.clone());
            }
        }
        None
    }

    /// The pods `deployment` selects (its `matchLabels`), oldest first.
    pub async fn pods(&self, deployment: &Deployment) -> Result<Vec<Pod>, PlatformError> {
        let selector = match_labels(deployment);
        if selector.is_empty() {
            return Ok(vec![]);
        }
        let list = self.pods_of(deployment).list(&ListParams::default().labels(&selector)).await.map_err(|err| api_error(err, || unreachable_ns(&self.namespace)))?;
        let mut pods = list.items;
        pods.sort_by(|a, b| a.creation_timestamp().cmp(&b.creation_timestamp()).then_with(|| a.name_any().cmp(&b.name_any())));
        Ok(pods)
    }

    /// The pod `kill` evicts: the named one, or the newest ready one that is
    /// not already terminating.
    pub async fn victim(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError> {
        let deployment = self.deployment(service).await?;
        Ok(self.victim_of(service, &deployment, replica).await?.name_any())
    }

    /// The pod of `deployment` that `kill` evicts.
    pub(super) async fn victim_of(&self, service: &str, deployment: &Deployment, replica: Option<&str>) -> Result<Pod, PlatformError> {
        let pods = self.pods(deployment).await?;
        let live = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none());
        let chosen = match replica {
            Some(name) => live.clone().find(|p| p.name_any() == name),
            None => live.clone().rev().find(|p| pod_ready(p)).or_else(|| live.clone().next_back()),
        };
        chosen.cloned().ok_or_else(|| match replica {
            Some(name) => PlatformError::UnknownReplica(name.into()),
            None => PlatformError::Refused(format!("{service} has no pod to kill")),
        })
    }
}

impl KubePlatform {
    /// Scales `deployment` as read: refused (409) if it changed since.
    pub(super) async fn scale_at(&self, service: &str, deployment: &Deployment, replicas: u32) -> Result<(), PlatformError> {
        let patch = Patch::Merge(scale_patch(replicas, deployment.resource_version().as_deref()));
        self.deployments_of(deployment)
            .patch_scale(&deployment.name_any(), &change_params(), &patch)
            .await
            .map_err(|err| api_error(err, || PlatformError::UnknownService(service.into())))?;
        Ok(())
    }

    /// Evicts `pod` as read: refused (409) if it changed since.
    pub(super) async fn evict_at(&self, pod: &Pod) -> Result<(), PlatformError> {
        let name = pod.name_any();
        let path = format!("/api/v1/namespaces/{}/pods", pod.namespace().unwrap_or_else(|| self.namespace.clone()));
        let body = serde_json::to_vec(&eviction(pod)).unwrap_or_default();
        let request = kube::core::Request::new(path).create_subresource("eviction", &name, &kube::api::PostParams::default(), body).map_err(build_error)?;
        self.client.request::<serde_json::Value>(request).await.map_err(|err| api_error(err, || PlatformError::UnknownReplica(name.clone())))?;
        Ok(())
    }

    /// The switches of `pod`, through the API server's pod proxy (never the
    /// pod's IP: the harness need not run in the cluster, and every request
    /// is the API server's to authorize and log).
    pub(super) async fn pod_switches(&self, pod: &Pod) -> Result<SwitchState, PlatformError> {
        let request = kube::core::Request::new(pods_path(pod)).get_subresource(SWITCHES, &proxied(pod)).map_err(build_error)?;
        self.client.request::<SwitchState>(request).await.map_err(|err| api_error(err, || PlatformError::UnknownReplica(pod.name_any())))
    }

    /// Sets the switches of `pod` through the pod proxy.
    pub(super) async fn set_pod_switches(&self, pod: &Pod, state: &SwitchState) -> Result<(), PlatformError> {
        let body = serde_json::to_vec(state).unwrap_or_default();
        let request = kube::core::Request::new(pods_path(pod)).replace_subresource(SWITCHES, &proxied(pod), &kube::api::PostParams::default(), body).map_err(build_error)?;
        self.client.request_text(request).await.map_err(|err| api_error(err, || PlatformError::UnknownReplica(pod.name_any())))?;
        Ok(())
    }
}

/// The pod-proxy path of `pod`'s switches (what a dry run prints).
pub(super) fn switches_path(pod: &Pod) -> String {
    format!("{}/{}/{SWITCHES}", pods_path(pod), proxied(pod))
}

fn pods_path(pod: &Pod) -> String {
    format!("/api/v1/namespaces/{}/pods", pod.namespace().unwrap_or_default())
}

/// The kit's switches, below a pod's proxy subresource.
const SWITCHES: &str = "proxy/_stormproof/switches";
/// The port the kit's services listen on in a pod stormproof rendered.
const SERVICE_PORT: i32 = 8080;

/// `POD:PORT` (its first container port), as the pod proxy names a port.
fn proxied(pod: &Pod) -> String {
    let port = pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.ports.as_ref()).and_then(|p| p.first()).map_or(SERVICE_PORT, |p| p.container_port);
    format!("{}:{port}", pod.name_any())
}

fn build_error(err: impl std::fmt::Display) -> PlatformError {
    PlatformError::Unreachable(format!("cannot build the request: {err}"))
}

/// The merge patch `scale` sends to the `scale` subresource: the replicas,
/// and the Deployment's `resourceVersion` as read, so that the API server
/// refuses (409) a change to a Deployment that changed since — its labels
/// included, which is what the rails checked.
pub fn scale_patch(replicas: u32, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = json!({ "spec": { "replicas": replicas } });
    if let Some(version) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    patch
}

/// The policy/v1 Eviction of `pod`, on condition that the pod is still the
/// one read (same uid and resourceVersion).
pub fn eviction(pod: &Pod) -> serde_json::Value {
    json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": { "name": pod.name_any(), "namespace": pod.namespace() },
        "deleteOptions": { "preconditions": { "uid": pod.uid(), "resourceVersion": pod.resource_version() } }
    })
}

/// The patch parameters of every change: stormproof's field manager.
pub(super) fn change_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }
}

/// Maps an API error: 404 to `not_found()`, anything else to its message.
pub(super) fn api_error(err: kube::Error, not_found: impl FnOnce() -> PlatformError) -> PlatformError {
    match err {
        kube::Error::Api(status) if status.code == 404 => not_found(),
        kube::Error::Api(status) if status.code == 409 => PlatformError::Refused(format!(
            "the object changed since it was checked (409 {}: {}); refused, nothing was changed",
            status.reason, status.message
        )),
        kube::Error::Api(status) if status.code == 429 || status.code == 403 || status.code == 422 => {
            PlatformError::Refused(format!("the API server refused ({} {}): {}", status.code, status.reason, status.message))
        }
        kube::Error::Api(status) => PlatformError::Unreachable(format!("the API server answered {} {}: {}", status.code, status.reason, status.message)),
        other => PlatformError::Unreachable(format!("the Kubernetes API server does not answer: {other}")),
    }
}

fn unreachable_ns(namespace: &str) -> PlatformError {
    PlatformError::Unreachable(format!("namespace `{namespace}` not found"))
}

/// `spec.selector.matchLabels` as a label selector string.
fn match_labels(deployment: &Deployment) -> String {
    selector(&deployment.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default())
}

/// Labels as a label selector string (`app=order,tier=web`).
fn selector(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

pub(super) fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn replica(pod: &Pod) -> ReplicaStatus {
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.clone().unwrap_or_default();
    let restarts = containers.iter().map(|c| c.restart_count.max(0) as u32).sum();
    let crashing = containers.iter().any(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff")));
    let phase = if pod.metadata.deletion_timestamp.is_some() {
        ReplicaPhase::Terminating
    } else if crashing {
        ReplicaPhase::Crashed
    } else if status.phase.as_deref() == Some("Running") {
        ReplicaPhase::Running
    } else {
        ReplicaPhase::Starting
    };
    let port = pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.ports.as_ref()).and_then(|p| p.first()).map(|p| p.container_port);
    let address = status.pod_ip.as_ref().map(|ip| port.map_or(ip.clone(), |port| format!("{ip}:{port}")));
    ReplicaStatus {
        id: pod.name_any(),
        pid: None,
        address,
        ready: pod_ready(pod),
        restarts,
        version: pod.labels().get(VERSION).cloned().unwrap_or_default(),
        phase,
    }
}

fn role(labels: &BTreeMap<String, String>) -> Role {
    labels.get(ROLE).and_then(|r| serde_json::from_value(json!(r)).ok()).unwrap_or(Role::Core)
}

/// What `kubectl get deployment` shows, with the pods as replicas. Pods
/// that ended (Succeeded, Failed) are no longer replicas. A user's service
/// is named and given its role by its system (`as_`).
fn service_status(deployment: &Deployment, pods: &[Pod], as_: Option<(&str, Role)>) -> ServiceStatus {
    let status = deployment.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.unwrap_or(0).max(0) as u32;
    let live = pods.iter().filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")));
    let (name, role) = match as_ {
        Some((name, role)) => (name.to_string(), role),
        None => (deployment.labels().get(NAME).cloned().unwrap_or_else(|| deployment.name_any()), self::role(deployment.labels())),
    };
    ServiceStatus {
        name,
        role,
        desired: count(deployment.spec.as_ref().and_then(|s| s.replicas)),
        ready: count(status.ready_replicas),
        available: count(status.available_replicas),
        replicas: live.map(replica).collect(),
    }
}

#[async_trait::async_trait]
impl Platform for KubePlatform {
    async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError> {
        let mut services = Vec::new();
        if let Some(mapped) = &self.mapped {
            for m in mapped {
                let deployment = self.find(m).await?;
                services.push(service_status(&deployment, &self.pods(&deployment).await?, Some((&m.service, m.role))));
            }
            return Ok(services);
        }
        let params = ListParams::default().labels(&format!("{PART_OF}={}", self.system));
        let list = self.deployments().list(&params).await.map_err(|err| api_error(err, || unreachable_ns(&self.namespace)))?;
        for deployment in &list.items {
            services.push(service_status(deployment, &self.pods(deployment).await?, None));
        }
        Ok(services)
    }

    async fn service(&self, service: &str) -> Result<ServiceStatus, PlatformError> {
        let deployment = self.deployment(service).await?;
        let as_ = self.mapped.as_ref().and_then(|mapped| mapped.iter().find(|m| m.service == service)).map(|m| (m.service.as_str(), m.role));
        Ok(service_status(&deployment, &self.pods(&deployment).await?, as_))
    }

    async fn scale(&self, service: &str, replicas: u32) -> Result<(), PlatformError> {
        let deployment = self.deployment(service).await?;
        self.scale_at(service, &deployment, replicas).await
    }

    async fn kill(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError> {
        let deployment = self.deployment(service).await?;
        let pod = self.victim_of(service, &deployment, replica).await?;
        self.evict_at(&pod).await?;
        Ok(pod.name_any())
    }

    async fn rollout(&self, service: &str, template: &Template) -> Result<RolloutStatus, PlatformError> {
        super::rollout::start(self, service, template).await
    }

    async fn rollout_status(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        Ok(super::rollout::status_of(service, &self.deployment(service).await?))
    }

    async fn rollout_undo(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        super::rollout::undo(self, service).await
    }

    async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError> {
        super::hpa::autoscalers(self).await
    }

    async fn switches(&self, service: &str, replica: &str) -> Result<SwitchState, PlatformError> {
        self.pod_switches(&self.pod_of(service, replica).await?).await
    }

    async fn set_switches(&self, service: &str, replica: &str, state: &SwitchState) -> Result<(), PlatformError> {
        self.set_pod_switches(&self.pod_of(service, replica).await?, state).await
    }

    async fn set_network_fault(&self, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        self.set_network_fault_at(fault).await
    }

    async fn clear_network_fault(&self, id: u64) -> Result<ActiveNetworkFault, PlatformError> {
        super::network::the_one(id, self.clear_network_faults_where(|a| a.id == id).await?)
    }

    async fn clear_network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        self.clear_network_faults_where(|_| true).await
    }

    async fn network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        Ok(self.fault_objects().await?.into_iter().map(|(_, _, active)| active).collect())
    }
}
