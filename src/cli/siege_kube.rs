//! `stormproof siege --distributed N --platform kube`: the workers as an
//! Indexed Job (`crate::platform::kube::SiegeJobs`), within the allowed
//! context and namespace (`--context`, `--namespace`, both required).

use std::time::Duration;

use super::siege_args::SiegeArgs;
use crate::load::distributed::{DistributedSettings, Launcher};
use crate::platform::kube::{self, Allowed, SiegeJobSpec, SiegeJobs};

fn spec(args: &SiegeArgs, coordinator: String) -> SiegeJobSpec {
    SiegeJobSpec {
        name: format!("stormproof-siege-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        image: args.kube.image.clone(),
        workers: args.distributed.unwrap_or(1),
        coordinator,
        cpu: args.kube.cpu.clone(),
        memory: args.kube.memory.clone(),
        verbose: args.verbose && !args.quiet,
    }
}

async fn jobs(args: &SiegeArgs, coordinator: String) -> anyhow::Result<SiegeJobs> {
    let target = args.kube.target.target("siege --platform kube")?;
    let allowed = Allowed { context: target.context.clone(), namespace: target.namespace.clone() };
    let client = kube::connect(&target).await?;
    Ok(SiegeJobs::new(client, &target.context, &target.namespace, &allowed, spec(args, coordinator))?)
}

/// `--dry-run`: prints the Job the run would create, sends nothing, runs nothing.
pub async fn dry_run(args: &SiegeArgs) -> anyhow::Result<()> {
    let coordinator = args.coordinator_url.clone().unwrap_or_else(|| format!("http://{}", args.coordinator_listen));
    let mut jobs = jobs(args, coordinator.clone()).await?.dry_run(|line| println!("{line}"));
    jobs.create(&coordinator, args.distributed.unwrap_or(1)).await?;
    eprintln!("dry-run: nothing was sent and no load was run");
    Ok(())
}

/// The launcher of a Kubernetes run; pods take longer to start than processes.
pub async fn launcher(args: &SiegeArgs, settings: &mut DistributedSettings) -> anyhow::Result<Box<dyn Launcher>> {
    let Some(url) = args.coordinator_url.clone() else {
        anyhow::bail!("--platform kube needs --coordinator-url: the URL the worker pods reach this coordinator at (and --coordinator-listen 0.0.0.0:PORT)");
    };
    settings.patience.register = Duration::from_secs(300);
    settings.patience.silence = Duration::from_secs(20);
    settings.patience.start_lead = Duration::from_secs(2);
    Ok(Box::new(jobs(args, url).await?))
}
