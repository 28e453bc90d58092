//! The training loop shared by every stage: seeded shuffling, mini-batches, AdamW with clipping
//! and an LR schedule, per-epoch validation, early stopping with restore-best, and a progress
//! callback that can cancel.

use std::time::Instant;

use ndarray::{concatenate, s, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::config::{MultiTask, Schedule, StageConfig};
use super::objective::Objective;
use crate::backbone::TokenSeqs;
use crate::error::{Error, ErrorKind, Result};
use crate::heads::Network;
use crate::nn::early_stop::{EarlyStopDecision, EarlyStopping, EarlyStoppingConfig};
use crate::nn::metric::Mode as MetricMode;
use crate::nn::multitask::{FixedWeights, UncertaintyWeights};
use crate::nn::optim::{AdamW, AdamWConfig, Twin};
use crate::nn::parallel;
use crate::nn::schedule::{LrScheduler, Schedule as NnSchedule};
use crate::nn::{Layer, Param};

/// One epoch of one stage, as reported to progress callbacks and stored in the bundle.
#[derive(Debug, Clone, Serialize)]
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
    /// Epoch (0-based) with the best validation loss; its weights are the ones kept.
    pub best_epoch: usize,
    /// That validation loss.
    pub best_valid_loss: f32,
    /// Wall time of the stage in seconds.
    pub seconds: f64,
    /// Wall time from the stage's start to the end of its best epoch.
    pub seconds_to_best: f64,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
}

/// Progress callback: gets each epoch's record; returning `false` cancels training.
pub type Progress<'a> = &'a mut dyn FnMut(&EpochRecord) -> bool;

/// What the heads of a stage see.
pub enum Phase {
    /// Encoder + auxiliary heads on normalized features.
    Metadata,
    /// Semantic heads on [embedding ; code] (or the embedding alone); the encoder is trained
    /// too when it is trainable (joint mode, or after unfreezing).
    Semantic {
        /// Epoch at which a frozen encoder becomes trainable, and its LR multiplier.
        unfreeze: Option<(usize, f32)>,
    },
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
}

/// Texts per sequence-encoder pass when validating or predicting: bounds the f32 copy of the
/// tokens (256 texts of 256 tokens x 384 floats = 100 MB at most).
pub const SEQUENCE_CHUNK: usize = 256;

/// The sequence encoder's output for every text of `tokens`, in chunks (inference mode).
pub fn sequence_features(net: &Network, tokens: &TokenSeqs) -> Option<Array2<f32>> {
    let seq = net.sequence.as_ref()?;
    let mut out = Array2::<f32>::zeros((tokens.len(), seq.out_dim()));
    let all: Vec<usize> = (0..tokens.len()).collect();
    for (c, idx) in all.chunks(SEQUENCE_CHUNK).enumerate() {
        let b = tokens.gather(idx);
        let z = seq.forward_inference(b.tokens.view(), &b.offsets);
        out.slice_mut(s![c * SEQUENCE_CHUNK..c * SEQUENCE_CHUNK + idx.len(), ..])
            .assign(&z);
    }
    Some(out)
}

enum Combine {
    Fixed(FixedWeights),
    Uncertainty(UncertaintyWeights),
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
    let n = data
        .objectives
        .first()
        .map_or(0, |_| data.emb.nrows().max(data.feats.nrows()));
    if n == 0 {
        return Err(Error::invalid("no training examples"));
    }
    let n_tasks = data.objectives.len();
    let task_names: Vec<String> = (0..n_tasks).map(|t| t.to_string()).collect();
    let names: Vec<&str> = task_names.iter().map(String::as_str).collect();
    let mut combine = match multitask {
        MultiTask::Fixed => Combine::Fixed(FixedWeights::uniform(n_tasks)),
        MultiTask::Uncertainty => {
            Combine::Uncertainty(UncertaintyWeights::new("uncertainty", &names, 0.0)?)
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let schedule = match cfg.schedule {
        Schedule::Constant => NnSchedule::Constant,
        Schedule::Cosine => NnSchedule::CosineWithWarmup {
            warmup_steps: (total_steps as f32 * cfg.warmup_fraction) as usize,
            total_steps,
            min_lr_ratio: 0.05,
        },
        Schedule::Plateau => NnSchedule::ReduceOnPlateau {
            factor: 0.5,
            patience: 2,
            min_lr: cfg.lr * 1e-3,
            threshold: 1e-4,
            mode: MetricMode::Min,
        },
    };
    let mut scheduler = LrScheduler::new(schedule, cfg.lr)?;
    let mut opt = AdamW::new(AdamWConfig {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..AdamWConfig::default()
    })?;
    let mut stopper = EarlyStopping::new(EarlyStoppingConfig {
        patience: if cfg.patience == 0 {
            usize::MAX
        } else {
            cfg.patience
        },
        min_delta: cfg.min_delta,
        mode: MetricMode::Min,
        restore_best: true,
    })?;
    // A frozen encoder's code never changes: compute it once for all rows.
    let mut frozen_inputs: Option<(Array2<f32>, Array2<f32>)> = None;
    let started = Instant::now();
    let mut history = Vec::new();
    let mut best = (0usize, f32::INFINITY, 0.0f64);
    let mut order: Vec<usize> = (0..n).collect();
    // The second half of each head-only mini-batch runs on this copy of the network (see
    // `split_head_step`); made on first use, its weights follow the network's after every step.
    let mut replica: Option<Network> = None;
    for epoch in 0..cfg.epochs {
        if let Phase::Semantic {
            unfreeze: Some((at, scale)),
        } = phase
        {
            if epoch == at {
                if let Some(e) = net.encoder.as_mut() {
                    e.set_trainable("", true);
                    opt.set_lr_multiplier("encoder", scale);
                }
                frozen_inputs = None;
                // Steps no longer split (the inputs are not frozen): the replica is done.
                replica = None;
            }
        }
        let encoder_trains = net
            .encoder
            .as_ref()
            .is_some_and(|e| e.has_trainable_params());
        if matches!(phase, Phase::Semantic { .. }) && !encoder_trains && frozen_inputs.is_none() {
            let code_t = net.code(data.feats);
            let code_v = net.code(data.valid_feats);
            // Row-major, so that each mini-batch gathers whole contiguous rows.
            let row_major = |a: Array2<f32>| a.as_standard_layout().into_owned();
            frozen_inputs = Some((
                row_major(net.head_input(data.emb, code_t.as_ref())),
                row_major(net.head_input(data.valid_emb, code_v.as_ref())),
            ));
        }
        order.shuffle(&mut rng);
        let frozen = frozen_inputs.as_ref().map(|f| &f.0);
        let clip = (cfg.clip_norm > 0.0).then_some(cfg.clip_norm);
        // The steps run on a thread of rayon's pool (the progress callback below stays on the
        // caller's): the layers and the optimizer split their work with rayon, and a split made
        // from outside the pool hands the whole job over and sleeps until it is done, two
        // futex wake-ups a split (measured: a third of a 1-thread head-training run).
        let epoch_loss = parallel::on_pool(|| -> Result<f64> {
            let mut epoch_loss = 0.0f64;
            for idx in order.chunks(cfg.batch_size) {
                opt.set_lr(scheduler.lr());
                let batch = Batch { idx, frozen };
                let losses = train_step(
                    net,
                    &mut replica,
                    &phase,
                    data,
                    batch,
                    &mut combine,
                    &mut opt,
                    clip,
                    seed,
                )?;
                if !losses.is_finite() {
                    return Err(diverged(
                        name,
                        epoch,
                        &format!("training loss {losses}"),
                        cfg,
                    ));
                }
                epoch_loss += losses as f64 * idx.len() as f64;
                scheduler.step();
            }
            Ok(epoch_loss)
        })?;
        let (valid_loss, metric) = match phase {
            Phase::Metadata => validation_loss_metadata(net, data)?,
            Phase::Semantic { .. } => {
                validation_loss_semantic(net, data, frozen_inputs.as_ref().map(|f| &f.1))?
            }
        };
        if !valid_loss.is_finite() {
            return Err(diverged(
                name,
                epoch,
                &format!("validation loss {valid_loss}"),
                cfg,
            ));
        }
        scheduler.on_metric(valid_loss);
        let elapsed = started.elapsed().as_secs_f64();
        let decision = {
            let params = all_params_ref(net, &combine);
            stopper.update(valid_loss, &params)
        };
        if decision == EarlyStopDecision::Improved {
            best = (epoch, valid_loss, elapsed);
        }
        let rec = EpochRecord {
            stage: name.to_string(),
            epoch,
            epochs: cfg.epochs,
            train_loss: (epoch_loss / n as f64) as f32,
            valid_loss,
            metric,
            lr: scheduler.lr(),
            elapsed,
        };
        let keep_going = progress(&rec);
        history.push(rec);
        if !keep_going {
            return Err(Error::new(
                ErrorKind::Cancelled,
                "training cancelled by the progress callback",
            ));
        }
        if stopper.should_stop() {
            break;
        }
    }
    let mut params = all_params(net, &mut combine);
    stopper.restore_best(&mut params)?;
    Ok(StageReport {
        stage: name.to_string(),
        epochs_run: history.len(),
        best_epoch: best.0,
        best_valid_loss: best.1,
        seconds: started.elapsed().as_secs_f64(),
        seconds_to_best: best.2,
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

/// The rows `idx` of `src`, as a standard-layout array. ndarray's `select` stacks one row view
/// at a time and writes them strided; copying whole row slices is ~10x faster and this runs on
/// every mini-batch.
fn gather_rows(src: ArrayView2<'_, f32>, idx: &[usize]) -> Array2<f32> {
    let cols = src.ncols();
    let mut data = Vec::with_capacity(idx.len() * cols);
    for &i in idx {
        let row = src.row(i);
        match row.as_slice() {
            Some(r) => data.extend_from_slice(r),
            None => data.extend(row.iter().copied()),
        }
    }
    Array2::from_shape_vec((idx.len(), cols), data).expect("rows x cols elements")
}

fn all_params<'a>(net: &'a mut Network, combine: &'a mut Combine) -> Vec<&'a mut Param> {
    let mut p = net.params_mut();
    if let Combine::Uncertainty(u) = combine {
        p.extend(u.params_mut());
    }
    p
}

fn all_params_ref<'a>(net: &'a Network, combine: &'a Combine) -> Vec<&'a Param> {
    let mut p = net.params();
    if let Combine::Uncertainty(u) = combine {
        p.extend(u.params());
    }
    p
}

/// Combines task losses; returns the total and each task's gradient scale.
fn combine_losses(combine: &mut Combine, losses: &[f32]) -> Result<(f32, Vec<f32>)> {
    let c = match combine {
        Combine::Fixed(f) => f.combine(losses)?,
        Combine::Uncertainty(u) => u.combine(losses)?,
    };
    Ok((c.total, c.scales))
}

/// Each task's loss and gradient on its head's outputs, combined into one objective: the
/// total, each task's gradient scale, and the unscaled gradients.
fn task_losses(
    outs: &[Array2<f32>],
    objectives: &[Objective],
    idx: &[usize],
    combine: &mut Combine,
) -> Result<(f32, Vec<f32>, Vec<Array2<f32>>)> {
    let mut losses = Vec::with_capacity(outs.len());
    let mut grads = Vec::with_capacity(outs.len());
    for (o, obj) in outs.iter().zip(objectives) {
        let (l, g) = obj.loss(o.view(), idx)?;
        losses.push(l);
        grads.push(g);
    }
    let (total, scales) = combine_losses(combine, &losses)?;
    Ok((total, scales, grads))
}

fn metadata_step(
    net: &mut Network,
    data: &StageData<'_>,
    idx: &[usize],
    combine: &mut Combine,
) -> Result<f32> {
    let x = gather_rows(data.feats, idx);
    let enc = net
        .encoder
        .as_mut()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "no encoder"))?;
    let code = enc.forward(x.view(), true);
    let mut outs = Vec::with_capacity(net.aux_heads.len());
    for h in net.aux_heads.iter_mut() {
        outs.push(h.forward(code.view(), true));
    }
    let (total, scales, grads) = task_losses(&outs, data.objectives, idx, combine)?;
    let mut g_code = Array2::<f32>::zeros(code.raw_dim());
    for ((h, g), s) in net.aux_heads.iter_mut().zip(grads).zip(scales) {
        g_code += &h.backward((g * s).view());
    }
    net.encoder
        .as_mut()
        .expect("checked")
        .backward_params_only(g_code.view());
    Ok(total)
}

fn semantic_step(
    net: &mut Network,
    data: &StageData<'_>,
    idx: &[usize],
    frozen: Option<&Array2<f32>>,
    combine: &mut Combine,
) -> Result<f32> {
    let emb_dim = data.emb.ncols();
    let (input, encoder_trains) = match frozen {
        Some(all) => (gather_rows(all.view(), idx), false),
        None => {
            let emb = gather_rows(data.emb, idx);
            match net.encoder.as_mut() {
                Some(enc) if net.arch.code_dim > 0 && net.arch.emb_dim > 0 => {
                    let code = enc.forward(gather_rows(data.feats, idx).view(), true);
                    (
                        concatenate(Axis(1), &[emb.view(), code.view()]).expect("rows"),
                        true,
                    )
                }
                _ => (emb, false),
            }
        }
    };
    let pooled_width = input.ncols();
    let sequence_trains = net.sequence.is_some();
    let input = match (net.sequence.as_mut(), data.tokens) {
        (Some(seq), Some(tokens)) => {
            let b = tokens.gather(idx);
            let z = seq.forward(b.tokens.view(), &b.offsets, true);
            concatenate(Axis(1), &[input.view(), z.view()]).expect("rows")
        }
        (Some(_), None) => {
            return Err(Error::new(
                ErrorKind::Internal,
                "sequence heads without token vectors",
            ))
        }
        _ => input,
    };
    let mut outs = Vec::with_capacity(net.heads.len());
    for h in net.heads.iter_mut() {
        outs.push(h.forward(input.view(), true));
    }
    let (total, scales, grads) = task_losses(&outs, data.objectives, idx, combine)?;
    if encoder_trains || sequence_trains {
        let mut g_in = Array2::<f32>::zeros(input.raw_dim());
        for ((h, g), s) in net.heads.iter_mut().zip(grads).zip(scales) {
            g_in += &h.backward((g * s).view());
        }
        if let Some(seq) = net.sequence.as_mut() {
            seq.backward_params_only(g_in.slice(s![.., pooled_width..]));
        }
        if encoder_trains {
            let g_code = g_in.slice(s![.., emb_dim..pooled_width]).to_owned();
            net.encoder
                .as_mut()
                .expect("checked")
                .backward_params_only(g_code.view());
        }
    } else {
        for ((h, g), s) in net.heads.iter_mut().zip(grads).zip(scales) {
            h.backward_params_only((g * s).view());
        }
    }
    Ok(total)
}

/// One mini-batch: its rows, and the stage's precomputed head inputs when the encoder is frozen.
#[derive(Clone, Copy)]
struct Batch<'a> {
    idx: &'a [usize],
    frozen: Option<&'a Array2<f32>>,
}

/// One optimisation step on `batch`: forward, losses, backward, then AdamW (clipped, gradients
/// zeroed). Head-only batches of two rows or more run in two halves on `net` and `replica`
/// (made on first use); the replica gets the updated weights after every step, split or not.
/// Returns the combined loss.
#[allow(clippy::too_many_arguments)]
fn train_step(
    net: &mut Network,
    replica: &mut Option<Network>,
    phase: &Phase,
    data: &StageData<'_>,
    batch: Batch<'_>,
    combine: &mut Combine,
    opt: &mut AdamW,
    clip: Option<f32>,
    seed: u64,
) -> Result<f32> {
    let Batch { idx, frozen } = batch;
    let split = match frozen {
        Some(all) if net.sequence.is_none() && idx.len() >= 2 => Some(all),
        _ => None,
    };
    let loss = match (phase, split) {
        (Phase::Metadata, _) => metadata_step(net, data, idx, combine)?,
        (Phase::Semantic { .. }, Some(all)) => {
            let rep = replica.get_or_insert_with(|| new_replica(net, seed));
            split_head_step(net, rep, all.view(), data, idx, combine)?
        }
        (Phase::Semantic { .. }, None) => semantic_step(net, data, idx, frozen, combine)?,
    };
    match replica.as_mut() {
        Some(rep) => step_with_twin(net, rep, combine, opt, clip)?,
        None => {
            // Clip, update and zero the gradients in one fused pass.
            opt.step_clipped(&mut all_params(net, combine), clip);
        }
    }
    Ok(loss)
}

/// The optimizer step with the replica as the network's twin: AdamW adds the replica's
/// gradients in (a split step left some; after a whole-batch step they are zero), clips,
/// updates, and hands the replica the new weights, in two fused passes.
fn step_with_twin(
    net: &mut Network,
    rep: &mut Network,
    combine: &mut Combine,
    opt: &mut AdamW,
    clip: Option<f32>,
) -> Result<()> {
    let mut params = all_params(net, combine);
    // A twin for each of the network's trainable parameters (the replica's own flags may lag
    // behind an unfreezing).
    let mut twins: Vec<Option<Twin<'_>>> = rep
        .params_mut()
        .into_iter()
        .zip(params.iter())
        .map(|(r, p)| {
            let Param { value, grad, .. } = r;
            match (p.trainable, value.as_slice_mut(), grad.as_slice_mut()) {
                (true, Some(value), Some(grad)) => Some(Twin { grad, value }),
                _ => None,
            }
        })
        .collect();
    let mirrored = twins.len();
    // The combiner's own parameters (uncertainty weights) come last and have no twin.
    twins.resize_with(params.len(), || None);
    if twins[..mirrored]
        .iter()
        .zip(&params)
        .any(|(t, p)| p.trainable && t.is_none())
    {
        // Replicas are standard-layout clones, so this is not expected.
        return Err(Error::new(
            ErrorKind::Internal,
            "replica parameters are not contiguous",
        ));
    }
    opt.step_clipped_twins(&mut params, &mut twins, clip);
    Ok(())
}

/// A copy of `net` for the second half of head-only mini-batches, with dropout streams of its
/// own (a clone would drop the same units in both halves).
fn new_replica(net: &Network, seed: u64) -> Network {
    let mut r = net.clone();
    for (t, h) in r.heads.iter_mut().enumerate() {
        h.reseed_dropout(
            seed ^ 0x5eed_0f5e_c00d_4a1f ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
    }
    r
}

/// One head-only mini-batch (frozen inputs, pooled heads), data-parallel in two halves: the
/// first half of `idx` runs forward and backward through `net`, the second through `rep`, one
/// `rayon::join` for each pass; the losses and their gradients are computed on the whole batch
/// in between, exactly as [`semantic_step`] does. Each network accumulates its half's parameter
/// gradients (the optimizer adds them up: [`step_with_twin`]). The halves depend only on the
/// batch, never on the number of threads, so results are bit-identical with one thread or many.
/// Two large passes a step keep both cores busy where splitting every product and update
/// separately cost more in thread wake-ups than it saved (measured: 2 threads slower than 1).
fn split_head_step(
    net: &mut Network,
    rep: &mut Network,
    all: ArrayView2<'_, f32>,
    data: &StageData<'_>,
    idx: &[usize],
    combine: &mut Combine,
) -> Result<f32> {
    let half = idx.len().div_ceil(2);
    let (i0, i1) = idx.split_at(half);
    let forward = |heads: &mut Vec<crate::nn::Mlp>, rows: &[usize]| -> Vec<Array2<f32>> {
        let x = gather_rows(all, rows);
        heads
            .iter_mut()
            .map(|h| h.forward(x.view(), true))
            .collect()
    };
    let (o0, o1) = rayon::join(
        || forward(&mut net.heads, i0),
        || forward(&mut rep.heads, i1),
    );
    let outs: Vec<Array2<f32>> = o0
        .iter()
        .zip(&o1)
        .map(|(a, b)| concatenate(Axis(0), &[a.view(), b.view()]).expect("same widths"))
        .collect();
    let (total, scales, grads) = task_losses(&outs, data.objectives, idx, combine)?;
    let backward = |heads: &mut Vec<crate::nn::Mlp>, rows: std::ops::Range<usize>| {
        for ((h, g), &sc) in heads.iter_mut().zip(&grads).zip(&scales) {
            h.backward_params_only((&g.slice(s![rows.clone(), ..]) * sc).view());
        }
    };
    rayon::join(
        || backward(&mut net.heads, 0..half),
        || backward(&mut rep.heads, half..idx.len()),
    );
    Ok(total)
}

/// Validation loss summed over tasks, and the first task's metric.
fn validation_loss_metadata(net: &Network, data: &StageData<'_>) -> Result<(f32, Option<f32>)> {
    let code = net
        .code(data.valid_feats)
        .ok_or_else(|| Error::new(ErrorKind::Internal, "no encoder"))?;
    let idx: Vec<usize> = (0..code.nrows()).collect();
    let (mut total, mut metric) = (0.0, None);
    for (h, obj) in net.aux_heads.iter().zip(data.valid_objectives) {
        let out = h.forward_inference(code.view());
        total += obj.loss(out.view(), &idx)?.0;
        metric = metric.or_else(|| Some(obj.metric(out.view())));
    }
    Ok((total, metric))
}

fn validation_loss_semantic(
    net: &Network,
    data: &StageData<'_>,
    frozen: Option<&Array2<f32>>,
) -> Result<(f32, Option<f32>)> {
    let input = match frozen {
        Some(x) => x.clone(),
        None => {
            let code = if net.arch.code_dim > 0 {
                net.code(data.valid_feats)
            } else {
                None
            };
            net.head_input(data.valid_emb, code.as_ref())
        }
    };
    let input = match data.valid_tokens.and_then(|t| sequence_features(net, t)) {
        Some(z) => concatenate(Axis(1), &[input.view(), z.view()]).expect("rows"),
        None => input,
    };
    let idx: Vec<usize> = (0..input.nrows()).collect();
    let (mut total, mut metric) = (0.0, None);
    for (h, obj) in net.heads.iter().zip(data.valid_objectives) {
        let out = h.forward_inference(input.view());
        total += obj.loss(out.view(), &idx)?.0;
        metric = metric.or_else(|| Some(obj.metric(out.view())));
    }
    Ok((total, metric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Targets, TaskKind};
    use crate::heads::Architecture;
    use crate::train::config::{LossConfig, TrainConfig};

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
        }
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

    #[test]
    fn split_step_gives_the_whole_batch_loss_and_gradients() {
        // Without dropout the two halves compute exactly what one pass over the batch does, up
        // to the order of the sums over rows.
        let (net, x, objectives) = setup(0.0);
        let data = stage_data(&x, &objectives);
        let idx: Vec<usize> = (0..x.nrows()).rev().step_by(2).chain([0, 2]).collect();
        let mut whole = net.clone();
        let want = semantic_step(&mut whole, &data, &idx, Some(&x), &mut fixed()).unwrap();
        let mut split = net.clone();
        let mut rep = new_replica(&split, 0);
        let got =
            split_head_step(&mut split, &mut rep, x.view(), &data, &idx, &mut fixed()).unwrap();
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
        let mut replica = None;
        for idx in &batches {
            let batch = Batch {
                idx,
                frozen: Some(&x),
            };
            let phase = Phase::Semantic { unfreeze: None };
            train_step(
                &mut split,
                &mut replica,
                &phase,
                &data,
                batch,
                &mut fixed(),
                &mut opt,
                Some(1.0),
                0,
            )
            .unwrap();
        }
        let mut opt = AdamW::new(adam()).unwrap();
        let mut whole = net.clone();
        for idx in &batches {
            semantic_step(&mut whole, &data, idx, Some(&x), &mut fixed()).unwrap();
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
