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

use crate::systems::kit::{ApiError, FROM_LATEST, Group, KafkaSettings, Kit, Probes, ServeOptions, parse_id};

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

/// The variants the kit carries out by itself, for the checkpoints' broken
/// systems (`check --prove`): how a service joins its group or answers its
/// probes. Each service says which of them apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KitVariant {
    /// A new consumer group at each start, from the topic's end.
    AnonymousGroup,
    /// Every replica reads every partition, without the inbox's check.
    ReadsEveryPartition,
    /// A new group that starts at the topic's end ([`FROM_LATEST`]; the kit reads it itself).
    FromLatest,
    /// Liveness answers OK whatever is wrong.
    LiveAlways,
    /// Readiness answers OK while the replica warms up.
    ReadyAtOnce,
    /// Deployed with its autoscaler capped at one replica (the platform
    /// reads `max_replicas` from the definition; the handler runs as is).
    NoScaleOut,
}

impl KitVariant {
    fn name(self) -> &'static str {
        match self {
            KitVariant::AnonymousGroup => "anonymous-group",
            KitVariant::ReadsEveryPartition => "reads-every-partition",
            KitVariant::FromLatest => FROM_LATEST,
            KitVariant::LiveAlways => "live-always",
            KitVariant::ReadyAtOnce => "ready-at-once",
            KitVariant::NoScaleOut => "no-scale-out",
        }
    }

    fn configure(self, kit: &mut Kit) {
        match self {
            KitVariant::AnonymousGroup => kit.group = Group::Anonymous,
            KitVariant::ReadsEveryPartition => kit.group = Group::Unshared,
            KitVariant::LiveAlways => kit.probes = Probes::AlwaysLive,
            KitVariant::ReadyAtOnce => kit.probes = Probes::ReadyAtOnce,
            KitVariant::FromLatest | KitVariant::NoScaleOut => {}
        }
    }
}

/// A service's variant: `""` for none, one of its `own`, or one of the
/// `kit` variants (returned to configure the kit with). Anything else is
/// refused, listing what it has.
fn variant<'a>(opts: &'a ServeOptions, service: &str, own: &[&str], kit: &[KitVariant]) -> anyhow::Result<(&'a str, Option<KitVariant>)> {
    let Some(name) = opts.variant.as_deref() else { return Ok(("", None)) };
    if let Some(found) = kit.iter().find(|v| v.name() == name) {
        return Ok((name, Some(*found)));
    }
    if own.contains(&name) {
        return Ok((name, None));
    }
    let known: Vec<&str> = own.iter().copied().chain(kit.iter().map(|v| v.name())).collect();
    anyhow::bail!("{service} has no variant `{name}` ({})", if known.is_empty() { "it has none".to_string() } else { known.join(", ") })
}

/// The `?bookId=` filter, an integer.
fn book_filter(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| parse_id(raw, "book")).transpose()
}

/// An optional integer given as a number or a numeric string (with
/// `#[serde(default)]`: absent is `None`; `null` is refused like any non-integer).
fn optional_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    crate::systems::kit::bounds::integer(deserializer).map(Some)
}
