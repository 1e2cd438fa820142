//! bill (supporting): bills per usage month (사용월별 청구서). On
//! `OrderPlaced` it records the subscription and issues its first bill (the
//! order's month, the plan's monthly fee, `Unpaid`); `POST /bills/issue`
//! issues a month's bill for every subscription (or one) that has none —
//! one bill per order and month, however often it is asked. `BillPayed`
//! makes a bill `Paid` (`BillCompleted`); `PayCanceled` of its current
//! payment rolls it back to `Unpaid` (`BillCanceled`, the compensation).
//! Subscriptions keep being taken while bill is down; their bills appear
//! when it returns.
//!
//! Variants: `ignores-cancel` never rolls a bill back; `amount-as-string`
//! publishes `billAmt` as the repository's decimal string ("100.00");
//! `anonymous-group` rejoins at the topic's end (misses what was published
//! while it was away).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::events::{BillEvent, BillState, EVENT_TYPES, OrderPlaced, PayEvent, check_use_ym, limits, use_ym_of};
use super::{id_filter, text_filter};
use crate::systems::kit::bounds::{int, optional_integer};
use crate::systems::kit::{
    ApiError, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Poison, Publisher, ServeOptions, Store, Table,
    Tx, now_rfc3339, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subscriptions (
    order_id INTEGER PRIMARY KEY,
    user_name TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    plan TEXT NOT NULL,
    monthly_fee INTEGER NOT NULL,
    since_ym TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bills (
    bill_id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    use_ym TEXT NOT NULL,
    user_name TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    bill_amt INTEGER NOT NULL,
    bill_state TEXT NOT NULL,
    pay_id INTEGER,
    updated_at TEXT NOT NULL,
    UNIQUE (order_id, use_ym)
);
CREATE INDEX IF NOT EXISTS bills_user ON bills(user_name);
";

/// A bill as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bill {
    /// Id (the same as `billId`).
    pub id: i64,
    /// The bill's id, as the repository names it.
    pub bill_id: i64,
    /// The subscription billed.
    pub order_id: i64,
    /// Usage month, `YYYYMM`.
    pub use_ym: String,
    /// The subscriber.
    pub user_name: String,
    /// The line.
    pub phone_number: String,
    /// The amount billed (won).
    pub bill_amt: i64,
    /// `Unpaid` or `Paid`.
    pub bill_state: String,
    /// The payment that paid it, while `Paid`.
    pub pay_id: Option<i64>,
}

impl Bill {
    /// Its state (stored only by this code; anything else is a bug).
    fn state(&self) -> anyhow::Result<BillState> {
        BillState::parse(&self.bill_state).map_err(|err| anyhow::anyhow!("stored bill state: {err}"))
    }
}

#[derive(Debug, Deserialize)]
struct Subscription {
    order_id: i64,
    user_name: String,
    phone_number: String,
    monthly_fee: i64,
    since_ym: String,
}

/// `POST /bills/issue {useYm, orderId?}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Issue {
    use_ym: String,
    #[serde(default, deserialize_with = "optional_integer")]
    order_id: Option<i64>,
}

/// What `POST /bills/issue` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Issued {
    use_ym: String,
    /// Bills issued now (0 when every subscription already had one).
    issued: usize,
    /// Their ids.
    bill_ids: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    order_id: Option<String>,
    bill_state: Option<String>,
    user_name: Option<String>,
    use_ym: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    ignores_cancel: bool,
    amount_as_string: bool,
}

/// Runs the bill service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let variant = pick_variant("bill", opts.variant.as_deref(), &["ignores-cancel", "amount-as-string"], &[KitVariant::AnonymousGroup, KitVariant::FromLatest])?;
    let mut kit = Kit::start(super::SYSTEM, "bill", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), ignores_cancel: variant.is("ignores-cancel"), amount_as_string: variant.is("amount-as-string") };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), ignores_cancel: false, amount_as_string: false };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/bills", get(list))
        .route("/bills/issue", post(issue))
        .route("/bills/{billId}", get(show))
        .with_state(app)
}

async fn issue(State(app): State<App>, JsonBody(asked): JsonBody<Issue>) -> Result<axum::Json<Issued>, ApiError> {
    check_use_ym(&asked.use_ym).map_err(ApiError::BadRequest)?;
    if let Some(order) = asked.order_id {
        int("orderId", order, limits::ID).map_err(ApiError::BadRequest)?;
    }
    let tx = app.store.begin().await?;
    let subscriptions: Vec<Subscription> = match asked.order_id {
        Some(order) => {
            let found: Option<Subscription> = tx.first(&format!("{SUBSCRIPTION} WHERE order_id = ?1"), [order]).await?;
            let found = found.ok_or_else(|| ApiError::NotFound(format!("bill knows no subscription {order} (yet)")))?;
            if found.since_ym > asked.use_ym {
                return Err(ApiError::Conflict(format!("subscription {order} began in {}: it has no bill for {}", found.since_ym, asked.use_ym)));
            }
            vec![found]
        }
        None => tx.all(&format!("{SUBSCRIPTION} WHERE since_ym <= ?1 ORDER BY order_id"), [asked.use_ym.as_str()]).await?,
    };
    let mut bill_ids = Vec::new();
    for subscription in &subscriptions {
        if let Some(bill) = app.issue_bill(&tx, subscription, &asked.use_ym).await? {
            bill_ids.push(bill);
        }
    }
    tx.commit().await?;
    app.publisher.wake();
    Ok(axum::Json(Issued { use_ym: asked.use_ym, issued: bill_ids.len(), bill_ids }))
}

const SUBSCRIPTION: &str = r#"SELECT order_id, user_name, phone_number, monthly_fee, since_ym FROM subscriptions"#;

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Bill>>, ApiError> {
    let order = id_filter(filter.order_id.as_deref(), "order")?;
    let state = filter.bill_state.as_deref().map(BillState::parse).transpose().map_err(ApiError::BadRequest)?.map(BillState::name);
    let user = text_filter(filter.user_name, "userName", limits::USER_NAME)?;
    if let Some(month) = &filter.use_ym {
        check_use_ym(month).map_err(ApiError::BadRequest)?;
    }
    let sql = format!(
        "{} WHERE (order_id = ?1 OR ?1 IS NULL) AND (bill_state = ?2 OR ?2 IS NULL) AND (user_name = ?3 OR ?3 IS NULL) AND (use_ym = ?4 OR ?4 IS NULL) ORDER BY bill_id",
        BILLS.select
    );
    let conn = app.store.read().await?;
    Ok(axum::Json(conn.all(&sql, libsql::params![order, state, user, filter.use_ym]).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Bill>, ApiError> {
    let id = parse_id(&id, "bill")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("bill {id} not found")))
}

impl App {
    /// Issues `subscription`'s bill for `use_ym` unless it has one; the new
    /// bill's id.
    async fn issue_bill(&self, tx: &Tx, subscription: &Subscription, use_ym: &str) -> anyhow::Result<Option<i64>> {
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO bills (order_id, use_ym, user_name, phone_number, bill_amt, bill_state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'Unpaid', ?6)",
                libsql::params![subscription.order_id, use_ym, subscription.user_name.as_str(), subscription.phone_number.as_str(), subscription.monthly_fee, now_rfc3339()],
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        let bill = find(tx, id).await?.ok_or_else(|| anyhow::anyhow!("bill {id} vanished"))?;
        self.publish(tx, "BillCreated", &bill, None).await?;
        Ok(Some(id))
    }

    /// Records `bill` as a `event_type` event (its state as it is now).
    async fn publish(&self, tx: &Tx, event_type: &str, bill: &Bill, pay_id: Option<i64>) -> anyhow::Result<()> {
        let state = bill.state()?;
        let payload = BillEvent {
            bill_id: bill.bill_id,
            order_id: bill.order_id,
            pay_id,
            use_ym: bill.use_ym.clone(),
            user_name: bill.user_name.clone(),
            phone_number: bill.phone_number.clone(),
            bill_amt: bill.bill_amt,
            bill_state: state,
        };
        let mut data = serde_json::to_value(payload)?;
        if self.amount_as_string {
            data["billAmt"] = serde_json::Value::String(format!("{}.00", bill.bill_amt));
        }
        self.publisher.record(tx, &bill.order_id.to_string(), &Event::new(event_type, data)).await
    }

    async fn subscribed(&self, tx: &Tx, event: &Incoming, placed: OrderPlaced) -> anyhow::Result<HandleOutcome> {
        // The first bill is for the month the order was placed in: the
        // event's own time, so a replay dates it the same.
        let Some(month) = event.body.get("timestamp").and_then(|t| t.as_str()).and_then(use_ym_of) else {
            return Ok(HandleOutcome::Skipped(Poison::Malformed(format!("{} {}: no RFC 3339 timestamp to date its first bill", event.event_type, event.id))));
        };
        tx.execute(
            "INSERT OR IGNORE INTO subscriptions (order_id, user_name, phone_number, plan, monthly_fee, since_ym, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            libsql::params![placed.order_id, placed.user_name.as_str(), placed.phone_number.as_str(), placed.plan.as_str(), placed.monthly_fee, month.as_str(), now_rfc3339()],
        )
        .await?;
        let subscription = Subscription { order_id: placed.order_id, user_name: placed.user_name, phone_number: placed.phone_number, monthly_fee: placed.monthly_fee, since_ym: month };
        Ok(match self.issue_bill(tx, &subscription, &subscription.since_ym).await? {
            Some(_) => HandleOutcome::Applied,
            None => HandleOutcome::Ignored,
        })
    }

    /// The bill a payment event names, if it is that order's.
    async fn bill_of(&self, tx: &Tx, event: &Incoming, pay: &PayEvent) -> anyhow::Result<Result<Bill, HandleOutcome>> {
        match find(tx, pay.bill_id).await? {
            Some(bill) if bill.order_id == pay.order_id => Ok(Ok(bill)),
            Some(bill) => Ok(Err(HandleOutcome::Skipped(Poison::UnknownEntity(format!(
                "{} {}: bill {} is order {}'s, not {}'s",
                event.event_type, event.id, bill.bill_id, bill.order_id, pay.order_id
            ))))),
            None => Ok(Err(HandleOutcome::Skipped(Poison::UnknownEntity(format!("{} {}: no bill {}", event.event_type, event.id, pay.bill_id))))),
        }
    }

    /// `BillPayed`: an unpaid bill becomes `Paid` by this payment; a repeat
    /// (or another payment of a paid bill) changes nothing.
    async fn payed(&self, tx: &Tx, event: &Incoming, pay: PayEvent) -> anyhow::Result<HandleOutcome> {
        let mut bill = match self.bill_of(tx, event, &pay).await? {
            Ok(bill) => bill,
            Err(outcome) => return Ok(outcome),
        };
        if bill.state()? != BillState::Unpaid {
            if bill.pay_id != Some(pay.pay_id) {
                tracing::warn!(bill = bill.bill_id, paid_by = ?bill.pay_id, payment = pay.pay_id, "a second payment of a paid bill is ignored");
            }
            return Ok(HandleOutcome::Ignored);
        }
        tx.execute("UPDATE bills SET bill_state = 'Paid', pay_id = ?1, updated_at = ?2 WHERE bill_id = ?3", libsql::params![pay.pay_id, now_rfc3339(), bill.bill_id]).await?;
        (bill.bill_state, bill.pay_id) = (BillState::Paid.name().to_string(), Some(pay.pay_id));
        self.publish(tx, "BillCompleted", &bill, Some(pay.pay_id)).await?;
        Ok(HandleOutcome::Applied)
    }

    /// `PayCanceled` of the bill's current payment: the paid amount is
    /// rolled back, the bill is `Unpaid` again. Any other cancellation
    /// (a repeat, a payment that never paid it) changes nothing.
    async fn canceled(&self, tx: &Tx, event: &Incoming, pay: PayEvent) -> anyhow::Result<HandleOutcome> {
        if self.ignores_cancel {
            return Ok(HandleOutcome::Ignored);
        }
        let mut bill = match self.bill_of(tx, event, &pay).await? {
            Ok(bill) => bill,
            Err(outcome) => return Ok(outcome),
        };
        if bill.state()? != BillState::Paid || bill.pay_id != Some(pay.pay_id) {
            return Ok(HandleOutcome::Ignored);
        }
        tx.execute("UPDATE bills SET bill_state = 'Unpaid', pay_id = NULL, updated_at = ?1 WHERE bill_id = ?2", libsql::params![now_rfc3339(), bill.bill_id]).await?;
        (bill.bill_state, bill.pay_id) = (BillState::Unpaid.name().to_string(), None);
        self.publish(tx, "BillCanceled", &bill, Some(pay.pay_id)).await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "OrderPlaced" => match event.data::<OrderPlaced>() {
                Ok(placed) => self.subscribed(tx, event, placed).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "BillPayed" => match event.data::<PayEvent>() {
                Ok(pay) => self.payed(tx, event, pay).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "PayCanceled" => match event.data::<PayEvent>() {
                Ok(pay) => self.canceled(tx, event, pay).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const BILLS: Table = Table {
    select: r#"SELECT bill_id AS id, bill_id AS "billId", order_id AS "orderId", use_ym AS "useYm", user_name AS "userName", phone_number AS "phoneNumber",
               bill_amt AS "billAmt", bill_state AS "billState", pay_id AS "payId" FROM bills"#,
    id: "bill_id",
    order_by: "bill_id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Bill>> {
    BILLS.find(conn, id).await
}
