//! Safety rails: what the chaos engine may touch on a cluster. [`Rails`]
//! implements [`Platform`] in front of a [`KubePlatform`] and, before any
//! change, checks that the platform acts in the allowed context and
//! namespace, that the Deployment opted in (`stormproof.io/chaos: enabled`)
//! and that the change does not hit the harness's own pod. In dry-run mode
//! it prints each change as the exact request it would send, and sends none.

use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::deployments::{KubePlatform, eviction, scale_patch};
use super::rollout::{status_of, template_patch};
use super::network;
use super::{FIELD_MANAGER, HARNESS_LABEL, OPT_IN_LABEL, OPT_IN_VALUE};
use crate::platform::network::{ActiveNetworkFault, NetworkFault, Peer};
use crate::platform::{AutoscalerStatus, Platform, PlatformError, RolloutStatus, ServiceStatus, Template};
use crate::systems::kit::SwitchState;

/// The one context and namespace experiments may act in (from the command
/// line, or from the experiment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Kubeconfig context.
    pub context: String,
    /// Namespace.
    pub namespace: String,
}

/// A change a dry run would have sent: the request, exactly.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedChange {
    /// In words.
    pub what: String,
    /// HTTP method.
    pub method: String,
    /// API path.
    pub path: String,
    /// Query string (the field manager).
    pub query: String,
    /// Content type of the body.
    pub content_type: String,
    /// The body.
    pub body: Value,
}

type Printer = Box<dyn Fn(&str) + Send + Sync>;

/// The guarded platform the chaos engine gets on Kubernetes.
pub struct Rails {
    kube: KubePlatform,
    /// The pod the harness runs in, when it runs in the cluster.
    own_pod: Option<String>,
    dry_run: Option<(Printer, Mutex<Vec<PlannedChange>>)>,
}

impl Rails {
    /// Guards `kube`; refuses when it acts outside `allowed`.
    pub fn new(kube: KubePlatform, allowed: &Allowed) -> Result<Rails, PlatformError> {
        let (context, namespace) = kube.scope();
        if context != allowed.context || namespace != allowed.namespace {
            return Err(PlatformError::Refused(format!(
                "refusing to act in context `{context}`, namespace `{namespace}`: only context `{}`, namespace `{}` is allowed",
                allowed.context, allowed.namespace
            )));
        }
        Ok(Rails { kube, own_pod: harness_pod(), dry_run: None })
    }

    /// Treats `pod` as the harness's own pod (tests; in a cluster it comes from the environment).
    pub fn with_own_pod(mut self, pod: Option<String>) -> Rails {
        self.own_pod = pod;
        self
    }

    /// Prints every change through `print` instead of making it.
    pub fn dry_run(mut self, print: impl Fn(&str) + Send + Sync + 'static) -> Rails {
        self.dry_run = Some((Box::new(print), Mutex::new(Vec::new())));
        self
    }

    /// The API server client the rails guard (for reads through it, such as
    /// the service proxy: no change goes through it).
    pub fn client(&self) -> kube::Client {
        self.kube.client.clone()
    }

    /// Probe Jobs running `image` in the one namespace the rails allow.
    pub fn probe_jobs(&self, image: &str) -> super::ProbeJobs {
        super::ProbeJobs::new(self.kube.client.clone(), self.kube.scope().1, image)
    }

    /// The Kafka bootstrap as the system's pods reach it: its rendered
    /// ConfigMap's, else the Strimzi default `k8s render` assumes.
    pub async fn cluster_kafka(&self) -> String {
        self.kube.cluster_kafka().await
    }

    /// The changes a dry run printed so far.
    pub fn planned(&self) -> Vec<PlannedChange> {
        self.dry_run.as_ref().map(|(_, planned)| planned.lock().expect("not poisoned").clone()).unwrap_or_default()
    }

    /// The Deployment of `service`, if an experiment may change it.
    async fn guard(&self, service: &str) -> Result<Deployment, PlatformError> {
        let deployment = self.kube.deployment(service).await?;
        let (_, namespace) = self.kube.scope();
        let found_in = deployment.namespace().unwrap_or_else(|| namespace.to_string());
        if found_in != namespace {
            return Err(PlatformError::Refused(format!(
                "deployment/{} of {service} is in namespace `{found_in}`: only namespace `{namespace}` is allowed",
                deployment.name_any()
            )));
        }
        let labels = deployment.labels();
        if labels.contains_key(HARNESS_LABEL) {
            return Err(PlatformError::Refused(format!("deployment/{service} is the harness itself ({HARNESS_LABEL})")));
        }
        if labels.get(OPT_IN_LABEL).map(String::as_str) != Some(OPT_IN_VALUE) {
            return Err(PlatformError::Refused(format!(
                "deployment/{service} in namespace `{namespace}` has not opted in: it needs the label {OPT_IN_LABEL}={OPT_IN_VALUE}"
            )));
        }
        if let Some(own) = &self.own_pod
            && self.kube.pods(&deployment).await?.iter().any(|p| &p.name_any() == own)
        {
            return Err(PlatformError::Refused(format!("deployment/{service} runs the harness's own pod {own}")));
        }
        Ok(deployment)
    }

    /// In a dry run, records and prints the change and returns true.
    fn planned_only(&self, what: String, method: &str, path: String, content_type: &str, body: Value) -> bool {
        let Some((print, planned)) = &self.dry_run else { return false };
        // Only API server writes carry a field manager (not an eviction, nor the pod proxy).
        let query = if method == "POST" || path.contains("/proxy/") { String::new() } else { format!("fieldManager={FIELD_MANAGER}") };
        print(&format!("dry-run: would {what}: {method} {path}?{query} ({content_type}) {body}"));
        let change = PlannedChange { what, method: method.into(), path, query, content_type: content_type.into(), body };
        planned.lock().expect("not poisoned").push(change);
        true
    }

    /// The API path of `deployment` (a user's may be named unlike its service).
    fn deployment_path(&self, deployment: &Deployment) -> String {
        format!("/apis/apps/v1/namespaces/{}/deployments/{}", self.kube.scope().1, deployment.name_any())
    }
}

/// The pod this process runs in, when it runs in a cluster (the downward
/// API's `POD_NAME`, else the hostname Kubernetes gives a pod).
fn harness_pod() -> Option<String> {
    std::env::var("POD_NAME").ok().or_else(|| std::env::var("KUBERNETES_SERVICE_HOST").ok().and_then(|_| std::env::var("HOSTNAME").ok()))
}

#[async_trait::async_trait]
impl Platform for Rails {
    async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError> {
        self.kube.services().await
    }

    async fn service(&self, service: &str) -> Result<ServiceStatus, PlatformError> {
        self.kube.service(service).await
    }

    async fn scale(&self, service: &str, replicas: u32) -> Result<(), PlatformError> {
        let deployment = self.guard(service).await?;
        let path = format!("{}/scale", self.deployment_path(&deployment));
        let body = scale_patch(replicas, deployment.resource_version().as_deref());
        if self.planned_only(format!("scale deployment/{} to {replicas}", deployment.name_any()), "PATCH", path, "application/merge-patch+json", body) {
            return Ok(());
        }
        // The Deployment as checked: changed since (a label removed), the API server refuses.
        self.kube.scale_at(service, &deployment, replicas).await
    }

    async fn kill(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError> {
        let deployment = self.guard(service).await?;
        let pod = self.kube.victim_of(service, &deployment, replica).await?;
        let name = pod.name_any();
        if self.own_pod.as_deref() == Some(name.as_str()) {
            return Err(PlatformError::Refused(format!("pod {name} is the harness's own pod")));
        }
        let path = format!("/api/v1/namespaces/{}/pods/{name}/eviction", self.kube.scope().1);
        if self.planned_only(format!("evict pod/{name} of {service}"), "POST", path, "application/json", eviction(&pod)) {
            return Ok(name);
        }
        self.kube.evict_at(&pod).await?;
        Ok(name)
    }

    async fn rollout(&self, service: &str, template: &Template) -> Result<RolloutStatus, PlatformError> {
        let deployment = self.guard(service).await?;
        super::rollout::check_env(&self.kube, service, &deployment, template)?;
        let mut patch = template_patch(&deployment, template, &crate::clock::now_rfc3339())?;
        patch["metadata"]["resourceVersion"] = json!(deployment.resource_version());
        let what = format!("roll deployment/{} to {}", deployment.name_any(), template.version);
        if self.planned_only(what, "PATCH", self.deployment_path(&deployment), "application/strategic-merge-patch+json", patch) {
            return Ok(status_of(service, &deployment));
        }
        super::rollout::start_at(&self.kube, service, &deployment, template).await
    }

    async fn rollout_status(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        self.kube.rollout_status(service).await
    }

    async fn rollout_undo(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        let deployment = self.guard(service).await?;
        if self.dry_run.is_some() {
            let previous = super::rollout::previous_template(&self.kube, &deployment).await?;
            let body = json!({"metadata": {"resourceVersion": deployment.resource_version()}, "spec": {"template": previous}});
            self.planned_only(format!("undo the rollout of deployment/{}", deployment.name_any()), "PUT", self.deployment_path(&deployment), "application/json", body);
            return Ok(status_of(service, &deployment));
        }
        super::rollout::undo_at(&self.kube, service, deployment).await
    }

    async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError> {
        self.kube.autoscalers().await
    }

    async fn switches(&self, service: &str, replica: &str) -> Result<SwitchState, PlatformError> {
        self.kube.switches(service, replica).await
    }

    async fn set_switches(&self, service: &str, replica: &str, state: &SwitchState) -> Result<(), PlatformError> {
        self.guard(service).await?;
        if self.own_pod.as_deref() == Some(replica) {
            return Err(PlatformError::Refused(format!("pod {replica} is the harness's own pod")));
        }
        // Only a pod of the Deployment just checked.
        let pod = self.kube.pod_of(service, replica).await?;
        // Through the API server's pod proxy, which takes no precondition:
        // the Deployment and its pod were checked just before.
        let body = serde_json::to_value(state).unwrap_or_default();
        if self.planned_only(format!("set the switches of pod/{replica} of {service}"), "PUT", super::deployments::switches_path(&pod), "application/json", body) {
            return Ok(());
        }
        self.kube.set_pod_switches(&pod, state).await
    }

    async fn set_network_fault(&self, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        // Only reads until every end is checked: a fault the cluster
        // cannot set, or that has no Chaos Mesh to set it, sends nothing.
        let planned = self.kube.plan_network_fault(fault).await?;
        for peer in network::peers(&fault.links) {
            match peer {
                Peer::Service(service) => drop(self.guard(service).await?),
                Peer::Gateway => drop(self.guard("gateway").await?),
                // Not a Deployment of the system: its pods are only the target.
                Peer::Broker => {}
            }
        }
        let what = format!("set {fault} as {}/{}", planned.body["kind"].as_str().unwrap_or_default(), planned.name);
        if self.planned_only(what, "POST", planned.kind.path(self.kube.scope().1), "application/json", planned.body.clone()) {
            return Ok(planned.active(fault));
        }
        self.kube.create_fault(&planned, fault).await
    }

    /// Deleting a fault of ours is a restore: no opt-in is asked for, so a
    /// Deployment relabelled meanwhile cannot keep its fault.
    async fn clear_network_fault(&self, id: u64) -> Result<ActiveNetworkFault, PlatformError> {
        if self.dry_run.is_some() {
            return network::the_one(id, self.planned_deletes(|a| a.id == id).await?);
        }
        network::the_one(id, self.kube.clear_network_faults_where(|a| a.id == id).await?)
    }

    async fn clear_network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        if self.dry_run.is_some() {
            return self.planned_deletes(|_| true).await;
        }
        self.kube.clear_network_faults_where(|_| true).await
    }

    async fn network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        self.kube.network_faults().await
    }
}

impl Rails {
    /// In a dry run: prints the deletes of the faults `which` picks.
    async fn planned_deletes(&self, which: impl Fn(&ActiveNetworkFault) -> bool) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        let mut cleared = Vec::new();
        for (kind, name, active) in self.kube.fault_objects().await?.into_iter().filter(|(_, _, a)| which(a)) {
            let path = format!("{}/{name}", kind.path(self.kube.scope().1));
            self.planned_only(format!("clear network fault {} ({name})", active.id), "DELETE", path, "application/json", Value::Null);
            cleared.push(active);
        }
        Ok(cleared)
    }
}
