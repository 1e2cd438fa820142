//! The kill switch: a running experiment leaves its pid in its folder, and
//! [`abort`] sends it SIGTERM — the run then rolls back and ends as aborted
//! — and waits for its journal to say how the rollback went.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::journal::Journal;
use crate::platform::local::pid_alive;
use crate::process::Identity;

const PID: &str = "pid";

/// How long `abort` waits for the run's rollback (its patience is 90 s).
const ABORT_PATIENCE: Duration = Duration::from_secs(150);

/// The running harness's pid in its run folder, removed when the run ends.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes who this process is (pid, start time, executable) into run
    /// folder `dir`.
    pub fn write(dir: &Path) -> anyhow::Result<PidFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(PID);
        std::fs::write(&path, serde_json::to_vec(&Identity::current())?)?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stops the run in `run` (its folder or journal; default: the newest
/// running one under `reports`) and returns its journal once the run has
/// ended — or `ABORT_PATIENCE` has passed.
pub async fn abort(run: Option<&Path>, reports: &Path, progress: &dyn Fn(&str)) -> anyhow::Result<Journal> {
    let dir = match run {
        Some(path) if path.is_file() => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        Some(path) => path.to_path_buf(),
        None => newest_running(reports)?,
    };
    let pid_path = dir.join(PID);
    let identity = read_identity(&pid_path).ok_or_else(|| anyhow::anyhow!("no running experiment in {} (no readable {PID} file)", dir.display()))?;
    let pid = identity.pid;
    anyhow::ensure!(pid_alive(pid), "the experiment in {} is not running (pid {pid} has exited)", dir.display());
    // A pid file left by a harness that died may name a reused pid.
    crate::process::signal_verified(&identity, nix::sys::signal::Signal::SIGTERM)
        .map_err(|why| anyhow::anyhow!("the experiment in {} is not running: {why}; nothing was signalled", dir.display()))?;
    progress(&format!("sent SIGTERM to the experiment (pid {pid}); waiting for its rollback"));
    let deadline = Instant::now() + ABORT_PATIENCE;
    while pid_alive(pid) && pid_path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Journal::read(&dir.join("journal.json"))
}

/// The newest run folder under `reports` whose harness is alive.
fn newest_running(reports: &Path) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(reports)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", reports.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| read_identity(&p.join(PID)).is_some_and(|id| id.verify().is_ok()))
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| anyhow::anyhow!("no running experiment under {}", reports.display()))
}

/// The harness a pid file names (a file without a start time names none).
fn read_identity(path: &Path) -> Option<Identity> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
