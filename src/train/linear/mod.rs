//! The linear recipe: one L2-regularized linear head per task on the frozen embeddings,
//! solved to convergence, its regularization chosen by k-fold cross-validation for
//! classification (what scikit-learn's `LogisticRegressionCV` does) and by exact leave-one-out
//! for ridge regression (what `RidgeCV` does).
//! Built for small data, where MLP heads, a 20% hold-out and early stopping on it are noise:
//! every example trains the final model, and every example is scored once out-of-fold, which
//! gives the validation metrics and, with enough examples, the tuned thresholds. The result is an ordinary bundle
//! (embedding-only mode, heads without hidden layers), served like any other.

pub mod loo;
pub mod select;
pub mod solve;

use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use self::loo::leave_one_out;
use self::select::{cross_validate, default_grid, fold_of, folds_for, Score, MAX_FOLDS};
use self::solve::{solve, LinearLoss, LinearSolution, Problem, SolveOptions};
use super::config::{Mode, TrainConfig};
use super::examples::Examples;
use super::run::{check_finite, set_thresholds, TrainReport, Trained};
use super::stage::{EpochRecord, Progress, StageReport};
use crate::data::{Targets, TaskKind, TaskSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::eval::evaluate_probs;
use crate::heads::{predict_arrays, probabilities, Architecture, Heads, Network};
use crate::nn::{ActivationKind, Layer, MlpConfig};

/// What cross-validation chose for one task.
#[derive(Debug, Clone, Serialize)]
pub struct LinearTaskReport {
    /// The task.
    pub task: String,
    /// Inverse regularization strength chosen (None: too few examples per class to
    /// cross-validate, so scikit-learn's default 1.0 was used).
    pub c: Option<f64>,
    /// Folds used (0 when none; the number of examples for leave-one-out).
    pub folds: usize,
    /// Each grid point: `C`, the out-of-fold macro-F1 (classification) or −MSE (regression on
    /// standardized targets), and the out-of-fold loss.
    pub grid: Vec<(f64, f64, f64)>,
    /// L-BFGS iterations of the final fit.
    pub iterations: u64,
}

impl LinearTaskReport {
    /// How `C` was chosen, in words: `5-fold` or `leave-one-out` (k-fold never uses more than
    /// [`MAX_FOLDS`] folds, leave-one-out one per example).
    pub fn scheme(&self) -> String {
        if self.folds > MAX_FOLDS {
            "leave-one-out".to_string()
        } else {
            format!("{}-fold", self.folds)
        }
    }
}

/// The heads' architecture: the embedding straight into one linear layer per task.
pub fn linear_architecture(emb_dim: usize, outputs: Vec<usize>) -> Architecture {
    let mut arch = Architecture::embedding_only(emb_dim, outputs);
    arch.head = MlpConfig {
        hidden: vec![],
        activation: ActivationKind::Gelu,
        dropout: 0.0,
        layer_norm: false,
        residual: false,
    };
    arch
}

/// One task's targets as the linear loss reads them, with the rows' classes (stratification
/// and class weights) and, for regression, the standardization applied.
struct TaskData {
    loss: LinearLoss,
    y: Array2<f64>,
    classes: Option<Vec<usize>>,
    scale: (f32, f32),
}

impl TaskData {
    fn new(spec: &TaskSpec, targets: &Targets) -> Result<TaskData> {
        let n = targets.len();
        Ok(match (spec.kind, targets) {
            (TaskKind::Multiclass, Targets::Class(c)) => {
                let k = spec.labels.len();
                let mut y = Array2::zeros((n, k));
                for (i, &c) in c.iter().enumerate() {
                    y[[i, c]] = 1.0;
                }
                TaskData {
                    loss: LinearLoss::Softmax,
                    y,
                    classes: Some(c.clone()),
                    scale: (0.0, 1.0),
                }
            }
            (TaskKind::Binary, Targets::Class(c)) => TaskData {
                loss: LinearLoss::Sigmoid,
                y: Array2::from_shape_fn((n, 1), |(i, _)| (c[i] == 1) as u8 as f64),
                classes: Some(c.clone()),
                scale: (0.0, 1.0),
            },
            (TaskKind::Multilabel, Targets::MultiHot(rows)) => TaskData {
                loss: LinearLoss::Sigmoid,
                y: Array2::from_shape_fn((n, spec.labels.len()), |(i, j)| {
                    f64::from(rows[i][j] > 0.5)
                }),
                classes: None,
                scale: (0.0, 1.0),
            },
            (TaskKind::Regression, Targets::Value(v)) => {
                let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n.max(1) as f64;
                let var = v
                    .iter()
                    .map(|&x| (f64::from(x) - mean).powi(2))
                    .sum::<f64>()
                    / n.max(1) as f64;
                let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                TaskData {
                    loss: LinearLoss::Squared,
                    y: Array2::from_shape_fn((n, 1), |(i, _)| (f64::from(v[i]) - mean) / std),
                    classes: None,
                    scale: (mean as f32, std as f32),
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "task `{}`: targets do not match its kind",
                    spec.name
                )))
            }
        })
    }

    /// Per-row loss weights from the config's class weighting (None when it is `none` or the
    /// task has no classes).
    fn weights(&self, config: &TrainConfig, spec: &TaskSpec) -> Result<Option<Array1<f64>>> {
        let Some(classes) = &self.classes else {
            return Ok(None);
        };
        if config.loss.class_weights == super::config::ClassWeights::None {
            return Ok(None);
        }
        let mut counts = vec![0usize; spec.labels.len().max(2)];
        for &c in classes {
            counts[c] += 1;
        }
        let w = crate::nn::loss::class_weights(&counts, config.loss.class_weights.weighting())?;
        Ok(Some(classes.iter().map(|&c| f64::from(w[c])).collect()))
    }
}

/// Trains the linear recipe on every example of `all`: cross-validation scores each example
/// out-of-fold, which chooses `C` and tunes the thresholds. The validation metrics are those
/// of `valid` when it holds examples (a hold-out the model never saw), else the out-of-fold
/// ones. `progress` gets one record per grid point of each task and may cancel. Deterministic
/// for a given seed and data.
pub fn train_linear(
    tasks: &[TaskSpec],
    all: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<Trained> {
    fit_linear(tasks, all, valid, config, progress, None)
}

/// Refits the linear recipe `like` on every example of `all` at the `C` its cross-validation
/// chose, keeping its thresholds and validation metrics: one solve per task instead of a
/// cross-validated grid (at 15,000 examples, seconds instead of a minute). For a recipe
/// chosen on a hold-out and then trained on everything.
pub fn refit_linear(
    tasks: &[TaskSpec],
    all: &Examples,
    config: &TrainConfig,
    like: &Trained,
    progress: Progress<'_>,
) -> Result<Trained> {
    let empty = all.select(&[]);
    fit_linear(tasks, all, &empty, config, progress, Some(like))
}

fn fit_linear(
    tasks: &[TaskSpec],
    all: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    progress: Progress<'_>,
    like: Option<&Trained>,
) -> Result<Trained> {
    config.validate()?;
    let fixed: Option<&Vec<LinearTaskReport>> = match like {
        None => None,
        Some(t) => match &t.report.linear {
            Some(r) if r.len() == tasks.len() && t.heads.tasks.len() == tasks.len() => Some(r),
            _ => {
                return Err(Error::invalid(
                    "a linear refit needs a linear recipe of the same tasks",
                ))
            }
        },
    };
    if tasks.is_empty()
        || all.targets.len() != tasks.len()
        || (!valid.is_empty() && valid.targets.len() != tasks.len())
    {
        return Err(Error::invalid("each task needs targets"));
    }
    if !valid.is_empty() {
        check_finite(valid.emb.view(), "validation embeddings")?;
        if valid.emb.ncols() != all.emb.ncols() {
            return Err(Error::invalid(format!(
                "validation embeddings are {} wide, training ones {}",
                valid.emb.ncols(),
                all.emb.ncols()
            )));
        }
    }
    if all.is_empty() || all.emb.ncols() == 0 {
        return Err(Error::invalid(
            "the linear recipe needs examples with embeddings",
        ));
    }
    check_finite(all.emb.view(), "embeddings")?;
    let started = Instant::now();
    let x = all.emb.mapv(f64::from);
    let grid = default_grid();
    let mut solutions = Vec::with_capacity(tasks.len());
    let mut reports = Vec::with_capacity(tasks.len());
    let mut history = Vec::new();
    let mut out_of_fold: Vec<Option<Array2<f32>>> = Vec::with_capacity(tasks.len());
    let mut scales = Vec::with_capacity(tasks.len());
    for (spec, targets) in tasks.iter().zip(&all.targets) {
        let data = TaskData::new(spec, targets)?;
        let weights = data.weights(config, spec)?;
        let folds = match fixed {
            // At the chosen C: no cross-validation (None below).
            Some(_) => None,
            None => folds_for(all.len(), data.classes.as_deref()),
        };
        let mut grid_report = Vec::new();
        let (c, oof, k) = match folds {
            Some(k) => {
                let mut each = |g: usize, c: f64, s: &Score| {
                    grid_report.push((c, s.primary, s.loss));
                    let rec = EpochRecord {
                        stage: format!("linear {}", spec.name),
                        epoch: g,
                        epochs: grid.len(),
                        train_loss: f32::NAN,
                        valid_loss: s.loss as f32,
                        metric: Some(s.primary as f32),
                        monitored: None,
                        task_losses: Vec::new(),
                        lr: c as f32,
                        elapsed: started.elapsed().as_secs_f64(),
                    };
                    history.push(rec.clone());
                    progress(&rec)
                };
                // Ridge regression scores every example by exact leave-one-out (as `RidgeCV`
                // does); the classification losses have no such shortcut.
                let selection = if data.loss == LinearLoss::Squared && all.len() >= 3 {
                    leave_one_out(x.view(), data.y.view(), &grid, &mut each)?
                } else {
                    let fold = fold_of(all.len(), data.classes.as_deref(), k, config.seed);
                    cross_validate(
                        x.view(),
                        data.y.view(),
                        weights.as_ref().map(|w| w.view()),
                        data.loss,
                        &grid,
                        &fold,
                        k,
                        &mut each,
                    )?
                }
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Cancelled,
                        "training cancelled by the progress callback (cross-validating)",
                    )
                })?;
                (
                    Some(selection.c),
                    Some(selection.out_of_fold.mapv(|v| v as f32)),
                    selection.folds,
                )
            }
            None => match fixed {
                Some(r) => {
                    let r = &r[solutions.len()];
                    grid_report = r.grid.clone();
                    (r.c, None, r.folds)
                }
                None => (None, None, 0),
            },
        };
        let problem = Problem {
            x: x.view(),
            y: data.y.view(),
            weights: weights.as_ref().map(|w| w.view()),
            loss: data.loss,
            c: c.unwrap_or(1.0),
        };
        let zeros = LinearSolution::zeros(data.y.ncols(), x.ncols());
        let fit = solve(problem, &zeros, SolveOptions::default())?;
        reports.push(LinearTaskReport {
            task: spec.name.clone(),
            c,
            folds: k,
            grid: grid_report,
            iterations: fit.iterations,
        });
        solutions.push(fit);
        out_of_fold.push(oof);
        scales.push(data.scale);
    }
    let outputs = solutions.iter().map(|s| s.bias.len()).collect();
    let mut arch = linear_architecture(x.ncols(), outputs);
    arch.target_scale = scales;
    let network = network_of(arch, &solutions)?;
    let mut heads = Heads::untuned(network, None, tasks);
    let mut valid_metrics = validate(&mut heads, &out_of_fold, &all.targets, config, progress)?;
    if let Some(like) = like {
        for (t, l) in heads.tasks.iter_mut().zip(&like.heads.tasks) {
            t.thresholds = l.thresholds.clone();
        }
        valid_metrics = like.report.valid_metrics.clone();
    }
    if !valid.is_empty() {
        let none = Array2::zeros((valid.len(), 0));
        let probs = predict_arrays(&heads, valid.emb.view(), none.view(), None)?;
        valid_metrics = evaluate_probs(&heads.tasks, &probs, &valid.targets);
    }
    let seconds = started.elapsed().as_secs_f64();
    let best_epoch = reports
        .first()
        .and_then(|r| r.grid.iter().position(|g| Some(g.0) == r.c))
        .unwrap_or(0);
    let stage = StageReport {
        stage: "linear".into(),
        epochs_run: history.len(),
        best_epoch,
        best_valid_loss: history
            .get(best_epoch)
            .map_or(f32::NAN, |r: &EpochRecord| r.valid_loss),
        monitor: "cross-validated loss (min)".into(),
        best_monitored: history
            .get(best_epoch)
            .map_or(f32::NAN, |r: &EpochRecord| r.valid_loss),
        learned_weights: None,
        seconds,
        seconds_to_best: seconds,
        history,
    };
    let report = TrainReport {
        mode: Mode::EmbeddingOnly,
        stages: vec![stage],
        valid_metrics,
        train_seconds: seconds,
        seconds_to_best: seconds,
        n_train: all.len(),
        n_valid: match (like, valid.len(), out_of_fold.iter().all(Option::is_some)) {
            (Some(l), _, _) => l.report.n_valid,
            (None, 0, true) => all.len(),
            (None, v, _) => v,
        },
        linear: Some(reports),
    };
    Ok(Trained {
        heads,
        report,
        top: None,
    })
}

/// The network of an architecture from [`linear_architecture`], holding the solutions.
fn network_of(arch: Architecture, solutions: &[LinearSolution]) -> Result<Network> {
    // Every value is overwritten; the seed only satisfies the constructor.
    let mut net = Network::new(arch, &mut ChaCha8Rng::seed_from_u64(0))?;
    for (head, s) in net.heads.iter_mut().zip(solutions) {
        let mut params = head.params_mut();
        let [weight, bias] = params.as_mut_slice() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "a linear head holds a weight and a bias",
            ));
        };
        if weight.value.shape() != [s.weight.nrows(), s.weight.ncols()]
            || bias.value.shape() != [s.bias.len()]
        {
            return Err(Error::new(
                ErrorKind::Internal,
                "linear head of another shape",
            ));
        }
        for (v, &w) in weight.value.iter_mut().zip(s.weight.iter()) {
            *v = w as f32;
        }
        for (v, &b) in bias.value.iter_mut().zip(s.bias.iter()) {
            *v = b as f32;
        }
    }
    Ok(net)
}

/// Fewest examples of a decision's rarer side (positives or negatives of a binary task or of
/// any label) before the linear recipe tunes its thresholds on out-of-fold outputs. Measured
/// (docs/results.md, few-shot): at 8 to 64 examples per class, thresholds tuned for the best
/// out-of-fold F1 lowered test macro-F1 against 0.5 on SMS spam (0.791 vs 0.803 at 8 per
/// class, 0.834 vs 0.863 at 16, 0.904 vs 0.913 at 64) and Reuters (0.494 vs 0.563 at 8, 0.679
/// vs 0.709 at 64); a threshold fitted to a few dozen outputs is noise.
const MIN_TO_TUNE: usize = 100;

/// The size of the rarer side of the task's least balanced decision (classes of a binary or
/// multiclass task, positives and negatives of each label); 0 for regression.
fn smallest_class(targets: &Targets) -> usize {
    match targets {
        Targets::Class(c) => {
            let pos = c.iter().filter(|&&x| x == 1).count();
            pos.min(c.len() - pos)
        }
        Targets::MultiHot(rows) => {
            let labels = rows.first().map_or(0, Vec::len);
            (0..labels)
                .map(|j| {
                    let pos = rows.iter().filter(|r| r[j] > 0.5).count();
                    pos.min(rows.len() - pos)
                })
                .min()
                .unwrap_or(0)
        }
        Targets::Value(_) => 0,
    }
}

/// Thresholds and validation metrics from the out-of-fold outputs: a task without them (too
/// few examples per class to cross-validate) keeps the default thresholds and has no metrics.
fn validate(
    heads: &mut Heads,
    out_of_fold: &[Option<Array2<f32>>],
    targets: &[Targets],
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<serde_json::Value> {
    let arch = heads.network.arch.clone();
    let mut evaluated = (Vec::new(), Vec::new(), Vec::new());
    for (t, oof) in out_of_fold.iter().enumerate() {
        let task = &mut heads.tasks[t..t + 1];
        let probs = match oof {
            Some(z) => {
                let mut scale = arch.clone();
                scale.target_scale = vec![arch.target_scale[t]];
                probabilities(task, &scale, std::slice::from_ref(z))
            }
            None => {
                // Default thresholds only: no outputs to tune them on.
                let k = arch.outputs[t];
                let mut tuning = config.clone();
                tuning.tune_thresholds = false;
                let zeros = vec![Array2::zeros((0, k))];
                set_thresholds(task, &zeros, &targets[t..t + 1], &tuning, progress)?;
                continue;
            }
        };
        let mut tuning = config.clone();
        tuning.tune_thresholds &= smallest_class(&targets[t]) >= MIN_TO_TUNE;
        set_thresholds(task, &probs, &targets[t..t + 1], &tuning, progress)?;
        evaluated.0.push(task[0].clone());
        evaluated
            .1
            .push(probs.into_iter().next().expect("one task"));
        evaluated.2.push(targets[t].clone());
    }
    if evaluated.0.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    Ok(evaluate_probs(&evaluated.0, &evaluated.1, &evaluated.2))
}

/// Raw outputs of a solution for `x` (f32 embeddings), for tests and tools.
pub fn outputs_of(s: &LinearSolution, x: ArrayView2<'_, f32>) -> Array2<f64> {
    s.outputs(x.mapv(f64::from).view())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian blobs per class in 6 dimensions, `per_class` examples each.
    fn blobs(per_class: usize, classes: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = per_class * classes;
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let x = Array2::from_shape_fn((n, 6), |(i, j)| {
            let centre = if j % classes == labels[i] { 1.5 } else { 0.0 };
            centre + rng.random_range(-1.0f32..1.0)
        });
        (x, labels)
    }

    fn examples(x: Array2<f32>, targets: Vec<Targets>) -> Examples {
        let n = x.nrows();
        Examples {
            emb: x,
            feats: Array2::zeros((n, 0)),
            targets,
            tokens: None,
            hidden: None,
            strata: None,
            soft: None,
        }
    }

    fn linear() -> TrainConfig {
        let mut c = TrainConfig {
            mode: Mode::EmbeddingOnly,
            ..TrainConfig::default()
        };
        c.head.kind = crate::train::config::HeadKind::Linear;
        c
    }

    fn none() -> Examples {
        examples(Array2::zeros((0, 6)), vec![])
    }

    fn multiclass(k: usize) -> TaskSpec {
        TaskSpec {
            name: "topic".into(),
            kind: TaskKind::Multiclass,
            labels: (0..k).map(|i| format!("c{i}")).collect(),
        }
    }

    #[test]
    fn learns_separable_classes_and_predicts_through_the_heads() {
        let (x, y) = blobs(16, 3, 1);
        let all = examples(x.clone(), vec![Targets::Class(y.clone())]);
        let trained =
            train_linear(&[multiclass(3)], &all, &none(), &linear(), &mut |_| true).unwrap();
        let r = &trained.report;
        let lin = r.linear.as_ref().unwrap();
        assert_eq!(lin[0].folds, 5);
        // The grid, up to GRID_PATIENCE points past the chosen C.
        let best = lin[0]
            .grid
            .iter()
            .position(|g| Some(g.0) == lin[0].c)
            .unwrap();
        assert_eq!(
            lin[0].grid.len(),
            (best + 1 + select::GRID_PATIENCE).min(10)
        );
        let f1 = r.valid_metrics["macro_f1"].as_f64().unwrap();
        assert!(f1 > 0.8, "out-of-fold macro-F1 {f1}");
        let probs = crate::heads::predict_arrays(
            &trained.heads,
            x.view(),
            Array2::zeros((x.nrows(), 0)).view(),
            None,
        )
        .unwrap();
        let right = probs[0]
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(p, &c)| crate::nn::special::argmax(p.iter()) == c)
            .count();
        assert!(
            right as f64 / y.len() as f64 > 0.9,
            "{right} of {}",
            y.len()
        );
    }

    #[test]
    fn same_seed_same_weights_and_the_seed_moves_the_folds() {
        let (x, y) = blobs(10, 2, 2);
        let spec = TaskSpec {
            name: "spam".into(),
            kind: TaskKind::Binary,
            labels: vec!["ham".into(), "spam".into()],
        };
        let all = examples(x, vec![Targets::Class(y)]);
        let run = |seed| {
            let config = TrainConfig { seed, ..linear() };
            train_linear(
                std::slice::from_ref(&spec),
                &all,
                &none(),
                &config,
                &mut |_| true,
            )
            .unwrap()
        };
        let (a, b) = (run(3), run(3));
        assert_eq!(a.heads.network.weights(), b.heads.network.weights());
        assert_eq!(a.heads.tasks, b.heads.tasks);
        assert_eq!(a.heads.tasks[0].thresholds.len(), 1);
    }

    #[test]
    fn regression_and_multilabel_and_tiny_classes() {
        let (x, y) = blobs(6, 2, 4);
        let values: Vec<f32> = x
            .rows()
            .into_iter()
            .map(|r| 3.0 * r[0] - r[1] + 10.0)
            .collect();
        let hot: Vec<Vec<f32>> = y.iter().map(|&c| vec![c as f32, 1.0 - c as f32]).collect();
        let tasks = [
            TaskSpec {
                name: "score".into(),
                kind: TaskKind::Regression,
                labels: vec![],
            },
            TaskSpec {
                name: "tags".into(),
                kind: TaskKind::Multilabel,
                labels: vec!["a".into(), "b".into()],
            },
        ];
        let all = examples(
            x.clone(),
            vec![Targets::Value(values.clone()), Targets::MultiHot(hot)],
        );
        let t = train_linear(&tasks, &all, &none(), &linear(), &mut |_| true).unwrap();
        let p = crate::heads::predict_arrays(
            &t.heads,
            x.view(),
            Array2::zeros((x.nrows(), 0)).view(),
            None,
        )
        .unwrap();
        let err: f32 = p[0]
            .column(0)
            .iter()
            .zip(&values)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / values.len() as f32;
        assert!(err < 0.5, "mean absolute error {err}");
        assert_eq!(t.heads.tasks[1].thresholds.len(), 2);
        // Ridge regression chooses C by leave-one-out (every example a fold); the multi-label
        // task by k-fold.
        let lin = t.report.linear.as_ref().unwrap();
        assert_eq!(
            (lin[0].folds, lin[0].scheme().as_str()),
            (12, "leave-one-out")
        );
        assert_eq!(lin[1].scheme(), "5-fold");
        // Its out-of-fold validation is every example's leave-one-out prediction.
        assert!(
            t.report.valid_metrics["tasks"]["score"]["rmse"]
                .as_f64()
                .unwrap()
                < 1.0
        );

        // One example of a class: no folds, C = 1, default thresholds, no metrics.
        let few = examples(
            x.slice(ndarray::s![0..3, ..]).to_owned(),
            vec![Targets::Class(vec![0, 1, 0])],
        );
        let spec = TaskSpec {
            name: "spam".into(),
            kind: TaskKind::Binary,
            labels: vec!["ham".into(), "spam".into()],
        };
        let t = train_linear(&[spec], &few, &none(), &linear(), &mut |_| true).unwrap();
        assert_eq!(t.report.linear.as_ref().unwrap()[0].c, None);
        assert_eq!(t.heads.tasks[0].thresholds, vec![0.5]);
        assert!(t.report.valid_metrics.is_null());
    }

    #[test]
    fn thresholds_are_tuned_only_with_enough_examples_of_each_side() {
        let spec = TaskSpec {
            name: "spam".into(),
            kind: TaskKind::Binary,
            labels: vec!["ham".into(), "spam".into()],
        };
        let thresholds = |per_class| {
            let (x, y) = blobs(per_class, 2, 9);
            let all = examples(x, vec![Targets::Class(y)]);
            let t = train_linear(
                std::slice::from_ref(&spec),
                &all,
                &none(),
                &linear(),
                &mut |_| true,
            )
            .unwrap();
            t.heads.tasks[0].thresholds.clone()
        };
        assert_eq!(thresholds(40), vec![0.5]);
        let tuned = thresholds(MIN_TO_TUNE + 20);
        assert!(
            tuned[0] > 0.0 && tuned[0] < 1.0 && tuned[0] != 0.5,
            "{tuned:?}"
        );
        assert_eq!(smallest_class(&Targets::Class(vec![0, 1, 1, 1])), 1);
        let hot = Targets::MultiHot(vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![1.0, 0.0]]);
        assert_eq!(smallest_class(&hot), 0);
    }

    #[test]
    fn cancelling_stops_with_cancelled_and_bad_input_is_refused() {
        let (x, y) = blobs(10, 2, 5);
        let all = examples(x.clone(), vec![Targets::Class(y.clone())]);
        let err = train_linear(&[multiclass(2)], &all, &none(), &linear(), &mut |r| {
            r.epoch < 2
        })
        .err()
        .unwrap();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        let mut bad = x;
        bad[[3, 2]] = f32::NAN;
        let err = train_linear(
            &[multiclass(2)],
            &examples(bad, vec![Targets::Class(y)]),
            &none(),
            &linear(),
            &mut |_| true,
        )
        .err()
        .unwrap();
        assert_eq!(err.kind(), ErrorKind::Numeric);
    }
}
