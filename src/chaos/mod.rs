//! The chaos engine: experiments that put a fault on a running system and
//! judge whether its steady state holds — failure isolation, read-model
//! catch-up, recovery — with a journal written before every change and a
//! rollback that always runs.
//!
//! The words are Chaos Toolkit's: steady-state *hypothesis*, *method*,
//! *rollbacks*, *journal*, *deviated*. The engine acts on a system only
//! through the [`crate::platform::Platform`] trait, so one experiment runs on
//! every platform.

mod action;
mod experiment;
mod journal;
mod lag;
mod probe;
mod run;
mod under_load;

pub use experiment::{Experiment, KubeScope, load_experiment, parse as parse_experiment};
pub use journal::{CheckResult, Journal, Phase, Verdict};
pub use lag::LagReader;
pub use under_load::{CAUGHT_UP, CatchUp, LagSample, LoadRecord, Marks, PhaseFigures, PhaseLatency, ReplicaSample, RoutePhases, Second};
pub use run::{Target, rollback_journal, run_experiment};
