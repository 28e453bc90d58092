//! Running a comparison: the test, training and validation splits, then every arm with every
//! seed, scored on the test split.

use ndarray::{s, Array2};
use serde_json::Value;

use super::stats::ArmSummary;
use super::verdict::{headline_metrics, verdict};
use super::{unfreeze_schedule, Arm, CompareOptions, CompareSummary, Run, Unfreeze};
use crate::data::{stratified_split, TaskSpec};
use crate::error::{Error, Result};
use crate::eval::evaluate_arrays;
use crate::nn::Layer;
use crate::train::{Examples, Mode};

/// The data a comparison trains and scores on, after splitting.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training examples (the same for every run).
    pub train: Examples,
    /// Validation examples for early stopping and thresholds (the same for every run).
    pub valid: Examples,
    /// The held-out test examples.
    pub test: Examples,
}

/// Holds out a stratified test split of `all` (by the first task, seeded by `split_seed`), and
/// splits the rest into training and validation data with `valid_fraction` and the same seed —
/// unless `valid` is given, in which case all of the rest trains.
pub fn split(
    all: &Examples,
    valid: Option<&Examples>,
    test_fraction: f64,
    valid_fraction: f64,
    split_seed: u64,
) -> Result<Splits> {
    if !(test_fraction > 0.0 && test_fraction < 0.9) {
        return Err(Error::invalid(format!(
            "test fraction {test_fraction} must be in (0, 0.9)"
        )));
    }
    if all.targets.is_empty() {
        return Err(Error::invalid("no tasks"));
    }
    let strata = all.split_strata();
    let (rest, test) = stratified_split(&strata, test_fraction, split_seed);
    if rest.is_empty() || test.is_empty() {
        return Err(Error::invalid(format!(
            "{} examples are too few to hold out a test split",
            all.len()
        )));
    }
    let rest_ex = all.select(&rest);
    let test_ex = all.select(&test);
    let (train, valid) = match valid {
        Some(v) => (rest_ex, v.clone()),
        None => {
            let strata = rest_ex.split_strata();
            let (tr, va) = stratified_split(&strata, valid_fraction, split_seed);
            if tr.is_empty() || va.is_empty() {
                return Err(Error::invalid(format!(
                    "{} examples are too few to hold out test and validation splits; add data or pass a validation set",
                    all.len()
                )));
            }
            (rest_ex.select(&tr), rest_ex.select(&va))
        }
    };
    Ok(Splits {
        train,
        valid,
        test: test_ex,
    })
}

/// Trains every arm with every seed on the same splits of `all` (see [`split`]) and scores each
/// run on the test split. `on_run` sees each run as it finishes. Deterministic apart from times.
pub fn compare(
    tasks: &[TaskSpec],
    all: &Examples,
    valid: Option<&Examples>,
    options: &CompareOptions,
    on_run: &mut dyn FnMut(&Run),
) -> Result<CompareSummary> {
    options.config.validate()?;
    let first = tasks.first().ok_or_else(|| Error::invalid("no tasks"))?;
    let arms = arms_of(options, all)?;
    let mut splits = split(
        all,
        valid,
        options.test_fraction,
        options.config.valid_fraction,
        options.split_seed,
    )?;
    splits.train = subsample(&splits.train, options.train_fraction, options.split_seed)?;
    let (metric_names, higher_is_better) = headline_metrics(first.kind);
    let metrics: Vec<String> = metric_names.iter().map(|m| m.to_string()).collect();
    let (at_epoch, lr_scale) = unfreeze_schedule(&options.config);
    let unfreeze = Unfreeze { at_epoch, lr_scale };
    if options.memory.is_some() {
        // One unmeasured run first: the process's one-time allocations (the GEMM library's
        // per-thread packing buffers, sized by the CPU's caches: ~190 MiB on the measuring
        // machine) would otherwise be charged to whichever run came first.
        run_one(
            tasks,
            &splits,
            options,
            (arms[0], options.seeds[0]),
            &metrics,
            &unfreeze,
        )?;
    }
    let mut runs = Vec::new();
    for &arm in &arms {
        for &seed in &options.seeds {
            let run = run_one(tasks, &splits, options, (arm, seed), &metrics, &unfreeze)?;
            on_run(&run);
            runs.push(run);
        }
    }
    let summaries: Vec<ArmSummary> = arms
        .iter()
        .map(|&a| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.arm == a).collect();
            ArmSummary::of(a, &mine, &metrics)
        })
        .collect();
    let mut verdict = verdict(&summaries, &metrics[0], higher_is_better);
    note_unfreezing(&mut verdict.lines, &runs, options.seeds.len(), &unfreeze);
    Ok(CompareSummary {
        task: first.name.clone(),
        kind: first.kind,
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        metrics,
        n_train: splits.train.len(),
        n_valid: splits.valid.len(),
        n_test: splits.test.len(),
        test_fraction: options.test_fraction,
        train_fraction: options.train_fraction,
        split_seed: options.split_seed,
        seeds: options.seeds.clone(),
        arms,
        unfreeze,
        config: options.config.clone(),
        runs,
        summaries,
        verdict,
    })
}

/// The arms to run, each once in the order given; refuses no seeds, no arms, and examples that
/// lack what an arm reads.
fn arms_of(options: &CompareOptions, all: &Examples) -> Result<Vec<Arm>> {
    if options.seeds.is_empty() {
        return Err(Error::invalid("compare needs at least one seed"));
    }
    let mut arms: Vec<Arm> = Vec::new();
    for a in &options.arms {
        if !arms.contains(a) {
            arms.push(*a);
        }
    }
    if arms.is_empty() {
        return Err(Error::invalid("compare needs at least one mode"));
    }
    let needs_emb = arms.iter().any(|a| a.mode() != Mode::MetadataOnly);
    let needs_meta = arms.iter().any(|a| a.mode() != Mode::EmbeddingOnly);
    if (needs_emb && all.emb.ncols() == 0) || (needs_meta && all.feats.ncols() == 0) {
        return Err(Error::invalid(
            "the examples lack the embeddings or metadata features some mode needs",
        ));
    }
    Ok(arms)
}

/// One arm with one seed: trained on the splits' training and validation data, scored on the
/// test split.
fn run_one(
    tasks: &[TaskSpec],
    splits: &Splits,
    options: &CompareOptions,
    (arm, seed): (Arm, u64),
    metrics: &[String],
    unfreeze: &Unfreeze,
) -> Result<Run> {
    let mut config = arm.config(&options.config, seed);
    if let (Arm::FineTune, Some(explicit)) = (arm, &options.explicit) {
        config.apply_finetune_defaults(explicit);
    }
    let top = match config.backbone.trainable_layers {
        0 => None,
        k => Some(
            options
                .top
                .clone()
                .filter(|t| t.layers.len() == k)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "the {arm} arm trains the backbone's top {k} layers: compare needs them \
                         (CompareOptions::top) and the hidden states below them"
                    ))
                })?,
        ),
    };
    if let Some(m) = options.memory {
        (m.reset)();
    }
    let trained = crate::train::train_top(
        tasks,
        &splits.train,
        &splits.valid,
        &config,
        top,
        &mut |_| true,
    )?;
    let peak_memory_bytes = options.memory.map(|m| (m.peak)());
    // Fine-tuned layers make the test texts' embeddings anew.
    let test = match (&trained.top, &splits.test.hidden) {
        (Some(top), Some(h)) => std::borrow::Cow::Owned(Examples {
            emb: top.embed(h),
            ..splits.test.clone()
        }),
        _ => std::borrow::Cow::Borrowed(&splits.test),
    };
    let test_metrics = score(&trained.heads, &test)?;
    let test = metrics
        .iter()
        .filter_map(|m| {
            test_metrics
                .get(m)
                .and_then(Value::as_f64)
                .map(|v| (m.clone(), v))
        })
        .collect();
    let report = &trained.report;
    let last = report.stages.last().expect("at least one stage");
    let unfrozen = (arm == Arm::TwoStageUnfreeze).then_some(last.best_epoch >= unfreeze.at_epoch);
    Ok(Run {
        arm,
        seed,
        seconds_to_best: report.seconds_to_best,
        train_seconds: report.train_seconds,
        best_valid_loss: last.best_valid_loss as f64,
        best_epoch: last.best_epoch,
        epochs: report
            .stages
            .iter()
            .map(|s| (s.stage.clone(), s.epochs_run))
            .collect(),
        unfrozen,
        test,
        test_metrics,
        valid_metrics: report.valid_metrics.clone(),
        trainable_parameters: trained_parameters(&trained, config.mode),
        peak_memory_bytes,
    })
}

/// The parameters training updated in `mode`: the heads (and sequence encoder) where a semantic
/// stage runs, the encoder where the metadata side trains, the auxiliary heads where stage 1
/// (or metadata-only) runs, and any fine-tuned backbone layers.
fn trained_parameters(trained: &crate::train::Trained, mode: Mode) -> usize {
    let net = &trained.heads.network;
    let count = |ps: Vec<&crate::nn::Param>| ps.iter().map(|p| p.value.len()).sum::<usize>();
    let heads = count(net.heads.iter().flat_map(|h| h.params()).collect())
        + net.sequence.as_ref().map_or(0, |s| count(s.params()));
    let encoder = net.encoder.as_ref().map_or(0, |e| count(e.params()));
    let aux = count(net.aux_heads.iter().flat_map(|h| h.params()).collect());
    let top = trained
        .top
        .as_ref()
        .map_or(0, |t| t.layers.iter().map(|l| count(l.params())).sum());
    top + match mode {
        Mode::EmbeddingOnly => heads,
        Mode::MetadataOnly => encoder + aux,
        Mode::Joint => encoder + heads,
        Mode::TwoStage => encoder + aux + heads,
    }
}

/// A stratified share `fraction` of `train` (by its split strata, seeded), or all of it.
fn subsample(train: &Examples, fraction: f64, seed: u64) -> Result<Examples> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::invalid(format!(
            "training fraction {fraction} must be in (0, 1]"
        )));
    }
    if fraction == 1.0 {
        return Ok(train.clone());
    }
    let (_, kept) = stratified_split(&train.split_strata(), fraction, seed ^ 0x5a5a_0f0f);
    if kept.is_empty() {
        return Err(Error::invalid(format!(
            "{:.0}% of {} training examples is none: use a larger fraction",
            fraction * 100.0,
            train.len()
        )));
    }
    Ok(train.select(&kept))
}

/// Every metric of `heads` on the labelled examples `ex`, as [`evaluate_arrays`] reports them.
pub(super) fn score(heads: &crate::heads::Heads, ex: &Examples) -> Result<Value> {
    let feats = match &heads.normalizer {
        Some(n) => n.transform(ex.feats.view()),
        None => Array2::zeros((ex.len(), 0)),
    };
    let emb = if heads.network.arch.emb_dim == 0 {
        ex.emb.slice(s![.., ..0])
    } else {
        ex.emb.view()
    };
    evaluate_arrays(heads, emb, feats.view(), ex.tokens.as_ref(), &ex.targets)
}

/// Adds a note to the verdict where a two_stage_unfreeze run kept weights from before its
/// unfreeze epoch (before the closing definition of "clear", if there is one).
fn note_unfreezing(lines: &mut Vec<String>, runs: &[Run], seeds: usize, unfreeze: &Unfreeze) {
    let not_unfrozen = runs.iter().filter(|r| r.unfrozen == Some(false)).count();
    if not_unfrozen == 0 {
        return;
    }
    let at = match lines.last() {
        Some(l) if l.starts_with("clear:") => lines.len() - 1,
        _ => lines.len(),
    };
    lines.insert(at, format!(
        "note: in {not_unfrozen} of {seeds} two_stage_unfreeze runs the best stage-2 epoch came before the unfreeze epoch {}, so the kept weights never trained with the encoder unfrozen",
        unfreeze.at_epoch
    ));
}
