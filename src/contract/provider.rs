//! A provider under verification, started locally from its system
//! definition: the embedded broker, the services it calls (`calls:`), then
//! the provider itself (optionally a variant), each its own process on a
//! loopback port, all stopped by pid when the verification ends.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::process::Child;

use crate::process;
use crate::systems::definition::{Runs, SystemDef};
use crate::systems::kit::ServeOptions;

/// How long a process may take to announce its address.
const ANNOUNCE: Duration = Duration::from_secs(60);

/// How long a process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A provider running locally with what it needs.
pub struct LocalProvider {
    /// Base URL of the provider's HTTP API.
    pub base_url: String,
    /// Bootstrap address of the broker it publishes to.
    pub kafka: String,
    /// Every process started, last started first.
    children: Vec<(String, Child)>,
    dir: PathBuf,
    exe: PathBuf,
}

impl LocalProvider {
    /// Starts `service` of `def` (and the broker and its upstreams) in a
    /// fresh temp directory; `variant` applies to the provider only. `exe`
    /// is the stormproof binary to run (tests pass theirs).
    pub async fn start(exe: &Path, def: &SystemDef, service: &str, variant: Option<&str>) -> anyhow::Result<LocalProvider> {
        let service_def = def.service(service).ok_or_else(|| anyhow::anyhow!("system {} has no service `{service}`", def.system))?;
        if let Some(variant) = variant {
            def.check_variant(service, variant).map_err(|err| anyhow::anyhow!(err))?;
        }
        let dir = std::env::temp_dir().join(format!("stormproof-contract-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut provider = LocalProvider { base_url: String::new(), kafka: String::new(), children: Vec::new(), dir, exe: exe.to_path_buf() };
        match provider.start_all(def, service, &service_def.calls, variant).await {
            Ok(()) => Ok(provider),
            Err(err) => {
                provider.stop().await;
                Err(err)
            }
        }
    }

    async fn start_all(&mut self, def: &SystemDef, service: &str, calls: &[String], variant: Option<&str>) -> anyhow::Result<()> {
        let port = free_port()?;
        let data = self.dir.join("broker");
        let listen = format!("127.0.0.1:{port}");
        self.kafka = self.spawn("broker", &["broker", "--listen", &listen, "--data", &data.to_string_lossy()], &[]).await?.to_string();
        let mut upstreams = Vec::new();
        for upstream in calls {
            let addr = self.spawn_service(def, upstream, None, &[]).await?;
            upstreams.push((upstream.clone(), format!("http://{addr}")));
        }
        let addr = self.spawn_service(def, service, variant, &upstreams).await?;
        self.base_url = format!("http://{addr}");
        Ok(())
    }

    async fn spawn_service(&mut self, def: &SystemDef, service: &str, variant: Option<&str>, upstreams: &[(String, String)]) -> anyhow::Result<SocketAddr> {
        let service_def = def.service(service).ok_or_else(|| anyhow::anyhow!("system {} has no service `{service}`", def.system))?;
        let Runs::Builtin(handler) = def.runs(service_def);
        let mut options = ServeOptions::new(self.dir.join("data"), &self.kafka);
        options.topic = Some(def.topic.clone());
        options.partitions = Some(def.partitions);
        options.upstreams = upstreams.to_vec();
        options.variant = variant.map(str::to_string);
        options.replica_id = format!("{service}-contract");
        let env = options.to_env();
        self.spawn(&handler, &["serve", &handler], &env).await
    }

    /// Starts `stormproof ARGS` with `env` and waits for its address
    /// announcement. Only what `env` sets of the service settings applies,
    /// whatever this process was given.
    async fn spawn(&mut self, name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<SocketAddr> {
        let log = self.dir.join(format!("{name}.log"));
        let mut command = process::command(&self.exe, std::fs::File::create(&log)?);
        command.args(args).env_remove(crate::systems::kit::serve_env::VARIANT).env_remove(crate::systems::kit::serve_env::UPSTREAMS).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).env("RUST_LOG", "warn");
        let mut child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        self.children.push((name.to_string(), child));
        match tokio::time::timeout(ANNOUNCE, process::watch_stdout(stdout, None)).await {
            Ok(Ok(addr)) => Ok(addr),
            Ok(Err(_)) => anyhow::bail!("{name} exited before it was ready: {}", process::tail(&log, 5)),
            Err(_) => anyhow::bail!("{name} did not start within {ANNOUNCE:?}: {}", process::tail(&log, 5)),
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after the grace period),
    /// last started first, and removes the temp directory.
    pub async fn stop(mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            if !process::stop(&mut child, GRACE).await {
                tracing::warn!("{name} did not stop within {GRACE:?}; killed it");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
