//! A probe Job: one `stormproof` command run once inside the cluster, for
//! what the harness cannot reach from outside — the Kafka bootstrap, which
//! advertises addresses only the cluster resolves. The Job runs the
//! stormproof image (the same binary), prints its answer as one JSON line,
//! and the harness reads it back through the API server (`pods/log`), then
//! deletes the Job and its pod, however the read ended.
//!
//! Who talks to whom: [`ProbeJobs`] is made by [`Rails`](super::Rails),
//! which checked the context and namespace; its Jobs carry the harness
//! label, so no experiment ever acts on them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, ResourceExt};

use super::siege_job::JOB_NAME;
use super::{FIELD_MANAGER, HARNESS_LABEL, NAME};
use crate::platform::PlatformError;

/// How long a probe may take, pod scheduling and image start included.
const PATIENCE: Duration = Duration::from_secs(90);

/// Runs probe commands as Jobs in one namespace.
#[derive(Clone)]
pub struct ProbeJobs {
    client: Client,
    namespace: String,
    image: String,
}

impl ProbeJobs {
    /// Jobs in `namespace` (already allowed by the rails) running `image`.
    pub(super) fn new(client: Client, namespace: &str, image: &str) -> ProbeJobs {
        ProbeJobs { client, namespace: namespace.into(), image: image.into() }
    }

    /// Runs `stormproof ARGS` in a Job named after `what`, and returns the
    /// last line it printed.
    pub async fn run(&self, what: &str, args: Vec<String>) -> Result<String, PlatformError> {
        let name = format!("stormproof-{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        jobs.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&render(&name, &self.image, args)))
            .await
            .map_err(|err| PlatformError::Unreachable(format!("creating job/{name}: {err}")))?;
        let read = self.output(&name).await;
        let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
        match jobs.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            // Its ttlSecondsAfterFinished removes it anyway.
            Err(err) => tracing::warn!("deleting job/{name}: {err}"),
        }
        read
    }

    /// Waits for the Job's pod to end, then reads its log's last line.
    async fn output(&self, job: &str) -> Result<String, PlatformError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = ListParams::default().labels(&format!("{JOB_NAME}={job}"));
        let started = Instant::now();
        loop {
            let list = pods.list(&selector).await.map_err(|err| PlatformError::Unreachable(format!("listing the pods of job/{job}: {err}")))?;
            let ended = list.items.iter().find(|p| matches!(phase(p), "Succeeded" | "Failed"));
            if let Some(pod) = ended {
                let log = pods.logs(&pod.name_any(), &LogParams::default()).await.map_err(|err| PlatformError::Unreachable(format!("reading the log of pod/{}: {err}", pod.name_any())))?;
                let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
                if phase(pod) == "Failed" {
                    return Err(PlatformError::Unreachable(format!("job/{job} failed: {last}")));
                }
                return Ok(last);
            }
            if started.elapsed() > PATIENCE {
                return Err(PlatformError::Unreachable(format!("job/{job} did not finish within {} s", PATIENCE.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

/// The Job running `stormproof ARGS` once: never retried (a probe that
/// failed is read as failed), gone a minute after it ends even if the
/// harness could not delete it.
pub fn render(name: &str, image: &str, args: Vec<String>) -> Job {
    let labels = BTreeMap::from([(NAME.to_string(), "stormproof-probe".to_string()), (HARNESS_LABEL.to_string(), "true".to_string())]);
    let small = BTreeMap::from([("cpu".to_string(), Quantity("100m".into())), ("memory".to_string(), Quantity("64Mi".into()))]);
    Job {
        metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels.clone()), ..ObjectMeta::default() },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(PATIENCE.as_secs() as i64),
            ttl_seconds_after_finished: Some(60),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "probe".into(),
                        image: Some(image.into()),
                        image_pull_policy: Some("IfNotPresent".into()),
                        args: Some(args),
                        resources: Some(ResourceRequirements { requests: Some(small), ..ResourceRequirements::default() }),
                        security_context: Some(SecurityContext { allow_privilege_escalation: Some(false), read_only_root_filesystem: Some(true), run_as_non_root: Some(true), run_as_user: Some(65532), ..SecurityContext::default() }),
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
