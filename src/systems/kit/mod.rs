//! The service kit: what every reference service is built from.
//!
//! A service is an axum app plus the kit's parts: health and metrics
//! endpoints, misbehaviour switches, a SQLite store of its own, a
//! transactional outbox relayed to Kafka, an idempotent consumer, and a
//! synchronous client with timeout and circuit breaker. The gateway and the
//! request forwarding shared with the local platform live here too.

mod app;
pub mod bounds;
mod error;
mod event;
mod gateway;
mod inbox;
mod kafka;
mod metrics;
mod outbox;
mod proxy;
mod serve_options;
mod store;
mod switches;
mod table;
mod upstream;

pub use app::{Kit, LISTENING, nodelay, terminated};
pub use bounds::{MAX_BODY, MAX_EVENT_BYTES};
pub use error::{ApiError, JsonBody, parse_id};
pub use event::{Bounded, Event, Incoming, Poison, now_rfc3339};
pub use gateway::{GatewayConfig, gateway_app};
pub use inbox::{Handler, Outcome as HandleOutcome, apply_payload};
pub use kafka::{KafkaSettings, ensure_topic};
pub use metrics::Metrics;
pub use outbox::{DeadLetter, EventTooLarge, OutboxReport, Publisher};
pub use proxy::{Forwarder, Upstreams};
pub use serve_options::ServeOptions;
pub use store::{Conn, Reader, Store, StoreBusy, Tx, is_busy, is_store_failure};
pub use switches::{SwitchState, Switches};
pub use table::Table;
pub use upstream::{CallError, Upstream};
