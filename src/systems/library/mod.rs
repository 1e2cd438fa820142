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

use crate::systems::kit::{ApiError, KafkaSettings, ServeOptions, parse_id};

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
