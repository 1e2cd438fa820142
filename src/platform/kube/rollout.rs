//! Rolling updates: patch the pod template (image, environment, a restart
//! annotation) and read the rollout the way `kubectl rollout status` does;
//! undo by putting the previous ReplicaSet's template back, as
//! `kubectl rollout undo` does.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, ListParams, Patch, PostParams};
use kube::ResourceExt;
use serde_json::{Value, json};

use super::deployments::{KubePlatform, api_error, change_params};
use super::{FIELD_MANAGER, PART_OF, RESTARTED_AT, VERSION};
use crate::platform::{Condition, PlatformError, RolloutStatus, Template};

/// The env variables a template's version and variant travel in (see `ServeOptions`).
const VERSION_ENV: &str = "STORMPROOF_VERSION";
const VARIANT_ENV: &str = "STORMPROOF_VARIANT";
/// The annotation the Deployment controller numbers templates with.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// The strategic-merge patch that rolls `deployment` to `template`:
/// containers and env merge by name, `$patch: delete` drops a variant,
/// `null` drops the readiness probe, and the restart annotation makes a
/// new ReplicaSet even when nothing else changed.
pub fn template_patch(deployment: &Deployment, template: &Template, now: &str) -> Result<Value, PlatformError> {
    let container = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .ok_or_else(|| PlatformError::Refused(format!("deployment {} has no container", deployment.name_any())))?;
    let image = match &template.image {
        Some(image) => image.clone(),
        None => retag(container.image.as_deref().unwrap_or_default(), &template.version),
    };
    let mut env = vec![json!({"name": VERSION_ENV, "value": template.version})];
    env.push(match &template.variant {
        Some(variant) => json!({"name": VARIANT_ENV, "value": variant}),
        None => json!({"name": VARIANT_ENV, "$patch": "delete"}),
    });
    env.extend(template.env.iter().map(|(name, value)| json!({"name": name, "value": value})));
    let mut patched = json!({"name": container.name, "image": image, "env": env});
    if !template.readiness {
        patched["readinessProbe"] = Value::Null;
    } else if container.readiness_probe.is_none() {
        // Back from a rollout without readiness: the definition's probe returns.
        let labels = deployment.labels();
        let defined = labels.get(PART_OF).and_then(|system| super::manifests::defined_readiness(system, &deployment.name_any()));
        if let Some(probe) = defined {
            patched["readinessProbe"] = serde_json::to_value(probe).unwrap_or(Value::Null);
        }
    }
    Ok(json!({"spec": {"template": {
        "metadata": {"labels": {VERSION: template.version}, "annotations": {RESTARTED_AT: now}},
        "spec": {"containers": [patched]}
    }}}))
}

/// `repo/name:tag` with `tag` replaced by `version` (or added).
fn retag(image: &str, version: &str) -> String {
    let name_end = image.rfind('/').map_or(0, |i| i + 1);
    let repo = match image[name_end..].find([':', '@']) {
        Some(i) => &image[..name_end + i],
        None => image,
    };
    format!("{repo}:{version}")
}

pub(super) async fn start(platform: &KubePlatform, service: &str, template: &Template) -> Result<RolloutStatus, PlatformError> {
    let deployment = platform.deployment(service).await?;
    start_at(platform, service, &deployment, template).await
}

/// Rolls `deployment` as read to `template`: the patch carries its
/// `resourceVersion`, so a Deployment changed since (its labels included)
/// is refused with 409 instead of patched.
pub(super) async fn start_at(platform: &KubePlatform, service: &str, deployment: &Deployment, template: &Template) -> Result<RolloutStatus, PlatformError> {
    check_env(platform, service, deployment, template)?;
    let mut patch = template_patch(deployment, template, &crate::clock::now_rfc3339())?;
    let container = &mut patch["spec"]["template"]["spec"]["containers"][0];
    if template.readiness && container.get("readinessProbe").is_none() && !has_readiness(deployment) {
        // A user's Deployment back from a rollout without readiness: stormproof
        // never defined its probe, but an earlier ReplicaSet's template has it.
        if let Some(probe) = earlier_readiness(platform, deployment).await? {
            container["readinessProbe"] = serde_json::to_value(probe).unwrap_or(Value::Null);
        }
    }
    patch["metadata"]["resourceVersion"] = json!(deployment.resource_version());
    let patched = platform
        .deployments_of(deployment)
        .patch(&deployment.name_any(), &change_params(), &Patch::Strategic(patch))
        .await
        .map_err(|err| api_error(err, || PlatformError::UnknownService(service.into())))?;
    Ok(status_of(service, &patched))
}

/// Only the settings the service's definition declares may be set —
/// besides the variables its Deployment already has (a user's own, which
/// a rollback puts back).
pub(super) fn check_env(platform: &KubePlatform, service: &str, deployment: &Deployment, template: &Template) -> Result<(), PlatformError> {
    let Some(def) = &platform.def else { return Ok(()) };
    let has = template_of(&deployment.spec.clone().unwrap_or_default().template).env;
    let new = template.env.keys().filter(|name| !has.contains_key(*name));
    def.check_rollout_env(service, new).map_err(PlatformError::Invalid)
}

/// The Deployment's rollout fields, as kubectl's status viewer reads them.
pub(super) fn status_of(service: &str, deployment: &Deployment) -> RolloutStatus {
    let spec = deployment.spec.clone().unwrap_or_default();
    let status = deployment.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.unwrap_or(0).max(0) as u32;
    let conditions = status.conditions.unwrap_or_default().into_iter().map(|c| Condition {
        kind: c.type_,
        status: c.status,
        reason: c.reason.unwrap_or_default(),
        message: c.message.unwrap_or_default(),
        last_transition_time: c.last_transition_time.map(|t| t.0.to_string()).unwrap_or_default(),
    });
    RolloutStatus {
        service: service.into(),
        revision: revision(deployment.annotations()),
        generation: deployment.metadata.generation.unwrap_or(0).max(0) as u64,
        observed_generation: status.observed_generation.unwrap_or(0).max(0) as u64,
        // An unset spec.replicas means 1 (the API server defaults it).
        replicas: spec.replicas.unwrap_or(1).max(0) as u32,
        updated: count(status.updated_replicas),
        total: count(status.replicas),
        available: count(status.available_replicas),
        ready: count(status.ready_replicas),
        template: template_of(&spec.template),
        conditions: conditions.collect(),
    }
}

fn revision(annotations: &std::collections::BTreeMap<String, String>) -> u64 {
    annotations.get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// What runs: the version label, the first container's image, variant and
/// extra environment, and whether it keeps a readiness probe.
fn template_of(template: &PodTemplateSpec) -> Template {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    let container = template.spec.as_ref().and_then(|s| s.containers.first()).cloned().unwrap_or_default();
    let mut out = Template::version(labels.get(VERSION).map(String::as_str).unwrap_or_default());
    out.image = container.image;
    out.readiness = container.readiness_probe.is_some();
    for var in container.env.unwrap_or_default() {
        match (var.name.as_str(), var.value) {
            (VERSION_ENV, _) | (_, None) => {}
            (VARIANT_ENV, Some(value)) => out.variant = Some(value),
            (name, Some(value)) if !name.starts_with("STORMPROOF_") => {
                out.env.insert(name.to_string(), value);
            }
            _ => {}
        }
    }
    out
}

/// `kubectl rollout undo`: the ReplicaSet with the highest revision below
/// the current one gives its template back (without its pod-template-hash).
pub(super) async fn undo(platform: &KubePlatform, service: &str) -> Result<RolloutStatus, PlatformError> {
    undo_at(platform, service, platform.deployment(service).await?).await
}

/// Undoes the rollout of `deployment` as read: the replacement carries its
/// `resourceVersion` (refused with 409 if it changed since).
pub(super) async fn undo_at(platform: &KubePlatform, service: &str, mut deployment: Deployment) -> Result<RolloutStatus, PlatformError> {
    let previous = previous_template(platform, &deployment).await?;
    deployment.spec.as_mut().expect("a Deployment read from the API server has a spec").template = previous;
    deployment.metadata.managed_fields = None;
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    let replaced = platform
        .deployments_of(&deployment)
        .replace(&deployment.name_any(), &params, &deployment)
        .await
        .map_err(|err| api_error(err, || PlatformError::UnknownService(service.into())))?;
    Ok(status_of(service, &replaced))
}

fn has_readiness(deployment: &Deployment) -> bool {
    deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.containers.first()).is_some_and(|c| c.readiness_probe.is_some())
}

/// The ReplicaSets `deployment` owns.
async fn owned_sets(platform: &KubePlatform, deployment: &Deployment) -> Result<Vec<ReplicaSet>, PlatformError> {
    let uid = deployment.uid().unwrap_or_default();
    let selector = deployment.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    let selector = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let sets: Api<ReplicaSet> = Api::namespaced(platform.client.clone(), &deployment.namespace().unwrap_or_else(|| platform.namespace.clone()));
    let list = sets.list(&ListParams::default().labels(&selector)).await.map_err(|err| api_error(err, || PlatformError::Refused("no ReplicaSets".into())))?;
    Ok(list.items.into_iter().filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid)).collect())
}

/// The readiness probe of the newest earlier template that had one.
async fn earlier_readiness(platform: &KubePlatform, deployment: &Deployment) -> Result<Option<k8s_openapi::api::core::v1::Probe>, PlatformError> {
    let mut sets = owned_sets(platform, deployment).await?;
    sets.sort_by_key(|rs| std::cmp::Reverse(revision(rs.annotations())));
    Ok(sets.into_iter().find_map(|rs| rs.spec?.template?.spec?.containers.into_iter().next()?.readiness_probe))
}

pub(super) async fn previous_template(platform: &KubePlatform, deployment: &Deployment) -> Result<PodTemplateSpec, PlatformError> {
    let current = revision(deployment.annotations());
    let owned = owned_sets(platform, deployment).await?.into_iter();
    let previous = owned.filter(|rs| revision(rs.annotations()) < current).max_by_key(|rs| revision(rs.annotations()));
    let mut template = previous
        .and_then(|rs| rs.spec.and_then(|s| s.template))
        .ok_or_else(|| PlatformError::Refused(format!("{} has no previous revision to roll back to", deployment.name_any())))?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::retag;

    #[test]
    fn retagging_keeps_registry_ports_and_replaces_tags_and_digests() {
        assert_eq!(retag("stormproof:dev", "v2"), "stormproof:v2");
        assert_eq!(retag("localhost:5000/stormproof", "v2"), "localhost:5000/stormproof:v2");
        assert_eq!(retag("ghcr.io/x/stormproof@sha256:ab", "v3"), "ghcr.io/x/stormproof:v3");
    }
}
