//! Terminal text: siege's summary with siege's labels and units (at µs
//! precision), then what siege lacks — percentiles, status codes, failures
//! by reason, per-route figures — and the threshold verdicts.

use std::fmt::Write;

use crate::load::{Counting, LoadSummary, ThresholdResult};

use super::util::ms;

/// siege's summary block, label for label.
pub fn siege_text(s: &LoadSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Transactions:\t\t{:>12} hits", s.transactions());
    let _ = writeln!(o, "Availability:\t\t{:>12.2} %", s.availability());
    let _ = writeln!(o, "Elapsed time:\t\t{:>12.6} secs", s.elapsed_time());
    let _ = writeln!(o, "Data transferred:\t{:>12.6} MB", s.data_transferred());
    let _ = writeln!(o, "Response time:\t\t{:>12.6} secs", s.response_time());
    let _ = writeln!(o, "Transaction rate:\t{:>12.2} trans/sec", s.transaction_rate());
    let _ = writeln!(o, "Throughput:\t\t{:>12.6} MB/sec", s.throughput());
    let _ = writeln!(o, "Concurrency:\t\t{:>12.2}", s.concurrency());
    let _ = writeln!(o, "Successful transactions:{:>12}", s.successful_transactions());
    let _ = writeln!(o, "Failed transactions:\t{:>12}", s.failed_transactions());
    let _ = writeln!(o, "Longest transaction:\t{:>12.6}", s.longest_transaction());
    let _ = writeln!(o, "Shortest transaction:\t{:>12.6}", s.shortest_transaction());
    o
}

/// stormproof's additions: percentiles, status codes, failures, routes.
pub fn extras_text(s: &LoadSummary) -> String {
    let mut o = String::new();
    let l = &s.latency;
    let _ = writeln!(
        o,
        "Response time (ms):\tp50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  max {}",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p95_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us)
    );
    let _ = writeln!(o, "Requests:\t\t{:>12} ({:.2} req/sec)", s.figures.requests, s.request_rate());
    if s.figures.unfinished > 0 {
        let _ = writeln!(
            o,
            "Unfinished at stop:\t{:>12} (longest wait {:.6} secs; not counted)",
            s.figures.unfinished,
            s.figures.unfinished_longest_us as f64 / 1e6
        );
    }
    let codes: Vec<String> = s.figures.status_codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    let _ = writeln!(o, "Status codes:\t\t{}", if codes.is_empty() { "none".to_string() } else { codes.join(", ") });
    if s.figures.failures.is_empty() {
        let _ = writeln!(o, "Failures:\t\tnone");
    } else {
        let _ = writeln!(o, "Failures by reason:");
        for (reason, n) in &s.figures.failures {
            let _ = writeln!(o, "  {reason:<34}{n:>10}");
        }
    }
    if s.routes.len() > 1 {
        let _ = writeln!(o, "Routes:{:>40}{:>10}{:>10}{:>10}{:>10}", "trans", "failed", "avail %", "p50 ms", "p99 ms");
        for r in &s.routes {
            let _ = writeln!(
                o,
                "  {:<36}{:>10}{:>10}{:>10.2}{:>10}{:>10}",
                truncate(&r.route, 36),
                r.figures.transactions,
                r.figures.failed,
                r.figures.availability(),
                ms(r.latency.p50_us),
                ms(r.latency.p99_us)
            );
        }
    }
    let _ = writeln!(
        o,
        "Counting:\t\t{}",
        match s.counting {
            Counting::Siege => "siege 4.0.7 (--siege-compat)",
            Counting::Stormproof => "stormproof (status >= 400 fails; --siege-compat counts as siege)",
        }
    );
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One line per gate: `PASS p95<500ms (p95 = 12.345 ms, expected < 500 ms)`.
pub fn thresholds_text(results: &[ThresholdResult]) -> String {
    let mut o = String::from("Thresholds:\n");
    for r in results {
        let _ = writeln!(o, "  {} {}  ({})", if r.passed { "PASS" } else { "FAIL" }, r.threshold, r.message);
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        let _ = writeln!(o, "{failed} of {} thresholds failed", results.len());
    }
    o
}
