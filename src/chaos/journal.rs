//! The journal: the record of one experiment run, written to disk before
//! every change and after every step, so a rollback can always find what to
//! restore — even after the harness itself was SIGKILLed.
//!
//! Laid out like Chaos Toolkit's (`steady_states.before/during/after`,
//! `run`, `rollbacks`), plus `changes`: each change with the state it
//! replaced.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::experiment::ProbeKind;
use super::under_load::{CatchUp, LagSample, LoadRecord, Marks, ReplicaSample};
use crate::clock::now_rfc3339;
use crate::systems::kit::SwitchState;

/// Version of the journal's layout (`journal.json`).
pub const VERSION: u32 = 3;

/// How an experiment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Still running (or the harness died: roll back with `chaos rollback`).
    Running,
    /// Every check held.
    Passed,
    /// A check deviated.
    Failed,
    /// A guardrail or an interruption stopped it.
    Aborted,
    /// A probe could not be run, or saw too little to conclude.
    Inconclusive,
}

/// Where a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Hypothesis before the method.
    Before,
    /// While the faults hold.
    During,
    /// After the rollback.
    After,
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The claim holds; the evidence says why.
    Held,
    /// The system does not do what the check claims.
    Deviated,
    /// The probe ran but saw too little to conclude either way (no
    /// transactions in the window, empty lists); the evidence says what was
    /// missing. Never a pass: the run is inconclusive.
    Inconclusive,
    /// The probe itself could not run: the run is inconclusive.
    Errored,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// What it concluded.
    pub status: Status,
    /// The kind of probe, so the evidence can be ranked by what it is.
    #[serde(default = "unrecorded_kind")]
    pub probe: ProbeKind,
    /// What was seen.
    pub evidence: String,
    /// Time the check took, retries included (ms).
    pub took_ms: u64,
    /// The load route an availability check judged (`POST /orders`), so a
    /// reader can tell which route a figure is of without parsing words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

impl Phase {
    /// Its word in journals and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
        }
    }
}

impl Status {
    /// Its word in journals and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Deviated => "deviated",
            Status::Inconclusive => "inconclusive",
            Status::Errored => "errored",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Journals before version 2 did not record the probe kind.
fn unrecorded_kind() -> ProbeKind {
    ProbeKind::Flow
}

/// A change made to the system and the state it replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// Replicas of a service were set; `prior` is what to restore.
    Replicas {
        /// Service.
        service: String,
        /// Desired replicas before.
        prior: u32,
        /// Whether it had an autoscaler that was not disabled before.
        /// Scaling to 0 disables it; the rollback must see it active again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        autoscaler_enabled: Option<bool>,
    },
    /// A service was rolled out; `prior` is the template to roll back to.
    Rollout {
        /// Service.
        service: String,
        /// Template before.
        prior: crate::platform::Template,
    },
    /// A replica's switches were flipped.
    Switches {
        /// Service.
        service: String,
        /// Replica id.
        replica: String,
        /// Switches before.
        prior: SwitchState,
    },
    /// A replica was killed; the platform replaces it (nothing to restore,
    /// but the service must be ready again).
    Killed {
        /// Service.
        service: String,
        /// Replica killed.
        replica: String,
    },
    /// A fault was set inside the broker; journaled before it is set, so
    /// `id` is unknown if the run died in between (the rollback then clears
    /// every fault in force equal to it).
    BrokerFault {
        /// The fault as set.
        fault: crate::broker::BrokerFault,
        /// The broker's id for it, once set.
        id: Option<u64>,
    },
    /// A fault was set on network links; journaled before it is set, so
    /// `id` is unknown if the run died in between (the rollback then clears
    /// every fault in force equal to it).
    NetworkFault {
        /// The fault as set (its expiry included).
        fault: crate::platform::network::NetworkFault,
        /// The platform's id for it, once set.
        id: Option<u64>,
    },
}

impl Change {
    /// The service whose replicas the change touched (a broker or network
    /// fault touches answers and links, not a service's replicas).
    pub fn service(&self) -> Option<&str> {
        match self {
            Change::Replicas { service, .. } | Change::Switches { service, .. } | Change::Killed { service, .. } | Change::Rollout { service, .. } => Some(service),
            Change::BrokerFault { .. } | Change::NetworkFault { .. } => None,
        }
    }
}

/// Where a method activity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityStatus {
    /// Journaled, not yet made.
    Planned,
    /// Made.
    Applied,
    /// Could not be made.
    Failed,
}

impl std::fmt::Display for ActivityStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActivityStatus::Planned => "planned",
            ActivityStatus::Applied => "applied",
            ActivityStatus::Failed => "failed",
        })
    }
}

/// One method activity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    /// What it does, in words.
    pub action: String,
    /// When it started.
    pub start: String,
    /// Where it stands.
    pub status: ActivityStatus,
    /// Detail or error.
    pub detail: String,
}

/// How a rollback step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RollbackStatus {
    /// What the change replaced is back.
    Restored,
    /// It could not be put back.
    Failed,
}

impl std::fmt::Display for RollbackStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RollbackStatus::Restored => "restored",
            RollbackStatus::Failed => "failed",
        })
    }
}

/// One rollback step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollback {
    /// What was restored.
    pub change: String,
    /// How it went.
    pub status: RollbackStatus,
    /// Detail or error.
    pub detail: String,
}

/// Steady-state results by phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SteadyStates {
    /// Hypothesis before the method.
    pub before: Vec<CheckResult>,
    /// Checks while the faults held.
    pub during: Vec<CheckResult>,
    /// Hypothesis and recovery checks after the rollback.
    pub after: Vec<CheckResult>,
}

/// The journal of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// Format version (2: probe kinds and typed statuses; 3: the
    /// `inconclusive` status, the route of availability checks, and no
    /// availability figure for a phase without traffic).
    pub version: u32,
    /// Experiment title.
    pub title: String,
    /// Experiment file.
    pub experiment_file: String,
    /// System under test.
    pub system: String,
    /// Run directory of the local platform acted on.
    pub run_dir: PathBuf,
    /// A dry run: every change was printed, none made, and no traffic was
    /// sent — so `chaos rollback` has nothing to restore.
    #[serde(default)]
    pub dry_run: bool,
    /// The verdict (`running` until the end).
    pub status: Verdict,
    /// The check that deviated or errored first, with its evidence.
    pub deviated: Option<String>,
    /// Start time.
    pub start: String,
    /// End time.
    pub end: Option<String>,
    /// Check results.
    pub steady_states: SteadyStates,
    /// Method activities.
    pub run: Vec<Activity>,
    /// Changes made, each written before it was made.
    pub changes: Vec<Change>,
    /// Rollback steps.
    pub rollbacks: Vec<Rollback>,
    /// Whether the rollback was checked: every touched service ready at
    /// its restored replicas.
    pub rollback_verified: Option<bool>,
    /// When the fault started and ended, seconds since the start.
    #[serde(default)]
    pub marks: Marks,
    /// What the load saw, by route and phase.
    #[serde(default)]
    pub load: Option<LoadRecord>,
    /// Ready replicas over time.
    #[serde(default)]
    pub replicas_over_time: Vec<ReplicaSample>,
    /// Consumer-group lag over time.
    #[serde(default)]
    pub lag_over_time: Vec<LagSample>,
    /// Lag peak and catch-up time of each consumer group.
    #[serde(default)]
    pub catch_up: Vec<CatchUp>,
    #[serde(skip)]
    path: PathBuf,
}

impl Journal {
    /// A new journal for `title`, saved at `path`.
    pub fn new(title: &str, experiment_file: &str, system: &str, run_dir: &Path, path: PathBuf) -> Journal {
        Journal {
            version: VERSION,
            title: title.to_string(),
            experiment_file: experiment_file.to_string(),
            system: system.to_string(),
            run_dir: run_dir.to_path_buf(),
            dry_run: false,
            status: Verdict::Running,
            deviated: None,
            start: now_rfc3339(),
            end: None,
            steady_states: SteadyStates::default(),
            run: Vec::new(),
            changes: Vec::new(),
            rollbacks: Vec::new(),
            rollback_verified: None,
            marks: Marks::default(),
            load: None,
            replicas_over_time: Vec::new(),
            lag_over_time: Vec::new(),
            catch_up: Vec::new(),
            path,
        }
    }

    /// Reads a journal back (for `chaos rollback`).
    pub fn read(path: &Path) -> anyhow::Result<Journal> {
        let text = std::fs::read_to_string(path).map_err(|err| anyhow::anyhow!("cannot read journal {}: {err}", path.display()))?;
        let mut journal: Journal = serde_json::from_str(&text).map_err(|err| anyhow::anyhow!("{}: not a stormproof journal: {err}", path.display()))?;
        journal.path = path.to_path_buf();
        Ok(journal)
    }

    /// Where the journal lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the journal to disk (atomically) now.
    pub fn save(&self) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    /// Records a check result of `phase`.
    pub fn record(&mut self, phase: Phase, result: CheckResult) {
        if self.deviated.is_none() && result.status != Status::Held {
            self.deviated = Some(format!("{phase:?} `{}` {}: {}", result.name, result.status, result.evidence).to_lowercase_first());
        }
        match phase {
            Phase::Before => self.steady_states.before.push(result),
            Phase::During => self.steady_states.during.push(result),
            Phase::After => self.steady_states.after.push(result),
        }
    }

    /// All results, in order.
    pub fn results(&self) -> impl Iterator<Item = (Phase, &CheckResult)> {
        let s = &self.steady_states;
        s.before.iter().map(|r| (Phase::Before, r)).chain(s.during.iter().map(|r| (Phase::During, r))).chain(s.after.iter().map(|r| (Phase::After, r)))
    }
}

trait LowercaseFirst {
    fn to_lowercase_first(self) -> String;
}

impl LowercaseFirst for String {
    fn to_lowercase_first(self) -> String {
        let mut chars = self.chars();
        match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect(),
            None => self,
        }
    }
}
