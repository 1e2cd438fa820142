//! call (core): takes a passenger's call. The fare is registered with
//! payment synchronously first (timeout and circuit breaker, no fallback:
//! "no payment, no call"), then the call and its `CalledTaxi` commit in one
//! transaction. A call payment cannot register answers 503 and leaves no
//! call row and no event. Consumes `UpdatedStatus` (the driver's progress).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{CalledTaxi, EVENT_TYPES, Status, UpdatedStatus, limits};
use super::payment::{Payment, RegisterFare};
use super::{customer_filter, status_of};
use crate::systems::kit::bounds::{int, integer, text};
use crate::systems::kit::{
    ApiError, CallError, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Poison, Publisher, ServeOptions, Store,
    Table, Tx, Upstream, now_rfc3339, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS call_ids (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    destination TEXT NOT NULL,
    cost INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_customer ON calls(customer_id);
";

/// A call as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Id (the flow's correlation key).
    pub id: i64,
    /// The passenger.
    pub customer_id: i64,
    /// Where to.
    pub destination: String,
    /// The fare.
    pub cost: i64,
    /// `Called`, `Accepted` or `Completed`.
    pub status: String,
}

/// The seed's `http POST …/calls customerId=1 destination=junja cost=500`
/// (httpie sends the numbers as strings).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewCall {
    #[serde(deserialize_with = "integer")]
    customer_id: i64,
    destination: String,
    #[serde(deserialize_with = "integer")]
    cost: i64,
}

impl NewCall {
    fn check(&self) -> Result<(), String> {
        int("customerId", self.customer_id, limits::ID)?;
        int("cost", self.cost, limits::COST)?;
        text("destination", &self.destination, limits::DESTINATION, true)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    customer_id: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    payment: Arc<Upstream>,
    /// The `sync-driver` variant: a call needs driver to answer first —
    /// the coupling the seed's NFR 2 forbids, for experiments to catch.
    driver: Option<Arc<Upstream>>,
    /// The `random-key` variant: events keyed at random instead of by the
    /// call id — a call's events scatter over partitions, out of order.
    random_key: bool,
    /// The `ignore-updates` variant: UpdatedStatus is consumed and dropped,
    /// so a call never follows its driver.
    ignore_updates: bool,
}

/// Its own broken variants (system.yaml says what each lacks); `no-scale-out`
/// differs in how it is deployed, not here.
const VARIANTS: &[&str] = &["no-breaker", "random-key", "sync-driver", "ignore-updates", "no-scale-out"];

/// Runs the call service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let url = opts.upstream("payment").ok_or_else(|| anyhow::anyhow!("call needs --upstream payment=URL"))?.to_string();
    let variant = pick_variant("call", opts.variant.as_deref(), VARIANTS, &[KitVariant::ReadyAtOnce])?;
    // The `no-breaker` variant waits for payment as long as it takes — the
    // coupling a circuit breaker exists to cut, for experiments to catch.
    let payment = if variant.is("no-breaker") {
        Upstream::without_breaker("payment", &url, Duration::from_secs(30))
    } else {
        Upstream::new("payment", &url, Duration::from_millis(1000))
    };
    let driver = if variant.is("sync-driver") {
        let url = opts.upstream("driver").ok_or_else(|| anyhow::anyhow!("the sync-driver variant needs --upstream driver=URL"))?;
        Some(Arc::new(Upstream::new("driver", url, Duration::from_millis(1000))))
    } else {
        None
    };
    let mut kit = Kit::start(super::SYSTEM, "call", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App {
        store: kit.store.clone(),
        publisher: kit.publisher.clone(),
        payment: Arc::new(payment),
        driver,
        random_key: variant.is("random-key"),
        ignore_updates: variant.is("ignore-updates"),
    };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let payment = Arc::new(Upstream::new("payment", "http://127.0.0.1:9", Duration::from_millis(10)));
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), payment, driver: None, random_key: false, ignore_updates: false };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App) -> Router {
    Router::new().route("/calls", get(list).post(take)).route("/calls/{id}", get(show)).with_state(app)
}

async fn take(State(app): State<App>, JsonBody(call): JsonBody<NewCall>) -> Result<impl IntoResponse, ApiError> {
    call.check().map_err(ApiError::BadRequest)?;
    if let Some(driver) = &app.driver {
        driver
            // A cheap call: the coupling is the fault, not what driver answers.
            .get_json::<serde_json::Value>("/drivers?customerId=1")
            .await
            .map_err(|err| ApiError::Unavailable(format!("driver must answer first (sync-driver variant): {err}")))?;
    }
    let id = app.allocate_id().await?;
    let fare = RegisterFare { call_id: id, cost: call.cost, destination: call.destination.clone() };
    // Never hold the store's write lock across the remote call.
    match app.payment.post_json::<_, Payment>("/payments", &fare).await {
        Ok(_) => {}
        Err(CallError::Rejected(_, status, reason)) => return Err(ApiError::Conflict(format!("payment refused the fare of call {id} ({status}): {reason}"))),
        Err(err) => return Err(ApiError::Unavailable(format!("payment cannot register the fare, so the call is not taken: {err}"))),
    }
    let tx = app.store.begin().await?;
    tx.execute(
        "INSERT INTO calls (id, customer_id, destination, cost, status, created_at) VALUES (?1, ?2, ?3, ?4, 'Called', ?5)",
        libsql::params![id, call.customer_id, call.destination.as_str(), call.cost, now_rfc3339()],
    )
    .await?;
    let called = CalledTaxi { call_id: id, customer_id: call.customer_id, destination: call.destination, cost: call.cost, status: Status::Called };
    app.publisher.record(&tx, &app.key(id), &Event::new("CalledTaxi", called)).await?;
    let created = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("call {id} vanished"))?;
    tx.commit().await?;
    app.publisher.wake();
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/calls/{id}"))], axum::Json(created)))
}

impl App {
    /// The Kafka key of call `id`'s events: the flow's correlation key.
    fn key(&self, id: i64) -> String {
        if self.random_key { uuid::Uuid::new_v4().to_string() } else { id.to_string() }
    }

    /// A fresh call id, committed at once (every replica shares the store):
    /// a call payment refuses leaves a gap, never a row.
    async fn allocate_id(&self) -> anyhow::Result<i64> {
        let tx = self.store.begin().await?;
        tx.execute("INSERT INTO call_ids (created_at) VALUES (?1)", libsql::params![now_rfc3339()]).await?;
        let id = tx.last_insert_rowid();
        tx.commit().await?;
        Ok(id)
    }

    async fn update_status(&self, tx: &Tx, event: &Incoming, update: UpdatedStatus) -> anyhow::Result<HandleOutcome> {
        let call_id = update.call_id.unwrap_or_default();
        let Some(call) = find(tx, call_id).await? else {
            return Ok(HandleOutcome::Skipped(Poison::UnknownEntity(format!("{} {}: no call {call_id}", event.event_type, event.id))));
        };
        let current = status_of(&call.status)?;
        if self.ignore_updates || current == update.status || !current.may_become(update.status) {
            return Ok(HandleOutcome::Ignored);
        }
        tx.execute("UPDATE calls SET status = ?1 WHERE id = ?2", libsql::params![update.status.name(), call_id]).await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "UpdatedStatus" => match event.data::<UpdatedStatus>() {
                Ok(update) => self.update_status(tx, event, update).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Call>>, ApiError> {
    let customer = customer_filter(filter.customer_id.as_deref())?;
    let conn = app.store.read().await?;
    Ok(axum::Json(CALLS.list(&conn, customer.map(|c| ("customer_id", c.into()))).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Call>, ApiError> {
    let id = parse_id(&id, "call")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("call {id} not found")))
}

const CALLS: Table = Table {
    select: r#"SELECT id, customer_id AS "customerId", destination, cost, status FROM calls"#,
    id: "id",
    order_by: "id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Call>> {
    CALLS.find(conn, id).await
}
