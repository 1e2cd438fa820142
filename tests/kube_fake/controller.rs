//! The fake's controllers, one deterministic step per `tick`: the
//! Deployment controller (ReplicaSets per template, a rolling update within
//! maxSurge / maxUnavailable, status and conditions), the ReplicaSet
//! controller (replaces deleted pods, restartCount 0) and the HPA
//! controller (ScalingActive=False while its target is at 0), and the Job
//! controller (one pod per Job, run to its end by the test's runner).
//!
//! A pod created in a tick becomes ready in the next one, unless its
//! Deployment is stuck; a terminating pod is gone at the next tick.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::Cluster;

const HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

impl Cluster {
    /// One step of every controller.
    pub fn tick(&mut self) {
        self.objects.retain(|(plural, _, _), o| !(plural == "pods" && !o["metadata"]["deletionTimestamp"].is_null()));
        let deployments: Vec<(String, String)> = self.keys("deployments");
        for (ns, name) in deployments {
            self.step_deployment(&ns, &name);
        }
        for (ns, name) in self.keys("horizontalpodautoscalers") {
            self.step_hpa(&ns, &name);
        }
        for (ns, name) in self.keys("jobs") {
            self.step_job(&ns, &name);
        }
    }

    /// A Job's one pod, created and run to its end (Succeeded or Failed,
    /// its log kept) by the test's runner; none without a runner.
    fn step_job(&mut self, ns: &str, name: &str) {
        let Some(runner) = self.job_runner.clone() else { return };
        let has_pod = self.list("pods", ns).iter().any(|p| p["metadata"]["labels"][super::JOB_NAME] == name);
        if has_pod {
            return;
        }
        let job = self.objects[&key("jobs", ns, name)].clone();
        let (log, succeeded) = runner(&job);
        self.serial += 1;
        let pod_name = format!("{name}-{:05x}", self.serial);
        let mut labels = job["spec"]["template"]["metadata"]["labels"].clone();
        labels[super::JOB_NAME] = json!(name);
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "labels": labels, "uid": format!("pod-{pod_name}"), "creationTimestamp": timestamp(self.serial),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"], "controller": true}]},
            "spec": job["spec"]["template"]["spec"],
            "status": {"phase": if succeeded { "Succeeded" } else { "Failed" }}
        });
        self.insert("pods", ns, pod);
        self.logs.insert(pod_name, log);
    }

    fn keys(&self, plural: &str) -> Vec<(String, String)> {
        self.objects.keys().filter(|(p, _, _)| p == plural).map(|(_, ns, n)| (ns.clone(), n.clone())).collect()
    }

    fn step_deployment(&mut self, ns: &str, name: &str) {
        let deployment = self.objects[&key("deployments", ns, name)].clone();
        let hash = template_hash(&deployment["spec"]["template"]);
        let revision = self.current_replicaset(ns, name, &deployment, &hash);
        let stuck = self.stuck.contains(name);
        let desired = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        let strategy = &deployment["spec"]["strategy"]["rollingUpdate"];
        let surge = resolve(&strategy["maxSurge"], desired, true);
        let unavailable = resolve(&strategy["maxUnavailable"], desired, false).max(if surge == 0 { 1 } else { 0 });

        // Pods from earlier ticks start passing readiness (new ones only if not stuck).
        for pod in self.pods_mut(ns, name) {
            let is_new = pod["metadata"]["labels"][HASH] == hash.as_str();
            if !(stuck && is_new) {
                set_ready(pod, true);
            }
        }
        let (new, old) = self.split(ns, name, &hash);
        let ready = |pods: &[Value]| pods.iter().filter(|p| is_ready(p)).count() as i64;
        let mut total = (new.len() + old.len()) as i64;
        for _ in new.len() as i64..desired {
            if total >= desired + surge {
                break;
            }
            self.create_pod(ns, name, &hash, &deployment["spec"]["template"]);
            total += 1;
        }
        let mut available = ready(&new) + ready(&old);
        let mut old_sorted = old.clone();
        old_sorted.sort_by_key(is_ready);
        for pod in &old_sorted {
            let loses = if is_ready(pod) { 1 } else { 0 };
            if available - loses < desired - unavailable {
                break;
            }
            self.terminate(ns, pod_name(pod));
            available -= loses;
        }
        for pod in new.iter().skip(desired.max(0) as usize) {
            self.terminate(ns, pod_name(pod));
        }
        self.write_status(ns, name, &hash, desired, unavailable, revision);
    }

    /// The ReplicaSet of the current template, created (or, for an undo,
    /// given the next revision) as the Deployment controller does.
    fn current_replicaset(&mut self, ns: &str, name: &str, deployment: &Value, hash: &str) -> i64 {
        let uid = deployment["metadata"]["uid"].clone();
        let owned: Vec<Value> = self.list("replicasets", ns).into_iter().filter(|rs| rs["metadata"]["ownerReferences"][0]["uid"] == uid).collect();
        let max = owned.iter().filter_map(|rs| rs["metadata"]["annotations"][REVISION].as_str()?.parse::<i64>().ok()).max().unwrap_or(0);
        let rs_name = format!("{name}-{hash}");
        let current = owned.iter().find(|rs| rs["metadata"]["name"] == rs_name.as_str());
        let revision = match current {
            Some(rs) if rs["metadata"]["annotations"][REVISION].as_str().and_then(|r| r.parse().ok()) == Some(max) => max,
            Some(_) => {
                let rs = self.objects.get_mut(&key("replicasets", ns, &rs_name)).expect("listed");
                rs["metadata"]["annotations"][REVISION] = json!((max + 1).to_string());
                max + 1
            }
            None => {
                let mut template = deployment["spec"]["template"].clone();
                template["metadata"]["labels"][HASH] = json!(hash);
                let mut selector = deployment["spec"]["selector"].clone();
                selector["matchLabels"][HASH] = json!(hash);
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns, "labels": template["metadata"]["labels"],
                        "annotations": {REVISION: (max + 1).to_string()},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid, "controller": true}]},
                    "spec": {"selector": selector, "template": template}
                });
                self.insert("replicasets", ns, rs);
                max + 1
            }
        };
        let deployment = self.objects.get_mut(&key("deployments", ns, name)).expect("exists");
        deployment["metadata"]["annotations"][REVISION] = json!(revision.to_string());
        revision
    }

    fn pods_mut(&mut self, ns: &str, deployment: &str) -> impl Iterator<Item = &mut Value> {
        let prefix = format!("{deployment}-");
        self.objects
            .iter_mut()
            .filter(move |((p, n, _), o)| p == "pods" && n == ns && o["metadata"]["deletionTimestamp"].is_null() && o["metadata"]["ownerReferences"][0]["name"].as_str().is_some_and(|rs| rs.starts_with(&prefix)))
            .map(|(_, o)| o)
    }

    /// The live pods of the current template and of older ones.
    fn split(&mut self, ns: &str, deployment: &str, hash: &str) -> (Vec<Value>, Vec<Value>) {
        self.pods_mut(ns, deployment).map(|p| p.clone()).partition(|p| p["metadata"]["labels"][HASH] == hash)
    }

    fn create_pod(&mut self, ns: &str, deployment: &str, hash: &str, template: &Value) {
        self.serial += 1;
        let rs = format!("{deployment}-{hash}");
        let name = format!("{rs}-{:05x}", self.serial);
        let mut labels = template["metadata"]["labels"].clone();
        labels[HASH] = json!(hash);
        let containers = template["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "restartCount": 0, "started": true, "state": {"running": {}}}))
            .collect();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": format!("pod-{}", self.serial),
                "creationTimestamp": timestamp(self.serial),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": format!("{rs}-uid"), "controller": true}]},
            "spec": template["spec"],
            "status": {"phase": "Running", "podIP": format!("10.244.0.{}", self.serial % 250 + 2),
                "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": statuses}
        });
        self.insert("pods", ns, pod);
    }

    fn terminate(&mut self, ns: &str, pod: &str) {
        if let Some(pod) = self.objects.get_mut(&key("pods", ns, pod)) {
            pod["metadata"]["deletionTimestamp"] = json!(timestamp(0));
        }
    }

    fn write_status(&mut self, ns: &str, name: &str, hash: &str, desired: i64, unavailable: i64, _revision: i64) {
        let (new, old) = self.split(ns, name, hash);
        let ready = new.iter().chain(&old).filter(|p| is_ready(p)).count() as i64;
        let updated = new.len() as i64;
        let total = updated + old.len() as i64;
        let exceeded = self.deadline_exceeded.contains(name);
        let complete = updated == desired && total == desired && ready == desired;
        let progressing = if exceeded {
            json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{name}-{hash}\" has timed out progressing.")})
        } else if complete {
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{name}-{hash}\" has successfully progressed.")})
        } else {
            json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet \"{name}-{hash}\" is progressing.")})
        };
        let available = if ready >= desired - unavailable {
            json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."})
        } else {
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."})
        };
        let deployment = self.objects.get_mut(&key("deployments", ns, name)).expect("exists");
        let generation = deployment["metadata"]["generation"].clone();
        deployment["status"] = json!({
            "observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
            "readyReplicas": ready, "availableReplicas": ready, "unavailableReplicas": (desired - ready).max(0),
            "conditions": [available, progressing]
        });
    }

    fn step_hpa(&mut self, ns: &str, name: &str) {
        let hpa = self.objects[&key("horizontalpodautoscalers", ns, name)].clone();
        let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or_default().to_string();
        let Some(deployment) = self.objects.get(&key("deployments", ns, &target)).cloned() else { return };
        let spec_replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        let active = if spec_replicas == 0 {
            json!({"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled", "message": "scaling is disabled since the replica count of the target is zero"})
        } else {
            json!({"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"})
        };
        let hpa = self.objects.get_mut(&key("horizontalpodautoscalers", ns, name)).expect("exists");
        hpa["status"] = json!({
            "currentReplicas": deployment["status"]["replicas"].as_i64().unwrap_or(0),
            "desiredReplicas": spec_replicas,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "24m"}}}],
            "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"}, active]
        });
    }
}

pub fn key(plural: &str, ns: &str, name: &str) -> (String, String, String) {
    (plural.to_string(), ns.to_string(), name.to_string())
}

fn template_hash(template: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    format!("{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

/// maxSurge (rounded up) or maxUnavailable (rounded down) of `desired`.
fn resolve(value: &Value, desired: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) if s.ends_with('%') => {
            let percent: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            let exact = desired as f64 * percent / 100.0;
            (if round_up { exact.ceil() } else { exact.floor() }) as i64
        }
        _ => {
            let exact = desired as f64 * 0.25;
            (if round_up { exact.ceil() } else { exact.floor() }) as i64
        }
    }
}

fn set_ready(pod: &mut Value, ready: bool) {
    let status = if ready { "True" } else { "False" };
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": status}]);
    if let Some(statuses) = pod["status"]["containerStatuses"].as_array_mut() {
        for s in statuses {
            s["ready"] = json!(ready);
        }
    }
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn pod_name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or_default()
}

/// A fixed clock: the n-th second of 2026-01-01.
pub fn timestamp(n: u64) -> String {
    format!("2026-01-01T{:02}:{:02}:{:02}Z", n / 3600 % 24, n / 60 % 60, n % 60)
}
