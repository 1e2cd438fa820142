//! The library (seed 003's book donation and checkout): donate, request,
//! books, bookdetail (a CQRS read model) and the gateway — a choreographed
//! saga whose compensation cancels a checkout request for a book that does
//! not exist (`NonexistentBook`) or is already lent (`AlreadyCheckedOut`).
//! See `scenarios/library/system.yaml`.

pub mod bookdetail;
pub mod books;
pub mod donate;
pub mod events;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use crate::systems::kit::{ApiError, KafkaSettings, ServeOptions, Upstream, parse_id};

/// The system's name.
pub const SYSTEM: &str = "library";

/// Runs one library service (`donate`, `request`, `books`, `bookdetail`).
pub async fn serve(service: &str, opts: ServeOptions) -> anyhow::Result<()> {
    let kafka = KafkaSettings::for_system(SYSTEM, &opts)?;
    match service {
        "donate" => donate::serve(opts, kafka).await,
        "request" => request::serve(opts, kafka).await,
        "books" => books::serve(opts, kafka).await,
        "bookdetail" => bookdetail::serve(opts, kafka).await,
        other => anyhow::bail!("the library has no service `{other}` (donate, request, books, bookdetail, gateway)"),
    }
}

/// The `?bookId=` filter, an integer.
fn book_filter(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| parse_id(raw, "book")).transpose()
}

/// The coupling a broken variant adds on purpose: books, called before the
/// service answers (the seed has no synchronous call; experiments must catch
/// one). `None` unless `coupled`.
fn books_first(opts: &ServeOptions, variant: &str, coupled: bool) -> anyhow::Result<Option<Arc<Upstream>>> {
    if !coupled {
        return Ok(None);
    }
    let url = opts.upstream("books").ok_or_else(|| anyhow::anyhow!("the {variant} variant needs --upstream books=URL"))?;
    Ok(Some(Arc::new(Upstream::new("books", url, Duration::from_millis(1000)))))
}

/// Asks books about `book` first, when coupled: any answer will do (a 404
/// too) — the fault is the call, not what books says; no answer is a 503.
async fn ask_books(books: Option<&Upstream>, book: i64, variant: &str) -> Result<(), ApiError> {
    let Some(books) = books else { return Ok(()) };
    books.answers(&format!("/books/{book}")).await.map_err(|err| ApiError::Unavailable(format!("books must answer first ({variant} variant): {err}")))
}
