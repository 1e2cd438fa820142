//! `stormproof rollout` (start, status, undo) and `stormproof hpa`: the
//! local platform's Deployment and HorizontalPodAutoscaler views.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::RunDirArgs;
use crate::exit::Outcome;
use crate::platform::local::{ControlClient, RunState};
use crate::platform::{AutoscalerStatus, Platform, RolloutState, RolloutStatus, Template};

/// `stormproof rollout`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: Option<RolloutCommand>,
    /// Service to roll, as SYSTEM.SERVICE or SERVICE.
    #[arg(required = true)]
    service: Option<String>,
    /// New version label.
    #[arg(long, required = true)]
    to: Option<String>,
    /// Run this variant of the service in the new version.
    #[arg(long)]
    variant: Option<String>,
    /// Extra environment for the new version (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Roll out without the readiness probe: new replicas take traffic as
    /// soon as they start (shows what readiness protects).
    #[arg(long)]
    without_readiness: bool,
    /// Return once the change is made instead of following the rollout.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    follow: Follow,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Follow a rollout until it completes or fails (`kubectl rollout status`).
    Status {
        /// Service, as SYSTEM.SERVICE or SERVICE.
        service: String,
        #[command(flatten)]
        follow: Follow,
    },
    /// Roll back to the previous revision (`kubectl rollout undo`).
    Undo {
        /// Service, as SYSTEM.SERVICE or SERVICE.
        service: String,
        /// Return once the change is made instead of following the rollout.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        follow: Follow,
    },
}

#[derive(Debug, Clone, Args)]
struct Follow {
    /// Give up following after this long (the rollout goes on).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    run: RunDirArgs,
}

/// `stormproof hpa`.
#[derive(Debug, Args)]
pub struct HpaArgs {
    /// Print JSON (every autoscaler's status).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    run: RunDirArgs,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

pub(super) async fn rollout(args: RolloutArgs) -> anyhow::Result<Outcome> {
    match args.command {
        Some(RolloutCommand::Status { service, follow }) => {
            let (client, service) = connect(&follow, &service)?;
            follow_rollout(&client, &service, follow.timeout).await
        }
        Some(RolloutCommand::Undo { service, no_wait, follow }) => {
            let (client, service) = connect(&follow, &service)?;
            let status = client.rollout_undo(&service).await?;
            println!("{service} rolling back to {} (revision {})", status.template.version, status.revision);
            if no_wait { Ok(Outcome::Passed) } else { follow_rollout(&client, &service, follow.timeout).await }
        }
        None => {
            let (Some(service), Some(version)) = (args.service, args.to) else { anyhow::bail!("expected SERVICE --to VERSION") };
            let (client, service) = connect(&args.follow, &service)?;
            let env: BTreeMap<String, String> = args.env.into_iter().collect();
            let def = RunState::read_live(&args.follow.run.run_dir)?.system_def()?.def;
            if let Some(variant) = &args.variant {
                def.check_variant(&service, variant).map_err(|err| anyhow::anyhow!(err))?;
            }
            def.check_rollout_env(&service, env.keys()).map_err(|err| anyhow::anyhow!("--env: {err}"))?;
            let template = Template { variant: args.variant, env, readiness: !args.without_readiness, ..Template::version(&version) };
            let status = client.rollout(&service, &template).await?;
            println!("{service} rolling out {} (revision {})", status.template.version, status.revision);
            if args.no_wait { Ok(Outcome::Passed) } else { follow_rollout(&client, &service, args.follow.timeout).await }
        }
    }
}

fn connect(follow: &Follow, service: &str) -> anyhow::Result<(ControlClient, String)> {
    let state = RunState::read_live(&follow.run.run_dir)?;
    let service = state.service_name(service)?.to_string();
    Ok((ControlClient::new(&state), service))
}

/// Prints each new state until complete (0) or failed (1), like `kubectl rollout status`.
async fn follow_rollout(client: &ControlClient, service: &str, timeout: Duration) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let status = client.rollout_status(service).await?;
        let line = match status.state() {
            RolloutState::Complete => {
                println!("{} successfully rolled out ({})", service, summary(&status));
                return Ok(Outcome::Passed);
            }
            RolloutState::Failed(why) => {
                println!("error: {why} ({})", summary(&status));
                return Ok(Outcome::Failed);
            }
            RolloutState::Waiting(what) => format!("Waiting for rollout of {service} to finish: {what}..."),
        };
        if line != last {
            println!("{line}");
            last = line;
        }
        if Instant::now() >= deadline {
            println!("error: {service} still rolling out after {} ({})", humantime::format_duration(timeout), summary(&status));
            return Ok(Outcome::Failed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn summary(s: &RolloutStatus) -> String {
    format!("revision {} {}: {} updated, {} total, {} available of {}", s.revision, s.template.version, s.updated, s.total, s.available, s.replicas)
}

pub(super) async fn hpa(args: HpaArgs) -> anyhow::Result<Outcome> {
    let state = RunState::read_live(&args.run.run_dir)?;
    let autoscalers = ControlClient::new(&state).autoscalers().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&autoscalers)?);
        return Ok(Outcome::Passed);
    }
    println!("  {:<10} {:<14} {:>7} {:>7} {:>8} {:>7}  {:<24} CONDITIONS", "SERVICE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "DESIRED", "LAST SCALE");
    for a in &autoscalers {
        println!(
            "  {:<10} {:<14} {:>7} {:>7} {:>8} {:>7}  {:<24} {}",
            a.service,
            targets(a),
            a.min_replicas,
            a.max_replicas,
            a.current_replicas,
            a.desired_replicas,
            a.last_scale_time.as_deref().unwrap_or("-"),
            a.conditions.iter().map(|c| format!("{}={} ({})", c.kind, c.status, c.reason)).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(Outcome::Passed)
}

/// `cpu: 187%/50%`, as `kubectl get hpa` shows it.
fn targets(a: &AutoscalerStatus) -> String {
    let current = a.current_cpu_utilization.map(|u| format!("{u}%")).unwrap_or_else(|| "<unknown>".into());
    format!("cpu: {current}/{}%", a.target_cpu_utilization)
}
