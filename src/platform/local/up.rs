//! `up`: runs a whole system on this machine until told to stop — the
//! broker, every replica, the gateway, one stable address per service (like
//! a Kubernetes Service) and the control API — then stops all of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::control;
use super::runstate::RunState;
use super::supervisor::{Launch, Supervisor};
use crate::platform::ServiceStatus;
use crate::systems::GatewayOptions;
use crate::systems::definition::SystemDef;
use crate::clock::now_rfc3339;
use crate::proxy::{Forwarder, Upstreams};
use crate::systems::kit::gateway_app;

/// What `up` should run and how.
#[derive(Debug, Clone)]
pub struct UpPlan {
    /// The system.
    pub def: SystemDef,
    /// How commands name it again (a built-in's name or its folder).
    pub reference: String,
    /// Run directory (state file, data, logs).
    pub run_dir: PathBuf,
    /// Gateway port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Replica counts that override the definition's.
    pub replicas: Vec<(String, u32)>,
    /// Service → variant to run (e.g. `product` → `item-rename`).
    pub variants: Vec<(String, String)>,
    /// Keep the data of an earlier run instead of starting empty.
    pub keep_data: bool,
    /// Use this Kafka instead of starting the embedded broker.
    pub kafka: Option<String>,
    /// Gateway authentication settings.
    pub gateway: GatewayOptions,
    /// SIGTERM-to-SIGKILL grace period for replicas.
    pub grace: Duration,
    /// How long to wait for every replica to be ready.
    pub ready_timeout: Duration,
    /// Overrides every service's rollout progress deadline.
    pub progress_deadline: Option<Duration>,
    /// The autoscaler's sync period and scale-down window.
    pub autoscaling: super::AutoscalerSettings,
}

/// Runs `plan` until SIGINT, SIGTERM or `POST /v1/shutdown`; calls
/// `on_ready` once every replica is ready.
pub async fn up(plan: UpPlan, on_ready: impl FnOnce(&RunState, &[ServiceStatus])) -> anyhow::Result<()> {
    if let Ok(state) = RunState::read(&plan.run_dir)
        && state.is_alive()
    {
        anyhow::bail!("{} is already up in {} (pid {}); stop it with `stormproof down`", state.system, plan.run_dir.display(), state.pid);
    }
    let (data_dir, log_dir) = prepare_dirs(&plan)?;
    let (kafka, broker, broker_faults) = match &plan.kafka {
        Some(kafka) => (kafka.clone(), None, None),
        None => {
            let addr = free_port()?;
            let mut faults = free_port()?;
            while faults == addr {
                faults = free_port()?;
            }
            (addr.to_string(), Some(addr), Some(faults))
        }
    };
    let mut service_listeners = Vec::new();
    let mut service_urls = BTreeMap::new();
    for service in &plan.def.services {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        service_urls.insert(service.name.clone(), format!("http://{}", listener.local_addr()?));
        service_listeners.push((service.name.clone(), listener));
    }
    let launch = Launch {
        exe: std::env::current_exe().context("cannot find the stormproof binary")?,
        data_dir,
        log_dir,
        kafka: kafka.clone(),
        topic: plan.def.topic.clone(),
        partitions: plan.def.partitions,
        broker,
        broker_faults,
        service_urls: service_urls.clone(),
        grace: plan.grace,
        variants: plan.variants.clone(),
        progress_deadline: plan.progress_deadline,
        autoscaling: plan.autoscaling,
    };
    let supervisor = Supervisor::new(&plan.def, launch);
    supervisor.start();
    let gateway = TcpListener::bind(("127.0.0.1", plan.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} for the gateway (in use? pass --port)", plan.port))?;
    let control_listener = TcpListener::bind("127.0.0.1:0").await?;
    let state = RunState {
        system: plan.def.system.clone(),
        reference: plan.reference.clone(),
        pid: std::process::id(),
        control: format!("http://{}", control_listener.local_addr()?),
        gateway: format!("http://{}", gateway.local_addr()?),
        kafka,
        broker_faults: broker_faults.map(|addr| format!("http://{addr}")),
        services: service_urls,
        run_dir: plan.run_dir.clone(),
        started_at: now_rfc3339(),
        ready: false,
    };
    let shutdown = Arc::new(Notify::new());
    let upstreams: Arc<dyn Upstreams> = supervisor.clone();
    let mut servers = vec![
        serve(gateway, gateway_app(plan.gateway.config(&plan.def)?, Forwarder::new(upstreams.clone()))),
        serve(control_listener, control::app(supervisor.clone(), state.clone(), shutdown.clone())),
    ];
    for (name, listener) in service_listeners {
        servers.push(serve(listener, service_address(name, Forwarder::new(upstreams.clone()))));
    }
    state.write()?;

    let started = async {
        supervisor.bring_up(&plan.def, &plan.replicas, plan.ready_timeout).await?;
        supervisor.wait_until(plan.ready_timeout, all_ready).await.map_err(|snapshot| not_ready(&snapshot, &state))?;
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = started => result,
        _ = stop_requested(&shutdown) => Err(anyhow::anyhow!("interrupted while starting")),
    };
    if result.is_ok() {
        let ready = RunState { ready: true, ..state.clone() };
        ready.write()?;
        on_ready(&ready, &supervisor.snapshot());
        stop_requested(&shutdown).await;
    }
    supervisor.shutdown().await;
    for server in servers {
        server.abort();
    }
    let _ = std::fs::remove_file(RunState::path(&plan.run_dir));
    result
}

/// Every service has all its desired replicas, all ready.
fn all_ready(services: &[ServiceStatus]) -> bool {
    services.iter().all(|s| s.ready == s.desired && s.replicas.len() as u32 == s.desired)
}

fn not_ready(snapshot: &[ServiceStatus], state: &RunState) -> anyhow::Error {
    let lagging: Vec<String> = snapshot
        .iter()
        .filter(|s| s.ready != s.desired)
        .map(|s| format!("{} ({}/{} ready)", s.name, s.ready, s.desired))
        .collect();
    anyhow::anyhow!("not every replica became ready: {}; logs in {}", lagging.join(", "), state.run_dir.join("logs").display())
}

fn prepare_dirs(plan: &UpPlan) -> anyhow::Result<(PathBuf, PathBuf)> {
    let data = plan.run_dir.join("data");
    let logs = plan.run_dir.join("logs");
    if !plan.keep_data {
        for dir in [&data, &logs] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
            }
        }
    }
    for dir in [&data, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Absolute paths: replicas and the broker change their working directory.
    Ok((std::path::absolute(&data)?, std::path::absolute(&logs)?))
}

/// A free loopback port for the broker, which needs its address up front
/// and keeps it across restarts. It is picked below the kernel's ephemeral
/// range: a port from that range, once released, can be handed to any
/// `bind(:0)` or outgoing connection before the broker binds it.
fn free_port() -> anyhow::Result<SocketAddr> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let floor = 10000.min(low.saturating_sub(1000));
    for _ in 0..200 {
        let port = floor + fastrand::u16(0..low.saturating_sub(floor).max(1));
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?);
        }
    }
    anyhow::bail!("no free port below {low} for the broker")
}

/// A service's stable address: forwards to its ready replicas.
fn service_address(name: String, forwarder: Forwarder) -> Router {
    Router::new().fallback(move |request: Request| {
        let (forwarder, name) = (forwarder.clone(), name.clone());
        async move { forwarder.forward(&name, request).await }
    })
}

fn serve(listener: TcpListener, app: Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(err) = axum::serve(crate::systems::kit::nodelay(listener), app).await {
            tracing::error!("server stopped: {err}");
        }
    })
}

async fn stop_requested(shutdown: &Notify) {
    tokio::select! {
        _ = crate::process::terminated() => {}
        _ = shutdown.notified() => {}
    }
}
