//! What a service process is told at start: where to listen, where its data
//! lives, which broker, which upstreams. Flags and `STORMPROOF_*` variables,
//! so the same binary runs under the local platform and in a container.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options shared by every `stormproof serve SYSTEM.SERVICE`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free one (announced on stdout).
    #[arg(long, env = "STORMPROOF_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Directory holding the service's SQLite file.
    #[arg(long, env = "STORMPROOF_DATA", default_value = ".stormproof/data")]
    pub data: PathBuf,
    /// Kafka bootstrap servers (the embedded broker or any Kafka).
    #[arg(long, env = "STORMPROOF_KAFKA", default_value = "127.0.0.1:9092")]
    pub kafka: String,
    /// Use Kafka's idempotent producer (set to false for the embedded broker).
    #[arg(long, env = "STORMPROOF_KAFKA_IDEMPOTENCE", default_value_t = true, action = clap::ArgAction::Set)]
    pub kafka_idempotence: bool,
    /// Upstream services this one calls, as NAME=URL (repeatable or
    /// comma-separated).
    #[arg(long = "upstream", env = "STORMPROOF_UPSTREAMS", value_delimiter = ',',
          value_parser = parse_upstream)]
    pub upstreams: Vec<(String, String)>,
    /// Run a deliberately different variant (e.g. `item-rename`).
    #[arg(long, env = "STORMPROOF_VARIANT")]
    pub variant: Option<String>,
    /// Version label reported by /health and /metrics.
    #[arg(long = "service-version", env = "STORMPROOF_VERSION", default_value = "v1")]
    pub version: String,
    /// Time the service needs before it reports ready (e.g. 2s).
    #[arg(long, env = "STORMPROOF_WARMUP", default_value = "0s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Name of this replica (for logs and metrics).
    #[arg(long, env = "STORMPROOF_REPLICA_ID", default_value = "0")]
    pub replica_id: String,
}

impl ServeOptions {
    /// The upstream URL named `name`, if configured.
    pub fn upstream(&self, name: &str) -> Option<&str> {
        self.upstreams.iter().find(|(n, _)| n == name).map(|(_, url)| url.as_str())
    }
}

fn parse_upstream(s: &str) -> Result<(String, String), String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=URL, got `{s}`"))?;
    url::Url::parse(url).map_err(|err| format!("`{url}` is not a URL: {err}"))?;
    Ok((name.trim().to_string(), url.trim_end_matches('/').to_string()))
}
