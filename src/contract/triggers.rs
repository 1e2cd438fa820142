//! Message triggers: for each message a pact expects of a provider, how to
//! make the real provider publish it — calls to its own HTTP API, or an input
//! event for a provider only reached through events — and which event type
//! to capture from Kafka. Kept in a system's contracts folder as
//! `triggers.yaml`, keyed by provider, then by interaction description.

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
    /// `id` of the previous step's JSON answer.
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

    #[test]
    fn the_shop_triggers_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/shop").join(FILE);
        let triggers = load(&path).unwrap();
        let product = &triggers["shop.product"]["a ProductChanged event"];
        assert_eq!(product.capture, "ProductChanged");
        assert!(matches!(product.steps[0], Step::Http { .. }));
        assert!(matches!(triggers["shop.delivery"]["a DeliveryStarted event"].steps[0], Step::Publish { .. }));
    }
}
