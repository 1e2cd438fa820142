//! The HorizontalPodAutoscaler v2 algorithm for CPU utilisation, as the
//! Kubernetes controller computes it (replica_calculator.go, horizontal.go):
//! a recommendation from the replicas' usage with the 0.1 tolerance and
//! conservative treatment of unready replicas and missing metrics, then
//! stabilisation windows, scale rate limits and min/max. Pure: the local
//! autoscaler feeds it measurements and a clock.

use std::time::{Duration, Instant};

/// No change while usage/target is within this of 1.0 (controller default).
pub const TOLERANCE: f64 = 0.1;

/// Rate policies' period: at most +100 % or +4 replicas, at most −100 %, per 15 s.
const RATE_PERIOD: Duration = Duration::from_secs(15);

/// One replica as the autoscaler sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Passing readiness.
    pub ready: bool,
    /// CPU used in millicores, if measured.
    pub millicores: Option<f64>,
}

/// The recommendation for one sync and the average utilisation it saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    /// Replicas the metric asks for.
    pub replicas: u32,
    /// Average utilisation of the ready, measured replicas (percent of request).
    pub utilization: u32,
}

/// `desired = ceil(current × utilisation / target)` over the replicas, or
/// `None` when no ready replica has a metric yet.
///
/// Unready replicas are ignored, and count as using nothing when the
/// metric says scale up; replicas without a metric count as using their
/// full request when it says scale down and nothing when it says scale up.
/// If that conservative view flips the direction or lands within the
/// tolerance, nothing changes.
pub fn recommend(current: u32, samples: &[Sample], request_millicores: u32, target_percent: u32) -> Option<Recommendation> {
    let request = f64::from(request_millicores.max(1));
    let target = f64::from(target_percent.max(1));
    let measured: Vec<f64> = samples.iter().filter(|s| s.ready).filter_map(|s| s.millicores).collect();
    if measured.is_empty() {
        return None;
    }
    let ratio_of = |usage: &[f64]| usage.iter().sum::<f64>() / (request * usage.len() as f64) * 100.0 / target;
    let ratio = ratio_of(&measured);
    let utilization = (ratio * target).round() as u32;
    let unready = samples.iter().filter(|s| !s.ready).count();
    let missing = samples.iter().filter(|s| s.ready && s.millicores.is_none()).count();
    let scale_up_with_unready = unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && missing == 0 {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Some(Recommendation { replicas: current, utilization });
        }
        return Some(Recommendation { replicas: (ratio * measured.len() as f64).ceil() as u32, utilization });
    }
    let mut usage = measured.clone();
    if missing > 0 {
        let fill = if ratio < 1.0 { request * target.max(100.0) / 100.0 } else { 0.0 };
        usage.extend(std::iter::repeat_n(fill, missing));
    }
    if scale_up_with_unready {
        usage.extend(std::iter::repeat_n(0.0, unready));
    }
    let new_ratio = ratio_of(&usage);
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= TOLERANCE || flipped {
        return Some(Recommendation { replicas: current, utilization });
    }
    let replicas = (new_ratio * usage.len() as f64).ceil() as u32;
    let against = (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current);
    Some(Recommendation { replicas: if against { current } else { replicas }, utilization })
}

/// Limits on the recommendation: the HPA's spec and behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `minReplicas`.
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// `behavior.scaleDown.stabilizationWindowSeconds` (default 300 s).
    pub scale_down_window: Duration,
}

/// Why the replica count was held back (a `ScalingLimited` or `AbleToScale` reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Replicas to set.
    pub replicas: u32,
    /// `AbleToScale` reason: `ReadyForNewScale`, `ScaleUpStabilized`, `ScaleDownStabilized`.
    pub stabilized: &'static str,
    /// `ScalingLimited` reason when limited: `TooManyReplicas`, `TooFewReplicas`, `ScaleUpLimit`.
    pub limited: Option<&'static str>,
}

/// What an autoscaler remembers between syncs.
#[derive(Debug, Default, Clone)]
pub struct History {
    recommendations: Vec<(Instant, u32)>,
    /// Replicas added (positive) or removed by each scale, with its time.
    scale_events: Vec<(Instant, i64)>,
}

impl History {
    /// Applies stabilisation, rate limits and min/max to a recommendation
    /// made at `now` for a target at `current` replicas.
    pub fn decide(&mut self, now: Instant, current: u32, recommended: u32, limits: Limits) -> Decision {
        let keep = limits.scale_down_window.max(RATE_PERIOD);
        self.recommendations.retain(|(at, _)| now.duration_since(*at) <= keep);
        self.scale_events.retain(|(at, _)| now.duration_since(*at) <= RATE_PERIOD);
        // Scale-up window is 0: up follows at once. Down follows the highest
        // recommendation of the window, so a dip does not remove replicas.
        let down = self
            .recommendations
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= limits.scale_down_window)
            .map(|(_, r)| *r)
            .fold(recommended, u32::max);
        self.recommendations.push((now, recommended));
        let stabilized = current.max(recommended).min(down);
        let reason = match stabilized {
            s if s == recommended => "ReadyForNewScale",
            s if s > recommended => "ScaleDownStabilized",
            _ => "ScaleUpStabilized",
        };
        let (replicas, limited) = self.limit(current, stabilized, limits);
        Decision { replicas, stabilized: reason, limited }
    }

    fn limit(&self, current: u32, wanted: u32, limits: Limits) -> (u32, Option<&'static str>) {
        let added: i64 = self.scale_events.iter().map(|(_, d)| (*d).max(0)).sum();
        if wanted > current {
            let start = (i64::from(current) - added).max(0) as u32;
            let rate = (start * 2).max(start + 4).max(current);
            let ceiling = limits.max.min(rate);
            if wanted > ceiling {
                return (ceiling, Some(if ceiling == limits.max { "TooManyReplicas" } else { "ScaleUpLimit" }));
            }
        }
        // Scale down: the default policy (−100 % per period) never binds
        // before minReplicas does.
        match wanted {
            w if w > limits.max => (limits.max, Some("TooManyReplicas")),
            w if w < limits.min => (limits.min, Some("TooFewReplicas")),
            w => (w, None),
        }
    }

    /// Records that the target was scaled from `from` to `to` at `now`.
    pub fn scaled(&mut self, now: Instant, from: u32, to: u32) {
        self.scale_events.push((now, i64::from(to) - i64::from(from)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(millicores: f64) -> Sample {
        Sample { ready: true, millicores: Some(millicores) }
    }

    const LIMITS: Limits = Limits { min: 1, max: 10, scale_down_window: Duration::from_secs(300) };

    #[test]
    fn desired_is_current_times_utilisation_over_target_rounded_up() {
        // 200m request, target 50 % = 100m; one replica at 250m → ratio 2.5 → 3.
        let r = recommend(1, &[busy(250.0)], 200, 50).unwrap();
        assert_eq!(r, Recommendation { replicas: 3, utilization: 125 });
        // Two replicas averaging 60m → ratio 0.6 → ceil(2 × 0.6) = 2.
        assert_eq!(recommend(2, &[busy(50.0), busy(70.0)], 200, 50).unwrap().replicas, 2);
        assert_eq!(recommend(4, &[busy(10.0); 4], 200, 50).unwrap().replicas, 1);
    }

    #[test]
    fn within_the_tolerance_nothing_changes() {
        // Ratio 1.09 and 0.91: inside ±0.1.
        assert_eq!(recommend(3, &[busy(109.0); 3], 200, 50).unwrap().replicas, 3);
        assert_eq!(recommend(3, &[busy(91.0); 3], 200, 50).unwrap().replicas, 3);
        // Ratio 1.11: outside → ceil(3 × 1.11) = 4.
        assert_eq!(recommend(3, &[busy(111.0); 3], 200, 50).unwrap().replicas, 4);
    }

    #[test]
    fn unready_replicas_count_as_idle_when_scaling_up() {
        // One ready replica at ratio 2.0, one unready: (200 + 0) / 2 → ratio 1.0 → within tolerance.
        let samples = [busy(200.0), Sample { ready: false, millicores: Some(900.0) }];
        assert_eq!(recommend(2, &samples, 200, 50).unwrap().replicas, 2);
        // Ratio 3.0 with one unready: (300 + 0)/2 → 1.5 → ceil(3) = 3.
        let samples = [busy(300.0), Sample { ready: false, millicores: None }];
        assert_eq!(recommend(2, &samples, 200, 50).unwrap().replicas, 3);
    }

    #[test]
    fn missing_metrics_hold_back_a_scale_down() {
        // One replica idle, one without a metric yet: the missing one is
        // assumed at its full request, so the average is not low enough.
        let samples = [busy(10.0), Sample { ready: true, millicores: None }];
        let r = recommend(2, &samples, 200, 50).unwrap();
        assert_eq!(r.replicas, 2, "ratio (10 + 200)/2/100 = 1.05: within tolerance");
        assert_eq!(recommend(1, &[Sample { ready: false, millicores: None }], 200, 50), None, "nothing measured");
    }

    #[test]
    fn scale_down_waits_for_the_stabilisation_window() {
        let mut history = History::default();
        let t0 = Instant::now();
        assert_eq!(history.decide(t0, 1, 4, LIMITS).replicas, 4);
        history.scaled(t0, 1, 4);
        let later = t0 + Duration::from_secs(60);
        let d = history.decide(later, 4, 1, LIMITS);
        assert_eq!((d.replicas, d.stabilized), (4, "ScaleDownStabilized"));
        let d = history.decide(t0 + Duration::from_secs(301), 4, 1, LIMITS);
        assert_eq!((d.replicas, d.stabilized), (1, "ReadyForNewScale"), "the 4 of t0 left the window; 1 at 60 s is the highest");
    }

    #[test]
    fn scale_up_is_limited_to_double_or_four_more_per_period() {
        let mut history = History::default();
        let t0 = Instant::now();
        let d = history.decide(t0, 1, 9, LIMITS);
        assert_eq!((d.replicas, d.limited), (5, Some("ScaleUpLimit")), "max(2 × 1, 1 + 4)");
        history.scaled(t0, 1, 5);
        let d = history.decide(t0 + Duration::from_secs(5), 5, 9, LIMITS);
        assert_eq!(d.replicas, 5, "the 4 added this period count against the start of it");
        let d = history.decide(t0 + Duration::from_secs(16), 5, 9, LIMITS);
        assert_eq!((d.replicas, d.limited), (9, None), "a new period: up to 10 allowed");
    }

    #[test]
    fn min_and_max_bound_every_decision() {
        let mut history = History::default();
        let t0 = Instant::now();
        let limits = Limits { min: 2, max: 4, scale_down_window: Duration::ZERO };
        let d = history.decide(t0, 3, 7, limits);
        assert_eq!((d.replicas, d.limited), (4, Some("TooManyReplicas")));
        let d = history.decide(t0 + Duration::from_secs(1), 4, 1, limits);
        assert_eq!((d.replicas, d.limited), (2, Some("TooFewReplicas")));
    }
}
