//! books (supporting): registers donated books and decides checkout
//! requests, through events only. `BookDonated` registers a bookId once
//! (`BookRegistered`; a second donation of it records nothing).
//! `CheckoutRequested` for a registered book lends it to the request
//! (`BookCheckedOut`); for a book it does not have it answers
//! `NonexistentBook` (the seed's compensation), for a lent one
//! `AlreadyCheckedOut` ([P]) — both name the request to cancel. Books are
//! keyed by bookId, so the seed's `GET /books/1` is book 1.
//!
//! Broken variants: `drop-request-id` publishes the refusals without
//! `requestId` (breaks request's pact: the request could never be
//! compensated); `never-compensates` answers nothing for a missing book
//! (the saga's compensation never happens).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{BookCheckedOut, BookDonated, BookRegistered, BookStatus, CheckoutRequested, EVENT_TYPES, Refusal};
use crate::systems::kit::{
    ApiError, Conn, Event, HandleOutcome, Handler, Incoming, KafkaSettings, Kit, KitVariant, Picked, Publisher, ServeOptions, Store, Table, Tx, now_rfc3339, parse_id,
    pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS books (
    book_id INTEGER PRIMARY KEY,
    book_status TEXT NOT NULL,
    title TEXT,
    request_id INTEGER,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS books_status ON books(book_status);
CREATE INDEX IF NOT EXISTS books_title ON books(title);
";

/// A book as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    /// The book (its id).
    pub book_id: i64,
    /// `registered` or `lent`.
    pub book_status: String,
    /// The donation's title, if any.
    pub title: Option<String>,
    /// The request it is lent to, once lent.
    pub request_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    book_status: Option<String>,
    title: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    drop_request_id: bool,
    never_compensates: bool,
}

/// Runs the books service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    // `no-scale-out` runs as is: the platform caps its autoscaler (system.yaml).
    let own = ["drop-request-id", "never-compensates", "no-scale-out"];
    let variant = pick_variant("books", opts.variant.as_deref(), &own, &[KitVariant::AnonymousGroup, KitVariant::LiveAlways, KitVariant::FromLatest])?;
    let (drop_request_id, never_compensates) = (variant.is("drop-request-id"), variant.is("never-compensates"));
    let mut kit = Kit::start(super::SYSTEM, "books", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), drop_request_id, never_compensates };
    kit.consume(app.clone());
    kit.serve(routes(app)).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry consumer contract tests feed pact
/// messages through.
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), drop_request_id: false, never_compensates: false };
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App) -> Router {
    Router::new().route("/books", get(list)).route("/books/{bookId}", get(show)).with_state(app)
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Book>>, ApiError> {
    let status = filter.book_status.as_deref().map(BookStatus::parse).transpose().map_err(ApiError::BadRequest)?;
    let conn = app.store.read().await?;
    let books: Vec<Book> = match (&filter.title, status) {
        (Some(title), _) => BOOKS.list(&conn, Some(("title", title.as_str().into()))).await?,
        (None, Some(status)) => BOOKS.list(&conn, Some(("book_status", status.name().into()))).await?,
        (None, None) => BOOKS.list(&conn, None).await?,
    };
    Ok(axum::Json(books.into_iter().filter(|b| status.is_none_or(|s| b.book_status == s.name())).collect()))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Book>, ApiError> {
    let id = parse_id(&id, "book")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("books has no book {id} (not donated, or not registered yet)")))
}

impl App {
    async fn register(&self, tx: &Tx, donated: BookDonated) -> anyhow::Result<HandleOutcome> {
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO books (book_id, book_status, title, updated_at) VALUES (?1, 'registered', ?2, ?3)",
                libsql::params![donated.book_id, donated.title.clone(), now_rfc3339()],
            )
            .await?;
        if inserted == 0 {
            // A bookId is registered once: a second donation records nothing.
            return Ok(HandleOutcome::Ignored);
        }
        let registered = BookRegistered { book_id: donated.book_id, book_status: BookStatus::Registered, title: donated.title };
        self.publisher.record(tx, &donated.book_id.to_string(), &Event::new("BookRegistered", registered)).await?;
        Ok(HandleOutcome::Applied)
    }

    async fn check_out(&self, tx: &Tx, asked: CheckoutRequested) -> anyhow::Result<HandleOutcome> {
        let key = asked.book_id.to_string();
        let refusal = Refusal { book_id: asked.book_id, request_id: (!self.drop_request_id).then_some(asked.request_id) };
        let Some(book) = find(tx, asked.book_id).await? else {
            if self.never_compensates {
                return Ok(HandleOutcome::Ignored);
            }
            self.publisher.record(tx, &key, &Event::new("NonexistentBook", refusal)).await?;
            return Ok(HandleOutcome::Applied);
        };
        match BookStatus::parse(&book.book_status).map_err(|err| anyhow::anyhow!("stored status: {err}"))? {
            BookStatus::Registered => {
                tx.execute(
                    "UPDATE books SET book_status = 'lent', request_id = ?1, updated_at = ?2 WHERE book_id = ?3",
                    libsql::params![asked.request_id, now_rfc3339(), asked.book_id],
                )
                .await?;
                let out = BookCheckedOut { book_id: asked.book_id, request_id: asked.request_id, book_status: BookStatus::Lent };
                self.publisher.record(tx, &key, &Event::new("BookCheckedOut", out)).await?;
            }
            BookStatus::Lent => self.publisher.record(tx, &key, &Event::new("AlreadyCheckedOut", refusal)).await?,
        }
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "BookDonated" => match event.data::<BookDonated>() {
                Ok(donated) => self.register(tx, donated).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "CheckoutRequested" => match event.data::<CheckoutRequested>() {
                Ok(asked) => self.check_out(tx, asked).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const BOOKS: Table = Table {
    select: r#"SELECT book_id AS "bookId", book_status AS "bookStatus", title, request_id AS "requestId" FROM books"#,
    id: "book_id",
    order_by: "book_id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Book>> {
    BOOKS.find(conn, id).await
}
