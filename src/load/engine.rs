//! The engine: runs a [`LoadPlan`] and returns a [`LoadSummary`].
//!
//! Like oha's fast path, it starts one OS thread per core, each with its own
//! current-thread tokio runtime and `LocalSet`. Each thread runs its share of
//! the virtual users; each user owns its HTTP/1.1 connections
//! ([`super::conn`]: each target's request bytes built once, the response
//! parsed with httparse, keep-alive unless told otherwise), drives them
//! inside its own task (one write and one read per request, no cross-task
//! wake-ups) and records
//! into the thread's [`Recorder`] through a `RefCell` — no locks and no
//! channels on the hot path. When the run ends each thread hands back its
//! recorder and they are merged. The engine never prints: callers watch
//! [`Progress`] and, if they ask, a stream of [`RequestEvent`]s.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use hyper::Method;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, Failed, request_bytes};
use super::plan::{LoadPlan, Model, Stop};
use super::recorder::{ClosedSecond, Outcome, Recorder, SecondSink, TransportError};
use super::recorder::TimelineCounts;
use super::summary::{LoadSummary, SecondPoint, StopReason};

/// Live counters a caller can poll while the run goes (for a progress bar).
/// Workers add to them every 100 ms, not per request.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<ProgressInner>,
}

#[derive(Debug, Default)]
struct ProgressInner {
    done: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    /// New counters at zero.
    pub fn new() -> Progress {
        Progress::default()
    }
    /// Requests that ended so far.
    pub fn completed(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }
    /// Failures so far.
    pub fn failed(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }
}

/// One finished request, sent to [`RunHooks::events`] when the caller asks
/// (siege's `-v`). Costs a channel send per request: off by default.
#[derive(Debug, Clone)]
pub struct RequestEvent {
    /// Index into [`LoadPlan::targets`].
    pub target: usize,
    /// The status, or why there was none.
    pub result: Result<u16, TransportError>,
    /// Response time.
    pub latency: Duration,
    /// Body bytes.
    pub bytes: u64,
}

/// How a caller watches and stops a run.
#[derive(Debug, Clone, Default)]
pub struct RunHooks {
    /// Cancel to end the run early; the summary covers what was done.
    pub cancel: CancellationToken,
    /// Live counters.
    pub progress: Option<Progress>,
    /// Per-request events.
    pub events: Option<UnboundedSender<RequestEvent>>,
    /// Each second's figures, live (about a second after it ends) — what
    /// the chaos engine watches during a fault.
    pub seconds: Option<UnboundedSender<LiveSecond>>,
}

/// A run that could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A worker thread could not be started.
    #[error("cannot start a load worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A worker thread panicked.
    #[error("a load worker thread stopped unexpectedly")]
    WorkerPanicked,
}

/// A target made ready to send: the request's bytes, built once.
struct Prepared {
    request: Vec<u8>,
    /// A HEAD request: the response has no body.
    head: bool,
    addr: usize,
    route: usize,
}

struct Shared {
    plan: LoadPlan,
    targets: Vec<Prepared>,
    addrs: Vec<Option<SocketAddr>>,
    routes: usize,
    start: Instant,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    progress: Option<Progress>,
    events: Option<UnboundedSender<RequestEvent>>,
}

/// Runs `plan` to its end (or until `hooks.cancel`) and summarises it.
pub async fn run(plan: LoadPlan, hooks: RunHooks) -> Result<LoadSummary, LoadError> {
    Ok(run_recorded(plan, hooks, false).await?.into_summary())
}

/// A finished run before it is summarised: the merged recorder and what
/// the summary needs besides. A distributed worker serializes it.
pub(crate) struct RecordedRun {
    pub rec: Recorder,
    pub routes: Vec<String>,
    pub model: Model,
    pub users: u32,
    pub threads: usize,
    pub started_unix_ms: u64,
    pub elapsed: Duration,
    pub stopped_by: StopReason,
    /// Per-second p50/p99 over all threads.
    quantiles: Vec<(u64, u64)>,
}

impl RecordedRun {
    #[cfg(test)]
    pub(crate) fn for_test(rec: Recorder, routes: Vec<String>) -> RecordedRun {
        RecordedRun {
            rec,
            routes,
            model: Model::Closed,
            users: 1,
            threads: 1,
            started_unix_ms: 0,
            elapsed: Duration::from_secs(2),
            stopped_by: StopReason::Completed,
            quantiles: Vec::new(),
        }
    }

    pub(crate) fn into_summary(self) -> LoadSummary {
        let RecordedRun { rec, routes, model, users, threads, started_unix_ms, elapsed, stopped_by, quantiles } = self;
        LoadSummary::build(rec, routes, model, users, threads, started_unix_ms, elapsed, stopped_by, Some(quantiles))
    }
}

/// Runs `plan` and returns the merged recorder. With `keep_seconds`, each
/// second's merged latencies stay in the timeline (sparse), so another
/// process can merge them with its own.
pub(crate) async fn run_recorded(plan: LoadPlan, hooks: RunHooks, keep_seconds: bool) -> Result<RecordedRun, LoadError> {
    let (route_labels, route_of) = plan.routes();
    let mut authorities: Vec<(String, u16)> = Vec::new();
    let mut targets = Vec::with_capacity(plan.targets.len());
    for (i, t) in plan.targets.iter().enumerate() {
        let key = (t.host.clone(), t.port);
        let addr = match authorities.iter().position(|a| *a == key) {
            Some(a) => a,
            None => {
                authorities.push(key);
                authorities.len() - 1
            }
        };
        targets.push(Prepared { request: request_bytes(&plan, t), head: t.method == Method::HEAD, addr, route: route_of[i] });
    }
    let mut addrs = Vec::with_capacity(authorities.len());
    for (host, port) in &authorities {
        let found = match tokio::net::lookup_host((host.as_str(), *port)).await {
            Ok(mut it) => it.next(),
            Err(_) => None,
        };
        addrs.push(found);
    }

    let workers = plan.worker_count();
    let users = plan.users;
    let model = plan.model;
    let started_unix_ms =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let start = Instant::now();
    let deadline = match plan.stop {
        Stop::Duration(d) | Stop::First { time: d, .. } => Some(start + d),
        Stop::Reps(_) | Stop::Once => None,
    };
    let shared = Arc::new(Shared {
        plan,
        targets,
        addrs,
        routes: route_labels.len(),
        start,
        deadline,
        cancel: hooks.cancel.clone(),
        progress: hooks.progress.clone(),
        events: hooks.events.clone(),
    });

    let (second_tx, mut second_rx) = tokio::sync::mpsc::unbounded_channel::<ClosedSecond>();
    let mut receivers = Vec::with_capacity(workers);
    let mut first_user = 0u32;
    for w in 0..workers {
        let count = users / workers as u32 + u32::from((w as u32) < users % workers as u32);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = shared.clone();
        let sink = second_tx.clone();
        let first = first_user;
        first_user += count;
        std::thread::Builder::new()
            .name(format!("stormproof-load-{w}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("current-thread runtime");
                let local = tokio::task::LocalSet::new();
                let result = local.block_on(&rt, worker(shared, w, sink, first, count));
                let _ = tx.send(result);
            })
            .map_err(LoadError::Spawn)?;
        receivers.push(rx);
    }

    drop(second_tx);
    // Merge each second's latencies across workers as the seconds close,
    // keeping only p50/p99: memory stays flat however long the run.
    let mut seconds = SecondMerger::new(workers, route_labels.len(), hooks.seconds.clone());
    seconds.keep_latency = keep_seconds;
    while let Some(closed) = second_rx.recv().await {
        seconds.add(closed);
    }
    let (quantiles, sparse) = seconds.finish();
    let mut merged: Option<Recorder> = None;
    let mut stopped_by = StopReason::Completed;
    let mut end = start;
    for rx in receivers {
        let (rec, reason, worker_end) = rx.await.map_err(|_| LoadError::WorkerPanicked)?;
        if reason != StopReason::Completed {
            stopped_by = reason;
        }
        end = end.max(worker_end);
        match merged.as_mut() {
            Some(m) => m.merge(rec),
            None => merged = Some(rec),
        }
    }
    let elapsed = end.duration_since(start);
    let mut rec = merged.expect("at least one worker");
    rec.finish(elapsed);
    for (slot, latency) in rec.timeline.iter_mut().zip(sparse) {
        slot.latency = latency;
    }
    Ok(RecordedRun { rec, routes: route_labels, model, users, threads: workers, started_unix_ms, elapsed, stopped_by, quantiles })
}

/// Per-thread state shared by the thread's users.
struct Local {
    shared: Arc<Shared>,
    rec: RefCell<Recorder>,
    done: Cell<u64>,
    failed: Cell<u64>,
    /// Open model: next schedule slot of this worker.
    next_slot: Cell<u64>,
    slots: u64,
    interval: Duration,
    /// Per local user: since when and on which route its request is in flight.
    in_flight: Vec<Cell<Option<(Instant, usize)>>>,
}

async fn worker(
    shared: Arc<Shared>,
    index: usize,
    sink: SecondSink,
    first_user: u32,
    users: u32,
) -> (Recorder, StopReason, Instant) {
    let plan = &shared.plan;
    let per_user = match plan.stop {
        Stop::Reps(n) | Stop::First { reps: n, .. } => n,
        Stop::Once => plan.targets.len() as u64,
        Stop::Duration(_) => u64::MAX,
    };
    let interval = match plan.model {
        Model::Open { rate } => {
            let share = rate * users as f64 / plan.users as f64;
            Duration::from_secs_f64(1.0 / share)
        }
        Model::Closed => Duration::ZERO,
    };
    let mut rec = Recorder::new(plan.counting, shared.routes, plan.timeline);
    rec.stream_seconds(index, sink);
    let local = Rc::new(Local {
        rec: RefCell::new(rec),
        shared: shared.clone(),
        done: Cell::new(0),
        failed: Cell::new(0),
        next_slot: Cell::new(0),
        slots: per_user.saturating_mul(users as u64),
        interval,
        in_flight: (0..users).map(|_| Cell::new(None)).collect(),
    });
    let mut set = JoinSet::new();
    for u in 0..users {
        set.spawn_local(user_loop(local.clone(), first_user + u, u as usize, per_user));
    }
    let ticker = tokio::task::spawn_local(tick(local.clone()));
    let deadline = shared.deadline;
    let reason = tokio::select! {
        _ = async { while set.join_next().await.is_some() {} } => StopReason::Completed,
        _ = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        } => StopReason::Duration,
        _ = shared.cancel.cancelled() => StopReason::Cancelled,
    };
    let end = Instant::now();
    set.shutdown().await;
    for slot in &local.in_flight {
        if let Some((since, route)) = slot.take() {
            local.rec.borrow_mut().record_unfinished(route, end.saturating_duration_since(since));
        }
    }
    ticker.abort();
    let _ = ticker.await;
    add_progress(&local);
    let mut rec = local.rec.replace(Recorder::new(plan.counting, 0, false));
    rec.tick(end.duration_since(shared.start));
    rec.close_stream();
    (rec, reason, end)
}

fn add_progress(local: &Local) {
    if let Some(p) = &local.shared.progress {
        p.inner.done.fetch_add(local.done.replace(0), Ordering::Relaxed);
        p.inner.failed.fetch_add(local.failed.replace(0), Ordering::Relaxed);
    }
}

/// Every 100 ms: publish progress and close the timeline's past seconds.
async fn tick(local: Rc<Local>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        add_progress(&local);
        local.rec.borrow_mut().tick(local.shared.start.elapsed());
    }
}

/// Merges the closed seconds of all workers: per-second p50/p99 for the
/// summary and, when asked, live [`LiveSecond`]s as soon as every worker
/// has closed a second.
struct SecondMerger {
    closed_before: Vec<usize>,
    open: BTreeMap<usize, OpenSecond>,
    next: usize,
    /// One past the latest second any worker reported.
    seen: usize,
    done: Vec<(u64, u64)>,
    /// With `keep_latency`: each finalized second's histogram, sparse.
    sparse: Vec<Vec<(u64, u64)>>,
    keep_latency: bool,
    routes: usize,
    live: Option<UnboundedSender<LiveSecond>>,
}

struct OpenSecond {
    latency: Histogram<u64>,
    counts: TimelineCounts,
    routes: Vec<TimelineCounts>,
}

/// One second of a running load, sent live to [`RunHooks::seconds`]
/// about a second after it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSecond {
    /// The second's figures over all routes.
    pub point: SecondPoint,
    /// Counts per route, in [`LoadPlan::routes`] order.
    pub routes: Vec<TimelineCounts>,
}

impl SecondMerger {
    fn new(workers: usize, routes: usize, live: Option<UnboundedSender<LiveSecond>>) -> SecondMerger {
        SecondMerger {
            closed_before: vec![0; workers],
            open: BTreeMap::new(),
            next: 0,
            seen: 0,
            done: Vec::new(),
            sparse: Vec::new(),
            keep_latency: false,
            routes,
            live,
        }
    }

    fn add(&mut self, c: ClosedSecond) {
        let routes = self.routes;
        self.seen = self.seen.max(c.second + 1);
        let open = self.open.entry(c.second).or_insert_with(|| OpenSecond {
            latency: Histogram::new(2).expect("valid precision"),
            counts: TimelineCounts::default(),
            routes: vec![TimelineCounts::default(); routes],
        });
        for (v, n) in c.latency {
            let _ = open.latency.record_n(v, n);
        }
        open.counts.merge(&c.counts);
        for (a, b) in open.routes.iter_mut().zip(&c.routes) {
            a.merge(b);
        }
        if let Some(w) = self.closed_before.get_mut(c.worker) {
            *w = (*w).max(c.closed_before);
        }
        // closed_before is usize::MAX once a worker is done: never finalize
        // past what was reported.
        let all_closed = self.closed_before.iter().copied().min().unwrap_or(0).min(self.seen);
        self.finalize_before(all_closed);
    }

    /// Finalizes every second before `end` (in order, gaps included).
    fn finalize_before(&mut self, end: usize) {
        while self.next < end {
            if self.live.is_none() {
                // Without a live listener only seconds with data matter.
                match self.open.first_key_value() {
                    Some((&sec, _)) if sec < end => self.next = sec,
                    _ => {
                        self.next = end;
                        return;
                    }
                }
            }
            let sec = self.next;
            let open = self.open.remove(&sec);
            self.next += 1;
            let (p50, p99) = match &open {
                Some(o) if !o.latency.is_empty() => (o.latency.value_at_quantile(0.5), o.latency.value_at_quantile(0.99)),
                _ => (0, 0),
            };
            if self.done.len() <= sec {
                self.done.resize(sec + 1, (0, 0));
            }
            self.done[sec] = (p50, p99);
            if self.keep_latency
                && let Some(o) = &open
            {
                if self.sparse.len() <= sec {
                    self.sparse.resize(sec + 1, Vec::new());
                }
                self.sparse[sec] = super::recorder::sparse(&o.latency);
            }
            if let Some(tx) = &self.live {
                let (counts, routes) = match open {
                    Some(o) => (o.counts, o.routes),
                    None => (TimelineCounts::default(), vec![TimelineCounts::default(); self.routes]),
                };
                let point = SecondPoint { second: sec as u64, counts, availability: counts.availability(), p50_us: p50, p99_us: p99 };
                let _ = tx.send(LiveSecond { point, routes });
            }
        }
    }

    fn finish(mut self) -> (Vec<(u64, u64)>, Vec<Vec<(u64, u64)>>) {
        let seen = self.seen;
        self.finalize_before(seen);
        (self.done, self.sparse)
    }
}

async fn user_loop(local: Rc<Local>, user: u32, slot: usize, per_user: u64) {
    let shared = &local.shared;
    let plan = &shared.plan;
    let n = shared.targets.len();
    let mut rng = fastrand::Rng::with_seed(0x5eed_u64 ^ ((user as u64) << 20) ^ shared.start.elapsed().as_nanos() as u64);
    let mut conns: Vec<Option<Conn>> = (0..shared.addrs.len()).map(|_| None).collect();
    let open = matches!(plan.model, Model::Open { .. });
    let mut next = 0usize;
    let mut sent = 0u64;
    loop {
        let scheduled = if open {
            let slot = local.next_slot.get();
            if slot >= local.slots {
                break;
            }
            local.next_slot.set(slot + 1);
            let at = shared.start + local.interval.mul_f64(slot as f64);
            if at > Instant::now() {
                tokio::time::sleep_until(at.into()).await;
            }
            Some(at)
        } else {
            if sent >= per_user {
                break;
            }
            if !plan.delay.is_zero() {
                tokio::time::sleep(plan.delay.mul_f64(rng.f64())).await;
            }
            None
        };
        sent += 1;
        let idx = if plan.random_order {
            rng.usize(..n)
        } else {
            let i = next;
            next = if next + 1 == n { 0 } else { next + 1 };
            i
        };
        let begin = scheduled.unwrap_or_else(Instant::now);
        let route = shared.targets[idx].route;
        local.in_flight[slot].set(Some((begin, route)));
        let result = match tokio::time::timeout(plan.timeout, send(shared, &mut conns, idx)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout),
        };
        let end = Instant::now();
        local.in_flight[slot].set(None);
        let outcome = match result {
            Ok((status, bytes)) => Outcome::Response { status, bytes },
            Err(e) => Outcome::Transport(e),
        };
        let latency = end.duration_since(begin);
        let failed = {
            let mut rec = local.rec.borrow_mut();
            let before = rec.total.failed;
            rec.record(route, outcome, latency, end.duration_since(shared.start));
            rec.total.failed != before
        };
        local.done.set(local.done.get() + 1);
        if failed {
            local.failed.set(local.failed.get() + 1);
        }
        if let Some(tx) = &shared.events {
            let (result, bytes) = match outcome {
                Outcome::Response { status, bytes } => (Ok(status), bytes),
                Outcome::Transport(e) => (Err(e), 0),
            };
            let _ = tx.send(RequestEvent { target: idx, result, latency, bytes });
        }
    }
}

/// Sends target `idx` on the user's connection to its host (opening one
/// when there is none, or the kept one was closed by the server).
async fn send(shared: &Shared, conns: &mut [Option<Conn>], idx: usize) -> Result<(u16, u64), TransportError> {
    let t = &shared.targets[idx];
    let addr = shared.addrs[t.addr].ok_or(TransportError::Dns)?;
    let kept = conns[t.addr].take().filter(|c| c.is_alive());
    let mut conn = match kept {
        Some(c) => c,
        None => Conn::connect(addr).await?,
    };
    let result = match conn.exchange(&t.request, t.head).await {
        // A kept-alive connection the server had closed: nothing of an
        // answer came, so the request goes again on a fresh connection.
        Err(Failed::Stale(_)) => {
            conn = Conn::connect(addr).await?;
            conn.exchange(&t.request, t.head).await
        }
        other => other,
    };
    match result {
        Ok(r) => {
            if shared.plan.keepalive && r.reusable {
                conns[t.addr] = Some(conn);
            }
            Ok((r.status, r.bytes))
        }
        Err(Failed::Stale(e) | Failed::Hard(e)) => Err(e),
    }
}
