//! A stormproof child process: a service replica, the embedded broker or a
//! provider under verification, started by this binary and stopped the way
//! the kubelet stops a container. Both sides of the protocol live here: the
//! child announces the address it listens on ([`announce`]) and ends on
//! SIGTERM ([`terminated`]); the parent starts it so that it dies with the
//! parent ([`command`]), learns its address ([`watch_stdout`]) and stops it
//! with SIGTERM, a grace period, then SIGKILL ([`stop`]).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// The line a child prints on stdout once it listens: this prefix, then
/// `host:port`.
pub const LISTENING: &str = "STORMPROOF_LISTENING=";

/// Prints the announcement of `addr` (the child's side).
pub fn announce(addr: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{LISTENING}{addr}");
    let _ = stdout.flush();
}

/// Resolves on the first SIGTERM or SIGINT (the child's side).
pub async fn terminated() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A command running `exe` as a child: no stdin, stdout piped (for the
/// announcement), stderr to `log`, killed when dropped — and by the kernel
/// when this process dies without cleaning up (SIGKILL, a panic).
pub fn command(exe: &Path, log: std::fs::File) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log)).kill_on_drop(true);
    // SAFETY: set_pdeathsig is async-signal-safe (one prctl call).
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    command
}

/// Reads the child's stdout until it closes: every line appended to `log`
/// (when given), the first announced address sent on the returned channel.
/// The channel closes without an address when the child exits first. Reading
/// to the end also keeps the child from blocking on a full pipe.
pub fn watch_stdout(stdout: ChildStdout, log: Option<PathBuf>) -> oneshot::Receiver<SocketAddr> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut announce = Some(tx);
        let mut lines = BufReader::new(stdout).lines();
        let mut file = match log {
            Some(log) => tokio::fs::OpenOptions::new().create(true).append(true).open(log).await.ok(),
            None => None,
        };
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix(LISTENING).and_then(|a| a.trim().parse().ok())
                && let Some(tx) = announce.take()
            {
                let _ = tx.send(addr);
            }
            if let Some(file) = file.as_mut() {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
        }
    });
    rx
}

/// SIGTERM, wait up to `grace`, then SIGKILL. False if it had to be killed.
pub async fn stop(child: &mut Child, grace: Duration) -> bool {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return true;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    false
}

/// The last `n` lines of a log file, joined with ` | ` (for error messages).
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_announced_address_is_read_and_the_rest_is_logged() {
        let dir = std::env::temp_dir().join(format!("stormproof-process-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("child.log");
        let mut command = command(Path::new("/bin/sh"), std::fs::File::create(dir.join("stderr.log")).unwrap());
        command.args(["-c", &format!("echo starting; echo {LISTENING}127.0.0.1:4567; exec sleep 30")]);
        let mut child = command.spawn().unwrap();
        let announced = watch_stdout(child.stdout.take().unwrap(), Some(log.clone()));
        assert_eq!(announced.await.unwrap(), "127.0.0.1:4567".parse::<SocketAddr>().unwrap());
        assert!(stop(&mut child, Duration::from_secs(5)).await, "sh ends on SIGTERM within the grace period");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.starts_with("starting\n"), "{logged}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_child_that_exits_without_announcing_closes_the_channel() {
        let mut command = command(Path::new("/bin/sh"), std::fs::File::create("/dev/null").unwrap());
        command.args(["-c", "echo no address"]);
        let mut child = command.spawn().unwrap();
        assert!(watch_stdout(child.stdout.take().unwrap(), None).await.is_err());
        let _ = child.wait().await;
    }
}
