//! Reaching a cluster: a kube client for one named kubeconfig context —
//! never whatever context kubectl happens to point at.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where an experiment acts: a kubeconfig context and a namespace in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    /// The kubeconfig context (its cluster and credentials).
    pub context: String,
    /// The namespace every request stays in.
    pub namespace: String,
    /// The kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

impl KubeTarget {
    /// The target the flags name; both context and namespace are required,
    /// so that nothing ever lands in whatever context kubectl points at. The
    /// error names `command` and the missing flag.
    pub fn from_flags(context: Option<String>, namespace: Option<String>, kubeconfig: Option<PathBuf>, command: &str) -> anyhow::Result<KubeTarget> {
        let missing = |flag: &str| anyhow::anyhow!("{command} needs --{flag} (the kube {flag} it may act in)");
        Ok(KubeTarget {
            context: context.ok_or_else(|| missing("context"))?,
            namespace: namespace.ok_or_else(|| missing("namespace"))?,
            // KUBECONFIG may list several files; kube reads the first here.
            kubeconfig: kubeconfig.map(|p| std::env::split_paths(&p).next().unwrap_or(p)),
        })
    }
}

/// The allowlist rule every command that acts on a cluster follows: a flag
/// may be left out where `named` (the experiment's or the system's own
/// `kube:`) says it, and may not contradict it. `origin` names where
/// `named` comes from, for the error.
pub fn settle(flag: &str, given: &mut Option<String>, named: Option<&String>, origin: &str) -> anyhow::Result<()> {
    match (given.as_ref(), named) {
        (Some(given), Some(named)) if given != named => anyhow::bail!("--{flag} {given} contradicts {origin}, which says kube.{}: {named}", flag.replace('-', "_")),
        (None, Some(named)) => *given = Some(named.clone()),
        _ => {}
    }
    Ok(())
}

/// A client for `target`'s context; fails, naming the contexts there are,
/// when the kubeconfig has no such context.
pub async fn connect(target: &KubeTarget) -> anyhow::Result<Client> {
    crate::install_crypto_provider();
    let kubeconfig = match &target.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).map_err(|err| anyhow::anyhow!("cannot read kubeconfig {}: {err}", path.display()))?,
        None => Kubeconfig::read().map_err(|err| anyhow::anyhow!("cannot read the kubeconfig ($KUBECONFIG or ~/.kube/config): {err}"))?,
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == target.context) {
        let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        anyhow::bail!("no context `{}` in the kubeconfig (contexts: {})", target.context, known.join(", "));
    }
    let options = KubeConfigOptions { context: Some(target.context.clone()), ..KubeConfigOptions::default() };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|err| anyhow::anyhow!("kube context `{}`: {err}", target.context))?;
    Ok(Client::try_from(config)?)
}
