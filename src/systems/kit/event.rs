//! Events: JSON documents with `eventType`, a unique `id`, a `timestamp` and
//! the flow's correlation key (orderId…), which is also the Kafka key.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event to publish: the envelope around a typed payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<T> {
    /// The event's type name, e.g. `OrderPlaced`.
    pub event_type: String,
    /// Unique id; consumers record it to apply each event once.
    pub id: String,
    /// RFC 3339 time the event was recorded.
    pub timestamp: String,
    /// The payload; its fields sit beside the envelope's.
    #[serde(flatten)]
    pub data: T,
}

impl<T: Serialize> Event<T> {
    /// A new event of `event_type` with a fresh id and the current time.
    pub fn new(event_type: &str, data: T) -> Self {
        Event {
            event_type: event_type.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: now_rfc3339(),
            data,
        }
    }
}

/// An event as received: the envelope plus the whole document.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The event's type name.
    pub event_type: String,
    /// The event's unique id.
    pub id: String,
    /// The whole JSON document.
    pub body: Value,
}

/// Why a consumed record is skipped instead of applied: a poison message.
/// Retrying it would block its partition forever, so the consumer logs it
/// once, counts it and moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poison {
    /// The record has no value.
    Empty,
    /// The value is not JSON.
    NotJson(String),
    /// JSON without a string `eventType` and `id`.
    NotAnEvent,
    /// An `eventType` the system does not have.
    UnknownType(String),
    /// Fields missing, of the wrong type, or outside the domain's bounds.
    Malformed(String),
    /// The event names something this service does not have.
    UnknownEntity(String),
    /// The handler failed on it every time, and not because of the store.
    Failed(String),
    /// The handler panicked on it.
    Panicked(String),
}

impl Poison {
    /// The metric label (a fixed set: poison must not grow the metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Poison::Empty => "empty",
            Poison::NotJson(_) => "not_json",
            Poison::NotAnEvent => "not_an_event",
            Poison::UnknownType(_) => "unknown_type",
            Poison::Malformed(_) => "malformed",
            Poison::UnknownEntity(_) => "unknown_entity",
            Poison::Failed(_) => "failed",
            Poison::Panicked(_) => "panicked",
        }
    }
}

impl std::fmt::Display for Poison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Poison::Empty => write!(f, "empty value"),
            Poison::NotJson(err) => write!(f, "not JSON: {err}"),
            Poison::NotAnEvent => write!(f, "not an event (needs string eventType and id)"),
            Poison::UnknownType(t) => write!(f, "unknown eventType `{}`", clip(t)),
            Poison::Malformed(err) => write!(f, "malformed: {}", clip(err)),
            Poison::UnknownEntity(what) => write!(f, "{}", clip(what)),
            Poison::Failed(err) => write!(f, "handler failed: {}", clip(err)),
            Poison::Panicked(err) => write!(f, "handler panicked: {}", clip(err)),
        }
    }
}

/// At most 200 characters of `text`, for log lines about hostile input.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// What an event's payload promises beyond its types: the domain's bounds.
pub trait Bounded {
    /// Checks the bounds; the error names the field.
    fn check(&self) -> Result<(), String>;
}

impl Incoming {
    /// Parses a Kafka value; the reason if it is not an event document.
    pub fn parse(payload: &[u8]) -> Result<Incoming, Poison> {
        if payload.is_empty() {
            return Err(Poison::Empty);
        }
        let body: Value = serde_json::from_slice(payload).map_err(|err| Poison::NotJson(err.to_string()))?;
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
        let (Some(event_type), Some(id)) = (field("eventType"), field("id")) else {
            return Err(Poison::NotAnEvent);
        };
        Ok(Incoming { event_type, id, body })
    }

    /// The payload as a typed event within its bounds.
    pub fn data<T: serde::de::DeserializeOwned + Bounded>(&self) -> Result<T, Poison> {
        let data: T = serde_json::from_value(self.body.clone())
            .map_err(|err| Poison::Malformed(format!("{} {}: {err}", self.event_type, self.id)))?;
        data.check().map_err(|err| Poison::Malformed(format!("{} {}: {err}", self.event_type, self.id)))?;
        Ok(data)
    }
}

pub use crate::clock::now_rfc3339;
