//! Running a system's checkpoints: bring the system up when it is not (on
//! the local platform), run each experiment a checkpoint reads once, stop
//! what was started, verify the contract checkpoints, score every
//! checkpoint and write `scorecard.json` and `scorecard.md` beside the
//! experiments' reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoints, Scored};
use super::score::{Score, Verdict, score, score_contract};
use crate::chaos::{self, Journal, Target};
use crate::contract::ProviderSide;
use crate::contract::checkpoint::Evidence;
use crate::platform::local::RunState;
use crate::systems::System;

/// Version of `scorecard.json`'s layout (see `src/report/scorecard.schema.json`).
pub const SCHEMA_VERSION: u32 = 2;

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
    /// Services (or the gateway) to run as which variant: a broken system
    /// for `--prove`. Local only; a contract checkpoint verifies its
    /// provider as this variant where its case names none.
    pub variants: Vec<(String, String)>,
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
    /// No checkpoint failed or was inconclusive, and every experiment that
    /// must pass passed.
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

/// What happens during a check, as it happens (the CLI decides what to show).
#[derive(Debug, Clone)]
pub enum Event {
    /// The system is being started in this run directory.
    Starting {
        /// The system.
        system: String,
        /// Its run directory.
        run_dir: PathBuf,
    },
    /// An experiment began.
    ExperimentStarted {
        /// Its name (`chaos/NAME.yaml`).
        name: String,
        /// Its title.
        title: String,
    },
    /// An experiment ended.
    ExperimentEnded {
        /// Its name.
        name: String,
        /// Its verdict.
        verdict: chaos::Verdict,
        /// Whether it must pass (false: it shows the failure a missing
        /// protection causes).
        must_pass: bool,
        /// Its wall time.
        elapsed: Duration,
        /// Why it did not pass.
        why: Option<String>,
    },
    /// One case of a contract checkpoint was verified.
    CaseVerified {
        /// The provider (`shop.product`).
        provider: String,
        /// Its evidence: outcome, expectation, the verifier's text.
        evidence: Box<Evidence>,
        /// Its wall time.
        elapsed: Duration,
        /// Where the verifier's text and the reports of the case went.
        transcript: PathBuf,
    },
    /// Something to warn about (a service that ignored SIGTERM).
    Warning(String),
}

/// Runs `plan`; `progress` hears what happens.
pub async fn run(plan: CheckPlan, progress: &(dyn Fn(Event) + Sync)) -> anyhow::Result<Scorecard> {
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let (target, started_here) = match plan.place {
        Where::Deployed(target) => {
            anyhow::ensure!(plan.variants.is_empty(), "variants run on the local platform only");
            (target, None)
        }
        Where::Local(run_dir) => {
            let started_here = RunState::read_live(&run_dir).is_err();
            // A system already up runs as it was started: variants need a fresh one.
            anyhow::ensure!(started_here || plan.variants.is_empty(), "{} is already up in {}: a variant system needs a run directory of its own", plan.system.name(), run_dir.display());
            if started_here {
                progress(Event::Starting { system: plan.system.name().to_string(), run_dir: run_dir.clone() });
                let mut extra: Vec<String> = crate::platform::local::QUICK_AUTOSCALER.iter().map(|s| s.to_string()).collect();
                for (service, variant) in &plan.variants {
                    extra.extend(["--variant".to_string(), format!("{service}={variant}")]);
                }
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                crate::platform::local::start_detached(&plan.system.reference(), &run_dir, &extra)?;
                if !plan.variants.is_empty() {
                    // A broken variant may report ready while it still warms
                    // up (ready-at-once): let every warm-up end first, so only
                    // the checkpoint that reads readiness sees it, not whichever
                    // experiment happens to run first.
                    let warmup = plan.system.def.services.iter().map(|s| s.warmup).max().unwrap_or_default();
                    tokio::time::sleep(warmup).await;
                }
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
            progress(Event::Warning(notice));
        }
    }
    let journals = journals?;
    let mut scores = Vec::new();
    for checkpoint in &plan.checkpoints.list {
        scores.push(match &checkpoint.scored {
            Scored::Contract(contract) => {
                let contract = as_deployed(&plan.system, contract, &plan.variants);
                let evidence = verify_contract(&plan.system, &contract, plan.pacts.as_deref(), &plan.dir, progress).await;
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
    let failed = scores.iter().any(|s| matches!(s.verdict, Verdict::Fail | Verdict::Inconclusive));
    let card = Scorecard {
        schema_version: SCHEMA_VERSION,
        system: plan.system.name().to_string(),
        started_at,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        passed: !failed && !unpassed_run,
        checkpoints: scores,
    };
    write(&plan.dir, &card)?;
    crate::report::write_scorecard_html(&plan.dir, &card, &plan.checkpoints, plan.korean)?;
    Ok(card)
}

/// `contract` as the system runs: a case of the provider as it is verifies
/// the variant the provider runs as, if it runs as one.
fn as_deployed(system: &System, contract: &super::checkpoint::ContractCheck, variants: &[(String, String)]) -> super::checkpoint::ContractCheck {
    let service = contract.provider.strip_prefix(&format!("{}.", system.name())).unwrap_or(&contract.provider);
    let runs_as = variants.iter().find(|(name, _)| name == service).map(|(_, variant)| variant.clone());
    let mut contract = contract.clone();
    for case in contract.cases.iter_mut().filter(|c| c.variant.is_none()) {
        case.variant = runs_as.clone();
    }
    contract
}

/// Runs each experiment the checkpoints read, once, with its reports.
async fn experiments(checkpoints: &Checkpoints, target: &Target, dir: &Path, progress: &(dyn Fn(Event) + Sync)) -> anyhow::Result<Vec<(String, Journal)>> {
    let must_fail: Vec<String> = checkpoints.list.iter().flat_map(|c| c.scored.experiments()).filter(|r| !r.passes).map(|r| r.name).collect();
    let mut journals = Vec::new();
    // The running experiment hears a signal itself (it aborts and rolls
    // back); this makes the check stop there instead of starting the next.
    let _watch = crate::process::watch_stop();
    for (name, origin, experiment) in &checkpoints.experiments {
        if crate::process::stop_requested() {
            anyhow::bail!("interrupted: {} of {} experiments not run", checkpoints.experiments.len() - journals.len(), checkpoints.experiments.len());
        }
        progress(Event::ExperimentStarted { name: name.clone(), title: experiment.title.clone() });
        let started = Instant::now();
        let journal = chaos::run_experiment(experiment, origin, target, dir.join(name).join("journal.json"), &|_| {}).await;
        crate::report::write_experiment_reports(&dir.join(name), &journal)?;
        progress(Event::ExperimentEnded {
            name: name.clone(),
            verdict: journal.status,
            must_pass: !must_fail.contains(name),
            elapsed: started.elapsed(),
            why: journal.deviated.clone(),
        });
        journals.push((name.clone(), journal));
    }
    Ok(journals)
}

/// Verifies a contract checkpoint's cases against `pacts`, or the system's
/// own (a built-in's are written into the run's folder first); each case's
/// verifier text and reports go to `DIR/contract-verification/`.
async fn verify_contract(
    system: &System,
    contract: &super::checkpoint::ContractCheck,
    pacts: Option<&Path>,
    dir: &Path,
    progress: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<Vec<Evidence>> {
    let pacts = match pacts {
        Some(pacts) => pacts.to_path_buf(),
        None => system.contracts_dir(&dir.join("contracts"))?,
    };
    let side = ProviderSide::of(system)?;
    let out = dir.join(CASES_DIR);
    std::fs::create_dir_all(&out)?;
    let mut all = Vec::new();
    for case in &contract.cases {
        let one = super::checkpoint::ContractCheck { provider: contract.provider.clone(), cases: vec![case.clone()] };
        let started = Instant::now();
        let evidence = crate::contract::checkpoint::verify_cases(&one, &pacts, &side, None).await?;
        for evidence in evidence {
            let transcript = write_case(&out, &contract.provider, &evidence)?;
            progress(Event::CaseVerified { provider: contract.provider.clone(), evidence: Box::new(evidence.clone()), elapsed: started.elapsed(), transcript });
            all.push(evidence);
        }
    }
    Ok(all)
}

/// The folder of a run where contract cases' files go.
pub const CASES_DIR: &str = "contract-verification";

/// The file stem of a contract case: `PROVIDER` or `PROVIDER-VARIANT`.
pub fn case_stem(provider: &str, variant: Option<&str>) -> String {
    match variant {
        Some(variant) => format!("{provider}-{variant}"),
        None => provider.to_string(),
    }
}

/// Writes a case's verifier text (`.txt`) and, when it ran, its JSON and
/// JUnit reports; returns the text's path.
fn write_case(out: &Path, provider: &str, evidence: &Evidence) -> anyhow::Result<PathBuf> {
    let stem = case_stem(provider, evidence.variant.as_deref());
    let transcript = out.join(format!("{stem}.txt"));
    std::fs::write(&transcript, evidence.transcript())?;
    if let Some(verification) = &evidence.verification {
        std::fs::write(out.join(format!("{stem}.json")), verification.to_json())?;
        std::fs::write(out.join(format!("{stem}.junit.xml")), verification.to_junit())?;
    }
    Ok(transcript)
}

fn write(dir: &Path, card: &Scorecard) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("scorecard.md"), crate::report::scorecard_markdown(&card.system, &card.checkpoints))?;
    std::fs::write(dir.join("scorecard.json"), serde_json::to_vec_pretty(card)?)?;
    Ok(())
}
