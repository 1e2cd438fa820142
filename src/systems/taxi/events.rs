//! The taxi's events, as seed 001 names them. The correlation key of every
//! flow is `callId`, which is also the Kafka key, so one call's events stay
//! in order on one partition. Payload ids are named (`callId`, `paymentId`,
//! `driverId`): the envelope's `id` is the event's own.

use serde::{Deserialize, Serialize};

use crate::systems::kit::Bounded;
use crate::systems::kit::bounds::{int, text};

/// Every event type of the taxi; a record of another type is poison.
pub const EVENT_TYPES: &[&str] = &["CalledTaxi", "RegisteredDestinationInfo", "UpdatedStatus"];

/// The domain's bounds, shared by the API and the events.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Ids (calls, customers).
    pub const ID: RangeInclusive<i64> = 1..=i64::MAX;
    /// A fare (won).
    pub const COST: RangeInclusive<i64> = 0..=1_000_000_000;
    /// Characters of a destination.
    pub const DESTINATION: usize = 200;
}

/// Where a call is: `Called → Accepted → Completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Taken by call, waiting for a driver.
    Called,
    /// A driver picked the passenger up.
    Accepted,
    /// The ride is over and the fare settled.
    Completed,
}

impl Status {
    /// The status named `name` (the seed's capitalised spelling).
    pub fn parse(name: &str) -> Result<Status, String> {
        match name {
            "Called" => Ok(Status::Called),
            "Accepted" => Ok(Status::Accepted),
            "Completed" => Ok(Status::Completed),
            other => {
                let shown: String = other.chars().take(40).collect();
                Err(format!("status must be Called, Accepted or Completed, got `{shown}`"))
            }
        }
    }

    /// The name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            Status::Called => "Called",
            Status::Accepted => "Accepted",
            Status::Completed => "Completed",
        }
    }

    /// Whether a call may go from `self` to `next` (staying is allowed:
    /// a repeat is idempotent).
    pub fn may_become(self, next: Status) -> bool {
        matches!((self, next), (Status::Called, Status::Accepted) | (Status::Accepted, Status::Completed)) || self == next
    }
}

/// A passenger called a taxi (call → driver, calllist).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CalledTaxi {
    /// Correlation key.
    pub call_id: i64,
    /// The passenger.
    pub customer_id: i64,
    /// Where to.
    pub destination: String,
    /// The fare registered with payment.
    pub cost: i64,
    /// Always `Called`.
    pub status: Status,
}

/// Payment registered a call's fare (payment → nobody; contract only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredDestinationInfo {
    /// The payment (equal to the call's id).
    pub payment_id: i64,
    /// Correlation key.
    pub call_id: i64,
    /// The fare.
    pub cost: i64,
    /// Where to.
    pub destination: String,
}

/// A driver changed a call's status (driver → call, calllist).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedStatus {
    /// The driver entry (equal to the call's id).
    pub driver_id: i64,
    /// Correlation key; the `drop-call-id` variant leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<i64>,
    /// `Accepted` or `Completed`.
    pub status: Status,
    /// The fare; on `Completed` the settled one.
    pub cost: i64,
}

impl Bounded for CalledTaxi {
    fn check(&self) -> Result<(), String> {
        int("callId", self.call_id, limits::ID)?;
        int("customerId", self.customer_id, limits::ID)?;
        int("cost", self.cost, limits::COST)?;
        text("destination", &self.destination, limits::DESTINATION, true)
    }
}

impl Bounded for RegisteredDestinationInfo {
    fn check(&self) -> Result<(), String> {
        int("paymentId", self.payment_id, limits::ID)?;
        int("callId", self.call_id, limits::ID)?;
        int("cost", self.cost, limits::COST)?;
        text("destination", &self.destination, limits::DESTINATION, false)
    }
}

impl Bounded for UpdatedStatus {
    fn check(&self) -> Result<(), String> {
        int("driverId", self.driver_id, limits::ID)?;
        let call_id = self.call_id.ok_or("callId is missing")?;
        int("callId", call_id, limits::ID)?;
        int("cost", self.cost, limits::COST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_machine_goes_forward_one_step_or_stays() {
        use Status::*;
        assert!(Called.may_become(Accepted) && Accepted.may_become(Completed));
        assert!(Accepted.may_become(Accepted), "a repeat is idempotent");
        assert!(!Called.may_become(Completed) && !Completed.may_become(Accepted) && !Accepted.may_become(Called));
        assert!(Status::parse("accepted").unwrap_err().contains("`accepted`"));
        assert_eq!(serde_json::to_value(Completed).unwrap(), "Completed");
    }
}
