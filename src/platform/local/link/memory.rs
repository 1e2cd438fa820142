//! Listeners inside `up` reached in memory: a link proxy from the gateway
//! (both in `up`), a stable address from a link proxy. The connection
//! is a duplex stream, so the hop costs copies, not two passes through the
//! kernel's loopback; a part in another process still connects over TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;

use crate::proxy::InProcess;

/// Takes the far end of a connection made in memory.
type Accept = Arc<dyn Fn(DuplexStream) + Send + Sync>;

/// Room for a chunk in flight each way (a pump reads 32 KiB at a time).
const BUFFER: usize = 64 * 1024;

/// The addresses served in memory, each with what takes its connections.
#[derive(Default)]
pub struct InMemory {
    listeners: Mutex<HashMap<SocketAddr, Accept>>,
}

impl InMemory {
    /// Serves `addr` (also a TCP listener's) in memory too, by `accept`.
    pub fn listen(&self, addr: SocketAddr, accept: impl Fn(DuplexStream) + Send + Sync + 'static) {
        self.lock().insert(addr, Arc::new(accept));
    }

    /// Serves `app` (also `addr`'s over TCP) in memory, HTTP/1.1 as over TCP.
    pub fn serve(&self, addr: SocketAddr, app: Router) {
        self.listen(addr, move |stream| {
            let app = app.clone();
            let service = hyper::service::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| tower_service::Service::call(&mut app.clone(), request));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        });
    }

    /// Stops serving `addr` in memory: a dial there goes over TCP again.
    pub fn close(&self, addr: SocketAddr) {
        self.lock().remove(&addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Accept>> {
        self.listeners.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl InProcess for InMemory {
    fn dial(&self, addr: SocketAddr) -> Option<DuplexStream> {
        let accept = self.lock().get(&addr).cloned()?;
        let (near, far) = tokio::io::duplex(BUFFER);
        accept(far);
        Some(near)
    }
}
