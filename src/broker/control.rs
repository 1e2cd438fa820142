//! The broker's fault control endpoint (HTTP on loopback, served by the
//! `stormproof broker` process itself) and its client. Faults live in the
//! broker's memory: a restarted broker starts with none.
//!
//! - `GET /v1/faults` — the faults in force, with their hits;
//! - `POST /v1/faults` — set one ([`BrokerFault`] as JSON); 201 with its id;
//! - `DELETE /v1/faults/{id}` — clear one (404 if it is not set);
//! - `DELETE /v1/faults` — clear all; answers what was cleared.
//!
//! Every request needs `Authorization: Bearer TOKEN` (loopback is open to
//! every local user); `up` gives its broker the run's token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::book::FaultBook;
use super::fault::{ActiveFault, BrokerFault};
use crate::bearer::Bearer;

/// Where a caller finds the token, for a refusal's reason.
const WHERE: &str = "the broker's fault endpoint takes the token `up` gave it (the run's, in the run directory's state.json) or, for a broker started by hand, STORMPROOF_BROKER_TOKEN";

/// Serves the control endpoint for `book`, to callers with `token`, until `cancel`.
pub async fn serve(listener: TcpListener, book: FaultBook, token: String, cancel: CancellationToken) {
    let bearer = std::sync::Arc::new(Bearer { token, hint: WHERE });
    let app = Router::new()
        .route("/v1/faults", get(list).post(set).delete(clear_all))
        .route("/v1/faults/{id}", delete(clear))
        .route_layer(axum::middleware::from_fn_with_state(bearer, crate::bearer::require))
        .with_state(book);
    if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await {
        tracing::error!("broker fault control stopped: {err}");
    }
}

async fn list(State(book): State<FaultBook>) -> Json<Vec<ActiveFault>> {
    Json(book.list())
}

async fn set(State(book): State<FaultBook>, Json(fault): Json<BrokerFault>) -> (StatusCode, Json<ActiveFault>) {
    let active = book.set(fault);
    tracing::info!("broker fault {} set: {:?}", active.id, active.fault);
    (StatusCode::CREATED, Json(active))
}

async fn clear(State(book): State<FaultBook>, Path(id): Path<u64>) -> Result<Json<ActiveFault>, (StatusCode, String)> {
    book.clear(id).map(Json).ok_or_else(|| (StatusCode::NOT_FOUND, format!("no broker fault {id} is set (it may have expired)")))
}

async fn clear_all(State(book): State<FaultBook>) -> Json<Vec<ActiveFault>> {
    Json(book.clear_all())
}

/// Why a fault request failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The endpoint did not answer (the broker is down?).
    #[error("the broker's fault endpoint {url} did not answer: {source}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The endpoint refused the request, with its reason.
    #[error("the broker refused: {status} {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body of the answer.
        reason: String,
    },
}

/// A client of one broker's fault control endpoint.
#[derive(Debug, Clone)]
pub struct FaultClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl FaultClient {
    /// A client of the endpoint at `base` (`http://127.0.0.1:PORT`) that
    /// presents `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> FaultClient {
        let http = crate::http_client().timeout(std::time::Duration::from_secs(5)).build().unwrap_or_default();
        FaultClient { base: base.into().trim_end_matches('/').to_string(), token: token.into(), http }
    }

    /// Sets `fault`; returns it with its id.
    pub async fn set(&self, fault: &BrokerFault) -> Result<ActiveFault, FaultError> {
        self.send(self.http.post(self.url("")).json(fault)).await
    }

    /// Clears fault `id`; returns it with its hits.
    pub async fn clear(&self, id: u64) -> Result<ActiveFault, FaultError> {
        self.send(self.http.delete(self.url(&format!("/{id}")))).await
    }

    /// Clears every fault; returns what was set.
    pub async fn clear_all(&self) -> Result<Vec<ActiveFault>, FaultError> {
        self.send(self.http.delete(self.url(""))).await
    }

    /// The faults in force.
    pub async fn list(&self) -> Result<Vec<ActiveFault>, FaultError> {
        self.send(self.http.get(self.url(""))).await
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v1/faults{rest}", self.base)
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, FaultError> {
        let unreachable = |source| FaultError::Unreachable { url: self.base.clone(), source };
        let response = request.bearer_auth(&self.token).send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let reason = response.text().await.unwrap_or_default();
            return Err(FaultError::Refused { status: status.as_u16(), reason });
        }
        response.json().await.map_err(unreachable)
    }
}
