//! The Kubernetes platform: the [`Platform`](crate::platform::Platform)
//! operations on a namespace of a real cluster, through the API server
//! (kube-rs, k8s-openapi types). A service is a Deployment named after it;
//! a replica is one of its pods.
//!
//! Who talks to whom: [`KubePlatform`] sends the requests (the `scale`
//! subresource, strategic-merge patches of the pod template, the eviction
//! API, autoscaling/v2 HPAs); [`Rails`] stands in front of it for the chaos
//! engine and refuses what an experiment may not touch, or, in dry-run
//! mode, prints every change instead of sending it. [`manifests`] renders a
//! reference system's objects (the services' PostgreSQL server among them,
//! [`database`]) and applies them with server-side apply.
//! [`SiegeJobs`] runs a distributed siege's workers as an Indexed Job;
//! [`ProbeJobs`] runs one read inside the cluster (consumer lag) as a Job.

mod connect;
pub mod database;
mod deployments;
mod hpa;
pub mod manifests;
pub mod network;
mod probe_job;
mod rails;
mod rollout;
pub mod service_proxy;
pub mod siege_job;

pub use connect::{KubeTarget, connect, settle};
pub use deployments::KubePlatform;
pub use probe_job::ProbeJobs;
pub use rails::{Allowed, PlannedChange, Rails};
pub use siege_job::{SiegeJobSpec, SiegeJobs};

/// The field manager stormproof's changes are recorded under.
pub const FIELD_MANAGER: &str = "stormproof";
/// The label a Deployment must carry (value [`OPT_IN_VALUE`]) before an experiment may act on it.
pub const OPT_IN_LABEL: &str = "stormproof.io/chaos";
/// The value of [`OPT_IN_LABEL`] that opts a Deployment in.
pub const OPT_IN_VALUE: &str = "enabled";
/// Labels a Deployment or pod as the harness itself, which experiments never touch.
pub const HARNESS_LABEL: &str = "stormproof.io/harness";
/// The label that names the reference system a Deployment belongs to.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// The label that names the service.
pub const NAME: &str = "app.kubernetes.io/name";
/// The label that carries the running version.
pub const VERSION: &str = "app.kubernetes.io/version";
/// The label that carries the service's role (core, supporting, read-model).
pub const ROLE: &str = "stormproof.io/role";
/// The pod-template annotation a restart sets, as `kubectl rollout restart` does.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
