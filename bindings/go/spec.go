package tandem

// TaskKind says what a task's head predicts.
type TaskKind string

// Task kinds.
const (
	// TaskMulticlass predicts exactly one of several classes.
	TaskMulticlass TaskKind = "multiclass"
	// TaskBinary predicts one of two classes; the second class name is the positive one.
	TaskBinary TaskKind = "binary"
	// TaskMultilabel predicts any subset of several labels.
	TaskMultilabel TaskKind = "multilabel"
	// TaskRegression predicts a real value.
	TaskRegression TaskKind = "regression"
)

// Mode is how the model is put together and trained.
type Mode string

// Training modes.
const (
	// ModeTwoStage trains the metadata encoder first (stage 1), then the heads on
	// [embedding ; metadata code] (stage 2). The default.
	ModeTwoStage Mode = "two_stage"
	// ModeJoint trains encoder and heads on [embedding ; code] together, in one stage.
	ModeJoint Mode = "joint"
	// ModeEmbeddingOnly trains heads on the embedding alone, without metadata.
	ModeEmbeddingOnly Mode = "embedding_only"
	// ModeMetadataOnly trains the metadata encoder and its heads alone, without embeddings.
	ModeMetadataOnly Mode = "metadata_only"
)

// Schedule is a learning-rate schedule.
type Schedule string

// Learning-rate schedules.
const (
	// ScheduleConstant keeps the learning rate fixed.
	ScheduleConstant Schedule = "constant"
	// ScheduleCosine warms up linearly, then decays along a cosine. The default.
	ScheduleCosine Schedule = "cosine"
	// SchedulePlateau halves the learning rate after 2 epochs without improvement.
	SchedulePlateau Schedule = "plateau"
)

// ClassLoss is the loss of classification heads.
type ClassLoss string

// Classification losses.
const (
	// LossCrossEntropy is softmax cross-entropy or BCE with logits. The default.
	LossCrossEntropy ClassLoss = "cross_entropy"
	// LossFocal is focal loss with LossConfig.FocalGamma.
	LossFocal ClassLoss = "focal"
)

// RegressionLoss is the loss of regression heads.
type RegressionLoss string

// Regression losses.
const (
	// LossMSE is the mean squared error. The default.
	LossMSE RegressionLoss = "mse"
	// LossHuber is the Huber loss with LossConfig.HuberDelta.
	LossHuber RegressionLoss = "huber"
)

// ClassWeights is how per-class loss weights are derived from class counts.
type ClassWeights string

// Class weightings.
const (
	// ClassWeightsNone weighs every class 1. The default.
	ClassWeightsNone ClassWeights = "none"
	// ClassWeightsBalanced weighs class c by n / (k · count(c)).
	ClassWeightsBalanced ClassWeights = "balanced"
	// ClassWeightsEffectiveNumber uses the effective number of samples (β = 0.999).
	ClassWeightsEffectiveNumber ClassWeights = "effective_number"
	// ClassWeightsSqrt weighs class c by 1 / sqrt(count(c)), normalized to mean 1.
	ClassWeightsSqrt ClassWeights = "sqrt"
)

// MultiTask is how several tasks' losses combine.
type MultiTask string

// Multi-task loss combinations.
const (
	// MultiTaskFixed sums the task losses with weight 1. The default.
	MultiTaskFixed MultiTask = "fixed"
	// MultiTaskUncertainty learns homoscedastic uncertainty weights.
	MultiTaskUncertainty MultiTask = "uncertainty"
)

// TrainerSpec is what NewTrainer creates a trainer from; it is sent to the library as JSON
// ({"tasks": [...], "config": {...}, "embedding_cache": ...}).
type TrainerSpec struct {
	// Tasks are the tasks to learn, one head each, trained together. At least one.
	Tasks []TaskSpec `json:"tasks"`
	// Config is the training configuration; nil (or any nil field in it) means the library's
	// defaults.
	Config *TrainConfig `json:"config,omitempty"`
	// EmbeddingCache keeps embeddings in the on-disk cache, so retraining on the same texts
	// never runs the backbone twice. nil means the default, true.
	EmbeddingCache *bool `json:"embedding_cache,omitempty"`
	// Recipe says how the recipe (mode and head type) is chosen: "" or RecipeConfig trains
	// the config's; RecipeAuto chooses one by validation data at each Train, as `tandem
	// train` without flags does, and Report says which and why.
	Recipe Recipe `json:"recipe,omitempty"`
	// BudgetSeconds is the wall-clock budget of a RecipeAuto search (nil: 60 s; the final
	// fit is not counted). Only with RecipeAuto.
	BudgetSeconds *float64 `json:"budget_seconds,omitempty"`
	// Finetune says whether a RecipeAuto search counts fine-tuning the backbone's top
	// layers among its candidates (nil: true; false keeps the bundle on the stock backbone).
	// Only with RecipeAuto.
	Finetune *bool `json:"finetune,omitempty"`
	// Checkpoints, when set, saves bundles of the best epochs and of every N-th epoch of the
	// model's last stage while Train runs (RecipeConfig only).
	Checkpoints *Checkpoints `json:"checkpoints,omitempty"`
}

// Checkpoints says where and which checkpoints a trainer saves.
type Checkpoints struct {
	// Dir is a new or empty directory; checkpoints.json in it lists the kept bundles.
	Dir string `json:"dir"`
	// KeepTop keeps the K best epochs by the last stage's Monitor (nil: 3).
	KeepTop *int `json:"keep_top,omitempty"`
	// Every also keeps every N-th epoch (0: none).
	Every int `json:"every,omitempty"`
}

// Recipe says how a trainer chooses its recipe.
type Recipe string

// Recipes.
const (
	// RecipeConfig trains the config's mode and head type. The default.
	RecipeConfig Recipe = "config"
	// RecipeAuto chooses the recipe by validation data within BudgetSeconds.
	RecipeAuto Recipe = "auto"
)

// TaskSpec declares one task.
type TaskSpec struct {
	// Name is the task's name: each example's labels map has a value under this key.
	Name string `json:"name"`
	// Kind is what the head predicts.
	Kind TaskKind `json:"kind"`
	// Positive is the positive label of a binary task ("" for the default: the rarer one, or
	// "1"/"true").
	Positive string `json:"positive,omitempty"`
}

// TrainConfig is the training configuration: the keys of tandem's TOML training config. Every
// field is optional: a nil pointer, nil slice pointer or empty string leaves the library's
// default. Ptr makes pointers from literals, e.g. Seed: tandem.Ptr[uint64](7).
type TrainConfig struct {
	// Mode is the training mode (default ModeTwoStage).
	Mode Mode `json:"mode,omitempty"`
	// Seed seeds splits, initialisation, shuffling and dropout (default 0).
	Seed *uint64 `json:"seed,omitempty"`
	// ValidFraction is the share held out for validation when no validation examples are
	// added (default 0.2).
	ValidFraction *float64 `json:"valid_fraction,omitempty"`
	// TuneThresholds tunes decision thresholds on validation data (binary and multi-label;
	// default true).
	TuneThresholds *bool `json:"tune_thresholds,omitempty"`
	// F16Weights stores weights as f16 in bundles (half the size; default false).
	F16Weights *bool `json:"f16_weights,omitempty"`
	// Metadata configures the metadata features and their encoder.
	Metadata *MetadataConfig `json:"metadata,omitempty"`
	// Head configures the semantic heads.
	Head *HeadConfig `json:"head,omitempty"`
	// Unfreeze configures unfreezing the metadata encoder in stage 2.
	Unfreeze *UnfreezeConfig `json:"unfreeze,omitempty"`
	// Loss configures the losses.
	Loss *LossConfig `json:"loss,omitempty"`
	// Backbone configures fine-tuning the backbone's top layers with the heads.
	Backbone *BackboneConfig `json:"backbone,omitempty"`
	// Distill configures distilling teacher bundles into the heads.
	Distill *DistillConfig `json:"distill,omitempty"`
}

// DistillConfig configures distillation: each task's loss mixes the labels' with the
// teachers' soft targets.
type DistillConfig struct {
	// Teachers are the teacher bundle directories (several are averaged). Each needs the
	// student's tasks and labels, and runs on the backbone it records.
	Teachers []string `json:"teachers,omitempty"`
	// Weight is the soft targets' weight in [0, 1] (default 0.5).
	Weight *float64 `json:"weight,omitempty"`
	// Temperature softens both class distributions (default 2).
	Temperature *float64 `json:"temperature,omitempty"`
}

// LayerUnfreeze is how the backbone's trainable layers join training.
type LayerUnfreeze string

// Unfreezing schedules of the backbone's trainable layers.
const (
	// UnfreezePartial trains every trainable layer from the first epoch (the default).
	UnfreezePartial LayerUnfreeze = "partial"
	// UnfreezeProgressive trains the heads alone for HeadsOnlyEpochs, then unfreezes one more
	// layer from the top every EpochsPerLayer epochs.
	UnfreezeProgressive LayerUnfreeze = "progressive"
)

// BackboneConfig fine-tunes the backbone's top layers with the heads (the TOML [backbone]
// table). The saved bundle then carries the fine-tuned backbone, which LoadModel runs; such
// heads cannot be hot-swapped into a model on the stock backbone (ErrBackboneMismatch).
//
// Where the config sets no mode, head-stage epochs or label smoothing, fine-tuning uses the
// measured recipe: embedding-only, 5 epochs, label smoothing 0.1.
type BackboneConfig struct {
	// TrainableLayers is how many top layers train (default 0: the backbone stays frozen).
	TrainableLayers *int `json:"trainable_layers,omitempty"`
	// LR is the layers' peak AdamW learning rate (default 2e-4; the heads keep theirs).
	LR *float64 `json:"lr,omitempty"`
	// WeightDecay is the layers' decoupled weight decay (default 0.01).
	WeightDecay *float64 `json:"weight_decay,omitempty"`
	// WarmupFraction is the layers' linear warm-up share of the steps (default 0.1).
	WarmupFraction *float64 `json:"warmup_fraction,omitempty"`
	// ClipNorm is the layers' own gradient-norm clip (default 1; 0 disables it).
	ClipNorm *float64 `json:"clip_norm,omitempty"`
	// Dropout is the layers' hidden dropout while they train, in [0, 1) (default 0).
	Dropout *float64 `json:"dropout,omitempty"`
	// Unfreeze is partial (default) or progressive.
	Unfreeze LayerUnfreeze `json:"unfreeze,omitempty"`
	// HeadsOnlyEpochs is, for progressive unfreezing, the epochs before the top layer trains.
	HeadsOnlyEpochs *int `json:"heads_only_epochs,omitempty"`
	// EpochsPerLayer is, for progressive unfreezing, the epochs between two layers unfreezing.
	EpochsPerLayer *int `json:"epochs_per_layer,omitempty"`
	// ContrastiveEpochs is the epochs of a contrastive warm-up of the layers on same-class
	// and different-class pairs before the heads train (default 0: none).
	ContrastiveEpochs *int `json:"contrastive_epochs,omitempty"`
	// ContrastivePairs is the pairs drawn per example and warm-up epoch (default 8).
	ContrastivePairs *int `json:"contrastive_pairs,omitempty"`
}

// StageConfig is the optimisation of one training stage.
type StageConfig struct {
	// Epochs is the maximum number of epochs (default 40 for heads, 30 for metadata).
	Epochs *int `json:"epochs,omitempty"`
	// LR is the peak AdamW learning rate.
	LR *float64 `json:"lr,omitempty"`
	// WeightDecay is AdamW's decoupled weight decay.
	WeightDecay *float64 `json:"weight_decay,omitempty"`
	// BatchSize is the number of examples per step.
	BatchSize *int `json:"batch_size,omitempty"`
	// Patience is the number of epochs without improvement before stopping (0 = never stop
	// early).
	Patience *int `json:"patience,omitempty"`
	// MinDelta is the smallest change that counts as an improvement.
	MinDelta *float64 `json:"min_delta,omitempty"`
	// Schedule is the learning-rate schedule.
	Schedule Schedule `json:"schedule,omitempty"`
	// WarmupFraction is the warm-up share of all steps for the cosine schedule.
	WarmupFraction *float64 `json:"warmup_fraction,omitempty"`
	// ClipNorm is the global gradient-norm clip (0 = no clipping).
	ClipNorm *float64 `json:"clip_norm,omitempty"`
	// Monitor is the validation number that picks the best epoch, drives the plateau
	// schedule and stops early: "valid_loss" (default), "task_loss", "macro_f1", "accuracy",
	// "rmse" or "mae".
	Monitor string `json:"monitor,omitempty"`
	// MonitorTask is the task whose number Monitor reads ("" = the first).
	MonitorTask string `json:"monitor_task,omitempty"`
	// DropoutSamples is multi-sample dropout: training passes per mini-batch, each with fresh
	// dropout masks, their losses averaged (default 1).
	DropoutSamples *int `json:"dropout_samples,omitempty"`
}

// MetadataConfig configures the metadata side: features and the encoder over them.
type MetadataConfig struct {
	// TopK keeps the k features with the highest mutual information with the labels (0 = all).
	TopK *int `json:"top_k,omitempty"`
	// Hidden is the encoder MLP's hidden layer sizes (default [64]).
	Hidden *[]int `json:"hidden,omitempty"`
	// CodeDim is the size of the metadata code the encoder outputs (default 32).
	CodeDim *int `json:"code_dim,omitempty"`
	// Dropout is the encoder's dropout.
	Dropout *float64 `json:"dropout,omitempty"`
	// ValidationSplit is the share of the training rows TopK ranks features on (0 = all).
	ValidationSplit *float64 `json:"validation_split,omitempty"`
	// InitEncoder starts from the metadata encoder and normalizer of this bundle (a trained
	// bundle, or an encoder bundle `tandem pretrain` made) instead of training stage 1.
	InitEncoder *string `json:"init_encoder,omitempty"`
	// Stage1Targets is what stage 1 trains the encoder to predict: "labels",
	// "masked_features", or feature group names such as "length" (default ["labels"]).
	Stage1Targets *[]string `json:"stage1_targets,omitempty"`
	// MaskRate is the chance that a row hides each feature or named group in stage 1 (0.15).
	MaskRate *float64 `json:"mask_rate,omitempty"`
	// Stage is the stage-1 optimisation.
	Stage *StageConfig `json:"stage,omitempty"`
}

// HeadKind is what the semantic heads read from the backbone.
type HeadKind string

// Head kinds.
const (
	// HeadPooled reads the pooled sentence embedding only. The default.
	HeadPooled HeadKind = "pooled"
	// HeadSequence also reads every token's vector through a sequence encoder (attention
	// pooling, multi-scale convolutions, optionally a transformer layer).
	HeadSequence HeadKind = "sequence"
)

// SequenceConfig is the sequence encoder's architecture (used by HeadSequence).
type SequenceConfig struct {
	// AttentionQueries is the number of learned attention-pooling queries (0 = none; default 1).
	AttentionQueries *int `json:"attention_queries,omitempty"`
	// ConvKernels is the odd kernel widths of the convolutions (default [1 3 5]; empty = none).
	ConvKernels *[]int `json:"conv_kernels,omitempty"`
	// ConvChannels is the output channels per kernel width (default 128).
	ConvChannels *int `json:"conv_channels,omitempty"`
	// Transformer adds one transformer encoder layer over the tokens first (default false).
	Transformer *bool `json:"transformer,omitempty"`
	// TransformerHeads is that layer's attention heads (must divide the embedding width).
	TransformerHeads *int `json:"transformer_heads,omitempty"`
	// TransformerFFN is that layer's feed-forward width.
	TransformerFFN *int `json:"transformer_ffn,omitempty"`
	// Dropout is applied to the encoder's pooled output.
	Dropout *float64 `json:"dropout,omitempty"`
}

// HeadConfig configures the semantic heads.
type HeadConfig struct {
	// Kind is HeadPooled (default) or HeadSequence.
	Kind HeadKind `json:"kind,omitempty"`
	// Sequence is the sequence encoder's architecture, for HeadSequence.
	Sequence *SequenceConfig `json:"sequence,omitempty"`
	// Hidden is each head MLP's hidden layer sizes (default [256]; an empty slice means a
	// linear head).
	Hidden *[]int `json:"hidden,omitempty"`
	// Dropout is the heads' dropout.
	Dropout *float64 `json:"dropout,omitempty"`
	// Stage is the stage-2 (or joint, or embedding-only) optimisation.
	Stage *StageConfig `json:"stage,omitempty"`
}

// UnfreezeConfig configures unfreezing the metadata encoder during stage 2.
type UnfreezeConfig struct {
	// AtEpoch is the 0-based stage-2 epoch at which the encoder trains again (nil = frozen).
	AtEpoch *int `json:"at_epoch,omitempty"`
	// LRScale is the encoder's learning rate once unfrozen, relative to the heads'.
	LRScale *float64 `json:"lr_scale,omitempty"`
}

// LossConfig configures the losses.
type LossConfig struct {
	// Classification is the classification loss.
	Classification ClassLoss `json:"classification,omitempty"`
	// Regression is the regression loss.
	Regression RegressionLoss `json:"regression,omitempty"`
	// LabelSmoothing is ε for multiclass cross-entropy.
	LabelSmoothing *float64 `json:"label_smoothing,omitempty"`
	// FocalGamma is the focal loss's γ.
	FocalGamma *float64 `json:"focal_gamma,omitempty"`
	// HuberDelta is the Huber loss's δ.
	HuberDelta *float64 `json:"huber_delta,omitempty"`
	// ClassWeights is the class weighting.
	ClassWeights ClassWeights `json:"class_weights,omitempty"`
	// MultiTask is how several tasks' losses combine.
	MultiTask MultiTask `json:"multitask,omitempty"`
}

// Ptr returns a pointer to a copy of v, for the optional fields of TrainConfig.
func Ptr[T any](v T) *T { return &v }
