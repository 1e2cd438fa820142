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
use super::supervisor::{BROKER, Phase, Spec, Supervisor, last_lines};
use crate::process;
use crate::systems::command::Vars;
use crate::systems::definition::Runs;
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
    /// Its liveness probe failed, with what it saw last.
    Unhealthy(String),
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
        let (mut child, port) = match spawn(&sup, &service, &id, &spec) {
            Ok(started) => started,
            Err(err) => {
                tracing::error!("cannot start {id}: {err:#}");
                sup.update(&service, &id, |r| {
                    r.phase = Phase::Crashed;
                    r.trouble.exits_unready += u32::from(!r.trouble.ever_ready);
                    r.trouble.last_exit = Some(format!("{err:#}"));
                });
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
            r.trouble.waiting_for_port = port;
            if r.phase != Phase::Terminating {
                r.phase = Phase::Starting;
            }
        });
        let end = supervise(&sup, &service, &id, &spec, &mut child, port, &mut commands).await;
        sup.update(&service, &id, |r| r.ready = false);
        let lasted = format!("after {:.1} s", started.elapsed().as_secs_f64());
        let ended = match end {
            End::Terminate => {
                // Out of the endpoints already; let requests that picked this
                // replica just before reach it, then SIGTERM (a preStop pause).
                tokio::time::sleep(DRAIN.min(sup.launch.grace)).await;
                if !process::stop_group(&mut child, sup.launch.grace).await {
                    sup.notice(format!(
                        "{id} ({service}) ignored SIGTERM: still running {:?} after it, so it was killed (SIGKILL); last log lines of {}: {}",
                        sup.launch.grace,
                        sup.log_of(&id).display(),
                        last_lines(&sup.log_of(&id))
                    ));
                }
                sup.remove(&service, &id);
                return;
            }
            End::Delete => {
                process::kill_group(&mut child).await;
                sup.remove(&service, &id);
                return;
            }
            End::Exited(status) => {
                tracing::warn!("{id} exited ({}); restarting", describe(status));
                format!("{} {lasted}", describe(status))
            }
            End::Unhealthy(why) => {
                tracing::warn!("{id} failed its liveness probe ({why}); restarting");
                process::stop_group(&mut child, Duration::from_secs(1)).await;
                format!("restarted for failing its liveness probe ({why}) {lasted}")
            }
            End::Silent => {
                let what = match port {
                    Some(addr) => format!("did not listen on its port {} within {ANNOUNCE_TIMEOUT:?}", addr.port()),
                    None => format!("did not announce its address within {ANNOUNCE_TIMEOUT:?}"),
                };
                tracing::warn!("{id} {what}; restarting");
                process::stop_group(&mut child, Duration::from_secs(1)).await;
                what
            }
        };
        sup.update(&service, &id, |r| {
            r.restarts += 1;
            r.pid = None;
            r.addr = None;
            r.phase = Phase::Crashed;
            r.trouble.exits_unready += u32::from(!r.trouble.ever_ready);
            r.trouble.last_exit = Some(ended);
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

async fn supervise(sup: &Arc<Supervisor>, service: &str, id: &str, spec: &Spec, child: &mut Child, port: Option<SocketAddr>, commands: &mut watch::Receiver<Command>) -> End {
    let log = sup.log_of(id);
    let Some(stdout) = child.stdout.take() else { return End::Silent };
    let announced = process::watch_stdout(stdout, Some(log));
    let addr = match (service, sup.launch.broker, port) {
        (BROKER, Some(addr), _) => addr,
        // A user's process announces nothing: it is up once it listens on its port.
        (_, _, Some(addr)) => tokio::select! {
            _ = process::listening(addr) => addr,
            status = child.wait() => return End::Exited(status.ok()),
            end = next_stop(commands) => return end,
            _ = tokio::time::sleep(ANNOUNCE_TIMEOUT) => return End::Silent,
        },
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
        r.trouble.waiting_for_port = None;
        if r.phase == Phase::Starting {
            r.phase = Phase::Running;
        }
        // Without a readiness probe a replica takes traffic once started.
        r.ready = spec.readiness.is_none() && r.phase == Phase::Running;
        r.trouble.ever_ready |= r.ready;
    });
    tokio::select! {
        status = child.wait() => End::Exited(status.ok()),
        end = next_stop(commands) => end,
        // Readiness never ends: it only marks the replica in and out.
        _ = readiness(sup, service, id, spec.readiness.as_ref(), addr) => End::Silent,
        why = liveness(sup, spec.liveness.as_ref(), addr) => End::Unhealthy(why),
    }
}

/// Marks the replica ready or not as its probe passes or fails; never ends.
async fn readiness(sup: &Supervisor, service: &str, id: &str, probe: Option<&Probe>, addr: SocketAddr) {
    let Some(probe) = probe else { return std::future::pending().await };
    tokio::time::sleep(probe.initial_delay).await;
    let mut counter = Counter::default();
    loop {
        let result = probe.run(&sup.http, addr).await;
        if let Err(why) = &result {
            sup.update(service, id, |r| r.trouble.last_probe = Some(why.clone()));
        }
        if let Some(ready) = counter.record(result.is_ok(), probe) {
            sup.update(service, id, |r| {
                r.ready = ready && r.phase == Phase::Running;
                r.trouble.ever_ready |= r.ready;
            });
            // A rollout waits on this: let the control loop act now.
            sup.poke();
        }
        tokio::time::sleep(probe.period).await;
    }
}

/// Returns, with what it saw last, when the liveness probe has failed
/// `failureThreshold` times in a row.
async fn liveness(sup: &Supervisor, probe: Option<&Probe>, addr: SocketAddr) -> String {
    let Some(probe) = probe else { return std::future::pending().await };
    tokio::time::sleep(probe.initial_delay).await;
    let mut counter = Counter::default();
    loop {
        let result = probe.run(&sup.http, addr).await;
        if counter.record(result.is_ok(), probe) == Some(false) {
            return result.err().unwrap_or_default();
        }
        tokio::time::sleep(probe.period).await;
    }
}

/// Starts one incarnation; for a user's command also the address it was
/// told to listen on.
fn spawn(sup: &Supervisor, service: &str, id: &str, spec: &Spec) -> anyhow::Result<(Child, Option<SocketAddr>)> {
    let launch = &sup.launch;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(sup.log_of(id))?;
    let (mut command, port) = match (service, launch.broker, spec.command()) {
        (BROKER, Some(addr), _) => {
            let mut command = process::command(&launch.exe, log);
            command.arg("broker").arg("--listen").arg(addr.to_string()).arg("--data").arg(launch.data_dir.join("broker"));
            // The token by environment, not argv, which every local user can read.
            if let Some(faults) = &launch.broker_faults {
                command.arg("--faults").arg(faults.addr.to_string()).env("STORMPROOF_BROKER_TOKEN", &faults.token);
            }
            for (listen, advertised) in &launch.addresses.broker_links {
                command.arg("--link").arg(format!("{listen}={advertised}"));
            }
            (command, None)
        }
        (_, _, Some((argv, env))) => {
            let addr = process::free_port()?;
            let data_dir = launch.data_dir.join(service);
            std::fs::create_dir_all(&data_dir)?;
            let vars = Vars {
                port: addr.port(),
                kafka_bootstrap: launch.kafka_of(service).to_string(),
                topic: launch.topic.clone(),
                replica: id.to_string(),
                data_dir,
                group: spec.group.clone(),
                version: spec.version.clone(),
                system_dir: launch.system_dir.clone().unwrap_or_else(|| launch.data_dir.clone()),
            };
            let run = crate::systems::command::invocation(&argv, &env, &vars);
            let mut command = process::command(&run.program, log);
            command.args(&run.args).envs(run.env).current_dir(&run.dir);
            if let Some(variant) = &spec.variant {
                command.env("VARIANT", variant);
            }
            (command, Some(addr))
        }
        (_, _, None) => {
            let Runs::Builtin(handler) = &spec.runs else { anyhow::bail!("{service} runs neither a handler nor a command") };
            let mut options = ServeOptions::new(launch.data_dir.clone(), launch.kafka_of(service));
            options.topic = Some(launch.topic.clone());
            options.partitions = Some(launch.partitions);
            options.upstreams = launch.upstreams_of(service);
            options.replica_id = id.to_string();
            options.version = spec.version.clone();
            options.warmup = spec.warmup;
            options.variant = spec.variant.clone();
            let mut command = process::command(&launch.exe, log);
            command.arg("serve").arg(handler).envs(options.to_env()).envs(&spec.service_env).envs(&spec.env);
            // Each service keeps its tables in a schema of its own name.
            if let Some(url) = &launch.database_url {
                command.env(crate::systems::kit::DATABASE_URL, url);
            }
            (command, None)
        }
    };
    // The broker's own info logs trace every request: keep them to warnings.
    let default_log = if service == BROKER { "warn" } else { "info,rdkafka=warn" };
    command
        .env("RUST_LOG", std::env::var("STORMPROOF_SERVICE_LOG").unwrap_or_else(|_| default_log.into()))
        // Own process group: a Ctrl-C at the terminal reaches `up` only, which
        // then stops replicas in order; and the group is killed whole.
        .process_group(0);
    let child = command.spawn().map_err(|err| match port {
        Some(_) => anyhow::anyhow!("cannot run {} (from {}): {err}", command.as_std().get_program().to_string_lossy(), command.as_std().get_current_dir().map_or("-".into(), |d| d.display().to_string())),
        None => err.into(),
    })?;
    Ok((child, port))
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => "status unknown".into(),
    }
}
