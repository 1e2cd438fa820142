//! The message endpoint: what the Pact verifier calls to get the message a
//! provider publishes. For each request (`{description, providerStates}`) it
//! runs that description's trigger against the running provider, captures the
//! resulting event from Kafka and answers with its body. No provider code is
//! involved: the event is the one the provider really published.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::Mutex as AsyncMutex;

use super::states::KnownStates;
use super::triggers::{Captured, Pointer, Step, Trigger};
use crate::capture::{fill_text, fill_value};

/// How long to wait for the triggered event to reach Kafka.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a provider's events go: a system's topic on a broker. (The
/// verifier's own Kafka clients: plain, short-lived, no consumer group.)
#[derive(Debug, Clone)]
pub struct Topic {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// The system's event topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
}

/// What the endpoint needs to produce messages of one provider.
pub struct MessageSource {
    /// The provider's triggers, by interaction description.
    pub triggers: BTreeMap<String, Trigger>,
    /// Base URL of the provider's HTTP API.
    pub base_url: String,
    /// The system's Kafka topic and broker.
    pub kafka: Option<Topic>,
    /// Why a trigger failed, by description (shown in the report).
    pub notes: Arc<Mutex<BTreeMap<String, String>>>,
    /// The provider's states, set up at `/states` (the state-change URL).
    pub states: KnownStates,
    /// One trigger at a time: a capture must not see another's event.
    busy: AsyncMutex<()>,
}

impl MessageSource {
    /// A source for the provider at `base_url`.
    pub fn new(triggers: BTreeMap<String, Trigger>, base_url: String, kafka: Option<Topic>) -> MessageSource {
        MessageSource { triggers, base_url, kafka, notes: Arc::default(), states: KnownStates::default(), busy: AsyncMutex::new(()) }
    }

    /// With the provider's `states`, set up against it at `/states`.
    pub fn with_states(mut self, states: KnownStates) -> MessageSource {
        self.states = states.at(&self.base_url, self.kafka.clone());
        self
    }

    /// Runs the trigger of `description` and returns the captured event.
    pub async fn produce(&self, description: &str) -> anyhow::Result<Value> {
        let _one = self.busy.lock().await;
        let trigger = self
            .triggers
            .get(description)
            .ok_or_else(|| anyhow::anyhow!("no trigger for message `{description}` in the trigger mapping"))?;
        let kafka = self.kafka.as_ref().ok_or_else(|| anyhow::anyhow!("no Kafka to capture `{description}` from (pass --kafka)"))?;
        let capture = Capture::arm(kafka).await?;
        run_steps(&trigger.steps, &self.base_url, Some(kafka)).await?;
        capture.next(&trigger.capture).await
    }
}

/// Runs trigger `steps` against the provider at `base_url` (its events on
/// `kafka`): a message's trigger, or a provider state's set-up. Returns
/// what the steps captured (a state's values, for the verifier).
pub async fn run_steps(steps: &[Step], base_url: &str, kafka: Option<&Topic>) -> anyhow::Result<Captured> {
    let http = crate::http_client().timeout(Duration::from_secs(10)).build()?;
    let mut last = Value::Null;
    let mut values = Captured::new();
    for step in steps {
        match step {
            Step::Http { method, path, body, within, capture } => {
                // `${NAME}` first: `{id}` would otherwise match inside `${id}`.
                let path = with_last_id(&fill_text(path, &values).map_err(anyhow::Error::msg)?, &last);
                let body = body.as_ref().map(|body| fill_value(body, &values)).transpose().map_err(anyhow::Error::msg)?;
                let call = HttpCall { method: reqwest::Method::from_bytes(method.as_bytes())?, url: format!("{base_url}{path}"), path, body };
                last = call.until_captured(&http, within.unwrap_or_default(), capture, &mut values).await?;
            }
            Step::Publish { publish, key } => {
                let kafka = kafka.ok_or_else(|| anyhow::anyhow!("no Kafka to publish the step's event to (pass --kafka)"))?;
                publish_event(kafka, &fill_value(publish, &values).map_err(anyhow::Error::msg)?, key).await?
            }
        }
    }
    Ok(values)
}

/// `path` with `{id}` as the `id` of the previous step's JSON answer.
fn with_last_id(path: &str, last: &Value) -> String {
    match &last["id"] {
        Value::Null => path.to_string(),
        id => path.replace("{id}", id.to_string().trim_matches('"')),
    }
}

/// One HTTP step, its path and body filled in.
struct HttpCall {
    method: reqwest::Method,
    url: String,
    path: String,
    body: Option<Value>,
}

impl HttpCall {
    /// Calls until the answer is a success with every value of `capture`
    /// in it, retrying for `within`; keeps the values and returns the answer.
    async fn until_captured(&self, http: &reqwest::Client, within: Duration, capture: &BTreeMap<String, Pointer>, values: &mut Captured) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (status, text) = self.once(http).await?;
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let missing = if status.is_success() { super::triggers::capture(capture, &answer, values) } else { vec![] };
            let shown: String = text.chars().take(200).collect();
            let why = match (status.is_success(), missing.is_empty()) {
                (true, true) => return Ok(answer),
                (true, false) => format!("answered {status} without {}: {shown}", missing.join(", ")),
                (false, _) => format!("answered {status} {shown}"),
            };
            anyhow::ensure!(std::time::Instant::now() < deadline, "trigger {} {} {why}", self.method, self.path);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One call: its status and its answer.
    async fn once(&self, http: &reqwest::Client) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let mut request = http.request(self.method.clone(), &self.url);
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("trigger {} {}", self.method, self.path))?;
        let status = response.status();
        // The whole answer: a capture may point past its first lines.
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }
}

/// Where the message endpoint serves provider states: a verifier's
/// state-change URL (`--state-change-url http://ADDR/states`).
pub const STATES_PATH: &str = "/states";

/// Serves the message endpoint on a loopback port; returns its address.
pub async fn serve(source: Arc<MessageSource>) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/", post(message)).route(STATES_PATH, post(state_change)).with_state(source);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

async fn message(State(source): State<Arc<MessageSource>>, axum::Json(request): axum::Json<Value>) -> Response {
    let description = request["description"].as_str().unwrap_or_default().to_string();
    match source.produce(&description).await {
        Ok(event) => ([(header::CONTENT_TYPE, "application/json")], event.to_string()).into_response(),
        Err(err) => {
            let text = format!("{err:#}");
            if let Ok(mut notes) = source.notes.lock() {
                notes.insert(description, text.clone());
            }
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        }
    }
}

/// A verifier's state change, `{state, params, action}` in the Pact
/// convention: `setup` makes the state hold and answers its values;
/// `teardown` has nothing to undo.
async fn state_change(State(source): State<Arc<MessageSource>>, axum::Json(request): axum::Json<Value>) -> Response {
    let state = request["state"].as_str().unwrap_or_default();
    if request["action"].as_str().is_some_and(|a| a == "teardown") {
        return axum::Json(serde_json::json!({})).into_response();
    }
    // The values its steps captured: the verifier fills them into the interaction.
    match source.states.set_up(state).await {
        Ok(values) => axum::Json(values).into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, format!("{err:#}")).into_response(),
    }
}

/// A Kafka consumer positioned at the end of every partition of the topic,
/// so it sees only what is published after it was armed.
struct Capture {
    consumer: StreamConsumer,
}

impl Capture {
    async fn arm(kafka: &Topic) -> anyhow::Result<Capture> {
        let group = format!("stormproof-contract-{}", uuid::Uuid::new_v4());
        let consumer: Arc<StreamConsumer> = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", &kafka.bootstrap)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .create()?,
        );
        let topic = kafka.topic.clone();
        let partitions = kafka.partitions;
        let positioned = consumer.clone();
        let list = tokio::task::spawn_blocking(move || -> anyhow::Result<TopicPartitionList> {
            let mut list = TopicPartitionList::new();
            for partition in 0..partitions {
                // A provider may announce itself before its topic exists.
                let mut tries = 0;
                let high = loop {
                    match positioned.fetch_watermarks(&topic, partition, Duration::from_secs(5)) {
                        Ok((_, high)) => break high,
                        Err(_) if tries < 40 => tries += 1,
                        Err(err) => return Err(anyhow::Error::new(err).context(format!("cannot read the end of {topic}/{partition}"))),
                    }
                    std::thread::sleep(Duration::from_millis(250));
                };
                list.add_partition_offset(&topic, partition, Offset::Offset(high))?;
            }
            Ok(list)
        })
        .await??;
        consumer.assign(&list)?;
        let consumer = Arc::try_unwrap(consumer).map_err(|_| anyhow::anyhow!("capture consumer still shared"))?;
        Ok(Capture { consumer })
    }

    /// The first event of `event_type` published since arming.
    async fn next(&self, event_type: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + CAPTURE_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .map_err(|_| anyhow::anyhow!("no {event_type} event reached Kafka within {CAPTURE_TIMEOUT:?}"))??;
            let Some(event) = message.payload().and_then(|p| serde_json::from_slice::<Value>(p).ok()) else { continue };
            if event["eventType"] == event_type {
                return Ok(event);
            }
        }
    }
}

/// Publishes `event` (with `id` and `timestamp` filled in) keyed by `key`.
async fn publish_event(kafka: &Topic, event: &Value, key: &str) -> anyhow::Result<()> {
    let mut event = event.clone();
    if let Some(fields) = event.as_object_mut() {
        fields.entry("id").or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()));
        fields.entry("timestamp").or_insert_with(|| Value::String(crate::clock::now_rfc3339()));
    }
    let key = match &event[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()?;
    let payload = event.to_string();
    producer
        .send(FutureRecord::to(&kafka.topic).key(&key).payload(&payload), Duration::from_secs(10))
        .await
        .map_err(|(err, _)| anyhow::anyhow!("cannot publish the trigger event: {err}"))?;
    Ok(())
}
