//! The broker process: nisshi's SQLite storage, its group coordinator and
//! its API routes, served on our own accept loop so that the fault layer
//! ([`FaultService`]) sits between nisshi's frame decoding and its routes.
//! nisshi's `Broker::listen` builds that stack inside itself with no place
//! for a layer; everything else here is nisshi's own, composed as it does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use nisshi_broker::coordinator::group::administrator::{Controller, GroupCoordinatorConfig};
use nisshi_broker::service::{coordinator, storage};
use nisshi_service::{BytesFrameLayer, FrameRouteService, TcpBytesLayer, TcpContext, TcpContextLayer};
use nisshi_storage::{ArcDynStorage, BrokerRegistrationRequest, Storage, StorageContainer};
use rama::{Layer, Service, extensions::Extensions, tcp::TcpStream};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::advertise::AdvertiseService;
use super::book::FaultBook;
use super::inject::FaultService;

const NODE_ID: i32 = 111;
const CLUSTER_ID: &str = "stormproof";
/// How long open connections get to finish once the broker is told to stop.
const DRAIN: Duration = Duration::from_secs(2);

/// Where the broker listens and keeps its data.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The Kafka listener (also the advertised address).
    pub listen: SocketAddr,
    /// The data directory; messages and committed offsets are in `broker.db`.
    pub data: std::path::PathBuf,
    /// Where to serve the fault control endpoint, if anywhere.
    pub faults: Option<FaultEndpoint>,
    /// Per-link listeners: where to listen → the address advertised to
    /// the clients that connect there (their link proxy).
    pub links: Vec<(SocketAddr, SocketAddr)>,
}

/// The fault control endpoint: where it listens, and the bearer token
/// every request to it must carry.
#[derive(Debug, Clone)]
pub struct FaultEndpoint {
    /// Its loopback address.
    pub addr: SocketAddr,
    /// The token (the run's, when `up` starts the broker).
    pub token: String,
}

/// Runs the broker until SIGTERM or SIGINT.
pub async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let storage = open_storage(config.listen, &config.data, &cancel).await?;
    // Bound once storage is open: the supervisor's readiness probe is a TCP connect.
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {} for the broker", config.listen))?;
    let book = FaultBook::default();
    let mut tasks = JoinSet::new();
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::channel(64);
    tasks.spawn(accept(listener, None, accepted_tx.clone(), cancel.clone()));
    for (listen, advertised) in &config.links {
        let link = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen} for the broker link advertised as {advertised}"))?;
        tasks.spawn(accept(link, Some(*advertised), accepted_tx.clone(), cancel.clone()));
    }
    drop(accepted_tx);
    if let Some(FaultEndpoint { addr, token }) = config.faults {
        let control = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for broker faults"))?;
        tasks.spawn(super::control::serve(control, book.clone(), token, cancel.clone()));
    }
    tasks.spawn(maintain(storage.clone(), cancel.clone()));
    let coordinator = Controller::new(storage.clone(), group_config());
    println!("{}{}", crate::systems::kit::LISTENING, config.listen);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            Some((stream, advertised)) = accepted.recv() => {
                let (storage, coordinator, book) = (storage.clone(), coordinator.clone(), book.clone());
                tasks.spawn(async move { connection(stream, advertised, storage, coordinator, book).await });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    cancel.cancel();
    drop(accepted);
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    Ok(())
}

/// Accepts on `listener` until cancelled, handing each connection (with
/// the address to advertise on it) to the broker's loop.
async fn accept(listener: TcpListener, advertised: Option<SocketAddr>, to: tokio::sync::mpsc::Sender<(tokio::net::TcpStream, Option<SocketAddr>)>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                if to.send((stream, advertised)).await.is_err() {
                    return;
                }
            }
            // Out of descriptors, say: back off rather than spin.
            Err(err) => {
                tracing::warn!("broker accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// nisshi's SQLite engine on `DATA/broker.db`, registered as this broker.
async fn open_storage(listen: SocketAddr, data: &Path, cancel: &CancellationToken) -> anyhow::Result<ArcDynStorage> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create broker data dir {}", data.display()))?;
    // nisshi resolves a `sqlite://` URL against the working directory.
    std::env::set_current_dir(data).with_context(|| format!("cannot enter broker data dir {}", data.display()))?;
    let advertised = Url::parse(&format!("tcp://{listen}"))?;
    let mut builder = StorageContainer::builder();
    builder.with_factory(Arc::new(nisshi_storage_sql::LiteEngineFactory));
    let storage = builder
        .cluster_id(CLUSTER_ID)
        .node_id(NODE_ID)
        .advertised_listener(advertised)
        .storage(Url::parse("sqlite://broker.db")?)
        .cancellation(cancel.clone())
        .silent(true)
        .build()
        .await
        .map_err(|err| anyhow::anyhow!("broker storage failed to open: {err:?}"))?;
    storage
        .register_broker(BrokerRegistrationRequest {
            broker_id: NODE_ID,
            cluster_id: CLUSTER_ID.into(),
            incarnation_id: uuid::Uuid::new_v4(),
            rack: None,
        })
        .await
        .map_err(|err| anyhow::anyhow!("broker failed to register: {err:?}"))?;
    Ok(storage)
}

/// The group coordinator's settings. No initial rebalance delay: Kafka's
/// 3 s default waits for more members of a new group, which a system of a
/// replica or two per service only pays for (at every start) — as Kafka
/// images for development set `group.initial.rebalance.delay.ms=0`.
fn group_config() -> GroupCoordinatorConfig {
    GroupCoordinatorConfig { initial_rebalance_delay: Duration::ZERO, ..GroupCoordinatorConfig::default() }
}

/// One client connection: nisshi's stack with the fault layer before its
/// routes, built per connection as nisshi builds it.
async fn connection(stream: tokio::net::TcpStream, advertised: Option<SocketAddr>, storage: ArcDynStorage, coordinator: Controller<ArcDynStorage>, book: FaultBook) {
    let routes = storage::services(FrameRouteService::<nisshi_broker::Error>::builder(), storage)
        .and_then(|builder| coordinator::services(builder, coordinator))
        .and_then(nisshi_broker::service::auth::services)
        .and_then(|builder| builder.build().map_err(Into::into));
    let routes = match routes {
        Ok(routes) => routes,
        Err(err) => return tracing::error!("broker routes: {err:?}"),
    };
    let service = (TcpContextLayer::new(TcpContext::default().cluster_id(Some(CLUSTER_ID.into()))), TcpBytesLayer, BytesFrameLayer::default())
        .into_layer(AdvertiseService::new(FaultService::new(routes, book), advertised));
    if let Err(err) = service.serve(TcpStream::from_tokio_tcp_stream(stream, Extensions::default())).await {
        // A client that hangs up ends its connection with an I/O error: routine.
        tracing::debug!("broker connection ended: {err:?}");
    }
}

/// nisshi's periodic sweeps (retention, and transactions left open), at
/// nisshi's own intervals.
async fn maintain(storage: ArcDynStorage, cancel: CancellationToken) {
    let mut retention = tokio::time::interval(Duration::from_secs(600));
    let mut transactions = tokio::time::interval(Duration::from_secs(10));
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    transactions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = retention.tick() => storage.maintain(SystemTime::now()).await,
            _ = transactions.tick() => storage.maintain_transactions(SystemTime::now()).await,
        };
        if let Err(err) = result {
            tracing::debug!("broker maintenance: {err:?}");
        }
    }
}
