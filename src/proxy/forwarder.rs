//! Passes a request on to one ready endpoint of a service, round-robin,
//! trying the next endpoint when one refuses the connection (the request
//! was not sent, so this is safe even for a POST).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::connector::{Connector, InProcess};
use crate::systems::kit::ApiError;

/// Where the ready endpoints of a service are.
pub trait Upstreams: Send + Sync + 'static {
    /// `host:port` of every endpoint of `service` that may take traffic now.
    fn endpoints(&self, service: &str) -> Vec<String>;
}

/// The largest body passed on (larger: 413). Above a service's own limit,
/// so a service still answers for itself what it takes.
pub const MAX_BODY: usize = 1 << 20;
const ATTEMPTS: usize = 3;

/// Forwards requests to a service's endpoints.
#[derive(Clone)]
pub struct Forwarder {
    upstreams: Arc<dyn Upstreams>,
    client: Client<Connector, Full<Bytes>>,
    next: Arc<AtomicUsize>,
    timeout: Duration,
}

impl Forwarder {
    /// A forwarder over `upstreams`, over TCP.
    pub fn new(upstreams: Arc<dyn Upstreams>) -> Forwarder {
        Forwarder::reaching(upstreams, None)
    }

    /// A forwarder over `upstreams` that reaches the endpoints `in_process`
    /// serves in memory.
    pub fn reaching(upstreams: Arc<dyn Upstreams>, in_process: Option<Arc<dyn InProcess>>) -> Forwarder {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Connector { tcp, in_process });
        Forwarder { upstreams, client, next: Arc::new(AtomicUsize::new(0)), timeout: Duration::from_secs(30) }
    }

    /// Sends `request` to one endpoint of `service` and returns its answer.
    pub async fn forward(&self, service: &str, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY as u64) {
            return too_large();
        }
        let body = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(body) => body,
            Err(err) if over_limit(&err) => return too_large(),
            Err(err) => return ApiError::BadRequest(format!("cannot read request body: {err}")).into_response(),
        };
        let endpoints = self.upstreams.endpoints(service);
        if endpoints.is_empty() {
            return ApiError::Unavailable(format!("no ready replica of {service}")).into_response();
        }
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        // The headers once, minus the hop's own; each attempt names its endpoint as Host.
        let mut headers = parts.headers;
        headers.remove(header::HOST);
        headers.remove(header::CONNECTION);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = String::new();
        for attempt in 0..endpoints.len().min(ATTEMPTS) {
            let endpoint = &endpoints[(start + attempt) % endpoints.len()];
            let (Ok(uri), Ok(host)) = (Uri::builder().scheme("http").authority(endpoint.as_str()).path_and_query(path.clone()).build(), HeaderValue::from_str(endpoint)) else {
                return ApiError::BadRequest(format!("cannot forward path `{path}` to {endpoint}")).into_response();
            };
            let mut outgoing = Request::new(Full::new(body.clone()));
            *outgoing.method_mut() = parts.method.clone();
            *outgoing.uri_mut() = uri;
            *outgoing.headers_mut() = headers.clone();
            outgoing.headers_mut().insert(header::HOST, host);
            match tokio::time::timeout(self.timeout, self.client.request(outgoing)).await {
                Ok(Ok(response)) => return response.map(Body::new),
                Ok(Err(err)) if err.is_connect() => last_error = format!("{endpoint}: {err}"),
                Ok(Err(err)) => return bad_gateway(service, &format!("{endpoint}: {err}")),
                Err(_) => return bad_gateway(service, &format!("{endpoint} did not answer within {:?}", self.timeout)),
            }
        }
        ApiError::Unavailable(format!("no replica of {service} accepted the connection ({last_error})")).into_response()
    }
}

fn too_large() -> Response<Body> {
    ApiError::TooLarge(format!("the body is larger than {MAX_BODY} bytes")).into_response()
}

/// Whether reading a body failed on the length limit.
fn over_limit(err: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = cause {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

fn bad_gateway(service: &str, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": "Bad Gateway", "reason": format!("{service}: {reason}") });
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}
