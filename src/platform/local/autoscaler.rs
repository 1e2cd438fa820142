//! The local platform's HorizontalPodAutoscaler: every sync period it
//! measures each replica's CPU from `/proc/PID/stat`, runs the HPA v2
//! algorithm ([`super::hpa`]) against the service's CPU request and sets
//! the desired replicas; its status reads like `kubectl describe hpa`.
//! Like Kubernetes, it leaves a service scaled to 0 by hand alone
//! (`ScalingActive=False`) until replicas are set by hand again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::deployment::set;
use super::hpa::{self, History, Limits, Sample};
use super::supervisor::{Phase, Supervisor};
use crate::platform::{AutoscalerStatus, Condition, SCALING_DISABLED};
use crate::systems::definition::{AutoscalingDef, SystemDef};
use crate::clock::now_rfc3339;

/// The controller's settings (kube-controller-manager's
/// `--horizontal-pod-autoscaler-sync-period` and `-downscale-stabilization`).
#[derive(Debug, Clone, Copy)]
pub struct AutoscalerSettings {
    /// How often each autoscaler acts (Kubernetes: 15 s).
    pub sync_period: Duration,
    /// Scale-down stabilisation window (Kubernetes: 300 s).
    pub downscale_stabilization: Duration,
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        AutoscalerSettings { sync_period: Duration::from_secs(15), downscale_stabilization: Duration::from_secs(300) }
    }
}

/// Every autoscaler of a system.
pub(super) struct Autoscaler {
    settings: AutoscalerSettings,
    hpas: Mutex<Vec<Hpa>>,
}

struct Hpa {
    service: String,
    def: AutoscalingDef,
    cpu_request: u32,
    history: History,
    /// pid → CPU ticks at the last sync, and when.
    cpu: BTreeMap<u32, (u64, Instant)>,
    status: AutoscalerStatus,
}

impl Autoscaler {
    pub fn new(def: &SystemDef, settings: AutoscalerSettings) -> Autoscaler {
        let hpas = def
            .services
            .iter()
            .filter_map(|s| {
                let hpa = s.autoscaling.clone()?;
                let status = AutoscalerStatus {
                    service: s.name.clone(),
                    min_replicas: hpa.min,
                    max_replicas: hpa.max,
                    target_cpu_utilization: hpa.cpu_utilization,
                    current_replicas: 0,
                    desired_replicas: 0,
                    current_cpu_utilization: None,
                    last_scale_time: None,
                    conditions: Vec::new(),
                    sync_period_ms: settings.sync_period.as_millis() as u64,
                    scale_down_stabilization_ms: settings.downscale_stabilization.as_millis() as u64,
                };
                Some(Hpa { service: s.name.clone(), def: hpa, cpu_request: s.cpu_request, history: History::default(), cpu: BTreeMap::new(), status })
            })
            .collect();
        Autoscaler { settings, hpas: Mutex::new(hpas) }
    }

    /// Every autoscaler's status.
    pub fn statuses(&self) -> Vec<AutoscalerStatus> {
        self.hpas.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|h| h.status.clone()).collect()
    }
}

/// Syncs every autoscaler once per sync period, forever. In between, new
/// replicas get a first CPU sample within a second, so the next sync can
/// measure them (metrics-server, likewise, scrapes new pods quickly).
pub(super) async fn run(sup: Arc<Supervisor>) {
    let settings = sup.autoscaler.settings;
    let mut tick = tokio::time::interval(settings.sync_period.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync = Instant::now();
    loop {
        tick.tick().await;
        let due = last_sync.elapsed() >= settings.sync_period;
        let scale: Vec<(String, u32)> = {
            let mut hpas = sup.autoscaler.hpas.lock().unwrap_or_else(|p| p.into_inner());
            for hpa in hpas.iter_mut() {
                baseline(&sup, hpa);
            }
            if !due {
                continue;
            }
            hpas.iter_mut().filter_map(|hpa| sync(&sup, hpa, settings)).collect()
        };
        last_sync = Instant::now();
        for (service, replicas) in scale {
            if let Err(err) = sup.set_desired(&service, replicas) {
                tracing::warn!("autoscaler of {service}: {err}");
            }
        }
    }
}

/// A first CPU sample for replicas that have none; gone ones are forgotten.
fn baseline(sup: &Supervisor, hpa: &mut Hpa) {
    let now = Instant::now();
    let pids: Vec<u32> = sup.with_service(&hpa.service, |s| s.replicas.iter().filter_map(|r| r.pid).collect()).unwrap_or_default();
    hpa.cpu.retain(|pid, _| pids.contains(pid));
    for pid in pids {
        if let (false, Some(ticks)) = (hpa.cpu.contains_key(&pid), cpu_ticks(pid)) {
            hpa.cpu.insert(pid, (ticks, now));
        }
    }
}

/// One sync of one autoscaler; the replicas to set, if they change.
fn sync(sup: &Supervisor, hpa: &mut Hpa, settings: AutoscalerSettings) -> Option<(String, u32)> {
    let now = Instant::now();
    let (current, samples) = sup
        .with_service(&hpa.service, |s| {
            let active = s.replicas.iter().filter(|r| r.phase == Phase::Running || r.phase == Phase::Starting);
            let samples: Vec<(Option<u32>, bool)> = active.map(|r| (r.pid, r.ready)).collect();
            (s.desired, samples)
        })
        .ok()?;
    let samples: Vec<Sample> = samples.into_iter().map(|(pid, ready)| Sample { ready, millicores: pid.and_then(|pid| measure(hpa, pid, now)) }).collect();
    let status = &mut hpa.status;
    status.current_replicas = samples.len() as u32;
    let conditions = &mut status.conditions;
    set(conditions, "AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the target's current scale".into());
    if current == 0 {
        // Scaled to zero by hand: the autoscaler stands aside.
        set(conditions, "ScalingActive", "False", SCALING_DISABLED, "scaling is disabled since the replica count of the target is zero".into());
        status.desired_replicas = 0;
        return None;
    }
    let limits = Limits { min: hpa.def.min, max: hpa.def.max, scale_down_window: settings.downscale_stabilization };
    let Some(recommendation) = hpa::recommend(current, &samples, hpa.cpu_request, hpa.def.cpu_utilization) else {
        let message = "did not receive metrics for targeted pods (pods might be unready)";
        set(conditions, "ScalingActive", "False", "FailedGetResourceMetric", message.into());
        status.desired_replicas = current;
        return None;
    };
    status.current_cpu_utilization = Some(recommendation.utilization);
    let message = "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)";
    set(conditions, "ScalingActive", "True", "ValidMetricFound", message.into());
    let decision = hpa.history.decide(now, current, recommendation.replicas, limits);
    set(conditions, "AbleToScale", "True", decision.stabilized, stabilized_message(decision.stabilized));
    limited(conditions, decision.limited);
    status.desired_replicas = decision.replicas;
    if decision.replicas == current {
        return None;
    }
    hpa.history.scaled(now, current, decision.replicas);
    status.last_scale_time = Some(now_rfc3339());
    tracing::info!("autoscaler: {} {current} → {} replicas (CPU {} % of request, target {} %)", hpa.service, decision.replicas, recommendation.utilization, hpa.def.cpu_utilization);
    Some((hpa.service.clone(), decision.replicas))
}

fn stabilized_message(reason: &str) -> String {
    match reason {
        "ScaleDownStabilized" => "recent recommendations were higher than current one, applying the highest recent recommendation",
        "ScaleUpStabilized" => "recent recommendations were lower than current one, applying the lowest recent recommendation",
        _ => "the last scale time was sufficiently old as to warrant a new scale",
    }
    .into()
}

fn limited(conditions: &mut Vec<Condition>, reason: Option<&'static str>) {
    match reason {
        None => set(conditions, "ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range".into()),
        Some(reason) => set(conditions, "ScalingLimited", "True", reason, format!("the desired replica count was limited ({reason})")),
    }
}

/// CPU of `pid` since its last sample, in millicores; `None` when there
/// is no sample old enough to measure over yet, or the process is gone.
fn measure(hpa: &mut Hpa, pid: u32, now: Instant) -> Option<f64> {
    let ticks = cpu_ticks(pid)?;
    let Some(&(before, at)) = hpa.cpu.get(&pid) else {
        hpa.cpu.insert(pid, (ticks, now));
        return None;
    };
    let seconds = now.duration_since(at).as_secs_f64();
    if seconds < MIN_WINDOW {
        return None;
    }
    hpa.cpu.insert(pid, (ticks, now));
    Some(ticks.saturating_sub(before) as f64 / clock_ticks() / seconds * 1000.0)
}

/// Shortest window a CPU figure is averaged over, in seconds: clock ticks
/// are 10 ms, so shorter windows are mostly rounding.
const MIN_WINDOW: f64 = 0.5;

/// utime + stime of a process, in clock ticks (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as f64,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_of_this_process_grow_with_work() {
        let pid = std::process::id();
        let before = cpu_ticks(pid).expect("this process has a /proc stat");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_ticks(pid).unwrap() > before, "300 ms of spinning shows in utime");
        assert_eq!(cpu_ticks(u32::MAX), None);
    }
}
