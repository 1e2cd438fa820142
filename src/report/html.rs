//! A self-contained HTML page (inline CSS and SVG, no scripts, no external
//! assets): figures, gates, and charts of throughput, availability and
//! latency over time plus the latency percentiles.

use std::fmt::Write;

use crate::load::{LoadSummary, ThresholdResult};

use super::util::{escape, ms, siege_figures};

const W: f64 = 760.0;
const H: f64 = 220.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 28.0;
const PAD_T: f64 = 12.0;
const PAD_R: f64 = 12.0;

/// One line of a chart.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

fn nice_max(m: f64) -> f64 {
    if m <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(m.log10().floor());
    for k in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if k * p >= m {
            return k * p;
        }
    }
    10.0 * p
}

/// A line chart over seconds.
pub(crate) fn line_chart(title: &str, unit: &str, series: &[Series], fixed_max: Option<f64>) -> String {
    shaded_line_chart(title, unit, series, fixed_max, None)
}

/// A line chart over seconds with the seconds `window` shaded (a fault).
pub(crate) fn shaded_line_chart(title: &str, unit: &str, series: &[Series], fixed_max: Option<f64>, window: Option<(f64, f64)>) -> String {
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max = fixed_max.unwrap_or_else(|| nice_max(series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max)));
    let pw = W - PAD_L - PAD_R;
    let ph = H - PAD_T - PAD_B;
    let x = |i: usize| PAD_L + if n <= 1 { pw / 2.0 } else { pw * i as f64 / (n - 1) as f64 };
    let y = |v: f64| PAD_T + ph - (v / max).clamp(0.0, 1.0) * ph;
    let mut o = String::new();
    let _ = writeln!(o, "<figure><figcaption>{}</figcaption>", escape(title));
    let _ = writeln!(o, "<svg viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"{}\">", escape(title));
    if let Some((from, to)) = window.filter(|_| n > 1) {
        let (x0, x1) = (x((from.max(0.0) as usize).min(n - 1)), x((to.max(0.0).ceil() as usize).min(n - 1)));
        let _ = writeln!(o, "<rect x=\"{x0:.1}\" y=\"{PAD_T}\" width=\"{:.1}\" height=\"{:.1}\" class=\"fault\"><title>fault</title></rect>", (x1 - x0).max(1.0), H - PAD_T - PAD_B);
    }
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let yy = y(v);
        let _ = writeln!(o, "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" class=\"ax\" text-anchor=\"end\">{}{}</text>", W - PAD_R, PAD_L - 6.0, yy + 4.0, fmt_axis(v), escape(unit));
    }
    let ticks = n.clamp(1, 10);
    for k in 0..ticks {
        let i = if ticks <= 1 { 0 } else { k * (n.max(1) - 1) / (ticks - 1).max(1) };
        let _ = writeln!(o, "<text x=\"{:.1}\" y=\"{}\" class=\"ax\" text-anchor=\"middle\">{}s</text>", x(i), H - 8.0, i);
    }
    for s in series {
        if s.values.is_empty() {
            continue;
        }
        let pts: Vec<String> = s.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let _ = writeln!(o, "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>", s.color, pts.join(" "), escape(s.name));
    }
    let _ = writeln!(o, "</svg><div class=\"legend\">");
    for s in series {
        let _ = write!(o, "<span><i style=\"background:{}\"></i>{}</span> ", s.color, escape(s.name));
    }
    let _ = writeln!(o, "</div></figure>");
    o
}

fn fmt_axis(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn bar_chart(title: &str, bars: &[(&str, f64)]) -> String {
    let max = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max));
    let row = 26.0;
    let h = PAD_T + row * bars.len() as f64 + 8.0;
    let pw = W - 120.0 - 110.0;
    let mut o = String::new();
    let _ = writeln!(o, "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {h}\" width=\"100%\" role=\"img\">", escape(title));
    for (i, (label, v)) in bars.iter().enumerate() {
        let yy = PAD_T + row * i as f64;
        let w = (v / max).clamp(0.0, 1.0) * pw;
        let _ = writeln!(o, "<text x=\"110\" y=\"{:.1}\" class=\"ax\" text-anchor=\"end\">{}</text><rect x=\"120\" y=\"{yy:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"#4e79a7\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"ax\">{:.3} ms</text>", yy + 14.0, escape(label), 126.0 + w, yy + 14.0, v);
    }
    let _ = writeln!(o, "</svg></figure>");
    o
}

/// The page's inline stylesheet (shared with the experiment report).
pub(crate) const STYLE: &str = "<style>body{font-family:system-ui,sans-serif;max-width:820px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.pass{color:#2a7}.fail{color:#c33;font-weight:bold}.inconclusive{color:#b60;font-weight:bold}figure{margin:1.5em 0}figcaption{font-weight:bold}.grid{stroke:#e4e4e4}.ax{font-size:11px;fill:#555}.fault{fill:#f4c7c3;opacity:.5}.legend span{margin-right:1em;font-size:13px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}</style>";

/// The run as one HTML page.
pub fn html_report(title: &str, s: &LoadSummary, results: &[ThresholdResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed).count();
    let mut o = String::new();
    let _ = writeln!(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>", escape(title));
    o.push_str(STYLE);
    o.push_str("</head><body>\n");
    let _ = writeln!(o, "<h1>{}</h1>", escape(title));
    let verdict = if results.is_empty() {
        "<p>No thresholds.</p>".to_string()
    } else if failed == 0 {
        format!("<p class=\"pass\">All {} thresholds passed.</p>", results.len())
    } else {
        format!("<p class=\"fail\">{failed} of {} thresholds failed.</p>", results.len())
    };
    o.push_str(&verdict);
    let _ = writeln!(o, "<p>{} users, {:?} model, {:.3} s, counting: {:?}, stopped by {:?}.</p>", s.users, s.model, s.elapsed_time(), s.counting, s.stopped_by);
    o.push_str("<table><tr><th>Figure</th><th>Value</th></tr>\n");
    for (k, v) in siege_figures(s) {
        let _ = writeln!(o, "<tr><td>{k}</td><td>{v}</td></tr>");
    }
    o.push_str("</table>\n");
    if !results.is_empty() {
        o.push_str("<h2>Thresholds</h2><table><tr><th>Threshold</th><th>Result</th><th>Detail</th></tr>\n");
        for r in results {
            let (c, t) = if r.passed { ("pass", "pass") } else { ("fail", "FAIL") };
            let _ = writeln!(o, "<tr><td><code>{}</code></td><td class=\"{c}\">{t}</td><td>{}</td></tr>", escape(&r.threshold.source), escape(&r.message));
        }
        o.push_str("</table>\n");
    }
    o.push_str("<h2>Over time</h2>\n");
    let tl = &s.timeline;
    o.push_str(&line_chart(
        "Throughput per second",
        "/s",
        &[
            Series { name: "transactions/s", color: "#4e79a7", values: tl.iter().map(|p| p.counts.transactions as f64).collect() },
            Series { name: "failures/s", color: "#e15759", values: tl.iter().map(|p| p.counts.failed as f64).collect() },
        ],
        None,
    ));
    o.push_str(&line_chart(
        "Availability per second",
        "%",
        &[Series { name: "availability %", color: "#59a14f", values: tl.iter().map(|p| p.availability).collect() }],
        Some(100.0),
    ));
    o.push_str(&line_chart(
        "Response time per second",
        "ms",
        &[
            Series { name: "p50", color: "#4e79a7", values: tl.iter().map(|p| p.p50_us as f64 / 1000.0).collect() },
            Series { name: "p99", color: "#f28e2b", values: tl.iter().map(|p| p.p99_us as f64 / 1000.0).collect() },
        ],
        None,
    ));
    if s.routes.len() > 1 {
        const COLORS: [&str; 8] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
        let series: Vec<Series> = s
            .routes
            .iter()
            .take(COLORS.len())
            .enumerate()
            .map(|(i, r)| Series {
                name: &r.route,
                color: COLORS[i],
                values: r.timeline.iter().map(|c| c.availability()).collect(),
            })
            .collect();
        o.push_str(&line_chart("Availability per route per second", "%", &series, Some(100.0)));
    }
    let l = &s.latency;
    o.push_str(&bar_chart(
        "Response time percentiles",
        &[
            ("p50", l.p50_us as f64 / 1000.0),
            ("p90", l.p90_us as f64 / 1000.0),
            ("p95", l.p95_us as f64 / 1000.0),
            ("p99", l.p99_us as f64 / 1000.0),
            ("p99.9", l.p999_us as f64 / 1000.0),
            ("max", l.max_us as f64 / 1000.0),
        ],
    ));
    o.push_str("<h2>Status codes and failures</h2><table><tr><th>Status / reason</th><th>Count</th></tr>\n");
    for (c, n) in &s.figures.status_codes {
        let _ = writeln!(o, "<tr><td>HTTP {c}</td><td>{n}</td></tr>");
    }
    for (r, n) in &s.figures.failures {
        let _ = writeln!(o, "<tr><td class=\"fail\">{}</td><td>{n}</td></tr>", escape(r));
    }
    o.push_str("</table>\n<h2>Routes</h2><table><tr><th>Route</th><th>Transactions</th><th>Failed</th><th>Availability %</th><th>p50 ms</th><th>p99 ms</th></tr>\n");
    for r in &s.routes {
        let _ = writeln!(o, "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>", escape(&r.route), r.figures.transactions, r.figures.failed, r.figures.availability(), ms(r.latency.p50_us), ms(r.latency.p99_us));
    }
    o.push_str("</table>\n</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::{Counting, Model, Recorder, RequestOutcome, StopReason};

    #[test]
    fn multi_route_page_is_self_contained_and_escaped() {
        let mut r = Recorder::new(Counting::Stormproof, 2, true);
        for i in 0..30u64 {
            let status = if i % 3 == 0 { 503 } else { 200 };
            r.record((i % 2) as usize, RequestOutcome::Response { status, bytes: 10 }, Duration::from_millis(5), Duration::from_millis(i * 100));
        }
        r.finish(Duration::from_secs(3));
        let s = LoadSummary::build(
            r,
            vec!["GET /a?x=<b>".into(), "POST /orders".into()],
            Model::Closed,
            2,
            1,
            0,
            Duration::from_secs(3),
            StopReason::Duration,
            None,
        );
        let html = html_report("t <&>", &s, &[]);
        assert!(html.contains("Availability per route per second"));
        assert!(html.contains("GET /a?x=&lt;b&gt;") && !html.contains("<b>"));
        assert!(html.contains("<title>t &lt;&amp;&gt;</title>"));
        assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
        assert_eq!(html.matches("<svg").count(), 5);
    }
}
