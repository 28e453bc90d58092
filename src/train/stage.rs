//! The loop of one training stage: seeded shuffling, mini-batches ([`super::step`]), AdamW
//! with clipping and an LR schedule, per-epoch validation, early stopping with restore-best,
//! and a progress callback that can cancel.

use std::time::Instant;

use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::config::{Monitor, MultiTask, StageConfig};
use super::data_parallel::DataParallel;
use super::objective::Objective;
use super::pretext::{Pretext, VALID_DRAW};
use super::step::{all_params, all_params_ref, train_step, tuned_step, Batch, Combine};
use super::tune::{BackboneTop, Tuning};
use crate::backbone::TokenSeqs;
use crate::data::TaskKind;
use crate::error::{Error, ErrorKind, Result};
use crate::heads::{InputLayout, Network};
use crate::nn::early_stop::{EarlyStopDecision, EarlyStopping};
use crate::nn::multitask::{FixedWeights, UncertaintyWeights};
use crate::nn::optim::{AdamW, AdamWConfig};
use crate::nn::parallel;
use crate::nn::schedule::LrScheduler;
use crate::nn::Layer;

/// One epoch of one stage, as reported to progress callbacks and stored in the bundle.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Stage name (`stage1`, `stage2`, `joint`, ...).
    pub stage: String,
    /// 0-based epoch.
    pub epoch: usize,
    /// Maximum epochs of the stage.
    pub epochs: usize,
    /// Mean training loss of the epoch (combined over tasks).
    pub train_loss: f32,
    /// Validation loss (sum over tasks, unweighted).
    pub valid_loss: f32,
    /// The first task's validation metric: macro-F1 (classification, at the default
    /// threshold) or RMSE (regression). None where no validation pass ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<f32>,
    /// The stage's monitored number (`[*.stage] monitor`), when it is not the validation
    /// loss. None where no validation pass ran or the loss is monitored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitored: Option<f32>,
    /// Each task's own validation loss (unweighted), in task order; empty where no
    /// validation pass ran. The history an inverse-variance weighting reads
    /// ([`super::weights`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_losses: Vec<f32>,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    /// Seconds since the stage started.
    pub elapsed: f64,
}

/// A finished stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Stage name.
    pub stage: String,
    /// Epochs actually run.
    pub epochs_run: usize,
    /// Epoch (0-based) with the best monitored number; its weights are the ones kept.
    pub best_epoch: usize,
    /// The validation loss of that epoch.
    pub best_valid_loss: f32,
    /// What picked the best epoch, e.g. `valid_loss (min)` or `macro_f1 of topic (max)`.
    pub monitor: String,
    /// The monitored number at the best epoch.
    pub best_monitored: f32,
    /// With `multitask = "uncertainty"`: each task's learned weight exp(−sₜ) in the kept
    /// epoch, in task order. None with fixed weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned_weights: Option<Vec<f32>>,
    /// Wall time of the stage in seconds.
    pub seconds: f64,
    /// Wall time from the stage's start to the end of its best epoch.
    pub seconds_to_best: f64,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
}

/// Progress callback: gets each epoch's record; returning `false` cancels training.
pub type Progress<'a> = &'a mut dyn FnMut(&EpochRecord) -> bool;

/// Called after each validated epoch with its record and the network (and fine-tuned layers)
/// as they are after it, before early stopping restores anything: checkpoints save from here.
pub(super) type EpochHook<'a> =
    &'a mut dyn FnMut(&EpochRecord, &Network, Option<&BackboneTop>) -> Result<()>;

/// What the heads of a stage see.
pub enum Phase {
    /// Encoder + auxiliary heads on normalized features.
    Metadata,
    /// Semantic heads on [embedding ; code] (or the embedding alone); the encoder is trained
    /// too when it is trainable (joint mode, or after unfreezing).
    Semantic {
        /// When and how a frozen encoder becomes trainable.
        unfreeze: Option<Unfreeze>,
    },
}

/// Unfreezing a frozen metadata encoder during a semantic stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unfreeze {
    /// The (0-based) epoch its first layers train from.
    pub at: usize,
    /// Its learning rate as a multiple of the heads'.
    pub lr_scale: f32,
    /// 0: every layer at `at`; N: its top (output) layer at `at`, then one more layer down
    /// every N epochs.
    pub epochs_per_layer: usize,
}

impl Unfreeze {
    /// How many of `layers` layers (counted from the top) train in `epoch`.
    pub fn layers_at(&self, epoch: usize, layers: usize) -> usize {
        match (epoch.checked_sub(self.at), self.epochs_per_layer) {
            (None, _) => 0,
            (Some(_), 0) => layers,
            (Some(since), n) => (1 + since / n).min(layers),
        }
    }
}

/// The data one stage trains and validates on.
pub struct StageData<'a> {
    /// Training embeddings `[n, d]` (may have 0 columns).
    pub emb: ArrayView2<'a, f32>,
    /// Training normalized features `[n, f]` (may have 0 columns).
    pub feats: ArrayView2<'a, f32>,
    /// Training objectives, one per task.
    pub objectives: &'a [Objective],
    /// Validation embeddings.
    pub valid_emb: ArrayView2<'a, f32>,
    /// Validation features.
    pub valid_feats: ArrayView2<'a, f32>,
    /// Validation objectives.
    pub valid_objectives: &'a [Objective],
    /// Training texts' per-token vectors (sequence heads only).
    pub tokens: Option<&'a TokenSeqs>,
    /// Validation texts' per-token vectors (sequence heads only).
    pub valid_tokens: Option<&'a TokenSeqs>,
    /// Training and validation texts' hidden states below the backbone's trainable layers.
    pub hidden: Option<(&'a TokenSeqs, &'a TokenSeqs)>,
    /// The tasks' names, in the objectives' order (for `monitor_task`).
    pub task_names: &'a [String],
    /// Self-supervised targets the metadata stage trains on besides the objectives (their
    /// heads follow the tasks' auxiliary heads).
    pub pretext: Option<&'a Pretext>,
}

impl<'a> StageData<'a> {
    /// The same data with other per-token vectors (a fine-tune's top layer's).
    fn with_tokens<'b>(
        &self,
        tokens: Option<&'b TokenSeqs>,
        valid_tokens: Option<&'b TokenSeqs>,
    ) -> StageData<'b>
    where
        'a: 'b,
    {
        StageData {
            emb: self.emb,
            feats: self.feats,
            objectives: self.objectives,
            valid_emb: self.valid_emb,
            valid_feats: self.valid_feats,
            valid_objectives: self.valid_objectives,
            tokens,
            valid_tokens,
            hidden: self.hidden,
            task_names: self.task_names,
            pretext: self.pretext,
        }
    }

    /// The data of a stage 1: with the self-supervised targets `pretext`, and without the
    /// tasks' objectives unless `labels`.
    pub(super) fn for_stage1<'b>(&self, pretext: Option<&'b Pretext>, labels: bool) -> StageData<'b>
    where
        'a: 'b,
    {
        let mut d = self.with_tokens(self.tokens, self.valid_tokens);
        d.pretext = pretext;
        if !labels {
            d.objectives = &[];
            d.valid_objectives = &[];
            d.task_names = &[];
        }
        d
    }
}

/// What one stage keeps from epoch to epoch.
struct StageState {
    combine: Combine,
    scheduler: LrScheduler,
    opt: AdamW,
    stopper: EarlyStopping,
    parallel: DataParallel,
    /// `[embedding ; code]` of the training and validation rows while the encoder is frozen
    /// (a frozen encoder's code never changes: computed once).
    frozen: Option<(Array2<f32>, Array2<f32>)>,
    /// The top layer's token vectors of the training and validation texts while the
    /// backbone's layers under sequence heads stand still (heads-only epochs of a fine-tune).
    tokens: Option<(TokenSeqs, TokenSeqs)>,
}

impl StageState {
    fn new(
        n: usize,
        task_weights: Vec<f32>,
        cfg: &StageConfig,
        multitask: MultiTask,
        seed: u64,
    ) -> Result<Self> {
        let n_tasks = task_weights.len();
        let task_names: Vec<String> = (0..n_tasks).map(|t| t.to_string()).collect();
        let names: Vec<&str> = task_names.iter().map(String::as_str).collect();
        let combine = match multitask {
            MultiTask::Fixed => Combine::Fixed(FixedWeights::new(task_weights)?),
            MultiTask::Uncertainty => {
                Combine::Uncertainty(UncertaintyWeights::new("uncertainty", &names, 0.0)?)
            }
        };
        let total_steps = n.div_ceil(cfg.batch_size) * cfg.epochs;
        Ok(StageState {
            combine,
            scheduler: LrScheduler::new(cfg.lr_schedule(total_steps), cfg.lr)?,
            opt: AdamW::new(AdamWConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..AdamWConfig::default()
            })?,
            stopper: EarlyStopping::new(cfg.early_stopping())?,
            parallel: DataParallel::new(seed),
            frozen: None,
            tokens: None,
        })
    }

    /// At the start of an epoch: unfreezes the encoder when its epoch has come, sets which of
    /// the backbone's top layers train, and computes the frozen inputs when the semantic heads
    /// train on a frozen (or absent) encoder and no backbone layer trains.
    fn prepare_epoch(
        &mut self,
        net: &mut Network,
        phase: &Phase,
        data: &StageData<'_>,
        epoch: usize,
        tuning: Option<&mut Tuning<'_>>,
    ) {
        if let Phase::Semantic { unfreeze: Some(u) } = *phase {
            if let Some(e) = net.encoder.as_mut() {
                // The encoder's layers from the top: its output layer, then its hidden blocks.
                let name = e.name().to_string();
                let mut layers = vec![format!("{name}.out")];
                layers.extend(
                    (0..e.config().hidden.len())
                        .rev()
                        .map(|i| format!("{name}.{i}")),
                );
                for layer in &layers[..u.layers_at(epoch, layers.len())] {
                    e.set_trainable(layer, true);
                }
                if epoch == u.at {
                    self.opt.set_lr_multiplier("encoder", u.lr_scale);
                }
            }
            if epoch == u.at {
                self.frozen = None;
                // Steps no longer split (the inputs are not frozen): the replica is done.
                self.parallel.stop();
            }
        }
        let mut tuned = None;
        if let Some(t) = tuning {
            if t.set_epoch(epoch) {
                // The embeddings change from here on (or now stand still at new values).
                self.frozen = None;
                self.tokens = None;
            }
            if t.active() > 0 {
                self.parallel.stop();
                return;
            }
            if self.frozen.is_none() || (t.token_output() && self.tokens.is_none()) {
                // One pass of the layers over each set for the embeddings and the tokens.
                let ((emb, tokens), (valid_emb, valid_tokens)) = t.outputs();
                if let (Some(a), Some(b)) = (tokens, valid_tokens) {
                    self.tokens = Some((a, b));
                }
                if self.frozen.is_none() {
                    tuned = Some((emb, valid_emb));
                }
            }
        }
        let encoder_trains = net
            .encoder
            .as_ref()
            .is_some_and(|e| e.has_trainable_params());
        if matches!(phase, Phase::Semantic { .. }) && !encoder_trains && self.frozen.is_none() {
            // Row-major, so that each mini-batch gathers whole contiguous rows.
            let row_major = |a: Array2<f32>| a.as_standard_layout().into_owned();
            let (emb, valid_emb) = match &tuned {
                Some((e, v)) => (e.view(), v.view()),
                None => (data.emb, data.valid_emb),
            };
            self.frozen = Some((
                row_major(net.pooled_input(emb, data.feats)),
                row_major(net.pooled_input(valid_emb, data.valid_feats)),
            ));
        }
    }

    /// One pass over the training rows in `order`; the summed loss (each batch's mean times
    /// its rows). With backbone layers training, each step runs them too and updates them with
    /// their own optimizer.
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &mut self,
        net: &mut Network,
        phase: &Phase,
        data: &StageData<'_>,
        order: &[usize],
        cfg: &StageConfig,
        meta: (&str, usize),
        mut tuning: Option<&mut Tuning<'_>>,
    ) -> Result<f64> {
        let clip = (cfg.clip_norm > 0.0).then_some(cfg.clip_norm);
        let StageState {
            combine,
            scheduler,
            opt,
            parallel,
            frozen,
            tokens,
            ..
        } = self;
        let frozen = frozen.as_ref().map(|f| &f.0);
        // Heads-only epochs of a fine-tune read the top layer's tokens as they stand.
        let view = match tokens.as_ref() {
            Some(t) => data.with_tokens(Some(&t.0), data.valid_tokens),
            None => data.with_tokens(data.tokens, data.valid_tokens),
        };
        let data = &view;
        // The steps run on a thread of rayon's pool (the progress callback stays on the
        // caller's): the layers and the optimizer split their work with rayon, and a split made
        // from outside the pool hands the whole job over and sleeps until it is done, two
        // futex wake-ups a split (measured: a third of a 1-thread head-training run).
        parallel::on_pool(|| -> Result<f64> {
            let mut epoch_loss = 0.0f64;
            for idx in order.chunks(cfg.batch_size) {
                opt.set_lr(scheduler.lr());
                let batch = Batch {
                    idx,
                    frozen,
                    epoch: meta.1,
                    samples: cfg.dropout_samples,
                };
                let loss = match tuning.as_deref_mut() {
                    Some(t) if t.active() > 0 => {
                        let loss = tuned_step(net, t, data, idx, combine, cfg.dropout_samples)?;
                        parallel.optimize(net, combine, opt, clip)?;
                        loss
                    }
                    _ => train_step(net, parallel, phase, data, batch, combine, opt, clip)?,
                };
                if let Some(t) = tuning.as_deref_mut() {
                    t.step();
                }
                if !loss.is_finite() {
                    return Err(diverged(
                        meta.0,
                        meta.1,
                        &format!("training loss {loss}"),
                        cfg,
                    ));
                }
                epoch_loss += loss as f64 * idx.len() as f64;
                scheduler.step();
            }
            Ok(epoch_loss)
        })
    }
}

/// Runs one stage on `net` and returns its report; the best epoch's weights are restored.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    name: &str,
    net: &mut Network,
    phase: Phase,
    data: &StageData<'_>,
    cfg: &StageConfig,
    multitask: MultiTask,
    seed: u64,
    progress: Progress<'_>,
) -> Result<StageReport> {
    fit_tuned(
        name, net, phase, data, cfg, multitask, seed, None, None, progress,
    )
}

/// [`fit`], training the backbone's top layers too when `tuning` is given (semantic stages
/// only); their best epoch's weights are restored with the heads'.
#[allow(clippy::too_many_arguments)]
pub(super) fn fit_tuned(
    name: &str,
    net: &mut Network,
    phase: Phase,
    data: &StageData<'_>,
    cfg: &StageConfig,
    multitask: MultiTask,
    seed: u64,
    mut tuning: Option<&mut Tuning<'_>>,
    mut on_epoch: Option<EpochHook<'_>>,
    progress: Progress<'_>,
) -> Result<StageReport> {
    let n = if data.objectives.is_empty() && data.pretext.is_none() {
        0
    } else {
        data.emb.nrows().max(data.feats.nrows())
    };
    if n == 0 {
        return Err(Error::invalid("no training examples"));
    }
    let watch = Watch::of(cfg, data)?;
    // The self-supervised targets weigh 1 each beside the tasks' weights.
    let mut weights: Vec<f32> = data.objectives.iter().map(Objective::task_weight).collect();
    weights.extend(
        data.pretext
            .map_or(Vec::new(), |p| vec![1.0; p.names().len()]),
    );
    let mut st = StageState::new(n, weights, cfg, multitask, seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let mut history = Vec::new();
    // Epoch, its validation loss and monitored number, seconds to it.
    let mut best = (0usize, f32::INFINITY, f32::NAN, 0.0f64);
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in 0..cfg.epochs {
        st.prepare_epoch(net, &phase, data, epoch, tuning.as_deref_mut());
        order.shuffle(&mut rng);
        let epoch_loss = st.train_epoch(
            net,
            &phase,
            data,
            &order,
            cfg,
            (name, epoch),
            tuning.as_deref_mut(),
        )?;
        let mut pretext_losses = Vec::new();
        let outs = match phase {
            Phase::Metadata => {
                let (outs, extra) = validation_outputs_metadata(net, data)?;
                pretext_losses = extra;
                outs
            }
            Phase::Semantic { .. } => {
                // Layers that trained this epoch moved the validation embeddings (and the
                // token vectors sequence heads read).
                let (moved, moved_tokens) = match tuning.as_deref().filter(|t| t.active() > 0) {
                    Some(t) if t.token_output() => {
                        let (e, k) = t.outputs_valid();
                        (Some(e), Some(k))
                    }
                    Some(t) => (Some(t.embed_valid()), None),
                    None => (None, None),
                };
                let valid_tokens = moved_tokens
                    .as_ref()
                    .or(st.tokens.as_ref().map(|t| &t.1))
                    .or(data.valid_tokens);
                validation_outputs_semantic(
                    net,
                    &data.with_tokens(data.tokens, valid_tokens),
                    st.frozen.as_ref().map(|f| &f.1),
                    moved.as_ref(),
                )
            }
        };
        let (mut valid_loss, metric, mut task_losses) =
            validation_loss(&outs, data.valid_objectives)?;
        valid_loss += pretext_losses.iter().sum::<f32>();
        task_losses.extend(pretext_losses);
        let monitored = watch.value(valid_loss, &outs, data.valid_objectives)?;
        if !valid_loss.is_finite() {
            return Err(diverged(
                name,
                epoch,
                &format!("validation loss {valid_loss}"),
                cfg,
            ));
        }
        st.scheduler.on_metric(monitored);
        let elapsed = started.elapsed().as_secs_f64();
        let mut snapshot = all_params_ref(net, &st.combine);
        if let Some(t) = tuning.as_deref() {
            snapshot.extend(t.params());
        }
        let decision = st.stopper.update(monitored, &snapshot);
        if decision == EarlyStopDecision::Improved {
            best = (epoch, valid_loss, monitored, elapsed);
        }
        let rec = EpochRecord {
            stage: name.to_string(),
            epoch,
            epochs: cfg.epochs,
            train_loss: (epoch_loss / n as f64) as f32,
            valid_loss,
            metric,
            monitored: (watch.monitor != Monitor::ValidLoss).then_some(monitored),
            task_losses,
            lr: st.scheduler.lr(),
            elapsed,
        };
        if let Some(hook) = on_epoch.as_deref_mut() {
            hook(&rec, net, tuning.as_deref().map(Tuning::top))?;
        }
        let keep_going = progress(&rec);
        history.push(rec);
        if !keep_going {
            return Err(Error::new(
                ErrorKind::Cancelled,
                "training cancelled by the progress callback",
            ));
        }
        if st.stopper.should_stop() {
            break;
        }
    }
    let mut params = all_params(net, &mut st.combine);
    if let Some(t) = tuning {
        params.extend(t.params_mut());
    }
    st.stopper.restore_best(&mut params)?;
    drop(params);
    let learned_weights = match &st.combine {
        Combine::Uncertainty(u) => Some(u.weights()),
        Combine::Fixed(_) => None,
    };
    Ok(StageReport {
        stage: name.to_string(),
        epochs_run: history.len(),
        best_epoch: best.0,
        best_valid_loss: best.1,
        monitor: watch.label,
        best_monitored: best.2,
        learned_weights,
        seconds: started.elapsed().as_secs_f64(),
        seconds_to_best: best.3,
        history,
    })
}

/// The error for a stage whose loss stopped being a number. A step's update already holds NaN
/// or infinities, so nothing after it can recover: the run stops here, and the caller's
/// earlier heads stay as they were.
fn diverged(stage: &str, epoch: usize, what: &str, cfg: &StageConfig) -> Error {
    Error::numeric(format!(
        "training diverged in {stage}, epoch {epoch}: {what} is not finite (learning rate {:e}); \
         lower the learning rate or check the inputs for NaN or infinite values",
        cfg.lr
    ))
}

/// The tasks' auxiliary heads' outputs on the validation rows, and each self-supervised
/// target's validation loss (the validation rows' features hidden in one fixed draw).
fn validation_outputs_metadata(
    net: &Network,
    data: &StageData<'_>,
) -> Result<(Vec<Array2<f32>>, Vec<f32>)> {
    let rows: Vec<usize> = (0..data.valid_feats.nrows()).collect();
    let hidden = data
        .pretext
        .map(|p| p.hide(data.valid_feats, &rows, VALID_DRAW));
    let input = hidden.as_ref().map_or(data.valid_feats, |h| h.input.view());
    let code = net
        .code(input)
        .ok_or_else(|| Error::new(ErrorKind::Internal, "no encoder"))?;
    let mut outs: Vec<Array2<f32>> = net
        .aux_heads
        .iter()
        .map(|h| h.forward_inference(code.view()))
        .collect();
    let extra = outs.split_off(data.valid_objectives.len().min(outs.len()));
    let losses = match (data.pretext, &hidden) {
        (Some(p), Some(h)) => p
            .losses(&extra, data.valid_feats, &h.masks)
            .into_iter()
            .map(|(l, _)| l)
            .collect(),
        _ => Vec::new(),
    };
    Ok((outs, losses))
}

/// The semantic heads' validation outputs: on the frozen inputs when given, else on
/// `[embedding ; code]` computed now, from `embeddings` (fine-tuned layers' output) or the
/// data's.
fn validation_outputs_semantic(
    net: &Network,
    data: &StageData<'_>,
    frozen: Option<&Array2<f32>>,
    embeddings: Option<&Array2<f32>>,
) -> Vec<Array2<f32>> {
    let pooled: CowArray<'_, f32, Ix2> = match (frozen, embeddings) {
        (Some(x), None) => x.view().into(),
        (_, Some(e)) => net.pooled_input(e.view(), data.valid_feats).into(),
        (None, None) => net.pooled_input(data.valid_emb, data.valid_feats).into(),
    };
    let input: CowArray<'_, f32, Ix2> = match data.valid_tokens.and_then(|t| net.sequence_block(t))
    {
        Some(z) => InputLayout::join(&[Some(pooled.view()), Some(z.view())]).into(),
        None => pooled,
    };
    net.heads_forward(input.view())
}

/// How a stage of `cfg` on `data` names its monitor in reports (`macro_f1 of topic (max)`);
/// an error when the monitored task does not exist or lacks the number.
pub(super) fn monitor_label(cfg: &StageConfig, data: &StageData<'_>) -> Result<String> {
    Ok(Watch::of(cfg, data)?.label)
}

/// A stage's monitor, resolved against its tasks.
struct Watch {
    monitor: Monitor,
    /// Index of the monitored task (unused for `valid_loss`).
    task: usize,
    /// For the report: `valid_loss (min)`, `macro_f1 of topic (max)`.
    label: String,
}

impl Watch {
    /// Checks that the monitored task exists and has the monitored number.
    fn of(cfg: &StageConfig, data: &StageData<'_>) -> Result<Watch> {
        let monitor = cfg.monitor;
        let direction = match monitor.direction() {
            crate::nn::Mode::Min => "min",
            crate::nn::Mode::Max => "max",
        };
        if monitor == Monitor::ValidLoss {
            return Ok(Watch {
                monitor,
                task: 0,
                label: format!("valid_loss ({direction})"),
            });
        }
        if data.objectives.is_empty() {
            return Err(Error::invalid(format!(
                "monitor = \"{}\" reads a task, but this stage trains on self-supervised \
                 targets only (metadata.stage1_targets without \"labels\"): monitor \
                 valid_loss",
                monitor.name()
            )));
        }
        let task = match &cfg.monitor_task {
            None => 0,
            Some(name) => data
                .task_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "monitor_task `{name}` is not a task here (tasks: {})",
                        data.task_names.join(", ")
                    ))
                })?,
        };
        let name = data.task_names.get(task).map_or("0", String::as_str);
        if let Some(obj) = data.objectives.get(task) {
            if !monitor.fits(obj.kind()) {
                let wanted = if monitor.fits(TaskKind::Regression) {
                    "a regression task"
                } else {
                    "a classification task"
                };
                return Err(Error::invalid(format!(
                    "monitor = \"{}\" needs {wanted}, but task `{name}` is {:?}: monitor another \
                     task (monitor_task) or another number",
                    monitor.name(),
                    obj.kind()
                )));
            }
        }
        Ok(Watch {
            monitor,
            task,
            label: format!("{} of {name} ({direction})", monitor.name()),
        })
    }

    /// This epoch's monitored number.
    fn value(
        &self,
        valid_loss: f32,
        outs: &[Array2<f32>],
        objectives: &[Objective],
    ) -> Result<f32> {
        match (self.monitor, outs.get(self.task), objectives.get(self.task)) {
            (Monitor::ValidLoss, ..) => Ok(valid_loss),
            (m, Some(out), Some(obj)) => obj.score(m, out.view()),
            _ => Err(Error::new(
                ErrorKind::Internal,
                "monitored task has no outputs",
            )),
        }
    }
}

/// The summed loss of every task's validation outputs (each task's times its fixed weight), the
/// first task's metric, and each task's own (unweighted) loss.
fn validation_loss(
    outs: &[Array2<f32>],
    objectives: &[Objective],
) -> Result<(f32, Option<f32>, Vec<f32>)> {
    let idx: Vec<usize> = (0..outs.first().map_or(0, |o| o.nrows())).collect();
    let (mut total, mut metric, mut each) = (0.0, None, Vec::with_capacity(outs.len()));
    for (out, obj) in outs.iter().zip(objectives) {
        let loss = obj.loss(out.view(), &idx)?.0;
        total += obj.task_weight() * loss;
        each.push(loss);
        metric = metric.or_else(|| Some(obj.metric(out.view())));
    }
    Ok((total, metric, each))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Targets, TaskKind};
    use crate::heads::Architecture;
    use crate::train::config::{LossConfig, TrainConfig};
    use crate::train::data_parallel::new_replica;
    use crate::train::step::semantic_step;

    /// An embedding-only network with two heads (multiclass and regression) over `d` inputs.
    fn setup(dropout: f32) -> (Network, Array2<f32>, Vec<Objective>) {
        let (n, d) = (37, 12);
        let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * d + j) as f32 * 0.37).sin());
        let classes: Vec<usize> = (0..n).map(|i| (i * 7) % 3).collect();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut cfg = TrainConfig {
            mode: crate::train::config::Mode::EmbeddingOnly,
            ..Default::default()
        };
        cfg.head.hidden = vec![16];
        cfg.head.dropout = dropout;
        let arch = Architecture::from_config(&cfg, d, 0, vec![3, 1], vec![(0.0, 1.0); 2]);
        let net = Network::new(arch, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let loss = LossConfig::default();
        let c = Targets::Class(classes);
        let v = Targets::Value(values);
        let objectives = vec![
            Objective::new(TaskKind::Multiclass, 3, &c, (0.0, 1.0), &loss).unwrap(),
            Objective::new(TaskKind::Regression, 1, &v, (0.0, 1.0), &loss).unwrap(),
        ];
        (net, x, objectives)
    }

    fn stage_data<'a>(x: &'a Array2<f32>, objectives: &'a [Objective]) -> StageData<'a> {
        StageData {
            emb: x.view(),
            feats: ArrayView2::from_shape((x.nrows(), 0), &[]).unwrap(),
            objectives,
            valid_emb: x.view(),
            valid_feats: ArrayView2::from_shape((x.nrows(), 0), &[]).unwrap(),
            valid_objectives: objectives,
            tokens: None,
            valid_tokens: None,
            hidden: None,
            task_names: Box::leak(Box::new(["c".to_string(), "v".to_string()])),
            pretext: None,
        }
    }

    #[test]
    fn the_encoder_unfreezes_one_layer_down_every_n_epochs() {
        // A two-stage network: 5 features -> encoder hidden [8, 6] -> code 4.
        let mut cfg = TrainConfig::default();
        cfg.metadata.hidden = vec![8, 6];
        cfg.metadata.code_dim = 4;
        let arch = Architecture::from_config(&cfg, 7, 5, vec![2], vec![(0.0, 1.0)]);
        let mut net = Network::new(arch, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        net.encoder.as_mut().unwrap().set_trainable("", false);
        let emb = Array2::<f32>::zeros((4, 7));
        let feats = Array2::<f32>::zeros((4, 5));
        let c = Targets::Class(vec![0, 1, 0, 1]);
        let obj = vec![
            Objective::new(TaskKind::Binary, 1, &c, (0.0, 1.0), &LossConfig::default()).unwrap(),
        ];
        let data = StageData {
            emb: emb.view(),
            feats: feats.view(),
            objectives: &obj,
            valid_emb: emb.view(),
            valid_feats: feats.view(),
            valid_objectives: &obj,
            tokens: None,
            valid_tokens: None,
            hidden: None,
            task_names: Box::leak(Box::new(["y".to_string()])),
            pretext: None,
        };
        let unfreeze = Unfreeze {
            at: 2,
            lr_scale: 0.1,
            epochs_per_layer: 3,
        };
        let phase = Phase::Semantic {
            unfreeze: Some(unfreeze),
        };
        let mut st =
            StageState::new(4, vec![1.0], &StageConfig::default(), MultiTask::Fixed, 0).unwrap();
        let trains = |net: &Network, layer: &str| {
            let e = net.encoder.as_ref().unwrap();
            let ps: Vec<bool> = e
                .params()
                .iter()
                .filter(|p| p.name.starts_with(&format!("{layer}.")))
                .map(|p| p.trainable)
                .collect();
            assert!(!ps.is_empty(), "{layer} has parameters");
            assert!(
                ps.iter().all(|&t| t == ps[0]),
                "{layer} is unfrozen as a whole"
            );
            ps[0]
        };
        let mut seen = Vec::new();
        for epoch in 0..10 {
            st.prepare_epoch(&mut net, &phase, &data, epoch, None);
            seen.push([
                trains(&net, "encoder.out"),
                trains(&net, "encoder.1"),
                trains(&net, "encoder.0"),
            ]);
        }
        let (none, top, two, all) = (
            [false; 3],
            [true, false, false],
            [true, true, false],
            [true; 3],
        );
        assert_eq!(
            seen,
            [none, none, top, top, top, two, two, two, all, all],
            "out at epoch 2, the block below at 5, the first block at 8"
        );
        assert_eq!(unfreeze.layers_at(100, 3), 3);
        let at_once = Unfreeze {
            epochs_per_layer: 0,
            ..unfreeze
        };
        assert_eq!((at_once.layers_at(1, 3), at_once.layers_at(2, 3)), (0, 3));
    }

    #[test]
    fn the_monitor_picks_the_best_epoch_in_its_direction() {
        let (net, x, objectives) = setup(0.2);
        let data = stage_data(&x, &objectives);
        for (monitor, task, label) in [
            (Monitor::MacroF1, None, "macro_f1 of c (max)"),
            (Monitor::Accuracy, Some("c"), "accuracy of c (max)"),
            (Monitor::Mae, Some("v"), "mae of v (min)"),
            (Monitor::TaskLoss, Some("v"), "task_loss of v (min)"),
        ] {
            let cfg = StageConfig {
                epochs: 6,
                batch_size: 8,
                patience: 0,
                lr: 0.02,
                monitor,
                monitor_task: task.map(String::from),
                ..Default::default()
            };
            let mut n = net.clone();
            let phase = Phase::Semantic { unfreeze: None };
            let r = fit(
                "t",
                &mut n,
                phase,
                &data,
                &cfg,
                MultiTask::Fixed,
                5,
                &mut |_| true,
            )
            .unwrap();
            assert_eq!(r.monitor, label);
            let values: Vec<f32> = r.history.iter().map(|h| h.monitored.unwrap()).collect();
            let mut best = 0;
            for (i, &v) in values.iter().enumerate() {
                if monitor
                    .direction()
                    .improves(v, Some(values[best]), cfg.min_delta)
                {
                    best = i;
                }
            }
            assert_eq!(r.best_epoch, best, "{label}: {values:?}");
            assert_eq!(r.best_monitored, values[best]);
            assert_eq!(r.best_valid_loss, r.history[best].valid_loss);
            // The restored weights are that epoch's: the monitored number comes out again.
            let outs = n.heads_forward(x.view());
            let t = usize::from(task == Some("v"));
            let again = objectives[t].score(monitor, outs[t].view()).unwrap();
            assert!(
                (again - values[best]).abs() < 1e-5,
                "{label}: {again} vs {values:?}"
            );
        }
        let bad = StageConfig {
            monitor: Monitor::Rmse,
            ..Default::default()
        };
        let mut n = net.clone();
        let phase = Phase::Semantic { unfreeze: None };
        let e = fit(
            "t",
            &mut n,
            phase,
            &data,
            &bad,
            MultiTask::Fixed,
            5,
            &mut |_| true,
        )
        .unwrap_err();
        assert!(
            e.message().contains("task `c` is Multiclass"),
            "{}",
            e.message()
        );
    }

    /// A large learning rate, so that a step taken with stale weights shows.
    fn adam() -> AdamWConfig {
        AdamWConfig {
            lr: 0.05,
            ..AdamWConfig::default()
        }
    }

    fn fixed() -> Combine {
        Combine::Fixed(FixedWeights::uniform(2))
    }

    /// The mean over `k` training passes (dropout masks drawn from `seed`, as a step draws
    /// them after a reseed) of the combined loss on the rows `idx`: the objective a
    /// multi-sample step differentiates.
    fn mean_loss(
        net: &Network,
        x: &Array2<f32>,
        objectives: &[Objective],
        idx: &[usize],
        k: usize,
        seed: u64,
    ) -> f64 {
        let mut n = net.clone();
        n.reseed_all_dropout(seed);
        let rows = crate::train::step::gather_rows(x.view(), idx);
        let none = ArrayView2::from_shape((0, 0), &[]).unwrap();
        let mut sum = 0.0f64;
        for _ in 0..k {
            let outs = n
                .forward_train(&crate::heads::TrainBatch {
                    pooled: Some(rows.view()),
                    emb: none,
                    feats: none,
                    tokens: None,
                })
                .unwrap();
            for (o, obj) in outs.iter().zip(objectives) {
                sum += obj.loss(o.view(), idx).unwrap().0 as f64;
            }
        }
        sum / k as f64
    }

    #[test]
    fn multi_sample_dropout_steps_follow_the_gradient_of_the_mean_loss_over_masks() {
        let (net, x, objectives) = setup(0.3);
        let data = stage_data(&x, &objectives);
        let idx: Vec<usize> = (0..20).collect();
        let (k, seed) = (4, 11);
        let mut stepped = net.clone();
        stepped.reseed_all_dropout(seed);
        let batch = Batch {
            idx: &idx,
            frozen: Some(&x),
            epoch: 0,
            samples: k,
        };
        let loss = semantic_step(&mut stepped, &data, batch, &mut fixed()).unwrap();
        let want = mean_loss(&net, &x, &objectives, &idx, k, seed);
        assert!((loss as f64 - want).abs() < 1e-5, "{loss} vs {want}");
        // One sample's mask alone gives another loss: the passes do differ.
        assert!((mean_loss(&net, &x, &objectives, &idx, 1, seed) - want).abs() > 1e-4);
        // Central differences of the mean loss over the same masks, on weights of every layer.
        let eps = 1e-2f32;
        let mut checked = 0;
        for (p, param) in net.params().iter().enumerate() {
            let grads = &stepped.params()[p].grad;
            for j in (0..param.value.len()).step_by(param.value.len().div_ceil(5)) {
                let shifted = |d: f32| {
                    let mut n = net.clone();
                    n.params_mut()[p].value.as_slice_mut().unwrap()[j] += d;
                    mean_loss(&n, &x, &objectives, &idx, k, seed)
                };
                let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
                let g = grads.as_slice().unwrap()[j] as f64;
                assert!(
                    (fd - g).abs() <= 2e-3 + 2e-2 * g.abs(),
                    "{} [{j}]: finite difference {fd} vs gradient {g}",
                    param.name
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked}");
        // Without dropout, K samples are one pass: the same loss and gradients.
        let (plain, _, _) = setup(0.0);
        let mut one = plain.clone();
        let mut many = plain.clone();
        let b1 = Batch {
            samples: 1,
            ..batch
        };
        let l1 = semantic_step(&mut one, &data, b1, &mut fixed()).unwrap();
        let lk = semantic_step(&mut many, &data, batch, &mut fixed()).unwrap();
        assert!((l1 - lk).abs() < 1e-6);
        for (a, b) in one.params().iter().zip(many.params()) {
            for (x, y) in a.grad.iter().zip(b.grad.iter()) {
                assert!((x - y).abs() < 1e-5 * (1.0 + x.abs()), "{}", a.name);
            }
        }
    }

    #[test]
    fn split_step_gives_the_whole_batch_loss_and_gradients() {
        // Without dropout the two halves compute exactly what one pass over the batch does, up
        // to the order of the sums over rows.
        let (net, x, objectives) = setup(0.0);
        let data = stage_data(&x, &objectives);
        let idx: Vec<usize> = (0..x.nrows()).rev().step_by(2).chain([0, 2]).collect();
        let mut whole = net.clone();
        let batch = Batch {
            idx: &idx,
            frozen: Some(&x),
            epoch: 0,
            samples: 1,
        };
        let want = semantic_step(&mut whole, &data, batch, &mut fixed()).unwrap();
        let mut split = net.clone();
        let mut rep = new_replica(&split, 0);
        let got = DataParallel::step(&mut split, &mut rep, &x, &data, batch, &mut fixed()).unwrap();
        assert!((got - want).abs() < 1e-6, "loss {got} vs {want}");
        let mut checked = 0;
        for ((a, b), r) in whole.params().iter().zip(split.params()).zip(rep.params()) {
            assert_eq!(a.name, b.name);
            let scale = a.grad.iter().fold(1e-3f32, |m, g| m.max(g.abs()));
            // The two halves' gradients add up to the whole batch's.
            for ((x, y), z) in a.grad.iter().zip(b.grad.iter()).zip(r.grad.iter()) {
                assert!(
                    (x - (y + z)).abs() <= 1e-5 * scale,
                    "{}: {x} vs {y} + {z}",
                    a.name
                );
            }
            checked += a.grad.len();
        }
        assert!(checked > 12 * 16);
    }

    #[test]
    fn split_steps_train_like_whole_batch_steps_with_a_one_row_batch_between() {
        // Without dropout, steps in halves follow the same path as whole-batch steps; a batch
        // of one row (run whole) in between must leave the replica with the updated weights.
        let (net, x, objectives) = setup(0.0);
        let data = stage_data(&x, &objectives);
        let batches: Vec<Vec<usize>> = vec![
            (0..16).collect(),
            vec![20],
            (16..36).rev().collect(),
            (5..25).collect(),
        ];
        let mut opt = AdamW::new(adam()).unwrap();
        let mut split = net.clone();
        let mut parallel = DataParallel::new(0);
        for idx in &batches {
            let batch = Batch {
                idx,
                frozen: Some(&x),
                epoch: 0,
                samples: 1,
            };
            let phase = Phase::Semantic { unfreeze: None };
            train_step(
                &mut split,
                &mut parallel,
                &phase,
                &data,
                batch,
                &mut fixed(),
                &mut opt,
                Some(1.0),
            )
            .unwrap();
        }
        let mut opt = AdamW::new(adam()).unwrap();
        let mut whole = net.clone();
        for idx in &batches {
            let batch = Batch {
                idx,
                frozen: Some(&x),
                epoch: 0,
                samples: 1,
            };
            semantic_step(&mut whole, &data, batch, &mut fixed()).unwrap();
            let mut params = whole.params_mut();
            opt.step_clipped(&mut params, Some(1.0));
        }
        for (a, b) in whole.params().iter().zip(split.params()) {
            for (x, y) in a.value.iter().zip(b.value.iter()) {
                assert!((x - y).abs() < 2e-5, "{}: {x} vs {y}", a.name);
            }
        }
        assert_ne!(whole.params()[0].value, net.params()[0].value);
    }

    #[test]
    fn fixed_task_weights_scale_the_objective_and_the_validation_loss() {
        let (net, x, objectives) = setup(0.0);
        let outs = net.heads_forward(x.view());
        let idx: Vec<usize> = (0..x.nrows()).collect();
        let each: Vec<f32> = outs
            .iter()
            .zip(&objectives)
            .map(|(o, obj)| obj.loss(o.view(), &idx).unwrap().0)
            .collect();
        let (plain, _, per_task) = validation_loss(&outs, &objectives).unwrap();
        assert!((plain - (each[0] + each[1])).abs() < 1e-5);
        assert_eq!(per_task, each);
        let weighted: Vec<Objective> = objectives
            .into_iter()
            .zip([2.0, 0.0])
            .map(|(o, w)| o.with_task_weight(w))
            .collect();
        let (total, _, per_task) = validation_loss(&outs, &weighted).unwrap();
        assert!((total - 2.0 * each[0]).abs() < 1e-5, "{total} vs {each:?}");
        assert_eq!(per_task, each, "per-task losses are unweighted");
        // The training objective combines with the same weights.
        let weights = weighted.iter().map(Objective::task_weight).collect();
        let st = StageState::new(
            x.nrows(),
            weights,
            &StageConfig::default(),
            MultiTask::Fixed,
            0,
        )
        .unwrap();
        match &st.combine {
            Combine::Fixed(f) => assert_eq!(f.weights(), [2.0, 0.0]),
            Combine::Uncertainty(_) => panic!("fixed weights expected"),
        }
    }

    #[test]
    fn replicas_drop_other_units_than_the_network() {
        let (net, x, _) = setup(0.5);
        let mut a = net.clone();
        let mut rep = new_replica(&net, 0);
        let ya = a.heads[0].forward(x.view(), true);
        let yb = rep.heads[0].forward(x.view(), true);
        assert_ne!(ya, yb);
    }

    #[test]
    fn head_training_is_the_same_on_one_thread_or_two() {
        let (net, x, objectives) = setup(0.2);
        let data = stage_data(&x, &objectives);
        let cfg = StageConfig {
            epochs: 3,
            batch_size: 8,
            patience: 0,
            ..Default::default()
        };
        let run = |threads: usize| {
            parallel::on_threads(threads, || {
                let mut n = net.clone();
                let phase = Phase::Semantic { unfreeze: None };
                fit(
                    "t",
                    &mut n,
                    phase,
                    &data,
                    &cfg,
                    MultiTask::Uncertainty,
                    5,
                    &mut |_| true,
                )
                .unwrap();
                n.params()
                    .iter()
                    .map(|p| p.value.clone())
                    .collect::<Vec<_>>()
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
        // It trained.
        let start: Vec<_> = net.params().iter().map(|p| p.value.clone()).collect();
        assert_ne!(one, start);
    }
}
