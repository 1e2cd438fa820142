//! Consumer contract tests: each consumer of the shop states what it needs of
//! its providers, as V4 pacts written to `contracts/shop/` (committed; the
//! providers are verified against them with `stormproof contract verify`).
//!
//! HTTP: order reads a product through its real client (`Upstream`) from the
//! Pact mock server. Messages: each event payload is fed to the consumer's
//! real event handler (`apply_event` of the consumer module), which must
//! apply it — a payload the handler would skip as malformed fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use pact_consumer::mock_server::StartMockServerAsync;
use pact_consumer::prelude::*;
use serde_json::Value;
use stormproof::systems::kit::Upstream;
use stormproof::systems::shop::{delivery, mypage, order, product};

use common::pact::{event, feed};

/// `contracts/shop/`, with the pact files of earlier runs removed once per
/// run (pact files are merged on write, so stale interactions would linger).
/// Other files there (the message triggers) stay.
fn pact_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // SAFETY: set before any pact is built, under the OnceLock.
        unsafe { std::env::set_var("PACT_DO_NOT_TRACK", "true") };
        stormproof::install_crypto_provider();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/shop");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                std::fs::remove_file(path).unwrap();
            }
        }
        dir
    })
}

fn pact(consumer: &str, provider: &str) -> PactBuilder {
    let mut builder = PactBuilder::new_v4(consumer, provider);
    builder.with_output_dir(pact_dir());
    builder
}

fn order_placed() -> JsonPattern {
    event(
        "OrderPlaced",
        json_pattern!({
            "orderId": like!(1), "productId": like!(1), "productName": like!("TV"), "quantity": like!(1),
            "price": like!(10000), "customerId": like!("user1"), "customerName": like!("Kim"), "customerAddr": like!("Seoul")
        }),
    )
}

fn order_cancelled() -> JsonPattern {
    event("OrderCancelled", json_pattern!({"orderId": like!(1), "productId": like!(1), "quantity": like!(1), "customerId": like!("user1")}))
}

/// order → product over HTTP (the course's `/products/{id}`), and the
/// course's ProductChanged message contract.
#[tokio::test]
async fn order_needs_product() {
    let mut builder = PactBuilderAsync::new_v4("shop.order", "shop.product");
    builder.output_dir(pact_dir());
    builder
        .interaction("a request for product 1", "", |mut i| async move {
            i.given("product 1 exists");
            i.request.get().path("/products/1");
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "id": like!(1), "name": like!("TV"), "price": like!(10000), "stock": like!(10), "imageUrl": like!("")
            }));
            i
        })
        .await;
    let server = builder.start_mock_server_async(None, None).await;
    // The order service's own client and model.
    let client = Upstream::new("product", server.url().as_str(), Duration::from_secs(5));
    let got: product::Product = client.get_json("/products/1").await.expect("order reads the product");
    assert_eq!((got.id, got.name.as_str(), got.price), (1, "TV", 10000));
    drop(server);

    let mut builder = pact("shop.order", "shop.product");
    builder.message_interaction("a ProductChanged event", |mut i| {
        i.given("product 1 exists");
        i.json_body(event(
            "ProductChanged",
            json_pattern!({
                "productId": like!(1), "productName": like!("TV"), "productPrice": like!(10000),
                "productStock": like!(10), "imageUrl": like!("testurl")
            }),
        ));
        i
    });
    for message in builder.messages() {
        let payload = message.contents.contents.value().unwrap();
        let product = order::product_from_changed(&payload).expect("order reads ProductChanged");
        assert_eq!(product.name, "TV");
    }
}

#[tokio::test]
async fn delivery_needs_order_events() {
    let mut builder = pact("shop.delivery", "shop.order");
    builder
        .message_interaction("an OrderPlaced event", |mut i| {
            i.json_body(order_placed());
            i
        })
        .message_interaction("an OrderCancelled event", |mut i| {
            i.json_body(order_cancelled());
            i
        });
    // OrderCancelled alone finds no delivery: a store with the order placed
    // first is what delivery sees in production (one partition per order).
    let placed = example(&order_placed());
    feed(&builder, |db, payload| {
        let placed = placed.clone();
        async move {
            let body: Value = serde_json::from_slice(&payload)?;
            if body["eventType"] != "OrderPlaced" {
                delivery::apply_event(&db, &placed).await?;
            }
            delivery::apply_event(&db, &payload).await
        }
    })
    .await;
}

#[tokio::test]
async fn mypage_needs_order_events() {
    let mut builder = pact("shop.mypage", "shop.order");
    builder
        .message_interaction("an OrderPlaced event", |mut i| {
            i.json_body(order_placed());
            i
        })
        .message_interaction("an OrderCancelled event", |mut i| {
            i.json_body(order_cancelled());
            i
        });
    feed(&builder, |db, payload| async move { mypage::apply_event(&db, &payload).await }).await;
}

#[tokio::test]
async fn mypage_needs_delivery_started() {
    let mut builder = pact("shop.mypage", "shop.delivery");
    builder.message_interaction("a DeliveryStarted event", |mut i| {
        i.json_body(event(
            "DeliveryStarted",
            json_pattern!({
                "deliveryId": like!(1), "orderId": like!(1), "productId": like!(1), "quantity": like!(1),
                "customerId": like!("user1"), "customerName": like!("Kim"), "customerAddr": like!("Seoul"),
                "status": "DeliveryStarted"
            }),
        ));
        i
    });
    feed(&builder, |db, payload| async move { mypage::apply_event(&db, &payload).await }).await;
}

#[tokio::test]
async fn product_needs_order_events() {
    let mut builder = pact("shop.product", "shop.order");
    builder
        .message_interaction("an OrderPlaced event", |mut i| {
            i.json_body(order_placed());
            i
        })
        .message_interaction("an OrderCancelled event", |mut i| {
            i.json_body(order_cancelled());
            i
        });
    feed(&builder, |db, payload| async move { product::apply_event(&db, &payload).await }).await;
}

/// The example document of a pattern (what the consumer test feeds).
fn example(pattern: &JsonPattern) -> Vec<u8> {
    let value: Value = pattern.to_example();
    serde_json::to_vec(&value).unwrap()
}
