//! Orchestration: from texts and labels to trained heads, in any of the four modes.
//!
//! `texts ─► embeddings (cache) ─┐
//!  texts ─► metadata features ─► normalizer ─► stage 1: encoder + aux heads ─► freeze
//!                                └──────────────► stage 2: heads on [embedding ; code] ─► thresholds`

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};

use super::config::{HeadKind, Mode, TrainConfig};
use super::objective::{target_scale, Objective};
use super::stage::{fit, EpochRecord, Phase, Progress, StageData, StageReport};
use crate::backbone::TokenSeqs;
use crate::bundle::{BackboneRef, BundleManifest, FeatureSpecRef, TaskEntry, BUNDLE_FORMAT};
use crate::data::{stratified_split, Targets, TaskKind, TaskSpec};
use crate::error::{Error, Result};
use crate::eval::{
    best_f1_threshold, classification_metrics, multilabel_metrics, regression_metrics,
};
use crate::heads::{predict_arrays, Architecture, Heads, Network, Normalizer};
use crate::nn::Layer;

/// Training examples as arrays: embeddings and raw metadata features, row-aligned with targets.
#[derive(Debug, Clone)]
pub struct Examples {
    /// Embeddings `[n, d]` (0 columns when the mode does not use them).
    pub emb: Array2<f32>,
    /// Raw (un-normalized) metadata features `[n, f]` (0 columns when unused).
    pub feats: Array2<f32>,
    /// One target set per task.
    pub targets: Vec<Targets>,
    /// Per-token vectors of the same texts, for sequence heads (None for pooled heads).
    pub tokens: Option<TokenSeqs>,
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.first().map_or(0, Targets::len)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Examples {
        Examples {
            emb: self.emb.select(Axis(0), idx),
            feats: self.feats.select(Axis(0), idx),
            targets: self.targets.iter().map(|t| t.select(idx)).collect(),
            tokens: self.tokens.as_ref().map(|t| t.select(idx)),
        }
    }
}

/// What training produced besides the heads.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Mode trained.
    pub mode: Mode,
    /// Each stage's report.
    pub stages: Vec<StageReport>,
    /// Validation metrics per task, after threshold tuning.
    pub valid_metrics: Value,
    /// Wall time of all stages in seconds.
    pub train_seconds: f64,
    /// Wall time to the best epoch of the last stage, counting earlier stages in full.
    pub seconds_to_best: f64,
    /// Training and validation sizes.
    pub n_train: usize,
    /// Validation size.
    pub n_valid: usize,
}

/// Trained heads plus a bundle manifest ready to save.
pub struct Trained {
    /// The heads (network, normalizer, tasks with thresholds).
    pub heads: Heads,
    /// What happened.
    pub report: TrainReport,
}

/// Splits `all` into train and validation with the config's fraction, stratified by the first
/// task, seeded by the config's seed.
pub fn split_examples(all: &Examples, config: &TrainConfig) -> Result<(Examples, Examples)> {
    let (tr, va) = split_indices(all, config)?;
    Ok((all.select(&tr), all.select(&va)))
}

/// [`split_examples`], with the first task's spec to name the classes that are too small to
/// split, should there be any.
pub fn split_examples_of(
    all: &Examples,
    config: &TrainConfig,
    first_task: &TaskSpec,
) -> Result<(Examples, Examples)> {
    let (tr, va) = split_indices_of(all, config, Some(first_task))?;
    Ok((all.select(&tr), all.select(&va)))
}

/// The row indices [`split_examples`] puts in training and in validation, so that callers can
/// find the validation rows' other fields.
pub fn split_indices(all: &Examples, config: &TrainConfig) -> Result<(Vec<usize>, Vec<usize>)> {
    split_indices_of(all, config, None)
}

/// [`split_indices`], naming the too-small classes by the first task's labels when given.
pub fn split_indices_of(
    all: &Examples,
    config: &TrainConfig,
    first_task: Option<&TaskSpec>,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let strata = all
        .targets
        .first()
        .ok_or_else(|| Error::invalid("no tasks"))?
        .strata();
    let (tr, va) = stratified_split(&strata, config.valid_fraction, config.seed);
    if tr.is_empty() || va.is_empty() {
        return Err(Error::invalid(too_few_to_hold_out(
            &strata,
            all.len(),
            first_task,
        )));
    }
    Ok((tr, va))
}

/// Why no validation set could be held out: which classes are too small, not just how many
/// examples there are (300 examples of 300 classes is plenty of data but no split).
fn too_few_to_hold_out(strata: &[String], n: usize, task: Option<&TaskSpec>) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in strata {
        *counts.entry(s.as_str()).or_default() += 1;
    }
    let single: Vec<&str> = counts
        .iter()
        .filter(|(_, &c)| c < 2)
        .map(|(s, _)| *s)
        .collect();
    if single.is_empty() {
        return format!(
            "{n} examples are too few to hold out a validation set; add data or pass --valid"
        );
    }
    // Class strata are label indices: show the labels where the task is known.
    let name = |s: &str| -> String {
        match (task, s.parse::<usize>()) {
            (Some(t), Ok(i)) if matches!(t.kind, TaskKind::Multiclass | TaskKind::Binary) => {
                t.labels.get(i).cloned().unwrap_or_else(|| s.to_string())
            }
            _ => s.to_string(),
        }
    };
    let shown: Vec<String> = single
        .iter()
        .take(5)
        .map(|s| format!("`{}`", name(s)))
        .collect();
    format!(
        "no validation set can be held out of {n} examples: a class needs at least 2 examples \
         for one to be held out, and {} of the {} classes (of the first task) have only one ({}{}); \
         add examples of those classes or pass --valid",
        single.len(),
        counts.len(),
        shown.join(", "),
        if single.len() > shown.len() { ", ..." } else { "" }
    )
}

/// Trains heads for `tasks` on `train`, early-stopping and tuning thresholds on `valid`.
/// Deterministic for a given config (seed included) and data.
pub fn train(
    tasks: &[TaskSpec],
    train: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<Trained> {
    config.validate()?;
    if tasks.is_empty() || train.targets.len() != tasks.len() || valid.targets.len() != tasks.len()
    {
        return Err(Error::invalid(
            "each task needs training and validation targets",
        ));
    }
    if train.is_empty() || valid.is_empty() {
        return Err(Error::invalid(
            "training and validation sets must not be empty",
        ));
    }
    let uses_meta = config.mode != Mode::EmbeddingOnly;
    let uses_emb = config.mode != Mode::MetadataOnly;
    if uses_emb && train.emb.ncols() == 0 {
        return Err(Error::invalid(format!(
            "mode {} needs embeddings",
            config.mode.name()
        )));
    }
    if uses_meta && train.feats.ncols() == 0 {
        return Err(Error::invalid(format!(
            "mode {} needs metadata features",
            config.mode.name()
        )));
    }
    if uses_emb && config.head.kind == HeadKind::Sequence {
        for (name, ex) in [("training", train), ("validation", valid)] {
            match &ex.tokens {
                Some(t) if t.len() == ex.len() && t.dim() == train.emb.ncols() => {}
                Some(t) => {
                    return Err(Error::invalid(format!(
                        "{name} token sequences: {} of width {}, expected {} of width {}",
                        t.len(),
                        t.dim(),
                        ex.len(),
                        train.emb.ncols()
                    )))
                }
                None => {
                    return Err(Error::invalid(format!(
                        "sequence heads need the {name} texts' per-token vectors"
                    )))
                }
            }
        }
    }
    for (name, ex) in [("training", train), ("validation", valid)] {
        check_finite(ex.emb.view(), &format!("{name} embeddings"))?;
        check_finite(ex.feats.view(), &format!("{name} metadata features"))?;
        if let Some(t) = &ex.tokens {
            t.check_finite().map_err(|i| {
                Error::numeric(format!("{name} token vectors of text {i} are not finite"))
            })?;
        }
    }
    let outputs: Vec<usize> = tasks
        .iter()
        .map(|t| match t.kind {
            TaskKind::Multiclass | TaskKind::Multilabel => t.labels.len(),
            TaskKind::Binary | TaskKind::Regression => 1,
        })
        .collect();
    let scales: Vec<(f32, f32)> = train.targets.iter().map(target_scale).collect();
    let normalizer = uses_meta.then(|| {
        let refs: Vec<&Targets> = train.targets.iter().collect();
        Normalizer::fit(train.feats.view(), &refs, config.metadata.top_k)
    });
    let norm = |f: &Array2<f32>| match &normalizer {
        Some(n) => n.transform(f.view()),
        None => Array2::zeros((f.nrows(), 0)),
    };
    let (feats_t, feats_v) = (norm(&train.feats), norm(&valid.feats));
    let (emb_t, emb_v) = if uses_emb {
        (train.emb.view(), valid.emb.view())
    } else {
        (
            train.emb.slice(ndarray::s![.., ..0]),
            valid.emb.slice(ndarray::s![.., ..0]),
        )
    };
    let objectives = |targets: &[Targets]| -> Result<Vec<Objective>> {
        tasks
            .iter()
            .zip(targets)
            .enumerate()
            .map(|(t, (spec, tg))| {
                Objective::new(spec.kind, outputs[t], tg, scales[t], &config.loss)
            })
            .collect()
    };
    let (obj_t, obj_v) = (objectives(&train.targets)?, objectives(&valid.targets)?);
    let arch =
        Architecture::from_config(config, train.emb.ncols(), feats_t.ncols(), outputs, scales);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut net = Network::new(arch, &mut rng)?;
    let data = StageData {
        emb: emb_t,
        feats: feats_t.view(),
        objectives: &obj_t,
        valid_emb: emb_v,
        valid_feats: feats_v.view(),
        valid_objectives: &obj_v,
        tokens: train.tokens.as_ref().filter(|_| net.sequence.is_some()),
        valid_tokens: valid.tokens.as_ref().filter(|_| net.sequence.is_some()),
    };
    let mut stages = Vec::new();
    let mut before_last = 0.0;
    let seed = |k: u64| config.seed.wrapping_mul(1_000_003).wrapping_add(k);
    let mt = config.loss.multitask;
    match config.mode {
        Mode::MetadataOnly | Mode::TwoStage => {
            // Metadata-only is stage 1 of two-stage on its own.
            let name = if config.mode == Mode::TwoStage {
                "stage1"
            } else {
                "metadata"
            };
            let s1 = fit(
                name,
                &mut net,
                Phase::Metadata,
                &data,
                &config.metadata.stage,
                mt,
                seed(1),
                progress,
            )?;
            // Time to best counts a finished stage 1 in full before stage 2's best epoch.
            if config.mode == Mode::TwoStage {
                before_last = s1.seconds;
            }
            stages.push(s1);
        }
        _ => {}
    }
    match config.mode {
        Mode::MetadataOnly => {}
        Mode::TwoStage => {
            if let Some(e) = net.encoder.as_mut() {
                e.set_trainable("", false);
            }
            let unfreeze = config
                .unfreeze
                .at_epoch
                .map(|at| (at, config.unfreeze.lr_scale));
            stages.push(fit(
                "stage2",
                &mut net,
                Phase::Semantic { unfreeze },
                &data,
                &config.head.stage,
                mt,
                seed(2),
                progress,
            )?);
        }
        Mode::Joint | Mode::EmbeddingOnly => {
            let name = if config.mode == Mode::Joint {
                "joint"
            } else {
                "heads"
            };
            stages.push(fit(
                name,
                &mut net,
                Phase::Semantic { unfreeze: None },
                &data,
                &config.head.stage,
                mt,
                seed(2),
                progress,
            )?);
        }
    }
    // Everything trainable again: a saved model carries no freezing state.
    for p in net.params_mut() {
        p.trainable = true;
    }
    let mut heads = Heads {
        network: net,
        normalizer,
        tasks: tasks
            .iter()
            .map(|s| TaskEntry {
                spec: s.clone(),
                thresholds: vec![],
            })
            .collect(),
        version: 0,
    };
    let tokens_v = valid.tokens.as_ref();
    let probs = predict_arrays(&heads, emb_v, feats_v.view(), tokens_v)?;
    for (task, p) in heads.tasks.iter().zip(&probs) {
        check_finite(
            p.view(),
            &format!("task `{}`'s validation outputs", task.spec.name),
        )?;
    }
    if config.tune_thresholds {
        let tuned: Vec<usize> = (0..heads.tasks.len())
            .filter(|&t| {
                matches!(
                    heads.tasks[t].spec.kind,
                    TaskKind::Binary | TaskKind::Multilabel
                )
            })
            .collect();
        for (t, task) in heads.tasks.iter_mut().enumerate() {
            let Some(step) = tuned.iter().position(|&u| u == t) else {
                task.thresholds = default_thresholds(task.spec.kind, probs[t].ncols());
                continue;
            };
            // One report per tuned task, so a host can follow (and cancel) this phase too.
            let rec = EpochRecord {
                stage: "thresholds".into(),
                epoch: step,
                epochs: tuned.len(),
                train_loss: f32::NAN,
                valid_loss: f32::NAN,
                metric: None,
                lr: 0.0,
                elapsed: 0.0,
            };
            if !progress(&rec) {
                return Err(Error::new(
                    crate::ErrorKind::Cancelled,
                    "training cancelled by the progress callback (tuning thresholds)",
                ));
            }
            task.thresholds = tune_thresholds(task.spec.kind, &probs[t], &valid.targets[t])?;
        }
    } else {
        for (t, task) in heads.tasks.iter_mut().enumerate() {
            task.thresholds = default_thresholds(task.spec.kind, probs[t].ncols());
        }
    }
    let valid_metrics = evaluate_probs(&heads.tasks, &probs, &valid.targets);
    let last = stages.last().expect("at least one stage");
    let report = TrainReport {
        mode: config.mode,
        train_seconds: stages.iter().map(|s| s.seconds).sum(),
        seconds_to_best: before_last + last.seconds_to_best,
        stages,
        valid_metrics,
        n_train: train.len(),
        n_valid: valid.len(),
    };
    Ok(Trained { heads, report })
}

fn default_thresholds(kind: TaskKind, outputs: usize) -> Vec<f32> {
    match kind {
        TaskKind::Binary | TaskKind::Multilabel => vec![0.5; outputs],
        _ => vec![],
    }
}

fn tune_thresholds(kind: TaskKind, probs: &Array2<f32>, targets: &Targets) -> Result<Vec<f32>> {
    match (kind, targets) {
        (TaskKind::Binary, Targets::Class(c)) => {
            let pos: Vec<bool> = c.iter().map(|&x| x == 1).collect();
            Ok(vec![best_f1_threshold(&probs.column(0).to_vec(), &pos)?.0])
        }
        (TaskKind::Multilabel, Targets::MultiHot(rows)) => (0..probs.ncols())
            .map(|j| {
                let pos: Vec<bool> = rows.iter().map(|r| r[j] > 0.5).collect();
                Ok(best_f1_threshold(&probs.column(j).to_vec(), &pos)?.0)
            })
            .collect(),
        _ => Ok(default_thresholds(kind, probs.ncols())),
    }
}

/// A [`Numeric`](crate::ErrorKind::Numeric) error naming `what` when `a` holds NaN or an
/// infinity: training on such values, or tuning thresholds on them, cannot mean anything.
pub(crate) fn check_finite(a: ArrayView2<'_, f32>, what: &str) -> Result<()> {
    match a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some(((i, j), v)) => Err(Error::numeric(format!(
            "{what}: row {i}, column {j} is {v}; training diverged (lower the learning rate) or \
             its inputs were not finite"
        ))),
    }
}

/// Metrics of every task on given arrays (features already normalized), as JSON: per task
/// under `tasks`, and the first task's top-level numbers (`accuracy`, `macro_f1`, `micro_f1`;
/// or `mae`, `rmse`, `pearson`) at the top level.
/// `tokens` (the texts' per-token vectors) is needed by sequence heads.
pub fn evaluate_arrays(
    heads: &Heads,
    emb: ArrayView2<'_, f32>,
    feats: ArrayView2<'_, f32>,
    tokens: Option<&TokenSeqs>,
    targets: &[Targets],
) -> Result<Value> {
    // Metrics of nothing would read as accuracy 0.
    if targets.first().is_none_or(|t| t.is_empty()) {
        return Err(Error::invalid("nothing to evaluate: no labelled examples"));
    }
    Ok(evaluate_probs(
        &heads.tasks,
        &predict_arrays(heads, emb, feats, tokens)?,
        targets,
    ))
}

/// [`evaluate_arrays`] from predictions already made: probabilities (or values) per task, as
/// [`predict_arrays`] returns them.
pub fn evaluate_probs(tasks: &[TaskEntry], probs: &[Array2<f32>], targets: &[Targets]) -> Value {
    let mut per_task = serde_json::Map::new();
    for ((task, p), t) in tasks.iter().zip(probs).zip(targets) {
        per_task.insert(task.spec.name.clone(), task_metrics(task, p, t));
    }
    // The first task in head (declared) order, not the alphabetically first key.
    let mut top = tasks
        .first()
        .and_then(|t| per_task.get(&t.spec.name))
        .cloned()
        .unwrap_or(json!({}));
    if let Value::Object(m) = &mut top {
        m.insert("tasks".into(), Value::Object(per_task));
    }
    top
}

fn task_metrics(task: &TaskEntry, p: &Array2<f32>, t: &Targets) -> Value {
    let labels = &task.spec.labels;
    match (task.spec.kind, t) {
        (TaskKind::Multiclass, Targets::Class(c)) => {
            let pred: Vec<usize> = p
                .rows()
                .into_iter()
                .map(|r| (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b }))
                .collect();
            serde_json::to_value(classification_metrics(labels, c, &pred, None)).unwrap_or_default()
        }
        (TaskKind::Binary, Targets::Class(c)) => {
            let th = task.thresholds.first().copied().unwrap_or(0.5);
            let scores: Vec<f32> = p.column(0).to_vec();
            let pred: Vec<usize> = scores.iter().map(|&s| usize::from(s >= th)).collect();
            let mut v =
                serde_json::to_value(classification_metrics(labels, c, &pred, Some(&scores)))
                    .unwrap_or_default();
            v["threshold"] = json!(th);
            v
        }
        (TaskKind::Multilabel, Targets::MultiHot(rows)) => {
            let scores: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
            let pred: Vec<Vec<f32>> = scores
                .iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(j, &s)| {
                            f32::from(u8::from(
                                s >= task.thresholds.get(j).copied().unwrap_or(0.5),
                            ))
                        })
                        .collect()
                })
                .collect();
            let mut v = serde_json::to_value(multilabel_metrics(labels, rows, &pred, &scores))
                .unwrap_or_default();
            v["thresholds"] = json!(task.thresholds);
            v
        }
        (TaskKind::Regression, Targets::Value(y)) => {
            let pred: Vec<f32> = p.column(0).to_vec();
            serde_json::to_value(regression_metrics(y, &pred)).unwrap_or_default()
        }
        _ => json!({"error": "targets do not match the task kind"}),
    }
}

/// A bundle manifest for trained heads.
pub fn manifest_for(
    trained: &Trained,
    backbone: BackboneRef,
    feature_names: &[&str],
    config: &TrainConfig,
) -> BundleManifest {
    let mut metrics = trained.report.valid_metrics.clone();
    if let Value::Object(m) = &mut metrics {
        m.insert("split".into(), json!("validation"));
        m.insert("train_seconds".into(), json!(trained.report.train_seconds));
        m.insert(
            "seconds_to_best".into(),
            json!(trained.report.seconds_to_best),
        );
        m.insert(
            "epochs".into(),
            json!(trained
                .report
                .stages
                .iter()
                .map(|s| (s.stage.clone(), s.epochs_run))
                .collect::<std::collections::BTreeMap<_, _>>()),
        );
        m.insert("n_train".into(), json!(trained.report.n_train));
        m.insert("n_valid".into(), json!(trained.report.n_valid));
        m.insert(
            "history".into(),
            serde_json::to_value(
                trained
                    .report
                    .stages
                    .iter()
                    .flat_map(|s| s.history.clone())
                    .collect::<Vec<EpochRecord>>(),
            )
            .unwrap_or_default(),
        );
    }
    BundleManifest {
        format: BUNDLE_FORMAT.to_string(),
        created_by: format!("tandem {}", crate::VERSION),
        backbone,
        features: trained
            .heads
            .normalizer
            .as_ref()
            .map(|n| FeatureSpecRef::of(n, feature_names)),
        tasks: trained.heads.tasks.clone(),
        architecture: trained.heads.network.arch.clone(),
        metrics,
        training: serde_json::to_value(config).unwrap_or_default(),
        seed: config.seed,
        weights_sha256: String::new(),
        weights_dtype: String::new(),
    }
}

/// Wall-clock helper for callers that time embedding and feature extraction.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(classes: Vec<usize>) -> Examples {
        let n = classes.len();
        Examples {
            emb: Array2::zeros((n, 0)),
            feats: Array2::zeros((n, 0)),
            targets: vec![Targets::Class(classes)],
            tokens: None,
        }
    }

    #[test]
    fn a_split_that_cannot_hold_out_names_the_classes_too_small() {
        // 300 classes of one example each: plenty of data, no split.
        let all = examples((0..300).collect());
        let spec = TaskSpec {
            name: "y".into(),
            kind: TaskKind::Multiclass,
            labels: (0..300).map(|i| format!("class-{i}")).collect(),
        };
        let e = split_indices_of(&all, &TrainConfig::default(), Some(&spec)).unwrap_err();
        let m = e.message();
        assert!(m.contains("300 of the 300 classes"), "{m}");
        assert!(m.contains("`class-0`") && m.contains("..."), "{m}");
        assert!(!m.contains("too few"), "{m}");
        // Enough of every class: the split works.
        let ok = examples((0..300).map(|i| i % 3).collect());
        let (tr, va) = split_indices(&ok, &TrainConfig::default()).unwrap();
        assert_eq!(tr.len() + va.len(), 300);
        // Two examples of one class are enough: one of them is held out.
        let (tr, va) = split_indices(&examples(vec![0, 0]), &TrainConfig::default()).unwrap();
        assert_eq!((tr.len(), va.len()), (1, 1));
    }

    #[test]
    fn evaluating_nothing_is_an_error_not_accuracy_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let cfg = TrainConfig {
            mode: Mode::EmbeddingOnly,
            ..Default::default()
        };
        let arch = Architecture::from_config(&cfg, 4, 0, vec![2], vec![(0.0, 1.0)]);
        let heads = Heads {
            network: Network::new(arch, &mut rng).unwrap(),
            normalizer: None,
            tasks: vec![TaskEntry {
                spec: TaskSpec {
                    name: "y".into(),
                    kind: TaskKind::Multiclass,
                    labels: vec!["a".into(), "b".into()],
                },
                thresholds: vec![],
            }],
            version: 0,
        };
        let e = evaluate_arrays(
            &heads,
            Array2::zeros((0, 4)).view(),
            Array2::zeros((0, 0)).view(),
            None,
            &[Targets::Class(vec![])],
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let ok = evaluate_arrays(
            &heads,
            Array2::zeros((2, 4)).view(),
            Array2::zeros((2, 0)).view(),
            None,
            &[Targets::Class(vec![0, 1])],
        )
        .unwrap();
        assert_eq!(ok["n"], json!(2));
    }
}
