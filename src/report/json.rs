//! The JSON rendering of a run: siege's `-j` keys at the top level (same
//! names and units as siege 4.0.7), then stormproof's additions. Its shape is
//! described by `schema.json` (JSON Schema 2020-12), versioned by
//! `schema_version`.

use serde_json::{Value, json};

use crate::load::{LoadSummary, Model, ThresholdResult};

use super::util::rfc3339;

/// Version of the JSON report layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of [`json_value`]'s output.
pub const JSON_SCHEMA: &str = include_str!("schema.json");

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

/// The run as JSON.
pub fn json_value(s: &LoadSummary, thresholds: &[ThresholdResult]) -> Value {
    let timeline: Vec<Value> = s
        .timeline
        .iter()
        .map(|p| {
            json!({
                "second": p.second,
                "requests": p.counts.requests,
                "transactions": p.counts.transactions,
                "successful": p.counts.successful,
                "failed": p.counts.failed,
                "bytes": p.counts.bytes,
                "availability": round(p.availability, 4),
                "p50_us": p.p50_us,
                "p99_us": p.p99_us,
            })
        })
        .collect();
    let routes: Vec<Value> = s
        .routes
        .iter()
        .map(|r| {
            json!({
                "route": r.route,
                "availability": round(r.figures.availability(), 4),
                "figures": r.figures,
                "latency": r.latency,
                "timeline": r.timeline,
            })
        })
        .collect();
    json!({
        "transactions": s.transactions(),
        "availability": round(s.availability(), 2),
        "elapsed_time": round(s.elapsed_time(), 6),
        "data_transferred": round(s.data_transferred(), 6),
        "response_time": round(s.response_time(), 6),
        "transaction_rate": round(s.transaction_rate(), 2),
        "throughput": round(s.throughput(), 6),
        "concurrency": round(s.concurrency(), 2),
        "successful_transactions": s.successful_transactions(),
        "failed_transactions": s.failed_transactions(),
        "longest_transaction": round(s.longest_transaction(), 6),
        "shortest_transaction": round(s.shortest_transaction(), 6),
        "schema_version": SCHEMA_VERSION,
        "tool": format!("stormproof {}", env!("CARGO_PKG_VERSION")),
        "started_at": rfc3339(s.started_unix_ms),
        "counting": s.counting,
        "model": match s.model {
            Model::Closed => json!({"kind": "closed"}),
            Model::Open { rate } => json!({"kind": "open", "rate": rate}),
        },
        "users": s.users,
        "workers": s.workers,
        "stopped_by": s.stopped_by,
        "requests": s.figures.requests,
        "responses": s.figures.responses,
        "request_rate": round(s.request_rate(), 2),
        "bytes": s.figures.bytes,
        "error_rate": round(s.figures.error_rate(), 4),
        "unfinished": s.figures.unfinished,
        "latency_us": s.latency,
        "status_codes": s.figures.status_codes,
        "failures": s.figures.failures,
        "routes": routes,
        "timeline": timeline,
        "thresholds": thresholds,
        "passed": thresholds.iter().all(|t| t.passed),
    })
}
