//! The checkpoint scorecard (`stormproof check SYSTEM`): the course's
//! automatable assessment checkpoints (SPEC "Checkpoints"), each scored for
//! a system as its `checkpoints.yaml` says — by running one of its
//! experiments and reading the journal, by a contrast of two, or by
//! verifying a provider against its consumers' pacts — a verdict and one
//! line of evidence per checkpoint.
//!
//! Who talks to whom: [`run`] starts the system (or uses the running one),
//! has the chaos engine run each experiment once, the contract engine
//! verify, and [`score`] read the results; the [`Scorecard`] it returns is
//! written as `scorecard.json` and `scorecard.md`.

pub mod checkpoint;
pub mod prove;
mod run;
mod score;

pub use checkpoint::{Broken, Checkpoint, Checkpoints, Scored};
pub use run::{CASES_DIR, CheckPlan, Event, Scorecard, Where, SCHEMA_VERSION, case_stem, run};
pub use score::{Score, Verdict, score, score_contract};
