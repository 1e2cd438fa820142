//! Probes: how a check looks at the system — a flow of requests through the
//! gateway, replica counts from the platform, a read model against its
//! source. A probe *holds*, *deviates* (the system misbehaves), is
//! *inconclusive* (it saw too little to tell: no transactions in the
//! window, empty lists) or *errors* (the probe itself could not run). Each
//! probe states what it needs to be conclusive; without it, never a hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::attack::{Credential, forge};
use super::experiment::{AutoscalerProbe, AvailabilityProbe, Check, ConsistencyProbe, Expect, LagProbe, Probe, ReplicasProbe, RolloutExpectation, RolloutProbe, Step, UntouchedProbe};
use super::journal::{CheckResult, Status};
use super::under_load::PhaseFigures;
use super::lag::{LagReader, Position};
use super::untouched::{self, AtMethod};
use crate::capture::{fill_text, fill_value};
use crate::platform::{Platform, RolloutState};

/// What a probe found.
#[derive(Debug, Clone)]
pub enum Found {
    /// The claim holds; the evidence says why.
    Held(String),
    /// The claim does not hold.
    Deviated(String),
    /// Too little was seen to tell; says what was missing.
    Inconclusive(String),
    /// The probe could not be run.
    Errored(String),
}

impl Found {
    /// As a journal status and its evidence.
    pub fn into_status(self) -> (Status, String) {
        match self {
            Found::Held(e) => (Status::Held, e),
            Found::Deviated(e) => (Status::Deviated, e),
            Found::Inconclusive(e) => (Status::Inconclusive, e),
            Found::Errored(e) => (Status::Errored, e),
        }
    }
}

/// What probes need to reach the system.
#[derive(Clone)]
pub struct Context {
    /// HTTP client.
    pub http: reqwest::Client,
    /// Gateway base URL.
    pub gateway: String,
    /// Bearer token for the gateway.
    pub token: String,
    /// The gateway's HMAC secret, when the harness knows it (flows that
    /// attack with an expired token need it).
    pub jwt_secret: Option<String>,
    /// The platform.
    pub platform: Arc<dyn Platform>,
    /// Reads consumer lag (and knows each service's group), when the broker is known.
    pub lag: Option<Arc<LagReader>>,
    /// Restarts of each service when the experiment began: a replicas
    /// check counts restarts since then, so an earlier run's do not count.
    pub restarts_at_start: Arc<BTreeMap<String, u32>>,
    /// Where each consumer group was when the experiment began (for a
    /// from-scratch lag check), or why it could not be read.
    pub positions_at_start: Arc<Result<BTreeMap<String, Position>, String>>,
    /// The services as the method found them (set when it begins, for the
    /// untouched checks).
    pub method_began: Arc<OnceLock<AtMethod>>,
    /// A dry run: requests through the gateway are described, not sent.
    pub dry_run: bool,
    /// Values the experiment's steps captured, by name: the flows an
    /// events check follows.
    pub captured: EveryCapture,
    /// The topic over the experiment's window, or why it cannot be read.
    pub events: Result<Arc<super::events::Window>, String>,
}

/// Values captured by any step of the experiment, by capture name.
pub type EveryCapture = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

/// Runs `check`, retrying until it holds or its `within` deadline passes
/// (an inconclusive look is retried too: the evidence may still come).
pub async fn run_check(ctx: &Context, check: &Check) -> CheckResult {
    let started = Instant::now();
    let within = match &check.probe {
        Probe::Autoscaler(probe) if check.within.is_zero() => autoscaler_patience(ctx, probe).await,
        _ => check.within,
    };
    let deadline = started + within;
    let found = loop {
        let found = once(ctx, check).await;
        match found {
            Found::Deviated(_) | Found::Inconclusive(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(250)).await,
            found => break found,
        }
    };
    let (status, evidence) = found.into_status();
    CheckResult { name: check.name.clone(), status, probe: check.probe.kind(), evidence, took_ms: started.elapsed().as_millis() as u64, route: None }
}

async fn once(ctx: &Context, check: &Check) -> Found {
    if ctx.dry_run && let Some(requests) = business_requests(&check.probe) {
        return Found::Errored(format!("dry run: not sent: {requests}"));
    }
    match &check.probe {
        Probe::Flow(steps) => flow(ctx, steps).await,
        Probe::Replicas(probe) => replicas(ctx, probe).await,
        Probe::Consistency(probe) => consistency(ctx, probe).await,
        Probe::Lag(probe) => lag(ctx, probe).await,
        Probe::Untouched(probe) => untouched(ctx, probe).await,
        Probe::Autoscaler(probe) => autoscaler(ctx, probe).await,
        Probe::Rollout(probe) => rollout(ctx, probe).await,
        Probe::Events(probe) => super::events::inspect(ctx, probe).await,
        // Judged from the load's figures once the run is over (run.rs).
        Probe::Availability(_) => Found::Errored("availability is judged from the load, not polled".into()),
    }
}

/// The requests through the gateway a probe would send (business traffic,
/// which a dry run only describes); none for probes that read the platform.
fn business_requests(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Flow(steps) => Some(
            steps
                .iter()
                .map(|step| {
                    let (method, path) = step.request.parts();
                    match &step.body {
                        Some(body) => format!("{method} {path} {body}"),
                        None => format!("{method} {path}"),
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Probe::Consistency(probe) => Some(format!("GET {}; GET {}", probe.source, probe.read_model)),
        _ => None,
    }
}

async fn flow(ctx: &Context, steps: &[Step]) -> Found {
    let mut vars = crate::capture::Captured::new();
    let mut evidence = Vec::new();
    for step in steps {
        let deadline = Instant::now() + step.eventually;
        let answer = loop {
            let answer = request(ctx, step, &vars).await;
            match &answer {
                Err(Found::Deviated(_)) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                _ => break answer,
            }
        };
        let (line, body) = match answer {
            Ok(ok) => ok,
            Err(found) => return found,
        };
        for (name, pointer) in &step.capture {
            match body.pointer(pointer) {
                Some(value) => {
                    if let Ok(mut captured) = ctx.captured.lock() {
                        captured.entry(name.clone()).or_default().insert(super::events::as_text(value));
                    }
                    vars.insert(name.clone(), value.clone());
                }
                None => return Found::Errored(format!("{line}: no `{pointer}` to capture as {name} in {body}")),
            }
        }
        evidence.push(line);
    }
    Found::Held(evidence.join("; "))
}

/// One request of a flow: `Ok((evidence, body))` if it matched.
async fn request(ctx: &Context, step: &Step, vars: &crate::capture::Captured) -> Result<(String, Value), Found> {
    let (method, path) = step.request.parts();
    let path = fill_text(path, vars).map_err(Found::Errored)?;
    let line = format!("{method} {path}");
    let mut request = ctx.http.request(method, format!("{}{path}", ctx.gateway));
    match step.auth {
        Credential::Plain(true) => request = request.bearer_auth(&ctx.token),
        Credential::Plain(false) => {}
        Credential::Attack(attack) => {
            let forged = forge(attack, &ctx.token, ctx.jwt_secret.as_deref()).map_err(|err| Found::Errored(format!("{line}: {err}")))?;
            request = request.bearer_auth(forged);
        }
    }
    if let Some(body) = &step.body {
        let body = fill_value(body, vars).map_err(Found::Errored)?;
        request = request.json(&body);
    }
    let started = Instant::now();
    let response = request.send().await.map_err(|err| Found::Deviated(format!("{line}: no answer ({err})")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let took = started.elapsed();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let mut expect = step.expect.clone();
    for want in expect.json.values_mut() {
        *want = fill_value(want, vars).map_err(Found::Errored)?;
    }
    matches(&expect, status, &body).map_err(|why| Found::Deviated(format!("{line} → {status}: {why}")))?;
    latency(&step.expect, took).map_err(|why| Found::Deviated(format!("{line} → {status} {why}")))?;
    Ok((format!("{line} → {status} in {} ms", took.as_millis()), body))
}

/// The answer came within `max_latency` and, when a delay must be seen,
/// not before `min_latency`.
fn latency(expect: &Expect, took: Duration) -> Result<(), String> {
    if let Some(max) = expect.max_latency.filter(|max| took > *max) {
        return Err(format!("took {} ms, more than {} ms", took.as_millis(), max.as_millis()));
    }
    if let Some(min) = expect.min_latency.filter(|min| took < *min) {
        return Err(format!("in {} ms: expected a delay of at least {} ms, not seen", took.as_millis(), min.as_millis()));
    }
    Ok(())
}

/// Judges an availability check from its route's figures over seconds
/// `from..to`: held only on at least `min_transactions` requests.
pub fn availability(probe: &AvailabilityProbe, figures: &PhaseFigures, (from, to): (usize, usize)) -> Found {
    let seen = format!("{} transactions, {} failed", figures.transactions, figures.failed);
    let Some(availability) = figures.availability.filter(|_| figures.judged() >= probe.min_transactions) else {
        return Found::Inconclusive(format!(
            "{} over seconds {from}–{to}: {seen}, fewer than the {} needed to judge availability",
            probe.route, probe.min_transactions
        ));
    };
    let evidence = format!("{} {availability:.2} % over seconds {from}–{to} ({seen}), minimum {} %", probe.route, probe.min);
    if availability >= probe.min { Found::Held(evidence) } else { Found::Deviated(evidence) }
}

fn matches(expect: &Expect, status: u16, body: &Value) -> Result<(), String> {
    match expect.status {
        Some(want) if want != status => return Err(format!("expected status {want}, body {}", shorten(body))),
        None if !(200..300).contains(&status) => return Err(format!("expected a 2xx, body {}", shorten(body))),
        _ => {}
    }
    for (pointer, want) in &expect.json {
        let got = body.pointer(pointer);
        if got != Some(want) {
            return Err(format!("{pointer} is {}, expected {want}", got.map(|v| v.to_string()).unwrap_or_else(|| "missing".into())));
        }
    }
    Ok(())
}

fn shorten(body: &Value) -> String {
    let text = body.to_string();
    if text.len() > 200 { format!("{}…", &text[..text.floor_char_boundary(200)]) } else { text }
}

/// Replaces `${name}` with captured values.
async fn replicas(ctx: &Context, probe: &ReplicasProbe) -> Found {
    match ctx.platform.service(&probe.service).await {
        Ok(status) => {
            let total: u32 = status.replicas.iter().map(|r| r.restarts).sum();
            let restarts = total.saturating_sub(ctx.restarts_at_start.get(&probe.service).copied().unwrap_or(0));
            let seen = format!("{} ready {}/{}, {restarts} restarts during the experiment", probe.service, status.ready, status.desired);
            // Down means no replica left: one terminating still runs (and,
            // draining, may still consume and publish).
            let running = status.replicas.len();
            if probe.ready == 0 && running > 0 {
                return Found::Deviated(format!("{seen}; {running} replica(s) still running (terminating), expected none"));
            }
            if status.ready == probe.ready && restarts >= probe.restarts_at_least {
                Found::Held(seen)
            } else {
                Found::Deviated(format!("{seen}; expected {} ready, at least {} restarts", probe.ready, probe.restarts_at_least))
            }
        }
        Err(err) => Found::Errored(err.to_string()),
    }
}

async fn lag(ctx: &Context, probe: &LagProbe) -> Found {
    let Some(reader) = ctx.lag.clone() else {
        return Found::Errored("consumer lag needs the broker's address (not known for this platform)".into());
    };
    let Some(group) = reader.group_of(&probe.service) else {
        return Found::Errored(format!("{} does not consume the system's topic (no consumer group)", probe.service));
    };
    if probe.from_scratch
        && let Some(not_scratch) = not_from_scratch((*ctx.positions_at_start).as_ref(), &group)
    {
        return not_scratch;
    }
    let positions = match tokio::task::spawn_blocking(move || reader.positions()).await {
        Ok(Ok(positions)) => positions,
        Ok(Err(err)) => return Found::Deviated(format!("cannot read the lag of {group}: {err:#}")),
        Err(err) => return Found::Errored(err.to_string()),
    };
    let Some(position) = positions.get(&group) else {
        return Found::Errored(format!("{group} is not a consumer group of this system"));
    };
    let since = ctx.method_began.get().map(|m| m.at.elapsed());
    judge_lag(probe, &group, position, since)
}

/// A from-scratch check has no evidence when the group had committed
/// offsets before the experiment (or that is not known).
fn not_from_scratch(at_start: Result<&BTreeMap<String, Position>, &String>, group: &str) -> Option<Found> {
    match at_start.map(|positions| positions.get(group)) {
        Err(err) => Some(Found::Errored(format!("where {group} stood when the experiment began is not known: {err}"))),
        Ok(None) => Some(Found::Errored(format!("where {group} stood when the experiment began is not known"))),
        Ok(Some(Position { read: Some(read), .. })) => Some(Found::Inconclusive(format!(
            "{group} had committed offsets before the experiment ({read} events read): a catch-up from an earlier position does not show a build from the retained events"
        ))),
        Ok(Some(Position { read: None, .. })) => None,
    }
}

/// Whether `group` at `position` is at most `probe.max` behind; from
/// scratch it must also have read events, and the evidence says how many
/// and how long after the method began it caught up.
fn judge_lag(probe: &LagProbe, group: &str, position: &Position, since_method: Option<Duration>) -> Found {
    let behind = position.behind;
    if behind > probe.max {
        return Found::Deviated(format!("{group} is {behind} events behind, more than {}", probe.max));
    }
    if !probe.from_scratch {
        return Found::Held(format!("{group} is {behind} events behind (at most {})", probe.max));
    }
    match position.read.filter(|read| *read > 0) {
        None => Found::Inconclusive(format!("{group} is {behind} events behind but has read no event: nothing was built")),
        Some(read) => {
            let after = since_method.map(|t| format!(", caught up {:.1} s after the method began", t.as_secs_f64())).unwrap_or_default();
            Found::Held(format!("{group} built from scratch: {read} retained events read, {behind} behind{after}"))
        }
    }
}

async fn untouched(ctx: &Context, probe: &UntouchedProbe) -> Found {
    let Some(began) = ctx.method_began.get() else {
        return Found::Errored("no record of the services when the method began".into());
    };
    let before = match &began.services {
        Ok(before) => before,
        Err(err) => return Found::Errored(format!("the services could not be read when the method began: {err}")),
    };
    match untouched::snapshot(ctx.platform.as_ref()).await {
        Ok(now) => untouched::compare(before, &now, &probe.except),
        Err(err) => Found::Errored(err.to_string()),
    }
}

async fn consistency(ctx: &Context, probe: &ConsistencyProbe) -> Found {
    let source = match get_rows(ctx, &probe.source).await {
        Ok(rows) => rows,
        Err(found) => return found,
    };
    let read = match get_rows(ctx, &probe.read_model).await {
        Ok(rows) => rows,
        Err(found) => return found,
    };
    compare(probe, &source, &read)
}

/// The read model has one row per source row, each as expected; an empty
/// source proves nothing (both empty is inconclusive, not consistent).
fn compare(probe: &ConsistencyProbe, source: &[Value], read: &[Value]) -> Found {
    if source.is_empty() && read.is_empty() {
        return Found::Inconclusive(format!("no rows in {} nor in {}: nothing to compare", probe.source, probe.read_model));
    }
    let mut source_keys = BTreeSet::new();
    for row in source {
        let Some(key) = row.pointer(&probe.source_key) else {
            return Found::Errored(format!("a {} row has no {}", probe.source, probe.source_key));
        };
        source_keys.insert(key.to_string());
    }
    let mut read_keys = BTreeSet::new();
    let mut duplicates = Vec::new();
    let mut unfinished = Vec::new();
    for row in read {
        let Some(key) = row.pointer(&probe.read_key).map(Value::to_string) else {
            return Found::Errored(format!("a {} row has no {}", probe.read_model, probe.read_key));
        };
        if !read_keys.insert(key.clone()) {
            duplicates.push(key.clone());
        }
        if let Some((pointer, want)) = probe.expect.iter().find(|(p, want)| row.pointer(p) != Some(want)) {
            unfinished.push(format!("{key}: {pointer}={}≠{want}", row.pointer(pointer).map(Value::to_string).unwrap_or_else(|| "missing".into())));
        }
    }
    let missing: Vec<&String> = source_keys.difference(&read_keys).collect();
    let extra: Vec<&String> = read_keys.difference(&source_keys).collect();
    let summary = format!("{} in {}, {} rows in {}", source_keys.len(), probe.source, read.len(), probe.read_model);
    if read.len() == source_keys.len() && missing.is_empty() && extra.is_empty() && duplicates.is_empty() && unfinished.is_empty() {
        return Found::Held(summary);
    }
    Found::Deviated(format!(
        "{summary}; missing {}, extra {}, duplicated {}, not yet as expected {}{}",
        missing.len(),
        extra.len(),
        duplicates.len(),
        unfinished.len(),
        unfinished.first().map(|u| format!(" (e.g. {u})")).unwrap_or_default()
    ))
}

async fn get_rows(ctx: &Context, path: &str) -> Result<Vec<Value>, Found> {
    let response = ctx
        .http
        .get(format!("{}{path}", ctx.gateway))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .map_err(|err| Found::Deviated(format!("GET {path}: no answer ({err})")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Found::Deviated(format!("GET {path} → {status}")));
    }
    match response.json::<Value>().await {
        Ok(Value::Array(rows)) => Ok(rows),
        Ok(other) => Err(Found::Errored(format!("GET {path} is not a list: {}", shorten(&other)))),
        Err(err) => Err(Found::Errored(format!("GET {path}: {err}"))),
    }
}

/// How long an autoscaler needs to get into bounds: scaling up, a sync to
/// take a first CPU sample, one to measure, one to act, and 15 s for new
/// replicas to start; scaling down, the stabilisation window on top.
async fn autoscaler_patience(ctx: &Context, probe: &AutoscalerProbe) -> Duration {
    let Ok(Some(status)) = ctx.platform.autoscaler(&probe.service).await else { return Duration::ZERO };
    let sync = Duration::from_millis(status.sync_period_ms);
    let window = if probe.at_most.is_some() { Duration::from_millis(status.scale_down_stabilization_ms) } else { Duration::ZERO };
    window + sync * 3 + Duration::from_secs(15)
}

async fn autoscaler(ctx: &Context, probe: &AutoscalerProbe) -> Found {
    let status = match ctx.platform.autoscaler(&probe.service).await {
        Ok(Some(status)) => status,
        Ok(None) => return Found::Errored(format!("{} has no autoscaler", probe.service)),
        Err(err) => return Found::Errored(err.to_string()),
    };
    let cpu = status.current_cpu_utilization.map(|u| format!("{u} %")).unwrap_or_else(|| "unknown".into());
    let seen = format!(
        "{}: desired {} (current {}, bounds {}–{}), CPU {cpu} of request against {} %, last scale {}",
        probe.service,
        status.desired_replicas,
        status.current_replicas,
        status.min_replicas,
        status.max_replicas,
        status.target_cpu_utilization,
        status.last_scale_time.as_deref().unwrap_or("never")
    );
    if !status.scaling_active() {
        return Found::Deviated(format!("{seen}; the autoscaler is not active"));
    }
    let low = probe.at_least.is_some_and(|n| status.desired_replicas < n);
    let high = probe.at_most.is_some_and(|n| status.desired_replicas > n);
    if low || high {
        let bounds = [probe.at_least.map(|n| format!("at least {n}")), probe.at_most.map(|n| format!("at most {n}"))];
        return Found::Deviated(format!("{seen}; expected {}", bounds.into_iter().flatten().collect::<Vec<_>>().join(" and ")));
    }
    Found::Held(seen)
}

async fn rollout(ctx: &Context, probe: &RolloutProbe) -> Found {
    let status = match ctx.platform.rollout_status(&probe.service).await {
        Ok(status) => status,
        Err(err) => return Found::Errored(err.to_string()),
    };
    let seen = format!(
        "{} revision {} ({}): {} updated, {} total, {} available of {}",
        probe.service, status.revision, status.template.version, status.updated, status.total, status.available, status.replicas
    );
    let wrong_version = probe.version.as_ref().is_some_and(|v| *v != status.template.version);
    match (status.state(), probe.state) {
        (RolloutState::Complete, RolloutExpectation::Complete) if !wrong_version => Found::Held(format!("{seen}: complete")),
        (RolloutState::Failed(why), RolloutExpectation::Failed) => Found::Held(format!("{seen}: {why}")),
        (RolloutState::Complete, _) => Found::Deviated(format!("{seen}: complete")),
        (RolloutState::Failed(why), _) => Found::Deviated(format!("{seen}: {why}")),
        (RolloutState::Waiting(what), _) => Found::Deviated(format!("{seen}: {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_compare_status_and_json_pointers() {
        let body = serde_json::json!({"deliveryStatus": "preparing"});
        let expect = Expect { status: Some(200), json: BTreeMap::from([("/deliveryStatus".into(), Value::from("preparing"))]), ..Expect::default() };
        assert!(matches(&expect, 200, &body).is_ok());
        assert!(matches(&expect, 201, &body).unwrap_err().contains("expected status 200"));
        let other = serde_json::json!({"deliveryStatus": "DeliveryStarted"});
        assert!(matches(&expect, 200, &other).unwrap_err().contains("/deliveryStatus"));
        assert!(matches(&Expect::default(), 503, &body).is_err(), "default expects a 2xx");
    }

    fn availability_probe(min_transactions: u64) -> AvailabilityProbe {
        AvailabilityProbe { route: "POST /orders".into(), min: 100.0, min_transactions }
    }

    fn figures(transactions: u64, failed: u64) -> PhaseFigures {
        crate::load::TimelineCounts { requests: transactions + failed, transactions, successful: transactions, failed, bytes: 0 }.into()
    }

    #[test]
    fn zero_transactions_are_inconclusive_not_available() {
        let found = availability(&availability_probe(20), &figures(0, 0), (2, 6));
        assert!(matches!(&found, Found::Inconclusive(why) if why.contains("0 transactions") && why.contains("20 needed")), "{found:?}");
    }

    #[test]
    fn fewer_transactions_than_the_minimum_are_inconclusive() {
        let found = availability(&availability_probe(20), &figures(19, 0), (2, 6));
        assert!(matches!(&found, Found::Inconclusive(why) if why.contains("19 transactions")), "{found:?}");
        let found = availability(&availability_probe(20), &figures(20, 0), (2, 6));
        assert!(matches!(&found, Found::Held(e) if e.starts_with("POST /orders 100.00 % over seconds 2–6 (20 transactions, 0 failed)")), "{found:?}");
        let found = availability(&availability_probe(5), &figures(4, 2), (2, 6));
        assert!(matches!(&found, Found::Deviated(e) if e.contains("66.67 %")), "a drop with enough requests deviates: {found:?}");
    }

    #[test]
    fn an_availability_check_defaults_to_twenty_transactions() {
        let probe: AvailabilityProbe = serde_saphyr::from_str("{ route: POST /orders, min: 100 }").unwrap();
        assert_eq!(probe.min_transactions, crate::chaos::experiment::MIN_TRANSACTIONS);
        let probe: AvailabilityProbe = serde_saphyr::from_str("{ route: POST /orders, min: 100, min_transactions: 5 }").unwrap();
        assert_eq!(probe.min_transactions, 5);
    }

    fn orders_and_mypages() -> ConsistencyProbe {
        ConsistencyProbe { source: "/orders".into(), source_key: "/id".into(), read_model: "/mypages".into(), read_key: "/orderId".into(), expect: BTreeMap::new() }
    }

    #[test]
    fn empty_lists_are_inconclusive_not_consistent() {
        let found = compare(&orders_and_mypages(), &[], &[]);
        assert!(matches!(&found, Found::Inconclusive(why) if why.contains("nothing to compare")), "{found:?}");
        let found = compare(&orders_and_mypages(), &[], &[serde_json::json!({"orderId": 1})]);
        assert!(matches!(found, Found::Deviated(_)), "rows without a source are extra: {found:?}");
    }

    #[test]
    fn unequal_row_counts_deviate() {
        let source = [serde_json::json!({"id": 1}), serde_json::json!({"id": 2})];
        let found = compare(&orders_and_mypages(), &source, &[serde_json::json!({"orderId": 1})]);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("2 in /orders, 1 rows in /mypages") && e.contains("missing 1")), "{found:?}");
        let twice = [serde_json::json!({"orderId": 1}), serde_json::json!({"orderId": 2}), serde_json::json!({"orderId": 2})];
        assert!(matches!(compare(&orders_and_mypages(), &source, &twice), Found::Deviated(e) if e.contains("duplicated 1")));
        let read = [serde_json::json!({"orderId": 1}), serde_json::json!({"orderId": 2})];
        assert!(matches!(compare(&orders_and_mypages(), &source, &read), Found::Held(e) if e == "2 in /orders, 2 rows in /mypages"));
    }

    fn late_lag() -> LagProbe {
        LagProbe { service: "mypage-late".into(), max: 0, from_scratch: true }
    }

    #[test]
    fn a_group_that_committed_before_the_experiment_is_not_from_scratch() {
        let earlier = BTreeMap::from([("shop.mypage-late".to_string(), Position { behind: 3, read: Some(40) })]);
        let found = not_from_scratch(Ok(&earlier), "shop.mypage-late");
        assert!(matches!(&found, Some(Found::Inconclusive(e)) if e.contains("had committed offsets before the experiment (40 events read)")), "{found:?}");
        let fresh = BTreeMap::from([("shop.mypage-late".to_string(), Position { behind: 43, read: None })]);
        assert!(not_from_scratch(Ok(&fresh), "shop.mypage-late").is_none(), "no commit at all: from scratch");
        assert!(matches!(not_from_scratch(Ok(&fresh), "shop.other"), Some(Found::Errored(_))), "unknown start: no evidence");
        let unread = "broker down".to_string();
        assert!(matches!(not_from_scratch(Err(&unread), "shop.mypage-late"), Some(Found::Errored(e)) if e.contains("broker down")));
    }

    #[test]
    fn a_from_scratch_catch_up_needs_events_read_and_reports_its_time() {
        let caught_up = judge_lag(&late_lag(), "g", &Position { behind: 0, read: Some(57) }, Some(Duration::from_millis(2340)));
        assert!(matches!(&caught_up, Found::Held(e) if e == "g built from scratch: 57 retained events read, 0 behind, caught up 2.3 s after the method began"), "{caught_up:?}");
        let behind = judge_lag(&late_lag(), "g", &Position { behind: 57, read: None }, None);
        assert!(matches!(&behind, Found::Deviated(e) if e.contains("57 events behind")), "{behind:?}");
        let nothing = judge_lag(&late_lag(), "g", &Position { behind: 0, read: Some(0) }, None);
        assert!(matches!(&nothing, Found::Inconclusive(e) if e.contains("read no event")), "an empty topic builds nothing: {nothing:?}");
        let plain = LagProbe { from_scratch: false, ..late_lag() };
        assert!(matches!(judge_lag(&plain, "g", &Position { behind: 0, read: None }, None), Found::Held(e) if e == "g is 0 events behind (at most 0)"));
    }

    #[test]
    fn a_delay_not_reached_deviates() {
        let expect = Expect { min_latency: Some(Duration::from_secs(4)), ..Expect::default() };
        let err = latency(&expect, Duration::from_millis(12)).unwrap_err();
        assert!(err.contains("at least 4000 ms, not seen"), "{err}");
        assert!(latency(&expect, Duration::from_millis(5003)).is_ok());
        let fast = Expect { max_latency: Some(Duration::from_millis(1500)), ..Expect::default() };
        assert!(latency(&fast, Duration::from_millis(1600)).unwrap_err().contains("more than 1500 ms"));
    }
}
