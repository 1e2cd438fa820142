//! Bounds: the limits a service puts on what it accepts, from a client or
//! from the topic. Every number a request carries is checked against what
//! the domain allows (and arithmetic on it is checked, never wrapping);
//! every string has a maximum length; a body has a maximum size.

use std::ops::RangeInclusive;

/// The largest request body a service reads (larger: 413).
pub const MAX_BODY: usize = 64 * 1024;

/// The largest event the outbox takes: well below the producer's
/// `message.max.bytes` (1 000 000), so every recorded event can be sent.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// A 413 also says `Connection: close`: the unread rest of the body makes
/// the server drop the connection after answering, and a client told so
/// does not send its next request down that connection (where it would see
/// it reset instead of an answer).
pub async fn close_after_too_large(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
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
}
