//! Multi-scale 1-D convolution with GELU and max pooling over each text.

use std::sync::OnceLock;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewMut2, IxDyn};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{axpy, check_offsets, TokenBuf};
use crate::error::{Error, Result};
use crate::nn::activation::{gelu, gelu_cdf};
use crate::nn::init::Init;
use crate::nn::matmul::{matmul_on, Kernel};
use crate::nn::param::{join_name, Param};
use crate::nn::simd::vectorized;
use crate::nn::special::exp_f32;

/// Texts per piece of the pooling pass (pieces run on rayon's pool).
const TEXT_PIECE: usize = 16;

/// Channels per piece of the weight-gradient pass (pieces run on rayon's pool).
const CHANNEL_PIECE: usize = 16;

/// 1/√(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// d GELU/dx = Φ(x) + x·φ(x) given Φ(x) (the same formula as [`crate::nn::Gelu`]'s backward).
#[inline]
fn gelu_grad(x: f32, cdf: f32) -> f32 {
    cdf + x * INV_SQRT_2PI * exp_f32(-0.5 * x * x)
}

/// Multi-scale convolution over the tokens of each text: for every kernel size k (odd) a
/// Conv1d `d → C` with "same" zero padding, then GELU, then the maximum over the text's tokens.
/// The output concatenates the kernels: `[b, C·kernels.len()]`, kernel j in columns
/// `j·C..(j+1)·C`.
///
/// The padding is applied **within each text**: a window that reaches past a text's first or
/// last token sees zeros there, never the neighbouring text, so a batch gives each text the
/// result it gets alone.
///
/// Parameters, for kernel j: `{name}.{j}.weight` `[C, d, k]` (PyTorch's Conv1d layout, so
/// `out[t] = b + Σ_o W[:, :, o]·x[t + o − k/2]`) and `{name}.{j}.bias` `[C]`. Weights are
/// Kaiming-uniform over the fan-in d·k, biases start at zero.
///
/// # How it is computed
///
/// Every offset o of every kernel is a `[C, d]` matrix; stacked they form one `[N, d]` matrix
/// W with N = C·Σk, so the whole layer is ONE GEMM `Y = X·Wᵀ` (`[T, N]`) followed by a cheap
/// shift-add within each text: `z_t = b + Σ_o Y[t + o − k/2, (o, ·)]`. GELU is unimodal (it
/// falls to its minimum at x ≈ −0.75, then rises), so its maximum over a set of values is at the
/// set's largest or smallest value: the pass finds the max and min of z per text and channel
/// and evaluates GELU twice there instead of on all T·C values (and nothing but the winners is
/// kept for the backward pass).
///
/// The backward pass exploits the max pooling: only the winning token of each (text, channel)
/// receives gradient, so the weight and input gradients are b·C·Σk row updates of length d
/// each (about T/b times less work than the two dense GEMMs `dYᵀ·X` and `dY·W` they replace,
/// and no `[T, N]` gradient matrix).
///
/// Both passes run on rayon's pool in fixed pieces: pooling and input gradients by 16 texts,
/// weight gradients by 16 channels (each piece owns its output rows), plus the GEMM's own
/// split ([`crate::nn::matmul`]). The pieces do not depend on the number of threads, so the
/// results are bit-identical on one thread or many.
#[derive(Debug, Clone)]
pub struct MultiConv {
    name: String,
    in_dim: usize,
    channels: usize,
    kernels: Vec<usize>,
    /// `weights[j]` is `[C, d, k_j]`.
    weights: Vec<Param>,
    /// `biases[j]` is `[C]`.
    biases: Vec<Param>,
    cache: Option<ConvCache>,
    /// The stacked weights for [`MultiConv::forward_inference`], built on its first call and
    /// dropped by [`MultiConv::params_mut`] (the only way to change the weights), so serving
    /// does not restack 1.7 MB of weights for every request (at batch 1 that copy costs more
    /// than the GEMM).
    inference_stack: OnceLock<Array2<f32>>,
}

/// What the backward pass needs from the last training forward (buffers are reused by the
/// next forward of the same shape).
#[derive(Debug, Clone)]
struct ConvCache {
    /// The input tokens `[T, d]`.
    x: TokenBuf,
    offsets: Vec<usize>,
    /// The stacked weights `[N, d]` the forward used (row `base_j + o·C + c`).
    stacked: Array2<f32>,
    /// The GEMM output `Y` `[T, N]`, row-major (scratch; kept only to reuse the allocation).
    y: Vec<f32>,
    /// Per (text, output column): the token row whose GELU won the max pooling.
    arg: Vec<u32>,
    /// Per (text, output column): GELU'(z) at the winning token.
    deriv: Vec<f32>,
}

/// What the weight-gradient pass reads for one kernel (see [`ConvSel::weight_grads`]).
struct ConvSel<'a> {
    /// ∂loss/∂output `[b, cols]`, row-major.
    gs: &'a [f32],
    /// GELU'(z) at each winner, `[b, cols]`.
    deriv: &'a [f32],
    /// The winning token row of each (text, column), `[b, cols]`.
    arg: &'a [u32],
    offsets: &'a [usize],
    /// Output width.
    cols: usize,
    /// The kernel's first output column.
    col0: usize,
    /// The kernel size.
    k: usize,
    /// The input token rows `[tokens, d]`, row-major.
    xs: &'a [f32],
    /// Input width.
    d: usize,
    /// Whether the weights, and the bias, take gradients.
    w_on: bool,
    b_on: bool,
}

impl ConvSel<'_> {
    /// Adds ∂loss/∂W and ∂loss/∂b for the channels `c0..` that `wg` (`[len, d, k]`) and `bg`
    /// hold. Loops run channel outermost, texts inside: the k rows being updated stay in L1
    /// while the rows of X come from L2 (with texts outermost, every text would stream the
    /// whole weight gradient through L3: measured 1.3x slower).
    #[inline(always)]
    fn weight_grads(&self, c0: usize, wg: &mut [f32], bg: &mut [f32]) {
        let (k, p, d, xs) = (self.k, self.k / 2, self.d, self.xs);
        // ∂loss/∂W[c, :, o] for one channel, offset-major so that each update is a
        // contiguous row.
        let mut acc = vec![0.0f32; k * d];
        for (cl, bgc) in bg.iter_mut().enumerate() {
            let c = c0 + cl;
            acc.fill(0.0);
            let mut bsum = 0.0f32;
            for (i, seg) in self.offsets.windows(2).enumerate() {
                let r = i * self.cols + self.col0 + c;
                // Max pooling routes the gradient to the winning token only.
                let gz = self.gs[r] * self.deriv[r];
                if gz == 0.0 {
                    continue;
                }
                bsum += gz;
                let t = self.arg[r] as usize;
                for src in t.saturating_sub(p).max(seg[0])..(t + p + 1).min(seg[1]) {
                    let o = src + p - t;
                    axpy(&mut acc[o * d..][..d], gz, &xs[src * d..][..d]);
                }
            }
            if self.b_on {
                *bgc += bsum;
            }
            if self.w_on {
                // Into the [C, d, k] layout: a local transpose of k rows.
                let dst = &mut wg[cl * d * k..][..d * k];
                for o in 0..k {
                    let strided = dst[o..].iter_mut().step_by(k);
                    for (v, &a) in strided.zip(&acc[o * d..][..d]) {
                        *v += a;
                    }
                }
            }
        }
    }
}

impl MultiConv {
    /// A convolution over `in_dim`-wide tokens with `channels` ≥ 1 output channels per kernel
    /// and the given odd kernel sizes (at least one), drawing the weights from `rng` in kernel
    /// order.
    pub fn new(
        in_dim: usize,
        kernels: &[usize],
        channels: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        validate(in_dim, kernels, channels)?;
        let mut weights = Vec::with_capacity(kernels.len());
        let mut biases = Vec::with_capacity(kernels.len());
        for (j, &k) in kernels.iter().enumerate() {
            // Drawn as a [C, d·k] matrix: row-major, that is exactly the [C, d, k] layout, and
            // the fan-in of a Conv1d output is d·k.
            let w = Init::KaimingUniform
                .matrix(channels, in_dim * k, rng)
                .into_shape_with_order(IxDyn(&[channels, in_dim, k]))
                .expect("same number of elements");
            weights.push(Param::new(format!("{j}.weight"), w));
            biases.push(Param::new(
                format!("{j}.bias"),
                ArrayD::zeros(IxDyn(&[channels])),
            ));
        }
        Ok(MultiConv {
            name: String::new(),
            in_dim,
            channels,
            kernels: kernels.to_vec(),
            weights,
            biases,
            cache: None,
            inference_stack: OnceLock::new(),
        })
    }

    /// Builder form of [`MultiConv::set_name`].
    pub fn named(mut self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Renames the layer and its parameters (`{name}.{j}.weight`, `{name}.{j}.bias`).
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        for (j, (w, b)) in self.weights.iter_mut().zip(&mut self.biases).enumerate() {
            w.name = join_name(name, &format!("{j}.weight"));
            b.name = join_name(name, &format!("{j}.bias"));
        }
    }

    /// The layer's full name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Token width d.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output channels per kernel C.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The kernel sizes, in output order.
    pub fn kernels(&self) -> &[usize] {
        &self.kernels
    }

    /// Output width C·kernels.len().
    pub fn out_dim(&self) -> usize {
        self.channels * self.kernels.len()
    }

    /// The weight of each kernel, `[C, d, k]` (read-only: for writing the layer in other
    /// formats).
    pub fn kernel_weights(&self) -> &[Param] {
        &self.weights
    }

    /// The bias of each kernel, `[C]`.
    pub fn kernel_biases(&self) -> &[Param] {
        &self.biases
    }

    /// Rows of the stacked weight matrix, C·Σk.
    fn stacked_rows(&self) -> usize {
        self.channels * self.kernels.iter().sum::<usize>()
    }

    /// First stacked row of each kernel.
    fn bases(&self) -> Vec<usize> {
        self.kernels
            .iter()
            .scan(0, |acc, &k| {
                let b = *acc;
                *acc += k * self.channels;
                Some(b)
            })
            .collect()
    }

    /// Writes the `[N, d]` stacked weights: row `base_j + o·C + c` is `W_j[c, :, o]`.
    fn stack_weights(&self, out: &mut Array2<f32>) {
        let (d, ch) = (self.in_dim, self.channels);
        let os = out.as_slice_mut().expect("contiguous");
        for ((w, &k), base) in self.weights.iter().zip(&self.kernels).zip(self.bases()) {
            let ws = w.value.as_slice().expect("contiguous");
            for c in 0..ch {
                let wc = &ws[c * d * k..][..d * k];
                for o in 0..k {
                    let row = &mut os[(base + o * ch + c) * d..][..d];
                    for (dst, &v) in row.iter_mut().zip(wc[o..].iter().step_by(k)) {
                        *dst = v;
                    }
                }
            }
        }
    }

    /// Training forward: caches the input, the stacked weights and the max-pooling winners for
    /// [`MultiConv::backward`]. `train` is accepted for a uniform API (no dropout here).
    ///
    /// # Panics
    /// If `tokens` is not `in_dim` wide or `offsets` does not pack its rows.
    pub fn forward(
        &mut self,
        tokens: ArrayView2<'_, f32>,
        offsets: &[usize],
        train: bool,
    ) -> Array2<f32> {
        let _ = train;
        self.check_input(tokens, offsets);
        let (t, n) = (tokens.nrows(), self.stacked_rows());
        let records = (offsets.len() - 1) * self.out_dim();
        // Every buffer is reused, whatever the batch's size.
        let mut cache = self.cache.take().unwrap_or_else(|| ConvCache {
            x: TokenBuf::default(),
            offsets: Vec::new(),
            stacked: Array2::zeros((n, self.in_dim)),
            y: Vec::new(),
            arg: Vec::new(),
            deriv: Vec::new(),
        });
        cache.x.assign(tokens);
        cache.y.resize(t * n, 0.0);
        cache.offsets.clear();
        cache.offsets.extend_from_slice(offsets);
        cache.arg.resize(records, 0);
        cache.deriv.resize(records, 0.0);
        self.stack_weights(&mut cache.stacked);
        let out = self.conv_pool(
            cache.x.view(),
            offsets,
            &cache.stacked,
            &mut cache.y,
            Some((&mut cache.arg, &mut cache.deriv)),
        );
        self.cache = Some(cache);
        out
    }

    /// Inference forward: no caching, `&self`.
    ///
    /// # Panics
    /// As [`MultiConv::forward`].
    pub fn forward_inference(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        self.check_input(tokens, offsets);
        let stacked = self.inference_stack.get_or_init(|| {
            let mut s = Array2::zeros((self.stacked_rows(), self.in_dim));
            self.stack_weights(&mut s);
            s
        });
        let mut y = vec![0.0; tokens.nrows() * self.stacked_rows()];
        self.conv_pool(tokens, offsets, stacked, &mut y, None)
    }

    fn check_input(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) {
        assert_eq!(
            tokens.ncols(),
            self.in_dim,
            "MultiConv {:?}: tokens have {} features, expected {}",
            self.name,
            tokens.ncols(),
            self.in_dim
        );
        check_offsets("MultiConv", offsets, tokens.nrows());
    }

    /// The GEMM, the shift-add within each text, GELU and max pooling; with `record`, the
    /// winning token and GELU'(z) there for each (text, column).
    ///
    /// `Y` is `[T, N]`: a token's row holds, for every kernel offset, the C channels side by
    /// side, so the shift-add and the running max/min run across channels in 8-lane vectors
    /// (with per-channel loops over `Yᵀ` instead, the max/min chains made the pooling several
    /// times slower than the ~15 % the GEMM gains in that orientation).
    fn conv_pool(
        &self,
        x: ArrayView2<'_, f32>,
        offsets: &[usize],
        stacked: &Array2<f32>,
        y: &mut [f32],
        mut record: Option<(&mut Vec<u32>, &mut Vec<f32>)>,
    ) -> Array2<f32> {
        let (n, tt) = (self.stacked_rows(), x.nrows());
        assert!(
            u32::try_from(tt).is_ok(),
            "MultiConv: more than 2³² tokens in a batch"
        );
        let ym = ArrayViewMut2::from_shape((tt, n), &mut *y).expect("sized by the caller");
        // Inference (nothing to record) runs on the bounded kernels, training on the fast ones.
        let kernel = if record.is_some() {
            Kernel::Fast
        } else {
            Kernel::Bounded
        };
        matmul_on(kernel, ym, false, x, stacked.t());
        let ys = &*y;
        let cols = self.out_dim();
        let b = offsets.len() - 1;
        let mut out = Array2::zeros((b, cols));
        let os = out.as_slice_mut().expect("contiguous");
        // Fixed pieces of texts, whatever the number of threads: every text is pooled the same
        // way in any piece, so the result is the same on one thread or many.
        let piece = TEXT_PIECE * cols;
        let starts: Vec<usize> = (0..b).step_by(TEXT_PIECE).collect();
        match record.as_mut() {
            Some((arg, deriv)) => os
                .par_chunks_mut(piece)
                .zip(arg.par_chunks_mut(piece))
                .zip(deriv.par_chunks_mut(piece))
                .zip(starts.par_iter())
                .for_each(|(((o, a), d), &first)| {
                    let offs = &offsets[first..=(first + TEXT_PIECE).min(b)];
                    self.pool_texts(ys, offs, o, Some((a, d)));
                }),
            None => os
                .par_chunks_mut(piece)
                .zip(starts.par_iter())
                .for_each(|(o, &first)| {
                    let offs = &offsets[first..=(first + TEXT_PIECE).min(b)];
                    self.pool_texts(ys, offs, o, None);
                }),
        }
        out
    }

    /// The shift-add, GELU and max pooling for the texts `offsets` delimits (rows of `ys`, the
    /// `[T, N]` GEMM output of the whole batch) into their output rows `os`; with `record`,
    /// their winning tokens and GELU'(z) there.
    fn pool_texts(
        &self,
        ys: &[f32],
        offsets: &[usize],
        os: &mut [f32],
        mut record: Option<(&mut [u32], &mut [f32])>,
    ) {
        let (ch, n, cols) = (self.channels, self.stacked_rows(), self.out_dim());
        let bases = self.bases();
        // Per channel: the current pre-activation and the running extremes with their tokens
        // (u32, as wide as the f32 lanes they travel with, so the selects vectorize).
        let (mut z, mut zmax, mut zmin) = (vec![0.0f32; ch], vec![0.0f32; ch], vec![0.0f32; ch]);
        let (mut amax, mut amin) = (vec![0u32; ch], vec![0u32; ch]);
        vectorized(
            #[inline(always)]
            || {
                for (i, w) in offsets.windows(2).enumerate() {
                    let (s, e) = (w[0], w[1]);
                    for (j, (&k, &base)) in self.kernels.iter().zip(&bases).enumerate() {
                        let bias = self.biases[j].value.as_slice().expect("contiguous");
                        let p = k / 2;
                        zmax.fill(f32::NEG_INFINITY);
                        zmin.fill(f32::INFINITY);
                        amax.fill(s as u32);
                        amin.fill(s as u32);
                        for t in s..e {
                            // z_t = b + Σ_o Y[t + o − p, (o, ·)] over the taps inside the text,
                            // by increasing o: taps outside it are the zero padding.
                            z.copy_from_slice(bias);
                            for src in t.saturating_sub(p).max(s)..(t + p + 1).min(e) {
                                let o = src + p - t;
                                let yr = &ys[src * n + base + o * ch..][..ch];
                                for (zv, &v) in z.iter_mut().zip(yr) {
                                    *zv += v;
                                }
                            }
                            // Branch-free selects; strict comparisons keep the first token on
                            // ties.
                            let t32 = t as u32;
                            for ((&zv, m), a) in z.iter().zip(&mut zmax).zip(&mut amax) {
                                let gt = zv > *m;
                                *m = if gt { zv } else { *m };
                                *a = if gt { t32 } else { *a };
                            }
                            for ((&zv, m), a) in z.iter().zip(&mut zmin).zip(&mut amin) {
                                let lt = zv < *m;
                                *m = if lt { zv } else { *m };
                                *a = if lt { t32 } else { *a };
                            }
                        }
                        // The max of GELU over the text is at z's max or min (GELU is
                        // unimodal); GELU ≥ 0 on [0, ∞) and < 0 below, so with a non-negative
                        // maximum the minimum cannot win and no GELU is needed to decide.
                        let r0 = i * cols + j * ch;
                        for c in 0..ch {
                            let (hi, lo) = (zmax[c], zmin[c]);
                            let (zw, tw) = if hi >= 0.0 || gelu(hi) >= gelu(lo) {
                                (hi, amax[c])
                            } else {
                                (lo, amin[c])
                            };
                            // The winning z for now; GELU is applied below in one pass.
                            os[r0 + c] = zw;
                            if let Some((arg, _)) = record.as_mut() {
                                arg[r0 + c] = tw;
                            }
                        }
                    }
                }
                // GELU (and its derivative) of the winners in a branch-free loop over all of
                // them, which vectorizes, instead of one scalar erf per (text, channel).
                match record.as_mut() {
                    Some((_, deriv)) => {
                        for (o, d) in os.iter_mut().zip(deriv.iter_mut()) {
                            let z = *o;
                            let cdf = gelu_cdf(z);
                            *o = z * cdf;
                            *d = gelu_grad(z, cdf);
                        }
                    }
                    None => {
                        for o in os.iter_mut() {
                            *o = gelu(*o);
                        }
                    }
                }
            },
        );
    }

    /// Backward for the last [`MultiConv::forward`]: accumulates the parameter gradients and
    /// returns ∂loss/∂tokens `[T, d]`.
    ///
    /// # Panics
    /// Before any forward, or if `grad_out` is not `[b, out_dim]`.
    pub fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        self.grads(grad_out, true)
            .expect("input gradient requested")
    }

    /// Like [`MultiConv::backward`] without the input gradient (for tokens that are data).
    pub fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        let _ = self.grads(grad_out, false);
    }

    fn grads(&mut self, grad_out: ArrayView2<'_, f32>, want_input: bool) -> Option<Array2<f32>> {
        let (d, ch, cols) = (self.in_dim, self.channels, self.out_dim());
        let bases = self.bases();
        let cache = self
            .cache
            .as_ref()
            .expect("MultiConv::backward called before forward");
        let b = cache.offsets.len() - 1;
        assert_eq!(
            grad_out.dim(),
            (b, cols),
            "MultiConv {:?}: gradient shape does not match the last output",
            self.name
        );
        let g = grad_out.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        let xs = cache.x.as_slice();
        let (arg, deriv, offsets) = (&cache.arg, &cache.deriv, &cache.offsets);
        let kernels = &self.kernels;
        // Weight gradients in fixed pieces of channels (each owns its rows of the gradient),
        // input gradients in fixed pieces of texts (each owns its texts' token rows): the
        // same sums in the same order on any number of threads.
        for (j, (&k, (w, bias))) in kernels
            .iter()
            .zip(self.weights.iter_mut().zip(self.biases.iter_mut()))
            .enumerate()
        {
            if !w.trainable && !bias.trainable {
                continue;
            }
            let sel = ConvSel {
                gs,
                deriv,
                arg,
                offsets,
                cols,
                col0: j * ch,
                k,
                xs,
                d,
                w_on: w.trainable,
                b_on: bias.trainable,
            };
            let wg = w.grad.as_slice_mut().expect("contiguous");
            let bg = bias.grad.as_slice_mut().expect("contiguous");
            wg.par_chunks_mut(CHANNEL_PIECE * d * k)
                .zip(bg.par_chunks_mut(CHANNEL_PIECE))
                .enumerate()
                .for_each(|(piece, (wg, bg))| {
                    vectorized(
                        #[inline(always)]
                        || sel.weight_grads(piece * CHANNEL_PIECE, wg, bg),
                    );
                });
        }
        if !want_input {
            return None;
        }
        Some(self.input_grads(gs, &bases))
    }

    /// The input gradient of the last forward from the output gradient `gs` (row-major
    /// `[b, out_dim]`), in fixed pieces of texts, each owning its texts' token rows: the same
    /// sums in the same order on any number of threads.
    fn input_grads(&self, gs: &[f32], bases: &[usize]) -> Array2<f32> {
        let (d, ch, cols) = (self.in_dim, self.channels, self.out_dim());
        let cache = self
            .cache
            .as_ref()
            .expect("MultiConv::backward called before forward");
        let b = cache.offsets.len() - 1;
        let ws = cache.stacked.as_slice().expect("contiguous");
        let (arg, deriv, offsets) = (&cache.arg, &cache.deriv, &cache.offsets);
        let kernels = &self.kernels;
        let mut dx = Array2::<f32>::zeros(cache.x.view().dim());
        let dxs = dx.as_slice_mut().expect("contiguous");
        // Split the token rows at text boundaries, TEXT_PIECE texts per piece.
        let mut pieces: Vec<(usize, &mut [f32])> = Vec::with_capacity(b.div_ceil(TEXT_PIECE));
        let mut rest = dxs;
        for first in (0..b).step_by(TEXT_PIECE) {
            let last = (first + TEXT_PIECE).min(b);
            let rows = offsets[last] - offsets[first];
            let (head, tail) = rest.split_at_mut(rows * d);
            pieces.push((first, head));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(first, dx)| {
            let last = (first + TEXT_PIECE).min(b);
            let row0 = offsets[first];
            vectorized(
                #[inline(always)]
                || {
                    for (j, (&k, &base)) in kernels.iter().zip(bases).enumerate() {
                        let p = k / 2;
                        for c in 0..ch {
                            for i in first..last {
                                let r = i * cols + j * ch + c;
                                let gz = gs[r] * deriv[r];
                                if gz == 0.0 {
                                    continue;
                                }
                                let t = arg[r] as usize;
                                let (s, e) = (offsets[i], offsets[i + 1]);
                                for src in t.saturating_sub(p).max(s)..(t + p + 1).min(e) {
                                    let row = base + (src + p - t) * ch + c;
                                    axpy(&mut dx[(src - row0) * d..][..d], gz, &ws[row * d..][..d]);
                                }
                            }
                        }
                    }
                },
            );
        });
        dx
    }

    /// The parameters: kernel 0's weight and bias, kernel 1's, …
    pub fn params(&self) -> Vec<&Param> {
        self.weights
            .iter()
            .zip(&self.biases)
            .flat_map(|(w, b)| [w, b])
            .collect()
    }

    /// The parameters, mutably, in the same order. (Also invalidates the stacked weight copy
    /// that inference keeps.)
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        // The caller may change the weights: the inference copy is rebuilt on next use.
        self.inference_stack = OnceLock::new();
        self.weights
            .iter_mut()
            .zip(&mut self.biases)
            .flat_map(|(w, b)| [w, b])
            .collect()
    }

    /// No-op (the layer has no dropout); kept so that every sequence layer has the same API.
    pub fn reseed_dropout(&mut self, seed: u64) {
        let _ = seed;
    }

    /// Drops the cached activations and buffers.
    pub fn clear_cache(&mut self) {
        self.cache = None;
    }
}

/// The constructor's checks, shared with [`crate::nn::seq::SequenceConfig::validate`].
pub(crate) fn validate(in_dim: usize, kernels: &[usize], channels: usize) -> Result<()> {
    if in_dim == 0 {
        return Err(Error::invalid("convolution token width must be positive"));
    }
    if kernels.is_empty() {
        return Err(Error::invalid("convolution needs at least one kernel size"));
    }
    if let Some(&k) = kernels.iter().find(|&&k| k.is_multiple_of(2)) {
        return Err(Error::invalid(format!(
            "convolution kernel sizes must be odd (\"same\" padding centres the window on its \
             token), got {k} in {kernels:?}"
        )));
    }
    if channels == 0 {
        return Err(Error::invalid(
            "convolution channels must be positive, got 0",
        ));
    }
    Ok(())
}
