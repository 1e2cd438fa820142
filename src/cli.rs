//! Command-line arguments and dispatch. The engines never see clap types:
//! each subcommand turns its arguments into the library's own plans here,
//! and this is the only place that prints for users.

mod chaos_cmds;
mod check_cmds;
mod contract_cmds;
mod k8s_cmds;
mod kube_args;
mod platform_cmds;
mod prove_cmds;
mod rollout_cmds;
mod siege;
mod siege_args;
mod siege_distributed;
mod siege_kube;

pub use siege_args::{SiegeArgs, SiegeCommand};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::Outcome;
use crate::systems::GatewayOptions;
use crate::systems::kit::ServeOptions;

/// stormproof: chaos, load and contract testing for event-driven microservices.
///
/// Runs a system — a built-in one by name, or a folder of your own by path
/// — on a local platform (a real Kafka-API broker and every service as its
/// own process, no cluster) and acts on it like Kubernetes would: scale,
/// kill, probe, roll out; or acts on it where it is deployed.
///
/// Exit codes: 0 passed, 1 a gate or verdict failed, 2 usage or input error.
#[derive(Debug, Parser)]
#[command(name = "stormproof", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a system locally: broker, services, gateway (Ctrl-C stops it all).
    Up(UpArgs),
    /// Stop the system `up` started, leaving no process behind.
    Down(RunDirArgs),
    /// Show services with desired, ready and available replicas.
    Status(StatusArgs),
    /// Set a service's replicas (0 included), like `kubectl scale`.
    Scale(ScaleArgs),
    /// Kill one replica of a service (SIGKILL), like deleting a pod.
    Kill(KillArgs),
    /// Rolling update to a new version, honouring maxSurge/maxUnavailable and readiness; status; undo.
    Rollout(rollout_cmds::RolloutArgs),
    /// Show the autoscalers (HorizontalPodAutoscaler v2 on CPU), like `kubectl get hpa`.
    Hpa(rollout_cmds::HpaArgs),
    /// Score the course's checkpoints against a system (starts it if it is not up).
    Check(check_cmds::CheckArgs),
    /// Load a service as siege does (same flags), with real measurement and CI gates.
    Siege(siege_args::SiegeCommand),
    /// Chaos experiments: fault, verdict, guaranteed rollback.
    Chaos(chaos_cmds::ChaosArgs),
    /// Kubernetes manifests of a system: render, apply (server-side apply).
    K8s(k8s_cmds::K8sArgs),
    /// Run the embedded Kafka-API broker (nisshi, SQLite storage).
    Broker(BrokerArgs),
    /// Consumer-driven contracts (Pact): verify a provider, publish pacts, can-i-deploy.
    Contract(contract_cmds::ContractArgs),
    /// Run one service of a system (what a replica or container runs).
    #[command(hide = true)]
    Serve(ServeArgs),
}

/// Where a running system keeps its state.
#[derive(Debug, Clone, Args)]
pub struct RunDirArgs {
    /// Run directory: state file, service data, logs.
    #[arg(long, env = "STORMPROOF_RUN_DIR", default_value = ".stormproof", global = true)]
    pub run_dir: PathBuf,
}

/// `stormproof up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The system to run: a built-in's name (shop) or a folder's path.
    pub system: String,
    /// Gateway port on 127.0.0.1 (0 picks a free one).
    #[arg(long, short, env = "STORMPROOF_PORT")]
    pub port: Option<u16>,
    /// Start SERVICE with N replicas instead of the definition's (repeatable).
    #[arg(long = "replicas", value_name = "SERVICE=N", value_parser = parse_replicas)]
    pub replicas: Vec<(String, u32)>,
    /// Run SERVICE as a variant, e.g. product=item-rename or order=sync-delivery (repeatable).
    #[arg(long = "variant", value_name = "SERVICE=VARIANT", value_parser = parse_variant)]
    pub variants: Vec<(String, String)>,
    /// Keep the data of the previous run (default: start empty).
    #[arg(long)]
    pub keep_data: bool,
    /// Use this Kafka (HOST:PORT) instead of the embedded broker.
    #[arg(long, env = "STORMPROOF_KAFKA")]
    pub kafka: Option<String>,
    /// Start in the background and return once every replica is ready.
    #[arg(long, short)]
    pub detach: bool,
    /// Grace period between SIGTERM and SIGKILL when stopping a replica.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
    /// How long to wait for every replica to be ready.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    pub ready_timeout: std::time::Duration,
    /// A rollout without progress for this long fails (default: each service's, Kubernetes' 600s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub progress_deadline: Option<std::time::Duration>,
    /// How often the autoscaler acts (kube-controller-manager's --horizontal-pod-autoscaler-sync-period).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub hpa_sync_period: std::time::Duration,
    /// Scale-down stabilisation window of the autoscaler (Kubernetes: 300s).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub hpa_downscale_stabilization: std::time::Duration,
    /// `on`: every link (gateway → service, a `calls:` entry, service →
    /// embedded broker) goes through a userspace link proxy, where network
    /// faults are set. `off`: every part connects directly — no network
    /// faults; for measuring what the proxies cost (benches/link_overhead.sh).
    #[arg(long, value_enum, default_value_t = LinksSwitch::On, env = "STORMPROOF_LINKS")]
    pub links: LinksSwitch,
    /// Where services keep their data: sqlite (a file each), postgres (a
    /// private cluster `up` starts and stops) or postgres=URL (a schema each).
    #[arg(long, default_value = "sqlite", value_parser = parse_store)]
    pub store: crate::platform::local::StoreChoice,
    #[command(flatten)]
    gateway: GatewayOptions,
    #[command(flatten)]
    run: RunDirArgs,
}

/// Whether `up` puts link proxies on the links it wires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinksSwitch {
    /// Through link proxies (network faults possible).
    On,
    /// Direct connections.
    Off,
}

/// `stormproof status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (the platform's service list) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    run: RunDirArgs,
}

/// `stormproof scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Service, as SYSTEM.SERVICE or SERVICE (e.g. shop.delivery).
    pub service: String,
    /// Desired replicas.
    pub replicas: u32,
    /// Wait until exactly that many replicas are ready.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    run: RunDirArgs,
}

/// `stormproof kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Service, as SYSTEM.SERVICE or SERVICE.
    pub service: String,
    /// The replica to kill (default: any ready one).
    #[arg(long)]
    pub replica: Option<String>,
    #[command(flatten)]
    run: RunDirArgs,
}

/// `stormproof broker`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: std::net::SocketAddr,
    /// Also listen on LISTEN and advertise ADVERTISED to the clients that
    /// connect there (a client's link proxy), so its reconnections to the
    /// advertised broker keep going through the proxy (repeatable).
    #[arg(long = "link", value_name = "LISTEN=ADVERTISED", value_parser = parse_link)]
    pub links: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// Directory for the broker's SQLite storage.
    #[arg(long, default_value = ".stormproof/broker")]
    pub data: PathBuf,
    /// Serve the broker fault control endpoint (HTTP) on this address; it
    /// takes only requests with the bearer token in STORMPROOF_BROKER_TOKEN.
    #[arg(long, requires = "faults_token")]
    pub faults: Option<std::net::SocketAddr>,
    /// The token the fault endpoint requires (`Authorization: Bearer …`);
    /// give it by the environment variable, as `up` does: every local user
    /// can read a process's arguments.
    #[arg(long = "faults-token", env = "STORMPROOF_BROKER_TOKEN", hide_env_values = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub faults_token: Option<String>,
}

/// `stormproof serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// SYSTEM.SERVICE, e.g. shop.order or shop.gateway.
    pub service: String,
    #[command(flatten)]
    options: ServeOptions,
    #[command(flatten)]
    gateway: GatewayOptions,
}

fn parse_variant(s: &str) -> Result<(String, String), String> {
    let (name, variant) = s.split_once('=').ok_or_else(|| format!("expected SERVICE=VARIANT, got `{s}`"))?;
    Ok((name.rsplit('.').next().unwrap_or(name).to_string(), variant.to_string()))
}

fn parse_store(s: &str) -> Result<crate::platform::local::StoreChoice, String> {
    use crate::platform::local::StoreChoice;
    match s.split_once('=') {
        None if s == "sqlite" => Ok(StoreChoice::Sqlite),
        None if s == "postgres" => Ok(StoreChoice::Postgres(None)),
        Some(("postgres", url)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(StoreChoice::Postgres(Some(url.to_string()))),
        _ => Err(format!("expected sqlite, postgres or postgres=postgres://…, got `{s}`")),
    }
}

fn parse_replicas(s: &str) -> Result<(String, u32), String> {
    let (name, count) = s.split_once('=').ok_or_else(|| format!("expected SERVICE=N, got `{s}`"))?;
    let count = count.parse().map_err(|_| format!("`{count}` is not a replica count"))?;
    let name = name.rsplit('.').next().unwrap_or(name).to_string();
    Ok((name, count))
}

fn parse_link(s: &str) -> Result<(std::net::SocketAddr, std::net::SocketAddr), String> {
    let (listen, advertised) = s.split_once('=').ok_or_else(|| format!("expected LISTEN=ADVERTISED (two HOST:PORT), got `{s}`"))?;
    let addr = |a: &str| a.parse().map_err(|_| format!("`{a}` is not HOST:PORT"));
    Ok((addr(listen)?, addr(advertised)?))
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    crate::install_crypto_provider();
    match cli.command {
        Command::Up(args) => platform_cmds::up(args).await,
        Command::Down(args) => platform_cmds::down(&args.run_dir).await,
        Command::Status(args) => platform_cmds::status(&args.run.run_dir, args.json).await,
        Command::Scale(args) => platform_cmds::scale(args).await,
        Command::Kill(args) => platform_cmds::kill(args).await,
        Command::Rollout(args) => rollout_cmds::rollout(args).await,
        Command::Hpa(args) => rollout_cmds::hpa(args).await,
        Command::Check(args) => check_cmds::check(args).await,
        Command::Siege(args) => siege::run_siege(args).await,
        Command::Chaos(args) => chaos_cmds::chaos(args).await,
        Command::K8s(args) => k8s_cmds::k8s(args).await,
        Command::Broker(args) => {
            init_logs("warn");
            let faults = args.faults.zip(args.faults_token).map(|(addr, token)| crate::broker::FaultEndpoint { addr, token });
            crate::broker::run(crate::broker::BrokerConfig { listen: args.listen, data: args.data, faults, links: args.links }).await?;
            Ok(Outcome::Passed)
        }
        Command::Contract(args) => contract_cmds::run(args).await,
        Command::Serve(args) => {
            let (_, service) = crate::systems::serve::split_name(&args.service)?;
            let level = std::env::var(crate::systems::log_level::variable(service)).ok();
            let rust_log = std::env::var("RUST_LOG").ok();
            let filter = crate::systems::log_level::filter(service, level.as_deref(), rust_log.as_deref(), "info,rdkafka=warn").map_err(anyhow::Error::msg)?;
            init_log_filter(tracing_subscriber::EnvFilter::try_new(&filter).map_err(|err| anyhow::anyhow!("log filter `{filter}`: {err}"))?);
            crate::systems::serve(&args.service, args.options, args.gateway).await?;
            Ok(Outcome::Passed)
        }
    }
}

/// Logs to stderr, filtered by RUST_LOG (default `default`).
fn init_logs(default: &str) {
    init_log_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)));
}

fn init_log_filter(filter: tracing_subscriber::EnvFilter) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
