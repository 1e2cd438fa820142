//! `stormproof k8s render` and `stormproof k8s apply`: a system as
//! Kubernetes manifests, and applying them with server-side apply.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::kube_args::KubeArgs;
use crate::exit::Outcome;
use crate::platform::kube::database::Database;
use crate::platform::kube::{self, manifests};
use crate::systems::System;

/// `stormproof k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    #[command(subcommand)]
    command: K8sCommand,
}

#[derive(Debug, Subcommand)]
enum K8sCommand {
    /// Write the system's manifests (Deployments, Services, HPAs, Secrets, ConfigMap, and a
    /// PostgreSQL StatefulSet for the services' data unless --database-secret) as YAML.
    Render(RenderArgs),
    /// Apply the system's manifests to a namespace with server-side apply.
    Apply(ApplyArgs),
    /// Print where consumer groups are on a topic, as one JSON line: what
    /// the harness's lag probe Job runs inside the cluster.
    #[command(hide = true)]
    Lag(LagArgs),
}

#[derive(Debug, Args)]
struct LagArgs {
    /// Kafka bootstrap servers, as the pod reaches them.
    #[arg(long)]
    bootstrap: String,
    /// The system's topic.
    #[arg(long)]
    topic: String,
    /// A consumer group (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
}

#[derive(Debug, Args)]
struct ManifestArgs {
    /// The system: a built-in's name (shop) or a folder's path.
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
    #[arg(long, default_value = crate::systems::serve::DEMO_USERS)]
    users: String,
    /// Use an existing PostgreSQL instead of rendering one: the Secret (in the namespace)
    /// whose key STORMPROOF_DATABASE_URL holds its postgres:// URL. Each service keeps
    /// its own schema in that database.
    #[arg(long, value_name = "SECRET")]
    database_secret: Option<String>,
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
        K8sCommand::Apply(args) => apply(args).await,
        K8sCommand::Lag(args) => {
            let groups: Vec<(String, String)> = args.groups.iter().map(|g| (g.clone(), g.clone())).collect();
            let reader = crate::chaos::LagReader::new(&args.bootstrap, &args.topic, &groups)?;
            let positions = tokio::task::spawn_blocking(move || reader.positions()).await??;
            println!("{}", serde_json::to_string(&positions)?);
            Ok(Outcome::Passed)
        }
    }
}

/// Server-side apply within the same allowlist as the rails: the flags may
/// not contradict where the system's `system.yaml` says it is deployed.
/// `--dry-run` asks the API server for its own dry run when it answers.
async fn apply(args: ApplyArgs) -> anyhow::Result<Outcome> {
    let def = System::resolve(&args.manifest.system)?.def;
    let (mut context, mut namespace) = (args.kube.context.clone(), args.kube.namespace.clone());
    let origin = format!("{}'s system.yaml", def.system);
    kube::settle("context", &mut context, def.kube.context.as_ref(), &origin)?;
    kube::settle("namespace", &mut namespace, def.kube.namespace.as_ref(), &origin)?;
    let target = KubeArgs { context, namespace, kubeconfig: args.kube.kubeconfig.clone() }.target("k8s apply")?;
    let client = match kube::connect(&target).await {
        Ok(client) => Some(client),
        Err(err) if args.dry_run => {
            eprintln!("dry-run: no API server to ask ({err:#})");
            None
        }
        Err(err) => return Err(err),
    };
    // A second apply keeps the database's password: the server's data
    // directory was initialised with the first one.
    let password = match &client {
        Some(client) if args.manifest.database_secret.is_none() => kube::database::existing_password(client, &target.namespace, &def.system).await,
        _ => None,
    };
    let objects = objects_with(&args.manifest, password)?;
    if args.dry_run {
        let unreachable = match &client {
            Some(client) => manifests::reachable(client).await.err(),
            None => Some("no client".into()),
        };
        if let (Some(client), None) = (&client, &unreachable) {
            for applied in manifests::apply(client, &target.namespace, &objects, manifests::ApplyMode::ServerDryRun).await? {
                println!("{applied} serverside-applied (server dry run)");
            }
            eprintln!("dry-run: the API server validated every object (dryRun=All); nothing was stored in context {}, namespace {}", target.context, target.namespace);
            return Ok(Outcome::Passed);
        }
        for line in manifests::to_yaml(&objects)?.lines() {
            println!("{line}");
        }
        eprintln!(
            "dry-run: the API server is not reachable ({}); printed what would be applied, nothing sent to context {}, namespace {}",
            unreachable.unwrap_or_default(),
            target.context,
            target.namespace
        );
        return Ok(Outcome::Passed);
    }
    let client = client.expect("connected, or returned");
    for applied in manifests::apply(&client, &target.namespace, &objects, manifests::ApplyMode::Apply).await? {
        println!("{applied} serverside-applied");
    }
    Ok(Outcome::Passed)
}

fn objects(args: &ManifestArgs) -> anyhow::Result<Vec<manifests::Object>> {
    objects_with(args, None)
}

/// The objects, with the database's `password` if it has one already
/// (else a new random one, as the JWT key).
fn objects_with(args: &ManifestArgs, password: Option<String>) -> anyhow::Result<Vec<manifests::Object>> {
    let def = System::resolve(&args.system)?.def;
    let database = match (&args.database_secret, password) {
        (Some(secret), _) => Database::Existing(secret.clone()),
        (None, Some(password)) => Database::with_password(password),
        (None, None) => Database::generated(),
    };
    let options = manifests::RenderOptions {
        image: args.image.clone(),
        version: args.version.clone(),
        kafka: args.kafka.clone().unwrap_or_else(|| manifests::default_kafka(&def.system)),
        jwt_secret: args.jwt_secret.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        users: args.users.clone(),
        database,
    };
    manifests::render(&def, &options)
}

