//! The taxi (seed 001's call taxi): call, payment, driver, calllist (a CQRS
//! read model) and the gateway. See `scenarios/taxi/system.yaml`.

pub mod call;
pub mod calllist;
pub mod driver;
pub mod events;
pub mod payment;

use crate::systems::kit::{ApiError, KafkaSettings, ServeOptions, parse_id};
use events::Status;

/// The system's name.
pub const SYSTEM: &str = "taxi";

/// Runs one taxi service (`call`, `payment`, `driver`, `calllist`).
pub async fn serve(service: &str, opts: ServeOptions) -> anyhow::Result<()> {
    let kafka = KafkaSettings::for_system(SYSTEM, &opts)?;
    match service {
        "call" => call::serve(opts, kafka).await,
        "payment" => payment::serve(opts, kafka).await,
        "driver" => driver::serve(opts, kafka).await,
        "calllist" => calllist::serve(opts, kafka).await,
        other => anyhow::bail!("the taxi has no service `{other}` (call, payment, driver, calllist, gateway)"),
    }
}

/// A stored status (written only by this code; anything else is a bug).
fn status_of(stored: &str) -> anyhow::Result<Status> {
    Status::parse(stored).map_err(|err| anyhow::anyhow!("stored status: {err}"))
}

/// The `?customerId=` filter, an integer.
fn customer_filter(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| parse_id(raw, "customer")).transpose()
}
