//! A connection: one virtual user's HTTP/1.1 connection, lean. The
//! request's bytes are built once per target ([`request_bytes`]) and
//! written as they are; the response head is parsed with httparse and the
//! body (content-length, chunked, or up to the close) is counted, not
//! kept. Keep-alive unless the server or the plan says close.

use std::net::SocketAddr;

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plan::{LoadPlan, Target};
use super::recorder::TransportError;

/// The bytes of `t`'s request under `plan`: request line, headers, body.
pub(crate) fn request_bytes(plan: &LoadPlan, t: &Target) -> Vec<u8> {
    let body = t.body.as_deref().unwrap_or_default();
    let mut r = format!("{} {} HTTP/1.1\r\n", t.method, t.path_and_query).into_bytes();
    r.reserve(256 + body.len());
    let mut line = |name: &str, value: &[u8]| {
        r.extend_from_slice(name.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(value);
        r.extend_from_slice(b"\r\n");
    };
    // -H replaces a header of the same name, as it does through hyper.
    let user = |name: &str| plan.headers.iter().any(|(n, _)| n.as_str().eq_ignore_ascii_case(name));
    let host = if t.port == 80 { t.host.clone() } else { t.authority() };
    if !user("host") {
        line("Host", host.as_bytes());
    }
    if !user("accept") {
        line("Accept", b"*/*");
    }
    if !user("user-agent") {
        line("User-Agent", plan.user_agent.as_bytes());
    }
    if t.body.is_some()
        && !user("content-type")
        && let Some(ct) = plan.content_type.as_deref().or(t.content_type.as_deref())
    {
        line("Content-Type", ct.as_bytes());
    }
    if !body.is_empty() || matches!(t.method, Method::POST | Method::PUT | Method::PATCH) {
        line("Content-Length", body.len().to_string().as_bytes());
    }
    if !plan.keepalive && !user("connection") {
        line("Connection", b"close");
    }
    for (name, value) in &plan.headers {
        line(name.as_str(), value.as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

/// One finished exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    /// Body bytes (without chunk framing).
    pub bytes: u64,
    /// Whether the connection may carry the next request.
    pub reusable: bool,
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Nothing of a response came and the connection was reused: the server
    /// had closed it, so the request is safe to send again on a new one.
    Stale(TransportError),
    /// Any other failure.
    Hard(TransportError),
}

/// A user's connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    used: bool,
}

fn io_error(e: &std::io::Error) -> TransportError {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe => TransportError::Reset,
        TimedOut => TransportError::Timeout,
        UnexpectedEof => TransportError::Closed,
        _ => TransportError::Other,
    }
}

const MAX_HEAD: usize = 64 * 1024;

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Conn, TransportError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => TransportError::ConnectRefused,
            std::io::ErrorKind::TimedOut => TransportError::Timeout,
            _ => TransportError::ConnectFailed,
        })?;
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream, buf: vec![0; 16 * 1024], start: 0, end: 0, used: false })
    }

    /// Whether an idle kept-alive connection is still open: a FIN (or
    /// anything unasked for) that arrived while it was idle means no.
    pub fn is_alive(&mut self) -> bool {
        if self.start != self.end {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Reads more bytes into the buffer; Ok(false) at EOF.
    async fn fill(&mut self) -> Result<bool, TransportError> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await.map_err(|e| io_error(&e))?;
        self.end += n;
        Ok(n > 0)
    }

    /// Sends `request` and reads the whole response (`head`: no body, as
    /// for HEAD).
    pub async fn exchange(&mut self, request: &[u8], head: bool) -> Result<Response, Failed> {
        let reused = self.used;
        self.used = true;
        let stale = |e| if reused { Failed::Stale(e) } else { Failed::Hard(e) };
        self.stream.write_all(request).await.map_err(|e| stale(io_error(&e)))?;
        loop {
            let (status, length, reusable, consumed) = loop {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let bodiless = head || status == 204 || status == 304 || (100..200).contains(&status);
                        let (length, mut reusable) = framing(&resp, bodiless);
                        if resp.version == Some(0) {
                            reusable = reusable && has_token(&resp, "connection", "keep-alive");
                        }
                        break (status, length, reusable, n);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start > MAX_HEAD {
                            return Err(Failed::Hard(TransportError::Protocol));
                        }
                        let nothing_yet = self.start == self.end;
                        match self.fill().await {
                            Ok(true) => {}
                            Ok(false) if nothing_yet => return Err(stale(TransportError::Closed)),
                            Ok(false) => return Err(Failed::Hard(TransportError::Closed)),
                            Err(e) if nothing_yet => return Err(stale(e)),
                            Err(e) => return Err(Failed::Hard(e)),
                        }
                    }
                    Err(_) => return Err(Failed::Hard(TransportError::Protocol)),
                }
            };
            self.start += consumed;
            // 1xx: an interim response; the final one follows.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let bytes = match length {
                Length::Known(n) => self.skip(n).await.map_err(Failed::Hard)?,
                Length::Chunked => self.chunked().await.map_err(Failed::Hard)?,
                Length::ToClose => self.to_close().await.map_err(Failed::Hard)?,
            };
            return Ok(Response { status, bytes, reusable });
        }
    }

    /// Consumes `n` body bytes.
    async fn skip(&mut self, n: u64) -> Result<u64, TransportError> {
        let mut left = n;
        loop {
            let here = ((self.end - self.start) as u64).min(left);
            self.start += here as usize;
            left -= here;
            if left == 0 {
                return Ok(n);
            }
            if !self.fill().await? {
                return Err(TransportError::Closed);
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Result<Vec<u8>, TransportError> {
        loop {
            if let Some(at) = self.buf[self.start..self.end].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.start..self.start + at].to_vec();
                self.start += at + 2;
                return Ok(line);
            }
            if self.end - self.start > MAX_HEAD {
                return Err(TransportError::Protocol);
            }
            if !self.fill().await? {
                return Err(TransportError::Closed);
            }
        }
    }

    async fn chunked(&mut self) -> Result<u64, TransportError> {
        let mut total = 0u64;
        loop {
            let line = self.line().await?;
            let size = line.split(|b| *b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size).ok().map(str::trim).and_then(|s| u64::from_str_radix(s, 16).ok());
            let size = size.ok_or(TransportError::Protocol)?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            total += self.skip(size).await?;
            if !self.line().await?.is_empty() {
                return Err(TransportError::Protocol);
            }
        }
    }

    async fn to_close(&mut self) -> Result<u64, TransportError> {
        let mut total = (self.end - self.start) as u64;
        self.start = self.end;
        while self.fill().await? {
            total += (self.end - self.start) as u64;
            self.start = self.end;
        }
        Ok(total)
    }
}

enum Length {
    Known(u64),
    Chunked,
    ToClose,
}

fn has_token(resp: &httparse::Response, name: &str, token: &str) -> bool {
    resp.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).any(|h| {
        std::str::from_utf8(h.value).is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// How the body is delimited and whether the server keeps the connection.
fn framing(resp: &httparse::Response, bodiless: bool) -> (Length, bool) {
    let reusable = !has_token(resp, "connection", "close");
    if bodiless {
        return (Length::Known(0), reusable);
    }
    if has_token(resp, "transfer-encoding", "chunked") {
        return (Length::Chunked, reusable);
    }
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<u64>().ok());
    match length {
        Some(n) => (Length::Known(n), reusable),
        None => (Length::ToClose, false),
    }
}
