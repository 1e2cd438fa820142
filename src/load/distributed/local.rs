//! Local workers: N child processes of this binary on this host, each
//! running `stormproof siege worker --coordinator URL --index I`. They die
//! with the coordinator (a parent-death signal) and are killed on cleanup.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DistributedError, Launched, Launcher, WorkerExit};

/// Starts workers as child processes of `exe`.
pub struct LocalWorkers {
    exe: PathBuf,
    /// Workers print each request (`-v`) on this process's stdout.
    verbose: bool,
    stop: CancellationToken,
    waiters: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalWorkers {
    /// Workers run `exe` (normally `std::env::current_exe()`); `verbose`
    /// ones print each request on this process's stdout.
    pub fn new(exe: PathBuf, verbose: bool) -> LocalWorkers {
        LocalWorkers { exe, verbose, stop: CancellationToken::new(), waiters: Vec::new() }
    }
}

#[async_trait::async_trait]
impl Launcher for LocalWorkers {
    async fn launch(&mut self, coordinator: &str, workers: usize) -> Result<Launched, DistributedError> {
        let (tx, exits) = mpsc::unbounded_channel();
        let mut names = Vec::with_capacity(workers);
        for worker in 0..workers {
            let mut command = tokio::process::Command::new(&self.exe);
            command
                .args(["siege", "worker", "--coordinator", coordinator, "--index", &worker.to_string()])
                .args(self.verbose.then_some("--verbose"))
                .stdin(Stdio::null())
                .stdout(if self.verbose { Stdio::inherit() } else { Stdio::null() })
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            // SAFETY: set_pdeathsig is async-signal-safe (one prctl call).
            unsafe {
                command.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
            let mut child = command
                .spawn()
                .map_err(|e| DistributedError::Launch(format!("cannot start worker {worker} ({}): {e}", self.exe.display())))?;
            names.push(format!("pid {}", child.id().unwrap_or(0)));
            let (tx, stop) = (tx.clone(), self.stop.clone());
            self.waiters.push(tokio::spawn(async move {
                tokio::select! {
                    status = child.wait() => {
                        let how = match status {
                            Ok(s) => describe_exit(s),
                            Err(e) => format!("could not be waited for: {e}"),
                        };
                        let _ = tx.send(WorkerExit { worker, how });
                    }
                    _ = stop.cancelled() => {
                        let _ = child.kill().await;
                    }
                }
            }));
        }
        Ok(Launched { names, exits })
    }

    async fn cleanup(&mut self) -> Result<(), DistributedError> {
        self.stop.cancel();
        for w in self.waiters.drain(..) {
            let _ = w.await;
        }
        Ok(())
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => {
            let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| sig.to_string());
            format!("was killed by {name}")
        }
        _ => "ended".to_string(),
    }
}
