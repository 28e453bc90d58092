//! A small post-LN transformer encoder layer over the tokens of each text.

use ndarray::{Array2, ArrayView2};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{axpy, check_offsets};
use crate::error::{Error, Result};
use crate::nn::activation::Gelu;
use crate::nn::dropout::Dropout;
use crate::nn::init::Init;
use crate::nn::layer::Layer;
use crate::nn::linear::Linear;
use crate::nn::norm::{LayerNorm, LAYER_NORM_EPS};
use crate::nn::param::{join_name, Param};
use crate::nn::simd::{self, vectorized};
use crate::nn::special::exp_f32;

/// Positions whose encodings are precomputed at construction (longer texts compute the rest
/// on the fly with the same function, so results do not depend on the table size).
const PE_TABLE_ROWS: usize = 256;

/// The divisor of feature `j` of `d` in [`positional`]'s angle, 10000^(2i/d) with 2i = j
/// rounded down to even, in f64 (shared with the ONNX writer, so both compute the same angle).
pub(crate) fn position_divisor(j: usize, d: usize) -> f64 {
    let i2 = (j / 2 * 2) as f64;
    10000f64.powf(i2 / d as f64)
}

/// The sinusoidal encoding of position `pos`, feature `j` of `d` (Vaswani et al. 2017):
/// sin(pos/10000^(2i/d)) for j = 2i, cos(pos/10000^(2i/d)) for j = 2i + 1. Computed in f64 so
/// that the table and the on-the-fly values are the same correctly rounded f32.
fn positional(pos: usize, j: usize, d: usize) -> f32 {
    let angle = pos as f64 / position_divisor(j, d);
    (if j.is_multiple_of(2) {
        angle.sin()
    } else {
        angle.cos()
    }) as f32
}

/// One post-LN transformer encoder layer (as PyTorch's `TransformerEncoderLayer` with
/// `norm_first=False`, GELU), applied to each text separately:
///
/// ```text
/// x₀  = tokens + PE             (sinusoidal; positions restart at 0 in every text)
/// h₁  = LayerNorm₁(x₀ + Dropout(MHA(x₀)))
/// out = LayerNorm₂(h₁ + Dropout(W₂·GELU(W₁·h₁ + b₁) + b₂))
/// ```
///
/// Multi-head self-attention only relates tokens of the same text (no padding, no masks:
/// the score matrix of a text is `[n, n]`). Tokens map to tokens: the output is `[T, d]`.
///
/// Parameters (PyTorch Linear layouts): `{name}.q.weight` `[d, d]`, `{name}.q.bias`, likewise
/// `k`, `v` and `o` (the attention output projection), `{name}.norm1.{weight,bias}`,
/// `{name}.ffn1.{weight,bias}` `[ffn, d]`, `{name}.ffn2.{weight,bias}` `[d, ffn]`,
/// `{name}.norm2.{weight,bias}`. Q/K/V/O and the second FFN layer are Xavier-uniform, the first
/// FFN layer Kaiming-uniform (it feeds GELU); biases start at zero.
///
/// The projections and the FFN run over all T tokens at once (GEMMs); only the attention
/// itself (scores, softmax, weighted sums) works per text, with small loops over each text's
/// `n × n` scores.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    name: String,
    in_dim: usize,
    heads: usize,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    drop1: Dropout,
    norm1: LayerNorm,
    ffn1: Linear,
    act: Gelu,
    ffn2: Linear,
    drop2: Dropout,
    norm2: LayerNorm,
    /// Whether sinusoidal positions are added to the input (always for the public
    /// constructor; BERT layers, whose positions are in the embeddings, turn them off).
    positions: bool,
    /// Positional encodings `[PE_TABLE_ROWS, d]` (`[0, d]` without positions).
    pe: Array2<f32>,
    cache: Option<AttnCache>,
}

/// The attention's share of the training cache (the sub-layers cache their own inputs).
#[derive(Debug, Clone)]
struct AttnCache {
    offsets: Vec<usize>,
    q: Array2<f32>,
    k: Array2<f32>,
    v: Array2<f32>,
    /// Softmax weights: for each text (n tokens) and head, an `[n, n]` block, row-major.
    probs: Vec<f32>,
}

impl EncoderLayer {
    /// A layer over `in_dim`-wide tokens with `heads` attention heads (dividing `in_dim`), an
    /// FFN of width `ffn` and dropout probability `dropout` in [0, 1) on the two residual
    /// branches. Draws, in order, the Q, K, V, O, FFN weights and the two dropout seeds from
    /// `rng`.
    pub fn new(
        in_dim: usize,
        heads: usize,
        ffn: usize,
        dropout: f32,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        Self::with_options(in_dim, heads, ffn, dropout, LAYER_NORM_EPS, true, rng)
    }

    /// [`EncoderLayer::new`] with the LayerNorm ε and the positional encodings chosen (the core
    /// shared with [`crate::nn::bert::BertLayer`]). Draws from `rng` exactly as `new` does.
    pub(crate) fn with_options(
        in_dim: usize,
        heads: usize,
        ffn: usize,
        dropout: f32,
        eps: f32,
        positions: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        validate(in_dim, heads, ffn)?;
        if !(0.0..1.0).contains(&dropout) {
            return Err(Error::invalid(format!(
                "transformer dropout must be in [0, 1), got {dropout}"
            )));
        }
        let q = Linear::new(in_dim, in_dim, Init::XavierUniform, rng);
        let k = Linear::new(in_dim, in_dim, Init::XavierUniform, rng);
        let v = Linear::new(in_dim, in_dim, Init::XavierUniform, rng);
        let o = Linear::new(in_dim, in_dim, Init::XavierUniform, rng);
        let ffn1 = Linear::new(in_dim, ffn, Init::KaimingUniform, rng);
        let ffn2 = Linear::new(ffn, in_dim, Init::XavierUniform, rng);
        let drop1 = Dropout::new(dropout, rng)?;
        let drop2 = Dropout::new(dropout, rng)?;
        let pe_rows = if positions { PE_TABLE_ROWS } else { 0 };
        let pe = Array2::from_shape_fn((pe_rows, in_dim), |(p, j)| positional(p, j, in_dim));
        let mut layer = EncoderLayer {
            name: String::new(),
            in_dim,
            heads,
            q,
            k,
            v,
            o,
            drop1,
            norm1: LayerNorm::with_eps(in_dim, eps),
            ffn1,
            act: Gelu::new(),
            ffn2,
            drop2,
            norm2: LayerNorm::with_eps(in_dim, eps),
            positions,
            pe,
            cache: None,
        };
        layer.set_name("");
        Ok(layer)
    }

    /// Builder form of [`EncoderLayer::set_name`].
    pub fn named(mut self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Renames the layer and its sub-layers (`{name}.q`, `{name}.norm1`, …).
    pub fn set_name(&mut self, name: &str) {
        self.set_names(
            name,
            [
                "q", "k", "v", "o", "dropout1", "norm1", "ffn1", "act", "ffn2", "dropout2", "norm2",
            ],
        );
    }

    /// Renames the layer to `name` and its sub-layers to `{name}.{child}`, children in the
    /// order q, k, v, o, dropout1, norm1, ffn1, act, ffn2, dropout2, norm2 (BERT layers use
    /// BERT's names).
    pub(crate) fn set_names(&mut self, name: &str, children: [&str; 11]) {
        self.name = name.to_string();
        let [q, k, v, o, d1, n1, f1, act, f2, d2, n2] = children;
        self.q.set_name(&join_name(name, q));
        self.k.set_name(&join_name(name, k));
        self.v.set_name(&join_name(name, v));
        self.o.set_name(&join_name(name, o));
        self.drop1.set_name(&join_name(name, d1));
        self.norm1.set_name(&join_name(name, n1));
        self.ffn1.set_name(&join_name(name, f1));
        self.act.set_name(&join_name(name, act));
        self.ffn2.set_name(&join_name(name, f2));
        self.drop2.set_name(&join_name(name, d2));
        self.norm2.set_name(&join_name(name, n2));
    }

    /// The layer's full name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Token width d.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output width (d: tokens map to tokens).
    pub fn out_dim(&self) -> usize {
        self.in_dim
    }

    /// Number of attention heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// FFN width.
    pub fn ffn(&self) -> usize {
        self.ffn1.out_features()
    }

    /// Dropout probability of the residual branches.
    pub fn dropout(&self) -> f32 {
        self.drop1.p()
    }

    /// The attention's query, key, value and output projections, in that order (read-only:
    /// for writing the layer in other formats).
    pub fn projections(&self) -> [&Linear; 4] {
        [&self.q, &self.k, &self.v, &self.o]
    }

    /// The FFN's two layers (`d → ffn`, then `ffn → d`).
    pub fn ffn_layers(&self) -> [&Linear; 2] {
        [&self.ffn1, &self.ffn2]
    }

    /// The LayerNorms after the attention and after the FFN.
    pub fn norms(&self) -> [&LayerNorm; 2] {
        [&self.norm1, &self.norm2]
    }

    /// tokens + positional encodings, positions restarting in every text.
    fn with_positions(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        assert_eq!(
            tokens.ncols(),
            self.in_dim,
            "EncoderLayer {:?}: tokens have {} features, expected {}",
            self.name,
            tokens.ncols(),
            self.in_dim
        );
        check_offsets("EncoderLayer", offsets, tokens.nrows());
        let d = self.in_dim;
        let mut x0 = tokens.as_standard_layout().into_owned();
        if !self.positions {
            return x0;
        }
        let xs = x0.as_slice_mut().expect("contiguous");
        let pe = self.pe.as_slice().expect("contiguous");
        for w in offsets.windows(2) {
            for (pos, t) in (w[0]..w[1]).enumerate() {
                let row = &mut xs[t * d..][..d];
                if pos < PE_TABLE_ROWS {
                    for (x, &p) in row.iter_mut().zip(&pe[pos * d..][..d]) {
                        *x += p;
                    }
                } else {
                    for (j, x) in row.iter_mut().enumerate() {
                        *x += positional(pos, j, d);
                    }
                }
            }
        }
        x0
    }

    /// Training forward `[T, d] → [T, d]`; caches every intermediate the backward pass needs.
    /// `train` enables dropout.
    ///
    /// # Panics
    /// If `tokens` is not `in_dim` wide or `offsets` does not pack its rows.
    pub fn forward(
        &mut self,
        tokens: ArrayView2<'_, f32>,
        offsets: &[usize],
        train: bool,
    ) -> Array2<f32> {
        let x0 = self.with_positions(tokens, offsets);
        let q = self.q.forward(x0.view(), train);
        let k = self.k.forward(x0.view(), train);
        let v = self.v.forward(x0.view(), train);
        let mut probs = self.cache.take().map(|c| c.probs).unwrap_or_default();
        let att = attend(self.heads, &q, &k, &v, offsets, &mut probs);
        let a = self.o.forward(att.view(), train);
        let mut r1 = self.drop1.forward(a.view(), train);
        r1 += &x0;
        let h1 = self.norm1.forward(r1.view(), train);
        let f = self.ffn1.forward(h1.view(), train);
        let f = self.act.forward(f.view(), train);
        let f = self.ffn2.forward(f.view(), train);
        let mut r2 = self.drop2.forward(f.view(), train);
        r2 += &h1;
        self.cache = Some(AttnCache {
            offsets: offsets.to_vec(),
            q,
            k,
            v,
            probs,
        });
        self.norm2.forward(r2.view(), train)
    }

    /// Inference forward: no caching, no dropout, `&self`.
    ///
    /// # Panics
    /// As [`EncoderLayer::forward`].
    pub fn forward_inference(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        let x0 = self.with_positions(tokens, offsets);
        let q = self.q.forward_inference(x0.view());
        let k = self.k.forward_inference(x0.view());
        let v = self.v.forward_inference(x0.view());
        let att = attend(self.heads, &q, &k, &v, offsets, &mut Vec::new());
        let mut r1 = self.o.forward_inference(att.view());
        r1 += &x0;
        let h1 = self.norm1.forward_inference(r1.view());
        let f = self.ffn1.forward_inference(h1.view());
        let f = self.act.forward_inference(f.view());
        let mut r2 = self.ffn2.forward_inference(f.view());
        r2 += &h1;
        self.norm2.forward_inference(r2.view())
    }

    /// Backward for the last [`EncoderLayer::forward`]: accumulates the parameter gradients and
    /// returns ∂loss/∂tokens `[T, d]` (the positional encodings are constants).
    ///
    /// # Panics
    /// Before any forward, or if `grad_out` is not `[T, d]`.
    pub fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        self.grads(grad_out, true)
            .expect("input gradient requested")
    }

    /// Like [`EncoderLayer::backward`] without the input gradient: skips the three input-side
    /// GEMMs of the Q/K/V projections.
    pub fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        let _ = self.grads(grad_out, false);
    }

    fn grads(&mut self, grad_out: ArrayView2<'_, f32>, want_input: bool) -> Option<Array2<f32>> {
        assert!(
            self.cache.is_some(),
            "EncoderLayer::backward called before forward"
        );
        let dr2 = self.norm2.backward(grad_out);
        let df = self.drop2.backward(dr2.view());
        let df = self.ffn2.backward(df.view());
        let df = self.act.backward(df.view());
        let mut dh1 = self.ffn1.backward(df.view());
        dh1 += &dr2;
        let dr1 = self.norm1.backward(dh1.view());
        let da = self.drop1.backward(dr1.view());
        let datt = self.o.backward(da.view());
        let cache = self.cache.as_ref().expect("checked above");
        let (dq, dk, dv) = attend_backward(self.heads, cache, &datt);
        if want_input {
            let mut dx = dr1;
            dx += &self.q.backward(dq.view());
            dx += &self.k.backward(dk.view());
            dx += &self.v.backward(dv.view());
            Some(dx)
        } else {
            self.q.backward_params_only(dq.view());
            self.k.backward_params_only(dk.view());
            self.v.backward_params_only(dv.view());
            None
        }
    }

    /// The parameters: q, k, v, o (weight, bias each), norm1, ffn1, ffn2, norm2.
    pub fn params(&self) -> Vec<&Param> {
        let mut ps = self.q.params();
        ps.extend(self.k.params());
        ps.extend(self.v.params());
        ps.extend(self.o.params());
        ps.extend(self.norm1.params());
        ps.extend(self.ffn1.params());
        ps.extend(self.ffn2.params());
        ps.extend(self.norm2.params());
        ps
    }

    /// The parameters, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut ps = self.q.params_mut();
        ps.extend(self.k.params_mut());
        ps.extend(self.v.params_mut());
        ps.extend(self.o.params_mut());
        ps.extend(self.norm1.params_mut());
        ps.extend(self.ffn1.params_mut());
        ps.extend(self.ffn2.params_mut());
        ps.extend(self.norm2.params_mut());
        ps
    }

    /// Sets the dropout probability of both residual branches.
    ///
    /// # Errors
    /// For `p` outside [0, 1).
    pub fn set_dropout(&mut self, p: f32) -> Result<()> {
        self.drop1.set_p(p)?;
        self.drop2.set_p(p)
    }

    /// The two dropout streams as they stand (see [`Dropout::stream`]).
    pub fn dropout_streams(&self) -> [ChaCha8Rng; 2] {
        [self.drop1.stream(), self.drop2.stream()]
    }

    /// Puts back streams taken by [`EncoderLayer::dropout_streams`]: the next training
    /// forwards draw the same masks again.
    pub fn set_dropout_streams(&mut self, [a, b]: [ChaCha8Rng; 2]) {
        self.drop1.set_stream(a);
        self.drop2.set_stream(b);
    }

    /// Restarts the two dropout streams from seeds derived from `seed`.
    pub fn reseed_dropout(&mut self, seed: u64) {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        self.drop1.reseed(master.next_u64());
        self.drop2.reseed(master.next_u64());
    }

    /// Drops the cached activations of the layer and its sub-layers.
    pub fn clear_cache(&mut self) {
        self.cache = None;
        for l in [&mut self.q, &mut self.k, &mut self.v, &mut self.o] {
            l.clear_cache();
        }
        self.ffn1.clear_cache();
        self.ffn2.clear_cache();
        self.act.clear_cache();
        self.norm1.clear_cache();
        self.norm2.clear_cache();
        self.drop1.clear_cache();
        self.drop2.clear_cache();
    }
}

/// Scaled dot-product attention of every head within every text: returns the concatenated
/// heads `[T, d]` and leaves the softmax weights in `probs` (layout of [`AttnCache::probs`]).
fn attend(
    heads: usize,
    q: &Array2<f32>,
    k: &Array2<f32>,
    v: &Array2<f32>,
    offsets: &[usize],
    probs: &mut Vec<f32>,
) -> Array2<f32> {
    let (t_rows, d) = q.dim();
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let total: usize = offsets
        .windows(2)
        .map(|w| heads * (w[1] - w[0]).pow(2))
        .sum();
    probs.clear();
    probs.resize(total, 0.0);
    let (qs, ks, vs) = (
        q.as_slice().expect("contiguous"),
        k.as_slice().expect("contiguous"),
        v.as_slice().expect("contiguous"),
    );
    let mut att = Array2::zeros((t_rows, d));
    let out = att.as_slice_mut().expect("contiguous");
    vectorized(
        #[inline(always)]
        || {
            let mut base = 0;
            for w in offsets.windows(2) {
                let (s, n) = (w[0], w[1] - w[0]);
                for h in 0..heads {
                    let col = h * dh;
                    for a in 0..n {
                        let qa = &qs[(s + a) * d + col..][..dh];
                        let pr = &mut probs[base + (h * n + a) * n..][..n];
                        for (b, p) in pr.iter_mut().enumerate() {
                            *p = simd::dot(qa, &ks[(s + b) * d + col..][..dh]) * scale;
                        }
                        // Stable softmax: subtract the row maximum.
                        let m = pr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mut z = 0.0f32;
                        for p in pr.iter_mut() {
                            *p = exp_f32(*p - m);
                            z += *p;
                        }
                        let inv = 1.0 / z;
                        let dst = &mut out[(s + a) * d + col..][..dh];
                        for (b, p) in pr.iter_mut().enumerate() {
                            *p *= inv;
                            axpy(dst, *p, &vs[(s + b) * d + col..][..dh]);
                        }
                    }
                }
                base += heads * n * n;
            }
        },
    );
    att
}

/// Backward of [`attend`]: from ∂loss/∂(concatenated heads) to ∂loss/∂Q, ∂K, ∂V.
fn attend_backward(
    heads: usize,
    cache: &AttnCache,
    datt: &Array2<f32>,
) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
    let (t_rows, d) = cache.q.dim();
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let (qs, ks, vs) = (
        cache.q.as_slice().expect("contiguous"),
        cache.k.as_slice().expect("contiguous"),
        cache.v.as_slice().expect("contiguous"),
    );
    let gs = datt.as_slice().expect("contiguous");
    let mut dq = Array2::zeros((t_rows, d));
    let mut dk = Array2::zeros((t_rows, d));
    let mut dv = Array2::zeros((t_rows, d));
    let (dqs, dks, dvs) = (
        dq.as_slice_mut().expect("contiguous"),
        dk.as_slice_mut().expect("contiguous"),
        dv.as_slice_mut().expect("contiguous"),
    );
    let longest = cache.offsets.windows(2).map(|w| w[1] - w[0]).max();
    let mut ds = vec![0.0f32; longest.unwrap_or(0)];
    vectorized(
        #[inline(always)]
        || {
            let mut base = 0;
            for w in cache.offsets.windows(2) {
                let (s, n) = (w[0], w[1] - w[0]);
                for h in 0..heads {
                    let col = h * dh;
                    for a in 0..n {
                        let ga = &gs[(s + a) * d + col..][..dh];
                        let pr = &cache.probs[base + (h * n + a) * n..][..n];
                        let ds = &mut ds[..n];
                        // out_a = Σ_b p_ab v_b: ∂p_ab = g_a·v_b, ∂v_b += p_ab g_a.
                        let mut c = 0.0f32;
                        for (b, (dsb, &p)) in ds.iter_mut().zip(pr).enumerate() {
                            let off = (s + b) * d + col;
                            *dsb = simd::dot(ga, &vs[off..][..dh]);
                            c += p * *dsb;
                            axpy(&mut dvs[off..][..dh], p, ga);
                        }
                        // Softmax Jacobian, then the score scale: ∂score_ab = p (∂p − c)·scale,
                        // score_ab = q_a·k_b.
                        let qa_off = (s + a) * d + col;
                        for (b, (&dsb, &p)) in ds.iter().zip(pr).enumerate() {
                            let gsc = p * (dsb - c) * scale;
                            let off = (s + b) * d + col;
                            axpy(&mut dqs[qa_off..][..dh], gsc, &ks[off..][..dh]);
                            axpy(&mut dks[off..][..dh], gsc, &qs[qa_off..][..dh]);
                        }
                    }
                }
                base += heads * n * n;
            }
        },
    );
    (dq, dk, dv)
}

/// The constructor's structural checks, shared with
/// [`crate::nn::seq::SequenceConfig::validate_for`].
pub(crate) fn validate(in_dim: usize, heads: usize, ffn: usize) -> Result<()> {
    if in_dim == 0 {
        return Err(Error::invalid("transformer token width must be positive"));
    }
    if heads == 0 || ffn == 0 {
        return Err(Error::invalid(format!(
            "transformer heads and FFN width must be positive, got {heads} heads and FFN {ffn}"
        )));
    }
    if !in_dim.is_multiple_of(heads) {
        return Err(Error::invalid(format!(
            "transformer heads ({heads}) must divide the token width ({in_dim})"
        )));
    }
    Ok(())
}
