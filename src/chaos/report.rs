//! A run's report beside its journal: a Markdown summary (fits a CI step
//! summary) and JUnit XML (one test case per check) for CI dashboards.

use std::fmt::Write;

use super::journal::{Journal, Verdict};

/// The Markdown summary of a run.
pub fn markdown(journal: &Journal) -> String {
    let mut out = String::new();
    let icon = if journal.status == Verdict::Passed { "✅" } else { "❌" };
    let _ = writeln!(out, "# {icon} {} — {:?}\n", journal.title, journal.status);
    let _ = writeln!(out, "Experiment `{}` on `{}`, {} → {}\n", journal.experiment_file, journal.system, journal.start, journal.end.as_deref().unwrap_or("(running)"));
    if let Some(deviated) = &journal.deviated {
        let _ = writeln!(out, "**Why:** {deviated}\n");
    }
    let _ = writeln!(out, "| phase | check | result | evidence | time |\n|---|---|---|---|---|");
    for (phase, result) in journal.results() {
        let _ = writeln!(out, "| {phase:?} | {} | {} | {} | {:.1}s |", result.name, result.status, result.evidence.replace('|', "\\|"), result.took_ms as f64 / 1000.0);
    }
    let _ = writeln!(out, "\n**Method**\n");
    for activity in &journal.run {
        let _ = writeln!(out, "- {} — {} {}", activity.action, activity.status, activity.detail);
    }
    let _ = writeln!(out, "\n**Rollback** (verified: {})\n", journal.rollback_verified.map(|v| if v { "yes" } else { "NO" }).unwrap_or("not run"));
    for rollback in &journal.rollbacks {
        let _ = writeln!(out, "- {} — {} {}", rollback.change, rollback.status, rollback.detail);
    }
    out
}

/// JUnit XML: one test case per check, failures carrying the evidence.
pub fn junit(journal: &Journal) -> String {
    let results: Vec<_> = journal.results().collect();
    let failures = results.iter().filter(|(_, r)| r.status == "deviated").count();
    let errors = results.iter().filter(|(_, r)| r.status == "errored").count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">", xml(&journal.title), results.len() + 1);
    for (phase, result) in &results {
        let _ = write!(out, "  <testcase classname=\"{}.{phase:?}\" name=\"{}\" time=\"{:.3}\"", xml(&journal.system), xml(&result.name), result.took_ms as f64 / 1000.0);
        match result.status.as_str() {
            "held" => out.push_str("/>\n"),
            "deviated" => {
                let _ = writeln!(out, "><failure message=\"{}\"/></testcase>", xml(&result.evidence));
            }
            _ => {
                let _ = writeln!(out, "><error message=\"{}\"/></testcase>", xml(&result.evidence));
            }
        }
    }
    let _ = write!(out, "  <testcase classname=\"{}.Rollback\" name=\"rollback verified\"", xml(&journal.system));
    match journal.rollback_verified {
        Some(false) => out.push_str("><failure message=\"touched services not ready again\"/></testcase>\n"),
        _ => out.push_str("/>\n"),
    }
    out.push_str("</testsuite>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
