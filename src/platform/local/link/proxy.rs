//! A link proxy: listens on loopback (and in memory, for callers inside
//! `up`) and passes each connection on to its target through two pumps,
//! while the connection's picks watch the faults set on its link and cut
//! it (reset, close, swallow) when one says so.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::either::Either;

use super::effects::{Cut, Effects, Faults, Picks, Side};
use super::memory::InMemory;
use super::pump::pump;
use crate::proxy::InProcess;

/// One end of a proxied connection: a socket, or a stream in memory (a
/// caller inside `up`, or a target inside it).
type End = Either<TcpStream, DuplexStream>;

/// The targets of one link's proxies (the replicas behind the gateway's
/// link to a service): where a connection goes when its own target refuses.
pub(super) type Targets = Arc<Mutex<Vec<SocketAddr>>>;

/// Starts a proxy on 127.0.0.1 (any free port) to `target`, served in
/// `memory` too; its address, and the handle that stops its accept loop
/// (and closes its port; the caller closes it in memory).
pub(super) fn start(target: SocketAddr, faults: watch::Sender<Faults>, siblings: Targets, memory: &Arc<InMemory>) -> std::io::Result<(SocketAddr, AbortHandle)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    // Weak: the memory holds this closure.
    let reach = Arc::downgrade(memory);
    let accept = Arc::new(move |client: End| {
        tokio::spawn(connection(client, target, siblings.clone(), reach.clone(), Picks::new(faults.subscribe())));
    });
    let in_memory = accept.clone();
    memory.listen(addr, move |stream| in_memory(Either::Right(stream)));
    let accepting = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    let _ = client.set_nodelay(true);
                    accept(Either::Left(client));
                }
                // Out of descriptors, say: back off rather than spin.
                Err(err) => {
                    tracing::warn!("link proxy to {target}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok((addr, accepting.abort_handle()))
}

async fn connection(client: End, target: SocketAddr, siblings: Targets, reach: Weak<InMemory>, mut picks: Picks) {
    let effects = picks.effects();
    match effects.cut {
        // A partitioned link refuses: the closest userspace gets to a
        // refused connect is a reset at once.
        Some(Cut::Reset | Cut::Partition) => return reset(client),
        Some(Cut::Blackhole) => return swallow(client, None, picks).await,
        None => {}
    }
    let Some(upstream) = connect(target, &siblings, &reach).await else {
        // Every target is gone: the caller sees its connection fail.
        return reset(client);
    };
    forward(client, upstream, picks, effects).await;
}

/// Connects to `target` (in memory when `up` serves it, a stable address),
/// or when it refuses (a replica killed or scaled away before the caller
/// saw it go) to another target of the same link: nothing was sent yet, so
/// this is what the caller's own retry on a refused connect would have done.
async fn connect(target: SocketAddr, siblings: &Targets, reach: &Weak<InMemory>) -> Option<End> {
    if let Some(stream) = reach.upgrade().and_then(|memory| memory.dial(target)) {
        return Some(Either::Right(stream));
    }
    let others: Vec<SocketAddr> = siblings.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().filter(|t| *t != target).collect();
    for to in std::iter::once(target).chain(others) {
        if let Ok(upstream) = TcpStream::connect(to).await {
            let _ = upstream.set_nodelay(true);
            return Some(Either::Left(upstream));
        }
    }
    None
}

/// Passes data both ways until both sides are done, or a fault cuts it.
async fn forward(client: End, upstream: End, mut picks: Picks, effects: Effects) {
    let (tell, told) = watch::channel(effects);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let cut = {
        let pumps = async {
            tokio::try_join!(
                pump(&mut client_read, &mut upstream_write, Side::Upstream, told.clone()),
                pump(&mut upstream_read, &mut client_write, Side::Downstream, told.clone()),
            )
        };
        let watch_cut = async {
            loop {
                picks.changed().await;
                let effects = picks.effects();
                if let Some(cut) = effects.cut {
                    return cut;
                }
                let _ = tell.send(effects);
            }
        };
        tokio::select! {
            _ = pumps => None,
            cut = watch_cut => Some(cut),
        }
    };
    let (client, upstream) = (client_read.unsplit(client_write), upstream_read.unsplit(upstream_write));
    match cut {
        None => {}
        Some(Cut::Reset) => {
            reset(client);
            reset(upstream);
        }
        // Closed (FIN) both ways: the link went down under it.
        Some(Cut::Partition) => {}
        Some(Cut::Blackhole) => swallow(client, Some(upstream), picks).await,
    }
}

/// Closes with RST (SO_LINGER 0), so the peer reads ECONNRESET; in memory
/// (no RST there) the peer reads the end of the stream.
fn reset(end: End) {
    if let Either::Left(tcp) = &end {
        let _ = tcp.set_zero_linger();
    }
    drop(end);
}

/// Reads and drops whatever either side sends, answers nothing and closes
/// nothing, until the blackhole is cleared (then closes: the data is lost).
async fn swallow(mut client: End, mut upstream: Option<End>, mut picks: Picks) {
    let (mut from_client, mut from_upstream) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => if matches!(read, Ok(0) | Err(_)) { return },
            read = async { upstream.as_mut().expect("guarded").read(&mut from_upstream).await }, if upstream.is_some() => {
                if matches!(read, Ok(0) | Err(_)) {
                    upstream = None;
                }
            }
            _ = picks.changed() => if picks.effects().cut != Some(Cut::Blackhole) { return },
        }
    }
}
