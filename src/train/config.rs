//! Training configuration: every option with its default, read from TOML or JSON. Unknown keys
//! are errors that name the key, so a typo never silently falls back to a default.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::nn::seq::SequenceConfig;

use crate::heads::Architecture;
pub use crate::heads::Mode;
use crate::nn::{ActivationKind, MlpConfig};

/// Loss for classification heads (regression heads use `regression_loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassLoss {
    /// Softmax cross-entropy (multiclass) or BCE with logits (binary, multi-label).
    CrossEntropy,
    /// Focal loss with `focal_gamma` (and class weights as α).
    Focal,
}

/// Loss for regression heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    /// Mean squared error.
    Mse,
    /// Huber loss with `huber_delta`.
    Huber,
}

/// Per-class loss weights from class counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeights {
    /// All 1.
    None,
    /// n / (k · count).
    Balanced,
    /// Effective number of samples (Cui et al., 2019) with β = 0.999.
    EffectiveNumber,
    /// 1 / sqrt(count), normalized to mean 1.
    Sqrt,
}

impl ClassWeights {
    /// The loss's class weighting this setting names (the effective number uses β = 0.999).
    pub fn weighting(self) -> crate::nn::ClassWeighting {
        use crate::nn::ClassWeighting as W;
        match self {
            ClassWeights::None => W::None,
            ClassWeights::Balanced => W::Balanced,
            ClassWeights::EffectiveNumber => W::EffectiveNumber { beta: 0.999 },
            ClassWeights::Sqrt => W::Sqrt,
        }
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Fixed learning rate.
    Constant,
    /// Linear warm-up over `warmup_fraction` of the steps, then cosine decay to 0.05 × lr.
    Cosine,
    /// Multiply by 0.5 after 2 epochs without validation improvement.
    Plateau,
}

/// How several heads' losses combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiTask {
    /// Each task's `weight` (default 1).
    Fixed,
    /// Learned homoscedastic uncertainty weights (Kendall et al., 2018).
    Uncertainty,
}

/// The validation number that picks a stage's best epoch (whose weights are kept), drives the
/// plateau schedule and stops training early. Losses, RMSE and MAE are minimised; F1 and
/// accuracy maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// The validation loss summed over tasks (each times its fixed weight).
    #[default]
    ValidLoss,
    /// The monitored task's own validation loss.
    TaskLoss,
    /// Macro-F1 of a classification task (argmax; probability 0.5 for binary and multi-label,
    /// since thresholds are tuned after training).
    MacroF1,
    /// Accuracy of a classification task (multi-label: every label of a row right).
    Accuracy,
    /// Root mean squared error of a regression task, in target units.
    Rmse,
    /// Mean absolute error of a regression task, in target units.
    Mae,
}

impl Monitor {
    /// Whether lower or higher is better.
    pub fn direction(self) -> crate::nn::Mode {
        match self {
            Monitor::MacroF1 | Monitor::Accuracy => crate::nn::Mode::Max,
            _ => crate::nn::Mode::Min,
        }
    }

    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValidLoss => "valid_loss",
            Monitor::TaskLoss => "task_loss",
            Monitor::MacroF1 => "macro_f1",
            Monitor::Accuracy => "accuracy",
            Monitor::Rmse => "rmse",
            Monitor::Mae => "mae",
        }
    }

    /// Whether this number exists for a task of `kind`.
    pub fn fits(self, kind: crate::data::TaskKind) -> bool {
        let regression = kind == crate::data::TaskKind::Regression;
        match self {
            Monitor::ValidLoss | Monitor::TaskLoss => true,
            Monitor::MacroF1 | Monitor::Accuracy => !regression,
            Monitor::Rmse | Monitor::Mae => regression,
        }
    }
}

/// Optimisation settings of one training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageConfig {
    /// Maximum epochs.
    pub epochs: usize,
    /// Peak learning rate (AdamW).
    pub lr: f32,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs without validation improvement before stopping (0 = never stop early).
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Warm-up share of all steps, for the cosine schedule.
    pub warmup_fraction: f32,
    /// Global gradient-norm clip (0 = no clipping).
    pub clip_norm: f32,
    /// What picks the best epoch, drives the plateau schedule and stops early.
    pub monitor: Monitor,
    /// The task whose number `monitor` reads (every monitor but `valid_loss`); None: the
    /// first task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_task: Option<String>,
    /// Multi-sample dropout: training passes per mini-batch, each with fresh dropout masks,
    /// whose losses are averaged (1: one pass).
    pub dropout_samples: usize,
}

impl StageConfig {
    /// The learning-rate schedule of a stage of `total_steps` optimizer steps: the config names
    /// the kind, and these are its fixed settings (a cosine decays to 5% of the peak; a plateau
    /// halves the rate after 2 epochs without an improvement of 1e-4, down to 0.1% of it).
    pub fn lr_schedule(&self, total_steps: usize) -> crate::nn::Schedule {
        use crate::nn::Schedule as Nn;
        match self.schedule {
            Schedule::Constant => Nn::Constant,
            Schedule::Cosine => Nn::CosineWithWarmup {
                warmup_steps: (total_steps as f32 * self.warmup_fraction) as usize,
                total_steps,
                min_lr_ratio: 0.05,
            },
            Schedule::Plateau => Nn::ReduceOnPlateau {
                factor: 0.5,
                patience: 2,
                min_lr: self.lr * 1e-3,
                threshold: 1e-4,
                mode: self.monitor.direction(),
            },
        }
    }

    /// Early stopping on the monitored number, restoring the best epoch's weights (patience 0:
    /// never stop early).
    pub fn early_stopping(&self) -> crate::nn::EarlyStoppingConfig {
        crate::nn::EarlyStoppingConfig {
            patience: if self.patience == 0 {
                usize::MAX
            } else {
                self.patience
            },
            min_delta: self.min_delta,
            mode: self.monitor.direction(),
            restore_best: true,
        }
    }
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            epochs: 40,
            lr: 2e-3,
            weight_decay: 1e-4,
            batch_size: 64,
            patience: 6,
            min_delta: 1e-4,
            schedule: Schedule::Cosine,
            warmup_fraction: 0.05,
            clip_norm: 1.0,
            monitor: Monitor::ValidLoss,
            monitor_task: None,
            dropout_samples: 1,
        }
    }
}

/// The metadata side: features and the encoder over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// Keep only the k features with the highest mutual information with the labels (0 = all).
    pub top_k: usize,
    /// Share of the training rows (stratified, seeded) that `top_k` ranks features on, so the
    /// ranking is not made on the rows the encoder then trains on; 0 ranks on all of them.
    pub validation_split: f64,
    /// Start from the metadata encoder and normalizer of this bundle (`--init-encoder`)
    /// instead of pre-training them here: two_stage skips stage 1 (stage 2 keeps the encoder
    /// frozen, or unfreezes it per `[unfreeze]`), joint trains it further. Its encoder shape and
    /// feature selection replace `hidden`, `code_dim`, `dropout` and `top_k`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_encoder: Option<std::path::PathBuf>,
    /// Hidden layer sizes of the encoder MLP.
    pub hidden: Vec<usize>,
    /// Size of the metadata code the encoder outputs.
    pub code_dim: usize,
    /// Dropout in the encoder.
    pub dropout: f32,
    /// What stage 1 (two_stage) trains the encoder to predict from its code: `labels` (the
    /// tasks' targets), `masked_features` (the features each row hides, from the rest), or a
    /// feature group's name (`length`, `readability`, ...: the group's features in the rows
    /// that hide the group, from the other groups'). The last two need no labels
    /// (`tandem pretrain` trains on them alone). Other modes, and two_stage from a pre-trained
    /// encoder, run no such stage 1 and ignore it. Default: [`DEFAULT_STAGE1_TARGETS`].
    pub stage1_targets: Vec<String>,
    /// The chance that a row hides each feature (`masked_features`) or each named group
    /// (whole) in stage 1, drawn afresh every epoch; a hidden feature reads 0 (its mean).
    pub mask_rate: f32,
    /// Stage 1 optimisation. Keys left out keep stage 1's defaults (epochs 30, lr 3e-3), also
    /// when the table is given in part.
    #[serde(deserialize_with = "metadata_stage")]
    pub stage: StageConfig,
}

/// The stage-1 target that is the tasks' own labels (`[metadata] stage1_targets`).
pub const LABELS_TARGET: &str = "labels";

/// The stage-1 target that reconstructs randomly hidden features.
pub const MASKED_FEATURES_TARGET: &str = "masked_features";

/// Stage 1's targets by default: self-supervised ones. On TREC and SMS spam they gave stage 2
/// better test macro-F1 than the labels at 25% and 100% of the training data (and, on SMS
/// spam, worse at 10%): docs/results.md.
pub const DEFAULT_STAGE1_TARGETS: [&str; 3] = [MASKED_FEATURES_TARGET, "length", "readability"];

impl MetadataConfig {
    /// Whether the stage 1 of a training in `mode` trains the auxiliary heads on the tasks'
    /// labels: always in metadata_only (they are the model), per `stage1_targets` in
    /// two_stage.
    pub fn stage1_labels(&self, mode: Mode) -> bool {
        mode != Mode::TwoStage || self.has_labels()
    }

    /// Whether stage 1 trains on anything but the labels (self-supervised targets).
    pub fn has_pretext(&self) -> bool {
        self.stage1_targets.iter().any(|t| t != LABELS_TARGET)
    }

    /// Whether stage 1 trains the auxiliary heads on the tasks' labels.
    pub fn has_labels(&self) -> bool {
        self.stage1_targets.iter().any(|t| t == LABELS_TARGET)
    }

    /// Checks `stage1_targets` and `mask_rate`: known, distinct names, at least one, and a
    /// rate in (0, 1) when a self-supervised target uses it.
    pub fn validate_targets(&self) -> Result<()> {
        let groups: Vec<&str> = crate::metadata::FeatureGroup::ALL
            .iter()
            .map(|g| g.name())
            .collect();
        if self.stage1_targets.is_empty() {
            return Err(Error::invalid(
                "config: metadata.stage1_targets is empty: name at least one target",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.stage1_targets {
            let known =
                t == LABELS_TARGET || t == MASKED_FEATURES_TARGET || groups.contains(&t.as_str());
            if !known {
                return Err(Error::invalid(format!(
                    "config: metadata.stage1_targets: unknown target `{t}` (known: \
                     {LABELS_TARGET}, {MASKED_FEATURES_TARGET}, or a feature group: {})",
                    groups.join(", ")
                )));
            }
            if !seen.insert(t.as_str()) {
                return Err(Error::invalid(format!(
                    "config: metadata.stage1_targets names `{t}` twice"
                )));
            }
        }
        if self.has_pretext() && !(self.mask_rate > 0.0 && self.mask_rate < 1.0) {
            return Err(Error::invalid(
                "config: metadata.mask_rate must be in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// A stage table as written: every key optional, laid over a base stage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StagePatch {
    epochs: Option<usize>,
    lr: Option<f32>,
    weight_decay: Option<f32>,
    batch_size: Option<usize>,
    patience: Option<usize>,
    min_delta: Option<f32>,
    schedule: Option<Schedule>,
    warmup_fraction: Option<f32>,
    clip_norm: Option<f32>,
    monitor: Option<Monitor>,
    monitor_task: Option<String>,
    dropout_samples: Option<usize>,
}

impl StagePatch {
    fn over(self, base: StageConfig) -> StageConfig {
        StageConfig {
            epochs: self.epochs.unwrap_or(base.epochs),
            lr: self.lr.unwrap_or(base.lr),
            weight_decay: self.weight_decay.unwrap_or(base.weight_decay),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            patience: self.patience.unwrap_or(base.patience),
            min_delta: self.min_delta.unwrap_or(base.min_delta),
            schedule: self.schedule.unwrap_or(base.schedule),
            warmup_fraction: self.warmup_fraction.unwrap_or(base.warmup_fraction),
            clip_norm: self.clip_norm.unwrap_or(base.clip_norm),
            monitor: self.monitor.unwrap_or(base.monitor),
            monitor_task: self.monitor_task.or(base.monitor_task),
            dropout_samples: self.dropout_samples.unwrap_or(base.dropout_samples),
        }
    }
}

/// `[metadata.stage]` with stage 1's own defaults for missing keys (a plain `StageConfig` would
/// fill them with the head stage's defaults).
fn metadata_stage<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<StageConfig, D::Error> {
    Ok(StagePatch::deserialize(d)?.over(MetadataConfig::default().stage))
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            top_k: 0,
            validation_split: 0.0,
            init_encoder: None,
            hidden: vec![64],
            code_dim: 32,
            dropout: 0.1,
            stage1_targets: DEFAULT_STAGE1_TARGETS
                .iter()
                .map(|t| t.to_string())
                .collect(),
            mask_rate: 0.15,
            stage: StageConfig {
                epochs: 30,
                lr: 3e-3,
                ..StageConfig::default()
            },
        }
    }
}

/// What the semantic heads read from the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// The pooled sentence embedding only.
    #[default]
    Pooled,
    /// Also every token's vector, through a sequence encoder (attention pooling, multi-scale
    /// convolutions, optionally a transformer layer) whose output joins the sentence embedding.
    Sequence,
    /// One L2-regularized linear layer per task on the sentence embedding, solved to
    /// convergence, its regularization chosen by k-fold cross-validation on every example
    /// (nothing held out). For small data; needs mode `embedding_only`.
    Linear,
}

impl HeadKind {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Pooled => "pooled",
            HeadKind::Sequence => "sequence",
            HeadKind::Linear => "linear",
        }
    }
}

impl std::str::FromStr for HeadKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pooled" => Ok(HeadKind::Pooled),
            "sequence" => Ok(HeadKind::Sequence),
            "linear" => Ok(HeadKind::Linear),
            other => Err(Error::invalid(format!(
                "unknown head type `{other}` (expected pooled, sequence or linear)"
            ))),
        }
    }
}

/// The semantic heads on [embedding ; code].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    /// `pooled`, `sequence` or `linear` (see [`HeadKind`]).
    pub kind: HeadKind,
    /// The sequence encoder's architecture (used when `kind` is `sequence`).
    pub sequence: SequenceConfig,
    /// Hidden layer sizes of each head MLP (empty = a linear head).
    pub hidden: Vec<usize>,
    /// The hidden layers' activation: `gelu` (exact) or `relu`.
    pub activation: ActivationKind,
    /// Whether each hidden layer is followed by LayerNorm (before the activation).
    pub layer_norm: bool,
    /// Whether hidden layers that keep the width (`hidden = [256, 256]`: the second) are
    /// residual blocks, x + block(x), which lets deeper heads train.
    pub residual: bool,
    /// Dropout in the heads.
    pub dropout: f32,
    /// An ONNX head graph to start training from instead of random weights (`train
    /// --init-head`): its shape must be this head's (one task, embedding-only; see
    /// `onnx::import`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<std::path::PathBuf>,
    /// Stage 2 (or joint) optimisation.
    pub stage: StageConfig,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            kind: HeadKind::Pooled,
            sequence: SequenceConfig::default(),
            hidden: vec![256],
            activation: ActivationKind::Gelu,
            layer_norm: true,
            residual: false,
            dropout: 0.2,
            init: None,
            stage: StageConfig::default(),
        }
    }
}

/// Optional unfreezing of the metadata encoder during stage 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnfreezeConfig {
    /// Stage-2 epoch (0-based) at which the encoder starts training again (None = stays frozen).
    pub at_epoch: Option<usize>,
    /// The encoder's learning rate once unfrozen, as a multiple of the head learning rate.
    pub lr_scale: f32,
    /// 0: every encoder layer unfreezes at `at_epoch`; N: its output layer at `at_epoch`, then
    /// one more layer down every N epochs.
    pub epochs_per_layer: usize,
}

impl Default for UnfreezeConfig {
    fn default() -> Self {
        UnfreezeConfig {
            at_epoch: None,
            lr_scale: 0.1,
            epochs_per_layer: 0,
        }
    }
}

/// How the trainable top layers of the backbone join training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerUnfreeze {
    /// Every trainable layer trains with the heads from the first epoch (partial freezing).
    Partial,
    /// Heads only for `heads_only_epochs`, then one more layer from the top every
    /// `epochs_per_layer` epochs, down to `trainable_layers`.
    Progressive,
}

/// The fine-tuning recipe measured best (docs/results.md, "Fine-tuning the top layers": chosen
/// by TREC's validation macro-F1 among 8 epochs at a layer learning rate of 1e-4, 5 at 2e-4 and
/// 4 at 3e-4, on an embedding-only pooled head with label smoothing 0.1): the head stage's
/// epochs. [`TrainConfig::apply_finetune_defaults`] fills in the recipe's settings a config
/// leaves unset when it fine-tunes layers.
pub const FINETUNE_EPOCHS: usize = 5;
/// The recipe's layer learning rate (the default of `backbone.lr`).
pub const FINETUNE_LR: f32 = 2e-4;
/// The recipe's label smoothing.
pub const FINETUNE_LABEL_SMOOTHING: f32 = 0.1;

/// The settings a config names, as dotted keys (`head.stage.epochs`): fine-tuning's defaults
/// apply only where the config says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExplicitKeys(std::collections::BTreeSet<String>);

impl ExplicitKeys {
    /// The keys of a TOML (or JSON, when it starts with `{`) config text, every table's path
    /// included.
    pub fn of_text(text: &str) -> Result<Self> {
        let v: serde_json::Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| Error::invalid(format!("config: {e}")))?
        } else {
            let t: toml::Table =
                toml::from_str(text).map_err(|e| Error::invalid(format!("config: {e}")))?;
            serde_json::to_value(t).map_err(|e| Error::invalid(format!("config: {e}")))?
        };
        Ok(Self::of_json(&v))
    }

    /// The keys of a config given as a JSON value (a trainer spec's `config`).
    pub fn of_json(v: &serde_json::Value) -> Self {
        fn walk(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
            if let serde_json::Value::Object(map) = v {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &key, out);
                    out.insert(key);
                }
            }
        }
        let mut out = std::collections::BTreeSet::new();
        walk(v, "", &mut out);
        ExplicitKeys(out)
    }

    /// Records `key` as set (a command-line flag that overrides the config).
    pub fn insert(&mut self, key: &str) {
        self.0.insert(key.to_string());
    }

    /// Whether the config names `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

/// Fine-tuning the backbone's top layers with the heads (`[backbone]`): the frozen bottom runs
/// in ONNX Runtime once per text (its output cached), the top `trainable_layers` train
/// natively with their own optimizer (differential learning rates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackboneConfig {
    /// Top layers of the backbone trained with the heads; 0 keeps the backbone frozen.
    pub trainable_layers: usize,
    /// The layers' peak learning rate (AdamW; the heads keep `head.stage.lr`).
    pub lr: f32,
    /// The layers' decoupled weight decay.
    pub weight_decay: f32,
    /// The layers' linear warm-up, as a share of the stage's steps, before a cosine decay.
    pub warmup_fraction: f32,
    /// The layers' gradient-norm clip (0 = none), apart from the heads'.
    pub clip_norm: f32,
    /// Dropout on the trainable layers' two residual branches while they train (BERT's hidden
    /// dropout), in [0, 1).
    pub dropout: f32,
    /// Partial (all at once) or progressive unfreezing.
    pub unfreeze: LayerUnfreeze,
    /// Progressive: epochs of heads-only training before the first layer unfreezes.
    pub heads_only_epochs: usize,
    /// Progressive: epochs between unfreezing one layer and the next one below it.
    pub epochs_per_layer: usize,
    /// Epochs of a contrastive warm-up of the trainable layers before the heads train (0 =
    /// none): pairs of training texts, their embeddings' cosine pulled to 1 for the same
    /// class and to 0 for different ones (what SetFit does to a whole body).
    pub contrastive_epochs: usize,
    /// Pairs drawn per training example and warm-up epoch (half same-class where the class has
    /// another example).
    pub contrastive_pairs: usize,
}

impl Default for BackboneConfig {
    fn default() -> Self {
        BackboneConfig {
            trainable_layers: 0,
            lr: FINETUNE_LR,
            weight_decay: 0.01,
            warmup_fraction: 0.1,
            clip_norm: 1.0,
            dropout: 0.0,
            unfreeze: LayerUnfreeze::Partial,
            heads_only_epochs: 1,
            epochs_per_layer: 1,
            contrastive_epochs: 0,
            contrastive_pairs: 8,
        }
    }
}

impl BackboneConfig {
    /// How many of the top layers train in (0-based) `epoch`, counted from the top.
    pub fn active_layers(&self, epoch: usize) -> usize {
        match self.unfreeze {
            LayerUnfreeze::Partial => self.trainable_layers,
            LayerUnfreeze::Progressive => {
                if epoch < self.heads_only_epochs {
                    0
                } else {
                    let steps = (epoch - self.heads_only_epochs) / self.epochs_per_layer.max(1);
                    (steps + 1).min(self.trainable_layers)
                }
            }
        }
    }
}

/// Loss settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Classification loss.
    pub classification: ClassLoss,
    /// Regression loss.
    pub regression: RegressionLoss,
    /// Label smoothing ε for multiclass cross-entropy.
    pub label_smoothing: f32,
    /// Focal γ.
    pub focal_gamma: f32,
    /// Huber δ.
    pub huber_delta: f32,
    /// Class weighting.
    pub class_weights: ClassWeights,
    /// Combination of several tasks' losses.
    pub multitask: MultiTask,
    /// Fixed loss weight per task, by task name (default 1 for a task not named), under
    /// `multitask = "fixed"`: the objective is the weighted sum of the tasks' losses, and so
    /// is the validation loss that picks the best epoch.
    pub task_weights: std::collections::BTreeMap<String, f32>,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            classification: ClassLoss::CrossEntropy,
            regression: RegressionLoss::Mse,
            label_smoothing: 0.0,
            focal_gamma: 2.0,
            huber_delta: 1.0,
            class_weights: ClassWeights::None,
            multitask: MultiTask::Fixed,
            task_weights: Default::default(),
        }
    }
}

/// The on-disk embedding caches while training.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Cap on the bytes of all embedding caches (`<cache dir>/embcache`), 0 for none. Written as
    /// bytes or as a string with a unit (`"500MB"`, `"2GiB"`; see
    /// [`parse_size`](crate::cache::usage::parse_size)). Training keeps to it: after each chunk
    /// of texts embedded, whole cache files are removed, the least recently used first and the
    /// run's own per-token then pooled file last, until the caches fit.
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
}

/// A size as bytes, or a string with a unit.
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(b) => Ok(b),
        Size::Text(t) => {
            crate::cache::usage::parse_size(&t).map_err(|e| serde::de::Error::custom(e.message()))
        }
    }
}

/// Everything `tandem train` can be told. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Training mode.
    pub mode: Mode,
    /// Seed for splits, initialisation, shuffling and dropout.
    pub seed: u64,
    /// Share of the data held out for validation when no validation file is given.
    pub valid_fraction: f64,
    /// Tune decision thresholds on validation data (binary and multi-label).
    pub tune_thresholds: bool,
    /// Store weights as f16 in the bundle (half the size; predictions change by ~1e-3).
    pub f16_weights: bool,
    /// Metadata features and encoder.
    pub metadata: MetadataConfig,
    /// Semantic heads.
    pub head: HeadConfig,
    /// Encoder unfreezing in stage 2.
    pub unfreeze: UnfreezeConfig,
    /// Fine-tuning the backbone's top layers.
    pub backbone: BackboneConfig,
    /// Losses.
    pub loss: LossConfig,
    /// The embedding caches.
    pub cache: CacheConfig,
    /// Distilling a teacher's outputs into the heads.
    pub distill: DistillConfig,
}

/// Distillation: the heads (the student) learn a stronger model's (the teacher's) outputs
/// besides the labels: each task's loss is (1 − weight) · the labels' loss + weight · the
/// soft-target loss at `temperature`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// The teacher bundles (`--teacher`; several are averaged, as an ensemble predicts). Empty:
    /// no distillation. Their outputs on the training texts are the soft targets.
    pub teachers: Vec<std::path::PathBuf>,
    /// The soft targets' weight α in [0, 1] (1: the teacher alone).
    pub weight: f32,
    /// The temperature T > 0 that softens the teacher's and the student's class
    /// distributions; the soft loss is scaled by T² (regression ignores it).
    pub temperature: f32,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            teachers: Vec::new(),
            weight: 0.5,
            temperature: 2.0,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            mode: Mode::TwoStage,
            seed: 0,
            valid_fraction: 0.2,
            tune_thresholds: true,
            f16_weights: false,
            metadata: MetadataConfig::default(),
            head: HeadConfig::default(),
            unfreeze: UnfreezeConfig::default(),
            backbone: BackboneConfig::default(),
            loss: LossConfig::default(),
            cache: CacheConfig::default(),
            distill: DistillConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Parses TOML (or JSON when the text starts with `{`) and validates the values.
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: TrainConfig = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| Error::invalid(format!("config: {e}")))?
        } else {
            toml::from_str(text).map_err(|e| Error::invalid(format!("config: {e}")))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// With top layers to fine-tune, the measured fine-tuning recipe for each of its settings
    /// that `explicit` does not name: an embedding-only head ([`Mode::EmbeddingOnly`]),
    /// [`FINETUNE_EPOCHS`] epochs of the head stage and [`FINETUNE_LABEL_SMOOTHING`] (the layer
    /// learning rate is `backbone.lr`'s default). Frozen-backbone configs are left as they are:
    /// their defaults were measured on their own.
    pub fn apply_finetune_defaults(&mut self, explicit: &ExplicitKeys) {
        if self.backbone.trainable_layers == 0 {
            return;
        }
        if !explicit.contains("mode") {
            self.mode = Mode::EmbeddingOnly;
        }
        if !explicit.contains("head.stage.epochs") {
            self.head.stage.epochs = FINETUNE_EPOCHS;
        }
        if !explicit.contains("loss.label_smoothing") {
            self.loss.label_smoothing = FINETUNE_LABEL_SMOOTHING;
        }
    }

    /// [`TrainConfig::load`], with the keys the file names (for
    /// [`TrainConfig::apply_finetune_defaults`]).
    pub fn load_explicit(path: &std::path::Path) -> Result<(Self, ExplicitKeys)> {
        let config = Self::load(path)?;
        let text = crate::files::read_text(path, crate::files::CONFIG)?;
        Ok((config, ExplicitKeys::of_text(&text)?))
    }

    /// Reads and parses a config file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = crate::files::read_text(path, crate::files::CONFIG)?;
        Self::parse(&text)
            .map_err(|e| Error::invalid(format!("{}: {}", path.display(), e.message())))
    }

    /// The effective config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::invalid(format!("config: {m}")));
        if self.head.init.is_some()
            && (self.head.kind != HeadKind::Pooled || self.mode != Mode::EmbeddingOnly)
        {
            return bad("head.init (an imported head) needs kind = \"pooled\" and mode = \"embedding_only\"");
        }
        for (name, s) in [
            ("metadata.stage", &self.metadata.stage),
            ("head.stage", &self.head.stage),
        ] {
            if s.batch_size == 0 || s.epochs == 0 {
                return bad(&format!("{name}: batch_size and epochs must be at least 1"));
            }
            if !(s.lr > 0.0 && s.lr.is_finite()) {
                return bad(&format!("{name}.lr must be positive"));
            }
            if !(0.0..1.0).contains(&s.warmup_fraction) {
                return bad(&format!("{name}.warmup_fraction must be in [0, 1)"));
            }
            if !(1..=64).contains(&s.dropout_samples) {
                return bad(&format!("{name}.dropout_samples must be in 1..=64"));
            }
        }
        if !(0.0..0.95).contains(&self.valid_fraction) {
            return bad("valid_fraction must be in [0, 0.95)");
        }
        for (name, p) in [
            ("metadata.dropout", self.metadata.dropout),
            ("head.dropout", self.head.dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(&format!("{name} must be in [0, 1)"));
            }
        }
        if self.metadata.code_dim == 0 {
            return bad("metadata.code_dim must be at least 1");
        }
        if !(0.0..0.95).contains(&self.metadata.validation_split) {
            return bad("metadata.validation_split must be in [0, 0.95)");
        }
        self.metadata.validate_targets()?;
        if !(0.0..=1.0).contains(&self.distill.weight) {
            return bad("distill.weight must be in [0, 1]");
        }
        if !(self.distill.temperature > 0.0 && self.distill.temperature <= 100.0) {
            return bad("distill.temperature must be in (0, 100]");
        }
        if self.metadata.init_encoder.is_some()
            && !matches!(self.mode, Mode::TwoStage | Mode::Joint)
        {
            return bad(
                "metadata.init_encoder (--init-encoder) starts the heads' metadata side from \
                 another bundle: it needs mode two_stage or joint",
            );
        }
        if !(0.0..1.0).contains(&self.loss.label_smoothing) {
            return bad("loss.label_smoothing must be in [0, 1)");
        }
        if self.head.kind == HeadKind::Sequence {
            if self.mode == Mode::MetadataOnly {
                return bad(
                    "head.kind = \"sequence\" needs the backbone; mode metadata_only has none",
                );
            }
            self.head
                .sequence
                .validate()
                .map_err(|e| Error::invalid(format!("config: head.sequence: {}", e.message())))?;
        }
        let b = &self.backbone;
        if b.trainable_layers > 0 {
            if self.mode == Mode::MetadataOnly {
                return bad(
                    "backbone.trainable_layers needs the backbone; mode metadata_only has none",
                );
            }
            if self.head.kind == HeadKind::Linear {
                return bad(
                    "backbone.trainable_layers trains the layers by gradient descent with the \
                     heads; head.kind = \"linear\" is a closed-form fit on fixed embeddings: \
                     use head.kind = \"pooled\" or \"sequence\"",
                );
            }
            if !(b.lr > 0.0 && b.lr.is_finite()) {
                return bad("backbone.lr must be positive");
            }
            if !(b.weight_decay >= 0.0 && b.weight_decay.is_finite() && b.clip_norm >= 0.0) {
                return bad("backbone.weight_decay and backbone.clip_norm must be non-negative");
            }
            if !(0.0..1.0).contains(&b.warmup_fraction) {
                return bad("backbone.warmup_fraction must be in [0, 1)");
            }
            if !(0.0..1.0).contains(&b.dropout) {
                return bad("backbone.dropout must be in [0, 1)");
            }
            if b.unfreeze == LayerUnfreeze::Progressive && b.epochs_per_layer == 0 {
                return bad("backbone.epochs_per_layer must be at least 1");
            }
            if b.contrastive_epochs > 0 && b.contrastive_pairs == 0 {
                return bad("backbone.contrastive_pairs must be at least 1");
            }
        }
        if self.head.kind == HeadKind::Linear && self.mode != Mode::EmbeddingOnly {
            return bad(&format!(
                "head.kind = \"linear\" reads the sentence embedding only: set mode = \"embedding_only\" \
                 (not {})",
                self.mode.name()
            ));
        }
        Ok(())
    }
}

impl Architecture {
    /// The architecture `config` describes for the given input and output sizes.
    pub fn from_config(
        config: &TrainConfig,
        emb_dim: usize,
        n_features: usize,
        outputs: Vec<usize>,
        target_scale: Vec<(f32, f32)>,
    ) -> Self {
        let mlp = |hidden: &[usize], dropout: f32| MlpConfig {
            hidden: hidden.to_vec(),
            activation: ActivationKind::Gelu,
            dropout,
            layer_norm: true,
            residual: false,
        };
        let head = MlpConfig {
            activation: config.head.activation,
            layer_norm: config.head.layer_norm,
            residual: config.head.residual,
            ..mlp(&config.head.hidden, config.head.dropout)
        };
        let uses_meta = config.mode != Mode::EmbeddingOnly;
        let uses_emb = config.mode != Mode::MetadataOnly;
        Architecture {
            mode: config.mode,
            emb_dim: if uses_emb { emb_dim } else { 0 },
            n_features: if uses_meta { n_features } else { 0 },
            encoder: mlp(&config.metadata.hidden, config.metadata.dropout),
            code_dim: if uses_meta {
                config.metadata.code_dim
            } else {
                0
            },
            head,
            outputs,
            target_scale,
            sequence: (uses_emb && config.head.kind == HeadKind::Sequence)
                .then(|| config.head.sequence.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_residual_blocks_come_from_the_config() {
        let off = TrainConfig::parse("[head]\nhidden = [16, 16]\n").unwrap();
        let on = TrainConfig::parse("[head]\nhidden = [16, 16]\nresidual = true\n").unwrap();
        assert!(!off.head.residual && on.head.residual);
        let arch = |c: &TrainConfig| Architecture::from_config(c, 8, 4, vec![3], vec![(0.0, 1.0)]);
        assert!(arch(&on).head.residual && !arch(&off).head.residual);
        // The metadata encoder is not affected.
        assert!(!arch(&on).encoder.residual);
    }

    #[test]
    fn fine_tuning_takes_the_measured_recipe_where_the_config_is_silent() {
        let text = "[backbone]\ntrainable_layers = 2\n[head.stage]\nepochs = 9\n";
        let keys = ExplicitKeys::of_text(text).unwrap();
        for k in [
            "backbone",
            "backbone.trainable_layers",
            "head",
            "head.stage",
            "head.stage.epochs",
        ] {
            assert!(keys.contains(k), "{k}");
        }
        assert!(!keys.contains("mode") && !keys.contains("epochs"));
        let mut c = TrainConfig::parse(text).unwrap();
        c.apply_finetune_defaults(&keys);
        assert_eq!(c.head.stage.epochs, 9, "set by the file: kept");
        assert_eq!(c.mode, Mode::EmbeddingOnly);
        assert_eq!(c.loss.label_smoothing, FINETUNE_LABEL_SMOOTHING);
        assert_eq!(c.backbone.lr, FINETUNE_LR);
        // JSON (a trainer spec's config) alike; a mode it names stays.
        let json = r#"{"mode": "joint", "backbone": {"trainable_layers": 1}}"#;
        let mut c = TrainConfig::parse(json).unwrap();
        c.apply_finetune_defaults(&ExplicitKeys::of_text(json).unwrap());
        assert_eq!(c.mode, Mode::Joint);
        assert_eq!(c.head.stage.epochs, FINETUNE_EPOCHS);
        // A flag counts as set; a frozen backbone's config is left alone.
        let mut keys = ExplicitKeys::default();
        keys.insert("loss.label_smoothing");
        let mut c = TrainConfig::default();
        c.backbone.trainable_layers = 3;
        c.apply_finetune_defaults(&keys);
        assert_eq!(c.loss.label_smoothing, 0.0);
        let mut frozen = TrainConfig::default();
        frozen.apply_finetune_defaults(&ExplicitKeys::default());
        assert_eq!(frozen, TrainConfig::default());
        assert!(ExplicitKeys::of_text("mode = ").is_err());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = TrainConfig::default();
        assert_eq!(TrainConfig::parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = TrainConfig::parse("mode = \"joint\"\nlearning_rate = 3\n").unwrap_err();
        assert!(e.message().contains("learning_rate"), "{}", e.message());
        let e = TrainConfig::parse("[head.stage]\nepoch = 3\n").unwrap_err();
        assert!(e.message().contains("epoch"), "{}", e.message());
    }

    /// Every leaf of a JSON object as (dotted path, whether it is null).
    fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, bool)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(x, &p, out);
                }
            }
            other => out.push((prefix.to_string(), other.is_null())),
        }
    }

    #[test]
    fn documented_config_is_the_default_and_documents_every_key() {
        let doc = include_str!("../../docs/config.toml");
        assert_eq!(
            TrainConfig::parse(doc).unwrap(),
            TrainConfig::default(),
            "docs/config.toml must set every key to its default"
        );
        let as_json = |toml_text: &str| {
            let t: toml::Table = toml::from_str(toml_text).unwrap();
            serde_json::to_value(t).unwrap()
        };
        let mut documented = Vec::new();
        leaves(&as_json(doc), "", &mut documented);
        // Every key `to_toml` writes is set in the documented file, and nothing else is.
        let mut serialized = Vec::new();
        leaves(
            &as_json(&TrainConfig::default().to_toml()),
            "",
            &mut serialized,
        );
        let keys = |v: &[(String, bool)]| {
            let mut k: Vec<String> = v.iter().map(|(p, _)| p.clone()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&documented), keys(&serialized));
        // Keys whose default is unset (TOML has no null) are documented as a commented-out line.
        let mut all = Vec::new();
        leaves(
            &serde_json::to_value(TrainConfig::default()).unwrap(),
            "",
            &mut all,
        );
        for (path, null) in &all {
            let leaf = path.rsplit('.').next().unwrap();
            if *null {
                assert!(
                    doc.lines().any(|l| l.starts_with(&format!("# {leaf} = "))),
                    "docs/config.toml should show unset `{path}` as a commented-out example"
                );
            } else {
                assert!(
                    documented.iter().any(|(p, _)| p == path),
                    "docs/config.toml lacks `{path}`"
                );
            }
        }
        // Every key and section has a comment right above it.
        let lines: Vec<&str> = doc.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let is_setting = !l.starts_with('#') && (l.contains(" = ") || l.starts_with('['));
            if is_setting {
                assert!(
                    i > 0 && lines[i - 1].starts_with('#'),
                    "docs/config.toml line {}: `{l}` has no comment above it",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn a_partial_stage_table_keeps_that_stages_defaults() {
        let c =
            TrainConfig::parse("[metadata.stage]\nepochs = 3\n[head.stage]\nepochs = 4\n").unwrap();
        let (m, h) = (MetadataConfig::default().stage, HeadConfig::default().stage);
        assert_eq!(c.metadata.stage, StageConfig { epochs: 3, ..m });
        assert_eq!(c.head.stage, StageConfig { epochs: 4, ..h });
        assert_ne!(m.lr, h.lr, "the two stages' default learning rates differ");
        let j = TrainConfig::parse("{\"metadata\": {\"stage\": {\"batch_size\": 8}}}").unwrap();
        assert_eq!(j.metadata.stage.lr, m.lr);
        assert_eq!(j.metadata.stage.batch_size, 8);
        let e = TrainConfig::parse("[metadata.stage]\nepoch = 3\n").unwrap_err();
        assert!(e.message().contains("epoch"), "{}", e.message());
    }

    #[test]
    fn partial_config_keeps_defaults_and_values_are_checked() {
        let c = TrainConfig::parse("seed = 7\n[head]\nhidden = []\n").unwrap();
        assert_eq!(c.seed, 7);
        assert!(c.head.hidden.is_empty());
        assert_eq!(c.metadata, MetadataConfig::default());
        assert!(TrainConfig::parse("valid_fraction = 1.5").is_err());
        assert!(TrainConfig::parse("[head.stage]\nlr = -1.0").is_err());
        assert!(TrainConfig::parse("{\"mode\": \"embedding_only\"}").is_ok());
        assert_eq!("joint".parse::<Mode>().unwrap(), Mode::Joint);
        assert!("nope".parse::<Mode>().is_err());
    }

    #[test]
    fn the_cache_cap_is_bytes_or_a_size_with_a_unit() {
        assert_eq!(TrainConfig::default().cache.max_size, 0);
        let c = TrainConfig::parse("[cache]\nmax_size = 1500\n").unwrap();
        assert_eq!(c.cache.max_size, 1500);
        let c = TrainConfig::parse("[cache]\nmax_size = \"500MB\"\n").unwrap();
        assert_eq!(c.cache.max_size, 500_000_000);
        let c = TrainConfig::parse("{\"cache\": {\"max_size\": \"2GiB\"}}").unwrap();
        assert_eq!(c.cache.max_size, 2 << 30);
        assert_eq!(TrainConfig::parse(&c.to_toml()).unwrap(), c);
        for bad in ["max_size = \"5 parsecs\"", "max_size = -1", "max_bytes = 3"] {
            let e = TrainConfig::parse(&format!("[cache]\n{bad}\n")).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
