//! Running an experiment: load starts, hypothesis before, method (faults
//! held while the `during` checks run), rollback — always, also on failure,
//! interruption, guardrail or panic — then hypothesis and recovery checks;
//! availability checks are judged from the load's figures of their phase;
//! then a verdict.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::signal::unix::{SignalKind, signal};

use super::action;
use super::experiment::{Check, Experiment, Fault, Guard, Probe, ProbeKind};
use super::lag::{LagReader, Position};
use super::untouched::{self, AtMethod};
use super::journal::{Activity, ActivityStatus, CheckResult, Journal, Phase, Status, Verdict};
use super::events::Window;
use super::probe::{Context, EveryCapture, run_check};
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
    journal.dry_run = target.dry_run;
    let _ = journal.save();
    let http = crate::http_client().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    // A dry run sends nothing through the gateway: no login, no load, no flows.
    let token = if target.dry_run {
        progress(&format!("dry-run: would log in as {} (POST {}/auth/token)", experiment.auth.username, target.gateway));
        String::new()
    } else {
        match token(&http, &target.gateway, experiment).await {
            Ok(token) => token,
            Err(err) => return finish(journal, Verdict::Inconclusive, Some(format!("cannot get a token from the gateway: {err:#}"))),
        }
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
        positions_at_start: Arc::new(positions_at_start(experiment, target.lag.clone()).await),
        method_began: Arc::new(OnceLock::new()),
        dry_run: target.dry_run,
        captured: EveryCapture::default(),
        events: events_window(target, experiment).await,
    };
    let load = match experiment.load.as_ref().filter(|_| !target.dry_run).map(|def| under_load::start(def, &target.gateway, &token)).transpose() {
        Ok(load) => load,
        Err(err) => return finish(journal, Verdict::Inconclusive, Some(format!("cannot start the load: {err:#}"))),
    };
    if let Some(def) = &experiment.load {
        if target.dry_run {
            progress(&format!("dry-run: would run load of {} users, all through the run, on {}", def.users, describe_routes(&def.routes)));
        } else {
            progress(&format!("load: {} users over {} routes, all through the run", def.users, def.routes.len()));
        }
    }
    let sampler = Sampler::start(target.platform.clone(), target.lag.clone(), t0);
    let mut marks = Marks::default();

    let ended = phases(&ctx, experiment, &mut journal, &mut marks, t0, progress).await;
    if let (Some(load), Ended::Completed, Some(recovered)) = (&load, &ended, marks.recovered) {
        gather_after_evidence(experiment, load, recovered, progress).await;
    }

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
            if journal.results().next().is_none() {
                return finish(journal, verdict, Some("no check ran: nothing to conclude from".into()));
            }
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
    // A dry run goes on to print the method whatever its checks could see.
    if !checks(ctx, &experiment.hypothesis, Phase::Before, journal, progress).await && !ctx.dry_run {
        return Ended::NotSteady;
    }
    if experiment.method.is_empty() {
        // A steady-state check: nothing to do to the system.
        return Ended::Completed;
    }

    if let Some(load) = experiment.load.as_ref().filter(|_| !ctx.dry_run) {
        progress(&format!("baseline under load: {}", humantime::format_duration(load.baseline)));
        tokio::time::sleep(load.baseline).await;
    }
    progress("method");
    let services = if probes(experiment).any(|p| matches!(p, Probe::Untouched(_))) {
        untouched::snapshot(ctx.platform.as_ref()).await.map_err(|err| err.to_string())
    } else {
        Err("not read: the experiment has no untouched check".into())
    };
    let _ = ctx.method_began.set(AtMethod { at: Instant::now(), services });
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
    let steps_before = journal.rollbacks.len();
    let verified = action::rollback(ctx.platform.as_ref(), journal, ROLLBACK_PATIENCE).await;
    // What a step says beyond "restored" is evidence (a broker fault's hits)
    // or the reason it failed.
    for step in journal.rollbacks.iter().skip(steps_before).filter(|s| !s.detail.is_empty()) {
        progress(&format!("  {} ({}): {}", step.change, step.status, step.detail));
    }
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

/// Every probe of the experiment's checks.
fn probes(experiment: &Experiment) -> impl Iterator<Item = &Probe> {
    experiment.hypothesis.iter().chain(&experiment.during).chain(&experiment.after).map(|c| &c.probe)
}

/// Where each consumer group stands as the experiment begins, read only
/// when a from-scratch lag check needs it.
async fn positions_at_start(experiment: &Experiment, lag: Option<Arc<LagReader>>) -> Result<BTreeMap<String, Position>, String> {
    if !probes(experiment).any(|p| matches!(p, Probe::Lag(lag) if lag.from_scratch)) {
        return Err("not read: the experiment has no from-scratch lag check".into());
    }
    let reader = lag.ok_or("consumer offsets need the broker's address (not known for this platform)")?;
    match tokio::task::spawn_blocking(move || reader.positions()).await {
        Ok(Ok(positions)) => Ok(positions),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(err) => Err(err.to_string()),
    }
}

/// Where the system's topic ends before any step runs, so an events check
/// reads only what the experiment's window added; opened only for an
/// experiment with one.
async fn events_window(target: &Target, experiment: &Experiment) -> Result<Arc<Window>, String> {
    if !experiment.inspects_events() {
        return Err("this experiment has no events check".into());
    }
    let Some(source) = target.events.clone() else {
        return Err("inspecting events needs the broker's address (not known for this platform)".into());
    };
    match tokio::task::spawn_blocking(move || Window::open(&source)).await {
        Ok(Ok(window)) => Ok(Arc::new(window)),
        Ok(Err(err)) => Err(format!("cannot note where the topic ends at the start: {err:#}")),
        Err(err) => Err(err.to_string()),
    }
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
            Fault::Surge(def) if ctx.dry_run => Ok(format!("dry-run: would add {} users on {}", def.users, describe_routes(&def.routes))),
            Fault::Surge(def) => under_load::surge(def, &ctx.gateway, &ctx.token).map(|surge| {
                surges.push(surge);
                format!("{} users on {} routes", def.users, def.routes.len())
            }),
            _ => action::apply(ctx.platform.as_ref(), journal, action, experiment.method[i..].iter().map(|a| a.hold).sum()).await,
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
            // Before the method a deviation stops the run (not a dry run's,
            // which goes on to print its changes); later ones are all reported.
            if phase == Phase::Before && !ctx.dry_run {
                return false;
            }
        }
    }
    all_held
}

/// How long the load may keep running after the recovery checks so that
/// each availability check of the after phase has its `min_transactions`.
const EVIDENCE_PATIENCE: Duration = Duration::from_secs(30);

/// Keeps the load running after the recovery checks until every
/// availability check judged after recovery has enough requests in its
/// window (or [`EVIDENCE_PATIENCE`] is over: it is then inconclusive).
/// Recovery checks are often quick, and a second of load is no evidence.
async fn gather_after_evidence(experiment: &Experiment, load: &under_load::Running, recovered: f64, progress: &(dyn Fn(&str) + Sync)) {
    let from = recovered.ceil() as usize;
    let needed: Vec<_> = experiment
        .hypothesis
        .iter()
        .chain(&experiment.after)
        .filter_map(|c| match &c.probe {
            Probe::Availability(probe) => Some(probe),
            _ => None,
        })
        .collect();
    let deadline = Instant::now() + EVIDENCE_PATIENCE;
    let short = || needed.iter().any(|p| load.judged_since(&p.route, from).is_some_and(|n| n < p.min_transactions));
    if short() {
        progress("  load continues until the after-recovery availability has its transactions");
    }
    while short() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
                    let (status, evidence) = super::probe::availability(probe, &route.between(from, to).into(), (from, to)).into_status();
                    CheckResult { name: check.name.clone(), status, probe: ProbeKind::Availability, evidence, took_ms: 0, route: Some(probe.route.clone()) }
                }
            };
            progress(&format!("  [{}] {}: {}", result.status, result.name, result.evidence));
            journal.record(phase, result);
        }
    }
}

/// A load's routes, as the requests they send (what a dry run prints).
fn describe_routes(routes: &[super::experiment::LoadRoute]) -> String {
    let lines: Vec<String> = routes
        .iter()
        .map(|route| {
            let (method, path) = route.request.parts();
            match &route.body {
                Some(body) => format!("{method} {path} {body}"),
                None => format!("{method} {path}"),
            }
        })
        .collect();
    lines.join(", ")
}

fn errored(name: &str, probe: ProbeKind, evidence: &str) -> CheckResult {
    CheckResult { name: name.to_string(), status: Status::Errored, probe, evidence: evidence.to_string(), took_ms: 0, route: None }
}

/// Passed only on evidence: every check held, and at least one ran. A
/// deviation is a finding whatever else was seen: failed. Otherwise a check
/// that could not run or saw too little makes the run inconclusive (which
/// fails it too).
fn verdict_of(journal: &Journal) -> Verdict {
    let statuses: Vec<Status> = journal.results().map(|(_, r)| r.status).collect();
    if statuses.contains(&Status::Deviated) {
        Verdict::Failed
    } else if statuses.is_empty() || statuses.iter().any(|s| matches!(s, Status::Errored | Status::Inconclusive)) {
        Verdict::Inconclusive
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
    if journal.dry_run {
        // A dry run changed nothing: there is nothing to restore, and nothing is sent.
        return Ok(journal);
    }
    action::rollback(platform, &mut journal, ROLLBACK_PATIENCE).await;
    if journal.status == Verdict::Running {
        journal.status = Verdict::Aborted;
        journal.deviated = Some("the harness stopped mid-run; rolled back by `stormproof chaos rollback`".into());
        journal.end = Some(now_rfc3339());
    }
    journal.save()?;
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(statuses: &[Status]) -> Journal {
        let mut j = Journal::new("t", "f.yaml", "shop", Path::new("."), std::env::temp_dir().join("unused-journal.json"));
        for status in statuses {
            j.record(Phase::During, CheckResult { name: "c".into(), status: *status, probe: ProbeKind::Availability, evidence: String::new(), took_ms: 0, route: None });
        }
        j
    }

    #[test]
    fn a_run_passes_only_on_evidence() {
        assert_eq!(verdict_of(&journal(&[Status::Held, Status::Held])), Verdict::Passed);
        assert_eq!(verdict_of(&journal(&[])), Verdict::Inconclusive, "no check, no pass");
        assert_eq!(verdict_of(&journal(&[Status::Held, Status::Inconclusive])), Verdict::Inconclusive, "too little seen is not a hold");
        assert_eq!(verdict_of(&journal(&[Status::Deviated, Status::Held])), Verdict::Failed);
        assert_eq!(verdict_of(&journal(&[Status::Inconclusive, Status::Deviated])), Verdict::Failed, "a deviation is a finding");
        assert_eq!(verdict_of(&journal(&[Status::Held, Status::Errored])), Verdict::Inconclusive);
    }
}
