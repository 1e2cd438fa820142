//! Services an experiment must leave alone (open architecture: a service
//! deployed beside the others changes none of them). What each service was
//! when the method began — desired replicas, its replicas and their
//! restarts, its rollout revision and version — is compared with what it is
//! now; any difference is a deviation.

use std::collections::BTreeMap;
use std::time::Instant;

use super::probe::Found;
use crate::platform::{Platform, PlatformError, ReplicaPhase};

/// What one service was at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    /// Replicas asked for.
    pub desired: u32,
    /// Its replicas (pods) not terminating, by name, with their restarts.
    pub replicas: BTreeMap<String, u32>,
    /// Revision of its current template.
    pub revision: u64,
    /// Version label of its current template.
    pub version: String,
}

/// Every service of the platform at one moment, by name.
pub type Snapshot = BTreeMap<String, ServiceState>;

/// The platform as the method found it.
#[derive(Debug, Clone)]
pub struct AtMethod {
    /// When the method began.
    pub at: Instant,
    /// The services then (or why they could not be read).
    pub services: Result<Snapshot, String>,
}

/// Reads every service's state (a status and a rollout status each).
pub async fn snapshot(platform: &dyn Platform) -> Result<Snapshot, PlatformError> {
    let mut snapshot = Snapshot::new();
    for service in platform.services().await? {
        let rollout = platform.rollout_status(&service.name).await?;
        // A replica already terminating goes because of an earlier change
        // (a scale-down under way): its end is not the experiment's doing.
        let replicas = service.replicas.iter().filter(|r| r.phase != ReplicaPhase::Terminating).map(|r| (r.id.clone(), r.restarts)).collect();
        let state = ServiceState { desired: service.desired, replicas, revision: rollout.revision, version: rollout.template.version };
        snapshot.insert(service.name, state);
    }
    Ok(snapshot)
}

/// Every service of `before` but `except` is as it was; with none left to
/// compare there is no evidence (inconclusive).
pub fn compare(before: &Snapshot, now: &Snapshot, except: &[String]) -> Found {
    let compared: Vec<&String> = before.keys().filter(|name| !except.contains(name)).collect();
    if compared.is_empty() {
        return Found::Inconclusive(format!("no service besides {} to compare: nothing shown untouched", except.join(", ")));
    }
    let changes: Vec<String> = compared.iter().flat_map(|name| changes(name, &before[*name], now.get(*name))).collect();
    if changes.is_empty() {
        let names: Vec<&str> = compared.iter().map(|n| n.as_str()).collect();
        return Found::Held(format!("{} other services untouched (replicas, restarts, revisions as when the method began: {})", compared.len(), names.join(", ")));
    }
    Found::Deviated(format!("{} change(s) to services the experiment must not touch: {}", changes.len(), changes.join("; ")))
}

/// What changed in service `name` since `then`.
fn changes(name: &str, then: &ServiceState, now: Option<&ServiceState>) -> Vec<String> {
    let Some(now) = now else { return vec![format!("{name} is gone")] };
    let mut changes = Vec::new();
    if then.desired != now.desired {
        changes.push(format!("{name} desired {} → {} replicas", then.desired, now.desired));
    }
    if (then.revision, &then.version) != (now.revision, &now.version) {
        changes.push(format!("{name} revision {} ({}) → {} ({})", then.revision, then.version, now.revision, now.version));
    }
    let names = |s: &ServiceState| s.replicas.keys().cloned().collect::<Vec<_>>().join(", ");
    if then.replicas.keys().ne(now.replicas.keys()) {
        changes.push(format!("{name} replicas [{}] → [{}]", names(then), names(now)));
    }
    for (replica, restarts) in &now.replicas {
        if let Some(before) = then.replicas.get(replica).filter(|before| *before != restarts) {
            changes.push(format!("{replica} restarted ({before} → {restarts} restarts)"));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(desired: u32, replicas: &[(&str, u32)], revision: u64) -> ServiceState {
        ServiceState { desired, replicas: replicas.iter().map(|(id, r)| (id.to_string(), *r)).collect(), revision, version: format!("v{revision}") }
    }

    fn shop() -> Snapshot {
        Snapshot::from([
            ("order".to_string(), state(1, &[("order-1", 0)], 1)),
            ("mypage".to_string(), state(1, &[("mypage-1", 2)], 1)),
            ("mypage-late".to_string(), state(0, &[], 1)),
        ])
    }

    #[test]
    fn the_same_services_are_untouched_and_the_excepted_one_may_change() {
        let mut now = shop();
        now.insert("mypage-late".into(), state(1, &[("mypage-late-1", 0)], 1));
        let found = compare(&shop(), &now, &["mypage-late".into()]);
        assert!(matches!(&found, Found::Held(e) if e.starts_with("2 other services untouched") && e.contains("mypage, order")), "{found:?}");
    }

    #[test]
    fn any_change_to_another_service_deviates() {
        let except = ["mypage-late".to_string()];
        let changed = |change: fn(&mut Snapshot)| {
            let mut now = shop();
            change(&mut now);
            compare(&shop(), &now, &except)
        };
        let scaled = changed(|s| s.get_mut("order").unwrap().desired = 2);
        assert!(matches!(&scaled, Found::Deviated(e) if e.contains("order desired 1 → 2 replicas")), "{scaled:?}");
        let restarted = changed(|s| *s.get_mut("mypage").unwrap().replicas.get_mut("mypage-1").unwrap() = 3);
        assert!(matches!(&restarted, Found::Deviated(e) if e.contains("mypage-1 restarted (2 → 3 restarts)")), "{restarted:?}");
        let replaced = changed(|s| s.get_mut("order").unwrap().replicas = BTreeMap::from([("order-2".to_string(), 0)]));
        assert!(matches!(&replaced, Found::Deviated(e) if e.contains("order replicas [order-1] → [order-2]")), "a replaced pod: {replaced:?}");
        let rolled = changed(|s| *s.get_mut("order").unwrap() = state(1, &[("order-1", 0)], 2));
        assert!(matches!(&rolled, Found::Deviated(e) if e.contains("order revision 1 (v1) → 2 (v2)")), "{rolled:?}");
        let gone = changed(|s| {
            s.remove("mypage");
        });
        assert!(matches!(&gone, Found::Deviated(e) if e.contains("mypage is gone")), "{gone:?}");
    }

    #[test]
    fn no_service_left_to_compare_is_inconclusive() {
        let only_late = Snapshot::from([("mypage-late".to_string(), state(0, &[], 1))]);
        let found = compare(&only_late, &only_late, &["mypage-late".into()]);
        assert!(matches!(&found, Found::Inconclusive(e) if e.contains("no service besides mypage-late")), "{found:?}");
        let found = compare(&Snapshot::new(), &Snapshot::new(), &[]);
        assert!(matches!(found, Found::Inconclusive(_)), "an empty platform shows nothing untouched");
    }
}
