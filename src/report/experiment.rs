//! An experiment's report beside its journal: a Markdown summary (fits a CI
//! step summary), JUnit XML (one test case per check, [`super::junit`]) and
//! one self-contained HTML page with SVG charts — availability, throughput
//! and latency over time with the fault window shaded, ready replicas over
//! time.

use std::fmt::Write;

use super::html::{STYLE, Series, shaded_line_chart};
use super::util::escape as html_escape;
use crate::chaos::{Journal, Status, Verdict};

/// The Markdown summary of an experiment run.
pub fn experiment_markdown(journal: &Journal) -> String {
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
    if let Some(load) = &journal.load {
        let _ = writeln!(out, "\n**Load** ({} users; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms) — availability by phase\n", load.users, load.p50_ms, load.p99_ms, load.max_ms);
        let _ = writeln!(out, "| route | before | during the fault | after recovery |\n|---|---|---|---|");
        for r in &load.routes {
            let cell = |f: &crate::chaos::PhaseFigures| format!("{} ({} ok, {} failed)", percent(f.availability), f.transactions, f.failed);
            let _ = writeln!(out, "| {} | {} | {} | {} |", r.route, cell(&r.before), cell(&r.during), cell(&r.after));
        }
        let [b, d, a] = &load.latency_by_phase;
        let _ = writeln!(out, "| latency p50 / p99 (worst second) | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} / {:.1} ms |", b.p50_ms, b.p99_ms, d.p50_ms, d.p99_ms, a.p50_ms, a.p99_ms);
    }
    if !journal.catch_up.is_empty() {
        let _ = writeln!(out, "\n**Consumer lag** (catch-up: back within {} events after the fault)\n\n| group | peak lag | caught up after |\n|---|---|---|", crate::chaos::CAUGHT_UP);
        for c in &journal.catch_up {
            let _ = writeln!(out, "| {} | {} | {} |", c.group, c.peak, c.caught_up_after.map(|t| format!("{t:.1} s")).unwrap_or_else(|| "not within the run".into()));
        }
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

/// An availability figure; a phase without traffic has none.
fn percent(availability: Option<f64>) -> String {
    availability.map(|a| format!("{a:.2} %")).unwrap_or_else(|| "no traffic".into())
}

/// The experiment run as one HTML page.
pub fn experiment_html(journal: &Journal) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>{STYLE}</head><body>", html_escape(&journal.title));
    let class = if journal.status == Verdict::Passed { "pass" } else { "fail" };
    let _ = writeln!(o, "<h1>{}</h1><p class=\"{class}\">{:?}</p>", html_escape(&journal.title), journal.status);
    if let Some(why) = &journal.deviated {
        let _ = writeln!(o, "<p><b>Why:</b> {}</p>", html_escape(why));
    }
    let _ = writeln!(o, "<p>{} on {}, {} → {}</p>", html_escape(&journal.experiment_file), html_escape(&journal.system), journal.start, journal.end.as_deref().unwrap_or("(running)"));
    o.push_str("<table><tr><th>phase</th><th>check</th><th>result</th><th>evidence</th></tr>\n");
    for (phase, r) in journal.results() {
        let class = match r.status {
            Status::Held => "pass",
            Status::Inconclusive | Status::Errored => "inconclusive",
            Status::Deviated => "fail",
        };
        let _ = writeln!(o, "<tr><td>{phase:?}</td><td style=\"text-align:left\">{}</td><td class=\"{class}\">{}</td><td style=\"text-align:left\">{}</td></tr>", html_escape(&r.name), r.status, html_escape(&r.evidence));
    }
    o.push_str("</table>\n");
    let window = match (journal.marks.fault_start, journal.marks.fault_end) {
        (Some(from), Some(to)) => Some((from, to)),
        _ => None,
    };
    if let Some(load) = &journal.load {
        o.push_str("<table><tr><th>route</th><th>before</th><th>during the fault</th><th>after recovery</th></tr>\n");
        for r in &load.routes {
            let _ = writeln!(o, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(&r.route), percent(r.before.availability), percent(r.during.availability), percent(r.after.availability));
        }
        let [b, d, a] = &load.latency_by_phase;
        let _ = writeln!(o, "<tr><td>latency p50 / p99 (worst second)</td><td>{:.1} / {:.1} ms</td><td>{:.1} / {:.1} ms</td><td>{:.1} / {:.1} ms</td></tr>", b.p50_ms, b.p99_ms, d.p50_ms, d.p99_ms, a.p50_ms, a.p99_ms);
        o.push_str("</table>\n");
        let series = |name, color, f: fn(&crate::chaos::Second) -> f64| Series { name, color, values: load.timeline.iter().map(f).collect() };
        o.push_str(&shaded_line_chart("Availability per second (fault shaded)", "%", &[series("availability", "#59a14f", |s| s.availability)], Some(100.0), window));
        o.push_str(&shaded_line_chart("Requests per second", "", &[series("requests", "#4e79a7", |s| s.requests as f64), series("failed", "#e15759", |s| s.failed as f64)], None, window));
        o.push_str(&shaded_line_chart("Latency per second", " ms", &[series("p50", "#4e79a7", |s| s.p50_ms), series("p99", "#f28e2b", |s| s.p99_ms)], None, window));
    }
    if !journal.replicas_over_time.is_empty() {
        const COLORS: [&str; 6] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b07aa1"];
        let seconds = journal.marks.end.ceil().max(1.0) as usize;
        let services: Vec<&String> = journal.replicas_over_time[0].ready.keys().collect();
        let series: Vec<Series> = services
            .iter()
            .enumerate()
            .map(|(i, name)| Series {
                name: name.as_str(),
                color: COLORS[i % COLORS.len()],
                // The last sample taken by each second.
                values: (0..=seconds)
                    .map(|s| journal.replicas_over_time.iter().rev().find(|r| r.t <= s as f64).or(journal.replicas_over_time.first()).and_then(|r| r.ready.get(*name)).copied().unwrap_or(0) as f64)
                    .collect(),
            })
            .collect();
        o.push_str(&shaded_line_chart("Ready replicas (fault shaded)", "", &series, None, window));
    }
    if !journal.lag_over_time.is_empty() {
        const COLORS: [&str; 4] = ["#e15759", "#4e79a7", "#59a14f", "#f28e2b"];
        let seconds = journal.marks.end.ceil().max(1.0) as usize;
        let groups: Vec<&String> = journal.catch_up.iter().map(|c| &c.group).collect();
        let series: Vec<Series> = groups
            .iter()
            .enumerate()
            .map(|(i, group)| Series {
                name: group.as_str(),
                color: COLORS[i % COLORS.len()],
                values: (0..=seconds)
                    .map(|s| journal.lag_over_time.iter().rev().find(|l| l.t <= s as f64).and_then(|l| l.lag.get(*group)).copied().unwrap_or(0) as f64)
                    .collect(),
            })
            .collect();
        o.push_str(&shaded_line_chart("Consumer lag, events behind (fault shaded): the read model's catch-up curve", "", &series, None, window));
        o.push_str("<table><tr><th>group</th><th>peak lag</th><th>caught up after</th></tr>\n");
        for c in &journal.catch_up {
            let _ = writeln!(o, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(&c.group), c.peak, c.caught_up_after.map(|t| format!("{t:.1} s")).unwrap_or_else(|| "—".into()));
        }
        o.push_str("</table>\n");
    }
    o.push_str("<h2>Method</h2><ul>\n");
    for a in &journal.run {
        let _ = writeln!(o, "<li>{} — {} {}</li>", html_escape(&a.action), a.status, html_escape(&a.detail));
    }
    let _ = writeln!(o, "</ul><h2>Rollback (verified: {})</h2><ul>", journal.rollback_verified.map(|v| if v { "yes" } else { "NO" }).unwrap_or("not run"));
    for r in &journal.rollbacks {
        let _ = writeln!(o, "<li>{} — {} {}</li>", html_escape(&r.change), r.status, html_escape(&r.detail));
    }
    o.push_str("</ul></body></html>\n");
    o
}

/// Writes a run's Markdown, JUnit and HTML reports beside its journal, in `dir`.
pub fn write_experiment_reports(dir: &std::path::Path, journal: &Journal) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.md"), experiment_markdown(journal))?;
    std::fs::write(dir.join("junit.xml"), super::junit::experiment_junit(journal))?;
    std::fs::write(dir.join("report.html"), experiment_html(journal))?;
    Ok(())
}
