//! A stormproof child process: a service replica, the embedded broker or a
//! provider under verification, started by this binary and stopped the way
//! the kubelet stops a container. Both sides of the protocol live here: the
//! child announces the address it listens on ([`announce`]) and ends on
//! SIGTERM ([`terminated`]); the parent starts it so that it dies with the
//! parent ([`command`]), learns its address ([`watch_stdout`]) and stops it
//! with SIGTERM, a grace period, then SIGKILL ([`stop`]). A user's own
//! service announces nothing: it is given a port ([`free_port`]) and is
//! started once it listens there ([`listening`]); it leads its own process
//! group, which is killed whole ([`stop_group`]), as a container's
//! processes end with it.

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

/// Set once SIGINT or SIGTERM reached this process while a
/// [`watch_stop`] listened. Once tokio handles a signal, the process no
/// longer dies of it: a long command (a scorecard of many experiments) reads
/// this to stop starting new work when its user asked it to stop.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Listens on the current runtime until SIGINT or SIGTERM, then sets the
/// stop flag; stops listening when dropped.
pub fn watch_stop() -> StopWatch {
    StopWatch(tokio::spawn(async {
        terminated().await;
        STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }))
}

/// A [`watch_stop`] listener.
pub struct StopWatch(tokio::task::JoinHandle<()>);

impl Drop for StopWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether SIGINT or SIGTERM asked this process to stop (see [`watch_stop`]).
pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
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
            // tokio's File hands writes to a blocking thread; the flush
            // waits for it, so a line is in the log before the next is read.
            if let Some(file) = file.as_mut() {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                let _ = file.flush().await;
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

/// Stops `child`, the leader of its own process group (started with
/// `process_group(0)`), as a container is stopped: SIGTERM to the leader,
/// up to `grace` for it to end, then SIGKILL to the whole group; whatever
/// it left behind in its group is killed too. False if it had to be killed.
pub async fn stop_group(child: &mut Child, grace: Duration) -> bool {
    let Some(pid) = child.id() else { return true };
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    let ended = tokio::time::timeout(grace, child.wait()).await.is_ok();
    if !ended {
        // Not reaped yet, so the group's id is still this child's (and a
        // child that leads no group gets ESRCH here, then SIGKILL below).
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    kill_leftovers(pid);
    ended
}

/// Kills `child` and its process group now (a deleted pod).
pub async fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Kills what is left in process group `pgid` after its leader ended. A
/// group id is not reused while any process is in the group, so a process
/// found in it is one the leader started.
fn kill_leftovers(pgid: u32) {
    if !group_members(pgid).is_empty() {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
    }
}

/// Live processes in process group `pgid` (from `/proc/PID/stat`).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // After the command name: state, ppid, pgrp.
            let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            fields.first().is_some_and(|state| !matches!(*state, "Z" | "X")) && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

/// Resolves once something accepts TCP connections at `addr` (a child
/// that was given its port is listening).
pub async fn listening(addr: SocketAddr) {
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free loopback port for a child that needs its address up front (the
/// broker, a user's service told `${PORT}`). It is picked below the
/// kernel's ephemeral range: a port from that range, once released, can be
/// handed to any `bind(:0)` or outgoing connection before the child binds it.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let floor = 10000.min(low.saturating_sub(1000));
    for _ in 0..200 {
        let port = floor + fastrand::u16(0..low.saturating_sub(floor).max(1));
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?);
        }
    }
    anyhow::bail!("no free port below {low}")
}

/// The last `n` lines of a log file, joined with ` | ` (for error messages).
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Who a pid was when a process was started: its start time (clock ticks
/// since boot, `/proc/PID/stat` field 22) and its executable. A pid is
/// reused once its process ends, so a pid read back from a file names the
/// same process only if both still match — signalling it otherwise would
/// hit whatever unrelated process got the number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// `/proc/PID/exe`, where it can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<PathBuf>,
}

impl Identity {
    /// The identity of live process `pid`, if it exists.
    pub fn of(pid: u32) -> Option<Identity> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Identity { pid, start_time: start_time(&stat)?, exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok() })
    }

    /// This process.
    pub fn current() -> Identity {
        let pid = std::process::id();
        Identity::of(pid).unwrap_or(Identity { pid, start_time: 0, exe: std::env::current_exe().ok() })
    }

    /// Whether the pid still names this process; otherwise why not.
    pub fn verify(&self) -> Result<(), String> {
        let Some(now) = Identity::of(self.pid) else { return Err(format!("pid {} has exited", self.pid)) };
        if now.start_time != self.start_time {
            return Err(format!("pid {} now belongs to another process ({}, started at tick {} instead of {})", self.pid, now.describe(), now.start_time, self.start_time));
        }
        // The exe is compared only when both were readable (another user's
        // process hides its link).
        if let (Some(was), Some(is)) = (&self.exe, &now.exe)
            && strip_deleted(was) != strip_deleted(is)
        {
            return Err(format!("pid {} now runs {} instead of {}", self.pid, is.display(), was.display()));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.exe.as_ref().map_or_else(|| "exe unknown".into(), |e| e.display().to_string())
    }
}

/// A rebuilt binary shows as `PATH (deleted)` in `/proc/PID/exe`.
fn strip_deleted(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_suffix(" (deleted)").map(str::to_string).unwrap_or(text)
}

/// Field 22 of `/proc/PID/stat` (`starttime`), counted after the
/// parenthesised command name, which may itself hold spaces and parentheses.
fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state): field 22 is the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Sends `signal` to `identity`'s process only if the pid still names it.
pub fn signal_verified(identity: &Identity, signal: Signal) -> Result<(), String> {
    identity.verify()?;
    kill(Pid::from_raw(identity.pid as i32), signal).map_err(|err| format!("cannot signal pid {}: {err}", identity.pid))
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

    #[test]
    fn an_identity_matches_its_own_process_and_not_another_started_later() {
        let me = Identity::current();
        assert!(me.start_time > 0, "{me:?}");
        assert_eq!(me.verify(), Ok(()));
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let other = Identity::of(child.id()).unwrap();
        // A stale record: this process's start time, the child's pid.
        let stale = Identity { pid: child.id(), ..me.clone() };
        assert!(stale.verify().is_err(), "a pid now naming another process does not verify");
        assert!(signal_verified(&stale, Signal::SIGKILL).is_err());
        assert!(Identity::of(child.id()).is_some(), "the unrelated process was not signalled");
        assert_eq!(other.verify(), Ok(()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(other.verify().unwrap_err().contains("exited"));
    }

    #[test]
    fn start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
    }
}
