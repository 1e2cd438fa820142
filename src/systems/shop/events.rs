//! The shop's events, as the course names them. The correlation key of every
//! order flow is `orderId` (product events: `productId`), which is also the
//! Kafka key, so one order's events stay in order on one partition.

use serde::{Deserialize, Serialize};

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
