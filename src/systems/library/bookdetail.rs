//! bookdetail (CQRS read model): the seed's book list with each book's
//! checkout status, "등록됨" (registered) or "대여완료됨" (checked out) —
//! with an English mirror (`bookStatus`) — built only from
//! `BookRegistered` and `BookCheckedOut`; it never calls the services whose
//! state it shows, so it answers with all of them down (the seed's
//! isolation evidence). Each row counts the events applied to it
//! (`eventsApplied`), the evidence that no event was applied twice.
//!
//! The `asks-books` variant asks books before it answers a query — a read
//! model that is not one of its own (CQRS, checkpoint 2's broken system).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::events::{BookCheckedOut, BookRegistered, BookStatus, EVENT_TYPES};
use crate::systems::kit::{ApiError, HandleOutcome, Handler, Incoming, KafkaSettings, Kit, KitVariant, Picked, ServeOptions, Store, Table, Tx, Upstream, now_rfc3339, parse_id, pick_variant};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bookdetails (
    book_id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    book_status TEXT NOT NULL,
    title TEXT,
    events_applied INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bookdetails_title ON bookdetails(title);
CREATE INDEX IF NOT EXISTS bookdetails_status ON bookdetails(book_status);
";

/// One row of the book list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BookDetail {
    /// The book.
    pub book_id: i64,
    /// The seed's status: "등록됨" or "대여완료됨".
    pub status: String,
    /// The same in English: `registered` or `lent`.
    pub book_status: String,
    /// The donation's title, if any.
    pub title: Option<String>,
    /// Events applied to this row.
    pub events_applied: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    title: Option<String>,
    book_status: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    /// The `asks-books` variant: books must answer before a query is.
    books: Option<Arc<Upstream>>,
}

/// Runs the bookdetail service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let kit_variants = [KitVariant::AnonymousGroup, KitVariant::ReadsEveryPartition, KitVariant::FromLatest];
    let variant = pick_variant("bookdetail", opts.variant.as_deref(), &["asks-books"], &kit_variants)?;
    let books = super::books_first(&opts, "asks-books", variant.is("asks-books"))?;
    let mut kit = Kit::start(super::SYSTEM, "bookdetail", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), books };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    crate::systems::kit::apply_payload(&store, &App { store: store.clone(), books: None }, payload).await
}

fn routes(app: App) -> Router {
    Router::new().route("/bookdetails", get(list)).route("/bookdetails/{bookId}", get(show)).with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<BookDetail>>, ApiError> {
    let status = filter.book_status.as_deref().map(BookStatus::parse).transpose().map_err(ApiError::BadRequest)?;
    super::ask_books(app.books.as_deref(), 0, "asks-books").await?;
    let conn = app.store.read().await?;
    let rows: Vec<BookDetail> = match (&filter.title, status) {
        (Some(title), _) => DETAILS.list(&conn, Some(("title", title.as_str().into()))).await?,
        (None, Some(status)) => DETAILS.list(&conn, Some(("book_status", status.name().into()))).await?,
        (None, None) => DETAILS.list(&conn, None).await?,
    };
    Ok(axum::Json(rows.into_iter().filter(|r| status.is_none_or(|s| r.book_status == s.name())).collect()))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<BookDetail>, ApiError> {
    let id = parse_id(&id, "book")?;
    super::ask_books(app.books.as_deref(), id, "asks-books").await?;
    let conn = app.store.read().await?;
    DETAILS.find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no bookdetail row for book {id} (yet)")))
}

impl App {
    async fn registered(&self, tx: &Tx, registered: BookRegistered) -> anyhow::Result<HandleOutcome> {
        let status = BookStatus::Registered;
        // A book's events share a partition, so BookRegistered comes first;
        // the upsert still keeps "대여완료됨" if it ever does not.
        tx.execute(
            "INSERT INTO bookdetails (book_id, status, book_status, title, events_applied, updated_at) VALUES (?1, ?2, ?3, ?4, 1, ?5)
             ON CONFLICT(book_id) DO UPDATE SET title = COALESCE(bookdetails.title, excluded.title),
                 events_applied = bookdetails.events_applied + 1, updated_at = excluded.updated_at",
            libsql::params![registered.book_id, status.korean(), status.name(), registered.title.clone(), now_rfc3339()],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }

    async fn checked_out(&self, tx: &Tx, out: BookCheckedOut) -> anyhow::Result<HandleOutcome> {
        let status = BookStatus::Lent;
        tx.execute(
            "INSERT INTO bookdetails (book_id, status, book_status, events_applied, updated_at) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT(book_id) DO UPDATE SET status = excluded.status, book_status = excluded.book_status,
                 events_applied = bookdetails.events_applied + 1, updated_at = excluded.updated_at",
            libsql::params![out.book_id, status.korean(), status.name(), now_rfc3339()],
        )
        .await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "BookRegistered" => match event.data::<BookRegistered>() {
                Ok(registered) => self.registered(tx, registered).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "BookCheckedOut" => match event.data::<BookCheckedOut>() {
                Ok(out) => self.checked_out(tx, out).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const DETAILS: Table = Table {
    select: r#"SELECT book_id AS "bookId", status, book_status AS "bookStatus", title, events_applied AS "eventsApplied" FROM bookdetails"#,
    id: "book_id",
    order_by: "book_id",
};
