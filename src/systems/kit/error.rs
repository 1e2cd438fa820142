//! API errors: every answer a service gives to a client mistake is a 4xx
//! with a reason, never a 500.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::store::is_store_failure;

/// An error answer of a service's HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or misses a field (400).
    #[error("{0}")]
    BadRequest(String),
    /// Credentials missing or invalid (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists, the method does not (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the service reads (413).
    #[error("{0}")]
    TooLarge(String),
    /// A dependency is down and there is no fallback (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug (500). Never used for client mistakes.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// A store that is locked, full or failing is the service's condition,
    /// not a bug: 503, so clients and the gateway retry later.
    fn from(err: anyhow::Error) -> Self {
        if is_store_failure(&err) {
            ApiError::Unavailable(format!("the store is unavailable: {err:#}"))
        } else {
            ApiError::Internal(err)
        }
    }
}

impl From<libsql::Error> for ApiError {
    fn from(err: libsql::Error) -> Self {
        ApiError::from(anyhow::Error::from(err))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum answers 422 for a missing field and 415 for a missing content
        // type; clients of the course expect 400 with the reason for both.
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge(format!("the body is larger than {} bytes", super::bounds::MAX_BODY));
        }
        ApiError::BadRequest(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let body = json!({ "error": status.canonical_reason().unwrap_or("error"), "reason": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// A JSON request body whose rejections are [`ApiError::BadRequest`].
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The answer to a path no route serves: a 404 that says so, in the same
/// JSON as every other error (axum's default is an empty body).
pub async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// The answer to a method a route does not take (axum still adds `Allow`).
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

/// Parses a numeric id from a path segment, answering 400 otherwise.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer, got `{raw}`")))
}
