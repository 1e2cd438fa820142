//! What the faults on a link do to one connection: each fault picks the
//! connection or not once (its probability, as a share), when the
//! connection opens or when the fault is set, and the picked faults combine
//! into [`Effects`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::platform::network::{ActiveNetworkFault, Direction, Link, NetworkFault, Toxic};

/// A fault as set on the links it names, counting the connections it
/// acted on and those it looked at.
#[derive(Debug)]
pub(super) struct SetFault {
    pub id: u64,
    pub fault: NetworkFault,
    pub on: Vec<Link>,
    pub hits: AtomicU64,
    seen: AtomicU64,
}

impl SetFault {
    pub fn new(id: u64, fault: NetworkFault, on: Vec<Link>) -> SetFault {
        SetFault { id, fault, on, hits: AtomicU64::new(0), seen: AtomicU64::new(0) }
    }

    /// Whether the next connection it looks at is picked. The share is
    /// kept exactly, not drawn: of the first n connections ⌈n·p⌉ are
    /// picked, the first one included, so a fault with a probability
    /// above 0 always acts on a link that has a connection — a verdict
    /// never rests on a lucky draw that touched nothing.
    fn pick(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        let p = self.fault.probability;
        // The epsilon keeps 10 × 0.3 at 3, not 3.0000000000000004.
        let picks = |n: f64| (n * p - 1e-9).ceil().max(0.0);
        let picked = picks(n + 1.0) > picks(n);
        if picked {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        picked
    }

    pub fn active(&self) -> ActiveNetworkFault {
        ActiveNetworkFault { id: self.id, fault: self.fault.clone(), on: self.on.clone(), hits: self.hits.load(Ordering::Relaxed) }
    }
}

/// The faults set on one link, as its connections watch them.
pub(super) type Faults = Vec<Arc<SetFault>>;

/// What ends a connection's normal life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// Reset (RST) both ends.
    Reset,
    /// Close an open connection; refuse (reset at once) a new one.
    Partition,
    /// Keep it open, swallow its data, answer nothing.
    Blackhole,
}

/// What happens to the data of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Flow {
    /// Delay and its spread, per chunk.
    pub latency: Option<(Duration, Duration)>,
    /// Bytes per second.
    pub bandwidth: Option<u64>,
    /// Bytes let through before the connection is closed.
    pub limit: Option<u64>,
}

/// The two sides of a connection's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// From the connecting side.
    Upstream,
    /// Back to it.
    Downstream,
}

/// Everything the picked faults do to a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Effects {
    pub cut: Option<Cut>,
    pub upstream: Flow,
    pub downstream: Flow,
    pub slow_close: Option<Duration>,
}

impl Effects {
    pub fn flow(&self, side: Side) -> Flow {
        match side {
            Side::Upstream => self.upstream,
            Side::Downstream => self.downstream,
        }
    }

    fn add(&mut self, fault: &NetworkFault) {
        let sides: &[Side] = match fault.direction {
            Direction::Upstream => &[Side::Upstream],
            Direction::Downstream => &[Side::Downstream],
            Direction::Both => &[Side::Upstream, Side::Downstream],
        };
        let cut = match fault.toxic {
            Toxic::Partition => Some(Cut::Partition),
            Toxic::Reset => Some(Cut::Reset),
            Toxic::Blackhole => Some(Cut::Blackhole),
            _ => None,
        };
        // The harshest cut wins: a partition over a reset over a blackhole.
        self.cut = match (self.cut, cut) {
            (Some(Cut::Partition), _) | (_, Some(Cut::Partition)) => Some(Cut::Partition),
            (Some(Cut::Reset), _) | (_, Some(Cut::Reset)) => Some(Cut::Reset),
            (old, new) => old.or(new),
        };
        if let Toxic::SlowClose { delay } = fault.toxic {
            self.slow_close = Some(self.slow_close.map_or(delay, |d| d.max(delay)));
        }
        for side in sides {
            let flow = match side {
                Side::Upstream => &mut self.upstream,
                Side::Downstream => &mut self.downstream,
            };
            match fault.toxic {
                Toxic::Latency { latency, jitter } => {
                    let (l, j) = flow.latency.unwrap_or_default();
                    flow.latency = Some((l + latency, j + jitter));
                }
                Toxic::Bandwidth { bytes_per_second } => flow.bandwidth = Some(flow.bandwidth.map_or(bytes_per_second, |b| b.min(bytes_per_second))),
                Toxic::LimitData { bytes } => flow.limit = Some(flow.limit.map_or(bytes, |b| b.min(bytes))),
                _ => {}
            }
        }
    }
}

/// One connection's picks: which faults of its link act on it.
pub(super) struct Picks {
    faults: watch::Receiver<Faults>,
    picked: BTreeMap<u64, bool>,
}

impl Picks {
    pub fn new(faults: watch::Receiver<Faults>) -> Picks {
        Picks { faults, picked: BTreeMap::new() }
    }

    /// The effects of the faults set now; a fault not seen before picks
    /// the connection (counting a hit) or passes it over, once.
    pub fn effects(&mut self) -> Effects {
        let faults = self.faults.borrow_and_update().clone();
        self.picked.retain(|id, _| faults.iter().any(|f| f.id == *id));
        let mut effects = Effects::default();
        for fault in &faults {
            let picked = *self.picked.entry(fault.id).or_insert_with(|| fault.pick());
            if picked {
                effects.add(&fault.fault);
            }
        }
        effects
    }

    /// Waits for the faults on the link to change (forever if they cannot).
    pub async fn changed(&mut self) {
        if self.faults.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::network::{Links, Peer};

    fn fault(toxic: Toxic, direction: Direction) -> NetworkFault {
        NetworkFault { links: Links::Ends { from: Some(Peer::Gateway), to: None }, toxic, direction, probability: 1.0, expires_after: None }
    }

    #[test]
    fn faults_combine_per_direction_and_the_harshest_cut_wins() {
        let mut effects = Effects::default();
        effects.add(&fault(Toxic::Latency { latency: Duration::from_millis(100), jitter: Duration::ZERO }, Direction::Downstream));
        effects.add(&fault(Toxic::Bandwidth { bytes_per_second: 1000 }, Direction::Both));
        effects.add(&fault(Toxic::Bandwidth { bytes_per_second: 500 }, Direction::Upstream));
        assert_eq!(effects.downstream.latency, Some((Duration::from_millis(100), Duration::ZERO)));
        assert_eq!(effects.upstream.latency, None);
        assert_eq!((effects.upstream.bandwidth, effects.downstream.bandwidth), (Some(500), Some(1000)));
        effects.add(&fault(Toxic::Blackhole, Direction::Both));
        assert_eq!(effects.cut, Some(Cut::Blackhole));
        effects.add(&fault(Toxic::Partition, Direction::Both));
        effects.add(&fault(Toxic::Reset, Direction::Both));
        assert_eq!(effects.cut, Some(Cut::Partition));
    }

    #[test]
    fn a_probability_is_an_exact_share_that_starts_with_the_first_connection() {
        let picks = |p: f64, n: usize| {
            let set = SetFault::new(1, NetworkFault { probability: p, ..fault(Toxic::Reset, Direction::Both) }, vec![]);
            let picked: Vec<bool> = (0..n).map(|_| set.pick()).collect();
            assert_eq!(set.hits.load(Ordering::Relaxed) as usize, picked.iter().filter(|p| **p).count());
            picked
        };
        let share = picks(0.3, 10);
        assert!(share[0], "the first connection is picked");
        assert_eq!(share.iter().filter(|p| **p).count(), 3, "3 of 10: {share:?}");
        assert_eq!(picks(0.3, 100).iter().filter(|p| **p).count(), 30);
        assert_eq!(picks(0.5, 4), [true, false, true, false]);
        assert!(picks(0.0, 50).iter().all(|p| !p), "0 picks none");
        assert!(picks(1.0, 50).iter().all(|p| *p), "1 picks all");
    }
}
