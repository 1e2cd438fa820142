//! mypage (CQRS read model): my subscription and payment history (가입이력,
//! 수납이력) — a history, one row per event, built only from `OrderPlaced`
//! (`ORDER`, 가입), `BillCompleted` (`PAY`, 수납) and `BillCanceled`
//! (`PAY_CANCEL`, 수납취소, a negative amount). It never calls the services
//! whose history it shows. Each row names the event it came from
//! (`eventId`, unique), the evidence that no event was applied twice.
//!
//! Variants: `anonymous-group` rejoins at the topic's end (misses what was
//! published while it was away); `reads-every-partition` has every replica
//! read and apply everything.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{BillEvent, EVENT_TYPES, OrderPlaced, limits};
use super::{id_filter, text_filter};
use crate::systems::kit::{ApiError, HandleOutcome, Handler, Incoming, KafkaSettings, Kit, KitVariant, Picked, ServeOptions, Store, Table, Tx, now_rfc3339, parse_id, pick_variant};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS my_pages (
    hist_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    order_id INTEGER NOT NULL,
    work_type TEXT NOT NULL,
    description TEXT NOT NULL,
    user_name TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    bill_id INTEGER,
    pay_id INTEGER,
    use_ym TEXT,
    amount INTEGER,
    occurred_at TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS my_pages_order ON my_pages(order_id);
CREATE INDEX IF NOT EXISTS my_pages_user ON my_pages(user_name);
";

/// What a history row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum History {
    /// Subscribed (가입).
    Order,
    /// A bill paid (수납).
    Pay,
    /// A payment cancelled (수납취소).
    PayCancel,
}

impl History {
    fn parse(name: &str) -> Result<History, String> {
        match name {
            "ORDER" => Ok(History::Order),
            "PAY" => Ok(History::Pay),
            "PAY_CANCEL" => Ok(History::PayCancel),
            other => Err(format!("workType must be ORDER, PAY or PAY_CANCEL, got `{}`", other.chars().take(40).collect::<String>())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            History::Order => "ORDER",
            History::Pay => "PAY",
            History::PayCancel => "PAY_CANCEL",
        }
    }

    /// The repository's description, in Korean.
    fn description(self) -> &'static str {
        match self {
            History::Order => "가입",
            History::Pay => "수납",
            History::PayCancel => "수납취소",
        }
    }
}

/// One row of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MyPage {
    /// Id, in the order events were applied.
    pub hist_id: i64,
    /// The subscription (the repository's contract id).
    pub cont_id: i64,
    /// The same id.
    pub order_id: i64,
    /// `ORDER`, `PAY` or `PAY_CANCEL`.
    pub work_type: String,
    /// 가입, 수납 or 수납취소.
    pub description: String,
    /// The subscriber.
    pub user_name: String,
    /// The line.
    pub phone_number: String,
    /// The bill (payments).
    pub bill_id: Option<i64>,
    /// The payment (payments).
    pub pay_id: Option<i64>,
    /// The bill's usage month (payments).
    pub use_ym: Option<String>,
    /// Won paid (negative when cancelled).
    pub amount: Option<i64>,
    /// When the event was recorded.
    pub occurred_at: String,
    /// The event the row came from.
    pub event_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    user_name: Option<String>,
    phone_number: Option<String>,
    order_id: Option<String>,
    bill_id: Option<String>,
    work_type: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    /// The `reads-every-partition` variant: each replica keeps its own copy
    /// of every event's row (the event id tagged with the replica), so two
    /// replicas that both read an event show it twice — a history without
    /// the shared group or the idempotent inbox that keep it once.
    copy_of: Option<String>,
}

/// Runs the mypage service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let kit_variants = [KitVariant::AnonymousGroup, KitVariant::ReadsEveryPartition, KitVariant::FromLatest];
    let variant = pick_variant("mypage", opts.variant.as_deref(), &[], &kit_variants)?;
    let copy_of = (variant == Picked::Kit(KitVariant::ReadsEveryPartition)).then(|| opts.replica_id.clone());
    let mut kit = Kit::start(super::SYSTEM, "mypage", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), copy_of };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    crate::systems::kit::apply_payload(&store, &App { store: store.clone(), copy_of: None }, payload).await
}

fn routes(app: App) -> Router {
    Router::new().route("/myPages", get(list)).route("/myPages/{histId}", get(show)).with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<MyPage>>, ApiError> {
    let user = text_filter(filter.user_name, "userName", limits::USER_NAME)?;
    let phone = text_filter(filter.phone_number, "phoneNumber", limits::PHONE_NUMBER)?;
    let order = id_filter(filter.order_id.as_deref(), "order")?;
    let bill = id_filter(filter.bill_id.as_deref(), "bill")?;
    let work = filter.work_type.as_deref().map(History::parse).transpose().map_err(ApiError::BadRequest)?.map(History::name);
    let sql = format!(
        "{} WHERE (user_name = ?1 OR ?1 IS NULL) AND (phone_number = ?2 OR ?2 IS NULL) AND (order_id = ?3 OR ?3 IS NULL)
           AND (bill_id = ?4 OR ?4 IS NULL) AND (work_type = ?5 OR ?5 IS NULL) ORDER BY hist_id",
        MY_PAGES.select
    );
    let conn = app.store.read().await?;
    Ok(axum::Json(conn.all(&sql, libsql::params![user, phone, order, bill, work]).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<MyPage>, ApiError> {
    let id = parse_id(&id, "history")?;
    let conn = app.store.read().await?;
    MY_PAGES.find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no history row {id}")))
}

/// A row to add, from one event.
struct Row<'a> {
    order_id: i64,
    history: History,
    user_name: &'a str,
    phone_number: &'a str,
    bill_id: Option<i64>,
    pay_id: Option<i64>,
    use_ym: Option<&'a str>,
    amount: Option<i64>,
}

impl App {
    /// Adds `row` for `event` — once: a second copy of the event adds
    /// nothing (unless each replica keeps its own copy, see [`App::copy_of`]).
    async fn add(&self, tx: &Tx, event: &Incoming, row: Row<'_>) -> anyhow::Result<HandleOutcome> {
        let event_id = match &self.copy_of {
            Some(replica) => format!("{}@{replica}", event.id),
            None => event.id.clone(),
        };
        let occurred = event.body.get("timestamp").and_then(|t| t.as_str()).unwrap_or_default();
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO my_pages (event_id, order_id, work_type, description, user_name, phone_number, bill_id, pay_id, use_ym, amount, occurred_at, applied_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                libsql::params![
                    event_id.as_str(),
                    row.order_id,
                    row.history.name(),
                    row.history.description(),
                    row.user_name,
                    row.phone_number,
                    row.bill_id,
                    row.pay_id,
                    row.use_ym,
                    row.amount,
                    occurred,
                    now_rfc3339()
                ],
            )
            .await?;
        Ok(if inserted == 0 { HandleOutcome::Ignored } else { HandleOutcome::Applied })
    }

    async fn billed(&self, tx: &Tx, event: &Incoming, bill: BillEvent, history: History) -> anyhow::Result<HandleOutcome> {
        let amount = if history == History::PayCancel { -bill.bill_amt } else { bill.bill_amt };
        let row = Row {
            order_id: bill.order_id,
            history,
            user_name: &bill.user_name,
            phone_number: &bill.phone_number,
            bill_id: Some(bill.bill_id),
            pay_id: bill.pay_id,
            use_ym: Some(&bill.use_ym),
            amount: Some(amount),
        };
        self.add(tx, event, row).await
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "OrderPlaced" => match event.data::<OrderPlaced>() {
                Ok(placed) => {
                    let row = Row {
                        order_id: placed.order_id,
                        history: History::Order,
                        user_name: &placed.user_name,
                        phone_number: &placed.phone_number,
                        bill_id: None,
                        pay_id: None,
                        use_ym: None,
                        amount: None,
                    };
                    self.add(tx, event, row).await
                }
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "BillCompleted" | "BillCanceled" => match event.data::<BillEvent>() {
                Ok(bill) => {
                    let history = if event.event_type == "BillCompleted" { History::Pay } else { History::PayCancel };
                    self.billed(tx, event, bill, history).await
                }
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const MY_PAGES: Table = Table {
    select: r#"SELECT hist_id AS "histId", order_id AS "contId", order_id AS "orderId", work_type AS "workType", description,
               user_name AS "userName", phone_number AS "phoneNumber", bill_id AS "billId", pay_id AS "payId", use_ym AS "useYm",
               amount, occurred_at AS "occurredAt", event_id AS "eventId" FROM my_pages"#,
    id: "hist_id",
    order_by: "hist_id",
};
