//! Thresholds: pass/fail gates on a load summary, in the syntax k6 and goose
//! users know — `availability>=99.9%`, `p95<500ms`, `rps>=200`,
//! `error-rate<1%` — optionally for one route: `p99{POST /orders}<800ms`.
//! The CLI parses them before the run (a bad one is a usage error) and
//! evaluates them on the [`LoadSummary`]; a failed gate makes the run exit 1.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::summary::{Figures, LatencyStats, LoadSummary};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Availability, %.
    Availability,
    /// Failed / (transactions + failed), %.
    ErrorRate,
    /// Response time at a percentile (0..100), ms.
    Percentile(f64),
    /// Mean response time, ms.
    Mean,
    /// Longest response, ms.
    Max,
    /// Shortest response, ms.
    Min,
    /// Requests that ended per second (any outcome).
    Rps,
    /// siege's transaction rate (transactions per second).
    TransactionRate,
    /// Count of failures.
    Failures,
    /// Count of transactions.
    Transactions,
    /// Count of requests that ended.
    Requests,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::Availability | Metric::ErrorRate => "%",
            Metric::Percentile(_) | Metric::Mean | Metric::Max | Metric::Min => "ms",
            Metric::Rps | Metric::TransactionRate => "/s",
            _ => "",
        }
    }
    fn is_latency(self) -> bool {
        matches!(self, Metric::Percentile(_) | Metric::Mean | Metric::Max | Metric::Min)
    }
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() < 1e-9,
            Op::Ne => (a - b).abs() >= 1e-9,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// One gate, e.g. `p95<500ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// As the user wrote it.
    pub source: String,
    /// Metric.
    pub metric: Metric,
    /// Only this route (`POST /orders`), or the whole run.
    pub route: Option<String>,
    /// Operator.
    pub op: Op,
    /// Limit in the metric's unit (%, ms, /s or a count).
    pub value: f64,
}

/// A threshold evaluated on a summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// The gate.
    pub threshold: Threshold,
    /// Measured value in the metric's unit (None when there was no data).
    pub actual: Option<f64>,
    /// Whether the gate held.
    pub passed: bool,
    /// `p95 = 612.345 ms, expected < 500 ms`.
    pub message: String,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Threshold, String> {
        let source = s.trim().to_string();
        const OPS: [(&str, Op); 6] =
            [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
        let bad = || {
            format!(
                "expected a threshold like `p95<500ms`, `availability>=99.9%`, `rps>=200` or `error-rate<1%`, found `{source}`"
            )
        };
        // The operator is the first comparison character outside `{route}`.
        let brace_end = source.find('}').map(|i| i + 1).unwrap_or(0);
        let pos = source[brace_end..].find(['<', '>', '=', '!']).map(|p| p + brace_end).ok_or_else(bad)?;
        let (lhs, rest) = source.split_at(pos);
        let (op_text, op) = OPS.iter().find(|(t, _)| rest.starts_with(t)).copied().ok_or_else(bad)?;
        let value_text = rest[op_text.len()..].trim();
        let lhs = lhs.trim();
        let (name, route) = match lhs.split_once('{') {
            Some((n, r)) => {
                let r = r.strip_suffix('}').ok_or_else(bad)?.trim();
                if r.is_empty() {
                    return Err(bad());
                }
                (n.trim(), Some(r.to_string()))
            }
            None => (lhs, None),
        };
        let metric = parse_metric(&name.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown threshold metric `{name}` in `{source}` (expected availability, error-rate, p50…p99.9, mean, max, min, rps, transaction-rate, failures, transactions, requests)"))?;
        let value = parse_value(metric, value_text).ok_or_else(|| {
            format!("expected a number{} after `{}` in `{source}`, found `{value_text}`", unit_hint(metric), op_text)
        })?;
        Ok(Threshold { source, metric, route, op, value })
    }
}

fn unit_hint(m: Metric) -> &'static str {
    match m.unit() {
        "%" => " (optionally with %)",
        "ms" => " with a unit (us, ms, s; ms if none)",
        "/s" => " (optionally with /s)",
        _ => "",
    }
}

fn parse_metric(name: &str) -> Option<Metric> {
    Some(match name {
        "availability" => Metric::Availability,
        "error-rate" | "error_rate" | "errors" => Metric::ErrorRate,
        "mean" | "avg" | "response-time" => Metric::Mean,
        "max" | "longest" => Metric::Max,
        "min" | "shortest" => Metric::Min,
        "rps" | "req-rate" => Metric::Rps,
        "transaction-rate" | "tps" => Metric::TransactionRate,
        "failures" | "failed" => Metric::Failures,
        "transactions" => Metric::Transactions,
        "requests" => Metric::Requests,
        "p999" => Metric::Percentile(99.9),
        p if p.starts_with('p') => {
            let q: f64 = p[1..].parse().ok()?;
            if !(q > 0.0 && q <= 100.0) {
                return None;
            }
            Metric::Percentile(q)
        }
        _ => return None,
    })
}

fn parse_value(metric: Metric, text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() {
        return None;
    }
    let unit = unit.trim();
    let scaled = match (metric.unit(), unit) {
        ("%", "" | "%") => n,
        ("ms", "" | "ms") => n,
        ("ms", "us" | "µs") => n / 1000.0,
        ("ms", "s") => n * 1000.0,
        ("ms", "m") => n * 60_000.0,
        ("/s", "" | "/s") => n,
        ("", "") => n,
        _ => return None,
    };
    Some(scaled)
}

impl Threshold {
    /// Measures this threshold's metric on a summary, in its unit; None
    /// when there is nothing to measure (no response for a latency metric,
    /// unknown route).
    pub fn measure(&self, s: &LoadSummary) -> Option<f64> {
        let (figures, latency): (&Figures, &LatencyStats) = match &self.route {
            Some(r) => {
                let r = s.route(r)?;
                (&r.figures, &r.latency)
            }
            None => (&s.figures, &s.latency),
        };
        if self.metric.is_latency() && figures.responses == 0 {
            return None;
        }
        let secs = s.elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let ms = |us: u64| us as f64 / 1000.0;
        Some(match self.metric {
            Metric::Availability => {
                if figures.transactions + figures.failed == 0 {
                    return None;
                }
                figures.availability()
            }
            Metric::ErrorRate => {
                if figures.transactions + figures.failed == 0 {
                    return None;
                }
                figures.error_rate()
            }
            Metric::Percentile(q) => match &self.route {
                None => ms(s.quantile_us(q / 100.0)),
                Some(_) => ms(route_percentile(latency, q)?),
            },
            Metric::Mean => latency.mean_us / 1000.0,
            Metric::Max => ms(latency.max_us),
            Metric::Min => ms(latency.min_us),
            Metric::Rps => per_sec(figures.requests),
            Metric::TransactionRate => per_sec(figures.transactions),
            Metric::Failures => figures.failed as f64,
            Metric::Transactions => figures.transactions as f64,
            Metric::Requests => figures.requests as f64,
        })
    }

    /// Judges a summary.
    pub fn evaluate(&self, s: &LoadSummary) -> ThresholdResult {
        let unit = self.metric.unit();
        let name = self.source.split(['<', '>', '=', '!']).next().unwrap_or("").trim();
        let sep = if unit == "%" || unit == "/s" || unit.is_empty() { "" } else { " " };
        match self.measure(s) {
            Some(actual) => {
                let passed = self.op.holds(actual, self.value);
                let message = format!(
                    "{name} = {}{sep}{unit}, expected {} {}{sep}{unit}",
                    fmt_num(actual),
                    self.op.as_str(),
                    fmt_num(self.value)
                );
                ThresholdResult { threshold: self.clone(), actual: Some(actual), passed, message }
            }
            None => ThresholdResult {
                threshold: self.clone(),
                actual: None,
                passed: false,
                message: match &self.route {
                    Some(r) if s.route(r).is_none() => format!("{name}: no route `{r}` in this run"),
                    _ if self.metric.is_latency() => format!("{name}: no data (no response)"),
                    _ => format!("{name}: no data (no request ended)"),
                },
            },
        }
    }

    /// A percentile a route-scoped gate cannot answer (only 50, 90, 95, 99,
    /// 99.9 and 100 are kept per route).
    pub fn route_percentile_unsupported(&self) -> bool {
        matches!((self.route.is_some(), self.metric), (true, Metric::Percentile(q)) if ![50.0, 90.0, 95.0, 99.0, 99.9, 100.0].contains(&q))
    }
}

/// The percentiles kept per route.
fn route_percentile(l: &LatencyStats, q: f64) -> Option<u64> {
    [(50.0, l.p50_us), (90.0, l.p90_us), (95.0, l.p95_us), (99.0, l.p99_us), (99.9, l.p999_us), (100.0, l.max_us)]
        .iter()
        .find(|(p, _)| *p == q)
        .map(|(_, v)| *v)
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Evaluates every threshold.
pub fn evaluate_all(thresholds: &[Threshold], s: &LoadSummary) -> Vec<ThresholdResult> {
    thresholds.iter().map(|t| t.evaluate(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(t("availability>=99.9%").metric, Metric::Availability);
        assert_eq!(t("availability>=99.9%").value, 99.9);
        let p = t("p95<500ms");
        assert_eq!((p.metric, p.op, p.value), (Metric::Percentile(95.0), Op::Lt, 500.0));
        assert_eq!(t("p99.9 <= 2s").value, 2000.0);
        assert_eq!(t("p99.9 <= 2s").metric, Metric::Percentile(99.9));
        assert_eq!(t("p50<800us").value, 0.8);
        assert_eq!(t("rps>=200").metric, Metric::Rps);
        assert_eq!(t("rps>=200/s").value, 200.0);
        assert_eq!(t("error-rate<1%").op, Op::Lt);
        assert_eq!(t("failures==0").op, Op::Eq);
        let r = t("p99{POST /orders}<800ms");
        assert_eq!(r.route.as_deref(), Some("POST /orders"));
        assert_eq!(r.metric, Metric::Percentile(99.0));
    }

    #[test]
    fn rejects_bad_thresholds() {
        for bad in ["p95", "latency<5ms", "p95<fast", "availability>=99.9ms", "p0<1ms", "p101<1", "rps=>1", "x{}<1", "p95<5h"] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad} should be rejected");
        }
    }

    fn summary() -> LoadSummary {
        use crate::load::recorder::{Outcome, Recorder};
        use crate::load::{Counting, Model, StopReason};
        use std::time::Duration;
        let mut r = Recorder::new(Counting::Stormproof, 2, true);
        for i in 0..100u64 {
            let (route, status) = if i % 10 == 0 { (1, 500) } else { (0, 200) };
            r.record(route, Outcome::Response { status, bytes: 1 }, Duration::from_millis(i + 1), Duration::from_millis(i * 10));
        }
        r.finish(Duration::from_secs(2));
        LoadSummary::build(
            r,
            vec!["GET /a".into(), "POST /b".into()],
            Model::Closed,
            1,
            1,
            0,
            Duration::from_secs(2),
            StopReason::Completed,
            None,
        )
    }

    #[test]
    fn evaluates_on_a_summary() {
        let s = summary();
        let check = |g: &str| t(g).evaluate(&s);
        assert!(check("availability>=90%").passed);
        assert!(!check("availability>=99.9%").passed);
        assert_eq!(check("availability>=99.9%").message, "availability = 90%, expected >= 99.9%");
        assert!(check("error-rate<=10%").passed);
        assert!(check("rps==50").passed);
        assert!(check("p50<=51ms").passed && !check("p50<40ms").passed);
        assert!(check("max<=100ms").passed);
        assert!(check("failures==10").passed);
        assert!(check("availability{GET /a}==100%").passed);
        assert!(check("availability{POST /b}==0%").passed);
        let missing = check("p99{GET /zzz}<1s");
        assert!(!missing.passed && missing.actual.is_none() && missing.message.contains("no route"));
        let r = evaluate_all(&[t("p95<1s"), t("requests>=1000")], &s);
        assert_eq!(r.iter().map(|r| r.passed).collect::<Vec<_>>(), vec![true, false]);
    }
}
