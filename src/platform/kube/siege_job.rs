//! A distributed siege's workers on Kubernetes: one Indexed Job whose N
//! pods each run `stormproof siege worker` (their index is the Job's
//! completion index) and report to the coordinator at the URL handed down
//! in their environment.
//!
//! Who talks to whom: [`SiegeJobs`] stands in front of the API server as
//! [`Rails`](super::Rails) does for experiments — it acts only in the
//! allowed context and namespace and, in dry-run mode, prints the Job as
//! the request it would send and sends nothing. It is the run's
//! [`Launcher`]: it applies the Job, reports failed pods as worker exits
//! and deletes the Job (and so its pods) when the run ends, however it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use super::{Allowed, FIELD_MANAGER, HARNESS_LABEL, NAME, PlannedChange};
use crate::load::distributed::{DistributedError, Launched, Launcher, WorkerExit};
use crate::platform::PlatformError;

/// The annotation Kubernetes puts the completion index in, on each pod of an Indexed Job.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The label Kubernetes puts the Job's name in, on each of its pods.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// What the worker Job is made of.
#[derive(Debug, Clone)]
pub struct SiegeJobSpec {
    /// The Job's name.
    pub name: String,
    /// Image holding the `stormproof` binary.
    pub image: String,
    /// Pods (completions = parallelism = workers).
    pub workers: usize,
    /// The coordinator's URL as the pods reach it.
    pub coordinator: String,
    /// CPU request and limit of each pod.
    pub cpu: String,
    /// Memory request and limit of each pod.
    pub memory: String,
    /// Each pod logs every request (siege's `-v`): `kubectl logs`.
    pub verbose: bool,
}

/// The Indexed Job of `spec`.
pub fn render(spec: &SiegeJobSpec) -> Job {
    let labels = BTreeMap::from([
        (NAME.to_string(), "stormproof-siege".to_string()),
        // Experiments never touch the harness's own pods.
        (HARNESS_LABEL.to_string(), "true".to_string()),
    ]);
    let resources: BTreeMap<String, Quantity> =
        BTreeMap::from([("cpu".into(), Quantity(spec.cpu.clone())), ("memory".into(), Quantity(spec.memory.clone()))]);
    let env = |name: &str, value: &str| EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() };
    let index = EnvVar {
        name: "JOB_COMPLETION_INDEX".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let mut worker_env = vec![env("STORMPROOF_COORDINATOR", &spec.coordinator), index];
    if spec.verbose {
        worker_env.push(env("STORMPROOF_VERBOSE", "true"));
    }
    let workers = spec.workers as i32;
    Job {
        metadata: ObjectMeta { name: Some(spec.name.clone()), labels: Some(labels.clone()), ..ObjectMeta::default() },
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(workers),
            parallelism: Some(workers),
            // A worker that failed is not retried: its share would run twice.
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "worker".into(),
                        image: Some(spec.image.clone()),
                        command: Some(vec!["stormproof".into()]),
                        args: Some(vec!["siege".into(), "worker".into()]),
                        env: Some(worker_env),
                        resources: Some(ResourceRequirements {
                            requests: Some(resources.clone()),
                            limits: Some(resources),
                            ..ResourceRequirements::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

type Printer = Box<dyn Fn(&str) + Send + Sync>;

/// The worker Job of one run, behind the rails.
pub struct SiegeJobs {
    client: Client,
    namespace: String,
    spec: SiegeJobSpec,
    dry_run: Option<(Printer, Arc<Mutex<Vec<PlannedChange>>>)>,
    created: Option<String>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl SiegeJobs {
    /// The Job of `spec` in `namespace` of `context`; refuses when that is
    /// not the allowed context and namespace.
    pub fn new(client: Client, context: &str, namespace: &str, allowed: &Allowed, spec: SiegeJobSpec) -> Result<SiegeJobs, PlatformError> {
        if context != allowed.context || namespace != allowed.namespace {
            return Err(PlatformError::Refused(format!(
                "refusing to create the siege workers' Job in context `{context}`, namespace `{namespace}`: only context `{}`, namespace `{}` is allowed",
                allowed.context, allowed.namespace
            )));
        }
        Ok(SiegeJobs { client, namespace: namespace.into(), spec, dry_run: None, created: None, watcher: None })
    }

    /// Prints the Job through `print` instead of creating it.
    pub fn dry_run(mut self, print: impl Fn(&str) + Send + Sync + 'static) -> SiegeJobs {
        self.dry_run = Some((Box::new(print), Arc::new(Mutex::new(Vec::new()))));
        self
    }

    /// What a dry run printed.
    pub fn planned(&self) -> Vec<PlannedChange> {
        self.dry_run.as_ref().map(|(_, p)| p.lock().expect("not poisoned").clone()).unwrap_or_default()
    }

    /// The Job's API path.
    pub fn path(&self) -> String {
        format!("/apis/batch/v1/namespaces/{}/jobs/{}", self.namespace, self.spec.name)
    }

    /// Applies (or, in a dry run, prints) the Job for `coordinator`.
    pub async fn create(&mut self, coordinator: &str, workers: usize) -> Result<Job, PlatformError> {
        let mut spec = self.spec.clone();
        spec.coordinator = coordinator.into();
        spec.workers = workers;
        let job = render(&spec);
        if let Some((print, planned)) = &self.dry_run {
            let body = serde_json::to_value(&job).unwrap_or_default();
            let query = format!("fieldManager={FIELD_MANAGER}&force=true");
            let what = format!("create job/{} with {workers} indexed worker pods", spec.name);
            print(&format!("dry-run: would {what}: PATCH {}?{query} (application/apply-patch+yaml)", self.path()));
            print(&serde_saphyr::to_string(&job).unwrap_or_default());
            let change = PlannedChange { what, method: "PATCH".into(), path: self.path(), query, content_type: "application/apply-patch+yaml".into(), body };
            planned.lock().expect("not poisoned").push(change);
            return Ok(job);
        }
        let api: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let created = api
            .patch(&spec.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&job))
            .await
            .map_err(|e| PlatformError::Unreachable(format!("creating job/{}: {e}", spec.name)))?;
        self.created = Some(spec.name.clone());
        Ok(created)
    }

    /// Deletes the Job and its pods, if this run created it.
    pub async fn delete(&mut self) -> Result<(), PlatformError> {
        let Some(name) = self.created.take() else { return Ok(()) };
        let api: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(PlatformError::Unreachable(format!("deleting job/{name}: {e}"))),
        }
    }

    /// Sends a [`WorkerExit`] for each of the Job's pods that failed.
    fn watch_pods(&mut self, exits: mpsc::UnboundedSender<WorkerExit>) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!("{JOB_NAME}={}", self.spec.name);
        self.watcher = Some(tokio::spawn(async move {
            let mut told = std::collections::BTreeSet::new();
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else { continue };
                for pod in list {
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                    let index = pod.annotations().get(COMPLETION_INDEX).and_then(|i| i.parse::<usize>().ok());
                    if let (Some(worker), "Failed") = (index, phase.as_str())
                        && told.insert(worker)
                    {
                        let reason = pod.status.as_ref().and_then(|s| s.reason.clone()).unwrap_or_else(|| "Failed".into());
                        let _ = exits.send(WorkerExit { worker, how: format!("pod {} failed ({reason})", pod.name_any()) });
                    }
                }
            }
        }));
    }
}

#[async_trait::async_trait]
impl Launcher for SiegeJobs {
    async fn launch(&mut self, coordinator: &str, workers: usize) -> Result<Launched, DistributedError> {
        self.create(coordinator, workers).await.map_err(|e| DistributedError::Launch(e.to_string()))?;
        let (tx, exits) = mpsc::unbounded_channel();
        if self.dry_run.is_none() {
            self.watch_pods(tx);
        }
        let names = (0..workers).map(|i| format!("job/{} index {i}", self.spec.name)).collect();
        Ok(Launched { names, exits })
    }

    async fn cleanup(&mut self) -> Result<(), DistributedError> {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        self.delete().await.map_err(|e| DistributedError::Launch(e.to_string()))
    }
}
