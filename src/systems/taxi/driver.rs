//! driver (supporting): on `CalledTaxi` receives the call
//! (`ReceiveCallList`); `PATCH /drivers/{callId}` moves it to `Accepted`
//! and then `Completed`, recording `UpdatedStatus`. `Completed` settles the
//! fare with payment first (`GET /payments/settleCost?callId=`); when that
//! fails the status stays. Entries are keyed by callId, so `/drivers/2` is
//! call 2's, as in the seed's walkthrough.
//!
//! The `drop-call-id` variant publishes `UpdatedStatus` without `callId`
//! (breaks the pacts of call and calllist); the kit's `anonymous-group`
//! and `live-always` break replay and self-healing.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{CalledTaxi, EVENT_TYPES, Status, UpdatedStatus};
use super::{customer_filter, status_of};
use crate::systems::kit::{
    ApiError, CallError, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Publisher, ServeOptions, Store, Table,
    Tx, Upstream, now_rfc3339, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS drivers (
    call_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    destination TEXT NOT NULL,
    cost INTEGER NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drivers_customer ON drivers(customer_id);
";

/// A driver's entry for a call, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    /// Id (equal to the call's).
    pub id: i64,
    /// The call.
    pub call_id: i64,
    /// The passenger.
    pub customer_id: i64,
    /// Where to.
    pub destination: String,
    /// The fare (the settled one once `Completed`).
    pub cost: i64,
    /// `Called`, `Accepted` or `Completed`.
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusPatch {
    status: String,
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
    drop_call_id: bool,
}

/// Runs the driver service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let url = opts.upstream("payment").ok_or_else(|| anyhow::anyhow!("driver needs --upstream payment=URL"))?.to_string();
    let variant = pick_variant("driver", opts.variant.as_deref(), &["drop-call-id"], &[KitVariant::AnonymousGroup, KitVariant::LiveAlways])?;
    let drop_call_id = variant.is("drop-call-id");
    let mut kit = Kit::start(super::SYSTEM, "driver", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let payment = Arc::new(Upstream::new("payment", &url, Duration::from_millis(1000)));
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), payment, drop_call_id };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let payment = Arc::new(Upstream::new("payment", "http://127.0.0.1:9", Duration::from_millis(10)));
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), payment, drop_call_id: false };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App) -> Router {
    Router::new().route("/drivers", get(list)).route("/drivers/{callId}", get(show).patch(change)).with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Driver>>, ApiError> {
    let customer = customer_filter(filter.customer_id.as_deref())?;
    let conn = app.store.read().await?;
    Ok(axum::Json(DRIVERS.list(&conn, customer.map(|c| ("customer_id", c.into()))).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Driver>, ApiError> {
    let id = parse_id(&id, "call")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("driver has no call {id} (yet)")))
}

/// `Called → Accepted → Completed`; the same status again changes nothing
/// and records nothing; anything else is 409.
async fn change(State(app): State<App>, Path(id): Path<String>, JsonBody(patch): JsonBody<StatusPatch>) -> Result<axum::Json<Driver>, ApiError> {
    let id = parse_id(&id, "call")?;
    let next = Status::parse(&patch.status).map_err(ApiError::BadRequest)?;
    let before = app.checked(&*app.store.read().await?, id, next).await?;
    if status_of(&before.status)? == next {
        return Ok(axum::Json(before));
    }
    // Settle before the status changes, outside the store's write lock.
    let cost = match next {
        Status::Completed => app.settle(id).await?,
        _ => before.cost,
    };
    let tx = app.store.begin().await?;
    let mut driver = app.checked(&tx, id, next).await?;
    if status_of(&driver.status)? == next {
        return Ok(axum::Json(driver));
    }
    tx.execute("UPDATE drivers SET status = ?1, cost = ?2, updated_at = ?3 WHERE call_id = ?4", libsql::params![next.name(), cost, now_rfc3339(), id]).await?;
    let update = UpdatedStatus { driver_id: id, call_id: (!app.drop_call_id).then_some(id), status: next, cost };
    app.publisher.record(&tx, &id.to_string(), &Event::new("UpdatedStatus", update)).await?;
    tx.commit().await?;
    app.publisher.wake();
    (driver.status, driver.cost) = (next.name().to_string(), cost);
    Ok(axum::Json(driver))
}

impl App {
    /// Call `id`'s entry, if it may become `next`.
    async fn checked(&self, conn: &Conn, id: i64, next: Status) -> Result<Driver, ApiError> {
        let driver = find(conn, id).await?.ok_or_else(|| ApiError::NotFound(format!("driver has no call {id} (yet)")))?;
        let current = status_of(&driver.status)?;
        if !current.may_become(next) {
            return Err(ApiError::Conflict(format!("call {id} is {}: it cannot become {}", current.name(), next.name())));
        }
        Ok(driver)
    }

    /// The fare payment settles for call `id`.
    async fn settle(&self, id: i64) -> Result<i64, ApiError> {
        match self.payment.get_json::<i64>(&format!("/payments/settleCost?callId={id}")).await {
            Ok(cost) => Ok(cost),
            Err(CallError::NotFound) => Err(ApiError::Conflict(format!("payment has no fare for call {id}: it cannot be settled"))),
            Err(err) => Err(ApiError::Unavailable(format!("payment cannot settle the fare, so call {id} stays Accepted: {err}"))),
        }
    }

    async fn receive(&self, tx: &Tx, called: CalledTaxi) -> anyhow::Result<HandleOutcome> {
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO drivers (call_id, customer_id, destination, cost, status, updated_at) VALUES (?1, ?2, ?3, ?4, 'Called', ?5)",
                libsql::params![called.call_id, called.customer_id, called.destination.as_str(), called.cost, now_rfc3339()],
            )
            .await?;
        Ok(if inserted == 0 { HandleOutcome::Ignored } else { HandleOutcome::Applied })
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "CalledTaxi" => match event.data::<CalledTaxi>() {
                Ok(called) => self.receive(tx, called).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const DRIVERS: Table = Table {
    select: r#"SELECT call_id AS id, call_id AS "callId", customer_id AS "customerId", destination, cost, status FROM drivers"#,
    id: "call_id",
    order_by: "call_id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Driver>> {
    DRIVERS.find(conn, id).await
}
