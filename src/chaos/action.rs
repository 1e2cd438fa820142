//! Actions: the faults of a method, applied through the platform, each
//! recorded in the journal *before* it is made — and their rollback.

use std::time::{Duration, Instant};

use super::experiment::{Action, BrokerAction, BrokerWhose, Fault, RolloutAction, Switches};
use super::journal::{Change, Journal, Rollback, RollbackStatus};
use super::network_change;
use crate::broker::{ActiveFault, BrokerFault, Fault as BrokerFaultKind, Target as BrokerTarget};
use crate::platform::{Platform, PlatformError, RolloutState, Template};
use crate::systems::kit::SwitchState;

/// The name the local platform gives its embedded broker.
const BROKER: &str = "broker";

/// How long a broker fault outlives the holds it was set for before the
/// broker clears it by itself: a harness SIGKILLed while holding it (and
/// never rolled back) leaves it behind for no longer.
const BROKER_FAULT_SLACK: Duration = Duration::from_secs(60);

/// Describes `action` in words.
pub fn describe(action: &Action) -> String {
    let hold = if action.hold.is_zero() { String::new() } else { format!(", hold {}", humantime::format_duration(action.hold)) };
    let what = match &action.fault {
        Fault::Scale(s) => format!("scale {} to {}", s.service, s.replicas),
        Fault::Kill(k) => format!("kill a replica of {}", k.service),
        Fault::Switches(s) => format!("switches of {}: unhealthy={} unready={} delayMs={} errorFraction={}", s.service, s.unhealthy, s.unready, s.delay_ms, s.error_fraction),
        Fault::Rollout(r) => {
            let readiness = if r.readiness { "" } else { " without readiness probe" };
            format!("roll {} out to {}{readiness}", r.service, r.to)
        }
        Fault::Surge(s) => format!("traffic surge: {} more users", s.users),
        Fault::StopBroker(_) => "stop the broker".to_string(),
        Fault::Broker(b) => describe_broker(b),
        Fault::Network(n) => format!("network: {}", n.fault),
    };
    format!("{what}{hold}")
}

fn describe_broker(action: &BrokerAction) -> String {
    let whose = match &action.whose {
        BrokerWhose::Service(service) => format!("{service}'s"),
        BrokerWhose::Group(group) => format!("group {group}'s"),
    };
    match &action.fault {
        BrokerFaultKind::Error { api, error } => format!("broker answers {whose} {} with {}", wire_name(api), wire_name(error)),
        BrokerFaultKind::StallFetch { delay } => format!("broker holds each of {whose} Fetch for {}", humantime::format_duration(*delay)),
        BrokerFaultKind::Rebalance => format!("broker forces a rebalance on {whose} members"),
    }
}

/// A value's name as the experiment and the Kafka protocol spell it.
fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".into(),
    }
}

/// Applies one platform fault, journaling each change before making it
/// (a surge is load, started by the run itself). `holds` is how long the
/// fault is meant to last: this action's hold and every later one's.
pub async fn apply(platform: &dyn Platform, journal: &mut Journal, action: &Action, holds: Duration) -> anyhow::Result<String> {
    match &action.fault {
        Fault::Broker(broker) => set_broker_fault(platform, journal, broker, holds).await,
        Fault::Network(network) => network_change::set(platform, journal, network, holds).await,
        Fault::Scale(scale) => set_replicas(platform, journal, &scale.service, scale.replicas).await,
        Fault::StopBroker(_) => set_replicas(platform, journal, BROKER, 0).await,
        Fault::Kill(kill) => {
            let killed = platform.kill(&kill.service, None).await?;
            journal.changes.push(Change::Killed { service: kill.service.clone(), replica: killed.clone() });
            journal.save()?;
            Ok(format!("killed {killed}"))
        }
        Fault::Rollout(rollout) => roll_out(platform, journal, rollout).await,
        Fault::Switches(switches) => flip(platform, journal, switches).await,
        Fault::Surge(_) => anyhow::bail!("a surge is load, not a platform change"),
    }
}

/// The broker fault of `action` in the journal's system: a service's
/// clients are named `SYSTEM.SERVICE…` by every replica.
fn broker_fault(system: &str, action: &BrokerAction, holds: Duration) -> BrokerFault {
    let target = match &action.whose {
        BrokerWhose::Service(service) => BrokerTarget::ClientPrefix(format!("{system}.{service}/")),
        BrokerWhose::Group(group) => BrokerTarget::Group(group.clone()),
    };
    BrokerFault { target, fault: action.fault.clone(), expires_after: Some(holds + BROKER_FAULT_SLACK) }
}

/// Journals the fault without its id before setting it (a run killed in
/// between is rolled back by what it matches), then with the id.
async fn set_broker_fault(platform: &dyn Platform, journal: &mut Journal, action: &BrokerAction, holds: Duration) -> anyhow::Result<String> {
    let fault = broker_fault(&journal.system, action, holds);
    journal.changes.push(Change::BrokerFault { fault: fault.clone(), id: None });
    let at = journal.changes.len() - 1;
    journal.save()?;
    let active = platform.set_broker_fault(&fault).await?;
    if let Some(Change::BrokerFault { id, .. }) = journal.changes.get_mut(at) {
        *id = Some(active.id);
    }
    journal.save()?;
    let expires = fault.expires_after.map(humantime::format_duration).map(|d| format!(", expires by itself after {d}")).unwrap_or_default();
    Ok(format!("broker fault {} set on {}{expires}", active.id, describe_target(&fault.target)))
}

fn describe_target(target: &BrokerTarget) -> String {
    match target {
        BrokerTarget::Client(id) => format!("client {id}"),
        BrokerTarget::ClientPrefix(prefix) => format!("clients {prefix}*"),
        BrokerTarget::Group(group) => format!("group {group}"),
    }
}

/// Whether `active` is the journaled fault: the one with its id, or (the
/// run died before the id was saved) any equal one. The fault must match
/// too, since a restarted broker numbers its faults from 1 again.
fn is_ours(active: &ActiveFault, fault: &BrokerFault, id: Option<u64>) -> bool {
    active.fault == *fault && id.is_none_or(|id| active.id == id)
}

/// Clears the journaled fault; says what it had done. A fault already gone
/// (expired, or the broker restarted) is no failure.
async fn clear_broker_fault(platform: &dyn Platform, fault: &BrokerFault, id: Option<u64>) -> anyhow::Result<String> {
    let mut cleared: Vec<ActiveFault> = Vec::new();
    for active in platform.broker_faults().await? {
        if is_ours(&active, fault, id) {
            cleared.push(platform.clear_broker_fault(active.id).await?);
        }
    }
    if cleared.is_empty() {
        return Ok("already gone (expired, or the broker restarted)".into());
    }
    let each: Vec<String> = cleared.iter().map(|a| format!("fault {}: {} hits", a.id, a.hits)).collect();
    Ok(each.join(", "))
}

/// Whether the journaled fault is no longer in force.
async fn broker_fault_gone(platform: &dyn Platform, fault: &BrokerFault, id: Option<u64>) -> bool {
    match platform.broker_faults().await {
        Ok(active) => !active.iter().any(|a| is_ours(a, fault, id)),
        Err(_) => false,
    }
}

async fn flip(platform: &dyn Platform, journal: &mut Journal, switches: &Switches) -> anyhow::Result<String> {
    let wanted = SwitchState { unhealthy: switches.unhealthy, unready: switches.unready, delay_ms: switches.delay_ms, error_fraction: switches.error_fraction };
    let status = platform.service(&switches.service).await?;
    let mut flipped = Vec::new();
    for replica in status.replicas.iter().filter(|r| r.address.is_some()) {
        let prior = platform.switches(&switches.service, &replica.id).await?;
        journal.changes.push(Change::Switches { service: switches.service.clone(), replica: replica.id.clone(), prior });
        journal.save()?;
        platform.set_switches(&switches.service, &replica.id, &wanted).await?;
        flipped.push(replica.id.clone());
    }
    anyhow::ensure!(!flipped.is_empty(), "{} has no replica to flip switches on", switches.service);
    Ok(format!("flipped switches on {}", flipped.join(", ")))
}

async fn roll_out(platform: &dyn Platform, journal: &mut Journal, rollout: &RolloutAction) -> anyhow::Result<String> {
    let prior = platform.rollout_status(&rollout.service).await?.template;
    journal.changes.push(Change::Rollout { service: rollout.service.clone(), prior: prior.clone() });
    journal.save()?;
    let template = Template { variant: rollout.variant.clone(), env: rollout.env.clone(), readiness: rollout.readiness, ..Template::version(&rollout.to) };
    let status = platform.rollout(&rollout.service, &template).await?;
    Ok(format!("{}: {} → {} (revision {})", rollout.service, prior.version, status.template.version, status.revision))
}

async fn set_replicas(platform: &dyn Platform, journal: &mut Journal, service: &str, replicas: u32) -> anyhow::Result<String> {
    let prior = platform.service(service).await?.desired;
    // Enabled unless disabled by a scale to 0; an autoscaler still waiting
    // for its first metrics is enabled too.
    let autoscaler_enabled = platform.autoscaler(service).await?.map(|a| !a.disabled());
    journal.changes.push(Change::Replicas { service: service.to_string(), prior, autoscaler_enabled });
    journal.save()?;
    platform.scale(service, replicas).await?;
    Ok(format!("{service}: {prior} → {replicas} replicas"))
}

/// Restores every change not yet restored (newest first), then checks that
/// each touched service is ready at its desired replicas again.
pub async fn rollback(platform: &dyn Platform, journal: &mut Journal, patience: Duration) -> bool {
    let done = journal.rollbacks.len();
    let pending: Vec<Change> = journal.changes.iter().rev().skip(done).cloned().collect();
    for change in pending {
        let (what, result) = restore(platform, &change).await;
        let (status, detail) = match result {
            Ok(detail) => (RollbackStatus::Restored, detail),
            Err(err) => (RollbackStatus::Failed, format!("{err:#}")),
        };
        journal.rollbacks.push(Rollback { change: what, status, detail });
        let _ = journal.save();
    }
    let verified = verify(platform, journal, patience).await;
    journal.rollback_verified = Some(verified);
    let _ = journal.save();
    verified
}

/// Puts back what `change` replaced: what was restored, and its detail.
async fn restore(platform: &dyn Platform, change: &Change) -> (String, anyhow::Result<String>) {
    let done = |result: Result<(), PlatformError>| result.map(|()| String::new()).map_err(anyhow::Error::from);
    match change {
        Change::Replicas { service, prior, .. } => (format!("{service} back to {prior} replicas"), done(platform.scale(service, *prior).await)),
        Change::Rollout { service, prior } => (format!("{service} rolled back to {}", prior.version), done(platform.rollout(service, prior).await.map(|_| ()))),
        Change::Switches { service, replica, prior } => {
            let result = match platform.set_switches(service, replica, prior).await {
                // A replica that ended or restarted has its switches off.
                Err(PlatformError::UnknownReplica(_)) => Ok(()),
                other => other,
            };
            (format!("switches of {replica} restored"), done(result))
        }
        Change::Killed { service, replica } => (format!("{replica} replaced by the platform ({service})"), Ok(String::new())),
        Change::BrokerFault { fault, id } => {
            let which = id.map(|id| format!("broker fault {id}")).unwrap_or_else(|| "broker fault (id not journaled)".into());
            (format!("{which} on {} cleared", describe_target(&fault.target)), clear_broker_fault(platform, fault, *id).await)
        }
        Change::NetworkFault { fault, id } => {
            let which = id.map(|id| format!("network fault {id}")).unwrap_or_else(|| "network fault (id not journaled)".into());
            (format!("{which} ({fault}) cleared"), network_change::clear(platform, fault, *id).await)
        }
    }
}

/// Every service the journal touched is ready at its desired replicas, a
/// rolled-out one is back on its first template with the rollout complete,
/// and an autoscaler that was active is active again.
async fn verify(platform: &dyn Platform, journal: &Journal, patience: Duration) -> bool {
    let mut services: Vec<&str> = journal.changes.iter().filter_map(Change::service).collect();
    services.sort();
    services.dedup();
    let deadline = Instant::now() + patience;
    loop {
        let mut settled = true;
        for service in &services {
            match platform.service(service).await {
                Ok(s) if s.ready == s.desired && s.replicas.len() as u32 == s.desired => {}
                _ => settled = false,
            }
        }
        let mut rolled = Vec::new();
        for change in &journal.changes {
            if let Change::Rollout { service, .. } = change {
                if rolled.contains(&service) {
                    continue;
                }
                rolled.push(service);
            }
            settled &= restored(platform, change).await;
        }
        if settled {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether what `change` altered beyond replica counts is as it was.
async fn restored(platform: &dyn Platform, change: &Change) -> bool {
    match change {
        Change::Rollout { service, prior } => {
            // Called for the first rollout of a service only: its prior is
            // the original template.
            matches!(platform.rollout_status(service).await, Ok(s) if s.state() == RolloutState::Complete && s.template == *prior)
        }
        Change::Replicas { service, autoscaler_enabled: Some(true), .. } => {
            matches!(platform.autoscaler(service).await, Ok(Some(a)) if a.scaling_active())
        }
        Change::BrokerFault { fault, id } => broker_fault_gone(platform, fault, *id).await,
        Change::NetworkFault { fault, id } => network_change::gone(platform, fault, *id).await,
        _ => true,
    }
}
