//! A worker report: everything one worker measured, in a versioned JSON
//! document — counters, HDR histograms (hdrhistogram's V2 serialization,
//! base64) for the run and each route, and the per-second timeline (counts
//! and each second's latencies as sparse pairs). The coordinator turns each
//! report back into a [`Recorder`] and merges them as the engine merges its
//! threads, so the merged histogram is the bit-exact sum of the workers'.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use super::super::engine::RecordedRun;
use super::super::plan::{Counting, Model};
use super::super::recorder::{Counters, Recorder, Second, TimelineCounts, TransportError};
use super::super::summary::StopReason;
use super::PROTOCOL_VERSION;

/// What the document says it is.
pub const REPORT_FORMAT: &str = "stormproof-siege-worker-report";

/// One worker's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// [`PROTOCOL_VERSION`] of the worker.
    pub version: u32,
    /// The worker's index.
    pub worker: usize,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall time of the worker's run, µs.
    pub elapsed_us: u64,
    /// Why the worker's run ended.
    pub stopped_by: StopReason,
    /// Counting rules.
    pub counting: Counting,
    /// Pacing of this share.
    pub model: Model,
    /// Users of this share.
    pub users: u32,
    /// Threads the worker ran on.
    pub threads: usize,
    /// Route labels, in plan order.
    pub routes: Vec<String>,
    /// The whole run.
    pub total: WireFigures,
    /// Per route, in `routes` order.
    pub per_route: Vec<WireFigures>,
    /// Per second since the start.
    pub timeline: Vec<WireSecond>,
}

/// Counters and the histogram of a set of outcomes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireFigures {
    requests: u64,
    responses: u64,
    transactions: u64,
    successful: u64,
    failed: u64,
    bytes: u64,
    time_us: u64,
    shortest_us: u64,
    longest_us: u64,
    status: BTreeMap<u16, u64>,
    /// Transport failures in [`TransportError::ALL`] order.
    transport: Vec<u64>,
    unfinished: u64,
    unfinished_longest_us: u64,
    /// Response times, µs: V2-serialized HdrHistogram, base64.
    histogram: String,
}

/// One second of a worker's timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireSecond {
    counts: TimelineCounts,
    routes: Vec<TimelineCounts>,
    /// (µs, count) pairs.
    latency: Vec<(u64, u64)>,
}

/// A report that does not fit the protocol.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadReport(pub String);

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(h, &mut bytes).expect("a histogram serializes into memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram of `text`, auto-resizing so it can take any other's values.
pub fn decode(text: &str) -> Result<Histogram<u64>, BadReport> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| BadReport(format!("histogram is not base64: {e}")))?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| BadReport(format!("histogram is not V2-serialized: {e:?}")))?;
    h.auto(true);
    Ok(h)
}

impl WireFigures {
    fn of(c: &Counters, h: &Histogram<u64>) -> WireFigures {
        WireFigures {
            requests: c.requests,
            responses: c.responses,
            transactions: c.transactions,
            successful: c.successful,
            failed: c.failed,
            bytes: c.bytes,
            time_us: c.time_us,
            shortest_us: c.shortest_us,
            longest_us: c.longest_us,
            status: c.status.iter().enumerate().filter(|(_, n)| **n > 0).map(|(s, n)| (s as u16, *n)).collect(),
            transport: c.transport.to_vec(),
            unfinished: c.unfinished,
            unfinished_longest_us: c.unfinished_longest_us,
            histogram: encode(h),
        }
    }

    fn to_parts(&self) -> Result<(Counters, Histogram<u64>), BadReport> {
        let mut c = Counters {
            requests: self.requests,
            responses: self.responses,
            transactions: self.transactions,
            successful: self.successful,
            failed: self.failed,
            bytes: self.bytes,
            time_us: self.time_us,
            shortest_us: self.shortest_us,
            longest_us: self.longest_us,
            unfinished: self.unfinished,
            unfinished_longest_us: self.unfinished_longest_us,
            ..Counters::default()
        };
        for (&s, &n) in &self.status {
            let slot = c.status.get_mut(s as usize).ok_or_else(|| BadReport(format!("status {s} out of range")))?;
            *slot = n;
        }
        if self.transport.len() != TransportError::ALL.len() {
            return Err(BadReport(format!("expected {} transport counters, found {}", TransportError::ALL.len(), self.transport.len())));
        }
        c.transport.copy_from_slice(&self.transport);
        Ok((c, decode(&self.histogram)?))
    }

    /// Responses counted.
    pub fn responses(&self) -> u64 {
        self.responses
    }
    /// Transactions counted.
    pub fn transactions(&self) -> u64 {
        self.transactions
    }
    /// Requests that ended.
    pub fn requests(&self) -> u64 {
        self.requests
    }
    /// The histogram.
    pub fn histogram(&self) -> Result<Histogram<u64>, BadReport> {
        decode(&self.histogram)
    }
}

impl WorkerReport {
    /// Worker `worker`'s report of its run.
    pub(crate) fn of(run: &RecordedRun, worker: usize) -> WorkerReport {
        let rec = &run.rec;
        WorkerReport {
            format: REPORT_FORMAT.to_string(),
            version: PROTOCOL_VERSION,
            worker,
            started_unix_ms: run.started_unix_ms,
            elapsed_us: run.elapsed.as_micros() as u64,
            stopped_by: run.stopped_by,
            counting: rec.counting(),
            model: run.model,
            users: run.users,
            threads: run.threads,
            routes: run.routes.clone(),
            total: WireFigures::of(&rec.total, &rec.hist),
            per_route: rec.routes.iter().map(|(c, h)| WireFigures::of(c, h)).collect(),
            timeline: rec
                .timeline
                .iter()
                .map(|s| WireSecond { counts: s.counts, routes: s.routes.clone(), latency: s.latency.clone() })
                .collect(),
        }
    }

    /// Checks the document is one this coordinator understands.
    pub fn check(&self, worker: usize, routes: &[String]) -> Result<(), BadReport> {
        if self.format != REPORT_FORMAT {
            return Err(BadReport(format!("expected format `{REPORT_FORMAT}`, found `{}`", self.format)));
        }
        if self.version != PROTOCOL_VERSION {
            return Err(BadReport(format!("expected protocol version {PROTOCOL_VERSION}, found {}", self.version)));
        }
        if self.worker != worker {
            return Err(BadReport(format!("sent as worker {worker} but says it is worker {}", self.worker)));
        }
        if self.routes != routes || self.per_route.len() != routes.len() {
            return Err(BadReport(format!("expected routes {routes:?}, found {:?}", self.routes)));
        }
        Ok(())
    }

    /// The report as a recorder, to merge with the others.
    pub(crate) fn to_recorder(&self) -> Result<Recorder, BadReport> {
        let mut rec = Recorder::new(self.counting, self.routes.len(), true);
        let (total, hist) = self.total.to_parts()?;
        rec.total = total;
        rec.hist = hist;
        for (slot, r) in rec.routes.iter_mut().zip(&self.per_route) {
            *slot = r.to_parts()?;
        }
        rec.timeline = self
            .timeline
            .iter()
            .map(|s| Second { counts: s.counts, latency: s.latency.clone(), routes: s.routes.clone() })
            .collect();
        Ok(rec)
    }

    /// Wall time of the worker's run.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.elapsed_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::RequestOutcome as Outcome;

    #[test]
    fn histograms_survive_v2_serialization_bit_exactly() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [1u64, 7, 250, 1_000, 1_001, 99_999, 3_600_000_000] {
            h.record_n(v, v % 5 + 1).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(back.value_at_quantile(q), h.value_at_quantile(q));
        }
    }

    #[test]
    fn a_recorder_survives_the_report() {
        let mut rec = Recorder::new(Counting::Stormproof, 2, true);
        let ms = Duration::from_millis;
        rec.record(0, Outcome::Response { status: 200, bytes: 3 }, ms(4), ms(10));
        rec.record(1, Outcome::Response { status: 503, bytes: 1 }, ms(9), ms(1500));
        rec.record(1, Outcome::Transport(TransportError::Reset), ms(2), ms(1600));
        rec.finish(ms(2000));
        let run = RecordedRun::for_test(rec.clone(), vec!["GET /a".into(), "GET /b".into()]);
        let report = WorkerReport::of(&run, 2);
        let json = serde_json::to_string(&report).unwrap();
        let back: WorkerReport = serde_json::from_str(&json).unwrap();
        back.check(2, &run.routes).unwrap();
        assert!(back.check(1, &run.routes).is_err());
        let again = back.to_recorder().unwrap();
        assert_eq!(again.total, rec.total);
        assert_eq!(again.hist, rec.hist);
        assert_eq!(again.routes[1].0, rec.routes[1].0);
        assert_eq!(again.timeline, rec.timeline);
    }
}
