//! `stormproof siege`: runs the plan its arguments make, prints siege's
//! banner, progress, `-v` lines and summary, writes the log and reports, and
//! judges the thresholds.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::kube_args::PlatformKind;
use super::siege_args::{SiegeArgs, SiegeCommand, SiegeRole};
use crate::exit::Outcome;
use crate::load::{Counting, LoadPlan, LoadSummary, Progress, RequestEvent, RunHooks, Stop, Target, evaluate_all, run};
use crate::report;

/// Runs `stormproof siege` (or its `worker`).
pub async fn run_siege(cmd: SiegeCommand) -> anyhow::Result<Outcome> {
    match cmd.role {
        Some(SiegeRole::Worker(w)) => super::siege_distributed::worker(w).await,
        None => siege(cmd.args).await,
    }
}

async fn siege(args: SiegeArgs) -> anyhow::Result<Outcome> {
    let plan = args.to_plan()?;
    let in_cluster = args.distributed.is_some() && args.platform == PlatformKind::Kube;
    if in_cluster && args.kube.dry_run {
        super::siege_kube::dry_run(&args).await?;
        return Ok(Outcome::Passed);
    }
    // A host that does not resolve at all is almost always a typo: say so
    // (exit 2) rather than report a run of failures.
    let mut hosts: Vec<(String, u16)> = plan.targets.iter().map(|t| (t.host.clone(), t.port)).collect();
    hosts.dedup();
    for (host, port) in hosts.into_iter().filter(|_| !in_cluster) {
        let found = tokio::net::lookup_host((host.as_str(), port)).await.map(|mut a| a.next().is_some());
        if !matches!(found, Ok(true)) {
            bail!("cannot resolve host `{host}`: expected a resolvable host name or an IP address");
        }
    }
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    if !args.quiet && !args.json {
        eprintln!(
            "** stormproof {} (siege compatible) **\nThe server is now under siege... ({} users, {}, {} counting)",
            env!("CARGO_PKG_VERSION"),
            plan.users,
            describe_stop(plan.stop),
            match plan.counting {
                Counting::Siege => "siege",
                Counting::Stormproof => "stormproof",
            }
        );
    }
    let mut hooks = RunHooks::default();
    let cancel = hooks.cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let progress = Progress::new();
    hooks.progress = Some(progress.clone());
    let printer = if args.verbose && !args.quiet {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        hooks.events = Some(tx);
        let targets = plan.targets.clone();
        let json = args.json;
        Some(tokio::spawn(async move { print_events(rx, targets, json, "").await }))
    } else {
        None
    };
    let bar = if interactive && !args.verbose && args.distributed.is_none() { Some(spawn_progress_bar(&plan, progress)) } else { None };
    let summary = match args.distributed {
        None => run(plan.clone(), hooks).await?,
        Some(_) => {
            let cancel = hooks.cancel.clone();
            // Workers print their own -v lines (local ones on this stdout):
            // let this process's printer end.
            drop(hooks);
            match super::siege_distributed::coordinate(&args, &plan, &cancel).await? {
                Some(summary) => summary,
                None => return Ok(Outcome::Failed),
            }
        }
    };
    ctrl_c.abort();
    if let Some((handle, stop)) = bar {
        stop.cancel();
        let _ = handle.await;
    }
    if let Some(p) = printer {
        let _ = p.await;
    }
    let results = evaluate_all(&args.threshold, &summary);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report::json_value(&summary, &results))?)?;
    } else if !args.quiet {
        if !args.verbose {
            // siege prints a blank line and this banner when the siege ends.
            writeln!(out)?;
        }
        writeln!(out, "Lifting the server siege...")?;
        write!(out, "{}", report::siege_text(&summary))?;
        write!(out, "\n{}", report::extras_text(&summary))?;
    }
    if !results.is_empty() && !args.quiet && !args.json {
        write!(out, "\n{}", report::thresholds_text(&results))?;
    } else {
        for r in results.iter().filter(|r| !r.passed) {
            eprintln!("threshold failed: {}: {}", r.threshold, r.message);
        }
    }
    out.flush()?;
    drop(out);
    // siege's -m marks the log file, so it implies logging.
    let log = args.log.clone().or_else(|| args.mark.as_ref().map(|_| PathBuf::from("siege.log")));
    if let Some(log) = &log {
        write_log(log, args.mark.as_deref(), &summary).with_context(|| format!("cannot write the log {}", log.display()))?;
    }
    if let Some(dir) = &args.report {
        let title = format!("stormproof siege — {}", describe_targets(&plan.targets));
        let files = report::write_reports(dir, &title, &summary, &results)
            .with_context(|| format!("cannot write reports into {}", dir.display()))?;
        if !args.quiet {
            for f in files {
                eprintln!("report: {}", f.display());
            }
        }
    }
    Ok(if results.iter().all(|r| r.passed) { Outcome::Passed } else { Outcome::Failed })
}

fn describe_stop(stop: Stop) -> String {
    match stop {
        Stop::Reps(u64::MAX) => "until interrupted".to_string(),
        Stop::Reps(n) => format!("{n} reps each"),
        Stop::Once => "each URL once".to_string(),
        Stop::Duration(d) => format!("{:.3} s", d.as_secs_f64()),
        Stop::First { reps, time } => format!("{reps} reps each or {:.3} s, whichever comes first", time.as_secs_f64()),
    }
}

fn describe_targets(targets: &[Target]) -> String {
    match targets {
        [one] => one.url.clone(),
        many => format!("{} URLs", many.len()),
    }
}

/// `-v` lines go to stdout, or to stderr when stdout carries `-j` JSON.
/// Prints each request as siege -v does (on stderr when stdout carries
/// JSON), each line after `prefix`.
pub(super) async fn print_events(mut rx: tokio::sync::mpsc::UnboundedReceiver<RequestEvent>, targets: Vec<Target>, json: bool, prefix: &str) {
    let mut out: Box<dyn Write + Send> = if json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
    while let Some(ev) = rx.recv().await {
        let t = &targets[ev.target];
        let line = match ev.result {
            Ok(status) => format!(
                "HTTP/1.1 {status} {:>10.6} secs: {:>7} bytes ==> {:<6} {}",
                ev.latency.as_secs_f64(),
                ev.bytes,
                t.method.as_str(),
                t.path_and_query
            ),
            Err(e) => format!(
                "[error] {} after {:.6} secs ==> {:<6} {}",
                e.label(),
                ev.latency.as_secs_f64(),
                t.method.as_str(),
                t.url
            ),
        };
        if writeln!(out, "{prefix}{line}").is_err() {
            break;
        }
    }
}

fn spawn_progress_bar(
    plan: &LoadPlan,
    progress: Progress,
) -> (tokio::task::JoinHandle<()>, tokio_util::sync::CancellationToken) {
    use indicatif::{ProgressBar, ProgressStyle};
    let stop = tokio_util::sync::CancellationToken::new();
    let bar = match plan.stop {
        Stop::Duration(d) | Stop::First { time: d, .. } => {
            let b = ProgressBar::new(d.as_millis() as u64);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        }
        Stop::Reps(u64::MAX) => ProgressBar::new_spinner(),
        Stop::Reps(n) => ProgressBar::new(n.saturating_mul(plan.users as u64)),
        Stop::Once => ProgressBar::new(plan.targets.len() as u64 * plan.users as u64),
    };
    let timed = matches!(plan.stop, Stop::Duration(_) | Stop::First { .. });
    let stop2 = stop.clone();
    let handle = tokio::spawn(async move {
        let start = std::time::Instant::now();
        loop {
            let done = progress.completed();
            let failed = progress.failed();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{done} requests, {failed} failed, {rate:.0}/s"));
            if timed {
                bar.set_position(start.elapsed().as_millis() as u64);
            } else {
                bar.set_position(done);
            }
            tokio::select! {
                _ = stop2.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        bar.finish_and_clear();
    });
    (handle, stop)
}

/// Appends siege's log line (and the mark, if any) to `path`.
fn write_log(path: &std::path::Path, mark: Option<&str>, s: &LoadSummary) -> std::io::Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if new {
        writeln!(
            f,
            "      Date & Time,  Trans,  Elap Time,  Data Trans,  Resp Time,  Trans Rate,  Throughput,  Concurrent,    OKAY,   Failed"
        )?;
    }
    if let Some(m) = mark {
        writeln!(f, "**** {m} ****")?;
    }
    writeln!(
        f,
        "{}, {:>6}, {:>10.6}, {:>11.6}, {:>10.6}, {:>11.2}, {:>11.6}, {:>11.2}, {:>7}, {:>8}",
        report::utc_datetime(s.started_unix_ms),
        s.transactions(),
        s.elapsed_time(),
        s.data_transferred(),
        s.response_time(),
        s.transaction_rate(),
        s.throughput(),
        s.concurrency(),
        s.successful_transactions(),
        s.failed_transactions()
    )
}

