//! Writes every report of a run into a folder: `report.json`, `junit.xml`,
//! `summary.md` and `report.html`.

use std::path::{Path, PathBuf};

use crate::load::{LoadSummary, ThresholdResult};

/// Writes the four reports into `dir` (created if needed) and returns their paths.
pub fn write_reports(
    dir: &Path,
    title: &str,
    s: &LoadSummary,
    results: &[ThresholdResult],
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&super::json_value(s, results)).map_err(std::io::Error::other)?;
    let files = [
        ("report.json", json),
        ("junit.xml", super::junit_xml(title, s, results)),
        ("summary.md", super::markdown_summary(title, s, results)),
        ("report.html", super::html_report(title, s, results)),
    ];
    let mut paths = Vec::new();
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::write(&p, content)?;
        paths.push(p);
    }
    Ok(paths)
}
