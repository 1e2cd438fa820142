//! Load through an experiment: the siege engine runs from before the
//! hypothesis to the end, and its per-route, per-second figures are cut into
//! the experiment's phases (before the fault, during it, after recovery).
//! Replica counts are sampled alongside, for the report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::experiment::LoadDef;
use crate::load::{self, LoadPlan, LoadSummary, RunHooks, Stop, Target, TimelineCounts};
use crate::platform::Platform;

/// When the phases began, in seconds since the experiment started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Marks {
    /// The first fault was applied.
    pub fault_start: Option<f64>,
    /// The rollback began.
    pub fault_end: Option<f64>,
    /// The rollback was verified.
    pub recovered: Option<f64>,
    /// The experiment ended.
    pub end: f64,
}

/// A route's figures in one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseFigures {
    /// Requests that ended.
    pub requests: u64,
    /// Transactions (status < 400).
    pub transactions: u64,
    /// Failures (4xx, 5xx, socket errors, timeouts).
    pub failed: u64,
    /// transactions / (transactions + failed), percent; 100 with no traffic.
    pub availability: f64,
}

impl From<TimelineCounts> for PhaseFigures {
    fn from(c: TimelineCounts) -> Self {
        let judged = c.transactions + c.failed;
        let availability = if judged == 0 { 100.0 } else { 100.0 * c.transactions as f64 / judged as f64 };
        PhaseFigures { requests: c.requests, transactions: c.transactions, failed: c.failed, availability }
    }
}

/// One route through the phases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutePhases {
    /// `METHOD /path`.
    pub route: String,
    /// Before the fault.
    pub before: PhaseFigures,
    /// While it held.
    pub during: PhaseFigures,
    /// After recovery.
    pub after: PhaseFigures,
}

/// One second of the load, all routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the start.
    pub second: u64,
    /// Requests that ended in it.
    pub requests: u64,
    /// Failures in it.
    pub failed: u64,
    /// Its availability, percent.
    pub availability: f64,
    /// Its median latency, ms.
    pub p50_ms: f64,
    /// Its 99th percentile, ms.
    pub p99_ms: f64,
}

/// What the load saw, for the journal and the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadRecord {
    /// Virtual users.
    pub users: u32,
    /// Per-route figures by phase.
    pub routes: Vec<RoutePhases>,
    /// Per-second figures.
    pub timeline: Vec<Second>,
    /// Whole-run p50 / p99 / max, ms.
    pub p50_ms: f64,
    /// Whole-run p99, ms.
    pub p99_ms: f64,
    /// Whole-run slowest, ms.
    pub max_ms: f64,
}

/// Ready replicas of every service at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaSample {
    /// Seconds since the start.
    pub t: f64,
    /// Service → ready replicas.
    pub ready: BTreeMap<String, u32>,
}

/// A load run in progress.
pub struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<LoadSummary, load::LoadError>>,
    users: u32,
}

/// Starts `def` against `gateway` with `token`, for as long as the experiment lasts.
pub fn start(def: &LoadDef, gateway: &str, token: &str) -> anyhow::Result<Running> {
    let mut targets = Vec::new();
    for route in &def.routes {
        let (method, path) = route.request().map_err(|e| anyhow::anyhow!(e))?;
        let body = route.body.as_ref().map(|b| Bytes::from(b.to_string()));
        let method = load::Method::from_bytes(method.as_str().as_bytes())?;
        let mut target = Target::new(method, &format!("{gateway}{path}"), body).map_err(|e| anyhow::anyhow!(e))?;
        if target.body.is_some() {
            target.content_type = Some("application/json".into());
        }
        targets.push(target);
    }
    let mut plan = LoadPlan::new(targets);
    plan.users = def.users;
    plan.delay = def.delay;
    // Ended by cancellation when the experiment ends.
    plan.stop = Stop::Duration(Duration::from_secs(24 * 3600));
    plan.timeout = Duration::from_secs(10);
    // One worker thread: the system under test shares the machine.
    plan.workers = 1;
    plan.headers.push((AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?));
    let plan = plan.validate()?;
    let hooks = RunHooks::default();
    let cancel = hooks.cancel.clone();
    Ok(Running { cancel, task: tokio::spawn(load::run(plan, hooks)), users: def.users })
}

impl Running {
    /// Stops the load and cuts its figures into phases.
    pub async fn stop(self, marks: &Marks) -> anyhow::Result<(LoadRecord, LoadSummary)> {
        self.cancel.cancel();
        let summary = self.task.await??;
        Ok((record(&summary, marks, self.users), summary))
    }
}

/// Seconds `[from, to)` of each phase.
pub fn windows(marks: &Marks) -> [(usize, usize); 3] {
    let end = marks.end.ceil() as usize + 1;
    let start = marks.fault_start.map(|s| s.floor() as usize).unwrap_or(end);
    let stop = marks.fault_end.map(|s| s.ceil() as usize).unwrap_or(end).max(start);
    let recovered = marks.recovered.map(|s| s.ceil() as usize).unwrap_or(end).max(stop);
    [(0, start), (start, stop), (recovered, end)]
}

fn record(summary: &LoadSummary, marks: &Marks, users: u32) -> LoadRecord {
    let [before, during, after] = windows(marks);
    let routes = summary
        .routes
        .iter()
        .map(|r| RoutePhases {
            route: r.route.clone(),
            before: r.between(before.0, before.1).into(),
            during: r.between(during.0, during.1).into(),
            after: r.between(after.0, after.1).into(),
        })
        .collect();
    let timeline = summary
        .timeline
        .iter()
        .map(|p| Second {
            second: p.second,
            requests: p.counts.requests,
            failed: p.counts.failed,
            availability: p.availability,
            p50_ms: p.p50_us as f64 / 1000.0,
            p99_ms: p.p99_us as f64 / 1000.0,
        })
        .collect();
    LoadRecord {
        users,
        routes,
        timeline,
        p50_ms: summary.quantile_us(0.5) as f64 / 1000.0,
        p99_ms: summary.quantile_us(0.99) as f64 / 1000.0,
        max_ms: summary.latency.max_us as f64 / 1000.0,
    }
}

/// Samples ready replicas every second until stopped.
pub struct Sampler {
    cancel: CancellationToken,
    samples: Arc<Mutex<Vec<ReplicaSample>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `platform`; times are relative to `t0`.
    pub fn start(platform: Arc<dyn Platform>, t0: Instant) -> Sampler {
        let cancel = CancellationToken::new();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, into) = (cancel.clone(), samples.clone());
        let task = tokio::spawn(async move {
            loop {
                if let Ok(services) = platform.services().await {
                    let ready = services.into_iter().map(|s| (s.name, s.ready)).collect();
                    if let Ok(mut samples) = into.lock() {
                        samples.push(ReplicaSample { t: t0.elapsed().as_secs_f64(), ready });
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        Sampler { cancel, samples, task }
    }

    /// Stops and returns the samples.
    pub async fn stop(self) -> Vec<ReplicaSample> {
        self.cancel.cancel();
        let _ = self.task.await;
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_cut_the_timeline_at_the_marks() {
        let marks = Marks { fault_start: Some(3.4), fault_end: Some(9.2), recovered: Some(11.5), end: 20.1 };
        assert_eq!(windows(&marks), [(0, 3), (3, 10), (12, 22)]);
        let never_faulted = Marks { end: 5.0, ..Marks::default() };
        let [before, during, after] = windows(&never_faulted);
        assert_eq!(before, (0, 6));
        assert_eq!(during.0, during.1, "no fault, no during window");
        assert_eq!(after.0, after.1);
    }

    #[test]
    fn a_phase_without_traffic_counts_as_available() {
        let empty: PhaseFigures = TimelineCounts::default().into();
        assert_eq!(empty.availability, 100.0);
        let half: PhaseFigures = TimelineCounts { requests: 4, transactions: 2, successful: 2, failed: 2, bytes: 0 }.into();
        assert_eq!(half.availability, 50.0);
    }
}
