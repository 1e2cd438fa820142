//! The telecom's events, with the names of seed 004's MSAez model
//! (`BillPayed` keeps the course's spelling) and pay's cancellation renamed
//! `PayCanceled` (the repository's pay and bill both published a
//! `BillCanceled`, and bill consumed its own: a loop). Every event carries
//! `orderId` — a subscription's whole life — which is also the Kafka key, so
//! one subscription's events stay in order on one partition. Payload ids are
//! named (`orderId`, `billId`, `payId`): the envelope's `id` is the event's own.

use serde::{Deserialize, Serialize};

use crate::systems::kit::Bounded;
use crate::systems::kit::bounds::{int, integer, optional_integer, text};

/// Every event type of the telecom; a record of another type is poison.
pub const EVENT_TYPES: &[&str] = &["OrderPlaced", "BillCreated", "BillPayed", "PayCanceled", "BillCompleted", "BillCanceled"];

/// The domain's bounds, shared by the API and the events.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Ids (orders, bills, payments).
    pub const ID: RangeInclusive<i64> = 1..=i64::MAX;
    /// An amount in won (KRW, whole won): a monthly fee, a bill, a payment.
    pub const AMOUNT: RangeInclusive<i64> = 0..=1_000_000_000;
    /// Characters of a user name.
    pub const USER_NAME: usize = 100;
    /// Characters of a phone number (digits, `-`, `+`).
    pub const PHONE_NUMBER: usize = 20;
    /// Characters of a plan's name.
    pub const PLAN: usize = 50;
}

/// Where a bill is: `Unpaid → Paid → Unpaid` (a cancelled payment rolls
/// the paid amount back; the bill can be paid again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillState {
    /// Issued, nothing paid (미납).
    Unpaid,
    /// Paid by its current payment (수납).
    Paid,
}

impl BillState {
    /// The state named `name` (as stored and sent).
    pub fn parse(name: &str) -> Result<BillState, String> {
        match name {
            "Unpaid" => Ok(BillState::Unpaid),
            "Paid" => Ok(BillState::Paid),
            other => Err(format!("billState must be Unpaid or Paid, got `{}`", other.chars().take(40).collect::<String>())),
        }
    }

    /// The name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            BillState::Unpaid => "Unpaid",
            BillState::Paid => "Paid",
        }
    }
}

/// What a payment record is: `PAY → CANCEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkType {
    /// A live payment.
    Pay,
    /// A cancelled one.
    Cancel,
}

impl WorkType {
    /// The state named `name` (as stored and sent).
    pub fn parse(name: &str) -> Result<WorkType, String> {
        match name {
            "PAY" => Ok(WorkType::Pay),
            "CANCEL" => Ok(WorkType::Cancel),
            other => Err(format!("workType must be PAY or CANCEL, got `{}`", other.chars().take(40).collect::<String>())),
        }
    }

    /// The name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            WorkType::Pay => "PAY",
            WorkType::Cancel => "CANCEL",
        }
    }
}

/// A customer subscribed to a phone line (order → bill, mypage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderPlaced {
    /// Correlation key.
    #[serde(deserialize_with = "integer")]
    pub order_id: i64,
    /// The subscriber.
    pub user_name: String,
    /// The line.
    pub phone_number: String,
    /// The plan's name.
    pub plan: String,
    /// What a month of the plan costs (won): each bill's amount.
    #[serde(deserialize_with = "integer")]
    pub monthly_fee: i64,
}

/// A bill's fields as bill publishes them (`BillCreated`, `BillCompleted`,
/// `BillCanceled`; bill → pay's view, mypage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BillEvent {
    /// The bill.
    #[serde(deserialize_with = "integer")]
    pub bill_id: i64,
    /// Correlation key.
    #[serde(deserialize_with = "integer")]
    pub order_id: i64,
    /// The payment that paid it (BillCompleted) or was cancelled (BillCanceled).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_integer")]
    pub pay_id: Option<i64>,
    /// Usage month, `YYYYMM`.
    pub use_ym: String,
    /// The subscriber.
    pub user_name: String,
    /// The line.
    pub phone_number: String,
    /// The amount billed (won); the `amount-as-string` variant sends "100.00".
    #[serde(deserialize_with = "integer")]
    pub bill_amt: i64,
    /// `Unpaid` (created, cancelled) or `Paid` (completed).
    pub bill_state: BillState,
}

/// A payment made or cancelled (pay → bill): `BillPayed` with `PAY`,
/// `PayCanceled` with `CANCEL`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PayEvent {
    /// The payment.
    #[serde(deserialize_with = "integer")]
    pub pay_id: i64,
    /// The bill paid.
    #[serde(deserialize_with = "integer")]
    pub bill_id: i64,
    /// Correlation key.
    #[serde(deserialize_with = "integer")]
    pub order_id: i64,
    /// Usage month of the bill.
    pub use_ym: String,
    /// The subscriber.
    pub user_name: String,
    /// The amount paid (won).
    #[serde(deserialize_with = "integer")]
    pub pay_amt: i64,
    /// `PAY` or `CANCEL`.
    pub work_type: WorkType,
}

/// `value` is a usage month `YYYYMM` (years 2000–9999).
pub fn check_use_ym(value: &str) -> Result<(), String> {
    let shown: String = value.chars().take(20).collect();
    let valid = value.len() == 6
        && value.bytes().all(|b| b.is_ascii_digit())
        && value[..4].parse::<u32>().is_ok_and(|y| y >= 2000)
        && value[4..].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
    if valid { Ok(()) } else { Err(format!("useYm must be a month YYYYMM (e.g. 202101), got `{shown}`")) }
}

/// The usage month of an RFC 3339 time (`2026-12-02T…` → `202612`).
pub fn use_ym_of(timestamp: &str) -> Option<String> {
    let month = format!("{}{}", timestamp.get(..4)?, timestamp.get(5..7)?);
    check_use_ym(&month).ok().map(|()| month)
}

/// `value` is a phone number: digits, `-` and a leading `+`.
pub fn check_phone(value: &str) -> Result<(), String> {
    text("phoneNumber", value, limits::PHONE_NUMBER, true)?;
    let digits = value.trim_start_matches('+');
    if digits.chars().all(|c| c.is_ascii_digit() || c == '-') && digits.chars().any(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("phoneNumber may hold only digits, - and a leading +, got `{}`", value.chars().take(40).collect::<String>()))
    }
}

impl Bounded for OrderPlaced {
    fn check(&self) -> Result<(), String> {
        int("orderId", self.order_id, limits::ID)?;
        text("userName", &self.user_name, limits::USER_NAME, true)?;
        check_phone(&self.phone_number)?;
        text("plan", &self.plan, limits::PLAN, false)?;
        int("monthlyFee", self.monthly_fee, limits::AMOUNT)
    }
}

impl Bounded for BillEvent {
    fn check(&self) -> Result<(), String> {
        int("billId", self.bill_id, limits::ID)?;
        int("orderId", self.order_id, limits::ID)?;
        if let Some(pay_id) = self.pay_id {
            int("payId", pay_id, limits::ID)?;
        }
        check_use_ym(&self.use_ym)?;
        text("userName", &self.user_name, limits::USER_NAME, true)?;
        text("phoneNumber", &self.phone_number, limits::PHONE_NUMBER, false)?;
        int("billAmt", self.bill_amt, limits::AMOUNT)
    }
}

impl Bounded for PayEvent {
    fn check(&self) -> Result<(), String> {
        int("payId", self.pay_id, limits::ID)?;
        int("billId", self.bill_id, limits::ID)?;
        int("orderId", self.order_id, limits::ID)?;
        check_use_ym(&self.use_ym)?;
        text("userName", &self.user_name, limits::USER_NAME, false)?;
        int("payAmt", self.pay_amt, limits::AMOUNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_month_is_yyyymm_and_comes_from_an_event_time() {
        assert!(check_use_ym("202101").is_ok() && check_use_ym("999912").is_ok());
        for bad in ["2021-01", "202113", "202100", "199912", "2021011", "20210a", "", "２０２１０１"] {
            assert!(check_use_ym(bad).is_err(), "{bad}");
        }
        assert_eq!(use_ym_of("2026-12-02T18:00:00.123Z").as_deref(), Some("202612"));
        assert_eq!(use_ym_of("garbage"), None);
        assert_eq!(use_ym_of("20"), None);
    }

    #[test]
    fn amounts_are_integers_and_the_repository_s_decimal_string_is_refused() {
        let bill = |amt: &str| {
            serde_json::from_str::<BillEvent>(&format!(
                r#"{{"billId": 1, "orderId": 1, "useYm": "202101", "userName": "kim", "phoneNumber": "010", "billAmt": {amt}, "billState": "Unpaid"}}"#
            ))
        };
        assert_eq!(bill("100").unwrap().bill_amt, 100);
        assert_eq!(bill(r#""100""#).unwrap().bill_amt, 100, "a numeric string, as httpie sends");
        assert!(bill(r#""100.00""#).is_err(), "the repository's billAmt \"100.00\" is not an integer");
        assert_eq!(serde_json::to_value(WorkType::Cancel).unwrap(), "CANCEL");
        assert!(check_phone("010-1234-5678").is_ok() && check_phone("+82-10-1234").is_ok());
        assert!(check_phone("call me").is_err() && check_phone("--").is_err() && check_phone(" ").is_err());
    }
}
