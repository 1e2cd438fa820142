//! Switches: ways to make a service misbehave on purpose, flipped over HTTP
//! by experiments (`PUT /_stormproof/switches`). Like the course's
//! `rm /tmp/healthy`, but for every fault an experiment needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// The current misbehaviour of a service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SwitchState {
    /// `/health/live` answers 503 (the supervisor will restart the replica).
    pub unhealthy: bool,
    /// `/health/ready` answers 503 (the replica leaves the load balancer).
    pub unready: bool,
    /// Every business request waits this long first (a hang, if long).
    pub delay_ms: u64,
    /// This fraction of business requests answers 500.
    pub error_fraction: f64,
}

/// The longest `delayMs` a switch takes (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

/// Shared switch state of one service process.
#[derive(Clone, Default)]
pub struct Switches {
    state: Arc<RwLock<SwitchState>>,
    crash_consumer: Arc<AtomicBool>,
}

impl Switches {
    /// A copy of the current state.
    pub fn get(&self) -> SwitchState {
        self.state.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Makes the consumer task die at its next step, the way a bug would
    /// kill it (`POST /_stormproof/crash-consumer`). There is no undo: the
    /// platform restarts the replica.
    pub fn crash_consumer(&self) {
        self.crash_consumer.store(true, Ordering::SeqCst);
    }

    /// Whether the consumer task was told to die.
    pub fn consumer_crashed(&self) -> bool {
        self.crash_consumer.load(Ordering::SeqCst)
    }

    /// Replaces the state after checking it.
    pub fn set(&self, state: SwitchState) -> Result<(), String> {
        if !(0.0..=1.0).contains(&state.error_fraction) {
            return Err(format!("errorFraction must be within 0..1, got {}", state.error_fraction));
        }
        if state.delay_ms > MAX_DELAY_MS {
            return Err(format!("delayMs must be at most {MAX_DELAY_MS}, got {}", state.delay_ms));
        }
        if let Ok(mut current) = self.state.write() {
            *current = state;
        }
        Ok(())
    }
}
