//! One optimisation step of a stage: gather a mini-batch, run the network's training pass,
//! combine the tasks' losses, backward, and let AdamW update (through the data-parallel split
//! where it applies).

use ndarray::{Array2, ArrayView2};

use super::data_parallel::DataParallel;
use super::objective::Objective;
use super::stage::{Phase, StageData};
use super::tune::Tuning;
use crate::error::Result;
use crate::heads::{Network, TrainBatch};
use crate::nn::multitask::{FixedWeights, UncertaintyWeights};
use crate::nn::optim::AdamW;
use crate::nn::{Layer, Param};

/// How the tasks' losses combine into one objective.
pub(super) enum Combine {
    /// Fixed weights.
    Fixed(FixedWeights),
    /// Learned uncertainty weights (their parameters train with the network's).
    Uncertainty(UncertaintyWeights),
}

impl Combine {
    /// The combined loss and each task's gradient scale.
    fn combine(&mut self, losses: &[f32]) -> Result<(f32, Vec<f32>)> {
        let c = match self {
            Combine::Fixed(f) => f.combine(losses)?,
            Combine::Uncertainty(u) => u.combine(losses)?,
        };
        Ok((c.total, c.scales))
    }

    /// Each task's gradient scale as [`Combine::combine`] returns it (it depends on the
    /// weights only, not on the losses): multi-sample steps need it before their last pass.
    fn scales(&self) -> Vec<f32> {
        match self {
            Combine::Fixed(f) => f.weights().to_vec(),
            Combine::Uncertainty(u) => u.scales(),
        }
    }

    /// The combiner's own parameters (none for fixed weights).
    fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Combine::Fixed(_) => Vec::new(),
            Combine::Uncertainty(u) => u.params_mut(),
        }
    }

    fn params(&self) -> Vec<&Param> {
        match self {
            Combine::Fixed(_) => Vec::new(),
            Combine::Uncertainty(u) => u.params(),
        }
    }
}

/// Every parameter an optimizer step updates: the network's, then the combiner's.
pub(super) fn all_params<'a>(net: &'a mut Network, combine: &'a mut Combine) -> Vec<&'a mut Param> {
    let mut p = net.params_mut();
    p.extend(combine.params_mut());
    p
}

/// [`all_params`], shared.
pub(super) fn all_params_ref<'a>(net: &'a Network, combine: &'a Combine) -> Vec<&'a Param> {
    let mut p = net.params();
    p.extend(combine.params());
    p
}

/// The rows `idx` of `src`, as a standard-layout array. ndarray's `select` stacks one row view
/// at a time and writes them strided; copying whole row slices is ~10x faster and this runs on
/// every mini-batch.
pub(super) fn gather_rows(src: ArrayView2<'_, f32>, idx: &[usize]) -> Array2<f32> {
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

/// Multi-sample dropout: `samples` training passes of one batch, each drawing every dropout
/// mask afresh, whose losses are averaged. `pass` runs one forward, takes each task's loss,
/// and runs the backward of its output gradients times the given scales (each task's
/// combination scale over `samples`); it returns the tasks' losses. Parameter gradients
/// accumulate over the passes, so they are those of the mean loss, which is then combined
/// once (the combiner's own gradients too). One sample is an ordinary step, bit for bit.
pub(super) fn sampled(
    combine: &mut Combine,
    samples: usize,
    mut pass: impl FnMut(&[f32]) -> Result<Vec<f32>>,
) -> Result<f32> {
    let k = samples.max(1);
    let scales: Vec<f32> = combine.scales().iter().map(|s| s / k as f32).collect();
    let mut mean = vec![0.0f32; scales.len()];
    for _ in 0..k {
        let losses = pass(&scales)?;
        for (m, l) in mean.iter_mut().zip(losses) {
            *m += l / k as f32;
        }
    }
    Ok(combine.combine(&mean)?.0)
}

/// Each task's loss on `outs` for the rows `idx`, and its output gradient times the task's
/// scale in `scales`.
pub(super) fn scaled_losses(
    outs: &[Array2<f32>],
    objectives: &[Objective],
    idx: &[usize],
    scales: &[f32],
) -> Result<(Vec<f32>, Vec<Array2<f32>>)> {
    let mut losses = Vec::with_capacity(outs.len());
    let mut grads = Vec::with_capacity(outs.len());
    for ((o, obj), s) in outs.iter().zip(objectives).zip(scales) {
        let (l, g) = obj.loss(o.view(), idx)?;
        losses.push(l);
        grads.push(g * *s);
    }
    Ok((losses, grads))
}

/// One mini-batch: its rows, and the stage's precomputed pooled inputs when the encoder is
/// frozen.
#[derive(Clone, Copy)]
pub(super) struct Batch<'a> {
    /// Row indices into the stage's training data.
    pub idx: &'a [usize],
    /// `[embedding ; code]` of every training row, when the encoder is frozen.
    pub frozen: Option<&'a Array2<f32>>,
    /// The epoch (what self-supervised targets hide depends on it).
    pub epoch: usize,
    /// Dropout samples per step (multi-sample dropout; 1: an ordinary step).
    pub samples: usize,
}

/// The training pass of the semantic heads on `batch`, whole (`batch.samples` dropout
/// samples); returns the combined loss.
pub(super) fn semantic_step(
    net: &mut Network,
    data: &StageData<'_>,
    batch: Batch<'_>,
    combine: &mut Combine,
) -> Result<f32> {
    let idx = batch.idx;
    let pooled = batch.frozen.map(|all| gather_rows(all.view(), idx));
    let (emb, feats) = match pooled {
        Some(_) => (Array2::zeros((0, 0)), Array2::zeros((0, 0))),
        None => (gather_rows(data.emb, idx), gather_rows(data.feats, idx)),
    };
    let tokens = data.tokens.map(|t| t.gather(idx));
    sampled(combine, batch.samples, |scales| {
        let outs = net.forward_train(&TrainBatch {
            pooled: pooled.as_ref().map(|p| p.view()),
            emb: emb.view(),
            feats: feats.view(),
            tokens: tokens.as_ref(),
        })?;
        let (losses, grads) = scaled_losses(&outs, data.objectives, idx, scales)?;
        net.backward_train(&grads);
        Ok(losses)
    })
}

/// The training pass of the semantic heads on the rows `idx` with the backbone's top layers
/// training under them: the layers compute the embeddings, the heads run on them (and the
/// code, computed in inference mode while the encoder is frozen; sequence heads on the top
/// layer's token vectors), and the gradient on the embeddings (and tokens) flows back into
/// the layers. With several dropout `samples`, the layers run once and the heads `samples`
/// times, their input gradients summed. Returns the combined loss.
pub(super) fn tuned_step(
    net: &mut Network,
    tuning: &mut Tuning<'_>,
    data: &StageData<'_>,
    idx: &[usize],
    combine: &mut Combine,
    samples: usize,
) -> Result<f32> {
    let out = tuning.forward_output(idx);
    let emb = out.emb;
    let feats = gather_rows(data.feats, idx);
    let encoder_trains = net
        .encoder
        .as_ref()
        .is_some_and(|e| e.has_trainable_params());
    let pooled = (!encoder_trains).then(|| net.pooled_input(emb.view(), feats.view()));
    let mut g_in: Option<(Array2<f32>, Option<Array2<f32>>)> = None;
    let total = sampled(combine, samples, |scales| {
        let outs = net.forward_train(&TrainBatch {
            pooled: pooled.as_ref().map(|p| p.view()),
            emb: emb.view(),
            feats: feats.view(),
            tokens: out.tokens.as_ref(),
        })?;
        let (losses, grads) = scaled_losses(&outs, data.objectives, idx, scales)?;
        let (g_emb, g_tokens) = net.backward_train_inputs(&grads);
        g_in = Some(match g_in.take() {
            None => (g_emb, g_tokens),
            Some((e, t)) => (
                e + &g_emb,
                match (t, g_tokens) {
                    (Some(a), Some(b)) => Some(a + &b),
                    (a, b) => a.or(b),
                },
            ),
        });
        Ok(losses)
    })?;
    if let Some((g_emb, g_tokens)) = g_in {
        tuning.backward_output(g_emb.view(), g_tokens.as_ref().map(|g| g.view()));
    }
    Ok(total)
}

/// The training pass of the metadata stage (encoder and auxiliary heads) on `batch`: the
/// tasks' auxiliary heads come first, then the self-supervised targets' heads, which read the
/// code of the features with some hidden (see [`super::pretext`]).
fn metadata_step(
    net: &mut Network,
    data: &StageData<'_>,
    batch: Batch<'_>,
    combine: &mut Combine,
) -> Result<f32> {
    let idx = batch.idx;
    let x = gather_rows(data.feats, idx);
    let hidden = data
        .pretext
        .map(|p| p.hide(x.view(), idx, batch.epoch as u64));
    let input = hidden.as_ref().map_or(x.view(), |h| h.input.view());
    let n_tasks = data.objectives.len();
    sampled(combine, batch.samples, |scales| {
        let outs = net.forward_metadata_train(input)?;
        let (mut losses, mut grads) =
            scaled_losses(&outs[..n_tasks], data.objectives, idx, &scales[..n_tasks])?;
        if let (Some(p), Some(h)) = (data.pretext, &hidden) {
            let extra = p.losses(&outs[n_tasks..], x.view(), &h.masks);
            for ((l, g), s) in extra.into_iter().zip(&scales[n_tasks..]) {
                losses.push(l);
                grads.push(g * *s);
            }
        }
        net.backward_metadata_train(&grads)?;
        Ok(losses)
    })
}

/// One optimisation step on `batch`: forward, losses, backward, then AdamW (clipped,
/// gradients zeroed). Head-only batches go through `parallel`'s split. Returns the combined
/// loss.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_step(
    net: &mut Network,
    parallel: &mut DataParallel,
    phase: &Phase,
    data: &StageData<'_>,
    batch: Batch<'_>,
    combine: &mut Combine,
    opt: &mut AdamW,
    clip: Option<f32>,
) -> Result<f32> {
    let loss = match phase {
        Phase::Metadata => metadata_step(net, data, batch, combine)?,
        Phase::Semantic { .. } => match parallel.split(net, batch) {
            Some((all, rep)) => DataParallel::step(net, rep, all, data, batch, combine)?,
            None => semantic_step(net, data, batch, combine)?,
        },
    };
    parallel.optimize(net, combine, opt, clip)?;
    Ok(loss)
}
