//! The telecom (seed 004's phone-line subscriptions): order, bill, pay,
//! mypage (a history read model) and the gateway. Its saga is billing: a
//! subscription gets a bill per usage month, a payment makes it `Paid`, and
//! cancelling the payment — the compensation — rolls it back to `Unpaid`,
//! so it can be paid again. See `scenarios/telecom/system.yaml`.

pub mod bill;
pub mod events;
pub mod mypage;
pub mod order;
pub mod pay;

use crate::systems::kit::{ApiError, KafkaSettings, ServeOptions, parse_id};

/// The system's name.
pub const SYSTEM: &str = "telecom";

/// Runs one telecom service (`order`, `bill`, `pay`, `mypage`).
pub async fn serve(service: &str, opts: ServeOptions) -> anyhow::Result<()> {
    let kafka = KafkaSettings::for_system(SYSTEM, &opts)?;
    match service {
        "order" => order::serve(opts, kafka).await,
        "bill" => bill::serve(opts, kafka).await,
        "pay" => pay::serve(opts, kafka).await,
        "mypage" => mypage::serve(opts, kafka).await,
        other => anyhow::bail!("the telecom has no service `{other}` (order, bill, pay, mypage, gateway)"),
    }
}

/// An optional integer query filter (`?orderId=`), 400 when it is not one.
fn id_filter(raw: Option<&str>, what: &str) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| parse_id(raw, what)).transpose()
}

/// An optional text query filter, 400 when longer than `max` characters.
fn text_filter(raw: Option<String>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match raw {
        Some(value) => crate::systems::kit::bounds::text(field, &value, max, false).map(|()| Some(value)).map_err(ApiError::BadRequest),
        None => Ok(None),
    }
}
