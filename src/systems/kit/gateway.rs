//! The gateway: one entry point that routes by path prefix to the services,
//! checks a JWT bearer token on every routed request, issues tokens to the
//! demo users, and answers CORS preflights.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tower_http::cors::CorsLayer;

use super::error::{ApiError, JsonBody};
use crate::proxy::Forwarder;

/// How the gateway routes and authenticates.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `(path prefix, service)` pairs, longest prefix wins.
    pub routes: Vec<(String, String)>,
    /// HMAC secret for HS256 tokens.
    pub jwt_secret: String,
    /// Demo users as `(username, password)`.
    pub users: Vec<(String, String)>,
    /// Lifetime of an issued token.
    pub token_ttl: Duration,
    /// Check a token on every routed request (`auth: none` in a system's
    /// definition turns this off; tokens are still issued, and ignored).
    pub authenticate: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    iss: String,
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    username: String,
    password: String,
}

struct Gateway {
    config: GatewayConfig,
    forwarder: Forwarder,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// The gateway's HTTP app.
pub fn gateway_app(config: GatewayConfig, forwarder: Forwarder) -> Router {
    let mut config = config;
    config.routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    let gateway = Arc::new(Gateway {
        encoding: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
        decoding: DecodingKey::from_secret(config.jwt_secret.as_bytes()),
        validation: validation(),
        config,
        forwarder,
    });
    Router::new()
        .route("/auth/token", post(issue_token).layer(DefaultBodyLimit::max(super::bounds::MAX_BODY)))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(|| async { "ok" }))
        .fallback(route)
        .with_state(gateway)
        .layer(CorsLayer::very_permissive())
}

async fn issue_token(State(gateway): State<Arc<Gateway>>, JsonBody(request): JsonBody<TokenRequest>) -> Result<Response, ApiError> {
    let known = gateway.config.users.iter().any(|(u, p)| *u == request.username && *p == request.password);
    if !known {
        return Err(ApiError::Unauthorized("unknown user or wrong password".into()));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let ttl = gateway.config.token_ttl.as_secs();
    let claims = Claims { sub: request.username, iat: now, exp: now + ttl, iss: "stormproof".into() };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &gateway.encoding)
        .map_err(|err| ApiError::Internal(err.into()))?;
    let body = serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl });
    Ok(axum::Json(body).into_response())
}

async fn route(State(gateway): State<Arc<Gateway>>, request: Request) -> Response<Body> {
    let path = request.uri().path().to_string();
    let Some(service) = gateway.service_for(&path) else {
        return ApiError::NotFound(format!("no route for {path}")).into_response();
    };
    let checked = if gateway.config.authenticate { gateway.authenticate(&request) } else { Ok(()) };
    if let Err(reason) = checked {
        let mut response = ApiError::Unauthorized(reason).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    }
    gateway.forwarder.forward(&service, request).await
}

/// HS256 tokens issued by this gateway, checked for expiry.
fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["stormproof"]);
    validation
}

impl Gateway {
    fn service_for(&self, path: &str) -> Option<String> {
        self.config
            .routes
            .iter()
            .find(|(prefix, _)| path == prefix || path.starts_with(&format!("{}/", prefix.trim_end_matches('/'))))
            .map(|(_, service)| service.clone())
    }

    fn authenticate(&self, request: &Request) -> Result<(), String> {
        let value = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or("missing Authorization: Bearer token (get one from POST /auth/token)")?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or("Authorization header is not `Bearer TOKEN`")?;
        jsonwebtoken::decode::<Claims>(token.trim(), &self.decoding, &self.validation)
            .map(|_| ())
            .map_err(|err| format!("invalid token: {err}"))
    }
}

