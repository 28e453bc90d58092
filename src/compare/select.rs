//! The default recipe: chosen by validation data within a time budget.
//!
//! `tandem train` without `--mode` or `--head` does not assume a recipe; it measures. Every
//! candidate [`Arm`] (the linear recipe, the pooled-head modes, a sequence head, fine-tuning;
//! fewer on small data: [`CANDIDATES_SMALL`]) is trained on the
//! same data with the same seed and scored on data it did not train on, in a fixed order (the
//! linear recipe first), until the budget is spent; a later candidate replaces the best so far
//! only when it wins clearly, by more than twice the standard error of the per-fold (or
//! per-part of the hold-out) differences: [`beats`].
//!
//! How candidates are scored depends on the amount of data, because one small hold-out is a
//! noisy judge and early stopping on a handful of examples stops at random:
//! - **below [`SelectOptions::cross_validate_below`] examples**: stratified k-fold
//!   cross-validation (k = 5, or fewer when the smallest class is smaller; strata too fine for
//!   that, such as multi-label combinations, are dealt round-robin over 5 folds). Every candidate
//!   trains on k−1 folds and is scored on the k-th; the neural candidates run their fixed number
//!   of epochs with no early stopping and no threshold tuning (nothing is chosen on the scoring
//!   fold), and the linear recipe runs its own inner cross-validation for its regularization.
//!   The winner is then trained on every example the same way.
//! - **from there up** (or with a validation set given): one stratified hold-out
//!   (`valid_fraction`, the config's seed). Neural candidates train as `--mode` would train
//!   them (early stopping and thresholds on the hold-out), and the winner's model is kept as
//!   trained; the hold-out is dealt into [`HOLD_OUT_PARTS`] stratified parts, whose scores give
//!   the standard error of a difference; the linear recipe trains on the rest, and if it wins it is refitted on every
//!   example, as `--head linear` would.
//!
//! The budget bounds the search, not the final fit: a candidate that starts while time is left
//! is stopped when the budget runs out and counts as not measured, and none starts after. The
//! first candidate always finishes, so there is always a winner. Everything but which
//! candidates fit in the budget is deterministic for a seed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::run::score;
use super::verdict::headline_metrics;
use super::Arm;
use crate::backbone::TokenSeqs;
use crate::data::{TaskKind, TaskSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::train::config::{ExplicitKeys, HeadKind};
use crate::train::linear::select::{fold_of, folds_for};
use crate::train::stage::Progress;
use crate::train::{split_indices_of, BackboneTop, Examples, TrainConfig, Trained};

/// The candidates under cross-validation (small data), cheapest first: the linear recipe is
/// fast there and, as measured, the one to beat; then a pooled MLP head on the same vectors.
/// Every candidate tried is another chance for noise to win, and on a few dozen examples the
/// others' cross-validated wins did not hold. In few-shot draws (8–64 examples per class,
/// docs/results.md) the search picked metadata_only three times and a sequence head twice,
/// each by more than twice the standard error of the fold differences, and each lost to the
/// linear recipe on the test set (metadata_only: SMS 16/class 0.80 against 0.89 macro-F1, SMS
/// 64/class 0.865 against 0.911, VADER 8/class RMSE 2.07 against 1.52; sequence: Reuters
/// 8/class 0.49 against 0.63, VADER 8/class RMSE 1.57 against 1.52); the two-stage mode scored
/// below the linear recipe at every few-shot size of every demo dataset. So those are not
/// tried here (`--mode` and `--head` still train them, and a hold-out search tries them all);
/// fine-tuning, whose wins held (TREC, SMS), is inserted second when it is a candidate.
pub const CANDIDATES_SMALL: [Arm; 2] = [Arm::Linear, Arm::EmbeddingOnly];

/// The candidates on a hold-out (more data): the linear recipe first, as the one to beat (a
/// neural head that wins on one hold-out by less than its noise scored 0.02–0.13 below it on
/// test sets: Reuters, held-out snippets), then the pooled heads (about a second each), then
/// the sequence head (the best on every demo dataset at full size, when its per-token vectors
/// fit the budget).
pub const CANDIDATES_LARGE: [Arm; 7] = [
    Arm::Linear,
    Arm::EmbeddingOnly,
    Arm::Joint,
    Arm::TwoStage,
    Arm::TwoStageUnfreeze,
    Arm::MetadataOnly,
    Arm::Sequence,
];

/// How the default recipe is chosen.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// The base training config: every candidate trains with it, its seed included
    /// ([`Arm::config`] sets the mode and head type).
    pub config: TrainConfig,
    /// The candidates, in the order they are tried (the first always finishes); None:
    /// [`CANDIDATES_SMALL`] under cross-validation, else [`CANDIDATES_LARGE`].
    pub candidates: Option<Vec<Arm>>,
    /// Wall-clock budget of the search.
    pub budget: Duration,
    /// Below this many examples candidates are cross-validated instead of scored on one
    /// hold-out.
    pub cross_validate_below: usize,
    /// The backbone's pretrained top layers, when fine-tuning them is a candidate
    /// ([`Arm::FineTune`]: second under cross-validation, last on a hold-out, unless
    /// `candidates` says otherwise); None leaves it out.
    pub finetune: Option<FineTuneCandidate>,
}

/// What the fine-tuning candidate needs: the layers it starts from, and which settings the
/// config named (fine-tuning's measured defaults fill in the rest:
/// [`TrainConfig::apply_finetune_defaults`]).
#[derive(Debug, Clone)]
pub struct FineTuneCandidate {
    /// The backbone's pretrained top layers ([`Arm::finetune_layers`] of them).
    pub top: BackboneTop,
    /// The settings the config named explicitly.
    pub explicit: ExplicitKeys,
}

/// Contrastive warm-up epochs of the fine-tuning candidate under cross-validation, where the
/// config names none: on 8–64 examples per class it lifted fine-tuning by 0.01–0.15 macro-F1
/// over the same recipe without it (docs/results.md, few-shot fine-tuning).
pub const FEWSHOT_CONTRASTIVE_EPOCHS: usize = 2;

/// Pairs per example of that warm-up, where the config names none (as measured).
pub const FEWSHOT_CONTRASTIVE_PAIRS: usize = 10;

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            config: TrainConfig::default(),
            candidates: None,
            budget: Duration::from_secs(DEFAULT_BUDGET_SECONDS),
            cross_validate_below: CROSS_VALIDATE_BELOW,
            finetune: None,
        }
    }
}

/// The default budget of the search, in seconds.
pub const DEFAULT_BUDGET_SECONDS: u64 = 60;

/// The default of [`SelectOptions::cross_validate_below`]: at a few hundred examples a 20%
/// hold-out still has tens per class, which is where scores on it stop being mostly noise.
pub const CROSS_VALIDATE_BELOW: usize = 500;

/// How candidates were scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Validation {
    /// Stratified k-fold cross-validation on every example.
    CrossValidation {
        /// Number of folds.
        folds: usize,
    },
    /// One hold-out.
    HoldOut {
        /// Examples the candidates trained on.
        n_train: usize,
        /// Examples they were scored on.
        n_valid: usize,
        /// Whether the hold-out was a validation set given by the caller.
        given: bool,
    },
}

/// One candidate's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The recipe.
    pub arm: Arm,
    /// Its validation score on the selection metric; None when it was not measured.
    pub score: Option<f64>,
    /// Its score on each fold under cross-validation, or on each part of the hold-out (which
    /// is dealt into parts as folds are, for the standard error of a difference).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fold_scores: Vec<f64>,
    /// Wall time spent on it, token embedding included.
    pub seconds: f64,
    /// Why it was not measured (over budget, or an error it met).
    pub skipped: Option<String>,
}

/// The outcome of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The metric candidates were ranked by (of the first task).
    pub metric: String,
    /// Whether higher is better for it.
    pub higher_is_better: bool,
    /// How candidates were scored.
    pub validation: Validation,
    /// Every candidate, in the order tried.
    pub candidates: Vec<Candidate>,
    /// The winner.
    pub chosen: Arm,
    /// The budget, in seconds.
    pub budget_seconds: f64,
    /// Wall time of the search (the final fit excluded).
    pub search_seconds: f64,
}

impl Selection {
    /// One sentence saying what was chosen and why, with the runner-up.
    pub fn reason(&self) -> String {
        let how = match &self.validation {
            Validation::CrossValidation { folds } => format!("{folds}-fold cross-validated"),
            Validation::HoldOut { given: true, .. } => "validation-set".to_string(),
            Validation::HoldOut { n_valid, .. } => format!("hold-out ({n_valid} examples)"),
        };
        let measured: Vec<&Candidate> = self
            .candidates
            .iter()
            .filter(|c| c.score.is_some())
            .collect();
        let best = self
            .candidates
            .iter()
            .find(|c| c.arm == self.chosen)
            .and_then(|c| c.score);
        // The chosen recipe need not have the best score: a higher one that is not clearly
        // higher does not replace an earlier recipe.
        let topped = measured.iter().any(|c| self.better(c.score, best));
        let mut s = format!(
            "chose {}: {}{how} {} ({}) of {} recipe{} measured",
            self.chosen,
            if topped { "" } else { "best " },
            self.metric,
            fmt_score(best),
            measured.len(),
            if measured.len() == 1 { "" } else { "s" }
        );
        let runner_up =
            measured
                .iter()
                .filter(|c| c.arm != self.chosen)
                .fold(None::<&Candidate>, |acc, c| match acc {
                    Some(a) if !self.better(c.score, a.score) => Some(a),
                    _ => Some(c),
                });
        if let Some(r) = runner_up {
            let within = self.better(r.score, best);
            s.push_str(&format!(
                "; next {} ({}{})",
                r.arm,
                fmt_score(r.score),
                if within {
                    ", higher but not clearly (by less than twice the standard error of the difference): the earlier recipe stays"
                } else {
                    ""
                }
            ));
        }
        let skipped: Vec<&str> = self
            .candidates
            .iter()
            .filter(|c| c.score.is_none())
            .map(|c| c.arm.name())
            .collect();
        if !skipped.is_empty() {
            s.push_str(&format!("; not measured: {}", skipped.join(", ")));
        }
        s
    }

    fn better(&self, a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => better(a, b, self.higher_is_better),
            (Some(_), None) => true,
            _ => false,
        }
    }
}

fn fmt_score(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// Whether candidate `c`, tried after `best`, takes its place: a better score, by more than
/// twice the standard error of the per-fold differences (cross-validation) or the per-part
/// differences (a hold-out dealt into parts) — a clear win, as `compare` defines one. The best of several noisy scores
/// flatters the luckiest candidate: on 48 held-out snippets (16 per class, folds of ten) a
/// one-standard-error margin still let metadata_only and two_stage_unfreeze replace the linear
/// recipe at 1.2–1.3 standard errors, and both then lost to it on the test set by 0.1–0.15
/// macro-F1. A hold-out is no better judge when a class is rare: on Reuters (1,381 training
/// documents, about 11 with `corn` in the hold-out) the sequence head won the hold-out by 0.06
/// and lost to the linear recipe on the test set by 0.13. So a later recipe has to win clearly.
pub fn beats(c: &Candidate, best: &Candidate, higher_is_better: bool) -> bool {
    let (Some(a), Some(b)) = (c.score, best.score) else {
        return c.score.is_some();
    };
    if !better(a, b, higher_is_better) {
        return false;
    }
    if c.fold_scores.len() != best.fold_scores.len() {
        return true;
    }
    let sign = if higher_is_better { 1.0 } else { -1.0 };
    // A part where a metric is undefined (no example of a class) says nothing either way.
    let d: Vec<f64> = c
        .fold_scores
        .iter()
        .zip(&best.fold_scores)
        .map(|(x, y)| sign * (x - y))
        .filter(|v| v.is_finite())
        .collect();
    let k = d.len();
    if k < 2 {
        return c.fold_scores.is_empty();
    }
    let mean = d.iter().sum::<f64>() / k as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    mean > 2.0 * (var / k as f64).sqrt()
}

fn better(a: f64, b: f64, higher_is_better: bool) -> bool {
    if higher_is_better {
        a > b
    } else {
        a < b
    }
}

/// Which vectors beyond the pooled embeddings a candidate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vectors {
    /// Every token's vector out of the backbone (a sequence head).
    Tokens,
    /// The hidden states below the backbone's top [`Arm::finetune_layers`] layers
    /// ([`Arm::FineTune`]).
    Hidden,
}

/// Where those vectors come from when a candidate needs them: called with which vectors,
/// which examples (`"train"` for `all`, `"valid"` for the validation set) and the deadline;
/// returns the vectors, or why they could not be had in time (a skip, not an error).
pub type TokenSource<'a> =
    dyn FnMut(Vectors, &str, Instant) -> Result<std::result::Result<TokenSeqs, String>> + 'a;

/// Chooses a recipe for `tasks` by validation within the budget (see the module docs) and
/// trains it. `all` holds every training example (pooled embeddings and metadata features; no
/// per-token vectors needed, `tokens` supplies them on demand); `valid`, when given, is the
/// hold-out. `on_candidate` sees each candidate as it is decided. Returns the selection, the
/// chosen recipe's trained heads, and the hold-out it was scored on (None under
/// cross-validation), with per-token vectors when the search fetched them.
pub fn select(
    tasks: &[TaskSpec],
    all: &Examples,
    valid: Option<&Examples>,
    tokens: &mut TokenSource<'_>,
    options: &SelectOptions,
    on_candidate: &mut dyn FnMut(&Candidate, usize, usize),
) -> Result<(Selection, Trained, Option<Examples>)> {
    select_with(
        tasks,
        all,
        valid,
        tokens,
        options,
        on_candidate,
        &mut |_| true,
    )
}

/// [`select`], with `progress` seeing every epoch of every candidate and of the final fit:
/// returning false cancels the whole search with [`ErrorKind::Cancelled`] (a host's cancel,
/// unlike the budget, which only ends the search).
pub fn select_with(
    tasks: &[TaskSpec],
    all: &Examples,
    valid: Option<&Examples>,
    tokens: &mut TokenSource<'_>,
    options: &SelectOptions,
    on_candidate: &mut dyn FnMut(&Candidate, usize, usize),
    progress: Progress<'_>,
) -> Result<(Selection, Trained, Option<Examples>)> {
    options.config.validate()?;
    let first = tasks.first().ok_or_else(|| Error::invalid("no tasks"))?;
    let start = Instant::now();
    let deadline = start + options.budget;
    let (metrics, higher_is_better) = headline_metrics(first.kind);
    let judge = Judge {
        tasks,
        metric: metrics[0],
        options,
        host: RefCell::new(progress),
        cancelled: Cell::new(false),
        over_budget: Cell::new(None),
    };
    let mut data = Data::new(
        all,
        valid,
        &options.config,
        options.cross_validate_below,
        first,
    )?;
    let order = match (&options.candidates, &data.plan) {
        (Some(c), _) => c.clone(),
        (None, Plan::Folds { .. }) => {
            let mut c = CANDIDATES_SMALL.to_vec();
            if options.finetune.is_some() {
                // The best recipe on small data where it was measured (few-shot fine-tuning in
                // docs/results.md) and the costliest, so it comes right after the recipe to
                // beat, while the budget is whole (the pooled heads take a second or less each
                // here, and a fine-tune that cannot end in time stops after its first fold).
                c.insert(1, Arm::FineTune);
            }
            c
        }
        (None, Plan::HoldOut { .. }) => {
            let mut c = CANDIDATES_LARGE.to_vec();
            if options.finetune.is_some() {
                // Minutes on thousands of texts: only a larger budget reaches it.
                c.push(Arm::FineTune);
            }
            c
        }
    };
    if order.is_empty() {
        return Err(Error::invalid(
            "the recipe search needs at least one candidate",
        ));
    }
    if order.contains(&Arm::FineTune) {
        let k = Arm::finetune_layers(&options.config);
        match &options.finetune {
            None => {
                return Err(Error::invalid(
                    "the finetune candidate needs the backbone's top layers \
                     (SelectOptions::finetune)",
                ))
            }
            Some(f) if f.top.layers.len() != k => {
                return Err(Error::invalid(format!(
                    "the finetune candidate trains {k} layers, but {} were given",
                    f.top.layers.len()
                )))
            }
            Some(_) => {}
        }
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut kept: BTreeMap<Arm, Trained> = BTreeMap::new();
    let mut first_error: Option<Error> = None;
    for (i, &arm) in order.iter().enumerate() {
        let t0 = Instant::now();
        // The first candidate always finishes: there must be a winner.
        let limit = (i > 0).then_some(deadline);
        let outcome = if limit.is_some_and(|d| Instant::now() >= d) {
            Err("the budget was spent before it started".to_string())
        } else {
            match data.ensure_vectors(arm, &options.config, tokens, limit.unwrap_or(far()))? {
                Err(why) => Err(why),
                Ok(()) => match judge.measure(arm, &data, limit) {
                    Ok(m) => {
                        if let Some(t) = m.trained {
                            kept.insert(arm, t);
                        }
                        Ok((m.score, m.folds))
                    }
                    Err(e) if e.kind() == ErrorKind::Cancelled && !judge.cancelled.get() => {
                        Err(judge
                            .over_budget
                            .take()
                            .unwrap_or_else(|| "stopped when the budget ran out".to_string()))
                    }
                    Err(e) if e.kind() == ErrorKind::Cancelled => return Err(e),
                    Err(e) => {
                        let why = e.message().to_string();
                        first_error.get_or_insert(e);
                        Err(why)
                    }
                },
            }
        };
        let (score, fold_scores) = match &outcome {
            Ok((s, f)) => (Some(*s), f.clone()),
            Err(_) => (None, Vec::new()),
        };
        let c = Candidate {
            arm,
            score,
            fold_scores,
            seconds: t0.elapsed().as_secs_f64(),
            skipped: outcome.err(),
        };
        on_candidate(&c, i + 1, order.len());
        candidates.push(c);
    }
    let mut chosen: Option<&Candidate> = None;
    for c in candidates.iter().filter(|c| c.score.is_some()) {
        if chosen.is_none_or(|b| beats(c, b, higher_is_better)) {
            chosen = Some(c);
        }
    }
    let Some(chosen) = chosen.map(|c| c.arm) else {
        return Err(first_error.unwrap_or_else(|| Error::invalid("no recipe could be measured")));
    };
    let search_seconds = start.elapsed().as_secs_f64();
    let trained = match (kept.remove(&chosen), &data.plan) {
        // The linear recipe, as `--head linear` would, learns from every example: refitted
        // at the C its cross-validation chose on the training part.
        (Some(t), Plan::HoldOut { split: Some(_), .. }) if chosen == Arm::Linear => {
            let config = candidate_config(chosen, options, tasks, false);
            let mut host = judge.host.borrow_mut();
            crate::train::linear::refit_linear(tasks, &data.all, &config, &t, &mut **host)?
        }
        (Some(t), _) => t,
        (None, _) => judge.final_fit(chosen, &data)?,
    };
    Ok((
        Selection {
            metric: metrics[0].to_string(),
            higher_is_better,
            validation: data.validation(),
            candidates,
            chosen,
            budget_seconds: options.budget.as_secs_f64(),
            search_seconds,
        },
        trained,
        match data.plan {
            Plan::HoldOut { valid, .. } => Some(valid),
            Plan::Folds { .. } => None,
        },
    ))
}

/// A deadline that never comes (the first candidate's).
fn far() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// The examples of the search and how they are split.
struct Data {
    all: Examples,
    plan: Plan,
}

// One value per search: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Plan {
    /// Fold index of every example of `all`.
    Folds { k: usize, fold: Vec<usize> },
    /// Training examples and the hold-out: given, or split from `all` at these indices; and
    /// the part of the hold-out each of its examples is in.
    HoldOut {
        train: Examples,
        valid: Examples,
        split: Option<(Vec<usize>, Vec<usize>)>,
        parts: Vec<usize>,
    },
}

impl Data {
    fn new(
        all: &Examples,
        valid: Option<&Examples>,
        config: &TrainConfig,
        cross_validate_below: usize,
        first: &TaskSpec,
    ) -> Result<Data> {
        let strata = class_indices(&all.split_strata());
        // The hold-out's parts, stratified as the folds are.
        let parts_of = |valid: &Examples| {
            let strata = class_indices(&valid.split_strata());
            fold_of(valid.len(), Some(&strata), HOLD_OUT_PARTS, config.seed)
        };
        let plan = match valid {
            Some(v) => Plan::HoldOut {
                train: all.clone(),
                valid: v.clone(),
                split: None,
                parts: parts_of(v),
            },
            None => match search_folds(all.len(), &strata) {
                Some(k) if all.len() < cross_validate_below => Plan::Folds {
                    k,
                    fold: fold_of(all.len(), Some(&strata), k, config.seed),
                },
                _ => {
                    let (tr, va) = hold_out(all, config, first)?;
                    let valid = all.select(&va);
                    Plan::HoldOut {
                        train: all.select(&tr),
                        parts: parts_of(&valid),
                        valid,
                        split: Some((tr, va)),
                    }
                }
            },
        };
        Ok(Data {
            all: all.clone(),
            plan,
        })
    }

    fn validation(&self) -> Validation {
        match &self.plan {
            Plan::Folds { k, .. } => Validation::CrossValidation { folds: *k },
            Plan::HoldOut {
                train,
                valid,
                split,
                ..
            } => Validation::HoldOut {
                n_train: train.len(),
                n_valid: valid.len(),
                given: split.is_none(),
            },
        }
    }

    /// Fetches the vectors `arm` reads beyond the pooled embeddings if they are missing.
    fn ensure_vectors(
        &mut self,
        arm: Arm,
        config: &TrainConfig,
        source: &mut TokenSource<'_>,
        deadline: Instant,
    ) -> Result<std::result::Result<(), String>> {
        let kind = if arm == Arm::FineTune {
            Vectors::Hidden
        } else if arm.config(config, config.seed).head.kind == HeadKind::Sequence {
            Vectors::Tokens
        } else {
            return Ok(Ok(()));
        };
        if slot(&mut self.all, kind).is_some() {
            return Ok(Ok(()));
        }
        let train = match source(kind, "train", deadline)? {
            Ok(t) => t,
            Err(why) => return Ok(Err(why)),
        };
        let valid = match &self.plan {
            Plan::HoldOut { split: None, .. } => match source(kind, "valid", deadline)? {
                Ok(t) => Some(t),
                Err(why) => return Ok(Err(why)),
            },
            _ => None,
        };
        *slot(&mut self.all, kind) = Some(train);
        if let Plan::HoldOut {
            train: tr,
            valid: va,
            split,
            ..
        } = &mut self.plan
        {
            match split {
                // The same split (same indices), now with the vectors in place.
                Some((tr_idx, va_idx)) => {
                    *tr = self.all.select(tr_idx);
                    *va = self.all.select(va_idx);
                }
                None => {
                    *slot(tr, kind) = slot(&mut self.all, kind).clone();
                    *slot(va, kind) = valid;
                }
            }
        }
        Ok(Ok(()))
    }
}

/// Where examples keep vectors of this kind.
fn slot(ex: &mut Examples, kind: Vectors) -> &mut Option<TokenSeqs> {
    match kind {
        Vectors::Tokens => &mut ex.tokens,
        Vectors::Hidden => &mut ex.hidden,
    }
}

/// The hold-out the search scores on when `all` has enough examples and no validation set is
/// given: the stratified split `train` makes (`valid_fraction`, the config's seed), as indices
/// of the training and validation examples.
pub fn hold_out(
    all: &Examples,
    config: &TrainConfig,
    first: &TaskSpec,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut pooled = config.clone();
    pooled.head.kind = HeadKind::Pooled;
    split_indices_of(all, &pooled, Some(first))
}

/// How many parts a hold-out is dealt into for the standard error of a difference between
/// two candidates' scores (as many as the folds of cross-validation).
pub const HOLD_OUT_PARTS: usize = 5;

/// The folds of the search on `n` examples with these strata: as the linear recipe's (5, or
/// fewer for a smaller class), or, where the strata are too fine for that (label combinations
/// of a multi-label task, a class of one), 5 folds dealt round-robin over the strata anyway,
/// which spreads each stratum as evenly as its size allows. Falling back to one hold-out
/// instead scored Reuters candidates on 9 held-out documents.
fn search_folds(n: usize, strata: &[usize]) -> Option<usize> {
    folds_for(n, Some(strata)).or_else(|| (n >= 2 * HOLD_OUT_PARTS).then_some(HOLD_OUT_PARTS))
}

/// Whether the search cross-validates on `n` examples (no validation set given).
pub fn cross_validates(n: usize, options: &SelectOptions) -> bool {
    n < options.cross_validate_below
}

/// The config a candidate trains with on the search's base config: [`Arm::config`] with the
/// base's seed; under cross-validation, neural candidates run their full epochs with no early
/// stopping and no threshold tuning (nothing may be chosen on the scoring fold, and the final
/// fit has no hold-out). The fine-tuning candidate takes fine-tuning's measured defaults where
/// the config is silent ([`TrainConfig::apply_finetune_defaults`]), and under
/// cross-validation, with a class task first, the contrastive warm-up measured on few
/// examples ([`FEWSHOT_CONTRASTIVE_EPOCHS`]).
pub fn candidate_config(
    arm: Arm,
    options: &SelectOptions,
    tasks: &[TaskSpec],
    cross_validated: bool,
) -> TrainConfig {
    let base = &options.config;
    let mut c = arm.config(base, base.seed);
    if arm == Arm::FineTune {
        let none = ExplicitKeys::default();
        let explicit = options.finetune.as_ref().map_or(&none, |f| &f.explicit);
        c.apply_finetune_defaults(explicit);
        let classes = tasks
            .first()
            .is_some_and(|t| matches!(t.kind, TaskKind::Multiclass | TaskKind::Binary));
        if cross_validated && classes && !explicit.contains("backbone.contrastive_epochs") {
            c.backbone.contrastive_epochs = FEWSHOT_CONTRASTIVE_EPOCHS;
            if !explicit.contains("backbone.contrastive_pairs") {
                c.backbone.contrastive_pairs = FEWSHOT_CONTRASTIVE_PAIRS;
            }
        }
    }
    if cross_validated && arm != Arm::Linear {
        c.tune_thresholds = false;
        c.head.stage.patience = 0;
        c.metadata.stage.patience = 0;
    }
    c
}

/// `ex` with the embeddings `trained`'s fine-tuned layers make of its hidden states (as
/// served), or as it is when nothing was fine-tuned.
fn through_top<'e>(trained: &Trained, ex: &'e Examples) -> std::borrow::Cow<'e, Examples> {
    match (&trained.top, &ex.hidden) {
        // Pooled heads read only the embeddings, features and targets.
        (Some(top), Some(h)) => std::borrow::Cow::Owned(Examples {
            emb: top.embed(h),
            feats: ex.feats.clone(),
            targets: ex.targets.clone(),
            tokens: None,
            hidden: None,
            strata: None,
            soft: None,
        }),
        _ => std::borrow::Cow::Borrowed(ex),
    }
}

/// Dense class indices of string strata, for the fold assignment.
fn class_indices(strata: &[String]) -> Vec<usize> {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for s in strata {
        let next = ids.len();
        ids.entry(s.as_str()).or_insert(next);
    }
    strata.iter().map(|s| ids[s.as_str()]).collect()
}

/// A candidate's score (the mean over folds under cross-validation), the per-fold scores, and
/// its trained heads when they are the ones to keep if it wins.
struct Measured {
    score: f64,
    folds: Vec<f64>,
    trained: Option<Trained>,
}

/// Trains and scores candidates.
struct Judge<'a, 'p> {
    tasks: &'a [TaskSpec],
    metric: &'a str,
    options: &'a SelectOptions,
    /// The caller's progress callback (one training runs at a time).
    host: RefCell<Progress<'p>>,
    /// Whether the caller cancelled (not the budget).
    cancelled: Cell<bool>,
    /// Why a candidate was stopped early: its remaining folds would not fit the budget.
    over_budget: Cell<Option<String>>,
}

impl Judge<'_, '_> {
    fn metric_of(&self, v: &Value) -> Result<f64> {
        v.get(self.metric).and_then(Value::as_f64).ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("the evaluation has no {}", self.metric),
            )
        })
    }

    /// Trains `arm` on `train`; neural candidates validate on `valid` (the training data
    /// itself under cross-validation, where nothing may be chosen on the scoring fold).
    fn fit(
        &self,
        arm: Arm,
        train: &Examples,
        valid: &Examples,
        cross_validated: bool,
        deadline: Option<Instant>,
    ) -> Result<Trained> {
        let config = candidate_config(arm, self.options, self.tasks, cross_validated);
        let top = match (arm, &self.options.finetune) {
            (Arm::FineTune, Some(f)) => Some(f.top.clone()),
            _ => None,
        };
        let mut host = self.host.borrow_mut();
        let mut progress = |r: &crate::train::EpochRecord| {
            if !host(r) {
                self.cancelled.set(true);
                return false;
            }
            deadline.is_none_or(|d| Instant::now() < d)
        };
        crate::train::train_top(self.tasks, train, valid, &config, top, &mut progress)
    }

    /// `trained`'s score on `ex`, through its fine-tuned layers when it has them.
    fn score_of(&self, trained: &Trained, ex: &Examples) -> Result<f64> {
        self.metric_of(&score(&trained.heads, &through_top(trained, ex))?)
    }

    /// Trains and scores one candidate.
    fn measure(&self, arm: Arm, data: &Data, deadline: Option<Instant>) -> Result<Measured> {
        match &data.plan {
            Plan::Folds { k, fold } => {
                let mut folds = Vec::with_capacity(*k);
                let started = Instant::now();
                for f in 0..*k {
                    // The folds take about as long as each other: when those left cannot end
                    // within the budget, stop now and leave the rest to later candidates.
                    if let (Some(d), true) = (deadline, f > 0) {
                        let per_fold = started.elapsed().as_secs_f64() / f as f64;
                        let left = d.saturating_duration_since(Instant::now()).as_secs_f64();
                        if per_fold * (*k - f) as f64 > left {
                            self.over_budget.set(Some(format!(
                                "stopped after {f} of {k} folds: at {per_fold:.1}s a fold, the \
                                 rest would end past the budget (a larger --budget measures it)"
                            )));
                            return Err(Error::new(ErrorKind::Cancelled, "over the budget"));
                        }
                    }
                    let (tr, te): (Vec<usize>, Vec<usize>) =
                        (0..fold.len()).partition(|&i| fold[i] != f);
                    let train = data.all.select(&tr);
                    let test = data.all.select(&te);
                    let valid = if arm == Arm::Linear {
                        test.select(&[])
                    } else {
                        train.clone()
                    };
                    // Nor may the first fold take more than its share of the time left: a
                    // candidate whose first fold alone would eat the budget cannot finish (the
                    // check above would stop it after that fold anyway), and stopping it there
                    // leaves the rest to later candidates. Later folds keep the whole deadline,
                    // so a fold a little slower than the others does not stop a candidate the
                    // check above lets finish.
                    let share = deadline.filter(|_| f == 0).map(|d| {
                        let now = Instant::now();
                        (now, d.saturating_duration_since(now) / *k as u32)
                    });
                    let fold_deadline = share.map(|(t, s)| t + s).or(deadline);
                    let trained = match self.fit(arm, &train, &valid, true, fold_deadline) {
                        Err(e)
                            if e.kind() == ErrorKind::Cancelled
                                && !self.cancelled.get()
                                && share.is_some()
                                && deadline.is_some_and(|d| Instant::now() < d) =>
                        {
                            let secs = share.map_or(0.0, |(_, s)| s.as_secs_f64());
                            self.over_budget.set(Some(format!(
                                "stopped in fold 1 of {k}: a fold takes more than \
                                     {secs:.1}s, so the folds would end past the budget (a \
                                     larger --budget measures it)"
                            )));
                            return Err(e);
                        }
                        r => r?,
                    };
                    folds.push(self.score_of(&trained, &test)?);
                }
                Ok(Measured {
                    score: folds.iter().sum::<f64>() / *k as f64,
                    folds,
                    trained: None,
                })
            }
            Plan::HoldOut {
                train,
                valid,
                parts,
                ..
            } => {
                let trained = self.fit(arm, train, valid, false, deadline)?;
                // Fine-tuned layers embed the hold-out anew, once for all its parts.
                let valid = through_top(&trained, valid);
                let s = self.metric_of(&score(&trained.heads, &valid)?)?;
                let mut folds = Vec::with_capacity(HOLD_OUT_PARTS);
                for p in 0..HOLD_OUT_PARTS {
                    let rows: Vec<usize> = (0..parts.len()).filter(|&i| parts[i] == p).collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let part = valid.select(&rows);
                    folds.push(self.metric_of(&score(&trained.heads, &part)?)?);
                }
                Ok(Measured {
                    score: s,
                    folds,
                    trained: Some(trained),
                })
            }
        }
    }

    /// The winner trained on every example, under cross-validation (where no candidate's model
    /// is kept: each was trained on part of the data).
    fn final_fit(&self, arm: Arm, data: &Data) -> Result<Trained> {
        let valid = if arm == Arm::Linear {
            data.all.select(&[])
        } else {
            data.all.clone()
        };
        self.fit(arm, &data.all, &valid, true, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Targets, TaskKind};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    /// `per_class` examples of each of 3 classes in 8 dimensions, separable with noise.
    fn blobs(per_class: usize, seed: u64) -> Examples {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = per_class * 3;
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let emb = Array2::from_shape_fn((n, 8), |(i, j)| {
            let centre = if j % 3 == y[i] { 1.0 } else { 0.0 };
            centre + rng.random_range(-1.0f32..1.0)
        });
        Examples {
            emb,
            feats: Array2::zeros((n, 0)),
            targets: vec![Targets::Class(y)],
            tokens: None,
            hidden: None,
            strata: None,
            soft: None,
        }
    }

    fn task() -> Vec<TaskSpec> {
        vec![TaskSpec {
            name: "topic".into(),
            kind: TaskKind::Multiclass,
            labels: vec!["a".into(), "b".into(), "c".into()],
        }]
    }

    fn options(candidates: &[Arm]) -> SelectOptions {
        let mut config = TrainConfig::default();
        config.head.stage.epochs = 5;
        config.head.hidden = vec![16];
        SelectOptions {
            config,
            candidates: Some(candidates.to_vec()),
            budget: Duration::from_secs(600),
            ..SelectOptions::default()
        }
    }

    fn no_tokens(
    ) -> impl FnMut(Vectors, &str, Instant) -> Result<std::result::Result<TokenSeqs, String>> {
        |_, _, _| Ok(Err("no per-token vectors here".to_string()))
    }

    #[test]
    fn small_data_is_cross_validated_and_the_best_score_wins_deterministically() {
        let all = blobs(20, 1);
        let opts = options(&[Arm::Linear, Arm::EmbeddingOnly]);
        let mut seen = Vec::new();
        let (sel, trained, held_out) = select(
            &task(),
            &all,
            None,
            &mut no_tokens(),
            &opts,
            &mut |c, i, n| seen.push((c.arm, i, n)),
        )
        .unwrap();
        assert_eq!(seen, [(Arm::Linear, 1, 2), (Arm::EmbeddingOnly, 2, 2)]);
        assert_eq!(sel.validation, Validation::CrossValidation { folds: 5 });
        assert!(held_out.is_none());
        let s: Vec<f64> = sel.candidates.iter().map(|c| c.score.unwrap()).collect();
        let best = if s[1] > s[0] {
            Arm::EmbeddingOnly
        } else {
            Arm::Linear
        };
        assert_eq!(sel.chosen, best);
        // The winner was trained on every example.
        assert_eq!(trained.report.n_train, all.len());
        assert!(
            sel.reason()
                .starts_with(&format!("chose {best}: best 5-fold")),
            "{}",
            sel.reason()
        );
        let (again, trained2, _) = select(
            &task(),
            &all,
            None,
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
        )
        .unwrap();
        let s2: Vec<f64> = again.candidates.iter().map(|c| c.score.unwrap()).collect();
        assert_eq!(s, s2);
        assert_eq!(
            trained.heads.network.weights(),
            trained2.heads.network.weights()
        );
    }

    #[test]
    fn more_data_is_scored_on_a_hold_out_and_a_linear_winner_is_refitted_on_everything() {
        let all = blobs(20, 2);
        let mut opts = options(&[Arm::Linear]);
        opts.cross_validate_below = 10;
        let (sel, trained, held_out) = select(
            &task(),
            &all,
            None,
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
        )
        .unwrap();
        let Validation::HoldOut {
            n_train,
            n_valid,
            given,
        } = sel.validation
        else {
            panic!("{:?}", sel.validation)
        };
        assert_eq!((n_train + n_valid, given), (60, false));
        assert_eq!(held_out.unwrap().len(), n_valid);
        assert_eq!(trained.report.n_train, 60);
        // Scored on the hold-out's parts too, for the standard error of a difference.
        assert_eq!(sel.candidates[0].fold_scores.len(), HOLD_OUT_PARTS);
        // Refitted at the C the training part's cross-validation chose, not cross-validated
        // again: the refit's weights are one solve at that C on every example.
        let c = trained.report.linear.as_ref().unwrap()[0].c.unwrap();
        let config = candidate_config(Arm::Linear, &opts, &task(), false);
        let fresh = crate::train::linear::train_linear(
            &task(),
            &all,
            &all.select(&[]),
            &config,
            &mut |_| true,
        )
        .unwrap();
        let refit =
            crate::train::linear::refit_linear(&task(), &all, &config, &fresh, &mut |_| true)
                .unwrap();
        assert_eq!(
            refit.report.linear.as_ref().unwrap()[0].c,
            fresh.report.linear.as_ref().unwrap()[0].c
        );
        assert_eq!(refit.heads.network.weights(), fresh.heads.network.weights());
        assert!(c > 0.0);
        // A given validation set is the hold-out, and a neural winner is kept as trained.
        let valid = blobs(5, 3);
        let opts = options(&[Arm::EmbeddingOnly]);
        let (sel, trained, held_out) = select(
            &task(),
            &all,
            Some(&valid),
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert!(matches!(
            sel.validation,
            Validation::HoldOut {
                given: true,
                n_valid: 15,
                ..
            }
        ));
        assert_eq!((trained.report.n_train, held_out.unwrap().len()), (60, 15));
    }

    #[test]
    fn the_budget_and_missing_tokens_leave_candidates_unmeasured_with_a_reason() {
        let all = blobs(10, 4);
        let mut opts = options(&[Arm::Linear, Arm::EmbeddingOnly, Arm::Sequence]);
        opts.budget = Duration::ZERO;
        let (sel, _, _) = select(
            &task(),
            &all,
            None,
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
        )
        .unwrap();
        // The first candidate always finishes; nothing starts after the budget is spent.
        assert_eq!(sel.chosen, Arm::Linear);
        assert!(sel.candidates[0].score.is_some());
        for c in &sel.candidates[1..] {
            assert_eq!(c.score, None);
            assert!(c.skipped.as_deref().unwrap().contains("budget"), "{c:?}");
        }
        assert!(
            sel.reason()
                .ends_with("not measured: embedding_only, sequence"),
            "{}",
            sel.reason()
        );
        // Per-token vectors that cannot be had skip the sequence candidate, not the search.
        opts.budget = Duration::from_secs(600);
        let (sel, _, _) = select(
            &task(),
            &all,
            None,
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(
            sel.candidates[2].skipped.as_deref(),
            Some("no per-token vectors here")
        );
        assert!(sel.candidates[1].score.is_some());
    }

    #[test]
    fn a_fold_that_would_take_more_than_its_share_of_the_budget_stops_in_that_fold() {
        let all = blobs(10, 4);
        let mut opts = options(&[Arm::Linear, Arm::EmbeddingOnly]);
        // Generous, so the linear candidate leaves most of it even on a loaded machine (a
        // debug build of it has taken 3 s there).
        opts.budget = Duration::from_secs(20);
        // The host makes every epoch of the neural candidate slow: 5 epochs a fold, 2 s each,
        // so a fold takes 10 s, more than a fifth of what the budget leaves.
        let mut slow = |r: &crate::train::EpochRecord| {
            if !r.stage.starts_with("linear") {
                std::thread::sleep(Duration::from_millis(2000));
            }
            true
        };
        let (sel, _, _) = select_with(
            &task(),
            &all,
            None,
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
            &mut slow,
        )
        .unwrap();
        let c = &sel.candidates[1];
        assert_eq!(c.score, None);
        assert!(
            c.skipped
                .as_deref()
                .unwrap()
                .starts_with("stopped in fold 1 of 5"),
            "{c:?}"
        );
        // Stopped at its share (at most 4 s, so after at most 3 epochs), not after a whole
        // fold (10 s).
        assert!(c.seconds < 8.5, "{c:?}");
        assert_eq!(sel.chosen, Arm::Linear);
    }

    /// `blobs` with hidden states of 3 tokens per text near its embedding, and two random
    /// layers of that width to fine-tune.
    fn with_hidden(per_class: usize, seed: u64) -> (Examples, BackboneTop) {
        use crate::nn::bert::{BertConfig, BERT_LAYER_NORM_EPS};
        let mut all = blobs(per_class, seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 7);
        let mut h = TokenSeqs::new(8);
        for row in all.emb.rows() {
            let t = Array2::from_shape_fn((3, 8), |(_, j)| row[j] + rng.random_range(-0.3f32..0.3));
            h.push(t.view());
        }
        all.hidden = Some(h);
        let cfg = BertConfig {
            hidden: 8,
            heads: 2,
            intermediate: 12,
            layer_norm_eps: BERT_LAYER_NORM_EPS,
        };
        let layers = (0..2)
            .map(|i| crate::nn::bert::tests::random_layer(&cfg, i, &format!("encoder.layer.{i}")))
            .collect();
        (
            all,
            BackboneTop {
                layers,
                normalize: true,
                pooling: crate::backbone::Pooling::Mean,
            },
        )
    }

    #[test]
    fn fine_tuning_is_a_candidate_with_its_own_recipe_and_the_hidden_states_it_asks_for() {
        let (all, top) = with_hidden(12, 4);
        let hidden = all.hidden.clone().unwrap();
        let pooled = Examples {
            hidden: None,
            strata: None,
            soft: None,
            ..all.clone()
        };
        let mut opts = options(&[]);
        opts.candidates = None;
        opts.finetune = Some(FineTuneCandidate {
            top: top.clone(),
            explicit: ExplicitKeys::default(),
        });
        // With no budget only the first candidate is measured.
        opts.budget = Duration::ZERO;
        let mut asked = Vec::new();
        let mut source = |kind: Vectors, which: &str, _: Instant| {
            asked.push((kind, which.to_string()));
            Ok(Ok(hidden.clone()))
        };
        let mut seen = Vec::new();
        let (sel, _, _) = select(
            &task(),
            &pooled,
            None,
            &mut source,
            &opts,
            &mut |c, _, n| seen.push((c.arm, c.score.is_some(), n)),
        )
        .unwrap();
        // Under cross-validation it comes second, after the recipe to beat; with no budget it
        // is not measured, and its hidden states are not fetched.
        assert_eq!(seen[0], (Arm::Linear, true, 3));
        assert_eq!(seen[1], (Arm::FineTune, false, 3));
        assert!(asked.is_empty());
        assert_eq!(sel.chosen, Arm::Linear);
        // Measured: it asks for the hidden states of the training data once, is scored on
        // every fold, and when it is the only candidate its final fit carries the tuned
        // layers, deterministically.
        opts.candidates = Some(vec![Arm::FineTune]);
        let run = |opts: &SelectOptions, asked: &mut Vec<(Vectors, String)>| {
            let mut source = |kind: Vectors, which: &str, _: Instant| {
                asked.push((kind, which.to_string()));
                Ok(Ok(hidden.clone()))
            };
            select(&task(), &pooled, None, &mut source, opts, &mut |_, _, _| {}).unwrap()
        };
        let mut asked = Vec::new();
        let (sel, trained, _) = run(&opts, &mut asked);
        assert_eq!(asked, [(Vectors::Hidden, "train".to_string())]);
        assert_eq!(sel.chosen, Arm::FineTune);
        assert_eq!(sel.candidates[0].fold_scores.len(), 5);
        let tuned = trained.top.as_ref().expect("the fine-tuned layers");
        assert_ne!(tuned.embed(&hidden), top.embed(&hidden));
        // The contrastive warm-up of few-shot fine-tuning ran before the head stage.
        assert_eq!(trained.report.stages[0].stage, "contrastive");
        let (again, trained2, _) = run(&opts, &mut Vec::new());
        assert_eq!(
            again.candidates[0].fold_scores,
            sel.candidates[0].fold_scores
        );
        assert_eq!(trained2.top.unwrap().embed(&hidden), tuned.embed(&hidden));
        // Its recipe: fine-tuning's defaults, and the warm-up only under cross-validation
        // with classes, where the config does not name one.
        let c = candidate_config(Arm::FineTune, &opts, &task(), true);
        assert_eq!(
            (
                c.backbone.trainable_layers,
                c.backbone.contrastive_epochs,
                c.backbone.contrastive_pairs,
                c.head.stage.epochs
            ),
            (
                2,
                FEWSHOT_CONTRASTIVE_EPOCHS,
                FEWSHOT_CONTRASTIVE_PAIRS,
                crate::train::config::FINETUNE_EPOCHS
            )
        );
        assert_eq!(
            candidate_config(Arm::FineTune, &opts, &task(), false)
                .backbone
                .contrastive_epochs,
            0
        );
        let mut named = opts.clone();
        named.finetune.as_mut().unwrap().explicit =
            ExplicitKeys::of_text("[backbone]\ncontrastive_epochs = 0\n").unwrap();
        assert_eq!(
            candidate_config(Arm::FineTune, &named, &task(), true)
                .backbone
                .contrastive_epochs,
            0
        );
        // Without the layers it cannot be a candidate: a clear error, before any work.
        opts.finetune = None;
        let Err(err) = select(
            &task(),
            &pooled,
            None,
            &mut no_tokens(),
            &opts,
            &mut |_, _, _| {},
        ) else {
            panic!("fine-tuning without layers was a candidate")
        };
        assert!(err.message().contains("top layers"), "{}", err.message());
    }

    #[test]
    fn a_costlier_candidate_must_win_by_more_than_the_fold_noise() {
        let cand = |arm, folds: &[f64]| Candidate {
            arm,
            score: Some(folds.iter().sum::<f64>() / folds.len() as f64),
            fold_scores: folds.to_vec(),
            seconds: 0.0,
            skipped: None,
        };
        let linear = cand(Arm::Linear, &[0.50, 0.60, 0.55, 0.52, 0.58]);
        // Better on average, but only through one lucky fold: differences 0.2, -0.05, 0, ...
        let lucky = cand(Arm::Joint, &[0.70, 0.55, 0.55, 0.52, 0.58]);
        assert!(!beats(&lucky, &linear, true));
        // Measured on held-out snippets: +0.115 mean at 1.2 standard errors is not clear.
        let linear2 = cand(Arm::Linear, &[0.302, 0.583, 0.133, 0.444, 0.389]);
        let meta = cand(Arm::MetadataOnly, &[0.417, 0.407, 0.492, 0.433, 0.679]);
        assert!(!beats(&meta, &linear2, true));
        // Better on every fold: a clear win.
        let clear = cand(Arm::Sequence, &[0.55, 0.64, 0.60, 0.56, 0.63]);
        assert!(beats(&clear, &linear, true));
        assert!(!beats(&linear, &clear, true));
        // Lower is better (RMSE): the same rule, mirrored.
        let a = cand(Arm::Linear, &[1.0, 1.1, 1.2]);
        let b = cand(Arm::Joint, &[0.9, 1.0, 1.1]);
        assert!(beats(&b, &a, false) && !beats(&a, &b, false));
        // Without folds or parts (a caller's scores): any better score.
        let (mut h1, mut h2) = (cand(Arm::Linear, &[0.5]), cand(Arm::Joint, &[0.51]));
        h1.fold_scores.clear();
        h2.fold_scores.clear();
        assert!(beats(&h2, &h1, true));
        // A part where the metric is undefined is left out of the difference; with no two
        // defined parts left, nothing is clear.
        // (`score` is the whole hold-out's, given here; `cand` would average in the NaN.)
        let nan = f64::NAN;
        let scored = |arm, parts: &[f64], score| Candidate {
            score: Some(score),
            ..cand(arm, parts)
        };
        let p1 = cand(Arm::Linear, &[0.50, 0.60, nan, 0.52, 0.58]);
        let p2 = cand(Arm::Joint, &[0.55, 0.64, nan, 0.56, 0.63]);
        assert!(!beats(&p2, &p1, true), "the mean over parts is NaN");
        let p1 = scored(Arm::Linear, &[0.50, 0.60, nan, 0.52, 0.58], 0.55);
        let p2 = scored(Arm::Joint, &[0.55, 0.64, nan, 0.56, 0.63], 0.6);
        assert!(beats(&p2, &p1, true));
        let q1 = scored(Arm::Linear, &[nan, 0.5], 0.5);
        let q2 = scored(Arm::Joint, &[nan, 0.9], 0.9);
        assert!(!beats(&q2, &q1, true));
    }

    #[test]
    fn multi_label_data_is_cross_validated_though_its_label_sets_are_too_fine_to_stratify() {
        // 40 examples, two labels; the label set {a, b} occurs once, so no stratified k >= 2
        // keeps it in every fold, yet five folds dealt round-robin are still possible.
        let mut all = blobs(14, 5);
        all = all.select(&(0..40).collect::<Vec<_>>());
        let Targets::Class(y) = &all.targets[0] else {
            unreachable!()
        };
        let mut multi: Vec<Vec<f32>> = y
            .iter()
            .map(|&c| vec![f32::from(c == 0), f32::from(c == 1)])
            .collect();
        multi[0] = vec![1.0, 1.0];
        all.targets = vec![Targets::MultiHot(multi)];
        let tasks = vec![TaskSpec {
            name: "tags".into(),
            kind: TaskKind::Multilabel,
            labels: vec!["a".into(), "b".into()],
        }];
        let strata = class_indices(&all.split_strata());
        assert_eq!(folds_for(all.len(), Some(&strata)), None);
        assert_eq!(search_folds(all.len(), &strata), Some(5));
        let (sel, trained, held_out) = select(
            &tasks,
            &all,
            None,
            &mut no_tokens(),
            &options(&[Arm::Linear, Arm::EmbeddingOnly]),
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(sel.validation, Validation::CrossValidation { folds: 5 });
        assert!(held_out.is_none());
        assert!(sel.candidates.iter().all(|c| c.fold_scores.len() == 5));
        assert_eq!(trained.report.n_train, 40);
        // Too few examples for five folds: one hold-out, as before.
        assert_eq!(search_folds(9, &[0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn cross_validated_neural_candidates_never_stop_early_or_tune_on_the_scoring_fold() {
        let opts = SelectOptions::default();
        let base = &opts.config;
        let c = candidate_config(Arm::Joint, &opts, &task(), true);
        assert_eq!(
            (
                c.head.stage.patience,
                c.metadata.stage.patience,
                c.tune_thresholds
            ),
            (0, 0, false)
        );
        assert_eq!(c.mode, crate::train::Mode::Joint);
        // On a hold-out they train exactly as --mode would.
        let h = candidate_config(Arm::Joint, &opts, &task(), false);
        assert_eq!(h.head.stage.patience, base.head.stage.patience);
        assert!(h.tune_thresholds);
        // The linear recipe keeps its own rules either way.
        assert_eq!(
            candidate_config(Arm::Linear, &opts, &task(), true)
                .head
                .kind,
            HeadKind::Linear
        );
        assert_eq!(
            class_indices(&["b".into(), "a".into(), "b".into()]),
            [0, 1, 0]
        );
    }
}
