//! The idempotent consumer: each event's effect and its id commit in one
//! transaction, and the offset is stored only after that commit. A replay
//! (restart, rebalance, broker failover) finds the id and skips the event,
//! so every event is applied exactly once.

use std::future::Future;
use std::time::Duration;

use libsql::Transaction;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::watch;

use super::event::{Incoming, now_rfc3339};
use super::kafka::KafkaSettings;
use super::metrics::Metrics;
use super::outbox::Publisher;
use super::store::Store;

/// What a handler did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed this service's state.
    Applied,
    /// The event is of no interest to this service.
    Ignored,
}

/// A service's reaction to the events it consumes.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event` inside `tx` (which also records the event id).
    fn handle(&self, tx: &Transaction, event: &Incoming) -> impl Future<Output = anyhow::Result<Outcome>> + Send;
}

/// Consumes the system topic in consumer group `group` until `stop` turns
/// true, applying each event once through `handler`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn consume<H: Handler>(
    store: Store,
    kafka: KafkaSettings,
    group: String,
    client_id: String,
    handler: H,
    metrics: Metrics,
    publisher: Publisher,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = kafka.consumer_config(&group, &client_id).create()?;
    consumer.subscribe(&[kafka.topic.as_str()])?;
    let mut conn = store.connect().await?;
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!("consumer {group}: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(event) = message.payload().and_then(Incoming::parse) else {
            tracing::warn!(partition = message.partition(), offset = message.offset(), "skipping a message that is not an event");
            let _ = consumer.store_offset_from_message(&message);
            continue;
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            match apply(&conn, &handler, &event, &metrics).await {
                Ok(()) => {
                    // The handler may have recorded events (delivery does).
                    publisher.wake();
                    break;
                }
                Err(err) => {
                    tracing::warn!("applying {} {}: {err:#}; retrying in {backoff:?}", event.event_type, event.id);
                    if let Ok(fresh) = store.connect().await {
                        conn = fresh;
                    }
                    if *stop.borrow() {
                        return Ok(());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        if let Err(err) = consumer.store_offset_from_message(&message) {
            tracing::warn!("cannot store offset: {err}");
        }
    }
    // Commit what was applied before leaving the group, so the next member
    // starts exactly after it.
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    consumer.unsubscribe();
    Ok(())
}

/// Applies one event payload through `handler` in one transaction of `store`
/// — the consumer loop's step without Kafka. Consumer contract tests feed
/// pact messages to the real handlers here. Unlike the loop, an ignored event
/// is reported rather than retried or skipped silently.
pub async fn apply_payload<H: Handler>(store: &Store, handler: &H, payload: &[u8]) -> anyhow::Result<Outcome> {
    let event = Incoming::parse(payload).ok_or_else(|| anyhow::anyhow!("not an event document (needs eventType and id)"))?;
    let tx = store.begin().await?;
    let outcome = handler.handle(&tx, &event).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn apply<H: Handler>(conn: &libsql::Connection, handler: &H, event: &Incoming, metrics: &Metrics) -> anyhow::Result<()> {
    let tx = Store::begin_on(conn).await?;
    let fresh = tx
        .execute(
            "INSERT OR IGNORE INTO processed_events (event_id, event_type, processed_at) VALUES (?1, ?2, ?3)",
            libsql::params![event.id.as_str(), event.event_type.as_str(), now_rfc3339()],
        )
        .await?;
    if fresh == 0 {
        tx.rollback().await?;
        metrics.duplicate(&event.event_type);
        return Ok(());
    }
    match handler.handle(&tx, event).await? {
        Outcome::Applied => {
            tx.commit().await?;
            metrics.consumed(&event.event_type);
        }
        // Not recording ignored events keeps processed_events small.
        Outcome::Ignored => tx.rollback().await?,
    }
    Ok(())
}
