//! Checkpoint 12 of the course ("a contract-breaking provider change is
//! blocked"), as evidence a checker can score: the product passes its
//! consumers' pacts, the course's breaking variants fail them, and the
//! backward-compatible variant passes again.

use std::path::Path;

use super::verify::{PactSource, VerifyPlan, verify};

/// One verification the checkpoint ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    /// The product variant verified (`""`: the normal product).
    pub variant: String,
    /// Whether it should pass.
    pub expected_pass: bool,
    /// Whether it passed.
    pub passed: bool,
    /// The failures' summary lines (interaction and first mismatch).
    pub failures: Vec<String>,
}

/// Variants and whether the pacts must accept them.
const CASES: &[(&str, bool)] = &[("", true), ("item-rename", false), ("drop-product-name", false), ("item-rename-compatible", true)];

/// Verifies `shop.product` and its variants against the pacts in `pacts`
/// (providers started with `exe`, default this binary); the checkpoint holds
/// when every verdict is as expected.
pub async fn breaking_change_is_blocked(pacts: &Path, exe: Option<&Path>) -> anyhow::Result<(bool, Vec<Evidence>)> {
    let mut evidence = Vec::new();
    for (variant, expected_pass) in CASES {
        let plan = VerifyPlan {
            provider: "shop.product".into(),
            source: PactSource::Path(pacts.to_path_buf()),
            base_url: None,
            kafka: None,
            variant: (!variant.is_empty()).then(|| variant.to_string()),
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
        evidence.push(Evidence { variant: variant.to_string(), expected_pass: *expected_pass, passed: verification.passed, failures });
    }
    Ok((evidence.iter().all(|e| e.passed == e.expected_pass), evidence))
}
