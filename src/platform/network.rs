//! Network faults: what a link between two parts of a system does wrong on
//! purpose (Toxiproxy's vocabulary). A link is directed from the side that
//! connects to the side that listens: `gateway → order`, `order → product`
//! (a `calls:` entry), `mypage → broker`. Data on a link flows `upstream`
//! (from the connecting side) and `downstream` (back to it).
//!
//! The local platform puts a userspace proxy on every link it wires and sets
//! the fault there; a Kubernetes platform maps it onto Chaos Mesh's
//! `NetworkChaos` (or a `NetworkPolicy` for a partition). A fault is data
//! (serde): an experiment's `network:` action, the control API's body and
//! the journal's record are the same value.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// The system's gateway (it only ever connects).
    Gateway,
    /// The Kafka broker (it only ever listens).
    Broker,
    /// A service of the system, by name.
    Service(String),
}

impl Peer {
    /// Reads `gateway`, `broker` or a service name.
    pub fn parse(name: &str) -> Peer {
        match name {
            "gateway" => Peer::Gateway,
            "broker" => Peer::Broker,
            service => Peer::Service(service.to_string()),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Gateway => f.write_str("gateway"),
            Peer::Broker => f.write_str("broker"),
            Peer::Service(name) => f.write_str(name),
        }
    }
}

impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Peer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Peer, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom("a link end is `gateway`, `broker` or a service name, not empty"));
        }
        Ok(Peer::parse(&name))
    }
}

/// A link the platform wired: `from` connects to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    /// The side that connects.
    pub from: Peer,
    /// The side that listens.
    pub to: Peer,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.from, self.to)
    }
}

/// Which links a fault is on: one link (`from` and `to`), every link out of
/// a peer (`from` only), every link into one (`to` only), or the links
/// between two peers whichever side connects (`between`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Links {
    /// The links between two peers, in either direction of connection.
    Between {
        /// The two peers.
        between: [Peer; 2],
    },
    /// Links by their ends; at least one end is given.
    Ends {
        /// Links out of this peer (any, if absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Peer>,
        /// Links into this peer (any, if absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Peer>,
    },
}

impl Links {
    /// Whether `link` is one of these.
    pub fn matches(&self, link: &Link) -> bool {
        match self {
            Links::Between { between: [a, b] } => (link.from == *a && link.to == *b) || (link.from == *b && link.to == *a),
            Links::Ends { from, to } => {
                (from.is_some() || to.is_some()) && from.as_ref().is_none_or(|f| *f == link.from) && to.as_ref().is_none_or(|t| *t == link.to)
            }
        }
    }
}

impl fmt::Display for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Links::Between { between: [a, b] } => write!(f, "between {a} and {b}"),
            Links::Ends { from: Some(from), to: Some(to) } => write!(f, "{from} → {to}"),
            Links::Ends { from: Some(from), to: None } => write!(f, "every link out of {from}"),
            Links::Ends { from: None, to: Some(to) } => write!(f, "every link into {to}"),
            Links::Ends { from: None, to: None } => f.write_str("no link"),
        }
    }
}

/// Which way the faulted data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the connecting side (requests).
    Upstream,
    /// Back to the connecting side (responses).
    Downstream,
    /// Both ways.
    #[default]
    Both,
}

/// What a faulted link does (Toxiproxy's toxics; `partition` is Chaos
/// Mesh's). Connection-level toxics (`reset`, `blackhole`, `partition`,
/// `limit_data`, `slow_close`) act on whole connections in both directions;
/// `latency` and `bandwidth` act on the data of `direction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toxic {
    /// Each chunk of data waits `latency` ± `jitter` (uniformly) before it
    /// is passed on; order is kept.
    Latency {
        /// The added delay.
        #[serde(with = "humantime_serde")]
        latency: Duration,
        /// The spread around it.
        #[serde(default, with = "humantime_serde")]
        jitter: Duration,
    },
    /// Data passes at most this fast.
    Bandwidth {
        /// Bytes per second.
        bytes_per_second: u64,
    },
    /// Connections are reset (RST): those open when the fault is set, and
    /// each new one as it arrives.
    Reset,
    /// Connections are accepted and their data swallowed; nothing answers
    /// and nothing is closed (a peer that vanished without a word).
    Blackhole,
    /// The link is cut: open connections are closed, new ones refused.
    Partition,
    /// A connection's close is passed on only after this delay.
    SlowClose {
        /// How long a close waits.
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// A connection is closed once this many bytes have passed (per direction faulted).
    LimitData {
        /// Bytes let through before the close.
        bytes: u64,
    },
}

impl fmt::Display for Toxic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Toxic::Latency { latency, jitter } if jitter.is_zero() => write!(f, "{} latency", humantime::format_duration(*latency)),
            Toxic::Latency { latency, jitter } => write!(f, "{} ± {} latency", humantime::format_duration(*latency), humantime::format_duration(*jitter)),
            Toxic::Bandwidth { bytes_per_second } => write!(f, "bandwidth {bytes_per_second} B/s"),
            Toxic::Reset => f.write_str("connection resets"),
            Toxic::Blackhole => f.write_str("a blackhole"),
            Toxic::Partition => f.write_str("a partition"),
            Toxic::SlowClose { delay } => write!(f, "closes delayed {}", humantime::format_duration(*delay)),
            Toxic::LimitData { bytes } => write!(f, "connections closed after {bytes} bytes"),
        }
    }
}

/// A network fault: a toxic on some links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkFault {
    /// The links it is on.
    pub links: Links,
    /// What they do.
    pub toxic: Toxic,
    /// Which way (for `latency` and `bandwidth`).
    #[serde(default)]
    pub direction: Direction,
    /// The share of connections it applies to, 0 to 1 (Toxiproxy's
    /// toxicity): each connection is picked once, when it opens or when the
    /// fault is set.
    #[serde(default = "always")]
    pub probability: f64,
    /// The fault clears itself this long after it was set: a harness that
    /// dies while holding a fault does not leave it behind for good.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<Duration>,
}

fn always() -> f64 {
    1.0
}

impl fmt::Display for NetworkFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.toxic, self.links)?;
        if self.probability < 1.0 {
            write!(f, " for {:.0} % of connections", self.probability * 100.0)?;
        }
        match self.direction {
            Direction::Both => Ok(()),
            Direction::Upstream => f.write_str(" (upstream)"),
            Direction::Downstream => f.write_str(" (downstream)"),
        }
    }
}

impl NetworkFault {
    /// What is wrong with this fault as given, in words; `None` if nothing.
    pub fn problem(&self) -> Option<String> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Some(format!("probability is {}: it is a share of connections, from 0 to 1", self.probability));
        }
        match &self.links {
            Links::Ends { from: None, to: None } => return Some("a network fault names its links: `from`, `to` or `between`".into()),
            Links::Between { between: [a, b] } if a == b => return Some(format!("`between` names two different peers, not {a} twice")),
            _ => {}
        }
        match self.toxic {
            Toxic::Bandwidth { bytes_per_second: 0 } => Some("bandwidth of 0 B/s is a blackhole: say `blackhole`".into()),
            Toxic::Latency { latency, jitter } if jitter > latency => Some("jitter is larger than the latency it spreads".into()),
            _ => None,
        }
    }
}

/// A network fault that is set, with the evidence of what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveNetworkFault {
    /// Its id, to clear it with.
    pub id: u64,
    /// The fault as set.
    #[serde(flatten)]
    pub fault: NetworkFault,
    /// The wired links it is on (never empty: a fault on no link is refused).
    pub on: Vec<Link>,
    /// Connections it has acted on so far (delayed, throttled, reset,
    /// swallowed, refused or cut).
    pub hits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(from: &str, to: &str) -> Link {
        Link { from: Peer::parse(from), to: Peer::parse(to) }
    }

    #[test]
    fn an_experiments_network_action_reads_as_a_fault() {
        let fault: NetworkFault = serde_saphyr::from_str("links: { from: order, to: product }\ntoxic: { latency: { latency: 800ms, jitter: 100ms } }\n").unwrap();
        assert_eq!(fault.toxic, Toxic::Latency { latency: Duration::from_millis(800), jitter: Duration::from_millis(100) });
        assert_eq!(fault.probability, 1.0);
        assert!(fault.links.matches(&link("order", "product")));
        assert!(!fault.links.matches(&link("product", "order")));
        assert!(!fault.links.matches(&link("gateway", "product")));
        let cut: NetworkFault = serde_saphyr::from_str("links: { between: [mypage, broker] }\ntoxic: partition\n").unwrap();
        assert_eq!(cut.toxic, Toxic::Partition);
        assert!(cut.links.matches(&link("mypage", "broker")));
        assert!(!cut.links.matches(&link("order", "broker")));
    }

    #[test]
    fn one_end_matches_every_link_at_it() {
        let into = Links::Ends { from: None, to: Some(Peer::parse("order")) };
        assert!(into.matches(&link("gateway", "order")));
        assert!(!into.matches(&link("order", "broker")));
        let none = Links::Ends { from: None, to: None };
        assert!(!none.matches(&link("gateway", "order")));
    }

    #[test]
    fn nonsense_is_named() {
        let mut fault = NetworkFault { links: Links::Ends { from: None, to: None }, toxic: Toxic::Reset, direction: Direction::Both, probability: 1.0, expires_after: None };
        assert!(fault.problem().unwrap().contains("names its links"));
        fault.links = Links::Between { between: [Peer::Broker, Peer::Broker] };
        assert!(fault.problem().is_some());
        fault.links = Links::Ends { from: Some(Peer::Gateway), to: None };
        fault.probability = 1.5;
        assert!(fault.problem().unwrap().contains("from 0 to 1"));
        fault.probability = 0.3;
        assert_eq!(fault.problem(), None);
        assert_eq!(fault.to_string(), "connection resets on every link out of gateway for 30 % of connections");
    }
}
