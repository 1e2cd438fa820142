//! `stormproof check SYSTEM`: the checkpoint scorecard. The console gets a
//! line as each experiment starts and ends and one per contract case, then
//! the scorecard; the Pact verifier's own text goes to the run's report
//! files and is shown only for a case that concluded unexpectedly, or with
//! `-v`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use clap::Args;

use super::RunDirArgs;
use super::kube_args::{ChaosKubeArgs, PlatformKind};
use crate::chaos::{self, Target};
use crate::check::{self, CheckPlan, Event, Verdict, Where};
use crate::contract::checkpoint::Outcome as CaseOutcome;
use crate::exit::Outcome;
use crate::systems::System;

/// `stormproof check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The system whose checkpoints to score: a built-in's name (shop) or
    /// the path of a folder (system.yaml, checkpoints.yaml, chaos/, contracts/).
    system: String,
    /// Checkpoint names in English or in the course's Korean.
    #[arg(long, default_value = "en", value_parser = ["en", "ko"])]
    lang: String,
    /// The consumers' pacts contract checkpoints verify against (default: the system's contracts).
    #[arg(long)]
    pacts: Option<PathBuf>,
    /// Where the scorecard and each experiment's report go.
    #[arg(long, default_value = "reports/check", env = "STORMPROOF_REPORTS")]
    reports: PathBuf,
    /// Where the system runs: `local` (started when not up), or `kube` (already deployed).
    #[arg(long, value_enum, default_value_t = PlatformKind::Local)]
    platform: PlatformKind,
    /// Also show the Pact verifier's own text for every contract case (it
    /// is always in the run's `contract-verification/` files).
    #[arg(short, long)]
    verbose: bool,
    /// Prove the scorecard instead: every checkpoint passes on the system
    /// and fails on its broken variant (`broken:` in checkpoints.yaml),
    /// and no other verdict changes; `--prove=1,5` proves those only.
    #[arg(long, value_name = "IDS", num_args = 0..=1, require_equals = true, default_missing_value = "all")]
    prove: Option<String>,
    /// With --prove: broken systems run at a time (each on its own ports and folder).
    #[arg(long, default_value_t = 1, requires = "prove", value_parser = clap::value_parser!(u16).range(1..=16))]
    jobs: u16,
    #[command(flatten)]
    run: RunDirArgs,
    #[command(flatten)]
    kube: ChaosKubeArgs,
}

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<Outcome> {
    let system = System::resolve(&args.system)?;
    // A malformed folder is an input error before anything starts.
    let checkpoints = check::checkpoint::load(&system)?;
    let dir = args.reports.join(crate::clock::stamp());
    if let Some(ids) = &args.prove {
        anyhow::ensure!(args.platform == PlatformKind::Local, "--prove starts each broken system itself: local platform only");
        let checkpoints = match super::prove_cmds::ids(ids)? {
            Some(ids) => checkpoints.only(&ids)?,
            None => checkpoints,
        };
        let plan = check::prove::ProvePlan { system, checkpoints, dir, pacts: args.pacts, korean: args.lang == "ko", jobs: args.jobs as usize };
        return super::prove_cmds::prove(plan, args.verbose);
    }
    let place = match args.platform {
        PlatformKind::Local => Where::Local(args.run.run_dir),
        PlatformKind::Kube => Where::Deployed(Target::kube(&system.def, &args.kube.settings(), &dir, None, |line| println!("{line}")).await?),
    };
    let plan = CheckPlan { system, checkpoints, place, dir: dir.clone(), pacts: args.pacts, korean: args.lang == "ko", variants: vec![] };
    std::fs::create_dir_all(&dir)?;
    let verbose = args.verbose;
    let card = {
        // Progress goes to stderr; stdout, where libraries print (the Pact
        // verifier prints its report), goes to a file until the scorecard.
        let _quiet = StdoutTo::file(&dir.join("stdout.log"))?;
        check::run(plan, &|event| show(&event, verbose)).await?
    };
    println!("{}", crate::report::scorecard_table(&card.checkpoints));
    let mut counts = format!("{} passed, {} failed", card.count(Verdict::Pass), card.count(Verdict::Fail));
    if card.count(Verdict::Inconclusive) > 0 {
        counts.push_str(&format!(", {} inconclusive", card.count(Verdict::Inconclusive)));
    }
    counts.push_str(&format!(", {} not yet automated", card.count(Verdict::NotYet)));
    if card.count(Verdict::NotApplicable) > 0 {
        counts.push_str(&format!(", {} not applicable", card.count(Verdict::NotApplicable)));
    }
    println!("{counts} — {:.0} s; reports in {}", card.elapsed_seconds, dir.display());
    Ok(if card.passed { Outcome::Passed } else { Outcome::Failed })
}

/// One event on the console (stderr).
fn show(event: &Event, verbose: bool) {
    match event {
        Event::Starting { system, run_dir } => eprintln!("starting {system} in {}", run_dir.display()),
        Event::ExperimentStarted { name, title } => eprintln!("▸ {name}: {title}"),
        Event::ExperimentEnded { name, verdict, must_pass, elapsed, why } => {
            let expected = (*verdict == chaos::Verdict::Passed) == *must_pass;
            let word = verdict_word(*verdict);
            let secs = elapsed.as_secs_f64();
            match (expected, *must_pass) {
                (true, true) => eprintln!("  {name}: {word} in {secs:.1} s"),
                (true, false) => eprintln!("  {name}: {word} in {secs:.1} s, as expected (it shows what the protection prevents)"),
                (false, _) => eprintln!("  {name}: {} in {secs:.1} s, UNEXPECTED: {}", word.to_uppercase(), why.as_deref().unwrap_or("every check held")),
            }
        }
        Event::CaseVerified { provider, evidence, elapsed, transcript } => {
            let who = evidence.variant.as_deref().map(|v| format!("{provider} as {v}")).unwrap_or_else(|| provider.clone());
            let word = match &evidence.outcome {
                CaseOutcome::Passed => "passes".to_string(),
                CaseOutcome::Blocked => "blocked by the pacts".to_string(),
                CaseOutcome::Errored { error } => format!("verification ERROR ({error})"),
            };
            let expected = evidence.as_expected();
            let note = if expected { "as expected".to_string() } else { format!("UNEXPECTED; the verifier's text follows (also in {})", transcript.display()) };
            eprintln!("▸ contract {who}: {word} in {:.1} s, {note}", elapsed.as_secs_f64());
            if verbose || !expected {
                eprintln!("{}", evidence.transcript());
            }
        }
        Event::Warning(notice) => eprintln!("warning: {notice}"),
    }
}

pub(super) fn verdict_word(verdict: chaos::Verdict) -> &'static str {
    match verdict {
        chaos::Verdict::Running => "running",
        chaos::Verdict::Passed => "passed",
        chaos::Verdict::Failed => "failed",
        chaos::Verdict::Aborted => "aborted",
        chaos::Verdict::Inconclusive => "inconclusive",
    }
}

/// Sends this process's stdout (fd 1) to a file until dropped. The Pact
/// verifier prints its whole report with `println!`, FAILED lines of the
/// variants that are expected to break included; `check` keeps that text in
/// its report files instead (see [`Event::CaseVerified`]).
pub(super) struct StdoutTo {
    saved: OwnedFd,
}

impl StdoutTo {
    pub(super) fn file(path: &Path) -> anyhow::Result<StdoutTo> {
        let file = File::create(path).map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()))?;
        std::io::stdout().flush()?;
        // SAFETY: dup and dup2 on descriptors this process owns; the copy
        // of fd 1 is owned by `saved` and restored on drop.
        let saved = unsafe { libc::dup(1) };
        anyhow::ensure!(saved >= 0, "cannot duplicate stdout: {}", std::io::Error::last_os_error());
        let saved = unsafe { OwnedFd::from_raw_fd(saved) };
        anyhow::ensure!(unsafe { libc::dup2(file.as_raw_fd(), 1) } >= 0, "cannot redirect stdout: {}", std::io::Error::last_os_error());
        Ok(StdoutTo { saved })
    }
}

impl Drop for StdoutTo {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        // SAFETY: restores fd 1 from the copy taken in `file`.
        unsafe { libc::dup2(self.saved.as_raw_fd(), 1) };
    }
}
