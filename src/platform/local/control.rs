//! The control API: the local platform's operations over loopback HTTP, so
//! other processes (the CLI, an experiment) can act on a running system.
//! [`ControlClient`] is the other end and implements [`Platform`] too.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::runstate::RunState;
use crate::bearer::Bearer;
use crate::broker::{ActiveFault, BrokerFault, FaultClient};
use super::supervisor::Supervisor;
use crate::platform::network::{ActiveNetworkFault, NetworkFault};
use crate::platform::{AutoscalerStatus, Platform, PlatformError, RolloutStatus, ServiceStatus, Template};
use crate::systems::kit::{JsonBody, SwitchState};

#[derive(Debug, Serialize, Deserialize)]
struct ScaleRequest {
    replicas: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KillRequest {
    replica: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Killed {
    killed: String,
}

#[derive(Clone)]
struct Control {
    supervisor: Arc<Supervisor>,
    state: Arc<RunState>,
    shutdown: Arc<Notify>,
}

/// Where a caller of the control API finds the run's token (the broker's
/// fault endpoint takes the same one, and says so itself).
const CONTROL_TOKEN: &str = "the run's token is in the run directory's state.json";

/// The control API app; `shutdown` is notified on `POST /v1/shutdown`.
pub(super) fn app(supervisor: Arc<Supervisor>, state: RunState, shutdown: Arc<Notify>) -> Router {
    Router::new()
        .route("/v1/system", get(|State(c): State<Control>| async move { axum::Json((*c.state).clone()) }))
        .route("/v1/services", get(|State(c): State<Control>| async move { axum::Json(c.supervisor.snapshot()) }))
        .route("/v1/services/{name}/replicas", put(scale))
        .route("/v1/services/{name}/kill", post(kill))
        .route("/v1/services/{name}/rollout", get(rollout_status).post(rollout))
        .route("/v1/services/{name}/rollout/undo", post(undo))
        .route("/v1/network-faults", get(network_faults).post(set_network_fault).delete(clear_network_faults))
        .route("/v1/network-faults/{id}", axum::routing::delete(clear_network_fault))
        .route("/v1/autoscalers", get(|State(c): State<Control>| async move { axum::Json(c.supervisor.autoscaler.statuses()) }))
        .route("/v1/shutdown", post(|State(c): State<Control>| async move {
            c.shutdown.notify_one();
            StatusCode::ACCEPTED
        }))
        .route_layer(axum::middleware::from_fn_with_state(Arc::new(Bearer { token: state.token.clone(), hint: CONTROL_TOKEN }), crate::bearer::require))
        .with_state(Control { supervisor, state: Arc::new(state), shutdown })
}

async fn scale(State(c): State<Control>, Path(name): Path<String>, JsonBody(request): JsonBody<ScaleRequest>) -> Response {
    match c.supervisor.scale(&name, request.replicas).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error(err),
    }
}

async fn kill(State(c): State<Control>, Path(name): Path<String>, body: Option<axum::Json<KillRequest>>) -> Response {
    let request = body.map(|b| b.0).unwrap_or_default();
    match c.supervisor.kill(&name, request.replica.as_deref()).await {
        Ok(killed) => axum::Json(Killed { killed }).into_response(),
        Err(err) => error(err),
    }
}

async fn rollout(State(c): State<Control>, Path(name): Path<String>, JsonBody(template): JsonBody<Template>) -> Response {
    answer(c.supervisor.roll_to(&name, template))
}

async fn rollout_status(State(c): State<Control>, Path(name): Path<String>) -> Response {
    answer(c.supervisor.rollout_of(&name))
}

async fn undo(State(c): State<Control>, Path(name): Path<String>) -> Response {
    answer(c.supervisor.undo(&name))
}

async fn set_network_fault(State(c): State<Control>, JsonBody(fault): JsonBody<NetworkFault>) -> Response {
    answer(c.supervisor.set_network_fault(&fault).await)
}

async fn clear_network_fault(State(c): State<Control>, Path(id): Path<u64>) -> Response {
    answer(c.supervisor.clear_network_fault(id).await)
}

async fn clear_network_faults(State(c): State<Control>) -> Response {
    answer(c.supervisor.clear_network_faults().await)
}

async fn network_faults(State(c): State<Control>) -> Response {
    answer(c.supervisor.network_faults().await)
}

fn answer<T: Serialize>(result: Result<T, PlatformError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(err) => error(err),
    }
}

fn error(err: PlatformError) -> Response {
    let status = match err {
        PlatformError::UnknownService(_) | PlatformError::UnknownReplica(_) => StatusCode::NOT_FOUND,
        PlatformError::Refused(_) => StatusCode::CONFLICT,
        PlatformError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        PlatformError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, axum::Json(serde_json::json!({"error": status.canonical_reason(), "reason": err.to_string(), "kind": kind(&err)}))).into_response()
}

fn kind(err: &PlatformError) -> &'static str {
    match err {
        PlatformError::UnknownService(_) => "unknown-service",
        PlatformError::UnknownReplica(_) => "unknown-replica",
        PlatformError::Refused(_) => "refused",
        PlatformError::Unreachable(_) => "unreachable",
        PlatformError::Invalid(_) => "invalid",
    }
}

/// A client of a running local platform's control API.
#[derive(Clone)]
pub struct ControlClient {
    base: String,
    token: String,
    http: reqwest::Client,
    broker_faults: Option<FaultClient>,
}

impl ControlClient {
    /// A client for the platform described by `state`.
    pub fn new(state: &RunState) -> ControlClient {
        let http = crate::http_client().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        let broker_faults = state.broker_faults.as_deref().map(|base| FaultClient::new(base, state.token.clone()));
        ControlClient { base: state.control.trim_end_matches('/').to_string(), token: state.token.clone(), http, broker_faults }
    }

    /// Asks the platform to stop everything it started.
    pub async fn shutdown(&self) -> Result<(), PlatformError> {
        self.call(reqwest::Method::POST, "/v1/shutdown").send().await.map_err(unreachable)?;
        Ok(())
    }

    /// A request to the control API, with the run's token.
    fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, PlatformError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let reason = body["reason"].as_str().unwrap_or("the platform refused").to_string();
        Err(match body["kind"].as_str() {
            Some("unknown-service") => PlatformError::UnknownService(reason.trim_start_matches("unknown service ").trim_matches('`').to_string()),
            Some("unknown-replica") => PlatformError::UnknownReplica(reason.trim_start_matches("unknown replica ").trim_matches('`').to_string()),
            Some("unreachable") => PlatformError::Unreachable(reason),
            Some("invalid") => PlatformError::Invalid(reason),
            _ => PlatformError::Refused(reason),
        })
    }
}

fn unreachable(err: reqwest::Error) -> PlatformError {
    PlatformError::Unreachable(format!("the local platform's control API does not answer ({err}); is `stormproof up` still running?"))
}

#[async_trait::async_trait]
impl Platform for ControlClient {
    async fn services(&self) -> Result<Vec<ServiceStatus>, PlatformError> {
        let response = self.call(reqwest::Method::GET, "/v1/services").send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn scale(&self, service: &str, replicas: u32) -> Result<(), PlatformError> {
        let response = self.call(reqwest::Method::PUT, &format!("/v1/services/{service}/replicas")).json(&ScaleRequest { replicas }).send().await.map_err(unreachable)?;
        Self::check(response).await.map(|_| ())
    }

    async fn kill(&self, service: &str, replica: Option<&str>) -> Result<String, PlatformError> {
        let body = KillRequest { replica: replica.map(str::to_string) };
        let response = self.call(reqwest::Method::POST, &format!("/v1/services/{service}/kill")).json(&body).send().await.map_err(unreachable)?;
        let killed: Killed = Self::check(response).await?.json().await.map_err(unreachable)?;
        Ok(killed.killed)
    }
    async fn rollout(&self, service: &str, template: &Template) -> Result<RolloutStatus, PlatformError> {
        let response = self.call(reqwest::Method::POST, &format!("/v1/services/{service}/rollout")).json(template).send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn rollout_status(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        let response = self.call(reqwest::Method::GET, &format!("/v1/services/{service}/rollout")).send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn rollout_undo(&self, service: &str) -> Result<RolloutStatus, PlatformError> {
        let response = self.call(reqwest::Method::POST, &format!("/v1/services/{service}/rollout/undo")).send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn autoscalers(&self) -> Result<Vec<AutoscalerStatus>, PlatformError> {
        let response = self.call(reqwest::Method::GET, "/v1/autoscalers").send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn switches(&self, service: &str, replica: &str) -> Result<SwitchState, PlatformError> {
        let address = crate::platform::switches::address(&self.service(service).await?, replica)?;
        crate::platform::switches::read(&address, replica).await
    }

    async fn set_switches(&self, service: &str, replica: &str, state: &SwitchState) -> Result<(), PlatformError> {
        let address = crate::platform::switches::address(&self.service(service).await?, replica)?;
        crate::platform::switches::write(&address, replica, state).await
    }

    async fn set_broker_fault(&self, fault: &BrokerFault) -> Result<ActiveFault, PlatformError> {
        Ok(self.faults()?.set(fault).await?)
    }

    async fn clear_broker_fault(&self, id: u64) -> Result<ActiveFault, PlatformError> {
        Ok(self.faults()?.clear(id).await?)
    }

    async fn clear_broker_faults(&self) -> Result<Vec<ActiveFault>, PlatformError> {
        Ok(self.faults()?.clear_all().await?)
    }

    async fn broker_faults(&self) -> Result<Vec<ActiveFault>, PlatformError> {
        Ok(self.faults()?.list().await?)
    }

    async fn set_network_fault(&self, fault: &NetworkFault) -> Result<ActiveNetworkFault, PlatformError> {
        let response = self.call(reqwest::Method::POST, "/v1/network-faults").json(fault).send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn clear_network_fault(&self, id: u64) -> Result<ActiveNetworkFault, PlatformError> {
        let response = self.call(reqwest::Method::DELETE, &format!("/v1/network-faults/{id}")).send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn clear_network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        let response = self.call(reqwest::Method::DELETE, "/v1/network-faults").send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }

    async fn network_faults(&self) -> Result<Vec<ActiveNetworkFault>, PlatformError> {
        let response = self.call(reqwest::Method::GET, "/v1/network-faults").send().await.map_err(unreachable)?;
        Self::check(response).await?.json().await.map_err(unreachable)
    }
}

impl ControlClient {
    fn faults(&self) -> Result<&FaultClient, PlatformError> {
        self.broker_faults
            .as_ref()
            .ok_or_else(|| PlatformError::Refused("this system runs on an external Kafka (`up --kafka`): no broker faults".into()))
    }
}
