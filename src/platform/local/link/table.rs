//! The link table: every link the platform wired, its proxies, and the
//! network faults set on them (with their ids, hits and expiry).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::effects::{Faults, SetFault};
use super::memory::InMemory;
use super::proxy::Targets;
use crate::platform::PlatformError;
use crate::platform::network::{ActiveNetworkFault, Link, NetworkFault, Peer};
use crate::proxy::Upstreams;

/// The wired links and the faults on them. A link has one proxy (a
/// service's call, its broker connection) or one per endpoint (the
/// gateway's, which picks a replica itself); they share the link's faults.
#[derive(Default)]
pub struct LinkTable {
    links: Mutex<BTreeMap<Link, watch::Sender<Faults>>>,
    /// Proxies by link and target, so a target gets one proxy per link.
    proxies: Mutex<HashMap<Link, Proxies>>,
    faults: Mutex<BTreeMap<u64, Arc<SetFault>>>,
    next_id: AtomicU64,
    /// The proxies and `up`'s own listeners, reached in memory from inside `up`.
    memory: Arc<InMemory>,
}

impl std::fmt::Debug for LinkTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTable").field("links", &self.links()).finish()
    }
}

/// A link's proxies: one per target, and the targets they share, so a
/// proxy whose target refuses passes the connection to another one.
#[derive(Default)]
struct Proxies {
    targets: Targets,
    by_target: HashMap<SocketAddr, (SocketAddr, AbortHandle)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LinkTable {
    /// A table with no link.
    pub fn new() -> Arc<LinkTable> {
        Arc::new(LinkTable::default())
    }

    /// Wires `link` (a fault may name it from now on) without a proxy yet.
    pub fn register(&self, link: Link) {
        lock(&self.links).entry(link).or_insert_with(|| watch::channel(Vec::new()).0);
    }

    /// The address of `link`'s proxy to `target`, started on first use
    /// (inside a Tokio runtime). The link is wired if it was not.
    pub fn proxy(&self, link: &Link, target: SocketAddr) -> std::io::Result<SocketAddr> {
        let mut proxies = lock(&self.proxies);
        let proxies = proxies.entry(link.clone()).or_default();
        if let Some((addr, _)) = proxies.by_target.get(&target) {
            return Ok(*addr);
        }
        self.register(link.clone());
        let faults = lock(&self.links)[link].clone();
        let (addr, accepting) = super::proxy::start(target, faults, proxies.targets.clone(), &self.memory)?;
        proxies.by_target.insert(target, (addr, accepting));
        lock(&proxies.targets).push(target);
        Ok(addr)
    }

    /// Stops `link`'s proxies to targets not in `now` (a replica scaled
    /// away or gone), so its port refuses and no proxy outlives its target.
    pub fn follow(&self, link: &Link, now: &[SocketAddr]) {
        let mut proxies = lock(&self.proxies);
        let Some(proxies) = proxies.get_mut(link) else { return };
        proxies.by_target.retain(|target, (addr, accepting)| {
            let kept = now.contains(target);
            if !kept {
                accepting.abort();
                self.memory.close(*addr);
            }
            kept
        });
        lock(&proxies.targets).retain(|target| now.contains(target));
    }

    /// What `up`'s own callers (the gateway) reach the proxies through in
    /// memory, and where `up` serves its other listeners in memory too.
    pub fn memory(&self) -> Arc<InMemory> {
        self.memory.clone()
    }

    /// Every wired link.
    pub fn links(&self) -> Vec<Link> {
        lock(&self.links).keys().cloned().collect()
    }

    /// Sets `fault` on every wired link it names; `Invalid` if it is
    /// malformed or names none. It clears itself after `expires_after`.
    pub fn set(self: &Arc<Self>, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        if let Some(problem) = fault.problem() {
            return Err(PlatformError::Invalid(problem));
        }
        let links = lock(&self.links);
        let on: Vec<Link> = links.keys().filter(|link| fault.links.matches(link)).cloned().collect();
        if on.is_empty() {
            let wired: Vec<String> = links.keys().map(Link::to_string).collect();
            let wired = if wired.is_empty() { "none (is it up with `--links off`?)".to_string() } else { wired.join(", ") };
            return Err(PlatformError::Invalid(format!("no wired link is {}; the wired links: {wired}", fault.links)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let set = Arc::new(SetFault::new(id, fault.clone(), on.clone()));
        lock(&self.faults).insert(id, set.clone());
        for link in &on {
            links[link].send_modify(|faults| faults.push(set.clone()));
        }
        drop(links);
        if let Some(after) = fault.expires_after {
            let table: Weak<LinkTable> = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if let Some(table) = table.upgrade() {
                    let _ = table.clear(id);
                }
            });
        }
        Ok(set.active())
    }

    /// Clears fault `id`; it with its hits. `Invalid` if no such fault is set.
    pub fn clear(&self, id: u64) -> Result<ActiveNetworkFault, PlatformError> {
        let set = lock(&self.faults).remove(&id).ok_or_else(|| PlatformError::Invalid(format!("no network fault {id} is set")))?;
        let links = lock(&self.links);
        for link in &set.on {
            if let Some(faults) = links.get(link) {
                faults.send_modify(|faults| faults.retain(|f| f.id != id));
            }
        }
        Ok(set.active())
    }

    /// Clears every fault; what was set.
    pub fn clear_all(&self) -> Vec<ActiveNetworkFault> {
        let ids: Vec<u64> = lock(&self.faults).keys().copied().collect();
        ids.into_iter().filter_map(|id| self.clear(id).ok()).collect()
    }

    /// The faults set now, with their hits.
    pub fn list(&self) -> Vec<ActiveNetworkFault> {
        lock(&self.faults).values().map(|f| f.active()).collect()
    }
}

/// The gateway's view of the endpoints: each ready replica of a service
/// behind its own `gateway → service` proxy, so the gateway still picks
/// the replica (round-robin, ready ones only) and the link carries faults.
pub struct LinkedUpstreams {
    /// Where the replicas really are.
    pub inner: Arc<dyn Upstreams>,
    /// The links.
    pub table: Arc<LinkTable>,
}

impl Upstreams for LinkedUpstreams {
    fn endpoints(&self, service: &str) -> Vec<String> {
        let link = Link { from: Peer::Gateway, to: Peer::Service(service.to_string()) };
        let endpoints = self.inner.endpoints(service);
        let targets: Vec<SocketAddr> = endpoints.iter().filter_map(|endpoint| endpoint.parse().ok()).collect();
        self.table.follow(&link, &targets);
        let via = |endpoint: String| {
            let proxied = endpoint.parse().ok().and_then(|target| self.table.proxy(&link, target).ok());
            proxied.map_or(endpoint, |addr| addr.to_string())
        };
        endpoints.into_iter().map(via).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn a_refused_replica_passes_to_another_and_a_gone_one_loses_its_proxy() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_at = live.local_addr().unwrap();
        // Bound then dropped: a replica that was killed, its port refuses.
        let gone_at = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (table, link) = (LinkTable::new(), Link { from: Peer::Gateway, to: Peer::Service("order".into()) });
        let via_live = table.proxy(&link, live_at).unwrap();
        let via_gone = table.proxy(&link, gone_at).unwrap();

        let mut caller = TcpStream::connect(via_gone).await.unwrap();
        caller.write_all(b"POST").await.unwrap();
        let (mut replica, _) = live.accept().await.unwrap();
        let mut got = [0u8; 4];
        replica.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"POST", "the live replica took the connection the gone one refused");

        table.follow(&link, &[live_at]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = TcpStream::connect(via_gone).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "the gone replica's proxy is stopped");
        assert_eq!(table.proxy(&link, live_at).unwrap(), via_live, "the live replica keeps its proxy");
    }
}
