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
    pub fn is_alive(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request it reads with the next of `answers`
    /// (written in two halves, to split reads), then closes.
    async fn scripted(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for a in answers {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let (x, y) = a.split_at(a.len() / 2);
                s.write_all(x).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.write_all(y).await.unwrap();
            }
        });
        addr
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[tokio::test]
    async fn chunked_content_length_and_bodiless_responses_keep_the_connection() {
        let addr = scripted(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno",
        ])
        .await;
        let mut c = Conn::connect(addr).await.unwrap();
        assert_eq!(c.exchange(GET, false).await, Ok(Response { status: 200, bytes: 11, reusable: true }));
        assert_eq!(c.exchange(GET, false).await, Ok(Response { status: 201, bytes: 3, reusable: true }));
        assert_eq!(c.exchange(GET, false).await, Ok(Response { status: 204, bytes: 0, reusable: true }));
        assert_eq!(c.exchange(GET, false).await, Ok(Response { status: 503, bytes: 2, reusable: false }));
    }

    #[tokio::test]
    async fn a_body_without_length_runs_to_the_close_and_http_1_0_closes() {
        let addr = scripted(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"]).await;
        let mut c = Conn::connect(addr).await.unwrap();
        assert_eq!(c.exchange(GET, false).await, Ok(Response { status: 200, bytes: 13, reusable: false }));
        let addr = scripted(vec![b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"]).await;
        let mut c = Conn::connect(addr).await.unwrap();
        assert_eq!(c.exchange(GET, false).await, Ok(Response { status: 200, bytes: 2, reusable: false }));
    }

    #[tokio::test]
    async fn a_closed_kept_connection_is_stale_and_garbage_is_a_protocol_error() {
        let addr = scripted(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let mut c = Conn::connect(addr).await.unwrap();
        assert!(c.exchange(GET, false).await.unwrap().reusable);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!c.is_alive(), "the server's FIN shows while idle");
        assert!(matches!(c.exchange(GET, false).await, Err(Failed::Stale(_))));
        let addr = scripted(vec![b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
        let mut c = Conn::connect(addr).await.unwrap();
        assert_eq!(c.exchange(GET, false).await, Err(Failed::Hard(TransportError::Protocol)));
        let addr = scripted(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut c = Conn::connect(addr).await.unwrap();
        assert_eq!(c.exchange(GET, false).await, Err(Failed::Hard(TransportError::Closed)));
    }

    #[test]
    fn request_bytes_are_what_siege_sends() {
        let t = Target::new(Method::POST, "http://127.0.0.1:8080/orders?x=1", Some(bytes::Bytes::from_static(b"{\"a\":1}"))).unwrap();
        let mut plan = LoadPlan::new(vec![t.clone()]);
        plan.user_agent = "ua".into();
        plan.headers.push((hyper::header::HeaderName::from_static("x-run"), hyper::header::HeaderValue::from_static("7")));
        let text = String::from_utf8(request_bytes(&plan, &t)).unwrap();
        assert_eq!(
            text,
            "POST /orders?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nUser-Agent: ua\r\nContent-Type: application/json\r\nContent-Length: 7\r\nx-run: 7\r\n\r\n{\"a\":1}"
        );
        plan.keepalive = false;
        let get = Target::get("http://h/").unwrap();
        let text = String::from_utf8(request_bytes(&plan, &get)).unwrap();
        assert_eq!(text, "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nUser-Agent: ua\r\nConnection: close\r\nx-run: 7\r\n\r\n");
    }
}
