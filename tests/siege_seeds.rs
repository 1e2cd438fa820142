//! Every siege command line of the course's seeds runs as written: the host
//! is replaced by a local target and `-t` shortened, nothing else changes.

mod common_siege;

use std::path::{Path, PathBuf};

use common_siege::{Behavior, siege, start};
use stormproof::exit::PASSED;

const FIXTURE: &str = "tests/fixtures/seed-siege-lines.txt";

/// `(file:line, command line)` pairs of the fixture.
fn fixture_lines() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).expect("fixture");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (place, line) = l.split_once('\t').expect("file:line TAB command");
            (place.to_string(), line.to_string())
        })
        .collect()
}

/// The siege command lines a seed file holds: a line's backticked spans, or
/// the line after a shell prompt (`root@siege:/# `), that start `siege -`.
fn siege_lines_of(path: &Path) -> Vec<(String, String)> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("seed file");
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let spans: Vec<&str> = if line.contains('`') {
            line.split('`').skip(1).step_by(2).collect()
        } else {
            vec![line.split_once("# ").map_or(line, |(_, rest)| rest)]
        };
        for span in spans.into_iter().map(str::trim).filter(|s| s.starts_with("siege -")) {
            found.push((format!("{name}:{}", n + 1), span.to_string()));
        }
    }
    found
}

/// `argv` with every URL's host:port replaced by `addr` and `-t` shortened:
/// to 2 s, or to 20 s when `-r` is given too (the reps, against a fast local
/// target, must still be the limit that comes first).
fn localized(argv: Vec<String>, addr: &str) -> Vec<String> {
    let time = if argv.iter().any(|a| a.starts_with("-r")) { "-t20S" } else { "-t2S" };
    argv.into_iter()
        .map(|arg| match arg.find("http://") {
            Some(at) => {
                let rest = &arg[at + "http://".len()..];
                let path_at = rest.find('/').unwrap_or(rest.len());
                format!("{}http://{addr}{}", &arg[..at], &rest[path_at..])
            }
            None if arg.starts_with("-t") => time.to_string(),
            None => arg,
        })
        .collect()
}

fn transactions(stdout: &str) -> u64 {
    let line = stdout.lines().find(|l| l.starts_with("Transactions:")).expect("a Transactions: line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_siege_line_runs_as_written() {
    let lines = fixture_lines();
    assert!(lines.len() >= 7, "the fixture holds the course's siege lines");
    let server = start(Behavior::Script(vec![])).await;
    let addr = server.addr.to_string();
    for (place, line) in lines {
        let argv = shlex::split(&line).unwrap_or_else(|| panic!("{place}: not a shell line: {line}"));
        assert_eq!(argv[0], "siege");
        let args = localized(argv[1..].to_vec(), &addr);
        let output = siege(args).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(PASSED), "{place}: {line}\n{stderr}");
        let count = transactions(&stdout);
        assert!(count > 0, "{place}: no transactions\n{stdout}");
        // With -r and -t, the first limit wins: a fast target makes the reps first.
        if let (Some(c), Some(r)) = (flag(&line, "-c"), flag(&line, "-r")) {
            assert_eq!(count, c * r, "{place}: -c{c} -r{r} sends exactly c × r requests before -t ends");
        }
        // -v prints a line per request.
        assert!(stdout.lines().any(|l| l.starts_with("HTTP/1.1 200")), "{place}: -v prints the requests\n{stdout}");
    }
}

/// The number after a short flag written as `-c100`.
fn flag(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name)?.parse().ok())
}

#[test]
fn the_fixture_holds_every_siege_line_of_the_seeds() {
    let seeds: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds");
    let Ok(dir) = std::fs::read_dir(&seeds) else {
        println!("skipped: the course's seeds folder {} is not here; the fixture is checked by the other test only", seeds.display());
        return;
    };
    let mut files: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_file()).collect();
    files.sort();
    let found: Vec<(String, String)> = files.iter().flat_map(|f| siege_lines_of(f)).collect();
    assert!(!found.is_empty(), "the seeds hold siege lines");
    assert_eq!(found, fixture_lines(), "{FIXTURE} must list every siege line of {}", seeds.display());
}
