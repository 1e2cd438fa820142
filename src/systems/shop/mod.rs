//! The shop ("12 STREET" mall): product, order, delivery, mypage (a CQRS read
//! model) and the gateway. See `scenarios/shop/system.yaml`.

pub mod delivery;
pub mod events;
pub mod mypage;
pub mod order;
pub mod product;

use crate::systems::kit::{KafkaSettings, ServeOptions};

/// The system's name.
pub const SYSTEM: &str = "shop";

/// Runs one shop service (`product`, `order`, `delivery`, `mypage`).
pub async fn serve(service: &str, opts: ServeOptions) -> anyhow::Result<()> {
    let kafka = KafkaSettings::for_system(SYSTEM, &opts)?;
    match service {
        "product" => product::serve(opts, kafka).await,
        "order" => order::serve(opts, kafka).await,
        "delivery" => delivery::serve(opts, kafka).await,
        "mypage" => mypage::serve(opts, kafka).await,
        other => anyhow::bail!("the shop has no service `{other}` (product, order, delivery, mypage, gateway)"),
    }
}
