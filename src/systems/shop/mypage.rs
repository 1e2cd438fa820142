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
use serde::{Deserialize, Serialize};

use super::events::{DeliveryChanged, DeliveryStarted, EVENT_TYPES, OrderCancelled, OrderPlaced, limits};
use crate::systems::kit::bounds::text;
use crate::systems::kit::{
    ApiError, Caller, HandleOutcome, Handler, Incoming, KafkaSettings, Kit, KitVariant, Picked, ServeOptions, Store, Table, Tx, now_rfc3339, parse_id, pick_variant,
};

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
    // The kit's variants only (from-latest: any consumer can start at the topic's end).
    let variant = pick_variant("mypage", opts.variant.as_deref(), &[], &[KitVariant::AnonymousGroup, KitVariant::ReadsEveryPartition, KitVariant::FromLatest])?;
    let mut kit = Kit::start(super::SYSTEM, "mypage", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
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

/// Through the gateway a customer sees only their own rows: no filter
/// means theirs, another customer's filter is 403.
async fn list(State(app): State<App>, caller: Caller, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<MyPage>>, ApiError> {
    if let Some(customer) = &filter.customer_id {
        text("customerId", customer, limits::CUSTOMER_ID, false).map_err(ApiError::BadRequest)?;
    }
    let customer = caller.customer_filter(filter.customer_id)?;
    let conn = app.store.read().await?;
    Ok(axum::Json(MYPAGES.list(&conn, customer.map(|c| ("customer_id", c.into()))).await?))
}

async fn show(State(app): State<App>, caller: Caller, Path(order_id): Path<String>) -> Result<axum::Json<MyPage>, ApiError> {
    let order_id = parse_id(&order_id, "order")?;
    let conn = app.store.read().await?;
    let not_yet = || ApiError::NotFound(format!("no mypage row for order {order_id} (yet)"));
    let page: MyPage = MYPAGES.find(&conn, order_id).await?.ok_or_else(not_yet)?;
    match (&page.customer_id, caller.only_customer()) {
        (Some(owner), Some(_)) => caller.may_act_for(owner, &format!("the mypage row of order {order_id}"))?,
        // Whose it is arrives with OrderPlaced: until then a customer sees nothing.
        (None, Some(_)) => return Err(not_yet()),
        (_, None) => {}
    }
    Ok(axum::Json(page))
}

impl App {
    async fn placed(&self, tx: &Tx, order: OrderPlaced) -> anyhow::Result<HandleOutcome> {
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

    async fn set(&self, tx: &Tx, order_id: i64, column: &str, value: &str, unless: &[&str]) -> anyhow::Result<HandleOutcome> {
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
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        const FINAL: &[&str] = &["DeliveryCompleted", "DeliveryCancelled"];
        match event.event_type.as_str() {
            "OrderPlaced" => match event.data::<OrderPlaced>() {
                Ok(order) => self.placed(tx, order).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "OrderCancelled" => match event.data::<OrderCancelled>() {
                Ok(order) => self.set(tx, order.order_id, "order_status", "OrderCancelled", &[]).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "DeliveryStarted" => match event.data::<DeliveryStarted>() {
                Ok(delivery) => self.set(tx, delivery.order_id, "delivery_status", "DeliveryStarted", FINAL).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "DeliveryCompleted" | "DeliveryCancelled" => match event.data::<DeliveryChanged>() {
                Ok(delivery) => self.set(tx, delivery.order_id, "delivery_status", &event.event_type, &[]).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const MYPAGES: Table = Table {
    select: r#"SELECT order_id AS "orderId", customer_id AS "customerId", product_id AS "productId", product_name AS "productName",
               quantity, price, order_status AS "orderStatus", delivery_status AS "deliveryStatus", events_applied AS "eventsApplied"
               FROM mypages"#,
    id: "order_id",
    order_by: "order_id",
};
