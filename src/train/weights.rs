//! Fixed task weights from a finished run: inverse-variance weighting.
//!
//! Uncertainty weighting (Kendall et al., 2018) learns one variance σₜ² per task and weighs its
//! loss by 1/σₜ²; at the optimum of that objective σₜ² equals the task's loss (its residual
//! variance, for a Gaussian task). This finder takes that estimate from a run's history
//! instead, as fixed weights a later run can use (`[loss] task_weights`): σₜ² is task t's mean
//! validation loss over the settled second half of the run's last stage, and wₜ = 1/σₜ²,
//! scaled so that the weights average 1.

use std::collections::BTreeMap;

use super::stage::EpochRecord;
use crate::error::{Error, Result};

/// Inverse-variance weights, and what they were computed from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InverseVariance {
    /// Weight per task name, averaging 1.
    pub weights: BTreeMap<String, f32>,
    /// Each task's variance estimate σₜ² (its mean validation loss over the epochs used).
    pub variances: BTreeMap<String, f32>,
    /// The stage whose epochs were used.
    pub stage: String,
    /// The epochs used (0-based, inclusive).
    pub epochs: (usize, usize),
}

/// Inverse-variance weights for `tasks` (in the order the records list their losses) from
/// `history`: the last stage's epochs that carry every task's validation loss, their second
/// half (at least one epoch). Fails without such epochs or with a task whose loss is not a
/// positive number.
pub fn inverse_variance(history: &[EpochRecord], tasks: &[String]) -> Result<InverseVariance> {
    if tasks.len() < 2 {
        return Err(Error::invalid(
            "task weights need at least two tasks trained together",
        ));
    }
    let stage = history
        .iter()
        .rev()
        .find(|r| r.task_losses.len() == tasks.len())
        .map(|r| r.stage.clone())
        .ok_or_else(|| {
            Error::invalid(
                "the training history has no per-task validation losses (bundles trained \
                 before tandem recorded them have none): retrain to get them",
            )
        })?;
    let epochs: Vec<&EpochRecord> = history
        .iter()
        .filter(|r| r.stage == stage && r.task_losses.len() == tasks.len())
        .collect();
    let settled = &epochs[epochs.len() / 2..];
    let mut variances = BTreeMap::new();
    let mut inverse = Vec::with_capacity(tasks.len());
    for (t, name) in tasks.iter().enumerate() {
        let mean =
            settled.iter().map(|r| r.task_losses[t] as f64).sum::<f64>() / settled.len() as f64;
        if !(mean.is_finite() && mean > 0.0) {
            return Err(Error::invalid(format!(
                "task `{name}`'s validation loss is {mean}: inverse-variance weights need a \
                 positive loss for every task"
            )));
        }
        variances.insert(name.clone(), mean as f32);
        inverse.push(1.0 / mean);
    }
    let scale = inverse.len() as f64 / inverse.iter().sum::<f64>();
    let weights = tasks
        .iter()
        .zip(&inverse)
        .map(|(n, w)| (n.clone(), (w * scale) as f32))
        .collect();
    Ok(InverseVariance {
        weights,
        variances,
        stage,
        epochs: (settled[0].epoch, settled[settled.len() - 1].epoch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stage: &str, epoch: usize, losses: &[f32]) -> EpochRecord {
        EpochRecord {
            stage: stage.into(),
            epoch,
            epochs: 10,
            train_loss: 1.0,
            valid_loss: losses.iter().sum(),
            metric: None,
            monitored: None,
            task_losses: losses.to_vec(),
            lr: 1e-3,
            elapsed: 0.0,
        }
    }

    fn names() -> Vec<String> {
        vec!["topic".into(), "spam".into()]
    }

    #[test]
    fn weights_are_the_inverse_mean_losses_of_the_last_stages_second_half() {
        let mut h = vec![rec("stage1", 0, &[9.0, 9.0]), rec("stage1", 1, &[9.0, 9.0])];
        // Stage 2: epochs 0-1 are left out; 2-3 average to 2.0 and 0.5.
        h.push(rec("stage2", 0, &[5.0, 5.0]));
        h.push(rec("stage2", 1, &[4.0, 1.0]));
        h.push(rec("stage2", 2, &[2.5, 0.4]));
        h.push(rec("stage2", 3, &[1.5, 0.6]));
        let w = inverse_variance(&h, &names()).unwrap();
        assert_eq!(w.stage, "stage2");
        assert_eq!(w.epochs, (2, 3));
        assert_eq!(w.variances["topic"], 2.0);
        assert_eq!(w.variances["spam"], 0.5);
        // 1/2 and 2, scaled to average 1: 0.4 and 1.6.
        assert!((w.weights["topic"] - 0.4).abs() < 1e-6, "{w:?}");
        assert!((w.weights["spam"] - 1.6).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn histories_without_per_task_losses_or_with_one_task_are_refused() {
        let old = vec![rec("stage2", 0, &[])];
        let e = inverse_variance(&old, &names()).unwrap_err();
        assert!(e.message().contains("retrain"), "{}", e.message());
        let e = inverse_variance(&[rec("heads", 0, &[1.0])], &names()[..1]).unwrap_err();
        assert!(e.message().contains("two tasks"), "{}", e.message());
        let e = inverse_variance(&[rec("heads", 0, &[1.0, 0.0])], &names()).unwrap_err();
        assert!(e.message().contains("`spam`"), "{}", e.message());
    }
}
