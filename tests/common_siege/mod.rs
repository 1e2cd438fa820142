//! Test servers for the siege tests: loopback only, port 0, stopped on drop.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the server does with each connection / request.
#[derive(Clone)]
pub enum Behavior {
    /// Answers statuses in this order (then 200 forever), body "ok".
    Script(Vec<u16>),
    /// Answers 200 after this delay.
    Slow(Duration),
    /// Reads the request head, then resets the connection (RST).
    Reset,
    /// Accepts and never answers.
    Hang,
    /// 500 for paths starting with /fail, 200 otherwise.
    FailPrefix,
    /// Answers 200 at once, except on the first connection accepted, where
    /// every `every`-th request (the first included) waits `delay`: a tail
    /// that only one client of several sees.
    SlowFirstConnection { every: usize, delay: Duration },
    /// Answers one request with a keep-alive response, then quietly closes
    /// the connection (as an idle timeout of a proxy does).
    CloseIdle,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(behavior: Behavior) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (req2, conn2) = (requests.clone(), connections.clone());
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => continue,
            };
            let index = conn2.fetch_add(1, Ordering::SeqCst);
            let behavior = match behavior.clone() {
                Behavior::SlowFirstConnection { .. } if index > 0 => Behavior::Script(vec![]),
                b => b,
            };
            let requests = req2.clone();
            conns.spawn(async move { serve(stream, behavior, requests).await });
            while conns.try_join_next().is_some() {}
        }
    });
    TestServer { addr, requests, connections, task }
}

async fn serve(stream: tokio::net::TcpStream, behavior: Behavior, requests: Arc<AtomicUsize>) {
    match behavior {
        Behavior::Reset => {
            use tokio::io::AsyncReadExt;
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            requests.fetch_add(1, Ordering::SeqCst);
            // Linger 0 makes the close an immediate RST (no blocking on drop).
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
        Behavior::CloseIdle => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                requests.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            }
        }
        Behavior::Hang => {
            let _keep = stream;
            std::future::pending::<()>().await;
        }
        behavior => {
            let on_connection = Arc::new(AtomicUsize::new(0));
            let svc = service_fn(move |req: Request<Incoming>| {
                let n = requests.fetch_add(1, Ordering::SeqCst);
                let here = on_connection.fetch_add(1, Ordering::SeqCst);
                let behavior = behavior.clone();
                async move {
                    let status = match &behavior {
                        Behavior::Script(seq) => seq.get(n).copied().unwrap_or(200),
                        Behavior::Slow(d) => {
                            tokio::time::sleep(*d).await;
                            200
                        }
                        Behavior::FailPrefix if req.uri().path().starts_with("/fail") => 500,
                        Behavior::SlowFirstConnection { every, delay } => {
                            if here % every == 0 {
                                tokio::time::sleep(*delay).await;
                            }
                            200
                        }
                        _ => 200,
                    };
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        }
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// Runs the built binary's `stormproof siege ARGS` (without the env
/// settings that would change its defaults) and returns what it did.
pub async fn siege(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stormproof"))
            .arg("siege")
            .args(&args)
            .env_remove("STORMPROOF_CONCURRENT")
            .env_remove("STORMPROOF_WORKERS")
            .output()
            .expect("run stormproof")
    })
    .await
    .unwrap()
}
