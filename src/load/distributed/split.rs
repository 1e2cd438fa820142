//! A split: one load plan cut into N shares, one per worker, so that the
//! shares add up to the plan exactly. Users (`-c`) and an integral rate
//! (`--rate`) are divided with the remainder spread over the first workers;
//! repetitions (`-r`) are per user in siege, so each share keeps them and
//! the shares' requests add up to `users × reps`.

use super::super::plan::{LoadPlan, Model};

/// Why a plan cannot be split.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// `--distributed 0`.
    #[error("expected at least one worker (--distributed)")]
    NoWorkers,
    /// Fewer users than workers: some worker would send nothing.
    #[error("expected at least as many users (-c {users}) as workers (--distributed {workers}): a worker without users would silently shrink the load")]
    FewerUsers {
        /// `-c`.
        users: u32,
        /// `--distributed`.
        workers: usize,
    },
}

/// `total` divided into `n` integral parts, the remainder spread over the first.
pub fn spread(total: u64, n: usize) -> Vec<u64> {
    let n64 = n as u64;
    (0..n64).map(|i| total / n64 + u64::from(i < total % n64)).collect()
}

/// The plan's shares, worker 0 first.
pub fn split(plan: &LoadPlan, n: usize) -> Result<Vec<LoadPlan>, SplitError> {
    if n == 0 {
        return Err(SplitError::NoWorkers);
    }
    if (plan.users as usize) < n {
        return Err(SplitError::FewerUsers { users: plan.users, workers: n });
    }
    let users = spread(plan.users as u64, n);
    let rates: Vec<Option<f64>> = match plan.model {
        Model::Closed => vec![None; n],
        // An integral rate splits into integral rates; any other equally.
        Model::Open { rate } if rate.fract() == 0.0 && rate >= n as f64 && rate < u64::MAX as f64 => {
            spread(rate as u64, n).into_iter().map(|r| Some(r as f64)).collect()
        }
        Model::Open { rate } => vec![Some(rate / n as f64); n],
    };
    Ok(users
        .into_iter()
        .zip(rates)
        .map(|(u, rate)| {
            let mut share = plan.clone();
            share.users = u as u32;
            if let Some(rate) = rate {
                share.model = Model::Open { rate };
            }
            share
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Stop, Target};

    fn plan(users: u32, model: Model) -> LoadPlan {
        let mut p = LoadPlan::new(vec![Target::get("http://127.0.0.1:1/").unwrap()]);
        p.users = users;
        p.model = model;
        p.stop = Stop::Reps(7);
        p
    }

    #[test]
    fn shares_add_up_exactly_with_remainders_spread() {
        assert_eq!(spread(10, 3), vec![4, 3, 3]);
        assert_eq!(spread(3, 3), vec![1, 1, 1]);
        let shares = split(&plan(10, Model::Open { rate: 100.0 }), 3).unwrap();
        let users: Vec<u32> = shares.iter().map(|s| s.users).collect();
        assert_eq!(users, vec![4, 3, 3]);
        let rates: Vec<f64> = shares.iter().map(|s| match s.model { Model::Open { rate } => rate, Model::Closed => 0.0 }).collect();
        assert_eq!(rates, vec![34.0, 33.0, 33.0]);
        assert!(shares.iter().all(|s| s.stop == Stop::Reps(7)));
        let reps: u64 = shares.iter().map(|s| s.users as u64 * 7).sum();
        assert_eq!(reps, 70);
        let shares = split(&plan(4, Model::Open { rate: 2.5 }), 2).unwrap();
        assert!(shares.iter().all(|s| s.model == Model::Open { rate: 1.25 }));
    }

    #[test]
    fn refuses_a_split_that_would_shrink_the_load() {
        assert_eq!(split(&plan(2, Model::Closed), 3).unwrap_err(), SplitError::FewerUsers { users: 2, workers: 3 });
        assert_eq!(split(&plan(2, Model::Closed), 0).unwrap_err(), SplitError::NoWorkers);
    }
}
