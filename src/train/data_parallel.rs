//! Data-parallel head steps: each head-only mini-batch (frozen inputs, pooled heads) runs in
//! two fixed halves, one through the network and one through a replica with dropout streams of
//! its own; the losses are taken on the whole batch in between. The replica's gradients are
//! merged into the network's, and the updated weights mirrored back, inside the optimizer's
//! own passes ([`AdamW::step_clipped_mirrored`]).
//!
//! The halves depend only on the batch, never on the number of threads, so results are
//! bit-identical on one thread or many. Two large passes a step keep both cores busy where
//! splitting every product and update separately cost more in thread wake-ups than it saved
//! (measured: 2 threads slower than 1).

use ndarray::{s, Array2, ArrayView2, Axis};

use super::objective::Objective;
use super::stage::StageData;
use super::step::{all_params, gather_rows, sampled, scaled_losses, Batch, Combine};
use crate::error::{Error, ErrorKind, Result};
use crate::heads::{Network, TrainBatch};
use crate::nn::optim::{AdamW, Mirror};
use crate::nn::Param;

/// A stage's data-parallel state: the replica, made on the first split step, whose weights
/// follow the network's after every step (split or not).
pub(super) struct DataParallel {
    replica: Option<Network>,
    seed: u64,
}

impl DataParallel {
    /// No replica yet; `seed` gives its dropout streams.
    pub(super) fn new(seed: u64) -> Self {
        DataParallel {
            replica: None,
            seed,
        }
    }

    /// Drops the replica: steps stop splitting (an unfrozen encoder makes the inputs change).
    pub(super) fn stop(&mut self) {
        self.replica = None;
    }

    /// Whether `batch` runs split: its frozen inputs and the replica (made on first use), or
    /// `None` to run it whole (a sequence encoder, a trainable encoder, or a single row).
    pub(super) fn split<'a>(
        &'a mut self,
        net: &Network,
        batch: Batch<'a>,
    ) -> Option<(&'a Array2<f32>, &'a mut Network)> {
        let all = batch
            .frozen
            .filter(|_| net.sequence.is_none() && batch.idx.len() >= 2)?;
        let seed = self.seed;
        let rep = self.replica.get_or_insert_with(|| new_replica(net, seed));
        Some((all, rep))
    }

    /// One split step on the rows `batch.idx` of the frozen inputs `all`: the first half
    /// forward and backward through `net`, the second through `rep`, one `rayon::join` for each
    /// pass, with the losses and their gradients taken on the whole batch in between (as a
    /// whole step takes them); `batch.samples` times with multi-sample dropout. Each network
    /// accumulates its half's parameter gradients.
    pub(super) fn step(
        net: &mut Network,
        rep: &mut Network,
        all: &Array2<f32>,
        data: &StageData<'_>,
        batch: Batch<'_>,
        combine: &mut Combine,
    ) -> Result<f32> {
        let idx = batch.idx;
        let half = idx.len().div_ceil(2);
        let (i0, i1) = idx.split_at(half);
        let (x0, x1) = (gather_rows(all.view(), i0), gather_rows(all.view(), i1));
        sampled(combine, batch.samples, |scales| {
            let (o0, o1) = rayon::join(
                || net.forward_train(&frozen_batch(x0.view())),
                || rep.forward_train(&frozen_batch(x1.view())),
            );
            let (o0, o1) = (o0?, o1?);
            let outs: Vec<Array2<f32>> = o0
                .iter()
                .zip(&o1)
                .map(|(a, b)| ndarray::concatenate(Axis(0), &[a.view(), b.view()]).expect("widths"))
                .collect();
            let objectives: &[Objective] = data.objectives;
            let (losses, grads) = scaled_losses(&outs, objectives, idx, scales)?;
            let backward = |n: &mut Network, rows: std::ops::Range<usize>| {
                let part: Vec<Array2<f32>> = grads
                    .iter()
                    .map(|g| g.slice(s![rows.clone(), ..]).to_owned())
                    .collect();
                n.backward_train(&part);
            };
            rayon::join(
                || backward(&mut *net, 0..half),
                || backward(&mut *rep, half..idx.len()),
            );
            Ok(losses)
        })
    }

    /// The optimizer step after a step of either kind: AdamW clips, updates and zeroes the
    /// gradients; with a replica, it also adds the replica's gradients in (a split step left
    /// some; after a whole step they are zero) and writes the new weights into it.
    pub(super) fn optimize(
        &mut self,
        net: &mut Network,
        combine: &mut Combine,
        opt: &mut AdamW,
        clip: Option<f32>,
    ) -> Result<()> {
        let mut params = all_params(net, combine);
        let Some(rep) = self.replica.as_mut() else {
            opt.step_clipped(&mut params, clip);
            return Ok(());
        };
        // A mirror for each of the network's trainable parameters (the replica's own flags may
        // lag behind an unfreezing).
        let mut mirrors: Vec<Option<Mirror<'_>>> = rep
            .params_mut()
            .into_iter()
            .zip(params.iter())
            .map(|(r, p)| {
                let Param { value, grad, .. } = r;
                match (p.trainable, value.as_slice_mut(), grad.as_slice_mut()) {
                    (true, Some(value), Some(grad)) => Some(Mirror { grad, value }),
                    _ => None,
                }
            })
            .collect();
        let mirrored = mirrors.len();
        // The combiner's own parameters (uncertainty weights) come last and have no mirror.
        mirrors.resize_with(params.len(), || None);
        if mirrors[..mirrored]
            .iter()
            .zip(&params)
            .any(|(m, p)| p.trainable && m.is_none())
        {
            // Replicas are standard-layout clones, so this is not expected.
            return Err(Error::new(
                ErrorKind::Internal,
                "replica parameters are not contiguous",
            ));
        }
        opt.step_clipped_mirrored(&mut params, &mut mirrors, clip);
        Ok(())
    }
}

/// A training batch of precomputed pooled inputs.
fn frozen_batch(x: ArrayView2<'_, f32>) -> TrainBatch<'_> {
    let none = ArrayView2::from_shape((0, 0), &[]).expect("empty");
    TrainBatch {
        pooled: Some(x),
        emb: none,
        feats: none,
        tokens: None,
    }
}

/// A copy of `net` for the second half of head-only mini-batches, with dropout streams of its
/// own (a clone would drop the same units in both halves).
pub(super) fn new_replica(net: &Network, seed: u64) -> Network {
    let mut r = net.clone();
    for (t, h) in r.heads.iter_mut().enumerate() {
        h.reseed_dropout(
            seed ^ 0x5eed_0f5e_c00d_4a1f ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
    }
    r
}
