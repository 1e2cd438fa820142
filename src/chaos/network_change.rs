//! A `network:` action as a change to the system: journaled before the
//! platform sets it, cleared by the rollback, and checked gone.

use std::time::Duration;

use super::journal::{Change, Journal};
use super::network_action::NetworkAction;
use crate::platform::Platform;
use crate::platform::network::{ActiveNetworkFault, NetworkFault};

/// How long a network fault outlives the holds it was set for before the
/// platform clears it by itself: a harness SIGKILLed while holding it (and
/// never rolled back) leaves it behind for no longer.
const NETWORK_FAULT_SLACK: Duration = Duration::from_secs(60);

/// The fault of `action`, expiring `holds` plus the slack after it is set.
pub fn network_fault(action: &NetworkAction, holds: Duration) -> NetworkFault {
    NetworkFault { expires_after: Some(holds + NETWORK_FAULT_SLACK), ..action.fault.clone() }
}

/// Journals the fault without its id before setting it (a run killed in
/// between is rolled back by what it matches), then with the id.
pub async fn set(platform: &dyn Platform, journal: &mut Journal, action: &NetworkAction, holds: Duration) -> anyhow::Result<String> {
    let fault = network_fault(action, holds);
    journal.changes.push(Change::NetworkFault { fault: fault.clone(), id: None });
    let at = journal.changes.len() - 1;
    journal.save()?;
    let active = platform.set_network_fault(&fault).await?;
    if let Some(Change::NetworkFault { id, .. }) = journal.changes.get_mut(at) {
        *id = Some(active.id);
    }
    journal.save()?;
    let on: Vec<String> = active.on.iter().map(ToString::to_string).collect();
    // What the platform set, which may not expire (a NetworkPolicy).
    let expires = match active.fault.expires_after {
        Some(after) => format!(", expires by itself after {}", humantime::format_duration(after)),
        None => ", does not expire by itself here: if this run dies, `stormproof chaos rollback` clears it".into(),
    };
    Ok(format!("network fault {} set on {}{expires}", active.id, on.join(", ")))
}

/// Whether `active` is the journaled fault: the one with its id, or (the
/// run died before the id was saved) any equal one. The fault must match
/// too, since a restarted platform numbers its faults from 1 again.
fn is_ours(active: &ActiveNetworkFault, fault: &NetworkFault, id: Option<u64>) -> bool {
    // Bar the expiry: a platform whose fault cannot expire reads back none.
    let timeless = |f: &NetworkFault| NetworkFault { expires_after: None, ..f.clone() };
    timeless(&active.fault) == timeless(fault) && id.is_none_or(|id| active.id == id)
}

/// Clears the journaled fault; says what it had done. A fault already gone
/// (expired, or the platform restarted) is no failure.
pub async fn clear(platform: &dyn Platform, fault: &NetworkFault, id: Option<u64>) -> anyhow::Result<String> {
    let mut cleared = Vec::new();
    for active in platform.network_faults().await? {
        if is_ours(&active, fault, id) {
            cleared.push(platform.clear_network_fault(active.id).await?);
        }
    }
    if cleared.is_empty() {
        return Ok("already gone (expired, or the platform restarted)".into());
    }
    let each: Vec<String> = cleared.iter().map(|a| format!("fault {}: {} hits", a.id, a.hits)).collect();
    Ok(each.join(", "))
}

/// Whether the journaled fault is no longer in force.
pub async fn gone(platform: &dyn Platform, fault: &NetworkFault, id: Option<u64>) -> bool {
    match platform.network_faults().await {
        Ok(active) => !active.iter().any(|a| is_ours(a, fault, id)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::chaos::action;
    use crate::chaos::experiment::{Action, Fault};
    use crate::chaos::journal::RollbackStatus;
    use crate::platform::network::{Link, Peer};
    use crate::platform::{AutoscalerStatus, PlatformError, RolloutStatus, ServiceStatus, Template};
    use crate::systems::kit::SwitchState;

    /// A platform that only keeps network faults, in memory, and checks
    /// that each was journaled before it was set.
    #[derive(Default)]
    struct Links {
        faults: Mutex<Vec<ActiveNetworkFault>>,
        journal: Mutex<Option<std::path::PathBuf>>,
        /// Its faults never expire (a cluster's NetworkPolicy).
        timeless: bool,
    }

    #[async_trait::async_trait]
    impl Platform for Links {
        async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError> {
            Ok(vec![])
        }
        async fn scale(&self, _: &str, _: u32) -> Result<(), PlatformError> {
            unreachable!("no scale here")
        }
        async fn kill(&self, _: &str, _: Option<&str>) -> Result<String, PlatformError> {
            unreachable!("no kill here")
        }
        async fn rollout(&self, _: &str, _: &Template) -> Result<RolloutStatus, PlatformError> {
            unreachable!("no rollout here")
        }
        async fn rollout_status(&self, _: &str) -> Result<RolloutStatus, PlatformError> {
            unreachable!("no rollout here")
        }
        async fn rollout_undo(&self, _: &str) -> Result<RolloutStatus, PlatformError> {
            unreachable!("no rollout here")
        }
        async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError> {
            Ok(vec![])
        }
        async fn switches(&self, _: &str, _: &str) -> Result<SwitchState, PlatformError> {
            unreachable!("no switches here")
        }
        async fn set_switches(&self, _: &str, _: &str, _: &SwitchState) -> Result<(), PlatformError> {
            unreachable!("no switches here")
        }
        async fn set_network_fault(&self, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
            if let Some(path) = self.journal.lock().unwrap().as_ref() {
                let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                let last = on_disk["changes"].as_array().unwrap().last().cloned().unwrap();
                assert_eq!((last["kind"].as_str(), &last["id"]), (Some("network-fault"), &serde_json::Value::Null), "journaled before it is set");
                assert_eq!(serde_json::from_value::<NetworkFault>(last["fault"].clone()).unwrap(), *fault);
            }
            let mut faults = self.faults.lock().unwrap();
            let id = faults.iter().map(|f| f.id).max().unwrap_or(0) + 1;
            let on = vec![Link { from: Peer::parse("order"), to: Peer::parse("product") }];
            let fault = if self.timeless { NetworkFault { expires_after: None, ..fault.clone() } } else { fault.clone() };
            let active = ActiveNetworkFault { id, fault, on, hits: 7 };
            faults.push(active.clone());
            Ok(active)
        }
        async fn clear_network_fault(&self, id: u64) -> Result<ActiveNetworkFault, PlatformError> {
            let mut faults = self.faults.lock().unwrap();
            let at = faults.iter().position(|f| f.id == id).ok_or_else(|| PlatformError::Invalid(format!("no fault {id}")))?;
            Ok(faults.remove(at))
        }
        async fn network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
            Ok(self.faults.lock().unwrap().clone())
        }
    }

    fn slow_link() -> Action {
        let fault: NetworkAction = serde_saphyr::from_str("{ from: order, to: product, latency: 800ms, jitter: 100ms }").unwrap();
        Action { fault: Fault::Network(fault), hold: Duration::from_secs(10) }
    }

    fn journal(dir: &std::path::Path) -> Journal {
        Journal::new("t", "x.yaml", "shop", dir, dir.join("journal.json"))
    }

    #[tokio::test]
    async fn a_network_fault_is_journaled_before_it_is_set_and_rolled_back_always() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Links::default();
        let mut journal = journal(dir.path());
        *platform.journal.lock().unwrap() = Some(journal.path().to_path_buf());
        let said = action::apply(&platform, &mut journal, &slow_link(), Duration::from_secs(25)).await.unwrap();
        assert_eq!(said, "network fault 1 set on order → product, expires by itself after 1m 25s");
        assert!(matches!(&journal.changes[..], [Change::NetworkFault { id: Some(1), fault }] if fault.expires_after == Some(Duration::from_secs(85))));
        assert_eq!(action::describe(&slow_link()), "network: 800ms ± 100ms latency on order → product, hold 10s");
        assert!(action::rollback(&platform, &mut journal, Duration::from_secs(1)).await);
        assert_eq!(journal.rollbacks[0].status, RollbackStatus::Restored);
        assert_eq!(journal.rollbacks[0].detail, "fault 1: 7 hits");
        assert!(platform.faults.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_run_killed_before_the_id_was_saved_clears_only_the_equal_fault() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Links::default();
        let ours = network_fault(match &slow_link().fault { Fault::Network(n) => n, _ => unreachable!() }, Duration::from_secs(10));
        let theirs = NetworkFault { probability: 0.5, ..ours.clone() };
        platform.set_network_fault(&theirs).await.unwrap();
        platform.set_network_fault(&ours).await.unwrap();
        let mut journal = journal(dir.path());
        journal.changes.push(Change::NetworkFault { fault: ours.clone(), id: None });
        assert!(action::rollback(&platform, &mut journal, Duration::from_secs(1)).await);
        let left: Vec<u64> = platform.faults.lock().unwrap().iter().map(|f| f.id).collect();
        assert_eq!(left, [1], "another run's fault stays");
        // Rolled back again (`chaos rollback` after the run's own): already gone is no failure.
        journal.rollbacks.clear();
        assert!(action::rollback(&platform, &mut journal, Duration::from_secs(1)).await);
        assert_eq!((journal.rollbacks[0].status, journal.rollbacks[0].detail.as_str()), (RollbackStatus::Restored, "already gone (expired, or the platform restarted)"));
    }

    /// A fault the platform cannot expire is not said to, and is still
    /// found and cleared by the rollback, by id or (no id saved) by match.
    #[tokio::test]
    async fn a_fault_that_cannot_expire_is_said_so_and_still_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Links { timeless: true, ..Links::default() };
        let mut journal = journal(dir.path());
        let said = action::apply(&platform, &mut journal, &slow_link(), Duration::from_secs(25)).await.unwrap();
        assert!(said.ends_with("does not expire by itself here: if this run dies, `stormproof chaos rollback` clears it"), "{said}");
        let ours = network_fault(match &slow_link().fault { Fault::Network(n) => n, _ => unreachable!() }, Duration::from_secs(25));
        platform.set_network_fault(&ours).await.unwrap();
        journal.changes.push(Change::NetworkFault { fault: ours, id: None });
        assert!(action::rollback(&platform, &mut journal, Duration::from_secs(1)).await);
        assert!(platform.faults.lock().unwrap().is_empty(), "both cleared");
    }

    #[tokio::test]
    async fn a_platform_without_network_faults_refuses_and_nothing_is_left_to_clear() {
        struct Bare(Links);
        #[async_trait::async_trait]
        impl Platform for Bare {
            async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError> { self.0.services().await }
            async fn scale(&self, s: &str, r: u32) -> Result<(), PlatformError> { self.0.scale(s, r).await }
            async fn kill(&self, s: &str, r: Option<&str>) -> Result<String, PlatformError> { self.0.kill(s, r).await }
            async fn rollout(&self, s: &str, t: &Template) -> Result<RolloutStatus, PlatformError> { self.0.rollout(s, t).await }
            async fn rollout_status(&self, s: &str) -> Result<RolloutStatus, PlatformError> { self.0.rollout_status(s).await }
            async fn rollout_undo(&self, s: &str) -> Result<RolloutStatus, PlatformError> { self.0.rollout_undo(s).await }
            async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError> { self.0.autoscalers().await }
            async fn switches(&self, s: &str, r: &str) -> Result<SwitchState, PlatformError> { self.0.switches(s, r).await }
            async fn set_switches(&self, s: &str, r: &str, w: &SwitchState) -> Result<(), PlatformError> { self.0.set_switches(s, r, w).await }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut journal = journal(dir.path());
        let err = action::apply(&Bare(Links::default()), &mut journal, &slow_link(), Duration::from_secs(10)).await.unwrap_err();
        assert!(err.to_string().contains("cannot set network faults"), "{err}");
        assert!(matches!(&journal.changes[..], [Change::NetworkFault { id: None, .. }]), "journaled before it was tried");
        assert!(!action::rollback(&Bare(Links::default()), &mut journal, Duration::ZERO).await, "a fault that cannot be read back is not verified gone");
    }
}
