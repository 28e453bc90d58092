//! The aggregates of a comparison: mean and sample standard deviation over seeds, whether two
//! of them clearly differ, and one summary per arm.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Arm, Run};

/// Mean and sample standard deviation of one quantity over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Arithmetic mean (0 for no values).
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator; 0 for fewer than two values).
    pub sd: f64,
    /// Number of values.
    pub n: usize,
}

impl Stat {
    /// The statistic of `values`.
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat {
                mean: 0.0,
                sd: 0.0,
                n,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            0.0
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Stat { mean, sd, n }
    }

    /// Standard error of the difference of two means: √(sd_a²/n_a + sd_b²/n_b).
    pub fn se_diff(&self, other: &Stat) -> f64 {
        let part = |s: &Stat| {
            if s.n == 0 {
                0.0
            } else {
                s.sd * s.sd / s.n as f64
            }
        };
        (part(self) + part(other)).sqrt()
    }

    /// Whether the means differ by more than twice [`Stat::se_diff`] (and both have at least two
    /// values): a difference seed noise is unlikely to explain.
    pub fn clearly_differs(&self, other: &Stat) -> bool {
        self.n >= 2 && other.n >= 2 && (self.mean - other.mean).abs() > 2.0 * self.se_diff(other)
    }

    /// `mean ± sd` with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!("{:.*} ± {:.*}", decimals, self.mean, decimals, self.sd)
    }
}

/// The aggregate of one arm over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The arm.
    pub arm: Arm,
    /// Number of runs (seeds).
    pub runs: usize,
    /// Seconds to the best validation epoch.
    pub seconds_to_best: Stat,
    /// Total training seconds.
    pub train_seconds: Stat,
    /// Best validation loss.
    pub best_valid_loss: Stat,
    /// Each headline test metric.
    pub test: BTreeMap<String, Stat>,
    /// Parameters training updated (the same in every run of an arm).
    pub trainable_parameters: usize,
    /// Peak memory above the run's start, in MiB (None where not measured).
    pub peak_memory_mib: Option<Stat>,
}

impl ArmSummary {
    /// Aggregates `runs` (all of one arm).
    pub fn of(arm: Arm, runs: &[&Run], metrics: &[String]) -> ArmSummary {
        let col =
            |f: &dyn Fn(&Run) -> f64| Stat::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
        ArmSummary {
            arm,
            runs: runs.len(),
            seconds_to_best: col(&|r| r.seconds_to_best),
            train_seconds: col(&|r| r.train_seconds),
            best_valid_loss: col(&|r| r.best_valid_loss),
            test: metrics
                .iter()
                .map(|m| {
                    let v: Vec<f64> = runs.iter().filter_map(|r| r.test.get(m).copied()).collect();
                    (m.clone(), Stat::of(&v))
                })
                .collect(),
            trainable_parameters: runs.first().map_or(0, |r| r.trainable_parameters),
            peak_memory_mib: runs
                .iter()
                .map(|r| r.peak_memory_bytes.map(|b| b as f64 / (1u64 << 20) as f64))
                .collect::<Option<Vec<f64>>>()
                .filter(|v| !v.is_empty())
                .map(|v| Stat::of(&v)),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::Value;

    pub(crate) fn stat(values: &[f64]) -> Stat {
        Stat::of(values)
    }

    pub(crate) fn summary(arm: Arm, time: &[f64], f1: &[f64]) -> ArmSummary {
        let mut test = BTreeMap::new();
        test.insert("macro_f1".to_string(), stat(f1));
        ArmSummary {
            arm,
            runs: f1.len(),
            seconds_to_best: stat(time),
            train_seconds: stat(time),
            best_valid_loss: stat(&[0.5; 3]),
            test,
            trainable_parameters: 100,
            peak_memory_mib: None,
        }
    }

    #[test]
    fn mean_and_sample_sd() {
        let s = stat(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12, "{}", s.sd);
        assert_eq!(s.n, 4);
        assert_eq!(stat(&[7.0]).sd, 0.0);
        assert_eq!(stat(&[]).mean, 0.0);
        assert_eq!(stat(&[2.0, 2.0, 2.0]).sd, 0.0);
        assert_eq!(stat(&[0.81234, 0.8]).show(2), "0.81 ± 0.01");
    }

    #[test]
    fn clear_difference_needs_more_than_two_standard_errors() {
        let a = stat(&[0.80, 0.81, 0.82]);
        let b = stat(&[0.70, 0.71, 0.72]);
        assert!(a.clearly_differs(&b));
        let c = stat(&[0.805, 0.815, 0.825]);
        assert!(!a.clearly_differs(&c));
        // One value each: no spread, never called clear.
        assert!(!stat(&[1.0]).clearly_differs(&stat(&[2.0])));
    }

    #[test]
    fn arm_summary_aggregates_only_the_given_runs() {
        let run = |seed: u64, f1: f64, t: f64| Run {
            arm: Arm::Joint,
            seed,
            seconds_to_best: t,
            train_seconds: 2.0 * t,
            best_valid_loss: 0.1 * seed as f64,
            best_epoch: 3,
            epochs: [("joint".to_string(), 5)].into_iter().collect(),
            unfrozen: None,
            test: [("macro_f1".to_string(), f1)].into_iter().collect(),
            test_metrics: Value::Null,
            valid_metrics: Value::Null,
            trainable_parameters: 1234,
            peak_memory_bytes: Some((seed + 1) << 20),
        };
        let runs = [run(0, 0.5, 1.0), run(1, 0.7, 3.0)];
        let refs: Vec<&Run> = runs.iter().collect();
        let s = ArmSummary::of(Arm::Joint, &refs, &["macro_f1".to_string()]);
        assert_eq!(s.runs, 2);
        assert!((s.test["macro_f1"].mean - 0.6).abs() < 1e-12);
        assert_eq!(s.seconds_to_best.mean, 2.0);
        assert_eq!(s.train_seconds.mean, 4.0);
        assert!((s.best_valid_loss.mean - 0.05).abs() < 1e-12);
        assert_eq!(s.trainable_parameters, 1234);
        assert_eq!(s.peak_memory_mib.unwrap().mean, 1.5, "1 and 2 MiB");
    }
}
