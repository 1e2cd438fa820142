//! Platforms: where the services under test run and what experiments act
//! on. The operations are shaped like Kubernetes' (scale a Deployment, read
//! its replicas, delete a pod) so one experiment runs on every platform.

mod api;
pub mod local;

pub use api::{Platform, PlatformError, ReplicaStatus, ServiceStatus};
