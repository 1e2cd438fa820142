//! mypage (CQRS read model): one row per order, built only from events —
//! it never calls the services whose state it shows. Started late, it
//! builds its whole view from the retained events (the course's "adding a
//! service without touching the others").
//!
//! Each row counts the events applied to it (`eventsApplied`), the evidence
//! that no event was applied twice.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use libsql::Transaction;
use serde::{Deserialize, Serialize};

use super::events::{DeliveryChanged, DeliveryStarted, OrderCancelled, OrderPlaced};
use super::product::ignore_malformed;
use super::{opt_i64, opt_str};
use crate::systems::kit::{ApiError, HandleOutcome, Handler, Incoming, KafkaSettings, Kit, ServeOptions, Store, all, first, now_rfc3339, parse_id};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mypages (
    order_id INTEGER PRIMARY KEY,
    customer_id TEXT,
    product_id INTEGER,
    product_name TEXT,
    quantity INTEGER,
    price INTEGER,
    order_status TEXT,
    delivery_status TEXT NOT NULL DEFAULT 'preparing',
    events_applied INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mypages_customer ON mypages(customer_id);
";

/// One row of the read model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MyPage {
    /// The order.
    pub order_id: i64,
    /// Who ordered (unknown until OrderPlaced arrives).
    pub customer_id: Option<String>,
    /// Product.
    pub product_id: Option<i64>,
    /// Product name.
    pub product_name: Option<String>,
    /// How many.
    pub quantity: Option<i64>,
    /// Unit price.
    pub price: Option<i64>,
    /// `OrderPlaced` or `OrderCancelled`.
    pub order_status: Option<String>,
    /// `preparing`, `DeliveryStarted`, `DeliveryCompleted` or `DeliveryCancelled`.
    pub delivery_status: String,
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

/// Runs the mypage service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let mut kit = Kit::start(super::SYSTEM, "mypage", opts, kafka, SCHEMA).await?;
    let app = App { store: kit.store.clone() };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry the consumer contract tests feed pact
/// messages through (`tests/contract_consumers.rs`).
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    crate::systems::kit::apply_payload(&store, &App { store: store.clone() }, payload).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/mypages", get(list))
        .route("/mypages/{orderId}", get(show))
        .with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<MyPage>>, ApiError> {
    let conn = app.store.connect().await?;
    let rows = match &filter.customer_id {
        Some(customer) => conn.query(&format!("{SELECT} WHERE customer_id = ?1 ORDER BY order_id"), libsql::params![customer.as_str()]).await?,
        None => conn.query(&format!("{SELECT} ORDER BY order_id"), ()).await?,
    };
    Ok(axum::Json(all(rows, page_from).await?))
}

async fn show(State(app): State<App>, Path(order_id): Path<String>) -> Result<axum::Json<MyPage>, ApiError> {
    let order_id = parse_id(&order_id, "order")?;
    let conn = app.store.connect().await?;
    let rows = conn.query(&format!("{SELECT} WHERE order_id = ?1"), libsql::params![order_id]).await?;
    first(rows, page_from).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no mypage row for order {order_id} (yet)")))
}

impl App {
    async fn placed(&self, tx: &Transaction, order: OrderPlaced) -> anyhow::Result<HandleOutcome> {
        // Events of one order share a partition, so OrderPlaced comes first;
        // the upsert still keeps a later status if it ever does not.
        tx.execute(
            "INSERT INTO mypages (order_id, customer_id, product_id, product_name, quantity, price, order_status, events_applied, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'OrderPlaced', 1, ?7)
             ON CONFLICT(order_id) DO UPDATE SET customer_id = excluded.customer_id, product_id = excluded.product_id,
                 product_name = excluded.product_name, quantity = excluded.quantity, price = excluded.price,
                 order_status = COALESCE(mypages.order_status, 'OrderPlaced'),
                 events_applied = mypages.events_applied + 1, updated_at = excluded.updated_at",
            libsql::params![
                order.order_id,
                order.customer_id.as_str(),
                order.product_id,
                order.product_name.as_str(),
                order.quantity,
                order.price,
                now_rfc3339()
            ],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }

    async fn set(&self, tx: &Transaction, order_id: i64, column: &str, value: &str, unless: &[&str]) -> anyhow::Result<HandleOutcome> {
        // `unless`: states a late-arriving event must not overwrite.
        let keep = unless.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let keep = if keep.is_empty() { "''".to_string() } else { keep };
        tx.execute(
            &format!(
                "INSERT INTO mypages (order_id, {column}, events_applied, updated_at) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT(order_id) DO UPDATE SET
                     {column} = CASE WHEN mypages.{column} IN ({keep}) THEN mypages.{column} ELSE excluded.{column} END,
                     events_applied = mypages.events_applied + 1, updated_at = excluded.updated_at"
            ),
            libsql::params![order_id, value, now_rfc3339()],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    async fn handle(&self, tx: &Transaction, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        const FINAL: &[&str] = &["DeliveryCompleted", "DeliveryCancelled"];
        match event.event_type.as_str() {
            "OrderPlaced" => match event.data::<OrderPlaced>() {
                Ok(order) => self.placed(tx, order).await,
                Err(err) => ignore_malformed(err),
            },
            "OrderCancelled" => match event.data::<OrderCancelled>() {
                Ok(order) => self.set(tx, order.order_id, "order_status", "OrderCancelled", &[]).await,
                Err(err) => ignore_malformed(err),
            },
            "DeliveryStarted" => match event.data::<DeliveryStarted>() {
                Ok(delivery) => self.set(tx, delivery.order_id, "delivery_status", "DeliveryStarted", FINAL).await,
                Err(err) => ignore_malformed(err),
            },
            "DeliveryCompleted" | "DeliveryCancelled" => match event.data::<DeliveryChanged>() {
                Ok(delivery) => self.set(tx, delivery.order_id, "delivery_status", &event.event_type, &[]).await,
                Err(err) => ignore_malformed(err),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const SELECT: &str =
    "SELECT order_id, customer_id, product_id, product_name, quantity, price, order_status, delivery_status, events_applied FROM mypages";

fn page_from(row: &libsql::Row) -> anyhow::Result<MyPage> {
    Ok(MyPage {
        order_id: row.get(0)?,
        customer_id: opt_str(row, 1),
        product_id: opt_i64(row, 2),
        product_name: opt_str(row, 3),
        quantity: opt_i64(row, 4),
        price: opt_i64(row, 5),
        order_status: opt_str(row, 6),
        delivery_status: row.get(7)?,
        events_applied: row.get(8)?,
    })
}
