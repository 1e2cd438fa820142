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
    /// transactions / (transactions + failed), percent; none without
    /// traffic (no traffic is no evidence of availability).
    pub availability: Option<f64>,
}

impl PhaseFigures {
    /// Requests that count for availability: transactions and failures.
    pub fn judged(&self) -> u64 {
        self.transactions + self.failed
    }
}

impl From<TimelineCounts> for PhaseFigures {
    fn from(c: TimelineCounts) -> Self {
        let judged = c.transactions + c.failed;
        let availability = (judged > 0).then(|| 100.0 * c.transactions as f64 / judged as f64);
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
    /// Latency before, during and after the fault.
    pub latency_by_phase: [PhaseLatency; 3],
}

/// Latency of one phase, from its seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseLatency {
    /// Median of the seconds' p50, ms.
    pub p50_ms: f64,
    /// The worst second's p99, ms.
    pub p99_ms: f64,
}

fn phase_latency(timeline: &[Second], (from, to): (usize, usize)) -> PhaseLatency {
    let seconds: Vec<&Second> = timeline.iter().filter(|s| (from..to).contains(&(s.second as usize)) && s.requests > 0).collect();
    let mut p50s: Vec<f64> = seconds.iter().map(|s| s.p50_ms).collect();
    p50s.sort_by(f64::total_cmp);
    PhaseLatency {
        p50_ms: p50s.get(p50s.len() / 2).copied().unwrap_or(0.0),
        p99_ms: seconds.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
    }
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
    /// Route labels, in the order of the live figures' counts.
    labels: Vec<String>,
    /// Each closed second's counts per route, as the load reports them live.
    live: Arc<Mutex<Vec<(u64, Vec<TimelineCounts>)>>>,
}

/// Starts `def` against `gateway` with `token`, for as long as the experiment lasts.
pub fn start(def: &LoadDef, gateway: &str, token: &str) -> anyhow::Result<Running> {
    let mut targets = Vec::new();
    for route in &def.routes {
        let (method, path) = route.request.parts();
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
    let (labels, _) = plan.routes();
    let (seconds, mut closed) = tokio::sync::mpsc::unbounded_channel::<load::LiveSecond>();
    let hooks = RunHooks { seconds: Some(seconds), ..RunHooks::default() };
    let cancel = hooks.cancel.clone();
    let live = Arc::new(Mutex::new(Vec::new()));
    let into = live.clone();
    // Ends when the load does (the sender is dropped with the run).
    tokio::spawn(async move {
        while let Some(second) = closed.recv().await {
            if let Ok(mut live) = into.lock() {
                live.push((second.point.second, second.routes));
            }
        }
    });
    Ok(Running { cancel, task: tokio::spawn(load::run(plan, hooks)), users: def.users, labels, live })
}

impl Running {
    /// Requests of `route` that ended (transactions and failures) from
    /// second `from` on, as far as the live figures have come (about a
    /// second behind); none for a route the load does not have.
    pub fn judged_since(&self, route: &str, from: usize) -> Option<u64> {
        let index = self.labels.iter().position(|l| l == route)?;
        let live = self.live.lock().ok()?;
        Some(live.iter().filter(|(second, _)| *second as usize >= from).filter_map(|(_, routes)| routes.get(index)).map(|c| c.transactions + c.failed).sum())
    }

    /// Stops the load and cuts its figures into phases.
    pub async fn stop(self, marks: &Marks) -> anyhow::Result<(LoadRecord, LoadSummary)> {
        self.cancel.cancel();
        let summary = self.task.await??;
        Ok((record(&summary, marks, self.users), summary))
    }
}

/// A traffic spike (the `surge` action): extra load, not measured, that
/// ends when this is dropped.
pub struct Surge(CancellationToken);

/// Starts a surge of `def` against `gateway`.
pub fn surge(def: &LoadDef, gateway: &str, token: &str) -> anyhow::Result<Surge> {
    let running = start(def, gateway, token)?;
    Ok(Surge(running.cancel.clone()))
}

impl Drop for Surge {
    fn drop(&mut self) {
        self.0.cancel();
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
    let timeline: Vec<Second> = summary
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
    let latency_by_phase = [phase_latency(&timeline, before), phase_latency(&timeline, during), phase_latency(&timeline, after)];
    LoadRecord {
        users,
        routes,
        latency_by_phase,
        timeline,
        p50_ms: summary.quantile_us(0.5) as f64 / 1000.0,
        p99_ms: summary.quantile_us(0.99) as f64 / 1000.0,
        max_ms: summary.latency.max_us as f64 / 1000.0,
    }
}

/// Events behind of every consumer group at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LagSample {
    /// Seconds since the start.
    pub t: f64,
    /// Group → events behind.
    pub lag: BTreeMap<String, i64>,
}

/// How a consumer group fell behind during the fault and caught up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchUp {
    /// The consumer group.
    pub group: String,
    /// Most events it was behind.
    pub peak: i64,
    /// Seconds from the end of the fault until it was back within
    /// [`CAUGHT_UP`] events (none if never).
    pub caught_up_after: Option<f64>,
}

/// A group this close to the head counts as caught up: under continuous
/// load a consumer is rarely at exactly 0.
pub const CAUGHT_UP: i64 = 25;

/// Peak lag and catch-up time of each group.
pub fn catch_up(samples: &[LagSample], marks: &Marks) -> Vec<CatchUp> {
    let groups: Vec<&String> = samples.iter().flat_map(|s| s.lag.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let fault_end = marks.fault_end.unwrap_or(marks.end);
    groups
        .into_iter()
        .map(|group| {
            let lag = |s: &LagSample| s.lag.get(group).copied().unwrap_or(0);
            CatchUp {
                group: group.clone(),
                peak: samples.iter().map(lag).max().unwrap_or(0),
                caught_up_after: samples.iter().find(|s| s.t >= fault_end && lag(s) <= CAUGHT_UP).map(|s| s.t - fault_end),
            }
        })
        .collect()
}

/// What the sampler saw.
pub struct Samples {
    /// Ready replicas over time.
    pub replicas: Vec<ReplicaSample>,
    /// Consumer lag over time.
    pub lag: Vec<LagSample>,
}

/// Samples ready replicas (and consumer lag) twice a second until stopped.
pub struct Sampler {
    cancel: CancellationToken,
    samples: Arc<Mutex<Samples>>,
    task: JoinHandle<()>,
    lag: Option<Arc<super::lag::LagReader>>,
    platform: Arc<dyn Platform>,
    t0: Instant,
}

/// The services with replicas asked for or running: a consumer group of
/// any other service that never committed is absent, not behind (a read
/// model not deployed yet must not show as lagging by the whole topic).
fn deployed(services: &[crate::platform::ServiceStatus]) -> std::collections::BTreeSet<String> {
    services.iter().filter(|s| s.desired > 0 || !s.replicas.is_empty()).map(|s| s.name.clone()).collect()
}

/// The lag of the deployed services' groups (see [`deployed`]).
async fn read_lag(reader: Arc<super::lag::LagReader>, deployed: std::collections::BTreeSet<String>) -> Option<BTreeMap<String, i64>> {
    tokio::task::spawn_blocking(move || reader.read_deployed(&|service| deployed.contains(service))).await.ok()?.ok()
}

impl Sampler {
    /// Starts sampling `platform` (and `lag`); times are relative to `t0`.
    pub fn start(platform: Arc<dyn Platform>, lag: Option<Arc<super::lag::LagReader>>, t0: Instant) -> Sampler {
        // A remote read is a Job in the cluster: one per lag probe, never one every half second.
        let lag = lag.filter(|reader| !reader.is_remote());
        let cancel = CancellationToken::new();
        let samples = Arc::new(Mutex::new(Samples { replicas: Vec::new(), lag: Vec::new() }));
        let (stop, into, reader, sampled) = (cancel.clone(), samples.clone(), lag.clone(), platform.clone());
        let task = tokio::spawn(async move {
            let (lag, platform) = (reader, sampled);
            let mut up = std::collections::BTreeSet::new();
            loop {
                if let Ok(services) = platform.services().await {
                    up = deployed(&services);
                    let ready = services.into_iter().map(|s| (s.name, s.ready)).collect();
                    if let Ok(mut samples) = into.lock() {
                        samples.replicas.push(ReplicaSample { t: t0.elapsed().as_secs_f64(), ready });
                    }
                }
                if let Some(reader) = lag.clone() {
                    // A broker that is down has no lag to report: skip.
                    if let Some(lag) = read_lag(reader, up.clone()).await
                        && let Ok(mut samples) = into.lock()
                    {
                        samples.lag.push(LagSample { t: t0.elapsed().as_secs_f64(), lag });
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        Sampler { cancel, samples, task, lag, platform, t0 }
    }

    /// Stops and returns the samples, with a last lag sample taken now (a
    /// recovery check may have just seen the catch-up the sampler missed).
    pub async fn stop(self) -> Samples {
        self.cancel.cancel();
        let _ = self.task.await;
        let up = self.platform.services().await.map(|s| deployed(&s)).unwrap_or_default();
        if let Some(reader) = self.lag.clone()
            && let Some(lag) = read_lag(reader, up).await
            && let Ok(mut samples) = self.samples.lock()
        {
            samples.lag.push(LagSample { t: self.t0.elapsed().as_secs_f64(), lag });
        }
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        Samples { replicas: std::mem::take(&mut samples.replicas), lag: std::mem::take(&mut samples.lag) }
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
    fn catch_up_is_measured_from_the_end_of_the_fault() {
        let sample = |t: f64, lag: i64| LagSample { t, lag: BTreeMap::from([("shop.delivery".to_string(), lag)]) };
        let samples = [sample(1.0, 0), sample(3.0, 12), sample(6.0, 40), sample(7.5, 30), sample(8.0, 5), sample(9.5, 0)];
        let marks = Marks { fault_start: Some(2.0), fault_end: Some(7.0), recovered: Some(7.5), end: 10.0 };
        let [c] = catch_up(&samples, &marks).try_into().unwrap();
        assert_eq!(c.peak, 40);
        assert_eq!(c.caught_up_after, Some(1.0), "within 25 events after the fault; lag 0 before it does not count");
        let never = catch_up(&samples[..4], &marks);
        assert_eq!(never[0].caught_up_after, None);
    }

    #[test]
    fn a_phase_without_traffic_has_no_availability() {
        let empty: PhaseFigures = TimelineCounts::default().into();
        assert_eq!(empty.availability, None, "zero transactions are no evidence of 100 %");
        let half: PhaseFigures = TimelineCounts { requests: 4, transactions: 2, successful: 2, failed: 2, bytes: 0 }.into();
        assert_eq!(half.availability, Some(50.0));
        assert_eq!(half.judged(), 4);
    }
}
