//! The chaos engine: experiments that put a fault on a running system and
//! judge whether its steady state holds — failure isolation, read-model
//! catch-up, recovery — with a journal written before every change and a
//! rollback that always runs.
//!
//! The words are Chaos Toolkit's: steady-state *hypothesis*, *method*,
//! *rollbacks*, *journal*, *deviated*. The engine acts on a system only
//! through the [`crate::platform::Platform`] trait, so one experiment runs on
//! every platform; [`target`] builds that platform for a run.

mod action;
mod attack;
mod events;
mod experiment;
mod journal;
mod kill_switch;
mod lag;
mod network_action;
mod network_change;
mod probe;
mod run;
mod target;
mod under_load;
mod untouched;

pub use attack::{Credential, TokenAttack};
pub use experiment::{Action, Check, Experiment, Fault, KubeScope, NetworkAction, Probe, ProbeKind, load_experiment, parse as parse_experiment};
pub use journal::{ActivityStatus, CheckResult, Journal, Phase, RollbackStatus, Status, Verdict};
pub use kill_switch::{PidFile, abort};
pub use lag::LagReader;
pub use run::{rollback_journal, run_experiment};
pub use target::{KubeSettings, Target, recorded_platform};
pub use under_load::{CAUGHT_UP, CatchUp, LagSample, LoadRecord, Marks, PhaseFigures, PhaseLatency, ReplicaSample, RoutePhases, Second};
