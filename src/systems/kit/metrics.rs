//! Metrics: what a service counts, served as Prometheus text on `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: String,
}

/// A service's counters.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    consumed: Family<EventLabels, Counter>,
    duplicates: Family<EventLabels, Counter>,
    published: Family<EventLabels, Counter>,
    outbox_pending: Gauge,
}

impl Metrics {
    /// New counters for service `service`.
    pub fn new(service: &str) -> Metrics {
        let mut registry = Registry::with_prefix("stormproof");
        let requests = Family::<RequestLabels, Counter>::default();
        let consumed = Family::<EventLabels, Counter>::default();
        let duplicates = Family::<EventLabels, Counter>::default();
        let published = Family::<EventLabels, Counter>::default();
        let outbox_pending = Gauge::default();
        registry.register("http_requests", format!("HTTP requests answered by {service}"), requests.clone());
        registry.register("events_consumed", "Events applied (first delivery)", consumed.clone());
        registry.register("events_duplicate", "Events received again and skipped", duplicates.clone());
        registry.register("events_published", "Events relayed from the outbox to Kafka", published.clone());
        registry.register("outbox_pending", "Outbox rows not yet relayed", outbox_pending.clone());
        Metrics { registry: Arc::new(registry), requests, consumed, duplicates, published, outbox_pending }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { method: method.to_string(), status }).inc();
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

    /// Sets the number of outbox rows waiting.
    pub fn set_outbox_pending(&self, pending: i64) {
        self.outbox_pending.set(pending);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
