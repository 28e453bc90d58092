//! Attention pooling: a learned weighted mean of each text's tokens.

use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use rand_chacha::ChaCha8Rng;

use super::{axpy, check_offsets, TokenBuf};
use crate::error::{Error, Result};
use crate::nn::init::Init;
use crate::nn::matmul::{matmul, matmul_on, Kernel};
use crate::nn::param::{join_name, Param};
use crate::nn::simd::{self, vectorized};
use crate::nn::special::exp_f32;

/// Masked attention pooling with `h` learned queries.
///
/// Each token x_t gets one score per query, s_t = W·x_t + b (a Linear `d → h`); the scores of
/// each text go through a softmax over that text's tokens only (so a text never sees another
/// text's tokens, and no padding mask is needed), and query q pools Σ_t α_tq · x_t. The output
/// concatenates the queries: `[b, h·d]`, query q in columns `q·d..(q+1)·d`.
///
/// Parameters: `{name}.score.weight` `[h, d]` (Xavier-uniform) and `{name}.score.bias` `[h]`
/// (zero; it cancels in the softmax but is kept so the scorer is a plain PyTorch Linear).
/// With zero weights the layer is mean pooling.
#[derive(Debug, Clone)]
pub struct AttentionPool {
    name: String,
    weight: Param,
    bias: Param,
    cache: Option<PoolCache>,
}

/// What the backward pass needs from the last training forward.
#[derive(Debug, Clone)]
struct PoolCache {
    /// The input tokens `[T, d]` (the caller's view may not outlive the forward call).
    x: TokenBuf,
    offsets: Vec<usize>,
    /// Attention weights `[T, h]`.
    alpha: Array2<f32>,
}

impl AttentionPool {
    /// A pool over `in_dim`-wide tokens with `queries` ≥ 1 learned queries, its weight drawn
    /// from `rng`.
    pub fn new(in_dim: usize, queries: usize, rng: &mut ChaCha8Rng) -> Result<Self> {
        if in_dim == 0 || queries == 0 {
            return Err(Error::invalid(format!(
                "attention pooling needs a positive token width and number of queries, got \
                 width {in_dim} and {queries} queries"
            )));
        }
        Ok(AttentionPool {
            name: String::new(),
            weight: Param::new(
                "score.weight",
                Init::XavierUniform.matrix(queries, in_dim, rng),
            ),
            bias: Param::new("score.bias", ArrayD::zeros(IxDyn(&[queries]))),
            cache: None,
        })
    }

    /// Builder form of [`AttentionPool::set_name`].
    pub fn named(mut self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Renames the layer and its parameters (`{name}.score.weight`, `{name}.score.bias`).
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        self.weight.name = join_name(name, "score.weight");
        self.bias.name = join_name(name, "score.bias");
    }

    /// The layer's full name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Token width d.
    pub fn in_dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Number of queries h.
    pub fn queries(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Output width h·d.
    pub fn out_dim(&self) -> usize {
        self.queries() * self.in_dim()
    }

    /// The scorer's weight `[h, d]` (read-only: for writing the layer in other formats).
    pub fn score_weight(&self) -> &Param {
        &self.weight
    }

    /// The scorer's bias `[h]`.
    pub fn score_bias(&self) -> &Param {
        &self.bias
    }

    /// Training forward: pools each text and caches what [`AttentionPool::backward`] needs.
    /// `train` is accepted for a uniform API; the layer has no dropout.
    ///
    /// # Panics
    /// If `tokens` is not `in_dim` wide or `offsets` does not pack its rows (see
    /// [`crate::nn::seq`]).
    pub fn forward(
        &mut self,
        tokens: ArrayView2<'_, f32>,
        offsets: &[usize],
        train: bool,
    ) -> Array2<f32> {
        let _ = train;
        let (t, h) = (tokens.nrows(), self.queries());
        let mut cache = self.cache.take().unwrap_or_else(|| PoolCache {
            x: TokenBuf::default(),
            offsets: Vec::new(),
            alpha: Array2::zeros((0, 0)),
        });
        cache.x.assign(tokens);
        cache.offsets.clear();
        cache.offsets.extend_from_slice(offsets);
        if cache.alpha.dim() != (t, h) {
            cache.alpha = Array2::zeros((t, h));
        }
        let y = self.pool(cache.x.view(), offsets, &mut cache.alpha, Kernel::Fast);
        self.cache = Some(cache);
        y
    }

    /// Inference forward: no caching, `&self`.
    ///
    /// # Panics
    /// As [`AttentionPool::forward`].
    pub fn forward_inference(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        let mut alpha = Array2::zeros((tokens.nrows(), self.queries()));
        self.pool(tokens, offsets, &mut alpha, Kernel::Bounded)
    }

    /// Scores, segment softmax into `alpha` `[T, h]`, and the weighted sums.
    fn pool(
        &self,
        x: ArrayView2<'_, f32>,
        offsets: &[usize],
        alpha: &mut Array2<f32>,
        kernel: Kernel,
    ) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.in_dim(),
            "AttentionPool {:?}: tokens have {} features, expected {}",
            self.name,
            x.ncols(),
            self.in_dim()
        );
        check_offsets("AttentionPool", offsets, x.nrows());
        let (d, h) = (self.in_dim(), self.queries());
        // Scores for all T tokens in one GEMM, starting from the bias.
        let b = self.bias.value.as_slice().expect("contiguous");
        for mut row in alpha.rows_mut() {
            row.as_slice_mut().expect("contiguous").copy_from_slice(b);
        }
        matmul_on(kernel, alpha.view_mut(), true, x, self.weight.value2().t());
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let al = alpha.as_slice_mut().expect("contiguous");
        let mut out = Array2::zeros((offsets.len() - 1, h * d));
        let os = out.as_slice_mut().expect("contiguous");
        vectorized(
            #[inline(always)]
            || {
                for (i, w) in offsets.windows(2).enumerate() {
                    let (s, e) = (w[0], w[1]);
                    for q in 0..h {
                        // Stable softmax over this text's tokens: subtract the maximum so that
                        // exp never overflows and the largest weight is exactly e⁰ = 1.
                        let m = (s..e)
                            .map(|t| al[t * h + q])
                            .fold(f32::NEG_INFINITY, f32::max);
                        let mut z = 0.0f32;
                        for t in s..e {
                            let v = exp_f32(al[t * h + q] - m);
                            al[t * h + q] = v;
                            z += v;
                        }
                        let inv = 1.0 / z;
                        let dst = &mut os[(i * h + q) * d..][..d];
                        for t in s..e {
                            let a = al[t * h + q] * inv;
                            al[t * h + q] = a;
                            axpy(dst, a, &xs[t * d..][..d]);
                        }
                    }
                }
            },
        );
        out
    }

    /// Backward for the last [`AttentionPool::forward`]: accumulates the parameter gradients
    /// and returns ∂loss/∂tokens `[T, d]`.
    ///
    /// # Panics
    /// Before any forward, or if `grad_out` is not `[b, h·d]`.
    pub fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        self.grads(grad_out, true)
            .expect("input gradient requested")
    }

    /// Like [`AttentionPool::backward`] without the input gradient (for tokens that are data).
    pub fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        let _ = self.grads(grad_out, false);
    }

    fn grads(&mut self, grad_out: ArrayView2<'_, f32>, want_input: bool) -> Option<Array2<f32>> {
        let (d, h) = (self.in_dim(), self.queries());
        let cache = self
            .cache
            .as_ref()
            .expect("AttentionPool::backward called before forward");
        let b = cache.offsets.len() - 1;
        assert_eq!(
            grad_out.dim(),
            (b, h * d),
            "AttentionPool {:?}: gradient shape does not match the last output",
            self.name
        );
        let t_rows = cache.x.view().nrows();
        let need_scores = self.weight.trainable || self.bias.trainable || want_input;
        let mut dx = want_input.then(|| Array2::<f32>::zeros((t_rows, d)));
        if !need_scores {
            return dx;
        }
        let g = grad_out.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        let xs = cache.x.as_slice();
        let al = cache.alpha.as_slice().expect("contiguous");
        let mut ds = Array2::<f32>::zeros((t_rows, h));
        let dss = ds.as_slice_mut().expect("contiguous");
        let mut dxs = dx.as_mut().map(|a| a.as_slice_mut().expect("contiguous"));
        vectorized(
            #[inline(always)]
            || {
                for (i, w) in cache.offsets.windows(2).enumerate() {
                    let (s, e) = (w[0], w[1]);
                    for q in 0..h {
                        let gq = &gs[(i * h + q) * d..][..d];
                        // ∂loss/∂α_t = g·x_t; the softmax Jacobian turns it into
                        // ∂loss/∂s_t = α_t (g·x_t − Σ_u α_u g·x_u).
                        let mut c = 0.0f32;
                        for t in s..e {
                            let da = simd::dot(gq, &xs[t * d..][..d]);
                            dss[t * h + q] = da;
                            c += al[t * h + q] * da;
                        }
                        for t in s..e {
                            let a = al[t * h + q];
                            dss[t * h + q] = a * (dss[t * h + q] - c);
                            // The direct path: the pooled sum is linear in x_t with weight α_t.
                            if let Some(dx) = dxs.as_deref_mut() {
                                axpy(&mut dx[t * d..][..d], a, gq);
                            }
                        }
                    }
                }
            },
        );
        if self.weight.trainable {
            matmul(self.weight.grad2_mut(), true, ds.t(), cache.x.view());
        }
        if self.bias.trainable {
            let bg = self.bias.grad.as_slice_mut().expect("contiguous");
            for row in ds.rows() {
                for (a, &v) in bg.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
        if let Some(dx) = dx.as_mut() {
            // The path through the scores: ∂s/∂x = W.
            matmul(dx.view_mut(), true, ds.view(), self.weight.value2());
        }
        dx
    }

    /// The parameters: score weight, score bias.
    pub fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    /// The parameters, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    /// No-op (the layer has no dropout); kept so that every sequence layer has the same API.
    pub fn reseed_dropout(&mut self, seed: u64) {
        let _ = seed;
    }

    /// Drops the cached activations.
    pub fn clear_cache(&mut self) {
        self.cache = None;
    }
}
