//! Provider states handled in-process for the reference services. A
//! provider state is the precondition a consumer names (`given "product 1
//! exists"`); a real provider team serves a state-change URL, the reference
//! services already hold what their pacts assume (product seeds 1–4 at
//! start), so their states need no action — but an unknown state is an
//! error, never silently accepted.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pact_models::provider_states::ProviderState;
use pact_verifier::callback_executors::ProviderStateExecutor;
use serde_json::Value;

/// States the reference shop satisfies as started, and why.
const KNOWN: &[(&str, &str)] = &[
    ("product 1 exists", "product seeds products 1-4 (TV, RADIO, NOTEBOOK, TABLE) at start"),
    ("product 2 exists", "seeded"),
    ("product 3 exists", "seeded"),
    ("product 4 exists", "seeded"),
];

/// The in-process state handler of the reference services.
#[derive(Debug, Default)]
pub struct ReferenceStates;

impl ReferenceStates {
    /// Why `state` holds without action, or `None` if it is unknown.
    pub fn explain(state: &str) -> Option<&'static str> {
        KNOWN.iter().find(|(name, _)| *name == state).map(|(_, why)| *why)
    }
}

#[async_trait]
impl ProviderStateExecutor for ReferenceStates {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        provider_state: &ProviderState,
        _setup: bool,
        _client: Option<&reqwest::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        // The verifier calls with an empty state for interactions that name none.
        if provider_state.name.is_empty() {
            return Ok(HashMap::new());
        }
        match ReferenceStates::explain(&provider_state.name) {
            Some(_) => Ok(HashMap::new()),
            None => anyhow::bail!("unknown provider state `{}` (serve it with --state-change-url)", provider_state.name),
        }
    }

    fn teardown(&self) -> bool {
        false
    }
}
