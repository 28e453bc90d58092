//! Per-task training objectives: the loss and its gradient for one task's head outputs, from the
//! task kind and the loss config (cross-entropy or focal, class weights, label smoothing,
//! pos_weight, MSE or Huber on standardized targets).

use ndarray::{Array2, ArrayView2};

use super::config::{ClassLoss, ClassWeights, LossConfig, Monitor, RegressionLoss};
use crate::data::{Targets, TaskKind};
use crate::error::{Error, Result};
use crate::nn::loss;
use crate::nn::special::argmax;

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
    /// Regression (mean, std) that `dense` was standardized with.
    scale: (f32, f32),
    /// The task's fixed weight in the combined loss (`[loss] task_weights`).
    task_weight: f32,
    /// Distillation's soft targets, when a teacher's outputs are given.
    soft: Option<Soft>,
    /// The head's output width.
    outputs: usize,
}

/// A teacher's soft targets for every row, tempered: class distributions (multiclass), label
/// probabilities (binary, multi-label), standardized values (regression).
#[derive(Debug, Clone)]
struct Soft {
    targets: Array2<f32>,
    /// α: the loss is (1 − α) · hard + α · soft.
    weight: f32,
    /// T: both sides' logits are divided by it, and the soft loss is scaled by T².
    temperature: f32,
}

/// ln(1 + eˣ), without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
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

impl Objective {
    /// This objective with the fixed weight `w` in the combined loss.
    pub fn with_task_weight(mut self, w: f32) -> Objective {
        self.task_weight = w;
        self
    }

    /// The task's fixed weight in the combined loss (1 unless set).
    pub fn task_weight(&self) -> f32 {
        self.task_weight
    }

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
            scale,
            task_weight: 1.0,
            soft: None,
            outputs: n_outputs,
        };
        match (kind, targets) {
            (TaskKind::Multiclass, Targets::Class(c)) => {
                let mut counts = vec![0usize; n_outputs];
                c.iter().for_each(|&i| counts[i] += 1);
                if config.class_weights != ClassWeights::None {
                    obj.weights = Some(loss::class_weights(
                        &counts,
                        config.class_weights.weighting(),
                    )?);
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

    /// This objective distilling a teacher: `teacher` holds its outputs for every row, in the
    /// task's output space (probabilities, or values in target units for regression); the
    /// loss becomes (1 − `weight`) · the labels' loss + `weight` · the soft-target loss at
    /// `temperature` (see [`Objective::soft_loss`]).
    pub fn with_teacher(
        mut self,
        teacher: ArrayView2<'_, f32>,
        weight: f32,
        temperature: f32,
    ) -> Result<Objective> {
        let n = match self.kind {
            TaskKind::Multiclass => self.classes.len(),
            _ => self.dense.nrows(),
        };
        let width = self.outputs;
        if teacher.nrows() != n || teacher.ncols() != width || teacher.ncols() == 0 {
            return Err(Error::invalid(format!(
                "teacher outputs are {} x {}, the task needs {n} x {width}",
                teacher.nrows(),
                teacher.ncols()
            )));
        }
        if let Some(v) = teacher.iter().find(|v| !v.is_finite()) {
            return Err(Error::numeric(format!("a teacher output is {v}")));
        }
        let classification = self.kind != TaskKind::Regression;
        if classification && teacher.iter().any(|&p| !(0.0..=1.0).contains(&p)) {
            return Err(Error::invalid("teacher probabilities must be in [0, 1]"));
        }
        let t = temperature as f64;
        let targets = match self.kind {
            TaskKind::Multiclass => {
                let mut out = Array2::zeros(teacher.raw_dim());
                for (mut o, row) in out.rows_mut().into_iter().zip(teacher.rows()) {
                    let logs: Vec<f64> = row
                        .iter()
                        .map(|&p| (p as f64).max(1e-12).ln() / t)
                        .collect();
                    let m = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logs.iter().map(|l| (l - m).exp()).sum();
                    for (o, l) in o.iter_mut().zip(&logs) {
                        *o = ((l - m).exp() / z) as f32;
                    }
                }
                out
            }
            TaskKind::Binary | TaskKind::Multilabel => teacher.mapv(|p| {
                let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
                let logit = (p / (1.0 - p)).ln() / t;
                (1.0 / (1.0 + (-logit).exp())) as f32
            }),
            TaskKind::Regression => teacher.mapv(|v| (v - self.scale.0) / self.scale.1),
        };
        self.soft = Some(Soft {
            targets,
            weight,
            temperature,
        });
        Ok(self)
    }

    /// The soft-target loss on raw outputs for the rows `idx`, and its gradient: for
    /// multiclass T² · KL(teacher_T ‖ softmax(raw / T)), for binary and multi-label
    /// T² · KL between the tempered Bernoulli distributions (mean over labels), for regression
    /// the squared error to the teacher's standardized value; each a mean over rows. None
    /// without a teacher.
    pub fn soft_loss(&self, raw: ArrayView2<'_, f32>, idx: &[usize]) -> Option<(f32, Array2<f32>)> {
        let soft = self.soft.as_ref()?;
        let t = soft.temperature as f64;
        let n = idx.len().max(1) as f64;
        let mut grad = Array2::zeros(raw.raw_dim());
        let mut total = 0.0f64;
        for (r, &i) in idx.iter().enumerate() {
            let target = soft.targets.row(i);
            let z = raw.row(r);
            match self.kind {
                TaskKind::Multiclass => {
                    let zs: Vec<f64> = z.iter().map(|&v| v as f64 / t).collect();
                    let m = zs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + zs.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    for (j, (&p, zj)) in target.iter().zip(&zs).enumerate() {
                        let (p, log_q) = (p as f64, zj - lse);
                        if p > 0.0 {
                            total += t * t * p * (p.ln() - log_q);
                        }
                        grad[[r, j]] = (t * (log_q.exp() - p) / n) as f32;
                    }
                }
                TaskKind::Binary | TaskKind::Multilabel => {
                    let k = z.len().max(1) as f64;
                    for (j, (&p, &zj)) in target.iter().zip(z.iter()).enumerate() {
                        let (p, x) = (p as f64, zj as f64 / t);
                        // ln σ(x) and ln(1 − σ(x)), stable for large |x|.
                        let log_q = -softplus(-x);
                        let log_not_q = -softplus(x);
                        let kl = p * (p.max(1e-300).ln() - log_q)
                            + (1.0 - p) * ((1.0 - p).max(1e-300).ln() - log_not_q);
                        total += t * t * kl / k;
                        grad[[r, j]] = (t * (log_q.exp() - p) / (n * k)) as f32;
                    }
                }
                TaskKind::Regression => {
                    let d = z[0] as f64 - target[0] as f64;
                    total += d * d;
                    grad[[r, 0]] = (2.0 * d / n) as f32;
                }
            }
        }
        Some(((total / n) as f32, grad))
    }

    /// Loss (mean over the batch) and gradient wrt `raw` for the rows `idx`: the labels'
    /// loss, mixed with the soft-target loss when a teacher is given.
    pub fn loss(&self, raw: ArrayView2<'_, f32>, idx: &[usize]) -> Result<(f32, Array2<f32>)> {
        let (hard, grad) = self.hard_loss(raw, idx)?;
        match (&self.soft, self.soft_loss(raw, idx)) {
            (Some(s), Some((soft, g_soft))) => {
                let a = s.weight;
                Ok((
                    (1.0 - a) * hard + a * soft,
                    grad * (1.0 - a) + &(g_soft * a),
                ))
            }
            _ => Ok((hard, grad)),
        }
    }

    /// The labels' loss (mean over the batch) and its gradient wrt `raw` for the rows `idx`.
    fn hard_loss(&self, raw: ArrayView2<'_, f32>, idx: &[usize]) -> Result<(f32, Array2<f32>)> {
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

impl Objective {
    /// The epoch's validation metric on raw head outputs for every row: macro-F1 for
    /// classification (argmax; binary and multi-label at probability 0.5, since thresholds are
    /// tuned only after training), RMSE in target units for regression.
    pub fn metric(&self, raw: ArrayView2<'_, f32>) -> f32 {
        match self.kind {
            TaskKind::Multiclass => {
                let k = raw.ncols();
                let mut counts = vec![(0usize, 0usize, 0usize); k]; // tp, fp, fn per class
                for (row, &t) in raw.rows().into_iter().zip(&self.classes) {
                    let p = argmax(row.iter());
                    if p == t {
                        counts[t].0 += 1;
                    } else {
                        counts[p].1 += 1;
                        counts[t].2 += 1;
                    }
                }
                macro_f1(&counts)
            }
            TaskKind::Binary => {
                let mut counts = vec![(0usize, 0usize, 0usize); 2];
                for (&r, &t) in raw.column(0).iter().zip(&self.classes) {
                    let p = usize::from(r >= 0.0);
                    if p == t {
                        counts[t].0 += 1;
                    } else {
                        counts[p].1 += 1;
                        counts[t].2 += 1;
                    }
                }
                macro_f1(&counts)
            }
            TaskKind::Multilabel => {
                let counts: Vec<_> = (0..raw.ncols())
                    .map(|j| {
                        let mut c = (0usize, 0usize, 0usize);
                        for (&r, &t) in raw.column(j).iter().zip(self.dense.column(j)) {
                            match (r >= 0.0, t > 0.5) {
                                (true, true) => c.0 += 1,
                                (true, false) => c.1 += 1,
                                (false, true) => c.2 += 1,
                                _ => {}
                            }
                        }
                        c
                    })
                    .collect();
                macro_f1(&counts)
            }
            TaskKind::Regression => {
                let n = raw.nrows().max(1) as f64;
                let sq: f64 = raw
                    .column(0)
                    .iter()
                    .zip(self.dense.column(0))
                    .map(|(&p, &t)| ((p - t) as f64).powi(2))
                    .sum();
                ((sq / n).sqrt() * self.scale.1 as f64) as f32
            }
        }
    }
}

impl Objective {
    /// The task's kind.
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    /// The number `monitor` names on raw head outputs for every row (`valid_loss` is the
    /// caller's sum over tasks; here it is this task's loss). Classification decides by argmax
    /// or at probability 0.5; RMSE and MAE are in target units.
    pub fn score(&self, monitor: Monitor, raw: ArrayView2<'_, f32>) -> Result<f32> {
        if !monitor.fits(self.kind) {
            return Err(Error::invalid(format!(
                "monitor {} does not exist for a {:?} task",
                monitor.name(),
                self.kind
            )));
        }
        Ok(match monitor {
            Monitor::ValidLoss | Monitor::TaskLoss => {
                let idx: Vec<usize> = (0..raw.nrows()).collect();
                self.loss(raw, &idx)?.0
            }
            Monitor::MacroF1 | Monitor::Rmse => self.metric(raw),
            Monitor::Accuracy => self.accuracy(raw),
            Monitor::Mae => {
                let n = raw.nrows().max(1) as f64;
                let abs: f64 = raw
                    .column(0)
                    .iter()
                    .zip(self.dense.column(0))
                    .map(|(&p, &t)| ((p - t) as f64).abs())
                    .sum();
                (abs / n * self.scale.1 as f64) as f32
            }
        })
    }

    /// Share of rows decided right: argmax (multiclass), probability 0.5 (binary), every label
    /// at 0.5 (multi-label, as scikit-learn's `accuracy_score`).
    fn accuracy(&self, raw: ArrayView2<'_, f32>) -> f32 {
        let n = raw.nrows();
        if n == 0 {
            return 0.0;
        }
        let right = match self.kind {
            TaskKind::Multiclass => raw
                .rows()
                .into_iter()
                .zip(&self.classes)
                .filter(|(row, &t)| argmax(row.iter()) == t)
                .count(),
            TaskKind::Binary => raw
                .column(0)
                .iter()
                .zip(&self.classes)
                .filter(|(&r, &t)| usize::from(r >= 0.0) == t)
                .count(),
            _ => raw
                .rows()
                .into_iter()
                .zip(self.dense.rows())
                .filter(|(r, t)| r.iter().zip(t).all(|(&r, &t)| (r >= 0.0) == (t > 0.5)))
                .count(),
        };
        right as f32 / n as f32
    }
}

/// Mean F1 over classes from (tp, fp, fn) counts, as `eval` computes it.
fn macro_f1(counts: &[(usize, usize, usize)]) -> f32 {
    crate::eval::macro_f1(counts) as f32
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
            let cw = loss::class_weights(&[n, p], w.weighting())?;
            Ok(if cw[0] > 0.0 { cw[1] / cw[0] } else { 1.0 })
        })
        .collect::<Result<Vec<f32>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task kind with a teacher: `n` rows, raw outputs, teacher outputs.
    fn distilled(kind: TaskKind, weight: f32, t: f32) -> (Objective, Array2<f32>, Array2<f32>) {
        let n = 7;
        let (width, targets) = match kind {
            TaskKind::Multiclass => (4, Targets::Class((0..n).map(|i| i % 4).collect())),
            TaskKind::Binary => (1, Targets::Class((0..n).map(|i| i % 2).collect())),
            TaskKind::Multilabel => (
                3,
                Targets::MultiHot((0..n).map(|i| vec![(i % 2) as f32, 1.0, 0.0]).collect()),
            ),
            TaskKind::Regression => (1, Targets::Value((0..n).map(|i| i as f32 * 0.7).collect())),
        };
        let scale = target_scale(&targets);
        let raw = Array2::from_shape_fn((n, width), |(i, j)| {
            ((i * 5 + j * 3) as f32 * 0.37).sin() * 2.0
        });
        let teacher = match kind {
            TaskKind::Multiclass => {
                let logits = Array2::from_shape_fn((n, width), |(i, j)| {
                    ((i + 2 * j) as f32 * 0.9).cos() * 3.0
                });
                crate::nn::loss::softmax(logits.view())
            }
            TaskKind::Regression => {
                Array2::from_shape_fn((n, 1), |(i, _)| (i as f32 * 1.3).sin() * 3.0)
            }
            _ => Array2::from_shape_fn((n, width), |(i, j)| {
                0.05 + 0.9 * ((i * 7 + j * 2) % 10) as f32 / 10.0
            }),
        };
        let obj = Objective::new(kind, width, &targets, scale, &LossConfig::default())
            .unwrap()
            .with_teacher(teacher.view(), weight, t)
            .unwrap();
        (obj, raw, teacher)
    }

    #[test]
    fn distillation_gradients_match_finite_differences() {
        for kind in [
            TaskKind::Multiclass,
            TaskKind::Binary,
            TaskKind::Multilabel,
            TaskKind::Regression,
        ] {
            let (obj, raw, _) = distilled(kind, 0.7, 2.5);
            let idx: Vec<usize> = vec![6, 0, 3, 4];
            let rows = raw.select(ndarray::Axis(0), &idx);
            for (which, f) in [
                (
                    "soft",
                    &(|r: ArrayView2<'_, f32>| obj.soft_loss(r, &idx).unwrap())
                        as &dyn Fn(ArrayView2<'_, f32>) -> (f32, Array2<f32>),
                ),
                ("mixed", &|r: ArrayView2<'_, f32>| {
                    obj.loss(r, &idx).unwrap()
                }),
            ] {
                let (_, g) = f(rows.view());
                let eps = 1e-2f32;
                for ((i, j), &gij) in g.indexed_iter() {
                    let mut plus = rows.clone();
                    plus[[i, j]] += eps;
                    let mut minus = rows.clone();
                    minus[[i, j]] -= eps;
                    let fd = (f(plus.view()).0 - f(minus.view()).0) / (2.0 * eps);
                    assert!(
                        (fd - gij).abs() < 2e-3 + 1e-2 * gij.abs(),
                        "{kind:?} {which} [{i},{j}]: {fd} vs {gij}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_student_that_matches_its_teacher_has_no_soft_loss() {
        let t = 3.0f32;
        for kind in [
            TaskKind::Multiclass,
            TaskKind::Binary,
            TaskKind::Multilabel,
            TaskKind::Regression,
        ] {
            let (obj, _, teacher) = distilled(kind, 1.0, t);
            let idx: Vec<usize> = (0..teacher.nrows()).collect();
            // The teacher's own logits (values, standardized, for regression).
            let raw = match kind {
                TaskKind::Multiclass => teacher.mapv(f32::ln),
                TaskKind::Regression => teacher.mapv(|v| (v - obj.scale.0) / obj.scale.1),
                _ => teacher.mapv(|p| (p / (1.0 - p)).ln()),
            };
            let (soft, grad) = obj.soft_loss(raw.view(), &idx).unwrap();
            assert!(soft.abs() < 1e-5, "{kind:?}: {soft}");
            assert!(grad.iter().all(|g| g.abs() < 1e-5), "{kind:?}");
            // Weight 1: the labels do not count.
            let (mixed, _) = obj.loss(raw.view(), &idx).unwrap();
            assert!((mixed - soft).abs() < 1e-6, "{kind:?}");
        }
        // A teacher of the wrong shape, or not probabilities, is refused.
        let (obj, _, teacher) = distilled(TaskKind::Multiclass, 0.5, 1.0);
        let wrong = teacher.slice(ndarray::s![.., ..3]).to_owned();
        assert!(Objective::clone(&obj)
            .with_teacher(wrong.view(), 0.5, 1.0)
            .is_err());
        let over = teacher.mapv(|p| p * 2.0);
        assert!(obj.with_teacher(over.view(), 0.5, 1.0).is_err());
    }

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
    fn monitored_numbers_match_hand_counts() {
        let loss = LossConfig::default();
        // Multiclass: rows decide 0, 1, 1, 2 against truth 0, 1, 2, 2 -> 3 of 4 right.
        let t = Targets::Class(vec![0, 1, 2, 2]);
        let o = Objective::new(TaskKind::Multiclass, 3, &t, (0.0, 1.0), &loss).unwrap();
        let raw = ndarray::array![
            [2.0, 0.0, 0.0],
            [0.0, 2.0, 0.0],
            [0.0, 2.0, 1.0],
            [0.0, 0.0, 2.0]
        ];
        assert_eq!(o.score(Monitor::Accuracy, raw.view()).unwrap(), 0.75);
        // F1 per class: 1, 2/3, 2/3.
        let f1 = o.score(Monitor::MacroF1, raw.view()).unwrap();
        assert!((f1 - (1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0).abs() < 1e-6);
        assert!(o.score(Monitor::Rmse, raw.view()).is_err());
        // Multi-label: a row counts only with every label right.
        let t = Targets::MultiHot(vec![vec![1.0, 1.0], vec![0.0, 1.0], vec![0.0, 0.0]]);
        let o = Objective::new(TaskKind::Multilabel, 2, &t, (0.0, 1.0), &loss).unwrap();
        let raw = ndarray::array![[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]];
        assert!((o.score(Monitor::Accuracy, raw.view()).unwrap() - 2.0 / 3.0).abs() < 1e-6);
        // Regression, standardized with (mean 2, std 4): errors in target units are 4 and 8.
        let t = Targets::Value(vec![2.0, 6.0]);
        let o = Objective::new(TaskKind::Regression, 1, &t, (2.0, 4.0), &loss).unwrap();
        let raw = ndarray::array![[1.0], [-1.0]];
        assert!((o.score(Monitor::Mae, raw.view()).unwrap() - 6.0).abs() < 1e-5);
        let rmse = o.score(Monitor::Rmse, raw.view()).unwrap();
        assert!((rmse - 40f32.sqrt()).abs() < 1e-5);
        assert!(o.score(Monitor::Accuracy, raw.view()).is_err());
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
    fn metric_is_macro_f1_or_rmse_in_target_units() {
        let cfg = LossConfig::default();
        // truth 0,0,1,1,2 ; argmax 0,1,1,1,0 -> macro F1 (.5 + .8 + 0) / 3, as in eval's test.
        let t = Targets::Class(vec![0, 0, 1, 1, 2]);
        let o = Objective::new(TaskKind::Multiclass, 3, &t, (0.0, 1.0), &cfg).unwrap();
        let pred = [0, 1, 1, 1, 0];
        let raw = Array2::from_shape_fn((5, 3), |(i, j)| f32::from(u8::from(pred[i] == j)));
        assert!((o.metric(raw.view()) - 1.3 / 3.0).abs() < 1e-6);
        // Binary at logit 0: all right -> 1.
        let t = Targets::Class(vec![0, 1]);
        let o = Objective::new(TaskKind::Binary, 1, &t, (0.0, 1.0), &cfg).unwrap();
        let raw = Array2::from_shape_vec((2, 1), vec![-2.0, 3.0]).unwrap();
        assert!((o.metric(raw.view()) - 1.0).abs() < 1e-6);
        // Regression: standardized error 1 with std 2 -> RMSE 2 in target units.
        let t = Targets::Value(vec![1.0, 5.0]);
        let s = target_scale(&t);
        assert_eq!(s, (3.0, 2.0));
        let o = Objective::new(TaskKind::Regression, 1, &t, s, &cfg).unwrap();
        let raw = Array2::from_shape_vec((2, 1), vec![0.0, 0.0]).unwrap();
        assert!((o.metric(raw.view()) - 2.0).abs() < 1e-6);
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
