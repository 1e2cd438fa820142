//! The supervisor: the local platform's control plane. It keeps each service
//! at its desired replicas (a ReplicaSet), probes every replica (a kubelet)
//! and tells the gateway and the service addresses which replicas are ready
//! (Endpoints). Replica processes themselves are run by [`super::replica`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::autoscaler::{Autoscaler, AutoscalerSettings};
use super::deployment::Deployment;
use super::link::LinkTable;
use super::wiring::Addresses;
use super::probe::Probe;
use super::replica::{self, Command};
use super::rolling::{self, Counts};
use crate::broker::{ActiveFault, BrokerFault, FaultClient};
use crate::platform::network::{ActiveNetworkFault, NetworkFault};
use crate::platform::{AutoscalerStatus, Platform, PlatformError, ReplicaStatus, RolloutStatus, ServiceStatus, Template};
use crate::systems::definition::{Role, RolloutDef, Runs, SystemDef, VariantDef};
use crate::proxy::Upstreams;
use crate::systems::kit::{KafkaSettings, SwitchState, ensure_topic};

/// Name of the embedded broker in the service list.
pub const BROKER: &str = "broker";

/// How replica processes are started.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The stormproof binary.
    pub exe: PathBuf,
    /// Where services keep their SQLite files (and the broker its own).
    pub data_dir: PathBuf,
    /// Where replica logs go.
    pub log_dir: PathBuf,
    /// Kafka bootstrap servers given to services.
    pub kafka: String,
    /// The system's event topic and its partitions, given to services.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// The embedded broker's address, if it runs one.
    pub broker: Option<SocketAddr>,
    /// Its fault control endpoint (kept across broker restarts), which
    /// takes the run's token.
    pub broker_faults: Option<crate::broker::FaultEndpoint>,
    /// Service name → its stable address (`http://127.0.0.1:PORT`).
    pub service_urls: BTreeMap<String, String>,
    /// What each service is given for its links (proxies, or the far ends).
    pub addresses: Addresses,
    /// The wired links and the network faults on them.
    pub links: Arc<LinkTable>,
    /// Grace period between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Service → variant to run instead of the normal service.
    pub variants: Vec<(String, String)>,
    /// Overrides every service's rollout progress deadline.
    pub progress_deadline: Option<Duration>,
    /// How the autoscaler runs.
    pub autoscaling: AutoscalerSettings,
    /// The system's folder, where commands of the user's own run (a
    /// built-in system has none: they run in the data folder).
    pub system_dir: Option<PathBuf>,
    /// The PostgreSQL server services keep their data in (else SQLite).
    pub database_url: Option<String>,
}

impl Launch {
    /// The Kafka bootstrap address `service` is given (its broker link's proxy).
    pub fn kafka_of(&self, service: &str) -> &str {
        self.addresses.kafka.get(service).map_or(self.kafka.as_str(), String::as_str)
    }

    /// The services `service` is given, each by its address for it (its
    /// link's proxy for a service it `calls:`, else the stable address).
    pub fn upstreams_of(&self, service: &str) -> Vec<(String, String)> {
        match self.addresses.upstreams.get(service) {
            Some(upstreams) => upstreams.clone(),
            None => self.service_urls.iter().map(|(name, url)| (name.clone(), url.clone())).collect(),
        }
    }
}

// What a replica is doing: the platform's own phases.
pub(super) use crate::platform::ReplicaPhase as Phase;

pub(super) struct Replica {
    pub id: String,
    pub ordinal: u32,
    pub pid: Option<u32>,
    pub addr: Option<SocketAddr>,
    pub ready: bool,
    pub restarts: u32,
    pub phase: Phase,
    pub template: Template,
    pub started: Instant,
    /// What went wrong last, for the messages about a replica that does
    /// not come up: how it ended, what its probe answered.
    pub trouble: Trouble,
    control: watch::Sender<Command>,
}

/// What a replica's last incarnations showed, in words.
#[derive(Debug, Clone, Default)]
pub(super) struct Trouble {
    /// It passed readiness at least once.
    pub ever_ready: bool,
    /// Times it ended before it was ever ready.
    pub exits_unready: u32,
    /// How the last incarnation ended (`exit status: 3 after 0.1 s`).
    pub last_exit: Option<String>,
    /// The last failed probe (`GET /health/ready → 503 Service Unavailable`).
    pub last_probe: Option<String>,
    /// It has not listened on its port yet (a command's).
    pub waiting_for_port: Option<SocketAddr>,
}

/// How one service's replicas are run and probed.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    /// What runs: `stormproof serve HANDLER` (an empty handler for the
    /// broker), or the user's own command.
    pub runs: Runs,
    pub role: Role,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub version: String,
    pub variant: Option<String>,
    /// The template's environment (a rollout's `--env`), applied last.
    pub env: BTreeMap<String, String>,
    pub warmup: Duration,
    /// The service's own environment (`env:` in its definition).
    pub service_env: BTreeMap<String, String>,
    /// Its variants, for how a command service runs one.
    pub variants: BTreeMap<String, VariantDef>,
    /// The consumer group it consumes in (a command is told it).
    pub group: String,
}

impl Spec {
    /// The command and environment a replica of a command service runs:
    /// the variant's command if it gives one; the service's environment,
    /// then the variant's, then the template's.
    pub fn command(&self) -> Option<(Vec<String>, BTreeMap<String, String>)> {
        let Runs::Command(argv) = &self.runs else { return None };
        let (argv, mut env) = crate::systems::command::with_variant(argv, &self.service_env, &self.variants, self.variant.as_deref());
        env.extend(self.env.clone());
        Some((argv, env))
    }

    /// This spec running `template` (its version, variant, environment and
    /// whether it keeps the readiness probe).
    fn with(&self, template: &Template) -> Spec {
        Spec {
            readiness: if template.readiness { self.readiness.clone() } else { None },
            version: template.version.clone(),
            variant: template.variant.clone(),
            env: template.env.clone(),
            ..self.clone()
        }
    }
}

pub(super) struct Service {
    pub name: String,
    /// The service as defined (probes, warm-up); templates vary it.
    base: Spec,
    pub desired: u32,
    pub replicas: Vec<Replica>,
    next_ordinal: u32,
    pub deployment: Deployment,
}

impl Service {
    fn new(name: &str, base: Spec, policy: RolloutDef) -> Service {
        let template = Template { variant: base.variant.clone(), ..Template::version(&base.version) };
        Service { name: name.into(), base, desired: 0, replicas: vec![], next_ordinal: 1, deployment: Deployment::new(template, policy) }
    }

    /// Replicas split by template, terminating ones left out.
    pub fn counts(&self) -> Counts {
        let mut c = Counts { desired: self.desired, new: 0, new_ready: 0, old: 0, old_ready: 0 };
        for r in self.replicas.iter().filter(|r| r.phase != Phase::Terminating) {
            let ready = u32::from(r.ready);
            if r.template == self.deployment.template {
                (c.new, c.new_ready) = (c.new + 1, c.new_ready + ready);
            } else {
                (c.old, c.old_ready) = (c.old + 1, c.old_ready + ready);
            }
        }
        c
    }
}

/// The local platform's control plane.
pub struct Supervisor {
    system: String,
    /// The definition, for what a rollout may set.
    def: SystemDef,
    pub(super) launch: Launch,
    services: Mutex<Vec<Service>>,
    changed: Notify,
    pub(super) http: reqwest::Client,
    pub(super) autoscaler: Autoscaler,
    /// What the platform had to do to a user's process that did not behave
    /// (killed after the grace period), for `down` to report.
    notices: Mutex<Vec<String>>,
}

impl Supervisor {
    /// A supervisor for `def` with no replica running yet (all desired 0).
    pub fn new(def: &SystemDef, launch: Launch) -> Arc<Supervisor> {
        let mut services = Vec::new();
        if launch.broker.is_some() {
            let spec = Spec {
                runs: Runs::Builtin(String::new()),
                role: Role::Infrastructure,
                readiness: Some(Probe::tcp(Duration::from_millis(250))),
                liveness: Some(Probe::kafka()),
                version: "nisshi".into(),
                variant: None,
                env: BTreeMap::new(),
                warmup: Duration::ZERO,
                service_env: BTreeMap::new(),
                variants: BTreeMap::new(),
                group: String::new(),
            };
            services.push(Service::new(BROKER, spec, RolloutDef::default()));
        }
        for service in &def.services {
            let spec = Spec {
                runs: def.runs(service),
                role: service.role,
                readiness: def.readiness(service).as_ref().map(Probe::http),
                liveness: def.liveness(service).as_ref().map(Probe::http),
                version: "v1".into(),
                variant: launch.variants.iter().find(|(n, _)| *n == service.name).map(|(_, v)| v.clone()),
                env: BTreeMap::new(),
                warmup: service.warmup,
                service_env: def.service_env(service),
                variants: service.variants.clone(),
                group: def.consumer_group(service).unwrap_or_else(|| format!("{}.{}", def.system, service.name)),
            };
            let mut policy = service.rollout.clone();
            if let Some(deadline) = launch.progress_deadline {
                policy.progress_deadline = deadline;
            }
            services.push(Service::new(&service.name, spec, policy));
        }
        let http = crate::http_client().pool_max_idle_per_host(2).build().unwrap_or_default();
        let autoscaler = Autoscaler::new(def, launch.autoscaling);
        Arc::new(Supervisor { system: def.system.clone(), def: def.clone(), launch, services: Mutex::new(services), changed: Notify::new(), http, autoscaler, notices: Mutex::new(Vec::new()) })
    }

    /// The system's name.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Keeps replicas at their desired count until the process ends.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(super::autoscaler::run(self.clone()));
        let supervisor = self.clone();
        tokio::spawn(async move {
            loop {
                supervisor.reconcile();
                tokio::select! {
                    _ = supervisor.changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Service>> {
        self.services.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reconcile(self: &Arc<Self>) {
        let mut services = self.lock();
        let now = Instant::now();
        for service in services.iter_mut() {
            let counts = service.counts();
            let (surge, unavailable) = service.deployment.policy.resolve(service.desired).unwrap_or((1, 0));
            let step = rolling::step(counts, surge, unavailable);
            for _ in 0..step.start_new {
                self.start_replica(service);
            }
            let current = service.deployment.template.clone();
            stop(service, step.stop_new, |r| r.template == current);
            stop(service, step.stop_old_unready, |r| r.template != current && !r.ready);
            stop(service, step.stop_old_ready, |r| r.template != current && r.ready);
            let counts = service.counts();
            service.deployment.observe(counts, now);
        }
    }

    fn start_replica(self: &Arc<Self>, service: &mut Service) {
        let ordinal = service.next_ordinal;
        service.next_ordinal += 1;
        let id = format!("{}-{ordinal}", service.name);
        let template = service.deployment.template.clone();
        let (control, commands) = watch::channel(Command::Run);
        service.replicas.push(Replica {
            id: id.clone(),
            ordinal,
            pid: None,
            addr: None,
            ready: false,
            restarts: 0,
            phase: Phase::Starting,
            template: template.clone(),
            started: Instant::now(),
            trouble: Trouble::default(),
            control,
        });
        tokio::spawn(replica::run(self.clone(), service.name.clone(), id, service.base.with(&template), commands));
    }

    /// Wakes the control loop (a replica's readiness changed).
    pub(super) fn poke(&self) {
        self.changed.notify_one();
    }

    /// Changes one replica's record.
    pub(super) fn update(&self, service: &str, id: &str, change: impl FnOnce(&mut Replica)) {
        let mut services = self.lock();
        if let Some(replica) = services.iter_mut().find(|s| s.name == service).and_then(|s| s.replicas.iter_mut().find(|r| r.id == id)) {
            change(replica);
        }
    }

    /// Forgets a replica whose process has ended for good.
    pub(super) fn remove(&self, service: &str, id: &str) {
        let mut services = self.lock();
        if let Some(s) = services.iter_mut().find(|s| s.name == service) {
            s.replicas.retain(|r| r.id != id);
        }
        drop(services);
        self.changed.notify_one();
    }

    /// A snapshot of every service.
    pub fn snapshot(&self) -> Vec<ServiceStatus> {
        self.lock()
            .iter()
            .map(|s| {
                let ready = s.replicas.iter().filter(|r| r.ready).count() as u32;
                ServiceStatus {
                    name: s.name.clone(),
                    role: s.base.role,
                    desired: s.desired,
                    ready,
                    available: ready,
                    replicas: s
                        .replicas
                        .iter()
                        .map(|r| ReplicaStatus {
                            id: r.id.clone(),
                            pid: r.pid,
                            address: r.addr.map(|a| a.to_string()),
                            ready: r.ready,
                            restarts: r.restarts,
                            version: r.template.version.clone(),
                            phase: r.phase,
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Sets desired replicas; checks the service and the count.
    pub fn set_desired(&self, service: &str, replicas: u32) -> Result<(), PlatformError> {
        if replicas > 32 {
            return Err(PlatformError::Refused(format!("{replicas} replicas is more than this machine should run (at most 32)")));
        }
        if service == BROKER && replicas > 1 {
            return Err(PlatformError::Refused("the embedded broker runs 0 or 1 replica".into()));
        }
        let mut services = self.lock();
        let s = services.iter_mut().find(|s| s.name == service).ok_or_else(|| PlatformError::UnknownService(service.to_string()))?;
        if s.desired != replicas {
            s.desired = replicas;
            s.deployment.touch();
        }
        drop(services);
        self.changed.notify_one();
        Ok(())
    }

    /// Runs `f` on service `name`.
    pub(super) fn with_service<T>(&self, name: &str, f: impl FnOnce(&mut Service) -> T) -> Result<T, PlatformError> {
        let mut services = self.lock();
        let s = services.iter_mut().find(|s| s.name == name).ok_or_else(|| PlatformError::UnknownService(name.to_string()))?;
        Ok(f(s))
    }

    /// Makes `template` the service's current one; the control loop rolls
    /// replicas over to it.
    pub fn roll_to(&self, service: &str, template: Template) -> Result<RolloutStatus, PlatformError> {
        if service == BROKER {
            return Err(PlatformError::Refused("the embedded broker is not rolled out".into()));
        }
        // Checked here, where every rollout passes (CLI, experiment, control API).
        self.def.check_rollout_env(service, template.env.keys()).map_err(PlatformError::Invalid)?;
        let status = self.with_service(service, |s| {
            s.deployment.change(template);
            s.deployment.status(&s.name, s.counts())
        })?;
        self.changed.notify_one();
        Ok(status)
    }

    /// The rollout of `service`.
    pub fn rollout_of(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        self.with_service(service, |s| s.deployment.status(&s.name, s.counts()))
    }

    /// Rolls `service` back to the template before the current one.
    pub fn undo(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        let previous = self.with_service(service, |s| s.deployment.previous())?;
        let previous = previous.ok_or_else(|| PlatformError::Refused(format!("{service} has no earlier revision to roll back to")))?;
        self.roll_to(service, previous)
    }

    /// Starts every service at its defined replicas (the broker first), with
    /// `overrides` taking precedence; waits for the broker to be ready.
    pub async fn bring_up(&self, def: &SystemDef, overrides: &[(String, u32)], timeout: Duration) -> anyhow::Result<()> {
        if self.launch.broker.is_some() {
            self.set_desired(BROKER, 1)?;
            self.wait_until(timeout, |s| s.iter().all(|s| s.name != BROKER || s.ready == 1)).await.map_err(|_| {
                anyhow::anyhow!("the broker did not become ready within {timeout:?} (see {})", self.launch.log_dir.join("broker-1.log").display())
            })?;
        }
        if def.runs_commands() {
            // A user's services are not asked to create the system's topic
            // (with its partitions): the platform does, as an operator would.
            let kafka = KafkaSettings { bootstrap: self.launch.kafka.clone(), topic: def.topic.clone(), partitions: def.partitions, idempotent: false };
            ensure_topic(&kafka).await?;
        }
        for service in &def.services {
            let replicas = overrides.iter().find(|(n, _)| *n == service.name).map(|(_, r)| *r).unwrap_or(service.replicas);
            self.set_desired(&service.name, replicas)?;
        }
        Ok(())
    }

    /// Waits until `done` holds for the snapshot; `Err` with the last
    /// snapshot on timeout.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&[ServiceStatus]) -> bool) -> Result<(), Vec<ServiceStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot();
            if done(&snapshot) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(snapshot);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every replica: services first (SIGTERM, grace, SIGKILL), the
    /// broker last, so services can still commit offsets on the way out.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self.lock().iter().map(|s| s.name.clone()).collect();
        let patience = self.launch.grace + Duration::from_secs(5);
        for name in names.iter().filter(|n| *n != BROKER) {
            let _ = self.set_desired(name, 0);
        }
        let _ = self.wait_until(patience, |s| s.iter().all(|s| s.name == BROKER || s.replicas.is_empty())).await;
        let _ = self.set_desired(BROKER, 0);
        let _ = self.wait_until(patience, |s| s.iter().all(|s| s.replicas.is_empty())).await;
    }

    /// Records what the platform had to do to a misbehaving process.
    pub(super) fn notice(&self, message: String) {
        tracing::warn!("{message}");
        self.notices.lock().unwrap_or_else(|p| p.into_inner()).push(message);
    }

    /// Every notice so far.
    pub fn notices(&self) -> Vec<String> {
        self.notices.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Where replica `id` logs.
    pub(super) fn log_of(&self, id: &str) -> PathBuf {
        self.launch.log_dir.join(format!("{id}.log"))
    }

    /// A service whose replica keeps ending before it is ever ready (it
    /// exits at once), in words with its last log lines.
    pub fn crash_looping(&self) -> Option<String> {
        const EXITS: u32 = 3;
        let services = self.lock();
        let (service, replica) = services.iter().find_map(|s| Some((s, s.replicas.iter().find(|r| !r.trouble.ever_ready && r.trouble.exits_unready >= EXITS)?)))?;
        let how = replica.trouble.last_exit.clone().unwrap_or_else(|| "ended".into());
        Some(format!(
            "{} exits at once: {} ended {} times before it was ever ready (last: {how}); last log lines of {}: {}",
            service.name,
            replica.id,
            replica.trouble.exits_unready,
            self.log_of(&replica.id).display(),
            last_lines(&self.log_of(&replica.id))
        ))
    }

    /// Why `service` is not ready, replica by replica, with last log lines.
    pub fn diagnose(&self, service: &str) -> String {
        let services = self.lock();
        let Some(s) = services.iter().find(|s| s.name == service) else { return format!("{service}: unknown service") };
        let ready = s.replicas.iter().filter(|r| r.ready).count();
        let mut lines = vec![format!("{} ({ready}/{} ready)", s.name, s.desired)];
        for r in s.replicas.iter().filter(|r| !r.ready) {
            let state = match (&r.trouble.waiting_for_port, r.addr, &r.trouble.last_probe, &r.trouble.last_exit) {
                (Some(port), None, _, _) => format!("running (pid {}), but nothing listens on its port {} yet", r.pid.map_or("-".into(), |p| p.to_string()), port.port()),
                (_, Some(addr), Some(probe), _) => format!("listening on {addr}, never passed its readiness probe (last: {probe})"),
                (_, Some(addr), None, _) => format!("listening on {addr}, readiness not passed yet"),
                (_, None, _, Some(exit)) => format!("not running ({exit}; {} restarts)", r.restarts),
                _ => format!("{:?}", r.phase).to_lowercase(),
            };
            lines.push(format!("  {}: {state}; last log lines: {}", r.id, last_lines(&self.log_of(&r.id))));
        }
        lines.join("\n")
    }

    fn kill_replica(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError> {
        let mut services = self.lock();
        let s = services.iter_mut().find(|s| s.name == service).ok_or_else(|| PlatformError::UnknownService(service.to_string()))?;
        let target = match replica {
            Some(id) => s.replicas.iter_mut().find(|r| r.id == id && r.phase != Phase::Terminating).ok_or_else(|| PlatformError::UnknownReplica(id.to_string()))?,
            None => s
                .replicas
                .iter_mut()
                .filter(|r| r.phase != Phase::Terminating)
                .max_by_key(|r| r.ready)
                .ok_or_else(|| PlatformError::Refused(format!("{service} has no replica to kill")))?,
        };
        target.ready = false;
        target.phase = Phase::Terminating;
        let _ = target.control.send(Command::Delete);
        let id = target.id.clone();
        drop(services);
        self.changed.notify_one();
        Ok(id)
    }
}

impl Upstreams for Supervisor {
    fn endpoints(&self, service: &str) -> Vec<String> {
        self.lock()
            .iter()
            .find(|s| s.name == service)
            .map(|s| {
                s.replicas
                    .iter()
                    .filter(|r| r.ready && r.phase == Phase::Running)
                    .filter_map(|r| r.addr.map(|a| a.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Platform for Supervisor {
    async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError> {
        Ok(self.snapshot())
    }

    async fn scale(&self, service: &str, replicas: u32) -> Result<(), PlatformError> {
        self.set_desired(service, replicas)
    }

    async fn kill(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError> {
        self.kill_replica(service, replica)
    }
    async fn rollout(&self, service: &str, template: &Template) -> Result<RolloutStatus, PlatformError> {
        self.roll_to(service, template.clone())
    }

    async fn rollout_status(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        self.rollout_of(service)
    }

    async fn rollout_undo(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        self.undo(service)
    }

    async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError> {
        Ok(self.autoscaler.statuses())
    }

    async fn switches(&self, service: &str, replica: &str) -> Result<SwitchState, PlatformError> {
        let address = crate::platform::switches::address(&self.service(service).await?, replica)?;
        crate::platform::switches::read(&address, replica).await
    }

    async fn set_switches(&self, service: &str, replica: &str, state: &SwitchState) -> Result<(), PlatformError> {
        let address = crate::platform::switches::address(&self.service(service).await?, replica)?;
        crate::platform::switches::write(&address, replica, state).await
    }

    async fn set_broker_fault(&self, fault: &BrokerFault) -> Result<ActiveFault, PlatformError> {
        Ok(self.fault_client()?.set(fault).await?)
    }

    async fn clear_broker_fault(&self, id: u64) -> Result<ActiveFault, PlatformError> {
        Ok(self.fault_client()?.clear(id).await?)
    }

    async fn clear_broker_faults(&self) -> Result<Vec<ActiveFault>, PlatformError> {
        Ok(self.fault_client()?.clear_all().await?)
    }

    async fn broker_faults(&self) -> Result<Vec<ActiveFault>, PlatformError> {
        Ok(self.fault_client()?.list().await?)
    }

    async fn set_network_fault(&self, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        self.launch.links.set(fault)
    }

    async fn clear_network_fault(&self, id: u64) -> Result<ActiveNetworkFault, PlatformError> {
        self.launch.links.clear(id)
    }

    async fn clear_network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        Ok(self.launch.links.clear_all())
    }

    async fn network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        Ok(self.launch.links.list())
    }
}

impl Supervisor {
    fn fault_client(&self) -> Result<FaultClient, PlatformError> {
        let endpoint = self.launch.broker_faults.as_ref().ok_or_else(|| PlatformError::Refused("this system runs on an external Kafka: no broker faults".into()))?;
        Ok(FaultClient::new(format!("http://{}", endpoint.addr), endpoint.token.clone()))
    }
}

/// Stops `n` replicas among those `matching`: unready ones first, then the
/// youngest — a ReplicaSet's choice. Out of the endpoints first, then SIGTERM.
fn stop(service: &mut Service, n: u32, matching: impl Fn(&Replica) -> bool) {
    if n == 0 {
        return;
    }
    let mut victims: Vec<&mut Replica> = service.replicas.iter_mut().filter(|r| r.phase != Phase::Terminating && matching(r)).collect();
    victims.sort_by_key(|r| (r.ready, std::cmp::Reverse(r.ordinal)));
    for replica in victims.into_iter().take(n as usize) {
        replica.ready = false;
        replica.phase = Phase::Terminating;
        let _ = replica.control.send(Command::Terminate);
    }
}

/// The last lines of a replica's log, for messages (`(empty log)` if none).
pub(super) fn last_lines(log: &std::path::Path) -> String {
    let tail = crate::process::tail(log, 5);
    if tail.trim().is_empty() { "(empty log)".into() } else { tail }
}
