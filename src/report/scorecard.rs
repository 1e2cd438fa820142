//! The checkpoint scorecard for people: an aligned table for the terminal
//! and a Markdown table (`scorecard.md`). Its JSON form is the
//! [`crate::check::Scorecard`] itself, described by `scorecard.schema.json`.

use crate::check::Score;

/// The JSON schema of `scorecard.json` (JSON Schema 2020-12).
pub const SCORECARD_SCHEMA: &str = include_str!("scorecard.schema.json");

/// The scorecard as an aligned table: number, checkpoint, verdict, evidence.
pub fn scorecard_table(scores: &[Score]) -> String {
    let width = scores.iter().map(|s| s.name.chars().count()).max().unwrap_or(10);
    let verdicts = scores.iter().map(|s| s.verdict.as_str().len()).max().unwrap_or(8).max(8);
    let mut out = format!("{:>3}  {:<width$}  {:<verdicts$}  EVIDENCE\n", "#", "CHECKPOINT", "VERDICT");
    for s in scores {
        let pad = width.saturating_sub(s.name.chars().count());
        out.push_str(&format!("{:>3}  {}{}  {:<verdicts$}  {}\n", s.id, s.name, " ".repeat(pad), s.verdict.as_str().to_uppercase(), s.evidence));
    }
    out
}

/// The scorecard of `system` as a Markdown document.
pub fn scorecard_markdown(system: &str, scores: &[Score]) -> String {
    let mut out = format!("# {system} checkpoints\n\n| # | checkpoint | verdict | evidence |\n|---|---|---|---|\n");
    for s in scores {
        out.push_str(&format!("| {} | {} | {} | {} |\n", s.id, s.name, s.verdict, s.evidence.replace('|', "\\|")));
    }
    out
}
