//! Bringing a system up in the background and down again, as the engines
//! that start a system for a run (`check`, `chaos run`) need it: `up
//! --detach` in a child process, and `down` — a shutdown through the
//! control API, then SIGKILL for anything left, so nothing stays behind.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::control::ControlClient;
use super::runstate::{RunState, pid_alive};
use crate::platform::{Platform, ServiceStatus};
use crate::process::Identity;

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
    /// The state file was stale: its pid now names another process, which
    /// was left alone (and the file removed).
    Stale {
        /// The system the file was for.
        system: String,
        /// The pid it named.
        pid: u32,
        /// Why it is not the `up` that wrote the file.
        reason: String,
    },
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

/// Stops the system running in `run_dir`, leaving no process behind. A
/// pid is signalled only while it still names the process that was
/// started: a stale state file never gets an unrelated process killed.
pub async fn down(run_dir: &Path) -> anyhow::Result<Stopped> {
    let Ok(state) = RunState::read(run_dir) else { return Ok(Stopped::NothingUp) };
    if !pid_alive(state.pid) {
        let _ = std::fs::remove_file(RunState::path(run_dir));
        return Ok(Stopped::AlreadyStopped(state.system));
    }
    // Before anything is sent: a state file whose pid was reused names no
    // system of ours, whatever its control address answers.
    if let Err(reason) = state.verify_up() {
        let _ = std::fs::remove_file(RunState::path(run_dir));
        return Ok(Stopped::Stale { system: state.system, pid: state.pid, reason });
    }
    let client = ControlClient::new(&state);
    // Who each replica is now, while `up` vouches for its pid.
    let replicas: Vec<Identity> = client.services().await.map(|s| all_pids(&s)).unwrap_or_default().into_iter().filter_map(Identity::of).collect();
    let notices = super::up::notices_path(run_dir);
    let _ = std::fs::remove_file(&notices);
    let _ = client.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while state.is_alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Last resort: nothing may be left behind — but only what we started.
    let mut forced = 0;
    let mut skipped = Vec::new();
    for identity in state.process.iter().chain(replicas.iter()) {
        match identity.verify() {
            Ok(()) if crate::process::signal_verified(identity, Signal::SIGKILL).is_ok() => forced += 1,
            Ok(()) => {}
            Err(why) if pid_alive(identity.pid) => skipped.push(format!("not signalled: {why}")),
            Err(_) => {}
        }
    }
    // A replica leads its own process group: what it started goes with it.
    // The group is ours only while its leader is, or has ended (a group id
    // is not reused while any member lives).
    for identity in &replicas {
        let members = crate::process::group_members(identity.pid);
        if members.is_empty() || (pid_alive(identity.pid) && identity.verify().is_err()) {
            continue;
        }
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(identity.pid as i32), Signal::SIGKILL);
        forced += members.len();
    }
    let mut notices: Vec<String> = std::fs::read(&notices).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    notices.extend(skipped);
    let _ = std::fs::remove_file(RunState::path(run_dir));
    Ok(Stopped::Stopped { system: state.system, forced, notices })
}

fn all_pids(services: &[ServiceStatus]) -> Vec<u32> {
    services.iter().flat_map(|s| s.replicas.iter().filter_map(|r| r.pid)).collect()
}
