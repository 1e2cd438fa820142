//! `stormproof k8s render` and `stormproof k8s apply`: a reference system
//! as Kubernetes manifests, and applying them with server-side apply; and
//! the Kubernetes side of `chaos run` (the guarded target) and `chaos abort`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::chaos::{self, Target, Verdict};
use crate::exit::Outcome;
use crate::platform::Platform;
use crate::platform::kube::{self, Allowed, KubePlatform, KubeTarget, Rails, manifests};
use crate::platform::local::pid_alive;
use crate::systems::definition::SystemDef;

/// `stormproof k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    #[command(subcommand)]
    command: K8sCommand,
}

#[derive(Debug, Subcommand)]
enum K8sCommand {
    /// Write the system's manifests (Deployments, Services, HPAs, Secret, ConfigMap) as YAML.
    Render(RenderArgs),
    /// Apply the system's manifests to a namespace with server-side apply.
    Apply(ApplyArgs),
}

/// Where a command acts on a cluster; both are required so that nothing
/// ever lands in whatever context kubectl happens to point at.
#[derive(Debug, Clone, Args)]
pub(super) struct KubeArgs {
    /// Kubeconfig context to act in (the only one allowed).
    #[arg(long, env = "STORMPROOF_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Namespace to act in (the only one allowed).
    #[arg(long, short = 'n', env = "STORMPROOF_KUBE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl KubeArgs {
    /// The target, or a usage error naming the missing flag.
    pub fn target(&self, command: &str) -> anyhow::Result<KubeTarget> {
        let missing = |flag: &str| anyhow::anyhow!("{command} needs --{flag} (the kube {flag} it may act in)");
        Ok(KubeTarget {
            context: self.context.clone().ok_or_else(|| missing("context"))?,
            namespace: self.namespace.clone().ok_or_else(|| missing("namespace"))?,
            // KUBECONFIG may list several files; kube reads the first here.
            kubeconfig: self.kubeconfig.as_ref().map(|p| std::env::split_paths(p).next().unwrap_or_else(|| p.clone())),
        })
    }
}

#[derive(Debug, Args)]
struct ManifestArgs {
    /// The reference system.
    #[arg(default_value = "shop")]
    system: String,
    /// The stormproof image the services run (built from ci/Dockerfile).
    #[arg(long, env = "STORMPROOF_IMAGE", default_value = "stormproof:v1")]
    image: String,
    /// Version label of the services.
    #[arg(long = "service-version", default_value = "v1")]
    version: String,
    /// Kafka bootstrap servers in the cluster (default: the Strimzi cluster `SYSTEM-kafka`).
    #[arg(long)]
    kafka: Option<String>,
    /// HMAC key for the gateway's tokens (default: a new random one).
    #[arg(long, env = "STORMPROOF_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Demo users as USER:PASSWORD (comma-separated).
    #[arg(long, default_value = "user1:stormproof,user2:stormproof,user3:stormproof")]
    users: String,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    #[command(flatten)]
    kube: KubeArgs,
    /// Print what would be applied and send nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(super) async fn k8s(args: K8sArgs) -> anyhow::Result<Outcome> {
    match args.command {
        K8sCommand::Render(args) => {
            let yaml = manifests::to_yaml(&objects(&args.manifest)?)?;
            match args.output {
                Some(path) => std::fs::write(&path, yaml).map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()))?,
                None => print!("{yaml}"),
            }
            Ok(Outcome::Passed)
        }
        K8sCommand::Apply(args) => {
            let target = args.kube.target("k8s apply")?;
            let objects = objects(&args.manifest)?;
            if args.dry_run {
                for line in manifests::to_yaml(&objects)?.lines() {
                    println!("{line}");
                }
                eprintln!("dry-run: nothing applied to context {}, namespace {}", target.context, target.namespace);
                return Ok(Outcome::Passed);
            }
            let client = kube::connect(&target).await?;
            for applied in manifests::apply(&client, &target.namespace, &objects).await? {
                println!("{applied} serverside-applied");
            }
            Ok(Outcome::Passed)
        }
    }
}

fn objects(args: &ManifestArgs) -> anyhow::Result<Vec<manifests::Object>> {
    let def = SystemDef::builtin(&args.system)?;
    let options = manifests::RenderOptions {
        image: args.image.clone(),
        version: args.version.clone(),
        kafka: args.kafka.clone().unwrap_or_else(|| format!("{}-kafka-kafka-bootstrap:9092", args.system)),
        jwt_secret: args.jwt_secret.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        users: args.users.clone(),
    };
    Ok(manifests::render(&def, &options))
}

/// `chaos run --platform kube` flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kubernetes (--platform kube)")]
pub(super) struct ChaosKubeArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The gateway's URL as the harness reaches it (e.g. a `kubectl port-forward svc/gateway`).
    #[arg(long, env = "STORMPROOF_GATEWAY_URL")]
    gateway_url: Option<String>,
    /// Kafka bootstrap servers reachable from the harness, for consumer-lag checks.
    #[arg(long = "kube-kafka", value_name = "HOST:PORT")]
    kafka: Option<String>,
    /// Print every change as the request it would send, and send none.
    #[arg(long)]
    pub dry_run: bool,
}

/// What `chaos rollback` needs to find the cluster again, beside the journal.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Recorded {
    system: String,
    context: String,
    namespace: String,
    kubeconfig: Option<PathBuf>,
}

const RECORDED: &str = "kube.json";

impl ChaosKubeArgs {
    /// The guarded kube platform as an experiment target; `dir` is the
    /// run's folder, where the cluster coordinates are recorded.
    /// `scope` is the experiment's own `kube:` section, if any: the flags
    /// may leave out what it names, but may not contradict it.
    pub async fn target(&self, system: &str, dir: &Path, scope: Option<&chaos::KubeScope>) -> anyhow::Result<Target> {
        let mut kube = self.kube.clone();
        if let Some(scope) = scope {
            for (flag, given, named) in [("context", &mut kube.context, &scope.context), ("namespace", &mut kube.namespace, &scope.namespace)] {
                match given {
                    Some(given) if given != named => anyhow::bail!("--{flag} {given} contradicts the experiment, which may act only in {flag} {named}"),
                    _ => *given = Some(named.clone()),
                }
            }
        }
        let target = kube.target("--platform kube")?;
        let gateway = self.gateway_url.clone().ok_or_else(|| {
            anyhow::anyhow!("--platform kube needs --gateway-url, e.g. `kubectl port-forward -n {} svc/gateway 8088:80` and --gateway-url http://127.0.0.1:8088", target.namespace)
        })?;
        url::Url::parse(&gateway).map_err(|err| anyhow::anyhow!("--gateway-url `{gateway}` is not a URL: {err}"))?;
        let mut rails = guarded(system, &target).await?;
        if self.dry_run {
            rails = rails.dry_run(|line| println!("{line}"));
        }
        std::fs::create_dir_all(dir)?;
        let recorded = Recorded { system: system.into(), context: target.context.clone(), namespace: target.namespace.clone(), kubeconfig: target.kubeconfig.clone() };
        std::fs::write(dir.join(RECORDED), serde_json::to_vec_pretty(&recorded)?)?;
        let def = SystemDef::builtin(system)?;
        let lag = self.kafka.as_ref().and_then(|k| chaos::LagReader::new(k, &def.topic, &def.consumer_groups()).ok()).map(Arc::new);
        Ok(Target { platform: Arc::new(rails), gateway: gateway.trim_end_matches('/').to_string(), run_dir: std::path::absolute(dir)?, lag })
    }
}

/// The kube platform for `system` in `target`, behind the safety rails.
async fn guarded(system: &str, target: &KubeTarget) -> anyhow::Result<Rails> {
    let client = kube::connect(target).await?;
    let platform = KubePlatform::new(client, &target.context, &target.namespace, system);
    let allowed = Allowed { context: target.context.clone(), namespace: target.namespace.clone() };
    Ok(Rails::new(platform, &allowed)?)
}

/// The kube platform a run recorded in `run_dir`, if it ran on one.
pub(super) async fn recorded_platform(run_dir: &Path) -> anyhow::Result<Option<Arc<dyn Platform>>> {
    let Ok(text) = std::fs::read_to_string(run_dir.join(RECORDED)) else { return Ok(None) };
    let recorded: Recorded = serde_json::from_str(&text).map_err(|err| anyhow::anyhow!("{}: {err}", run_dir.join(RECORDED).display()))?;
    let target = KubeTarget { context: recorded.context, namespace: recorded.namespace, kubeconfig: recorded.kubeconfig };
    Ok(Some(Arc::new(guarded(&recorded.system, &target).await?)))
}

/// The running harness's pid in its run folder, removed when the run ends.
pub(super) struct PidFile(PathBuf);

const PID: &str = "pid";

impl PidFile {
    pub fn write(dir: &Path) -> anyhow::Result<PidFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(PID);
        std::fs::write(&path, std::process::id().to_string())?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How long `chaos abort` waits for the run's rollback (its patience is 90 s).
const ABORT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(150);

/// The kill switch: SIGTERM to the run (which rolls back and ends as
/// aborted), then waits for it and reports its rollback.
pub(super) async fn abort(run: Option<&Path>, reports: &Path) -> anyhow::Result<Outcome> {
    let dir = match run {
        Some(path) if path.is_file() => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        Some(path) => path.to_path_buf(),
        None => newest_running(reports)?,
    };
    let pid_path = dir.join(PID);
    let pid: u32 = std::fs::read_to_string(&pid_path)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no running experiment in {} (no {PID} file)", dir.display()))?;
    anyhow::ensure!(pid_alive(pid), "the experiment in {} is not running (pid {pid} has exited)", dir.display());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)?;
    eprintln!("sent SIGTERM to the experiment (pid {pid}); waiting for its rollback");
    let deadline = std::time::Instant::now() + ABORT_PATIENCE;
    while pid_alive(pid) && pid_path.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let journal = chaos::Journal::read(&dir.join("journal.json"))?;
    println!("{:?}: {}", journal.status, journal.title);
    for step in &journal.rollbacks {
        println!("  {} — {} {}", step.change, step.status, step.detail);
    }
    let rolled_back = journal.rollback_verified == Some(true);
    println!("  rollback {}", if rolled_back { "verified" } else { "NOT verified" });
    Ok(if journal.status == Verdict::Aborted && rolled_back { Outcome::Passed } else { Outcome::Failed })
}

/// The newest run folder under `reports` whose harness is alive.
fn newest_running(reports: &Path) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(reports)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", reports.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| std::fs::read_to_string(p.join(PID)).ok().and_then(|s| s.trim().parse().ok()).is_some_and(pid_alive))
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| anyhow::anyhow!("no running experiment under {}", reports.display()))
}
