//! Metrics: what a service counts, served as Prometheus text on `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    reason: &'static str,
}

/// A service's counters.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    consumed: Family<EventLabels, Counter>,
    duplicates: Family<EventLabels, Counter>,
    published: Family<EventLabels, Counter>,
    skipped: Family<SkipLabels, Counter>,
    store_retries: Counter,
    assignments: Counter,
    outbox_pending: Gauge,
    outbox_held: Gauge,
    dead_letters: Gauge,
}

impl Metrics {
    /// New counters for service `service`.
    pub fn new(service: &str) -> Metrics {
        let mut registry = Registry::with_prefix("stormproof");
        let requests = Family::<RequestLabels, Counter>::default();
        let consumed = Family::<EventLabels, Counter>::default();
        let duplicates = Family::<EventLabels, Counter>::default();
        let published = Family::<EventLabels, Counter>::default();
        let skipped = Family::<SkipLabels, Counter>::default();
        let (store_retries, assignments) = (Counter::default(), Counter::default());
        let (outbox_pending, outbox_held, dead_letters) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("http_requests", format!("HTTP requests answered by {service}"), requests.clone());
        registry.register("events_consumed", "Events applied (first delivery)", consumed.clone());
        registry.register("events_duplicate", "Events received again and skipped", duplicates.clone());
        registry.register("events_published", "Events relayed from the outbox to Kafka", published.clone());
        registry.register("events_skipped", "Poison records skipped, by reason", skipped.clone());
        registry.register("store_retries", "Attempts to apply an event that the store failed (locked, full)", store_retries.clone());
        registry.register("consumer_assignments", "Partition assignments received by this consumer", assignments.clone());
        registry.register("outbox_pending", "Outbox rows not yet relayed", outbox_pending.clone());
        registry.register("outbox_held", "Outbox rows waiting behind a dead letter of their key", outbox_held.clone());
        registry.register("outbox_dead_letters", "Outbox rows parked after failing permanently", dead_letters.clone());
        Metrics {
            registry: Arc::new(registry),
            requests,
            consumed,
            duplicates,
            published,
            skipped,
            store_retries,
            assignments,
            outbox_pending,
            outbox_held,
            dead_letters,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &'static str, status: u16) {
        self.requests.get_or_create(&RequestLabels { method, status }).inc();
    }

    /// Counts one applied event.
    pub fn consumed(&self, event_type: &str) {
        self.consumed.get_or_create(&EventLabels { event_type: event_type.to_string() }).inc();
    }

    /// Counts one duplicate delivery.
    pub fn duplicate(&self, event_type: &str) {
        self.duplicates.get_or_create(&EventLabels { event_type: event_type.to_string() }).inc();
    }

    /// Counts one relayed event.
    pub fn published(&self, event_type: &str) {
        self.published.get_or_create(&EventLabels { event_type: event_type.to_string() }).inc();
    }

    /// Counts one poison record skipped for `reason`.
    pub fn skipped(&self, reason: &'static str) {
        self.skipped.get_or_create(&SkipLabels { reason }).inc();
    }

    /// Counts one attempt the store failed.
    pub fn store_retry(&self) {
        self.store_retries.inc();
    }

    /// Counts one partition assignment.
    pub fn assigned(&self) {
        self.assignments.inc();
    }

    /// Partition assignments received so far.
    pub fn assignments(&self) -> u64 {
        self.assignments.get()
    }

    /// Sets the outbox figures: rows waiting, rows held behind a dead
    /// letter, rows parked.
    pub fn set_outbox(&self, pending: i64, held: i64, dead_letters: i64) {
        self.outbox_pending.set(pending);
        self.outbox_held.set(held);
        self.dead_letters.set(dead_letters);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
