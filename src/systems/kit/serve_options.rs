//! What a service process is told at start: where to listen, where its data
//! lives, which broker and topic, which upstreams. Flags and `STORMPROOF_*`
//! variables, so the same binary runs under the local platform, in a
//! container and under the contract verifier. [`ServeOptions::to_env`] is the
//! one place that spells the variables for the side that starts a service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `STORMPROOF_*` variable names a service reads.
pub mod env {
    /// [`super::ServeOptions::listen`].
    pub const LISTEN: &str = "STORMPROOF_LISTEN";
    /// [`super::ServeOptions::data`].
    pub const DATA: &str = "STORMPROOF_DATA";
    /// [`super::ServeOptions::kafka`].
    pub const KAFKA: &str = "STORMPROOF_KAFKA";
    /// [`super::ServeOptions::kafka_idempotence`].
    pub const KAFKA_IDEMPOTENCE: &str = "STORMPROOF_KAFKA_IDEMPOTENCE";
    /// [`super::ServeOptions::topic`].
    pub const TOPIC: &str = "STORMPROOF_TOPIC";
    /// [`super::ServeOptions::partitions`].
    pub const PARTITIONS: &str = "STORMPROOF_PARTITIONS";
    /// [`super::ServeOptions::upstreams`].
    pub const UPSTREAMS: &str = "STORMPROOF_UPSTREAMS";
    /// [`super::ServeOptions::variant`].
    pub const VARIANT: &str = "STORMPROOF_VARIANT";
    /// [`super::ServeOptions::version`].
    pub const VERSION: &str = "STORMPROOF_VERSION";
    /// [`super::ServeOptions::warmup`].
    pub const WARMUP: &str = "STORMPROOF_WARMUP";
    /// [`super::ServeOptions::replica_id`].
    pub const REPLICA_ID: &str = "STORMPROOF_REPLICA_ID";
    /// [`super::ServeOptions::instance`].
    pub const INSTANCE: &str = "STORMPROOF_INSTANCE";
}

/// Options shared by every `stormproof serve SYSTEM.SERVICE`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free one (announced on stdout).
    #[arg(long, env = env::LISTEN, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Directory holding the service's SQLite file.
    #[arg(long, env = env::DATA, default_value = ".stormproof/data")]
    pub data: PathBuf,
    /// Kafka bootstrap servers (the embedded broker or any Kafka).
    #[arg(long, env = env::KAFKA, default_value = "127.0.0.1:9092")]
    pub kafka: String,
    /// Use Kafka's idempotent producer (on for every broker, the embedded one included).
    #[arg(long, env = env::KAFKA_IDEMPOTENCE, default_value_t = true, action = clap::ArgAction::Set)]
    pub kafka_idempotence: bool,
    /// The system's event topic (default: the one its definition names).
    #[arg(long, env = env::TOPIC)]
    pub topic: Option<String>,
    /// Partitions of that topic (default: the definition's).
    #[arg(long, env = env::PARTITIONS)]
    pub partitions: Option<i32>,
    /// Upstream services this one calls, as NAME=URL (repeatable or
    /// comma-separated).
    #[arg(long = "upstream", env = env::UPSTREAMS, value_delimiter = ',',
          value_parser = parse_upstream)]
    pub upstreams: Vec<(String, String)>,
    /// Run a deliberately different variant (e.g. `item-rename`).
    #[arg(long, env = env::VARIANT)]
    pub variant: Option<String>,
    /// Version label reported by /health and /metrics.
    #[arg(long = "service-version", env = env::VERSION, default_value = "v1")]
    pub version: String,
    /// Time the service needs before it reports ready (e.g. 2s).
    #[arg(long, env = env::WARMUP, default_value = "0s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Name of this replica (for logs and metrics).
    #[arg(long, env = env::REPLICA_ID, default_value = "0")]
    pub replica_id: String,
    /// Run as another instance of the handler, `SERVICE-INSTANCE`: its own
    /// store, consumer group and metrics, its routes under
    /// `/SERVICE-INSTANCE` (a second read model beside the first).
    #[arg(long, env = env::INSTANCE, value_parser = parse_instance)]
    pub instance: Option<String>,
}

impl ServeOptions {
    /// Options with clap's defaults: a replica on any loopback port.
    pub fn new(data: PathBuf, kafka: &str) -> ServeOptions {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data,
            kafka: kafka.to_string(),
            kafka_idempotence: true,
            topic: None,
            partitions: None,
            upstreams: Vec::new(),
            variant: None,
            version: "v1".into(),
            warmup: Duration::ZERO,
            replica_id: "0".into(),
            instance: None,
        }
    }

    /// The upstream URL named `name`, if configured.
    pub fn upstream(&self, name: &str) -> Option<&str> {
        self.upstreams.iter().find(|(n, _)| n == name).map(|(_, url)| url.as_str())
    }

    /// These options as the environment of a `stormproof serve` process:
    /// every variable it reads (unset options and no upstreams are left
    /// out, so the service falls back to its default).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let upstreams: Vec<String> = self.upstreams.iter().map(|(name, url)| format!("{name}={url}")).collect();
        let mut vars = vec![
            (env::LISTEN, self.listen.to_string()),
            (env::DATA, self.data.display().to_string()),
            (env::KAFKA, self.kafka.clone()),
            (env::KAFKA_IDEMPOTENCE, self.kafka_idempotence.to_string()),
            (env::VERSION, self.version.clone()),
            (env::WARMUP, format!("{}ms", self.warmup.as_millis())),
            (env::REPLICA_ID, self.replica_id.clone()),
        ];
        // An empty list is left out: clap reads an empty variable as one empty value.
        let upstreams = (!upstreams.is_empty()).then(|| upstreams.join(","));
        let optional = [(env::UPSTREAMS, upstreams), (env::TOPIC, self.topic.clone()), (env::PARTITIONS, self.partitions.map(|p| p.to_string())), (env::VARIANT, self.variant.clone()), (env::INSTANCE, self.instance.clone())];
        vars.extend(optional.into_iter().filter_map(|(name, value)| value.map(|v| (name, v))));
        vars
    }
}

/// The name a handler `SYSTEM.SERVICE` runs as: itself, or
/// `SYSTEM.SERVICE-INSTANCE` as another instance of it. Its store file,
/// consumer group and metrics carry this name.
pub fn instance_name(handler: &str, instance: Option<&str>) -> String {
    match instance {
        Some(instance) => format!("{handler}-{instance}"),
        None => handler.to_string(),
    }
}

/// An instance name becomes part of a file name, a consumer group and a
/// route: lowercase letters, digits and dashes only.
pub fn parse_instance(s: &str) -> Result<String, String> {
    let fits = !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if fits { Ok(s.to_string()) } else { Err(format!("instance `{s}`: expected 1 to 40 lowercase letters, digits or dashes")) }
}

fn parse_upstream(s: &str) -> Result<(String, String), String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=URL, got `{s}`"))?;
    url::Url::parse(url).map_err(|err| format!("`{url}` is not a URL: {err}"))?;
    Ok((name.trim().to_string(), url.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        options: ServeOptions,
    }

    #[test]
    fn the_environment_a_platform_sets_is_what_serve_reads_back() {
        let mut sent = ServeOptions::new("/data".into(), "broker:9092");
        sent.kafka_idempotence = false;
        sent.topic = Some("orders".into());
        sent.upstreams = vec![("product".into(), "http://127.0.0.1:1234".into())];
        sent.variant = Some("item-rename".into());
        sent.warmup = Duration::from_secs(2);
        sent.replica_id = "order-3".into();
        sent.instance = Some("late".into());
        // One parse with only these variables set: what a child process sees.
        let vars = sent.to_env();
        let read = temp_env(&vars, || Serve::try_parse_from(["serve"]).unwrap().options);
        assert_eq!(format!("{read:?}"), format!("{sent:?}"));
        let alone = ServeOptions::new("/data".into(), "broker:9092");
        let read = temp_env(&alone.to_env(), || Serve::try_parse_from(["serve"]).unwrap().options);
        assert_eq!(format!("{read:?}"), format!("{alone:?}"), "no upstreams, no topic, no variant");
    }

    #[test]
    fn an_instance_is_named_after_its_handler_and_must_fit_a_file_name() {
        assert_eq!(instance_name("shop.mypage", None), "shop.mypage");
        assert_eq!(instance_name("shop.mypage", Some("late")), "shop.mypage-late");
        assert!(parse_instance("late-2").is_ok());
        for bad in ["", "Late", "../x", "a b", "a.b"] {
            assert!(parse_instance(bad).unwrap_err().contains("lowercase letters"), "{bad}");
        }
        let read = temp_env(&[(env::INSTANCE, "../etc".into())], || Serve::try_parse_from(["serve"]).map(|s| s.options.instance));
        assert!(read.is_err(), "an instance that is not a name is refused at start: {read:?}");
    }

    /// Runs `f` with exactly `vars` among the STORMPROOF_* variables.
    fn temp_env<T>(vars: &[(&str, String)], f: impl FnOnce() -> T) -> T {
        let names = [env::LISTEN, env::DATA, env::KAFKA, env::KAFKA_IDEMPOTENCE, env::TOPIC, env::PARTITIONS, env::UPSTREAMS, env::VARIANT, env::VERSION, env::WARMUP, env::REPLICA_ID, env::INSTANCE];
        // SAFETY: unit tests run one at a time (.cargo/config.toml), and no
        // other thread of this test reads the environment.
        unsafe {
            for name in names {
                std::env::remove_var(name);
            }
            for (name, value) in vars {
                std::env::set_var(name, value);
            }
        }
        let out = f();
        unsafe {
            for name in names {
                std::env::remove_var(name);
            }
        }
        out
    }
}
