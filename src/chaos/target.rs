//! The target of an experiment: the running system it acts on — a
//! platform, the gateway, consumer lag — on the local platform or on a
//! cluster behind the safety rails. A run on a cluster records where it
//! acted (`kube.json` in its folder), so `chaos rollback` and `chaos abort`
//! find the same cluster again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::experiment::KubeScope;
use super::events::EventSource;
use super::lag::LagReader;
use crate::platform::Platform;
use crate::platform::kube::service_proxy::{self, ServiceProxy};
use crate::platform::kube::{self, Allowed, KubePlatform, KubeTarget, Rails};
use crate::platform::local::{ControlClient, RunState};
use crate::systems::definition::SystemDef;

/// The running system an experiment acts on.
#[derive(Clone)]
pub struct Target {
    /// The platform's operations.
    pub platform: Arc<dyn Platform>,
    /// The gateway's base URL.
    pub gateway: String,
    /// The local platform's run directory, or a cluster run's own folder
    /// (recorded for `chaos rollback`).
    pub run_dir: PathBuf,
    /// Reads consumer lag (when the broker's address is known).
    pub lag: Option<Arc<LagReader>>,
    /// Where the system's topic is (when the broker's address is known).
    pub events: Option<EventSource>,
    /// A dry run: the platform prints its changes instead of making them,
    /// and no traffic goes through the gateway.
    pub dry_run: bool,
    /// The forwarder `gateway` points at when the gateway is reached
    /// through the API server's service proxy (kept alive with the target).
    pub gateway_proxy: Option<Arc<ServiceProxy>>,
}

/// How to reach a system on a cluster (`--platform kube`).
#[derive(Debug, Clone, Default)]
pub struct KubeSettings {
    /// Kubeconfig context (the only one allowed).
    pub context: Option<String>,
    /// Namespace (the only one allowed).
    pub namespace: Option<String>,
    /// Kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// The gateway's URL as the harness reaches it.
    pub gateway_url: Option<String>,
    /// Kafka reachable from the harness, for lag and events checks; without
    /// it lag is read by a probe Job inside the cluster.
    pub kafka: Option<String>,
    /// The stormproof image a probe Job runs.
    pub harness_image: String,
    /// Print every change instead of sending it.
    pub dry_run: bool,
}

impl Target {
    /// The gateway's JWT secret as the harness can know it: the variable
    /// that overrides it, else the local run dir's `jwt-secret`.
    pub fn jwt_secret(&self) -> Option<String> {
        std::env::var(crate::systems::serve::JWT_SECRET_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::fs::read_to_string(crate::platform::local::secret_path(&self.run_dir)).ok())
    }

    /// `def` running on the local platform in `run_dir`.
    pub fn local(def: &SystemDef, run_dir: &Path) -> anyhow::Result<Target> {
        let state = RunState::read_live(run_dir)?;
        let lag = LagReader::new(&state.kafka, &def.topic, &def.consumer_groups()).ok().map(Arc::new);
        let events = Some(EventSource { bootstrap: state.kafka.clone(), topic: def.topic.clone() });
        Ok(Target { platform: Arc::new(ControlClient::new(&state)), gateway: state.gateway.clone(), run_dir: std::path::absolute(run_dir)?, lag, events, dry_run: false, gateway_proxy: None })
    }

    /// `def` on a cluster, behind the rails; `dir` is the run's folder,
    /// where the cluster coordinates are recorded. `scope` is the
    /// experiment's own `kube:` section: the settings may leave out what it
    /// names, but may not contradict it. A dry run prints through `print`.
    pub async fn kube(def: &SystemDef, settings: &KubeSettings, dir: &Path, scope: Option<&KubeScope>, print: impl Fn(&str) + Send + Sync + 'static) -> anyhow::Result<Target> {
        let (mut context, mut namespace) = (settings.context.clone(), settings.namespace.clone());
        if let Some(scope) = scope {
            for (flag, given, named) in [("context", &mut context, &scope.context), ("namespace", &mut namespace, &scope.namespace)] {
                match given {
                    Some(given) if given != named => anyhow::bail!("--{flag} {given} contradicts the experiment, which may act only in {flag} {named}"),
                    _ => *given = Some(named.clone()),
                }
            }
        }
        // Where the system's own definition says it is deployed: the same rule.
        let mut gateway_url = settings.gateway_url.clone();
        let deployed = &def.kube;
        let origin = format!("{}'s system.yaml", def.system);
        kube::settle("context", &mut context, deployed.context.as_ref(), &origin)?;
        kube::settle("namespace", &mut namespace, deployed.namespace.as_ref(), &origin)?;
        kube::settle("gateway-url", &mut gateway_url, deployed.gateway_url.as_ref(), &origin)?;
        let target = KubeTarget::from_flags(context, namespace, settings.kubeconfig.clone(), "--platform kube")?;
        if let Some(gateway) = &gateway_url {
            url::Url::parse(gateway).map_err(|err| anyhow::anyhow!("--gateway-url `{gateway}` is not a URL: {err}"))?;
        }
        let mut rails = guarded(def, &target).await?;
        // Without a URL, the gateway's Service through the API server.
        let gateway_proxy = match gateway_url {
            Some(_) => None,
            None => Some(Arc::new(service_proxy::start(rails.client(), &target.namespace, GATEWAY_SERVICE, GATEWAY_PORT).await?)),
        };
        let gateway = gateway_url.or_else(|| gateway_proxy.as_ref().map(|p| p.url.clone())).expect("a URL or the proxy");
        let lag = match &settings.kafka {
            Some(kafka) => LagReader::new(kafka, &def.topic, &def.consumer_groups()).ok(),
            // A dry run creates nothing, not even a probe Job.
            None if settings.dry_run => None,
            None => Some(in_cluster_lag(&rails, def, &settings.harness_image).await),
        };
        if settings.dry_run {
            rails = rails.dry_run(print);
        }
        Recorded::write(dir, def, &target)?;
        let lag = lag.map(Arc::new);
        let events = settings.kafka.as_ref().map(|k| EventSource { bootstrap: k.clone(), topic: def.topic.clone() });
        let gateway = gateway.trim_end_matches('/').to_string();
        Ok(Target { platform: Arc::new(rails), gateway, run_dir: std::path::absolute(dir)?, lag, events, dry_run: settings.dry_run, gateway_proxy })
    }
}

/// The Service and port `k8s render` gives the gateway.
const GATEWAY_SERVICE: &str = "gateway";
const GATEWAY_PORT: u16 = 80;

/// Lag read by a probe Job in the cluster, against the bootstrap the
/// system's pods use: the broker advertises addresses only they resolve.
/// Each read is a Job (seconds, not milliseconds: the sampler's lag is
/// coarser than on the local platform).
async fn in_cluster_lag(rails: &Rails, def: &SystemDef, image: &str) -> LagReader {
    let jobs = rails.probe_jobs(image);
    let runtime = tokio::runtime::Handle::current();
    // Reads run on blocking threads (see LagReader), which may block on the runtime.
    let run = move |args: Vec<String>| runtime.block_on(jobs.run("lag", args)).map_err(anyhow::Error::from);
    LagReader::remote(&rails.cluster_kafka().await, &def.topic, &def.consumer_groups(), Box::new(run))
}

/// The kube platform for `def` in `target`, behind the safety rails.
async fn guarded(def: &SystemDef, target: &KubeTarget) -> anyhow::Result<Rails> {
    let client = kube::connect(target).await?;
    let platform = KubePlatform::for_system(client, &target.context, &target.namespace, def);
    let allowed = Allowed { context: target.context.clone(), namespace: target.namespace.clone() };
    Ok(Rails::new(platform, &allowed)?)
}

/// What `chaos rollback` needs to find the cluster again, beside the journal.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Recorded {
    system: String,
    /// How to name the system again (a user's folder), for its Deployments' mapping.
    #[serde(default)]
    reference: Option<String>,
    context: String,
    namespace: String,
    kubeconfig: Option<PathBuf>,
}

const RECORDED: &str = "kube.json";

impl Recorded {
    fn write(dir: &Path, def: &SystemDef, target: &KubeTarget) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let reference = def.folder.as_ref().map(|f| f.display().to_string());
        let recorded = Recorded { system: def.system.clone(), reference, context: target.context.clone(), namespace: target.namespace.clone(), kubeconfig: target.kubeconfig.clone() };
        std::fs::write(dir.join(RECORDED), serde_json::to_vec_pretty(&recorded)?)?;
        Ok(())
    }
}

/// The platform a run in `run_dir` acted on: the cluster it recorded, else
/// the local platform running there.
pub async fn recorded_platform(run_dir: &Path) -> anyhow::Result<Arc<dyn Platform>> {
    let Ok(text) = std::fs::read_to_string(run_dir.join(RECORDED)) else {
        return Ok(Arc::new(ControlClient::new(&RunState::read_live(run_dir)?)));
    };
    let recorded: Recorded = serde_json::from_str(&text).map_err(|err| anyhow::anyhow!("{}: {err}", run_dir.join(RECORDED).display()))?;
    let target = KubeTarget { context: recorded.context, namespace: recorded.namespace, kubeconfig: recorded.kubeconfig };
    let def = match &recorded.reference {
        Some(reference) => crate::systems::System::resolve(reference)?.def,
        // A reference system, or one whose folder is gone: found by stormproof's labels.
        None => crate::systems::System::resolve(&recorded.system).map(|s| s.def).unwrap_or_else(|_| SystemDef::unmapped(&recorded.system)),
    };
    Ok(Arc::new(guarded(&def, &target).await?))
}
