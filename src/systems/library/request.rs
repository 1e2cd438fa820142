//! request (core): takes a user's checkout request and records
//! `CheckoutRequested` in the same transaction; books decides it through
//! events. `NonexistentBook` and `AlreadyCheckedOut` cancel the request
//! (the seed's compensation; the second is [P]), `BookCheckedOut` approves
//! it ([P]: the seed's request stays `requested`). Only a `requested`
//! request is decided; every decision that reaches it is counted
//! (`decisions`), the evidence that none was decided twice.
//!
//! The `random-key` variant keys its events at random instead of by bookId
//! (no correlation key, for checkpoint 3's broken system); `sync-books`
//! asks books before it takes a request (no failure isolation, checkpoint 6).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::events::{BookCheckedOut, CheckoutRequested, EVENT_TYPES, OrderStatus, Refusal, limits};
use super::book_filter;
use crate::systems::kit::bounds::{int, optional_integer, text};
use crate::systems::kit::{
    ApiError, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Poison, Publisher, ServeOptions, Store, Table, Tx,
    Upstream, now_rfc3339, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_id INTEGER NOT NULL,
    order_status TEXT NOT NULL,
    decided_by TEXT,
    decisions INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_book ON requests(book_id);
CREATE INDEX IF NOT EXISTS requests_status ON requests(order_status);
";

/// A checkout request as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutRequest {
    /// Id of the request.
    pub id: i64,
    /// The same id, as the seed's repo names it (it relies on requestId == id).
    pub request_id: i64,
    /// The book asked for.
    pub book_id: i64,
    /// `requested`, `approved` or `cancelled`.
    pub order_status: String,
    /// The event that decided it, once decided.
    pub decided_by: Option<String>,
    /// Decisions that reached it (1 once decided; more would be a double decision).
    pub decisions: i64,
}

/// The seed's `http :8088/requests bookId=1 requestId=1 orderStatus=requested`:
/// the server numbers the request, so a client's requestId is accepted and
/// ignored; a new request can only be `requested`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewRequest {
    #[serde(deserialize_with = "crate::systems::kit::bounds::integer")]
    book_id: i64,
    #[serde(default, deserialize_with = "optional_integer")]
    request_id: Option<i64>,
    #[serde(default)]
    order_status: Option<String>,
}

impl NewRequest {
    fn check(&self) -> Result<(), String> {
        int("bookId", self.book_id, limits::ID)?;
        if let Some(id) = self.request_id {
            int("requestId", id, limits::ID)?;
        }
        if let Some(status) = &self.order_status {
            text("orderStatus", status, 40, true)?;
            let status = OrderStatus::parse(status)?;
            if status != OrderStatus::Requested {
                return Err(format!("a new request is requested; only books decides it {}", status.name()));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    book_id: Option<String>,
    order_status: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    random_key: bool,
    /// The `sync-books` variant: books must answer before a request is taken.
    books: Option<Arc<Upstream>>,
}

/// Runs the request service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let variant = pick_variant("request", opts.variant.as_deref(), &["random-key", "sync-books"], &[KitVariant::FromLatest])?;
    let random_key = variant.is("random-key");
    let books = super::books_first(&opts, "sync-books", variant.is("sync-books"))?;
    let mut kit = Kit::start(super::SYSTEM, "request", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), random_key, books };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), random_key: false, books: None };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

/// Creates a `requested` request for `book` in the store at `db` (contract
/// tests: the request a pact's decision names must exist).
pub async fn seed_request(db: &std::path::Path, book: i64) -> anyhow::Result<i64> {
    let store = Store::open(db, SCHEMA).await?;
    let tx = store.begin().await?;
    let id = insert(&tx, book).await?;
    tx.commit().await?;
    Ok(id)
}

fn routes(app: App) -> Router {
    Router::new().route("/requests", get(list).post(take)).route("/requests/{id}", get(show)).with_state(app)
}

async fn insert(tx: &Tx, book: i64) -> anyhow::Result<i64> {
    let now = now_rfc3339();
    tx.execute(
        "INSERT INTO requests (book_id, order_status, decisions, created_at, updated_at) VALUES (?1, 'requested', 0, ?2, ?2)",
        libsql::params![book, now],
    )
    .await?;
    Ok(tx.last_insert_rowid())
}

async fn take(State(app): State<App>, JsonBody(asked): JsonBody<NewRequest>) -> Result<impl IntoResponse, ApiError> {
    asked.check().map_err(ApiError::BadRequest)?;
    super::ask_books(app.books.as_deref(), asked.book_id, "sync-books").await?;
    let tx = app.store.begin().await?;
    let id = insert(&tx, asked.book_id).await?;
    let key = if app.random_key { uuid::Uuid::new_v4().to_string() } else { asked.book_id.to_string() };
    app.publisher.record(&tx, &key, &Event::new("CheckoutRequested", CheckoutRequested { request_id: id, book_id: asked.book_id })).await?;
    let created = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("request {id} vanished"))?;
    tx.commit().await?;
    app.publisher.wake();
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/requests/{id}"))], axum::Json(created)))
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<CheckoutRequest>>, ApiError> {
    let book = book_filter(filter.book_id.as_deref())?;
    let status = filter.order_status.as_deref().map(OrderStatus::parse).transpose().map_err(ApiError::BadRequest)?;
    let conn = app.store.read().await?;
    let rows: Vec<CheckoutRequest> = match book {
        Some(book) => REQUESTS.list(&conn, Some(("book_id", book.into()))).await?,
        None => REQUESTS.list(&conn, status.map(|s| ("order_status", s.name().into()))).await?,
    };
    Ok(axum::Json(rows.into_iter().filter(|r| status.is_none_or(|s| r.order_status == s.name())).collect()))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<CheckoutRequest>, ApiError> {
    let id = parse_id(&id, "request")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("request {id} not found")))
}

impl App {
    /// Decides request `request_id` for `book` as `status` (from event
    /// `event`): only a `requested` one changes; a decision reaching a
    /// decided request is counted and changes nothing.
    async fn decide(&self, tx: &Tx, event: &Incoming, book: i64, request_id: i64, status: OrderStatus) -> anyhow::Result<HandleOutcome> {
        let Some(request) = find(tx, request_id).await? else {
            return Ok(HandleOutcome::Skipped(Poison::UnknownEntity(format!("{} {}: no request {request_id}", event.event_type, event.id))));
        };
        if request.book_id != book {
            let why = format!("{} {}: request {request_id} is for book {}, not {book}", event.event_type, event.id, request.book_id);
            return Ok(HandleOutcome::Skipped(Poison::UnknownEntity(why)));
        }
        if request.order_status != OrderStatus::Requested.name() {
            tracing::warn!(request = request_id, "{} {} reached request {request_id}, already {}", event.event_type, event.id, request.order_status);
            tx.execute("UPDATE requests SET decisions = decisions + 1, updated_at = ?1 WHERE id = ?2", libsql::params![now_rfc3339(), request_id]).await?;
            return Ok(HandleOutcome::Applied);
        }
        tx.execute(
            "UPDATE requests SET order_status = ?1, decided_by = ?2, decisions = decisions + 1, updated_at = ?3 WHERE id = ?4",
            libsql::params![status.name(), event.event_type.as_str(), now_rfc3339(), request_id],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "BookCheckedOut" => match event.data::<BookCheckedOut>() {
                Ok(out) => self.decide(tx, event, out.book_id, out.request_id, OrderStatus::Approved).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "NonexistentBook" | "AlreadyCheckedOut" => match event.data::<Refusal>() {
                Ok(refusal) => self.decide(tx, event, refusal.book_id, refusal.request_id.unwrap_or_default(), OrderStatus::Cancelled).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const REQUESTS: Table = Table {
    select: r#"SELECT id, id AS "requestId", book_id AS "bookId", order_status AS "orderStatus", decided_by AS "decidedBy", decisions FROM requests"#,
    id: "id",
    order_by: "id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<CheckoutRequest>> {
    REQUESTS.find(conn, id).await
}
