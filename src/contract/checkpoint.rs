//! A contract checkpoint (the course's checkpoint 12, "a contract-breaking
//! provider change is blocked") as evidence a checker can score: a provider
//! verified against its consumers' pacts as it is and as variants, each
//! case with what it must conclude (from the system's `checkpoints.yaml`).
//! A case is *blocked* only when the pacts caught a difference (a
//! mismatch); a verification that could not be made — the provider would
//! not start, an interaction errored without any mismatch — is an error,
//! never a block.

use std::path::Path;

use super::report::Verification;
use super::verify::{PactSource, ProviderSide, VerifyPlan, verify};
use crate::check::checkpoint::{ContractCheck, Expectation};

/// What one verification of a case concluded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// Every interaction passed.
    Passed,
    /// The pacts caught the provider: at least one interaction mismatched.
    Blocked,
    /// The verification could not conclude; says why.
    Errored {
        /// The error.
        error: String,
    },
}

/// One verification the checkpoint ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    /// The provider variant verified (none: the provider as it is).
    pub variant: Option<String>,
    /// What it must conclude.
    #[serde(skip)]
    pub expect: Expectation,
    /// What it concluded.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The failures' summary lines (interaction and first mismatch or error).
    pub failures: Vec<String>,
    /// The verification itself (none if it could not run).
    #[serde(skip)]
    pub verification: Option<Verification>,
}

impl Evidence {
    /// It concluded as its case expects.
    pub fn as_expected(&self) -> bool {
        matches!((&self.outcome, self.expect), (Outcome::Passed, Expectation::Pass) | (Outcome::Blocked, Expectation::Fail))
    }

    /// The Pact verifier's own text and stormproof's report of the case.
    pub fn transcript(&self) -> String {
        match &self.verification {
            Some(v) => format!("{}\n{}", v.verifier_output.join("\n"), v.to_text()),
            None => match &self.outcome {
                Outcome::Errored { error } => format!("verification could not run: {error}\n"),
                _ => String::new(),
            },
        }
    }
}

/// Runs every case of `check` against the pacts in `pacts`, with the
/// provider's side (`side`: its system, triggers and states); providers are
/// started with `exe` (default this binary). A case that cannot be verified
/// is recorded as errored and the others still run.
pub async fn verify_cases(check: &ContractCheck, pacts: &Path, side: &ProviderSide, exe: Option<&Path>) -> anyhow::Result<Vec<Evidence>> {
    let mut evidence = Vec::new();
    for case in &check.cases {
        let plan = VerifyPlan {
            provider: check.provider.clone(),
            source: PactSource::Path(pacts.to_path_buf()),
            side: Some(side.clone()),
            base_url: None,
            kafka: None,
            variant: case.variant.clone(),
            state_change_url: None,
            triggers: None,
            publish: None,
            filter_description: None,
            exe: exe.map(Path::to_path_buf),
        };
        let (outcome, failures, verification) = match verify(&plan).await {
            Ok(verification) => {
                let (outcome, failures) = conclude(&verification);
                (outcome, failures, Some(verification))
            }
            Err(err) => (Outcome::Errored { error: format!("{err:#}") }, vec![], None),
        };
        evidence.push(Evidence { variant: case.variant.clone(), expect: case.expect, outcome, failures, verification });
    }
    Ok(evidence)
}

/// Passed, blocked by a mismatch, or errored (failed with no mismatch).
fn conclude(verification: &Verification) -> (Outcome, Vec<String>) {
    // Mismatches first: they are what blocks; an errored interaction only
    // follows (a trigger that the renamed route broke, say).
    let mut failed: Vec<_> = verification.interactions.iter().filter(|i| !i.passed).collect();
    failed.sort_by_key(|i| i.mismatches.is_empty());
    let failures = failed
        .iter()
        .map(|i| {
            let why = i.mismatches.first().map(|m| format!("{} at {}", m.description, m.path)).or_else(|| i.error.clone());
            format!("{}: {}", i.description, why.unwrap_or_default())
        })
        .collect();
    let outcome = if verification.passed {
        Outcome::Passed
    } else if failed.iter().any(|i| !i.mismatches.is_empty()) {
        Outcome::Blocked
    } else {
        let why = failed.iter().find_map(|i| i.error.clone().map(|e| format!("{}: {e}", i.description))).or_else(|| verification.errors.first().cloned());
        Outcome::Errored { error: why.unwrap_or_else(|| "the verifier failed without a mismatch".into()) }
    };
    (outcome, failures)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::contract::report::{InteractionReport, JSON_VERSION, MismatchReport};

    fn verification(interactions: Vec<InteractionReport>) -> Verification {
        let passed = interactions.iter().all(|i| i.passed);
        Verification { version: JSON_VERSION, provider: "shop.product".into(), variant: Some("item-rename".into()), passed, elapsed: Duration::ZERO, interactions, errors: vec![], verifier_output: vec![] }
    }

    fn interaction(mismatch: bool, error: Option<&str>) -> InteractionReport {
        let mismatches = if mismatch {
            vec![MismatchReport::from_json(&serde_json::json!({"type": "StatusMismatch", "expected": 200, "actual": 404, "mismatch": "expected 200 but was 404"}))]
        } else {
            vec![]
        };
        InteractionReport {
            consumer: "shop.order".into(),
            description: "a request for product 1".into(),
            request: "GET /products/1".into(),
            states: vec![],
            passed: !mismatch && error.is_none(),
            mismatches,
            error: error.map(str::to_string),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn a_verifier_error_is_not_a_block() {
        let (outcome, failures) = conclude(&verification(vec![interaction(false, Some("connection refused"))]));
        assert_eq!(outcome, Outcome::Errored { error: "a request for product 1: connection refused".into() });
        assert_eq!(failures, ["a request for product 1: connection refused"]);
        let errored = Evidence { variant: Some("item-rename".into()), expect: Expectation::Fail, outcome, failures, verification: None };
        assert!(!errored.as_expected(), "a breaking variant that errored was not shown to be blocked");
        let (outcome, _) = conclude(&verification(vec![interaction(true, None), interaction(false, Some("trigger failed"))]));
        assert_eq!(outcome, Outcome::Blocked, "a mismatch is the pacts catching the change");
        assert_eq!(conclude(&verification(vec![interaction(false, None)])).0, Outcome::Passed);
    }
}
