//! JUnit XML: one `<testcase>` per threshold (a failed gate is a
//! `<failure>`), so CI systems show gates as tests. A run without
//! thresholds gives one test case that passes when any request succeeded.

use std::fmt::Write;

use crate::load::{LoadSummary, ThresholdResult};

use super::util::{escape, rfc3339};

/// The run as a JUnit XML document named `suite`.
pub fn junit_xml(suite: &str, s: &LoadSummary, results: &[ThresholdResult]) -> String {
    let secs = s.elapsed.as_secs_f64();
    let mut cases = String::new();
    let mut failures = 0;
    if results.is_empty() {
        let ok = s.figures.successful > 0;
        let _ = writeln!(cases, "    <testcase classname=\"stormproof.siege\" name=\"run\" time=\"{secs:.6}\">");
        if !ok {
            failures = 1;
            let _ = writeln!(cases, "      <failure message=\"no successful request\" type=\"run\"/>");
        }
        let _ = writeln!(cases, "    </testcase>");
    }
    for r in results {
        let name = escape(&r.threshold.source);
        let _ = writeln!(cases, "    <testcase classname=\"stormproof.siege.thresholds\" name=\"{name}\" time=\"{secs:.6}\">");
        if !r.passed {
            failures += 1;
            let _ = writeln!(
                cases,
                "      <failure message=\"{}\" type=\"threshold\">{}</failure>",
                escape(&r.message),
                escape(&r.message)
            );
        } else {
            let _ = writeln!(cases, "      <system-out>{}</system-out>", escape(&r.message));
        }
        let _ = writeln!(cases, "    </testcase>");
    }
    let tests = results.len().max(1);
    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        o,
        "<testsuites name=\"stormproof\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{secs:.6}\">"
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{secs:.6}\" timestamp=\"{}\">",
        escape(suite),
        rfc3339(s.started_unix_ms)
    );
    let _ = writeln!(o, "    <properties>");
    for (k, v) in [
        ("transactions", s.transactions().to_string()),
        ("availability", format!("{:.2}", s.availability())),
        ("transaction_rate", format!("{:.2}", s.transaction_rate())),
        ("p95_us", s.latency.p95_us.to_string()),
        ("p99_us", s.latency.p99_us.to_string()),
    ] {
        let _ = writeln!(o, "      <property name=\"{k}\" value=\"{v}\"/>");
    }
    let _ = writeln!(o, "    </properties>");
    o.push_str(&cases);
    let _ = writeln!(o, "  </testsuite>");
    let _ = writeln!(o, "</testsuites>");
    o
}
