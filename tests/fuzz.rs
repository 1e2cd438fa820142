//! Fuzz targets for every parser a user feeds: URL files, thresholds,
//! experiments, system definitions. Any input must give a value or an input
//! error naming the file (and line, where the format has lines) — never a
//! panic, never a hang.
//!
//! A property-test crate (arbtest) drives them: cargo-fuzz needs a nightly
//! toolchain, which this machine cannot fetch. Inputs are the shipped files
//! mutated (tokens of each format inserted, lines duplicated, cut, spliced),
//! plus raw random text. `cargo test` runs each target for
//! `STORMPROOF_FUZZ_SECONDS` (default 2 s); `benches/fuzz.sh` runs them
//! longer and prints executions and findings. A failure prints arbtest's
//! seed; the input it found goes into `regressions_stay_fixed` below.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arbtest::arbitrary::{Result, Unstructured};
use stormproof::chaos::parse_experiment;
use stormproof::load::{Threshold, parse_url_source};
use stormproof::systems::definition::SystemDef;

/// No input of a few KB may take this long to parse: a hang, not a timing goal.
const HANG: Duration = Duration::from_secs(5);

fn budget() -> Duration {
    let seconds = std::env::var("STORMPROOF_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

fn shipped(files: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    files.iter().map(|f| std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))).collect()
}

fn shipped_dir(dir: &str, ext: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read_to_string(p).expect("shipped file")).collect()
}

/// A shipped file (or nothing) with a few mutations, as text.
fn mutated(u: &mut Unstructured<'_>, seeds: &[String], tokens: &[&str]) -> Result<String> {
    let mut text: Vec<u8> = if u.ratio(1, 8)? { Vec::new() } else { u.choose(seeds)?.as_bytes().to_vec() };
    for _ in 0..u.int_in_range(0..=8)? {
        let at = if text.is_empty() { 0 } else { u.choose_index(text.len() + 1)? };
        match u.int_in_range(0..=6)? {
            0 => text.splice(at..at, u.choose(tokens)?.bytes()).for_each(drop),
            1 => {
                let end = (at + u.int_in_range(0..=64)?).min(text.len());
                text.drain(at..end);
            }
            2 => text.truncate(at),
            3 => {
                let raw: &[u8] = u.arbitrary()?;
                text.splice(at..at, raw.iter().copied()).for_each(drop);
            }
            4 => duplicate_line(&mut text, at),
            5 => {
                let other = u.choose(seeds)?.as_bytes();
                let from = u.choose_index(other.len().max(1))?.min(other.len());
                text.splice(at..at, other[from..].iter().copied()).for_each(drop);
            }
            _ => {
                let c: char = u.arbitrary()?;
                let mut buf = [0u8; 4];
                text.splice(at..at, c.encode_utf8(&mut buf).bytes()).for_each(drop);
            }
        }
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

fn duplicate_line(text: &mut Vec<u8>, at: usize) {
    let start = text[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = text[at..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| at + i + 1);
    let line = text[start..end].to_vec();
    text.splice(start..start, line).for_each(drop);
}

/// Runs `target` on inputs from `input` for the budget, failing on a panic
/// (arbtest prints the seed) or a hang; prints executions and findings.
fn fuzz(name: &str, mut input: impl FnMut(&mut Unstructured<'_>) -> Result<String>, target: impl Fn(&str)) {
    let executions = AtomicU64::new(0);
    let started = Instant::now();
    arbtest::arbtest(|u| {
        let text = input(u)?;
        let began = Instant::now();
        target(&text);
        let took = began.elapsed();
        assert!(took < HANG, "{name}: an input of {} bytes took {took:?} (a hang):\n{text}", text.len());
        executions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
    .size_max(16 * 1024)
    .budget(budget())
    .run();
    println!("fuzz {name}: {} executions in {:.1} s, 0 findings", executions.load(Ordering::Relaxed), started.elapsed().as_secs_f64());
}

const URL_TOKENS: &[&str] = &[
    "$(", "${", ")", "}", "$(BASE)", "${BASE}", "=", "BASE=http://127.0.0.1:1", "A=$(A)$(A)", "\n", " POST ", " PUT ",
    " DELETE ", " <", "<body.json", "http://", "https://", ":99999", ":0", "[::1]", "@", "#", "?", "%", "\t", " {\"a\":1}",
    "\r\n", "\u{0}", "é",
];

fn url_file(text: &str) {
    let dir = std::env::temp_dir();
    match parse_url_source(text, "fuzz.urls", &dir) {
        Ok(targets) => assert!(!targets.is_empty(), "Ok with no targets"),
        Err(err) => {
            assert_eq!(err.file, "fuzz.urls");
            assert!(err.line <= text.lines().count().max(1), "line {} of {} lines: {}", err.line, text.lines().count(), err.message);
            assert!(!err.message.is_empty());
        }
    }
}

#[test]
fn url_files() {
    let seeds = shipped_dir("scenarios/shop", "urls");
    fuzz("url-file", |u| mutated(u, &seeds, URL_TOKENS), url_file);
}

const THRESHOLD_SEEDS: &[&str] = &[
    "availability>=99.9%", "p95<500ms", "rps>=200", "error-rate<1%", "p99.9<=2s", "p95{POST /orders}<300ms", "failures==0",
    "transactions>=1000", "mean<20us", "max<1m", "transaction-rate>5/s",
];
const THRESHOLD_TOKENS: &[&str] = &[
    "<", "<=", ">", ">=", "==", "!=", "%", "ms", "us", "s", "m", "{", "}", "{GET /}", "p", "p100", "p0", ".", "-", "e308",
    "NaN", "inf", "99999999999999999999", " ",
];

fn threshold(text: &str) {
    match text.parse::<Threshold>() {
        // What parses prints back to something that parses the same way.
        Ok(t) => assert_eq!(t.to_string().parse::<Threshold>().map(|b| b.to_string()), Ok(t.to_string()), "{text}"),
        Err(message) => assert!(!message.is_empty()),
    }
}

#[test]
fn thresholds() {
    let seeds: Vec<String> = THRESHOLD_SEEDS.iter().map(|s| s.to_string()).collect();
    fuzz("threshold", |u| mutated(u, &seeds, THRESHOLD_TOKENS), threshold);
}

const YAML_TOKENS: &[&str] = &[
    "\n", "  ", "- ", ": ", "{", "}", "[", "]", "&a ", "*a", "<<: *a", "!!str ", "!!binary ", "---\n", "...\n", "|\n", ">\n",
    "? ", "'", "\"", "#", "~", "null", "true", "-1", "1e999", "18446744073709551616", "0x", ".inf", "%YAML 1.2\n",
    "replicas: ", "service: ", "scale: ", "probe: ", "expect: ", "min_availability: ", "duration: ", "rate: ",
];

fn yaml_error(origin: &str, err: &anyhow::Error) {
    let message = format!("{err:#}");
    assert!(message.starts_with(&format!("{origin}:")), "an error must name the file: {message}");
}

fn experiment(text: &str) {
    if let Err(err) = parse_experiment(text, "fuzz-experiment.yaml") {
        yaml_error("fuzz-experiment.yaml", &err);
    }
}

#[test]
fn experiments() {
    let seeds = shipped_dir("chaos/shop", "yaml");
    fuzz("experiment", |u| mutated(u, &seeds, YAML_TOKENS), experiment);
}

fn system(text: &str) {
    if let Err(err) = SystemDef::parse(text, "fuzz-system.yaml") {
        yaml_error("fuzz-system.yaml", &err);
    }
}

#[test]
fn system_definitions() {
    let seeds = shipped(&["scenarios/shop/system.yaml", "scenarios/examples/pyshop/system.yaml"]);
    fuzz("system-definition", |u| mutated(u, &seeds, YAML_TOKENS), system);
}

/// Inputs the fuzzers found, kept as regression tests.
#[test]
fn regressions_stay_fixed() {
    // Each doubling line would double the expansion: 2^40 bytes without a bound.
    let mut bomb = String::from("A=xxxxxxxxxxxxxxxx\n");
    for _ in 0..40 {
        bomb.push_str("A=$(A)$(A)\n");
    }
    bomb.push_str("http://127.0.0.1/$(A)\n");
    let err = parse_url_source(&bomb, "bomb.urls", Path::new("/tmp")).expect_err("refused");
    assert!(err.message.contains("longer than"), "{}", err.message);
    url_file(&bomb);
    // Found by `url_files`: a URL starting with a multi-byte character
    // panicked slicing for `http://` (src/load/plan.rs, strip_prefix_ci).
    url_file("\u{FFFD}\u{7E93B}\u{FFFD}/x\n");
    url_file("éééé\n");
}
