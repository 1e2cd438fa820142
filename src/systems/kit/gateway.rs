//! The gateway: one entry point that routes by path prefix to the services,
//! checks a JWT bearer token on every routed request (one it verified
//! before is remembered until it expires), forwards the verified
//! subject and roles in its own identity headers (a client's are dropped),
//! issues tokens to the demo users, and answers CORS preflights from the
//! configured origins only.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::bounds::{MAX_BODY, refuse_too_large};
use super::error::{ApiError, JsonBody};
use super::identity::{ADMIN_ROLE, FORWARDED_AUTHORIZATION, IDENTITY_PREFIX, ROLES_HEADER, SUBJECT_HEADER};
use super::token::{Tokens, now_secs};
use super::verified::Verified;
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
    /// Users given the admin role.
    pub admins: Vec<String>,
    /// Origins a browser may call the gateway from (CORS).
    pub origins: Vec<String>,
    /// Lifetime of an issued token.
    pub token_ttl: Duration,
    /// Who gets routed.
    pub admission: Admission,
}

/// Which routed requests the gateway lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Only one with a valid token.
    Token,
    /// Also one without any token, unauthenticated (a bad token is still
    /// refused): the [`LET_ANONYMOUS`] variant, a gateway checkpoint 5
    /// must catch.
    TokenOrNone,
    /// Every request (`auth: none` in a system's definition; tokens are
    /// still issued, and ignored).
    Anyone,
}

/// The built-in gateway's one variant (`up --variant gateway=let-anonymous`).
pub const LET_ANONYMOUS: &str = "let-anonymous";

/// The variants the built-in gateway can run, with what is different.
pub const VARIANTS: [(&str, &str); 1] = [(LET_ANONYMOUS, "lets a request without a token through (no authentication for it)")];

impl GatewayConfig {
    /// The roles the configuration gives `user`.
    fn roles(&self, user: &str) -> Vec<String> {
        if self.admins.iter().any(|a| a == user) { vec![ADMIN_ROLE.to_string()] } else { Vec::new() }
    }
}

/// CORS origins allowed when none are configured: the gateway's own (on
/// `port`) and the usual local development servers.
pub fn default_origins(port: u16) -> Vec<String> {
    let mut origins = vec![format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")];
    for dev in [3000, 5173, 8080] {
        origins.push(format!("http://localhost:{dev}"));
        origins.push(format!("http://127.0.0.1:{dev}"));
    }
    origins
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    username: String,
    password: String,
}

struct Gateway {
    config: GatewayConfig,
    forwarder: Forwarder,
    tokens: Tokens,
    /// Tokens already verified, with the identity headers they give.
    verified: Verified<(HeaderValue, HeaderValue)>,
}

/// Tokens remembered as verified (one per user session; more start over).
const VERIFIED_TOKENS: usize = 4096;

/// The gateway's HTTP app.
pub fn gateway_app(config: GatewayConfig, forwarder: Forwarder) -> Router {
    let mut config = config;
    config.routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    let cors = cors(&config.origins);
    let tokens = Tokens::new(config.jwt_secret.as_bytes(), config.token_ttl);
    let gateway = Arc::new(Gateway { tokens, config, forwarder, verified: Verified::new(VERIFIED_TOKENS) });
    Router::new()
        .route("/auth/token", post(issue_token).layer(DefaultBodyLimit::max(MAX_BODY)).layer(from_fn_with_state(MAX_BODY, refuse_too_large)))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(|| async { "ok" }))
        .fallback(route)
        .method_not_allowed_fallback(super::wrong_method)
        .with_state(gateway)
        .layer(cors)
        .layer(from_fn_with_state(crate::proxy::MAX_BODY, refuse_too_large))
}

/// A browser may call from `origins` only: a foreign origin's preflight
/// gets no `Access-Control-Allow-Origin`.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}

async fn issue_token(State(gateway): State<Arc<Gateway>>, JsonBody(request): JsonBody<TokenRequest>) -> Result<Response, ApiError> {
    if !gateway.password_matches(&request.username, &request.password) {
        return Err(ApiError::Unauthorized("unknown user or wrong password".into()));
    }
    let roles = gateway.config.roles(&request.username);
    let token = gateway.tokens.issue(&request.username, &roles).map_err(ApiError::Internal)?;
    let ttl = gateway.tokens.ttl().as_secs();
    let body = serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl, "roles": roles });
    Ok(axum::Json(body).into_response())
}

async fn route(State(gateway): State<Arc<Gateway>>, mut request: Request) -> Response<Body> {
    let Some(service) = gateway.service_for(request.uri().path()) else {
        return ApiError::NotFound(format!("no route for {}", request.uri().path())).into_response();
    };
    // Only the gateway speaks for the caller: a client's identity headers never pass.
    let spoofed: Vec<_> = request.headers().keys().filter(|name| name.as_str().starts_with(IDENTITY_PREFIX)).cloned().collect();
    for name in spoofed {
        request.headers_mut().remove(name);
    }
    let tokenless = gateway.config.admission == Admission::TokenOrNone && credentials(&request).is_none();
    if gateway.config.admission != Admission::Anyone && !tokenless {
        match gateway.authenticate(&request) {
            Ok((subject, roles)) => {
                request.headers_mut().insert(SUBJECT_HEADER, subject);
                request.headers_mut().insert(ROLES_HEADER, roles);
            }
            Err(reason) => {
                let mut response = ApiError::Unauthorized(reason).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        }
    }
    gateway.forwarder.forward(service, request).await
}

/// The caller's `Authorization`, or, through the Kubernetes API server's
/// service proxy, its [`FORWARDED_AUTHORIZATION`].
fn credentials(request: &Request) -> Option<&HeaderValue> {
    request.headers().get(header::AUTHORIZATION).or_else(|| request.headers().get(FORWARDED_AUTHORIZATION))
}

impl Gateway {
    /// The service of the longest prefix that is `path` or a folder of it.
    fn service_for(&self, path: &str) -> Option<&str> {
        self.config
            .routes
            .iter()
            .find(|(prefix, _)| path == prefix || path.strip_prefix(prefix.trim_end_matches('/')).is_some_and(|rest| rest.starts_with('/')))
            .map(|(_, service)| service.as_str())
    }

    /// Compares every configured password in constant time, so neither
    /// the password nor which user exists leaks through the answer's timing.
    fn password_matches(&self, username: &str, password: &str) -> bool {
        let mut matched = subtle::Choice::from(0);
        for (user, known) in &self.config.users {
            let same_user = user.as_bytes().ct_eq(username.as_bytes());
            matched |= same_user & known.as_bytes().ct_eq(password.as_bytes());
        }
        matched.into()
    }

    /// The verified subject and its roles, as header values to forward; a
    /// token verified before (and not yet expired) is not checked again.
    fn authenticate(&self, request: &Request) -> Result<(HeaderValue, HeaderValue), String> {
        let value = credentials(request).ok_or("missing Authorization: Bearer token (get one from POST /auth/token)")?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or("Authorization header is not `Bearer TOKEN`")?;
        let token = token.trim();
        let now = now_secs();
        if let Some(identity) = self.verified.get(token, now) {
            return Ok(identity);
        }
        let claims = self.tokens.verify(token)?;
        let subject = HeaderValue::from_str(&claims.sub).map_err(|_| "the token's subject is not a valid header value".to_string())?;
        let roles = HeaderValue::from_str(&self.config.roles(&claims.sub).join(",")).map_err(|_| "a configured role is not a valid header value".to_string())?;
        self.verified.insert(token, claims.exp, (subject.clone(), roles.clone()), now);
        Ok((subject, roles))
    }
}
