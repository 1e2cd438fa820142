//! Exit codes: the interface between stormproof and the CI job that runs it.
//!
//! The same three codes as `pact_verifier_cli`. The reason for a 1 is in the
//! report, never in the number.

/// Everything asked for ran and passed.
pub const PASSED: i32 = 0;
/// A gate, verdict or contract failed (the run itself worked).
pub const FAILED: i32 = 1;
/// Usage or input error: bad flags, a malformed file, nothing to run against.
pub const ERROR: i32 = 2;

/// What a command concluded, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed (or a command with nothing to judge finished).
    Passed,
    /// A gate or verdict failed.
    Failed,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Passed => PASSED,
            Outcome::Failed => FAILED,
        }
    }
}
