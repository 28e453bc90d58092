//! Multi-scale 1-D convolution with GELU and max pooling over each text.

use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use rand_chacha::ChaCha8Rng;

use super::{axpy, check_offsets};
use crate::error::{Error, Result};
use crate::nn::activation::{gelu, gelu_cdf};
use crate::nn::init::Init;
use crate::nn::matmul::matmul;
use crate::nn::param::{join_name, Param};
use crate::nn::simd::vectorized;
use crate::nn::special::exp_f32;

/// 1/√(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// d GELU/dx = Φ(x) + x·φ(x) (the same formula as [`crate::nn::Gelu`]'s backward).
#[inline]
fn gelu_grad(x: f32) -> f32 {
    gelu_cdf(x) + x * INV_SQRT_2PI * exp_f32(-0.5 * x * x)
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
/// with N = C·Σk, so the whole layer is ONE GEMM `Y = X·Wᵀ` (`[T, N]`) followed by a cheap
/// shift-add within each text: `z_t = b + Σ_o Y[t + o − k/2, (o, ·)]`. GELU is unimodal (it
/// falls to its minimum at x ≈ −0.75, then rises), so its maximum over a set of values is at the
/// set's largest or smallest value: the pass keeps a running max and min of z per channel and
/// evaluates GELU twice per text and channel instead of on all T·C values.
///
/// The backward pass exploits the max pooling: only the winning token of each (text, channel)
/// receives gradient, so the weight and input gradients are b·C·Σk row updates of length d
/// (about T/b times less work than the two dense GEMMs `dYᵀ·X` and `dY·W` they replace).
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
    x: Array2<f32>,
    offsets: Vec<usize>,
    /// The stacked weights `[N, d]` the forward used (row `base_j + o·C + c`).
    stacked: Array2<f32>,
    /// The GEMM output `[T, N]` (scratch; kept only to reuse the allocation).
    y: Array2<f32>,
    /// Per (text, output column): the token row whose GELU won the max pooling.
    arg: Vec<usize>,
    /// Per (text, output column): GELU'(z) at the winning token.
    deriv: Vec<f32>,
}

/// Scratch of the pooling pass (per channel).
struct Scratch {
    z: Vec<f32>,
    zmax: Vec<f32>,
    zmin: Vec<f32>,
    amax: Vec<usize>,
    amin: Vec<usize>,
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
                for e in 0..d {
                    let src = &ws[(c * d + e) * k..][..k];
                    for (o, &v) in src.iter().enumerate() {
                        os[(base + o * ch + c) * d + e] = v;
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
        let mut cache = match self.cache.take() {
            Some(mut c) if c.x.dim() == tokens.dim() => {
                c.x.assign(&tokens);
                c
            }
            _ => ConvCache {
                x: tokens.as_standard_layout().into_owned(),
                offsets: Vec::new(),
                stacked: Array2::zeros((n, self.in_dim)),
                y: Array2::zeros((t, n)),
                arg: Vec::new(),
                deriv: Vec::new(),
            },
        };
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
        let mut stacked = Array2::zeros((self.stacked_rows(), self.in_dim));
        self.stack_weights(&mut stacked);
        let mut y = Array2::zeros((tokens.nrows(), self.stacked_rows()));
        self.conv_pool(tokens, offsets, &stacked, &mut y, None)
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
    fn conv_pool(
        &self,
        x: ArrayView2<'_, f32>,
        offsets: &[usize],
        stacked: &Array2<f32>,
        y: &mut Array2<f32>,
        mut record: Option<(&mut Vec<usize>, &mut Vec<f32>)>,
    ) -> Array2<f32> {
        let (ch, n) = (self.channels, self.stacked_rows());
        matmul(y.view_mut(), false, x, stacked.t());
        let ys = y.as_slice().expect("contiguous");
        let cols = self.out_dim();
        let mut out = Array2::zeros((offsets.len() - 1, cols));
        let os = out.as_slice_mut().expect("contiguous");
        let bases = self.bases();
        let mut sc = Scratch {
            z: vec![0.0; ch],
            zmax: vec![0.0; ch],
            zmin: vec![0.0; ch],
            amax: vec![0; ch],
            amin: vec![0; ch],
        };
        vectorized(
            #[inline(always)]
            || {
                for (i, w) in offsets.windows(2).enumerate() {
                    let (s, e) = (w[0], w[1]);
                    for (j, (&k, &base)) in self.kernels.iter().zip(&bases).enumerate() {
                        let bias = self.biases[j].value.as_slice().expect("contiguous");
                        let p = k / 2;
                        sc.zmax.fill(f32::NEG_INFINITY);
                        sc.zmin.fill(f32::INFINITY);
                        sc.amax.fill(s);
                        sc.amin.fill(s);
                        for t in s..e {
                            // Window rows t−p..=t+p clipped to the text: rows outside it are
                            // the zero padding and contribute nothing.
                            sc.z.copy_from_slice(bias);
                            for src in t.saturating_sub(p).max(s)..(t + p + 1).min(e) {
                                let o = src + p - t;
                                let yr = &ys[src * n + base + o * ch..][..ch];
                                for (z, &v) in sc.z.iter_mut().zip(yr) {
                                    *z += v;
                                }
                            }
                            for c in 0..ch {
                                let z = sc.z[c];
                                if z > sc.zmax[c] {
                                    sc.zmax[c] = z;
                                    sc.amax[c] = t;
                                }
                                if z < sc.zmin[c] {
                                    sc.zmin[c] = z;
                                    sc.amin[c] = t;
                                }
                            }
                        }
                        // GELU is unimodal: its max over the text is at z's max or min.
                        let row = i * cols + j * ch;
                        for c in 0..ch {
                            let (ghi, glo) = (gelu(sc.zmax[c]), gelu(sc.zmin[c]));
                            let (g, z, t) = if glo > ghi {
                                (glo, sc.zmin[c], sc.amin[c])
                            } else {
                                (ghi, sc.zmax[c], sc.amax[c])
                            };
                            os[row + c] = g;
                            if let Some((arg, deriv)) = record.as_mut() {
                                arg[row + c] = t;
                                deriv[row + c] = gelu_grad(z);
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
        let (d, ch, n, cols) = (
            self.in_dim,
            self.channels,
            self.stacked_rows(),
            self.out_dim(),
        );
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
        let wtrain: Vec<bool> = self.weights.iter().map(|w| w.trainable).collect();
        let any_w = wtrain.iter().any(|&t| t);
        let mut dx = want_input.then(|| Array2::<f32>::zeros(cache.x.dim()));
        // Gradient of the stacked weights, rows as in the forward; scattered into the [C, d, k]
        // parameters at the end.
        let mut dstacked = any_w.then(|| Array2::<f32>::zeros((n, d)));
        let g = grad_out.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        let xs = cache.x.as_slice().expect("contiguous");
        let ws = cache.stacked.as_slice().expect("contiguous");
        let mut dxs = dx.as_mut().map(|a| a.as_slice_mut().expect("contiguous"));
        let mut dws = dstacked
            .as_mut()
            .map(|a| a.as_slice_mut().expect("contiguous"));
        let kernels = &self.kernels;
        let biases = &mut self.biases;
        vectorized(
            #[inline(always)]
            || {
                for (i, w) in cache.offsets.windows(2).enumerate() {
                    let (s, e) = (w[0], w[1]);
                    for (j, (&k, &base)) in kernels.iter().zip(&bases).enumerate() {
                        let p = k / 2;
                        let bias = &mut biases[j];
                        let mut bg = bias
                            .trainable
                            .then(|| bias.grad.as_slice_mut().expect("contiguous"));
                        for c in 0..ch {
                            let r = i * cols + j * ch + c;
                            // Max pooling routes the gradient to the winning token only.
                            let gz = gs[r] * cache.deriv[r];
                            if gz == 0.0 {
                                continue;
                            }
                            let t = cache.arg[r];
                            if let Some(bg) = bg.as_deref_mut() {
                                bg[c] += gz;
                            }
                            for src in t.saturating_sub(p).max(s)..(t + p + 1).min(e) {
                                let row = base + (src + p - t) * ch + c;
                                if let (true, Some(dw)) = (wtrain[j], dws.as_deref_mut()) {
                                    axpy(&mut dw[row * d..][..d], gz, &xs[src * d..][..d]);
                                }
                                if let Some(dx) = dxs.as_deref_mut() {
                                    axpy(&mut dx[src * d..][..d], gz, &ws[row * d..][..d]);
                                }
                            }
                        }
                    }
                }
            },
        );
        if let Some(dst) = &dstacked {
            let dst = dst.as_slice().expect("contiguous");
            for ((w, &k), base) in self.weights.iter_mut().zip(kernels).zip(&bases) {
                if !w.trainable {
                    continue;
                }
                let wg = w.grad.as_slice_mut().expect("contiguous");
                for c in 0..ch {
                    for e in 0..d {
                        for (o, a) in wg[(c * d + e) * k..][..k].iter_mut().enumerate() {
                            *a += dst[(base + o * ch + c) * d + e];
                        }
                    }
                }
            }
        }
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
