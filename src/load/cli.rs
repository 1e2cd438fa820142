//! `stormproof siege`: siege's command line, turned into a [`LoadPlan`],
//! run, printed and judged. This is the only part of the load module that
//! prints (to stdout: the summary or `-j` JSON and `-v` lines; to stderr:
//! the banner and the progress bar, only on a terminal).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use hyper::header::{HeaderName, HeaderValue};

use super::engine::{Progress, RequestEvent, RunHooks, run};
use super::plan::{Counting, LoadPlan, Model, Stop, Target};
use super::summary::LoadSummary;
use super::threshold::{Threshold, evaluate_all};
use super::urlfile::{parse_url_file, parse_url_line};
use crate::exit::Outcome;
use crate::report;

const COUNTING_HELP: &str = "\
Counting (default): a transaction is a response with status < 400; every other outcome \
(4xx, 5xx, connection refused/reset, timeout) is a failed transaction; Availability = \
transactions / (transactions + failed); Response time is the mean over all responses.
Counting (--siege-compat, as siege 4.0.7): every response except 408 and 5xx is a transaction \
(so a 404 is a hit), Successful transactions have status < 400, 408/5xx and socket errors \
are failed, and Response time = total time of all responses / transactions.

Without -r or -t the run goes on until Ctrl-C, as siege's does. Thresholds (exit 1 when one \
fails): availability, error-rate (%), p50 p90 p95 p99 p99.9 mean max min (us, ms, s), rps, \
transaction-rate (/s), failures, transactions, requests; scope one to a route with \
`p95{POST /orders}<300ms`.";

/// `stormproof siege [OPTIONS] [URL [METHOD BODY]]` — siege's flags plus stormproof's.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = COUNTING_HELP, after_help = "Counting differs from siege unless --siege-compat: see --help.")]
pub struct SiegeArgs {
    /// CONCURRENT users.
    #[arg(short = 'c', long = "concurrent", value_name = "NUM", default_value_t = 10, env = "STORMPROOF_CONCURRENT")]
    pub concurrent: u32,
    /// REPS per user: a number, or `once` to walk the URL list once.
    #[arg(short = 'r', long = "reps", value_name = "NUM|once", value_parser = parse_reps, conflicts_with = "time")]
    pub reps: Option<Stop>,
    /// TIME to run: NUM followed by S, M or H (minutes if no unit), e.g. 30S. Lasts the full time.
    #[arg(short = 't', long = "time", value_name = "NUM{S|M|H}", value_parser = parse_time)]
    pub time: Option<Duration>,
    /// DELAY: random 0..NUM seconds before each request of a user (not counted in response time).
    #[arg(short = 'd', long = "delay", value_name = "NUM")]
    pub delay: Option<f64>,
    /// BENCHMARK: no delay between requests (overrides -d).
    #[arg(short = 'b', long = "benchmark")]
    pub benchmark: bool,
    /// FILE of URLs (siege URL-file syntax).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// INTERNET: each user picks URLs from the list at random instead of in order.
    #[arg(short = 'i', long = "internet")]
    pub internet: bool,
    /// HEADER to add to every request, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub header: Vec<String>,
    /// CONTENT-TYPE of request bodies (default: guessed, JSON or form-urlencoded).
    #[arg(short = 'T', long = "content-type", value_name = "TYPE")]
    pub content_type: Option<String>,
    /// User-AGENT header.
    #[arg(short = 'A', long = "user-agent", value_name = "STRING")]
    pub user_agent: Option<String>,
    /// VERBOSE: print one line per request.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// QUIET: no banner, no progress, no summary (-j JSON and gate failures still print).
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// JSON output: print the summary as JSON (siege's keys plus stormproof's) instead of text.
    #[arg(short = 'j', long = "json-output")]
    pub json: bool,
    /// LOG the summary as a line in FILE (siege's CSV log; default ./siege.log).
    #[arg(short = 'l', long = "log", value_name = "FILE", num_args = 0..=1, default_missing_value = "siege.log")]
    pub log: Option<PathBuf>,
    /// MARK the log file with a separator line carrying this text (implies -l).
    #[arg(short = 'm', long = "mark", value_name = "TEXT")]
    pub mark: Option<String>,

    /// Close the connection after each request (siege's behaviour); keep-alive is the default.
    #[arg(long = "no-keepalive", help_heading = "stormproof options")]
    pub no_keepalive: bool,
    /// Open model: schedule NUM requests per second in total (-c is then the most in flight);
    /// latency counts from the scheduled time, which corrects coordinated omission.
    #[arg(long = "rate", value_name = "NUM[/s]", value_parser = parse_rate, help_heading = "stormproof options")]
    pub rate: Option<f64>,
    /// Per-request timeout (connect + response + body), e.g. 30s, 500ms.
    #[arg(long = "timeout", value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "stormproof options")]
    pub timeout: Duration,
    /// Count exactly as siege 4.0.7 does (see --help), for side-by-side comparisons.
    #[arg(long = "siege-compat", help_heading = "stormproof options")]
    pub siege_compat: bool,
    /// CI gate, e.g. 'availability>=99.9%', 'p95<500ms', 'rps>=200', 'error-rate<1%' (repeatable).
    #[arg(long = "threshold", value_name = "GATE", value_parser = parse_threshold, help_heading = "stormproof options")]
    pub threshold: Vec<Threshold>,
    /// Write JSON, JUnit XML, Markdown and HTML reports of the run into DIR.
    #[arg(long = "report", value_name = "DIR", help_heading = "stormproof options")]
    pub report: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long = "workers", value_name = "NUM", default_value_t = 0, env = "STORMPROOF_WORKERS", help_heading = "stormproof options")]
    pub workers: usize,

    /// URL to load, optionally followed by METHOD and BODY (or <FILE), as in a URL file line.
    #[arg(value_name = "URL [METHOD BODY]", num_args = 0..)]
    pub url: Vec<String>,
}

fn parse_reps(s: &str) -> Result<Stop, String> {
    if s.eq_ignore_ascii_case("once") {
        return Ok(Stop::Once);
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Stop::Reps(n)),
        _ => Err(format!("expected a positive number or `once`, found `{s}`")),
    }
}

/// siege's `-t`: NUM with S, M or H (case-insensitive); minutes without a unit.
fn parse_time(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('s' | 'S') => (&t[..t.len() - 1], 1.0),
        Some('m' | 'M') => (&t[..t.len() - 1], 60.0),
        Some('h' | 'H') => (&t[..t.len() - 1], 3600.0),
        _ => (t, 60.0),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(Duration::from_secs_f64(n * mult)),
        _ => Err(format!("expected NUM{{S|M|H}} such as 30S, 5M or 1H, found `{s}`")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("expected a duration such as 30s, 500ms or 2m, found `{s}`");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let n: f64 = t[..split].parse().map_err(|_| bad())?;
    let secs = match t[split..].trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1e6,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs > 0.0 && secs.is_finite() { Ok(Duration::from_secs_f64(secs)) } else { Err(bad()) }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s");
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("expected a positive number of requests per second, found `{s}`")),
    }
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse()
}

impl SiegeArgs {
    /// Builds the validated plan (input errors name `FILE:LINE`).
    pub fn to_plan(&self) -> anyhow::Result<LoadPlan> {
        let mut targets = Vec::new();
        if let Some(file) = &self.file {
            targets.extend(parse_url_file(file)?);
        }
        if !self.url.is_empty() {
            let line = self.url.join(" ");
            let cwd = std::env::current_dir().unwrap_or_default();
            targets.push(parse_url_line(&line, &cwd).map_err(|m| anyhow::anyhow!("<command line>: {m}"))?);
        }
        let mut plan = LoadPlan::new(targets);
        plan.users = self.concurrent;
        plan.stop = match (self.reps, self.time) {
            (Some(r), _) => r,
            (None, Some(t)) => Stop::Duration(t),
            (None, None) => Stop::Reps(u64::MAX),
        };
        plan.delay = match self.delay {
            _ if self.benchmark => Duration::ZERO,
            Some(d) if d >= 0.0 && d.is_finite() => Duration::from_secs_f64(d),
            Some(d) => bail!("expected a delay of 0 or more seconds (-d), found {d}"),
            None => Duration::ZERO,
        };
        plan.model = match self.rate {
            Some(rate) => Model::Open { rate },
            None => Model::Closed,
        };
        for h in &self.header {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("expected a header as \"Name: value\" (-H), found `{h}`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("expected a valid header name (-H), found `{}`", name.trim()))?;
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("expected a valid header value (-H) in `{h}`"))?;
            plan.headers.push((name, value));
        }
        if let Some(ct) = &self.content_type {
            HeaderValue::from_str(ct).with_context(|| format!("expected a valid content type (-T), found `{ct}`"))?;
            plan.content_type = Some(ct.clone());
        }
        if let Some(a) = &self.user_agent {
            HeaderValue::from_str(a).with_context(|| format!("expected a valid user agent (-A), found `{a}`"))?;
            plan.user_agent = a.clone();
        }
        plan.keepalive = !self.no_keepalive;
        plan.timeout = self.timeout;
        plan.random_order = self.internet;
        plan.counting = if self.siege_compat { Counting::Siege } else { Counting::Stormproof };
        plan.workers = self.workers;
        let plan = plan.validate()?;
        let (routes, _) = plan.routes();
        for t in &self.threshold {
            if let Some(r) = &t.route
                && !routes.contains(r)
            {
                bail!("threshold `{t}` names route `{r}`, expected one of: {}", routes.join(", "));
            }
            if t.route_percentile_unsupported() {
                bail!("threshold `{t}`: per-route gates support p50, p90, p95, p99, p99.9 and p100 only");
            }
        }
        Ok(plan)
    }
}

/// Runs `stormproof siege`.
pub async fn run_siege(args: SiegeArgs) -> anyhow::Result<Outcome> {
    let plan = args.to_plan()?;
    // A host that does not resolve at all is almost always a typo: say so
    // (exit 2) rather than report a run of failures.
    let mut hosts: Vec<(String, u16)> = plan.targets.iter().map(|t| (t.host.clone(), t.port)).collect();
    hosts.dedup();
    for (host, port) in hosts {
        let found = tokio::net::lookup_host((host.as_str(), port)).await.map(|mut a| a.next().is_some());
        if !matches!(found, Ok(true)) {
            bail!("cannot resolve host `{host}`: expected a resolvable host name or an IP address");
        }
    }
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    if !args.quiet && !args.json {
        eprintln!(
            "** stormproof {} (siege compatible) **\nThe server is now under siege... ({} users, {}, {} counting)",
            env!("CARGO_PKG_VERSION"),
            plan.users,
            describe_stop(plan.stop),
            match plan.counting {
                Counting::Siege => "siege",
                Counting::Stormproof => "stormproof",
            }
        );
    }
    let mut hooks = RunHooks::default();
    let cancel = hooks.cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let progress = Progress::new();
    hooks.progress = Some(progress.clone());
    let printer = if args.verbose && !args.quiet {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        hooks.events = Some(tx);
        Some(tokio::spawn(print_events(rx, plan.targets.clone(), args.json)))
    } else {
        None
    };
    let bar = if interactive && !args.verbose { Some(spawn_progress_bar(&plan, progress)) } else { None };
    let summary = run(plan.clone(), hooks).await?;
    ctrl_c.abort();
    if let Some((handle, stop)) = bar {
        stop.cancel();
        let _ = handle.await;
    }
    if let Some(p) = printer {
        let _ = p.await;
    }
    let results = evaluate_all(&args.threshold, &summary);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report::json_value(&summary, &results))?)?;
    } else if !args.quiet {
        if !args.verbose {
            // siege prints a blank line and this banner when the siege ends.
            writeln!(out)?;
        }
        writeln!(out, "Lifting the server siege...")?;
        write!(out, "{}", report::siege_text(&summary))?;
        write!(out, "\n{}", report::extras_text(&summary))?;
    }
    if !results.is_empty() && !args.quiet && !args.json {
        write!(out, "\n{}", report::thresholds_text(&results))?;
    } else {
        for r in results.iter().filter(|r| !r.passed) {
            eprintln!("threshold failed: {}: {}", r.threshold, r.message);
        }
    }
    out.flush()?;
    drop(out);
    // siege's -m marks the log file, so it implies logging.
    let log = args.log.clone().or_else(|| args.mark.as_ref().map(|_| PathBuf::from("siege.log")));
    if let Some(log) = &log {
        write_log(log, args.mark.as_deref(), &summary).with_context(|| format!("cannot write the log {}", log.display()))?;
    }
    if let Some(dir) = &args.report {
        let title = format!("stormproof siege — {}", describe_targets(&plan.targets));
        let files = report::write_reports(dir, &title, &summary, &results)
            .with_context(|| format!("cannot write reports into {}", dir.display()))?;
        if !args.quiet {
            for f in files {
                eprintln!("report: {}", f.display());
            }
        }
    }
    Ok(if results.iter().all(|r| r.passed) { Outcome::Passed } else { Outcome::Failed })
}

fn describe_stop(stop: Stop) -> String {
    match stop {
        Stop::Reps(u64::MAX) => "until interrupted".to_string(),
        Stop::Reps(n) => format!("{n} reps each"),
        Stop::Once => "each URL once".to_string(),
        Stop::Duration(d) => format!("{:.3} s", d.as_secs_f64()),
    }
}

fn describe_targets(targets: &[Target]) -> String {
    match targets {
        [one] => one.url.clone(),
        many => format!("{} URLs", many.len()),
    }
}

/// `-v` lines go to stdout, or to stderr when stdout carries `-j` JSON.
async fn print_events(mut rx: tokio::sync::mpsc::UnboundedReceiver<RequestEvent>, targets: Vec<Target>, json: bool) {
    let mut out: Box<dyn Write + Send> = if json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
    while let Some(ev) = rx.recv().await {
        let t = &targets[ev.target];
        let line = match ev.result {
            Ok(status) => format!(
                "HTTP/1.1 {status} {:>10.6} secs: {:>7} bytes ==> {:<6} {}",
                ev.latency.as_secs_f64(),
                ev.bytes,
                t.method.as_str(),
                t.path_and_query
            ),
            Err(e) => format!(
                "[error] {} after {:.6} secs ==> {:<6} {}",
                e.label(),
                ev.latency.as_secs_f64(),
                t.method.as_str(),
                t.url
            ),
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
}

fn spawn_progress_bar(
    plan: &LoadPlan,
    progress: Progress,
) -> (tokio::task::JoinHandle<()>, tokio_util::sync::CancellationToken) {
    use indicatif::{ProgressBar, ProgressStyle};
    let stop = tokio_util::sync::CancellationToken::new();
    let bar = match plan.stop {
        Stop::Duration(d) => {
            let b = ProgressBar::new(d.as_millis() as u64);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        }
        Stop::Reps(u64::MAX) => ProgressBar::new_spinner(),
        Stop::Reps(n) => ProgressBar::new(n.saturating_mul(plan.users as u64)),
        Stop::Once => ProgressBar::new(plan.targets.len() as u64 * plan.users as u64),
    };
    let timed = matches!(plan.stop, Stop::Duration(_));
    let stop2 = stop.clone();
    let handle = tokio::spawn(async move {
        let start = std::time::Instant::now();
        loop {
            let done = progress.completed();
            let failed = progress.failed();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{done} requests, {failed} failed, {rate:.0}/s"));
            if timed {
                bar.set_position(start.elapsed().as_millis() as u64);
            } else {
                bar.set_position(done);
            }
            tokio::select! {
                _ = stop2.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        bar.finish_and_clear();
    });
    (handle, stop)
}

/// Appends siege's log line (and the mark, if any) to `path`.
fn write_log(path: &std::path::Path, mark: Option<&str>, s: &LoadSummary) -> std::io::Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if new {
        writeln!(
            f,
            "      Date & Time,  Trans,  Elap Time,  Data Trans,  Resp Time,  Trans Rate,  Throughput,  Concurrent,    OKAY,   Failed"
        )?;
    }
    if let Some(m) = mark {
        writeln!(f, "**** {m} ****")?;
    }
    writeln!(
        f,
        "{}, {:>6}, {:>10.6}, {:>11.6}, {:>10.6}, {:>11.2}, {:>11.6}, {:>11.2}, {:>7}, {:>8}",
        report::utc_datetime(s.started_unix_ms),
        s.transactions(),
        s.elapsed_time(),
        s.data_transferred(),
        s.response_time(),
        s.transaction_rate(),
        s.throughput(),
        s.concurrency(),
        s.successful_transactions(),
        s.failed_transactions()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siege_time_and_reps_forms() {
        assert_eq!(parse_time("30S").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_time("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_time("1H").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_time("5").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_time("1.5S").unwrap(), Duration::from_millis(1500));
        assert!(parse_time("S").is_err() && parse_time("3X").is_err() && parse_time("0S").is_err());
        assert_eq!(parse_reps("once").unwrap(), Stop::Once);
        assert_eq!(parse_reps("7").unwrap(), Stop::Reps(7));
        assert!(parse_reps("0").is_err() && parse_reps("x").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("2d").is_err());
        assert_eq!(parse_rate("200/s").unwrap(), 200.0);
    }
}
