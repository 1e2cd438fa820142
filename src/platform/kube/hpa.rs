//! Autoscalers: autoscaling/v2 HorizontalPodAutoscalers on CPU, read from
//! their spec and status.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams};

use super::deployments::{KubePlatform, api_error};
use crate::platform::{AutoscalerStatus, Condition, PlatformError, SCALING_DISABLED};

/// Every HPA of the namespace, with `ScalingDisabled` reported as soon as
/// its target is at 0 replicas (the HPA controller's words,
/// pkg/controller/podautoscaler), before its next sync.
pub(super) async fn autoscalers(platform: &KubePlatform) -> Result<Vec<AutoscalerStatus>, PlatformError> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(platform.client.clone(), &platform.namespace);
    let list = api.list(&ListParams::default()).await.map_err(|err| api_error(err, || PlatformError::Unreachable("no HPA API".into())))?;
    let mut out = Vec::new();
    for hpa in list.items {
        let mut status = autoscaler(&hpa);
        // A user's HPA scales a Deployment of its own name: named by the service it is.
        let Some(service) = platform.service_of(&status.service).await else { continue };
        status.service = service;
        if hpa.spec.as_ref().is_some_and(|s| s.scale_target_ref.kind == "Deployment") {
            let replicas = platform.deployment(&status.service).await.ok().and_then(|d| d.spec.and_then(|s| s.replicas));
            disable_at_zero(&mut status, replicas);
        }
        out.push(status);
    }
    Ok(out)
}

/// Kubernetes turns an HPA off while its target is scaled to 0 by hand,
/// but its status only says so after the next sync (15 s). The target's
/// spec already tells, so report it from the moment the scale is read.
fn disable_at_zero(status: &mut AutoscalerStatus, target_replicas: Option<i32>) {
    if target_replicas != Some(0) || !status.scaling_active() {
        return;
    }
    status.conditions.retain(|c| c.kind != "ScalingActive");
    status.conditions.push(Condition {
        kind: "ScalingActive".into(),
        status: "False".into(),
        reason: SCALING_DISABLED.into(),
        message: "scaling is disabled since the replica count of the target is zero".into(),
        last_transition_time: String::new(),
    });
}

fn autoscaler(hpa: &HorizontalPodAutoscaler) -> AutoscalerStatus {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let cpu_target = spec.metrics.iter().flatten().filter_map(|m| m.resource.as_ref()).find(|r| r.name == "cpu").and_then(|r| r.target.average_utilization);
    let cpu_current = status.current_metrics.iter().flatten().filter_map(|m| m.resource.as_ref()).find(|r| r.name == "cpu").and_then(|r| r.current.average_utilization);
    let conditions: Vec<Condition> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| Condition {
            kind: c.type_,
            status: c.status,
            reason: c.reason.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
            last_transition_time: c.last_transition_time.map(|t| t.0.to_string()).unwrap_or_default(),
        })
        .collect();
    let scale_down_stabilization_ms = scale_down_window(&spec);
    AutoscalerStatus {
        service: spec.scale_target_ref.name,
        min_replicas: spec.min_replicas.unwrap_or(1).max(0) as u32,
        max_replicas: spec.max_replicas.max(0) as u32,
        target_cpu_utilization: cpu_target.unwrap_or(0).max(0) as u32,
        current_replicas: status.current_replicas.unwrap_or(0).max(0) as u32,
        desired_replicas: status.desired_replicas.max(0) as u32,
        current_cpu_utilization: cpu_current.map(|c| c.max(0) as u32),
        last_scale_time: status.last_scale_time.map(|t| t.0.to_string()),
        conditions,
        // The controller's period is not visible through the API: assume
        // kube-controller-manager's default.
        sync_period_ms: 15_000,
        scale_down_stabilization_ms,
    }
}

/// `behavior.scaleDown.stabilizationWindowSeconds`, 300 s by default.
fn scale_down_window(spec: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec) -> u64 {
    let seconds = spec.behavior.as_ref().and_then(|b| b.scale_down.as_ref()).and_then(|d| d.stabilization_window_seconds);
    seconds.map(|s| s.max(0) as u64).unwrap_or(300) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::condition;

    fn active() -> AutoscalerStatus {
        AutoscalerStatus {
            service: "order".into(),
            min_replicas: 1,
            max_replicas: 4,
            target_cpu_utilization: 50,
            current_replicas: 1,
            desired_replicas: 1,
            current_cpu_utilization: Some(10),
            last_scale_time: None,
            sync_period_ms: 15_000,
            scale_down_stabilization_ms: 300_000,
            conditions: vec![Condition {
                kind: "ScalingActive".into(),
                status: "True".into(),
                reason: "ValidMetricFound".into(),
                message: String::new(),
                last_transition_time: String::new(),
            }],
        }
    }

    #[test]
    fn a_target_at_zero_disables_the_autoscaler_before_its_next_sync() {
        let mut status = active();
        disable_at_zero(&mut status, Some(0));
        assert!(!status.scaling_active());
        assert_eq!(condition(&status.conditions, "ScalingActive").unwrap().reason, SCALING_DISABLED);
        let mut status = active();
        disable_at_zero(&mut status, Some(2));
        assert!(status.scaling_active(), "a target above 0 leaves the status as the HPA reports it");
    }
}
