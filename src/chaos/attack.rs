//! Tokens a flow step sends to attack the gateway's authentication: built
//! from the experiment's own valid token, so each differs from an accepted
//! token in exactly the one way it names. A gateway must answer 401 to all.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// What a step sends as its bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Credential {
    /// `true`: the experiment's token; `false`: none at all.
    Plain(bool),
    /// A token altered to attack the gateway.
    Attack(TokenAttack),
}

impl Default for Credential {
    fn default() -> Self {
        Credential::Plain(true)
    }
}

/// One way to forge a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenAttack {
    /// The same claims signed with a key the gateway does not have.
    ForgedSignature,
    /// The same claims, correctly signed, but expired an hour ago (needs
    /// the gateway's secret).
    Expired,
    /// The same claims, unsigned (`alg: none`).
    AlgNone,
    /// The same claims signed with HS512 (with the gateway's secret when
    /// known, so only the algorithm is wrong).
    Hs512,
    /// The same claims under an RS256 header (algorithm confusion).
    Rs256,
}

/// `token` altered by `attack`; `secret` is the gateway's HMAC secret when
/// the harness knows it. Errs when the attack cannot be built.
pub fn forge(attack: TokenAttack, token: &str, secret: Option<&str>) -> Result<String, String> {
    let payload = token.split('.').nth(1).ok_or("the experiment's token is not a JWT")?;
    let mut claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("the experiment's token has no JSON claims")?;
    let stranger = uuid::Uuid::new_v4().to_string();
    let sign = |alg: Algorithm, key: &str, claims: &serde_json::Value| {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key.as_bytes())).map_err(|err| err.to_string())
    };
    let header = |json: &str| URL_SAFE_NO_PAD.encode(json);
    match attack {
        TokenAttack::ForgedSignature => sign(Algorithm::HS256, &stranger, &claims),
        TokenAttack::Expired => {
            let secret = secret.ok_or("an expired token needs the gateway's secret (the run dir's jwt-secret or STORMPROOF_JWT_SECRET)")?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            claims["iat"] = (now - 7200).into();
            claims["exp"] = (now - 3600).into();
            sign(Algorithm::HS256, secret, &claims)
        }
        TokenAttack::AlgNone => Ok(format!("{}.{payload}.", header(r#"{"alg":"none","typ":"JWT"}"#))),
        TokenAttack::Hs512 => sign(Algorithm::HS512, secret.unwrap_or(&stranger), &claims),
        TokenAttack::Rs256 => Ok(format!("{}.{payload}.{}", header(r#"{"alg":"RS256","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(stranger))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> String {
        let claims = serde_json::json!({"sub": "user1", "iat": 1, "exp": 4_000_000_000u64, "iss": "stormproof"});
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s")).unwrap()
    }

    fn header_alg(token: &str) -> String {
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        header["alg"].as_str().unwrap().to_string()
    }

    #[test]
    fn each_attack_changes_one_thing() {
        let good = token();
        let payload = good.split('.').nth(1).unwrap();
        assert_eq!(header_alg(&forge(TokenAttack::AlgNone, &good, None).unwrap()), "none");
        assert!(forge(TokenAttack::AlgNone, &good, None).unwrap().contains(payload));
        assert_eq!(header_alg(&forge(TokenAttack::Hs512, &good, Some("s")).unwrap()), "HS512");
        assert_eq!(header_alg(&forge(TokenAttack::Rs256, &good, None).unwrap()), "RS256");
        let forged = forge(TokenAttack::ForgedSignature, &good, None).unwrap();
        assert_eq!((header_alg(&forged), forged.split('.').nth(1).unwrap()), ("HS256".to_string(), payload));
        assert_ne!(forged, good);
        assert!(forge(TokenAttack::Expired, &good, None).unwrap_err().contains("secret"));
        let expired = forge(TokenAttack::Expired, &good, Some("s")).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        let err = jsonwebtoken::decode::<serde_json::Value>(&expired, &jsonwebtoken::DecodingKey::from_secret(b"s"), &validation).unwrap_err();
        assert_eq!(err.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    }

    #[test]
    fn steps_name_a_credential() {
        let parse = |yaml: &str| serde_saphyr::from_str::<Credential>(yaml).unwrap();
        assert_eq!(parse("true"), Credential::Plain(true));
        assert_eq!(parse("false"), Credential::Plain(false));
        assert_eq!(parse("alg-none"), Credential::Attack(TokenAttack::AlgNone));
        assert_eq!(parse("forged-signature"), Credential::Attack(TokenAttack::ForgedSignature));
    }
}
