//! calllist (CQRS read model): the seed's board where the company sees each
//! call, its status and revenue — one row per call, built only from
//! `CalledTaxi` and `UpdatedStatus`; it never calls the services whose
//! state it shows. Each row counts the events applied to it
//! (`eventsApplied`), the evidence that no event was applied twice.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::customer_filter;
use super::events::{CalledTaxi, EVENT_TYPES, Status, UpdatedStatus};
use crate::systems::kit::{ApiError, HandleOutcome, Handler, Incoming, KafkaSettings, Kit, KitVariant, Picked, ServeOptions, Store, Table, Tx, now_rfc3339, parse_id, pick_variant};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS call_lists (
    call_id INTEGER PRIMARY KEY,
    customer_id INTEGER,
    destination TEXT,
    cost INTEGER,
    status TEXT NOT NULL,
    settled INTEGER,
    events_applied INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS call_lists_customer ON call_lists(customer_id);
";

/// One row of the board.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallList {
    /// Id (equal to the call's).
    pub id: i64,
    /// The call.
    pub call_id: i64,
    /// The passenger (unknown until CalledTaxi arrives).
    pub customer_id: Option<i64>,
    /// Where to.
    pub destination: Option<String>,
    /// The fare.
    pub cost: Option<i64>,
    /// `Called`, `Accepted` or `Completed`.
    pub status: String,
    /// The settled fare, once `Completed`.
    pub settled: Option<i64>,
    /// Events applied to this row.
    pub events_applied: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    customer_id: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
}

/// Runs the calllist service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    // The kit's variants only; `from-latest` is what a late calllist
    // (another instance, `calllist-late`) lacks without its retained events.
    let variant = pick_variant("calllist", opts.variant.as_deref(), &[], &[KitVariant::AnonymousGroup, KitVariant::ReadsEveryPartition, KitVariant::FromLatest])?;
    let mut kit = Kit::start(super::SYSTEM, "calllist", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone() };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    crate::systems::kit::apply_payload(&store, &App { store: store.clone() }, payload).await
}

fn routes(app: App) -> Router {
    Router::new().route("/callLists", get(list)).route("/callLists/{callId}", get(show)).with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<CallList>>, ApiError> {
    let customer = customer_filter(filter.customer_id.as_deref())?;
    let conn = app.store.read().await?;
    Ok(axum::Json(CALL_LISTS.list(&conn, customer.map(|c| ("customer_id", c.into()))).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<CallList>, ApiError> {
    let id = parse_id(&id, "call")?;
    let conn = app.store.read().await?;
    CALL_LISTS.find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no callList row for call {id} (yet)")))
}

impl App {
    async fn called(&self, tx: &Tx, called: CalledTaxi) -> anyhow::Result<HandleOutcome> {
        // A call's events share a partition, so CalledTaxi comes first; the
        // upsert still keeps a later status if it ever does not.
        tx.execute(
            "INSERT INTO call_lists (call_id, customer_id, destination, cost, status, events_applied, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'Called', 1, ?5)
             ON CONFLICT(call_id) DO UPDATE SET customer_id = excluded.customer_id, destination = excluded.destination,
                 cost = COALESCE(call_lists.cost, excluded.cost),
                 events_applied = call_lists.events_applied + 1, updated_at = excluded.updated_at",
            libsql::params![called.call_id, called.customer_id, called.destination.as_str(), called.cost, now_rfc3339()],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }

    async fn updated(&self, tx: &Tx, update: UpdatedStatus) -> anyhow::Result<HandleOutcome> {
        let settled = (update.status == Status::Completed).then_some(update.cost);
        // `Completed` is final: a late `Accepted` must not undo it.
        tx.execute(
            "INSERT INTO call_lists (call_id, status, settled, events_applied, updated_at) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT(call_id) DO UPDATE SET
                 status = CASE WHEN call_lists.status = 'Completed' THEN call_lists.status ELSE excluded.status END,
                 settled = COALESCE(excluded.settled, call_lists.settled),
                 events_applied = call_lists.events_applied + 1, updated_at = excluded.updated_at",
            libsql::params![update.call_id.unwrap_or_default(), update.status.name(), settled, now_rfc3339()],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "CalledTaxi" => match event.data::<CalledTaxi>() {
                Ok(called) => self.called(tx, called).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "UpdatedStatus" => match event.data::<UpdatedStatus>() {
                Ok(update) => self.updated(tx, update).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const CALL_LISTS: Table = Table {
    select: r#"SELECT call_id AS id, call_id AS "callId", customer_id AS "customerId", destination, cost, status, settled,
               events_applied AS "eventsApplied" FROM call_lists"#,
    id: "call_id",
    order_by: "call_id",
};
