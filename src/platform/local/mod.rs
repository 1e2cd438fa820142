//! The local platform: a whole system on one machine with no cluster — the
//! embedded broker and every service replica as their own OS processes,
//! supervised with Kubernetes' probe semantics, behind a gateway and
//! per-service addresses that route only to ready replicas.
//!
//! `up` owns the supervisor and serves the control API; every other command
//! (and the chaos engine in another process) reaches it through
//! [`ControlClient`], found via the run directory's state file.

mod autoscaler;
mod control;
mod database;
mod deployment;
mod hpa;
pub mod link;
mod lifecycle;
mod probe;
mod replica;
mod rolling;
mod runstate;
mod secret;
mod supervisor;
mod up;
mod wiring;

pub use autoscaler::AutoscalerSettings;
pub use control::ControlClient;
pub use database::{PrivateCluster, StoreChoice, server_binaries};
pub use lifecycle::{QUICK_AUTOSCALER, Stopped, down, start_detached};
pub use runstate::{RunState, pid_alive};
pub use secret::{SECRET_FILE, secret_path};
pub use supervisor::Supervisor;
pub use up::{UpPlan, up};
pub use wiring::Wiring;
