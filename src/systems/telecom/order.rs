//! order (core): a customer subscribes to a phone line (핸드폰 개통/가입).
//! The subscription and its `OrderPlaced` commit in one transaction; order
//! calls nobody, so subscriptions keep being taken while billing is down.
//! `GET /orders` is what the seed's siege hits; `GET /orders/health` is the
//! repository's health method its probes use.
//!
//! Variants: `random-key` keys its events at random instead of by orderId;
//! `ready-at-once` reports ready while it still warms up; `live-always`
//! reports live whatever is wrong; `no-scale-out` is deployed with its
//! autoscaler capped at one replica (system.yaml); `sync-bill` asks bill
//! before it takes a subscription (no failure isolation, checkpoint 6).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::events::{OrderPlaced, check_phone, limits};
use super::text_filter;
use crate::systems::kit::bounds::{int, optional_integer, text};
use crate::systems::kit::{
    ApiError, Conn, Event, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Publisher, ServeOptions, Store, Table, Upstream, now_rfc3339, parse_id,
    pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    plan TEXT NOT NULL,
    monthly_fee INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user ON orders(user_name);
";

/// The plan of an order that names none.
const DEFAULT_PLAN: &str = "basic";
/// Its monthly fee (won).
const DEFAULT_MONTHLY_FEE: i64 = 50_000;

/// A subscription as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Id (the subscription's correlation key).
    pub id: i64,
    /// The same id, as the repository's `orderId`.
    pub order_id: i64,
    /// The subscriber.
    pub user_name: String,
    /// The line.
    pub phone_number: String,
    /// The plan.
    pub plan: String,
    /// Its monthly fee (won).
    pub monthly_fee: i64,
    /// Always `Active` (no command ends a subscription).
    pub status: String,
}

/// The repository's `PlaceOrderCommand {phoneNumber, userName}`, plus a
/// plan and its monthly fee (httpie sends numbers as strings).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewOrder {
    user_name: String,
    phone_number: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    monthly_fee: Option<i64>,
}

impl NewOrder {
    fn check(&self) -> Result<(), String> {
        text("userName", &self.user_name, limits::USER_NAME, true)?;
        check_phone(&self.phone_number)?;
        if let Some(plan) = &self.plan {
            text("plan", plan, limits::PLAN, true)?;
        }
        int("monthlyFee", self.monthly_fee.unwrap_or(DEFAULT_MONTHLY_FEE), limits::AMOUNT)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    user_name: Option<String>,
    phone_number: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    random_key: bool,
    /// The `sync-bill` variant: bill must answer before a subscription is taken.
    bill: Option<Arc<Upstream>>,
}

/// Runs the order service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    // `no-scale-out` runs as is: the platform caps its autoscaler (system.yaml).
    let variant = pick_variant("order", opts.variant.as_deref(), &["random-key", "no-scale-out", "sync-bill"], &[KitVariant::ReadyAtOnce, KitVariant::LiveAlways])?;
    let bill = if variant.is("sync-bill") {
        let url = opts.upstream("bill").ok_or_else(|| anyhow::anyhow!("the sync-bill variant needs --upstream bill=URL"))?;
        Some(Arc::new(Upstream::new("bill", url, Duration::from_millis(1000))))
    } else {
        None
    };
    let mut kit = Kit::start(super::SYSTEM, "order", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), random_key: variant.is("random-key"), bill };
    kit.serve(routes(app)).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/orders", get(list).post(place))
        .route("/orders/placeorder", post(place))
        .route("/orders/health", get(|| async { "get Hello" }))
        .route("/orders/{id}", get(show))
        .with_state(app)
}

async fn place(State(app): State<App>, JsonBody(order): JsonBody<NewOrder>) -> Result<impl IntoResponse, ApiError> {
    order.check().map_err(ApiError::BadRequest)?;
    if let Some(bill) = &app.bill {
        // A cheap call: the coupling is the fault, not what bill answers.
        bill.answers("/bills?orderId=0").await.map_err(|err| ApiError::Unavailable(format!("bill must answer first (sync-bill variant): {err}")))?;
    }
    let plan = order.plan.unwrap_or_else(|| DEFAULT_PLAN.to_string());
    let monthly_fee = order.monthly_fee.unwrap_or(DEFAULT_MONTHLY_FEE);
    let tx = app.store.begin().await?;
    tx.execute(
        "INSERT INTO orders (user_name, phone_number, plan, monthly_fee, status, created_at) VALUES (?1, ?2, ?3, ?4, 'Active', ?5)",
        libsql::params![order.user_name.as_str(), order.phone_number.as_str(), plan.as_str(), monthly_fee, now_rfc3339()],
    )
    .await?;
    let id = tx.last_insert_rowid();
    let placed = OrderPlaced { order_id: id, user_name: order.user_name, phone_number: order.phone_number, plan, monthly_fee };
    let key = if app.random_key { uuid::Uuid::new_v4().to_string() } else { id.to_string() };
    app.publisher.record(&tx, &key, &Event::new("OrderPlaced", placed)).await?;
    let created = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("order {id} vanished"))?;
    tx.commit().await?;
    app.publisher.wake();
    // At DEBUG only: what the seed's ConfigMap (ORDER_LOG_LEVEL) shows or hides.
    tracing::debug!(order = id, "subscription {id} taken, OrderPlaced recorded");
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/orders/{id}"))], axum::Json(created)))
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Order>>, ApiError> {
    let user = text_filter(filter.user_name, "userName", limits::USER_NAME)?;
    let phone = text_filter(filter.phone_number, "phoneNumber", limits::PHONE_NUMBER)?;
    let conn = app.store.read().await?;
    let sql = format!("{} WHERE (user_name = ?1 OR ?1 IS NULL) AND (phone_number = ?2 OR ?2 IS NULL) ORDER BY id", ORDERS.select);
    Ok(axum::Json(conn.all(&sql, libsql::params![user, phone]).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Order>, ApiError> {
    let id = parse_id(&id, "order")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("order {id} not found")))
}

const ORDERS: Table = Table {
    select: r#"SELECT id, id AS "orderId", user_name AS "userName", phone_number AS "phoneNumber", plan, monthly_fee AS "monthlyFee", status FROM orders"#,
    id: "id",
    order_by: "id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Order>> {
    ORDERS.find(conn, id).await
}
