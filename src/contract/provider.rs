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
use crate::systems::command::{self, Vars};
use crate::systems::definition::{Runs, ServiceDef, SystemDef};
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
        if def.runs_commands() {
            // A user's services are not asked to create the topic (see the local platform).
            let kafka = crate::systems::kit::KafkaSettings { bootstrap: self.kafka.clone(), topic: def.topic.clone(), partitions: def.partitions, idempotent: false };
            crate::systems::kit::ensure_topic(&kafka).await?;
        }
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
        let handler = match def.runs(service_def) {
            Runs::Builtin(handler) => handler,
            Runs::Command(argv) => return self.spawn_command(def, service_def, &argv, variant).await,
        };
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

    /// Starts a service of the user's own on a port of its own and waits
    /// until it listens there (it announces nothing).
    async fn spawn_command(&mut self, def: &SystemDef, service: &ServiceDef, argv: &[String], variant: Option<&str>) -> anyhow::Result<SocketAddr> {
        let addr = process::free_port()?;
        let (argv, env) = command::with_variant(argv, &service.env, &service.variants, variant);
        let data_dir = self.dir.join("data").join(&service.name);
        std::fs::create_dir_all(&data_dir)?;
        let vars = Vars {
            port: addr.port(),
            kafka_bootstrap: self.kafka.clone(),
            topic: def.topic.clone(),
            replica: format!("{}-contract", service.name),
            data_dir,
            group: def.consumer_group(service).unwrap_or_else(|| format!("{}.{}", def.system, service.name)),
            version: "v1".into(),
            system_dir: def.folder.clone().unwrap_or_else(|| self.dir.clone()),
        };
        let run = command::invocation(&argv, &env, &vars);
        let log = self.dir.join(format!("{}.log", service.name));
        let mut child = process::command(&run.program, std::fs::File::create(&log)?);
        child.args(&run.args).envs(run.env).current_dir(&run.dir).process_group(0);
        let mut child = child.spawn().with_context(|| format!("cannot run {} for {}", run.program.display(), service.name))?;
        if let Some(stdout) = child.stdout.take() {
            // Its stdout goes to the log; it announces nothing.
            drop(process::watch_stdout(stdout, Some(log.clone())));
        }
        // Verified once it would get traffic: listening, and past its readiness probe.
        let ready = async {
            process::listening(addr).await;
            if let Some(probe) = def.readiness(service) {
                let http = crate::http_client().timeout(probe.timeout).build().unwrap_or_default();
                while !http.get(format!("http://{addr}{}", probe.path)).send().await.is_ok_and(|r| r.status().is_success()) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let outcome = tokio::select! {
            _ = ready => Ok(addr),
            status = child.wait() => Err(anyhow::anyhow!("{} exited ({}) before it listened on port {}: {}", service.name, status.map_or("?".into(), |s| s.to_string()), addr.port(), process::tail(&log, 5))),
            _ = tokio::time::sleep(ANNOUNCE) => Err(anyhow::anyhow!("{} was not listening and ready on port {} within {ANNOUNCE:?}: {}", service.name, addr.port(), process::tail(&log, 5))),
        };
        self.children.push((service.name.clone(), child));
        outcome
    }

    /// Stops every process (SIGTERM, then SIGKILL after the grace period),
    /// last started first, and removes the temp directory.
    pub async fn stop(mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            // A user's service leads its own process group, killed whole.
            if !process::stop_group(&mut child, GRACE).await {
                tracing::warn!("{name} did not stop within {GRACE:?}; killed it");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
