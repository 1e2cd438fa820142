//! The service kit: what every reference service is built from.
//!
//! A service is an axum app plus the kit's parts: health and metrics
//! endpoints, misbehaviour switches, a SQLite store of its own, a
//! transactional outbox relayed to Kafka, an idempotent consumer, and a
//! synchronous client with timeout and circuit breaker, and the gateway.

mod app;
mod error;
mod event;
mod gateway;
mod inbox;
mod kafka;
mod metrics;
mod outbox;
mod serve_options;
mod store;
mod switches;
mod upstream;

pub use app::{Kit, nodelay};
pub use error::{ApiError, JsonBody, parse_id};
pub use event::{Event, Incoming, now_rfc3339};
pub use gateway::{GatewayConfig, gateway_app};
pub use inbox::{Handler, Outcome as HandleOutcome, apply_payload};
pub use kafka::{KafkaSettings, ensure_topic};
pub use metrics::Metrics;
pub use outbox::Publisher;
// Plumbing that moved out of the kit, re-exported so services keep compiling.
pub use crate::process::{LISTENING, terminated};
pub use crate::proxy::{Forwarder, Upstreams};
pub use serve_options::{ServeOptions, env as serve_env};
pub use store::{Store, all, first};
pub use switches::{SwitchState, Switches};
pub use upstream::{CallError, Upstream};
