//! The gateway's tokens: HS256 JWTs it issues and checks. Validation is
//! strict — the algorithm is pinned (a header naming `none`, another HMAC
//! or an asymmetric algorithm is refused before any key is used), `exp`,
//! `sub` and `iss` are required — and every refusal says why.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The one algorithm the gateway signs and accepts.
pub const ALGORITHM: Algorithm = Algorithm::HS256;
const ISSUER: &str = "stormproof";
/// Clock skew tolerated on `exp` (one issuer, so small).
const LEEWAY_SECS: u64 = 5;

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user (for the shop: the customer).
    pub sub: String,
    /// Issued at (seconds since the epoch).
    #[serde(default)]
    pub iat: u64,
    /// Expires at (seconds since the epoch; required — the validation
    /// refuses a token without it before this default is ever read).
    #[serde(default)]
    pub exp: u64,
    /// Always `stormproof`.
    pub iss: String,
    /// Roles given when issued (informational: the gateway forwards the
    /// roles its configuration gives, not these).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Issues and checks tokens with one secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Tokens {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECS;
        Tokens { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation, ttl }
    }

    /// How long an issued token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `subject` with `roles`.
    pub fn issue(&self, subject: &str, roles: &[String]) -> anyhow::Result<String> {
        let now = now_secs();
        let claims = Claims { sub: subject.into(), iat: now, exp: now + self.ttl.as_secs(), iss: ISSUER.into(), roles: roles.to_vec() };
        Ok(jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.encoding)?)
    }

    /// The claims of a valid token, or why it is not one.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        check_algorithm(token)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| reason(err.kind()))?.claims;
        if claims.sub.is_empty() {
            return Err("the token has an empty subject".into());
        }
        Ok(claims)
    }
}

/// Refuses a header naming any algorithm but [`ALGORITHM`] — `none`
/// included, which the JWT library would only call malformed.
fn check_algorithm(token: &str) -> Result<(), String> {
    let header = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| "the token is not a JWT (its header is not base64url)".to_string())?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| "the token is not a JWT (its header is not JSON)".to_string())?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("HS256") => Ok(()),
        Some(alg) if alg.eq_ignore_ascii_case("none") => Err("the token is unsigned (alg `none`); only HS256 tokens are accepted".into()),
        Some(alg) => Err(format!("the token is signed with {alg}; only HS256 tokens are accepted")),
        None => Err("the token's header names no algorithm".into()),
    }
}

fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the token's signature does not verify (not issued by this gateway)".into(),
        ErrorKind::ExpiredSignature => "the token has expired; get a new one from POST /auth/token".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "the token's algorithm is not accepted (HS256 only)".into(),
        ErrorKind::InvalidIssuer => format!("the token was not issued by {ISSUER}"),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidToken => "the token is malformed".into(),
        ErrorKind::Json(err) => format!("the token's claims are malformed: {err}"),
        other => format!("invalid token: {other:?}"),
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn signed(alg: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims(exp: u64) -> serde_json::Value {
        serde_json::json!({"sub": "user1", "iat": now_secs(), "exp": exp, "iss": "stormproof"})
    }

    #[test]
    fn an_issued_token_verifies() {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let token = tokens.issue("user1", &["admin".into()]).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.roles), ("user1", vec!["admin".to_string()]));
    }

    #[test]
    fn attacks_are_refused_with_a_reason() {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let good = tokens.issue("user1", &[]).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let cases = [
            (signed(ALGORITHM, b"another-secret", &claims(now_secs() + 60)), "does not verify"),
            (signed(ALGORITHM, SECRET, &claims(now_secs() - 3600)), "expired"),
            (format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#)), "unsigned"),
            (format!("{}.{payload}.", b64(br#"{"alg":"None"}"#)), "unsigned"),
            (signed(Algorithm::HS384, SECRET, &claims(now_secs() + 60)), "HS384"),
            (signed(Algorithm::HS512, SECRET, &claims(now_secs() + 60)), "HS512"),
            (format!("{}.{payload}.{}", b64(br#"{"alg":"RS256","typ":"JWT"}"#), b64(b"sig")), "RS256"),
            (signed(ALGORITHM, SECRET, &serde_json::json!({"sub": "user1", "iss": "stormproof"})), "`exp`"),
            (signed(ALGORITHM, SECRET, &serde_json::json!({"sub": "user1", "exp": now_secs() + 60, "iss": "elsewhere"})), "not issued"),
            ("garbage".to_string(), "not a JWT"),
        ];
        for (token, why) in cases {
            let err = tokens.verify(&token).expect_err(&token);
            assert!(err.contains(why), "{token}: `{err}` does not say `{why}`");
        }
    }
}
