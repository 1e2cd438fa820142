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
    checkpoints: Vec<serde_saphyr::Spanned<Checkpoint>>,
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
    /// The system without what this checkpoint checks, which must fail it
    /// (`check --prove`).
    #[serde(default)]
    pub broken: Option<Broken>,
    /// The line of the file it starts on (for errors found after parsing).
    #[serde(skip)]
    pub line: u64,
}

/// A broken variant of the system for one checkpoint: the services to run
/// as which variant, what that system lacks, and the other checkpoints it
/// legitimately breaks too (any other change of verdict fails the proof).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broken {
    /// `SERVICE=VARIANT` each, as `up --variant` takes them.
    pub variants: Vec<String>,
    /// What the broken system lacks, in words.
    pub why: String,
    /// Other checkpoints this variant also fails, by id.
    #[serde(default)]
    pub also: Vec<u8>,
}

impl Broken {
    /// The variants as `(service, variant)` pairs (checked at parse time).
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.variants.iter().filter_map(|v| v.split_once('=')).map(|(s, v)| (s.trim().to_string(), v.trim().to_string())).collect()
    }

    /// A short name of the broken system: `order=no-breaker+…`.
    pub fn label(&self) -> String {
        self.variants.join("+")
    }
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

impl Checkpoints {
    /// Only the checkpoints `ids`, with the experiments they read; an id
    /// the file lacks is an error naming those it has.
    pub fn only(&self, ids: &[u8]) -> anyhow::Result<Checkpoints> {
        let known: Vec<u8> = self.list.iter().map(|c| c.id).collect();
        if let Some(missing) = ids.iter().find(|id| !known.contains(id)) {
            anyhow::bail!("there is no checkpoint {missing} (checkpoints: {})", known.iter().map(u8::to_string).collect::<Vec<_>>().join(", "));
        }
        let list: Vec<Checkpoint> = self.list.iter().filter(|c| ids.contains(&c.id)).cloned().collect();
        let read: Vec<String> = list.iter().flat_map(|c| c.scored.experiments()).map(|r| r.name).collect();
        let experiments = self.experiments.iter().filter(|(name, _, _)| read.contains(name)).cloned().collect();
        Ok(Checkpoints { list, experiments })
    }
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
                    "{}:{}: checkpoint {} is scored by experiment `{}`, but {} has none (experiments: {})",
                    file.origin,
                    checkpoint.line,
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
            check_contract(system, contract).map_err(|err| anyhow::anyhow!("{}:{}: checkpoint {}: {err}", file.origin, checkpoint.line, checkpoint.id))?;
        }
        for (service, variant) in checkpoint.broken.iter().flat_map(Broken::pairs) {
            system.def.check_variant(&service, &variant).map_err(|err| {
                anyhow::anyhow!("{}:{}: checkpoint {}: broken: {err}", file.origin, line_of(&file.text, checkpoint.line, "broken:"), checkpoint.id)
            })?;
        }
    }
    Ok(Checkpoints { list, experiments })
}

/// Parses a checkpoints file.
pub fn parse(file: &SystemFile) -> anyhow::Result<Vec<Checkpoint>> {
    let parsed: CheckpointsFile = serde_saphyr::from_str(&file.text).map_err(|err| anyhow::anyhow!("{}: {err}", file.origin))?;
    let list: Vec<Checkpoint> = parsed.checkpoints.into_iter().map(|s| Checkpoint { line: s.referenced.line(), ..s.value }).collect();
    let ids: Vec<u8> = list.iter().map(|c| c.id).collect();
    for (n, checkpoint) in list.iter().enumerate() {
        let at = format!("{}:{}: checkpoint {}", file.origin, checkpoint.line, checkpoint.id);
        let needs_phases = matches!(checkpoint.scored, Scored::Experiment(_) | Scored::Contrast(_));
        match (needs_phases, checkpoint.phases.is_empty()) {
            (true, true) => anyhow::bail!("{at}: expected `phases` (before, during, after) to read its evidence from"),
            (false, false) => anyhow::bail!("{at}: `phases` goes with `experiment` or `contrast` only"),
            _ => {}
        }
        anyhow::ensure!(!ids[..n].contains(&checkpoint.id), "{at} is listed twice");
        if let Some(broken) = &checkpoint.broken {
            check_broken(checkpoint, broken, &ids).map_err(|err| anyhow::anyhow!("{}:{}: checkpoint {}: broken: {err}", file.origin, line_of(&file.text, checkpoint.line, "broken:"), checkpoint.id))?;
        }
    }
    Ok(list)
}

/// A `broken:` entry is well formed: `SERVICE=VARIANT` variants, a reason,
/// `also` naming other checkpoints of the file, on a checkpoint that is scored.
fn check_broken(checkpoint: &Checkpoint, broken: &Broken, ids: &[u8]) -> Result<(), String> {
    if matches!(checkpoint.scored, Scored::NotYet(_) | Scored::NotApplicable(_)) {
        return Err("the checkpoint is not scored, so there is nothing to prove".into());
    }
    if broken.variants.is_empty() {
        return Err("expected at least one variant (SERVICE=VARIANT)".into());
    }
    for variant in &broken.variants {
        match variant.split_once('=') {
            Some((service, name)) if !service.trim().is_empty() && !name.trim().is_empty() => {}
            _ => return Err(format!("variant `{variant}`: expected SERVICE=VARIANT")),
        }
    }
    if broken.why.trim().is_empty() {
        return Err("expected `why`: what the broken system lacks".into());
    }
    for id in &broken.also {
        if *id == checkpoint.id || !ids.contains(id) {
            return Err(format!("also: {id} is not another checkpoint of this file"));
        }
    }
    Ok(())
}

/// The line of the first `key` at or after line `from` (1-based), for an
/// error inside a checkpoint; `from` itself when there is none.
fn line_of(text: &str, from: u64, key: &str) -> u64 {
    let start = from.saturating_sub(1) as usize;
    text.lines().enumerate().skip(start).find(|(_, line)| line.contains(key)).map(|(n, _)| n as u64 + 1).unwrap_or(from)
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
    fn a_broken_variant_is_parsed_and_a_malformed_one_names_file_and_line() {
        let good = "checkpoints:\n  - { id: 1, en: a, ko: b, not_yet: x }\n  - id: 4\n    en: a\n    ko: b\n    experiment: hang\n    phases: [during]\n    broken: { variants: [order=no-breaker], why: no breaker, also: [1] }\n";
        let list = parse(&file(good)).unwrap();
        let broken = list[1].broken.as_ref().unwrap();
        assert_eq!((broken.pairs(), broken.why.as_str(), broken.also.as_slice()), (vec![("order".to_string(), "no-breaker".to_string())], "no breaker", &[1u8][..]));
        assert_eq!((list[0].line, list[1].line), (2, 3), "each checkpoint knows its line");
        let bad = |from: &str, to: &str| parse(&file(&good.replace(from, to))).unwrap_err().to_string();
        let err = bad("order=no-breaker", "order-no-breaker");
        assert!(err.starts_with("my/checkpoints.yaml:8: checkpoint 4: broken: variant `order-no-breaker`: expected SERVICE=VARIANT"), "{err}");
        assert!(bad("why: no breaker", "why: ' '").contains(":8: checkpoint 4: broken: expected `why`"), "a reason is required");
        assert!(bad("also: [1]", "also: [4]").contains(":8: checkpoint 4: broken: also: 4 is not another checkpoint"));
        assert!(bad("also: [1]", "also: [9]").contains("also: 9 is not another checkpoint"));
        assert!(bad("[order=no-breaker]", "[]").contains("expected at least one variant"));
        let err = bad(", also: [1] }", ", colour: red }");
        assert!(err.contains("my/checkpoints.yaml:") && err.contains("unknown field `colour`"), "{err}");
        let not_scored = "checkpoints:\n  - id: 3\n    en: a\n    ko: b\n    not_yet: x\n    broken: { variants: [a=b], why: c }\n";
        assert!(parse(&file(not_scored)).unwrap_err().to_string().contains("my/checkpoints.yaml:6: checkpoint 3: broken: the checkpoint is not scored"));
    }

    #[test]
    fn the_shops_broken_variants_exist_and_a_subset_reads_its_own_experiments() {
        let shop = System::builtin("shop").unwrap();
        let checkpoints = load(&shop).unwrap();
        for (id, variants) in checkpoints.list.iter().filter_map(|c| Some((c.id, c.broken.as_ref()?.pairs()))) {
            for (service, variant) in variants {
                assert!(shop.def.check_variant(&service, &variant).is_ok(), "checkpoint {id}: {service}={variant}");
            }
        }
        assert!(checkpoints.list.iter().filter(|c| matches!(c.scored, Scored::NotYet(_))).all(|c| c.broken.is_none()));
        let only = checkpoints.only(&[1, 10]).unwrap();
        assert_eq!(only.list.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 10]);
        assert_eq!(only.experiments.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(), ["saga", "rolling-update", "rolling-update-without-readiness"]);
        assert!(checkpoints.only(&[14]).unwrap_err().to_string().contains("there is no checkpoint 14"));
    }

    #[test]
    fn not_applicable_needs_a_reason_and_no_phases() {
        let ok = parse(&file("checkpoints:\n  - { id: 9, en: a, ko: b, not_applicable: nothing autoscales here }\n")).unwrap();
        assert!(matches!(&ok[0].scored, Scored::NotApplicable(why) if why == "nothing autoscales here"));
        let err = parse(&file("checkpoints:\n  - { id: 9, en: a, ko: b, not_applicable: x, phases: [during] }\n")).unwrap_err().to_string();
        assert!(err.contains("`phases` goes with"), "{err}");
    }
}
