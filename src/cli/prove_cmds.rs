//! `stormproof check SYSTEM --prove`: the scorecard's mutation matrix. The
//! console gets a line as each system's scorecard starts and ends and one
//! per experiment, prefixed with the system; then the matrix, each broken
//! system's reason, and any verdict it changed elsewhere.

use super::check_cmds::{StdoutTo, verdict_word};
use crate::check::Event;
use crate::check::prove::{Column, Proof, ProveEvent, ProvePlan, conclusion_text, prove as run_proof};
use crate::exit::Outcome;

/// The checkpoints `--prove=IDS` names (`None`: all).
pub(super) fn ids(text: &str) -> anyhow::Result<Option<Vec<u8>>> {
    if text == "all" {
        return Ok(None);
    }
    text.split(',')
        .map(|id| id.trim().parse::<u8>().map_err(|_| anyhow::anyhow!("--prove: `{id}` is not a checkpoint number (expected e.g. --prove=1,5)")))
        .collect::<anyhow::Result<Vec<u8>>>()
        .map(Some)
}

pub(super) fn prove(plan: ProvePlan, verbose: bool) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&plan.dir)?;
    let proof = {
        // The Pact verifier prints its report on stdout: into a file until the matrix.
        let _quiet = StdoutTo::file(&plan.dir.join("stdout.log"))?;
        tokio::task::block_in_place(|| run_proof(&plan, &|event| show(&event, verbose)))?
    };
    print!("{}", table(&proof));
    println!(
        "{} — {:.0} s with {} broken system(s) at a time; prove.md and prove.json in {}",
        if proof.holds { "the proof holds" } else { "the proof does NOT hold" },
        proof.elapsed_seconds,
        proof.jobs,
        plan.dir.display()
    );
    Ok(if proof.holds { Outcome::Passed } else { Outcome::Failed })
}

fn name(column: &Column) -> String {
    column.folder()
}

fn show(event: &ProveEvent, verbose: bool) {
    match event {
        ProveEvent::Started { column, label } if label.is_empty() => eprintln!("▸ [{}] the system as it is", name(column)),
        ProveEvent::Started { column, label } => eprintln!("▸ [{}] the system with {label}", name(column)),
        ProveEvent::Ended { column, outcome: Ok(card), seconds } => {
            let verdicts: Vec<String> = card.checkpoints.iter().map(|s| format!("{} {}", s.id, s.verdict)).collect();
            eprintln!("  [{}] scorecard in {seconds:.0} s: {}", name(column), verdicts.join(", "));
        }
        ProveEvent::Ended { column, outcome: Err(err), seconds } => eprintln!("  [{}] could not be checked ({seconds:.0} s): {err}", name(column)),
        ProveEvent::Check(column, Event::ExperimentEnded { name: experiment, verdict, elapsed, why, .. }) => {
            let why = why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
            eprintln!("  [{}] {experiment}: {} in {:.1} s{why}", name(column), verdict_word(*verdict), elapsed.as_secs_f64());
        }
        ProveEvent::Check(column, Event::CaseVerified { provider, evidence, elapsed, .. }) => {
            let who = evidence.variant.as_deref().map(|v| format!("{provider} as {v}")).unwrap_or_else(|| provider.clone());
            eprintln!("  [{}] contract {who}: {:?} in {:.1} s", name(column), evidence.outcome, elapsed.as_secs_f64());
            if verbose {
                eprintln!("{}", evidence.transcript());
            }
        }
        ProveEvent::Check(column, Event::Warning(notice)) => eprintln!("  [{}] warning: {notice}", name(column)),
        ProveEvent::Check(_, _) => {}
    }
}

/// The matrix on the console: a row per checkpoint, the real system and its
/// broken one, then the broken systems' reasons and changes.
fn table(proof: &Proof) -> String {
    let width = proof.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(10).max(10);
    let variants = proof.rows.iter().map(|r| r.variants.as_deref().unwrap_or("—").chars().count()).max().unwrap_or(6).max(14);
    let verdict = |s: Option<&crate::check::Score>| s.map(|s| s.verdict.as_str().to_uppercase()).unwrap_or_else(|| "—".into());
    let mut out = format!("{:>3}  {:<width$}  {:<12}  {:<variants$}  {:<12}  CONCLUSION\n", "#", "CHECKPOINT", "REAL", "BROKEN VARIANT", "ON IT");
    for row in &proof.rows {
        let pad = width.saturating_sub(row.name.chars().count());
        let label = row.variants.as_deref().unwrap_or("—");
        let vpad = variants.saturating_sub(label.chars().count());
        out.push_str(&format!(
            "{:>3}  {}{}  {:<12}  {label}{}  {:<12}  {}\n",
            row.id,
            row.name,
            " ".repeat(pad),
            verdict(row.real.as_ref()),
            " ".repeat(vpad),
            verdict(row.broken.as_ref()),
            conclusion_text(row)
        ));
    }
    for row in proof.rows.iter().filter(|r| r.broken.is_some()) {
        let why = row.broken.as_ref().map(|s| s.evidence.as_str()).unwrap_or_default();
        out.push_str(&format!("\n{:>3}  without {}: {why}", row.id, row.lacks.as_deref().unwrap_or_default()));
        for change in &row.changes {
            let how = if change.declared { "declared in `also`" } else { "UNDECLARED" };
            out.push_str(&format!("\n     also changed {}: {} → {} ({how}): {}", change.id, change.real, change.broken, change.evidence));
        }
    }
    out.push('\n');
    out
}
