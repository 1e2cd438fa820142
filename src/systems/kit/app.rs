//! The service runtime: everything a reference service needs around its own
//! routes and handlers — store, outbox relay, consumer, health, metrics,
//! switches — and a graceful shutdown on SIGTERM (stop accepting, finish
//! in-flight requests, stop consuming, exit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::bounds::MAX_BODY;
use super::error::{ApiError, JsonBody};
use super::inbox::{Handler, Inbox, panic_text};
use super::kafka::{FROM_LATEST, KafkaSettings, ensure_topic};
use super::metrics::Metrics;
use super::outbox::{Publisher, Relay, report};
use super::serve_options::{ServeOptions, instance_name};
use super::store::Store;
use super::switches::{SwitchState, Switches};
use super::variants::KitVariant;
use crate::process::{announce, terminated};

/// A running service's shared parts.
pub struct Kit {
    /// Full name, `system.service` (`system.service-instance` for another
    /// instance of the handler).
    pub name: String,
    /// Where another instance's business routes are (`/service-instance`):
    /// beside the first instance, behind the same gateway.
    prefix: Option<String>,
    /// The options the process was started with.
    pub opts: ServeOptions,
    /// The service's own database.
    pub store: Store,
    /// Where the system's events go.
    pub kafka: KafkaSettings,
    /// Counters served on /metrics.
    pub metrics: Metrics,
    /// Misbehaviour switches.
    pub switches: Switches,
    /// Records events in the outbox.
    pub publisher: Publisher,
    /// How truthfully its health endpoints answer (a broken variant's may lie).
    pub probes: Probes,
    /// Which consumer group its consumer joins (set before [`Kit::consume`]).
    pub group: Group,
    stop: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    /// Why a consumer task ended while the service runs, if one did.
    consumer_down: Arc<Mutex<Option<String>>>,
}

/// How truthfully a service's health endpoints answer. The real services'
/// do; a broken variant's may not, and the checkpoint that relies on the
/// probe must catch it (`check --prove`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Probes {
    /// Liveness and readiness say what is so.
    #[default]
    Truthful,
    /// Liveness answers OK whatever is wrong: the platform never restarts it.
    AlwaysLive,
    /// Readiness answers OK while the replica still warms up: it takes
    /// traffic it cannot serve yet.
    ReadyAtOnce,
}

/// Which consumer group a service's consumer joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Group {
    /// The service's own (`shop.delivery`): it resumes where it left off,
    /// so what was published while it was away is read when it returns.
    #[default]
    Service,
    /// A new group of its own at each start, from the topic's end (a
    /// consumer without a group, as Spring Cloud Stream's anonymous
    /// groups): what was published while it was away is never read. A
    /// broken variant's, for the replay checkpoints to catch.
    Anonymous,
    /// No group shares the work: every replica reads every partition itself
    /// (its progress still committed as the service's group) and applies
    /// what it reads without the inbox's check, so two replicas apply every
    /// event twice. A broken variant's, for the scale-out checkpoint.
    Unshared,
}

#[derive(Clone)]
struct Health {
    probes: Probes,
    /// Ready only once the consumer has its partitions.
    needs_partitions: bool,
    started: Instant,
    warmup: Duration,
    draining: Arc<AtomicBool>,
    switches: Switches,
    metrics: Metrics,
    version: String,
    name: String,
    consumer_down: Arc<Mutex<Option<String>>>,
    store: Store,
}

impl Health {
    /// The consumer task's death, which fails readiness and liveness alike:
    /// a service that consumes nothing must be restarted, not kept.
    fn consumer_down(&self) -> Option<String> {
        self.consumer_down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Kit {
    /// Opens the store (with `schema`), creates the topic and starts the
    /// outbox relay of service `system.service`.
    pub async fn start(system: &str, service: &str, opts: ServeOptions, kafka: KafkaSettings, schema: &str) -> anyhow::Result<Kit> {
        let name = instance_name(&format!("{system}.{service}"), opts.instance.as_deref());
        let prefix = opts.instance.as_ref().map(|instance| format!("/{service}-{instance}"));
        let store = Store::open_service(&name, &opts.data.join(format!("{name}.db")), schema).await?;
        let metrics = Metrics::new(&name);
        let wake = Arc::new(Notify::new());
        let publisher = Publisher::new(&kafka.topic, wake.clone());
        let relay = Relay::new(store.clone(), &kafka, &format!("{name}/{}", opts.replica_id), wake, metrics.clone())?;
        let topic_settings = kafka.clone();
        // The service answers HTTP even while the broker is away: topic
        // creation and relaying run in the background and retry.
        let background = vec![
            tokio::spawn(async move {
                if let Err(err) = ensure_topic(&topic_settings).await {
                    tracing::warn!("{err:#}");
                }
            }),
            tokio::spawn(relay.run()),
        ];
        let (stop, _) = watch::channel(false);
        let switches = Switches::default();
        Ok(Kit { name, prefix, opts, store, kafka, metrics, switches, publisher, probes: Probes::Truthful, group: Group::Service, stop, background, consumers: Vec::new(), consumer_down: Arc::default() })
    }

    /// Runs as the kit's broken variant `variant`: its consumer group or its
    /// probes changed (set before [`Kit::consume`] and [`Kit::serve`]).
    pub fn run_as(&mut self, variant: KitVariant) {
        match variant {
            // What was published while it was away is never read.
            KitVariant::AnonymousGroup => self.group = Group::Anonymous,
            // Two replicas apply every event twice.
            KitVariant::ReadsEveryPartition => self.group = Group::Unshared,
            // Read by `consume` from the options' variant.
            KitVariant::FromLatest => {}
            // Ready before it can serve: the readiness probe protects nothing.
            KitVariant::ReadyAtOnce => self.probes = Probes::ReadyAtOnce,
            // Live whatever is wrong: the platform has no reason to restart it.
            KitVariant::LiveAlways => self.probes = Probes::AlwaysLive,
        }
    }

    /// Starts consuming the system topic in this service's consumer group.
    /// If the consumer task ends (an error or a panic) while the service
    /// runs, the service reports itself neither ready nor live. The
    /// [`FROM_LATEST`] variant of any service starts a new group at the
    /// topic's end instead of its start.
    pub fn consume<H: Handler>(&mut self, handler: H) {
        let group = match self.group {
            Group::Service | Group::Unshared => self.name.clone(),
            Group::Anonymous => format!("{}.anonymous.{}", self.name, uuid::Uuid::new_v4().simple()),
        };
        let inbox = Inbox {
            store: self.store.clone(),
            kafka: self.kafka.clone(),
            group,
            // The anonymous group and the FROM_LATEST variant start at the topic's end.
            from_latest: self.group == Group::Anonymous || self.opts.variant.as_deref() == Some(FROM_LATEST),
            unshared: self.group == Group::Unshared,
            // Under `NAME/`, as the relay's `NAME/REPLICA`: a broker fault
            // aimed at a service (`NAME/`) cannot catch another whose name
            // extends it (mypage and mypage-late); its own id, so a fault
            // on the group's members leaves the relay alone.
            client_id: format!("{}/{}/consumer", self.name, self.opts.replica_id),
            handler,
            metrics: self.metrics.clone(),
            publisher: self.publisher.clone(),
            switches: self.switches.clone(),
        };
        let stop = self.stop.subscribe();
        let task = tokio::spawn(inbox.run(stop.clone()));
        let down = self.consumer_down.clone();
        self.consumers.push(tokio::spawn(async move {
            let ended = match task.await {
                Ok(Ok(())) if *stop.borrow() => return,
                Ok(Ok(())) => "it returned".to_string(),
                Ok(Err(err)) => format!("{err:#}"),
                Err(err) if err.is_panic() => format!("it panicked: {}", panic_text(&err.into_panic())),
                Err(err) => err.to_string(),
            };
            tracing::error!("consumer task ended: {ended}; the service reports not ready and not live");
            *down.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("consumer task ended: {ended}"));
        }));
    }

    /// Serves `routes` plus the kit's endpoints until SIGTERM or SIGINT.
    pub async fn serve(self, routes: Router) -> anyhow::Result<()> {
        let health = Health {
            probes: self.probes,
            // An anonymous group starts at the topic's end when it joins: not
            // ready before it has, so what it misses is what was published
            // while it was away (the fault it shows), never a start-up race.
            needs_partitions: self.group == Group::Anonymous && !self.consumers.is_empty(),
            started: Instant::now(),
            warmup: self.opts.warmup,
            draining: Arc::new(AtomicBool::new(false)),
            switches: self.switches.clone(),
            metrics: self.metrics.clone(),
            version: self.opts.version.clone(),
            name: self.name.clone(),
            consumer_down: self.consumer_down.clone(),
            store: self.store.clone(),
        };
        let routes = match &self.prefix {
            Some(prefix) => Router::new().nest(prefix, routes),
            None => routes,
        };
        let app = routes
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(middleware::from_fn_with_state(health.clone(), misbehave))
            .merge(kit_routes(health.clone()))
            .fallback(super::unknown_route)
            .method_not_allowed_fallback(super::wrong_method)
            .layer(middleware::from_fn_with_state(health.clone(), count))
            .layer(middleware::from_fn_with_state(MAX_BODY, super::bounds::refuse_too_large));
        let listener = tokio::net::TcpListener::bind(self.opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.opts.listen))?;
        let addr = listener.local_addr()?;
        announce(addr);
        tracing::info!("{} {} listening on {addr}", self.name, self.opts.version);
        let draining = health.draining.clone();
        let stop = self.stop.clone();
        axum::serve(nodelay(listener), app)
            .with_graceful_shutdown(async move {
                terminated().await;
                draining.store(true, Ordering::SeqCst);
                // Stop consuming at once: a replica told to stop must not
                // keep handling events while its connections drain (scaled
                // to zero, it would still publish).
                let _ = stop.send(true);
            })
            .await?;
        for consumer in self.consumers {
            let _ = tokio::time::timeout(Duration::from_secs(5), consumer).await;
        }
        for task in self.background {
            task.abort();
        }
        tracing::info!("{} stopped", self.name);
        Ok(())
    }
}

fn kit_routes(health: Health) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/actuator/health", get(actuator))
        .route("/metrics", get(|State(h): State<Health>| async move { h.metrics.render() }))
        .route("/_stormproof/switches", get(get_switches).put(put_switches))
        .route("/_stormproof/crash-consumer", post(crash_consumer))
        .route("/_stormproof/outbox", get(outbox))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(health)
}

async fn live(State(health): State<Health>) -> Response {
    match not_live(&health) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        None => axum::Json(serde_json::json!({"status": "live", "service": health.name, "version": health.version})).into_response(),
    }
}

/// Why the service is not live, if it is not (a lying variant never says).
fn not_live(health: &Health) -> Option<String> {
    if health.probes == Probes::AlwaysLive {
        return None;
    }
    if health.switches.get().unhealthy {
        return Some("unhealthy (switch)".into());
    }
    health.consumer_down()
}

async fn ready(State(health): State<Health>) -> Response {
    match unready(&health) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        None => axum::Json(serde_json::json!({"status": "ready", "service": health.name, "version": health.version})).into_response(),
    }
}

/// Spring Boot's health endpoint, which the course's manifests probe for
/// readiness and liveness alike: UP only when the service is both, as
/// Actuator's aggregate of its health indicators.
async fn actuator(State(health): State<Health>) -> Response {
    match not_live(&health).or_else(|| unready(&health)) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "DOWN", "reason": reason}))).into_response(),
        None => axum::Json(serde_json::json!({"status": "UP"})).into_response(),
    }
}

/// Why the service is not ready, if it is not.
fn unready(health: &Health) -> Option<String> {
    let reason = if health.draining.load(Ordering::SeqCst) {
        Some("draining")
    } else if health.started.elapsed() < health.warmup && health.probes != Probes::ReadyAtOnce {
        Some("warming up")
    } else if health.switches.get().unready {
        Some("unready (switch)")
    } else if health.needs_partitions && health.metrics.assignments() == 0 {
        Some("waiting for its partitions")
    } else {
        None
    };
    reason.map(str::to_string).or_else(|| health.consumer_down())
}

async fn get_switches(State(health): State<Health>) -> axum::Json<SwitchState> {
    axum::Json(health.switches.get())
}

async fn put_switches(State(health): State<Health>, JsonBody(state): JsonBody<SwitchState>) -> Result<axum::Json<SwitchState>, ApiError> {
    health.switches.set(state).map_err(ApiError::BadRequest)?;
    tracing::info!(switches = ?health.switches.get(), "switches changed");
    Ok(axum::Json(health.switches.get()))
}

async fn crash_consumer(State(health): State<Health>) -> StatusCode {
    tracing::warn!("the consumer task is told to die (/_stormproof/crash-consumer)");
    health.switches.crash_consumer();
    StatusCode::ACCEPTED
}

async fn outbox(State(health): State<Health>) -> Result<axum::Json<super::outbox::OutboxReport>, ApiError> {
    Ok(axum::Json(report(&health.store).await?))
}

async fn misbehave(State(health): State<Health>, request: Request, next: Next) -> Response {
    // A replica still warming up cannot serve yet; only a readiness probe
    // keeps traffic away from it.
    let warming = health.warmup.saturating_sub(health.started.elapsed());
    if !warming.is_zero() {
        let body = serde_json::json!({"error": "Service Unavailable", "reason": format!("warming up ({} ms left)", warming.as_millis())});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let switches = health.switches.get();
    if switches.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(switches.delay_ms)).await;
    }
    if switches.error_fraction > 0.0 && fastrand::f64() < switches.error_fraction {
        let body = serde_json::json!({"error": "Internal Server Error", "reason": "injected failure (switch errorFraction)"});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    next.run(request).await
}

async fn count(State(health): State<Health>, request: Request, next: Next) -> Response {
    // Standard methods only: a client inventing methods must not grow the metrics.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    health.metrics.request(method, response.status().as_u16());
    response
}

/// `listener` with TCP_NODELAY on every accepted connection: small JSON
/// answers must not wait for Nagle's algorithm and a delayed ACK.
pub fn nodelay(listener: tokio::net::TcpListener) -> impl axum::serve::Listener<Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream: &mut tokio::net::TcpStream| {
        let _ = stream.set_nodelay(true);
    })
}
