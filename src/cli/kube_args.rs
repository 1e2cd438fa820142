//! Flags that say where on a cluster a command may act, shared by `chaos
//! run`, `check` and `k8s apply`.

use std::path::PathBuf;

use clap::Args;

use crate::chaos::KubeSettings;
use crate::platform::kube::KubeTarget;

/// Where a command acts on a cluster; both are required so that nothing
/// ever lands in whatever context kubectl happens to point at.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubeconfig context to act in (the only one allowed).
    #[arg(long, env = "STORMPROOF_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Namespace to act in (the only one allowed).
    #[arg(long, short = 'n', env = "STORMPROOF_KUBE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl KubeArgs {
    /// The target, or a usage error naming `command` and the missing flag.
    pub fn target(&self, command: &str) -> anyhow::Result<KubeTarget> {
        KubeTarget::from_flags(self.context.clone(), self.namespace.clone(), self.kubeconfig.clone(), command)
    }
}

/// `--platform kube` flags of `chaos run` and `check`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kubernetes (--platform kube)")]
pub struct ChaosKubeArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The gateway's URL as the harness reaches it (e.g. a `kubectl port-forward svc/gateway`).
    /// Without it, requests go through the API server's service proxy to svc/gateway:80:
    /// enough for probes and flows, not for load; heavy load belongs in the in-cluster
    /// siege Job (`siege --distributed N --platform kube`).
    #[arg(long, env = "STORMPROOF_GATEWAY_URL")]
    gateway_url: Option<String>,
    /// Kafka bootstrap servers reachable from the harness, for consumer-lag and events checks.
    /// Without it, consumer lag is read inside the cluster by a short-lived Job (this image,
    /// `stormproof k8s lag`) and read back through the API server (pods/log), then deleted.
    #[arg(long = "kube-kafka", value_name = "HOST:PORT")]
    kafka: Option<String>,
    /// The stormproof image the lag probe Job runs (the one `k8s render --image` deployed).
    #[arg(long = "harness-image", env = "STORMPROOF_IMAGE", default_value = "stormproof:v1")]
    harness_image: String,
    /// Print every change as the request it would send, and send none.
    #[arg(long)]
    pub dry_run: bool,
}

impl ChaosKubeArgs {
    /// The flags as the chaos engine's settings.
    pub fn settings(&self) -> KubeSettings {
        KubeSettings {
            context: self.kube.context.clone(),
            namespace: self.kube.namespace.clone(),
            kubeconfig: self.kube.kubeconfig.clone(),
            gateway_url: self.gateway_url.clone(),
            kafka: self.kafka.clone(),
            harness_image: self.harness_image.clone(),
            dry_run: self.dry_run,
        }
    }
}

/// Where a command runs the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlatformKind {
    /// The local platform (started when not up).
    Local,
    /// A Kubernetes cluster (already deployed; needs --context and --namespace).
    Kube,
}
