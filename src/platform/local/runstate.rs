//! The run directory's state file: how commands find a running system (its
//! control API, gateway and broker) and whether its `up` process lives.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::process::Identity;

/// What `up` writes to `RUN_DIR/state.json` while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// The name of the system running (`shop`).
    pub system: String,
    /// How to name it again: a built-in's name, or its folder's path.
    #[serde(default)]
    pub reference: String,
    /// Process id of `up`.
    pub pid: u32,
    /// Who `up` is (pid, start time, executable): a pid is signalled only
    /// while it still names this process. A state file without it names no
    /// process that may be signalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Identity>,
    /// The control API's bearer token, new for each run (the file is 0600).
    #[serde(default)]
    pub token: String,
    /// Control API base URL.
    pub control: String,
    /// Gateway base URL.
    pub gateway: String,
    /// Kafka bootstrap servers.
    pub kafka: String,
    /// The embedded broker's fault control endpoint (none with `--kafka`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_faults: Option<String>,
    /// Stable per-service addresses (name → URL), bypassing the gateway.
    pub services: std::collections::BTreeMap<String, String>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// When `up` started (RFC 3339).
    pub started_at: String,
    /// Every replica reached readiness once (`up --detach` waits for this).
    #[serde(default)]
    pub ready: bool,
}

impl RunState {
    /// `shop.delivery` or `delivery` → `delivery`, refusing another system's.
    pub fn service_name<'a>(&self, name: &'a str) -> anyhow::Result<&'a str> {
        match name.split_once('.') {
            Some((system, service)) if system == self.system => Ok(service),
            Some((system, _)) => anyhow::bail!("`{name}` is not part of {}, which is what runs here (not {system})", self.system),
            None => Ok(name),
        }
    }

    /// The system running, as its catalog entry (for its definition).
    pub fn system_def(&self) -> anyhow::Result<crate::systems::System> {
        crate::systems::System::resolve(if self.reference.is_empty() { &self.system } else { &self.reference })
    }

    /// Where the state file of `run_dir` is.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("state.json")
    }

    /// Reads the state of the system running in `run_dir`.
    pub fn read(run_dir: &Path) -> anyhow::Result<RunState> {
        let path = Self::path(run_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|_| anyhow::anyhow!("no system is up in {} (start one with `stormproof up shop`)", run_dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a stormproof state file", path.display()))
    }

    /// Reads the state if its `up` process is still alive.
    pub fn read_live(run_dir: &Path) -> anyhow::Result<RunState> {
        let state = Self::read(run_dir)?;
        if pid_alive(state.pid)
            && let Err(why) = state.verify_up()
        {
            anyhow::bail!("the state file in {} is stale: {why}; start the system again with `stormproof up {}`", run_dir.display(), state.system);
        }
        if !state.is_alive() {
            anyhow::bail!(
                "the system in {} is no longer running (its `up`, pid {}, is gone); start it again with `stormproof up {}`",
                run_dir.display(),
                state.pid,
                state.system
            );
        }
        Ok(state)
    }

    /// Writes the state file atomically, readable by its owner only (it
    /// holds the control API's token).
    pub fn write(&self) -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let path = Self::path(&self.run_dir);
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        // The mode given at creation is narrowed by the umask, never widened; set it outright.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Whether the `up` process that wrote this state is alive: its pid is
    /// live and still names that process.
    pub fn is_alive(&self) -> bool {
        pid_alive(self.pid) && self.verify_up().is_ok()
    }

    /// Whether the pid in the state file still names the `up` that wrote
    /// it; otherwise why not (a stale file whose pid was reused).
    pub fn verify_up(&self) -> Result<(), String> {
        match &self.process {
            Some(identity) if identity.pid == self.pid => identity.verify(),
            Some(identity) => Err(format!("the state file names pid {} but recorded pid {}", self.pid, identity.pid)),
            None => Err(format!("the state file records no start time for pid {}, so it cannot be told from another process", self.pid)),
        }
    }
}

/// A new control API token: 244 random bits from the OS (two v4 UUIDs).
pub fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Whether `pid` names a live (not zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])).unwrap_or(false),
        Err(_) => false,
    }
}
