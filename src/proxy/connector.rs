//! The forwarder's connector: TCP, except to an address a listener in this
//! process serves, which is reached in memory — the local platform's
//! gateway to its link proxies, say, all inside `up`, need not pay the
//! kernel's loopback twice per request.

use std::error::Error;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// Listeners in this process that take connections in memory.
pub trait InProcess: Send + Sync + 'static {
    /// A connection to `addr` in memory, if a listener here serves it.
    fn dial(&self, addr: SocketAddr) -> Option<DuplexStream>;
}

/// TCP, or in memory where [`InProcess`] serves the address.
#[derive(Clone)]
pub(super) struct Connector {
    pub(super) tcp: HttpConnector,
    pub(super) in_process: Option<Arc<dyn InProcess>>,
}

type BoxError = Box<dyn Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Dialed>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let addr = uri.authority().and_then(|a| a.as_str().parse::<SocketAddr>().ok());
        if let Some(stream) = addr.zip(self.in_process.as_ref()).and_then(|(addr, here)| here.dial(addr)) {
            return Box::pin(std::future::ready(Ok(TokioIo::new(Dialed(Either::Right(stream))))));
        }
        let connecting = self.tcp.call(uri);
        Box::pin(async move { Ok(TokioIo::new(Dialed(Either::Left(connecting.await?.into_inner())))) })
    }
}

/// A connection the connector made: a socket, or a stream in memory.
pub(super) struct Dialed(Either<TcpStream, DuplexStream>);

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        match &self.0 {
            Either::Left(tcp) => tcp.connected(),
            Either::Right(_) => Connected::new(),
        }
    }
}

impl AsyncRead for Dialed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dialed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
