//! `stormproof chaos run`, `stormproof chaos rollback` and `stormproof chaos abort`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::RunDirArgs;
use super::kube_args::{ChaosKubeArgs, PlatformKind};
use crate::chaos::{self, PidFile, Target, Verdict};
use crate::exit::Outcome;
use crate::platform::local::RunState;
use crate::systems::System;

/// `stormproof chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: ChaosCommand,
}

#[derive(Debug, Subcommand)]
enum ChaosCommand {
    /// Run an experiment (starts the system when it is not up, stops it after).
    Run(RunArgs),
    /// Restore what an interrupted run changed, from its journal.
    Rollback(RollbackArgs),
    /// Stop a running experiment (the kill switch): it rolls back and ends as aborted.
    Abort(AbortArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Experiment file (YAML), e.g. chaos/shop/delivery-outage.yaml or my-system/chaos/outage.yaml.
    file: PathBuf,
    /// The system it acts on, by name or folder (default: the folder the
    /// file is in, `DIR/chaos/FILE`, else the built-in its `system:` names).
    #[arg(long, value_name = "NAME|PATH")]
    system: Option<String>,
    /// The platform to act on: `local`, or `kube` (needs --context and --namespace).
    #[arg(long, value_enum, default_value_t = PlatformKind::Local)]
    platform: PlatformKind,
    /// Where the journal and reports go (a folder per run).
    #[arg(long, default_value = "reports/chaos", env = "STORMPROOF_REPORTS")]
    reports: PathBuf,
    #[command(flatten)]
    run: RunDirArgs,
    #[command(flatten)]
    kube: ChaosKubeArgs,
}

#[derive(Debug, Args)]
struct RollbackArgs {
    /// The run's journal.json.
    journal: PathBuf,
}

#[derive(Debug, Args)]
struct AbortArgs {
    /// The run's folder or journal.json (default: the newest running one under --reports).
    run: Option<PathBuf>,
    /// Where runs write their folders.
    #[arg(long, default_value = "reports/chaos", env = "STORMPROOF_REPORTS")]
    reports: PathBuf,
}

pub(super) async fn chaos(args: ChaosArgs) -> anyhow::Result<Outcome> {
    match args.command {
        ChaosCommand::Run(args) => run(args).await,
        ChaosCommand::Rollback(args) => rollback(&args.journal).await,
        ChaosCommand::Abort(args) => abort(args.run.as_deref(), &args.reports).await,
    }
}

/// The system an experiment file acts on.
fn system_of(file: &Path, given: Option<&str>, named: &str) -> anyhow::Result<System> {
    if let Some(reference) = given {
        return System::resolve(reference);
    }
    // DIR/chaos/FILE.yaml, where DIR holds a system.yaml: that folder.
    let folder = file.parent().filter(|p| p.file_name().is_some_and(|n| n == "chaos")).and_then(Path::parent).filter(|d| d.join("system.yaml").is_file());
    match folder {
        Some(dir) => System::folder(dir),
        None => System::resolve(named),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let experiment = chaos::load_experiment(&args.file)?;
    let system = system_of(&args.file, args.system.as_deref(), &experiment.system)?;
    anyhow::ensure!(system.name() == experiment.system, "{} is for system `{}`, not {}", args.file.display(), experiment.system, system.name());
    experiment.check_against(&system.def).map_err(|err| anyhow::anyhow!("{}: {err}", args.file.display()))?;
    let slug = args.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "experiment".into());
    let dir = args.reports.join(format!("{}-{slug}", crate::clock::stamp()));
    let run_dir = args.run.run_dir;
    let kube = args.platform == PlatformKind::Kube;
    anyhow::ensure!(kube || !args.kube.dry_run, "--dry-run needs --platform kube");
    // Refused before the cluster is even asked: nothing may change for an
    // experiment that cannot run whole.
    if kube && let Some(i) = experiment.broker_action() {
        anyhow::bail!(
            "{}: method[{i}]: a `broker` action sets its fault inside the local platform's embedded broker; --platform kube has no embedded broker, so it cannot run there",
            args.file.display()
        );
    }
    if kube && let Some((i, why)) = experiment.network_actions().find_map(|(i, fault)| crate::platform::kube::network::unmappable(fault).map(|why| (i, why))) {
        anyhow::bail!("{}: method[{i}].network: not on --platform kube: {why}", args.file.display());
    }
    let started_here = !kube && match RunState::read_live(&run_dir) {
        Ok(state) if state.system == experiment.system => false,
        Ok(state) => anyhow::bail!("{} runs in {}, but the experiment is for {}", state.system, run_dir.display(), experiment.system),
        Err(_) => {
            eprintln!("starting {} (not up in {})", system.name(), run_dir.display());
            crate::platform::local::start_detached(&system.reference(), &run_dir, &crate::platform::local::QUICK_AUTOSCALER)?;
            true
        }
    };
    let target = if kube { Target::kube(&system.def, &args.kube.settings(), &dir, experiment.kube.as_ref(), |line| println!("{line}")).await? } else { Target::local(&system.def, &run_dir)? };
    eprintln!("{} — journal {}", experiment.title, dir.join("journal.json").display());
    // The kill switch (`chaos abort`) finds this run by its pid file.
    let pid_file = PidFile::write(&dir)?;
    let journal = chaos::run_experiment(&experiment, &args.file.display().to_string(), &target, dir.join("journal.json"), &|line| eprintln!("{line}")).await;
    drop(pid_file);
    crate::report::write_experiment_reports(&dir, &journal)?;
    if started_here {
        let _ = crate::platform::local::down(&run_dir).await;
    }
    println!("{:?}: {}", journal.status, journal.title);
    if let Some(why) = &journal.deviated {
        println!("  {why}");
    }
    println!("  report: {}", dir.join("report.html").display());
    if args.kube.dry_run {
        println!("  dry run: nothing was changed, so checks that expect the fault deviate");
        return Ok(Outcome::Passed);
    }
    Ok(if journal.status == Verdict::Passed { Outcome::Passed } else { Outcome::Failed })
}

async fn rollback(path: &Path) -> anyhow::Result<Outcome> {
    let journal = chaos::Journal::read(path)?;
    if journal.dry_run {
        println!("{} is a dry run's journal: nothing was changed, so nothing is rolled back (no request sent)", path.display());
        return Ok(Outcome::Passed);
    }
    let platform = chaos::recorded_platform(&journal.run_dir).await?;
    let journal = chaos::rollback_journal(path, platform.as_ref()).await?;
    for step in &journal.rollbacks {
        println!("{} — {} {}", step.change, step.status, step.detail);
    }
    let verified = journal.rollback_verified == Some(true);
    println!("rollback {}", if verified { "verified: every touched service ready again" } else { "NOT verified" });
    Ok(if verified { Outcome::Passed } else { Outcome::Failed })
}

/// The kill switch, and what the aborted run reports.
async fn abort(run: Option<&Path>, reports: &Path) -> anyhow::Result<Outcome> {
    let journal = chaos::abort(run, reports, &|line| eprintln!("{line}")).await?;
    println!("{:?}: {}", journal.status, journal.title);
    for step in &journal.rollbacks {
        println!("  {} — {} {}", step.change, step.status, step.detail);
    }
    let rolled_back = journal.rollback_verified == Some(true);
    println!("  rollback {}", if rolled_back { "verified" } else { "NOT verified" });
    Ok(if journal.status == Verdict::Aborted && rolled_back { Outcome::Passed } else { Outcome::Failed })
}
