//! Wiring: which address each part of a system is given for each link —
//! the link's proxy (links on) or the far end itself (`--links off`, to
//! measure what the proxies cost).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::link::LinkTable;
use crate::platform::network::{Link, Peer};
use crate::systems::definition::SystemDef;

/// Whether `up` puts a link proxy on every link it wires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wiring {
    /// Every link through its proxy, so network faults can be set on it.
    #[default]
    Links,
    /// Every part connects to the far end directly: no network faults.
    Direct,
}

/// The addresses each service is given.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    /// Caller → (service, URL) for every service it may reach.
    pub upstreams: BTreeMap<String, Vec<(String, String)>>,
    /// Service → its Kafka bootstrap address.
    pub kafka: BTreeMap<String, String>,
    /// The embedded broker's per-link listeners: where it listens → what
    /// it advertises there (the client service's proxy).
    pub broker_links: Vec<(SocketAddr, SocketAddr)>,
}

/// Wires `def`: a proxy per `calls:` entry (to the callee's stable
/// address), per service to the embedded broker (to a listener of its own,
/// which advertises the proxy), and the gateway's links. A callee not in
/// `calls:` is given directly; an external Kafka too (it advertises its own
/// addresses, which no proxy of ours would see).
pub fn wire(def: &SystemDef, table: &LinkTable, stable: &BTreeMap<String, SocketAddr>, kafka: &str, broker: Option<SocketAddr>, wiring: Wiring, taken: &mut BTreeSet<SocketAddr>) -> anyhow::Result<Addresses> {
    let mut addresses = Addresses::default();
    let url = |addr: &SocketAddr| format!("http://{addr}");
    for service in &def.services {
        let mut upstreams = Vec::new();
        for (callee, addr) in stable {
            let link = Link { from: Peer::Service(service.name.clone()), to: Peer::Service(callee.clone()) };
            let addr = match wiring {
                Wiring::Links if service.calls.contains(callee) => table.proxy(&link, *addr)?,
                _ => *addr,
            };
            upstreams.push((callee.clone(), url(&addr)));
        }
        addresses.upstreams.insert(service.name.clone(), upstreams);
        let bootstrap = match (wiring, broker) {
            (Wiring::Links, Some(_)) => {
                let listen = fresh_port(taken)?;
                let proxy = table.proxy(&Link { from: Peer::Service(service.name.clone()), to: Peer::Broker }, listen)?;
                addresses.broker_links.push((listen, proxy));
                proxy.to_string()
            }
            _ => kafka.to_string(),
        };
        addresses.kafka.insert(service.name.clone(), bootstrap);
    }
    if wiring == Wiring::Links {
        for route in &def.gateway.routes {
            table.register(Link { from: Peer::Gateway, to: Peer::Service(route.service.clone()) });
        }
    }
    Ok(addresses)
}

/// A free port not already given out in this `up`.
pub fn fresh_port(taken: &mut BTreeSet<SocketAddr>) -> anyhow::Result<SocketAddr> {
    loop {
        let addr = crate::process::free_port()?;
        if taken.insert(addr) {
            return Ok(addr);
        }
    }
}
