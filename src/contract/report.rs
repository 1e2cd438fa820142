//! A verification report: one entry per interaction verified, with its
//! mismatches (what was expected where, and what the provider did). Written
//! as readable text, as JSON (versioned) and as JUnit XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Version of the JSON report layout.
pub const JSON_VERSION: u32 = 1;

/// The outcome of verifying one provider.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Layout version of this document.
    pub version: u32,
    /// The provider verified.
    pub provider: String,
    /// Provider variant, when stormproof started a variant.
    pub variant: Option<String>,
    /// True when every interaction passed.
    pub passed: bool,
    /// Wall time of the whole verification (provider start included).
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
    /// Every interaction verified.
    pub interactions: Vec<InteractionReport>,
    /// Errors outside any interaction (a pact that failed to load).
    pub errors: Vec<String>,
    /// The Pact verifier's own text, line by line (it also prints it).
    #[serde(skip)]
    pub verifier_output: Vec<String>,
}

/// One interaction of one pact.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractionReport {
    /// Consumer of the pact.
    pub consumer: String,
    /// Interaction description.
    pub description: String,
    /// `GET /products/1` for HTTP, `message` for messages.
    pub request: String,
    /// Provider states it was verified in.
    pub states: Vec<String>,
    /// True when the provider did what the consumer expects.
    pub passed: bool,
    /// Differences found (empty when passed or when `error` is set).
    pub mismatches: Vec<MismatchReport>,
    /// Why it could not be compared (connection refused, trigger failed…).
    pub error: Option<String>,
    /// Time spent on it.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

/// One difference between what a consumer expects and what the provider did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MismatchReport {
    /// Pact's mismatch type (`StatusMismatch`, `BodyMismatch`…).
    pub kind: String,
    /// Where: a JSON path for bodies, a header or query name, or the request path.
    pub path: String,
    /// Expected value.
    pub expected: String,
    /// Actual value.
    pub actual: String,
    /// Pact's own sentence.
    pub description: String,
}

impl MismatchReport {
    /// From the JSON form of a pact_matching mismatch (`Mismatch::to_json`).
    pub fn from_json(value: &serde_json::Value) -> MismatchReport {
        let text = |key: &str| match &value[key] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let path = ["path", "key", "parameter"].iter().map(|k| text(k)).find(|s| !s.is_empty()).unwrap_or_default();
        MismatchReport { kind: text("type"), path, expected: text("expected"), actual: text("actual"), description: text("mismatch") }
    }
}

impl Verification {
    /// Number of interactions that failed.
    pub fn failures(&self) -> usize {
        self.interactions.iter().filter(|i| !i.passed).count()
    }

    /// The readable report: one line per interaction, and for each failure
    /// its mismatches as path, expected, actual.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let variant = self.variant.as_deref().map(|v| format!(" (variant {v})")).unwrap_or_default();
        let _ = writeln!(out, "Verifying provider {}{variant}", self.provider);
        for i in &self.interactions {
            let mark = if i.passed { "ok  " } else { "FAIL" };
            let states = if i.states.is_empty() { String::new() } else { format!(" given {}", i.states.join(", ")) };
            let _ = writeln!(out, "  {mark} {} ← {}: {} [{}]{states}", self.provider, i.consumer, i.description, i.request);
            if let Some(error) = &i.error {
                let _ = writeln!(out, "         error: {error}");
            }
            for m in &i.mismatches {
                let _ = writeln!(out, "         {} at {}: expected {} but was {}", m.kind, display(&m.path), display(&m.expected), display(&m.actual));
                if !m.description.is_empty() {
                    let _ = writeln!(out, "           {}", m.description);
                }
            }
        }
        for error in &self.errors {
            let _ = writeln!(out, "  ERROR {error}");
        }
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            out,
            "{verdict}: {} of {} interactions passed in {:.1}s",
            self.interactions.len() - self.failures(),
            self.interactions.len(),
            self.elapsed.as_secs_f64()
        );
        out
    }

    /// The JSON report.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A JUnit XML report: one test suite per consumer, one test case per
    /// interaction.
    pub fn to_junit(&self) -> String {
        crate::report::verification_junit(self)
    }
}

fn display(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_names_the_failure() {
        let v = Verification {
            version: JSON_VERSION,
            provider: "shop.product".into(),
            variant: None,
            passed: false,
            elapsed: Duration::from_millis(1500),
            interactions: vec![InteractionReport {
                consumer: "shop.order".into(),
                description: "a request for product 1".into(),
                request: "GET /products/1".into(),
                states: vec![],
                passed: false,
                mismatches: vec![MismatchReport::from_json(&serde_json::json!({
                    "type": "StatusMismatch", "expected": 200, "actual": 404, "mismatch": "expected 200 but was 404"
                }))],
                error: None,
                duration: Duration::from_millis(3),
            }],
            errors: vec![],
            verifier_output: vec![],
        };
        let junit = v.to_junit();
        assert!(junit.contains("failures=\"1\""), "{junit}");
        assert!(junit.contains("StatusMismatch at -: expected 200 but was 404"), "{junit}");
        assert!(v.to_text().contains("[GET /products/1]"));
    }
}
