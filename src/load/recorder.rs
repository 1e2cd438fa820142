//! The recorder: one worker's running aggregate of outcomes — counters, an
//! HdrHistogram of response times (µs), per-route figures and a per-second
//! timeline. Each worker owns one (no locks); the engine merges them with
//! [`Recorder::merge`] when the run ends and turns the result into a
//! [`crate::load::LoadSummary`].

use std::time::Duration;

use hdrhistogram::Histogram;

use super::plan::Counting;

/// Why a request got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportError {
    /// The TCP connect was refused (nothing listening).
    ConnectRefused,
    /// Connect failed for another reason (unreachable, no route…).
    ConnectFailed,
    /// The host name did not resolve.
    Dns,
    /// No complete response within the request timeout.
    Timeout,
    /// The peer reset the connection (RST) or the pipe broke.
    Reset,
    /// The peer closed the connection before a complete response.
    Closed,
    /// The response was not valid HTTP/1.1.
    Protocol,
    /// Any other I/O error.
    Other,
}

impl TransportError {
    /// Every variant, in counter order.
    pub const ALL: [TransportError; 8] = [
        TransportError::ConnectRefused,
        TransportError::ConnectFailed,
        TransportError::Dns,
        TransportError::Timeout,
        TransportError::Reset,
        TransportError::Closed,
        TransportError::Protocol,
        TransportError::Other,
    ];

    /// The failure reason as shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            TransportError::ConnectRefused => "connection refused",
            TransportError::ConnectFailed => "connect failed",
            TransportError::Dns => "dns resolution failed",
            TransportError::Timeout => "timeout",
            TransportError::Reset => "connection reset",
            TransportError::Closed => "connection closed before response",
            TransportError::Protocol => "invalid http response",
            TransportError::Other => "i/o error",
        }
    }
}

/// What one request ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status and body size.
    Response {
        /// HTTP status code.
        status: u16,
        /// Body bytes received.
        bytes: u64,
    },
    /// No (complete) response.
    Transport(TransportError),
}

/// How one outcome counts under a [`Counting`] mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class {
    pub transaction: bool,
    pub success: bool,
    pub failure: bool,
}

pub(crate) fn classify(counting: Counting, outcome: Outcome) -> Class {
    match (counting, outcome) {
        (_, Outcome::Transport(_)) => Class { transaction: false, success: false, failure: true },
        (Counting::Stormproof, Outcome::Response { status, .. }) => {
            let ok = status < 400;
            Class { transaction: ok, success: ok, failure: !ok }
        }
        (Counting::Siege, Outcome::Response { status, .. }) => {
            let failed = status == 408 || status >= 500;
            Class { transaction: !failed, success: status < 400, failure: failed }
        }
    }
}

/// Whether a status is a failure under a counting mode.
pub(crate) fn status_fails(counting: Counting, status: u16) -> bool {
    classify(counting, Outcome::Response { status, bytes: 0 }).failure
}

const STATUS_SLOTS: usize = 600;

/// Plain counters for a set of outcomes (a run, a route).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counters {
    pub requests: u64,
    pub responses: u64,
    pub transactions: u64,
    pub successful: u64,
    pub failed: u64,
    pub bytes: u64,
    pub time_us: u64,
    pub shortest_us: u64,
    pub longest_us: u64,
    pub status: Box<[u64; STATUS_SLOTS]>,
    pub transport: [u64; TransportError::ALL.len()],
    pub unfinished: u64,
    pub unfinished_longest_us: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: 0,
            responses: 0,
            transactions: 0,
            successful: 0,
            failed: 0,
            bytes: 0,
            time_us: 0,
            shortest_us: u64::MAX,
            longest_us: 0,
            status: Box::new([0; STATUS_SLOTS]),
            transport: [0; TransportError::ALL.len()],
            unfinished: 0,
            unfinished_longest_us: 0,
        }
    }
}

impl Counters {
    fn record(&mut self, class: Class, outcome: Outcome, us: u64) {
        self.requests += 1;
        self.transactions += class.transaction as u64;
        self.successful += class.success as u64;
        self.failed += class.failure as u64;
        match outcome {
            Outcome::Response { status, bytes } => {
                self.responses += 1;
                self.bytes += bytes;
                self.time_us += us;
                self.shortest_us = self.shortest_us.min(us);
                self.longest_us = self.longest_us.max(us);
                self.status[(status as usize).min(STATUS_SLOTS - 1)] += 1;
            }
            Outcome::Transport(e) => self.transport[e as usize] += 1,
        }
    }

    fn merge(&mut self, o: &Counters) {
        self.unfinished += o.unfinished;
        self.unfinished_longest_us = self.unfinished_longest_us.max(o.unfinished_longest_us);
        self.requests += o.requests;
        self.responses += o.responses;
        self.transactions += o.transactions;
        self.successful += o.successful;
        self.failed += o.failed;
        self.bytes += o.bytes;
        self.time_us += o.time_us;
        self.shortest_us = self.shortest_us.min(o.shortest_us);
        self.longest_us = self.longest_us.max(o.longest_us);
        for (a, b) in self.status.iter_mut().zip(o.status.iter()) {
            *a += b;
        }
        for (a, b) in self.transport.iter_mut().zip(o.transport.iter()) {
            *a += b;
        }
    }
}

/// Counts of one second (or one route in one second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimelineCounts {
    /// Requests that ended in this second (responses + transport failures).
    pub requests: u64,
    /// Transactions (see the counting mode).
    pub transactions: u64,
    /// Successful transactions (status < 400).
    pub successful: u64,
    /// Failures.
    pub failed: u64,
    /// Body bytes received.
    pub bytes: u64,
}

impl TimelineCounts {
    fn record(&mut self, class: Class, outcome: Outcome) {
        self.requests += 1;
        self.transactions += class.transaction as u64;
        self.successful += class.success as u64;
        self.failed += class.failure as u64;
        if let Outcome::Response { bytes, .. } = outcome {
            self.bytes += bytes;
        }
    }

    pub(crate) fn merge(&mut self, o: &TimelineCounts) {
        self.requests += o.requests;
        self.transactions += o.transactions;
        self.successful += o.successful;
        self.failed += o.failed;
        self.bytes += o.bytes;
    }

    /// transactions / (transactions + failed) × 100 (0 when nothing ended).
    pub fn availability(&self) -> f64 {
        let all = self.transactions + self.failed;
        if all == 0 { 0.0 } else { self.transactions as f64 * 100.0 / all as f64 }
    }
}

/// One second of the timeline: counts plus a compact (sparse) latency histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Second {
    pub counts: TimelineCounts,
    /// (value µs, count) pairs of the second's histogram, so memory stays
    /// small however many requests the second saw.
    pub latency: Vec<(u64, u64)>,
    pub routes: Vec<TimelineCounts>,
}

/// A worker's aggregate. Not shared: each worker owns one and they are
/// merged at the end.
#[derive(Debug, Clone)]
pub struct Recorder {
    counting: Counting,
    pub(crate) total: Counters,
    pub(crate) hist: Histogram<u64>,
    pub(crate) routes: Vec<(Counters, Histogram<u64>)>,
    pub(crate) timeline: Vec<Second>,
    keep_timeline: bool,
    current: usize,
    current_hist: Histogram<u64>,
    sink: Option<SecondSink>,
    worker: usize,
}

/// Where a worker sends each closed second's latencies, so the engine can
/// merge them across workers as the run goes and keep only p50/p99 per
/// second (memory stays flat however long the run).
pub(crate) type SecondSink = tokio::sync::mpsc::UnboundedSender<ClosedSecond>;

/// A worker closed second `second`: every later outcome of that worker
/// falls in a later second.
#[derive(Debug)]
pub(crate) struct ClosedSecond {
    pub worker: usize,
    pub second: usize,
    /// Every second before this one is closed for this worker.
    pub closed_before: usize,
    pub latency: Vec<(u64, u64)>,
    pub counts: TimelineCounts,
    pub routes: Vec<TimelineCounts>,
}

/// A histogram as (value, count) pairs, each value its bucket's median
/// equivalent: what a second's latencies shrink to.
pub(crate) fn sparse(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded().map(|v| (h.median_equivalent(v.value_iterated_to()), v.count_since_last_iteration())).collect()
}

fn new_hist(sigfig: u8) -> Histogram<u64> {
    Histogram::new(sigfig).expect("valid histogram precision")
}

impl Recorder {
    /// An empty recorder for `routes` routes.
    pub fn new(counting: Counting, routes: usize, keep_timeline: bool) -> Recorder {
        Recorder {
            counting,
            total: Counters::default(),
            hist: new_hist(3),
            routes: (0..routes).map(|_| (Counters::default(), new_hist(3))).collect(),
            timeline: Vec::new(),
            keep_timeline,
            current: 0,
            current_hist: new_hist(2),
            sink: None,
            worker: 0,
        }
    }

    /// Records one outcome of route `route` that took `latency` and ended
    /// `since_start` after the run started.
    pub fn record(&mut self, route: usize, outcome: Outcome, latency: Duration, since_start: Duration) {
        let class = classify(self.counting, outcome);
        let us = (latency.as_micros() as u64).max(1);
        self.total.record(class, outcome, us);
        let (counters, hist) = &mut self.routes[route];
        counters.record(class, outcome, us);
        let timed = matches!(outcome, Outcome::Response { .. });
        if timed {
            self.hist.record(us).ok();
            hist.record(us).ok();
        }
        if !self.keep_timeline {
            return;
        }
        let sec = since_start.as_secs() as usize;
        self.advance_to(sec);
        let n_routes = self.routes.len();
        let slot = &mut self.timeline[sec];
        if slot.routes.is_empty() {
            slot.routes = vec![TimelineCounts::default(); n_routes];
        }
        slot.counts.record(class, outcome);
        slot.routes[route].record(class, outcome);
        if timed {
            self.current_hist.record(us).ok();
        }
    }

    /// Notes a request still in flight when the run stopped (after
    /// `waited`): neither a transaction nor a failure, but reported, so a
    /// server that stopped answering does not look like an idle run.
    pub fn record_unfinished(&mut self, route: usize, waited: Duration) {
        let us = waited.as_micros() as u64;
        for c in [&mut self.total, &mut self.routes[route].0] {
            c.unfinished += 1;
            c.unfinished_longest_us = c.unfinished_longest_us.max(us);
        }
    }

    /// Moves the open second forward to `sec`, compacting the one it leaves.
    fn advance_to(&mut self, sec: usize) {
        if self.timeline.len() <= sec {
            self.timeline.resize_with(sec + 1, Second::default);
        }
        if sec > self.current {
            self.flush_current(sec);
            self.current = sec;
        }
    }

    fn flush_current(&mut self, closed_before: usize) {
        let sparse = sparse(&self.current_hist);
        self.current_hist.reset();
        if let Some((worker, sink)) = self.sink_worker() {
            let (counts, routes) = match self.timeline.get(self.current) {
                Some(slot) => (slot.counts, slot.routes.clone()),
                None => (TimelineCounts::default(), Vec::new()),
            };
            let _ = sink.send(ClosedSecond { worker, second: self.current, closed_before, latency: sparse, counts, routes });
        } else if let Some(slot) = self.timeline.get_mut(self.current) {
            slot.latency.extend(sparse);
        }
    }

    fn sink_worker(&self) -> Option<(usize, &SecondSink)> {
        self.sink.as_ref().map(|s| (self.worker, s))
    }

    /// Streams closed seconds to `sink` as worker `worker` instead of keeping them.
    pub(crate) fn stream_seconds(&mut self, worker: usize, sink: SecondSink) {
        self.worker = worker;
        self.sink = Some(sink);
    }

    /// Called as wall time passes (even with no outcome): closes the open
    /// second once the clock is past it, so the engine can finalize it.
    pub(crate) fn tick(&mut self, since_start: Duration) {
        if self.keep_timeline {
            self.advance_to(since_start.as_secs() as usize);
        }
    }

    /// A worker's last act: close the open second and drop the sink.
    pub(crate) fn close_stream(&mut self) {
        if self.keep_timeline && self.sink.is_some() {
            self.flush_current(usize::MAX);
        }
        self.sink = None;
    }

    /// Closes the timeline at `elapsed` (seconds without any outcome get
    /// empty entries, so a server that stops answering shows as a gap).
    pub fn finish(&mut self, elapsed: Duration) {
        if !self.keep_timeline {
            return;
        }
        self.flush_current(usize::MAX);
        let secs = elapsed.as_secs_f64().ceil().max(1.0) as usize;
        if self.timeline.len() < secs {
            self.timeline.resize_with(secs, Second::default);
        }
        let n = self.routes.len();
        for s in &mut self.timeline {
            if s.routes.is_empty() {
                s.routes = vec![TimelineCounts::default(); n];
            }
        }
    }

    /// Adds another worker's aggregate into this one (both finished).
    pub fn merge(&mut self, mut other: Recorder) {
        self.flush_current(usize::MAX);
        other.flush_current(usize::MAX);
        self.total.merge(&other.total);
        self.hist.add(&other.hist).expect("auto-resizing histograms add");
        for ((c, h), (oc, oh)) in self.routes.iter_mut().zip(other.routes.iter()) {
            c.merge(oc);
            h.add(oh).expect("auto-resizing histograms add");
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize_with(other.timeline.len(), Second::default);
        }
        for (s, o) in self.timeline.iter_mut().zip(other.timeline) {
            s.counts.merge(&o.counts);
            s.latency.extend(o.latency);
            if s.routes.len() < o.routes.len() {
                s.routes.resize(o.routes.len(), TimelineCounts::default());
            }
            for (a, b) in s.routes.iter_mut().zip(o.routes.iter()) {
                a.merge(b);
            }
        }
    }

    /// Counting mode this recorder classifies with.
    pub fn counting(&self) -> Counting {
        self.counting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn resp(status: u16) -> Outcome {
        Outcome::Response { status, bytes: 10 }
    }

    #[test]
    fn classification_matches_both_modes() {
        let s = |c, st| classify(c, resp(st));
        assert_eq!(s(Counting::Siege, 404), Class { transaction: true, success: false, failure: false });
        assert_eq!(s(Counting::Siege, 500), Class { transaction: false, success: false, failure: true });
        assert_eq!(s(Counting::Siege, 408), Class { transaction: false, success: false, failure: true });
        assert_eq!(s(Counting::Stormproof, 404), Class { transaction: false, success: false, failure: true });
        assert_eq!(s(Counting::Stormproof, 302), Class { transaction: true, success: true, failure: false });
        let t = classify(Counting::Siege, Outcome::Transport(TransportError::Timeout));
        assert!(t.failure && !t.transaction);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let outcomes = [
            (0, resp(200), 5, 100),
            (1, resp(404), 7, 300),
            (0, resp(500), 9, 1200),
            (1, Outcome::Transport(TransportError::Reset), 11, 2500),
            (0, resp(200), 13, 2600),
        ];
        let mut one = Recorder::new(Counting::Siege, 2, true);
        let mut a = Recorder::new(Counting::Siege, 2, true);
        let mut b = Recorder::new(Counting::Siege, 2, true);
        for (i, (route, o, lat, at)) in outcomes.iter().enumerate() {
            one.record(*route, *o, ms(*lat), ms(*at));
            let r = if i % 2 == 0 { &mut a } else { &mut b };
            r.record(*route, *o, ms(*lat), ms(*at));
        }
        one.finish(ms(3000));
        a.finish(ms(3000));
        b.finish(ms(2000));
        a.merge(b);
        assert_eq!(a.total, one.total);
        assert_eq!(a.hist.len(), one.hist.len());
        assert_eq!(a.hist.value_at_quantile(0.5), one.hist.value_at_quantile(0.5));
        for i in 0..2 {
            assert_eq!(a.routes[i].0, one.routes[i].0);
        }
        assert_eq!(a.timeline.len(), 3);
        for (x, y) in a.timeline.iter().zip(&one.timeline) {
            assert_eq!(x.counts, y.counts);
            assert_eq!(x.routes, y.routes);
            let sum = |v: &Vec<(u64, u64)>| v.iter().map(|p| p.1).sum::<u64>();
            assert_eq!(sum(&x.latency), sum(&y.latency));
        }
        assert_eq!(a.total.requests, 5);
        assert_eq!(a.total.transactions, 3);
        assert_eq!(a.total.failed, 2);
        assert_eq!(a.total.shortest_us, 5000);
        assert_eq!(a.total.longest_us, 13000);
        assert_eq!(a.total.status[404], 1);
        assert_eq!(a.total.transport[TransportError::Reset as usize], 1);
        assert_eq!(a.timeline[1].counts.failed, 1);
        assert_eq!(a.timeline[2].routes[1].failed, 1);
        let mut c = Recorder::new(Counting::Siege, 2, true);
        c.record_unfinished(1, ms(2500));
        a.merge(c);
        assert_eq!((a.total.unfinished, a.total.unfinished_longest_us), (1, 2_500_000));
        assert_eq!(a.routes[1].0.unfinished, 1);
        assert_eq!(a.total.requests, 5);
    }

    #[test]
    fn merge_with_empty_is_identity() {
        let mut a = Recorder::new(Counting::Stormproof, 1, true);
        a.record(0, resp(200), ms(1), ms(1));
        a.finish(ms(1000));
        let before = a.total.clone();
        a.merge(Recorder::new(Counting::Stormproof, 1, true));
        assert_eq!(a.total, before);
        assert_eq!(a.timeline.len(), 1);
    }
}
