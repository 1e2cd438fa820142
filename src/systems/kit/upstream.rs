//! The synchronous client a service uses to call another: a timeout on every
//! call and a circuit breaker, so a hanging provider costs the caller one
//! timeout per breaker window instead of one per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The breaker is open: the call was not attempted.
    #[error("circuit open for {0}")]
    Open(String),
    /// No answer within the timeout.
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// Connection refused, reset…
    #[error("{0} is unreachable: {1}")]
    Unreachable(String, String),
    /// The provider answered 5xx.
    #[error("{0} answered {1}")]
    ServerError(String, u16),
    /// The provider answered 404.
    #[error("not found")]
    NotFound,
    /// The provider refused the request with another 4xx: an answer about
    /// the request, not a failure of the provider (the breaker does not count it).
    #[error("{0} refused the request with {1}: {2}")]
    Rejected(String, u16, String),
    /// The provider answered something unreadable.
    #[error("{0} answered an unreadable body: {1}")]
    Unreadable(String, String),
}

#[derive(Debug)]
enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    /// One probe is out; it is lost once `until` passes without a result
    /// (its caller was cancelled mid-call, so it never recorded one).
    HalfOpen { until: Instant },
}

/// A provider reached over HTTP.
pub struct Upstream {
    name: String,
    base: String,
    client: reqwest::Client,
    timeout: Duration,
    failure_threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

impl Upstream {
    /// A client for `name` at `base` with `timeout` per call; the breaker opens
    /// after 3 consecutive failures and lets one probe through after 2 s.
    pub fn new(name: &str, base: &str, timeout: Duration) -> Upstream {
        Upstream {
            name: name.to_string(),
            base: base.trim_end_matches('/').to_string(),
            client: crate::http_client().pool_idle_timeout(Duration::from_secs(30)).build().unwrap_or_default(),
            timeout,
            failure_threshold: 3,
            open_for: Duration::from_secs(2),
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    /// A client whose breaker never opens (only `timeout` bounds a call).
    pub fn without_breaker(name: &str, base: &str, timeout: Duration) -> Upstream {
        Upstream { failure_threshold: u32::MAX, ..Upstream::new(name, base, timeout) }
    }

    /// GETs `path` and decodes the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.guarded(self.client.get(self.url(path))).await
    }

    /// GETs `path` for its answer's sake only: any answer will do, a 404 or
    /// another 4xx too; no answer (timeout, refused, 5xx, breaker open) or
    /// an unreadable one is an error. What a broken variant's coupling needs.
    pub async fn answers(&self, path: &str) -> Result<(), CallError> {
        match self.get_json::<serde_json::Value>(path).await {
            Ok(_) | Err(CallError::NotFound | CallError::Rejected(..)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// POSTs `body` as JSON to `path` and decodes the JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CallError> {
        self.guarded(self.client.post(self.url(path)).json(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn guarded<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, CallError> {
        self.admit()?;
        let result = self.call(request).await;
        match &result {
            // A 404 or another 4xx is an answer, not a failure of the provider.
            Ok(_) | Err(CallError::NotFound | CallError::Rejected(..)) => self.record(true),
            Err(_) => self.record(false),
        }
        result
    }

    async fn call<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, CallError> {
        let response = request.timeout(self.timeout).send().await.map_err(|err| {
            if err.is_timeout() {
                CallError::Timeout(self.name.clone(), self.timeout)
            } else {
                CallError::Unreachable(self.name.clone(), err.to_string())
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(CallError::NotFound);
        }
        if status.is_client_error() {
            let reason = response.text().await.unwrap_or_default().chars().take(200).collect();
            return Err(CallError::Rejected(self.name.clone(), status.as_u16(), reason));
        }
        if !status.is_success() {
            return Err(CallError::ServerError(self.name.clone(), status.as_u16()));
        }
        response.json::<T>().await.map_err(|err| {
            if err.is_timeout() {
                CallError::Timeout(self.name.clone(), self.timeout)
            } else {
                CallError::Unreadable(self.name.clone(), err.to_string())
            }
        })
    }

    fn admit(&self) -> Result<(), CallError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            BreakerState::Open { until } if Instant::now() < until => Err(CallError::Open(self.name.clone())),
            // One probe at a time while half-open; the call's own timeout
            // bounds a probe, so one older than that will never report.
            BreakerState::HalfOpen { until } if Instant::now() < until => Err(CallError::Open(self.name.clone())),
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => {
                *state = BreakerState::HalfOpen { until: Instant::now() + self.timeout };
                Ok(())
            }
            BreakerState::Closed { .. } => Ok(()),
        }
    }

    fn record(&self, success: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = match (&*state, success) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < self.failure_threshold => {
                BreakerState::Closed { failures: failures + 1 }
            }
            (_, false) => BreakerState::Open { until: Instant::now() + self.open_for },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_after_window() {
        let upstream = Upstream::new("product", "http://127.0.0.1:9", Duration::from_millis(10));
        for _ in 0..2 {
            upstream.record(false);
            assert!(upstream.admit().is_ok());
        }
        upstream.record(false);
        assert!(matches!(upstream.admit(), Err(CallError::Open(_))));
        *upstream.state.lock().unwrap() = BreakerState::Open { until: Instant::now() };
        assert!(upstream.admit().is_ok(), "first call after the window is a probe");
        assert!(upstream.admit().is_err(), "only one probe while half-open");
        upstream.record(true);
        assert!(upstream.admit().is_ok());
    }

    #[test]
    fn a_probe_whose_caller_went_away_does_not_hold_the_breaker_open() {
        let upstream = Upstream::new("product", "http://127.0.0.1:9", Duration::from_millis(50));
        *upstream.state.lock().unwrap() = BreakerState::Open { until: Instant::now() };
        assert!(upstream.admit().is_ok(), "the probe goes out, and its caller is cancelled: no record");
        assert!(upstream.admit().is_err(), "while the probe could still answer, no second one");
        std::thread::sleep(Duration::from_millis(60));
        assert!(upstream.admit().is_ok(), "past the call timeout the probe is lost: another goes out");
        upstream.record(true);
        assert!(matches!(*upstream.state.lock().unwrap(), BreakerState::Closed { failures: 0 }));
    }
}
