//! A system definition: the services of a system, how each runs, their
//! roles, replicas, probes, CPU requests, autoscaling and rollout policy,
//! the variants they can run, and the gateway's routes. Written in YAML as
//! the `system.yaml` of a system's folder (see [`super::catalog`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::command;
use crate::systems::kit::{instance_name, parse_instance, serve_env};

/// How `--variant` names the gateway (`gateway=let-anonymous`), unless a
/// service of the system has that name.
pub const GATEWAY: &str = "gateway";

/// A whole system: a reference system, or a user's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemDef {
    /// Its name (`shop`).
    pub system: String,
    /// The Kafka topic its events go to.
    pub topic: String,
    /// Partitions of that topic.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// The single entry point.
    pub gateway: GatewayDef,
    /// The services, in start order.
    pub services: Vec<ServiceDef>,
    /// Where the system is deployed on a cluster (`--platform kube`).
    #[serde(default)]
    pub kube: KubeSystemDef,
    /// Settings every service reads from its environment: one ConfigMap on
    /// a cluster (seed 004's `config-dev`), each process's environment
    /// locally. A service's own `env:` wins over it.
    #[serde(default)]
    pub config: Option<ConfigDef>,
    /// The folder it was read from, for a system given by path: where the
    /// commands of its own services run.
    #[serde(skip)]
    pub folder: Option<std::path::PathBuf>,
}

/// Where a system runs on Kubernetes: the defaults of `--context`,
/// `--namespace` and `--gateway-url` (a flag may repeat them, never
/// contradict them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSystemDef {
    /// The kubeconfig context it is deployed in.
    pub context: Option<String>,
    /// The namespace its Deployments are in.
    pub namespace: Option<String>,
    /// The gateway's URL as the harness reaches it.
    pub gateway_url: Option<String>,
    /// The probes every service is rendered with (`k8s render`) instead of
    /// its own local ones: a course's manifests' values.
    pub probes: Option<ClusterProbes>,
}

/// A ConfigMap: its name and its keys, each an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDef {
    /// The ConfigMap's name (`config-dev`).
    pub name: String,
    /// Variable name → value (`ORDER_LOG_LEVEL: INFO`).
    pub data: BTreeMap<String, String>,
}

/// The readiness and liveness probes of every service on a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterProbes {
    /// Readiness probe.
    pub readiness: ProbeDef,
    /// Liveness probe.
    pub liveness: ProbeDef,
}

/// Which Deployment of a cluster a service is: its name, namespace and
/// label selector (a user's own Deployments are found by these; the
/// reference systems' by stormproof's own labels).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubeServiceDef {
    /// The Deployment's name (default: the service's name, or the only
    /// Deployment the selector matches).
    pub deployment: Option<String>,
    /// Its namespace (default: the system's).
    pub namespace: Option<String>,
    /// Labels the Deployment carries (`app: order`).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

/// The gateway of a system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayDef {
    /// Port it listens on by default.
    #[serde(default = "default_gateway_port")]
    pub port: u16,
    /// Path prefix → service.
    pub routes: Vec<RouteDef>,
    /// How it authenticates routed requests (default: a JWT bearer token).
    #[serde(default)]
    pub auth: Auth,
    /// Users the gateway gives the admin role (product writes, acting for
    /// any customer); everyone else is a customer acting for themselves.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Origins a browser may call the gateway from (default: the gateway's
    /// own and the local development ports 3000, 5173 and 8080).
    #[serde(default)]
    pub cors_origins: Option<Vec<String>>,
}

/// How the gateway authenticates routed requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// A JWT bearer token it issued (`POST /auth/token`) on every routed request.
    #[default]
    Jwt,
    /// None: every request is routed (systems without authentication).
    None,
}

/// One gateway route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// Path prefix, e.g. `/orders`.
    pub prefix: String,
    /// Service that serves it.
    pub service: String,
}

/// What a service is to the business: experiments treat roles differently
/// (a supporting service may go down without hurting the core flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Part of the core flow (order placement).
    Core,
    /// Supports the flow asynchronously (delivery).
    Supporting,
    /// A CQRS read model built from events (mypage).
    ReadModel,
    /// Infrastructure run by the platform (the broker).
    Infrastructure,
}

/// How a service's replicas run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Runs {
    /// One of stormproof's own service handlers, named `SYSTEM.SERVICE`
    /// (`shop.order`): a replica is `stormproof serve SYSTEM.SERVICE`.
    Builtin(String),
    /// A program of the user's own: its argv, with `${PORT}`, `${KAFKA_BOOTSTRAP}`,
    /// `${TOPIC}`, `${REPLICA}`, `${DATA_DIR}`, `${GROUP}`, `${VERSION}` and
    /// `${SYSTEM_DIR}` substituted (see [`super::command`]). It listens on the
    /// port it is given and ends on SIGTERM.
    Command(Vec<String>),
}

/// A variant of a service: a deliberately different version it can run
/// (`--variant`, rollouts, contract verification). For a built-in handler
/// only what is different, in words; a service of the user's own also says
/// how it runs differently — another command, or extra environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "a variant: what is different, in words, or { about: WORDS, command: [PROGRAM, ARGS...], env: { NAME: VALUE }, max_replicas: N }")]
pub enum VariantDef {
    /// What is different, in words (the handler knows the variant by name).
    About(String),
    /// What is different and how it runs.
    Runs(VariantRuns),
}

/// How a variant of a user's service runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantRuns {
    /// What is different, in words.
    pub about: String,
    /// The command instead of the service's (same substitutions).
    pub command: Option<Vec<String>>,
    /// Environment added to (or replacing) the service's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Deployed with its autoscaler capped at this many replicas: a
    /// variant of how it is deployed rather than of its code.
    pub max_replicas: Option<u32>,
}

impl VariantDef {
    /// What is different, in words.
    pub fn about(&self) -> &str {
        match self {
            VariantDef::About(about) => about,
            VariantDef::Runs(runs) => &runs.about,
        }
    }
}

/// One service of a system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    /// Name within the system (`order`).
    pub name: String,
    /// How it runs (default: the built-in handler `SYSTEM.NAME`).
    #[serde(default)]
    pub run: Option<Runs>,
    /// Its role.
    pub role: Role,
    /// Replicas at start.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Services it calls synchronously.
    #[serde(default)]
    pub calls: Vec<String>,
    /// It consumes the system topic (consumer group `SYSTEM.SERVICE`).
    #[serde(default)]
    pub consumer: bool,
    /// The consumer group it consumes in (default: `SYSTEM.SERVICE`, or the
    /// built-in handler's name).
    pub group: Option<String>,
    /// Extra environment of every replica (values substituted as in `command`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// More settings (environment variables) a rollout's `env` may set,
    /// besides the names in `env:` and the variants' `env:`. Nothing else
    /// is accepted: a rollout cannot slip `LD_PRELOAD` into a replica.
    #[serde(default)]
    pub settings: Vec<String>,
    /// CPU request in millicores (autoscaling measures against it).
    #[serde(default = "default_cpu")]
    pub cpu_request: u32,
    /// Readiness probe; without one a replica takes traffic once started.
    pub readiness: Option<ProbeDef>,
    /// Liveness probe; failing it restarts the replica.
    pub liveness: Option<ProbeDef>,
    /// Horizontal autoscaling, if any.
    pub autoscaling: Option<AutoscalingDef>,
    /// Rolling update policy.
    #[serde(default)]
    pub rollout: RolloutDef,
    /// Time a new replica needs before it can serve (loading caches, JIT):
    /// its business routes answer 503 until then, its readiness probe fails.
    /// This is what a readiness probe protects traffic from.
    #[serde(default, with = "humantime_serde")]
    pub warmup: Duration,
    /// Deliberately changed versions it can run instead (`--variant`,
    /// rollouts, contract verification): name → what is different.
    #[serde(default)]
    pub variants: BTreeMap<String, VariantDef>,
    /// The Deployment it is on a cluster.
    pub kube: Option<KubeServiceDef>,
}

/// An HTTP probe, with Kubernetes' field meanings and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDef {
    /// Path probed with GET; 2xx/3xx is a success.
    pub path: String,
    /// Wait before the first probe.
    #[serde(default, with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Time between probes (default 10s).
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub period: Duration,
    /// Probe timeout (default 1s).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive failures that count as failed (default 3).
    #[serde(default = "three")]
    pub failure_threshold: u32,
    /// Consecutive successes that count as passed (default 1).
    #[serde(default = "one")]
    pub success_threshold: u32,
}

/// HorizontalPodAutoscaler-like policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalingDef {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Target average CPU utilisation, percent of the request.
    pub cpu_utilization: u32,
}

/// Rolling update policy (Kubernetes defaults: 25 % / 25 %).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutDef {
    /// Extra replicas allowed during the update (count or percent).
    #[serde(default = "quarter", deserialize_with = "count_or_percent")]
    pub max_surge: String,
    /// Replicas that may be unavailable during the update (count or percent).
    #[serde(default = "quarter", deserialize_with = "count_or_percent")]
    pub max_unavailable: String,
    /// A rollout that makes no progress for this long has failed
    /// (`progressDeadlineSeconds`, default 600 s).
    #[serde(default = "ten_minutes", with = "humantime_serde")]
    pub progress_deadline: Duration,
}

impl Default for RolloutDef {
    fn default() -> Self {
        RolloutDef { max_surge: quarter(), max_unavailable: quarter(), progress_deadline: ten_minutes() }
    }
}

impl RolloutDef {
    /// maxSurge and maxUnavailable as replica counts for `desired` replicas,
    /// as Kubernetes resolves them: surge rounds up, unavailable rounds down,
    /// and when both come to 0 one replica may be unavailable.
    pub fn resolve(&self, desired: u32) -> Result<(u32, u32), String> {
        Ok(match self.counts(desired)? {
            (0, 0) => (0, 1),
            counts => counts,
        })
    }

    fn counts(&self, desired: u32) -> Result<(u32, u32), String> {
        Ok((count(&self.max_surge, desired, f64::ceil)?, count(&self.max_unavailable, desired, f64::floor)?))
    }
}

/// `1` or `25%` (Kubernetes' IntOrString).
fn count_or_percent<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(u32),
        String(String),
    }
    Ok(match IntOrString::deserialize(de)? {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s,
    })
}

/// `25%` of `of` (rounded with `round`) or a plain count like `1`.
fn count(value: &str, of: u32, round: fn(f64) -> f64) -> Result<u32, String> {
    let bad = || format!("`{value}`: expected a count (1) or a percentage (25%)");
    match value.strip_suffix('%') {
        Some(pct) => {
            let pct: u32 = pct.trim().parse().map_err(|_| bad())?;
            Ok(round(f64::from(of) * f64::from(pct) / 100.0) as u32)
        }
        None => value.trim().parse().map_err(|_| bad()),
    }
}

/// The readiness probe path of a service of the user's own that gives none.
pub const DEFAULT_READINESS_PATH: &str = "/health/ready";
/// The liveness probe path of a service of the user's own that gives none.
pub const DEFAULT_LIVENESS_PATH: &str = "/health/live";

impl ProbeDef {
    /// An HTTP GET of `path` with Kubernetes' default timing.
    pub fn on(path: &str) -> ProbeDef {
        ProbeDef { path: path.into(), initial_delay: Duration::ZERO, period: ten_seconds(), timeout: one_second(), failure_threshold: three(), success_threshold: one() }
    }
}

impl ConfigDef {
    /// A Kubernetes object name, and keys a shell could export.
    fn check(&self) -> Result<(), String> {
        let dns = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if self.name.is_empty() || self.name.len() > 63 || !self.name.chars().all(dns) || self.name.starts_with('-') || self.name.ends_with('-') {
            return Err(format!("name `{}`: expected lowercase letters, digits and `-` (a Kubernetes name, at most 63)", self.name));
        }
        for key in self.data.keys() {
            let var = |(i, c): (usize, char)| c.is_ascii_uppercase() || c == '_' || (i > 0 && c.is_ascii_digit());
            if key.is_empty() || !key.chars().enumerate().all(var) {
                return Err(format!("data: key `{key}`: expected an environment variable name (A-Z, 0-9, _)"));
            }
        }
        Ok(())
    }
}

fn check_command(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => Err("expected the program and its arguments, e.g. [python, order.py]".into()),
        Some(program) if program.trim().is_empty() => Err("the program is empty".into()),
        Some(_) => command::check_vars(argv.iter()),
    }
}

fn default_partitions() -> i32 { 3 }
fn default_gateway_port() -> u16 { 8088 }
fn default_cpu() -> u32 { 100 }
fn one() -> u32 { 1 }
fn three() -> u32 { 3 }
fn ten_seconds() -> Duration { Duration::from_secs(10) }
fn ten_minutes() -> Duration { Duration::from_secs(600) }
fn one_second() -> Duration { Duration::from_secs(1) }
fn quarter() -> String { "25%".into() }

impl SystemDef {
    /// Parses YAML; errors name `origin`, the line and what was expected.
    pub fn parse(yaml: &str, origin: &str) -> anyhow::Result<SystemDef> {
        let def: SystemDef = serde_saphyr::from_str(yaml).map_err(|err| anyhow::anyhow!("{origin}: {err}"))?;
        def.check().map_err(|err| anyhow::anyhow!("{origin}: {err}"))?;
        Ok(def)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(config) = &self.config {
            config.check().map_err(|err| format!("config: {err}"))?;
        }
        for route in &self.gateway.routes {
            if self.service(&route.service).is_none() {
                return Err(format!("gateway route {} names unknown service `{}`", route.prefix, route.service));
            }
        }
        for service in &self.services {
            for callee in &service.calls {
                if self.service(callee).is_none() {
                    return Err(format!("service `{}` calls unknown service `{callee}`", service.name));
                }
            }
            let rollout = &service.rollout;
            // At 100 replicas a percentage is 0 only when it is 0 %.
            if rollout.counts(100).map_err(|e| format!("service `{}`: rollout: {e}", service.name))? == (0, 0) {
                return Err(format!("service `{}`: rollout: max_surge and max_unavailable cannot both be 0", service.name));
            }
            if let Some(hpa) = &service.autoscaling
                && (hpa.min == 0 || hpa.min > hpa.max)
            {
                return Err(format!("service `{}`: autoscaling needs 1 <= min <= max", service.name));
            }
            self.check_runs(service).map_err(|err| format!("service `{}`: {err}", service.name))?;
        }
        Ok(())
    }

    /// A command names a program and only known variables; its variants
    /// say how they run; only a built-in handler simulates a warm-up.
    /// The environment `service` is given besides the platform's: the
    /// system's `config:` data, then its own `env:` over it.
    pub fn service_env(&self, service: &ServiceDef) -> BTreeMap<String, String> {
        let mut env = self.config.as_ref().map(|c| c.data.clone()).unwrap_or_default();
        env.extend(service.env.clone());
        env
    }

    fn check_runs(&self, service: &ServiceDef) -> Result<(), String> {
        let builtin = matches!(self.runs(service), Runs::Builtin(_));
        if let Runs::Command(argv) = self.runs(service) {
            check_command(&argv).map_err(|err| format!("command: {err}"))?;
            if !service.warmup.is_zero() {
                return Err("`warmup` is what a built-in handler simulates; a service of your own warms up by itself (its readiness probe fails until it is ready)".into());
            }
        }
        command::check_vars(service.env.values()).map_err(|err| format!("env: {err}"))?;
        if let Some(instance) = service.env.get(serve_env::INSTANCE) {
            parse_instance(instance).map_err(|err| format!("env: {}: {err}", serve_env::INSTANCE))?;
        }
        for (name, variant) in &service.variants {
            match variant {
                VariantDef::Runs(runs) if builtin && runs.command.is_some() => {
                    return Err(format!("variant `{name}`: a built-in handler's variant cannot give a `command`"));
                }
                VariantDef::Runs(runs) => {
                    if let Some(argv) = &runs.command {
                        check_command(argv).map_err(|err| format!("variant `{name}`: command: {err}"))?;
                    }
                    command::check_vars(runs.env.values()).map_err(|err| format!("variant `{name}`: env: {err}"))?;
                }
                VariantDef::About(_) if !builtin => {
                    return Err(format!("variant `{name}`: a service of your own needs `about` and a `command` or `env` for each variant (how it runs differently)"));
                }
                VariantDef::About(_) => {}
            }
        }
        Ok(())
    }

    /// The readiness probe of `service`: the one it gives; for a service of
    /// the user's own that gives none, GET [`DEFAULT_READINESS_PATH`] with
    /// Kubernetes' timing; for a built-in none (ready once started).
    pub fn readiness(&self, service: &ServiceDef) -> Option<ProbeDef> {
        self.probe(service, service.readiness.as_ref(), DEFAULT_READINESS_PATH)
    }

    /// The liveness probe of `service`, defaulted as [`Self::readiness`] is
    /// (GET [`DEFAULT_LIVENESS_PATH`]).
    pub fn liveness(&self, service: &ServiceDef) -> Option<ProbeDef> {
        self.probe(service, service.liveness.as_ref(), DEFAULT_LIVENESS_PATH)
    }

    fn probe(&self, service: &ServiceDef, given: Option<&ProbeDef>, default: &str) -> Option<ProbeDef> {
        match (given, self.runs(service)) {
            (Some(probe), _) => Some(probe.clone()),
            (None, Runs::Command(_)) => Some(ProbeDef::on(default)),
            (None, Runs::Builtin(_)) => None,
        }
    }

    /// How `service` runs.
    pub fn runs(&self, service: &ServiceDef) -> Runs {
        service.run.clone().unwrap_or_else(|| Runs::Builtin(format!("{}.{}", self.system, service.name)))
    }

    /// The consumer group of `service`, if it consumes the topic: the one it
    /// names, else the name a built-in handler runs as (its own, or that of
    /// the instance its `env:` names), else `SYSTEM.SERVICE`.
    pub fn consumer_group(&self, service: &ServiceDef) -> Option<String> {
        service.consumer.then(|| match (&service.group, self.runs(service)) {
            (Some(group), _) => group.clone(),
            (None, Runs::Builtin(handler)) => instance_name(&handler, service.env.get(serve_env::INSTANCE).map(String::as_str)),
            (None, Runs::Command(_)) => format!("{}.{}", self.system, service.name),
        })
    }

    /// Whether any service runs a command of the user's own.
    pub fn runs_commands(&self) -> bool {
        self.services.iter().any(|s| matches!(self.runs(s), Runs::Command(_)))
    }

    /// Consumer groups of the services that consume the topic, by service.
    pub fn consumer_groups(&self) -> Vec<(String, String)> {
        self.services.iter().filter_map(|s| Some((s.name.clone(), self.consumer_group(s)?))).collect()
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceDef> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The system as deployed with `variants` (service → variant): what a
    /// variant changes in the deployment (its autoscaler's maximum) applied.
    pub fn with_variants(&self, variants: &[(String, String)]) -> SystemDef {
        let mut def = self.clone();
        for service in &mut def.services {
            let runs = variants.iter().find(|(name, _)| *name == service.name).and_then(|(_, v)| service.variants.get(v));
            if let (Some(VariantDef::Runs(VariantRuns { max_replicas: Some(max), .. })), Some(hpa)) = (runs, service.autoscaling.as_mut()) {
                hpa.max = (*max).max(1);
                hpa.min = hpa.min.min(hpa.max);
            }
        }
        def
    }

    /// Checks that `service` exists and can run `variant`; the error lists
    /// the variants it has.
    pub fn check_variant(&self, service: &str, variant: &str) -> Result<(), String> {
        // The built-in gateway is no service of the definition, and has variants of its own.
        if service == GATEWAY && self.service(service).is_none() {
            let known: Vec<&str> = crate::systems::kit::GATEWAY_VARIANTS.iter().map(|(name, _)| *name).collect();
            return if known.contains(&variant) { Ok(()) } else { Err(format!("the gateway has no variant `{variant}` (variants: {})", known.join(", "))) };
        }
        let def = self.service(service).ok_or_else(|| format!("{} has no service `{service}` (services: {})", self.system, self.service_names().join(", ")))?;
        if def.variants.contains_key(variant) {
            return Ok(());
        }
        let known: Vec<&str> = def.variants.keys().map(String::as_str).collect();
        Err(format!("{}.{service} has no variant `{variant}` (variants: {})", self.system, if known.is_empty() { "none".into() } else { known.join(", ") }))
    }

    /// Whether a rollout of `service` may set every variable of `env`: only
    /// the settings its definition declares (`settings:`, the names in its
    /// `env:` and its variants' `env:`; a built-in handler's warm-up). The
    /// error names the first variable that is not one of them.
    pub fn check_rollout_env<'a>(&self, service: &str, mut env: impl Iterator<Item = &'a String>) -> Result<(), String> {
        let def = self.service(service).ok_or_else(|| format!("{} has no service `{service}` (services: {})", self.system, self.service_names().join(", ")))?;
        let declared = self.settings_of(def);
        match env.find(|name| !declared.contains(name.as_str())) {
            None => Ok(()),
            Some(name) => Err(format!(
                "{}.{service} does not declare the setting `{name}`, so a rollout may not set it (declared: {}; add it to `settings:` in system.yaml)",
                self.system,
                if declared.is_empty() { "none".into() } else { declared.into_iter().collect::<Vec<_>>().join(", ") }
            )),
        }
    }

    /// The settings a rollout of `def` may set.
    fn settings_of<'a>(&self, def: &'a ServiceDef) -> std::collections::BTreeSet<&'a str> {
        let mut declared: std::collections::BTreeSet<&str> = def.settings.iter().map(String::as_str).chain(def.env.keys().map(String::as_str)).collect();
        for variant in def.variants.values() {
            if let VariantDef::Runs(runs) = variant {
                declared.extend(runs.env.keys().map(String::as_str));
            }
        }
        if matches!(self.runs(def), Runs::Builtin(_)) {
            // What `warmup:` sets for a built-in handler.
            declared.insert(crate::systems::kit::serve_env::WARMUP);
        }
        declared
    }

    /// A system known by name only, with no services: on a cluster its
    /// Deployments are found by stormproof's labels.
    pub fn unmapped(system: &str) -> SystemDef {
        SystemDef {
            system: system.into(),
            topic: system.into(),
            partitions: default_partitions(),
            gateway: GatewayDef { port: default_gateway_port(), routes: vec![], auth: Auth::Jwt, admins: vec![], cors_origins: None },
            services: vec![],
            kube: KubeSystemDef::default(),
            config: None,
            folder: None,
        }
    }

    /// Names of the services, in start order.
    pub fn service_names(&self) -> Vec<&str> {
        self.services.iter().map(|s| s.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_definition_parses_with_kubernetes_defaults() {
        let shop = SystemDef::builtin("shop").unwrap();
        assert_eq!(shop.topic, "shop");
        let order = shop.service("order").unwrap();
        assert_eq!(order.role, Role::Core);
        assert_eq!(order.calls, vec!["product".to_string()]);
        let readiness = order.readiness.as_ref().unwrap();
        assert_eq!(readiness.period, Duration::from_millis(500));
        assert_eq!(readiness.timeout, Duration::from_secs(1), "Kubernetes default timeout");
        assert_eq!(readiness.success_threshold, 1);
        assert_eq!(shop.service("mypage").unwrap().role, Role::ReadModel);
    }

    #[test]
    fn services_run_builtin_handlers_and_declare_their_variants() {
        let shop = SystemDef::builtin("shop").unwrap();
        let order = shop.service("order").unwrap();
        assert_eq!(shop.runs(order), Runs::Builtin("shop.order".into()));
        assert!(shop.consumer_groups().contains(&("delivery".to_string(), "shop.delivery".to_string())));
        assert!(shop.check_variant("product", "item-rename").is_ok());
        let err = shop.check_variant("product", "item-renamed").unwrap_err();
        assert!(err.contains("no variant `item-renamed`") && err.contains("item-rename-compatible"), "{err}");
        assert!(shop.check_variant("delivery", "x").unwrap_err().contains("variants: anonymous-group, live-always, publish-only"));
        assert!(shop.check_variant("gateway", "let-anonymous").is_ok() && shop.check_variant("gateway", "x").unwrap_err().contains("variants: let-anonymous"));
        assert!(shop.check_variant("nobody", "x").unwrap_err().contains("services: product, order"));
        let yaml = "system: mine\ntopic: t\ngateway:\n  routes: []\nservices:\n  - { name: a, role: core, consumer: true, run: { builtin: shop.mypage } }\n";
        let mine = SystemDef::parse(yaml, "x.yaml").unwrap();
        assert_eq!(mine.consumer_group(&mine.services[0]).as_deref(), Some("shop.mypage"), "a handler names its group");
        let late = shop.service("mypage-late").unwrap();
        assert_eq!((shop.runs(late), late.replicas), (Runs::Builtin("shop.mypage".into()), 0), "a second instance, not deployed at start");
        assert_eq!(shop.consumer_group(late).as_deref(), Some("shop.mypage-late"), "an instance consumes in a group of its own");
        let bad = yaml.replace("run: { builtin: shop.mypage }", "run: { builtin: shop.mypage }, env: { STORMPROOF_INSTANCE: ../x }");
        assert!(SystemDef::parse(&bad, "x.yaml").unwrap_err().to_string().contains("STORMPROOF_INSTANCE"), "an instance must fit a file name");
    }

    #[test]
    fn a_malformed_definition_names_the_origin_and_line() {
        let err = SystemDef::parse("system: x\ntopic: t\ngateway:\n  routes: []\nservices:\n  - name: a\n    role: boss\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.yaml:"), "{err}");
        assert!(err.contains("line 7") || err.contains(":7:"), "{err}");
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        let quarter = RolloutDef::default();
        assert_eq!(quarter.resolve(1), Ok((1, 0)));
        assert_eq!(quarter.resolve(4), Ok((1, 1)));
        assert_eq!(quarter.resolve(10), Ok((3, 2)));
        let counts = RolloutDef { max_surge: "0".into(), max_unavailable: "0%".into(), ..RolloutDef::default() };
        assert_eq!(counts.resolve(3), Ok((0, 1)), "both 0 resolve to one unavailable");
        let bad = RolloutDef { max_surge: "a quarter".into(), ..RolloutDef::default() };
        assert!(bad.resolve(4).unwrap_err().contains("expected a count"));
        let yaml = "system: x\ntopic: t\ngateway:\n  routes: []\nservices:\n  - { name: a, role: core, rollout: { max_surge: 0, max_unavailable: 0% } }\n";
        assert!(SystemDef::parse(yaml, "x.yaml").unwrap_err().to_string().contains("cannot both be 0"));
    }

    fn mine(service: &str) -> anyhow::Result<SystemDef> {
        SystemDef::parse(&format!("system: mine\ntopic: t\ngateway:\n  auth: none\n  routes: []\nservices:\n  - {service}\n"), "mine/system.yaml")
    }

    #[test]
    fn a_command_service_has_default_probes_a_group_of_its_own_and_variants_that_run() {
        let def = mine("{ name: order, role: core, consumer: true, run: { command: [python3, order.py, '--port=${PORT}'] }, env: { SERVER_PORT: '${PORT}' }, variants: { slow: { about: warms up for 30 s, env: { WARMUP: '30' } } } }").unwrap();
        let order = &def.services[0];
        assert_eq!(def.runs(order), Runs::Command(vec!["python3".into(), "order.py".into(), "--port=${PORT}".into()]));
        assert_eq!(def.gateway.auth, Auth::None);
        assert_eq!(def.consumer_group(order).as_deref(), Some("mine.order"), "SYSTEM.SERVICE");
        let (ready, live) = (def.readiness(order).unwrap(), def.liveness(order).unwrap());
        assert_eq!((ready.path.as_str(), live.path.as_str()), (DEFAULT_READINESS_PATH, DEFAULT_LIVENESS_PATH));
        assert_eq!((ready.period, ready.failure_threshold), (Duration::from_secs(10), 3), "Kubernetes' timing");
        assert!(def.runs_commands());
        assert_eq!(order.variants["slow"].about(), "warms up for 30 s");
        let grouped = mine("{ name: a, role: core, consumer: true, group: legacy-consumers, run: { command: [java, -jar, a.jar] }, readiness: { path: /actuator/health } }").unwrap();
        assert_eq!(grouped.consumer_group(&grouped.services[0]).as_deref(), Some("legacy-consumers"));
        assert_eq!(grouped.readiness(&grouped.services[0]).unwrap().path, "/actuator/health");
        assert!(SystemDef::builtin("shop").unwrap().readiness(&SystemDef::builtin("shop").unwrap().services[0]).is_some());
    }

    #[test]
    fn a_config_is_every_services_environment_under_its_own_env_and_is_checked() {
        let with = |config: &str| SystemDef::parse(&format!("system: mine\ntopic: t\n{config}\ngateway:\n  routes: []\nservices:\n  - {{ name: a, role: core, run: {{ command: [a] }}, env: {{ B: own }} }}\n"), "mine/system.yaml");
        let def = with("config: { name: config-dev, data: { A_LOG_LEVEL: DEBUG, B: shared } }").unwrap();
        let env = def.service_env(&def.services[0]);
        assert_eq!((env["A_LOG_LEVEL"].as_str(), env["B"].as_str()), ("DEBUG", "own"), "the service's env: wins");
        let bad_name = with("config: { name: Config_Dev, data: {} }").unwrap_err().to_string();
        assert!(bad_name.contains("mine/system.yaml: config: name `Config_Dev`") && bad_name.contains("Kubernetes name"), "{bad_name}");
        let bad_key = with("config: { name: c, data: { order-level: x } }").unwrap_err().to_string();
        assert!(bad_key.contains("key `order-level`") && bad_key.contains("environment variable name"), "{bad_key}");
        let unknown = with("config: { name: c, data: {}, extra: 1 }").unwrap_err().to_string();
        assert!(unknown.contains("mine/system.yaml") && unknown.contains("extra"), "{unknown}");
    }

    #[test]
    fn a_command_service_is_checked_for_what_it_cannot_mean() {
        let err = |service: &str| mine(service).unwrap_err().to_string();
        let unknown = err("{ name: a, role: core, run: { command: [python3, a.py, '${PROT}'] } }");
        assert!(unknown.contains("service `a`: command:") && unknown.contains("unknown variable ${PROT}") && unknown.contains("${PORT}"), "{unknown}");
        assert!(err("{ name: a, role: core, run: { command: [] } }").contains("expected the program and its arguments"));
        assert!(err("{ name: a, role: core, run: { command: [a] }, warmup: 2s }").contains("a service of your own warms up by itself"));
        assert!(err("{ name: a, role: core, run: { command: [a] }, env: { X: '${NOPE}' } }").contains("env:"));
        assert!(err("{ name: a, role: core, run: { command: [a] }, variants: { broken: just words } }").contains("needs `about` and a `command` or `env`"));
        assert!(err("{ name: a, role: core, run: { builtin: shop.order }, variants: { b: { about: x, command: [other] } } }").contains("a built-in handler's variant cannot give a `command`"));
        let shapeless = err("{ name: a, role: core, run: { command: [a] }, variants: { b: { about: x, colour: red } } }");
        assert!(shapeless.contains("line 7") && shapeless.contains("a variant: what is different, in words, or { about"), "{shapeless}");
    }

    #[test]
    fn a_route_to_an_unknown_service_is_rejected() {
        let err = SystemDef::parse(
            "system: x\ntopic: t\ngateway:\n  routes: [{prefix: /a, service: nope}]\nservices: []\n",
            "x.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown service `nope`"), "{err}");
    }
}
