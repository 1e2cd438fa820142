//! Event inspection: the system's topic as the experiment's flows left it.
//! A flow is a value the experiment's own steps captured (an order id); an
//! event belongs to it when its correlation key field holds that value.
//! Every such event must carry `eventType`, `id` and `timestamp`, be keyed
//! by the correlation key, carry the Kafka header `type: <eventType>`, and
//! all events of one flow must sit on one partition in their causal order.
//!
//! The topic is read with the harness's own consumer: it is assigned every
//! partition from the end offsets noted when the experiment began, and it
//! never joins a group nor commits, so the services' groups never see it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use super::experiment::EventsProbe;
use super::probe::{Context, Found};

const TIMEOUT: Duration = Duration::from_secs(3);
/// How long one look may take to read up to the end offsets it saw.
const READ_PATIENCE: Duration = Duration::from_secs(10);
/// The Kafka header that names an event's type (consumers filter on it).
pub const TYPE_HEADER: &str = "type";
/// Offenders quoted in the evidence (the count says how many there were).
const QUOTED: usize = 3;

/// One record of the topic, as the rules need it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Its Kafka key, as text.
    pub key: Option<String>,
    /// Its `type` header, as text.
    pub type_header: Option<String>,
    /// Its value, when it is JSON.
    pub value: Option<Value>,
}

/// Where a system's topic is: a reader is made from it only for an
/// experiment that inspects events (a Kafka client costs threads and
/// connections).
#[derive(Debug, Clone)]
pub struct EventSource {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// The system's topic.
    pub topic: String,
}

/// Reads a system's topic without joining a group. Blocking: call it from
/// a blocking thread.
pub struct EventReader {
    topic: String,
    consumer: Mutex<BaseConsumer>,
}

/// Where each partition ended when the experiment began: the window starts there.
pub type Start = BTreeMap<i32, i64>;

impl EventReader {
    /// A reader of `topic` at `bootstrap`.
    pub fn new(bootstrap: &str, topic: &str) -> anyhow::Result<EventReader> {
        // A group id of its own that it never joins (it only assigns) and
        // never commits to: no service's group can be disturbed.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("stormproof.inspect.{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("log_level", "3")
            .create()?;
        Ok(EventReader { topic: topic.to_string(), consumer: Mutex::new(consumer) })
    }

    /// The topic it reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The end offset of every partition now.
    pub fn start(&self) -> anyhow::Result<Start> {
        let consumer = self.consumer.lock().map_err(|_| anyhow::anyhow!("event reader poisoned"))?;
        self.partitions(&consumer)?.into_iter().map(|p| -> anyhow::Result<(i32, i64)> { Ok((p, consumer.fetch_watermarks(&self.topic, p, TIMEOUT)?.1)) }).collect()
    }

    fn partitions(&self, consumer: &BaseConsumer) -> anyhow::Result<Vec<i32>> {
        let metadata = consumer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        Ok(metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
    }

    /// Every record from `start` up to the end offsets seen now.
    pub fn read(&self, start: &Start) -> anyhow::Result<Vec<Record>> {
        let consumer = self.consumer.lock().map_err(|_| anyhow::anyhow!("event reader poisoned"))?;
        let mut list = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for partition in self.partitions(&consumer)? {
            let (low, high) = consumer.fetch_watermarks(&self.topic, partition, TIMEOUT)?;
            // A partition added since the start is read from its beginning.
            let from = start.get(&partition).copied().unwrap_or(low).max(low);
            if from < high {
                list.add_partition_offset(&self.topic, partition, Offset::Offset(from))?;
                ends.insert(partition, high);
            }
        }
        let mut records = Vec::new();
        if ends.is_empty() {
            return Ok(records);
        }
        consumer.assign(&list)?;
        let deadline = Instant::now() + READ_PATIENCE;
        while !ends.is_empty() {
            anyhow::ensure!(Instant::now() < deadline, "read {} records of {} but not up to its end offsets within {READ_PATIENCE:?}", records.len(), self.topic);
            let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
            let message = message?;
            let partition = message.partition();
            let Some(end) = ends.get(&partition).copied() else { continue };
            if message.offset() < end {
                records.push(record(&message));
            }
            if message.offset() + 1 >= end {
                ends.remove(&partition);
            }
        }
        consumer.unassign()?;
        Ok(records)
    }
}

/// The topic from where it ended when the experiment began.
pub struct Window {
    /// Reads the topic.
    pub reader: Arc<EventReader>,
    /// Its end offsets at the start.
    pub start: Start,
}

impl Window {
    /// Notes where `source`'s topic ends now (blocking).
    pub fn open(source: &EventSource) -> anyhow::Result<Window> {
        let reader = EventReader::new(&source.bootstrap, &source.topic)?;
        let start = reader.start()?;
        Ok(Window { reader: Arc::new(reader), start })
    }
}

/// The events probe: reads the window and judges the flows captured so far.
pub async fn inspect(ctx: &Context, probe: &EventsProbe) -> Found {
    let window = match &ctx.events {
        Ok(window) => window.clone(),
        Err(why) => return Found::Errored(why.clone()),
    };
    let flows = ctx.captured.lock().map(|c| c.get(&probe.flows).cloned().unwrap_or_default()).unwrap_or_default();
    let reader = window.clone();
    let records = match tokio::task::spawn_blocking(move || reader.reader.read(&reader.start)).await {
        Ok(Ok(records)) => records,
        // Read again at the next look (within the check's deadline).
        Ok(Err(err)) => return Found::Inconclusive(format!("cannot read {}: {err:#}", window.reader.topic())),
        Err(err) => return Found::Errored(err.to_string()),
    };
    judge(probe, window.reader.topic(), &flows, &records)
}

fn record(message: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let type_header = message.headers().and_then(|headers| headers.iter().find(|h| h.key == TYPE_HEADER).and_then(|h| h.value.map(text)));
    Record {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(text),
        type_header,
        value: message.payload().and_then(|p| serde_json::from_slice(p).ok()),
    }
}

/// Judges `records` of `topic` against `probe` for the `flows` the
/// experiment captured: held only when every flow had events and none offends.
pub fn judge(probe: &EventsProbe, topic: &str, flows: &BTreeSet<String>, records: &[Record]) -> Found {
    if flows.is_empty() {
        return Found::Inconclusive(format!("no `{}` was captured by the experiment's steps: no flow to inspect", probe.flows));
    }
    let typed: BTreeSet<&str> = probe.require.iter().chain(probe.after.keys()).chain(probe.after.values().flatten()).map(String::as_str).collect();
    let mut offenders = Vec::new();
    let mut of_flow: BTreeMap<&str, Vec<(&Record, &str)>> = BTreeMap::new();
    for record in records {
        let Some(value) = &record.value else { continue };
        let event_type = value.get("eventType").and_then(Value::as_str);
        let Some(flow) = value.pointer(&probe.key).map(as_text) else {
            // An event of a flow's type without the key cannot be followed.
            if let Some(t) = event_type.filter(|t| typed.contains(t)) {
                offenders.push(format!("{} {t}: no {}", at(topic, record), probe.key));
            }
            continue;
        };
        let Some(flow) = flows.get(&flow) else { continue };
        let Some(event_type) = event_type else {
            offenders.push(format!("{} of flow {flow}: no eventType", at(topic, record)));
            continue;
        };
        if let Some(why) = envelope(value, event_type, flow, record) {
            offenders.push(format!("{} {event_type} of flow {flow}: {why}", at(topic, record)));
        }
        of_flow.entry(flow.as_str()).or_default().push((record, event_type));
    }
    let mut missing = Vec::new();
    for flow in flows {
        let events = of_flow.get(flow.as_str()).map(Vec::as_slice).unwrap_or_default();
        offenders.extend(placement(probe, topic, flow, events));
        let have: BTreeSet<&str> = events.iter().map(|(_, t)| *t).collect();
        let lacking: Vec<&str> = probe.require.iter().map(String::as_str).filter(|t| !have.contains(t)).collect();
        if events.is_empty() {
            missing.push(format!("flow {flow}: no event"));
        } else if !lacking.is_empty() {
            missing.push(format!("flow {flow}: no {}", lacking.join(", ")));
        }
    }
    let inspected = of_flow.values().map(Vec::len).sum::<usize>();
    let summary = format!("{inspected} events of {} flows inspected on {topic} ({} records read)", flows.len(), records.len());
    if !offenders.is_empty() {
        let quoted: Vec<&str> = offenders.iter().take(QUOTED).map(String::as_str).collect();
        return Found::Deviated(format!("{summary}; {} offender(s): {}", offenders.len(), quoted.join("; ")));
    }
    if inspected == 0 || !missing.is_empty() {
        return Found::Inconclusive(format!("{summary}; not yet seen: {}", missing.join("; ")));
    }
    Found::Held(format!("{summary}: each with eventType, id, timestamp and {}, keyed by it, `{TYPE_HEADER}` header set, one partition per flow, in causal order", probe.key))
}

/// What is wrong with one event of `flow`, if anything: its envelope,
/// its Kafka key and its `type` header.
fn envelope(value: &Value, event_type: &str, flow: &str, record: &Record) -> Option<String> {
    if let Some(field) = ["id", "timestamp"].into_iter().find(|f| value.get(*f).is_none_or(Value::is_null)) {
        return Some(format!("no {field}"));
    }
    if record.key.as_deref() != Some(flow) {
        return Some(format!("Kafka key {}, expected {flow}", quote(record.key.as_deref())));
    }
    if record.type_header.as_deref() != Some(event_type) {
        return Some(format!("`{TYPE_HEADER}` header {}, expected {event_type}", quote(record.type_header.as_deref())));
    }
    None
}

/// The events of one flow on one partition, each after its causes.
fn placement(probe: &EventsProbe, topic: &str, flow: &str, events: &[(&Record, &str)]) -> Vec<String> {
    let partitions: BTreeSet<i32> = events.iter().map(|(r, _)| r.partition).collect();
    if partitions.len() > 1 {
        let spread: Vec<String> = events.iter().map(|(r, t)| format!("{t} at {}", at(topic, r))).collect();
        return vec![format!("flow {flow} spans partitions {partitions:?}: {}", spread.join(", "))];
    }
    let mut offenders = Vec::new();
    for (record, event_type) in events {
        for cause in probe.after.get(*event_type).into_iter().flatten() {
            if !events.iter().any(|(r, t)| *t == cause.as_str() && r.offset < record.offset) {
                offenders.push(format!("{} {event_type} of flow {flow}: no {cause} before it", at(topic, record)));
            }
        }
    }
    offenders
}

fn at(topic: &str, record: &Record) -> String {
    format!("{topic}/{}@{}", record.partition, record.offset)
}

fn quote(text: Option<&str>) -> String {
    text.map(|t| format!("`{t}`")).unwrap_or_else(|| "missing".into())
}

/// A JSON value as flows are captured: strings as they are, others as JSON.
pub fn as_text(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe() -> EventsProbe {
        serde_saphyr::from_str(
            "{ flows: orderId, key: /orderId, require: [OrderPlaced, DeliveryStarted], after: { DeliveryStarted: [OrderPlaced], OrderCancelled: [OrderPlaced] } }",
        )
        .unwrap()
    }

    fn event(partition: i32, offset: i64, key: &str, event_type: &str, order: i64) -> Record {
        Record {
            partition,
            offset,
            key: Some(key.into()),
            type_header: Some(event_type.into()),
            value: Some(json!({"eventType": event_type, "id": format!("e{offset}"), "timestamp": "2026-12-02T10:00:00Z", "orderId": order})),
        }
    }

    fn flows(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn good() -> Vec<Record> {
        vec![
            event(1, 10, "7", "OrderPlaced", 7),
            event(0, 4, "8", "OrderPlaced", 8),
            event(1, 11, "7", "DeliveryStarted", 7),
            event(2, 3, "3", "ProductChanged", 0),
            event(0, 5, "8", "DeliveryStarted", 8),
            event(0, 6, "8", "OrderCancelled", 8),
        ]
    }

    #[test]
    fn well_keyed_flows_hold_with_counts() {
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &good());
        assert!(matches!(&found, Found::Held(e) if e.starts_with("5 events of 2 flows inspected on shop (6 records read)")), "{found:?}");
    }

    #[test]
    fn no_flow_or_no_event_is_inconclusive() {
        let found = judge(&probe(), "shop", &BTreeSet::new(), &good());
        assert!(matches!(&found, Found::Inconclusive(why) if why.contains("no `orderId` was captured")), "{found:?}");
        let found = judge(&probe(), "shop", &flows(&["9"]), &good());
        assert!(matches!(&found, Found::Inconclusive(why) if why.contains("0 events of 1 flows") && why.contains("flow 9: no event")), "{found:?}");
        let found = judge(&probe(), "shop", &flows(&["7"]), &good()[..1]);
        assert!(matches!(&found, Found::Inconclusive(why) if why.contains("flow 7: no DeliveryStarted")), "a required event not seen yet: {found:?}");
    }

    #[test]
    fn a_wrong_kafka_key_is_an_offender_quoted_with_its_place() {
        let mut records = good();
        records[2].key = Some("5f0c".into());
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &records);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("1 offender(s): shop/1@11 DeliveryStarted of flow 7: Kafka key `5f0c`, expected 7")), "{found:?}");
    }

    #[test]
    fn a_flow_over_two_partitions_is_an_offender() {
        let mut records = good();
        records[2].partition = 2;
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &records);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("flow 7 spans partitions {1, 2}: OrderPlaced at shop/1@10, DeliveryStarted at shop/2@11")), "{found:?}");
    }

    #[test]
    fn an_effect_before_its_cause_is_an_offender() {
        let mut records = good();
        records[2].offset = 9;
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &records);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("shop/1@9 DeliveryStarted of flow 7: no OrderPlaced before it")), "{found:?}");
    }

    #[test]
    fn a_missing_type_header_or_envelope_field_is_an_offender() {
        let mut records = good();
        records[0].type_header = None;
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &records);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("shop/1@10 OrderPlaced of flow 7: `type` header missing, expected OrderPlaced")), "{found:?}");
        let mut records = good();
        records[1].value.as_mut().unwrap().as_object_mut().unwrap().remove("timestamp");
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &records);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("shop/0@4 OrderPlaced of flow 8: no timestamp")), "{found:?}");
    }

    #[test]
    fn an_event_of_a_flow_type_without_the_key_is_an_offender() {
        let mut records = good();
        records.push(Record { value: Some(json!({"eventType": "OrderPlaced", "id": "x", "timestamp": "t"})), ..event(2, 9, "11", "OrderPlaced", 0) });
        let found = judge(&probe(), "shop", &flows(&["7", "8"]), &records);
        assert!(matches!(&found, Found::Deviated(e) if e.contains("shop/2@9 OrderPlaced: no /orderId")), "{found:?}");
    }
}
