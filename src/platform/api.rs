//! The platform trait: the operations the chaos engine and the CLI need,
//! modelled on the Kubernetes API (SPEC "Platforms"). The local platform
//! implements it in-process and over its control API; a Kubernetes platform
//! implements it with the `scale` subresource, Deployment status and the
//! eviction API. Rollouts, autoscaler status and restart counts join here.

use serde::{Deserialize, Serialize};

use crate::systems::definition::Role;

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
    /// `starting`, `running`, `terminating` or `crashed`.
    pub phase: String,
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

    /// One service's status.
    async fn service(&self, service: &str) -> Result<ServiceStatus, PlatformError> {
        self.services()
            .await?
            .into_iter()
            .find(|s| s.name == service)
            .ok_or_else(|| PlatformError::UnknownService(service.to_string()))
    }
}
