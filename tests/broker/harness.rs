//! The embedded broker as its own process (`stormproof broker`, as the local
//! platform runs it) on a fixed port and data dir, so that it can be killed
//! and restarted under its clients; and the rdkafka clients the tests use.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use stormproof::broker::FaultClient;
use stormproof::systems::kit::{KafkaSettings, ensure_topic};

pub const BIN: &str = env!("CARGO_BIN_EXE_stormproof");

/// A broker process with its data dir; killed when dropped.
pub struct BrokerProcess {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub faults: FaultClient,
    faults_addr: SocketAddr,
    token: String,
    child: Option<Child>,
    pub starts: u32,
}

impl BrokerProcess {
    /// Starts a broker with an empty data dir and waits until it serves.
    pub fn start() -> BrokerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let (addr, faults_addr) = (fixed_port(), fixed_port());
        // A token of this broker's own, as `up` gives its broker the run's.
        let token = format!("test-{}-{}", std::process::id(), faults_addr.port());
        let faults = FaultClient::new(format!("http://{faults_addr}"), token.clone());
        let mut broker = BrokerProcess { dir, addr, faults, faults_addr, token, child: None, starts: 0 };
        broker.restart();
        broker
    }

    /// Starts the broker again on the same port and data (after a kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is still running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new(BIN)
            .args(["broker", "--listen", &self.addr.to_string(), "--data"])
            .arg(self.dir.path().join("data"))
            .args(["--faults", &self.faults_addr.to_string()])
            .env("STORMPROOF_BROKER_TOKEN", &self.token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
        self.starts += 1;
        wait_serving(&self.bootstrap(), Duration::from_secs(30));
    }

    /// The bearer token its fault endpoint takes.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the broker process is still the one started last (it did not exit).
    pub fn still_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn faults_addr(&self) -> SocketAddr {
        self.faults_addr
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn settings(&self, topic: &str, partitions: i32) -> KafkaSettings {
        KafkaSettings { bootstrap: self.bootstrap(), topic: topic.into(), partitions, idempotent: true }
    }

    /// Creates `topic` and returns the kit's settings for it.
    pub async fn topic(&self, topic: &str, partitions: i32) -> KafkaSettings {
        let settings = self.settings(topic, partitions);
        ensure_topic(&settings).await.expect("create the topic");
        settings
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port below the kernel's ephemeral range (as `up` picks the
/// broker's): it stays free across a restart.
fn fixed_port() -> SocketAddr {
    loop {
        let port = 10000 + fastrand::u16(0..20000);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
}

/// Whether a Kafka Metadata request is answered within `timeout` (the
/// supervisor's liveness probe).
pub fn metadata_answered(bootstrap: &str, timeout: Duration) -> bool {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("log_level", "0").create().unwrap();
    consumer.fetch_metadata(None, timeout).is_ok()
}

fn wait_serving(bootstrap: &str, timeout: Duration) {
    let start = Instant::now();
    while !metadata_answered(bootstrap, Duration::from_secs(1)) {
        assert!(start.elapsed() < timeout, "the broker at {bootstrap} did not serve within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counts a consumer's assignments (each ends a rebalance).
#[derive(Clone, Default)]
pub struct Rebalances {
    pub assigned: Arc<Mutex<Vec<(Instant, usize)>>>,
}

impl Rebalances {
    pub fn count(&self) -> usize {
        self.assigned.lock().unwrap().iter().filter(|(_, n)| *n > 0).count()
    }

    pub fn first(&self) -> Option<Instant> {
        self.assigned.lock().unwrap().iter().find(|(_, n)| *n > 0).map(|(at, _)| *at)
    }
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.assigned.lock().unwrap().push((Instant::now(), partitions.count()));
        }
    }
}

/// A consumer of `topic` in `group` with the kit's settings, counting its
/// rebalances and the times its messages arrive.
pub struct Receiver {
    pub rebalances: Rebalances,
    pub arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub fn start(settings: &KafkaSettings, group: &str, client_id: &str) -> Receiver {
        Self::with_config(settings.consumer_config(group, client_id), &settings.topic)
    }

    pub fn with_config(config: ClientConfig, topic: &str) -> Receiver {
        let rebalances = Rebalances::default();
        let consumer: StreamConsumer<Rebalances> = config.create_with_context(rebalances.clone()).expect("consumer");
        consumer.subscribe(&[topic]).unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = arrivals.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(message) = consumer.recv().await {
                    let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
                    seen.lock().unwrap().push((Instant::now(), payload));
                }
            }
        });
        Receiver { rebalances, arrivals, task }
    }

    pub fn received(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    pub fn payloads(&self) -> Vec<String> {
        self.arrivals.lock().unwrap().iter().map(|(_, p)| p.clone()).collect()
    }

    /// The longest time between two arrivals (or from `from` to the first)
    /// within `[from, to]`.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let arrivals = self.arrivals.lock().unwrap();
        let mut last = from;
        let mut longest = Duration::ZERO;
        for (at, _) in arrivals.iter().filter(|(at, _)| *at >= from && *at <= to) {
            longest = longest.max(at.duration_since(last));
            last = *at;
        }
        longest.max(to.duration_since(last))
    }

}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends a message every `every` to `topic` until stopped, with a counter
/// as payload.
pub struct Ticker {
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    pub fn start(bootstrap: &str, topic: &str, every: Duration) -> Ticker {
        let producer: rdkafka::producer::FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("client.id", "ticker").set("linger.ms", "0").create().unwrap();
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            for n in 0u64.. {
                let key = n.to_string();
                let _ = producer.send_result(rdkafka::producer::FutureRecord::to(&topic).key(&key).payload(&key));
                tokio::time::sleep(every).await;
            }
        });
        Ticker { task }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Waits until `check` holds, up to `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Produce with no records, sent as raw bytes (rdkafka would not send
/// it) by `client_id`, and the error code its partition is answered with.
pub fn raw_produce(bootstrap: &str, client_id: &str, topic: &str) -> i16 {
    use nisshi_sans_io::produce_request::{PartitionProduceData, TopicProduceData};
    use nisshi_sans_io::{Body, Frame, Header, ProduceRequest};
    use std::io::{Read, Write};
    let body = ProduceRequest::default()
        .transactional_id(None)
        .acks(-1)
        .timeout_ms(1000)
        .topic_data(Some(vec![TopicProduceData::default().name(topic.into()).partition_data(Some(vec![PartitionProduceData::default().index(0).records(None)]))]));
    let header = Header::Request { api_key: 0, api_version: 7, correlation_id: 7, client_id: Some(client_id.into()) };
    let request = Frame::request(header, Body::from(body)).unwrap();
    let mut stream = std::net::TcpStream::connect(bootstrap).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(&request).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("an answer to the Produce");
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).unwrap();
    let frame = Frame::response_from_bytes(&[&size[..], &response[..]].concat()[..], 0, 7).unwrap();
    match frame.body {
        Body::ProduceResponse(r) => r.responses.unwrap_or_default()[0].partition_responses.clone().unwrap_or_default()[0].error_code,
        other => panic!("not a Produce response: {other:?}"),
    }
}
