//! The library's events, as seed 003 names them. The correlation key of
//! every flow is `bookId`, which is also the Kafka key, so one book's
//! donation, registration and checkouts stay in order on one partition;
//! `requestId` names the request a decision answers (the compensation's
//! target). Payload ids are named (`donateId`, `bookId`, `requestId`): the
//! envelope's `id` is the event's own.

use serde::{Deserialize, Serialize};

use crate::systems::kit::Bounded;
use crate::systems::kit::bounds::{int, text};

/// Every event type of the library; a record of another type is poison.
pub const EVENT_TYPES: &[&str] = &["BookDonated", "BookRegistered", "CheckoutRequested", "BookCheckedOut", "NonexistentBook", "AlreadyCheckedOut"];

/// The domain's bounds, shared by the API and the events.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Ids (books, donations, requests). Bounded well below `i64::MAX` so
    /// donate can number the next book (`max + 1`) without overflow.
    pub const ID: RangeInclusive<i64> = 1..=1_000_000_000_000;
    /// Characters of a title.
    pub const TITLE: usize = 200;
}

/// Where a book is in books: `registered → lent` (the seed has no return).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookStatus {
    /// Donated and registered: it can be checked out.
    Registered,
    /// Checked out to a request.
    Lent,
}

impl BookStatus {
    /// The status named `name` (`registered`, `lent`).
    pub fn parse(name: &str) -> Result<BookStatus, String> {
        match name {
            "registered" => Ok(BookStatus::Registered),
            "lent" => Ok(BookStatus::Lent),
            other => Err(format!("bookStatus must be registered or lent, got `{}`", other.chars().take(40).collect::<String>())),
        }
    }

    /// The name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            BookStatus::Registered => "registered",
            BookStatus::Lent => "lent",
        }
    }

    /// The seed's Korean status in bookdetail: "등록됨" (registered),
    /// "대여완료됨" (checked out).
    pub fn korean(self) -> &'static str {
        match self {
            BookStatus::Registered => "등록됨",
            BookStatus::Lent => "대여완료됨",
        }
    }
}

/// Where a checkout request is: `requested → approved | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Taken by request, waiting for books' decision.
    Requested,
    /// books checked the book out to it ([P]: the seed leaves it `requested`).
    Approved,
    /// The compensation: the book does not exist, or is already lent.
    Cancelled,
}

impl OrderStatus {
    /// The status named `name`.
    pub fn parse(name: &str) -> Result<OrderStatus, String> {
        match name {
            "requested" => Ok(OrderStatus::Requested),
            "approved" => Ok(OrderStatus::Approved),
            "cancelled" => Ok(OrderStatus::Cancelled),
            other => Err(format!("orderStatus must be requested, approved or cancelled, got `{}`", other.chars().take(40).collect::<String>())),
        }
    }

    /// The name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Requested => "requested",
            OrderStatus::Approved => "approved",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// A user donated a book (donate → books).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BookDonated {
    /// The donation.
    pub donate_id: i64,
    /// Correlation key.
    pub book_id: i64,
    /// The title, if the donor gave one ([P]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// books registered a donated book (books → bookdetail).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BookRegistered {
    /// Correlation key.
    pub book_id: i64,
    /// Always `registered`.
    pub book_status: BookStatus,
    /// The donation's title, if any ([P]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A user asked to check a book out (request → books).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutRequested {
    /// The request to decide.
    pub request_id: i64,
    /// Correlation key.
    pub book_id: i64,
}

/// books checked a book out to a request (books → bookdetail, request).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BookCheckedOut {
    /// Correlation key.
    pub book_id: i64,
    /// The request approved ([P]: the repo's event has none).
    pub request_id: i64,
    /// Always `lent`.
    pub book_status: BookStatus,
}

/// The compensation's trigger: a request named a book books does not have
/// (books → request). Also the shape of `AlreadyCheckedOut` ([P]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// Correlation key.
    pub book_id: i64,
    /// The request to cancel; the `drop-request-id` variant leaves it out
    /// (then the request can never be compensated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<i64>,
}

impl Bounded for BookDonated {
    fn check(&self) -> Result<(), String> {
        int("donateId", self.donate_id, limits::ID)?;
        int("bookId", self.book_id, limits::ID)?;
        self.title.as_deref().map_or(Ok(()), |t| text("title", t, limits::TITLE, false))
    }
}

impl Bounded for BookRegistered {
    fn check(&self) -> Result<(), String> {
        int("bookId", self.book_id, limits::ID)?;
        self.title.as_deref().map_or(Ok(()), |t| text("title", t, limits::TITLE, false))
    }
}

impl Bounded for CheckoutRequested {
    fn check(&self) -> Result<(), String> {
        int("requestId", self.request_id, limits::ID)?;
        int("bookId", self.book_id, limits::ID)
    }
}

impl Bounded for BookCheckedOut {
    fn check(&self) -> Result<(), String> {
        int("bookId", self.book_id, limits::ID)?;
        int("requestId", self.request_id, limits::ID)
    }
}

impl Bounded for Refusal {
    fn check(&self) -> Result<(), String> {
        int("bookId", self.book_id, limits::ID)?;
        let request_id = self.request_id.ok_or("requestId is missing")?;
        int("requestId", request_id, limits::ID)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_the_seeds_spellings_and_the_korean_mirror() {
        assert_eq!(serde_json::to_value(BookStatus::Lent).unwrap(), "lent");
        assert_eq!((BookStatus::Registered.korean(), BookStatus::Lent.korean()), ("등록됨", "대여완료됨"));
        assert_eq!(OrderStatus::parse("cancelled"), Ok(OrderStatus::Cancelled));
        assert!(OrderStatus::parse("Cancelled").unwrap_err().contains("`Cancelled`"));
        assert!(BookStatus::parse("borrowed").is_err());
    }

    #[test]
    fn a_refusal_without_its_request_is_malformed() {
        let refusal: Refusal = serde_json::from_str(r#"{"bookId": 2}"#).unwrap();
        assert_eq!(refusal.check().unwrap_err(), "requestId is missing");
        let refusal: Refusal = serde_json::from_str(r#"{"bookId": 2, "requestId": 2}"#).unwrap();
        assert!(refusal.check().is_ok());
    }
}
