//! The transactional outbox: an aggregate change and its event commit in one
//! SQLite transaction; the relay publishes unsent rows to Kafka and marks
//! them sent. A broker outage therefore delays events but never loses them.
//!
//! Replicas of a service share the outbox table. A relay leases the rows it
//! is about to send, so two replicas do not publish the same row (and if one
//! dies holding a lease, the lease expires and another takes over).
//!
//! A row that fails permanently (too large for the broker, rejected as
//! invalid) is parked in the dead-letter table instead of being retried
//! forever. The key's later rows wait behind it — counted as held, never
//! sent ahead of it — so a flow's events are never reordered.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::bounds::MAX_EVENT_BYTES;
use super::event::{Event, now_rfc3339};
use super::kafka::KafkaSettings;
use super::metrics::Metrics;
use super::store::{Store, Tx};

const BATCH: i64 = 256;
const LEASE: Duration = Duration::from_secs(15);
/// Rows sent one at a time after a permanent failure in a batch, to find
/// the row that failed.
const ISOLATED_SENDS: u32 = 64;

/// An event too large for the broker: it could never be sent.
#[derive(Debug, thiserror::Error)]
#[error("the {event_type} event is {bytes} bytes, more than the {MAX_EVENT_BYTES} an event may have")]
pub struct EventTooLarge {
    /// Its type.
    pub event_type: String,
    /// Its size as JSON.
    pub bytes: usize,
}

/// Records events in the outbox of a service and wakes its relay.
#[derive(Clone)]
pub struct Publisher {
    topic: String,
    wake: Arc<Notify>,
}

impl Publisher {
    pub(crate) fn new(topic: &str, wake: Arc<Notify>) -> Publisher {
        Publisher { topic: topic.to_string(), wake }
    }

    /// A publisher with no relay behind it: events stay in the outbox
    /// (consumer contract tests run handlers this way).
    pub(crate) fn detached(topic: &str) -> Publisher {
        Publisher::new(topic, Arc::default())
    }

    /// Records `event` with Kafka key `key` inside `tx`; it is published once
    /// `tx` commits.
    pub async fn record<T: Serialize>(&self, tx: &Tx, key: &str, event: &Event<T>) -> anyhow::Result<()> {
        record(tx, &self.topic, key, event).await
    }

    /// Tells the relay that committed rows are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn record<T: Serialize>(tx: &Tx, topic: &str, key: &str, event: &Event<T>) -> anyhow::Result<()> {
    let payload = serde_json::to_string(event)?;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(EventTooLarge { event_type: event.event_type.clone(), bytes: payload.len() }.into());
    }
    tx.execute(
        "INSERT INTO outbox (topic, key, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        libsql::params![topic, key, event.event_type.as_str(), payload, now_rfc3339()],
    )
    .await
    .context("cannot record event in the outbox")?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Row {
    seq: i64,
    topic: String,
    key: String,
    event_type: String,
    payload: String,
}

/// A row parked after failing permanently.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Its outbox sequence number.
    pub seq: i64,
    /// Its Kafka key (the flow's correlation key).
    pub key: String,
    /// Its event type.
    pub event_type: String,
    /// Its size.
    pub payload_bytes: i64,
    /// Why it cannot be sent.
    pub error: String,
    /// When it was parked.
    pub parked_at: String,
}

/// The state of a service's outbox (`GET /_stormproof/outbox`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutboxReport {
    /// Rows not yet sent, dead letters and held rows included.
    pub pending: i64,
    /// Rows waiting behind a dead letter of their key.
    pub held: i64,
    /// Parked rows (the first 20).
    pub dead_letters: Vec<DeadLetter>,
    /// How many rows are parked.
    pub dead_letter_count: i64,
}

/// The outbox's figures, read from `store`.
pub async fn report(store: &Store) -> anyhow::Result<OutboxReport> {
    let conn = store.read().await?;
    let count = |sql: &'static str| async { conn.value::<i64>(sql, ()).await.map(Option::unwrap_or_default) };
    Ok(OutboxReport {
        pending: count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").await?,
        held: count(
            "SELECT COUNT(*) FROM outbox o WHERE o.sent_at IS NULL
             AND EXISTS (SELECT 1 FROM outbox_dead_letters d WHERE d.topic = o.topic AND d.key = o.key)
             AND NOT EXISTS (SELECT 1 FROM outbox_dead_letters d WHERE d.seq = o.seq)",
        )
        .await?,
        dead_letter_count: count("SELECT COUNT(*) FROM outbox_dead_letters").await?,
        dead_letters: conn
            .all(
                r#"SELECT seq, key, event_type AS "eventType", payload_bytes AS "payloadBytes", error, parked_at AS "parkedAt"
                 FROM outbox_dead_letters ORDER BY seq LIMIT 20"#,
                (),
            )
            .await?,
    })
}

/// Publishes outbox rows to Kafka until the process stops.
pub(crate) struct Relay {
    pub store: Store,
    pub producer: FutureProducer,
    pub owner: String,
    pub wake: Arc<Notify>,
    pub metrics: Metrics,
    /// Rows left to send one at a time (after a permanent failure in a batch).
    isolated: u32,
}

/// How one batch went.
#[derive(Default)]
struct Sent {
    sent: Vec<i64>,
    parked: Vec<(i64, String)>,
    /// A transient failure: the batch's unsent rows are retried later.
    failure: Option<KafkaError>,
}

impl Relay {
    pub(crate) fn new(store: Store, kafka: &KafkaSettings, owner: &str, wake: Arc<Notify>, metrics: Metrics) -> anyhow::Result<Relay> {
        let producer = kafka.producer_config(owner).create().context("cannot create the Kafka producer")?;
        Ok(Relay { store, producer, owner: owner.to_string(), wake, metrics, isolated: 0 })
    }

    /// Relays forever (until the task is dropped).
    pub(crate) async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.relay_batch().await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    let _ = tokio::time::timeout(Duration::from_millis(250), self.wake.notified()).await;
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!("outbox relay: {err:#}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Sends one leased batch; returns how many rows were sent or parked.
    async fn relay_batch(&mut self) -> anyhow::Result<usize> {
        let alone = self.isolated > 0;
        let rows = self.lease(if alone { 1 } else { BATCH }).await?;
        if rows.is_empty() {
            self.isolated = 0;
            self.report().await;
            return Ok(0);
        }
        let outcome = self.send(&rows, alone).await;
        self.settle(&rows, &outcome).await?;
        if alone {
            self.isolated = if outcome.parked.is_empty() { self.isolated - 1 } else { 0 };
        }
        if let Some(err) = outcome.failure {
            anyhow::bail!("cannot publish to Kafka: {err}");
        }
        Ok(outcome.sent.len() + outcome.parked.len())
    }

    /// Enqueues `rows` in order and waits for their delivery. Once a row of
    /// a key fails, no later row of that key is enqueued in this batch.
    async fn send(&mut self, rows: &[Row], alone: bool) -> Sent {
        let mut outcome = Sent::default();
        let mut blocked: HashSet<&str> = HashSet::new();
        let mut deliveries = Vec::new();
        for row in rows {
            if blocked.contains(row.key.as_str()) {
                continue;
            }
            if row.payload.len() > MAX_EVENT_BYTES {
                let error = format!("{} bytes is more than the {MAX_EVENT_BYTES} an event may have", row.payload.len());
                outcome.parked.push((row.seq, error));
                blocked.insert(&row.key);
                continue;
            }
            let headers = OwnedHeaders::new().insert(Header { key: "type", value: Some(row.event_type.as_str()) });
            let record = FutureRecord::to(&row.topic).key(&row.key).payload(&row.payload).headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push((row, delivery)),
                Err((err, _)) if permanent(&err) => {
                    outcome.parked.push((row.seq, err.to_string()));
                    blocked.insert(&row.key);
                }
                Err((err, _)) => {
                    // Queue full or the like: the rest of the batch waits.
                    outcome.failure = Some(err);
                    break;
                }
            }
        }
        let (rows, deliveries): (Vec<&Row>, Vec<_>) = deliveries.into_iter().unzip();
        for (row, result) in rows.into_iter().zip(futures::future::join_all(deliveries).await) {
            match result {
                Ok(Ok(_)) => {
                    self.metrics.published(&row.event_type);
                    outcome.sent.push(row.seq);
                }
                Ok(Err((err, _))) if permanent(&err) && alone => outcome.parked.push((row.seq, err.to_string())),
                Ok(Err((err, _))) if permanent(&err) => {
                    // The broker rejected a batch: find the row by sending one at a time.
                    tracing::warn!("the broker rejected an outbox batch ({err}); sending one row at a time");
                    self.isolated = ISOLATED_SENDS;
                }
                Ok(Err((err, _))) => outcome.failure = Some(err),
                Err(_) => outcome.failure = Some(KafkaError::Canceled),
            }
        }
        outcome
    }

    async fn lease(&self, limit: i64) -> anyhow::Result<Vec<Row>> {
        let now = unix_millis();
        let tx = self.store.begin().await?;
        tx.execute(
            "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE seq IN (
                SELECT seq FROM outbox WHERE sent_at IS NULL
                AND (lease_until IS NULL OR lease_until < ?3 OR lease_owner = ?1)
                AND NOT EXISTS (SELECT 1 FROM outbox_dead_letters d WHERE d.topic = outbox.topic AND d.key = outbox.key)
                ORDER BY seq LIMIT ?4)",
            libsql::params![self.owner.as_str(), now + LEASE.as_millis() as i64, now, limit],
        )
        .await?;
        let rows = tx
            .all(
                "SELECT seq, topic, key, event_type, payload FROM outbox
                 WHERE sent_at IS NULL AND lease_owner = ?1
                 AND NOT EXISTS (SELECT 1 FROM outbox_dead_letters d WHERE d.topic = outbox.topic AND d.key = outbox.key)
                 ORDER BY seq",
                libsql::params![self.owner.as_str()],
            )
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// In one transaction: marks the sent rows, parks the rows that failed
    /// permanently (the outbox keeps them, and their keys' later rows wait
    /// behind them) and gives up the lease on the rest.
    async fn settle(&self, rows: &[Row], outcome: &Sent) -> anyhow::Result<()> {
        let tx = self.store.begin().await?;
        let now = now_rfc3339();
        for seq in &outcome.sent {
            tx.execute("UPDATE outbox SET sent_at = ?1 WHERE seq = ?2", libsql::params![now.as_str(), *seq]).await?;
        }
        for (seq, error) in &outcome.parked {
            let Some(row) = rows.iter().find(|r| r.seq == *seq) else { continue };
            tracing::error!(seq, key = row.key.as_str(), event_type = row.event_type.as_str(), "outbox row parked as a dead letter: {error}");
            tx.execute(
                "INSERT OR IGNORE INTO outbox_dead_letters (seq, topic, key, event_type, payload_bytes, error, parked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                libsql::params![*seq, row.topic.as_str(), row.key.as_str(), row.event_type.as_str(), row.payload.len() as i64, error.as_str(), now.as_str()],
            )
            .await?;
        }
        for row in rows.iter().filter(|r| !outcome.sent.contains(&r.seq)) {
            tx.execute("UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE seq = ?1", libsql::params![row.seq]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn report(&self) {
        if let Ok(report) = report(&self.store).await {
            self.metrics.set_outbox(report.pending, report.held, report.dead_letter_count);
        }
    }
}

/// Whether a send can never succeed, however often it is retried.
fn permanent(err: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        err.rdkafka_error_code(),
        Some(InvalidMessage | InvalidMessageSize | MessageSizeTooLarge | InvalidTopic | MessageBatchTooLarge | InvalidRecord)
    )
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
