//! `stormproof contract …`: arguments, and the one place contract results
//! are printed. Exit codes as `pact_verifier_cli`: 0 every contract holds,
//! 1 a contract is violated (or can-i-deploy says no), 2 an error — bad
//! flags, no pacts found, a provider that would not start.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::contract::broker::{Auth, Broker};
use crate::contract::verify::{PactSource, ProviderSide, PublishResults, VerifyPlan, serve_provider, verify};
use crate::exit::Outcome;
use crate::systems::System;

/// `stormproof contract`.
#[derive(Debug, Args)]
pub struct ContractArgs {
    /// What to do with contracts.
    #[command(subcommand)]
    pub command: ContractCommand,
}

/// The contract subcommands.
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Verify a provider against the pacts that name it (exit 0 pass, 1 violation, 2 error).
    Verify(Box<VerifyArgs>),
    /// Publish pact files to a Pact Broker.
    Publish(PublishArgs),
    /// Ask a Pact Broker whether a version can be deployed (exit 0 yes, 1 no).
    CanIDeploy(CanIDeployArgs),
    /// Run a reference provider, its message endpoint and its provider
    /// states for another Pact verifier (e.g. pact_verifier_cli
    /// --transports message:PORT --state-change-url URL), until Ctrl-C.
    Serve(ServeArgs),
}

/// `stormproof contract serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Provider to run, as SYSTEM.SERVICE (e.g. shop.product).
    #[arg(long)]
    pub provider: String,
    /// Its system, by name or folder (default: the provider's SYSTEM).
    #[arg(long, value_name = "NAME|PATH")]
    pub system: Option<String>,
    /// Run this variant of it.
    #[arg(long)]
    pub variant: Option<String>,
    /// Message trigger mapping (default: the system's contracts/triggers.yaml).
    #[arg(long, value_name = "FILE")]
    pub triggers: Option<PathBuf>,
}

/// Pact Broker connection flags (the same variables as the Pact CLIs).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pact Broker")]
pub struct BrokerArgs {
    /// Pact Broker base URL.
    #[arg(long, env = "PACT_BROKER_BASE_URL")]
    pub broker_url: Option<String>,
    /// Bearer token for the broker.
    #[arg(long, env = "PACT_BROKER_TOKEN", hide_env_values = true)]
    pub broker_token: Option<String>,
    /// Basic-auth user for the broker.
    #[arg(long, env = "PACT_BROKER_USERNAME")]
    pub broker_username: Option<String>,
    /// Basic-auth password for the broker.
    #[arg(long, env = "PACT_BROKER_PASSWORD", hide_env_values = true)]
    pub broker_password: Option<String>,
}

impl BrokerArgs {
    fn auth(&self) -> Option<Auth> {
        Auth::from_flags(self.broker_token.clone(), self.broker_username.clone(), self.broker_password.clone())
    }

    fn broker(&self) -> anyhow::Result<Broker> {
        let url = self.broker_url.as_deref().ok_or_else(|| anyhow::anyhow!("--broker-url (or PACT_BROKER_BASE_URL) is required"))?;
        Broker::new(url, self.auth())
    }
}

/// `stormproof contract verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Provider to verify, as the pacts name it (e.g. shop.product).
    #[arg(long)]
    pub provider: String,
    /// The provider's system, by name or folder (default: the provider's
    /// SYSTEM, when stormproof knows it): how to start it, its triggers and states.
    #[arg(long, value_name = "NAME|PATH")]
    pub system: Option<String>,
    /// Pact file or directory (default: the system's contracts, unless --broker-url).
    #[arg(long, value_name = "DIR|FILE")]
    pub pacts: Option<PathBuf>,
    /// Consumer version selector as JSON (repeatable; with --broker-url).
    /// Default: {"mainBranch":true} and {"deployedOrReleased":true}.
    #[arg(long = "consumer-version-selectors", value_name = "JSON")]
    pub selectors: Vec<String>,
    /// Let pending pacts fail without failing the run (with --broker-url).
    #[arg(long)]
    pub enable_pending: bool,
    /// A running provider (default: start it locally from its system definition).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Kafka of a running provider, to capture its messages from.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka: Option<String>,
    /// Start this variant of the provider (e.g. item-rename, drop-product-name).
    #[arg(long)]
    pub variant: Option<String>,
    /// URL the verifier POSTs provider states to (default: accept the states the system lists in contracts/states.yaml).
    #[arg(long, value_name = "URL")]
    pub state_change_url: Option<String>,
    /// Message trigger mapping (default: triggers.yaml beside the pacts, then the system's).
    #[arg(long, value_name = "FILE")]
    pub triggers: Option<PathBuf>,
    /// Only verify interactions whose description matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub filter_description: Option<String>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Publish the results to the broker (needs --provider-version).
    #[arg(long, requires = "provider_version")]
    pub publish: bool,
    /// Provider version verified (e.g. the git sha).
    #[arg(long)]
    pub provider_version: Option<String>,
    /// Provider branch.
    #[arg(long)]
    pub provider_branch: Option<String>,
    /// Link to the CI build, published with the results.
    #[arg(long)]
    pub build_url: Option<String>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// `stormproof contract publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Pact file or directory (e.g. contracts/shop).
    pub pacts: PathBuf,
    /// Consumer version the pacts belong to (e.g. the git sha).
    #[arg(long)]
    pub consumer_app_version: String,
    /// Branch of that version.
    #[arg(long)]
    pub branch: Option<String>,
    /// Tag for that version (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// `stormproof contract can-i-deploy`.
#[derive(Debug, Args)]
pub struct CanIDeployArgs {
    /// The application (pacticipant) to deploy, e.g. shop.product.
    #[arg(long)]
    pub pacticipant: String,
    /// Its version.
    #[arg(long)]
    pub version: String,
    /// Target environment (as recorded in the broker).
    #[arg(long)]
    pub to_environment: Option<String>,
    /// Or: deploy alongside the latest versions with this tag.
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Runs one contract command.
pub async fn run(args: ContractArgs) -> anyhow::Result<Outcome> {
    // The verifier reports usage to pact.io unless told not to.
    if std::env::var_os("PACT_DO_NOT_TRACK").is_none() {
        // SAFETY: set before any other thread of ours reads the environment.
        unsafe { std::env::set_var("PACT_DO_NOT_TRACK", "true") };
    }
    match args.command {
        ContractCommand::Verify(args) => run_verify(*args).await,
        ContractCommand::Serve(args) => {
            let system = provider_system(&args.provider, args.system.as_deref())?;
            let side = ProviderSide::of(&system)?;
            let running = serve_provider(&args.provider, &side, args.variant.as_deref(), args.triggers.as_deref()).await?;
            // One write, and a reader that stops listening must not kill us.
            let announce = format!(
                "STORMPROOF_PROVIDER_URL={}\nSTORMPROOF_MESSAGES_URL={}\nSTORMPROOF_KAFKA={}\nSTORMPROOF_STATES_URL={}\n",
                running.base_url, running.messages_url, running.kafka, running.states_url
            );
            let mut stdout = std::io::stdout().lock();
            let _ = std::io::Write::write_all(&mut stdout, announce.as_bytes()).and_then(|()| std::io::Write::flush(&mut stdout));
            drop(stdout);
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            running.stop().await;
            Ok(Outcome::Passed)
        }
        ContractCommand::Publish(args) => {
            let published = args.broker.broker()?.publish(&args.pacts, &args.consumer_app_version, args.branch.as_deref(), &args.tags).await?;
            for pact in &published.pacts {
                println!("published {pact} ({})", args.consumer_app_version);
            }
            Ok(Outcome::Passed)
        }
        ContractCommand::CanIDeploy(args) => {
            let broker = args.broker.broker()?;
            let answer = broker.can_i_deploy(&args.pacticipant, &args.version, args.to_environment.as_deref(), args.to.as_deref()).await?;
            for row in &answer.rows {
                println!("  {row}");
            }
            let verdict = if answer.deployable { "yes" } else { "NO" };
            println!("can I deploy {} {}? {verdict}: {}", args.pacticipant, args.version, answer.reason);
            Ok(if answer.deployable { Outcome::Passed } else { Outcome::Failed })
        }
    }
}

/// The system of `provider` (`SYSTEM.SERVICE`): the one `given` names, else
/// the built-in SYSTEM.
fn provider_system(provider: &str, given: Option<&str>) -> anyhow::Result<System> {
    match given {
        Some(reference) => System::resolve(reference),
        None => {
            let (system, _) = provider.split_once('.').ok_or_else(|| anyhow::anyhow!("name the provider as SYSTEM.SERVICE (e.g. shop.product), or pass --system"))?;
            System::resolve(system)
        }
    }
}

async fn run_verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    // A provider already running (--base-url) needs no known system.
    let system = match provider_system(&args.provider, args.system.as_deref()) {
        Ok(system) => Some(system),
        Err(_) if args.base_url.is_some() && args.system.is_none() => None,
        Err(err) => return Err(err),
    };
    let side = system.as_ref().map(ProviderSide::of).transpose()?;
    if let (Some(system), Some(variant)) = (&system, &args.variant) {
        let service = args.provider.rsplit('.').next().unwrap_or(&args.provider);
        system.def.check_variant(service, variant).map_err(|err| anyhow::anyhow!(err))?;
    }
    // A built-in's pacts are compiled in: written out for the verifier.
    let scratch = std::env::temp_dir().join(format!("stormproof-pacts-{}", uuid::Uuid::new_v4()));
    let result = verify_with(args, side, system.as_ref(), &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn verify_with(args: VerifyArgs, side: Option<ProviderSide>, system: Option<&System>, scratch: &std::path::Path) -> anyhow::Result<Outcome> {
    let source = match (&args.broker.broker_url, &args.pacts) {
        (Some(url), None) => {
            let selectors = if args.selectors.is_empty() {
                vec![serde_json::json!({"mainBranch": true}), serde_json::json!({"deployedOrReleased": true})]
            } else {
                args.selectors.iter().map(|s| serde_json::from_str::<Value>(s).with_context(|| format!("selector `{s}` is not JSON"))).collect::<Result<_, _>>()?
            };
            PactSource::Broker { url: url.clone(), auth: args.broker.auth(), selectors, enable_pending: args.enable_pending }
        }
        (_, Some(path)) => PactSource::Path(path.clone()),
        (None, None) => {
            let system = system.ok_or_else(|| anyhow::anyhow!("no pacts: pass --pacts DIR|FILE or --broker-url"))?;
            let dir = system.contracts_dir(scratch)?;
            eprintln!("verifying against the pacts of {} ({})", system.name(), system.dir().map_or_else(|| "compiled in".to_string(), |_| dir.display().to_string()));
            PactSource::Path(dir)
        }
    };
    let publish = match (args.publish, &args.provider_version) {
        (true, Some(version)) => {
            anyhow::ensure!(matches!(source, PactSource::Broker { .. }), "--publish needs pacts from --broker-url");
            Some(PublishResults { provider_version: version.clone(), branch: args.provider_branch.clone(), build_url: args.build_url.clone() })
        }
        _ => None,
    };
    let plan = VerifyPlan {
        provider: args.provider,
        source,
        side,
        base_url: args.base_url,
        kafka: args.kafka,
        variant: args.variant,
        state_change_url: args.state_change_url,
        triggers: args.triggers,
        publish,
        filter_description: args.filter_description,
        exe: None,
    };
    let verification = verify(&plan).await?;
    print!("{}", verification.to_text());
    if let Some(path) = &args.json {
        std::fs::write(path, verification.to_json()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, verification.to_junit()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if verification.passed { Outcome::Passed } else { Outcome::Failed })
}
