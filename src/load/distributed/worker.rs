//! A worker: one process (on this host, another, or a pod) that runs its
//! share of a distributed load. It talks only to the coordinator: fetches
//! its assignment, waits for the agreed start, sends progress every second
//! while the engine runs, then its report.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use super::super::engine::{Progress, RequestEvent, RunHooks, run_recorded};
use super::super::plan::Target;
use super::PROTOCOL_VERSION;
use super::assignment::Assignment;
use super::coordinator::{ProgressUpdate, StartAt};
use super::report::WorkerReport;

/// Why a worker could not do its share.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The coordinator could not be reached or answered with an error.
    #[error("coordinator {url}: {why}")]
    Coordinator {
        /// What was asked.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The assignment is not one this worker can run.
    #[error("cannot run the assignment: {0}")]
    Assignment(String),
    /// The engine failed.
    #[error(transparent)]
    Load(#[from] super::super::engine::LoadError),
}

/// What a worker did, for its own log.
#[derive(Debug, Clone, Copy)]
pub struct WorkerDone {
    /// Requests that ended.
    pub requests: u64,
    /// Transactions.
    pub transactions: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

struct Link {
    client: reqwest::Client,
    base: String,
    worker: usize,
}

impl Link {
    fn url(&self, what: &str) -> String {
        format!("{}/v1/workers/{}/{what}", self.base, self.worker)
    }

    fn failed(&self, what: &str, why: impl std::fmt::Display) -> WorkerError {
        WorkerError::Coordinator { url: self.url(what), why: why.to_string() }
    }

    async fn answer<T: DeserializeOwned>(&self, what: &str, resp: reqwest::Response) -> Result<T, WorkerError> {
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(self.failed(what, format!("{status}: {body}")));
        }
        resp.json().await.map_err(|e| self.failed(what, e))
    }
}

/// Where a worker run with `-v` sends each request: the plan's targets
/// first (once the assignment is known: events name a target by index),
/// then one event per request.
pub struct RequestLines {
    /// Receives the targets of the assigned plan.
    pub targets: tokio::sync::oneshot::Sender<Vec<Target>>,
    /// Receives each request as it ends.
    pub events: tokio::sync::mpsc::UnboundedSender<RequestEvent>,
}

/// Runs worker `worker`'s share of the run `coordinator` (`http://host:port`)
/// coordinates. Retries reaching it for `patience` (a pod may start first).
/// With `lines`, every request is also sent there (siege's `-v`).
pub async fn run_worker(coordinator: &str, worker: usize, patience: Duration, lines: Option<RequestLines>) -> Result<WorkerDone, WorkerError> {
    let link = Link { client: reqwest::Client::new(), base: coordinator.trim_end_matches('/').to_string(), worker };
    let until = tokio::time::Instant::now() + patience;
    let assignment: Assignment = loop {
        match link.client.get(link.url("assignment")).send().await {
            Ok(resp) => break link.answer("assignment", resp).await?,
            Err(e) if tokio::time::Instant::now() < until && e.is_connect() => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(link.failed("assignment", e)),
        }
    };
    if assignment.version != PROTOCOL_VERSION {
        return Err(WorkerError::Assignment(format!(
            "expected protocol version {PROTOCOL_VERSION}, the coordinator speaks {}",
            assignment.version
        )));
    }
    let plan = assignment.plan.to_plan().map_err(WorkerError::Assignment)?;
    let plan = plan.validate().map_err(|e| WorkerError::Assignment(e.to_string()))?;
    let resp = link.client.post(link.url("ready")).send().await.map_err(|e| link.failed("ready", e))?;
    let start: StartAt = link.answer("ready", resp).await?;
    let wait = start.start_unix_ms.saturating_sub(unix_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;

    let progress = Progress::new();
    let mut hooks = RunHooks { progress: Some(progress.clone()), ..RunHooks::default() };
    if let Some(lines) = lines {
        let _ = lines.targets.send(plan.targets.clone());
        hooks.events = Some(lines.events);
    }
    let news = tokio::spawn({
        let (client, url) = (link.client.clone(), link.url("progress"));
        async move {
            let began = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let update = ProgressUpdate {
                    completed: progress.completed(),
                    failed: progress.failed(),
                    elapsed_ms: began.elapsed().as_millis() as u64,
                };
                // A lost update is not fatal: the next one follows in a second.
                let _ = client.post(&url).json(&update).timeout(Duration::from_secs(5)).send().await;
            }
        }
    });
    let run = run_recorded(plan, hooks, true).await;
    news.abort();
    let run = run?;
    let report = WorkerReport::of(&run, worker);
    let done = WorkerDone { requests: run.rec.total.requests, transactions: run.rec.total.transactions };
    let body = serde_json::to_vec(&report).map_err(|e| WorkerError::Assignment(e.to_string()))?;
    let resp = link
        .client
        .post(link.url("report"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| link.failed("report", e))?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(link.failed("report", format!("{status}: {}", resp.text().await.unwrap_or_default())));
    }
    Ok(done)
}
