//! One step of a rolling update, as the Deployment controller takes it
//! (rolling.go): surge new replicas up to desired + maxSurge, then remove
//! old ones — unready first — only as far as keeps desired − maxUnavailable
//! replicas available. Pure: the supervisor counts, this decides.

/// Replicas of a service split by template: the current one (new) and any
/// earlier one (old). Terminating replicas are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    /// `spec.replicas`.
    pub desired: u32,
    /// Replicas of the current template.
    pub new: u32,
    /// Of those, ready.
    pub new_ready: u32,
    /// Replicas of earlier templates.
    pub old: u32,
    /// Of those, ready.
    pub old_ready: u32,
}

/// What to do now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Step {
    /// New-template replicas to start.
    pub start_new: u32,
    /// New-template replicas above desired to stop.
    pub stop_new: u32,
    /// Unready old replicas to stop (they serve nobody).
    pub stop_old_unready: u32,
    /// Ready old replicas to stop.
    pub stop_old_ready: u32,
}

/// The next step towards `desired` replicas of the new template.
pub(super) fn step(c: Counts, max_surge: u32, max_unavailable: u32) -> Step {
    // Scale the new set up, within the surge.
    let total = c.new + c.old;
    let ceiling = c.desired + max_surge;
    let start_new = if c.new >= c.desired || total >= ceiling { 0 } else { (ceiling - total).min(c.desired - c.new) };
    let stop_new = c.new.saturating_sub(c.desired);
    let new = c.new + start_new - stop_new;
    // Scale the old set down, keeping enough available. Replicas just
    // started count as unavailable.
    let min_available = c.desired.saturating_sub(max_unavailable);
    let new_unavailable = new.saturating_sub(c.new_ready);
    let room = i64::from(new + c.old) - i64::from(min_available) - i64::from(new_unavailable);
    if room <= 0 {
        return Step { start_new, stop_new, ..Step::default() };
    }
    let stop_old_unready = (c.old - c.old_ready).min(room as u32);
    let available = c.new_ready.min(new) + c.old_ready;
    let stop_old_ready = available.saturating_sub(min_available).min(c.old_ready);
    Step { start_new, stop_new, stop_old_unready, stop_old_ready }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(desired: u32, new: u32, new_ready: u32, old: u32, old_ready: u32) -> Counts {
        Counts { desired, new, new_ready, old, old_ready }
    }

    #[test]
    fn one_replica_surges_one_then_stops_the_old_once_the_new_is_ready() {
        // 25 % / 25 % of 1: surge 1, unavailable 0.
        assert_eq!(step(counts(1, 0, 0, 1, 1), 1, 0), Step { start_new: 1, ..Step::default() });
        assert_eq!(step(counts(1, 1, 0, 1, 1), 1, 0), Step::default(), "the new one is not ready: the old one stays");
        assert_eq!(step(counts(1, 1, 1, 1, 1), 1, 0), Step { stop_old_ready: 1, ..Step::default() });
    }

    #[test]
    fn four_replicas_roll_one_over_and_one_under() {
        // Surge 1, unavailable 1: one new starts and one old stops at once.
        assert_eq!(step(counts(4, 0, 0, 4, 4), 1, 1), Step { start_new: 1, stop_old_ready: 1, ..Step::default() });
        // 1 new (unready) + 3 old: one more new, no old may go.
        assert_eq!(step(counts(4, 1, 0, 3, 3), 1, 1), Step { start_new: 1, ..Step::default() });
    }

    #[test]
    fn a_version_that_never_gets_ready_stops_at_max_unavailable() {
        // 2 new, never ready, 3 old: the surge is used up and 3 = 4 − 1 must stay.
        assert_eq!(step(counts(4, 2, 0, 3, 3), 1, 1), Step::default());
        assert_eq!(step(counts(1, 1, 0, 1, 1), 1, 0), Step::default());
    }

    #[test]
    fn unready_old_replicas_go_first() {
        // An old replica that is not ready costs no availability to remove.
        let s = step(counts(2, 0, 0, 2, 1), 0, 1);
        assert_eq!((s.stop_old_unready, s.stop_old_ready), (1, 0));
    }

    #[test]
    fn scaling_down_during_a_rollout_stops_new_replicas_above_desired() {
        assert_eq!(step(counts(1, 3, 3, 0, 0), 1, 0).stop_new, 2);
    }
}
