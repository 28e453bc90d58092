//! What the report's charts show, computed from validation predictions: per-task metrics,
//! reliability bins, threshold sweeps and regression pairs.

use ndarray::Array2;

use crate::bundle::TaskEntry;
use crate::data::{Targets, TaskKind};
use crate::eval::{
    classification_metrics, multilabel_metrics, regression_metrics, ClassificationMetrics,
    MultilabelMetrics, RegressionMetrics,
};
use crate::nn::special::argmax;

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct ReliabilityBin {
    /// Lower edge of the bin's confidence range.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Predictions in the bin.
    pub count: usize,
    /// Their mean confidence.
    pub mean_confidence: f64,
    /// The fraction of them that were right (or positive, for per-label probabilities).
    pub accuracy: f64,
}

/// Equal-width bins over [0, 1] of `confidence` against `hit`; empty bins are left out.
pub fn reliability(confidence: &[f32], hit: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for (&c, &h) in confidence.iter().zip(hit) {
        let b = ((c.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += c as f64;
        acc[b].2 += usize::from(h);
    }
    acc.into_iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(b, (count, sum, hits))| ReliabilityBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count,
            mean_confidence: sum / count as f64,
            accuracy: hits as f64 / count as f64,
        })
        .collect()
}

/// Expected calibration error: the count-weighted mean |accuracy − confidence| over bins.
pub fn expected_calibration_error(bins: &[ReliabilityBin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.count).sum();
    if n == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| b.count as f64 * (b.accuracy - b.mean_confidence).abs())
        .sum::<f64>()
        / n as f64
}

/// F1 of `positive` when predicting positive at `score >= t`, for `steps + 1` thresholds evenly
/// spaced over [0, 1].
pub fn threshold_f1_curve(scores: &[f32], positive: &[bool], steps: usize) -> Vec<(f64, f64)> {
    let steps = steps.max(1);
    (0..=steps)
        .map(|i| {
            let t = i as f64 / steps as f64;
            let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
            for (&s, &p) in scores.iter().zip(positive) {
                match (s as f64 >= t, p) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    _ => {}
                }
            }
            let d = 2 * tp + fp + fn_;
            (
                t,
                if d == 0 {
                    0.0
                } else {
                    2.0 * tp as f64 / d as f64
                },
            )
        })
        .collect()
}

/// One label's threshold sweep and the threshold the model uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdCurve {
    /// The label.
    pub label: String,
    /// (threshold, F1) points.
    pub points: Vec<(f64, f64)>,
    /// The tuned (or default) decision threshold.
    pub chosen: f64,
}

/// A task's validation results in the shape the charts need.
#[derive(Debug, Clone)]
pub enum TaskAnalysis {
    /// Multiclass or binary.
    Classes {
        /// Metrics with the model's decision rule (argmax, or the binary threshold).
        metrics: ClassificationMetrics,
        /// Reliability of the top-class confidence (multiclass) or positive probability (binary).
        reliability: Vec<ReliabilityBin>,
        /// Threshold sweep of the positive class (binary only).
        curve: Option<ThresholdCurve>,
    },
    /// Multi-label.
    Labels {
        /// Metrics at the model's thresholds.
        metrics: MultilabelMetrics,
        /// Reliability of every label probability, pooled.
        reliability: Vec<ReliabilityBin>,
        /// Threshold sweeps of the most frequent labels.
        curves: Vec<ThresholdCurve>,
    },
    /// Regression.
    Values {
        /// Metrics.
        metrics: RegressionMetrics,
        /// True values.
        truth: Vec<f32>,
        /// Predicted values.
        pred: Vec<f32>,
    },
}

/// Reliability bins used by the report.
pub const RELIABILITY_BINS: usize = 10;
/// Threshold steps of the F1 sweeps.
pub const THRESHOLD_STEPS: usize = 100;
/// Multi-label tasks plot the threshold sweeps of at most this many labels (the most frequent).
pub const MAX_THRESHOLD_LABELS: usize = 6;

/// Analyzes one task from its probabilities (or values) `[n, outputs]` and targets; None when
/// the targets do not match the task kind.
pub fn analyze(task: &TaskEntry, probs: &Array2<f32>, targets: &Targets) -> Option<TaskAnalysis> {
    let labels = &task.spec.labels;
    match (task.spec.kind, targets) {
        (TaskKind::Multiclass, Targets::Class(truth)) => {
            let (pred, conf): (Vec<usize>, Vec<f32>) = probs
                .rows()
                .into_iter()
                .map(|r| {
                    let j = argmax(r.iter());
                    (j, r[j])
                })
                .unzip();
            let hit: Vec<bool> = pred.iter().zip(truth).map(|(p, t)| p == t).collect();
            Some(TaskAnalysis::Classes {
                metrics: classification_metrics(labels, truth, &pred, None),
                reliability: reliability(&conf, &hit, RELIABILITY_BINS),
                curve: None,
            })
        }
        (TaskKind::Binary, Targets::Class(truth)) => {
            let th = task.thresholds.first().copied().unwrap_or(0.5);
            let scores: Vec<f32> = probs.column(0).to_vec();
            let pred: Vec<usize> = scores.iter().map(|&s| usize::from(s >= th)).collect();
            let pos: Vec<bool> = truth.iter().map(|&t| t == 1).collect();
            Some(TaskAnalysis::Classes {
                metrics: classification_metrics(labels, truth, &pred, Some(&scores)),
                reliability: reliability(&scores, &pos, RELIABILITY_BINS),
                curve: Some(ThresholdCurve {
                    label: labels.get(1).cloned().unwrap_or_default(),
                    points: threshold_f1_curve(&scores, &pos, THRESHOLD_STEPS),
                    chosen: th as f64,
                }),
            })
        }
        (TaskKind::Multilabel, Targets::MultiHot(rows)) => {
            let k = probs.ncols();
            let scores: Vec<Vec<f32>> = probs.rows().into_iter().map(|r| r.to_vec()).collect();
            let th = |j: usize| task.thresholds.get(j).copied().unwrap_or(0.5);
            let pred: Vec<Vec<f32>> = scores
                .iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(j, &s)| f32::from(u8::from(s >= th(j))))
                        .collect()
                })
                .collect();
            let metrics = multilabel_metrics(labels, rows, &pred, &scores);
            let conf: Vec<f32> = probs.iter().copied().collect();
            let hit: Vec<bool> = rows
                .iter()
                .flat_map(|r| r.iter().map(|&x| x > 0.5))
                .collect();
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by_key(|&j| std::cmp::Reverse(metrics.per_label[j].support));
            let curves = order
                .into_iter()
                .take(MAX_THRESHOLD_LABELS)
                .map(|j| {
                    let pos: Vec<bool> = rows.iter().map(|r| r[j] > 0.5).collect();
                    ThresholdCurve {
                        label: labels[j].clone(),
                        points: threshold_f1_curve(
                            &probs.column(j).to_vec(),
                            &pos,
                            THRESHOLD_STEPS,
                        ),
                        chosen: th(j) as f64,
                    }
                })
                .collect();
            Some(TaskAnalysis::Labels {
                metrics,
                reliability: reliability(&conf, &hit, RELIABILITY_BINS),
                curves,
            })
        }
        (TaskKind::Regression, Targets::Value(truth)) => {
            let pred: Vec<f32> = probs.column(0).to_vec();
            Some(TaskAnalysis::Values {
                metrics: regression_metrics(truth, &pred),
                truth: truth.clone(),
                pred,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TaskSpec;

    fn entry(kind: TaskKind, labels: &[&str], thresholds: Vec<f32>) -> TaskEntry {
        TaskEntry {
            spec: TaskSpec {
                name: "t".into(),
                kind,
                labels: labels.iter().map(|s| s.to_string()).collect(),
            },
            thresholds,
        }
    }

    #[test]
    fn reliability_bins_by_hand() {
        // .05 (hit) and .15 (miss) fall in bins 0 and 1; .95 and 1.0 (both hits) in bin 9.
        let b = reliability(&[0.05, 0.15, 0.95, 1.0], &[true, false, true, true], 10);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].count, b[0].accuracy), (1, 1.0));
        assert_eq!((b[1].count, b[1].accuracy), (1, 0.0));
        assert_eq!(b[2].count, 2);
        assert!((b[2].mean_confidence - 0.975).abs() < 1e-6);
        // |1-.05|, |0-.15|, |1-.975|x2 -> (.95 + .15 + .05) / 4
        assert!((expected_calibration_error(&b) - 1.15 / 4.0).abs() < 1e-6);
    }

    #[test]
    fn threshold_curve_by_hand() {
        let c = threshold_f1_curve(&[0.9, 0.2], &[true, false], 2);
        // t=0: tp1 fp1 -> 2/3 ; t=.5: tp1 -> 1 ; t=1: fn1 -> 0
        assert_eq!(c.len(), 3);
        assert!((c[0].1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c[1], (0.5, 1.0));
        assert_eq!(c[2], (1.0, 0.0));
    }

    #[test]
    fn each_kind_is_analyzed() {
        let p = Array2::from_shape_vec((2, 2), vec![0.8, 0.2, 0.3, 0.7]).unwrap();
        let a = analyze(
            &entry(TaskKind::Multiclass, &["a", "b"], vec![]),
            &p,
            &Targets::Class(vec![0, 0]),
        );
        match a {
            Some(TaskAnalysis::Classes { metrics, curve, .. }) => {
                assert_eq!(metrics.confusion, vec![vec![1, 1], vec![0, 0]]);
                assert!(curve.is_none());
            }
            o => panic!("{o:?}"),
        }
        let p = Array2::from_shape_vec((2, 1), vec![0.8, 0.3]).unwrap();
        let a = analyze(
            &entry(TaskKind::Binary, &["ham", "spam"], vec![0.5]),
            &p,
            &Targets::Class(vec![1, 0]),
        );
        assert!(
            matches!(a, Some(TaskAnalysis::Classes { curve: Some(c), .. }) if c.label == "spam")
        );
        let p = Array2::from_shape_vec((2, 2), vec![0.8, 0.2, 0.3, 0.7]).unwrap();
        let a = analyze(
            &entry(TaskKind::Multilabel, &["x", "y"], vec![0.5, 0.5]),
            &p,
            &Targets::MultiHot(vec![vec![1., 0.], vec![1., 1.]]),
        );
        // The more frequent label's curve comes first.
        assert!(matches!(a, Some(TaskAnalysis::Labels { curves, .. }) if curves[0].label == "x"));
        let p = Array2::from_shape_vec((2, 1), vec![1.0, 2.0]).unwrap();
        let a = analyze(
            &entry(TaskKind::Regression, &[], vec![]),
            &p,
            &Targets::Value(vec![1.0, 3.0]),
        );
        assert!(
            matches!(a, Some(TaskAnalysis::Values { metrics, .. }) if (metrics.mae - 0.5).abs() < 1e-9)
        );
        assert!(analyze(
            &entry(TaskKind::Regression, &[], vec![]),
            &p,
            &Targets::Class(vec![0, 1])
        )
        .is_none());
    }
}
