//! Multi-scale 1-D convolution with GELU and max pooling over each text.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewMut2, IxDyn};
use rand_chacha::ChaCha8Rng;

use super::{axpy, check_offsets, TokenBuf};
use crate::error::{Error, Result};
use crate::nn::activation::{gelu, gelu_cdf};
use crate::nn::init::Init;
use crate::nn::matmul::matmul;
use crate::nn::param::{join_name, Param};
use crate::nn::simd::vectorized;
use crate::nn::special::exp_f32;

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
/// W with N = C·Σk, so the whole layer is ONE GEMM `Yᵀ = W·Xᵀ` (`[N, T]`) followed by a cheap
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
    /// The GEMM output `Yᵀ` `[N, T]`, row-major (scratch; kept only to reuse the allocation).
    yt: Vec<f32>,
    /// Per (text, output column): the token row whose GELU won the max pooling.
    arg: Vec<u32>,
    /// Per (text, output column): GELU'(z) at the winning token.
    deriv: Vec<f32>,
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
            yt: Vec::new(),
            arg: Vec::new(),
            deriv: Vec::new(),
        });
        cache.x.assign(tokens);
        cache.yt.resize(n * t, 0.0);
        cache.offsets.clear();
        cache.offsets.extend_from_slice(offsets);
        cache.arg.resize(records, 0);
        cache.deriv.resize(records, 0.0);
        self.stack_weights(&mut cache.stacked);
        let out = self.conv_pool(
            cache.x.view(),
            offsets,
            &cache.stacked,
            &mut cache.yt,
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
        let mut stacked = Array2::zeros((self.stacked_rows(), self.in_dim));
        self.stack_weights(&mut stacked);
        let mut yt = vec![0.0; self.stacked_rows() * tokens.nrows()];
        self.conv_pool(tokens, offsets, &stacked, &mut yt, None)
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
    /// The GEMM writes `Yᵀ` (`[N, T]`, one row per kernel offset and channel): faer runs this
    /// orientation ~15 % faster than `[T, N]` for these shapes (measured 8.2 vs 9.8 ms at
    /// T = 917, d = 384, N = 1152), and the shift-add becomes contiguous slice adds along a
    /// text's tokens.
    fn conv_pool(
        &self,
        x: ArrayView2<'_, f32>,
        offsets: &[usize],
        stacked: &Array2<f32>,
        yt: &mut [f32],
        mut record: Option<(&mut Vec<u32>, &mut Vec<f32>)>,
    ) -> Array2<f32> {
        let (ch, tt) = (self.channels, x.nrows());
        assert!(
            u32::try_from(tt).is_ok(),
            "MultiConv: more than 2³² tokens in a batch"
        );
        let n = self.stacked_rows();
        let ytm = ArrayViewMut2::from_shape((n, tt), &mut *yt).expect("sized by the caller");
        matmul(ytm, false, stacked.view(), x.t());
        let ys = &*yt;
        let cols = self.out_dim();
        let mut out = Array2::zeros((offsets.len() - 1, cols));
        let os = out.as_slice_mut().expect("contiguous");
        let bases = self.bases();
        // Pre-activations of one (kernel, channel) for all T tokens.
        let mut z = vec![0.0f32; tt];
        vectorized(
            #[inline(always)]
            || {
                for (j, (&k, &base)) in self.kernels.iter().zip(&bases).enumerate() {
                    let bias = self.biases[j].value.as_slice().expect("contiguous");
                    let p = k / 2;
                    let tap = |c: usize, o: usize| &ys[(base + o * ch + c) * tt..][..tt];
                    for (c, &b) in bias.iter().enumerate() {
                        // z_t = b + Σ_o Y[t + o − p] over the whole packed batch at once (long
                        // contiguous adds) ...
                        z.fill(b);
                        for o in 0..k {
                            let lo = p.saturating_sub(o);
                            let hi = (tt + p).saturating_sub(o).min(tt);
                            if lo < hi {
                                let src = &tap(c, o)[lo + o - p..hi + o - p];
                                for (zv, &v) in z[lo..hi].iter_mut().zip(src) {
                                    *zv += v;
                                }
                            }
                        }
                        for (i, w) in offsets.windows(2).enumerate() {
                            let (s, e) = (w[0], w[1]);
                            // ... then the ≤ p tokens at each end of a text, whose windows
                            // reached into the neighbouring texts, are recomputed with only
                            // their in-text taps (the rest is the zero padding), in the same
                            // order: b, then taps by increasing o.
                            let head = (s + p).min(e);
                            let tail = e.saturating_sub(p).max(head);
                            for t in (s..head).chain(tail..e) {
                                let mut v = b;
                                for src in t.saturating_sub(p).max(s)..(t + p + 1).min(e) {
                                    v += tap(c, src + p - t)[src];
                                }
                                z[t] = v;
                            }
                            // The max of GELU over the text is at z's max or min (GELU is
                            // unimodal); strict comparisons keep the first token on ties.
                            let (mut zmax, mut amax) = (z[s], s);
                            let (mut zmin, mut amin) = (z[s], s);
                            for (t, &v) in z[s..e].iter().enumerate() {
                                if v > zmax {
                                    (zmax, amax) = (v, s + t);
                                }
                                if v < zmin {
                                    (zmin, amin) = (v, s + t);
                                }
                            }
                            // GELU ≥ 0 on [0, ∞) and < 0 below: with a non-negative maximum
                            // the minimum cannot win, and one GELU evaluation suffices.
                            let (zw, tw) = if zmax >= 0.0 || gelu(zmax) >= gelu(zmin) {
                                (zmax, amax)
                            } else {
                                (zmin, amin)
                            };
                            let cdf = gelu_cdf(zw);
                            let r = i * cols + j * ch + c;
                            os[r] = zw * cdf;
                            if let Some((arg, deriv)) = record.as_mut() {
                                arg[r] = tw as u32;
                                deriv[r] = gelu_grad(zw, cdf);
                            }
                        }
                    }
                }
            },
        );
        out
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
        let ws = cache.stacked.as_slice().expect("contiguous");
        let (arg, deriv, offsets) = (&cache.arg, &cache.deriv, &cache.offsets);
        let kmax = self.kernels.iter().copied().max().unwrap_or(0);
        // ∂loss/∂W_j[c, :, o] for one (kernel, channel), offset-major so that each update is a
        // contiguous row.
        let mut acc = vec![0.0f32; kmax * d];
        let mut dx = want_input.then(|| Array2::<f32>::zeros(cache.x.view().dim()));
        let kernels = &self.kernels;
        let (weights, biases) = (&mut self.weights, &mut self.biases);
        // Loops run kernel and channel outermost, texts inside: the k rows being updated stay
        // in L1 while the rows read (of X, T·d·4 bytes, or of the stacked weights) come from
        // L2. With texts outermost, every text would stream the whole 1.7 MB weight gradient
        // through L3 (measured: 2–3× slower).
        vectorized(
            #[inline(always)]
            || {
                for (j, (&k, (w, bias))) in kernels
                    .iter()
                    .zip(weights.iter_mut().zip(biases.iter_mut()))
                    .enumerate()
                {
                    let p = k / 2;
                    if !w.trainable && !bias.trainable {
                        continue;
                    }
                    let wg = w.grad.as_slice_mut().expect("contiguous");
                    let bg = bias.grad.as_slice_mut().expect("contiguous");
                    for c in 0..ch {
                        let acc = &mut acc[..k * d];
                        acc.fill(0.0);
                        let mut bsum = 0.0f32;
                        for (i, seg) in offsets.windows(2).enumerate() {
                            let r = i * cols + j * ch + c;
                            // Max pooling routes the gradient to the winning token only.
                            let gz = gs[r] * deriv[r];
                            if gz == 0.0 {
                                continue;
                            }
                            bsum += gz;
                            let t = arg[r] as usize;
                            for src in t.saturating_sub(p).max(seg[0])..(t + p + 1).min(seg[1]) {
                                let o = src + p - t;
                                axpy(&mut acc[o * d..][..d], gz, &xs[src * d..][..d]);
                            }
                        }
                        if bias.trainable {
                            bg[c] += bsum;
                        }
                        if w.trainable {
                            // Into the [C, d, k] layout: a local transpose of k rows.
                            let dst = &mut wg[c * d * k..][..d * k];
                            for o in 0..k {
                                let strided = dst[o..].iter_mut().step_by(k);
                                for (v, &a) in strided.zip(&acc[o * d..][..d]) {
                                    *v += a;
                                }
                            }
                        }
                    }
                }
                let Some(dx) = dx.as_mut() else {
                    return;
                };
                let dxs = dx.as_slice_mut().expect("contiguous");
                for (j, (&k, &base)) in kernels.iter().zip(&bases).enumerate() {
                    let p = k / 2;
                    for c in 0..ch {
                        for (i, seg) in offsets.windows(2).enumerate() {
                            let r = i * cols + j * ch + c;
                            let gz = gs[r] * deriv[r];
                            if gz == 0.0 {
                                continue;
                            }
                            let t = arg[r] as usize;
                            for src in t.saturating_sub(p).max(seg[0])..(t + p + 1).min(seg[1]) {
                                let row = base + (src + p - t) * ch + c;
                                axpy(&mut dxs[src * d..][..d], gz, &ws[row * d..][..d]);
                            }
                        }
                    }
                }
            },
        );
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

    /// The parameters, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
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
