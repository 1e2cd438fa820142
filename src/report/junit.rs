//! JUnit XML, so CI systems show stormproof's verdicts as tests: a load
//! run's thresholds, an experiment's checks, a contract verification's
//! interactions — one writer for all three (quick-junit, which also strips
//! what XML cannot carry: control characters and ANSI escapes).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::chaos::{Journal, Status};
use crate::contract::Verification;
use crate::load::{LoadSummary, ThresholdResult};

/// A load run as a JUnit document named `suite`: one test case per
/// threshold (a failed gate is a failure); a run without thresholds gives
/// one test case that passes when any request succeeded.
pub fn junit_xml(suite: &str, s: &LoadSummary, results: &[ThresholdResult]) -> String {
    let mut tests = TestSuite::new(suite);
    tests.set_time(s.elapsed);
    if let Some(started) = chrono::DateTime::from_timestamp_millis(s.started_unix_ms as i64) {
        tests.set_timestamp(started.fixed_offset());
    }
    for (name, value) in [
        ("transactions", s.transactions().to_string()),
        ("availability", format!("{:.2}", s.availability())),
        ("transaction_rate", format!("{:.2}", s.transaction_rate())),
        ("p95_us", s.latency.p95_us.to_string()),
        ("p99_us", s.latency.p99_us.to_string()),
    ] {
        tests.add_property(Property::new(name, value));
    }
    if results.is_empty() {
        let status = if s.figures.successful > 0 { TestCaseStatus::success() } else { failure("no successful request", "run", None) };
        tests.add_test_case(case("run", "stormproof.siege", status, s.elapsed));
    }
    for r in results {
        let mut case = case(&r.threshold.source, "stormproof.siege.thresholds", if r.passed { TestCaseStatus::success() } else { failure(&r.message, "threshold", Some(&r.message)) }, s.elapsed);
        if r.passed {
            case.set_system_out(r.message.as_str());
        }
        tests.add_test_case(case);
    }
    document("stormproof", [tests])
}

/// An experiment run: one test case per check (a deviation is a failure of
/// type `deviated`, a check that saw too little a failure of type
/// `inconclusive`, a probe that could not run an error), and one for the
/// verified rollback.
pub fn experiment_junit(journal: &Journal) -> String {
    let mut suite = TestSuite::new(journal.title.as_str());
    for (phase, result) in journal.results() {
        let status = match result.status {
            Status::Held => TestCaseStatus::success(),
            Status::Deviated => failure(&result.evidence, "deviated", None),
            Status::Inconclusive => failure(&format!("inconclusive: {}", result.evidence), "inconclusive", None),
            Status::Errored => error(&result.evidence),
        };
        suite.add_test_case(case(&result.name, &format!("{}.{phase:?}", journal.system), status, Duration::from_millis(result.took_ms)));
    }
    let rollback = match journal.rollback_verified {
        Some(false) => failure("touched services not ready again", "rollback", None),
        _ => TestCaseStatus::success(),
    };
    suite.add_test_case(case("rollback verified", &format!("{}.Rollback", journal.system), rollback, Duration::ZERO));
    document(&journal.title, [suite])
}

/// A contract verification: one test suite per consumer, one test case per
/// interaction, each failure carrying its mismatches.
pub fn verification_junit(v: &Verification) -> String {
    let mut consumers: Vec<&str> = v.interactions.iter().map(|i| i.consumer.as_str()).collect();
    consumers.dedup();
    let suites = consumers.into_iter().map(|consumer| {
        let mut suite = TestSuite::new(format!("{consumer} → {}", v.provider));
        for i in v.interactions.iter().filter(|i| i.consumer == consumer) {
            let status = if i.passed {
                TestCaseStatus::success()
            } else {
                let mut body = String::new();
                if let Some(error) = &i.error {
                    body.push_str(&format!("error: {error}\n"));
                }
                for m in &i.mismatches {
                    body.push_str(&format!("{} at {}: expected {} but was {}\n", m.kind, dash(&m.path), dash(&m.expected), dash(&m.actual)));
                }
                let first = body.lines().next().unwrap_or("failed").to_string();
                failure(&first, "contract", Some(&body))
            };
            suite.add_test_case(case(&i.description, &format!("{}.{consumer}", v.provider), status, i.duration));
        }
        suite
    });
    let mut report = Report::new(format!("stormproof contract verify {}", v.provider));
    report.set_time(v.elapsed);
    report.add_test_suites(suites);
    serialize(&report)
}

fn case(name: &str, classname: &str, status: TestCaseStatus, time: Duration) -> TestCase {
    let mut case = TestCase::new(name, status);
    case.set_classname(classname).set_time(time);
    case
}

fn failure(message: &str, kind: &str, description: Option<&str>) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(message).set_type(kind);
    if let Some(description) = description {
        status.set_description(description);
    }
    status
}

fn error(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status.set_message(message).set_type("errored");
    status
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn document(name: &str, suites: impl IntoIterator<Item = TestSuite>) -> String {
    let mut report = Report::new(name);
    report.add_test_suites(suites);
    serialize(&report)
}

fn serialize(report: &Report) -> String {
    // Writing to a string fails only on an I/O error, which a string has not.
    report.to_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::{CheckResult, Phase, ProbeKind, Verdict};

    #[test]
    fn control_characters_and_markup_never_break_the_document() {
        let mut journal = Journal::new("t <&> \"q\"", "f.yaml", "shop", std::path::Path::new("."), std::env::temp_dir().join("unused-journal.json"));
        let evidence = "GET /x → 500: body \u{1b}[31m\u{0}\u{7}boom</failure>".to_string();
        journal.record(Phase::During, CheckResult { name: "n\u{8}".into(), status: Status::Deviated, probe: ProbeKind::Flow, evidence, took_ms: 12, route: None });
        journal.status = Verdict::Failed;
        let xml = experiment_junit(&journal);
        assert!(!xml.chars().any(|c| (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t')), "{xml:?}");
        assert!(xml.contains("&lt;/failure&gt;") && xml.contains("t &lt;&amp;&gt;"), "{xml}");
        assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
        assert!(xml.contains("tests=\"2\""), "the check and the rollback: {xml}");
    }

    #[test]
    fn an_inconclusive_check_is_named_as_such() {
        let mut journal = Journal::new("t", "f.yaml", "shop", std::path::Path::new("."), std::env::temp_dir().join("unused-journal.json"));
        let evidence = "POST /orders over seconds 2–6: 0 transactions, 0 failed, fewer than the 20 needed".to_string();
        journal.record(Phase::During, CheckResult { name: "available".into(), status: Status::Inconclusive, probe: ProbeKind::Availability, evidence, took_ms: 0, route: Some("POST /orders".into()) });
        journal.status = Verdict::Inconclusive;
        let xml = experiment_junit(&journal);
        assert!(xml.contains("type=\"inconclusive\"") && xml.contains("message=\"inconclusive: POST /orders"), "{xml}");
        assert!(crate::report::experiment_markdown(&journal).contains("| available | inconclusive |"));
        assert!(crate::report::experiment_html(&journal).contains("class=\"inconclusive\">inconclusive<"));
    }
}
