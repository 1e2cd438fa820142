//! Markdown summary sized for a CI step summary (`$GITHUB_STEP_SUMMARY`):
//! verdict, siege's figures, percentiles, gates, status codes and failures.

use std::fmt::Write;

use crate::load::{Counting, LoadSummary, ThresholdResult};

use super::util::{ms, siege_figures};

/// The run as Markdown.
pub fn markdown_summary(title: &str, s: &LoadSummary, results: &[ThresholdResult]) -> String {
    let mut o = String::new();
    let failed = results.iter().filter(|r| !r.passed).count();
    let verdict = if results.is_empty() {
        "no thresholds".to_string()
    } else if failed == 0 {
        format!("✅ all {} thresholds passed", results.len())
    } else {
        format!("❌ {failed} of {} thresholds failed", results.len())
    };
    let _ = writeln!(o, "## {}\n\n**{verdict}** — {} users, {:.3} s, counting: {}\n", md(title), s.users, s.elapsed_time(), match s.counting {
        Counting::Siege => "siege",
        Counting::Stormproof => "stormproof",
    });
    let _ = writeln!(o, "| Figure | Value |\n|---|---:|");
    for (k, v) in siege_figures(s) {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let l = &s.latency;
    let _ = writeln!(o, "\n| p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms |\n|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(o, "| {} | {} | {} | {} | {} | {} |", ms(l.p50_us), ms(l.p90_us), ms(l.p95_us), ms(l.p99_us), ms(l.p999_us), ms(l.max_us));
    if !results.is_empty() {
        let _ = writeln!(o, "\n| Threshold | Result | Detail |\n|---|---|---|");
        for r in results {
            let _ = writeln!(o, "| `{}` | {} | {} |", r.threshold.source.replace('|', "\\|"), if r.passed { "✅ pass" } else { "❌ fail" }, md(&r.message));
        }
    }
    let codes: Vec<String> = s.figures.status_codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    let _ = writeln!(o, "\n**Status codes:** {}", if codes.is_empty() { "none".into() } else { codes.join(", ") });
    if !s.figures.failures.is_empty() {
        let f: Vec<String> = s.figures.failures.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        let _ = writeln!(o, "\n**Failures:** {}", f.join(", "));
    }
    if s.routes.len() > 1 {
        let _ = writeln!(o, "\n| Route | Transactions | Failed | Availability % | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|");
        for r in &s.routes {
            let _ = writeln!(o, "| `{}` | {} | {} | {:.2} | {} | {} |", r.route, r.figures.transactions, r.figures.failed, r.figures.availability(), ms(r.latency.p50_us), ms(r.latency.p99_us));
        }
    }
    o
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('<', "&lt;")
}
