//! The scorecard's mutation matrix (`check SYSTEM --prove`): a PASS is
//! worth as much as the FAIL the same checkpoint gives a system that lacks
//! what it checks. The real system's scorecard runs once and must pass;
//! then, for every checkpoint with a `broken:` entry, the whole scorecard
//! (every checkpoint in scope, not only the broken one) runs again on a
//! fresh system started with that entry's variants, on its own ports and
//! in its own folder. The checkpoint must FAIL there with its reason named
//! (inconclusive is no proof), and every other checkpoint must keep its
//! verdict unless the entry declares it in `also`.
//!
//! The plan is sound rather than short: each variant system gets every
//! experiment and contract case in scope, so a variant that breaks a
//! checkpoint nobody expected shows up as an off-diagonal change. Variant
//! systems run `jobs` at a time, each in a thread with its own runtime.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint::{Broken, Checkpoints, Scored};
use super::run::{CheckPlan, Event, Scorecard, Where, run};
use super::score::{Score, Verdict};
use crate::systems::System;

/// What to prove.
pub struct ProvePlan {
    /// The system.
    pub system: System,
    /// Its checkpoints in scope (all, or those `--prove=IDS` names).
    pub checkpoints: Checkpoints,
    /// Where `prove.json`, `prove.md` and each system's scorecard go.
    pub dir: PathBuf,
    /// Pacts to verify contracts against (default: the system's).
    pub pacts: Option<PathBuf>,
    /// Checkpoint names in the course's Korean.
    pub korean: bool,
    /// Variant systems run at a time (at least 1).
    pub jobs: usize,
}

/// Which system a scorecard is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Column {
    /// The system as it is.
    #[serde(rename = "real")]
    Real,
    /// The broken variant of this checkpoint.
    #[serde(rename = "broken")]
    Broken(u8),
}

impl Column {
    /// The folder of its scorecard under the proof's folder.
    pub fn folder(&self) -> String {
        match self {
            Column::Real => "real".into(),
            Column::Broken(id) => format!("broken-{id}"),
        }
    }
}

/// What happens during a proof, as it happens.
#[derive(Debug, Clone)]
pub enum ProveEvent {
    /// A system's scorecard began.
    Started {
        /// Which system.
        column: Column,
        /// Its variants (`service=variant`), none for the real one.
        label: String,
    },
    /// Something happened in that scorecard's run.
    Check(Column, Event),
    /// A system's scorecard ended.
    Ended {
        /// Which system.
        column: Column,
        /// Its scorecard, or why it could not run.
        outcome: Result<Box<Scorecard>, String>,
        /// Its wall time in seconds.
        seconds: f64,
    },
}

/// What one checkpoint's row concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "conclusion", content = "why", rename_all = "snake_case")]
pub enum Conclusion {
    /// It passes on the real system, fails on its broken one with a reason,
    /// and no other checkpoint changed undeclared.
    Proven,
    /// The real system does not pass it, so there is nothing to prove.
    RealDoesNotPass,
    /// Its broken system still passes it: the checkpoint cannot tell.
    BrokenStillPasses,
    /// Its broken system left it inconclusive: not a proof.
    BrokenInconclusive,
    /// Its broken system failed it without saying why.
    NoReason,
    /// The broken system could not be started or checked.
    CouldNotRun(String),
    /// Other checkpoints changed verdict on its broken system, undeclared.
    OthersChanged(Vec<u8>),
    /// Scored, but no `broken:` entry: its PASS is not proven.
    NoBrokenVariant,
    /// Not run: the real system did not pass every checkpoint.
    NotRun,
    /// Not automated (not yet, not applicable): there is no PASS to prove.
    NotAutomated,
}

impl Conclusion {
    /// Whether the row lets the proof hold (a checkpoint with nothing to
    /// prove does; anything short of a proof does not).
    pub fn holds(&self) -> bool {
        matches!(self, Conclusion::Proven | Conclusion::NotAutomated)
    }
}

/// Another checkpoint's verdict on a broken system, when it differs from the real one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The checkpoint.
    pub id: u8,
    /// Its verdict on the real system.
    pub real: Verdict,
    /// Its verdict on the broken one.
    pub broken: Verdict,
    /// The broken system's evidence for it.
    pub evidence: String,
    /// Declared in the entry's `also`.
    pub declared: bool,
}

/// One checkpoint of the matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The checkpoint.
    pub id: u8,
    /// Its name.
    pub name: String,
    /// Its score on the real system.
    pub real: Option<Score>,
    /// Its broken system (`service=variant+…`), if it has one.
    pub variants: Option<String>,
    /// What that system lacks.
    pub lacks: Option<String>,
    /// Its score on its broken system, if that ran.
    pub broken: Option<Score>,
    /// Other checkpoints whose verdict the broken system changed.
    pub changes: Vec<Change>,
    /// What the row concluded.
    pub conclusion: Conclusion,
}

/// The whole proof, as `prove.json` carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proof {
    /// The system.
    pub system: String,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub elapsed_seconds: f64,
    /// Variant systems run at a time.
    pub jobs: usize,
    /// Every row holds.
    pub holds: bool,
    /// One row per checkpoint in scope.
    pub rows: Vec<Row>,
}

/// A scorecard, or why there is none.
pub type Outcome = Result<Scorecard, String>;

/// Runs `plan`: the real system's scorecard, then each broken one's; writes
/// `prove.json` and `prove.md`; `progress` hears what happens.
pub fn prove(plan: &ProvePlan, progress: &(dyn Fn(ProveEvent) + Sync)) -> anyhow::Result<Proof> {
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    std::fs::create_dir_all(&plan.dir)?;
    let real = scorecard(plan, &Column::Real, &[], progress);
    let broken: Vec<(u8, Broken)> = plan.checkpoints.list.iter().filter_map(|c| Some((c.id, c.broken.clone()?))).collect();
    let columns: Vec<(u8, Outcome)> = match &real {
        Ok(card) if card.passed => in_parallel(plan, &broken, progress),
        _ => Vec::new(),
    };
    let rows = matrix(&plan.checkpoints, &real, &columns);
    let proof = Proof {
        system: plan.system.name().to_string(),
        started_at,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        jobs: plan.jobs,
        holds: rows.iter().all(|r| r.conclusion.holds()),
        rows,
    };
    std::fs::write(plan.dir.join("prove.json"), serde_json::to_vec_pretty(&proof)?)?;
    std::fs::write(plan.dir.join("prove.md"), markdown(&proof))?;
    Ok(proof)
}

/// Runs the broken systems, `plan.jobs` at a time.
fn in_parallel(plan: &ProvePlan, broken: &[(u8, Broken)], progress: &(dyn Fn(ProveEvent) + Sync)) -> Vec<(u8, Outcome)> {
    // Popped from the end: the first checkpoint first.
    let queue = Mutex::new(broken.iter().rev().collect::<Vec<_>>());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1).min(broken.len().max(1)) {
            scope.spawn(|| {
                // Interrupted: no new broken system (the running ones stop too).
                while let Some((id, entry)) = next().filter(|_| !crate::process::stop_requested()) {
                    let outcome = scorecard(plan, &Column::Broken(*id), &entry.pairs(), progress);
                    done.lock().unwrap_or_else(|e| e.into_inner()).push((*id, outcome));
                }
            });
        }
    });
    done.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// One system's scorecard, on its own runtime, in its own folder and run
/// directory (a fresh system, never one already up).
fn scorecard(plan: &ProvePlan, column: &Column, variants: &[(String, String)], progress: &(dyn Fn(ProveEvent) + Sync)) -> Outcome {
    let label = variants.iter().map(|(s, v)| format!("{s}={v}")).collect::<Vec<_>>().join("+");
    progress(ProveEvent::Started { column: column.clone(), label });
    let started = Instant::now();
    let dir = plan.dir.join(column.folder());
    let check = CheckPlan {
        system: plan.system.clone(),
        checkpoints: plan.checkpoints.clone(),
        place: Where::Local(dir.join("run")),
        dir: dir.clone(),
        pacts: plan.pacts.clone(),
        korean: plan.korean,
        variants: variants.to_vec(),
    };
    let outcome = tokio::runtime::Runtime::new()
        .map_err(|err| format!("cannot start a runtime: {err}"))
        .and_then(|runtime| {
            let result = runtime.block_on(run(check, &|event| progress(ProveEvent::Check(column.clone(), event))));
            // Services may leave blocking threads behind (librdkafka).
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            result.map_err(|err| format!("{err:#}"))
        });
    let shown = outcome.clone().map(Box::new);
    progress(ProveEvent::Ended { column: column.clone(), outcome: shown, seconds: started.elapsed().as_secs_f64() });
    outcome
}

/// The matrix's rows from the real system's scorecard and each broken
/// system's (by the checkpoint it breaks): the rules of the proof.
pub fn matrix(checkpoints: &Checkpoints, real: &Outcome, broken: &[(u8, Outcome)]) -> Vec<Row> {
    let real_passed = matches!(real, Ok(card) if card.passed);
    checkpoints
        .list
        .iter()
        .map(|checkpoint| {
            let real_score = real.as_ref().ok().and_then(|card| find(card, checkpoint.id)).cloned();
            let mut row = Row {
                id: checkpoint.id,
                name: real_score.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| checkpoint.en.clone()),
                real: real_score.clone(),
                variants: checkpoint.broken.as_ref().map(Broken::label),
                lacks: checkpoint.broken.as_ref().map(|b| b.why.clone()),
                broken: None,
                changes: Vec::new(),
                conclusion: Conclusion::NotRun,
            };
            if matches!(checkpoint.scored, Scored::NotYet(_) | Scored::NotApplicable(_)) {
                row.conclusion = Conclusion::NotAutomated;
                return row;
            }
            if real_score.as_ref().map(|s| s.verdict) != Some(Verdict::Pass) {
                row.conclusion = Conclusion::RealDoesNotPass;
                return row;
            }
            let Some(entry) = &checkpoint.broken else {
                row.conclusion = Conclusion::NoBrokenVariant;
                return row;
            };
            if !real_passed {
                return row;
            }
            let card = match broken.iter().find(|(id, _)| *id == checkpoint.id).map(|(_, outcome)| outcome) {
                Some(Ok(card)) => card,
                Some(Err(err)) => {
                    row.conclusion = Conclusion::CouldNotRun(err.clone());
                    return row;
                }
                None => {
                    row.conclusion = Conclusion::CouldNotRun("its broken system was not run".into());
                    return row;
                }
            };
            row.broken = find(card, checkpoint.id).cloned();
            row.changes = changes(real.as_ref().ok(), card, checkpoint.id, &entry.also);
            let undeclared: Vec<u8> = row.changes.iter().filter(|c| !c.declared).map(|c| c.id).collect();
            row.conclusion = match row.broken.as_ref().map(|s| (s.verdict, s.evidence.trim().is_empty())) {
                None => Conclusion::CouldNotRun(format!("its broken system's scorecard has no checkpoint {}", checkpoint.id)),
                Some((Verdict::Pass, _)) => Conclusion::BrokenStillPasses,
                Some((Verdict::Inconclusive, _)) => Conclusion::BrokenInconclusive,
                Some((Verdict::Fail, true)) => Conclusion::NoReason,
                Some((Verdict::Fail, false)) if !undeclared.is_empty() => Conclusion::OthersChanged(undeclared),
                Some((Verdict::Fail, false)) => Conclusion::Proven,
                Some((other, _)) => Conclusion::CouldNotRun(format!("its broken system scored it `{other}`")),
            };
            row
        })
        .collect()
}

/// The other checkpoints whose verdict differs between the two scorecards.
fn changes(real: Option<&Scorecard>, broken: &Scorecard, own: u8, also: &[u8]) -> Vec<Change> {
    let Some(real) = real else { return Vec::new() };
    real.checkpoints
        .iter()
        .filter(|s| s.id != own)
        .filter_map(|was| {
            let now = find(broken, was.id);
            let verdict = now.map(|s| s.verdict).unwrap_or(Verdict::Fail);
            (verdict != was.verdict).then(|| Change {
                id: was.id,
                real: was.verdict,
                broken: verdict,
                evidence: now.map(|s| s.evidence.clone()).unwrap_or_else(|| "not scored".into()),
                declared: also.contains(&was.id),
            })
        })
        .collect()
}

fn find(card: &Scorecard, id: u8) -> Option<&Score> {
    card.checkpoints.iter().find(|s| s.id == id)
}

/// One line of a row's conclusion, in words.
pub fn conclusion_text(row: &Row) -> String {
    let ids = |ids: &[u8]| ids.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
    match &row.conclusion {
        Conclusion::Proven => {
            let declared: Vec<u8> = row.changes.iter().map(|c| c.id).collect();
            if declared.is_empty() { "proven".into() } else { format!("proven (also breaks {}, declared)", ids(&declared)) }
        }
        Conclusion::RealDoesNotPass => "NOT PROVEN: the real system does not pass it".into(),
        Conclusion::BrokenStillPasses => "NOT PROVEN: its broken system still passes".into(),
        Conclusion::BrokenInconclusive => "NOT PROVEN: inconclusive on its broken system is no proof".into(),
        Conclusion::NoReason => "NOT PROVEN: it failed without naming why".into(),
        Conclusion::CouldNotRun(why) => format!("NOT PROVEN: {why}"),
        Conclusion::OthersChanged(others) => format!("NOT PROVEN: its broken system also changed checkpoint {} (not in `also`)", ids(others)),
        Conclusion::NoBrokenVariant => "NOT PROVEN: no `broken:` variant in checkpoints.yaml".into(),
        Conclusion::NotRun => "not run: the real system must pass first".into(),
        Conclusion::NotAutomated => "skipped: not automated, no PASS to prove".into(),
    }
}

fn cell(score: Option<&Score>) -> String {
    score.map(|s| s.verdict.as_str().to_uppercase()).unwrap_or_else(|| "—".into())
}

/// `prove.md`: the matrix, then each broken system's reasons and changes.
pub fn markdown(proof: &Proof) -> String {
    let mut out = format!("# Mutation matrix of {}\n\n", proof.system);
    out.push_str("| # | Checkpoint | Real | Broken variant | On it | Conclusion |\n|---|---|---|---|---|---|\n");
    for row in &proof.rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.id,
            escape(&row.name),
            cell(row.real.as_ref()),
            escape(row.variants.as_deref().unwrap_or("—")),
            cell(row.broken.as_ref()),
            escape(&conclusion_text(row))
        ));
    }
    out.push('\n');
    for row in proof.rows.iter().filter(|r| r.broken.is_some()) {
        let broken = row.broken.as_ref().map(|s| s.evidence.as_str()).unwrap_or_default();
        out.push_str(&format!("- **{}** on `{}` (lacks: {}): {}\n", row.id, row.variants.as_deref().unwrap_or_default(), row.lacks.as_deref().unwrap_or_default(), escape(broken)));
        for change in &row.changes {
            let how = if change.declared { "declared" } else { "UNDECLARED" };
            out.push_str(&format!("  - checkpoint {} {} → {} ({how}): {}\n", change.id, change.real, change.broken, escape(&change.evidence)));
        }
    }
    out.push_str(&format!(
        "\n{} — {:.0} s, {} variant system(s) at a time.\n",
        if proof.holds { "The proof holds." } else { "The proof does NOT hold." },
        proof.elapsed_seconds,
        proof.jobs
    ));
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::checkpoint::{Checkpoint, parse};
    use crate::systems::SystemFile;

    const FILE: &str = "checkpoints:
  - { id: 1, en: one, ko: one, experiment: a, phases: [before], broken: { variants: [x=no-a], why: lacks a } }
  - { id: 2, en: two, ko: two, experiment: b, phases: [before], broken: { variants: [y=no-b], why: lacks b, also: [1] } }
  - { id: 3, en: three, ko: three, not_yet: later }
  - { id: 4, en: four, ko: four, experiment: d, phases: [before] }
";

    fn checkpoints() -> Checkpoints {
        let list: Vec<Checkpoint> = parse(&SystemFile { name: "checkpoints.yaml".into(), origin: "t/checkpoints.yaml".into(), text: FILE.into() }).unwrap();
        Checkpoints { list, experiments: vec![] }
    }

    /// A scorecard of verdicts for checkpoints 1, 2, 4 (3 is not yet).
    fn card(verdicts: [Verdict; 3]) -> Scorecard {
        let ids = [1, 2, 4];
        let mut checkpoints: Vec<Score> =
            ids.iter().zip(verdicts).map(|(id, v)| Score { id: *id, name: format!("c{id}"), verdict: v, evidence: format!("evidence of {id}"), report: None }).collect();
        checkpoints.insert(2, Score { id: 3, name: "c3".into(), verdict: Verdict::NotYet, evidence: "comes with later".into(), report: None });
        let passed = checkpoints.iter().all(|s| matches!(s.verdict, Verdict::Pass | Verdict::NotYet));
        Scorecard { schema_version: 2, system: "t".into(), started_at: String::new(), elapsed_seconds: 0.0, passed, checkpoints }
    }

    use Verdict::{Fail, Inconclusive, Pass};

    fn row(rows: &[Row], id: u8) -> &Row {
        rows.iter().find(|r| r.id == id).unwrap()
    }

    #[test]
    fn each_broken_system_fails_its_checkpoint_and_nothing_else() {
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Pass, Pass])), &[(1, Ok(card([Fail, Pass, Pass]))), (2, Ok(card([Pass, Fail, Pass])))]);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::Proven);
        assert_eq!(row(&rows, 2).conclusion, Conclusion::Proven);
        assert_eq!(row(&rows, 1).broken.as_ref().unwrap().evidence, "evidence of 1", "the reason is named");
        assert_eq!(row(&rows, 3).conclusion, Conclusion::NotAutomated, "skipped, and says so");
        assert_eq!(row(&rows, 4).conclusion, Conclusion::NoBrokenVariant, "a PASS without a broken variant is not proven");
        assert!(!row(&rows, 4).conclusion.holds() && row(&rows, 3).conclusion.holds());
    }

    #[test]
    fn a_diagonal_pass_or_inconclusive_is_no_proof() {
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Pass, Pass])), &[(1, Ok(card([Pass, Pass, Pass]))), (2, Ok(card([Pass, Inconclusive, Pass])))]);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::BrokenStillPasses);
        assert_eq!(row(&rows, 2).conclusion, Conclusion::BrokenInconclusive);
        assert!(!row(&rows, 1).conclusion.holds() && !row(&rows, 2).conclusion.holds());
    }

    #[test]
    fn an_undeclared_change_elsewhere_fails_the_proof_and_a_declared_one_does_not() {
        // Checkpoint 1's variant also breaks 4 (undeclared); 2's also breaks 1 (declared in `also`).
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Pass, Pass])), &[(1, Ok(card([Fail, Pass, Inconclusive]))), (2, Ok(card([Fail, Fail, Pass])))]);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::OthersChanged(vec![4]));
        assert_eq!(row(&rows, 1).changes[0], Change { id: 4, real: Pass, broken: Inconclusive, evidence: "evidence of 4".into(), declared: false });
        assert_eq!(row(&rows, 2).conclusion, Conclusion::Proven);
        assert!(row(&rows, 2).changes[0].declared);
        assert_eq!(conclusion_text(row(&rows, 2)), "proven (also breaks 1, declared)");
    }

    #[test]
    fn the_real_system_must_pass_first() {
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Fail, Pass])), &[]);
        assert_eq!(row(&rows, 2).conclusion, Conclusion::RealDoesNotPass);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::NotRun, "no broken system runs while the real one fails");
        let rows = matrix(&checkpoints(), &Err("could not start shop".into()), &[]);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::RealDoesNotPass);
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Pass, Pass])), &[(1, Err("could not start shop".into()))]);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::CouldNotRun("could not start shop".into()));
        assert_eq!(row(&rows, 2).conclusion, Conclusion::CouldNotRun("its broken system was not run".into()));
    }

    #[test]
    fn a_failure_without_a_reason_is_no_proof() {
        let mut broken = card([Fail, Pass, Pass]);
        broken.checkpoints[0].evidence = " ".into();
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Pass, Pass])), &[(1, Ok(broken))]);
        assert_eq!(row(&rows, 1).conclusion, Conclusion::NoReason);
    }

    #[test]
    fn the_markdown_shows_the_matrix_and_the_reasons() {
        let rows = matrix(&checkpoints(), &Ok(card([Pass, Pass, Pass])), &[(1, Ok(card([Fail, Pass, Pass]))), (2, Ok(card([Fail, Fail, Pass])))]);
        let proof = Proof { system: "t".into(), started_at: String::new(), elapsed_seconds: 1.0, jobs: 2, holds: false, rows };
        let md = markdown(&proof);
        assert!(md.contains("| 1 | c1 | PASS | x=no-a | FAIL | proven |"), "{md}");
        assert!(md.contains("| 4 | c4 | PASS | — | — | NOT PROVEN: no `broken:` variant"), "{md}");
        assert!(md.contains("checkpoint 1 pass → fail (declared)") && md.contains("does NOT hold"), "{md}");
        let json = serde_json::to_value(&proof).unwrap();
        assert_eq!(json["rows"][3]["conclusion"], serde_json::json!({"conclusion": "no_broken_variant"}));
    }
}
