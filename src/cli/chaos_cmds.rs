//! `stormproof chaos run`, `stormproof chaos rollback` and `stormproof chaos abort`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::RunDirArgs;
use crate::chaos::{self, Target, Verdict};
use crate::exit::Outcome;
use crate::platform::local::{ControlClient, RunState};

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
    /// Experiment file (YAML), e.g. chaos/shop/delivery-outage.yaml.
    file: PathBuf,
    /// The platform to act on: `local`, or `kube` (needs --context, --namespace, --gateway-url).
    #[arg(long, default_value = "local", value_parser = ["local", "kube"])]
    platform: String,
    /// Where the journal and reports go (a folder per run).
    #[arg(long, default_value = "reports/chaos", env = "STORMPROOF_REPORTS")]
    reports: PathBuf,
    #[command(flatten)]
    run: RunDirArgs,
    #[command(flatten)]
    kube: super::k8s_cmds::ChaosKubeArgs,
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
        ChaosCommand::Abort(args) => super::k8s_cmds::abort(args.run.as_deref(), &args.reports).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let experiment = chaos::load_experiment(&args.file)?;
    let stamp = stamp();
    let slug = args.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "experiment".into());
    let dir = args.reports.join(format!("{stamp}-{slug}"));
    let run_dir = args.run.run_dir;
    let kube = args.platform == "kube";
    anyhow::ensure!(kube || !args.kube.dry_run, "--dry-run needs --platform kube");
    let started_here = !kube && match RunState::read_live(&run_dir) {
        Ok(state) if state.system == experiment.system => false,
        Ok(state) => anyhow::bail!("{} runs in {}, but the experiment is for {}", state.system, run_dir.display(), experiment.system),
        Err(_) => {
            eprintln!("starting {} (not up in {})", experiment.system, run_dir.display());
            start(&experiment.system, &run_dir)?;
            true
        }
    };
    let target = if kube { args.kube.target(&experiment.system, &dir, experiment.kube.as_ref()).await? } else { target(&experiment.system, &run_dir)? };
    eprintln!("{} — journal {}", experiment.title, dir.join("journal.json").display());
    // The kill switch (`chaos abort`) finds this run by its pid file.
    let pid_file = super::k8s_cmds::PidFile::write(&dir)?;
    let journal = chaos::run_experiment(&experiment, &args.file.display().to_string(), &target, dir.join("journal.json"), &|line| eprintln!("{line}")).await;
    drop(pid_file);
    write_reports(&dir, &journal)?;
    if started_here {
        let _ = super::platform_cmds::down(&run_dir).await;
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
    let journal = match super::k8s_cmds::recorded_platform(&journal.run_dir).await? {
        Some(kube) => chaos::rollback_journal(path, kube.as_ref()).await?,
        None => chaos::rollback_journal(path, &ControlClient::new(&RunState::read_live(&journal.run_dir)?)).await?,
    };
    for step in &journal.rollbacks {
        println!("{} — {} {}", step.change, step.status, step.detail);
    }
    let verified = journal.rollback_verified == Some(true);
    println!("rollback {}", if verified { "verified: every touched service ready again" } else { "NOT verified" });
    Ok(if verified { Outcome::Passed } else { Outcome::Failed })
}

/// The system running in `run_dir`, as experiments see it: its control API,
/// its gateway and (when the broker answers) its consumer lag.
pub(super) fn target(system: &str, run_dir: &Path) -> anyhow::Result<Target> {
    let state = RunState::read_live(run_dir)?;
    let def = crate::systems::definition::SystemDef::builtin(system)?;
    let lag = chaos::LagReader::new(&state.kafka, &def.topic, &def.consumer_groups()).ok().map(Arc::new);
    Ok(Target { platform: Arc::new(ControlClient::new(&state)), gateway: state.gateway.clone(), run_dir: std::path::absolute(run_dir)?, lag })
}

/// A sortable, unique-enough folder name for a run: UTC time to the millisecond.
pub(super) fn stamp() -> String {
    crate::systems::kit::now_rfc3339().replace([':', '-'], "").replace('.', "-").chars().take(19).collect()
}

/// Writes a run's Markdown, JUnit and HTML reports beside its journal.
pub(super) fn write_reports(dir: &Path, journal: &chaos::Journal) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.md"), crate::report::experiment_markdown(journal))?;
    std::fs::write(dir.join("junit.xml"), crate::report::experiment_junit(journal))?;
    std::fs::write(dir.join("report.html"), crate::report::experiment_html(journal))?;
    Ok(())
}

/// Starts `system` in the background in `run_dir`.
pub(super) fn start(system: &str, run_dir: &Path) -> anyhow::Result<()> {
    // A short autoscaler sync period and scale-down window, so that the
    // autoscaling experiment takes a minute, not six (Kubernetes: 15 s, 300 s).
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["up", system, "--detach", "--port", "0", "--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"])
        .env("STORMPROOF_RUN_DIR", run_dir)
        .output()?;
    anyhow::ensure!(out.status.success(), "could not start {system}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}
