//! `stormproof check SYSTEM`: the checkpoint scorecard.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::RunDirArgs;
use crate::chaos::{self, Journal, Verdict};
use crate::check::{self, Scored};
use crate::exit::Outcome;
use crate::platform::local::RunState;

/// `stormproof check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The reference system whose checkpoints to score.
    #[arg(default_value = "shop")]
    system: String,
    /// Checkpoint names in English or in the course's Korean.
    #[arg(long, default_value = "en", value_parser = ["en", "ko"])]
    lang: String,
    /// The consumers' pacts checkpoint 12 verifies the product against.
    #[arg(long, default_value = "contracts/shop")]
    pacts: PathBuf,
    /// Where the scorecard and each experiment's report go.
    #[arg(long, default_value = "reports/check", env = "STORMPROOF_REPORTS")]
    reports: PathBuf,
    /// Where the system runs: `local` (started when not up), or `kube` (already deployed).
    #[arg(long, default_value = "local", value_parser = ["local", "kube"])]
    platform: String,
    #[command(flatten)]
    run: RunDirArgs,
    #[command(flatten)]
    kube: super::k8s_cmds::ChaosKubeArgs,
}

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.system == "shop", "checkpoints exist for the shop only so far, not `{}`", args.system);
    let started = Instant::now();
    let run_dir = args.run.run_dir;
    let dir = args.reports.join(super::chaos_cmds::stamp());
    let kube = args.platform == "kube";
    let started_here = !kube && RunState::read_live(&run_dir).is_err();
    if started_here {
        eprintln!("starting {} in {}", args.system, run_dir.display());
        super::chaos_cmds::start(&args.system, &run_dir)?;
    }
    let target = if kube { args.kube.target(&args.system, &dir, None).await? } else { super::chaos_cmds::target(&args.system, &run_dir)? };

    // Each experiment runs once; several checkpoints may read its journal.
    let mut journals: Vec<(&str, Journal)> = Vec::new();
    let mut must_fail = Vec::new();
    for (name, passes) in check::SHOP.iter().flat_map(|c| c.scored.experiments()) {
        if !passes {
            must_fail.push(name);
        }
        if journals.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let (_, yaml) = check::EXPERIMENTS.iter().find(|(n, _)| *n == name).expect("compiled experiment");
        let experiment = chaos::parse_experiment(yaml, &format!("chaos/shop/{name}.yaml"))?;
        eprintln!("running {name}: {}", experiment.title);
        let journal = chaos::run_experiment(&experiment, &format!("chaos/shop/{name}.yaml"), &target, dir.join(name).join("journal.json"), &|_| {}).await;
        super::chaos_cmds::write_reports(&dir.join(name), &journal)?;
        journals.push((name, journal));
    }
    if started_here {
        let _ = super::platform_cmds::down(&run_dir).await;
    }
    eprintln!("verifying shop.product and its breaking variants against {}", args.pacts.display());
    let contract = crate::contract::checkpoint::breaking_change_is_blocked(&args.pacts, None).await;

    let korean = args.lang == "ko";
    let scores: Vec<check::Score> = check::SHOP
        .iter()
        .map(|checkpoint| {
            if let Scored::Contract = checkpoint.scored {
                return check::score_contract(checkpoint, &contract, korean);
            }
            let names = checkpoint.scored.experiments();
            let found: Vec<Option<&Journal>> = names.iter().map(|(name, _)| journals.iter().find(|(n, _)| n == name).map(|(_, j)| j)).collect();
            let report = names.first().map(|(name, _)| dir.join(name).join("report.html").display().to_string());
            check::score(checkpoint, &found, korean, report)
        })
        .collect();
    let table = scorecard(&scores);
    println!("{table}");
    let failed = scores.iter().filter(|s| s.verdict == "fail").count();
    let passed = scores.iter().filter(|s| s.verdict == "pass").count();
    let not_yet = scores.len() - failed - passed;
    println!("{passed} passed, {failed} failed, {not_yet} not yet automated — {:.0} s; reports in {}", started.elapsed().as_secs_f64(), dir.display());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("scorecard.md"), format!("# {} checkpoints\n\n{}\n", args.system, markdown(&scores)))?;
    std::fs::write(dir.join("scorecard.json"), serde_json::to_vec_pretty(&scores)?)?;
    // An experiment run to show a failure (no readiness) is expected to fail.
    let any_unpassed_run = journals.iter().any(|(name, j)| j.status != Verdict::Passed && !must_fail.contains(name));
    Ok(if failed == 0 && !any_unpassed_run { Outcome::Passed } else { Outcome::Failed })
}

fn scorecard(scores: &[check::Score]) -> String {
    let width = scores.iter().map(|s| s.name.chars().count()).max().unwrap_or(10);
    let mut out = format!("{:>3}  {:<width$}  {:<8}  EVIDENCE\n", "#", "CHECKPOINT", "VERDICT");
    for s in scores {
        let pad = width.saturating_sub(s.name.chars().count());
        out.push_str(&format!("{:>3}  {}{}  {:<8}  {}\n", s.id, s.name, " ".repeat(pad), s.verdict.to_uppercase(), s.evidence));
    }
    out
}

fn markdown(scores: &[check::Score]) -> String {
    let mut out = String::from("| # | checkpoint | verdict | evidence |\n|---|---|---|---|\n");
    for s in scores {
        out.push_str(&format!("| {} | {} | {} | {} |\n", s.id, s.name, s.verdict, s.evidence.replace('|', "\\|")));
    }
    out
}
