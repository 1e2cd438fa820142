//! Message triggers: for each message a pact expects of a provider, how to
//! make the real provider publish it — calls to its own HTTP API, or an input
//! event for a provider only reached through events — and which event type
//! to capture from Kafka. Kept in a system's contracts folder as
//! `triggers.yaml`, keyed by provider, then by interaction description.
//!
//! A step may need what only the provider knows, such as the id it gave
//! what an earlier step made: an HTTP step `capture`s values from its JSON
//! answer (`capture: { billId: /0/billId }`, a JSON pointer) and later steps
//! name them as `${billId}` in their path, body or event.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

/// File name of the trigger mapping, beside the pacts.
pub const FILE: &str = "triggers.yaml";

/// Provider name → interaction description → trigger.
pub type Triggers = BTreeMap<String, BTreeMap<String, Trigger>>;

/// How to make a provider publish one message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// The `eventType` of the event to capture after the steps.
    pub capture: String,
}

/// One step of a trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// An HTTP call to the provider. `{id}` in the path is replaced by the
    /// `id` of the previous step's JSON answer; `${NAME}` by a value an
    /// earlier step captured.
    Http {
        /// HTTP method.
        method: String,
        /// Path on the provider.
        path: String,
        /// JSON body.
        #[serde(default)]
        body: Option<Value>,
        /// Retry until it succeeds or this much time has passed: the step
        /// needs what the provider has yet to consume (default: one try).
        #[serde(default, with = "humantime_serde")]
        within: Option<std::time::Duration>,
        /// Values to keep from the JSON answer, by name; with `within`, the
        /// step is retried until every one is there (the provider may
        /// answer an empty list before it has consumed what it lists).
        #[serde(default)]
        capture: BTreeMap<String, Pointer>,
    },
    /// An event published to the system's topic (`id` and `timestamp` are
    /// filled in when absent); the Kafka key is its `key` field.
    Publish {
        /// The event document.
        publish: Value,
        /// Field holding the Kafka key (default `orderId`).
        #[serde(default = "default_key")]
        key: String,
    },
}

fn default_key() -> String {
    "orderId".into()
}

/// A JSON pointer (RFC 6901) into a step's answer: `/0/billId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(String);

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Pointer, D::Error> {
        let text = String::deserialize(deserializer)?;
        if !text.starts_with('/') {
            return Err(serde::de::Error::custom(format!("`{text}` is not a JSON pointer: expected one starting with `/`, such as /0/billId")));
        }
        Ok(Pointer(text))
    }
}

impl Pointer {
    /// What it points at in `answer`, if anything (null counts as nothing).
    pub fn find<'a>(&self, answer: &'a Value) -> Option<&'a Value> {
        answer.pointer(&self.0).filter(|value| !value.is_null())
    }
}

pub use crate::capture::Captured;

/// Keeps `captures` of `answer` in `values`; the names of those not found.
pub fn capture(captures: &BTreeMap<String, Pointer>, answer: &Value, values: &mut Captured) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, pointer) in captures {
        match pointer.find(answer) {
            Some(value) => {
                values.insert(name.clone(), value.clone());
            }
            None => missing.push(format!("{name} ({})", pointer.0)),
        }
    }
    missing
}

/// Reads a trigger mapping.
pub fn load(path: &Path) -> anyhow::Result<Triggers> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read triggers {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses a trigger mapping read from `origin`; errors name it and the line.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Triggers> {
    serde_saphyr::from_str(text).map_err(|err| anyhow::anyhow!("{origin}: not a trigger mapping: {err}"))
}

/// The trigger file beside `pacts` (a directory or a file in it), if any.
pub fn beside(pacts: &Path) -> Option<std::path::PathBuf> {
    let dir = if pacts.is_file() { pacts.parent()? } else { pacts };
    let path = dir.join(FILE);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{fill_text, fill_value};

    #[test]
    fn the_shop_triggers_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/shop").join(FILE);
        let triggers = load(&path).unwrap();
        let product = &triggers["shop.product"]["a ProductChanged event"];
        assert_eq!(product.capture, "ProductChanged");
        assert!(matches!(product.steps[0], Step::Http { .. }));
        assert!(matches!(triggers["shop.delivery"]["a DeliveryStarted event"].steps[0], Step::Publish { .. }));
    }

    #[test]
    fn captured_values_fill_paths_and_documents_keeping_their_type() {
        let mut values = Captured::new();
        let captures: BTreeMap<String, Pointer> = serde_saphyr::from_str("{ billId: /0/billId, state: /0/billState, pay: /0/payId }").unwrap();
        let answer = serde_json::json!([{ "billId": 3, "billState": "Unpaid", "payId": null }]);
        assert_eq!(capture(&captures, &answer, &mut values), ["pay (/0/payId)"], "null is not captured");
        assert_eq!(fill_text("/bills/${billId}?state=${state}", &values).unwrap(), "/bills/3?state=Unpaid");
        let doc = serde_json::json!({ "billId": "${billId}", "note": "bill ${billId}", "items": [{ "state": "${state}" }], "n": 1 });
        assert_eq!(fill_value(&doc, &values).unwrap(), serde_json::json!({ "billId": 3, "note": "bill 3", "items": [{ "state": "Unpaid" }], "n": 1 }));
        let err = fill_text("/pays/${payId}", &values).unwrap_err().to_string();
        assert!(err.contains("`${payId}` names no value") && err.contains("billId, state"), "{err}");
    }

    #[test]
    fn a_capture_that_is_not_a_json_pointer_names_the_line() {
        let text = "sys.bill:\n  a BillCompleted event:\n    steps:\n      - method: GET\n        path: /bills\n        capture: { billId: 0/billId }\n    capture: BillCompleted\n";
        let err = parse(text, "x/triggers.yaml").unwrap_err().to_string();
        assert!(err.starts_with("x/triggers.yaml: not a trigger mapping") && err.contains("line"), "{err}");
    }
}
