//! The shop ("12 STREET" mall): product, order, delivery, mypage (a CQRS read
//! model) and the gateway. See `scenarios/shop/system.yaml`.

pub mod delivery;
pub mod events;
pub mod mypage;
pub mod order;
pub mod product;

use crate::systems::definition::SystemDef;
use crate::systems::kit::{KafkaSettings, ServeOptions};

/// The system's name.
pub const SYSTEM: &str = "shop";

/// Runs one shop service (`product`, `order`, `delivery`, `mypage`).
pub async fn serve(service: &str, opts: ServeOptions) -> anyhow::Result<()> {
    let def = SystemDef::builtin(SYSTEM)?;
    // The platform names the topic of the system it runs (a folder may reuse these handlers).
    let topic = opts.topic.clone().unwrap_or(def.topic);
    let partitions = opts.partitions.unwrap_or(def.partitions);
    let kafka = KafkaSettings { bootstrap: opts.kafka.clone(), topic, partitions, idempotent: opts.kafka_idempotence };
    match service {
        "product" => product::serve(opts, kafka).await,
        "order" => order::serve(opts, kafka).await,
        "delivery" => delivery::serve(opts, kafka).await,
        "mypage" => mypage::serve(opts, kafka).await,
        other => anyhow::bail!("the shop has no service `{other}` (product, order, delivery, mypage, gateway)"),
    }
}
