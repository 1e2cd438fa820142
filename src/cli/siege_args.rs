//! `stormproof siege`'s arguments: siege's command line (plus stormproof's
//! own options), turned into a validated [`LoadPlan`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::kube_args::{KubeArgs, PlatformKind};
use hyper::header::{HeaderName, HeaderValue};

use crate::load::{Counting, LoadPlan, Model, Stop, Threshold, parse_url_file, parse_url_line};

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
    /// REPS per user: a number, or `once` to walk the URL list once. With -t, each user
    /// stops at whichever limit comes first (as siege does).
    #[arg(short = 'r', long = "reps", value_name = "NUM|once", value_parser = parse_reps)]
    pub reps: Option<Stop>,
    /// TIME to run: NUM followed by S, M or H (minutes if no unit), e.g. 30S. Lasts the full time.
    #[arg(short = 't', long = "time", value_name = "NUM{S|M|H}", value_parser = parse_time)]
    pub time: Option<Duration>,
    /// DELAY: random 0..NUM seconds before each request of a user (not counted in response
    /// time); NUM may end in S, M or H, as in -t (`--delay=1S`).
    #[arg(short = 'd', long = "delay", value_name = "NUM[S|M|H]", value_parser = parse_delay)]
    pub delay: Option<Duration>,
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

    /// Split the load over N workers (-c, --rate split exactly), merge their HDR histograms
    /// and judge --threshold on the whole run. Workers are processes on this host, or pods
    /// of an Indexed Job with --platform kube.
    #[arg(long = "distributed", value_name = "N", help_heading = "Distributed")]
    pub distributed: Option<usize>,
    /// Where the distributed workers run.
    #[arg(long = "platform", value_enum, default_value_t = PlatformKind::Local, help_heading = "Distributed")]
    pub platform: PlatformKind,
    /// Address the coordinator listens on for its workers.
    #[arg(long = "coordinator-listen", value_name = "ADDR", default_value = "127.0.0.1:0", help_heading = "Distributed")]
    pub coordinator_listen: SocketAddr,
    /// URL the workers reach the coordinator at (default: http:// and the listen address).
    #[arg(long = "coordinator-url", value_name = "URL", env = "STORMPROOF_COORDINATOR_URL", help_heading = "Distributed")]
    pub coordinator_url: Option<String>,
    /// Where on a cluster the workers run (`--platform kube`).
    #[command(flatten)]
    pub kube: SiegeKubeArgs,

    /// URL to load, optionally followed by METHOD and BODY (or <FILE), as in a URL file line.
    #[arg(value_name = "URL [METHOD BODY]", num_args = 0..)]
    pub url: Vec<String>,
}

/// `stormproof siege`: a run, or the `worker` of a distributed one.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SiegeCommand {
    /// A distributed run's worker, instead of a run.
    #[command(subcommand)]
    pub role: Option<SiegeRole>,
    /// The run.
    #[command(flatten)]
    pub args: SiegeArgs,
}

/// What `stormproof siege` runs besides a load.
#[derive(Debug, Clone, Subcommand)]
pub enum SiegeRole {
    /// Run one worker of a `--distributed` siege: fetch its share from the coordinator, run it
    /// at the agreed start, send the report (on this host, another one, or in a pod).
    Worker(WorkerArgs),
}

/// `stormproof siege worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The coordinator's URL, e.g. http://10.0.0.5:7070.
    #[arg(long, env = "STORMPROOF_COORDINATOR")]
    pub coordinator: String,
    /// This worker's index, from 0 (an Indexed Job's pods get it as JOB_COMPLETION_INDEX).
    #[arg(long, env = "JOB_COMPLETION_INDEX")]
    pub index: usize,
    /// How long to keep trying to reach the coordinator.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub patience: Duration,
    /// Print each request as siege -v does, prefixed `[worker I]` (the
    /// coordinator passes it on from `siege -v --distributed N`).
    #[arg(short = 'v', long, env = "STORMPROOF_VERBOSE")]
    pub verbose: bool,
}

/// `--platform kube` flags of a distributed siege.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kubernetes (--distributed N --platform kube)")]
pub struct SiegeKubeArgs {
    #[command(flatten)]
    pub target: KubeArgs,
    /// Image of the worker pods (it must hold the stormproof binary).
    #[arg(long = "image", value_name = "IMAGE", env = "STORMPROOF_IMAGE", default_value = "stormproof:latest")]
    pub image: String,
    /// CPU request and limit of each worker pod.
    #[arg(long = "worker-cpu", value_name = "QUANTITY", default_value = "1")]
    pub cpu: String,
    /// Memory request and limit of each worker pod.
    #[arg(long = "worker-memory", value_name = "QUANTITY", default_value = "256Mi")]
    pub memory: String,
    /// Print the Job as the request it would send, and send nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
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
    match with_unit(s, 60.0) {
        Some(n) if n > 0.0 => Ok(Duration::from_secs_f64(n)),
        _ => Err(format!("expected NUM{{S|M|H}} such as 30S, 5M or 1H, found `{s}`")),
    }
}

/// siege's `-d`: seconds, 0 included. siege reads it with `atof`, so the
/// course's `--delay=1S` means one second; M and H are minutes and hours,
/// as in `-t`.
fn parse_delay(s: &str) -> Result<Duration, String> {
    match with_unit(s, 1.0) {
        Some(n) if n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        _ => Err(format!("expected a delay of 0 or more seconds such as 1, 0.5 or 1S, found `{s}`")),
    }
}

/// NUM with an optional S, M or H (case-insensitive), in seconds;
/// `bare` is the multiplier without a unit.
fn with_unit(s: &str, bare: f64) -> Option<f64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('s' | 'S') => (&t[..t.len() - 1], 1.0),
        Some('m' | 'M') => (&t[..t.len() - 1], 60.0),
        Some('h' | 'H') => (&t[..t.len() - 1], 3600.0),
        _ => (t, bare),
    };
    let n = num.trim().parse::<f64>().ok()?;
    (n.is_finite() && n * mult < 1e9).then_some(n * mult)
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
            (Some(Stop::Once), Some(time)) => Stop::First { reps: plan.targets.len() as u64, time },
            (Some(Stop::Reps(reps)), Some(time)) => Stop::First { reps, time },
            (Some(r), _) => r,
            (None, Some(t)) => Stop::Duration(t),
            (None, None) => Stop::Reps(u64::MAX),
        };
        plan.delay = if self.benchmark { Duration::ZERO } else { self.delay.unwrap_or(Duration::ZERO) };
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
        assert_eq!(parse_delay("1S").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_delay("1").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_delay("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_delay("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_delay("2M").unwrap(), Duration::from_secs(120));
        assert!(parse_delay("-1").is_err() && parse_delay("1X").is_err() && parse_delay("NaN").is_err());
    }

    fn plan_of(line: &[&str]) -> LoadPlan {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            siege: SiegeArgs,
        }
        let argv = std::iter::once("siege").chain(line.iter().copied());
        Cli::try_parse_from(argv).expect("parses").siege.to_plan().expect("plans")
    }

    #[test]
    fn reps_and_time_together_stop_at_the_first_limit() {
        let plan = plan_of(&["-c100", "-t60S", "-r10", "-v", "http://127.0.0.1:1/"]);
        assert_eq!(plan.stop, Stop::First { reps: 10, time: Duration::from_secs(60) });
        let plan = plan_of(&["-r", "once", "-t", "5S", "http://127.0.0.1:1/"]);
        assert_eq!(plan.stop, Stop::First { reps: 1, time: Duration::from_secs(5) });
        let plan = plan_of(&["-c1", "-t60S", "-v", "http://127.0.0.1:1/", "--delay=1S"]);
        assert_eq!((plan.stop, plan.delay), (Stop::Duration(Duration::from_secs(60)), Duration::from_secs(1)));
    }
}
