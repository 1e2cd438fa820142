//! `stormproof check SYSTEM`: the checkpoint scorecard.

use std::path::PathBuf;

use clap::Args;

use super::RunDirArgs;
use super::kube_args::{ChaosKubeArgs, PlatformKind};
use crate::chaos::Target;
use crate::check::{self, CheckPlan, Verdict, Where};
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
    let place = match args.platform {
        PlatformKind::Local => Where::Local(args.run.run_dir),
        PlatformKind::Kube => Where::Deployed(Target::kube(&system.def, &args.kube.settings(), &dir, None, |line| println!("{line}")).await?),
    };
    let plan = CheckPlan { system, checkpoints, place, dir: dir.clone(), pacts: args.pacts, korean: args.lang == "ko" };
    let card = check::run(plan, &|line| eprintln!("{line}")).await?;
    println!("{}", crate::report::scorecard_table(&card.checkpoints));
    let mut counts = format!("{} passed, {} failed, {} not yet automated", card.count(Verdict::Pass), card.count(Verdict::Fail), card.count(Verdict::NotYet));
    if card.count(Verdict::NotApplicable) > 0 {
        counts.push_str(&format!(", {} not applicable", card.count(Verdict::NotApplicable)));
    }
    println!("{counts} — {:.0} s; reports in {}", card.elapsed_seconds, dir.display());
    Ok(if card.passed { Outcome::Passed } else { Outcome::Failed })
}
