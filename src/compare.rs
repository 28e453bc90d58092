//! Comparing training modes on one dataset: the logic behind `tandem compare`.
//!
//! One labelled dataset, embedded once. A stratified **test** split is held out with a fixed
//! split seed; the rest is split (same seed) into training and validation data, unless a
//! validation set is given. Every [`Arm`] — embedding-only, metadata-only, joint, two-stage and
//! two-stage with unfreezing — is trained on exactly that training and validation data once per
//! training seed, and each run is scored on the test split. Runs are then aggregated per arm
//! (mean ± sample standard deviation over seeds) and a [`Verdict`] states, as measured, which arm
//! is best on the test metric and whether two-stage training reached its best validation loss
//! sooner and generalized better than the single-stage arms.
//!
//! Everything except the wall-clock times is deterministic: the same data, config and seeds give
//! the same metrics, losses and epochs on every rerun.
//!
//! ```no_run
//! use tandem::compare::{compare, Arm, CompareOptions};
//! # fn data() -> (Vec<tandem::data::TaskSpec>, tandem::train::Examples) { unimplemented!() }
//! let (tasks, all) = data(); // embeddings + raw metadata features + targets
//! let options = CompareOptions { seeds: vec![0, 1, 2], ..CompareOptions::default() };
//! let cmp = compare(&tasks, &all, None, &options, &mut |run| {
//!     eprintln!("{} seed {}: {:?}", run.arm.name(), run.seed, run.test);
//! })?;
//! println!("{}", cmp.table());
//! for line in &cmp.verdict.lines {
//!     println!("{line}");
//! }
//! # Ok::<(), tandem::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ndarray::{s, Array2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{stratified_split, TaskKind, TaskSpec};
use crate::error::{Error, Result};
use crate::eval::evaluate_arrays;
use crate::train::config::StageConfig;
use crate::train::{Examples, Mode, TrainConfig};

/// One contender of a comparison: a training mode, and for two-stage whether the metadata
/// encoder is unfrozen during stage 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Heads on the embedding alone.
    EmbeddingOnly,
    /// The metadata encoder and its heads alone.
    MetadataOnly,
    /// Encoder and heads on [embedding ; code] trained together in one stage.
    Joint,
    /// Stage 1 trains the encoder, stage 2 trains the heads with the encoder frozen throughout.
    TwoStage,
    /// Two-stage, with the encoder unfrozen at a stage-2 epoch ([`unfreeze_schedule`]).
    TwoStageUnfreeze,
}

impl Arm {
    /// Every arm, in the order they run and are reported.
    pub const ALL: [Arm; 5] = [
        Arm::EmbeddingOnly,
        Arm::MetadataOnly,
        Arm::Joint,
        Arm::TwoStage,
        Arm::TwoStageUnfreeze,
    ];

    /// The snake_case name (as on the command line and in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Arm::EmbeddingOnly => "embedding_only",
            Arm::MetadataOnly => "metadata_only",
            Arm::Joint => "joint",
            Arm::TwoStage => "two_stage",
            Arm::TwoStageUnfreeze => "two_stage_unfreeze",
        }
    }

    /// The training mode the arm runs.
    pub fn mode(self) -> Mode {
        match self {
            Arm::EmbeddingOnly => Mode::EmbeddingOnly,
            Arm::MetadataOnly => Mode::MetadataOnly,
            Arm::Joint => Mode::Joint,
            Arm::TwoStage | Arm::TwoStageUnfreeze => Mode::TwoStage,
        }
    }

    /// True for the two two-stage arms.
    pub fn is_two_stage(self) -> bool {
        self.mode() == Mode::TwoStage
    }

    /// The config of one run of this arm: `base` with the arm's mode, `seed`, and the unfreezing
    /// the arm calls for (none for [`Arm::TwoStage`], [`unfreeze_schedule`] for
    /// [`Arm::TwoStageUnfreeze`]).
    pub fn config(self, base: &TrainConfig, seed: u64) -> TrainConfig {
        let mut c = base.clone();
        c.mode = self.mode();
        c.seed = seed;
        c.unfreeze.at_epoch = match self {
            Arm::TwoStageUnfreeze => Some(unfreeze_schedule(base).0),
            _ => None,
        };
        if self == Arm::TwoStageUnfreeze {
            c.unfreeze.lr_scale = unfreeze_schedule(base).1;
        }
        c
    }
}

impl std::fmt::Display for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arm::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s.trim())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown mode `{s}` (expected {})",
                    Arm::ALL.map(Arm::name).join(", ")
                ))
            })
    }
}

/// The stage-2 epoch at which [`Arm::TwoStageUnfreeze`] unfreezes the encoder, and the encoder's
/// learning-rate multiplier.
///
/// When the config sets `unfreeze.at_epoch`, that epoch is used. Otherwise the default is a
/// quarter of stage 2's epochs, but no later than half its early-stopping patience, and at least
/// epoch 1 (never past the last epoch); with the defaults (40 epochs, patience 6) epoch 3. The
/// heads first adapt to the frozen code for a few epochs; unfreezing must then come early,
/// because stage 2 converges fast: with the default config on TREC its best validation
/// epoch is typically 3–5 and early stopping ends it `patience` epochs later, so an encoder
/// unfrozen after the best epoch never reaches the kept (best) weights ([`Run::unfrozen`]
/// records whether it did). The multiplier is `unfreeze.lr_scale` (default 0.1).
pub fn unfreeze_schedule(config: &TrainConfig) -> (usize, f32) {
    let at = config
        .unfreeze
        .at_epoch
        .unwrap_or_else(|| default_unfreeze_epoch(&config.head.stage));
    (at, config.unfreeze.lr_scale)
}

fn default_unfreeze_epoch(stage: &StageConfig) -> usize {
    let mut at = stage.epochs / 4;
    if stage.patience > 0 {
        at = at.min(stage.patience / 2);
    }
    at.max(1).min(stage.epochs.saturating_sub(1))
}

/// The unfreezing of [`Arm::TwoStageUnfreeze`], as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Unfreeze {
    /// Stage-2 epoch (0-based) at which the encoder starts training.
    pub at_epoch: usize,
    /// The encoder's learning rate as a multiple of the head learning rate.
    pub lr_scale: f32,
}

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The base training config; each run overrides its mode, seed and unfreezing.
    pub config: TrainConfig,
    /// The arms to train, in order (duplicates are ignored).
    pub arms: Vec<Arm>,
    /// Training seeds; every arm runs once per seed.
    pub seeds: Vec<u64>,
    /// Share of the data held out as the test split (stratified by the first task).
    pub test_fraction: f64,
    /// Seed of the test split and of the train/validation split (the same for every run).
    pub split_seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            config: TrainConfig::default(),
            arms: Arm::ALL.to_vec(),
            seeds: vec![0, 1, 2],
            test_fraction: 0.2,
            split_seed: 0,
        }
    }
}

/// One training run: an arm with one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The arm.
    pub arm: Arm,
    /// Training seed.
    pub seed: u64,
    /// Wall time to the best validation epoch of the last stage, counting earlier stages in full
    /// ([`TrainReport::seconds_to_best`](crate::train::TrainReport::seconds_to_best)).
    pub seconds_to_best: f64,
    /// Wall time of all stages.
    pub train_seconds: f64,
    /// Best validation loss of the last stage (the loss of the weights kept).
    pub best_valid_loss: f64,
    /// Epoch (0-based) of that loss in the last stage.
    pub best_epoch: usize,
    /// Epochs run per stage, by stage name.
    pub epochs: BTreeMap<String, usize>,
    /// For [`Arm::TwoStageUnfreeze`]: whether the kept (best) weights come from the unfreeze
    /// epoch or later, i.e. were trained with the encoder unfrozen. `None` for other arms.
    pub unfrozen: Option<bool>,
    /// The headline test metrics of the first task ([`CompareSummary::metrics`]).
    pub test: BTreeMap<String, f64>,
    /// Every test metric of every task, as [`evaluate_arrays`] reports them.
    pub test_metrics: Value,
    /// Validation metrics after threshold tuning, as the trainer reports them.
    pub valid_metrics: Value,
}

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
        }
    }
}

/// What the numbers say, computed from the summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The metric the verdict ranks by (`macro_f1`, or `rmse` for regression).
    pub metric: String,
    /// Whether a higher value of it is better.
    pub higher_is_better: bool,
    /// The arm with the best mean test metric (the earlier arm on a tie).
    pub best: Arm,
    /// Sentences stating the findings, one per line.
    pub lines: Vec<String>,
}

/// The headline metrics of a task kind; the first is the one the verdict ranks by.
pub fn headline_metrics(kind: TaskKind) -> (&'static [&'static str], bool) {
    match kind {
        TaskKind::Multiclass | TaskKind::Binary => (&["macro_f1", "accuracy"], true),
        TaskKind::Multilabel => (&["macro_f1", "micro_f1", "accuracy"], true),
        TaskKind::Regression => (&["rmse", "mae", "pearson"], false),
    }
}

/// The verdict on `summaries` ranked by `metric`. Differences are called clear or within seed
/// noise by [`Stat::clearly_differs`].
pub fn verdict(summaries: &[ArmSummary], metric: &str, higher_is_better: bool) -> Verdict {
    let score = |s: &ArmSummary| s.test.get(metric).copied().unwrap_or(Stat::of(&[]));
    let better = |a: f64, b: f64| if higher_is_better { a > b } else { a < b };
    let mut lines = Vec::new();
    let mut best: Option<&ArmSummary> = None;
    for s in summaries {
        if best.is_none_or(|b| better(score(s).mean, score(b).mean)) {
            best = Some(s);
        }
    }
    let Some(best) = best else {
        return Verdict {
            metric: metric.to_string(),
            higher_is_better,
            best: Arm::TwoStage,
            lines: vec!["no runs".to_string()],
        };
    };
    let noise = |a: &Stat, b: &Stat| {
        if a.n < 2 || b.n < 2 {
            "one seed, no spread to judge by"
        } else if a.clearly_differs(b) {
            "clear"
        } else {
            "within seed noise"
        }
    };
    let mut ranking: Vec<&ArmSummary> = summaries.iter().collect();
    ranking.sort_by(|a, b| {
        let (x, y) = (score(a).mean, score(b).mean);
        if higher_is_better {
            y.total_cmp(&x)
        } else {
            x.total_cmp(&y)
        }
    });
    let direction = if higher_is_better { "higher" } else { "lower" };
    let runner_up = ranking.iter().find(|s| s.arm != best.arm);
    let mut first = format!(
        "best on test {metric} ({direction} is better): {} ({})",
        best.arm,
        score(best).show(4)
    );
    if let Some(r) = runner_up {
        let _ = write!(
            first,
            "; next {} ({}), {}",
            r.arm,
            score(r).show(4),
            noise(&score(best), &score(r))
        );
    }
    lines.push(first);
    let baselines: Vec<&ArmSummary> = summaries
        .iter()
        .filter(|s| matches!(s.arm, Arm::Joint | Arm::EmbeddingOnly))
        .collect();
    for two in summaries.iter().filter(|s| s.arm.is_two_stage()) {
        for base in &baselines {
            let (ta, tb) = (two.seconds_to_best, base.seconds_to_best);
            let (ma, mb) = (score(two), score(base));
            let faster = if ta.mean < tb.mean {
                "faster"
            } else {
                "not faster"
            };
            let gen = if better(ma.mean, mb.mean) {
                "better"
            } else {
                "not better"
            };
            lines.push(format!(
                "{} vs {}: {faster} to best validation ({:.2} s vs {:.2} s, {}), {gen} on test {metric} ({:.4} vs {:.4}, {})",
                two.arm,
                base.arm,
                ta.mean,
                tb.mean,
                noise(&ta, &tb),
                ma.mean,
                mb.mean,
                noise(&ma, &mb)
            ));
        }
    }
    let two_best =
        summaries
            .iter()
            .filter(|s| s.arm.is_two_stage())
            .fold(None::<&ArmSummary>, |acc, s| match acc {
                Some(a) if !better(score(s).mean, score(a).mean) => Some(a),
                _ => Some(s),
            });
    if let (Some(two), false) = (two_best, baselines.is_empty()) {
        let time = |s: &ArmSummary| s.seconds_to_best;
        let sooner: Vec<(&str, bool, &str)> = baselines
            .iter()
            .map(|b| {
                (
                    b.arm.name(),
                    two.seconds_to_best.mean < b.seconds_to_best.mean,
                    noise(&time(two), &time(b)),
                )
            })
            .collect();
        let gen: Vec<(&str, bool, &str)> = baselines
            .iter()
            .map(|b| {
                (
                    b.arm.name(),
                    better(score(two).mean, score(b).mean),
                    noise(&score(two), &score(b)),
                )
            })
            .collect();
        lines.push(format!(
            "on this data, two-stage ({}) {}, and {} on test {metric}",
            two.arm,
            finding(
                "reached its best validation loss sooner than",
                "did not reach its best validation loss sooner than",
                &sooner
            ),
            finding(
                "generalized better than",
                "did not generalize better than",
                &gen
            ),
        ));
    }
    if summaries.iter().any(|s| s.runs >= 2) {
        lines.push(
            "clear: the means differ by more than twice the standard error of their difference over seeds; otherwise within seed noise"
                .to_string(),
        );
    }
    Verdict {
        metric: metric.to_string(),
        higher_is_better,
        best: best.arm,
        lines,
    }
}

/// "`yes` A and B (q)", "`no` A and B (q)", or "`yes` A (q) but not than B (q)", from
/// (name, holds, noise label) per comparison; q is one label when all agree.
fn finding(yes: &str, no: &str, items: &[(&str, bool, &str)]) -> String {
    let group = |want: bool| -> Option<String> {
        let g: Vec<&(&str, bool, &str)> = items.iter().filter(|i| i.1 == want).collect();
        let first = g.first()?;
        let names = g.iter().map(|i| i.0).collect::<Vec<_>>().join(" and ");
        let q = if g.iter().all(|i| i.2 == first.2) {
            first.2.to_string()
        } else {
            g.iter()
                .map(|i| format!("{} against {}", i.2, i.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Some(format!("{names} ({q})"))
    };
    match (group(true), group(false)) {
        (Some(y), Some(n)) => format!("{yes} {y} but not than {n}"),
        (Some(y), None) => format!("{yes} {y}"),
        (None, Some(n)) => format!("{no} {n}"),
        (None, None) => String::new(),
    }
}

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
    let strata = all
        .targets
        .first()
        .ok_or_else(|| Error::invalid("no tasks"))?
        .strata();
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
            let strata = rest_ex.targets[0].strata();
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

/// A finished comparison: settings, every run, the per-arm aggregates and the verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareSummary {
    /// Name of the first task (the one metrics and the verdict are about).
    pub task: String,
    /// Its kind.
    pub kind: TaskKind,
    /// Every task trained (several heads train together in every run).
    pub tasks: Vec<String>,
    /// The headline test metrics, the first being the verdict's.
    pub metrics: Vec<String>,
    /// Training examples.
    pub n_train: usize,
    /// Validation examples.
    pub n_valid: usize,
    /// Test examples.
    pub n_test: usize,
    /// Share held out as the test split.
    pub test_fraction: f64,
    /// Seed of the test and validation splits.
    pub split_seed: u64,
    /// Training seeds.
    pub seeds: Vec<u64>,
    /// The arms, in order.
    pub arms: Vec<Arm>,
    /// When and how [`Arm::TwoStageUnfreeze`] unfreezes the encoder.
    pub unfreeze: Unfreeze,
    /// The base training config (each run sets its own mode, seed and unfreezing).
    pub config: TrainConfig,
    /// Every run, arm-major in seed order.
    pub runs: Vec<Run>,
    /// One aggregate per arm, in arm order.
    pub summaries: Vec<ArmSummary>,
    /// What the numbers say.
    pub verdict: Verdict,
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
    let splits = split(
        all,
        valid,
        options.test_fraction,
        options.config.valid_fraction,
        options.split_seed,
    )?;
    let (metric_names, higher_is_better) = headline_metrics(first.kind);
    let metrics: Vec<String> = metric_names.iter().map(|m| m.to_string()).collect();
    let (at_epoch, lr_scale) = unfreeze_schedule(&options.config);
    let unfreeze = Unfreeze { at_epoch, lr_scale };
    let mut runs = Vec::new();
    for &arm in &arms {
        for &seed in &options.seeds {
            let config = arm.config(&options.config, seed);
            let trained =
                crate::train::train(tasks, &splits.train, &splits.valid, &config, &mut |_| true)?;
            let heads = &trained.heads;
            let feats = match &heads.normalizer {
                Some(n) => n.transform(splits.test.feats.view()),
                None => Array2::zeros((splits.test.len(), 0)),
            };
            let emb = if heads.network.arch.emb_dim == 0 {
                splits.test.emb.slice(s![.., ..0])
            } else {
                splits.test.emb.view()
            };
            let test_metrics = evaluate_arrays(
                heads,
                emb,
                feats.view(),
                splits.test.tokens.as_ref(),
                &splits.test.targets,
            )?;
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
            let unfrozen =
                (arm == Arm::TwoStageUnfreeze).then_some(last.best_epoch >= unfreeze.at_epoch);
            let run = Run {
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
            };
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
    let not_unfrozen = runs.iter().filter(|r| r.unfrozen == Some(false)).count();
    if not_unfrozen > 0 {
        // Before the closing definition of "clear", if there is one.
        let at = match verdict.lines.last() {
            Some(l) if l.starts_with("clear:") => verdict.lines.len() - 1,
            _ => verdict.lines.len(),
        };
        verdict.lines.insert(at, format!(
            "note: in {not_unfrozen} of {} two_stage_unfreeze runs the best stage-2 epoch came before the unfreeze epoch {}, so the kept weights never trained with the encoder unfrozen",
            options.seeds.len(),
            unfreeze.at_epoch
        ));
    }
    Ok(CompareSummary {
        task: first.name.clone(),
        kind: first.kind,
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        metrics,
        n_train: splits.train.len(),
        n_valid: splits.valid.len(),
        n_test: splits.test.len(),
        test_fraction: options.test_fraction,
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

/// Decimals shown for a metric: 4 for scores, 3 for errors on the target's scale.
fn decimals(metric: &str) -> usize {
    match metric {
        "rmse" | "mae" => 3,
        _ => 4,
    }
}

impl CompareSummary {
    /// Column headers and one row of cells per arm: mode, runs, time to best, train time, best
    /// validation loss, and each test metric, as `mean ± sd`.
    pub fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header: Vec<String> = [
            "mode",
            "runs",
            "time to best (s)",
            "train time (s)",
            "best valid loss",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend(self.metrics.iter().map(|m| format!("test {m}")));
        let rows = self
            .summaries
            .iter()
            .map(|s| {
                let mut r = vec![
                    s.arm.name().to_string(),
                    s.runs.to_string(),
                    s.seconds_to_best.show(2),
                    s.train_seconds.show(2),
                    s.best_valid_loss.show(4),
                ];
                r.extend(self.metrics.iter().map(|m| {
                    s.test
                        .get(m)
                        .map_or_else(|| "-".to_string(), |st| st.show(decimals(m)))
                }));
                r
            })
            .collect();
        (header, rows)
    }

    /// One line describing the data and the protocol.
    pub fn setting(&self) -> String {
        format!(
            "task `{}` ({}); {} train / {} validation / {} test examples (test {:.0}%, split seed {}); seeds {}; mean ± sd over seeds; two_stage_unfreeze unfreezes at stage-2 epoch {} with {}× the head LR",
            self.task,
            self.kind.name(),
            self.n_train,
            self.n_valid,
            self.n_test,
            self.test_fraction * 100.0,
            self.split_seed,
            self.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.unfreeze.at_epoch,
            self.unfreeze.lr_scale
        )
    }

    /// The table as aligned plain text, followed by the verdict.
    pub fn table(&self) -> String {
        let (header, rows) = self.rows();
        let width = |c: usize| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..header.len()).map(width).collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let pad = w - c.chars().count();
                    if i == 0 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.setting());
        let _ = writeln!(out, "{}", line(&header));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out.push('\n');
        for l in &self.verdict.lines {
            let _ = writeln!(out, "- {l}");
        }
        out
    }

    /// The table and verdict as Markdown.
    pub fn to_markdown(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = String::new();
        let _ = writeln!(out, "# tandem compare\n\n{}\n", self.setting());
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let align: Vec<&str> = (0..header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", align.join("|"));
        for r in &rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        let _ = writeln!(out, "\n## Verdict\n");
        for l in &self.verdict.lines {
            let _ = writeln!(out, "- {l}");
        }
        out
    }

    /// A small self-contained HTML page (inline CSS, no scripts, nothing fetched) with the
    /// setting, the table and the verdict.
    pub fn to_html(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = String::new();
        out.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tandem compare</title>\n<style>\nbody{font-family:system-ui,sans-serif;margin:2em;color:#222}\ntable{border-collapse:collapse}\nth,td{border:1px solid #ccc;padding:.3em .6em}\ntd{text-align:right;font-variant-numeric:tabular-nums}\ntd:first-child{text-align:left}\ntr.best td{font-weight:bold}\n</style>\n</head>\n<body>\n<h1>tandem compare</h1>\n",
        );
        let _ = writeln!(out, "<p>{}</p>", escape_html(&self.setting()));
        out.push_str("<table>\n<tr>");
        for h in &header {
            let _ = write!(out, "<th>{}</th>", escape_html(h));
        }
        out.push_str("</tr>\n");
        for (s, r) in self.summaries.iter().zip(&rows) {
            let class = if s.arm == self.verdict.best {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(out, "<tr{class}>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", escape_html(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n<h2>Verdict</h2>\n<ul>\n");
        for l in &self.verdict.lines {
            let _ = writeln!(out, "<li>{}</li>", escape_html(l));
        }
        out.push_str("</ul>\n</body>\n</html>\n");
        out
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(values: &[f64]) -> Stat {
        Stat::of(values)
    }

    fn summary(arm: Arm, time: &[f64], f1: &[f64]) -> ArmSummary {
        let mut test = BTreeMap::new();
        test.insert("macro_f1".to_string(), stat(f1));
        ArmSummary {
            arm,
            runs: f1.len(),
            seconds_to_best: stat(time),
            train_seconds: stat(time),
            best_valid_loss: stat(&[0.5; 3]),
            test,
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
        };
        let runs = [run(0, 0.5, 1.0), run(1, 0.7, 3.0)];
        let refs: Vec<&Run> = runs.iter().collect();
        let s = ArmSummary::of(Arm::Joint, &refs, &["macro_f1".to_string()]);
        assert_eq!(s.runs, 2);
        assert!((s.test["macro_f1"].mean - 0.6).abs() < 1e-12);
        assert_eq!(s.seconds_to_best.mean, 2.0);
        assert_eq!(s.train_seconds.mean, 4.0);
        assert!((s.best_valid_loss.mean - 0.05).abs() < 1e-12);
    }

    #[test]
    fn verdict_states_what_was_measured() {
        let s = vec![
            summary(Arm::EmbeddingOnly, &[0.8, 0.8, 0.8], &[0.82, 0.83, 0.84]),
            summary(Arm::Joint, &[0.8, 1.2, 1.0], &[0.70, 0.71, 0.72]),
            summary(Arm::TwoStage, &[1.2, 1.2, 1.2], &[0.79, 0.81, 0.83]),
        ];
        let v = verdict(&s, "macro_f1", true);
        assert_eq!(v.best, Arm::EmbeddingOnly);
        assert_eq!(
            v.lines[0],
            "best on test macro_f1 (higher is better): embedding_only (0.8300 ± 0.0100); next two_stage (0.8100 ± 0.0200), within seed noise"
        );
        assert_eq!(
            v.lines[1],
            "two_stage vs embedding_only: not faster to best validation (1.20 s vs 0.80 s, clear), not better on test macro_f1 (0.8100 vs 0.8300, within seed noise)"
        );
        assert_eq!(
            v.lines[2],
            "two_stage vs joint: not faster to best validation (1.20 s vs 1.00 s, within seed noise), better on test macro_f1 (0.8100 vs 0.7100, clear)"
        );
        assert_eq!(
            v.lines[3],
            "on this data, two-stage (two_stage) did not reach its best validation loss sooner than embedding_only and joint (clear against embedding_only, within seed noise against joint), and generalized better than joint (clear) but not than embedding_only (within seed noise) on test macro_f1"
        );
        assert!(v.lines[4].starts_with("clear: the means differ by more than twice"));
        assert_eq!(v.lines.len(), 5);
    }

    #[test]
    fn verdict_for_regression_prefers_lower_error_and_picks_the_better_two_stage_arm() {
        let mut s = vec![
            summary(Arm::Joint, &[2.0, 2.0, 2.0], &[1.30, 1.31, 1.32]),
            summary(Arm::TwoStage, &[1.0, 1.0, 1.0], &[1.20, 1.21, 1.22]),
            summary(Arm::TwoStageUnfreeze, &[1.5, 1.5, 1.5], &[1.10, 1.11, 1.12]),
        ];
        for x in &mut s {
            let st = x.test.remove("macro_f1").unwrap();
            x.test.insert("rmse".into(), st);
        }
        let v = verdict(&s, "rmse", false);
        assert_eq!(v.best, Arm::TwoStageUnfreeze);
        assert!(v.lines[0].starts_with("best on test rmse (lower is better): two_stage_unfreeze"));
        assert!(
            v.lines[1].starts_with("two_stage vs joint: faster"),
            "{}",
            v.lines[1]
        );
        assert!(v.lines[1].contains("better on test rmse (1.2100 vs 1.3100, clear)"));
        assert!(v.lines[2].starts_with("two_stage_unfreeze vs joint: faster"));
        assert_eq!(
            v.lines[3],
            "on this data, two-stage (two_stage_unfreeze) reached its best validation loss sooner than joint (clear), and generalized better than joint (clear) on test rmse"
        );
    }

    #[test]
    fn findings_group_agreeing_comparisons() {
        let f = |items: &[(&str, bool, &str)]| finding("beat", "did not beat", items);
        assert_eq!(
            f(&[("a", true, "clear"), ("b", true, "clear")]),
            "beat a and b (clear)"
        );
        assert_eq!(
            f(&[("a", false, "clear"), ("b", false, "within seed noise")]),
            "did not beat a and b (clear against a, within seed noise against b)"
        );
        assert_eq!(
            f(&[("a", true, "clear"), ("b", false, "within seed noise")]),
            "beat a (clear) but not than b (within seed noise)"
        );
    }

    #[test]
    fn unfreeze_default_is_a_quarter_capped_by_half_the_patience_and_inside_the_stage() {
        let mut c = TrainConfig::default();
        assert_eq!(unfreeze_schedule(&c), (3, 0.1));
        c.head.stage.patience = 1;
        assert_eq!(unfreeze_schedule(&c).0, 1);
        c.head.stage.patience = 0;
        assert_eq!(unfreeze_schedule(&c).0, 10);
        c.head.stage.epochs = 3;
        assert_eq!(unfreeze_schedule(&c).0, 1);
        c.head.stage.epochs = 1;
        assert_eq!(unfreeze_schedule(&c).0, 0);
        c.unfreeze.at_epoch = Some(4);
        c.unfreeze.lr_scale = 0.5;
        assert_eq!(unfreeze_schedule(&c), (4, 0.5));
        let u = Arm::TwoStageUnfreeze.config(&c, 9);
        assert_eq!(
            (u.mode, u.seed, u.unfreeze.at_epoch),
            (Mode::TwoStage, 9, Some(4))
        );
        // The plain two-stage arm never unfreezes, whatever the base config says.
        assert_eq!(Arm::TwoStage.config(&c, 9).unfreeze.at_epoch, None);
        assert_eq!(Arm::Joint.config(&c, 1).mode, Mode::Joint);
    }

    #[test]
    fn arms_parse_by_name() {
        for a in Arm::ALL {
            assert_eq!(a.name().parse::<Arm>().unwrap(), a);
        }
        let e = "two-stage".parse::<Arm>().unwrap_err();
        assert!(
            e.message().contains("two_stage_unfreeze"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
