//! A contract checkpoint (the course's checkpoint 12, "a contract-breaking
//! provider change is blocked") as evidence a checker can score: a provider
//! verified against its consumers' pacts as it is and as variants, each
//! case with what it must conclude (from the system's `checkpoints.yaml`).

use std::path::Path;

use super::verify::{PactSource, ProviderSide, VerifyPlan, verify};
use crate::check::checkpoint::{ContractCheck, Expectation};

/// One verification the checkpoint ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    /// The provider variant verified (none: the provider as it is).
    pub variant: Option<String>,
    /// What it must conclude.
    #[serde(skip)]
    pub expect: Expectation,
    /// Whether it passed.
    pub passed: bool,
    /// The failures' summary lines (interaction and first mismatch).
    pub failures: Vec<String>,
}

/// Runs every case of `check` against the pacts in `pacts`, with the
/// provider's side (`side`: its system, triggers and states); providers are
/// started with `exe` (default this binary).
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
        let verification = verify(&plan).await?;
        let failures = verification
            .interactions
            .iter()
            .filter(|i| !i.passed)
            .map(|i| {
                let why = i.error.clone().or_else(|| i.mismatches.first().map(|m| format!("{} at {}", m.description, m.path)));
                format!("{}: {}", i.description, why.unwrap_or_default())
            })
            .collect();
        evidence.push(Evidence { variant: case.variant.clone(), expect: case.expect, passed: verification.passed, failures });
    }
    Ok(evidence)
}
