//! Verifying a provider: the Pact verifier replays every pact that names the
//! provider — HTTP requests against the provider's API, messages through the
//! message endpoint — and the outcome becomes a [`Verification`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pact_models::http_utils::HttpAuth;
use pact_verifier::callback_executors::{HttpRequestProviderStateExecutor, ProviderStateExecutor};
use pact_verifier::verification_result::{VerificationExecutionResult, VerificationMismatchResult};
use pact_verifier::{FilterInfo, NullRequestFilterExecutor, ProviderInfo, ProviderTransport, PublishOptions, VerificationOptions};
use serde_json::Value;

use super::messages::{MessageSource, Topic, serve};
use super::provider::LocalProvider;
use super::report::{InteractionReport, JSON_VERSION, MismatchReport, Verification};
use super::states::{self, KnownStates, States};
use super::triggers::{self, Triggers};
use super::pacts;
use crate::systems::definition::SystemDef;
use crate::systems::{Part, System};

/// What a system knows about its providers: its definition (to start them),
/// their message triggers and the provider states they satisfy.
#[derive(Debug, Clone)]
pub struct ProviderSide {
    /// The system's definition.
    pub def: SystemDef,
    /// Message triggers of its providers (`contracts/triggers.yaml`).
    pub triggers: Triggers,
    /// Provider states of its providers (`contracts/states.yaml`).
    pub states: States,
}

impl ProviderSide {
    /// `system`'s providers, from its contracts folder.
    pub fn of(system: &System) -> anyhow::Result<ProviderSide> {
        let triggers = match system.file(Part::Contracts, triggers::FILE)? {
            Some(file) => triggers::parse(&file.text, &file.origin)?,
            None => Triggers::default(),
        };
        let states = match system.file(Part::Contracts, states::FILE)? {
            Some(file) => states::parse(&file)?,
            None => States::default(),
        };
        Ok(ProviderSide { def: system.def.clone(), triggers, states })
    }
}

/// Where the pacts come from.
#[derive(Debug, Clone)]
pub enum PactSource {
    /// A pact file, or a directory of them.
    Path(PathBuf),
    /// A Pact Broker, through its "pacts for verification" API.
    Broker {
        /// Broker base URL.
        url: String,
        /// Bearer token or user:password.
        auth: Option<super::broker::Auth>,
        /// Consumer version selectors (the broker's JSON form).
        selectors: Vec<Value>,
        /// Allow pending pacts to fail without failing the run.
        enable_pending: bool,
    },
}

/// Results to publish to the Pact Broker after verifying.
#[derive(Debug, Clone)]
pub struct PublishResults {
    /// Provider version verified (e.g. a git sha).
    pub provider_version: String,
    /// Provider branch.
    pub branch: Option<String>,
    /// Link to the CI build.
    pub build_url: Option<String>,
}

/// What to verify and against what.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    /// Provider name as the pacts name it, e.g. `shop.product`.
    pub provider: String,
    /// Where the pacts are.
    pub source: PactSource,
    /// The provider's system, if it is one stormproof knows (to start it
    /// and to read its triggers and states).
    pub side: Option<ProviderSide>,
    /// A running provider; `None` starts it locally from its system definition.
    pub base_url: Option<String>,
    /// Kafka of a running provider (for message capture).
    pub kafka: Option<String>,
    /// Variant of the locally started provider (e.g. `item-rename`).
    pub variant: Option<String>,
    /// Provider-state URL; `None` accepts the states the system lists.
    pub state_change_url: Option<String>,
    /// Message trigger mapping; default `triggers.yaml` beside the pacts,
    /// then the system's.
    pub triggers: Option<PathBuf>,
    /// Publish results to the broker.
    pub publish: Option<PublishResults>,
    /// Only interactions whose description matches this regex.
    pub filter_description: Option<String>,
    /// The stormproof binary that starts a local provider (default: this one).
    pub exe: Option<PathBuf>,
}

/// Verifies `plan.provider`. `Err` is an error (no pacts, the provider
/// would not start); a violated contract is `Ok` with `passed == false`.
pub async fn verify(plan: &VerifyPlan) -> anyhow::Result<Verification> {
    let started = Instant::now();
    let service = plan.provider.split_once('.').map_or(plan.provider.as_str(), |(_, service)| service);
    let def = plan.side.as_ref().map(|side| &side.def);
    let mut requests = HashMap::new();
    let mut trigger_file = plan.triggers.clone();
    let sources = match &plan.source {
        PactSource::Path(path) => {
            let files = pacts::for_provider(path, &plan.provider)?;
            for file in &files {
                requests.extend(request_lines(&file.consumer, &file.body));
            }
            trigger_file = trigger_file.or_else(|| triggers::beside(path));
            files.iter().map(|f| pact_verifier::PactSource::File(f.path.to_string_lossy().into_owned())).collect()
        }
        PactSource::Broker { url, auth, selectors, enable_pending } => vec![pact_verifier::PactSource::BrokerWithDynamicConfiguration {
            provider_name: plan.provider.clone(),
            broker_url: url.trim_end_matches('/').to_string(),
            enable_pending: *enable_pending,
            include_wip_pacts_since: None,
            provider_tags: vec![],
            provider_branch: plan.publish.as_ref().and_then(|p| p.branch.clone()),
            selectors: pact_verifier::selectors::json_to_selectors(selectors.clone()),
            auth: auth.as_ref().map(super::broker::Auth::to_http_auth).or(Some(HttpAuth::None)),
            links: vec![],
        }],
    };
    let mut provider_triggers = match &trigger_file {
        Some(path) => triggers::load(path)?,
        None => plan.side.as_ref().map(|side| side.triggers.clone()).unwrap_or_default(),
    };
    let provider_triggers = provider_triggers.remove(&plan.provider).unwrap_or_default();
    let known = KnownStates::of(&plan.provider, plan.side.as_ref().map_or(&States::default(), |side| &side.states));

    let local = match &plan.base_url {
        Some(_) => None,
        None => {
            let def = def.ok_or_else(|| anyhow::anyhow!("`{}` is not a service of a system stormproof knows: pass --base-url (or --system)", plan.provider))?;
            let exe = match &plan.exe {
                Some(exe) => exe.clone(),
                None => std::env::current_exe().map_err(|err| anyhow::anyhow!("cannot find the stormproof executable: {err}"))?,
            };
            Some(LocalProvider::start(&exe, def, service, plan.variant.as_deref()).await?)
        }
    };
    let base_url = local.as_ref().map_or_else(|| plan.base_url.clone().unwrap_or_default(), |l| l.base_url.clone());
    let kafka = local.as_ref().map(|l| l.kafka.clone()).or_else(|| plan.kafka.clone());
    let kafka = match (kafka, def) {
        (Some(bootstrap), Some(def)) => Some(Topic { bootstrap, topic: def.topic.clone(), partitions: def.partitions }),
        _ => None,
    };
    let known = known.at(&base_url, kafka.clone());
    let result = run_verifier(plan, sources, &base_url, MessageSource::new(provider_triggers, base_url.clone(), kafka), &known).await;
    if let Some(local) = local {
        local.stop().await;
    }
    let (result, notes) = result?;
    let states = (plan.state_change_url.is_none()).then_some(&known);
    to_report(plan, result, &requests, &notes, states, started.elapsed())
}

async fn run_verifier(
    plan: &VerifyPlan,
    sources: Vec<pact_verifier::PactSource>,
    base_url: &str,
    messages: MessageSource,
    known: &KnownStates,
) -> anyhow::Result<(VerificationExecutionResult, BTreeMap<String, String>)> {
    let url = url::Url::parse(base_url).map_err(|err| anyhow::anyhow!("bad provider URL `{base_url}`: {err}"))?;
    let notes = messages.notes.clone();
    let (message_addr, endpoint) = serve(Arc::new(messages)).await?;
    let path = url.path().trim_end_matches('/').to_string();
    let provider = ProviderInfo {
        name: plan.provider.clone(),
        host: url.host_str().unwrap_or("127.0.0.1").to_string(),
        transports: vec![
            ProviderTransport {
                transport: "http".into(),
                port: url.port_or_known_default(),
                path: (!path.is_empty()).then_some(path),
                scheme: Some(url.scheme().to_string()),
            },
            ProviderTransport { transport: "message".into(), port: Some(message_addr.port()), path: None, scheme: Some("http".into()) },
        ],
        ..ProviderInfo::default()
    };
    // The verifier uses the provider's host for every transport, so the
    // message endpoint (on loopback) is reached only for a provider on
    // loopback: remote providers get their HTTP interactions verified.
    let options = VerificationOptions::<NullRequestFilterExecutor> {
        request_timeout: 30_000,
        coloured_output: false,
        no_pacts_is_error: true,
        ..VerificationOptions::default()
    };
    let publish = plan.publish.as_ref().map(|p| PublishOptions {
        provider_version: Some(p.provider_version.clone()),
        build_url: p.build_url.clone(),
        provider_tags: vec![],
        provider_branch: p.branch.clone(),
    });
    let filter = match &plan.filter_description {
        Some(description) => FilterInfo::Description(description.clone()),
        None => FilterInfo::None,
    };
    let result = match &plan.state_change_url {
        Some(url) => {
            let states = Arc::new(HttpRequestProviderStateExecutor { state_change_url: Some(url.clone()), ..Default::default() });
            call(provider, sources, filter, &options, publish.as_ref(), &states).await
        }
        None => call(provider, sources, filter, &options, publish.as_ref(), &Arc::new(known.clone())).await,
    };
    endpoint.abort();
    let notes = notes.lock().map(|n| n.clone()).unwrap_or_default();
    Ok((result?, notes))
}

async fn call<S: ProviderStateExecutor>(
    provider: ProviderInfo,
    sources: Vec<pact_verifier::PactSource>,
    filter: FilterInfo,
    options: &VerificationOptions<NullRequestFilterExecutor>,
    publish: Option<&PublishOptions>,
    states: &Arc<S>,
) -> anyhow::Result<VerificationExecutionResult> {
    // Awaited on this task: the verifier's future is not Send.
    pact_verifier::verify_provider_async(provider, sources, filter, vec![], options, publish, states, None).await
}

/// `(consumer, description)` → `GET /products/1` or `message`, from a pact.
fn request_lines(consumer: &str, pact: &Value) -> HashMap<(String, String), String> {
    let mut lines = HashMap::new();
    for interaction in pact["interactions"].as_array().into_iter().flatten().chain(pact["messages"].as_array().into_iter().flatten()) {
        let description = interaction["description"].as_str().unwrap_or_default().to_string();
        let request = &interaction["request"];
        // A path the provider state gives is shown as its expression: the
        // example path is not the one asked for.
        let path = request["generators"]["path"]["expression"].as_str().or_else(|| request["path"].as_str());
        let line = match path {
            Some(path) => format!("{} {path}", request["method"].as_str().unwrap_or("GET")),
            None => "message".to_string(),
        };
        lines.insert((consumer.to_string(), description), line);
    }
    lines
}

fn to_report(
    plan: &VerifyPlan,
    result: VerificationExecutionResult,
    requests: &HashMap<(String, String), String>,
    notes: &BTreeMap<String, String>,
    states: Option<&KnownStates>,
    elapsed: Duration,
) -> anyhow::Result<Verification> {
    let mut interactions = Vec::new();
    for r in &result.interaction_results {
        let mut report = InteractionReport {
            consumer: r.consumer.clone(),
            description: r.interaction_description.clone(),
            request: requests.get(&(r.consumer.clone(), r.interaction_description.clone())).cloned().unwrap_or_default(),
            states: r.provider_states.clone(),
            passed: r.result.is_ok(),
            mismatches: vec![],
            error: None,
            duration: r.duration,
        };
        if let Err(err) = &r.result {
            let json: Value = (&VerificationMismatchResult::from(err)).into();
            report.mismatches = json["mismatches"].as_array().into_iter().flatten().map(MismatchReport::from_json).collect();
            // A status or method mismatch is about the request: name its path.
            for m in report.mismatches.iter_mut().filter(|m| m.path.is_empty()) {
                m.path = report.request.clone();
            }
            // The cause first: a wrong status explains a missing body.
            let rank = |kind: &str| ["MethodMismatch", "PathMismatch", "StatusMismatch", "HeaderMismatch"].iter().position(|k| *k == kind).unwrap_or(9);
            report.mismatches.sort_by_key(|m| rank(&m.kind));
            report.error = json["message"].as_str().map(str::to_string);
            // Why the message endpoint could not produce the message.
            if let Some(note) = notes.get(&report.description) {
                report.error = Some(note.clone());
                report.mismatches.clear();
            }
            // The verifier reports a failed state change without its cause.
            if let Some(unknown) = states.and_then(|known| report.states.iter().find(|s| known.explain(s).is_none()).map(|s| known.unknown(s))) {
                report.error = Some(unknown);
                report.mismatches.clear();
            }
        }
        interactions.push(report);
    }
    let errors: Vec<String> = result
        .errors
        .iter()
        // Errors of an interaction are in its entry already.
        .filter(|(what, _)| !interactions.iter().any(|i| what.ends_with(&format!(" - {}", i.description))))
        .map(|(what, mismatch)| {
            let json: Value = mismatch.into();
            format!("{what}: {}", json["message"].as_str().unwrap_or_default())
        })
        .collect();
    if interactions.is_empty() {
        anyhow::bail!("no interactions verified for {}: {}", plan.provider, if errors.is_empty() { "no pacts found".into() } else { errors.join("; ") });
    }
    let passed = result.result && interactions.iter().all(|i| i.passed) && errors.is_empty();
    let verifier_output = result.output.clone();
    Ok(Verification { version: JSON_VERSION, provider: plan.provider.clone(), variant: plan.variant.clone(), passed, elapsed, interactions, errors, verifier_output })
}

/// A reference provider running with its message endpoint, for a verifier
/// outside stormproof (`stormproof contract serve`).
pub struct RunningProvider {
    /// Base URL of the provider's HTTP API.
    pub base_url: String,
    /// URL of the message endpoint.
    pub messages_url: String,
    /// Its state-change URL: the provider states of `contracts/states.yaml`.
    pub states_url: String,
    /// Bootstrap address of the provider's broker.
    pub kafka: String,
    provider: LocalProvider,
    endpoint: tokio::task::JoinHandle<()>,
}

impl RunningProvider {
    /// Stops the endpoint and every process of the provider.
    pub async fn stop(self) {
        self.endpoint.abort();
        self.provider.stop().await;
    }
}

/// Starts provider `name` (e.g. `shop.product`) of `side` locally with its
/// message endpoint; `triggers` overrides the system's trigger mapping.
pub async fn serve_provider(name: &str, side: &ProviderSide, variant: Option<&str>, triggers: Option<&std::path::Path>) -> anyhow::Result<RunningProvider> {
    let service = name.strip_prefix(&format!("{}.", side.def.system)).ok_or_else(|| anyhow::anyhow!("name the provider as SYSTEM.SERVICE of {}, e.g. {}.{}", side.def.system, side.def.system, side.def.service_names().first().unwrap_or(&"SERVICE")))?;
    let mut all = match triggers {
        Some(path) => triggers::load(path)?,
        None => side.triggers.clone(),
    };
    let provider_triggers = all.remove(name).unwrap_or_default();
    let exe = std::env::current_exe()?;
    let provider = LocalProvider::start(&exe, &side.def, service, variant).await?;
    let kafka = Topic { bootstrap: provider.kafka.clone(), topic: side.def.topic.clone(), partitions: side.def.partitions };
    let states = KnownStates::of(name, &side.states);
    let source = MessageSource::new(provider_triggers, provider.base_url.clone(), Some(kafka)).with_states(states);
    let (addr, endpoint) = serve(Arc::new(source)).await?;
    let (base_url, kafka) = (provider.base_url.clone(), provider.kafka.clone());
    let states_url = format!("http://{addr}{}", super::messages::STATES_PATH);
    Ok(RunningProvider { base_url, messages_url: format!("http://{addr}"), states_url, kafka, provider, endpoint })
}
