//! product (core): the catalogue and its stock. Publishes `ProductChanged` on
//! every change; consumes `OrderPlaced` (stock − quantity) and
//! `OrderCancelled` (stock + quantity).
//!
//! Contract-breaking variants, the course's story: `item-rename` serves
//! `/items/{id}` instead of `/products/{id}`; `drop-product-name` publishes
//! `ProductChanged` without `productName`; `price-as-text` publishes
//! `productPrice` as a string (a wrong field for message contract tests).
//! `item-rename-compatible` is the course's fix: it serves both
//! `/items/{id}` and `/products/{id}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::events::{EVENT_TYPES, OrderCancelled, OrderPlaced, ProductChanged, limits};
use crate::systems::kit::bounds::{int, text};
use crate::systems::kit::{
    ApiError, Caller, Conn, Event, HandleOutcome, Handler, Incoming, JsonBody, KafkaSettings, Kit, Poison, Publisher, ServeOptions, Store, Table, Tx, parse_id,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    price INTEGER NOT NULL,
    stock INTEGER NOT NULL,
    image_url TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS product_meta (key TEXT PRIMARY KEY, value TEXT);
";

/// The catalogue the course starts from.
const SEED: &[(i64, &str, i64, i64)] = &[(1, "TV", 10000, 10), (2, "RADIO", 20000, 20), (3, "NOTEBOOK", 30000, 30), (4, "TABLE", 40000, 40)];

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Unit price.
    pub price: i64,
    /// Stock (negative when back-ordered).
    pub stock: i64,
    /// Picture.
    pub image_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewProduct {
    name: String,
    price: i64,
    stock: i64,
    #[serde(default)]
    image_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProductPatch {
    name: Option<String>,
    price: Option<i64>,
    stock: Option<i64>,
    image_url: Option<String>,
}

#[derive(Clone)]
struct App {
    store: Store,
    publisher: Publisher,
    drop_name: bool,
    price_as_text: bool,
}

/// Runs the product service.
pub async fn serve(opts: ServeOptions, kafka: KafkaSettings) -> anyhow::Result<()> {
    let variant = opts.variant.clone().unwrap_or_default();
    if !matches!(variant.as_str(), "" | "item-rename" | "item-rename-compatible" | "drop-product-name" | "price-as-text") {
        anyhow::bail!("product has no variant `{variant}` (item-rename, item-rename-compatible, drop-product-name, price-as-text)");
    }
    let mut kit = Kit::start(super::SYSTEM, "product", opts, kafka, SCHEMA).await?;
    seed(&kit.store).await?;
    let app = App { store: kit.store.clone(), publisher: kit.publisher.clone(), drop_name: variant == "drop-product-name", price_as_text: variant == "price-as-text" };
    kit.consume(app.clone());
    let routes = match variant.as_str() {
        "item-rename" => routes(app, "/items"),
        "item-rename-compatible" => routes(app.clone(), "/items").merge(routes(app, "/products")),
        _ => routes(app, "/products"),
    };
    kit.serve(routes).await
}

/// Applies one event payload with this service's real handler to a store at
/// `db` (created if needed): the entry the consumer contract tests feed pact
/// messages through (`tests/contract_consumers.rs`).
pub async fn apply_event(db: &std::path::Path, payload: &[u8]) -> anyhow::Result<HandleOutcome> {
    let store = Store::open(db, SCHEMA).await?;
    let app = App { store: store.clone(), publisher: Publisher::detached(super::SYSTEM), drop_name: false, price_as_text: false };
    seed(&store).await?;
    crate::systems::kit::apply_payload(&store, &app, payload).await
}

fn routes(app: App, base: &str) -> Router {
    Router::new()
        .route(base, get(list).post(create))
        .route(&format!("{base}/{{id}}"), get(show).patch(update).delete(remove))
        .with_state(app)
}

async fn seed(store: &Store) -> anyhow::Result<()> {
    let tx = store.begin().await?;
    let fresh = tx.execute("INSERT OR IGNORE INTO product_meta (key, value) VALUES ('seeded', 'yes')", ()).await?;
    if fresh == 1 {
        for (id, name, price, stock) in SEED {
            tx.execute("INSERT OR IGNORE INTO products (id, name, price, stock) VALUES (?1, ?2, ?3, ?4)", libsql::params![*id, *name, *price, *stock]).await?;
        }
        tx.advance_ids("products", "id").await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn list(State(app): State<App>) -> Result<axum::Json<Vec<Product>>, ApiError> {
    let conn = app.store.read().await?;
    Ok(axum::Json(PRODUCTS.list(&conn, None).await?))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<axum::Json<Product>, ApiError> {
    let id = parse_id(&id, "product")?;
    let conn = app.store.read().await?;
    find(&conn, id).await?.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("product {id} not found")))
}

impl NewProduct {
    fn check(&self) -> Result<(), String> {
        text("name", &self.name, limits::NAME, true)?;
        int("price", self.price, limits::PRICE)?;
        int("stock", self.stock, limits::STOCK_SET)?;
        text("imageUrl", &self.image_url, limits::URL, false)
    }
}

impl ProductPatch {
    /// Applies the patch to `product`, checking each field it sets.
    fn apply(self, product: &mut Product) -> Result<(), String> {
        if let Some(name) = self.name {
            text("name", &name, limits::NAME, true)?;
            product.name = name;
        }
        if let Some(price) = self.price {
            int("price", price, limits::PRICE)?;
            product.price = price;
        }
        if let Some(stock) = self.stock {
            int("stock", stock, limits::STOCK_SET)?;
            product.stock = stock;
        }
        if let Some(image_url) = self.image_url {
            text("imageUrl", &image_url, limits::URL, false)?;
            product.image_url = image_url;
        }
        Ok(())
    }
}

// Writes need the admin role when they come through the gateway (the
// caller is then known); the body is read only once that holds.
async fn create(State(app): State<App>, caller: Caller, body: Result<JsonBody<NewProduct>, ApiError>) -> Result<(StatusCode, axum::Json<Product>), ApiError> {
    caller.must_be_admin("creating a product")?;
    let JsonBody(new) = body?;
    new.check().map_err(ApiError::BadRequest)?;
    let tx = app.store.begin().await?;
    tx.execute(
        "INSERT INTO products (name, price, stock, image_url) VALUES (?1, ?2, ?3, ?4)",
        libsql::params![new.name.as_str(), new.price, new.stock, new.image_url.as_str()],
    )
    .await?;
    let id = tx.last_insert_rowid();
    let product = find(&tx, id).await?.ok_or_else(|| anyhow::anyhow!("product {id} vanished"))?;
    app.changed(&tx, &product, false).await?;
    tx.commit().await?;
    app.publisher.wake();
    Ok((StatusCode::CREATED, axum::Json(product)))
}

async fn update(State(app): State<App>, caller: Caller, Path(id): Path<String>, body: Result<JsonBody<ProductPatch>, ApiError>) -> Result<axum::Json<Product>, ApiError> {
    caller.must_be_admin("changing a product")?;
    let JsonBody(patch) = body?;
    let id = parse_id(&id, "product")?;
    let tx = app.store.begin().await?;
    let Some(mut product) = find(&tx, id).await? else {
        return Err(ApiError::NotFound(format!("product {id} not found")));
    };
    patch.apply(&mut product).map_err(ApiError::BadRequest)?;
    save(&tx, &product).await?;
    app.changed(&tx, &product, false).await?;
    tx.commit().await?;
    app.publisher.wake();
    Ok(axum::Json(product))
}

async fn remove(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    caller.must_be_admin("deleting a product")?;
    let id = parse_id(&id, "product")?;
    let tx = app.store.begin().await?;
    let Some(product) = find(&tx, id).await? else {
        return Err(ApiError::NotFound(format!("product {id} not found")));
    };
    tx.execute("DELETE FROM products WHERE id = ?1", libsql::params![id]).await?;
    app.changed(&tx, &product, true).await?;
    tx.commit().await?;
    app.publisher.wake();
    Ok(StatusCode::NO_CONTENT)
}

impl App {
    async fn changed(&self, tx: &Tx, product: &Product, deleted: bool) -> anyhow::Result<()> {
        let changed = ProductChanged {
            product_id: product.id,
            product_name: (!self.drop_name).then(|| product.name.clone()),
            product_price: product.price,
            product_stock: product.stock,
            image_url: product.image_url.clone(),
            deleted,
        };
        let mut data = serde_json::to_value(changed)?;
        if self.price_as_text {
            data["productPrice"] = serde_json::Value::String(product.price.to_string());
        }
        let event = Event::new("ProductChanged", data);
        self.publisher.record(tx, &product.id.to_string(), &event).await
    }

    /// Changes the stock by `delta`, in checked arithmetic within the
    /// domain's bounds; an event that would take it further is poison.
    async fn adjust_stock(&self, tx: &Tx, event: &Incoming, product_id: i64, delta: i64) -> anyhow::Result<HandleOutcome> {
        let Some(mut product) = find(tx, product_id).await? else {
            // An order for a product that does not exist (or was deleted since).
            return Ok(HandleOutcome::Skipped(Poison::UnknownEntity(format!("{} {}: no product {product_id}", event.event_type, event.id))));
        };
        let stock = product.stock.checked_add(delta).filter(|s| limits::STOCK.contains(s));
        let Some(stock) = stock else {
            let reason = format!("{} {}: stock {} {delta:+} leaves {}..={}", event.event_type, event.id, product.stock, limits::STOCK.start(), limits::STOCK.end());
            return Ok(HandleOutcome::Skipped(Poison::Malformed(reason)));
        };
        product.stock = stock;
        tx.execute("UPDATE products SET stock = ?1 WHERE id = ?2", libsql::params![stock, product_id]).await?;
        self.changed(tx, &product, false).await?;
        Ok(HandleOutcome::Applied)
    }
}

impl Handler for App {
    const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

    async fn handle(&self, tx: &Tx, event: &Incoming) -> anyhow::Result<HandleOutcome> {
        match event.event_type.as_str() {
            "OrderPlaced" => match event.data::<OrderPlaced>() {
                Ok(order) => self.adjust_stock(tx, event, order.product_id, -order.quantity).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            "OrderCancelled" => match event.data::<OrderCancelled>() {
                Ok(order) => self.adjust_stock(tx, event, order.product_id, order.quantity).await,
                Err(poison) => Ok(HandleOutcome::Skipped(poison)),
            },
            _ => Ok(HandleOutcome::Ignored),
        }
    }
}

const PRODUCTS: Table = Table { select: r#"SELECT id, name, price, stock, image_url AS "imageUrl" FROM products"#, id: "id", order_by: "id" };

async fn find(conn: &Conn, id: i64) -> anyhow::Result<Option<Product>> {
    PRODUCTS.find(conn, id).await
}

async fn save(tx: &Tx, product: &Product) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE products SET name = ?1, price = ?2, stock = ?3, image_url = ?4 WHERE id = ?5",
        libsql::params![product.name.as_str(), product.price, product.stock, product.image_url.as_str(), product.id],
    )
    .await?;
    Ok(())
}
