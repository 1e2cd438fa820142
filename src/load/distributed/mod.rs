//! Distributed load: one plan run by N workers (processes on this host,
//! other hosts or pods), merged into one summary.
//!
//! Who talks to whom: [`run_distributed`] splits the plan ([`split`]),
//! starts the [`Coordinator`] (an HTTP endpoint), has a [`Launcher`] start
//! the workers ([`LocalWorkers`] here, an Indexed Job on Kubernetes), and
//! waits for every [`WorkerReport`]; [`run_worker`] is the worker's side.
//! The reports merge bit-exactly ([`merge`]), so thresholds judge the whole
//! run. A worker that fails or never reports fails the run, naming it and
//! what it had sent; the load is never silently smaller than asked.

mod assignment;
mod coordinator;
mod local;
mod merge;
mod report;
mod split;
mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use assignment::{Assignment, WirePlan};
pub use coordinator::{Coordinator, Patience, ProgressUpdate, StartAt};
pub use local::LocalWorkers;
pub use merge::merge;
pub use report::{BadReport, REPORT_FORMAT, WireFigures, WorkerReport, decode as decode_histogram};
pub use split::{SplitError, split, spread};
pub use worker::{RequestLines, WorkerDone, WorkerError, run_worker};

use super::plan::LoadPlan;
use super::summary::LoadSummary;

/// Version of the coordinator–worker protocol (assignment and report
/// documents); both sides refuse another.
pub const PROTOCOL_VERSION: u32 = 1;

/// A worker process ended.
#[derive(Debug, Clone)]
pub struct WorkerExit {
    /// Its index.
    pub worker: usize,
    /// How it ended, in words ("was killed by SIGKILL").
    pub how: String,
}

/// Workers started by a [`Launcher`].
pub struct Launched {
    /// One name per worker, for messages ("pid 4242", "pod siege-abc-2").
    pub names: Vec<String>,
    /// Each worker's end, as the launcher learns it.
    pub exits: mpsc::UnboundedReceiver<WorkerExit>,
}

/// Starts and stops the worker processes of a run.
#[async_trait::async_trait]
pub trait Launcher: Send {
    /// Starts `workers` workers that report to `coordinator` (a URL).
    async fn launch(&mut self, coordinator: &str, workers: usize) -> Result<Launched, DistributedError>;
    /// Stops whatever is left of them (always called, also after a failure).
    async fn cleanup(&mut self) -> Result<(), DistributedError>;
}

/// Why a worker failed the run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkerFailure {
    /// It ended before its report.
    #[error("{0} before sending its report")]
    Exited(String),
    /// It did not say it was ready in time.
    #[error("was not ready within {0:?}")]
    NeverReady(Duration),
    /// It stopped sending news mid-run.
    #[error("sent nothing for {0:?}")]
    Silent(Duration),
    /// Its report does not fit the protocol.
    #[error("sent a report that cannot be merged: {0}")]
    BadReport(String),
}

/// Why a distributed run did not produce a merged summary.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The plan cannot be split (input error).
    #[error(transparent)]
    Split(#[from] SplitError),
    /// The coordinator cannot listen.
    #[error("cannot listen on {0} for workers: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// The workers could not be started.
    #[error("{0}")]
    Launch(String),
    /// A worker failed: the run's load was not what was asked.
    #[error("worker {worker} {failure}; it had sent: {sent}")]
    Worker {
        /// Its index.
        worker: usize,
        /// What happened.
        failure: WorkerFailure,
        /// What the coordinator had heard from it.
        sent: String,
    },
    /// The reports could not be merged.
    #[error("cannot merge the workers' reports: {0}")]
    Merge(#[from] BadReport),
    /// Cancelled (Ctrl-C) before every report came.
    #[error("cancelled before every worker reported")]
    Cancelled,
}

impl DistributedError {
    /// True when the run itself went wrong (exit 1), false for a setup or
    /// input problem (exit 2).
    pub fn is_run_failure(&self) -> bool {
        matches!(self, DistributedError::Worker { .. } | DistributedError::Merge(_) | DistributedError::Cancelled)
    }
}

/// How the coordinator listens and waits.
#[derive(Debug, Clone)]
pub struct DistributedSettings {
    /// Workers.
    pub workers: usize,
    /// Where the coordinator listens (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// The URL workers reach it at (default: `http://` + where it listens).
    pub advertise: Option<String>,
    /// Timeouts.
    pub patience: Patience,
}

impl DistributedSettings {
    /// Settings for `workers` workers on this host.
    pub fn local(workers: usize) -> DistributedSettings {
        DistributedSettings {
            workers,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            patience: Patience {
                register: Duration::from_secs(30),
                silence: Duration::from_secs(10),
                start_lead: Duration::from_millis(300),
            },
        }
    }
}

/// What a distributed run tells its caller as it goes.
#[derive(Debug, Clone)]
pub enum DistributedEvent {
    /// The coordinator listens at this URL.
    Listening(String),
    /// A worker was started.
    WorkerStarted {
        /// Its index.
        worker: usize,
        /// Its name ("pid 4242").
        name: String,
    },
}

/// A finished distributed run.
#[derive(Debug)]
pub struct DistributedRun {
    /// The merged summary.
    pub summary: LoadSummary,
    /// Each worker's report, in worker order.
    pub reports: Vec<WorkerReport>,
}

/// Runs `plan` split over `settings.workers` workers started by `launcher`.
pub async fn run_distributed(
    plan: &LoadPlan,
    settings: &DistributedSettings,
    launcher: &mut dyn Launcher,
    cancel: &CancellationToken,
    on: &(dyn Fn(DistributedEvent) + Send + Sync),
) -> Result<DistributedRun, DistributedError> {
    let shares = split(plan, settings.workers)?;
    let (routes, _) = plan.routes();
    let n = shares.len();
    let assignments = shares
        .iter()
        .enumerate()
        .map(|(worker, share)| Assignment { version: PROTOCOL_VERSION, worker, workers: n, plan: WirePlan::of(share) })
        .collect();
    let coordinator = Coordinator::bind(settings.listen, assignments, routes.clone(), settings.patience.start_lead).await?;
    let url = settings.advertise.clone().unwrap_or_else(|| format!("http://{}", coordinator.addr()));
    on(DistributedEvent::Listening(url.clone()));
    let result = async {
        let mut launched = launcher.launch(&url, n).await?;
        for (worker, name) in launched.names.iter().enumerate() {
            on(DistributedEvent::WorkerStarted { worker, name: name.clone() });
        }
        coordinator.collect(&mut launched.exits, &settings.patience, cancel).await
    }
    .await;
    let cleaned = launcher.cleanup().await;
    coordinator.shutdown();
    let reports = result?;
    cleaned?;
    let summary = merge(&reports, routes, plan.model, plan.users)?;
    Ok(DistributedRun { summary, reports })
}
