//! Provider states as data. A provider state is the precondition a
//! consumer names (`given "product 1 exists"`). A system lists the states
//! its providers satisfy (`contracts/states.yaml`, by provider), each with
//! why it holds: as the provider starts, or after steps through the
//! provider's own API (the trigger steps of `triggers.yaml`) run before
//! the interaction. Verification accepts those and fails on any other,
//! naming it and the known ones — never silently. The same states answer
//! a verifier outside stormproof at the state-change URL `contract serve`
//! prints.
//!
//! What a state's steps capture (`capture:` of an HTTP step, e.g. the id
//! the provider gave the bill a step made) goes back to the verifier as the
//! state's values: an interaction built with `path_from_provider_state`
//! asks for `/bills/${billId}`, the bill the set-up made, not a guessed id.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use pact_models::provider_states::ProviderState;
use pact_verifier::callback_executors::ProviderStateExecutor;
use serde::Deserialize;
use serde_json::Value;

use super::messages::{Topic, run_steps};
use super::triggers::{Captured, Step};
use crate::systems::SystemFile;

/// The file a system's provider states are in (in its contracts folder).
pub const FILE: &str = "states.yaml";

/// Provider name → state → how it holds.
pub type States = BTreeMap<String, BTreeMap<String, StateDef>>;

/// How one provider state holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a provider state: why it holds, in words, or { why: WORDS, steps: [STEP...] } (steps as in triggers.yaml)")]
pub enum StateDef {
    /// As the provider starts; why, in words.
    Holds(String),
    /// After these steps against the provider.
    SetUp(SetUp),
}

/// A state set up through the provider's own API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUp {
    /// Why the steps make it hold, in words.
    pub why: String,
    /// What to do, in order, before each interaction given the state.
    pub steps: Vec<Step>,
}

impl StateDef {
    /// Why it holds.
    pub fn why(&self) -> &str {
        match self {
            StateDef::Holds(why) => why,
            StateDef::SetUp(setup) => &setup.why,
        }
    }

    fn steps(&self) -> &[Step] {
        match self {
            StateDef::Holds(_) => &[],
            StateDef::SetUp(setup) => &setup.steps,
        }
    }
}

/// Parses a states file; errors name the file and line.
pub fn parse(file: &SystemFile) -> anyhow::Result<States> {
    serde_saphyr::from_str(&file.text).map_err(|err| anyhow::anyhow!("{}: {err}", file.origin))
}

/// The states one provider satisfies, and where to set them up.
#[derive(Debug, Clone, Default)]
pub struct KnownStates {
    provider: String,
    known: BTreeMap<String, StateDef>,
    /// The running provider's base URL and topic, once known.
    at: Option<(String, Option<Topic>)>,
}

impl KnownStates {
    /// The states `states` lists for `provider`.
    pub fn of(provider: &str, states: &States) -> KnownStates {
        KnownStates { provider: provider.to_string(), known: states.get(provider).cloned().unwrap_or_default(), at: None }
    }

    /// These states, set up against the provider at `base_url` (its events on `kafka`).
    pub fn at(mut self, base_url: &str, kafka: Option<Topic>) -> KnownStates {
        self.at = Some((base_url.to_string(), kafka));
        self
    }

    /// Why `state` holds, or `None` if the provider does not know it.
    pub fn explain(&self, state: &str) -> Option<&str> {
        self.known.get(state).map(StateDef::why)
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

    /// Makes `state` hold (nothing to do for one that holds as started);
    /// the empty state of an interaction that names none always holds.
    /// Returns the values its steps captured.
    pub async fn set_up(&self, state: &str) -> anyhow::Result<Captured> {
        if state.is_empty() {
            return Ok(Captured::new());
        }
        let def = self.known.get(state).ok_or_else(|| anyhow::anyhow!(self.unknown(state)))?;
        if def.steps().is_empty() {
            return Ok(Captured::new());
        }
        let (base_url, kafka) = self.at.as_ref().ok_or_else(|| anyhow::anyhow!("provider state `{state}` needs the running provider, and none is known"))?;
        run_steps(def.steps(), base_url, kafka.as_ref()).await.map_err(|err| anyhow::anyhow!("setting up provider state `{state}` of {}: {err:#}", self.provider))
    }
}

#[async_trait]
impl ProviderStateExecutor for KnownStates {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        provider_state: &ProviderState,
        setup: bool,
        _client: Option<&reqwest::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        // The verifier calls with an empty state for interactions that name none.
        if !setup {
            return Ok(HashMap::new());
        }
        Ok(self.set_up(&provider_state.name).await?.into_iter().collect())
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

    #[tokio::test]
    async fn a_state_with_steps_is_set_up_through_the_running_provider_only() {
        let text = "sys.payment:\n  fare 2 is registered:\n    why: registered by POST /payments\n    steps:\n      - { method: POST, path: /payments, body: { id: 2 } }\n  ready: as started\n";
        let file = SystemFile { name: FILE.into(), origin: "x/states.yaml".into(), text: text.into() };
        let states = KnownStates::of("sys.payment", &parse(&file).unwrap());
        assert_eq!(states.explain("fare 2 is registered"), Some("registered by POST /payments"));
        assert!(states.set_up("").await.is_ok() && states.set_up("ready").await.is_ok(), "no state, or one that holds as started");
        let err = states.set_up("fare 2 is registered").await.unwrap_err().to_string();
        assert!(err.contains("needs the running provider"), "{err}");
        let err = states.set_up("fare 3 exists").await.unwrap_err().to_string();
        assert!(err.contains("`fare 3 exists`") && err.contains("`fare 2 is registered`"), "{err}");
        // Nothing listens on port 9: the set-up's failure names the state.
        let err = states.at("http://127.0.0.1:9", None).set_up("fare 2 is registered").await.unwrap_err().to_string();
        assert!(err.contains("setting up provider state `fare 2 is registered` of sys.payment") && err.contains("POST /payments"), "{err}");
        let bad = SystemFile { name: FILE.into(), origin: "x/states.yaml".into(), text: "sys.payment:\n  s: { why: w, step: [] }\n".into() };
        assert!(parse(&bad).unwrap_err().to_string().contains("x/states.yaml"), "a malformed state names its file");
    }

    #[test]
    fn a_state_whose_steps_capture_parses_and_a_malformed_one_names_file_line_and_form() {
        let text = "sys.bill:\n  a bill exists:\n    why: bill issues one for an OrderPlaced\n    steps:\n      - publish: { eventType: OrderPlaced, orderId: 1 }\n      - { method: GET, path: /bills?orderId=1, within: 30s, capture: { billId: /0/billId } }\n";
        let file = SystemFile { name: FILE.into(), origin: "x/states.yaml".into(), text: text.into() };
        let states = parse(&file).unwrap();
        assert!(matches!(&states["sys.bill"]["a bill exists"].steps()[1], Step::Http { capture, .. } if capture.contains_key("billId")));
        let bad = SystemFile { name: FILE.into(), origin: "x/states.yaml".into(), text: text.replace("/0/billId", "0/billId") };
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.starts_with("x/states.yaml: ") && err.contains("line 3") && err.contains("{ why: WORDS, steps: [STEP...] }"), "{err}");
    }
}
