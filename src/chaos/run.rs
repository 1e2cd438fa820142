//! Running an experiment: load starts, hypothesis before, method (faults
//! held while the `during` checks run), rollback — always, also on failure,
//! interruption, guardrail or panic — then hypothesis and recovery checks;
//! availability checks are judged from the load's figures of their phase;
//! then a verdict.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::signal::unix::{SignalKind, signal};

use super::action;
use super::experiment::{Check, Experiment, Fault, Guard, Probe, ProbeKind};
use super::journal::{Activity, ActivityStatus, CheckResult, Journal, Phase, Status, Verdict};
use super::probe::{Context, run_check};
use super::target::Target;
use super::under_load::{self, Marks, Sampler};
use crate::clock::now_rfc3339;
use crate::load::LoadSummary;
use crate::platform::Platform;

/// How long a rollback may take to be verified.
const ROLLBACK_PATIENCE: Duration = Duration::from_secs(90);

/// How the phases ended.
enum Ended {
    /// Every phase ran.
    Completed,
    /// The hypothesis did not hold before the method: nothing was changed.
    NotSteady,
    /// Stopped early (interrupt, guardrail, failed action, panic); rolled back.
    Stopped(Verdict, String),
}

/// Runs `experiment` against `target`, journaling to `journal_path`;
/// `progress` hears what happens, line by line.
pub async fn run_experiment(experiment: &Experiment, file: &str, target: &Target, journal_path: PathBuf, progress: &(dyn Fn(&str) + Sync)) -> Journal {
    let t0 = Instant::now();
    let mut journal = Journal::new(&experiment.title, file, &experiment.system, &target.run_dir, journal_path);
    let _ = journal.save();
    let http = crate::http_client().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let token = match token(&http, &target.gateway, experiment).await {
        Ok(token) => token,
        Err(err) => return finish(journal, Verdict::Inconclusive, Some(format!("cannot get a token from the gateway: {err:#}"))),
    };
    let restarts_at_start = match target.platform.services().await {
        Ok(services) => services.iter().map(|s| (s.name.clone(), s.replicas.iter().map(|r| r.restarts).sum())).collect(),
        Err(err) => return finish(journal, Verdict::Inconclusive, Some(format!("cannot read the platform: {err}"))),
    };
    let ctx = Context {
        http: http.clone(),
        gateway: target.gateway.clone(),
        token: token.clone(),
        jwt_secret: target.jwt_secret(),
        platform: target.platform.clone(),
        lag: target.lag.clone(),
        restarts_at_start: Arc::new(restarts_at_start),
    };
    let load = match experiment.load.as_ref().map(|def| under_load::start(def, &target.gateway, &token)).transpose() {
        Ok(load) => load,
        Err(err) => return finish(journal, Verdict::Inconclusive, Some(format!("cannot start the load: {err:#}"))),
    };
    if let Some(def) = &experiment.load {
        progress(&format!("load: {} users over {} routes, all through the run", def.users, def.routes.len()));
    }
    let sampler = Sampler::start(target.platform.clone(), target.lag.clone(), t0);
    let mut marks = Marks::default();

    let ended = phases(&ctx, experiment, &mut journal, &mut marks, t0, progress).await;

    marks.end = t0.elapsed().as_secs_f64();
    let samples = sampler.stop().await;
    journal.replicas_over_time = samples.replicas;
    journal.catch_up = under_load::catch_up(&samples.lag, &marks);
    journal.lag_over_time = samples.lag;
    if let Some(load) = load {
        match load.stop(&marks).await {
            Ok((record, summary)) => {
                journal.load = Some(record);
                judge_availability(experiment, &summary, &marks, &ended, &mut journal, progress);
            }
            Err(err) => journal.record(Phase::After, errored("load", ProbeKind::Availability, &format!("the load run failed: {err:#}"))),
        }
    }
    journal.marks = marks;
    match ended {
        Ended::Stopped(verdict, reason) => finish(journal, verdict, Some(reason)),
        Ended::NotSteady | Ended::Completed => {
            let verdict = verdict_of(&journal);
            if journal.rollback_verified == Some(false) && verdict == Verdict::Passed {
                return finish(journal, Verdict::Failed, Some("the rollback could not be verified".into()));
            }
            finish(journal, verdict, None)
        }
    }
}

async fn phases(ctx: &Context, experiment: &Experiment, journal: &mut Journal, marks: &mut Marks, t0: Instant, progress: &(dyn Fn(&str) + Sync)) -> Ended {
    // From here on SIGINT and SIGTERM are ours: they end the method early,
    // and a second one cannot cut the rollback short.
    let (mut interrupt, mut terminate) = (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok());
    progress("steady-state hypothesis (before)");
    if !checks(ctx, &experiment.hypothesis, Phase::Before, journal, progress).await {
        return Ended::NotSteady;
    }
    if experiment.method.is_empty() {
        // A steady-state check: nothing to do to the system.
        return Ended::Completed;
    }

    if let Some(load) = &experiment.load {
        progress(&format!("baseline under load: {}", humantime::format_duration(load.baseline)));
        tokio::time::sleep(load.baseline).await;
    }
    progress("method");
    marks.fault_start = Some(t0.elapsed().as_secs_f64());
    let method = AssertUnwindSafe(method(ctx, experiment, journal, progress)).catch_unwind();
    let stopped = tokio::select! {
        result = method => match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some((Verdict::Inconclusive, format!("an action failed: {err:#}"))),
            Err(_) => Some((Verdict::Aborted, "the method panicked".to_string())),
        },
        _ = recv(&mut interrupt) => Some((Verdict::Aborted, "interrupted (SIGINT)".to_string())),
        _ = recv(&mut terminate) => Some((Verdict::Aborted, "terminated (SIGTERM)".to_string())),
        _ = tokio::time::sleep(experiment.guardrails.max_duration) => {
            Some((Verdict::Aborted, format!("guardrail: longer than max_duration {}", humantime::format_duration(experiment.guardrails.max_duration))))
        }
        reason = guard(ctx, &experiment.guardrails.abort_when) => Some((Verdict::Aborted, reason)),
    };

    progress("rollback");
    marks.fault_end = Some(t0.elapsed().as_secs_f64());
    let verified = action::rollback(ctx.platform.as_ref(), journal, ROLLBACK_PATIENCE).await;
    marks.recovered = Some(t0.elapsed().as_secs_f64());
    progress(if verified { "rollback verified: every touched service ready again" } else { "rollback NOT verified" });
    if let Some((verdict, reason)) = stopped {
        return Ended::Stopped(verdict, reason);
    }

    progress("steady-state hypothesis (after) and recovery");
    let after: Vec<Check> = experiment.hypothesis.iter().chain(&experiment.after).cloned().collect();
    checks(ctx, &after, Phase::After, journal, progress).await;
    Ended::Completed
}

/// Applies the actions, holding each; the `during` checks run once every
/// fault is in place, while the last one holds.
async fn method(ctx: &Context, experiment: &Experiment, journal: &mut Journal, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<()> {
    let Some(last) = experiment.method.len().checked_sub(1) else { return Ok(()) };
    // Surges run until the method ends (or is cut short): dropped here.
    let mut surges = Vec::new();
    for (i, action) in experiment.method.iter().enumerate() {
        let what = action::describe(action);
        journal.run.push(Activity { action: what.clone(), start: now_rfc3339(), status: ActivityStatus::Planned, detail: String::new() });
        journal.save()?;
        let applied = match &action.fault {
            Fault::Surge(def) => under_load::surge(def, &ctx.gateway, &ctx.token).map(|surge| {
                surges.push(surge);
                format!("{} users on {} routes", def.users, def.routes.len())
            }),
            _ => action::apply(ctx.platform.as_ref(), journal, action).await,
        };
        let entry = journal.run.last_mut().expect("just pushed");
        match applied {
            Ok(detail) => {
                entry.status = ActivityStatus::Applied;
                entry.detail = detail.clone();
                progress(&format!("  {what}: {detail}"));
            }
            Err(err) => {
                entry.status = ActivityStatus::Failed;
                entry.detail = format!("{err:#}");
                journal.save()?;
                return Err(err);
            }
        }
        journal.save()?;
        if i < last {
            tokio::time::sleep(action.hold).await;
        }
    }
    let hold = tokio::time::sleep(experiment.method[last].hold);
    let during = checks(ctx, &experiment.during, Phase::During, journal, progress);
    tokio::join!(hold, during);
    Ok(())
}

/// Polls the guards every second while the faults hold; returns why the
/// run must abort once one has stayed deviated too long. Never returns
/// without guards.
async fn guard(ctx: &Context, guards: &[Guard]) -> String {
    if guards.is_empty() {
        return std::future::pending().await;
    }
    let mut deviated_since: Vec<Option<Instant>> = vec![None; guards.len()];
    loop {
        for (guard, since) in guards.iter().zip(deviated_since.iter_mut()) {
            let result = run_check(ctx, &guard.check()).await;
            if result.status == Status::Held {
                *since = None;
                continue;
            }
            let started = *since.get_or_insert_with(Instant::now);
            if started.elapsed() >= guard.deviated_for {
                return format!(
                    "guardrail: `{}` deviated for more than {} ({})",
                    guard.name,
                    humantime::format_duration(guard.deviated_for),
                    result.evidence
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `list` in order (availability checks wait for the load's figures),
/// recording each; false at the first that does not hold.
async fn checks(ctx: &Context, list: &[Check], phase: Phase, journal: &mut Journal, progress: &(dyn Fn(&str) + Sync)) -> bool {
    let mut all_held = true;
    for check in list.iter().filter(|c| !matches!(c.probe, Probe::Availability(_))) {
        let result = run_check(ctx, check).await;
        progress(&format!("  [{}] {}: {}", result.status, result.name, result.evidence));
        let held = result.status == Status::Held;
        journal.record(phase, result);
        let _ = journal.save();
        if !held {
            all_held = false;
            // Before the method a deviation stops the run; later ones are
            // all reported.
            if phase == Phase::Before {
                return false;
            }
        }
    }
    all_held
}

/// Judges every availability check from the load's figures of its phase.
fn judge_availability(experiment: &Experiment, summary: &LoadSummary, marks: &Marks, ended: &Ended, journal: &mut Journal, progress: &(dyn Fn(&str) + Sync)) {
    let [before, during, after] = under_load::windows(marks);
    let mut lists = vec![(Phase::Before, &experiment.hypothesis, before)];
    if matches!(ended, Ended::Completed) {
        lists.push((Phase::During, &experiment.during, during));
        lists.push((Phase::After, &experiment.hypothesis, after));
        lists.push((Phase::After, &experiment.after, after));
    }
    for (phase, checks, (from, to)) in lists {
        for check in checks {
            let Probe::Availability(probe) = &check.probe else { continue };
            let result = match summary.route(&probe.route) {
                None => {
                    let known: Vec<&str> = summary.routes.iter().map(|r| r.route.as_str()).collect();
                    errored(&check.name, ProbeKind::Availability, &format!("no route `{}` in the load (routes: {})", probe.route, known.join(", ")))
                }
                Some(route) => {
                    let figures: under_load::PhaseFigures = route.between(from, to).into();
                    let evidence = format!(
                        "{} {:.2} % over seconds {from}–{to} ({} transactions, {} failed), minimum {} %",
                        probe.route, figures.availability, figures.transactions, figures.failed, probe.min
                    );
                    let status = if figures.availability >= probe.min { Status::Held } else { Status::Deviated };
                    CheckResult { name: check.name.clone(), status, probe: ProbeKind::Availability, evidence, took_ms: 0 }
                }
            };
            progress(&format!("  [{}] {}: {}", result.status, result.name, result.evidence));
            journal.record(phase, result);
        }
    }
}

fn errored(name: &str, probe: ProbeKind, evidence: &str) -> CheckResult {
    CheckResult { name: name.to_string(), status: Status::Errored, probe, evidence: evidence.to_string(), took_ms: 0 }
}

fn verdict_of(journal: &Journal) -> Verdict {
    let statuses: Vec<Status> = journal.results().map(|(_, r)| r.status).collect();
    if statuses.contains(&Status::Errored) {
        Verdict::Inconclusive
    } else if statuses.contains(&Status::Deviated) {
        Verdict::Failed
    } else {
        Verdict::Passed
    }
}

fn finish(mut journal: Journal, verdict: Verdict, reason: Option<String>) -> Journal {
    journal.status = verdict;
    if let Some(reason) = reason {
        journal.deviated = Some(match journal.deviated.take() {
            Some(first) => format!("{reason} (first deviation: {first})"),
            None => reason,
        });
    }
    journal.end = Some(now_rfc3339());
    let _ = journal.save();
    journal
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn token(http: &reqwest::Client, gateway: &str, experiment: &Experiment) -> anyhow::Result<String> {
    let body = serde_json::json!({"username": experiment.auth.username, "password": experiment.auth.password});
    let answer: serde_json::Value = http.post(format!("{gateway}/auth/token")).json(&body).send().await?.error_for_status()?.json().await?;
    answer["access_token"].as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("no access_token in {answer}"))
}

/// Restores what the journal at `path` changed (after the harness died) and
/// records it there.
pub async fn rollback_journal(path: &Path, platform: &dyn Platform) -> anyhow::Result<Journal> {
    let mut journal = Journal::read(path)?;
    action::rollback(platform, &mut journal, ROLLBACK_PATIENCE).await;
    if journal.status == Verdict::Running {
        journal.status = Verdict::Aborted;
        journal.deviated = Some("the harness stopped mid-run; rolled back by `stormproof chaos rollback`".into());
        journal.end = Some(now_rfc3339());
    }
    journal.save()?;
    Ok(journal)
}
