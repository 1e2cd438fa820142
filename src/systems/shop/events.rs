//! The shop's events, as the course names them. The correlation key of every
//! order flow is `orderId` (product events: `productId`), which is also the
//! Kafka key, so one order's events stay in order on one partition.

use serde::{Deserialize, Serialize};

use crate::systems::kit::Bounded;
use crate::systems::kit::bounds::{int, text};

/// Every event type of the shop; a record of another type is poison.
pub const EVENT_TYPES: &[&str] = &["OrderPlaced", "OrderCancelled", "DeliveryStarted", "DeliveryCompleted", "DeliveryCancelled", "ProductChanged"];

/// The domain's bounds, shared by the API and the events.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Units in one order.
    pub const QUANTITY: RangeInclusive<i64> = 1..=1_000;
    /// A unit price (won).
    pub const PRICE: RangeInclusive<i64> = 0..=1_000_000_000;
    /// Stock a client may set (negative: back-ordered).
    pub const STOCK_SET: RangeInclusive<i64> = -1_000_000_000..=1_000_000_000;
    /// Stock that orders may lead to; an event taking it further is refused.
    pub const STOCK: RangeInclusive<i64> = -1_000_000_000_000..=1_000_000_000_000;
    /// Ids (orders, products, deliveries).
    pub const ID: RangeInclusive<i64> = 1..=i64::MAX;
    /// Characters of a customer id.
    pub const CUSTOMER_ID: usize = 64;
    /// Characters of a customer's or a product's name.
    pub const NAME: usize = 100;
    /// Characters of an address.
    pub const ADDRESS: usize = 500;
    /// Characters of an image URL.
    pub const URL: usize = 2_048;
    /// Characters of a status.
    pub const STATUS: usize = 32;
}

/// An order was accepted (order → delivery, mypage, product).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderPlaced {
    /// Correlation key.
    pub order_id: i64,
    /// Ordered product.
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
    /// Where to deliver.
    pub customer_addr: String,
}

/// An order was cancelled (order → delivery, mypage, product).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    /// Correlation key.
    pub order_id: i64,
    /// The product, whose stock comes back.
    pub product_id: i64,
    /// How many come back.
    pub quantity: i64,
    /// Who ordered.
    pub customer_id: String,
}

/// Delivery of an order started (delivery → mypage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStarted {
    /// The delivery.
    pub delivery_id: i64,
    /// Correlation key.
    pub order_id: i64,
    /// Delivered product.
    pub product_id: i64,
    /// How many.
    pub quantity: i64,
    /// Recipient.
    pub customer_id: String,
    /// Recipient's name.
    pub customer_name: String,
    /// Delivery address.
    pub customer_addr: String,
    /// Always `DeliveryStarted`.
    pub status: String,
}

/// A delivery was cancelled or completed (delivery → mypage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryChanged {
    /// The delivery.
    pub delivery_id: i64,
    /// Correlation key.
    pub order_id: i64,
    /// `DeliveryCancelled` or `DeliveryCompleted`.
    pub status: String,
}

/// A product changed (product → anyone; the course's contract example).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductChanged {
    /// Correlation key.
    pub product_id: i64,
    /// Name; the `drop-product-name` variant leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Unit price.
    pub product_price: i64,
    /// Stock left (negative: back-ordered).
    pub product_stock: i64,
    /// Picture.
    pub image_url: String,
    /// True when the product was deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Bounded for OrderPlaced {
    fn check(&self) -> Result<(), String> {
        int("orderId", self.order_id, limits::ID)?;
        int("productId", self.product_id, limits::ID)?;
        int("quantity", self.quantity, limits::QUANTITY)?;
        int("price", self.price, limits::PRICE)?;
        text("productName", &self.product_name, limits::NAME, false)?;
        customer(&self.customer_id, &self.customer_name, &self.customer_addr)
    }
}

impl Bounded for OrderCancelled {
    fn check(&self) -> Result<(), String> {
        int("orderId", self.order_id, limits::ID)?;
        int("productId", self.product_id, limits::ID)?;
        int("quantity", self.quantity, limits::QUANTITY)?;
        text("customerId", &self.customer_id, limits::CUSTOMER_ID, false)
    }
}

impl Bounded for DeliveryStarted {
    fn check(&self) -> Result<(), String> {
        int("deliveryId", self.delivery_id, limits::ID)?;
        int("orderId", self.order_id, limits::ID)?;
        int("productId", self.product_id, limits::ID)?;
        int("quantity", self.quantity, limits::QUANTITY)?;
        text("status", &self.status, limits::STATUS, false)?;
        customer(&self.customer_id, &self.customer_name, &self.customer_addr)
    }
}

impl Bounded for DeliveryChanged {
    fn check(&self) -> Result<(), String> {
        int("deliveryId", self.delivery_id, limits::ID)?;
        int("orderId", self.order_id, limits::ID)?;
        text("status", &self.status, limits::STATUS, false)
    }
}

impl Bounded for ProductChanged {
    fn check(&self) -> Result<(), String> {
        int("productId", self.product_id, limits::ID)?;
        int("productPrice", self.product_price, limits::PRICE)?;
        int("productStock", self.product_stock, limits::STOCK)?;
        text("productName", self.product_name.as_deref().unwrap_or_default(), limits::NAME, false)?;
        text("imageUrl", &self.image_url, limits::URL, false)
    }
}

/// A customer's fields within their bounds (all required).
pub fn customer(id: &str, name: &str, addr: &str) -> Result<(), String> {
    text("customerId", id, limits::CUSTOMER_ID, true)?;
    text("customerName", name, limits::NAME, true)?;
    text("customerAddr", addr, limits::ADDRESS, true)
}
