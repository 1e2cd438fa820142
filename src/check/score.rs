//! Scoring a checkpoint: a verdict and one line of evidence, read from the
//! journals of its experiments (or the contract verifications). A pass
//! rests on the checks of the checkpoint's phases; evidence leads with
//! figures — availability and autoscaler decisions, then read-model rows,
//! lag and restarts — ranked by the kind of probe that gave it.

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, Scored};
use crate::chaos::{self, Journal, Phase, ProbeKind, Status};
use crate::contract::checkpoint::{Evidence, Outcome};

/// What a checkpoint concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Its evidence holds.
    #[serde(rename = "pass")]
    Pass,
    /// Its evidence does not hold, or did not come.
    #[serde(rename = "fail")]
    Fail,
    /// Too little was seen to tell (no transactions, empty lists, a
    /// verification that errored): never a pass, and it fails the check.
    #[serde(rename = "inconclusive")]
    Inconclusive,
    /// Not automated yet.
    #[serde(rename = "not yet")]
    NotYet,
    /// Does not apply to the system.
    #[serde(rename = "not applicable")]
    NotApplicable,
}

impl Verdict {
    /// The word in reports (`pass`, `fail`, `inconclusive`, `not yet`, `not applicable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotYet => "not yet",
            Verdict::NotApplicable => "not applicable",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scored checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    /// Checkpoint number.
    pub id: u8,
    /// Name (in the asked language).
    pub name: String,
    /// What it concluded.
    pub verdict: Verdict,
    /// One line of evidence (or why there is none).
    pub evidence: String,
    /// The report of the experiment behind it, if one ran.
    pub report: Option<String>,
}

/// Scores `checkpoint` from the journals of its experiments (in the order
/// of [`Scored::experiments`]; `None` for one that did not run).
pub fn score(checkpoint: &Checkpoint, journals: &[Option<&Journal>], korean: bool, report: Option<String>) -> Score {
    let phases = checkpoint.phases.as_slice();
    let (verdict, evidence) = match (&checkpoint.scored, journals) {
        (Scored::NotYet(by), _) => (Verdict::NotYet, format!("comes with {by}")),
        (Scored::NotApplicable(why), _) => (Verdict::NotApplicable, why.clone()),
        (Scored::Experiment(_), [Some(journal)]) => judge(journal, phases),
        (Scored::Contrast(c), [Some(with), Some(without)]) => contrast(with, without, &c.route, phases),
        (Scored::Contract(_), _) => (Verdict::Fail, "contract verification did not run".to_string()),
        _ => (Verdict::Fail, "the experiment did not run".to_string()),
    };
    Score { id: checkpoint.id, name: checkpoint.name(korean).to_string(), verdict, evidence, report }
}

/// `with` passes, holding `route`'s availability, and `without` shows the
/// drop in that same figure: a deviated availability check of `route` in
/// `phases` (any other failure — a rollout that timed out — is not the drop).
fn contrast(with: &Journal, without: &Journal, route: &str, phases: &[Phase]) -> (Verdict, String) {
    let (verdict, evidence) = judge(with, phases);
    if verdict != Verdict::Pass {
        return (verdict, evidence);
    }
    let figure = |journal: &Journal| {
        journal.results().find(|(phase, r)| phases.contains(phase) && r.probe == ProbeKind::Availability && r.route.as_deref() == Some(route)).map(|(_, r)| r.clone())
    };
    let Some(kept) = figure(with) else {
        return (Verdict::Fail, format!("`{}` has no availability check of {route} in {phases:?}: nothing to contrast", with.title));
    };
    match figure(without) {
        Some(drop) if drop.status == Status::Deviated => (Verdict::Pass, format!("with: {} — without, as expected: {}", kept.evidence, drop.evidence)),
        Some(unseen) if matches!(unseen.status, Status::Inconclusive | Status::Errored) => {
            (Verdict::Inconclusive, format!("without: {}: {}", unseen.name, unseen.evidence))
        }
        Some(held) => (Verdict::Fail, format!("`{}` should show a drop of {route} and did not ({}): the harness cannot show the difference", without.title, held.evidence)),
        None => (Verdict::Fail, format!("`{}` has no availability check of {route} in {phases:?} ({:?}): the drop is not shown", without.title, without.status)),
    }
}

/// Scores a contract checkpoint from its verifications; `provider` names
/// the provider as it is (its service name) in the evidence.
pub fn score_contract(checkpoint: &Checkpoint, result: &anyhow::Result<Vec<Evidence>>, korean: bool) -> Score {
    let (verdict, evidence) = match result {
        Err(err) => (Verdict::Inconclusive, format!("verification could not run: {err:#}")),
        Ok(cases) => {
            let provider = match &checkpoint.scored {
                Scored::Contract(c) => c.provider.rsplit('.').next().unwrap_or(&c.provider).to_string(),
                _ => String::new(),
            };
            let lines: Vec<String> = cases
                .iter()
                .map(|c| {
                    let who = c.variant.as_deref().unwrap_or(&provider);
                    match (&c.outcome, c.failures.first()) {
                        (Outcome::Passed, _) => format!("{who} passes"),
                        (Outcome::Blocked, Some(why)) => format!("{who} blocked ({})", shorten(why, 70)),
                        (Outcome::Blocked, None) => format!("{who} blocked"),
                        (Outcome::Errored { error }, _) => format!("{who}: verification error, not a block ({})", shorten(error, 90)),
                    }
                })
                .collect();
            let wrong = cases.iter().any(|c| !c.as_expected() && !matches!(c.outcome, Outcome::Errored { .. }));
            let errored = cases.iter().any(|c| matches!(c.outcome, Outcome::Errored { .. }));
            let verdict = match (cases.is_empty(), wrong, errored) {
                (true, _, _) => Verdict::Fail,
                (_, true, _) => Verdict::Fail,
                (_, _, true) => Verdict::Inconclusive,
                _ => Verdict::Pass,
            };
            (verdict, if cases.is_empty() { "no case was verified".into() } else { lines.join("; ") })
        }
    };
    Score { id: checkpoint.id, name: checkpoint.name(korean).to_string(), verdict, evidence, report: None }
}

/// Figures first: availability and autoscaler decisions, then read-model
/// rows, lag and restarts, then flows and rollouts.
fn rank(kind: ProbeKind) -> u8 {
    // Counts first (transactions, rows), so a shortened line keeps them.
    match kind {
        ProbeKind::Availability | ProbeKind::Autoscaler => 0,
        ProbeKind::Consistency | ProbeKind::Events => 1,
        ProbeKind::Lag | ProbeKind::Replicas => 2,
        ProbeKind::Flow | ProbeKind::Rollout | ProbeKind::Untouched => 3,
    }
}

/// Passes on the checks of `phases` only: every one held, at least one
/// ran, and the run itself passed. A check that saw too little (or could
/// not run) makes the checkpoint inconclusive, never a pass.
fn judge(journal: &Journal, phases: &[Phase]) -> (Verdict, String) {
    let mut results: Vec<_> = journal.results().filter(|(phase, _)| phases.contains(phase)).map(|(_, r)| r).collect();
    // A deviation is the finding to name; too little seen comes next.
    let deviated = results.iter().find(|r| r.status == Status::Deviated);
    if let Some(bad) = deviated.or_else(|| results.iter().find(|r| r.status != Status::Held)) {
        let verdict = if bad.status == Status::Deviated { Verdict::Fail } else { Verdict::Inconclusive };
        return (verdict, format!("{} ({}): {}", bad.name, bad.status, bad.evidence));
    }
    if journal.status != chaos::Verdict::Passed && !failed_elsewhere(journal, phases) {
        let why = journal.deviated.clone().unwrap_or_else(|| format!("{:?}", journal.status));
        let verdict = if journal.status == chaos::Verdict::Inconclusive { Verdict::Inconclusive } else { Verdict::Fail };
        return (verdict, why);
    }
    if results.is_empty() {
        let names: Vec<&str> = phases.iter().map(|p| p.as_str()).collect();
        return (Verdict::Fail, format!("`{}` has no check in its {} phase(s): nothing to score this checkpoint on", journal.title, names.join(", ")));
    }
    results.sort_by_key(|r| rank(r.probe));
    let mut evidence: Vec<String> = results.iter().map(|r| r.evidence.clone()).collect();
    if let Some(catch_up) = journal.catch_up.iter().filter(|c| c.peak > 0).max_by_key(|c| c.peak).filter(|_| phases.contains(&Phase::After)) {
        evidence.push(format!("{} lag peak {}, caught up {}", catch_up.group, catch_up.peak, catch_up.caught_up_after.map(|t| format!("{t:.1} s after the fault")).unwrap_or_else(|| "?".into())));
    }
    (Verdict::Pass, shorten(&evidence.join("; "), 220))
}

/// The run failed only because a check of *another* phase deviated (and
/// its rollback is not in doubt): two checkpoints reading one experiment —
/// failure isolation during, replay after — are each judged on their own
/// phases, so a system without replay does not fail isolation too. A run
/// that was stopped, could not act or saw too little still counts.
fn failed_elsewhere(journal: &Journal, phases: &[Phase]) -> bool {
    journal.status == chaos::Verdict::Failed
        && journal.rollback_verified != Some(false)
        && journal.results().any(|(phase, r)| !phases.contains(&phase) && r.status == Status::Deviated)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::checkpoint::{Contrast, Expectation};
    use crate::chaos::CheckResult;
    use crate::contract::checkpoint::{Evidence, Outcome};

    fn checkpoint(id: u8, scored: Scored, phases: &[Phase]) -> Checkpoint {
        Checkpoint { id, en: format!("checkpoint {id}"), ko: format!("체크포인트 {id}"), scored, phases: phases.to_vec(), broken: None, line: 0 }
    }

    /// A journal of `during` checks; an availability check's route is the
    /// first two words of its evidence (`POST /orders`).
    fn journal(verdict: chaos::Verdict, checks: &[(ProbeKind, Status, &str)]) -> Journal {
        let mut j = Journal::new("t", "f.yaml", "shop", std::path::Path::new("."), std::env::temp_dir().join("unused-journal.json"));
        for (probe, status, evidence) in checks {
            let route = (*probe == ProbeKind::Availability).then(|| evidence.split(' ').take(2).collect::<Vec<_>>().join(" "));
            j.record(Phase::During, CheckResult { name: "c".into(), status: *status, probe: *probe, evidence: evidence.to_string(), took_ms: 0, route });
        }
        j.status = verdict;
        j
    }

    fn available(figure: &str, status: Status) -> (ProbeKind, Status, String) {
        (ProbeKind::Availability, status, format!("POST /orders {figure} % over seconds 2–5"))
    }

    #[test]
    fn not_yet_and_not_applicable_are_never_a_pass() {
        let s = score(&checkpoint(3, Scored::NotYet("a probe".into()), &[]), &[], false, None);
        assert_eq!((s.verdict, s.evidence.as_str()), (Verdict::NotYet, "comes with a probe"));
        let s = score(&checkpoint(9, Scored::NotApplicable("nothing autoscales".into()), &[]), &[], true, None);
        assert_eq!((s.verdict, s.name.as_str()), (Verdict::NotApplicable, "체크포인트 9"));
        let s = score(&checkpoint(1, Scored::Experiment("saga".into()), &[Phase::Before]), &[None], false, None);
        assert_eq!(s.verdict, Verdict::Fail, "an experiment that did not run fails its checkpoint");
        assert_eq!(serde_json::to_value(Verdict::NotApplicable).unwrap(), "not applicable");
        assert_eq!(serde_json::to_value(Verdict::Inconclusive).unwrap(), "inconclusive");
    }

    #[test]
    fn evidence_leads_with_figures_by_probe_kind() {
        let flow = (ProbeKind::Flow, Status::Held, "POST /orders → 201 in 4 ms".to_string());
        let rows = (ProbeKind::Consistency, Status::Held, "3 in /orders, 3 rows in /mypages".to_string());
        let (p1, s1, e1) = available("100.00", Status::Held);
        let j = journal(chaos::Verdict::Passed, &[(flow.0, flow.1, &flow.2), (rows.0, rows.1, &rows.2), (p1, s1, &e1)]);
        let s = score(&checkpoint(6, Scored::Experiment("x".into()), &[Phase::During]), &[Some(&j)], false, None);
        assert_eq!(s.verdict, Verdict::Pass);
        assert!(s.evidence.starts_with("POST /orders 100.00 %") && s.evidence.ends_with("201 in 4 ms"), "{}", s.evidence);
    }

    #[test]
    fn a_checkpoint_with_no_check_in_its_phases_fails_with_a_message() {
        let (p, s, e) = available("100.00", Status::Held);
        let j = journal(chaos::Verdict::Passed, &[(p, s, &e)]);
        let none = score(&checkpoint(6, Scored::Experiment("x".into()), &[Phase::After]), &[Some(&j)], false, None);
        assert_eq!(none.verdict, Verdict::Fail, "no check of the phase ran: no evidence, no pass");
        assert_eq!(none.evidence, "`t` has no check in its after phase(s): nothing to score this checkpoint on");
    }

    #[test]
    fn a_deviation_in_another_phase_does_not_fail_this_one() {
        let (p, s, e) = available("100.00", Status::Held);
        let mut j = journal(chaos::Verdict::Failed, &[(p, s, &e)]);
        j.record(Phase::After, CheckResult { name: "replayed".into(), status: Status::Deviated, probe: ProbeKind::Consistency, evidence: "2 of 3 rows".into(), took_ms: 0, route: None });
        let during = score(&checkpoint(6, Scored::Experiment("x".into()), &[Phase::During]), &[Some(&j)], false, None);
        assert_eq!(during.verdict, Verdict::Pass, "isolation held during: {}", during.evidence);
        let after = score(&checkpoint(7, Scored::Experiment("x".into()), &[Phase::After]), &[Some(&j)], false, None);
        assert_eq!((after.verdict, after.evidence.as_str()), (Verdict::Fail, "replayed (deviated): 2 of 3 rows"));
        j.rollback_verified = Some(false);
        assert_eq!(score(&checkpoint(6, Scored::Experiment("x".into()), &[Phase::During]), &[Some(&j)], false, None).verdict, Verdict::Fail, "an unverified rollback fails every reader");
        let stopped = journal(chaos::Verdict::Aborted, &[(p, s, &e)]);
        assert_eq!(score(&checkpoint(6, Scored::Experiment("x".into()), &[Phase::During]), &[Some(&stopped)], false, None).verdict, Verdict::Fail, "an aborted run fails it");
    }

    #[test]
    fn an_inconclusive_check_makes_the_checkpoint_inconclusive() {
        let thin = "POST /orders over seconds 2–6: 3 transactions, 0 failed, fewer than the 20 needed to judge availability";
        let (p, s, e) = available("100.00", Status::Held);
        let j = journal(chaos::Verdict::Inconclusive, &[(p, s, &e), (ProbeKind::Availability, Status::Inconclusive, thin)]);
        let s = score(&checkpoint(6, Scored::Experiment("x".into()), &[Phase::During]), &[Some(&j)], false, None);
        assert_eq!(s.verdict, Verdict::Inconclusive, "{}", s.evidence);
        assert!(s.evidence.contains("(inconclusive)") && s.evidence.contains("fewer than the 20"), "{}", s.evidence);
    }

    fn ten() -> Checkpoint {
        checkpoint(10, Scored::Contrast(Contrast { with: "a".into(), without: "b".into(), route: "POST /orders".into() }), &[Phase::During])
    }

    fn side(verdict: chaos::Verdict, figure: &str, status: Status) -> Journal {
        let (p, s, e) = available(figure, status);
        journal(verdict, &[(p, s, &e)])
    }

    #[test]
    fn zero_downtime_needs_the_drop_shown_without_readiness() {
        let with = side(chaos::Verdict::Passed, "100.00", Status::Held);
        let without = side(chaos::Verdict::Failed, "34.78", Status::Deviated);
        let s = score(&ten(), &[Some(&with), Some(&without)], false, None);
        assert_eq!(s.verdict, Verdict::Pass, "{}", s.evidence);
        assert!(s.evidence.contains("100.00") && s.evidence.contains("34.78"), "{}", s.evidence);
        // Without readiness and no drop: the harness proved nothing.
        let no_drop = side(chaos::Verdict::Passed, "100.00", Status::Held);
        assert_eq!(score(&ten(), &[Some(&with), Some(&no_drop)], false, None).verdict, Verdict::Fail);
        // A drop with readiness fails the checkpoint whatever the contrast.
        let dropped = side(chaos::Verdict::Failed, "97.00", Status::Deviated);
        assert_eq!(score(&ten(), &[Some(&dropped), Some(&without)], false, None).verdict, Verdict::Fail);
    }

    #[test]
    fn a_contrast_drop_on_another_route_or_check_is_not_the_drop() {
        let with = side(chaos::Verdict::Passed, "100.00", Status::Held);
        let other_route = journal(chaos::Verdict::Failed, &[
            (ProbeKind::Availability, Status::Held, "POST /orders 100.00 % over seconds 2–5"),
            (ProbeKind::Availability, Status::Deviated, "GET /orders?customerId=x 50.00 % over seconds 2–5"),
        ]);
        let s = score(&ten(), &[Some(&with), Some(&other_route)], false, None);
        assert_eq!(s.verdict, Verdict::Fail, "the drop must be in POST /orders: {}", s.evidence);
        let timed_out = journal(chaos::Verdict::Failed, &[
            (ProbeKind::Rollout, Status::Deviated, "order revision 2: progress deadline exceeded"),
            (ProbeKind::Availability, Status::Held, "POST /orders 100.00 % over seconds 2–5"),
        ]);
        assert_eq!(score(&ten(), &[Some(&with), Some(&timed_out)], false, None).verdict, Verdict::Fail, "a timed-out rollout is not the drop");
        let thin = journal(chaos::Verdict::Inconclusive, &[(ProbeKind::Availability, Status::Inconclusive, "POST /orders over seconds 2–5: 2 transactions")]);
        assert_eq!(score(&ten(), &[Some(&with), Some(&thin)], false, None).verdict, Verdict::Inconclusive, "too few requests show no drop either");
    }

    fn case(variant: Option<&str>, expect: Expectation, outcome: Outcome) -> Evidence {
        Evidence { variant: variant.map(str::to_string), expect, outcome, failures: vec!["GET /products/1 → 404".into()], verification: None }
    }

    fn twelve() -> Checkpoint {
        checkpoint(12, Scored::Contract(crate::check::checkpoint::ContractCheck { provider: "shop.product".into(), cases: vec![] }), &[])
    }

    #[test]
    fn a_contract_checkpoint_holds_when_every_case_concludes_as_expected() {
        let good = Ok(vec![case(None, Expectation::Pass, Outcome::Passed), case(Some("item-rename"), Expectation::Fail, Outcome::Blocked)]);
        let s = score_contract(&twelve(), &good, false);
        assert_eq!(s.verdict, Verdict::Pass);
        assert_eq!(s.evidence, "product passes; item-rename blocked (GET /products/1 → 404)");
        let missed = Ok(vec![case(Some("item-rename"), Expectation::Fail, Outcome::Passed)]);
        assert_eq!(score_contract(&twelve(), &missed, false).verdict, Verdict::Fail);
    }

    #[test]
    fn a_verifier_error_on_a_breaking_variant_is_not_blocked() {
        let error = Outcome::Errored { error: "the provider would not start".into() };
        let errored = Ok(vec![case(None, Expectation::Pass, Outcome::Passed), case(Some("item-rename"), Expectation::Fail, error)]);
        let s = score_contract(&twelve(), &errored, false);
        assert_eq!(s.verdict, Verdict::Inconclusive, "{}", s.evidence);
        assert!(s.evidence.contains("item-rename: verification error, not a block (the provider would not start)") && !s.evidence.contains("blocked"), "{}", s.evidence);
    }
}
