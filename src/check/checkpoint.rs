//! A system's checkpoints (`checkpoints.yaml`): the course's checkpoints
//! and how each is scored for this system — by one of its experiments, by
//! a contrast of two, by verifying a provider and its variants against the
//! consumers' pacts — or why it is not (`not_yet`, `not_applicable`).

use serde::Deserialize;

use crate::chaos::{Experiment, Phase};
use crate::systems::{Part, System, SystemFile};

/// The file a system's checkpoints are in.
pub const FILE: &str = "checkpoints.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointsFile {
    checkpoints: Vec<Checkpoint>,
}

/// One checkpoint of the course, as a system scores it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Its number in the course's list.
    pub id: u8,
    /// Name in English.
    pub en: String,
    /// The course's Korean name.
    pub ko: String,
    /// How it is scored.
    #[serde(flatten)]
    pub scored: Scored,
    /// The phases of the experiments' checks that are its evidence.
    #[serde(default)]
    pub phases: Vec<Phase>,
}

/// How a checkpoint is scored: exactly one of these keys in a checkpoint.
#[derive(Debug, Clone, Deserialize)]
// serde names the enum in its error for a checkpoint without one.
#[serde(rename_all = "snake_case", rename = "how it is scored: one of experiment, contrast, contract, not_yet, not_applicable")]
pub enum Scored {
    /// By this experiment (a file of the system's `chaos/`).
    Experiment(String),
    /// By a pair of experiments: the first must pass; the second, the same
    /// fault without the protection, must fail — the harness shows the
    /// difference.
    Contrast(Contrast),
    /// By verifying a provider and its variants against the pacts.
    Contract(ContractCheck),
    /// Not automated yet; says by what it will be.
    NotYet(String),
    /// Does not apply to this system; says why.
    NotApplicable(String),
}

/// The two experiments of a contrast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contrast {
    /// With the protection: must pass.
    pub with: String,
    /// Without it: must show the drop in the availability of `route`, in
    /// the checkpoint's phases.
    pub without: String,
    /// The load route whose availability shows the difference (`POST /orders`).
    pub route: String,
}

/// A provider verified against its consumers' pacts, as it is and as
/// variants that must or must not pass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractCheck {
    /// The provider, as the pacts name it (`shop.product`).
    pub provider: String,
    /// The verifications and what each must conclude.
    pub cases: Vec<ContractCase>,
}

/// One verification of a contract checkpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractCase {
    /// The variant to verify (none: the provider as it is).
    pub variant: Option<String>,
    /// Whether the pacts must accept it.
    pub expect: Expectation,
}

/// What a verification must conclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// Every interaction passes.
    Pass,
    /// The pacts catch it.
    Fail,
}

/// An experiment a checkpoint reads: its name and whether it must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// The experiment (`chaos/NAME.yaml`).
    pub name: String,
    /// It must pass (false: it shows what goes wrong without the protection).
    pub passes: bool,
}

impl Scored {
    /// The experiments it reads, in order.
    pub fn experiments(&self) -> Vec<Reads> {
        match self {
            Scored::Experiment(name) => vec![Reads { name: name.clone(), passes: true }],
            Scored::Contrast(c) => vec![Reads { name: c.with.clone(), passes: true }, Reads { name: c.without.clone(), passes: false }],
            Scored::Contract(_) | Scored::NotYet(_) | Scored::NotApplicable(_) => vec![],
        }
    }
}

impl Checkpoint {
    /// Its name in English or Korean.
    pub fn name(&self, korean: bool) -> &str {
        if korean { &self.ko } else { &self.en }
    }
}

/// A system's checkpoints with the experiments they read, every one parsed.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    /// In the course's order.
    pub list: Vec<Checkpoint>,
    /// The experiments they read, by name, each once, with the file it came from.
    pub experiments: Vec<(String, String, Experiment)>,
}

/// Reads `system`'s checkpoints and the experiments they name. Errors name
/// the file, the line or checkpoint, and what was expected.
pub fn load(system: &System) -> anyhow::Result<Checkpoints> {
    let file = system
        .file(Part::Scenarios, FILE)?
        .ok_or_else(|| anyhow::anyhow!("{} has no checkpoints: expected {}", system.name(), system.origin(Part::Scenarios, FILE)))?;
    let list = parse(&file)?;
    let available = system.files(Part::Chaos, "yaml")?;
    let mut experiments: Vec<(String, String, Experiment)> = Vec::new();
    for checkpoint in &list {
        for reads in checkpoint.scored.experiments() {
            if experiments.iter().any(|(name, _, _)| *name == reads.name) {
                continue;
            }
            let Some(found) = available.iter().find(|f| f.stem() == reads.name) else {
                let names: Vec<&str> = available.iter().map(SystemFile::stem).collect();
                anyhow::bail!(
                    "{}: checkpoint {} is scored by experiment `{}`, but {} has none (experiments: {})",
                    file.origin,
                    checkpoint.id,
                    reads.name,
                    system.origin(Part::Chaos, &format!("{}.yaml", reads.name)),
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                );
            };
            let experiment = crate::chaos::parse_experiment(&found.text, &found.origin)?;
            anyhow::ensure!(experiment.system == system.name(), "{}: the experiment is for system `{}`, not {}", found.origin, experiment.system, system.name());
            experiment.check_against(&system.def).map_err(|err| anyhow::anyhow!("{}: {err}", found.origin))?;
            experiments.push((reads.name.clone(), found.origin.clone(), experiment));
        }
        if let Scored::Contract(contract) = &checkpoint.scored {
            check_contract(system, contract).map_err(|err| anyhow::anyhow!("{}: checkpoint {}: {err}", file.origin, checkpoint.id))?;
        }
    }
    Ok(Checkpoints { list, experiments })
}

/// Parses a checkpoints file.
pub fn parse(file: &SystemFile) -> anyhow::Result<Vec<Checkpoint>> {
    let parsed: CheckpointsFile = serde_saphyr::from_str(&file.text).map_err(|err| anyhow::anyhow!("{}: {err}", file.origin))?;
    let mut seen = Vec::new();
    for checkpoint in &parsed.checkpoints {
        let needs_phases = matches!(checkpoint.scored, Scored::Experiment(_) | Scored::Contrast(_));
        match (needs_phases, checkpoint.phases.is_empty()) {
            (true, true) => anyhow::bail!("{}: checkpoint {}: expected `phases` (before, during, after) to read its evidence from", file.origin, checkpoint.id),
            (false, false) => anyhow::bail!("{}: checkpoint {}: `phases` goes with `experiment` or `contrast` only", file.origin, checkpoint.id),
            _ => {}
        }
        anyhow::ensure!(!seen.contains(&checkpoint.id), "{}: checkpoint {} is listed twice", file.origin, checkpoint.id);
        seen.push(checkpoint.id);
    }
    Ok(parsed.checkpoints)
}

/// The provider is a service of the system, and its cases' variants exist.
fn check_contract(system: &System, contract: &ContractCheck) -> Result<(), String> {
    let service = contract
        .provider
        .strip_prefix(&format!("{}.", system.name()))
        .ok_or_else(|| format!("provider `{}` is not a service of {} (expected {}.SERVICE)", contract.provider, system.name(), system.name()))?;
    if contract.cases.is_empty() {
        return Err("a contract checkpoint needs at least one case".into());
    }
    for variant in contract.cases.iter().filter_map(|c| c.variant.as_deref()) {
        system.def.check_variant(service, variant)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SystemFile {
        SystemFile { name: FILE.into(), origin: "my/checkpoints.yaml".into(), text: text.into() }
    }

    #[test]
    fn the_shops_checkpoints_name_its_experiments() {
        let shop = System::builtin("shop").unwrap();
        let checkpoints = load(&shop).unwrap();
        assert_eq!(checkpoints.list.iter().map(|c| c.id).collect::<Vec<_>>(), (1..=13).collect::<Vec<_>>());
        assert!(checkpoints.experiments.iter().any(|(name, _, _)| name == "rolling-update-without-readiness"));
        assert!(matches!(&checkpoints.list[2].scored, Scored::Experiment(name) if name == "correlation"), "checkpoint 3 reads the topic");
    }

    #[test]
    fn a_malformed_file_names_the_file_and_line() {
        let err = parse(&file("checkpoints:\n  - id: 1\n    en: a\n    ko: b\n    expermient: saga\n    phases: [before]\n")).unwrap_err().to_string();
        assert!(err.starts_with("my/checkpoints.yaml:") && err.contains("line 2") && err.contains("one of experiment, contrast"), "{err}");
        let err = parse(&file("checkpoints:\n  - id: 1\n    en: a\n    ko: b\n    experiment: saga\n    phases: [before]\n    colour: red\n")).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("unknown field `colour`"), "{err}");
        let err = parse(&file("checkpoints:\n  - id: 1\n    en: a\n    ko: b\n    experiment: saga\n    phases: [durin]\n")).unwrap_err().to_string();
        assert!(err.contains("durin"), "{err}");
        let err = parse(&file("checkpoints:\n  - id: 1\n    en: a\n    ko: b\n")).unwrap_err().to_string();
        assert!(err.contains("one of experiment, contrast, contract, not_yet, not_applicable"), "{err}");
        let err = parse(&file("checkpoints:\n  - { id: 1, en: a, ko: b, experiment: saga }\n")).unwrap_err().to_string();
        assert!(err.contains("checkpoint 1: expected `phases`"), "{err}");
    }

    #[test]
    fn not_applicable_needs_a_reason_and_no_phases() {
        let ok = parse(&file("checkpoints:\n  - { id: 9, en: a, ko: b, not_applicable: nothing autoscales here }\n")).unwrap();
        assert!(matches!(&ok[0].scored, Scored::NotApplicable(why) if why == "nothing autoscales here"));
        let err = parse(&file("checkpoints:\n  - { id: 9, en: a, ko: b, not_applicable: x, phases: [during] }\n")).unwrap_err().to_string();
        assert!(err.contains("`phases` goes with"), "{err}");
    }
}
