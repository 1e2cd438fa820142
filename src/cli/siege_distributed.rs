//! `stormproof siege --distributed N` and `stormproof siege worker`: builds
//! the launcher the flags ask for, runs the coordinator, prints what it
//! hears and maps its failures to exit codes (a failed worker is 1, a
//! setup problem 2).

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::kube_args::PlatformKind;
use super::siege_args::{SiegeArgs, WorkerArgs};
use crate::exit::Outcome;
use crate::load::distributed::{RequestLines, 
    DistributedEvent, DistributedSettings, Launcher, LocalWorkers, WorkerReport, run_distributed, run_worker,
};
use crate::load::{LoadPlan, LoadSummary};

/// `stormproof siege worker`.
pub async fn worker(w: WorkerArgs) -> anyhow::Result<Outcome> {
    let (lines, printer) = if w.verbose {
        let (targets, targets_rx) = tokio::sync::oneshot::channel();
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let prefix = format!("[worker {}] ", w.index);
        let printer = tokio::spawn(async move {
            if let Ok(targets) = targets_rx.await {
                super::siege::print_events(rx, targets, false, &prefix).await;
            }
        });
        (Some(RequestLines { targets, events }), Some(printer))
    } else {
        (None, None)
    };
    let done = run_worker(&w.coordinator, w.index, w.patience, lines).await;
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    done.with_context(|| format!("worker {}", w.index))?;
    Ok(Outcome::Passed)
}

/// Runs the distributed siege; `None` when a worker failed it (reported on stderr).
pub async fn coordinate(args: &SiegeArgs, plan: &LoadPlan, cancel: &CancellationToken) -> anyhow::Result<Option<LoadSummary>> {
    let n = args.distributed.unwrap_or(1);
    let mut settings = DistributedSettings::local(n);
    settings.listen = args.coordinator_listen;
    settings.advertise = args.coordinator_url.clone();
    let mut launcher: Box<dyn Launcher> = match args.platform {
        PlatformKind::Local => Box::new(LocalWorkers::new(std::env::current_exe().context("cannot find the stormproof binary")?, args.verbose && !args.quiet)),
        PlatformKind::Kube => super::siege_kube::launcher(args, &mut settings).await?,
    };
    let quiet = args.quiet;
    let on = move |e: DistributedEvent| {
        if quiet {
            return;
        }
        match e {
            DistributedEvent::Listening(url) => eprintln!("coordinator: listening for {n} workers at {url}"),
            DistributedEvent::WorkerStarted { worker, name } => eprintln!("worker {worker}: started ({name})"),
        }
    };
    match run_distributed(plan, &settings, launcher.as_mut(), cancel, &on).await {
        Ok(run) => {
            if !quiet {
                for r in &run.reports {
                    eprintln!("{}", describe(r));
                }
            }
            if let Some(dir) = &args.report {
                write_reports(dir, &run.reports).with_context(|| format!("cannot write worker reports into {}", dir.display()))?;
            }
            Ok(Some(run.summary))
        }
        Err(e) if e.is_run_failure() => {
            eprintln!("stormproof: distributed run failed: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn describe(r: &WorkerReport) -> String {
    let (p50, p99) = match r.total.histogram() {
        Ok(h) if !h.is_empty() => (h.value_at_quantile(0.5), h.value_at_quantile(0.99)),
        _ => (0, 0),
    };
    format!(
        "worker {}: {} transactions, {} requests, {} users, p50 {:.3} ms, p99 {:.3} ms",
        r.worker,
        r.total.transactions(),
        r.total.requests(),
        r.users,
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    )
}

/// Each worker's report as `DIR/workers/worker-I.json`.
fn write_reports(dir: &std::path::Path, reports: &[WorkerReport]) -> anyhow::Result<()> {
    let dir = dir.join("workers");
    std::fs::create_dir_all(&dir)?;
    for r in reports {
        std::fs::write(dir.join(format!("worker-{}.json", r.worker)), serde_json::to_vec(r)?)?;
    }
    Ok(())
}
