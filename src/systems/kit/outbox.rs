//! The transactional outbox: an aggregate change and its event commit in one
//! SQLite transaction; the relay publishes unsent rows to Kafka and marks
//! them sent. A broker outage therefore delays events but never loses them.
//!
//! Replicas of a service share the outbox table. A relay leases the rows it
//! is about to send, so two replicas do not publish the same row (and if one
//! dies holding a lease, the lease expires and another takes over).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use libsql::Transaction;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use tokio::sync::Notify;

use super::event::{Event, now_rfc3339};
use super::kafka::KafkaSettings;
use super::metrics::Metrics;
use super::store::Store;

const BATCH: i64 = 256;
const LEASE: Duration = Duration::from_secs(15);

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
    pub async fn record<T: Serialize>(&self, tx: &Transaction, key: &str, event: &Event<T>) -> anyhow::Result<()> {
        record(tx, &self.topic, key, event).await
    }

    /// Tells the relay that committed rows are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn record<T: Serialize>(
    tx: &Transaction,
    topic: &str,
    key: &str,
    event: &Event<T>,
) -> anyhow::Result<()> {
    let payload = serde_json::to_string(event)?;
    tx.execute(
        "INSERT INTO outbox (topic, key, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        libsql::params![topic, key, event.event_type.as_str(), payload, now_rfc3339()],
    )
    .await
    .context("cannot record event in the outbox")?;
    Ok(())
}

struct Row {
    seq: i64,
    topic: String,
    key: String,
    event_type: String,
    payload: String,
}

/// Publishes outbox rows to Kafka until the process stops.
pub(crate) struct Relay {
    pub store: Store,
    pub producer: FutureProducer,
    pub owner: String,
    pub wake: Arc<Notify>,
    pub metrics: Metrics,
}

impl Relay {
    pub(crate) fn new(store: Store, kafka: &KafkaSettings, owner: &str, wake: Arc<Notify>, metrics: Metrics) -> anyhow::Result<Relay> {
        let producer = kafka.producer_config(owner).create().context("cannot create the Kafka producer")?;
        Ok(Relay { store, producer, owner: owner.to_string(), wake, metrics })
    }

    /// Relays forever (until the task is dropped).
    pub(crate) async fn run(self) {
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

    /// Sends one leased batch; returns how many rows were sent.
    async fn relay_batch(&self) -> anyhow::Result<usize> {
        let rows = self.lease().await?;
        if rows.is_empty() {
            self.report_pending().await;
            return Ok(0);
        }
        let sends = rows.iter().map(|row| {
            let record = FutureRecord::to(&row.topic).key(&row.key).payload(&row.payload);
            self.producer.send(record, Duration::from_secs(5))
        });
        let results = futures::future::join_all(sends).await;
        let mut sent = Vec::new();
        let mut failure = None;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(_) => {
                    self.metrics.published(&row.event_type);
                    sent.push(row.seq);
                }
                Err((err, _)) => failure = Some(err),
            }
        }
        self.mark_sent(&sent).await?;
        if let Some(err) = failure {
            self.release(&rows).await?;
            anyhow::bail!("cannot publish to Kafka: {err}");
        }
        Ok(sent.len())
    }

    async fn lease(&self) -> anyhow::Result<Vec<Row>> {
        let now = unix_millis();
        let tx = self.store.begin().await?;
        tx.execute(
            "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE seq IN (
                SELECT seq FROM outbox WHERE sent_at IS NULL
                AND (lease_until IS NULL OR lease_until < ?3 OR lease_owner = ?1)
                ORDER BY seq LIMIT ?4)",
            libsql::params![self.owner.as_str(), now + LEASE.as_millis() as i64, now, BATCH],
        )
        .await?;
        let mut found = tx
            .query(
                "SELECT seq, topic, key, event_type, payload FROM outbox
                 WHERE sent_at IS NULL AND lease_owner = ?1 ORDER BY seq",
                libsql::params![self.owner.as_str()],
            )
            .await?;
        let mut rows = Vec::new();
        while let Some(row) = found.next().await? {
            rows.push(Row {
                seq: row.get(0)?,
                topic: row.get(1)?,
                key: row.get(2)?,
                event_type: row.get(3)?,
                payload: row.get(4)?,
            });
        }
        drop(found);
        tx.commit().await?;
        Ok(rows)
    }

    async fn mark_sent(&self, seqs: &[i64]) -> anyhow::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let tx = self.store.begin().await?;
        let now = now_rfc3339();
        for seq in seqs {
            tx.execute("UPDATE outbox SET sent_at = ?1 WHERE seq = ?2", libsql::params![now.as_str(), *seq])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release(&self, rows: &[Row]) -> anyhow::Result<()> {
        let tx = self.store.begin().await?;
        for row in rows {
            tx.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE seq = ?1 AND sent_at IS NULL",
                libsql::params![row.seq],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn report_pending(&self) {
        let Ok(conn) = self.store.connect().await else { return };
        if let Ok(mut rows) = conn.query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL", ()).await {
            if let Ok(Some(row)) = rows.next().await {
                self.metrics.set_outbox_pending(row.get::<i64>(0).unwrap_or(0));
            }
        }
    }
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
