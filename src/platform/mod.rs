//! Platforms: where the services under test run and what experiments act
//! on. The operations are shaped like Kubernetes' (scale a Deployment, read
//! its replicas, delete a pod, patch its template and follow the rollout,
//! read its HorizontalPodAutoscaler) so one experiment runs on every platform.

mod api;
pub mod kube;
pub mod local;
pub mod network;
mod switches;

pub use api::{
    AutoscalerStatus, Condition, PROGRESS_DEADLINE_EXCEEDED, Platform, PlatformError, ReplicaPhase, ReplicaStatus, RolloutState, RolloutStatus, SCALING_DISABLED, ServiceStatus, Template,
    condition,
};
