//! delivery (supporting): on `OrderPlaced` starts a delivery and records
//! `DeliveryStarted`; on `OrderCancelled` records `DeliveryCancelled`;
//! `PATCH /deliveries/{id}` completes one (`DeliveryCompleted`). It is only
//! reached through events, so the order flow does not need it to be up.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{DeliveryChanged, DeliveryStarted, EVENT_TYPES, OrderCancelled, OrderPlaced};
use crate::systems::kit::{
    ApiError, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Poison, Publisher, ServeOptions, Store, Table,
    Tx, now_rfc3339, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL UNIQUE,
    product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    customer_addr TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Id.
    pub id: i64,
    /// The order delivered.
    pub order_id: i64,
    /// Product.
    pub product_id: i64,
    /// How many.
    pub quantity: i64,
    /// Recipient.
    pub customer_id: String,
    /// Recipient's name.
    pub customer_name: String,
    /// Address.
    pub customer_addr: String,
    /// `DeliveryStarted`, `DeliveryCompleted` or `DeliveryCancelled`.
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeliveryPatch {
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    order_id: Option<i64>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    /// The `publish-only` variant: answers OrderPlaced with DeliveryStarted
    /// but keeps no delivery — no state change in delivery, for the saga
    /// checkpoint to catch.
    publish_only: bool,
}

/// Runs the delivery service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let variant = pick_variant("delivery", opts.variant.as_deref(), &["publish-only"], &[KitVariant::LiveAlways, KitVariant::AnonymousGroup])?;
    let mut kit = Kit::start(super::SYSTEM, "delivery", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        // anonymous-group: orders placed while it was away are never delivered.
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), publish_only: variant.is("publish-only") };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry the consumer contract tests feed pact
/// messages through (`tests/contract_consumers.rs`).
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), publish_only: false };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{id}", get(show).patch(complete))
        .with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Delivery>>, ApiError> {
    let conn = app.store.read().await?;
    Ok(axum::Json(DELIVERIES.list(&conn, filter.order_id.map(|order| ("order_id", order.into()))).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Delivery>, ApiError> {
    let id = parse_id(&id, "delivery")?;
    let conn = app.store.read().await?;
    find(&conn, "id", id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("delivery {id} not found")))
}

async fn complete(State(app): State<App>, Path(id): Path<String>, JsonBody(patch): JsonBody<DeliveryPatch>) -> Result<axum::Json<Delivery>, ApiError> {
    let id = parse_id(&id, "delivery")?;
    if patch.status != "DeliveryCompleted" {
        let shown: String = patch.status.chars().take(40).collect();
        return Err(ApiError::BadRequest(format!("status can only become DeliveryCompleted, got `{shown}`")));
    }
    let tx = app.store.begin().await?;
    let Some(mut delivery) = find(&tx, "id", id).await? else {
        return Err(ApiError::NotFound(format!("delivery {id} not found")));
    };
    if delivery.status != "DeliveryStarted" {
        return Err(ApiError::Conflict(format!("delivery {id} is {}, not DeliveryStarted", delivery.status)));
    }
    app.set_status(&tx, &delivery, "DeliveryCompleted").await?;
    tx.commit().await?;
    app.publisher.wake();
    delivery.status = "DeliveryCompleted".into();
    Ok(axum::Json(delivery))
}

impl App {
    async fn set_status(&self, tx: &Tx, delivery: &Delivery, status: &str) -> anyhow::Result<()> {
        tx.execute("UPDATE deliveries SET status = ?1, updated_at = ?2 WHERE id = ?3", libsql::params![status, now_rfc3339(), delivery.id])
            .await?;
        let event = DeliveryChanged { delivery_id: delivery.id, order_id: delivery.order_id, status: status.to_string() };
        self.publisher.record(tx, &delivery.order_id.to_string(), &Event::new(status, event)).await
    }

    async fn start(&self, tx: &Tx, order: OrderPlaced) -> anyhow::Result<HandleOutcome> {
        if self.publish_only {
            // No delivery row to number it: the order's id stands in.
            let id = order.order_id;
            return self.started(tx, id, order).await;
        }
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO deliveries (order_id, product_id, quantity, customer_id, customer_name, customer_addr, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'DeliveryStarted', ?7)",
                libsql::params![
                    order.order_id,
                    order.product_id,
                    order.quantity,
                    order.customer_id.as_str(),
                    order.customer_name.as_str(),
                    order.customer_addr.as_str(),
                    now_rfc3339()
                ],
            )
            .await?;
        if inserted == 0 {
            return Ok(HandleOutcome::Ignored);
        }
        self.started(tx, tx.last_insert_rowid(), order).await
    }

    /// Records DeliveryStarted for `order` (delivery `delivery_id`).
    async fn started(&self, tx: &Tx, delivery_id: i64, order: OrderPlaced) -> anyhow::Result<HandleOutcome> {
        let started = DeliveryStarted {
            delivery_id,
            order_id: order.order_id,
            product_id: order.product_id,
            quantity: order.quantity,
            customer_id: order.customer_id,
            customer_name: order.customer_name,
            customer_addr: order.customer_addr,
            status: "DeliveryStarted".into(),
        };
        self.publisher.record(tx, &order.order_id.to_string(), &Event::new("DeliveryStarted", started)).await?;
        Ok(HandleOutcome::Applied)
    }

    async fn cancel(&self, tx: &Tx, event: &Incoming, order: OrderCancelled) -> anyhow::Result<HandleOutcome> {
        match find(tx, "order_id", order.order_id).await? {
            Some(delivery) if delivery.status != "DeliveryCancelled" => {
                self.set_status(tx, &delivery, "DeliveryCancelled").await?;
                Ok(HandleOutcome::Applied)
            }
            Some(_) => Ok(HandleOutcome::Ignored),
            None => Ok(HandleOutcome::Skipped(Poison::UnknownEntity(format!("{} {}: no delivery of order {}", event.event_type, event.id, order.order_id)))),
        }
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "OrderPlaced" => match event.data::<OrderPlaced>() {
                Ok(order) => self.start(tx, order).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "OrderCancelled" => match event.data::<OrderCancelled>() {
                Ok(order) => self.cancel(tx, event, order).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const DELIVERIES: Table = Table {
    select: r#"SELECT id, order_id AS "orderId", product_id AS "productId", quantity, customer_id AS "customerId",
               customer_name AS "customerName", customer_addr AS "customerAddr", status FROM deliveries"#,
    id: "id",
    order_by: "id",
};

async fn find(conn: &Conn, column: &'static str, value: i64) -> anyhow::Result<Option<Delivery>> {
    DELIVERIES.find_by(conn, column, value).await
}
