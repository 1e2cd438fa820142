//! A replica: one OS process of a service (or the broker), started,
//! probed, restarted when it crashes or fails liveness, and stopped with
//! SIGTERM, a grace period, then SIGKILL — as the kubelet does with a pod.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Child;
use tokio::sync::watch;

use super::probe::{Counter, Probe};
use super::supervisor::{BROKER, Phase, Spec, Supervisor};
use crate::process::{self, stop};
use crate::systems::kit::ServeOptions;

/// What the supervisor wants of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// Keep it running.
    Run,
    /// Stop it gracefully and forget it (scale down).
    Terminate,
    /// Kill it now and forget it (a deleted pod).
    Delete,
}

/// Why one incarnation of the process ended.
enum End {
    Exited(Option<ExitStatus>),
    Unhealthy,
    Silent,
    Terminate,
    Delete,
}

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between leaving the endpoints and SIGTERM.
const DRAIN: Duration = Duration::from_millis(300);

/// Runs replica `id` of `service` until told to stop.
pub(super) async fn run(sup: Arc<Supervisor>, service: String, id: String, spec: Spec, mut commands: watch::Receiver<Command>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut child = match spawn(&sup, &service, &id, &spec) {
            Ok(child) => child,
            Err(err) => {
                tracing::error!("cannot start {id}: {err:#}");
                sup.update(&service, &id, |r| r.phase = Phase::Crashed);
                if wait_or_stop(&mut commands, backoff).await {
                    sup.remove(&service, &id);
                    return;
                }
                continue;
            }
        };
        let started = Instant::now();
        sup.update(&service, &id, |r| {
            r.pid = child.id();
            r.addr = None;
            r.ready = false;
            r.started = started;
            if r.phase != Phase::Terminating {
                r.phase = Phase::Starting;
            }
        });
        let end = supervise(&sup, &service, &id, &spec, &mut child, &mut commands).await;
        sup.update(&service, &id, |r| r.ready = false);
        match end {
            End::Terminate => {
                // Out of the endpoints already; let requests that picked this
                // replica just before reach it, then SIGTERM (a preStop pause).
                tokio::time::sleep(DRAIN.min(sup.launch.grace)).await;
                stop(&mut child, sup.launch.grace).await;
                sup.remove(&service, &id);
                return;
            }
            End::Delete => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                sup.remove(&service, &id);
                return;
            }
            End::Exited(status) => tracing::warn!("{id} exited ({}); restarting", describe(status)),
            End::Unhealthy => {
                tracing::warn!("{id} failed its liveness probe; restarting");
                stop(&mut child, Duration::from_secs(1)).await;
            }
            End::Silent => {
                tracing::warn!("{id} did not announce its address within {ANNOUNCE_TIMEOUT:?}; restarting");
                stop(&mut child, Duration::from_secs(1)).await;
            }
        }
        sup.update(&service, &id, |r| {
            r.restarts += 1;
            r.pid = None;
            r.phase = Phase::Crashed;
        });
        // CrashLoopBackOff, shortened: a replica that ran a while restarts fast.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(250);
        }
        if wait_or_stop(&mut commands, backoff).await {
            sup.remove(&service, &id);
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Sleeps `pause`; true if told to stop meanwhile.
async fn wait_or_stop(commands: &mut watch::Receiver<Command>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => *commands.borrow() != Command::Run,
        end = next_stop(commands) => { let _ = end; true }
    }
}

async fn next_stop(commands: &mut watch::Receiver<Command>) -> End {
    loop {
        match *commands.borrow_and_update() {
            Command::Terminate => return End::Terminate,
            Command::Delete => return End::Delete,
            Command::Run => {}
        }
        if commands.changed().await.is_err() {
            return End::Terminate;
        }
    }
}

async fn supervise(sup: &Arc<Supervisor>, service: &str, id: &str, spec: &Spec, child: &mut Child, commands: &mut watch::Receiver<Command>) -> End {
    let log = sup.launch.log_dir.join(format!("{id}.log"));
    let Some(stdout) = child.stdout.take() else { return End::Silent };
    let announced = process::watch_stdout(stdout, Some(log));
    let addr = match (service, sup.launch.broker) {
        (BROKER, Some(addr)) => addr,
        _ => tokio::select! {
            addr = announced => match addr {
                Ok(addr) => addr,
                Err(_) => return End::Exited(child.wait().await.ok()),
            },
            status = child.wait() => return End::Exited(status.ok()),
            end = next_stop(commands) => return end,
            _ = tokio::time::sleep(ANNOUNCE_TIMEOUT) => return End::Silent,
        },
    };
    sup.update(service, id, |r| {
        r.addr = Some(addr);
        if r.phase == Phase::Starting {
            r.phase = Phase::Running;
        }
        // Without a readiness probe a replica takes traffic once started.
        r.ready = spec.readiness.is_none() && r.phase == Phase::Running;
    });
    tokio::select! {
        status = child.wait() => End::Exited(status.ok()),
        end = next_stop(commands) => end,
        _ = readiness(sup, service, id, spec.readiness.as_ref(), addr) => End::Unhealthy,
        _ = liveness(sup, spec.liveness.as_ref(), addr) => End::Unhealthy,
    }
}

/// Marks the replica ready or not as its probe passes or fails; never ends.
async fn readiness(sup: &Supervisor, service: &str, id: &str, probe: Option<&Probe>, addr: SocketAddr) {
    let Some(probe) = probe else { return std::future::pending().await };
    tokio::time::sleep(probe.initial_delay).await;
    let mut counter = Counter::default();
    loop {
        let ok = probe.once(&sup.http, addr).await;
        if let Some(ready) = counter.record(ok, probe) {
            sup.update(service, id, |r| r.ready = ready && r.phase == Phase::Running);
            // A rollout waits on this: let the control loop act now.
            sup.poke();
        }
        tokio::time::sleep(probe.period).await;
    }
}

/// Returns when the liveness probe has failed `failureThreshold` times in a row.
async fn liveness(sup: &Supervisor, probe: Option<&Probe>, addr: SocketAddr) {
    let Some(probe) = probe else { return std::future::pending().await };
    tokio::time::sleep(probe.initial_delay).await;
    let mut counter = Counter::default();
    loop {
        let ok = probe.once(&sup.http, addr).await;
        if counter.record(ok, probe) == Some(false) {
            return;
        }
        tokio::time::sleep(probe.period).await;
    }
}

fn spawn(sup: &Supervisor, service: &str, id: &str, spec: &Spec) -> anyhow::Result<Child> {
    let launch = &sup.launch;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(launch.log_dir.join(format!("{id}.log")))?;
    let mut command = process::command(&launch.exe, log);
    match (service, launch.broker) {
        (BROKER, Some(addr)) => {
            command.arg("broker").arg("--listen").arg(addr.to_string()).arg("--data").arg(launch.data_dir.join("broker"));
            if let Some(faults) = launch.broker_faults {
                command.arg("--faults").arg(faults.to_string());
            }
        }
        _ => {
            let mut options = ServeOptions::new(launch.data_dir.clone(), &launch.kafka);
            options.topic = Some(launch.topic.clone());
            options.partitions = Some(launch.partitions);
            options.upstreams = launch.service_urls.iter().map(|(name, url)| (name.clone(), url.clone())).collect();
            options.replica_id = id.to_string();
            options.version = spec.version.clone();
            options.warmup = spec.warmup;
            options.variant = spec.variant.clone();
            command.arg("serve").arg(&spec.handler).envs(options.to_env()).envs(&spec.env);
        }
    }
    // The broker's own info logs trace every request: keep them to warnings.
    let default_log = if service == BROKER { "warn" } else { "info,rdkafka=warn" };
    command
        .env("RUST_LOG", std::env::var("STORMPROOF_SERVICE_LOG").unwrap_or_else(|_| default_log.into()))
        // Own process group: a Ctrl-C at the terminal reaches `up` only, which
        // then stops replicas in order.
        .process_group(0);
    Ok(command.spawn()?)
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => "status unknown".into(),
    }
}
