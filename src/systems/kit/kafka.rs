//! Kafka client settings shared by the outbox relay and the consumers, and
//! topic creation (not every client auto-creates topics, so a system creates
//! its own at start-up).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// The variant of a consuming service whose new consumer group starts at
/// the topic's end (`auto.offset.reset=latest`): deployed late, it misses
/// every retained event — what a read model must not do.
pub const FROM_LATEST: &str = "from-latest";

/// Where the broker is and which topic a system's events go to.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// The system's event topic.
    pub topic: String,
    /// Its partition count (events of one flow share a key, so a partition).
    pub partitions: i32,
    /// Use the idempotent producer (on for every broker: the embedded one
    /// keeps producer epochs in SQLite across restarts, KIP-360 bumps
    /// included — `tests/broker.rs`). Off only where a caller asks.
    pub idempotent: bool,
}

impl KafkaSettings {
    /// The settings a built-in system's service runs with: the topic and
    /// partitions of its definition unless the platform names others (a
    /// folder may reuse these handlers).
    pub fn for_system(system: &str, opts: &super::ServeOptions) -> anyhow::Result<Self> {
        let def = crate::systems::definition::SystemDef::builtin(system)?;
        let topic = opts.topic.clone().unwrap_or(def.topic);
        let partitions = opts.partitions.unwrap_or(def.partitions);
        Ok(KafkaSettings { bootstrap: opts.kafka.clone(), topic, partitions, idempotent: opts.kafka_idempotence })
    }
}

impl KafkaSettings {
    /// Configuration for an idempotent producer that waits for all replicas;
    /// `client_id` names it to the broker (and to broker faults).
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", client_id)
            .set("enable.idempotence", if self.idempotent { "true" } else { "false" })
            .set("acks", "all")
            // Without idempotence, one request in flight keeps a partition's
            // events in order across retries.
            .set("max.in.flight.requests.per.connection", if self.idempotent { "5" } else { "1" })
            .set("linger.ms", "2")
            // Below the outbox lease (15 s): a relay that cannot reach the
            // broker gives its leased rows back before another may take them.
            .set("message.timeout.ms", "10000")
            .set("reconnect.backoff.max.ms", "1000");
        config
    }

    /// Configuration for a consumer in `group`. Offsets are stored only after
    /// an event's effect has committed, and committed from there in the
    /// background.
    pub fn consumer_config(&self, group: &str, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "500")
            // A read model deployed late builds its view from retained events.
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("reconnect.backoff.max.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "5000");
        config
    }
}

/// Creates the topic if it does not exist yet; retries while the broker is
/// still starting.
pub async fn ensure_topic(settings: &KafkaSettings) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap)
        .create()?;
    let topic = NewTopic::new(&settings.topic, settings.partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let mut last_error = String::new();
    for _ in 0..60 {
        match admin.create_topics([&topic], &options).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | None => return Ok(()),
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => return Ok(()),
                Some(Err((_, code))) => last_error = code.to_string(),
            },
            Err(err) => last_error = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("cannot create topic {} on {}: {last_error}", settings.topic, settings.bootstrap)
}
