//! order (core): takes orders. Reads the product synchronously (timeout and
//! circuit breaker; when product is down, the last answer it gave for that
//! product is the fallback) and records `OrderPlaced` through the outbox.
//! Cancelling records `OrderCancelled`. Out-of-stock products can still be
//! ordered (the course's user story 4).
//!
//! Variant: `publish-outside-outbox` sends `OrderPlaced` straight to Kafka
//! after the order commits, and drops the event when that send fails — the
//! dual write an outbox exists to avoid (`broker-not-leader` catches it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::{Deserialize, Deserializer, Serialize};

use super::events::{OrderCancelled, OrderPlaced, limits};
use super::product::Product;
use crate::systems::kit::bounds::{int, text};
use crate::systems::kit::{
    ApiError, CallError, Caller, Conn, Event, JsonBody, KafkaSettings, Kit, KitVariant, Picked, Publisher, ServeOptions, Store, Table, Upstream, parse_id, pick_variant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    product_name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    price INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    customer_addr TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
";

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Id (the flow's correlation key).
    pub id: i64,
    /// Product ordered.
    pub product_id: i64,
    /// Its name when ordered.
    pub product_name: String,
    /// How many.
    pub quantity: i64,
    /// Unit price when ordered.
    pub price: i64,
    /// Who ordered.
    pub customer_id: String,
    /// Their name.
    pub customer_name: String,
    /// Delivery address.
    pub customer_addr: String,
    /// `OrderPlaced` or `OrderCancelled`.
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlaceOrder {
    product_id: i64,
    quantity: i64,
    #[serde(deserialize_with = "string_or_number")]
    customer_id: String,
    customer_name: String,
    customer_addr: String,
}

/// Accepts `"customerId": "user1"` and `"customerId": 1` alike (the course
/// uses numbers).
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    customer_id: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    product: Arc<Upstream>,
    /// The `sync-delivery` variant: an order needs delivery to answer first
    /// — the coupling the course warns against, for experiments to catch.
    delivery: Option<Arc<Upstream>>,
    /// Last answer product gave per id: the fallback while it is down.
    known: Arc<Mutex<HashMap<i64, Product>>>,
    /// The `random-key` variant: events keyed at random instead of by the
    /// order id — a flow's events scatter over partitions, out of order.
    random_key: bool,
    /// The `publish-outside-outbox` variant's own producer.
    direct: Option<Arc<DirectPublish>>,
}

/// `publish-outside-outbox`: OrderPlaced sent once, after the commit, with
/// nothing kept to send it again.
struct DirectPublish {
    producer: FutureProducer,
    topic: String,
}

impl DirectPublish {
    fn new(kit: &Kit) -> anyhow::Result<DirectPublish> {
        // Named like the relay (`shop.order/REPLICA…`), so a broker fault
        // for order's clients reaches it; a short timeout, so a refused
        // send fails (and the event is lost) within the request.
        let mut config = kit.kafka.producer_config(&format!("{}/{}/direct", kit.name, kit.opts.replica_id));
        config.set("message.timeout.ms", "1000");
        Ok(DirectPublish { producer: config.create()?, topic: kit.kafka.topic.clone() })
    }

    async fn publish<T: Serialize>(&self, key: &str, event: &Event<T>) {
        let Ok(payload) = serde_json::to_string(event) else { return };
        let headers = OwnedHeaders::new().insert(Header { key: "type", value: Some(event.event_type.as_str()) });
        let record = FutureRecord::to(&self.topic).key(key).payload(&payload).headers(headers);
        if let Err((err, _)) = self.producer.send(record, Timeout::After(Duration::from_secs(1))).await {
            tracing::warn!("{} for key {key} dropped: {err} (publish-outside-outbox variant)", event.event_type);
        }
    }
}

/// Reads a `ProductChanged` event into order's copy of the product — the
/// course's contract (order relies on `productName`, `productPrice`…). The
/// order service itself reads products over HTTP; this is the reading the
/// consumer contract test pins down (`tests/contract_consumers.rs`).
pub fn product_from_changed(payload: &[u8]) -> anyhow::Result<Product> {
    let event = crate::systems::kit::Incoming::parse(payload).map_err(|poison| anyhow::anyhow!("{poison}"))?;
    anyhow::ensure!(event.event_type == "ProductChanged", "expected ProductChanged, got {}", event.event_type);
    let changed: super::events::ProductChanged = event.data().map_err(|poison| anyhow::anyhow!("{poison}"))?;
    let name = changed.product_name.ok_or_else(|| anyhow::anyhow!("ProductChanged {} has no productName", event.id))?;
    Ok(Product { id: changed.product_id, name, price: changed.product_price, stock: changed.product_stock, image_url: changed.image_url })
}

/// Runs the order service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let product_url = opts
        .upstream("product")
        .ok_or_else(|| anyhow::anyhow!("order needs --upstream product=URL"))?
        .to_string();
    // no-scale-out differs in how it is deployed (system.yaml), not here.
    let variant = pick_variant("order", opts.variant.as_deref(), &["sync-delivery", "no-breaker", "random-key", "no-scale-out", "publish-outside-outbox"], &[KitVariant::ReadyAtOnce])?;
    let delivery = if variant.is("sync-delivery") {
        let url = opts.upstream("delivery").ok_or_else(|| anyhow::anyhow!("the sync-delivery variant needs --upstream delivery=URL"))?;
        Some(Arc::new(Upstream::new("delivery", url, Duration::from_millis(1000))))
    } else {
        None
    };
    // The `no-breaker` variant waits for product as long as it takes — the
    // coupling a circuit breaker exists to cut, for experiments to catch.
    let product = if variant.is("no-breaker") {
        Upstream::without_breaker("product", &product_url, Duration::from_secs(30))
    } else {
        Upstream::new("product", &product_url, Duration::from_millis(1000))
    };
    let mut kit = Kit::start(super::SYSTEM, "order", opts, kafka, SCHEMA).await?;
    if let Picked::Kit(kind) = variant {
        kit.run_as(kind);
    }
    let direct = if variant.is("publish-outside-outbox") { Some(Arc::new(DirectPublish::new(&kit)?)) } else { None };
    let app = App {
        store: kit.store.clone(),
        publisher: kit.publisher.clone(),
        product: Arc::new(product),
        known: Arc::default(),
        delivery,
        random_key: variant.is("random-key"),
        direct,
    };
    kit.serve(routes(app)).await
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/orders", get(list).post(place))
        .route("/orders/{id}", get(show).delete(cancel))
        .with_state(app)
}

impl PlaceOrder {
    /// The domain's bounds, so every order's OrderPlaced fits on the topic.
    fn check(&self) -> Result<(), String> {
        int("productId", self.product_id, limits::ID)?;
        int("quantity", self.quantity, limits::QUANTITY)?;
        super::events::customer(&self.customer_id, &self.customer_name, &self.customer_addr)
    }
}

async fn place(State(app): State<App>, caller: Caller, JsonBody(order): JsonBody<PlaceOrder>) -> Result<impl IntoResponse, ApiError> {
    order.check().map_err(ApiError::BadRequest)?;
    caller.may_act_for(&order.customer_id, "an order placed as customerId")?;
    let product = app.product_info(order.product_id).await?;
    if let Some(delivery) = &app.delivery {
        delivery
            // A cheap call: the coupling is the fault, not what delivery answers.
            .get_json::<serde_json::Value>("/deliveries?orderId=0")
            .await
            .map_err(|err| ApiError::Unavailable(format!("delivery must answer first (sync-delivery variant): {err}")))?;
    }
    let tx = app.store.begin().await?;
    tx.execute(
        "INSERT INTO orders (product_id, product_name, quantity, price, customer_id, customer_name, customer_addr, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'OrderPlaced', ?8)",
        libsql::params![
            product.id,
            product.name.as_str(),
            order.quantity,
            product.price,
            order.customer_id.as_str(),
            order.customer_name.as_str(),
            order.customer_addr.as_str(),
            crate::systems::kit::now_rfc3339()
        ],
    )
    .await?;
    let id = tx.last_insert_rowid();
    let placed = OrderPlaced {
        order_id: id,
        product_id: product.id,
        product_name: product.name.clone(),
        quantity: order.quantity,
        price: product.price,
        customer_id: order.customer_id.clone(),
        customer_name: order.customer_name.clone(),
        customer_addr: order.customer_addr.clone(),
    };
    let event = Event::new("OrderPlaced", placed);
    if app.direct.is_none() {
        app.publisher.record(&tx, &app.key(id), &event).await?;
    }
    let created = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("order {id} vanished"))?;
    tx.commit().await?;
    match &app.direct {
        Some(direct) => direct.publish(&app.key(id), &event).await,
        None => app.publisher.wake(),
    }
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/orders/{id}"))], axum::Json(created)))
}

impl App {
    /// The Kafka key of order `id`'s events: the flow's correlation key.
    fn key(&self, id: i64) -> String {
        if self.random_key { uuid::Uuid::new_v4().to_string() } else { id.to_string() }
    }

    /// The product from product, or the last known copy when product cannot
    /// answer; 404 when it does not exist, 503 when nothing is known.
    async fn product_info(&self, id: i64) -> Result<Product, ApiError> {
        match self.product.get_json::<Product>(&format!("/products/{id}")).await {
            Ok(product) => {
                if let Ok(mut known) = self.known.lock() {
                    known.insert(id, product.clone());
                }
                Ok(product)
            }
            Err(CallError::NotFound) => Err(ApiError::NotFound(format!("product {id} not found"))),
            Err(err) => {
                let cached = self.known.lock().ok().and_then(|known| known.get(&id).cloned());
                match cached {
                    Some(product) => {
                        tracing::info!("product unavailable ({err}); using the last known product {id}");
                        Ok(product)
                    }
                    None => Err(ApiError::Unavailable(format!("cannot read product {id}: {err}"))),
                }
            }
        }
    }
}

/// Through the gateway a customer lists only their own orders: no filter
/// means theirs, another customer's filter is 403.
async fn list(State(app): State<App>, caller: Caller, Query(filter): Query<Filter>) -> Result<axum::Json<Vec<Order>>, ApiError> {
    if let Some(customer) = &filter.customer_id {
        text("customerId", customer, limits::CUSTOMER_ID, false).map_err(ApiError::BadRequest)?;
    }
    let customer = caller.customer_filter(filter.customer_id)?;
    let conn = app.store.read().await?;
    Ok(axum::Json(ORDERS.list(&conn, customer.map(|c| ("customer_id", c.into()))).await?))
}

async fn show(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<axum::Json<Order>, ApiError> {
    let id = parse_id(&id, "order")?;
    let conn = app.store.read().await?;
    let order = find(&conn, id).await?.ok_or_else(|| ApiError::NotFound(format!("order {id} not found")))?;
    caller.may_act_for(&order.customer_id, &format!("order {id}"))?;
    Ok(axum::Json(order))
}

async fn cancel(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<axum::Json<Order>, ApiError> {
    let id = parse_id(&id, "order")?;
    let tx = app.store.begin().await?;
    let Some(mut order) = find(&tx, id).await? else {
        return Err(ApiError::NotFound(format!("order {id} not found")));
    };
    caller.may_act_for(&order.customer_id, &format!("order {id}"))?;
    if order.status == "OrderCancelled" {
        return Err(ApiError::Conflict(format!("order {id} is already cancelled")));
    }
    tx.execute("UPDATE orders SET status = 'OrderCancelled' WHERE id = ?1", libsql::params![id]).await?;
    let cancelled = OrderCancelled { order_id: id, product_id: order.product_id, quantity: order.quantity, customer_id: order.customer_id.clone() };
    app.publisher.record(&tx, &app.key(id), &Event::new("OrderCancelled", cancelled)).await?;
    tx.commit().await?;
    app.publisher.wake();
    order.status = "OrderCancelled".into();
    Ok(axum::Json(order))
}

const ORDERS: Table = Table {
    select: r#"SELECT id, product_id AS "productId", product_name AS "productName", quantity, price, customer_id AS "customerId",
               customer_name AS "customerName", customer_addr AS "customerAddr", status FROM orders"#,
    id: "id",
    order_by: "id",
};

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Order>> {
    ORDERS.find(conn, id).await
}
