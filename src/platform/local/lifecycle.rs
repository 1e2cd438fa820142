//! Bringing a system up in the background and down again, as the engines
//! that start a system for a run (`check`, `chaos run`) need it: `up
//! --detach` in a child process, and `down` — a shutdown through the
//! control API, then SIGKILL for anything left, so nothing stays behind.

use std::path::Path;
use std::time::{Duration, Instant};

use super::control::ControlClient;
use super::runstate::{RunState, pid_alive};
use crate::platform::{Platform, ServiceStatus};

/// `up` flags for a system started for a run: a short autoscaler sync
/// period and scale-down window, so that an autoscaling experiment takes a
/// minute, not six (Kubernetes: 15 s, 300 s).
pub const QUICK_AUTOSCALER: [&str; 4] = ["--hpa-sync-period", "2s", "--hpa-downscale-stabilization", "15s"];

/// Starts system `reference` (a built-in's name or a folder) in the
/// background in `run_dir`, with `extra` arguments for `up`; returns once
/// every replica is ready.
pub fn start_detached(reference: &str, run_dir: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["up", reference, "--detach", "--port", "0"])
        .args(extra)
        .env("STORMPROOF_RUN_DIR", run_dir)
        .output()?;
    anyhow::ensure!(out.status.success(), "could not start {reference}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// What `down` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// No system was up in the run directory.
    NothingUp,
    /// Its state file was left by a platform that had already ended.
    AlreadyStopped(String),
    /// Stopped; `forced` processes had to be SIGKILLed.
    Stopped {
        /// The system.
        system: String,
        /// Processes still alive after the shutdown, then killed.
        forced: usize,
        /// What the platform had to do to processes that did not behave
        /// (a service that ignored SIGTERM), each naming the service.
        notices: Vec<String>,
    },
}

/// Stops the system running in `run_dir`, leaving no process behind.
pub async fn down(run_dir: &Path) -> anyhow::Result<Stopped> {
    let Ok(state) = RunState::read(run_dir) else { return Ok(Stopped::NothingUp) };
    if !state.is_alive() {
        let _ = std::fs::remove_file(RunState::path(run_dir));
        return Ok(Stopped::AlreadyStopped(state.system));
    }
    let client = ControlClient::new(&state);
    let pids: Vec<u32> = client.services().await.map(|s| all_pids(&s)).unwrap_or_default();
    let notices = super::up::notices_path(run_dir);
    let _ = std::fs::remove_file(&notices);
    let _ = client.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while state.is_alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Last resort: nothing may be left behind.
    let mut forced = 0;
    for pid in std::iter::once(state.pid).chain(pids.iter().copied()) {
        if pid_alive(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            forced += 1;
        }
    }
    // A replica leads its own process group: what it started goes with it.
    for pid in pids {
        let members = crate::process::group_members(pid);
        if !members.is_empty() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            forced += members.len();
        }
    }
    let notices = std::fs::read(&notices).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    let _ = std::fs::remove_file(RunState::path(run_dir));
    Ok(Stopped::Stopped { system: state.system, forced, notices })
}

fn all_pids(services: &[ServiceStatus]) -> Vec<u32> {
    services.iter().flat_map(|s| s.replicas.iter().filter_map(|r| r.pid)).collect()
}
