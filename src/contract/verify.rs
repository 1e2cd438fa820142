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
use super::states::ReferenceStates;
use super::{pacts, triggers};
use crate::systems::definition::SystemDef;

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
    /// A running provider; `None` starts it locally from its system definition.
    pub base_url: Option<String>,
    /// Kafka of a running provider (for message capture).
    pub kafka: Option<String>,
    /// Variant of the locally started provider (e.g. `item-rename`).
    pub variant: Option<String>,
    /// Provider-state URL; `None` handles states in-process (reference services).
    pub state_change_url: Option<String>,
    /// Message trigger mapping; default `triggers.yaml` beside the pacts.
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
    let (system, service) = plan.provider.split_once('.').unwrap_or(("", plan.provider.as_str()));
    let def = SystemDef::builtin(system).ok();
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
    // Pacts from a broker: the triggers of the checked-out repository.
    let trigger_file = trigger_file.or_else(|| triggers::beside(&PathBuf::from("contracts").join(system)));
    let provider_triggers = match &trigger_file {
        Some(path) => triggers::load(path)?.remove(&plan.provider).unwrap_or_default(),
        None => Default::default(),
    };

    let local = match &plan.base_url {
        Some(_) => None,
        None => {
            let def = def.as_ref().ok_or_else(|| anyhow::anyhow!("`{}` is not a reference service: pass --base-url", plan.provider))?;
            let exe = match &plan.exe {
                Some(exe) => exe.clone(),
                None => std::env::current_exe().map_err(|err| anyhow::anyhow!("cannot find the stormproof executable: {err}"))?,
            };
            Some(LocalProvider::start(&exe, def, service, plan.variant.as_deref()).await?)
        }
    };
    let base_url = local.as_ref().map_or_else(|| plan.base_url.clone().unwrap_or_default(), |l| l.base_url.clone());
    let kafka = local.as_ref().map(|l| l.kafka.clone()).or_else(|| plan.kafka.clone());
    let kafka = match (kafka, &def) {
        (Some(bootstrap), Some(def)) => Some(Topic { bootstrap, topic: def.topic.clone(), partitions: def.partitions }),
        _ => None,
    };
    let result = run_verifier(plan, sources, &base_url, MessageSource::new(provider_triggers, base_url.clone(), kafka)).await;
    if let Some(local) = local {
        local.stop().await;
    }
    let (result, notes) = result?;
    to_report(plan, result, &requests, &notes, started.elapsed())
}

async fn run_verifier(
    plan: &VerifyPlan,
    sources: Vec<pact_verifier::PactSource>,
    base_url: &str,
    messages: MessageSource,
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
        None => call(provider, sources, filter, &options, publish.as_ref(), &Arc::new(ReferenceStates)).await,
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
        let line = match interaction["request"]["path"].as_str() {
            Some(path) => format!("{} {path}", interaction["request"]["method"].as_str().unwrap_or("GET")),
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
    Ok(Verification { version: JSON_VERSION, provider: plan.provider.clone(), variant: plan.variant.clone(), passed, elapsed, interactions, errors })
}

/// A reference provider running with its message endpoint, for a verifier
/// outside stormproof (`stormproof contract serve`).
pub struct RunningProvider {
    /// Base URL of the provider's HTTP API.
    pub base_url: String,
    /// URL of the message endpoint.
    pub messages_url: String,
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

/// Starts reference provider `name` (e.g. `shop.product`) locally with its
/// message endpoint, using the triggers in `triggers`.
pub async fn serve_provider(name: &str, variant: Option<&str>, triggers: &std::path::Path) -> anyhow::Result<RunningProvider> {
    let (system, service) = name.split_once('.').ok_or_else(|| anyhow::anyhow!("name the provider as SYSTEM.SERVICE, e.g. shop.product"))?;
    let def = SystemDef::builtin(system)?;
    let provider_triggers = triggers::load(triggers)?.remove(name).unwrap_or_default();
    let exe = std::env::current_exe()?;
    let provider = LocalProvider::start(&exe, &def, service, variant).await?;
    let kafka = Topic { bootstrap: provider.kafka.clone(), topic: def.topic.clone(), partitions: def.partitions };
    let source = MessageSource::new(provider_triggers, provider.base_url.clone(), Some(kafka));
    let (addr, endpoint) = serve(Arc::new(source)).await?;
    let (base_url, kafka) = (provider.base_url.clone(), provider.kafka.clone());
    Ok(RunningProvider { base_url, messages_url: format!("http://{addr}"), kafka, provider, endpoint })
}
