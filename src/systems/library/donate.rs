//! donate (core): takes a user's book donation and records `BookDonated`
//! in the same transaction (the outbox). A donation names its book
//! (`bookId`, as the seed's `http :8088/donates bookId=1`) or lets donate
//! number it ([P]: the next after the highest donated, so an experiment can
//! donate a fresh book each time it runs). Donating a bookId again is a
//! donation like any other; books registers a bookId once.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{BookDonated, limits};
use super::book_filter;
use crate::systems::kit::bounds::{int, optional_integer, text};
use crate::systems::kit::{ApiError, Conn, Event, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Publisher, ServeOptions, Store, Table, now_rfc3339, parse_id, pick_variant};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS donates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_id INTEGER NOT NULL,
    title TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS donates_book ON donates(book_id);
CREATE INDEX IF NOT EXISTS donates_title ON donates(title);
";

/// A donation as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Donate {
    /// Id of the donation.
    pub id: i64,
    /// The book donated.
    pub book_id: i64,
    /// Its title, if given.
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewDonation {
    #[serde(default, deserialize_with = "optional_integer")]
    book_id: Option<i64>,
    #[serde(default)]
    title: Option<String>,
}

impl NewDonation {
    fn check(&self) -> Result<(), String> {
        if let Some(book) = self.book_id {
            int("bookId", book, limits::ID)?;
        }
        self.title.as_deref().map_or(Ok(()), |t| text("title", t, limits::TITLE, true))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    book_id: Option<String>,
    title: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
}

/// Runs the donate service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let variant = pick_variant("donate", opts.variant.as_deref(), &[], &[KitVariant::ReadyAtOnce])?;
    let mut kit = Kit::start(super::SYSTEM, "donate", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone() };
    kit.serve(routes(app)).await
}

fn routes(app: App) -> Router {
    Router::new().route("/donates", get(list).post(donate)).route("/donates/{id}", get(show)).with_state(app)
}

/// Every field is optional, so the body is read as an object first: serde
/// would take `[]` for a donation with nothing in it.
async fn donate(State(app): State<App>, JsonBody(body): JsonBody<serde_json::Map<String, serde_json::Value>>) -> Result<impl IntoResponse, ApiError> {
    let donation: NewDonation = serde_json::from_value(body.into()).map_err(|err| ApiError::BadRequest(format!("a donation: {err}")))?;
    donation.check().map_err(ApiError::BadRequest)?;
    let tx = app.store.begin().await?;
    let book_id = match donation.book_id {
        Some(book) => book,
        None => {
            let highest: Option<i64> = tx.value("SELECT COALESCE(MAX(book_id), 0) FROM donates", ()).await?;
            let next = highest.unwrap_or(0) + 1;
            int("the next bookId", next, limits::ID).map_err(ApiError::Conflict)?;
            next
        }
    };
    tx.execute(
        "INSERT INTO donates (book_id, title, created_at) VALUES (?1, ?2, ?3)",
        libsql::params![book_id, donation.title.clone(), now_rfc3339()],
    )
    .await?;
    let id = tx.last_insert_rowid();
    let donated = BookDonated { donate_id: id, book_id, title: donation.title };
    app.publisher.record(&tx, &book_id.to_string(), &Event::new("BookDonated", donated)).await?;
    let created = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("donation {id} vanished"))?;
    tx.commit().await?;
    app.publisher.wake();
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/donates/{id}"))], axum::Json(created)))
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Donate>>, ApiError> {
    let book = book_filter(filter.book_id.as_deref())?;
    let conn = app.store.read().await?;
    let by = match (book, filter.title) {
        (Some(book), _) => Some(("book_id", book.into())),
        (None, Some(title)) => Some(("title", title.into())),
        (None, None) => None,
    };
    Ok(axum::Json(DONATES.list(&conn, by).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Donate>, ApiError> {
    let id = parse_id(&id, "donation")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("donation {id} not found")))
}

const DONATES: Table = Table { select: r#"SELECT id, book_id AS "bookId", title FROM donates"#, id: "id", order_by: "id" };

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Donate>> {
    DONATES.find(conn, id).await
}
