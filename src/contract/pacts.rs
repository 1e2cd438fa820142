//! Pact files on disk: finding the ones that name a provider. A pact file is
//! JSON with `consumer.name`, `provider.name` and `interactions`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// One pact file, read.
#[derive(Debug, Clone)]
pub struct PactFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The consumer's name.
    pub consumer: String,
    /// The provider's name.
    pub provider: String,
    /// The whole document.
    pub body: Value,
}

impl PactFile {
    /// Reads and checks one pact file.
    pub fn read(path: &Path) -> anyhow::Result<PactFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read pact {}", path.display()))?;
        let body: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let name = |part: &str| body[part]["name"].as_str().map(str::to_string);
        let (Some(consumer), Some(provider)) = (name("consumer"), name("provider")) else {
            anyhow::bail!("{} is not a pact file (no consumer.name / provider.name)", path.display());
        };
        Ok(PactFile { path: path.to_path_buf(), consumer, provider, body })
    }

    /// Number of interactions (messages included).
    pub fn interactions(&self) -> usize {
        self.body["interactions"].as_array().map_or(0, Vec::len) + self.body["messages"].as_array().map_or(0, Vec::len)
    }
}

/// The pact files at `path` (a file, or the `*.json` files of a directory),
/// sorted by name.
pub fn find(path: &Path) -> anyhow::Result<Vec<PactFile>> {
    if path.is_file() {
        return Ok(vec![PactFile::read(path)?]);
    }
    let entries = std::fs::read_dir(path).with_context(|| format!("cannot read pact directory {}", path.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| PactFile::read(p)).collect()
}

/// The pact files at `path` that name `provider`; an error when there are
/// none (as `pact_verifier_cli`: nothing verified is not a pass).
pub fn for_provider(path: &Path, provider: &str) -> anyhow::Result<Vec<PactFile>> {
    let all = find(path)?;
    let mine: Vec<PactFile> = all.iter().filter(|p| p.provider == provider).cloned().collect();
    if mine.is_empty() {
        let names: Vec<String> = all.iter().map(|p| format!("{} → {}", p.consumer, p.provider)).collect();
        anyhow::bail!("no pacts found for provider {provider} in {} (found: {})", path.display(), if names.is_empty() { "none".into() } else { names.join(", ") });
    }
    Ok(mine)
}
