//! The merge: the workers' reports folded into one [`LoadSummary`], exactly
//! as the engine folds its threads — counters added, HDR histograms added
//! (bit-exact), timelines added second by second. Thresholds then judge the
//! merged summary, so a p99 is the whole run's, not an average of the
//! workers' p99s.

use std::time::Duration;

use super::super::plan::Model;
use super::super::recorder::Recorder;
use super::super::summary::{LoadSummary, StopReason};
use super::report::{BadReport, WorkerReport};

/// One summary of every worker's report. `model` and `users` are the whole
/// plan's (before the split).
pub fn merge(reports: &[WorkerReport], routes: Vec<String>, model: Model, users: u32) -> Result<LoadSummary, BadReport> {
    let first = reports.first().ok_or_else(|| BadReport("no report to merge".into()))?;
    let mut merged = Recorder::new(first.counting, routes.len(), true);
    let mut start_us = u64::MAX;
    let mut end_us = 0u64;
    let mut stopped_by = StopReason::Completed;
    let mut threads = 0;
    for r in reports {
        if r.counting != first.counting {
            return Err(BadReport(format!("worker {} counted as {:?}, worker {} as {:?}", r.worker, r.counting, first.worker, first.counting)));
        }
        merged.merge(r.to_recorder().map_err(|e| BadReport(format!("worker {}: {e}", r.worker)))?);
        let start = r.started_unix_ms.saturating_mul(1000);
        start_us = start_us.min(start);
        end_us = end_us.max(start + r.elapsed_us);
        if r.stopped_by != StopReason::Completed {
            stopped_by = r.stopped_by;
        }
        threads += r.threads;
    }
    let elapsed = Duration::from_micros(end_us.saturating_sub(start_us));
    merged.finish(elapsed);
    Ok(LoadSummary::build(merged, routes, model, users, threads, start_us / 1000, elapsed, stopped_by, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::distributed::report::WorkerReport;
    use crate::load::engine::RecordedRun;
    use crate::load::{Counting, RequestOutcome as Outcome};
    use hdrhistogram::Histogram;

    #[test]
    fn merged_percentiles_are_those_of_all_samples() {
        let routes = vec!["GET /".to_string()];
        let mut all = Histogram::<u64>::new(3).unwrap();
        let mut reports = Vec::new();
        for w in 0..3u64 {
            let mut rec = Recorder::new(Counting::Stormproof, 1, true);
            for i in 0..500u64 {
                // Worker 0 is the slow one: only the merged p99 shows it.
                let us = if w == 0 && i % 20 == 0 { 90_000 + i } else { 800 + 37 * i + w };
                rec.record(0, Outcome::Response { status: 200, bytes: 2 }, Duration::from_micros(us), Duration::from_millis(i * 4));
                all.record(us).unwrap();
            }
            rec.finish(Duration::from_secs(2));
            reports.push(WorkerReport::of(&RecordedRun::for_test(rec, routes.clone()), w as usize));
        }
        let s = merge(&reports, routes, Model::Closed, 3).unwrap();
        assert_eq!(s.figures.transactions, 1500);
        assert_eq!((s.figures.shortest_us, s.figures.longest_us), (801, 90_480));
        let of_all = |q: f64| all.value_at_quantile(q).min(s.figures.longest_us).max(s.figures.shortest_us);
        assert_eq!((s.quantile_us(0.5), s.quantile_us(0.99)), (of_all(0.5), of_all(0.99)));
        assert_eq!((s.latency.p50_us, s.latency.p99_us), (of_all(0.5), of_all(0.99)));
        assert!(s.latency.p99_us >= 90_000, "the slow worker's tail is the run's p99");
        assert_eq!(s.timeline.iter().map(|p| p.counts.requests).sum::<u64>(), 1500);
    }
}
