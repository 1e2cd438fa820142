//! A load plan: the validated description of one load run — what to send
//! (targets), by how many virtual users, for how long, how fast and how to
//! count. The CLI builds it from siege's flags; the chaos engine builds it
//! from an experiment file. The engine ([`crate::load::run`]) only reads it.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

pub use hyper::Method;

/// One request a virtual user sends: a line of a siege URL file.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// HTTP method.
    pub method: Method,
    /// The URL as written (variables expanded, `http://` added if missing).
    pub url: String,
    /// Host name or address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Origin-form request target (`/path?query`).
    pub path_and_query: String,
    /// Request body, if any.
    pub body: Option<Bytes>,
    /// Content type for the body (`-T` overrides it).
    pub content_type: Option<String>,
    /// Route label used for per-route figures, e.g. `POST /orders`.
    pub route: String,
}

impl Target {
    /// Parses `URL` (siege accepts `host:port/path` without a scheme) into a GET target.
    pub fn get(url: &str) -> Result<Target, String> {
        Target::new(Method::GET, url, None)
    }

    /// Builds a target; `url` may omit `http://`. `https` is refused: the
    /// engine speaks plain HTTP/1.1.
    pub fn new(method: Method, url: &str, body: Option<Bytes>) -> Result<Target, String> {
        let rest = if let Some(rest) = strip_prefix_ci(url, "http://") {
            rest
        } else if strip_prefix_ci(url, "https://").is_some() {
            return Err(format!("expected an http:// URL, found `{url}` (https is not supported)"));
        } else if url.contains("://") {
            return Err(format!("expected an http:// URL, found `{url}`"));
        } else {
            url
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(format!("expected a host in URL `{url}`"));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("expected host[:port] in URL `{url}`, found `{authority}`"))?;
        let path_and_query = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path_and_query.parse::<hyper::Uri>().is_err() {
            return Err(format!("expected a valid path in URL `{url}`, found `{path_and_query}`"));
        }
        let content_type = body.as_ref().map(|b| guess_content_type(b).to_string());
        Ok(Target {
            route: format!("{method} {path_and_query}"),
            method,
            url: format!("http://{authority}{path_and_query}"),
            host,
            port,
            path_and_query,
            body,
            content_type,
        })
    }

    /// `host:port`, as sent in the `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`, not indexing: the URL may start with a multi-byte character.
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => Some(&s[prefix.len()..]),
        _ => None,
    }
}

fn split_host_port(authority: &str) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    if host.is_empty() || host.contains(['@', ' ', '\t']) {
        return None;
    }
    Some((host.to_string(), port))
}

/// Content type siege users expect for a body: JSON when it looks like JSON,
/// form-urlencoded (siege's default) otherwise.
pub(crate) fn guess_content_type(body: &[u8]) -> &'static str {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') | Some(b'[') => "application/json",
        _ => "application/x-www-form-urlencoded",
    }
}

/// When each virtual user stops.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// `-r N`: every user sends exactly N requests.
    Reps(u64),
    /// `-r once`: every user walks the URL list once.
    Once,
    /// `-t`: run for this long, no matter how many requests that is.
    Duration(Duration),
    /// `-r` and `-t` together, as siege allows: each user stops after `reps`
    /// requests or when `time` is up, whichever comes first.
    First {
        /// Requests per user.
        reps: u64,
        /// The run's longest duration.
        time: Duration,
    },
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// siege's model: each user sends its next request when the previous
    /// one answered (plus the optional delay).
    Closed,
    /// `--rate N`: requests are scheduled at N per second in total, whatever
    /// the server does; the users are the maximum in flight. Latency is
    /// measured from the scheduled start, which corrects coordinated omission.
    Open {
        /// Requests per second over all users.
        rate: f64,
    },
}

/// How responses are counted into transactions, successes and failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Counting {
    /// stormproof's default: a transaction is a response with status < 400;
    /// every other outcome (4xx, 5xx, socket error, timeout) is a failure.
    Stormproof,
    /// siege 4.0.7's counting (`--siege-compat`): every response except 408
    /// and 5xx is a transaction, status < 400 is successful, 408/5xx and
    /// socket errors are failures, response time includes failed responses.
    Siege,
}

/// A validated load run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The URL list every user walks (in order, or at random).
    pub targets: Vec<Target>,
    /// Virtual users (siege's `-c`).
    pub users: u32,
    /// When to stop.
    pub stop: Stop,
    /// Upper bound of the random delay before each request (`-d`); zero for none.
    pub delay: Duration,
    /// Pacing.
    pub model: Model,
    /// Extra headers for every request (`-H`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `User-Agent` header (`-A`).
    pub user_agent: String,
    /// Content type for bodies, overriding the guessed one (`-T`).
    pub content_type: Option<String>,
    /// Reuse connections (HTTP/1.1 keep-alive).
    pub keepalive: bool,
    /// Per-request timeout (connect + response + body).
    pub timeout: Duration,
    /// Walk the URL list at random (`-i`) rather than in order.
    pub random_order: bool,
    /// Counting rules.
    pub counting: Counting,
    /// Worker threads; 0 picks one per available core.
    pub workers: usize,
    /// Keep a per-second timeline (always on for the CLI).
    pub timeline: bool,
}

/// Why a plan is not runnable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// No target.
    #[error("nothing to load: give a URL or a URL file (-f)")]
    NoTargets,
    /// Zero users.
    #[error("expected at least one user (-c)")]
    NoUsers,
    /// Bad open-model rate.
    #[error("expected a positive --rate, found {0}")]
    BadRate(f64),
    /// Zero reps or duration.
    #[error("expected a positive number of repetitions or duration")]
    EmptyStop,
    /// Zero timeout.
    #[error("expected a positive --timeout")]
    BadTimeout,
}

impl LoadPlan {
    /// A plan with siege's defaults (10 users, 1 repetition... see fields),
    /// stormproof counting and keep-alive on.
    pub fn new(targets: Vec<Target>) -> LoadPlan {
        LoadPlan {
            targets,
            users: 10,
            stop: Stop::Reps(1),
            delay: Duration::ZERO,
            model: Model::Closed,
            headers: Vec::new(),
            user_agent: format!("stormproof/{} (siege compatible)", env!("CARGO_PKG_VERSION")),
            content_type: None,
            keepalive: true,
            timeout: Duration::from_secs(30),
            random_order: false,
            counting: Counting::Stormproof,
            workers: 0,
            timeline: true,
        }
    }

    /// Checks the plan and settles route labels (targets on several hosts
    /// get the host in their label).
    pub fn validate(mut self) -> Result<LoadPlan, PlanError> {
        if self.targets.is_empty() {
            return Err(PlanError::NoTargets);
        }
        if self.users == 0 {
            return Err(PlanError::NoUsers);
        }
        if let Model::Open { rate } = self.model
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(PlanError::BadRate(rate));
        }
        match self.stop {
            Stop::Reps(0) | Stop::First { reps: 0, .. } => return Err(PlanError::EmptyStop),
            Stop::Duration(d) | Stop::First { time: d, .. } if d.is_zero() => return Err(PlanError::EmptyStop),
            _ => {}
        }
        if self.timeout.is_zero() {
            return Err(PlanError::BadTimeout);
        }
        let first = self.targets[0].authority();
        if self.targets.iter().any(|t| t.authority() != first) {
            for t in &mut self.targets {
                t.route = format!("{} {}", t.method, t.url);
            }
        }
        Ok(self)
    }

    /// Distinct route labels in first-seen order, and each target's index into them.
    pub fn routes(&self) -> (Vec<String>, Vec<usize>) {
        let mut labels: Vec<String> = Vec::new();
        let mut index = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            let i = match labels.iter().position(|l| *l == t.route) {
                Some(i) => i,
                None => {
                    labels.push(t.route.clone());
                    labels.len() - 1
                }
            };
            index.push(i);
        }
        (labels, index)
    }

    /// Number of worker threads this plan runs on.
    pub fn worker_count(&self) -> usize {
        let cores = if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        };
        cores.clamp(1, self.users.max(1) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_with_and_without_scheme() {
        let t = Target::get("localhost:8080/products?id=1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 8080));
        assert_eq!(t.path_and_query, "/products?id=1");
        assert_eq!(t.url, "http://localhost:8080/products?id=1");
        let t = Target::get("HTTP://127.0.0.1").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/"));
        let t = Target::get("http://[::1]:9/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        assert!(Target::get("https://x/").is_err());
        assert!(Target::get("ftp://x/").is_err());
        assert!(Target::get("http://x:notaport/").is_err());
        assert!(Target::get("http:///path").is_err());
    }

    #[test]
    fn validate_labels_routes_by_host_when_needed() {
        let a = Target::get("http://a:1/x").unwrap();
        let b = Target::new(Method::POST, "http://b:1/x", Some(Bytes::from("{}"))).unwrap();
        assert_eq!(b.content_type.as_deref(), Some("application/json"));
        let plan = LoadPlan::new(vec![a.clone(), b]).validate().unwrap();
        assert_eq!(plan.targets[1].route, "POST http://b:1/x");
        let plan = LoadPlan::new(vec![a.clone(), a]).validate().unwrap();
        assert_eq!(plan.routes(), (vec!["GET /x".to_string()], vec![0, 0]));
        assert_eq!(LoadPlan::new(vec![]).validate().unwrap_err(), PlanError::NoTargets);
    }
}
