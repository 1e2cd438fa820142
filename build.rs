//! Embeds the built-in systems: every file of `scenarios/SYS/`, `chaos/SYS/`
//! and `contracts/SYS/` for each `SYS` with a `scenarios/SYS/system.yaml`,
//! as one generated table that `systems::catalog` reads. Adding a system or
//! an experiment is adding files; nothing here names one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The top-level folders a built-in system's files live in.
const PARTS: [&str; 3] = ["scenarios", "chaos", "contracts"];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for part in PARTS {
        // A directory: cargo rescans it, so new files are picked up too.
        println!("cargo::rerun-if-changed={part}");
    }
    let mut files = Vec::new();
    for system in systems(&root.join("scenarios")) {
        for part in PARTS {
            files.extend(flat_files(&root.join(part).join(&system)).into_iter().map(|path| (format!("{part}/{system}/{}", name(&path)), path)));
        }
    }
    files.sort();
    let mut out = String::from("/// Every file of the built-in systems, as (path from the repository root, text).\npub static FILES: &[(&str, &str)] = &[\n");
    for (relative, _) in &files {
        // Relative to the crate being compiled, not to where this script
        // last ran: a target dir shared by clones at other paths (CI's
        // cache) must never embed another checkout's files.
        let _ = writeln!(out, "    ({relative:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/\", {relative:?}))),");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin_files.rs");
    std::fs::write(dest, out).expect("write the built-in file table");
}

/// Names of the folders of `scenarios/` that hold a `system.yaml`.
fn systems(scenarios: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(scenarios) else { return Vec::new() };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("system.yaml").is_file()).map(|p| name(&p)).collect();
    names.sort();
    names
}

/// The text files directly in `dir` (a system's folders are flat).
fn flat_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let text = |p: &Path| p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json" | "urls"));
    entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file() && text(p)).collect()
}

fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
