//! The coordinator: the HTTP endpoint workers talk to, and what it heard
//! from each. A worker fetches its [`Assignment`], says it is ready (the
//! reply, once every worker is ready, is the agreed start instant), sends a
//! progress update every second while it runs, then its [`WorkerReport`].
//! [`Coordinator::collect`] waits for every report and fails — naming the
//! worker and what it had sent — when one exits, falls silent or sends a
//! report it cannot read. Nobody else talks to the workers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::assignment::Assignment;
use super::report::WorkerReport;
use super::{DistributedError, WorkerExit, WorkerFailure};

/// A running worker's periodic news.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ProgressUpdate {
    /// Requests that ended so far.
    pub completed: u64,
    /// Of which failed.
    pub failed: u64,
    /// Time since the worker's start, ms.
    pub elapsed_ms: u64,
}

/// The reply to `ready`: when to start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StartAt {
    /// The agreed start, ms since the Unix epoch.
    pub start_unix_ms: u64,
}

/// What one worker has sent so far.
#[derive(Debug, Clone, Default)]
struct Heard {
    assignment: bool,
    ready: bool,
    updates: u32,
    last: Option<ProgressUpdate>,
    last_heard: Option<Instant>,
    report: Option<Box<WorkerReport>>,
    rejected: Option<String>,
}

impl Heard {
    /// In words, for the failure message.
    fn describe(&self) -> String {
        if !self.assignment {
            return "nothing".into();
        }
        let mut s = "its assignment request".to_string();
        if self.ready {
            s.push_str(", ready");
        }
        match self.last {
            Some(p) => s.push_str(&format!(
                ", {} progress update{} (last: {} requests, {} failed, {:.1} s into the run)",
                self.updates,
                if self.updates == 1 { "" } else { "s" },
                p.completed,
                p.failed,
                p.elapsed_ms as f64 / 1000.0
            )),
            None if self.ready => s.push_str(", no progress update"),
            None => {}
        }
        s.push_str(if self.rejected.is_some() { ", an unreadable report" } else { ", no report" });
        s
    }
}

struct Shared {
    assignments: Vec<Assignment>,
    routes: Vec<String>,
    heard: Mutex<Vec<Heard>>,
    start: watch::Sender<Option<u64>>,
    start_lead: Duration,
}

/// How long the coordinator waits, and for what.
#[derive(Debug, Clone)]
pub struct Patience {
    /// From the coordinator's start until every worker is ready.
    pub register: Duration,
    /// Longest silence of a started worker (it sends news every second).
    pub silence: Duration,
    /// Between every worker being ready and the agreed start.
    pub start_lead: Duration,
}

/// The endpoint, listening.
pub struct Coordinator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    began: Instant,
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Coordinator {
    /// Listens on `listen` and serves `assignments` (one per worker).
    pub async fn bind(
        listen: SocketAddr,
        assignments: Vec<Assignment>,
        routes: Vec<String>,
        start_lead: Duration,
    ) -> Result<Coordinator, DistributedError> {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| DistributedError::Bind(listen, e))?;
        let addr = listener.local_addr().map_err(|e| DistributedError::Bind(listen, e))?;
        let n = assignments.len();
        let (start, _) = watch::channel(None);
        let shared = Arc::new(Shared { assignments, routes, heard: Mutex::new(vec![Heard::default(); n]), start, start_lead });
        let app = Router::new()
            .route("/v1/workers/{worker}/assignment", get(assignment))
            .route("/v1/workers/{worker}/ready", post(ready))
            .route("/v1/workers/{worker}/progress", post(progress))
            .route("/v1/workers/{worker}/report", post(report))
            // A long run's report (its timeline) is larger than axum's 2 MB default.
            .layer(DefaultBodyLimit::max(1 << 30))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Ok(Coordinator { addr, shared, stop, began: Instant::now() })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agreed start, once every worker is ready.
    pub fn start_unix_ms(&self) -> Option<u64> {
        *self.shared.start.borrow()
    }

    /// Waits for every worker's report (in worker order). Fails on the
    /// first worker that exits without one, stays silent past `patience`,
    /// or sends one that does not fit; or when `cancel` fires.
    pub async fn collect(
        &self,
        exits: &mut mpsc::UnboundedReceiver<WorkerExit>,
        patience: &Patience,
        cancel: &CancellationToken,
    ) -> Result<Vec<WorkerReport>, DistributedError> {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return Err(DistributedError::Cancelled),
            }
            let mut exited = Vec::new();
            while let Ok(e) = exits.try_recv() {
                exited.push(e);
            }
            let mut heard = self.shared.heard.lock().expect("not poisoned");
            let fail = |w: usize, failure: WorkerFailure, heard: &[Heard]| DistributedError::Worker {
                worker: w,
                failure,
                sent: heard[w].describe(),
            };
            for e in exited {
                if heard.get(e.worker).is_some_and(|h| h.report.is_none()) {
                    return Err(fail(e.worker, WorkerFailure::Exited(e.how), &heard));
                }
            }
            if let Some(w) = heard.iter().position(|h| h.rejected.is_some()) {
                let why = heard[w].rejected.clone().unwrap_or_default();
                return Err(fail(w, WorkerFailure::BadReport(why), &heard));
            }
            if heard.iter().all(|h| h.report.is_some()) {
                return Ok(heard.iter_mut().filter_map(|h| h.report.take().map(|r| *r)).collect());
            }
            let started = self.shared.start.borrow().is_some();
            if !started {
                if self.began.elapsed() > patience.register
                    && let Some(w) = heard.iter().position(|h| !h.ready)
                {
                    return Err(fail(w, WorkerFailure::NeverReady(patience.register), &heard));
                }
                continue;
            }
            for (w, h) in heard.iter().enumerate() {
                let silent = h.last_heard.map(|t| t.elapsed()).unwrap_or(Duration::MAX);
                if h.report.is_none() && silent > patience.silence {
                    return Err(fail(w, WorkerFailure::Silent(patience.silence), &heard));
                }
            }
        }
    }

    /// Stops listening.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Reply<T> = Result<T, (StatusCode, String)>;

fn hear<T>(s: &Shared, worker: usize, f: impl FnOnce(&mut Heard) -> T) -> Reply<T> {
    let mut heard = s.heard.lock().expect("not poisoned");
    let n = heard.len();
    let h = heard
        .get_mut(worker)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("expected a worker index below {n}, found {worker}")))?;
    h.last_heard = Some(Instant::now());
    Ok(f(h))
}

async fn assignment(State(s): State<Arc<Shared>>, Path(worker): Path<usize>) -> Reply<Json<Assignment>> {
    hear(&s, worker, |h| h.assignment = true)?;
    Ok(Json(s.assignments[worker].clone()))
}

async fn ready(State(s): State<Arc<Shared>>, Path(worker): Path<usize>) -> Reply<Json<StartAt>> {
    hear(&s, worker, |h| h.ready = true)?;
    {
        let heard = s.heard.lock().expect("not poisoned");
        if heard.iter().all(|h| h.ready) && s.start.borrow().is_none() {
            let at = now_unix_ms() + s.start_lead.as_millis() as u64;
            s.start.send_replace(Some(at));
        }
    }
    let mut rx = s.start.subscribe();
    let at = rx
        .wait_for(Option::is_some)
        .await
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "the coordinator is stopping".to_string()))?
        .expect("waited for Some");
    Ok(Json(StartAt { start_unix_ms: at }))
}

async fn progress(State(s): State<Arc<Shared>>, Path(worker): Path<usize>, Json(p): Json<ProgressUpdate>) -> Reply<StatusCode> {
    hear(&s, worker, |h| {
        h.updates += 1;
        h.last = Some(p);
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn report(State(s): State<Arc<Shared>>, Path(worker): Path<usize>, body: Bytes) -> Reply<StatusCode> {
    let parsed = serde_json::from_slice::<WorkerReport>(&body)
        .map_err(|e| format!("not a worker report: {e}"))
        .and_then(|r| r.check(worker, &s.routes).map(|()| r).map_err(|e| e.0));
    hear(&s, worker, |h| match parsed {
        Ok(r) => {
            h.report = Some(Box::new(r));
            Ok(StatusCode::NO_CONTENT)
        }
        Err(why) => {
            h.rejected = Some(why.clone());
            Err((StatusCode::BAD_REQUEST, why))
        }
    })?
}
