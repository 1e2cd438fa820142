//! A link proxy: listens on loopback and passes each connection on to its
//! target through two pumps, while the connection's picks watch the faults
//! set on its link and cut it (reset, close, swallow) when one says so.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::effects::{Cut, Effects, Faults, Picks, Side};
use super::pump::pump;

/// The targets of one link's proxies (the replicas behind the gateway's
/// link to a service): where a connection goes when its own target refuses.
pub(super) type Targets = Arc<Mutex<Vec<SocketAddr>>>;

/// Starts a proxy on 127.0.0.1 (any free port) to `target`; its address,
/// and the handle that stops its accept loop (and closes its port).
pub(super) fn start(target: SocketAddr, faults: watch::Sender<Faults>, siblings: Targets) -> std::io::Result<(SocketAddr, AbortHandle)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let faults = Arc::new(faults);
    let accepting = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(connection(client, target, siblings.clone(), Picks::new(faults.subscribe())));
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

async fn connection(client: TcpStream, target: SocketAddr, siblings: Targets, mut picks: Picks) {
    let _ = client.set_nodelay(true);
    let effects = picks.effects();
    match effects.cut {
        // A partitioned link refuses: the closest userspace gets to a
        // refused connect is a reset at once.
        Some(Cut::Reset | Cut::Partition) => return reset(client),
        Some(Cut::Blackhole) => return swallow(client, None, picks).await,
        None => {}
    }
    let Some(upstream) = connect(target, &siblings).await else {
        // Every target is gone: the caller sees its connection fail.
        return reset(client);
    };
    let _ = upstream.set_nodelay(true);
    forward(client, upstream, picks, effects).await;
}

/// Connects to `target`, or when it refuses (a replica killed or scaled
/// away before the caller saw it go) to another target of the same link:
/// nothing was sent yet, so this is what the caller's own retry on a
/// refused connect would have done.
async fn connect(target: SocketAddr, siblings: &Targets) -> Option<TcpStream> {
    if let Ok(upstream) = TcpStream::connect(target).await {
        return Some(upstream);
    }
    let others: Vec<SocketAddr> = siblings.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().filter(|t| *t != target).collect();
    for other in others {
        if let Ok(upstream) = TcpStream::connect(other).await {
            return Some(upstream);
        }
    }
    None
}

/// Passes data both ways until both sides are done, or a fault cuts it.
async fn forward(mut client: TcpStream, mut upstream: TcpStream, mut picks: Picks, effects: Effects) {
    let (tell, told) = watch::channel(effects);
    let cut = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
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

/// Closes with RST (SO_LINGER 0), so the peer reads ECONNRESET.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Reads and drops whatever either side sends, answers nothing and closes
/// nothing, until the blackhole is cleared (then closes: the data is lost).
async fn swallow(mut client: TcpStream, mut upstream: Option<TcpStream>, mut picks: Picks) {
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
