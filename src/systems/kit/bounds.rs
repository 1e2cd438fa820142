//! Bounds: the limits a service puts on what it accepts, from a client or
//! from the topic. Every number a request carries is checked against what
//! the domain allows (and arithmetic on it is checked, never wrapping);
//! every string has a maximum length; a body has a maximum size.

use std::ops::RangeInclusive;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::error::ApiError;

/// The largest request body a service reads (larger: 413).
pub const MAX_BODY: usize = 64 * 1024;

/// The largest event the outbox takes: well below the producer's
/// `message.max.bytes` (1 000 000), so every recorded event can be sent.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Bodies declared larger than this are refused without being read: the
/// client sees its connection reset. Nobody sends megabytes to these APIs
/// but a client to be turned away.
const DRAIN_MAX: u64 = 16 << 20;

/// How long a refused body may take to arrive before the connection is cut.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Refuses a body declared larger than `limit` with a 413, after reading
/// and discarding it. A server that answers without reading closes its
/// connection with unread data; the kernel then resets it, and a client
/// still writing its body sees a broken pipe instead of the answer. Every
/// 413 (also one an extractor gives) says `Connection: close`, so the
/// client does not send its next request down that connection.
pub async fn refuse_too_large(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut response = match declared {
        Some(length) if length > limit as u64 => {
            if length <= DRAIN_MAX {
                discard(request.into_body()).await;
            }
            ApiError::TooLarge(format!("the body is larger than {limit} bytes")).into_response()
        }
        _ => next.run(request).await,
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn discard(mut body: Body) {
    let read_all = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(DRAIN_TIME, read_all).await;
}

/// `value` is at most `max` characters long (and not blank when `required`).
pub fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), String> {
    if required && value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(format!("{field} must be at most {max} characters, got {chars}"));
    }
    Ok(())
}

/// `value` lies within `range`.
pub fn int(field: &str, value: i64, range: RangeInclusive<i64>) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!("{field} must be within {}..={}, got {value}", range.start(), range.end()))
    }
}

/// Deserializes an integer given as a JSON number or as a numeric string:
/// httpie's `cost=500` sends `"500"`, and the course's Spring services
/// coerce it. Fractions, overflow and anything else are an error naming
/// what came.
pub fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(Integer)
}

/// [`integer`] for an optional field: absent or `null` is `None`
/// (pair it with `#[serde(default)]`).
pub fn optional_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "integer")] i64);
    <Option<Wrapped> as serde::Deserialize>::deserialize(deserializer).map(|w| w.map(|Wrapped(v)| v))
}

struct Integer;

impl serde::de::Visitor<'_> for Integer {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an integer (a number or a numeric string)")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        Err(E::custom(format!("expected an integer, got {v}")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        let shown: String = v.chars().take(40).collect();
        v.parse::<i64>().map_err(|err| E::custom(format!("expected an integer, got the string \"{shown}\" ({err})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_int_name_the_field_and_the_bound() {
        assert!(text("customerAddr", "Seoul", 10, true).is_ok());
        assert_eq!(text("customerAddr", " ", 10, true).unwrap_err(), "customerAddr must not be empty");
        assert!(text("customerAddr", &"가".repeat(11), 10, true).unwrap_err().contains("at most 10 characters, got 11"));
        assert!(text("imageUrl", "", 10, false).is_ok());
        assert!(int("quantity", 1, 1..=1000).is_ok());
        assert_eq!(int("quantity", i64::MAX, 1..=1000).unwrap_err(), format!("quantity must be within 1..=1000, got {}", i64::MAX));
    }

    #[test]
    fn an_integer_is_a_number_or_a_numeric_string_and_nothing_else() {
        #[derive(serde::Deserialize, Debug)]
        struct Cost {
            #[serde(deserialize_with = "integer")]
            cost: i64,
        }
        let cost = |json: &str| serde_json::from_str::<Cost>(json).map(|c| c.cost).map_err(|e| e.to_string());
        assert_eq!(cost(r#"{"cost": 500}"#), Ok(500));
        assert_eq!(cost(r#"{"cost": "500"}"#), Ok(500));
        assert_eq!(cost(r#"{"cost": "-3"}"#), Ok(-3));
        for bad in [r#"{"cost": 1.5}"#, r#"{"cost": "5x"}"#, r#"{"cost": ""}"#, r#"{"cost": true}"#, r#"{"cost": null}"#, r#"{"cost": 1e30}"#,
                    r#"{"cost": 18446744073709551615}"#, r#"{"cost": "99999999999999999999"}"#] {
            assert!(cost(bad).is_err(), "{bad} is refused");
        }
        assert!(cost(r#"{"cost": "5x"}"#).unwrap_err().contains("\"5x\""));
    }
}
