//! The local platform's commands: up, down, status, scale, kill.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{KillArgs, ScaleArgs, UpArgs};
use crate::exit::Outcome;
use crate::platform::local::{AutoscalerSettings, ControlClient, RunState, Stopped, UpPlan, Wiring};
use crate::platform::{Platform, ServiceStatus};
use crate::systems::System;

pub(super) async fn up(args: UpArgs) -> anyhow::Result<Outcome> {
    let system = System::resolve(&args.system)?;
    let def = system.def.clone();
    for (name, _) in &args.replicas {
        if def.service(name).is_none() {
            anyhow::bail!("--replicas names unknown service `{name}` of {} (services: {})", def.system, def.service_names().join(", "));
        }
    }
    for (name, variant) in &args.variants {
        def.check_variant(name, variant).map_err(|err| anyhow::anyhow!("--variant: {err}"))?;
    }
    if args.detach {
        return detach(&args.run.run_dir).await;
    }
    super::init_logs("warn,stormproof=info");
    let plan = UpPlan {
        port: args.port.unwrap_or(def.gateway.port),
        def,
        reference: system.reference(),
        run_dir: args.run.run_dir,
        replicas: args.replicas,
        variants: args.variants,
        keep_data: args.keep_data,
        kafka: args.kafka,
        gateway: args.gateway,
        grace: args.grace,
        ready_timeout: args.ready_timeout,
        progress_deadline: args.progress_deadline,
        autoscaling: AutoscalerSettings { sync_period: args.hpa_sync_period, downscale_stabilization: args.hpa_downscale_stabilization },
        wiring: match args.links {
            super::LinksSwitch::On => Wiring::Links,
            super::LinksSwitch::Off => Wiring::Direct,
        },
        store: args.store,
    };
    let started = Instant::now();
    crate::platform::local::up(plan, |state, services| {
        println!("{} is up in {:.1}s", state.system, started.elapsed().as_secs_f64());
        println!("  gateway  {}", state.gateway);
        println!("  kafka    {}", state.kafka);
        println!("  run dir  {}", state.run_dir.display());
        print_table(services);
        println!("Ctrl-C (or `stormproof down`) stops everything.");
    })
    .await?;
    eprintln!("stopped");
    Ok(Outcome::Passed)
}

/// Starts `up` again in the background and waits until it is ready.
async fn detach(run_dir: &Path) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let log_path = run_dir.join("up.log");
    let log = std::fs::File::create(&log_path)?;
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--detach" && a != "-d").collect();
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child.args(&args).stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut child, 0);
    let mut child = child.spawn().context("cannot start `stormproof up` in the background")?;
    let pid = child.id();
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            anyhow::bail!("`stormproof up` exited ({status}) before it was ready:\n{log}");
        }
        // `up` marks the state ready only once every replica is; the
        // replica counts alone can look settled while it is still starting.
        if let Ok(state) = RunState::read(run_dir)
            && state.pid == pid
            && state.ready
        {
            let services = ControlClient::new(&state).services().await?;
            println!("{} is up (pid {pid}); gateway {}", state.system, state.gateway);
            print_table(&services);
            println!("`stormproof down` stops it; its log is {}", log_path.display());
            return Ok(Outcome::Passed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn down(run_dir: &Path) -> anyhow::Result<Outcome> {
    match crate::platform::local::down(run_dir).await? {
        Stopped::NothingUp => println!("nothing is up in {}", run_dir.display()),
        Stopped::AlreadyStopped(system) => println!("{system} in {} was already stopped", run_dir.display()),
        Stopped::Stale { system, pid, reason } => {
            eprintln!("warning: the state file of {system} in {} was stale ({reason}); pid {pid} was not signalled", run_dir.display());
            println!("{system} in {} was not running; removed its stale state file", run_dir.display());
        }
        Stopped::Stopped { system, forced, notices } => {
            for notice in &notices {
                eprintln!("warning: {notice}");
            }
            match forced {
                0 => println!("stopped {system}"),
                forced => println!("stopped {system} ({forced} processes had to be killed)"),
            }
        }
    }
    Ok(Outcome::Passed)
}

pub(super) async fn status(run_dir: &Path, json: bool) -> anyhow::Result<Outcome> {
    let state = RunState::read_live(run_dir)?;
    let services = ControlClient::new(&state).services().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&services)?);
    } else {
        println!("{} (pid {}), gateway {}", state.system, state.pid, state.gateway);
        print_table(&services);
        print_dead_letters(&services).await;
    }
    Ok(Outcome::Passed)
}

/// Outbox rows parked as dead letters, per service (one replica's view:
/// replicas share their service's store).
async fn print_dead_letters(services: &[ServiceStatus]) {
    let http = crate::http_client().timeout(Duration::from_secs(2)).build().unwrap_or_default();
    for s in services.iter().filter(|s| s.role != crate::systems::definition::Role::Infrastructure) {
        let Some(address) = s.replicas.iter().find(|r| r.ready).and_then(|r| r.address.as_deref()) else { continue };
        let Ok(response) = http.get(format!("http://{address}/_stormproof/outbox")).send().await else { continue };
        let Ok(report) = response.json::<crate::systems::kit::OutboxReport>().await else { continue };
        if report.dead_letter_count > 0 {
            println!("  {}: {} outbox row(s) parked as dead letters; {} later row(s) of their keys held behind them", s.name, report.dead_letter_count, report.held);
            for d in &report.dead_letters {
                println!("    seq {} key {} {} ({} bytes): {}", d.seq, d.key, d.event_type, d.payload_bytes, d.error);
            }
        }
    }
}

pub(super) async fn scale(args: ScaleArgs) -> anyhow::Result<Outcome> {
    let state = RunState::read_live(&args.run.run_dir)?;
    let service = state.service_name(&args.service)?;
    let client = ControlClient::new(&state);
    client.scale(service, args.replicas).await?;
    println!("{}.{service} scaled to {}", state.system, args.replicas);
    if args.wait {
        let deadline = Instant::now() + args.timeout;
        loop {
            let status = client.service(service).await?;
            if status.ready == args.replicas && status.replicas.len() as u32 == args.replicas {
                println!("{}.{service}: {}/{} ready", state.system, status.ready, status.desired);
                break;
            }
            if Instant::now() >= deadline {
                anyhow::bail!("{}.{service} has {}/{} ready after {:?}", state.system, status.ready, args.replicas, args.timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(Outcome::Passed)
}

pub(super) async fn kill(args: KillArgs) -> anyhow::Result<Outcome> {
    let state = RunState::read_live(&args.run.run_dir)?;
    let service = state.service_name(&args.service)?;
    let killed = ControlClient::new(&state).kill(service, args.replica.as_deref()).await?;
    println!("killed {}.{service} replica {killed}", state.system);
    Ok(Outcome::Passed)
}

fn print_table(services: &[ServiceStatus]) {
    println!("  {:<10} {:<15} {:>7} {:>5} {:>9} {:>8}  REPLICAS", "SERVICE", "ROLE", "DESIRED", "READY", "AVAILABLE", "RESTARTS");
    for s in services {
        let role = serde_json::to_value(s.role).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let restarts: u32 = s.replicas.iter().map(|r| r.restarts).sum();
        let replicas: Vec<String> = s
            .replicas
            .iter()
            .map(|r| format!("{}@{} {}{}", r.id, r.address.as_deref().unwrap_or("-"), r.version, if r.ready { "" } else { " (not ready)" }))
            .collect();
        println!("  {:<10} {:<15} {:>7} {:>5} {:>9} {:>8}  {}", s.name, role, s.desired, s.ready, s.available, restarts, replicas.join(", "));
    }
}
