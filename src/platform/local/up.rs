//! `up`: runs a whole system on this machine until told to stop — the
//! broker, every replica, the gateway, one stable address per service (like
//! a Kubernetes Service) and the control API — then stops all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::control;
use super::link::{LinkTable, LinkedUpstreams};
use super::wiring::{self, Wiring, fresh_port};
use super::database::{PrivateCluster, StoreChoice};
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
    /// Link proxies on every link, or none (to measure their cost).
    pub wiring: Wiring,
    /// Where services keep their data.
    pub store: super::StoreChoice,
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
    let mut taken = BTreeSet::new();
    let (database_url, cluster) = match &plan.store {
        StoreChoice::Sqlite => (None, None),
        StoreChoice::Postgres(Some(url)) => (Some(url.clone()), None),
        StoreChoice::Postgres(None) => {
            let cluster = PrivateCluster::start(&plan.run_dir.join("postgres")).await?;
            (Some(cluster.url()), Some(cluster))
        }
    };
    // The control API's token, which the broker's fault endpoint takes too.
    let token = super::runstate::new_token();
    let (kafka, broker, broker_faults) = match &plan.kafka {
        Some(kafka) => (kafka.clone(), None, None),
        None => {
            let addr = fresh_port(&mut taken)?;
            let faults = fresh_port(&mut taken)?;
            (addr.to_string(), Some(addr), Some(faults))
        }
    };
    let mut service_listeners = Vec::new();
    let mut stable = BTreeMap::new();
    for service in &plan.def.services {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        stable.insert(service.name.clone(), listener.local_addr()?);
        service_listeners.push((service.name.clone(), listener));
    }
    let service_urls: BTreeMap<String, String> = stable.iter().map(|(name, addr)| (name.clone(), format!("http://{addr}"))).collect();
    let links = LinkTable::new();
    let addresses = wiring::wire(&plan.def, &links, &stable, &kafka, broker, plan.wiring, &mut taken)?;
    let launch = Launch {
        exe: std::env::current_exe().context("cannot find the stormproof binary")?,
        data_dir,
        log_dir,
        kafka: kafka.clone(),
        topic: plan.def.topic.clone(),
        partitions: plan.def.partitions,
        broker,
        broker_faults: broker_faults.map(|addr| crate::broker::FaultEndpoint { addr, token: token.clone() }),
        service_urls: service_urls.clone(),
        addresses,
        links: links.clone(),
        grace: plan.grace,
        variants: plan.variants.clone(),
        progress_deadline: plan.progress_deadline,
        autoscaling: plan.autoscaling,
        system_dir: plan.def.folder.clone(),
        database_url,
    };
    let deployed = plan.def.with_variants(&plan.variants);
    let supervisor = Supervisor::new(&deployed, launch);
    supervisor.start();
    let gateway = TcpListener::bind(("127.0.0.1", plan.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} for the gateway (in use? pass --port)", plan.port))?;
    let control_listener = TcpListener::bind("127.0.0.1:0").await?;
    let state = RunState {
        system: plan.def.system.clone(),
        reference: plan.reference.clone(),
        pid: std::process::id(),
        process: Some(crate::process::Identity::current()),
        token,
        control: format!("http://{}", control_listener.local_addr()?),
        gateway: format!("http://{}", gateway.local_addr()?),
        kafka,
        broker_faults: broker_faults.map(|addr| format!("http://{addr}")),
        services: service_urls,
        run_dir: plan.run_dir.clone(),
        started_at: now_rfc3339(),
        ready: false,
    };
    let secret = super::secret::run_secret(&plan.run_dir, plan.gateway.jwt_secret.as_deref())?;
    let mut gateway_config = plan.gateway.config(&plan.def, gateway.local_addr()?.port(), secret)?;
    let gateway_variant = plan.variants.iter().find(|(name, _)| name == crate::systems::definition::GATEWAY && plan.def.service(name).is_none());
    if let Some((_, variant)) = gateway_variant {
        anyhow::ensure!(variant == crate::systems::kit::LET_ANONYMOUS, "the gateway has no variant `{variant}`");
        if gateway_config.admission == crate::systems::kit::Admission::Token {
            gateway_config.admission = crate::systems::kit::Admission::TokenOrNone;
        }
    }
    let shutdown = Arc::new(Notify::new());
    let upstreams: Arc<dyn Upstreams> = supervisor.clone();
    // With links, the gateway reaches its link proxies in memory, and so do
    // the proxies the stable addresses: every hop with both ends in `up`.
    let gateway_forwarder = match plan.wiring {
        Wiring::Links => {
            let linked = Arc::new(LinkedUpstreams { inner: upstreams.clone(), table: links.clone() });
            Forwarder::reaching(linked, Some(links.memory()))
        }
        Wiring::Direct => Forwarder::new(upstreams.clone()),
    };
    let mut servers = vec![
        serve(gateway, gateway_app(gateway_config, gateway_forwarder)),
        serve(control_listener, control::app(supervisor.clone(), state.clone(), shutdown.clone())),
    ];
    for (name, listener) in service_listeners {
        let app = service_address(name, Forwarder::new(upstreams.clone()));
        if plan.wiring == Wiring::Links {
            links.memory().serve(listener.local_addr()?, app.clone());
        }
        servers.push(serve(listener, app));
    }
    state.write()?;

    let started = async {
        supervisor.bring_up(&plan.def, &plan.replicas, plan.ready_timeout).await?;
        wait_ready(&supervisor, plan.ready_timeout).await
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
    // For `down`: what had to be done to processes that did not behave.
    let _ = std::fs::write(notices_path(&plan.run_dir), serde_json::to_vec_pretty(&supervisor.notices()).unwrap_or_default());
    let _ = std::fs::remove_file(RunState::path(&plan.run_dir));
    // After every replica: none is left writing to it.
    if let Some(cluster) = cluster {
        cluster.stop();
    }
    result
}

/// Where `up` leaves its notices for `down` (processes killed after the
/// grace period).
pub(super) fn notices_path(run_dir: &std::path::Path) -> PathBuf {
    run_dir.join("notices.json")
}

/// Waits until every replica is ready; fails early on a service that exits
/// at once, and on the deadline names each service that is not ready, why,
/// and its last log lines.
async fn wait_ready(supervisor: &Supervisor, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let snapshot = supervisor.snapshot();
        if all_ready(&snapshot) {
            return Ok(());
        }
        if let Some(looping) = supervisor.crash_looping() {
            anyhow::bail!("not every replica became ready: {looping}");
        }
        if tokio::time::Instant::now() >= deadline {
            let lagging: Vec<String> = snapshot.iter().filter(|s| s.ready != s.desired).map(|s| supervisor.diagnose(&s.name)).collect();
            anyhow::bail!("not every replica became ready within {timeout:?}:\n{}", lagging.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every service has all its desired replicas, all ready.
fn all_ready(services: &[ServiceStatus]) -> bool {
    services.iter().all(|s| s.ready == s.desired && s.replicas.len() as u32 == s.desired)
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
