//! payment (core, the synchronous dependency: "no payment, no call"):
//! registers a call's fare (`POST /payments`, idempotent per callId) and
//! settles it (`GET /payments/settleCost?callId=`, the seed's repository
//! reads it with a GET). Records `RegisteredDestinationInfo`. Payments are
//! keyed by callId, so `/payments/2` is call 2's, as in the seed's walkthrough.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{RegisteredDestinationInfo, limits};
use crate::systems::kit::bounds::{int, integer, text};
use crate::systems::kit::{ApiError, Conn, Event, JsonBody, KafkaSettings, Kit, Publisher, ServeOptions, Store, Table, now_rfc3339, parse_id};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    call_id INTEGER PRIMARY KEY,
    cost INTEGER NOT NULL,
    destination TEXT NOT NULL,
    settled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL
);
";

/// A payment as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Id (equal to the call's).
    pub id: i64,
    /// The call whose fare it is.
    pub call_id: i64,
    /// The fare.
    pub cost: i64,
    /// Where to.
    pub destination: String,
    /// Whether the fare was settled.
    pub settled: bool,
}

/// What call sends: the seed's `savePayment{callId, cost, destination}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterFare {
    /// The call.
    #[serde(deserialize_with = "integer")]
    pub call_id: i64,
    /// The fare.
    #[serde(deserialize_with = "integer")]
    pub cost: i64,
    /// Where to.
    #[serde(default)]
    pub destination: String,
}

impl RegisterFare {
    fn check(&self) -> Result<(), String> {
        int("callId", self.call_id, limits::ID)?;
        int("cost", self.cost, limits::COST)?;
        text("destination", &self.destination, limits::DESTINATION, false)
    }
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
}

/// Runs the payment service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    crate::systems::kit::pick_variant("payment", opts.variant.as_deref(), &[], &[])?;
    let kit = Kit::start(super::SYSTEM, "payment", opts, kafka, SCHEMA).await?;
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone() };
    kit.serve(routes(app)).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/payments", get(list).post(register))
        .route("/payments/settleCost", get(settle))
        .route("/payments/{callId}", get(show))
        .with_state(app)
}

async fn register(State(app): State<App>, JsonBody(fare): JsonBody<RegisterFare>) -> Result<Response, ApiError> {
    fare.check().map_err(ApiError::BadRequest)?;
    let id = fare.call_id;
    let tx = app.store.begin().await?;
    let inserted = tx
        .execute(
            "INSERT OR IGNORE INTO payments (call_id, cost, destination, settled, created_at) VALUES (?1, ?2, ?3, FALSE, ?4)",
            libsql::params![id, fare.cost, fare.destination.as_str(), now_rfc3339()],
        )
        .await?;
    let existing: Payment = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("payment {id} vanished"))?;
    if inserted == 0 {
        // A retry of call's request: the same fare is the same payment.
        if existing.cost != fare.cost {
            return Err(ApiError::Conflict(format!("call {id} already has the fare {}, not {}", existing.cost, fare.cost)));
        }
        return Ok(axum::Json(existing).into_response());
    }
    let registered = RegisteredDestinationInfo { payment_id: id, call_id: id, cost: fare.cost, destination: fare.destination };
    app.publisher.record(&tx, &id.to_string(), &Event::new("RegisteredDestinationInfo", registered)).await?;
    tx.commit().await?;
    app.publisher.wake();
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/payments/{id}"))], axum::Json(existing)).into_response())
}

/// Settles call `callId`'s fare and answers it as a bare number, as the
/// seed's `Integer settleCost(callId)`; settling again answers the same.
async fn settle(State(app): State<App>, Query(query): Query<HashMap<String, String>>) -> Result<axum::Json<i64>, ApiError> {
    let raw = query.get("callId").ok_or_else(|| ApiError::BadRequest("the query parameter callId is missing".into()))?;
    let id = parse_id(raw, "call")?;
    let tx = app.store.begin().await?;
    let payment: Payment = find(&tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("no payment for call {id}")))?;
    if !payment.settled {
        tx.execute("UPDATE payments SET settled = TRUE WHERE call_id = ?1", libsql::params![id]).await?;
        tx.commit().await?;
    }
    Ok(axum::Json(payment.cost))
}

async fn list(State(app): State<App>) -> Result<axum::Json<Vec<Payment>>, ApiError> {
    let conn = app.store.read().await?;
    Ok(axum::Json(PAYMENTS.list(&conn, None).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Payment>, ApiError> {
    let id = parse_id(&id, "call")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no payment for call {id}")))
}

const PAYMENTS: Table = Table {
    select: r#"SELECT call_id AS id, call_id AS "callId", cost, destination, settled FROM payments"#,
    id: "call_id",
    order_by: "call_id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Payment>> {
    PAYMENTS.find(conn, id).await
}
