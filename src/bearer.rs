//! The bearer token that guards the HTTP endpoints a run serves on
//! loopback (the local platform's control API, the broker's fault
//! endpoint): loopback is reachable by every local user, so a request
//! without the run's token is refused before it can change anything.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What an endpoint requires, and where its caller finds the token.
#[derive(Debug, Clone)]
pub struct Bearer {
    /// The token (never empty: an empty one lets nobody in).
    pub token: String,
    /// Names the endpoint and where the token is, for a refusal's reason.
    pub hint: &'static str,
}

/// Middleware (`from_fn_with_state`): lets a request through only with
/// `Authorization: Bearer TOKEN`, else 401 with the reason.
pub async fn require(State(bearer): State<Arc<Bearer>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if !bearer.token.is_empty() && same(given.as_bytes(), bearer.token.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized(&format!("the token is wrong: {}", bearer.hint)),
        None => unauthorized(&format!("`Authorization: Bearer TOKEN` is needed: {}", bearer.hint)),
    }
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(reason: &str) -> Response {
    let body = serde_json::json!({"error": "Unauthorized", "reason": reason, "kind": "unauthorized"});
    (StatusCode::UNAUTHORIZED, [(axum::http::header::WWW_AUTHENTICATE, "Bearer")], axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_every_byte_and_the_length_match() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
