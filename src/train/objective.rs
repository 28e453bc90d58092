//! Per-task training objectives: the loss and its gradient for one task's head outputs, from the
//! task kind and the loss config (cross-entropy or focal, class weights, label smoothing,
//! pos_weight, MSE or Huber on standardized targets).

use ndarray::{Array2, ArrayView2};

use super::config::{ClassLoss, ClassWeights, LossConfig, RegressionLoss};
use crate::data::{Targets, TaskKind};
use crate::error::{Error, Result};
use crate::nn::loss::{self, ClassWeighting};

/// One task's targets in training form plus what its loss needs.
#[derive(Debug, Clone)]
pub struct Objective {
    kind: TaskKind,
    /// Multiclass / binary class indices.
    classes: Vec<usize>,
    /// Binary / multi-label 0-1 matrix, or standardized regression values `[n, 1]`.
    dense: Array2<f32>,
    /// Per-class weights (multiclass) or per-output pos_weight (binary, multi-label).
    weights: Option<Vec<f32>>,
    config: LossConfig,
}

/// Mean and std for standardizing regression targets (std floored so constants don't explode).
pub fn target_scale(targets: &Targets) -> (f32, f32) {
    match targets {
        Targets::Value(v) if !v.is_empty() => {
            let n = v.len() as f64;
            let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
            (m as f32, (var.sqrt() as f32).max(1e-6))
        }
        _ => (0.0, 1.0),
    }
}

fn scheme(w: ClassWeights) -> ClassWeighting {
    match w {
        ClassWeights::None => ClassWeighting::None,
        ClassWeights::Balanced => ClassWeighting::Balanced,
        ClassWeights::EffectiveNumber => ClassWeighting::EffectiveNumber { beta: 0.999 },
        ClassWeights::Sqrt => ClassWeighting::Sqrt,
    }
}

impl Objective {
    /// Builds the objective of a task over its training `targets`. Class weights are computed
    /// from these (training) counts; `scale` standardizes regression targets.
    pub fn new(
        kind: TaskKind,
        n_outputs: usize,
        targets: &Targets,
        scale: (f32, f32),
        config: &LossConfig,
    ) -> Result<Objective> {
        let n = targets.len();
        let mut obj = Objective {
            kind,
            classes: vec![],
            dense: Array2::zeros((0, 0)),
            weights: None,
            config: config.clone(),
        };
        match (kind, targets) {
            (TaskKind::Multiclass, Targets::Class(c)) => {
                let mut counts = vec![0usize; n_outputs];
                c.iter().for_each(|&i| counts[i] += 1);
                if config.class_weights != ClassWeights::None {
                    obj.weights = Some(loss::class_weights(&counts, scheme(config.class_weights))?);
                }
                obj.classes = c.clone();
            }
            (TaskKind::Binary, Targets::Class(c)) => {
                obj.dense = Array2::from_shape_fn((n, 1), |(i, _)| c[i] as f32);
                let pos = c.iter().filter(|&&x| x == 1).count();
                obj.weights = pos_weights(&[n - pos], &[pos], config.class_weights)?;
                obj.classes = c.clone();
            }
            (TaskKind::Multilabel, Targets::MultiHot(rows)) => {
                obj.dense = Array2::from_shape_fn((n, n_outputs), |(i, j)| rows[i][j]);
                let pos: Vec<usize> = (0..n_outputs)
                    .map(|j| rows.iter().filter(|r| r[j] > 0.5).count())
                    .collect();
                let neg: Vec<usize> = pos.iter().map(|p| n - p).collect();
                obj.weights = pos_weights(&neg, &pos, config.class_weights)?;
            }
            (TaskKind::Regression, Targets::Value(v)) => {
                obj.dense = Array2::from_shape_fn((n, 1), |(i, _)| (v[i] - scale.0) / scale.1);
            }
            _ => return Err(Error::invalid("targets do not match the task kind")),
        }
        Ok(obj)
    }

    /// Loss (mean over the batch) and gradient wrt `raw` for the rows `idx`.
    pub fn loss(&self, raw: ArrayView2<'_, f32>, idx: &[usize]) -> Result<(f32, Array2<f32>)> {
        let c = &self.config;
        match self.kind {
            TaskKind::Multiclass => {
                let t: Vec<usize> = idx.iter().map(|&i| self.classes[i]).collect();
                match c.classification {
                    ClassLoss::CrossEntropy => loss::softmax_cross_entropy(
                        raw,
                        &t,
                        &loss::CrossEntropyOptions {
                            class_weights: self.weights.as_deref(),
                            label_smoothing: c.label_smoothing,
                            sample_weights: None,
                        },
                    ),
                    ClassLoss::Focal => loss::softmax_focal(
                        raw,
                        &t,
                        &loss::FocalOptions {
                            gamma: c.focal_gamma,
                            alpha: self.weights.as_deref(),
                            sample_weights: None,
                        },
                    ),
                }
            }
            TaskKind::Binary | TaskKind::Multilabel => {
                let t = self.dense.select(ndarray::Axis(0), idx);
                match c.classification {
                    ClassLoss::CrossEntropy => loss::bce_with_logits(
                        raw,
                        t.view(),
                        &loss::BceOptions {
                            pos_weight: self.weights.as_deref(),
                            mask: None,
                        },
                    ),
                    ClassLoss::Focal => loss::sigmoid_focal(
                        raw,
                        t.view(),
                        &loss::SigmoidFocalOptions {
                            gamma: c.focal_gamma,
                            alpha: None,
                            mask: None,
                        },
                    ),
                }
            }
            TaskKind::Regression => {
                let t = self.dense.select(ndarray::Axis(0), idx);
                match c.regression {
                    RegressionLoss::Mse => loss::mse(raw, t.view(), None),
                    RegressionLoss::Huber => loss::huber(raw, t.view(), c.huber_delta, None),
                }
            }
        }
    }
}

/// BCE `pos_weight` per output from negative/positive counts: `None` for no weighting, else the
/// positive/negative balance the scheme gives, expressed as weight(pos) / weight(neg).
fn pos_weights(neg: &[usize], pos: &[usize], w: ClassWeights) -> Result<Option<Vec<f32>>> {
    if w == ClassWeights::None {
        return Ok(None);
    }
    neg.iter()
        .zip(pos)
        .map(|(&n, &p)| {
            let cw = loss::class_weights(&[n, p], scheme(w))?;
            Ok(if cw[0] > 0.0 { cw[1] / cw[0] } else { 1.0 })
        })
        .collect::<Result<Vec<f32>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_pos_weight_is_neg_over_pos() {
        // Balanced weights n/(2·count): neg 90 -> 100/180, pos 10 -> 100/20; ratio = 9.
        let w = pos_weights(&[90], &[10], ClassWeights::Balanced)
            .unwrap()
            .unwrap();
        assert!((w[0] - 9.0).abs() < 1e-4, "{w:?}");
        assert!(pos_weights(&[90], &[10], ClassWeights::None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn regression_targets_are_standardized() {
        let t = Targets::Value(vec![1.0, 3.0]);
        let s = target_scale(&t);
        assert_eq!(s, (2.0, 1.0));
        let o = Objective::new(TaskKind::Regression, 1, &t, s, &LossConfig::default()).unwrap();
        let raw = Array2::from_shape_vec((2, 1), vec![-1.0, 1.0]).unwrap();
        let (l, g) = o.loss(raw.view(), &[0, 1]).unwrap();
        assert!(l.abs() < 1e-6);
        assert!(g.iter().all(|x| x.abs() < 1e-6));
    }

    #[test]
    fn mismatched_targets_are_an_error() {
        let t = Targets::Value(vec![1.0]);
        assert!(Objective::new(
            TaskKind::Multiclass,
            2,
            &t,
            (0.0, 1.0),
            &LossConfig::default()
        )
        .is_err());
    }
}
