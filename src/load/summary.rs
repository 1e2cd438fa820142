//! The load summary: everything a finished run measured — siege's figures,
//! percentiles, status codes, failures by reason, per-route figures and the
//! per-second timeline. Built once by the engine from the merged
//! [`Recorder`]; read by the terminal printer, the report writers
//! (`crate::report`) and threshold gates.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::plan::{Counting, Model};
use super::recorder::{Counters, Recorder, TransportError, status_fails};
pub use super::recorder::TimelineCounts;

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Every user sent its repetitions.
    Completed,
    /// The `-t` duration was reached.
    Duration,
    /// Cancelled from outside (Ctrl-C, the chaos engine).
    Cancelled,
}

/// Counts of a set of requests (a whole run or one route).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Requests that ended (with a response or a transport failure).
    pub requests: u64,
    /// Requests that got a complete HTTP response (any status).
    pub responses: u64,
    /// Transactions (see [`Counting`]).
    pub transactions: u64,
    /// Successful transactions (status < 400).
    pub successful: u64,
    /// Failed transactions.
    pub failed: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Sum of response times of all responses, µs.
    pub response_time_sum_us: u64,
    /// Shortest response, µs (0 when none).
    pub shortest_us: u64,
    /// Longest response, µs.
    pub longest_us: u64,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failures per reason (`connection refused`, `timeout`, `http 503`…).
    pub failures: BTreeMap<String, u64>,
    /// Requests still waiting for an answer when the run stopped (`-t`
    /// or cancel); not counted as transactions or failures.
    pub unfinished: u64,
    /// Longest wait among them, µs.
    pub unfinished_longest_us: u64,
}

impl Figures {
    fn from_counters(c: &Counters, counting: Counting) -> Figures {
        let mut status_codes = BTreeMap::new();
        let mut failures = BTreeMap::new();
        for (code, &n) in c.status.iter().enumerate() {
            if n > 0 {
                status_codes.insert(code as u16, n);
                if status_fails(counting, code as u16) {
                    failures.insert(format!("http {code}"), n);
                }
            }
        }
        for e in TransportError::ALL {
            let n = c.transport[e as usize];
            if n > 0 {
                failures.insert(e.label().to_string(), n);
            }
        }
        Figures {
            requests: c.requests,
            responses: c.responses,
            transactions: c.transactions,
            successful: c.successful,
            failed: c.failed,
            bytes: c.bytes,
            response_time_sum_us: c.time_us,
            shortest_us: if c.responses == 0 { 0 } else { c.shortest_us },
            longest_us: c.longest_us,
            status_codes,
            failures,
            unfinished: c.unfinished,
            unfinished_longest_us: c.unfinished_longest_us,
        }
    }

    /// transactions / (transactions + failed) × 100, siege's formula (0 when nothing ended).
    pub fn availability(&self) -> f64 {
        let all = self.transactions + self.failed;
        if all == 0 { 0.0 } else { self.transactions as f64 * 100.0 / all as f64 }
    }

    /// failed / (transactions + failed) × 100 (0 when nothing ended).
    pub fn error_rate(&self) -> f64 {
        let all = self.transactions + self.failed;
        if all == 0 { 0.0 } else { self.failed as f64 * 100.0 / all as f64 }
    }
}

/// Response-time distribution of the responses, µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Mean response time over all responses.
    pub mean_us: f64,
    /// Shortest.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Longest.
    pub max_us: u64,
}

impl LatencyStats {
    fn from_hist(h: &Histogram<u64>, c: &Counters) -> LatencyStats {
        if h.is_empty() {
            return LatencyStats::default();
        }
        let q = |q: f64| h.value_at_quantile(q).min(c.longest_us).max(c.shortest_us);
        LatencyStats {
            mean_us: c.time_us as f64 / c.responses.max(1) as f64,
            min_us: c.shortest_us,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p95_us: q(0.95),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: c.longest_us,
        }
    }
}

/// One route's figures (routes are the distinct `METHOD path` labels).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSummary {
    /// `METHOD /path` (with the host when targets span several hosts).
    pub route: String,
    /// Counts.
    pub figures: Figures,
    /// Latency distribution.
    pub latency: LatencyStats,
    /// Counts per second of the run, aligned with [`LoadSummary::timeline`].
    pub timeline: Vec<TimelineCounts>,
}

impl RouteSummary {
    /// Counts of the seconds `from..to` (end exclusive) of the run, e.g.
    /// "POST /orders during the fault".
    pub fn between(&self, from: usize, to: usize) -> TimelineCounts {
        let mut sum = TimelineCounts::default();
        for c in self.timeline.iter().take(to).skip(from) {
            sum.requests += c.requests;
            sum.transactions += c.transactions;
            sum.successful += c.successful;
            sum.failed += c.failed;
            sum.bytes += c.bytes;
        }
        sum
    }
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondPoint {
    /// Seconds since the start (this point covers `second..second+1`).
    pub second: u64,
    /// Counts of requests that ended in this second.
    #[serde(flatten)]
    pub counts: TimelineCounts,
    /// Availability of this second, % (0 when nothing ended).
    pub availability: f64,
    /// Median response time of this second, µs (0 when no response).
    pub p50_us: u64,
    /// 99th percentile of this second, µs.
    pub p99_us: u64,
}

/// The result of a load run.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Counting rules the figures follow.
    pub counting: Counting,
    /// Pacing model.
    pub model: Model,
    /// Virtual users.
    pub users: u32,
    /// Worker threads used.
    pub workers: usize,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Why it ended.
    pub stopped_by: StopReason,
    /// Totals.
    pub figures: Figures,
    /// Latency over all responses.
    pub latency: LatencyStats,
    /// Per route, in URL-list order.
    pub routes: Vec<RouteSummary>,
    /// Per second.
    pub timeline: Vec<SecondPoint>,
    histogram: Histogram<u64>,
}

impl LoadSummary {
    // One call site (the engine); a builder would add nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        rec: Recorder,
        routes: Vec<String>,
        model: Model,
        users: u32,
        workers: usize,
        started_unix_ms: u64,
        elapsed: Duration,
        stopped_by: StopReason,
        second_quantiles: Option<Vec<(u64, u64)>>,
    ) -> LoadSummary {
        let counting = rec.counting();
        let timeline = rec
            .timeline
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (p50, p99) = match &second_quantiles {
                    Some(q) => q.get(i).copied().unwrap_or((0, 0)),
                    None => sparse_quantiles(&s.latency),
                };
                SecondPoint {
                    second: i as u64,
                    counts: s.counts,
                    availability: s.counts.availability(),
                    p50_us: p50,
                    p99_us: p99,
                }
            })
            .collect();
        let route_summaries = routes
            .into_iter()
            .enumerate()
            .map(|(i, route)| {
                let (c, h) = &rec.routes[i];
                RouteSummary {
                    route,
                    figures: Figures::from_counters(c, counting),
                    latency: LatencyStats::from_hist(h, c),
                    timeline: rec.timeline.iter().map(|s| s.routes.get(i).copied().unwrap_or_default()).collect(),
                }
            })
            .collect();
        LoadSummary {
            counting,
            model,
            users,
            workers,
            started_unix_ms,
            elapsed,
            stopped_by,
            figures: Figures::from_counters(&rec.total, counting),
            latency: LatencyStats::from_hist(&rec.hist, &rec.total),
            routes: route_summaries,
            timeline,
            histogram: rec.hist,
        }
    }

    /// Response time at quantile `q` (0..=1), µs.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram
                .value_at_quantile(q)
                .min(self.figures.longest_us)
                .max(self.figures.shortest_us)
        }
    }

    /// The figures of one route by label (`POST /orders`).
    pub fn route(&self, label: &str) -> Option<&RouteSummary> {
        self.routes.iter().find(|r| r.route == label)
    }

    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    // siege's figures, named and computed as siege does.

    /// siege "Transactions" (hits).
    pub fn transactions(&self) -> u64 {
        self.figures.transactions
    }
    /// siege "Availability", %.
    pub fn availability(&self) -> f64 {
        self.figures.availability()
    }
    /// siege "Elapsed time", s.
    pub fn elapsed_time(&self) -> f64 {
        self.secs()
    }
    /// siege "Data transferred", MB (2^20 bytes).
    pub fn data_transferred(&self) -> f64 {
        self.figures.bytes as f64 / 1_048_576.0
    }
    /// siege "Response time", s: total response time / transactions under
    /// `--siege-compat` (so failed responses count in the numerator, as
    /// siege does), mean over all responses otherwise.
    pub fn response_time(&self) -> f64 {
        let n = match self.counting {
            Counting::Siege => self.figures.transactions,
            Counting::Stormproof => self.figures.responses,
        };
        if n == 0 { 0.0 } else { self.figures.response_time_sum_us as f64 / n as f64 / 1e6 }
    }
    /// siege "Transaction rate", transactions/s.
    pub fn transaction_rate(&self) -> f64 {
        if self.secs() > 0.0 { self.figures.transactions as f64 / self.secs() } else { 0.0 }
    }
    /// Requests that ended (any outcome) per second.
    pub fn request_rate(&self) -> f64 {
        if self.secs() > 0.0 { self.figures.requests as f64 / self.secs() } else { 0.0 }
    }
    /// siege "Throughput", MB/s.
    pub fn throughput(&self) -> f64 {
        if self.secs() > 0.0 { self.data_transferred() / self.secs() } else { 0.0 }
    }
    /// siege "Concurrency": total response time / elapsed time.
    pub fn concurrency(&self) -> f64 {
        if self.secs() > 0.0 { self.figures.response_time_sum_us as f64 / 1e6 / self.secs() } else { 0.0 }
    }
    /// siege "Successful transactions".
    pub fn successful_transactions(&self) -> u64 {
        self.figures.successful
    }
    /// siege "Failed transactions".
    pub fn failed_transactions(&self) -> u64 {
        self.figures.failed
    }
    /// siege "Longest transaction", s.
    pub fn longest_transaction(&self) -> f64 {
        self.figures.longest_us as f64 / 1e6
    }
    /// siege "Shortest transaction", s.
    pub fn shortest_transaction(&self) -> f64 {
        self.figures.shortest_us as f64 / 1e6
    }
}

fn sparse_quantiles(pairs: &[(u64, u64)]) -> (u64, u64) {
    if pairs.is_empty() {
        return (0, 0);
    }
    let mut sorted = pairs.to_vec();
    sorted.sort_unstable();
    let total: u64 = sorted.iter().map(|p| p.1).sum();
    let at = |q: f64| {
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(v, n) in &sorted {
            seen += n;
            if seen >= rank {
                return v;
            }
        }
        sorted.last().map(|p| p.0).unwrap_or(0)
    };
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::recorder::Outcome;

    fn summary(counting: Counting, statuses: &[u16]) -> LoadSummary {
        let mut r = Recorder::new(counting, 1, true);
        for (i, s) in statuses.iter().enumerate() {
            r.record(
                0,
                Outcome::Response { status: *s, bytes: 100 },
                Duration::from_millis(10),
                Duration::from_millis(100 * i as u64),
            );
        }
        r.finish(Duration::from_secs(1));
        LoadSummary::build(
            r,
            vec!["GET /".into()],
            Model::Closed,
            1,
            1,
            0,
            Duration::from_secs(1),
            StopReason::Completed,
            None,
        )
    }

    const SEQ: [u16; 8] = [200, 200, 200, 200, 404, 404, 500, 500];

    #[test]
    fn siege_counting_of_the_measured_sequence() {
        let s = summary(Counting::Siege, &SEQ);
        assert_eq!(s.transactions(), 6);
        assert_eq!(s.successful_transactions(), 4);
        assert_eq!(s.failed_transactions(), 2);
        assert_eq!(format!("{:.2}", s.availability()), "75.00");
        // 8 responses of 10 ms over 6 transactions, as siege divides.
        assert!((s.response_time() - 0.080 / 6.0).abs() < 1e-9);
        assert_eq!(s.figures.failures.get("http 500"), Some(&2));
        assert_eq!(s.figures.failures.get("http 404"), None);
    }

    #[test]
    fn stormproof_counting_of_the_same_sequence() {
        let s = summary(Counting::Stormproof, &SEQ);
        assert_eq!((s.transactions(), s.successful_transactions(), s.failed_transactions()), (4, 4, 4));
        assert_eq!(s.availability(), 50.0);
        assert!((s.response_time() - 0.010).abs() < 1e-9);
        assert_eq!(s.figures.failures.get("http 404"), Some(&2));
        assert_eq!(s.timeline.len(), 1);
        assert!(s.timeline[0].p50_us.abs_diff(10_000) <= 100, "{}", s.timeline[0].p50_us);
        assert_eq!(s.route("GET /").unwrap().between(0, 1).failed, 4);
    }

    #[test]
    fn sparse_quantiles_pick_ranks() {
        assert_eq!(sparse_quantiles(&[(10, 50), (20, 49), (30, 1)]), (10, 20));
        assert_eq!(sparse_quantiles(&[]), (0, 0));
    }
}
