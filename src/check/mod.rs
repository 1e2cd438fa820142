//! The checkpoint scorecard (`stormproof check shop`): the course's
//! automatable assessment checkpoints (SPEC "Checkpoints"), each scored by
//! running one of the shipped experiments and reading its journal — a
//! verdict and one line of evidence per checkpoint.
//!
//! The scorecard only reads journals; the chaos engine runs them.

use serde::Serialize;

use crate::chaos::{Journal, Phase, Verdict};

/// How a checkpoint is scored.
#[derive(Debug, Clone, Copy)]
pub enum Scored {
    /// By this experiment (a file of `chaos/shop/`); its evidence comes from
    /// these phases.
    By(&'static str, &'static [Phase]),
    /// By a pair of experiments: the first must pass; the second, the same
    /// fault without the protection, must fail — the harness shows the
    /// difference. Evidence comes from these phases of both.
    Contrast(&'static str, &'static str, &'static [Phase]),
    /// By verifying the product and its breaking variants against the
    /// consumers' pacts (`contracts/shop`).
    Contract,
    /// Not automated yet; says by which issue.
    NotYet(&'static str),
}

/// One checkpoint of the course.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    /// Its number in the course's list.
    pub id: u8,
    /// Name in English.
    pub en: &'static str,
    /// The course's Korean name.
    pub ko: &'static str,
    /// How it is scored.
    pub scored: Scored,
}

use Phase::{After, Before, During};

/// The shop's checkpoints, in the course's order.
pub const SHOP: &[Checkpoint] = &[
    Checkpoint { id: 1, en: "Saga / pub-sub", ko: "Saga (Pub/Sub)", scored: Scored::By("saga", &[Before]) },
    Checkpoint { id: 2, en: "CQRS read model", ko: "CQRS", scored: Scored::By("mypage-outage", &[During, After]) },
    Checkpoint { id: 3, en: "Correlation key", ko: "Correlation", scored: Scored::NotYet("an event-inspection probe (follow-up)") },
    Checkpoint { id: 4, en: "Request-response with circuit breaker", ko: "Req/Resp · Circuit Breaker", scored: Scored::By("product-hang", &[During]) },
    Checkpoint { id: 5, en: "Gateway", ko: "Gateway / Ingress", scored: Scored::By("gateway", &[Before]) },
    Checkpoint { id: 6, en: "Failure isolation", ko: "장애격리", scored: Scored::By("delivery-outage", &[During]) },
    Checkpoint { id: 7, en: "Replay after outage", ko: "장애 복구 후 처리 (Replay)", scored: Scored::By("delivery-outage", &[After]) },
    Checkpoint { id: 8, en: "Scale-out without duplicates", ko: "Scale-out (중복 없음)", scored: Scored::By("consumer-scale-out", &[During, After]) },
    Checkpoint { id: 9, en: "Autoscaling", ko: "Autoscale (HPA)", scored: Scored::By("autoscale-out", &[During, After]) },
    Checkpoint {
        id: 10,
        en: "Zero-downtime deploy",
        ko: "무정지 재배포 (Readiness Probe)",
        scored: Scored::Contrast("rolling-update", "rolling-update-without-readiness", &[During]),
    },
    Checkpoint { id: 11, en: "Self-healing", ko: "Self-healing (Liveness Probe)", scored: Scored::By("self-healing", &[During, After]) },
    Checkpoint { id: 12, en: "Contract test", ko: "Contract Test", scored: Scored::Contract },
    Checkpoint { id: 13, en: "Open architecture (late read model)", ko: "확장성 (Open Architecture)", scored: Scored::NotYet("a fresh-read-model experiment (follow-up; proved today by tests/shop.rs)") },
];

/// A scored checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    /// Checkpoint number.
    pub id: u8,
    /// Name (in the asked language).
    pub name: String,
    /// `pass`, `fail` or `not yet`.
    pub verdict: String,
    /// One line of evidence.
    pub evidence: String,
    /// The experiment's report folder, if one ran.
    pub report: Option<String>,
}

impl Scored {
    /// The experiments it reads, with whether each must pass.
    pub fn experiments(&self) -> Vec<(&'static str, bool)> {
        match *self {
            Scored::By(name, _) => vec![(name, true)],
            Scored::Contrast(passes, fails, _) => vec![(passes, true), (fails, false)],
            Scored::Contract | Scored::NotYet(_) => vec![],
        }
    }
}

/// Scores `checkpoint` from the journals of its experiments (in the order
/// of [`Scored::experiments`]; `None` for one that did not run).
pub fn score(checkpoint: &Checkpoint, journals: &[Option<&Journal>], korean: bool, report: Option<String>) -> Score {
    let name = if korean { checkpoint.ko } else { checkpoint.en }.to_string();
    let (verdict, evidence) = match (checkpoint.scored, journals) {
        (Scored::NotYet(by), _) => ("not yet".to_string(), format!("comes with {by}")),
        (Scored::By(_, phases), [Some(journal)]) => judge(journal, phases),
        (Scored::Contrast(_, _, phases), [Some(with), Some(without)]) => contrast(with, without, phases),
        (Scored::Contract, _) => ("fail".to_string(), "contract verification did not run".to_string()),
        _ => ("fail".to_string(), "the experiment did not run".to_string()),
    };
    Score { id: checkpoint.id, name, verdict, evidence, report }
}

/// `with` passes and `without` fails on a check of `phases`.
fn contrast(with: &Journal, without: &Journal, phases: &[Phase]) -> (String, String) {
    let (verdict, evidence) = judge(with, phases);
    if verdict != "pass" {
        return (verdict, evidence);
    }
    // The first figure of each side is the one to compare.
    let first = |e: &str| e.split("; ").next().unwrap_or_default().to_string();
    let deviated = without.results().find(|(phase, r)| phases.contains(phase) && r.status == "deviated");
    match deviated {
        Some((_, shown)) if without.status == Verdict::Failed => {
            ("pass".into(), format!("with: {} — without, as expected: {}", first(&evidence), first(&shown.evidence)))
        }
        _ => ("fail".into(), format!("`{}` should fail and did not ({:?}): the harness cannot show the difference", without.title, without.status)),
    }
}

/// Scores checkpoint 12 from the contract verifications.
pub fn score_contract(checkpoint: &Checkpoint, result: &anyhow::Result<(bool, Vec<crate::contract::checkpoint::Evidence>)>, korean: bool) -> Score {
    let name = if korean { checkpoint.ko } else { checkpoint.en }.to_string();
    let (verdict, evidence) = match result {
        Err(err) => ("fail".to_string(), format!("verification could not run: {err:#}")),
        Ok((held, cases)) => {
            let lines: Vec<String> = cases
                .iter()
                .map(|c| {
                    let who = if c.variant.is_empty() { "product" } else { c.variant.as_str() };
                    match (c.passed, c.failures.first()) {
                        (true, _) => format!("{who} passes"),
                        (false, Some(why)) => format!("{who} blocked ({})", shorten(why, 70)),
                        (false, None) => format!("{who} blocked"),
                    }
                })
                .collect();
            (if *held { "pass" } else { "fail" }.to_string(), lines.join("; "))
        }
    };
    Score { id: checkpoint.id, name, verdict, evidence, report: None }
}

fn judge(journal: &Journal, phases: &[Phase]) -> (String, String) {
    let results: Vec<_> = journal.results().filter(|(phase, _)| phases.contains(phase)).map(|(_, r)| r).collect();
    if let Some(bad) = results.iter().find(|r| r.status != "held") {
        return ("fail".into(), format!("{}: {}", bad.name, bad.evidence));
    }
    if journal.status != Verdict::Passed {
        let why = journal.deviated.clone().unwrap_or_else(|| format!("{:?}", journal.status));
        return ("fail".into(), why);
    }
    // Figures first: availability and autoscaler decisions, then
    // read-model, lag and restarts, then the rest.
    let rank = |e: &str| {
        if e.contains(" % over ") || e.contains(": desired ") {
            0
        } else if e.contains(" rows in ") || e.contains("behind") || e.contains("restarts") {
            1
        } else {
            2
        }
    };
    let mut evidence: Vec<String> = results.iter().map(|r| r.evidence.clone()).collect();
    evidence.sort_by_key(|e| rank(e));
    if let Some(catch_up) = journal.catch_up.iter().filter(|c| c.peak > 0).max_by_key(|c| c.peak).filter(|_| phases.contains(&After)) {
        evidence.push(format!("{} lag peak {}, caught up {}", catch_up.group, catch_up.peak, catch_up.caught_up_after.map(|t| format!("{t:.1} s after the fault")).unwrap_or_else(|| "?".into())));
    }
    ("pass".into(), shorten(&evidence.join("; "), 220))
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// The experiment files compiled into the binary, so `check` runs anywhere.
pub const EXPERIMENTS: &[(&str, &str)] = &[
    ("saga", include_str!("../../chaos/shop/saga.yaml")),
    ("gateway", include_str!("../../chaos/shop/gateway.yaml")),
    ("delivery-outage", include_str!("../../chaos/shop/delivery-outage.yaml")),
    ("mypage-outage", include_str!("../../chaos/shop/mypage-outage.yaml")),
    ("consumer-scale-out", include_str!("../../chaos/shop/consumer-scale-out.yaml")),
    ("product-hang", include_str!("../../chaos/shop/product-hang.yaml")),
    ("broker-outage", include_str!("../../chaos/shop/broker-outage.yaml")),
    ("self-healing", include_str!("../../chaos/shop/self-healing.yaml")),
    ("autoscale-out", include_str!("../../chaos/shop/autoscale-out.yaml")),
    ("rolling-update", include_str!("../../chaos/shop/rolling-update.yaml")),
    ("rolling-update-without-readiness", include_str!("../../chaos/shop/rolling-update-without-readiness.yaml")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scored_checkpoint_names_a_compiled_experiment() {
        for checkpoint in SHOP {
            for (name, _) in checkpoint.scored.experiments() {
                let (_, yaml) = EXPERIMENTS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name}"));
                crate::chaos::parse_experiment(yaml, name).unwrap();
            }
        }
        assert_eq!(SHOP.iter().map(|c| c.id).collect::<Vec<_>>(), (1..=13).collect::<Vec<_>>());
    }

    #[test]
    fn a_checkpoint_not_automated_yet_is_not_a_pass() {
        let s = score(&SHOP[2], &[], false, None);
        assert_eq!(s.verdict, "not yet");
        let s = score(&SHOP[0], &[None], true, None);
        assert_eq!((s.verdict.as_str(), s.name.as_str()), ("fail", "Saga (Pub/Sub)"));
    }

    fn journal(verdict: Verdict, availability: &str, status: &str) -> Journal {
        let mut j = Journal::new("t", "f.yaml", "shop", std::path::Path::new("."), std::env::temp_dir().join("unused-journal.json"));
        let evidence = format!("POST /orders {availability} % over seconds 2–5");
        j.record(During, crate::chaos::CheckResult { name: "available".into(), status: status.into(), evidence, took_ms: 0 });
        j.status = verdict;
        j
    }

    #[test]
    fn zero_downtime_needs_the_drop_shown_without_readiness() {
        let ten = SHOP.iter().find(|c| c.id == 10).unwrap();
        let with = journal(Verdict::Passed, "100.00", "held");
        let without = journal(Verdict::Failed, "34.78", "deviated");
        let s = score(ten, &[Some(&with), Some(&without)], false, None);
        assert_eq!(s.verdict, "pass", "{}", s.evidence);
        assert!(s.evidence.contains("100.00") && s.evidence.contains("34.78"), "{}", s.evidence);
        // Without readiness and no drop: the harness proved nothing.
        let no_drop = journal(Verdict::Passed, "100.00", "held");
        assert_eq!(score(ten, &[Some(&with), Some(&no_drop)], false, None).verdict, "fail");
        // A drop with readiness fails the checkpoint whatever the contrast.
        let dropped = journal(Verdict::Failed, "97.00", "deviated");
        assert_eq!(score(ten, &[Some(&dropped), Some(&without)], false, None).verdict, "fail");
    }
}
