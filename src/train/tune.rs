//! Fine-tuning the backbone's top layers with the heads.
//!
//! The frozen bottom of the backbone ran once per text (its hidden states are in
//! [`Examples::hidden`](super::Examples::hidden)); here the top `K` layers run natively on
//! them, their tokens are pooled (mean or [CLS], and L2-normalized, as the backbone does) into the
//! sentence embedding the heads read, and the heads' gradient on that embedding flows back
//! through the pooling into the layers, which an optimizer of their own updates (differential
//! learning rates: `[backbone] lr`, weight decay, warm-up and clipping apart from the heads').
//!
//! `texts ─► bottom (cached) ─► top K layers ─► pool ─► L2 ─► heads`

use ndarray::{s, Array2, ArrayView2};

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::BackboneConfig;
use super::stage::{EpochRecord, Progress, StageReport};
use crate::backbone::{PackedBatch, Pooling, TokenSeqs};
use crate::error::Result;
use crate::error::{Error, ErrorKind};
use crate::nn::bert::BertLayer;
use crate::nn::optim::{AdamW, AdamWConfig};
use crate::nn::parallel;
use crate::nn::schedule::{LrScheduler, Schedule};
use crate::nn::Param;
use crate::onnx::split::pool;

/// Rows of the L2 normalization whose norm is at most this are left as they are (as
/// [`crate::backbone::l2_normalize`] does), and pass their gradient through unscaled.
const TINY_NORM: f32 = 1e-12;

/// Texts per inference chunk: bounds the attention's working memory.
const CHUNK: usize = 64;

/// Pairs per optimizer step of the contrastive warm-up (64 texts through the layers).
const PAIRS_PER_STEP: usize = 32;

/// Mixed into the training seed for the layers' dropout streams (apart from the heads').
const DROPOUT_SEED: u64 = 0x5eed_d409;

/// The top layers of a backbone, as training starts from them (pretrained) and leaves them
/// (fine-tuned), with what turns their output into a sentence embedding.
#[derive(Debug, Clone)]
pub struct BackboneTop {
    /// The layers, bottom first (layer `L-K` … `L-1` of the backbone).
    pub layers: Vec<BertLayer>,
    /// Whether the backbone L2-normalizes its sentence embeddings.
    pub normalize: bool,
    /// How the backbone pools the top layer's tokens (its manifest's).
    pub pooling: Pooling,
}

impl BackboneTop {
    /// Sentence embeddings of texts whose bottom hidden states are `seqs` (inference).
    pub fn embed(&self, seqs: &TokenSeqs) -> Array2<f32> {
        self.outputs(seqs, false).0
    }

    /// [`BackboneTop::embed`], and with `tokens` also every text's token vectors out of the
    /// top layer (what a sequence head reads; stored as f16, as served token vectors are).
    pub fn outputs(&self, seqs: &TokenSeqs, tokens: bool) -> (Array2<f32>, Option<TokenSeqs>) {
        let mut out = Array2::<f32>::zeros((seqs.len(), seqs.dim()));
        let mut toks = tokens.then(|| TokenSeqs::new(seqs.dim()));
        let all: Vec<usize> = (0..seqs.len()).collect();
        for (c, idx) in all.chunks(CHUNK).enumerate() {
            let batch = seqs.gather(idx);
            let mut h = batch.tokens;
            for layer in &self.layers {
                h = layer.forward_inference(h.view(), &batch.offsets);
            }
            let emb = pool(h.view(), &batch.offsets, self.pooling, self.normalize);
            out.slice_mut(s![c * CHUNK..c * CHUNK + idx.len(), ..])
                .assign(&emb);
            if let Some(t) = toks.as_mut() {
                for w in batch.offsets.windows(2) {
                    t.push(h.slice(s![w[0]..w[1], ..]));
                }
            }
        }
        (out, toks)
    }

    /// Every layer's parameters, bottom layer first.
    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Every layer's parameters, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}

/// What the last training forward kept for its backward.
struct Pass {
    /// Token offsets of the batch.
    offsets: Vec<usize>,
    /// The normalized embeddings (or the means, without normalization) `[b, d]`.
    out: Array2<f32>,
    /// Each row's norm before normalization (empty without normalization).
    norms: Vec<f32>,
    /// Index of the lowest layer that ran in training mode.
    first: usize,
    /// For a batch run in token-bounded chunks: what recomputing it in the backward needs.
    chunked: Option<Chunked>,
}

/// The output of a training forward of the top layers.
pub(super) struct TopOutput {
    /// The sentence embeddings `[b, d]` (pooled, normalized as the backbone does).
    pub emb: Array2<f32>,
    /// The top layer's token vectors, packed (with [`Tuning::set_token_output`] only).
    pub tokens: Option<PackedBatch>,
}

/// A training batch too large to keep every layer's activations at once: it runs in chunks
/// of at most [`Tuning::max_tokens`] tokens, each chunk's activations dropped after its
/// forward and recomputed (with the same dropout masks) in the backward, one chunk at a time.
/// Memory stays bounded on long texts at the cost of one more forward of the trainable layers.
struct Chunked {
    /// The batch's rows.
    idx: Vec<usize>,
    /// Row ranges of the chunks within `idx`.
    ranges: Vec<(usize, usize)>,
    /// Every layer's dropout streams before the forward, to replay its masks.
    streams: Vec<[ChaCha8Rng; 2]>,
}

/// Tokens per training chunk by default: about 150 MB of activations per MiniLM layer, where
/// a batch of 64 texts of 256 tokens keeps about 650 MB per layer.
pub const MAX_TRAIN_TOKENS: usize = 4096;

/// Row ranges of `idx` whose texts hold at most `max` tokens together (a longer text alone).
fn token_chunks(seqs: &TokenSeqs, idx: &[usize], max: usize) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (r, &i) in idx.iter().enumerate() {
        let n = seqs.length(i);
        if r > start && tokens + n > max {
            ranges.push((start, r));
            start = r;
            tokens = 0;
        }
        tokens += n;
    }
    if start < idx.len() {
        ranges.push((start, idx.len()));
    }
    ranges
}

/// The top layers while a stage trains them: their hidden-state inputs, their optimizer and
/// schedule, and which of them train this epoch.
pub(super) struct Tuning<'a> {
    top: &'a mut BackboneTop,
    train: &'a TokenSeqs,
    valid: &'a TokenSeqs,
    cfg: &'a BackboneConfig,
    opt: AdamW,
    scheduler: LrScheduler,
    active: usize,
    pass: Option<Pass>,
    /// Training batches with more tokens run in chunks ([`Chunked`]).
    max_tokens: usize,
    /// Whether the heads read the top layer's token vectors too (sequence heads).
    token_output: bool,
}

impl<'a> Tuning<'a> {
    /// Tuning of `top` on the training and validation texts' bottom hidden states, for a stage
    /// of `total_steps` optimizer steps; the layers' dropout masks are drawn from `seed`.
    pub(super) fn new(
        top: &'a mut BackboneTop,
        train: &'a TokenSeqs,
        valid: &'a TokenSeqs,
        cfg: &'a BackboneConfig,
        total_steps: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut seeds = ChaCha8Rng::seed_from_u64(seed ^ DROPOUT_SEED);
        for layer in &mut top.layers {
            layer.set_dropout(cfg.dropout, seeds.next_u64())?;
        }
        let schedule = Schedule::CosineWithWarmup {
            warmup_steps: (total_steps as f32 * cfg.warmup_fraction) as usize,
            total_steps,
            min_lr_ratio: 0.05,
        };
        let mut t = Tuning {
            top,
            train,
            valid,
            cfg,
            opt: AdamW::new(AdamWConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..AdamWConfig::default()
            })?,
            scheduler: LrScheduler::new(schedule, cfg.lr)?,
            active: usize::MAX,
            pass: None,
            max_tokens: MAX_TRAIN_TOKENS,
            token_output: false,
        };
        t.set_epoch(0);
        Ok(t)
    }

    /// Sets which layers train in `epoch` (the top `active_layers(epoch)`; the others are
    /// frozen). Returns whether that changed.
    pub(super) fn set_epoch(&mut self, epoch: usize) -> bool {
        let active = self.cfg.active_layers(epoch).min(self.top.layers.len());
        if active == self.active {
            return false;
        }
        self.active = active;
        let first = self.top.layers.len() - active;
        for (i, layer) in self.top.layers.iter_mut().enumerate() {
            for p in layer.params_mut() {
                p.trainable = i >= first;
            }
        }
        true
    }

    /// The layers as they are now.
    pub(super) fn top(&self) -> &BackboneTop {
        self.top
    }

    /// How many layers train now.
    pub(super) fn active(&self) -> usize {
        self.active
    }

    /// Sentence embeddings of every validation text with the layers as they are.
    pub(super) fn embed_valid(&self) -> Array2<f32> {
        self.top.embed(self.valid)
    }

    /// Makes the training forward return the top layer's token vectors as well, and its
    /// backward take their gradient: sequence heads read them.
    pub(super) fn set_token_output(&mut self, on: bool) {
        self.token_output = on;
    }

    /// Whether the heads read the top layer's token vectors ([`Tuning::set_token_output`]).
    pub(super) fn token_output(&self) -> bool {
        self.token_output
    }

    /// The embeddings of every training and validation text with the layers as they are, with
    /// their top-layer token vectors when the heads read them ([`Tuning::set_token_output`]).
    #[allow(clippy::type_complexity)]
    pub(super) fn outputs(
        &self,
    ) -> (
        (Array2<f32>, Option<TokenSeqs>),
        (Array2<f32>, Option<TokenSeqs>),
    ) {
        (
            self.top.outputs(self.train, self.token_output),
            self.top.outputs(self.valid, self.token_output),
        )
    }

    /// The validation texts' embeddings and top-layer token vectors with the layers as they
    /// are (one pass for both).
    pub(super) fn outputs_valid(&self) -> (Array2<f32>, TokenSeqs) {
        let (emb, tokens) = self.top.outputs(self.valid, true);
        (emb, tokens.expect("asked for tokens"))
    }

    /// Sets the token budget of a training chunk (see [`Chunked`]; tests use small ones).
    #[cfg(test)]
    pub(super) fn set_max_tokens(&mut self, max: usize) {
        self.max_tokens = max.max(1);
    }

    /// The layers over packed `tokens`: those below `first` in inference mode, the others in
    /// training mode (keeping what their backward needs).
    fn run_layers(&mut self, tokens: Array2<f32>, offsets: &[usize], first: usize) -> Array2<f32> {
        let mut h = tokens;
        for (i, layer) in self.top.layers.iter_mut().enumerate() {
            h = if i < first {
                layer.forward_inference(h.view(), offsets)
            } else {
                layer.forward(h.view(), offsets, true)
            };
        }
        h
    }

    /// Training forward of the training texts `idx`: the frozen layers in inference mode, the
    /// trainable ones keeping what their backward needs (a batch of more than
    /// [`MAX_TRAIN_TOKENS`] tokens in chunks, see [`Chunked`]); returns the sentence
    /// embeddings.
    pub(super) fn forward(&mut self, idx: &[usize]) -> Array2<f32> {
        self.forward_with(idx, false).emb
    }

    /// [`Tuning::forward`], with the top layer's token vectors when the heads read them
    /// ([`Tuning::set_token_output`]).
    pub(super) fn forward_output(&mut self, idx: &[usize]) -> TopOutput {
        self.forward_with(idx, self.token_output)
    }

    fn forward_with(&mut self, idx: &[usize], want: bool) -> TopOutput {
        let train = self.train;
        let first = self.top.layers.len() - self.active;
        let ranges = token_chunks(train, idx, self.max_tokens);
        let pooling = self.top.pooling;
        let mut tokens: Option<PackedBatch> = None;
        let (mut out, offsets, chunked) = if ranges.len() <= 1 {
            let batch = train.gather(idx);
            let h = self.run_layers(batch.tokens, &batch.offsets, first);
            let out = pool(h.view(), &batch.offsets, pooling, false);
            if want {
                tokens = Some(PackedBatch {
                    tokens: h,
                    offsets: batch.offsets.clone(),
                });
            }
            (out, batch.offsets, None)
        } else {
            let streams = self
                .top
                .layers
                .iter()
                .map(|l| l.dropout_streams())
                .collect();
            let mut out = Array2::<f32>::zeros((idx.len(), train.dim()));
            // The chunks' token vectors, back to back (the batch's rows keep their order).
            let mut parts: Vec<Array2<f32>> = Vec::new();
            let mut offsets = vec![0usize];
            for &(a, b) in &ranges {
                let batch = train.gather(&idx[a..b]);
                let h = self.run_layers(batch.tokens, &batch.offsets, first);
                out.slice_mut(s![a..b, ..])
                    .assign(&pool(h.view(), &batch.offsets, pooling, false));
                if want {
                    let base = *offsets.last().expect("starts at 0");
                    offsets.extend(batch.offsets[1..].iter().map(|o| base + o));
                    parts.push(h);
                }
                for layer in &mut self.top.layers {
                    layer.clear_cache();
                }
            }
            if want {
                let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
                tokens = Some(PackedBatch {
                    tokens: ndarray::concatenate(ndarray::Axis(0), &views)
                        .expect("chunks of one width"),
                    offsets,
                });
            }
            let chunked = Chunked {
                idx: idx.to_vec(),
                ranges,
                streams,
            };
            (out, Vec::new(), Some(chunked))
        };
        let mut norms = Vec::new();
        if self.top.normalize {
            for mut row in out.rows_mut() {
                let n = row.dot(&row).sqrt();
                if n > TINY_NORM {
                    row /= n;
                }
                norms.push(n);
            }
        }
        self.pass = Some(Pass {
            offsets,
            out: out.clone(),
            norms,
            first,
            chunked,
        });
        TopOutput { emb: out, tokens }
    }

    /// Backward of the last [`Tuning::forward`] from the gradient on its embeddings:
    /// accumulates the trainable layers' parameter gradients.
    ///
    /// # Panics
    /// Before any forward (a caller's invariant).
    pub(super) fn backward(&mut self, grad: ArrayView2<'_, f32>) {
        self.backward_output(grad, None);
    }

    /// [`Tuning::backward`], adding `grad_tokens` (`[T, d]`, the gradient on the token
    /// vectors [`Tuning::forward_output`] returned) to what flows from the embeddings.
    ///
    /// # Panics
    /// Before any forward, or when `grad_tokens` does not have the forward's token rows.
    pub(super) fn backward_output(
        &mut self,
        grad: ArrayView2<'_, f32>,
        grad_tokens: Option<ArrayView2<'_, f32>>,
    ) {
        let pass = self.pass.take().expect("Tuning::backward before forward");
        let mut g = grad.to_owned();
        if self.top.normalize {
            // y = p / |p|: ∂L/∂p = (g − y (g·y)) / |p|.
            for ((mut gr, y), &n) in g
                .rows_mut()
                .into_iter()
                .zip(pass.out.rows())
                .zip(&pass.norms)
            {
                if n > TINY_NORM {
                    let gy = gr.dot(&y);
                    gr.scaled_add(-gy, &y);
                    gr /= n;
                }
            }
        }
        match pass.chunked {
            None => self.layers_backward(g.view(), grad_tokens, &pass.offsets, pass.first),
            Some(c) => {
                // Each chunk again, with the masks of the forward, then its backward.
                for (layer, streams) in self.top.layers.iter_mut().zip(c.streams) {
                    layer.set_dropout_streams(streams);
                }
                let train = self.train;
                let mut row = 0;
                for &(a, b) in &c.ranges {
                    let batch = train.gather(&c.idx[a..b]);
                    let n = *batch.offsets.last().unwrap_or(&0);
                    self.run_layers(batch.tokens, &batch.offsets, pass.first);
                    let gt = grad_tokens.map(|t| t.slice_move(s![row..row + n, ..]));
                    self.layers_backward(g.slice(s![a..b, ..]), gt, &batch.offsets, pass.first);
                    row += n;
                }
            }
        }
    }

    /// Backward from the gradient `g` on the pooled rows of the last training forward
    /// (over packed texts at `offsets`), plus `g_tokens` on the top layer's tokens when the
    /// heads read them, through the layers from `first` up; accumulates their parameter
    /// gradients.
    fn layers_backward(
        &mut self,
        g: ArrayView2<'_, f32>,
        g_tokens: Option<ArrayView2<'_, f32>>,
        offsets: &[usize],
        first: usize,
    ) {
        // Through the pooling: the mean spreads each text's gradient over its tokens, [CLS]
        // pooling puts it on the first.
        let mut gt = self.top.pooling.backward_packed(g, offsets);
        if let Some(t) = g_tokens {
            gt += &t;
        }
        let layers = &mut self.top.layers[first..];
        for (i, layer) in layers.iter_mut().enumerate().rev() {
            if i == 0 {
                layer.backward_params_only(gt.view());
            } else {
                gt = layer.backward(gt.view());
            }
        }
    }

    /// One optimizer step of the trainable layers (scheduled learning rate, clipped, gradients
    /// zeroed); the schedule advances every step, trained or not, so that it spans the stage.
    pub(super) fn step(&mut self) {
        if self.active > 0 {
            self.opt.set_lr(self.scheduler.lr());
            let clip = (self.cfg.clip_norm > 0.0).then_some(self.cfg.clip_norm);
            let mut params = self.top.params_mut();
            self.opt.step_clipped(&mut params, clip);
        }
        self.scheduler.step();
    }

    /// The contrastive warm-up (`[backbone] contrastive_epochs`), before the heads train:
    /// every trainable layer trains on pairs of training texts (`labels`: the first task's
    /// classes), the squared error between the cosine of their embeddings and 1 (same class)
    /// or 0 (different classes), with an AdamW of its own at the layers' learning rate. Each
    /// epoch is reported to `progress` (stage `contrastive`, its mean pair loss), which may
    /// cancel.
    pub(super) fn contrastive(
        &mut self,
        labels: &[usize],
        seed: u64,
        progress: Progress<'_>,
    ) -> Result<StageReport> {
        let cfg = self.cfg;
        let started = Instant::now();
        // Every layer trains in the warm-up; the stage's schedule is set again after it.
        for p in self.top.params_mut() {
            p.trainable = true;
        }
        self.active = self.top.layers.len();
        let mut opt = AdamW::new(AdamWConfig {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..AdamWConfig::default()
        })?;
        let clip = (cfg.clip_norm > 0.0).then_some(cfg.clip_norm);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut history = Vec::new();
        for epoch in 0..cfg.contrastive_epochs {
            let pairs = draw_pairs(labels, cfg.contrastive_pairs, &mut rng);
            if pairs.is_empty() {
                return Err(Error::invalid(
                    "the contrastive warm-up needs two training examples of some class or of two \
                     classes",
                ));
            }
            let total = parallel::on_pool(|| {
                let mut total = 0.0f64;
                for chunk in pairs.chunks(PAIRS_PER_STEP) {
                    total += self.pair_step(chunk, &mut opt, clip) as f64;
                }
                total
            });
            let loss = (total / pairs.len() as f64) as f32;
            if !loss.is_finite() {
                return Err(Error::numeric(format!(
                    "the contrastive warm-up diverged in epoch {epoch} (learning rate {:e}): lower \
                     backbone.lr",
                    cfg.lr
                )));
            }
            let rec = EpochRecord {
                stage: "contrastive".into(),
                epoch,
                epochs: cfg.contrastive_epochs,
                train_loss: loss,
                valid_loss: f32::NAN,
                metric: None,
                monitored: None,
                task_losses: Vec::new(),
                lr: cfg.lr,
                elapsed: started.elapsed().as_secs_f64(),
            };
            let go_on = progress(&rec);
            history.push(rec);
            if !go_on {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    "training cancelled by the progress callback (contrastive warm-up)",
                ));
            }
        }
        self.active = usize::MAX;
        self.set_epoch(0);
        let seconds = started.elapsed().as_secs_f64();
        Ok(StageReport {
            stage: "contrastive".into(),
            epochs_run: history.len(),
            best_epoch: history.len().saturating_sub(1),
            best_valid_loss: f32::NAN,
            monitor: "none (a fixed number of epochs)".into(),
            best_monitored: f32::NAN,
            learned_weights: None,
            seconds,
            seconds_to_best: seconds,
            history,
        })
    }

    /// One step of the warm-up on `pairs` (i, j, target cosine): [`Tuning::pair_grads`],
    /// then the update. Returns the summed loss.
    fn pair_step(
        &mut self,
        pairs: &[(usize, usize, f32)],
        opt: &mut AdamW,
        clip: Option<f32>,
    ) -> f32 {
        let loss = self.pair_grads(pairs);
        let mut params = self.top.params_mut();
        opt.step_clipped(&mut params, clip);
        loss
    }

    /// Forward both sides of `pairs`, the gradient of the mean squared error between their
    /// cosines and targets on the embeddings, backward into the layers' gradients. Returns the
    /// summed squared error.
    fn pair_grads(&mut self, pairs: &[(usize, usize, f32)]) -> f32 {
        let b = pairs.len();
        let sides: Vec<usize> = pairs
            .iter()
            .map(|p| p.0)
            .chain(pairs.iter().map(|p| p.1))
            .collect();
        // Without dropout a text's embedding is the same wherever it occurs in the step: each
        // distinct text runs through the layers once and its gradient sums over its
        // occurrences (on 80 texts a step's 64 sides hold about 45 distinct ones). With
        // dropout every occurrence draws masks of its own.
        let (idx, slot): (Vec<usize>, Vec<usize>) = if self.cfg.dropout == 0.0 {
            let mut at: HashMap<usize, usize> = HashMap::new();
            let mut idx = Vec::new();
            let slot = sides
                .iter()
                .map(|&i| {
                    *at.entry(i).or_insert_with(|| {
                        idx.push(i);
                        idx.len() - 1
                    })
                })
                .collect();
            (idx, slot)
        } else {
            (sides.clone(), (0..sides.len()).collect())
        };
        let emb = self.forward(&idx);
        let mut g = Array2::<f32>::zeros(emb.dim());
        let mut loss = 0.0f32;
        for (r, &(_, _, target)) in pairs.iter().enumerate() {
            let (sa, so) = (slot[r], slot[b + r]);
            let (a, o) = (emb.row(sa), emb.row(so));
            let (na, no) = (
                a.dot(&a).sqrt().max(TINY_NORM),
                o.dot(&o).sqrt().max(TINY_NORM),
            );
            let c = a.dot(&o) / (na * no);
            let d = c - target;
            loss += d * d;
            // ∂(c − t)²/∂a = 2 (c − t) (o / (|a||o|) − c a / |a|²), averaged over the pairs.
            let s = 2.0 * d / b as f32;
            let mut ga = o.mapv(|v| v / (na * no));
            ga.scaled_add(-c / (na * na), &a);
            let mut go = a.mapv(|v| v / (na * no));
            go.scaled_add(-c / (no * no), &o);
            g.row_mut(sa).scaled_add(s, &ga);
            g.row_mut(so).scaled_add(s, &go);
        }
        self.backward(g.view());
        loss
    }

    /// The layers' parameters (for snapshots of the best epoch).
    pub(super) fn params(&self) -> Vec<&Param> {
        self.top.params()
    }

    /// The layers' parameters, mutably (to restore the best epoch's).
    pub(super) fn params_mut(&mut self) -> Vec<&mut Param> {
        self.top.params_mut()
    }

    /// Every layer trainable again, as a finished model carries no freezing state.
    pub(super) fn finish(self) {
        for p in self.top.params_mut() {
            p.trainable = true;
        }
        // Dropout only while training here (inference forwards never apply it anyway).
        for layer in &mut self.top.layers {
            layer
                .set_dropout(0.0, 0)
                .expect("0 is a valid dropout probability");
        }
    }
}

/// The warm-up's pairs for one epoch: `per_example` per training example, alternately a
/// same-class partner (where its class has another example) and a different-class one (where
/// there is one), drawn from `rng`, then shuffled.
fn draw_pairs(
    labels: &[usize],
    per_example: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<(usize, usize, f32)> {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in labels.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let n = labels.len();
    // Every example grouped by class, and where each class starts: the k-th example of another
    // class than c is then one lookup (skipping c's block), not a scan.
    let grouped: Vec<usize> = by_class.values().flatten().copied().collect();
    let mut start = BTreeMap::new();
    let mut at = 0;
    for (&c, members) in &by_class {
        start.insert(c, at);
        at += members.len();
    }
    let mut pairs = Vec::with_capacity(n * per_example);
    for (i, &c) in labels.iter().enumerate() {
        let same = &by_class[&c];
        let others = n - same.len();
        for p in 0..per_example {
            if (p % 2 == 0 || others == 0) && same.len() > 1 {
                // A uniform partner other than i: draw among the others of the class.
                let k = rng.random_range(0..same.len() - 1);
                let j = if same[k] == i {
                    same[same.len() - 1]
                } else {
                    same[k]
                };
                pairs.push((i, j, 1.0));
            } else if others > 0 {
                // A uniform example of another class.
                let k = rng.random_range(0..others);
                let j = if k < start[&c] {
                    grouped[k]
                } else {
                    grouped[k + same.len()]
                };
                pairs.push((i, j, 0.0));
            }
        }
    }
    pairs.shuffle(rng);
    pairs
}

#[cfg(test)]
mod tests;
