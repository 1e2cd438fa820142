//! The platform trait: the operations the chaos engine and the CLI need —
//! every fault included — modelled on the Kubernetes API (SPEC "Platforms"). The local platform
//! implements it in-process and over its control API; a Kubernetes platform
//! implements it with the `scale` subresource, Deployment status and the
//! eviction API, rollouts by patching the pod template, autoscaler status
//! from autoscaling/v2 HPAs and restart counts from container statuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::network::{ActiveNetworkFault, NetworkFault};
use crate::broker::{ActiveFault, BrokerFault, FaultError};
use crate::systems::definition::Role;
use crate::systems::kit::SwitchState;

/// A service and its replicas, like a Deployment and its status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Name within the system (`order`).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Replicas asked for (`spec.replicas`).
    pub desired: u32,
    /// Replicas passing readiness (`status.readyReplicas`).
    pub ready: u32,
    /// Replicas available to serve (`status.availableReplicas`; minReadySeconds is 0).
    pub available: u32,
    /// Replica details (pods).
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica (a pod, or a process on the local platform).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Stable name, e.g. `order-1`.
    pub id: String,
    /// OS process id, where there is one.
    pub pid: Option<u32>,
    /// `host:port` it serves on, once known.
    pub address: Option<String>,
    /// Passing its readiness probe.
    pub ready: bool,
    /// Times it was restarted (crash or failed liveness).
    pub restarts: u32,
    /// Version label.
    pub version: String,
    /// Where it is in its life.
    pub phase: ReplicaPhase,
}

/// Where a replica is in its life (a pod's phase, with the kubelet's
/// terminating and crash-looping states).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaPhase {
    /// Started, not yet serving.
    Starting,
    /// Serving.
    Running,
    /// Stopping (SIGTERM sent, or the pod is being deleted).
    Terminating,
    /// Exited, or in CrashLoopBackOff, waiting to be restarted.
    Crashed,
}

/// The part of a pod template a rollout changes: what runs, not how many.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Version label (`app.kubernetes.io/version`; `STORMPROOF_VERSION` in
    /// the process). On Kubernetes also the image tag unless `image` is set.
    pub version: String,
    /// A variant of the service to run instead (a deliberately changed build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Extra environment for the new replicas.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Whether new replicas keep the service's readiness probe. Without one a
    /// replica takes traffic as soon as it starts, which is what makes a
    /// rollout drop requests.
    #[serde(default = "yes")]
    pub readiness: bool,
    /// Container image (Kubernetes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn yes() -> bool {
    true
}

impl Template {
    /// Version `version` with the service's own probes and nothing else changed.
    pub fn version(version: &str) -> Template {
        Template { version: version.into(), variant: None, env: BTreeMap::new(), readiness: true, image: None }
    }
}

/// A status condition (`type`, `status`, `reason`, `message`), as on
/// Deployments and HorizontalPodAutoscalers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Progressing`, `Available`, `AbleToScale`, `ScalingActive`, `ScalingLimited`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason, e.g. `ProgressDeadlineExceeded`.
    pub reason: String,
    /// In words.
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default)]
    pub last_transition_time: String,
}

impl Condition {
    /// Whether this condition has `status` "True".
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Looks up condition `kind`.
pub fn condition<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.kind == kind)
}

/// A Deployment's rollout as `kubectl rollout status` sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The service (Deployment) name.
    pub service: String,
    /// Revision of the current template (`deployment.kubernetes.io/revision`).
    pub revision: u64,
    /// `metadata.generation`: bumped by every spec change.
    pub generation: u64,
    /// `status.observedGeneration`: the generation the controller acted on.
    pub observed_generation: u64,
    /// `spec.replicas`.
    pub replicas: u32,
    /// `status.updatedReplicas`: replicas running the current template.
    pub updated: u32,
    /// `status.replicas`: all replicas, old and new, not terminating.
    pub total: u32,
    /// `status.availableReplicas`.
    pub available: u32,
    /// `status.readyReplicas`.
    pub ready: u32,
    /// The current template.
    pub template: Template,
    /// `Progressing` and `Available`.
    pub conditions: Vec<Condition>,
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Successfully rolled out.
    Complete,
    /// Still going; says what it waits for.
    Waiting(String),
    /// `Progressing=False` with `ProgressDeadlineExceeded`.
    Failed(String),
}

/// The reason Kubernetes gives a rollout that made no progress in time.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

impl RolloutStatus {
    /// kubectl's completion rule (`DeploymentStatusViewer`): the controller
    /// has observed the latest spec, every replica is updated, no old one is
    /// left and every updated one is available. Checking observedGeneration
    /// first is what keeps a status read right after a patch from passing.
    pub fn state(&self) -> RolloutState {
        if self.observed_generation < self.generation {
            return RolloutState::Waiting("waiting for the rollout spec update to be observed".into());
        }
        if let Some(c) = condition(&self.conditions, "Progressing").filter(|c| c.reason == PROGRESS_DEADLINE_EXCEEDED) {
            return RolloutState::Failed(format!("rollout of {} has exceeded its progress deadline: {}", self.service, c.message));
        }
        if self.updated < self.replicas {
            return RolloutState::Waiting(format!("{} out of {} new replicas have been updated", self.updated, self.replicas));
        }
        if self.total > self.updated {
            return RolloutState::Waiting(format!("{} old replicas are pending termination", self.total - self.updated));
        }
        if self.available < self.updated {
            return RolloutState::Waiting(format!("{} of {} updated replicas are available", self.available, self.updated));
        }
        RolloutState::Complete
    }
}

/// The `ScalingActive=False` reason of an autoscaler whose target is at 0.
pub const SCALING_DISABLED: &str = "ScalingDisabled";

/// A HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation, as its
/// status shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// The service (scale target) name.
    pub service: String,
    /// `spec.minReplicas`.
    pub min_replicas: u32,
    /// `spec.maxReplicas`.
    pub max_replicas: u32,
    /// Target average CPU utilisation, percent of the CPU request.
    pub target_cpu_utilization: u32,
    /// `status.currentReplicas`.
    pub current_replicas: u32,
    /// `status.desiredReplicas`.
    pub desired_replicas: u32,
    /// `status.currentMetrics`: average CPU utilisation, percent of request.
    pub current_cpu_utilization: Option<u32>,
    /// `status.lastScaleTime` (RFC 3339).
    pub last_scale_time: Option<String>,
    /// `AbleToScale`, `ScalingActive`, `ScalingLimited`.
    pub conditions: Vec<Condition>,
    /// How often the controller acts (Kubernetes' default: 15 s), so that
    /// deadlines can be derived from it.
    pub sync_period_ms: u64,
    /// `behavior.scaleDown.stabilizationWindowSeconds` (default 300 s).
    pub scale_down_stabilization_ms: u64,
}

impl AutoscalerStatus {
    /// `ScalingActive=True`: the autoscaler is acting. Scaling its target to
    /// 0 by hand turns this off until replicas are set by hand again.
    pub fn scaling_active(&self) -> bool {
        condition(&self.conditions, "ScalingActive").is_some_and(Condition::is_true)
    }

    /// `ScalingActive=False` because its target was scaled to 0
    /// (`ScalingDisabled`), as opposed to, say, metrics not yet available.
    pub fn disabled(&self) -> bool {
        condition(&self.conditions, "ScalingActive").is_some_and(|c| !c.is_true() && c.reason == SCALING_DISABLED)
    }
}

/// Why a platform operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// No such service.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// No such replica.
    #[error("unknown replica `{0}`")]
    UnknownReplica(String),
    /// The platform refuses the operation (and says why).
    #[error("{0}")]
    Refused(String),
    /// The platform cannot be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The request itself is not acceptable (e.g. a setting the service
    /// does not declare); says what is wrong.
    #[error("{0}")]
    Invalid(String),
}

fn no_network_faults() -> PlatformError {
    PlatformError::Refused("this platform cannot set network faults".into())
}

fn no_broker_faults() -> PlatformError {
    PlatformError::Refused("this platform's broker cannot inject faults (only the embedded broker of the local platform can)".into())
}

impl From<FaultError> for PlatformError {
    fn from(err: FaultError) -> PlatformError {
        match err {
            FaultError::Unreachable { .. } => PlatformError::Unreachable(err.to_string()),
            FaultError::Refused { .. } => PlatformError::Refused(err.to_string()),
        }
    }
}

/// The operations experiments perform on a platform.
#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    /// Every service with desired, ready and available replicas.
    async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError>;

    /// Sets the desired replicas of `service` (0 included); returns at once,
    /// like `kubectl scale`.
    async fn scale(&self, service: &str, replicas: u32) -> Result<(), PlatformError>;

    /// Kills one replica of `service` (the named one, or any), like deleting
    /// a pod; the platform replaces it. Returns the killed replica's id.
    async fn kill(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError>;

    /// Starts a rolling update of `service` to `template` and returns at
    /// once with the status right after the change (like patching the pod
    /// template); follow it with [`Platform::rollout_status`].
    async fn rollout(&self, service: &str, template: &Template) -> Result<RolloutStatus, PlatformError>;

    /// The rollout of `service` as `kubectl rollout status` sees it.
    async fn rollout_status(&self, service: &str) -> Result<RolloutStatus, PlatformError>;

    /// Rolls `service` back to its previous template (`kubectl rollout undo`).
    async fn rollout_undo(&self, service: &str) -> Result<RolloutStatus, PlatformError>;

    /// Every autoscaler with its status.
    async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError>;

    /// The misbehaviour switches of `replica` of `service`.
    async fn switches(&self, service: &str, replica: &str) -> Result<SwitchState, PlatformError>;

    /// Sets the switches of `replica` of `service` — a fault, so a guarded
    /// platform checks it like any change. A replica that has ended (or
    /// restarted, which turns its switches off) is `UnknownReplica`.
    async fn set_switches(&self, service: &str, replica: &str, state: &SwitchState) -> Result<(), PlatformError>;

    /// The autoscaler of `service`, if it has one.
    async fn autoscaler(&self, service: &str) -> Result<Option<AutoscalerStatus>, PlatformError> {
        Ok(self.autoscalers().await?.into_iter().find(|a| a.service == service))
    }

    /// Sets a fault inside the broker for one client or consumer group;
    /// returns it with its id. A platform whose broker has no fault seam
    /// refuses.
    async fn set_broker_fault(&self, _fault: &BrokerFault) -> Result<ActiveFault, PlatformError> {
        Err(no_broker_faults())
    }

    /// Clears broker fault `id`; returns it with its hits.
    async fn clear_broker_fault(&self, _id: u64) -> Result<ActiveFault, PlatformError> {
        Err(no_broker_faults())
    }

    /// Clears every broker fault; returns what was set.
    async fn clear_broker_faults(&self) -> Result<Vec<ActiveFault>, PlatformError> {
        Err(no_broker_faults())
    }

    /// The broker faults in force, with their hits.
    async fn broker_faults(&self) -> Result<Vec<ActiveFault>, PlatformError> {
        Err(no_broker_faults())
    }

    /// Sets a fault on every wired link `fault.links` names; returns it
    /// with its id and the links it is on. No such link: `Invalid`.
    async fn set_network_fault(&self, _fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        Err(no_network_faults())
    }

    /// Clears network fault `id`; returns it with its hits.
    async fn clear_network_fault(&self, _id: u64) -> Result<ActiveNetworkFault, PlatformError> {
        Err(no_network_faults())
    }

    /// Clears every network fault; returns what was set.
    async fn clear_network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        Err(no_network_faults())
    }

    /// The network faults in force, with their hits.
    async fn network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        Err(no_network_faults())
    }

    /// One service's status.
    async fn service(&self, service: &str) -> Result<ServiceStatus, PlatformError> {
        self.services()
            .await?
            .into_iter()
            .find(|s| s.name == service)
            .ok_or_else(|| PlatformError::UnknownService(service.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(generation: u64, observed: u64, replicas: u32, updated: u32, total: u32, available: u32) -> RolloutStatus {
        RolloutStatus {
            service: "order".into(),
            revision: 2,
            generation,
            observed_generation: observed,
            replicas,
            updated,
            total,
            available,
            ready: available,
            template: Template::version("v2"),
            conditions: vec![],
        }
    }

    #[test]
    fn a_status_read_before_the_controller_saw_the_patch_is_not_complete() {
        // Right after a patch the old status still looks finished.
        assert!(matches!(status(3, 2, 2, 2, 2, 2).state(), RolloutState::Waiting(w) if w.contains("observed")));
        assert_eq!(status(3, 3, 2, 2, 2, 2).state(), RolloutState::Complete);
    }

    #[test]
    fn waits_for_updates_then_old_replicas_then_availability() {
        assert!(matches!(status(2, 2, 4, 1, 5, 4).state(), RolloutState::Waiting(w) if w == "1 out of 4 new replicas have been updated"));
        assert!(matches!(status(2, 2, 4, 4, 5, 4).state(), RolloutState::Waiting(w) if w == "1 old replicas are pending termination"));
        assert!(matches!(status(2, 2, 4, 4, 4, 3).state(), RolloutState::Waiting(w) if w == "3 of 4 updated replicas are available"));
    }

    #[test]
    fn progress_deadline_exceeded_is_a_failure_even_with_replicas_left() {
        let mut s = status(2, 2, 2, 1, 2, 1);
        s.conditions.push(Condition {
            kind: "Progressing".into(),
            status: "False".into(),
            reason: PROGRESS_DEADLINE_EXCEEDED.into(),
            message: "ReplicaSet order-2 has timed out progressing".into(),
            last_transition_time: String::new(),
        });
        assert!(matches!(s.state(), RolloutState::Failed(m) if m.contains("progress deadline")));
    }
}
