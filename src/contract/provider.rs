//! A provider under verification, started locally from its system
//! definition: the embedded broker, the services it calls (`calls:`), then
//! the provider itself (optionally a variant), each its own process on a
//! loopback port, all stopped by pid when the verification ends.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::systems::definition::SystemDef;
use crate::systems::kit::LISTENING;

/// How long a process may take to announce its address.
const ANNOUNCE: Duration = Duration::from_secs(60);

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
    pub async fn start(exe: &std::path::Path, def: &SystemDef, service: &str, variant: Option<&str>) -> anyhow::Result<LocalProvider> {
        let service_def = def.service(service).ok_or_else(|| anyhow::anyhow!("system {} has no service `{service}`", def.system))?;
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
            upstreams.push(format!("{upstream}=http://{addr}"));
        }
        let addr = self.spawn_service(def, service, variant, &upstreams).await?;
        self.base_url = format!("http://{addr}");
        Ok(())
    }

    async fn spawn_service(&mut self, def: &SystemDef, service: &str, variant: Option<&str>, upstreams: &[String]) -> anyhow::Result<SocketAddr> {
        let data = self.dir.join("data");
        let name = format!("{}.{service}", def.system);
        // The embedded broker wants a producer without idempotence (main's
        // services read this; older ones ignore it).
        let mut env = vec![("STORMPROOF_KAFKA_IDEMPOTENCE", "false".to_string())];
        if !upstreams.is_empty() {
            env.push(("STORMPROOF_UPSTREAMS", upstreams.join(",")));
        }
        if let Some(variant) = variant {
            env.push(("STORMPROOF_VARIANT", variant.to_string()));
        }
        let kafka = self.kafka.clone();
        let args = ["serve", &name, "--listen", "127.0.0.1:0", "--data", &data.to_string_lossy(), "--kafka", &kafka];
        self.spawn(&name, &args, &env).await
    }

    /// Starts `stormproof ARGS` and waits for its address announcement.
    async fn spawn(&mut self, name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<SocketAddr> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            // Only the provider runs a variant, whatever this process was given.
            .env_remove("STORMPROOF_VARIANT")
            .env_remove("STORMPROOF_UPSTREAMS")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        // If stormproof dies without cleaning up, the kernel kills these.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        self.children.push((name.to_string(), child));
        let mut lines = BufReader::new(stdout).lines();
        let announced = tokio::time::timeout(ANNOUNCE, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix(LISTENING) {
                    return Ok::<_, anyhow::Error>(Some(addr.trim().parse::<SocketAddr>()?));
                }
            }
            Ok(None)
        })
        .await;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let log = self.dir.join(format!("{name}.log"));
        match announced {
            Ok(Ok(Some(addr))) => Ok(addr),
            Ok(Ok(None)) => anyhow::bail!("{name} exited before it was ready: {}", tail(&log)),
            Ok(Err(err)) => Err(err.context(format!("{name} announced a bad address"))),
            Err(_) => anyhow::bail!("{name} did not start within {ANNOUNCE:?}: {}", tail(&log)),
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after 5 s), last started
    /// first, and removes the temp directory.
    pub async fn stop(mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            if let Some(pid) = child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                tracing::warn!("{name} did not stop within 5s; killing it");
                let _ = child.kill().await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
