//! Actions: the faults of a method, applied through the platform, each
//! recorded in the journal *before* it is made — and their rollback.

use std::time::{Duration, Instant};

use super::experiment::{Action, RolloutAction};
use super::journal::{Change, Journal, Rollback};
use crate::platform::{Platform, RolloutState, Template};
use crate::systems::kit::SwitchState;

/// The name the local platform gives its embedded broker.
const BROKER: &str = "broker";

/// Describes `action` in words.
pub fn describe(action: &Action) -> String {
    let hold = if action.hold.is_zero() { String::new() } else { format!(", hold {}", humantime::format_duration(action.hold)) };
    let what = if let Some(s) = &action.scale {
        format!("scale {} to {}", s.service, s.replicas)
    } else if let Some(k) = &action.kill {
        format!("kill a replica of {}", k.service)
    } else if let Some(s) = &action.switches {
        format!("switches of {}: unhealthy={} unready={} delayMs={} errorFraction={}", s.service, s.unhealthy, s.unready, s.delay_ms, s.error_fraction)
    } else if let Some(r) = &action.rollout {
        let readiness = if r.readiness { "" } else { " without readiness probe" };
        format!("roll {} out to {}{readiness}", r.service, r.to)
    } else if let Some(s) = &action.surge {
        format!("traffic surge: {} more users", s.users)
    } else {
        "stop the broker".to_string()
    };
    format!("{what}{hold}")
}

/// Applies one action, journaling each change before making it.
pub async fn apply(platform: &dyn Platform, http: &reqwest::Client, journal: &mut Journal, action: &Action) -> anyhow::Result<String> {
    if let Some(scale) = &action.scale {
        set_replicas(platform, journal, &scale.service, scale.replicas).await
    } else if action.stop_broker.is_some() {
        set_replicas(platform, journal, BROKER, 0).await
    } else if let Some(kill) = &action.kill {
        let killed = platform.kill(&kill.service, None).await?;
        journal.changes.push(Change::Killed { service: kill.service.clone(), replica: killed.clone() });
        journal.save()?;
        Ok(format!("killed {killed}"))
    } else if let Some(rollout) = &action.rollout {
        roll_out(platform, journal, rollout).await
    } else if let Some(switches) = &action.switches {
        let wanted = SwitchState {
            unhealthy: switches.unhealthy,
            unready: switches.unready,
            delay_ms: switches.delay_ms,
            error_fraction: switches.error_fraction,
        };
        let status = platform.service(&switches.service).await?;
        let mut flipped = Vec::new();
        for replica in status.replicas {
            let Some(address) = replica.address else { continue };
            let url = format!("http://{address}/_stormproof/switches");
            let prior: SwitchState = http.get(&url).send().await?.error_for_status()?.json().await?;
            journal.changes.push(Change::Switches { service: switches.service.clone(), replica: replica.id.clone(), address, prior });
            journal.save()?;
            http.put(&url).json(&wanted).send().await?.error_for_status()?;
            flipped.push(replica.id);
        }
        anyhow::ensure!(!flipped.is_empty(), "{} has no replica to flip switches on", switches.service);
        Ok(format!("flipped switches on {}", flipped.join(", ")))
    } else {
        anyhow::bail!("an action without a fault")
    }
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
pub async fn rollback(platform: &dyn Platform, http: &reqwest::Client, journal: &mut Journal, patience: Duration) -> bool {
    let done = journal.rollbacks.len();
    let pending: Vec<Change> = journal.changes.iter().rev().skip(done).cloned().collect();
    for change in pending {
        let (what, result) = match &change {
            Change::Replicas { service, prior, .. } => (format!("{service} back to {prior} replicas"), platform.scale(service, *prior).await.map_err(anyhow::Error::from)),
            Change::Rollout { service, prior } => {
                let result = platform.rollout(service, prior).await.map(|_| ()).map_err(anyhow::Error::from);
                (format!("{service} rolled back to {}", prior.version), result)
            }
            Change::Switches { replica, address, prior, .. } => {
                let result = http.put(format!("http://{address}/_stormproof/switches")).json(prior).send().await;
                let result = match result {
                    Ok(response) => response.error_for_status().map(|_| ()).map_err(anyhow::Error::from),
                    // A restarted replica starts with its switches off.
                    Err(err) if err.is_connect() => Ok(()),
                    Err(err) => Err(err.into()),
                };
                (format!("switches of {replica} restored"), result)
            }
            Change::Killed { service, replica } => (format!("{replica} replaced by the platform ({service})"), Ok(())),
        };
        let (status, detail) = match result {
            Ok(()) => ("restored", String::new()),
            Err(err) => ("failed", format!("{err:#}")),
        };
        journal.rollbacks.push(Rollback { change: what, status: status.into(), detail });
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
