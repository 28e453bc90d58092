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

mod render;
mod run;
pub mod select;
mod stats;
mod verdict;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::render::efficiency_table;
pub use self::run::{compare, split, Splits};
pub use self::stats::{ArmSummary, Stat};
pub use self::verdict::{headline_metrics, verdict, Verdict};
use crate::data::TaskKind;
use crate::error::{Error, Result};
use crate::train::config::{HeadKind, StageConfig};
use crate::train::{Mode, TrainConfig};

/// One contender of a comparison (and of the default recipe's selection): a training mode with
/// the config's head type (for two-stage, with or without the encoder unfrozen during stage 2),
/// one of the two recipes defined by their head type, [`Arm::Linear`] and [`Arm::Sequence`], or
/// fine-tuning the backbone's top layers ([`Arm::FineTune`]). Serialized as [`Arm::name`].
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
    /// The linear recipe: an L2-regularized linear head on the embedding, solved to
    /// convergence, its regularization chosen by k-fold cross-validation (`head.kind =
    /// "linear"`).
    Linear,
    /// A sequence head (`head.kind = "sequence"`) on the embedding alone: it reads every
    /// token's vector.
    Sequence,
    /// A pooled head on the embedding alone with the backbone's top layers fine-tuned under it
    /// (`backbone.trainable_layers`: the config's, or [`FINETUNE_LAYERS`] when it sets none).
    /// Not among `compare`'s default arms (it trains transformer layers: name it with
    /// `--modes`); a candidate of the default recipe's search when the backbone splits.
    #[serde(rename = "finetune")]
    FineTune,
}

/// The layers [`Arm::FineTune`] trains when the config does not say.
pub const FINETUNE_LAYERS: usize = 2;

impl Arm {
    /// Every arm, in the order `compare` runs and reports them.
    pub const ALL: [Arm; 8] = [
        Arm::EmbeddingOnly,
        Arm::MetadataOnly,
        Arm::Joint,
        Arm::TwoStage,
        Arm::TwoStageUnfreeze,
        Arm::Linear,
        Arm::Sequence,
        Arm::FineTune,
    ];

    /// The arms `compare` runs unless told which: every recipe on the frozen backbone.
    pub const DEFAULT: [Arm; 7] = [
        Arm::EmbeddingOnly,
        Arm::MetadataOnly,
        Arm::Joint,
        Arm::TwoStage,
        Arm::TwoStageUnfreeze,
        Arm::Linear,
        Arm::Sequence,
    ];

    /// The arms that are training modes, run with whatever head type the config names
    /// (`compare --head` runs these).
    pub const MODES: [Arm; 5] = [
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
            Arm::Linear => "linear",
            Arm::Sequence => "sequence",
            Arm::FineTune => "finetune",
        }
    }

    /// The training mode the arm runs.
    pub fn mode(self) -> Mode {
        match self {
            Arm::EmbeddingOnly | Arm::Linear | Arm::Sequence | Arm::FineTune => Mode::EmbeddingOnly,
            Arm::MetadataOnly => Mode::MetadataOnly,
            Arm::Joint => Mode::Joint,
            Arm::TwoStage | Arm::TwoStageUnfreeze => Mode::TwoStage,
        }
    }

    /// True for the two two-stage arms.
    pub fn is_two_stage(self) -> bool {
        self.mode() == Mode::TwoStage
    }

    /// The head type the arm trains with a base config's `head.kind`: its own for
    /// [`Arm::Linear`] and [`Arm::Sequence`], else the config's (pooled in place of linear,
    /// which only the embedding-only mode can use).
    pub fn head(self, base: HeadKind) -> HeadKind {
        match (self, base) {
            (Arm::Linear, _) => HeadKind::Linear,
            (Arm::Sequence, _) => HeadKind::Sequence,
            (Arm::FineTune, _) => HeadKind::Pooled,
            (_, HeadKind::Linear) => HeadKind::Pooled,
            (_, h) => h,
        }
    }

    /// The config of one run of this arm: `base` with the arm's mode, head type
    /// ([`Arm::head`]), `seed`, the unfreezing the arm calls for (none for
    /// [`Arm::TwoStage`], [`unfreeze_schedule`] for [`Arm::TwoStageUnfreeze`]), and trainable
    /// backbone layers only for [`Arm::FineTune`] ([`Arm::finetune_layers`]).
    pub fn config(self, base: &TrainConfig, seed: u64) -> TrainConfig {
        let mut c = base.clone();
        c.backbone.trainable_layers = match self {
            Arm::FineTune => Self::finetune_layers(base),
            _ => 0,
        };
        c.mode = self.mode();
        c.head.kind = self.head(base.head.kind);
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

impl Arm {
    /// The backbone layers [`Arm::FineTune`] trains with `base`: its `backbone.trainable_layers`,
    /// or [`FINETUNE_LAYERS`] when that is 0.
    pub fn finetune_layers(base: &TrainConfig) -> usize {
        match base.backbone.trainable_layers {
            0 => FINETUNE_LAYERS,
            k => k,
        }
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
    /// The backbone's pretrained top layers, for [`Arm::FineTune`] (the examples then carry
    /// the hidden states below them).
    pub top: Option<crate::train::BackboneTop>,
    /// The settings `config` was given explicitly (from its file): [`Arm::FineTune`] runs then
    /// take fine-tuning's measured recipe for the others
    /// ([`TrainConfig::apply_finetune_defaults`]); `None` runs `config` as it is.
    pub explicit: Option<crate::train::config::ExplicitKeys>,
    /// Share of the training split the runs train on (stratified, split seed), for
    /// sample-efficiency curves; validation and test splits stay whole. In (0, 1].
    pub train_fraction: f64,
    /// How to measure a run's peak memory, when the host can (the CLI counts its heap).
    pub memory: Option<MemoryProbe>,
}

/// A host's measure of peak memory: `reset` starts a run, `peak` gives the most bytes that
/// were allocated at once since (the CLI counts its heap through its global allocator).
#[derive(Debug, Clone, Copy)]
pub struct MemoryProbe {
    /// Starts a measurement.
    pub reset: fn(),
    /// The peak in bytes since the last reset.
    pub peak: fn() -> u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            config: TrainConfig::default(),
            arms: Arm::DEFAULT.to_vec(),
            seeds: vec![0, 1, 2],
            test_fraction: 0.2,
            split_seed: 0,
            top: None,
            explicit: None,
            train_fraction: 1.0,
            memory: None,
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
    /// Parameters training updated in any stage (heads, encoder and auxiliary heads as the
    /// mode trains them, sequence encoder, fine-tuned backbone layers).
    pub trainable_parameters: usize,
    /// The most heap the process had allocated at once during the run, above what it held at
    /// the run's start (bytes; Rust allocations, which is all training does, not ONNX
    /// Runtime's); None without a [`MemoryProbe`].
    pub peak_memory_bytes: Option<u64>,
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
    /// Share of the training split the runs trained on.
    pub train_fraction: f64,
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

#[cfg(test)]
mod tests {
    use super::*;

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
            // JSON (compare's, a search's) names them as the command line does.
            assert_eq!(serde_json::to_value(a).unwrap(), a.name());
        }
        let e = "two-stage".parse::<Arm>().unwrap_err();
        assert!(
            e.message().contains("two_stage_unfreeze"),
            "{}",
            e.message()
        );
    }
}
