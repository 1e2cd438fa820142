//! The idempotent consumer: each event's effect and its id commit in one
//! transaction, and the offset is stored only after that commit. A replay
//! (restart, rebalance, broker failover) finds the id and skips the event,
//! so every event is applied exactly once.
//!
//! A poison record (not an event, an unknown type, malformed, naming
//! something that does not exist, or one the handler fails or panics on)
//! is skipped with one log line and a counter: it never blocks its
//! partition. A failing store (locked, full) is retried with backoff, and
//! when it stays down the record is sought back to and polled again, so the
//! member keeps polling within `max.poll.interval.ms` and is never evicted
//! from its group in a loop.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Message, Offset};
use tokio::sync::watch;

use super::event::{Incoming, Poison, now_rfc3339};
use super::kafka::KafkaSettings;
use super::metrics::Metrics;
use super::outbox::Publisher;
use super::store::{Store, Tx, is_store_failure};
use super::switches::Switches;

/// What a handler did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed this service's state.
    Applied,
    /// The event is of no interest to this service.
    Ignored,
    /// The event is poison: skipped, logged and counted.
    Skipped(Poison),
}

/// A service's reaction to the events it consumes.
pub trait Handler: Send + Sync + 'static {
    /// Every event type of the system; a record of any other type is poison.
    const EVENT_TYPES: &'static [&'static str];

    /// Applies `event` inside `tx` (which also records the event id).
    fn handle(&self, tx: &Tx, event: &Incoming) -> impl Future<Output = anyhow::Result<Outcome>> + Send;
}

/// Time spent retrying one event against a failing store before the
/// consumer polls again; well inside `max.poll.interval.ms` (10 s).
const RETRY_BUDGET: Duration = Duration::from_secs(4);
/// How long one attempt waits for the write lock.
const LOCK_WAIT: Duration = Duration::from_secs(1);
/// Attempts before an event the handler keeps failing on (not the store) is
/// skipped as poison.
const HANDLER_ATTEMPTS: u32 = 3;

/// A consumer of the system topic and what it applies events with.
pub(crate) struct Inbox<H> {
    pub store: Store,
    pub kafka: KafkaSettings,
    pub group: String,
    /// A group without committed offsets starts at the topic's end (else its start).
    pub from_latest: bool,
    /// Reads every partition itself and applies without the inbox's check
    /// ([`super::app::Group::Unshared`]).
    pub unshared: bool,
    pub client_id: String,
    pub handler: H,
    pub metrics: Metrics,
    pub publisher: Publisher,
    pub switches: Switches,
}

/// Counts partition assignments: a member evicted and rejoining in a loop
/// shows as a climbing count. While `rebuild` holds, assigned partitions
/// are read from their earliest retained offset.
struct Context {
    metrics: Metrics,
    rebuild: Arc<AtomicBool>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            self.metrics.assigned();
            if self.rebuild.load(Ordering::Relaxed) {
                rewind(consumer, assigned);
            }
        }
    }
}

/// Assigns `assigned` again, each partition from its earliest retained
/// offset (the group's committed offsets are for a store that is gone).
fn rewind(consumer: &rdkafka::consumer::BaseConsumer<Context>, assigned: &rdkafka::TopicPartitionList) {
    let mut from_start = rdkafka::TopicPartitionList::new();
    for element in assigned.elements() {
        let _ = from_start.add_partition_offset(element.topic(), element.partition(), Offset::Beginning);
    }
    match consumer.assign(&from_start) {
        Ok(()) => tracing::info!("the store has applied no event: rebuilding from the earliest retained offset of {} partitions", from_start.count()),
        Err(err) => tracing::warn!("cannot rewind to the earliest offsets: {err}"),
    }
}

/// Whether the store has applied no event yet: processed_events records
/// every applied event in the same transaction as its effect, so an empty
/// one means the read model's tables hold nothing the topic has not.
async fn applied_nothing(store: &Store) -> anyhow::Result<bool> {
    let applied: Option<i64> = store.read().await?.value("SELECT COUNT(*) FROM processed_events", ()).await?;
    Ok(applied.unwrap_or(0) == 0)
}

/// What became of one record.
enum Step {
    Done,
    Skip(Poison),
    /// The store kept failing: poll again and redeliver this record.
    Later,
    Stopping,
}

impl<H: Handler> Inbox<H> {
    /// Consumes the system topic until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        // A store that lost its data (a new volume, a wiped file) while the
        // group kept its offsets would otherwise start blind at those
        // offsets. Not for the broken variants: from-latest must show its
        // flaw, and an unshared reader assigns itself.
        let rebuild = !self.from_latest && !self.unshared && applied_nothing(&self.store).await?;
        let rebuild = Arc::new(AtomicBool::new(rebuild));
        let context = Context { metrics: self.metrics.clone(), rebuild: rebuild.clone() };
        let mut config = self.kafka.consumer_config(&self.group, &self.client_id);
        if self.from_latest {
            config.set("auto.offset.reset", "latest");
        }
        let consumer: StreamConsumer<Context> = config.create_with_context(context)?;
        if self.unshared {
            let mut all = rdkafka::TopicPartitionList::new();
            for partition in 0..self.kafka.partitions {
                all.add_partition_offset(&self.kafka.topic, partition, Offset::Stored)?;
            }
            consumer.assign(&all)?;
            self.metrics.assigned();
        } else {
            consumer.subscribe(&[self.kafka.topic.as_str()])?;
        }
        loop {
            // An experiment's way to kill the consumer task.
            assert!(!self.switches.consumer_crashed(), "consumer task killed through /_stormproof/crash-consumer");
            let message = tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(err) => {
                    tracing::warn!("consumer {}: {err}", self.group);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let step = match message.payload().map(Incoming::parse).unwrap_or(Err(Poison::Empty)) {
                Err(poison) => Step::Skip(poison),
                Ok(event) if !H::EVENT_TYPES.contains(&event.event_type.as_str()) => Step::Skip(Poison::UnknownType(event.event_type)),
                Ok(event) => self.apply_with_retry(&event, &stop).await,
            };
            match step {
                Step::Done => rebuild.store(false, Ordering::Relaxed),
                Step::Skip(poison) => {
                    tracing::warn!(partition = message.partition(), offset = message.offset(), reason = poison.label(), "skipping a poison record: {poison}");
                    self.metrics.skipped(poison.label());
                }
                Step::Later => {
                    let offset = Offset::Offset(message.offset());
                    consumer
                        .seek(message.topic(), message.partition(), offset, Duration::from_secs(2))
                        .map_err(|err| anyhow::anyhow!("cannot seek back to a record the store did not take: {err}"))?;
                    continue;
                }
                Step::Stopping => return Ok(()),
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

    async fn apply_with_retry(&self, event: &Incoming, stop: &watch::Receiver<bool>) -> Step {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut failures = 0;
        loop {
            let attempt = AssertUnwindSafe(apply(&self.store, &self.handler, event, &self.metrics, LOCK_WAIT, !self.unshared)).catch_unwind().await;
            match attempt {
                Err(panic) => return Step::Skip(Poison::Panicked(panic_text(&panic))),
                Ok(Ok(Outcome::Skipped(poison))) => return Step::Skip(poison),
                Ok(Ok(_)) => {
                    // The handler may have recorded events (delivery does).
                    self.publisher.wake();
                    return Step::Done;
                }
                Ok(Err(err)) if is_store_failure(&err) => {
                    self.metrics.store_retry();
                    if started.elapsed() + pause > RETRY_BUDGET {
                        tracing::warn!("applying {} {}: {err:#}; polling again and redelivering it", event.event_type, event.id);
                        return Step::Later;
                    }
                    tracing::debug!("applying {} {}: {err:#}; retrying in {pause:?}", event.event_type, event.id);
                }
                Ok(Err(err)) => {
                    failures += 1;
                    if failures >= HANDLER_ATTEMPTS {
                        return Step::Skip(Poison::Failed(format!("{err:#}")));
                    }
                    tracing::warn!("applying {} {}: {err:#}; retrying in {pause:?}", event.event_type, event.id);
                }
            }
            if *stop.borrow() {
                return Step::Stopping;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// The message a panic carries.
#[allow(clippy::borrowed_box)]
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Applies one event payload through `handler` in one transaction of `store`
/// — the consumer loop's step without Kafka. Consumer contract tests feed
/// pact messages to the real handlers here. Unlike the loop, an ignored or
/// poison event is reported rather than skipped silently.
pub async fn apply_payload<H: Handler>(store: &Store, handler: &H, payload: &[u8]) -> anyhow::Result<Outcome> {
    let event = Incoming::parse(payload).map_err(|poison| anyhow::anyhow!("{poison}"))?;
    let tx = store.begin().await?;
    let outcome = handler.handle(&tx, &event).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn apply<H: Handler>(store: &Store, handler: &H, event: &Incoming, metrics: &Metrics, wait: Duration, dedupe: bool) -> anyhow::Result<Outcome> {
    let tx = store.begin_within(wait).await?;
    if !dedupe {
        let outcome = handler.handle(&tx, event).await?;
        tx.commit().await?;
        return Ok(outcome);
    }
    let fresh = tx
        .execute(
            "INSERT OR IGNORE INTO processed_events (event_id, event_type, processed_at) VALUES (?1, ?2, ?3)",
            libsql::params![event.id.as_str(), event.event_type.as_str(), now_rfc3339()],
        )
        .await?;
    if fresh == 0 {
        tx.rollback().await?;
        metrics.duplicate(&event.event_type);
        return Ok(Outcome::Ignored);
    }
    let outcome = handler.handle(&tx, event).await?;
    match outcome {
        Outcome::Applied => {
            tx.commit().await?;
            metrics.consumed(&event.event_type);
        }
        // Not recording ignored events keeps processed_events small.
        Outcome::Ignored | Outcome::Skipped(_) => tx.rollback().await?,
    }
    Ok(outcome)
}
