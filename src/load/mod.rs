//! Load: siege-compatible HTTP load generation.
//!
//! A [`LoadPlan`] says what to send (targets read from a siege URL file or
//! the command line), by how many virtual users and until when. [`run`]
//! executes it on one current-thread runtime per core (as oha does) and
//! returns a [`LoadSummary`]; the engine never prints. Thresholds
//! ([`Threshold`]) judge a summary for CI. The `siege` subcommand's
//! arguments live in the CLI (`src/cli/siege_args.rs`) and become a plan there.

pub mod distributed;
mod conn;
mod engine;
mod plan;
mod recorder;
mod summary;
mod threshold;
mod urlfile;

pub use engine::{LiveSecond, LoadError, Progress, RequestEvent, RunHooks, run};
pub use plan::{Counting, LoadPlan, Method, Model, PlanError, Stop, Target};
pub use recorder::{Outcome as RequestOutcome, Recorder, TransportError};
pub use summary::{
    Figures, LatencyStats, LoadSummary, RouteSummary, SecondPoint, StopReason, TimelineCounts,
};
pub use threshold::{Metric, Op, Threshold, ThresholdResult, evaluate_all};
pub use urlfile::{UrlFileError, parse_url_file, parse_url_line, parse_url_source};
