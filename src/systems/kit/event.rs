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

impl Incoming {
    /// Parses a Kafka payload; `None` if it is not an event document.
    pub fn parse(payload: &[u8]) -> Option<Incoming> {
        let body: Value = serde_json::from_slice(payload).ok()?;
        let event_type = body.get("eventType")?.as_str()?.to_string();
        let id = body.get("id")?.as_str()?.to_string();
        Some(Incoming { event_type, id, body })
    }

    /// The payload as a typed event.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.body.clone())
            .map_err(|err| anyhow::anyhow!("{} {} is malformed: {err}", self.event_type, self.id))
    }
}

pub use crate::clock::now_rfc3339;
