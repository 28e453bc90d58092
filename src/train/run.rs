//! Training heads from examples, in any of the four modes: the stages each mode runs, then
//! the decision thresholds, then validation metrics.
//!
//! `texts ─► embeddings (cache) ─┐
//!  texts ─► metadata features ─► normalizer ─► stage 1: encoder + aux heads ─► freeze
//!                                └──────────────► stage 2: heads on [embedding ; code] ─► thresholds`

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use super::checkpoint::Checkpoints;
use super::config::{HeadKind, Mode, TrainConfig};
use super::examples::Examples;
use super::objective::{target_scale, Objective};
use super::pretext::Pretext;
use super::stage::{fit_tuned, EpochHook, EpochRecord, Phase, Progress, StageData, StageReport};
use super::tune::{BackboneTop, Tuning};
use crate::bundle::TaskEntry;
use crate::data::{Targets, TaskKind, TaskSpec};
use crate::error::{Error, Result};
use crate::eval::{best_f1_threshold, evaluate_probs};
use crate::heads::{predict_arrays, Architecture, Heads, Network, Normalizer};
use crate::nn::Layer;

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
    /// Validation size (the linear recipe: every example, scored out-of-fold).
    pub n_valid: usize,
    /// What the linear recipe's cross-validation chose, per task (None for the other recipes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear: Option<Vec<super::linear::LinearTaskReport>>,
}

/// Trained heads plus a bundle manifest ready to save.
pub struct Trained {
    /// The heads (network, normalizer, tasks with thresholds).
    pub heads: Heads,
    /// What happened.
    pub report: TrainReport,
    /// The backbone's fine-tuned top layers, when they trained (`[backbone]
    /// trainable_layers`): the heads read the embeddings of the backbone with these layers.
    pub top: Option<BackboneTop>,
}

/// Starts the (single) task head from the ONNX head at `path` instead of its random weights.
fn init_head(net: &mut Network, path: &std::path::Path, config: &TrainConfig) -> Result<()> {
    let imported = crate::onnx::import::read_head(path)?;
    let arch = &net.arch;
    if config.mode != Mode::EmbeddingOnly || arch.sequence.is_some() || net.heads.len() != 1 {
        return Err(Error::invalid(format!(
            "{}: an imported head reads the pooled embedding alone, so training from it needs \
             one task, mode = \"embedding_only\" and a pooled head",
            path.display()
        )));
    }
    let want = (arch.head_input(), arch.outputs[0]);
    if (imported.input_dim, imported.output_dim) != want
        || imported.config.hidden != arch.head.hidden
        || imported.config.activation != arch.head.activation
        || imported.config.layer_norm != arch.head.layer_norm
    {
        return Err(Error::invalid(format!(
            "{}: the head maps {} inputs to {} through hidden layers {:?} ({:?}, LayerNorm {}), \
             but this training builds {} -> {} through {:?} ({:?}, LayerNorm {}): set [head] \
             hidden, activation and layer_norm to the imported head's",
            path.display(),
            imported.input_dim,
            imported.output_dim,
            imported.config.hidden,
            imported.config.activation,
            imported.config.layer_norm,
            want.0,
            want.1,
            arch.head.hidden,
            arch.head.activation,
            arch.head.layer_norm
        )));
    }
    imported.load_into(&mut net.heads[0])
}

/// Trains heads for `tasks` on `train`, early-stopping and tuning thresholds on `valid`.
/// Deterministic for a given config (seed included) and data. The linear recipe
/// (`head.kind = "linear"`) cross-validates on `train` instead and only scores `valid`, which
/// may be empty. Fine-tuning backbone layers (`[backbone] trainable_layers`) needs them: see
/// [`train_top`].
pub fn train(
    tasks: &[TaskSpec],
    train: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<Trained> {
    train_top(tasks, train, valid, config, None, progress)
}

/// [`train`], fine-tuning the backbone's top layers `top` (pretrained, as
/// [`SplitBackbone`](crate::onnx::split::SplitBackbone) loads them) with the heads when the
/// config's `[backbone] trainable_layers` asks for them; the examples then carry the hidden
/// states below those layers ([`Examples::hidden`]). The fine-tuned layers come back in
/// [`Trained::top`].
pub fn train_top(
    tasks: &[TaskSpec],
    train: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    top: Option<BackboneTop>,
    progress: Progress<'_>,
) -> Result<Trained> {
    train_checkpointed(tasks, train, valid, config, top, None, progress)
}

/// [`train_top`], saving checkpoints of the model's last stage as it trains (see
/// [`super::checkpoint`]). The linear recipe has no epochs: it refuses checkpoints.
pub fn train_checkpointed(
    tasks: &[TaskSpec],
    train: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    top: Option<BackboneTop>,
    mut checkpoints: Option<&mut Checkpoints<'_>>,
    progress: Progress<'_>,
) -> Result<Trained> {
    if config.head.kind == HeadKind::Linear && top.is_none() {
        if train.soft.is_some() || !config.distill.teachers.is_empty() {
            return Err(Error::invalid(
                "the linear recipe solves its heads from the labels alone: distilling a \
                 teacher needs a head trained by gradient descent (head.kind pooled or \
                 sequence)",
            ));
        }
        if checkpoints.is_some() {
            return Err(Error::invalid(
                "the linear recipe solves its heads without epochs: there is nothing to \
                 checkpoint (use another head kind, or drop the checkpoint options)",
            ));
        }
        return super::linear::train_linear(tasks, train, valid, config, progress);
    }
    check_inputs(tasks, train, valid, config, top.is_some())?;
    check_top(top.as_ref(), train, valid, config)?;
    let mut top = top;
    let init = config
        .metadata
        .init_encoder
        .as_deref()
        .map(PretrainedEncoder::load)
        .transpose()?;
    let prepared = Prepared::new(tasks, train, valid, config, init.as_ref())?;
    // Self-supervised stage-1 targets, over the features the normalizer keeps.
    let pretext = match (&prepared.normalizer, config.mode, &init) {
        (Some(n), Mode::TwoStage, None) => {
            Pretext::new(&config.metadata, &n.selected, stage_seed(config, 5))?
        }
        _ => None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut net = Network::new(prepared.arch.clone(), &mut rng)?;
    if let Some(init) = init {
        net.encoder = Some(init.encoder);
    }
    if let Some(path) = &config.head.init {
        init_head(&mut net, path, config)?;
    }
    let data = prepared.stage_data(&net);
    let labels = match train.targets.first() {
        Some(Targets::Class(c)) => Some(c.as_slice()),
        _ => None,
    };
    let last_stage = match config.mode {
        Mode::MetadataOnly => &config.metadata.stage,
        _ => &config.head.stage,
    };
    // Every stage's monitor is checked before any stage trains.
    if matches!(config.mode, Mode::MetadataOnly | Mode::TwoStage)
        && config.metadata.init_encoder.is_none()
    {
        let stage1 = data.for_stage1(pretext.as_ref(), config.metadata.stage1_labels(config.mode));
        super::stage::monitor_label(&config.metadata.stage, &stage1)?;
    }
    let label = super::stage::monitor_label(last_stage, &data)?;
    if let Some(c) = checkpoints.as_deref_mut() {
        c.set_monitor(label, last_stage.monitor.direction());
    }
    let mut history = Vec::new();
    let mut checkpoint = |rec: &EpochRecord, net: &Network, top: Option<&BackboneTop>| {
        let Some(c) = checkpoints.as_deref_mut() else {
            return Ok(());
        };
        history.push(rec.clone());
        let (best, periodic) = c.wants(rec);
        if !(best || periodic) {
            return Ok(());
        }
        let (heads, valid_metrics) =
            prepared.assemble(tasks, net.clone(), top, config, &mut |_| true)?;
        let stage = StageReport {
            stage: rec.stage.clone(),
            epochs_run: rec.epoch + 1,
            best_epoch: rec.epoch,
            best_valid_loss: rec.valid_loss,
            monitor: String::new(),
            best_monitored: rec.monitored.unwrap_or(rec.valid_loss),
            learned_weights: None,
            seconds: rec.elapsed,
            seconds_to_best: rec.elapsed,
            history: history.clone(),
        };
        let report = TrainReport {
            mode: config.mode,
            stages: vec![stage],
            valid_metrics,
            train_seconds: rec.elapsed,
            seconds_to_best: rec.elapsed,
            n_train: train.len(),
            n_valid: valid.len(),
            linear: None,
        };
        c.record(
            rec,
            &Trained {
                heads,
                report,
                top: top.cloned(),
            },
        )
    };
    let (stages, before_last) = run_stages(
        &mut net,
        (&data, pretext.as_ref()),
        config,
        (top.as_mut(), labels),
        &mut checkpoint,
        progress,
    )?;
    let (heads, valid_metrics) = prepared.assemble(tasks, net, top.as_ref(), config, progress)?;
    let last = stages.last().expect("at least one stage");
    let report = TrainReport {
        mode: config.mode,
        train_seconds: stages.iter().map(|s| s.seconds).sum(),
        seconds_to_best: before_last + last.seconds_to_best,
        stages,
        valid_metrics,
        n_train: train.len(),
        n_valid: valid.len(),
        linear: None,
    };
    Ok(Trained { heads, report, top })
}

/// Fine-tuning needs the layers and, for every example, the hidden states below them, as
/// wide as the embeddings; without `[backbone] trainable_layers` it takes neither.
fn check_top(
    top: Option<&BackboneTop>,
    train: &Examples,
    valid: &Examples,
    config: &TrainConfig,
) -> Result<()> {
    let k = config.backbone.trainable_layers;
    let Some(top) = top else {
        if k > 0 {
            return Err(Error::invalid(
                "backbone.trainable_layers is set: training needs the backbone's top layers \
                 (tandem::train::train_top) and the hidden states below them",
            ));
        }
        return Ok(());
    };
    if top.layers.len() != k {
        return Err(Error::invalid(format!(
            "{} backbone layers given to train, but backbone.trainable_layers is {k}",
            top.layers.len()
        )));
    }
    let width = top.layers.first().map_or(0, |l| l.config().hidden);
    for (name, ex) in [("training", train), ("validation", valid)] {
        match &ex.hidden {
            Some(h) if h.len() == ex.len() && h.dim() == width && width == ex.emb.ncols() => {
                h.check_finite().map_err(|i| {
                    Error::numeric(format!("{name} hidden states of text {i} are not finite"))
                })?
            }
            _ => {
                return Err(Error::invalid(format!(
                    "fine-tuning the backbone's top layers needs the {name} texts' hidden states \
                     below them, {width} wide (one sequence per example, as wide as the \
                     embeddings)"
                )))
            }
        }
    }
    Ok(())
}

/// Refuses examples that do not fit the tasks and the mode: missing targets, empty sets,
/// arrays the mode needs but lacks, token vectors that do not match, non-finite values.
/// With backbone layers training (`tuned`), sequence heads read the top layer's token vectors,
/// so the examples need none.
fn check_inputs(
    tasks: &[TaskSpec],
    train: &Examples,
    valid: &Examples,
    config: &TrainConfig,
    tuned: bool,
) -> Result<()> {
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
    if uses_emb && config.head.kind == HeadKind::Sequence && !tuned {
        for (name, ex) in [("training", train), ("validation", valid)] {
            check_tokens(name, ex, train.emb.ncols())?;
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
    Ok(())
}

/// Sequence heads need one token sequence per example, as wide as the embeddings.
fn check_tokens(name: &str, ex: &Examples, width: usize) -> Result<()> {
    match &ex.tokens {
        Some(t) if t.len() == ex.len() && t.dim() == width => Ok(()),
        Some(t) => Err(Error::invalid(format!(
            "{name} token sequences: {} of width {}, expected {} of width {width}",
            t.len(),
            t.dim(),
            ex.len(),
        ))),
        None => Err(Error::invalid(format!(
            "sequence heads need the {name} texts' per-token vectors"
        ))),
    }
}

/// A metadata encoder and its normalizer, pre-trained in another bundle (`--init-encoder`).
struct PretrainedEncoder {
    encoder: crate::nn::Mlp,
    normalizer: Normalizer,
    /// The bundle's architecture (the encoder's shape and code width).
    arch: Architecture,
}

impl PretrainedEncoder {
    /// Reads the bundle at `path` with every check a load for serving makes (features are
    /// matched by name, so a bundle of an older feature set works).
    fn load(path: &std::path::Path) -> Result<Self> {
        let (manifest, weights) = crate::bundle::load(path)?;
        let heads = crate::bundle::build_heads(&manifest, &weights)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))?;
        let network = heads.network;
        match (network.encoder, heads.normalizer) {
            (Some(encoder), Some(normalizer)) => Ok(PretrainedEncoder {
                encoder,
                normalizer,
                arch: network.arch,
            }),
            _ => Err(Error::invalid(format!(
                "{}: this bundle has no metadata encoder (mode {}): --init-encoder needs a \
                 bundle trained in mode two_stage, joint or metadata_only",
                path.display(),
                network.arch.mode.name()
            ))),
        }
    }
}

impl Prepared<'_> {
    /// The model as `net` (and the fine-tuned layers `top`) stand: every parameter trainable
    /// again (a saved model carries no freezing state), thresholds tuned on the validation
    /// outputs (reported to `progress`), and the validation metrics.
    fn assemble(
        &self,
        tasks: &[TaskSpec],
        mut net: Network,
        top: Option<&BackboneTop>,
        config: &TrainConfig,
        progress: Progress<'_>,
    ) -> Result<(Heads, Value)> {
        let valid = self.valid;
        // The validation embeddings (and token vectors) through the fine-tuned layers.
        let sequence = net.sequence.is_some();
        let tuned_valid = top
            .zip(valid.hidden.as_ref())
            .map(|(t, h)| t.outputs(h, sequence));
        let data = self.stage_data(&net);
        let valid_emb = tuned_valid.as_ref().map_or(data.valid_emb, |e| e.0.view());
        let valid_tokens = match &tuned_valid {
            Some((_, tokens)) => tokens.as_ref(),
            None => valid.tokens.as_ref(),
        };
        for p in net.params_mut() {
            p.trainable = true;
        }
        let mut heads = Heads::untuned(net, self.normalizer.clone(), tasks);
        let probs = predict_arrays(&heads, valid_emb, data.valid_feats, valid_tokens)?;
        for (task, p) in heads.tasks.iter().zip(&probs) {
            check_finite(
                p.view(),
                &format!("task `{}`'s validation outputs", task.spec.name),
            )?;
        }
        set_thresholds(&mut heads.tasks, &probs, &valid.targets, config, progress)?;
        let valid_metrics = evaluate_probs(&heads.tasks, &probs, &valid.targets);
        Ok((heads, valid_metrics))
    }
}

/// What the stages train on, derived from the examples: the fitted normalizer and the
/// normalized features, each task's objectives, and the architecture.
struct Prepared<'a> {
    train: &'a Examples,
    valid: &'a Examples,
    uses_emb: bool,
    normalizer: Option<Normalizer>,
    feats: (Array2<f32>, Array2<f32>),
    objectives: (Vec<Objective>, Vec<Objective>),
    arch: Architecture,
    task_names: Vec<String>,
}

impl<'a> Prepared<'a> {
    fn new(
        tasks: &[TaskSpec],
        train: &'a Examples,
        valid: &'a Examples,
        config: &TrainConfig,
        init: Option<&PretrainedEncoder>,
    ) -> Result<Self> {
        let uses_meta = config.mode != Mode::EmbeddingOnly;
        let outputs: Vec<usize> = tasks
            .iter()
            .map(|t| match t.kind {
                TaskKind::Multiclass | TaskKind::Multilabel => t.labels.len(),
                TaskKind::Binary | TaskKind::Regression => 1,
            })
            .collect();
        let scales: Vec<(f32, f32)> = train.targets.iter().map(target_scale).collect();
        let normalizer = match init {
            Some(init) => Some(init.normalizer.clone()),
            None if uses_meta => Some(fit_normalizer(train, config)?),
            None => None,
        };
        let norm = |f: &Array2<f32>| match &normalizer {
            Some(n) => n.transform(f.view()),
            None => Array2::zeros((f.nrows(), 0)),
        };
        let feats = (norm(&train.feats), norm(&valid.feats));
        let weights = task_weights(tasks, &config.loss)?;
        let objectives = |targets: &[Targets]| -> Result<Vec<Objective>> {
            tasks
                .iter()
                .zip(targets)
                .enumerate()
                .map(|(t, (spec, tg))| {
                    Ok(
                        Objective::new(spec.kind, outputs[t], tg, scales[t], &config.loss)?
                            .with_task_weight(weights[t]),
                    )
                })
                .collect()
        };
        let mut train_objectives = objectives(&train.targets)?;
        // A teacher's outputs mix into the training objectives; validation keeps the labels.
        if let Some(soft) = &train.soft {
            if soft.len() != tasks.len() {
                return Err(Error::invalid(format!(
                    "teacher outputs for {} tasks, but there are {}",
                    soft.len(),
                    tasks.len()
                )));
            }
            let d = &config.distill;
            train_objectives = train_objectives
                .into_iter()
                .zip(soft)
                .zip(tasks)
                .map(|((o, s), spec)| {
                    o.with_teacher(s.view(), d.weight, d.temperature)
                        .map_err(|e| {
                            Error::new(e.kind(), format!("task `{}`: {}", spec.name, e.message()))
                        })
                })
                .collect::<Result<_>>()?;
        } else if !config.distill.teachers.is_empty() {
            return Err(Error::invalid(
                "distill.teachers names teachers, but the training examples carry no teacher \
                 outputs (Examples::soft; tandem::train::distill::teacher_outputs computes \
                 them)",
            ));
        }
        let objectives = (train_objectives, objectives(&valid.targets)?);
        let mut arch =
            Architecture::from_config(config, train.emb.ncols(), feats.0.ncols(), outputs, scales);
        if let Some(init) = init {
            arch.encoder = init.arch.encoder.clone();
            arch.code_dim = init.arch.code_dim;
        }
        Ok(Prepared {
            train,
            valid,
            uses_emb: config.mode != Mode::MetadataOnly,
            normalizer,
            feats,
            objectives,
            arch,
            task_names: tasks.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// The stages' view of the data (per-token vectors only for a network with sequence heads).
    fn stage_data(&self, net: &Network) -> StageData<'_> {
        let emb = |e: &'a Examples| {
            if self.uses_emb {
                e.emb.view()
            } else {
                e.emb.slice(ndarray::s![.., ..0])
            }
        };
        let tokens = |e: &'a Examples| e.tokens.as_ref().filter(|_| net.sequence.is_some());
        StageData {
            emb: emb(self.train),
            feats: self.feats.0.view(),
            objectives: &self.objectives.0,
            valid_emb: emb(self.valid),
            valid_feats: self.feats.1.view(),
            valid_objectives: &self.objectives.1,
            tokens: tokens(self.train),
            valid_tokens: tokens(self.valid),
            hidden: self.train.hidden.as_ref().zip(self.valid.hidden.as_ref()),
            task_names: &self.task_names,
            pretext: None,
        }
    }
}

/// The feature normalizer fitted on the training rows; `top_k` ranks features by mutual
/// information on a stratified `metadata.validation_split` share of them when one is set.
fn fit_normalizer(train: &Examples, config: &TrainConfig) -> Result<Normalizer> {
    let refs: Vec<&Targets> = train.targets.iter().collect();
    let split = config.metadata.validation_split;
    if split == 0.0 || config.metadata.top_k == 0 {
        return Ok(Normalizer::fit(
            train.feats.view(),
            &refs,
            config.metadata.top_k,
        ));
    }
    let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(7);
    let (_, held) = crate::data::stratified_split(&train.split_strata(), split, seed);
    if held.is_empty() {
        return Err(Error::invalid(format!(
            "metadata.validation_split {split} holds none of the {} training examples out to \
             rank features on: raise it, or set it to 0",
            train.len()
        )));
    }
    let held_targets: Vec<Targets> = train.targets.iter().map(|t| t.select(&held)).collect();
    let held_refs: Vec<&Targets> = held_targets.iter().collect();
    Ok(Normalizer::fit_ranked_on(
        train.feats.view(),
        &refs,
        config.metadata.top_k,
        (&held, &held_refs),
    ))
}

/// The stages of the configured mode, in order: metadata-only is stage 1 of two-stage on its
/// own; two-stage freezes the encoder for stage 2 (optionally unfreezing it later); joint and
/// embedding-only are one semantic stage. Returns the stages' reports and the seconds before
/// the last stage (a finished stage 1 counts in full towards the time to the best epoch).
fn run_stages(
    net: &mut Network,
    (data, pretext): (&StageData<'_>, Option<&Pretext>),
    config: &TrainConfig,
    (top, labels): (Option<&mut BackboneTop>, Option<&[usize]>),
    last_epoch: EpochHook<'_>,
    progress: Progress<'_>,
) -> Result<(Vec<StageReport>, f64)> {
    let seed = |k: u64| stage_seed(config, k);
    let mt = config.loss.multitask;
    let mut stages = Vec::new();
    let mut before_last = 0.0;
    // A pre-trained encoder (--init-encoder) stands in for stage 1.
    let pretrained = config.metadata.init_encoder.is_some();
    if matches!(config.mode, Mode::MetadataOnly | Mode::TwoStage) && !pretrained {
        let name = if config.mode == Mode::TwoStage {
            "stage1"
        } else {
            "metadata"
        };
        // Metadata-only: this stage is the model's last, the one checkpoints come from.
        let hook: Option<EpochHook<'_>> = match config.mode {
            Mode::MetadataOnly => Some(&mut *last_epoch),
            _ => None,
        };
        // Stage 1's auxiliary heads: the tasks' (unless it trains on self-supervised targets
        // alone), then one per self-supervised target, dropped after the stage.
        let labels = config.metadata.stage1_labels(config.mode);
        let task_heads = (!labels).then(|| std::mem::take(&mut net.aux_heads));
        let kept = net.aux_heads.len();
        if let Some(p) = pretext {
            let encoder = &net.arch.encoder;
            net.aux_heads
                .extend(p.heads(net.arch.code_dim, encoder, seed(6))?);
        }
        let s1 = fit_tuned(
            name,
            net,
            Phase::Metadata,
            &data.for_stage1(pretext, labels),
            &config.metadata.stage,
            mt,
            seed(1),
            None,
            hook,
            progress,
        );
        net.aux_heads.truncate(kept);
        if let Some(h) = task_heads {
            net.aux_heads = h;
        }
        let s1 = s1?;
        if config.mode == Mode::TwoStage {
            before_last = s1.seconds;
        }
        stages.push(s1);
    }
    let (name, unfreeze) = match config.mode {
        Mode::MetadataOnly => return Ok((stages, before_last)),
        Mode::TwoStage => {
            if let Some(e) = net.encoder.as_mut() {
                e.set_trainable("", false);
            }
            let unfreeze = config.unfreeze.at_epoch.map(|at| super::stage::Unfreeze {
                at,
                lr_scale: config.unfreeze.lr_scale,
                epochs_per_layer: config.unfreeze.epochs_per_layer,
            });
            ("stage2", unfreeze)
        }
        Mode::Joint => ("joint", None),
        Mode::EmbeddingOnly => ("heads", None),
    };
    let mut tuning = match (top, data.hidden) {
        (Some(top), Some((train, valid))) => {
            let s = &config.head.stage;
            let steps = data.emb.nrows().div_ceil(s.batch_size) * s.epochs;
            let mut t = Tuning::new(top, train, valid, &config.backbone, steps, config.seed)?;
            t.set_token_output(net.sequence.is_some());
            Some(t)
        }
        _ => None,
    };
    if let (Some(t), true) = (tuning.as_mut(), config.backbone.contrastive_epochs > 0) {
        let labels = labels.ok_or_else(|| {
            Error::invalid(
                "backbone.contrastive_epochs pairs texts by class: the first task must be \
                 multiclass or binary",
            )
        })?;
        let warm = t.contrastive(labels, seed(3), &mut *progress)?;
        before_last += warm.seconds;
        stages.push(warm);
    }
    let stage = fit_tuned(
        name,
        net,
        Phase::Semantic { unfreeze },
        data,
        &config.head.stage,
        mt,
        seed(2),
        tuning.as_mut(),
        Some(last_epoch),
        progress,
    )?;
    if let Some(t) = tuning {
        t.finish();
    }
    stages.push(stage);
    Ok((stages, before_last))
}

/// The seed of a training's part `k` (1: stage 1, 2: the last stage, 3: the contrastive
/// warm-up, 5: the self-supervised draws, 6: their heads), derived from the config's seed.
pub(super) fn stage_seed(config: &TrainConfig, k: u64) -> u64 {
    config.seed.wrapping_mul(1_000_003).wrapping_add(k)
}

/// Every task's decision thresholds: tuned on the validation outputs `probs` for the best F1
/// (binary and multi-label tasks, reporting each to `progress`, which may cancel), or 0.5.
pub(super) fn set_thresholds(
    tasks: &mut [TaskEntry],
    probs: &[Array2<f32>],
    targets: &[Targets],
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<()> {
    let tuned: Vec<usize> = (0..tasks.len())
        .filter(|&t| {
            config.tune_thresholds
                && matches!(tasks[t].spec.kind, TaskKind::Binary | TaskKind::Multilabel)
        })
        .collect();
    for (t, task) in tasks.iter_mut().enumerate() {
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
            monitored: None,
            task_losses: Vec::new(),
            lr: 0.0,
            elapsed: 0.0,
        };
        if !progress(&rec) {
            return Err(Error::new(
                crate::ErrorKind::Cancelled,
                "training cancelled by the progress callback (tuning thresholds)",
            ));
        }
        task.thresholds = tune_thresholds(task.spec.kind, &probs[t], &targets[t])?;
    }
    Ok(())
}

/// Each task's fixed loss weight from `[loss] task_weights` (1 where a task is not named). A
/// name that is no task, a weight that is negative or not finite, or weights together with
/// learned uncertainty weighting are errors naming what is wrong.
fn task_weights(tasks: &[TaskSpec], loss: &super::config::LossConfig) -> Result<Vec<f32>> {
    let w = &loss.task_weights;
    if w.is_empty() {
        return Ok(vec![1.0; tasks.len()]);
    }
    if loss.multitask == super::config::MultiTask::Uncertainty {
        return Err(Error::invalid(
            "[loss] task_weights apply with multitask = \"fixed\"; uncertainty weighting learns its own",
        ));
    }
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    for (name, &v) in w {
        if !names.contains(&name.as_str()) {
            return Err(Error::invalid(format!(
                "[loss] task_weights names `{name}`, which is not a task (tasks: {})",
                names.join(", ")
            )));
        }
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::invalid(format!(
                "[loss] task_weights: `{name}` = {v}; a weight is finite and not negative"
            )));
        }
    }
    Ok(names
        .iter()
        .map(|n| w.get(*n).copied().unwrap_or(1.0))
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::{LossConfig, MultiTask};

    #[test]
    fn task_weights_name_tasks_and_are_checked() {
        let spec = |name: &str| TaskSpec {
            name: name.into(),
            kind: TaskKind::Multiclass,
            labels: vec!["x".into(), "y".into()],
        };
        let tasks = [spec("topic"), spec("spam")];
        let mut loss = LossConfig::default();
        assert_eq!(task_weights(&tasks, &loss).unwrap(), [1.0, 1.0]);
        loss.task_weights.insert("spam".into(), 0.25);
        assert_eq!(task_weights(&tasks, &loss).unwrap(), [1.0, 0.25]);
        loss.task_weights.insert("sentiment".into(), 1.0);
        let e = task_weights(&tasks, &loss).unwrap_err();
        assert!(
            e.message().contains("`sentiment`") && e.message().contains("topic, spam"),
            "{e}"
        );
        loss.task_weights.remove("sentiment");
        loss.task_weights.insert("topic".into(), -1.0);
        assert!(task_weights(&tasks, &loss)
            .unwrap_err()
            .message()
            .contains("not negative"));
        loss.task_weights.insert("topic".into(), 2.0);
        loss.multitask = MultiTask::Uncertainty;
        assert!(task_weights(&tasks, &loss)
            .unwrap_err()
            .message()
            .contains("fixed"));
    }
}
