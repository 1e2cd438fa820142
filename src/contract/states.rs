//! Provider states as data. A provider state is the precondition a
//! consumer names (`given "product 1 exists"`). A system lists the states
//! its providers satisfy as started, each with why it holds
//! (`contracts/states.yaml`, by provider); verification accepts those and
//! fails on any other, naming it and the known ones — never silently. A
//! provider whose states need setting up serves a state-change URL instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use pact_models::provider_states::ProviderState;
use pact_verifier::callback_executors::ProviderStateExecutor;
use serde_json::Value;

use crate::systems::SystemFile;

/// The file a system's provider states are in (in its contracts folder).
pub const FILE: &str = "states.yaml";

/// Provider name → state → why it holds.
pub type States = BTreeMap<String, BTreeMap<String, String>>;

/// Parses a states file; errors name the file and line.
pub fn parse(file: &SystemFile) -> anyhow::Result<States> {
    serde_saphyr::from_str(&file.text).map_err(|err| anyhow::anyhow!("{}: {err}", file.origin))
}

/// The states one provider satisfies without action.
#[derive(Debug, Clone, Default)]
pub struct KnownStates {
    provider: String,
    known: BTreeMap<String, String>,
}

impl KnownStates {
    /// The states `states` lists for `provider`.
    pub fn of(provider: &str, states: &States) -> KnownStates {
        KnownStates { provider: provider.to_string(), known: states.get(provider).cloned().unwrap_or_default() }
    }

    /// Why `state` holds, or `None` if the provider does not know it.
    pub fn explain(&self, state: &str) -> Option<&str> {
        self.known.get(state).map(String::as_str)
    }

    /// The error for a state the provider does not know.
    pub fn unknown(&self, state: &str) -> String {
        let known: Vec<&str> = self.known.keys().map(String::as_str).collect();
        format!(
            "unknown provider state `{state}`: {} knows {} (list it in contracts/{FILE}, or serve it with --state-change-url)",
            self.provider,
            if known.is_empty() { "none".into() } else { known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ") }
        )
    }
}

#[async_trait]
impl ProviderStateExecutor for KnownStates {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        provider_state: &ProviderState,
        _setup: bool,
        _client: Option<&reqwest::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        // The verifier calls with an empty state for interactions that name none.
        if provider_state.name.is_empty() || self.explain(&provider_state.name).is_some() {
            return Ok(HashMap::new());
        }
        anyhow::bail!(self.unknown(&provider_state.name))
    }

    fn teardown(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shops_states_are_data_and_an_unknown_one_lists_them() {
        let shop = crate::systems::System::builtin("shop").unwrap();
        let file = shop.file(crate::systems::Part::Contracts, FILE).unwrap().unwrap();
        let states = KnownStates::of("shop.product", &parse(&file).unwrap());
        assert!(states.explain("product 1 exists").unwrap().contains("seeds"));
        let err = states.unknown("products exist");
        assert!(err.contains("`products exist`") && err.contains("`product 1 exists`"), "{err}");
        assert!(KnownStates::of("shop.nobody", &parse(&file).unwrap()).unknown("x").contains("knows none"));
    }
}
