//! Probes: how the supervisor asks a replica whether it is ready or alive,
//! with Kubernetes' meaning of period, timeout and thresholds.

use std::net::SocketAddr;
use std::time::Duration;

use crate::systems::definition::ProbeDef;

/// What is probed.
#[derive(Debug, Clone)]
pub enum Check {
    /// HTTP GET of a path; 2xx or 3xx passes.
    Http(String),
    /// A TCP connection is accepted (the broker is listening).
    Tcp,
    /// A Kafka Metadata request is answered (the broker is serving). A
    /// broker can keep its port open and serve nothing (tansu 0.6 did after
    /// its storage loop ended), so only a real request tells.
    Kafka,
}

/// A probe with its timing.
#[derive(Debug, Clone)]
pub struct Probe {
    /// What is probed.
    pub check: Check,
    /// Wait before the first probe.
    pub initial_delay: Duration,
    /// Time between probes.
    pub period: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Consecutive failures that fail the probe.
    pub failure_threshold: u32,
    /// Consecutive successes that pass it.
    pub success_threshold: u32,
}

impl Probe {
    /// From a system definition's probe.
    pub fn http(def: &ProbeDef) -> Probe {
        Probe {
            check: Check::Http(def.path.clone()),
            initial_delay: def.initial_delay,
            period: def.period,
            timeout: def.timeout,
            failure_threshold: def.failure_threshold.max(1),
            success_threshold: def.success_threshold.max(1),
        }
    }

    /// A TCP probe every `period`.
    pub fn tcp(period: Duration) -> Probe {
        Probe { check: Check::Tcp, initial_delay: Duration::ZERO, period, timeout: Duration::from_secs(1), failure_threshold: 3, success_threshold: 1 }
    }

    /// A Kafka Metadata probe: restarts a broker that stopped serving.
    pub fn kafka() -> Probe {
        Probe {
            check: Check::Kafka,
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
            failure_threshold: 3,
            success_threshold: 1,
        }
    }

    /// Runs the probe once against `addr`; a failure says what it saw
    /// (`GET /health/ready → 503 Service Unavailable`).
    pub async fn run(&self, client: &reqwest::Client, addr: SocketAddr) -> Result<(), String> {
        let passed = match &self.check {
            Check::Tcp => matches!(tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_))),
            Check::Kafka => {
                let timeout = self.timeout;
                // librdkafka's metadata call blocks.
                tokio::task::spawn_blocking(move || {
                    use rdkafka::consumer::{BaseConsumer, Consumer};
                    let client: Result<BaseConsumer, _> = rdkafka::ClientConfig::new().set("bootstrap.servers", addr.to_string()).set("log_level", "0").create();
                    client.map(|c| c.fetch_metadata(None, timeout).is_ok()).unwrap_or(false)
                })
                .await
                .unwrap_or(false)
            }
            Check::Http(path) => {
                let url = format!("http://{addr}{path}");
                return match client.get(url).timeout(self.timeout).send().await {
                    Ok(response) if response.status().is_success() || response.status().is_redirection() => Ok(()),
                    Ok(response) => Err(format!("GET {path} → {}", response.status())),
                    Err(err) if err.is_timeout() => Err(format!("GET {path}: no answer within {:?}", self.timeout)),
                    Err(err) if err.is_connect() => Err(format!("GET {path}: connection refused")),
                    Err(err) => Err(format!("GET {path}: {err}")),
                };
            }
        };
        if passed { Ok(()) } else { Err(format!("{:?} probe failed", self.check).to_lowercase()) }
    }
}

/// Consecutive results turned into a verdict, as the kubelet counts them.
#[derive(Debug, Default)]
pub struct Counter {
    successes: u32,
    failures: u32,
}

impl Counter {
    /// Records one result; returns `Some(passing)` when a threshold is crossed.
    pub fn record(&mut self, ok: bool, probe: &Probe) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes == probe.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures == probe.failure_threshold).then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_need_consecutive_results() {
        let mut probe = Probe::tcp(Duration::from_secs(1));
        probe.failure_threshold = 3;
        probe.success_threshold = 2;
        let mut counter = Counter::default();
        assert_eq!(counter.record(false, &probe), None);
        assert_eq!(counter.record(false, &probe), None);
        assert_eq!(counter.record(true, &probe), None, "a success resets the failure run");
        assert_eq!(counter.record(false, &probe), None);
        assert_eq!(counter.record(false, &probe), None);
        assert_eq!(counter.record(false, &probe), Some(false));
        assert_eq!(counter.record(true, &probe), None);
        assert_eq!(counter.record(true, &probe), Some(true));
    }
}
