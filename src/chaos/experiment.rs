//! An experiment file (YAML, in `chaos/`): the hypothesis, the method (faults
//! and how long they hold), what must hold during the fault and after
//! recovery, and guardrails.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::network_action::NetworkAction;
use crate::broker::{Api, Fault as BrokerFaultKind, KafkaError};
use crate::platform::network::{Links, Peer};

/// A whole experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// One line that says what is proved.
    pub title: String,
    /// Longer explanation (the course's checkpoint, the reasoning).
    #[serde(default)]
    pub description: String,
    /// The system under test (`shop`).
    pub system: String,
    /// Demo user whose token the requests carry (default: the demo staff
    /// user `admin`, since experiments drive many synthetic customers; one
    /// that checks what a customer may do names a customer here).
    #[serde(default)]
    pub auth: Auth,
    /// The steady-state hypothesis: checked before the method and after
    /// the rollback.
    #[serde(default)]
    pub hypothesis: Vec<Check>,
    /// Faults, applied in order (none: a steady-state check only).
    #[serde(default)]
    pub method: Vec<Action>,
    /// What must hold while the faults hold.
    #[serde(default)]
    pub during: Vec<Check>,
    /// What must hold after the rollback (each within its deadline).
    #[serde(default)]
    pub after: Vec<Check>,
    /// Load that runs through the whole experiment (the siege engine).
    pub load: Option<LoadDef>,
    /// Limits that abort the experiment.
    #[serde(default)]
    pub guardrails: Guardrails,
    /// On Kubernetes, the only context and namespace the experiment may act
    /// in; the command line must agree (or may leave them out).
    pub kube: Option<KubeScope>,
}

/// Where on Kubernetes an experiment may act.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeScope {
    /// Kubeconfig context.
    pub context: String,
    /// Namespace.
    pub namespace: String,
}

/// Load for the whole run: virtual users walking these routes in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadDef {
    /// Concurrent virtual users.
    #[serde(default = "four")]
    pub users: u32,
    /// Pause of each user between its requests (not counted).
    #[serde(with = "humantime_serde", default)]
    pub delay: Duration,
    /// Requests each user sends, in order (through the gateway, with the token).
    pub routes: Vec<LoadRoute>,
    /// Time under load before the method starts: the baseline the fault is
    /// compared with.
    #[serde(with = "humantime_serde", default = "two_seconds")]
    pub baseline: Duration,
}

fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

fn four() -> u32 {
    4
}

/// One request of the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRoute {
    /// Method and path.
    #[serde(flatten)]
    pub request: Request,
    /// JSON body.
    pub body: Option<Value>,
}

/// A method and the path it goes to (through the gateway): exactly one of
/// `get`, `post`, `put`, `patch`, `delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", rename = "request: one of get, post, put, patch, delete")]
pub enum Request {
    /// GET this path.
    Get(String),
    /// POST to this path.
    Post(String),
    /// PUT to this path.
    Put(String),
    /// PATCH this path.
    Patch(String),
    /// DELETE this path.
    Delete(String),
}

impl Request {
    /// The HTTP method and the path.
    pub fn parts(&self) -> (reqwest::Method, &str) {
        match self {
            Request::Get(path) => (reqwest::Method::GET, path),
            Request::Post(path) => (reqwest::Method::POST, path),
            Request::Put(path) => (reqwest::Method::PUT, path),
            Request::Patch(path) => (reqwest::Method::PATCH, path),
            Request::Delete(path) => (reqwest::Method::DELETE, path),
        }
    }

    fn check(&self) -> Result<(), String> {
        let (_, path) = self.parts();
        if path.starts_with('/') { Ok(()) } else { Err(format!("path `{path}` must start with /")) }
    }
}

/// Credentials for the gateway's token endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl Default for Auth {
    fn default() -> Self {
        Auth { username: "admin".into(), password: "stormproof".into() }
    }
}

/// Limits on a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// The whole experiment, rollback excluded, may not take longer.
    #[serde(with = "humantime_serde", default = "five_minutes")]
    pub max_duration: Duration,
    /// Checks watched while the faults hold: one that stays deviated for
    /// longer than `deviated_for` aborts the run (and rolls back).
    #[serde(default)]
    pub abort_when: Vec<Guard>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails { max_duration: five_minutes(), abort_when: Vec::new() }
    }
}

/// A check that must not stay deviated for long while the faults hold (it
/// is polled every second, so it has no `within`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// What the check claims, in words.
    pub name: String,
    /// How it looks.
    #[serde(flatten)]
    pub probe: Probe,
    /// How long it may stay deviated.
    #[serde(with = "humantime_serde")]
    pub deviated_for: Duration,
}

impl Guard {
    /// The guard as a check tried once.
    pub fn check(&self) -> Check {
        Check { name: self.name.clone(), within: Duration::ZERO, probe: self.probe.clone() }
    }
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

/// One action of the method: a fault, and how long it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// What it does to the system.
    #[serde(flatten)]
    pub fault: Fault,
    /// How long the fault holds before the next action.
    #[serde(with = "humantime_serde", default)]
    pub hold: Duration,
}

/// A fault: exactly one of these keys in an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
// serde names the enum in its error for an action without a fault.
#[serde(rename_all = "kebab-case", rename = "fault: one of scale, kill, switches, stop-broker, rollout, surge, broker, network")]
pub enum Fault {
    /// Set a service's replicas (0 included).
    Scale(Scale),
    /// Kill one replica (SIGKILL / delete the pod).
    Kill(Kill),
    /// Flip a service's misbehaviour switches on every replica.
    Switches(Switches),
    /// Stop the system's broker (the embedded one scales to 0).
    StopBroker(Empty),
    /// Roll a service out to a new version (a deploy under load).
    Rollout(RolloutAction),
    /// Extra load on top of the experiment's (a traffic spike) while the
    /// action holds; it ends before the rollback.
    Surge(LoadDef),
    /// A fault inside the embedded broker, for one service's clients or
    /// one consumer group.
    Broker(BrokerAction),
    /// A fault on network links between the system's parts (a slow link,
    /// resets, a partition), on the platform's link proxies or, on a
    /// cluster, as Chaos Mesh or a NetworkPolicy does it.
    Network(NetworkAction),
}

/// `broker`: what the embedded broker does wrong, and to whose requests —
/// `{service: order, api: produce, error: NOT_LEADER_OR_FOLLOWER}`,
/// `{group: shop.mypage, stall_fetch: 3s}`, `{group: shop.mypage, rebalance: true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Written flat in YAML; read through its fields so that a wrong mix is
// refused with what was expected.
#[serde(try_from = "BrokerFields", into = "BrokerFields")]
pub struct BrokerAction {
    /// Whose requests.
    pub whose: BrokerWhose,
    /// What the broker does to them (the broker's own fault kinds).
    pub fault: BrokerFaultKind,
}

/// Whose requests a broker action faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerWhose {
    /// Every replica of a service of the experiment's system.
    Service(String),
    /// A consumer group, by its name: its group requests, and the Fetch and
    /// Produce of the members that joined it.
    Group(String),
}

/// `broker:` as written: whose (one of `service`, `group`) and one fault
/// (`api` with `error`, `stall_fetch`, or `rebalance: true`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BrokerFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api: Option<Api>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<KafkaError>,
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    stall_fetch: Option<Duration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rebalance: bool,
}

impl TryFrom<BrokerFields> for BrokerAction {
    type Error = String;

    fn try_from(fields: BrokerFields) -> Result<BrokerAction, String> {
        let whose = match (fields.service, fields.group) {
            (Some(service), None) => BrokerWhose::Service(service),
            (None, Some(group)) => BrokerWhose::Group(group),
            _ => return Err("broker: expected exactly one of `service: NAME` or `group: NAME`".into()),
        };
        let fault = match (fields.api, fields.error, fields.stall_fetch, fields.rebalance) {
            (Some(api), Some(error), None, false) => BrokerFaultKind::Error { api, error },
            (None, None, Some(delay), false) if !delay.is_zero() => BrokerFaultKind::StallFetch { delay },
            (None, None, None, true) => BrokerFaultKind::Rebalance,
            (Some(_), None, None, false) => return Err("broker: `api` needs an `error`, a Kafka error name such as NOT_LEADER_OR_FOLLOWER".into()),
            (None, Some(_), None, false) => return Err("broker: `error` needs an `api`: produce, fetch, offset_commit, join_group, heartbeat or sync_group".into()),
            (None, None, Some(_), false) => return Err("broker: `stall_fetch` must be longer than 0".into()),
            _ => return Err("broker: expected exactly one fault: `api` with `error`, `stall_fetch: DURATION`, or `rebalance: true`".into()),
        };
        Ok(BrokerAction { whose, fault })
    }
}

impl From<BrokerAction> for BrokerFields {
    fn from(action: BrokerAction) -> BrokerFields {
        let mut fields = BrokerFields::default();
        match action.whose {
            BrokerWhose::Service(service) => fields.service = Some(service),
            BrokerWhose::Group(group) => fields.group = Some(group),
        }
        match action.fault {
            BrokerFaultKind::Error { api, error } => (fields.api, fields.error) = (Some(api), Some(error)),
            BrokerFaultKind::StallFetch { delay } => fields.stall_fetch = Some(delay),
            BrokerFaultKind::Rebalance => fields.rebalance = true,
        }
        fields
    }
}

/// Placeholder for actions without parameters (`stop-broker: {}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Service name.
    pub service: String,
    /// Replicas.
    pub replicas: u32,
}

/// `rollout`: a rolling update to a new version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutAction {
    /// Service name.
    pub service: String,
    /// New version label.
    pub to: String,
    /// Run this variant of the service in the new version.
    pub variant: Option<String>,
    /// Extra environment for the new version.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// New replicas keep the readiness probe (default). `false` shows what
    /// happens without one: they take traffic as soon as they start.
    #[serde(default = "yes")]
    pub readiness: bool,
}

/// `kill`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kill {
    /// Service name.
    pub service: String,
}

/// `switches`: the service kit's misbehaviour switches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Switches {
    /// Service name.
    pub service: String,
    /// Liveness answers 503.
    #[serde(default)]
    pub unhealthy: bool,
    /// Readiness answers 503.
    #[serde(default)]
    pub unready: bool,
    /// Every business request waits this long (a hang, if long).
    #[serde(default)]
    pub delay_ms: u64,
    /// This fraction of business requests answers 500.
    #[serde(default)]
    pub error_fraction: f64,
}

/// A named check: a probe and how long it may take to hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What the check claims, in words.
    pub name: String,
    /// Retry until this deadline before calling it deviated ("eventually").
    #[serde(with = "humantime_serde", default)]
    pub within: Duration,
    /// How it looks at the system.
    #[serde(flatten)]
    pub probe: Probe,
}

/// How a check looks at the system: exactly one of these keys in a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
// serde names the enum in its error for a check without a probe.
#[serde(rename_all = "kebab-case", rename = "probe: one of flow, replicas, consistency, availability, lag, autoscaler, rollout, untouched, events")]
pub enum Probe {
    /// A sequence of requests with captured values.
    Flow(Vec<Step>),
    /// Replica counts of a service.
    Replicas(ReplicasProbe),
    /// Read model rows against the source of truth.
    Consistency(ConsistencyProbe),
    /// Availability of a load route over the check's phase (needs `load`).
    Availability(AvailabilityProbe),
    /// Consumer-group lag of a service.
    Lag(LagProbe),
    /// A service's autoscaler: active, and its desired replicas in bounds.
    Autoscaler(AutoscalerProbe),
    /// Where a service's rollout stands (kubectl's rule).
    Rollout(RolloutProbe),
    /// The services the method must leave alone are as it found them.
    Untouched(UntouchedProbe),
    /// The events the experiment's flows left on the system's topic.
    Events(EventsProbe),
}

/// What kind of evidence a probe gives (recorded with each result, so
/// readers rank evidence without parsing its words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// Requests and their answers.
    Flow,
    /// Ready replicas and restarts.
    Replicas,
    /// Read-model rows against their source.
    Consistency,
    /// A load route's availability over a phase.
    Availability,
    /// Events a consumer group is behind.
    Lag,
    /// An autoscaler's decision.
    Autoscaler,
    /// A rollout's state.
    Rollout,
    /// Services left as the method found them.
    Untouched,
    /// Events of the experiment's flows on the topic.
    Events,
}

impl Probe {
    /// Its kind.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Probe::Flow(_) => ProbeKind::Flow,
            Probe::Replicas(_) => ProbeKind::Replicas,
            Probe::Consistency(_) => ProbeKind::Consistency,
            Probe::Availability(_) => ProbeKind::Availability,
            Probe::Lag(_) => ProbeKind::Lag,
            Probe::Autoscaler(_) => ProbeKind::Autoscaler,
            Probe::Rollout(_) => ProbeKind::Rollout,
            Probe::Untouched(_) => ProbeKind::Untouched,
            Probe::Events(_) => ProbeKind::Events,
        }
    }
}

/// The autoscaler of a service is active and wants between `at_least` and
/// `at_most` replicas. Without a `within`, the check waits as long as the
/// autoscaler needs: up, three sync periods plus 15 s for replicas to start
/// and be measured; down, the scale-down window plus three sync periods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerProbe {
    /// Service name.
    pub service: String,
    /// Fewest desired replicas that hold.
    pub at_least: Option<u32>,
    /// Most desired replicas that hold.
    pub at_most: Option<u32>,
}

/// The events of the experiment's flows, read from the system's topic over
/// the experiment's window: each with `eventType`, `id`, `timestamp` and
/// the correlation key, keyed by it, with the `type` header, all of a flow
/// on one partition and in causal order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsProbe {
    /// The name the experiment's steps capture a flow's key under (e.g.
    /// `orderId`): each value captured is one flow.
    pub flows: String,
    /// JSON pointer of the correlation key in an event, e.g. `/orderId`.
    pub key: String,
    /// Event types every flow must have (until each is seen, the check is
    /// inconclusive).
    #[serde(default)]
    pub require: Vec<String>,
    /// Causal order: event type → the types that must come before it in
    /// its flow (its partition), e.g. `DeliveryStarted: [OrderPlaced]`.
    #[serde(default)]
    pub after: BTreeMap<String, Vec<String>>,
}

/// A rollout is `complete` or has `failed` (progress deadline exceeded).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutProbe {
    /// Service name.
    pub service: String,
    /// `complete` or `failed`.
    pub state: RolloutExpectation,
    /// The version it must be at (when complete).
    pub version: Option<String>,
}

/// What a rollout probe expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutExpectation {
    /// Every replica updated and available.
    Complete,
    /// Progressing=False, ProgressDeadlineExceeded.
    Failed,
}

/// A service's consumer group is at most `max` events behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagProbe {
    /// The consuming service (group `SYSTEM.SERVICE`).
    pub service: String,
    /// Most events behind that still holds.
    #[serde(default)]
    pub max: i64,
    /// The group must build from the retained events: it had committed no
    /// offset when the experiment began (else the check is inconclusive —
    /// a catch-up from an earlier position proves nothing about retention),
    /// and it has read at least one event. Its evidence is the catch-up time.
    #[serde(default)]
    pub from_scratch: bool,
}

/// Every service but `except` has the desired replicas, replicas,
/// restarts and revision it had when the method began.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UntouchedProbe {
    /// The services the experiment changes on purpose.
    #[serde(default)]
    pub except: Vec<String>,
}

/// Availability of one load route over a phase of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityProbe {
    /// Route as the load engine names it, e.g. `POST /orders`.
    pub route: String,
    /// Lowest acceptable availability, percent.
    pub min: f64,
    /// Fewest requests of the route that must end in the check's window
    /// (transactions and failures) for its availability to be evidence;
    /// with fewer the check is inconclusive, never held.
    #[serde(default = "min_transactions")]
    pub min_transactions: u64,
}

/// Default of [`AvailabilityProbe::min_transactions`]: a percentage of
/// fewer requests says little (one failure in ten is already 90 %).
pub const MIN_TRANSACTIONS: u64 = 20;

fn min_transactions() -> u64 {
    MIN_TRANSACTIONS
}

/// One request of a flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Method and path (strings may use `${captured}`).
    #[serde(flatten)]
    pub request: Request,
    /// JSON body (strings may use `${captured}`).
    pub body: Option<Value>,
    /// What the answer must be.
    #[serde(default)]
    pub expect: Expect,
    /// Values to keep for later steps: name → JSON pointer into the answer.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// Retry this step until it matches, up to this long.
    #[serde(with = "humantime_serde", default)]
    pub eventually: Duration,
    /// Send the bearer token (`true`, default); `false` checks what the
    /// gateway does without one; an attack (`forged-signature`, `expired`,
    /// `alg-none`, `hs512`, `rs256`) sends the token altered that way.
    #[serde(default)]
    pub auth: super::attack::Credential,
}

fn yes() -> bool {
    true
}

/// Expected answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Status code (default: any 2xx).
    pub status: Option<u16>,
    /// JSON pointer → expected value.
    #[serde(default)]
    pub json: BTreeMap<String, Value>,
    /// The answer must come faster than this (e.g. `1500ms`).
    #[serde(with = "humantime_serde", default)]
    pub max_latency: Option<Duration>,
    /// The answer must take at least this long (e.g. `4s`): proves a delay
    /// fault took effect, rather than assuming it did.
    #[serde(with = "humantime_serde", default)]
    pub min_latency: Option<Duration>,
}

/// Replica counts that must hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicasProbe {
    /// Service name.
    pub service: String,
    /// Exactly this many ready replicas.
    pub ready: u32,
    /// At least this many restarts since the experiment began, over its
    /// replicas (self-healing).
    #[serde(default)]
    pub restarts_at_least: u32,
}

/// The read model reflects every command exactly once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProbe {
    /// Source of truth, e.g. `/orders`.
    pub source: String,
    /// JSON pointer of the key in a source row, e.g. `/id`.
    pub source_key: String,
    /// The read model, e.g. `/mypages`.
    pub read_model: String,
    /// JSON pointer of the key in a read-model row, e.g. `/orderId`.
    pub read_key: String,
    /// Pointer → value every read-model row must have (e.g. delivered).
    #[serde(default)]
    pub expect: BTreeMap<String, Value>,
}

/// Reads and checks an experiment file; errors name the file, the line and
/// what was expected.
pub fn load_experiment(path: &Path) -> anyhow::Result<Experiment> {
    let yaml = std::fs::read_to_string(path).map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    parse(&yaml, &path.display().to_string())
}

/// Parses experiment YAML read from `origin`.
pub fn parse(yaml: &str, origin: &str) -> anyhow::Result<Experiment> {
    let experiment: Experiment = serde_saphyr::from_str(yaml).map_err(|err| anyhow::anyhow!("{origin}: {err}"))?;
    experiment.check().map_err(|err| anyhow::anyhow!("{origin}: {err}"))?;
    Ok(experiment)
}

impl Experiment {
    fn check(&self) -> Result<(), String> {
        if self.method.is_empty() && !(self.during.is_empty() && self.after.is_empty()) {
            return Err("method: `during` and `after` checks need at least one action (scale, kill, switches, stop-broker, rollout, surge, broker, network)".into());
        }
        for (i, action) in self.method.iter().enumerate() {
            if let Fault::Surge(surge) = &action.fault {
                check_load(surge).map_err(|e| format!("method[{i}].surge: {e}"))?;
            }
        }
        let guards: Vec<Check> = self.guardrails.abort_when.iter().map(Guard::check).collect();
        for (section, checks) in [("hypothesis", &self.hypothesis), ("during", &self.during), ("after", &self.after), ("guardrails.abort_when", &guards)] {
            for (i, check) in checks.iter().enumerate() {
                let availability = matches!(check.probe, Probe::Availability(_));
                if matches!(check.probe, Probe::Untouched(_)) && matches!(section, "hypothesis" | "guardrails.abort_when") {
                    return Err(format!("{section}[{i}] `{}`: `untouched` compares with the services as the method found them; check it during or after", check.name));
                }
                if section.starts_with("guardrails") && availability {
                    return Err(format!("{section}[{i}] `{}`: availability is judged after the run; guard with a flow or replicas check", check.name));
                }
                if availability && self.load.is_none() {
                    return Err(format!("{section}[{i}] `{}`: an availability check needs a `load` section", check.name));
                }
                if let Probe::Flow(steps) = &check.probe {
                    for (j, step) in steps.iter().enumerate() {
                        step.request.check().map_err(|e| format!("{section}[{i}] `{}` step {j}: {e}", check.name))?;
                    }
                }
                if let Probe::Events(events) = &check.probe {
                    self.check_events(events).map_err(|e| format!("{section}[{i}] `{}`: {e}", check.name))?;
                }
            }
        }
        if let Some(load) = &self.load {
            check_load(load).map_err(|e| format!("load: {e}"))?;
        }
        Ok(())
    }

    /// The first action that needs the embedded broker's fault seam
    /// (`method[i]`), which only the local platform has.
    pub fn broker_action(&self) -> Option<usize> {
        self.method.iter().position(|action| matches!(action.fault, Fault::Broker(_)))
    }

    /// The network actions (`method[i]`, the fault each sets).
    pub fn network_actions(&self) -> impl Iterator<Item = (usize, &crate::platform::network::NetworkFault)> {
        self.method.iter().enumerate().filter_map(|(i, action)| match &action.fault {
            Fault::Network(network) => Some((i, &network.fault)),
            _ => None,
        })
    }

    /// Whether a check or guard reads the system's topic.
    pub fn inspects_events(&self) -> bool {
        let guards = self.guardrails.abort_when.iter().map(|g| &g.probe);
        self.hypothesis.iter().chain(&self.during).chain(&self.after).map(|c| &c.probe).chain(guards).any(|p| matches!(p, Probe::Events(_)))
    }

    /// An events probe follows flows some step captures, by a key pointer.
    fn check_events(&self, events: &EventsProbe) -> Result<(), String> {
        if !events.key.starts_with('/') {
            return Err(format!("key `{}` must be a JSON pointer (start with /)", events.key));
        }
        let guards = self.guardrails.abort_when.iter().map(|g| &g.probe);
        let checks = self.hypothesis.iter().chain(&self.during).chain(&self.after).map(|c| &c.probe);
        let captured = checks.chain(guards).any(|probe| matches!(probe, Probe::Flow(steps) if steps.iter().any(|s| s.capture.contains_key(&events.flows))));
        if captured { Ok(()) } else { Err(format!("flows: no step captures `{}`, so there would be no flow to inspect", events.flows)) }
    }

    /// Whether its rollouts run variants and set settings that `def`
    /// declares for their services.
    pub fn check_against(&self, def: &crate::systems::definition::SystemDef) -> Result<(), String> {
        for (service, variant) in self.variants() {
            def.check_variant(service, variant)?;
        }
        for (i, action) in self.method.iter().enumerate() {
            match &action.fault {
                Fault::Rollout(r) => def.check_rollout_env(&r.service, r.env.keys())?,
                Fault::Broker(b) => check_broker_whose(def, &b.whose).map_err(|e| format!("method[{i}].broker: {e}"))?,
                Fault::Network(n) => check_network_links(def, &n.fault.links).map_err(|e| format!("method[{i}].network: {e}"))?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The variants its rollouts run, by service (to check against the
    /// system's definition).
    pub fn variants(&self) -> impl Iterator<Item = (&str, &str)> {
        self.method.iter().filter_map(|action| match &action.fault {
            Fault::Rollout(r) => r.variant.as_deref().map(|v| (r.service.as_str(), v)),
            _ => None,
        })
    }
}

/// A broker fault for a service or group the system does not have would
/// hit nothing: refused, with the names it has.
fn check_broker_whose(def: &crate::systems::definition::SystemDef, whose: &BrokerWhose) -> Result<(), String> {
    match whose {
        BrokerWhose::Service(service) if def.service(service).is_none() => {
            Err(format!("{} has no service `{service}` (services: {})", def.system, def.service_names().join(", ")))
        }
        BrokerWhose::Group(group) => {
            let groups: Vec<String> = def.consumer_groups().into_iter().map(|(_, group)| group).collect();
            if groups.contains(group) { Ok(()) } else { Err(format!("{} has no consumer group `{group}` (groups: {})", def.system, groups.join(", "))) }
        }
        BrokerWhose::Service(_) => Ok(()),
    }
}

/// A network fault names the system's own parts: a service, `gateway` or
/// `broker`; any other name would match no link.
fn check_network_links(def: &crate::systems::definition::SystemDef, links: &Links) -> Result<(), String> {
    let peers: Vec<&Peer> = match links {
        Links::Between { between } => between.iter().collect(),
        Links::Ends { from, to } => from.iter().chain(to).collect(),
    };
    for peer in peers {
        if let Peer::Service(service) = peer
            && def.service(service).is_none()
        {
            return Err(format!("{} has no service `{service}` (a link end is `gateway`, `broker` or one of: {})", def.system, def.service_names().join(", ")));
        }
    }
    Ok(())
}

fn check_load(load: &LoadDef) -> Result<(), String> {
    if load.routes.is_empty() || load.users == 0 {
        return Err("expected at least one route and one user".into());
    }
    for (i, route) in load.routes.iter().enumerate() {
        route.request.check().map_err(|e| format!("routes[{i}]: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_experiments_parse() {
        for name in crate::systems::builtin_names() {
            let system = crate::systems::System::builtin(name).unwrap();
            for file in system.files(crate::systems::Part::Chaos, "yaml").unwrap() {
                let experiment = parse(&file.text, &file.origin).unwrap_or_else(|e| panic!("{e:#}"));
                experiment.check_against(&system.def).unwrap_or_else(|e| panic!("{}: {e}", file.origin));
            }
        }
    }

    #[test]
    fn an_unknown_field_names_file_and_line() {
        let yaml = "title: t\nsystem: shop\nmethod:\n  - scale: { service: delivery, replicas: 0 }\n    hodl: 5s\n";
        let err = parse(yaml, "chaos/x.yaml").unwrap_err().to_string();
        assert!(err.starts_with("chaos/x.yaml:"), "{err}");
        assert!(err.contains("hodl"), "{err}");
        assert!(err.contains('5'), "names line 5: {err}");
    }

    #[test]
    fn a_guard_is_a_check_with_a_patience() {
        let yaml = "title: t\nsystem: shop\nmethod:\n  - kill: { service: order }\nguardrails:\n  max_duration: 1m\n  abort_when:\n    - name: order ready\n      replicas: { service: order, ready: 1 }\n      deviated_for: 10s\n";
        let experiment = parse(yaml, "x.yaml").unwrap();
        let guard = &experiment.guardrails.abort_when[0];
        assert_eq!(guard.deviated_for, Duration::from_secs(10));
        assert!(matches!(&guard.probe, Probe::Replicas(r) if r.service == "order"));
        let bad = yaml.replace("deviated_for: 10s", "deviated_for: 10s\n      typo: 1");
        assert!(parse(&bad, "x.yaml").is_err(), "unknown fields in a guard are rejected");
    }

    #[test]
    fn an_action_needs_exactly_one_fault() {
        let steady_only = "title: t\nsystem: shop\nhypothesis:\n  - name: n\n    replicas: { service: order, ready: 1 }\n";
        assert!(parse(steady_only, "x.yaml").is_ok(), "a steady-state check needs no method");
        let yaml = "title: t\nsystem: shop\nmethod:\n  - hold: 5s\n";
        let err = parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("fault: one of scale, kill"), "{err}");
        let two = "title: t\nsystem: shop\nmethod:\n  - scale: { service: delivery, replicas: 0 }\n    kill: { service: order }\n";
        assert!(parse(two, "x.yaml").unwrap_err().to_string().contains("kill"), "a second fault is refused");
    }

    #[test]
    fn a_network_action_is_read_into_a_fault_and_a_wrong_one_names_file_and_line() {
        let yaml = "title: t\nsystem: shop\nmethod:\n  - network: { from: order, to: product, latency: 800ms, jitter: 100ms }\n    hold: 10s\n";
        let experiment = parse(yaml, "chaos/x.yaml").unwrap();
        let Fault::Network(action) = &experiment.method[0].fault else { panic!("a network fault") };
        assert_eq!(action.fault.to_string(), "800ms ± 100ms latency on order → product");
        assert_eq!(experiment.method[0].hold, Duration::from_secs(10), "the hold is the action's, as for every fault");
        let def = crate::systems::definition::SystemDef::builtin("shop").unwrap();
        assert_eq!(experiment.check_against(&def), Ok(()));
        let err = parse(&yaml.replace("latency: 800ms, jitter: 100ms", "latency: 800ms, reset: true"), "chaos/x.yaml").unwrap_err().to_string();
        assert!(err.starts_with("chaos/x.yaml:") && err.contains("line 4") && err.contains("expected exactly one toxic"), "{err}");
        let err = parse(&yaml.replace("jitter: 100ms", "jitter: 900ms"), "chaos/x.yaml").unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("jitter is larger"), "problem() is checked at parse time: {err}");
        let typo = parse(&yaml.replace("to: product", "to: prodcut"), "chaos/x.yaml").unwrap();
        assert!(typo.check_against(&def).unwrap_err().contains("method[0].network: shop has no service `prodcut`"));
    }

    #[test]
    fn an_events_check_needs_a_step_that_captures_its_flows() {
        let yaml = "title: t\nsystem: shop\nhypothesis:\n  - name: order\n    flow:\n      - post: /orders\n        capture: { orderId: /id }\n  - name: keyed\n    events: { flows: orderId, key: /orderId }\n";
        let experiment = parse(yaml, "x.yaml").unwrap();
        assert!(experiment.inspects_events());
        let err = parse(&yaml.replace("flows: orderId", "flows: order"), "x.yaml").unwrap_err().to_string();
        assert!(err.contains("hypothesis[1] `keyed`: flows: no step captures `order`"), "{err}");
        let err = parse(&yaml.replace("key: /orderId", "key: orderId"), "x.yaml").unwrap_err().to_string();
        assert!(err.contains("must be a JSON pointer"), "{err}");
    }

    #[test]
    fn a_step_needs_a_method_and_an_absolute_path() {
        let yaml = "title: t\nsystem: shop\nmethod:\n  - kill: { service: order }\nafter:\n  - name: c\n    flow:\n      - get: orders\n";
        let err = parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("must start with /"), "{err}");
        let two = "title: t\nsystem: shop\nmethod:\n  - kill: { service: order }\nafter:\n  - name: c\n    flow:\n      - get: /orders\n        post: /orders\n";
        assert!(parse(two, "x.yaml").unwrap_err().to_string().contains("post"), "one method per step");
        let untouched = "title: t\nsystem: shop\nhypothesis:\n  - name: u\n    untouched: { except: [a] }\n";
        assert!(parse(untouched, "x.yaml").unwrap_err().to_string().contains("as the method found them"), "nothing to compare with before the method");
        let none = "title: t\nsystem: shop\nhypothesis:\n  - name: c\n    within: 5s\n";
        let err = parse(none, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("probe: one of flow, replicas"), "{err}");
    }
}
