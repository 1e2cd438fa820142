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

use super::probe::Probe;
use super::replica::{self, Command};
use crate::platform::{Platform, PlatformError, ReplicaStatus, ServiceStatus};
use crate::systems::definition::{Role, SystemDef};
use crate::systems::kit::Upstreams;

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
    /// The embedded broker's address, if it runs one.
    pub broker: Option<SocketAddr>,
    /// Service name → its stable address (`http://127.0.0.1:PORT`).
    pub service_urls: BTreeMap<String, String>,
    /// Grace period between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Service → variant to run instead of the normal service.
    pub variants: Vec<(String, String)>,
}

/// What a replica is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Starting,
    Running,
    Terminating,
    Crashed,
}

pub(super) struct Replica {
    pub id: String,
    pub ordinal: u32,
    pub pid: Option<u32>,
    pub addr: Option<SocketAddr>,
    pub ready: bool,
    pub restarts: u32,
    pub phase: Phase,
    pub version: String,
    pub started: Instant,
    control: watch::Sender<Command>,
}

/// How one service's replicas are run and probed.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub role: Role,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub version: String,
    pub variant: Option<String>,
}

struct Service {
    name: String,
    spec: Spec,
    desired: u32,
    replicas: Vec<Replica>,
    next_ordinal: u32,
}

/// The local platform's control plane.
pub struct Supervisor {
    system: String,
    pub(super) launch: Launch,
    services: Mutex<Vec<Service>>,
    changed: Notify,
    pub(super) http: reqwest::Client,
}

impl Supervisor {
    /// A supervisor for `def` with no replica running yet (all desired 0).
    pub fn new(def: &SystemDef, launch: Launch) -> Arc<Supervisor> {
        let mut services = Vec::new();
        if launch.broker.is_some() {
            let spec = Spec { role: Role::Infrastructure, readiness: Some(Probe::tcp(Duration::from_millis(250))), liveness: Some(Probe::kafka()), version: "tansu".into(), variant: None };
            services.push(Service { name: BROKER.into(), spec, desired: 0, replicas: vec![], next_ordinal: 1 });
        }
        for service in &def.services {
            let spec = Spec {
                role: service.role,
                readiness: service.readiness.as_ref().map(Probe::http),
                liveness: service.liveness.as_ref().map(Probe::http),
                version: "v1".into(),
                variant: launch.variants.iter().find(|(n, _)| *n == service.name).map(|(_, v)| v.clone()),
            };
            services.push(Service { name: service.name.clone(), spec, desired: 0, replicas: vec![], next_ordinal: 1 });
        }
        let http = crate::http_client().pool_max_idle_per_host(2).build().unwrap_or_default();
        Arc::new(Supervisor { system: def.system.clone(), launch, services: Mutex::new(services), changed: Notify::new(), http })
    }

    /// The system's name.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Keeps replicas at their desired count until the process ends.
    pub fn start(self: &Arc<Self>) {
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
        for service in services.iter_mut() {
            let active = service.replicas.iter().filter(|r| r.phase != Phase::Terminating).count() as u32;
            for _ in active..service.desired {
                let ordinal = service.next_ordinal;
                service.next_ordinal += 1;
                let id = format!("{}-{ordinal}", service.name);
                let (control, commands) = watch::channel(Command::Run);
                service.replicas.push(Replica {
                    id: id.clone(),
                    ordinal,
                    pid: None,
                    addr: None,
                    ready: false,
                    restarts: 0,
                    phase: Phase::Starting,
                    version: service.spec.version.clone(),
                    started: Instant::now(),
                    control,
                });
                tokio::spawn(replica::run(self.clone(), service.name.clone(), id, service.spec.clone(), commands));
            }
            if active > service.desired {
                // Like a ReplicaSet: unready replicas go first, then the youngest.
                let mut victims: Vec<&mut Replica> = service.replicas.iter_mut().filter(|r| r.phase != Phase::Terminating).collect();
                victims.sort_by_key(|r| (r.ready, std::cmp::Reverse(r.ordinal)));
                for replica in victims.into_iter().take((active - service.desired) as usize) {
                    // Out of the endpoints first, then SIGTERM.
                    replica.ready = false;
                    replica.phase = Phase::Terminating;
                    let _ = replica.control.send(Command::Terminate);
                }
            }
        }
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
                    role: s.spec.role,
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
                            version: r.version.clone(),
                            phase: format!("{:?}", r.phase).to_lowercase(),
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
        s.desired = replicas;
        drop(services);
        self.changed.notify_one();
        Ok(())
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
    async fn rollout(&self, _service: &str, _template: &crate::platform::Template) -> Result<crate::platform::RolloutStatus, PlatformError> {
        Err(PlatformError::Refused("rollouts are not built yet on the local platform".into()))
    }

    async fn rollout_status(&self, _service: &str) -> Result<crate::platform::RolloutStatus, PlatformError> {
        Err(PlatformError::Refused("rollouts are not built yet on the local platform".into()))
    }

    async fn rollout_undo(&self, _service: &str) -> Result<crate::platform::RolloutStatus, PlatformError> {
        Err(PlatformError::Refused("rollouts are not built yet on the local platform".into()))
    }

    async fn autoscalers(&self) -> Result<Vec<crate::platform::AutoscalerStatus>, PlatformError> {
        Ok(vec![])
    }
}
