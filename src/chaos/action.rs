//! Actions: the faults of a method, applied through the platform, each
//! recorded in the journal *before* it is made — and their rollback.

use std::time::{Duration, Instant};

use super::experiment::{Action, Fault, RolloutAction, Switches};
use super::journal::{Change, Journal, Rollback, RollbackStatus};
use crate::platform::{Platform, PlatformError, RolloutState, Template};
use crate::systems::kit::SwitchState;

/// The name the local platform gives its embedded broker.
const BROKER: &str = "broker";

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
    };
    format!("{what}{hold}")
}

/// Applies one platform fault, journaling each change before making it
/// (a surge is load, started by the run itself).
pub async fn apply(platform: &dyn Platform, journal: &mut Journal, action: &Action) -> anyhow::Result<String> {
    match &action.fault {
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
        let (what, result) = match &change {
            Change::Replicas { service, prior, .. } => (format!("{service} back to {prior} replicas"), platform.scale(service, *prior).await.map_err(anyhow::Error::from)),
            Change::Rollout { service, prior } => {
                let result = platform.rollout(service, prior).await.map(|_| ()).map_err(anyhow::Error::from);
                (format!("{service} rolled back to {}", prior.version), result)
            }
            Change::Switches { service, replica, prior } => {
                let result = match platform.set_switches(service, replica, prior).await {
                    // A replica that ended or restarted has its switches off.
                    Ok(()) | Err(PlatformError::UnknownReplica(_)) => Ok(()),
                    Err(err) => Err(err.into()),
                };
                (format!("switches of {replica} restored"), result)
            }
            Change::Killed { service, replica } => (format!("{replica} replaced by the platform ({service})"), Ok(())),
        };
        let (status, detail) = match result {
            Ok(()) => (RollbackStatus::Restored, String::new()),
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

/// Every service the journal touched is ready at its desired replicas, a
/// rolled-out one is back on its first template with the rollout complete,
/// and an autoscaler that was active is active again.
async fn verify(platform: &dyn Platform, journal: &Journal, patience: Duration) -> bool {
    let mut services: Vec<&str> = journal.changes.iter().map(Change::service).collect();
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
        _ => true,
    }
}
