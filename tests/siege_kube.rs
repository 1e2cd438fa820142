//! `stormproof siege --distributed N --platform kube` against the fake API
//! server (tests/kube_fake): the Indexed Job's manifest, its creation and
//! cleanup, the rails (allowed namespace, dry-run), and worker processes
//! started from the Job's pod template reporting to the coordinator.

mod common_siege;
mod kube_fake;

use std::time::Duration;

use kube_fake::FakeKube;
use serde_json::json;
use stormproof::load::distributed::{DistributedSettings, Launcher, run_distributed};
use stormproof::load::{LoadPlan, Stop, Target};
use stormproof::platform::PlatformError;
use stormproof::platform::kube::siege_job::render;
use stormproof::platform::kube::{Allowed, KubeTarget, SiegeJobSpec, SiegeJobs, connect};
use tokio_util::sync::CancellationToken;

const NS: &str = "shop";
const CONTEXT: &str = "kind-stormproof";

fn spec() -> SiegeJobSpec {
    SiegeJobSpec {
        name: "stormproof-siege-test".into(),
        image: "stormproof:v1".into(),
        workers: 3,
        coordinator: "http://10.0.0.5:7070".into(),
        cpu: "500m".into(),
        memory: "128Mi".into(),
        verbose: false,
    }
}

fn allowed() -> Allowed {
    Allowed { context: CONTEXT.into(), namespace: NS.into() }
}

async fn client(fake: &FakeKube, dir: &std::path::Path) -> kube::Client {
    let target = KubeTarget { context: CONTEXT.into(), namespace: NS.into(), kubeconfig: Some(fake.kubeconfig(dir)) };
    connect(&target).await.unwrap()
}

#[test]
fn the_worker_job_is_an_indexed_job_with_the_coordinator_in_its_env() {
    let job = serde_json::to_value(render(&spec())).unwrap();
    let s = &job["spec"];
    assert_eq!((s["completionMode"].as_str(), s["completions"].as_i64(), s["parallelism"].as_i64()), (Some("Indexed"), Some(3), Some(3)));
    assert_eq!(s["backoffLimit"], 0, "a failed worker is not retried: its share would run twice");
    let pod = &s["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "stormproof:v1");
    assert_eq!((c["command"].clone(), c["args"].clone()), (json!(["stormproof"]), json!(["siege", "worker"])));
    let env = c["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "STORMPROOF_COORDINATOR", "value": "http://10.0.0.5:7070"})), "{env:?}");
    let index = env.iter().find(|e| e["name"] == "JOB_COMPLETION_INDEX").unwrap();
    assert_eq!(index["valueFrom"]["fieldRef"]["fieldPath"], "metadata.annotations['batch.kubernetes.io/job-completion-index']");
    assert!(!env.iter().any(|e| e["name"] == "STORMPROOF_VERBOSE"), "quiet pods unless -v: {env:?}");
    let verbose = serde_json::to_value(render(&SiegeJobSpec { verbose: true, ..spec() })).unwrap();
    let verbose_env = verbose["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
    assert!(verbose_env.contains(&json!({"name": "STORMPROOF_VERBOSE", "value": "true"})), "-v reaches the pods: {verbose_env:?}");
    assert_eq!(c["resources"]["requests"], json!({"cpu": "500m", "memory": "128Mi"}));
    assert_eq!(c["resources"]["limits"], c["resources"]["requests"]);
    assert_eq!(s["template"]["metadata"]["labels"]["stormproof.io/harness"], "true", "experiments never touch the workers");
}

#[tokio::test]
async fn launch_applies_the_job_and_cleanup_deletes_it_with_its_pods() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = SiegeJobs::new(client(&fake, dir.path()).await, CONTEXT, NS, &allowed(), spec()).unwrap();
    let launched = jobs.launch("http://10.9.8.7:7070", 4).await.unwrap();
    assert_eq!(launched.names.len(), 4);
    let sent = fake.mutating_requests();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].method.as_str(), sent[0].path.as_str()), ("PATCH", "/apis/batch/v1/namespaces/shop/jobs/stormproof-siege-test"));
    assert!(sent[0].content_type.starts_with("application/apply-patch+yaml"));
    assert!(sent[0].query.contains("fieldManager=stormproof"), "{}", sent[0].query);
    let stored = fake.get("jobs", NS, "stormproof-siege-test").expect("the Job exists");
    assert_eq!(stored["spec"]["completions"], 4);
    assert_eq!(stored["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "http://10.9.8.7:7070");
    fake.clear_log();
    jobs.cleanup().await.unwrap();
    let sent = fake.mutating_requests();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].method.as_str(), sent[0].path.as_str()), ("DELETE", "/apis/batch/v1/namespaces/shop/jobs/stormproof-siege-test"));
    assert_eq!(sent[0].json()["propagationPolicy"], "Background", "the pods go with the Job");
    assert!(fake.get("jobs", NS, "stormproof-siege-test").is_none());
    jobs.cleanup().await.unwrap();
    assert_eq!(fake.mutating_requests().len(), 1, "cleaned up once");
}

#[tokio::test]
async fn the_job_is_refused_outside_the_allowed_namespace() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let refused = SiegeJobs::new(client(&fake, dir.path()).await, CONTEXT, "kube-system", &allowed(), spec());
    assert!(matches!(&refused, Err(PlatformError::Refused(m)) if m.contains("namespace `kube-system`") && m.contains("only context `kind-stormproof`, namespace `shop`")));
    let refused = SiegeJobs::new(client(&fake, dir.path()).await, "production", NS, &allowed(), spec());
    assert!(matches!(refused, Err(PlatformError::Refused(_))));
    assert!(fake.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn dry_run_prints_the_job_and_sends_nothing() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stormproof"))
        .args(["siege", "-c6", "-t10S", "--distributed", "3", "--platform", "kube", "--context", CONTEXT, "-n", NS])
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "--dry-run", "--image", "registry.example/stormproof:v1"])
        .args(["--coordinator-url", "http://10.1.2.3:7070", "http://order:8080/orders"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(stormproof::exit::PASSED), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("dry-run: would create job/stormproof-siege-"), "{stdout}");
    assert!(stdout.contains("PATCH /apis/batch/v1/namespaces/shop/jobs/"), "{stdout}");
    for line in ["completionMode: Indexed", "completions: 3", "parallelism: 3", "image: registry.example/stormproof:v1", "value: http://10.1.2.3:7070"] {
        assert!(stdout.contains(line), "`{line}` in\n{stdout}");
    }
    assert!(fake.mutating_requests().is_empty(), "{:#?}", fake.mutating_requests());
}

/// Plays the kubelet: once the Job exists, starts its pods as worker
/// processes with the env of its pod template and their completion index.
fn kubelet(fake: &FakeKube) -> tokio::task::JoinHandle<Vec<std::process::ExitStatus>> {
    let fake = fake.view();
    tokio::spawn(async move {
        let job = loop {
            if let Some(job) = fake.list("jobs", NS).into_iter().next() {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        let env: Vec<(String, String)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
            .collect();
        let args: Vec<String> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        let mut pods = Vec::new();
        for index in 0..job["spec"]["completions"].as_u64().unwrap() {
            pods.push(
                tokio::process::Command::new(env!("CARGO_BIN_EXE_stormproof"))
                    .args(&args)
                    .envs(env.iter().cloned())
                    .env("JOB_COMPLETION_INDEX", index.to_string())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap(),
            );
        }
        let mut done = Vec::new();
        for mut p in pods {
            done.push(p.wait().await.unwrap());
        }
        done
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_started_from_the_jobs_pod_template_report_to_the_coordinator() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let server = common_siege::start(common_siege::Behavior::Script(vec![])).await;
    let mut plan = LoadPlan::new(vec![Target::get(&server.url("/")).unwrap()]);
    plan.users = 3;
    plan.stop = Stop::Reps(5);
    let plan = plan.validate().unwrap();
    let mut jobs = SiegeJobs::new(client(&fake, dir.path()).await, CONTEXT, NS, &allowed(), spec()).unwrap();
    let pods = kubelet(&fake);
    let settings = DistributedSettings::local(3);
    let run = run_distributed(&plan, &settings, &mut jobs, &CancellationToken::new(), &|_| {}).await.unwrap();
    assert_eq!(run.summary.transactions(), 15);
    assert_eq!(run.reports.len(), 3);
    assert!(pods.await.unwrap().iter().all(|s| s.success()));
    assert!(fake.get("jobs", NS, "stormproof-siege-test").is_none(), "the Job is deleted when the run ends");
    let methods: Vec<String> = fake.mutating_requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["PATCH", "DELETE"]);
}
