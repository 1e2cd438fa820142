//! The service kit: what every reference service is built from.
//!
//! A service is an axum app plus the kit's parts: health and metrics
//! endpoints, misbehaviour switches, a SQLite store of its own, a
//! transactional outbox relayed to Kafka, an idempotent consumer, and a
//! synchronous client with timeout and circuit breaker, and the gateway.

mod app;
pub mod bounds;
mod error;
mod event;
mod gateway;
pub mod identity;
mod inbox;
mod kafka;
mod metrics;
mod outbox;
mod serve_options;
mod store;
mod switches;
mod table;
pub mod token;
mod upstream;
mod variants;
mod verified;

pub use app::{Group, Kit, Probes, nodelay};
pub use bounds::{MAX_BODY, MAX_EVENT_BYTES};
pub use error::{ApiError, JsonBody, parse_id, unknown_route, wrong_method};
pub use event::{Bounded, Event, Incoming, Poison, now_rfc3339};
pub use gateway::{Admission, GatewayConfig, LET_ANONYMOUS, VARIANTS as GATEWAY_VARIANTS, default_origins, gateway_app};
pub use identity::{Caller, FORWARDED_AUTHORIZATION};
pub use inbox::{Handler, Outcome as HandleOutcome, apply_payload};
pub use kafka::{FROM_LATEST, KafkaSettings, ensure_topic};
pub use metrics::Metrics;
pub use outbox::{DeadLetter, EventTooLarge, OutboxReport, Publisher};
// Plumbing that moved out of the kit, re-exported so services keep compiling.
pub use crate::process::{LISTENING, terminated};
pub use crate::proxy::{Forwarder, Upstreams};
pub use serve_options::{ServeOptions, env as serve_env, instance_name, parse_instance};
pub use store::{Conn, DATABASE_URL, Dialect, Reader, Store, StoreBusy, Tx, is_busy, is_store_failure};
pub use switches::{SwitchState, Switches};
pub use table::Table;
pub use upstream::{CallError, Upstream};
pub use variants::{KitVariant, Picked, pick as pick_variant};
