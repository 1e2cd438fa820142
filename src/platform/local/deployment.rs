//! A service's rollout state, kept like a Deployment's: the current pod
//! template and its revision, the templates before it (for undo),
//! generation and observedGeneration, and the Progressing / Available
//! conditions with the progress deadline.

use std::time::Instant;

use super::rolling::Counts;
use crate::platform::{Condition, PROGRESS_DEADLINE_EXCEEDED, RolloutStatus, Template};
use crate::systems::definition::RolloutDef;
use crate::clock::now_rfc3339;

/// Revisions kept for undo (`revisionHistoryLimit`).
const HISTORY: usize = 10;

pub(super) struct Deployment {
    pub template: Template,
    pub revision: u64,
    pub generation: u64,
    pub observed_generation: u64,
    pub policy: RolloutDef,
    history: Vec<(u64, Template)>,
    progress: (Counts, Instant),
    conditions: Vec<Condition>,
}

impl Deployment {
    pub fn new(template: Template, policy: RolloutDef) -> Deployment {
        let zero = Counts { desired: 0, new: 0, new_ready: 0, old: 0, old_ready: 0 };
        Deployment {
            history: vec![(1, template.clone())],
            template,
            revision: 1,
            generation: 1,
            observed_generation: 0,
            policy,
            progress: (zero, Instant::now()),
            conditions: Vec::new(),
        }
    }

    /// Makes `template` current; false if it already is (no new revision,
    /// as patching a Deployment with the same template changes nothing).
    pub fn change(&mut self, template: Template) -> bool {
        if template == self.template {
            return false;
        }
        // Back to an earlier template: that revision moves to the top.
        self.history.retain(|(_, t)| *t != template);
        self.revision = self.history.iter().map(|(r, _)| *r).max().unwrap_or(0) + 1;
        self.history.push((self.revision, template.clone()));
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
        self.template = template;
        self.generation += 1;
        self.progress.1 = Instant::now();
        true
    }

    /// The template before the current one.
    pub fn previous(&self) -> Option<Template> {
        self.history.iter().rev().nth(1).map(|(_, t)| t.clone())
    }

    /// Records what the controller saw in a reconcile: progress resets the
    /// deadline; the conditions follow.
    pub fn observe(&mut self, c: Counts, now: Instant) {
        self.observed_generation = self.generation;
        if c != self.progress.0 {
            self.progress = (c, now);
        }
        let rs = format!("ReplicaSet \"{}\"", self.template.version);
        let complete = c.new == c.desired && c.old == 0 && c.new_ready >= c.new;
        let (status, reason, message) = if complete {
            ("True", "NewReplicaSetAvailable", format!("{rs} has successfully progressed."))
        } else if now.duration_since(self.progress.1) > self.policy.progress_deadline {
            ("False", PROGRESS_DEADLINE_EXCEEDED, format!("{rs} has timed out progressing."))
        } else {
            ("True", "ReplicaSetUpdated", format!("{rs} is progressing."))
        };
        set(&mut self.conditions, "Progressing", status, reason, message);
        let (_, unavailable) = self.policy.resolve(c.desired).unwrap_or((1, 0));
        let available = c.new_ready + c.old_ready >= c.desired.saturating_sub(unavailable);
        let (status, reason) = if available { ("True", "MinimumReplicasAvailable") } else { ("False", "MinimumReplicasUnavailable") };
        set(&mut self.conditions, "Available", status, reason, format!("Deployment has {}minimum availability.", if available { "" } else { "no " }));
    }

    /// The status `kubectl rollout status` reads.
    pub fn status(&self, service: &str, c: Counts) -> RolloutStatus {
        RolloutStatus {
            service: service.to_string(),
            revision: self.revision,
            generation: self.generation,
            observed_generation: self.observed_generation,
            replicas: c.desired,
            updated: c.new,
            total: c.new + c.old,
            available: c.new_ready + c.old_ready,
            ready: c.new_ready + c.old_ready,
            template: self.template.clone(),
            conditions: self.conditions.clone(),
        }
    }

    /// Spec changes other than the template (replicas) bump the generation too.
    pub fn touch(&mut self) {
        self.generation += 1;
    }
}

/// Sets condition `kind`, keeping its transition time unless the status changed.
pub(super) fn set(conditions: &mut Vec<Condition>, kind: &str, status: &str, reason: &str, message: String) {
    let since = match conditions.iter().find(|c| c.kind == kind) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now_rfc3339(),
    };
    conditions.retain(|c| c.kind != kind);
    conditions.push(Condition { kind: kind.into(), status: status.into(), reason: reason.into(), message, last_transition_time: since });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn counts(desired: u32, new: u32, new_ready: u32, old: u32) -> Counts {
        Counts { desired, new, new_ready, old, old_ready: old }
    }

    #[test]
    fn undo_returns_to_the_previous_template_as_a_new_revision() {
        let mut d = Deployment::new(Template::version("v1"), RolloutDef::default());
        assert!(!d.change(Template::version("v1")), "same template: nothing to roll");
        assert!(d.change(Template::version("v2")));
        assert_eq!((d.revision, d.generation), (2, 2));
        let previous = d.previous().unwrap();
        assert_eq!(previous.version, "v1");
        d.change(previous);
        assert_eq!((d.revision, d.template.version.as_str()), (3, "v1"));
        assert_eq!(d.previous().unwrap().version, "v2", "undo again goes forward to v2");
    }

    #[test]
    fn no_progress_for_the_deadline_is_progress_deadline_exceeded() {
        let policy = RolloutDef { progress_deadline: Duration::from_secs(10), ..RolloutDef::default() };
        let mut d = Deployment::new(Template::version("v1"), policy);
        let t0 = Instant::now();
        d.change(Template::version("v2"));
        d.observe(counts(1, 1, 0, 1), t0);
        d.observe(counts(1, 1, 0, 1), t0 + Duration::from_secs(5));
        let status = d.status("order", counts(1, 1, 0, 1));
        assert_eq!(crate::platform::condition(&status.conditions, "Progressing").unwrap().reason, "ReplicaSetUpdated");
        d.observe(counts(1, 1, 0, 1), t0 + Duration::from_secs(11));
        let status = d.status("order", counts(1, 1, 0, 1));
        assert!(matches!(status.state(), crate::platform::RolloutState::Failed(_)), "{status:?}");
        // Progress after the deadline resumes the rollout.
        d.observe(counts(1, 1, 1, 1), t0 + Duration::from_secs(12));
        assert_eq!(crate::platform::condition(&d.status("order", counts(1, 1, 1, 1)).conditions, "Progressing").unwrap().status, "True");
    }
}
