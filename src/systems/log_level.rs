//! A service's log level. The course sets it from a ConfigMap (seed 004's
//! `config-dev`: `ORDER_LOG_LEVEL: INFO`, Spring's level names), so a
//! service takes `<SERVICE>_LOG_LEVEL` first, then `RUST_LOG`, then its
//! default — a ConfigMap change is visible in the service's log.

/// The variable that sets `service`'s level: `ORDER_LOG_LEVEL` for `order`.
pub fn variable(service: &str) -> String {
    format!("{}_LOG_LEVEL", service.to_ascii_uppercase().replace('-', "_"))
}

/// The log filter of `service` from the value of its level variable (if
/// set), `RUST_LOG` (if set) and `default`. A level that is not one of
/// Spring's (TRACE, DEBUG, INFO, WARN, ERROR, OFF; any case) is an error
/// naming the variable: a typo in a ConfigMap must not pass unnoticed.
pub fn filter(service: &str, level: Option<&str>, rust_log: Option<&str>, default: &str) -> Result<String, String> {
    let Some(level) = level.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(rust_log.filter(|l| !l.trim().is_empty()).unwrap_or(default).to_string());
    };
    let level = level.to_ascii_lowercase();
    match level.as_str() {
        // The Kafka client's own chatter stays at warnings whatever the service's level.
        "trace" | "debug" | "info" | "warn" | "error" => Ok(format!("{level},rdkafka=warn")),
        "off" => Ok("off".into()),
        _ => Err(format!("{}={level}: expected one of TRACE, DEBUG, INFO, WARN, ERROR, OFF", variable(service))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_own_level_wins_over_rust_log_and_the_default() {
        assert_eq!(variable("order"), "ORDER_LOG_LEVEL");
        assert_eq!(variable("mypage-late"), "MYPAGE_LATE_LOG_LEVEL");
        assert_eq!(filter("order", Some("DEBUG"), Some("info"), "info").unwrap(), "debug,rdkafka=warn");
        assert_eq!(filter("order", Some("Info"), None, "warn").unwrap(), "info,rdkafka=warn");
        assert_eq!(filter("order", Some("OFF"), None, "warn").unwrap(), "off");
        assert_eq!(filter("order", None, Some("trace"), "info").unwrap(), "trace");
        assert_eq!(filter("order", Some(" "), None, "info,rdkafka=warn").unwrap(), "info,rdkafka=warn");
        let err = filter("order", Some("LOUD"), None, "info").unwrap_err();
        assert!(err.contains("ORDER_LOG_LEVEL=loud") && err.contains("DEBUG"), "{err}");
    }
}
