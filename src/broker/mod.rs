//! The embedded broker: a Kafka-API broker (tansu) with durable SQLite
//! storage, so a system runs with no installed Kafka.
//!
//! The local platform runs it as its own child process (`stormproof broker`)
//! so that stopping the broker is a real fault. Messages and committed
//! offsets live in `DATA/broker.db` and survive a restart.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

/// Runs the broker on `listen` with its storage in `data` until SIGTERM or
/// SIGINT.
pub async fn run(listen: SocketAddr, data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create broker data dir {}", data.display()))?;
    // tansu 0.6 resolves `sqlite://` URLs against the working directory (an
    // absolute path ends up doubled), so move into the data dir first.
    std::env::set_current_dir(data)
        .with_context(|| format!("cannot enter broker data dir {}", data.display()))?;
    let listener = Url::parse(&format!("tcp://{listen}"))?;
    let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(111)
        .cluster_id("stormproof")
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(listener.clone())
        .storage(Url::parse("sqlite://broker.db")?)
        .listener(listener)
        .silent(true)
        .build()
        .await
        .map_err(|err| anyhow::anyhow!("broker failed to start: {err:?}"))?;
    println!("{}{listen}", crate::systems::kit::LISTENING);
    broker
        .main(tokio::time::Instant::now())
        .await
        .map_err(|err| anyhow::anyhow!("broker stopped with an error: {err:?}"))?;
    Ok(())
}
