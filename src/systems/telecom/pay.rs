//! pay (core): looks a bill up and, if it has an amount and is unpaid
//! (미납), pays it (`BillPayed`); cancelling a payment (수납 취소) publishes
//! `PayCanceled`, which bill compensates by rolling the bill back to
//! unpaid. The lookup is synchronous — `GET bill/bills/{billId}`, 1 s
//! timeout and a circuit breaker — with a fallback: pay's own bills view
//! (`/retrieveBills`, built from `BillCreated`, `BillCompleted` and
//! `BillCanceled`), so payments go on while bill hangs or is down. A bill
//! holds at most one live payment (a unique index, across replicas).
//!
//! Variant: `no-breaker` waits for bill as long as 30 s before it falls back.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::bill::Bill;
use super::events::{BillEvent, BillState, EVENT_TYPES, PayEvent, WorkType, limits};
use super::{id_filter, text_filter};
use crate::systems::kit::bounds::{int, integer, optional_integer};
use crate::systems::kit::{
    ApiError, CallError, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Publisher, ServeOptions, Store, Table,
    Tx, Upstream, now_rfc3339, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pays (
    pay_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bill_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    use_ym TEXT NOT NULL,
    user_name TEXT NOT NULL,
    pay_amt INTEGER NOT NULL,
    work_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS pays_live ON pays(bill_id) WHERE work_type = 'PAY';
CREATE INDEX IF NOT EXISTS pays_order ON pays(order_id);
CREATE TABLE IF NOT EXISTS bill_views (
    bill_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL,
    use_ym TEXT NOT NULL,
    user_name TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    bill_amt INTEGER NOT NULL,
    bill_state TEXT NOT NULL,
    pay_id INTEGER,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bill_views_order ON bill_views(order_id);
";

/// A payment as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pay {
    /// Id (the same as `payId`).
    pub id: i64,
    /// The payment's id, as the repository names it.
    pub pay_id: i64,
    /// The bill paid.
    pub bill_id: i64,
    /// Its subscription.
    pub order_id: i64,
    /// Its usage month.
    pub use_ym: String,
    /// The subscriber.
    pub user_name: String,
    /// The amount paid (won).
    pub pay_amt: i64,
    /// `PAY`, or `CANCEL` once cancelled.
    pub work_type: String,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

/// Where pay found the bill it paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Lookup {
    /// Bill answered.
    Bill,
    /// Bill did not (timeout, breaker open, down): pay's own view.
    View,
}

/// `POST /pays` answers the payment and where the bill was looked up.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Paid {
    #[serde(flatten)]
    pay: Pay,
    lookup: Lookup,
}

/// The repository's `PayCommand`: the bill, and optionally the amount
/// (which must be the bill's).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewPay {
    #[serde(deserialize_with = "integer")]
    bill_id: i64,
    #[serde(default, deserialize_with = "optional_integer")]
    pay_amt: Option<i64>,
}

/// The repository's `CancelCommand {payId}` (`POST /pays/cancel`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelPay {
    #[serde(deserialize_with = "integer")]
    pay_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    bill_id: Option<String>,
    order_id: Option<String>,
    user_name: Option<String>,
    work_type: Option<String>,
    bill_state: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    bill: Arc<Upstream>,
}

/// Runs the pay service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let url = opts.upstream("bill").ok_or_else(|| anyhow::anyhow!("pay needs --upstream bill=URL"))?.to_string();
    let variant = pick_variant("pay", opts.variant.as_deref(), &["no-breaker"], &[KitVariant::FromLatest])?;
    let bill = if variant.is("no-breaker") { Upstream::without_breaker("bill", &url, Duration::from_secs(30)) } else { Upstream::new("bill", &url, Duration::from_millis(1000)) };
    let mut kit = Kit::start(super::SYSTEM, "pay", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), bill: Arc::new(bill) };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let bill = Arc::new(Upstream::new("bill", "http://127.0.0.1:9", Duration::from_millis(10)));
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), bill };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/pays", get(list).post(pay))
        .route("/pays/pay", post(pay))
        .route("/pays/cancel", post(cancel_by_body))
        .route("/pays/{payId}", get(show))
        .route("/pays/{payId}/cancel", post(cancel_by_path))
        .route("/retrieveBills", get(list_view))
        .route("/retrieveBills/{billId}", get(show_view))
        .with_state(app)
}

async fn pay(State(app): State<App>, JsonBody(asked): JsonBody<NewPay>) -> Result<impl IntoResponse, ApiError> {
    int("billId", asked.bill_id, limits::ID).map_err(ApiError::BadRequest)?;
    if let Some(amount) = asked.pay_amt {
        int("payAmt", amount, limits::AMOUNT).map_err(ApiError::BadRequest)?;
    }
    // Never hold the store's write lock across the remote call.
    let (bill, lookup) = app.look_up(asked.bill_id).await?;
    let id = bill.bill_id;
    match BillState::parse(&bill.bill_state) {
        Ok(BillState::Unpaid) => {}
        Ok(BillState::Paid) => return Err(ApiError::Conflict(format!("bill {id} is already Paid (payment {})", bill.pay_id.unwrap_or_default()))),
        Err(err) => return Err(ApiError::Unavailable(format!("bill {id} has an unreadable state: {err}"))),
    }
    if bill.bill_amt <= 0 {
        return Err(ApiError::Conflict(format!("bill {id} has no amount to pay")));
    }
    if let Some(amount) = asked.pay_amt.filter(|amount| *amount != bill.bill_amt) {
        return Err(ApiError::BadRequest(format!("payAmt {amount} is not bill {id}'s amount {}", bill.bill_amt)));
    }
    let tx = app.store.begin().await?;
    let inserted = tx
        .execute(
            "INSERT OR IGNORE INTO pays (bill_id, order_id, use_ym, user_name, pay_amt, work_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'PAY', ?6)",
            libsql::params![id, bill.order_id, bill.use_ym.as_str(), bill.user_name.as_str(), bill.bill_amt, now_rfc3339()],
        )
        .await?;
    if inserted == 0 {
        let live: Option<i64> = tx.value("SELECT pay_id FROM pays WHERE bill_id = ?1 AND work_type = 'PAY'", [id]).await?;
        return Err(ApiError::Conflict(format!("bill {id} already has a live payment {}", live.unwrap_or_default())));
    }
    let pay_id = tx.last_insert_rowid();
    let made = find(&tx, pay_id).await?.ok_or_else(|| anyhow::anyhow!("payment {pay_id} vanished"))?;
    app.publisher.record(&tx, &bill.order_id.to_string(), &Event::new("BillPayed", event_of(&made, WorkType::Pay))).await?;
    tx.commit().await?;
    app.publisher.wake();
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/pays/{pay_id}"))], axum::Json(Paid { pay: made, lookup })))
}

async fn cancel_by_path(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Pay>, ApiError> {
    let id = parse_id(&id, "payment")?;
    app.cancel(id).await.map(axum::Json)
}

async fn cancel_by_body(State(app): State<App>, JsonBody(asked): JsonBody<CancelPay>) -> Result<axum::Json<Pay>, ApiError> {
    int("payId", asked.pay_id, limits::ID).map_err(ApiError::BadRequest)?;
    app.cancel(asked.pay_id).await.map(axum::Json)
}

fn event_of(pay: &Pay, work_type: WorkType) -> PayEvent {
    PayEvent {
        pay_id: pay.pay_id,
        bill_id: pay.bill_id,
        order_id: pay.order_id,
        use_ym: pay.use_ym.clone(),
        user_name: pay.user_name.clone(),
        pay_amt: pay.pay_amt,
        work_type,
    }
}

impl App {
    /// Bill `id` as bill says it is — or, when bill does not answer, as
    /// pay's view last saw it. Unknown to bill (or, bill not answering, to
    /// the view): 404.
    async fn look_up(&self, id: i64) -> Result<(Bill, Lookup), ApiError> {
        let err = match self.bill.get_json::<Bill>(&format!("/bills/{id}")).await {
            Ok(bill) if bill.bill_id == id => return Ok((bill, Lookup::Bill)),
            Ok(bill) => CallError::Unreadable("bill".into(), format!("asked for bill {id}, answered bill {}", bill.bill_id)),
            Err(CallError::NotFound) => return Err(ApiError::NotFound(format!("bill {id} not found"))),
            Err(err) => err,
        };
        let conn = self.store.read().await?;
        match VIEW.find::<Bill>(&conn, id).await? {
            Some(bill) => {
                tracing::info!(bill = id, "bill did not answer ({err}): paying from pay's view");
                Ok((bill, Lookup::View))
            }
            None => Err(ApiError::NotFound(format!("bill {id} is not in pay's view, and bill did not answer: {err}"))),
        }
    }

    /// Cancels live payment `id` (`PAY → CANCEL`) and publishes `PayCanceled`.
    async fn cancel(&self, id: i64) -> Result<Pay, ApiError> {
        let tx = self.store.begin().await?;
        let mut pay = find(&tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("payment {id} not found")))?;
        if pay.cancelled {
            return Err(ApiError::Conflict(format!("payment {id} is already cancelled")));
        }
        tx.execute("UPDATE pays SET work_type = 'CANCEL', cancelled_at = ?1 WHERE pay_id = ?2", libsql::params![now_rfc3339(), id]).await?;
        self.publisher.record(&tx, &pay.order_id.to_string(), &Event::new("PayCanceled", event_of(&pay, WorkType::Cancel))).await?;
        tx.commit().await?;
        self.publisher.wake();
        (pay.work_type, pay.cancelled) = (WorkType::Cancel.name().to_string(), true);
        Ok(pay)
    }

    /// Keeps the bills view: each bill as its latest event says.
    async fn viewed(&self, tx: &Tx, bill: BillEvent) -> anyhow::Result<HandleOutcome> {
        let paid_by = (bill.bill_state == BillState::Paid).then_some(bill.pay_id).flatten();
        tx.execute(
            "INSERT INTO bill_views (bill_id, order_id, use_ym, user_name, phone_number, bill_amt, bill_state, pay_id, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(bill_id) DO UPDATE SET bill_state = excluded.bill_state, pay_id = excluded.pay_id, updated_at = excluded.updated_at",
            libsql::params![
                bill.bill_id,
                bill.order_id,
                bill.use_ym.as_str(),
                bill.user_name.as_str(),
                bill.phone_number.as_str(),
                bill.bill_amt,
                bill.bill_state.name(),
                paid_by,
                now_rfc3339()
            ],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "BillCreated" | "BillCompleted" | "BillCanceled" => match event.data::<BillEvent>() {
                Ok(bill) => self.viewed(tx, bill).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Pay>>, ApiError> {
    let bill = id_filter(filter.bill_id.as_deref(), "bill")?;
    let order = id_filter(filter.order_id.as_deref(), "order")?;
    let user = text_filter(filter.user_name, "userName", limits::USER_NAME)?;
    let work = filter.work_type.as_deref().map(WorkType::parse).transpose().map_err(ApiError::BadRequest)?.map(WorkType::name);
    let sql = format!(
        "{} WHERE (bill_id = ?1 OR ?1 IS NULL) AND (order_id = ?2 OR ?2 IS NULL) AND (user_name = ?3 OR ?3 IS NULL) AND (work_type = ?4 OR ?4 IS NULL) ORDER BY pay_id",
        PAYS.select
    );
    let conn = app.store.read().await?;
    Ok(axum::Json(conn.all(&sql, libsql::params![bill, order, user, work]).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Pay>, ApiError> {
    let id = parse_id(&id, "payment")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("payment {id} not found")))
}

async fn list_view(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Bill>>, ApiError> {
    let order = id_filter(filter.order_id.as_deref(), "order")?;
    let user = text_filter(filter.user_name, "userName", limits::USER_NAME)?;
    let state = filter.bill_state.as_deref().map(BillState::parse).transpose().map_err(ApiError::BadRequest)?.map(BillState::name);
    let sql = format!("{} WHERE (order_id = ?1 OR ?1 IS NULL) AND (user_name = ?2 OR ?2 IS NULL) AND (bill_state = ?3 OR ?3 IS NULL) ORDER BY bill_id", VIEW.select);
    let conn = app.store.read().await?;
    Ok(axum::Json(conn.all(&sql, libsql::params![order, user, state]).await?))
}

async fn show_view(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Bill>, ApiError> {
    let id = parse_id(&id, "bill")?;
    let conn = app.store.read().await?;
    VIEW.find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("pay's view has no bill {id} (yet)")))
}

const PAYS: Table = Table {
    select: r#"SELECT pay_id AS id, pay_id AS "payId", bill_id AS "billId", order_id AS "orderId", use_ym AS "useYm", user_name AS "userName", pay_amt AS "payAmt",
               work_type AS "workType", work_type = 'CANCEL' AS cancelled FROM pays"#,
    id: "pay_id",
    order_by: "pay_id",
};

const VIEW: Table = Table {
    select: r#"SELECT bill_id AS id, bill_id AS "billId", order_id AS "orderId", use_ym AS "useYm", user_name AS "userName", phone_number AS "phoneNumber",
               bill_amt AS "billAmt", bill_state AS "billState", pay_id AS "payId" FROM bill_views"#,
    id: "bill_id",
    order_by: "bill_id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Pay>> {
    PAYS.find(conn, id).await
}
