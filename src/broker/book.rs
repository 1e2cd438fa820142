//! The fault book: the broker faults set right now, what each has done, and
//! which consumer group each client joined (so that a group's faults reach
//! its members' Fetch and Produce, which name no group).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::fault::{ActiveFault, Api, BrokerFault, Fault, KafkaError, Target};

/// One request as a fault sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Its API.
    pub api: Api,
    /// The client id of its header.
    pub client_id: Option<&'a str>,
    /// The group of a group request.
    pub group_id: Option<&'a str>,
    /// The member id of a group request.
    pub member_id: Option<&'a str>,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Serve,
    /// Answer it with this error instead of serving it.
    Answer(KafkaError),
    /// Serve it after this long.
    Hold(Duration),
}

/// The faults in force; shared by every connection and the control endpoint.
#[derive(Debug, Clone, Default)]
pub struct FaultBook {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    entries: Vec<Entry>,
    /// Client id → the group it last joined.
    groups: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Entry {
    active: ActiveFault,
    expires: Option<Instant>,
    /// Members a rebalance has already told.
    told: BTreeSet<String>,
}

impl FaultBook {
    /// Sets a fault; returns it with its id.
    pub fn set(&self, fault: BrokerFault) -> ActiveFault {
        let mut inner = self.lock();
        inner.next_id += 1;
        let expires = fault.expires_after.map(|after| Instant::now() + after);
        let active = ActiveFault { id: inner.next_id, fault, hits: 0 };
        inner.entries.push(Entry { active: active.clone(), expires, told: BTreeSet::new() });
        active
    }

    /// Clears the fault `id`; returns it, or `None` if no such fault is set.
    pub fn clear(&self, id: u64) -> Option<ActiveFault> {
        let mut inner = self.lock();
        inner.prune();
        let at = inner.entries.iter().position(|e| e.active.id == id)?;
        Some(inner.entries.remove(at).active)
    }

    /// Clears every fault; returns what was set.
    pub fn clear_all(&self) -> Vec<ActiveFault> {
        let mut inner = self.lock();
        inner.prune();
        inner.entries.drain(..).map(|e| e.active).collect()
    }

    /// The faults in force, in the order they were set.
    pub fn list(&self) -> Vec<ActiveFault> {
        let mut inner = self.lock();
        inner.prune();
        inner.entries.iter().map(|e| e.active.clone()).collect()
    }

    /// Records that `client_id` joined `group`.
    pub fn joined(&self, client_id: &str, group: &str) {
        let mut inner = self.lock();
        if inner.groups.get(client_id).map(String::as_str) != Some(group) {
            inner.groups.insert(client_id.to_string(), group.to_string());
        }
    }

    /// What to do with `request`: the first fault set that applies decides.
    pub fn decide(&self, request: &Request) -> Decision {
        let mut inner = self.lock();
        if inner.entries.is_empty() {
            return Decision::Serve;
        }
        inner.prune();
        let Inner { entries, groups, .. } = &mut *inner;
        for entry in entries.iter_mut() {
            if !applies(&entry.active.fault.target, request, groups) {
                continue;
            }
            let decision = match &entry.active.fault.fault {
                Fault::Error { api, error } if *api == request.api => Decision::Answer(*error),
                Fault::StallFetch { delay } if request.api == Api::Fetch => Decision::Hold(*delay),
                Fault::Rebalance if request.api == Api::Heartbeat => match request.member_id {
                    Some(member) if entry.told.insert(member.to_string()) => Decision::Answer(KafkaError::RebalanceInProgress),
                    _ => continue,
                },
                _ => continue,
            };
            entry.active.hits += 1;
            return decision;
        }
        Decision::Serve
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the book leaves it consistent (each change
        // is one statement), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn prune(&mut self) {
        let now = Instant::now();
        self.entries.retain(|e| e.expires.is_none_or(|at| at > now));
    }
}

fn applies(target: &Target, request: &Request, groups: &BTreeMap<String, String>) -> bool {
    match target {
        Target::Client(id) => request.client_id == Some(id.as_str()),
        Target::ClientPrefix(prefix) => request.client_id.is_some_and(|id| id.starts_with(prefix.as_str())),
        Target::Group(group) => match request.group_id {
            Some(id) => id == group,
            None => request.client_id.and_then(|id| groups.get(id)) == Some(group),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(api: Api, client_id: &'a str, group_id: Option<&'a str>, member_id: Option<&'a str>) -> Request<'a> {
        Request { api, client_id: Some(client_id), group_id, member_id }
    }

    fn fault(target: Target, fault: Fault) -> BrokerFault {
        BrokerFault { target, fault, expires_after: None }
    }

    #[test]
    fn an_error_fault_answers_only_its_api_and_client_and_counts() {
        let book = FaultBook::default();
        let set = book.set(fault(Target::Client("a".into()), Fault::Error { api: Api::Produce, error: KafkaError::NotLeaderOrFollower }));
        assert_eq!(book.decide(&request(Api::Produce, "a", None, None)), Decision::Answer(KafkaError::NotLeaderOrFollower));
        assert_eq!(book.decide(&request(Api::Produce, "b", None, None)), Decision::Serve, "another client");
        assert_eq!(book.decide(&request(Api::Fetch, "a", None, None)), Decision::Serve, "another API");
        assert_eq!(book.list()[0].hits, 1);
        assert_eq!(book.clear(set.id).map(|f| f.hits), Some(1));
        assert_eq!(book.decide(&request(Api::Produce, "a", None, None)), Decision::Serve, "cleared");
        assert_eq!(book.clear(set.id), None);
    }

    #[test]
    fn a_group_fault_reaches_the_fetches_of_clients_that_joined_it() {
        let book = FaultBook::default();
        book.set(fault(Target::Group("g".into()), Fault::StallFetch { delay: Duration::from_secs(2) }));
        assert_eq!(book.decide(&request(Api::Fetch, "c1", None, None)), Decision::Serve, "not yet a member");
        book.joined("c1", "g");
        book.joined("c2", "other");
        assert_eq!(book.decide(&request(Api::Fetch, "c1", None, None)), Decision::Hold(Duration::from_secs(2)));
        assert_eq!(book.decide(&request(Api::Fetch, "c2", None, None)), Decision::Serve);
    }

    #[test]
    fn a_rebalance_tells_each_member_once() {
        let book = FaultBook::default();
        book.set(fault(Target::Group("g".into()), Fault::Rebalance));
        let heartbeat = |member| request(Api::Heartbeat, "c", Some("g"), Some(member));
        assert_eq!(book.decide(&heartbeat("m1")), Decision::Answer(KafkaError::RebalanceInProgress));
        assert_eq!(book.decide(&heartbeat("m2")), Decision::Answer(KafkaError::RebalanceInProgress));
        assert_eq!(book.decide(&heartbeat("m1")), Decision::Serve, "m1 was told already");
        assert_eq!(book.decide(&request(Api::Heartbeat, "c", Some("h"), Some("m3"))), Decision::Serve, "another group");
        assert_eq!(book.list()[0].hits, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_expires_after_its_time() {
        let book = FaultBook::default();
        book.set(BrokerFault { expires_after: Some(Duration::from_secs(5)), ..fault(Target::ClientPrefix("shop.".into()), Fault::Error { api: Api::Heartbeat, error: KafkaError::NotCoordinator }) });
        assert_eq!(book.decide(&request(Api::Heartbeat, "shop.mypage-1", Some("g"), Some("m"))), Decision::Answer(KafkaError::NotCoordinator));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(book.decide(&request(Api::Heartbeat, "shop.mypage-1", Some("g"), Some("m"))), Decision::Serve);
        assert!(book.list().is_empty());
    }
}
