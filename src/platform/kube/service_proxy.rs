//! A Service through the API server: a loopback listener whose every
//! request goes on, with the kubeconfig's credentials, to the Service's
//! `proxy` subresource (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/…`)
//! — how the harness reaches the gateway from outside the cluster when no
//! `--gateway-url` is given, without a port-forward and without a pod IP.
//!
//! The API server removes the caller's `Authorization` header once it has
//! authenticated the request (kubernetes/kubernetes#38775), so the
//! gateway's bearer token travels as [`FORWARDED_AUTHORIZATION`], which the
//! kit's gateway reads when `Authorization` is absent. Every request goes
//! through the API server: fine for probes and flows, not for load — heavy
//! load belongs in the in-cluster siege Job.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use kube::Client;

pub use crate::systems::kit::FORWARDED_AUTHORIZATION;

/// A running forwarder; stops when dropped.
pub struct ServiceProxy {
    /// Its base URL on 127.0.0.1.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The API path of `service`'s port `port` in `namespace`, below which a
/// request's path goes.
pub fn proxy_path(namespace: &str, service: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy")
}

/// Starts forwarding 127.0.0.1:(a free port) to `service`:`port` in `namespace`.
pub async fn start(client: Client, namespace: &str, service: &str, port: u16) -> std::io::Result<ServiceProxy> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let base = proxy_path(namespace, service, port);
    let app = axum::Router::new().fallback(move |request: Request| {
        let (client, base) = (client.clone(), base.clone());
        async move { forward(&client, &base, request).await.unwrap_or_else(|err| (StatusCode::BAD_GATEWAY, err).into_response()) }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(ServiceProxy { url, task })
}

/// Hop-by-hop headers and those the API server sets itself.
const DROPPED: [HeaderName; 4] = [header::HOST, header::CONNECTION, header::CONTENT_LENGTH, header::TRANSFER_ENCODING];

async fn forward(client: &Client, base: &str, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = body.collect().await.map_err(|err| format!("reading the request: {err}"))?.to_bytes();
    let mut outgoing = axum::http::Request::builder().method(parts.method).uri(format!("{base}{path_and_query}"));
    for (name, value) in parts.headers.iter().filter(|(name, _)| !DROPPED.contains(*name)) {
        let name = if *name == header::AUTHORIZATION { HeaderName::from_static(FORWARDED_AUTHORIZATION) } else { name.clone() };
        outgoing = outgoing.header(name, value);
    }
    let outgoing = outgoing.body(kube::client::Body::from(body.to_vec())).map_err(|err| format!("building the request: {err}"))?;
    let answer = client.send(outgoing).await.map_err(|err| format!("the API server's service proxy: {err}"))?;
    let (parts, body) = answer.into_parts();
    let bytes = body.collect_bytes().await.map_err(|err| format!("reading the answer: {err}"))?;
    let mut response = axum::http::Response::builder().status(parts.status);
    for (name, value) in parts.headers.iter().filter(|(name, _)| !DROPPED.contains(*name)) {
        response = response.header(name, value);
    }
    response.body(Body::from(bytes)).map_err(|err| format!("building the answer: {err}"))
}
