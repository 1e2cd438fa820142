//! The services' database on the local platform: SQLite files (the
//! default), a PostgreSQL server the user names, or a private PostgreSQL
//! cluster `up` creates in the run directory and stops when it ends.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Where services keep their data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreChoice {
    /// A SQLite file per service in the run's data directory.
    #[default]
    Sqlite,
    /// PostgreSQL: at this URL, or (None) a private cluster of `up`'s own.
    Postgres(Option<String>),
}

/// Where PostgreSQL's server binaries may be: a source build's prefix and
/// Debian's versioned directories (newest first).
fn binary_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/local/pgsql/bin")];
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path().join("bin")).collect();
    debian.sort();
    dirs.extend(debian.into_iter().rev());
    dirs
}

/// The directory holding `initdb` and `postgres`, if PostgreSQL is installed.
pub fn server_binaries() -> Option<PathBuf> {
    binary_dirs().into_iter().find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

/// A PostgreSQL server of `up`'s own, on a free loopback port.
pub struct PrivateCluster {
    child: Child,
    port: u16,
    /// The data directory, removed when the server stops.
    data: PathBuf,
}

impl PrivateCluster {
    /// Creates a cluster in `dir` (`initdb`) and starts its server. initdb
    /// and the server refuse to run as root, so as root both run as
    /// `nobody`, owning the data directory.
    pub async fn start(dir: &Path) -> anyhow::Result<PrivateCluster> {
        let bin = server_binaries().context("no PostgreSQL server found (initdb and postgres in /usr/local/bin or /usr/lib/postgresql/*/bin)")?;
        let as_root = uid() == 0;
        std::fs::create_dir_all(dir)?;
        // nobody may not traverse the run directory (a test's temporary
        // directory is 0700), so as root the data lives in a directory of
        // its own under the system's temporary directory — named after the
        // run directory, so the next `up` there clears what a killed one left.
        let data = if as_root { std::env::temp_dir().join(format!("stormproof-postgres-{:016x}", run_dir_key(dir))) } else { dir.join("data") };
        if data.exists() {
            // A killed `up`'s server may still be shutting down in it.
            let deadline = Instant::now() + Duration::from_secs(10);
            while data.join("postmaster.pid").exists() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            std::fs::remove_dir_all(&data).with_context(|| format!("cannot clear {}", data.display()))?;
        }
        std::fs::create_dir_all(&data)?;
        if as_root {
            std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).context("cannot hand the cluster's directory to nobody")?;
        }
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        let initdb = unprivileged(&bin.join("initdb"), as_root, OnParentDeath::RunOn)
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-sync", "-D"])
            .arg(&data)
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .status()
            .context("cannot run initdb")?;
        anyhow::ensure!(initdb.success(), "initdb failed ({initdb}); see {}", dir.join("postgres.log").display());
        let port = crate::process::free_port()?.port();
        // The socket goes in the data directory: /var/run/postgresql may not
        // exist or be writable. Up to 300 connections: 8 per service process.
        // `up` killed (SIGKILL) takes the server with it.
        let child = unprivileged(&bin.join("postgres"), as_root, OnParentDeath::FastShutdown)
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-p", &port.to_string(), "-k"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("cannot start postgres")?;
        let cluster = PrivateCluster { child, port, data };
        cluster.wait_accepting(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// The URL services connect with.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn wait_accepting(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            match tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await {
                Ok(_) => return Ok(()),
                Err(_) if started.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(err) => anyhow::bail!("PostgreSQL did not accept connections within {timeout:?}: {err}"),
            }
        }
    }

    /// Stops the server (fast shutdown: open transactions roll back) and
    /// waits for it. The child is ours, so its pid cannot have been reused.
    pub fn stop(mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const NOBODY: u32 = 65534;

fn uid() -> u32 {
    // SAFETY: getuid(2) cannot fail.
    unsafe { libc::getuid() }
}

/// What a command does when `up` dies before stopping it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnParentDeath {
    /// Runs on (initdb: it ends by itself).
    RunOn,
    /// The kernel sends it SIGINT: PostgreSQL's fast shutdown.
    FastShutdown,
}

/// `program`, run as nobody when we are root (setpriv execs it, so the
/// child's pid is the server's own).
fn unprivileged(program: &Path, as_root: bool, on_death: OnParentDeath) -> Command {
    if !as_root {
        let mut command = Command::new(program);
        if on_death == OnParentDeath::FastShutdown {
            // SAFETY: set_pdeathsig is async-signal-safe (one prctl call).
            unsafe {
                command.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGINT).map_err(std::io::Error::from));
            }
        }
        return command;
    }
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    // A change of user clears the parent-death signal: setpriv sets it after.
    if on_death == OnParentDeath::FastShutdown {
        command.args(["--pdeathsig", "SIGINT"]);
    }
    command.arg("--").arg(program);
    command
}

/// A key for `run_dir` (its canonical path), stable from one `up` to the next.
fn run_dir_key(run_dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf()).hash(&mut hasher);
    hasher.finish()
}
