//! Running a system's checkpoints: bring the system up when it is not (on
//! the local platform), run each experiment a checkpoint reads once, stop
//! what was started, verify the contract checkpoints, score every
//! checkpoint and write `scorecard.json` and `scorecard.md` beside the
//! experiments' reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoints, Scored};
use super::score::{Score, Verdict, score, score_contract};
use crate::chaos::{self, Journal, Target};
use crate::contract::ProviderSide;
use crate::platform::local::RunState;
use crate::systems::System;

/// Version of `scorecard.json`'s layout (see `src/report/scorecard.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// Where the system runs.
pub enum Where {
    /// On the local platform in this run directory (started when not up).
    Local(PathBuf),
    /// Already deployed and reached through this target.
    Deployed(Target),
}

/// What to check.
pub struct CheckPlan {
    /// The system.
    pub system: System,
    /// Its checkpoints, loaded (see [`super::checkpoint::load`]).
    pub checkpoints: Checkpoints,
    /// Where it runs.
    pub place: Where,
    /// The run's folder: the scorecard and each experiment's reports.
    pub dir: PathBuf,
    /// Pacts to verify contracts against (default: the system's).
    pub pacts: Option<PathBuf>,
    /// Checkpoint names in the course's Korean.
    pub korean: bool,
}

/// The outcome of `check`, as `scorecard.json` carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scorecard {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The system's name.
    pub system: String,
    /// When the check began (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub elapsed_seconds: f64,
    /// No checkpoint failed and every experiment that must pass passed.
    pub passed: bool,
    /// One score per checkpoint, in the file's order.
    pub checkpoints: Vec<Score>,
}

impl Scorecard {
    /// How many checkpoints concluded `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.checkpoints.iter().filter(|s| s.verdict == verdict).count()
    }
}

/// Runs `plan`; `progress` hears what happens, line by line.
pub async fn run(plan: CheckPlan, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<Scorecard> {
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let (target, started_here) = match plan.place {
        Where::Deployed(target) => (target, None),
        Where::Local(run_dir) => {
            let started_here = RunState::read_live(&run_dir).is_err();
            if started_here {
                progress(&format!("starting {} in {}", plan.system.name(), run_dir.display()));
                crate::platform::local::start_detached(&plan.system.reference(), &run_dir, &crate::platform::local::QUICK_AUTOSCALER)?;
            }
            (Target::local(&plan.system.def, &run_dir)?, started_here.then_some(run_dir))
        }
    };
    let journals = experiments(&plan.checkpoints, &target, &plan.dir, progress).await;
    if let Some(run_dir) = &started_here
        && let Ok(crate::platform::local::Stopped::Stopped { notices, .. }) = crate::platform::local::down(run_dir).await
    {
        // A user's service that ignored SIGTERM, named with its last log lines.
        for notice in notices {
            progress(&format!("warning: {notice}"));
        }
    }
    let journals = journals?;
    let mut scores = Vec::new();
    for checkpoint in &plan.checkpoints.list {
        scores.push(match &checkpoint.scored {
            Scored::Contract(contract) => {
                progress(&format!("verifying {} and its variants against the pacts", contract.provider));
                let evidence = verify_contract(&plan.system, contract, plan.pacts.as_deref(), &plan.dir).await;
                score_contract(checkpoint, &evidence, plan.korean)
            }
            scored => {
                let reads = scored.experiments();
                let found: Vec<Option<&Journal>> = reads.iter().map(|r| journals.iter().find(|(n, _)| *n == r.name).map(|(_, j)| j)).collect();
                let report = reads.first().map(|r| plan.dir.join(&r.name).join("report.html").display().to_string());
                score(checkpoint, &found, plan.korean, report)
            }
        });
    }
    // An experiment run to show a failure (no protection) is expected to fail.
    let must_fail: Vec<String> = plan.checkpoints.list.iter().flat_map(|c| c.scored.experiments()).filter(|r| !r.passes).map(|r| r.name).collect();
    let unpassed_run = journals.iter().any(|(name, j)| j.status != chaos::Verdict::Passed && !must_fail.contains(name));
    let failed = scores.iter().any(|s| s.verdict == Verdict::Fail);
    let card = Scorecard {
        schema_version: SCHEMA_VERSION,
        system: plan.system.name().to_string(),
        started_at,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        passed: !failed && !unpassed_run,
        checkpoints: scores,
    };
    write(&plan.dir, &card)?;
    Ok(card)
}

/// Runs each experiment the checkpoints read, once, with its reports.
async fn experiments(checkpoints: &Checkpoints, target: &Target, dir: &Path, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<Vec<(String, Journal)>> {
    let mut journals = Vec::new();
    for (name, origin, experiment) in &checkpoints.experiments {
        progress(&format!("running {name}: {}", experiment.title));
        let journal = chaos::run_experiment(experiment, origin, target, dir.join(name).join("journal.json"), &|_| {}).await;
        crate::report::write_experiment_reports(&dir.join(name), &journal)?;
        journals.push((name.clone(), journal));
    }
    Ok(journals)
}

/// Verifies a contract checkpoint's cases against `pacts`, or the system's
/// own (a built-in's are written into the run's folder first).
async fn verify_contract(system: &System, contract: &super::checkpoint::ContractCheck, pacts: Option<&Path>, dir: &Path) -> anyhow::Result<Vec<crate::contract::checkpoint::Evidence>> {
    let pacts = match pacts {
        Some(pacts) => pacts.to_path_buf(),
        None => system.contracts_dir(&dir.join("contracts"))?,
    };
    let side = ProviderSide::of(system)?;
    crate::contract::checkpoint::verify_cases(contract, &pacts, &side, None).await
}

fn write(dir: &Path, card: &Scorecard) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("scorecard.md"), crate::report::scorecard_markdown(&card.system, &card.checkpoints))?;
    std::fs::write(dir.join("scorecard.json"), serde_json::to_vec_pretty(card)?)?;
    Ok(())
}
