//! One BERT encoder layer (the transformer block of BERT, MiniLM and their kin), natively, with
//! forward and backward, so that the top layers of a frozen backbone can be fine-tuned on the
//! device.
//!
//! A BERT layer is the post-LN block of [`crate::nn::seq::EncoderLayer`] without positional
//! encodings (BERT adds its positions in the embeddings, before the first layer) and with BERT's
//! LayerNorm ε (1e-12), so it is built on the same core:
//!
//! ```text
//! Q, K, V = x·W_qᵀ + b_q, x·W_kᵀ + b_k, x·W_vᵀ + b_v
//! A       = per head h: softmax(Q_h·K_hᵀ / √(d/heads)) · V_h   (over the text's own tokens)
//! h₁      = LayerNorm₁(x + A·W_oᵀ + b_o)
//! out     = LayerNorm₂(h₁ + W₂·GELU(W₁·h₁ + b₁) + b₂)         (exact erf GELU)
//! ```
//!
//! Batches are packed (see [`crate::nn::seq`]): `tokens` `[T, d]` and `offsets`; a text's
//! tokens only attend to each other, which is what BERT's attention mask computes for the real
//! (non-padding) tokens of a padded batch. Dropout (BERT's hidden dropout, on the two residual
//! branches; not on the attention probabilities) is off unless [`BertLayer::set_dropout`] sets
//! it, and only training forwards apply it.
//!
//! Parameter names are those of Hugging Face's `BertLayer` (PyTorch layouts), below the
//! layer's name: a layer named `encoder.layer.5` has `encoder.layer.5.attention.self.query.weight`
//! `[d, d]`, `….attention.self.{query,key,value}.{weight,bias}`,
//! `….attention.output.dense.{weight,bias}`, `….attention.output.LayerNorm.{weight,bias}`,
//! `….intermediate.dense.{weight,bias}` `[ffn, d]`, `….output.dense.{weight,bias}` `[d, ffn]`,
//! `….output.LayerNorm.{weight,bias}`, so a checkpoint's state dict maps one-to-one.
//!
//! ```
//! use ndarray::Array2;
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use tandem::nn::bert::{BertConfig, BertLayer};
//!
//! let cfg = BertConfig { hidden: 8, heads: 2, intermediate: 16, layer_norm_eps: 1e-12 };
//! let mut layer = BertLayer::new(&cfg, &mut ChaCha8Rng::seed_from_u64(0))?.named("encoder.layer.0");
//! // Two texts of 1 and 3 tokens.
//! let x = Array2::<f32>::ones((4, 8));
//! let y = layer.forward(x.view(), &[0, 1, 4], true);
//! let dx = layer.backward(Array2::ones(y.dim()).view());
//! assert_eq!(dx.dim(), (4, 8));
//! assert_eq!(layer.params()[0].name, "encoder.layer.0.attention.self.query.weight");
//! # Ok::<(), tandem::Error>(())
//! ```

use ndarray::{Array2, ArrayView2};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::nn::linear::Linear;
use crate::nn::norm::LayerNorm;
use crate::nn::param::Param;
use crate::nn::seq::EncoderLayer;

/// BERT's LayerNorm ε (`layer_norm_eps` in a Hugging Face BERT config).
pub const BERT_LAYER_NORM_EPS: f32 = 1e-12;

/// The sub-layer names of a BERT layer, in [`EncoderLayer::set_names`]' order.
const BERT_NAMES: [&str; 11] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.dropout",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "intermediate.intermediate_act_fn",
    "output.dense",
    "output.dropout",
    "output.LayerNorm",
];

/// The shape of a BERT layer (the fields of a Hugging Face BERT config that a layer uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BertConfig {
    /// Token width d (`hidden_size`; 384 for MiniLM-L6).
    pub hidden: usize,
    /// Attention heads (`num_attention_heads`, dividing `hidden`; 12 for MiniLM-L6).
    pub heads: usize,
    /// FFN width (`intermediate_size`; 1536 for MiniLM-L6).
    pub intermediate: usize,
    /// The ε of both LayerNorms (`layer_norm_eps`, [`BERT_LAYER_NORM_EPS`]).
    pub layer_norm_eps: f32,
}

/// One BERT encoder layer over packed ragged batches (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct BertLayer {
    inner: EncoderLayer,
    eps: f32,
}

impl BertLayer {
    /// A layer of shape `cfg`, initialised as [`EncoderLayer::new`] initialises (for tests and
    /// training from scratch; pretrained layers are loaded by
    /// [`crate::onnx::bert::load_bert_layer`]).
    pub fn new(cfg: &BertConfig, rng: &mut ChaCha8Rng) -> Result<Self> {
        if !(cfg.layer_norm_eps.is_finite() && cfg.layer_norm_eps >= 0.0) {
            return Err(Error::invalid(format!(
                "BERT layer_norm_eps must be finite and non-negative, got {}",
                cfg.layer_norm_eps
            )));
        }
        let inner = EncoderLayer::with_options(
            cfg.hidden,
            cfg.heads,
            cfg.intermediate,
            0.0,
            cfg.layer_norm_eps,
            false,
            rng,
        )?;
        let mut layer = BertLayer {
            inner,
            eps: cfg.layer_norm_eps,
        };
        layer.set_name("");
        Ok(layer)
    }

    /// Builder form of [`BertLayer::set_name`].
    pub fn named(mut self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Renames the layer and its parameters (`{name}.attention.self.query.weight`, …).
    pub fn set_name(&mut self, name: &str) {
        self.inner.set_names(name, BERT_NAMES);
    }

    /// Sets the dropout probability of the two residual branches for training forwards, its
    /// random stream seeded by `seed` (the same seed, the same masks).
    ///
    /// # Errors
    /// For `p` outside [0, 1).
    pub fn set_dropout(&mut self, p: f32, seed: u64) -> Result<()> {
        self.inner.set_dropout(p)?;
        self.inner.reseed_dropout(seed);
        Ok(())
    }

    /// The dropout streams as they stand, to replay the same masks
    /// ([`BertLayer::set_dropout_streams`]) when a training forward is recomputed.
    pub fn dropout_streams(&self) -> [ChaCha8Rng; 2] {
        self.inner.dropout_streams()
    }

    /// Puts back streams taken by [`BertLayer::dropout_streams`].
    pub fn set_dropout_streams(&mut self, streams: [ChaCha8Rng; 2]) {
        self.inner.set_dropout_streams(streams);
    }

    /// The layer's full name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The layer's shape.
    pub fn config(&self) -> BertConfig {
        BertConfig {
            hidden: self.inner.in_dim(),
            heads: self.inner.heads(),
            intermediate: self.inner.ffn(),
            layer_norm_eps: self.eps,
        }
    }

    /// The query, key, value and attention output projections (read-only).
    pub fn projections(&self) -> [&Linear; 4] {
        self.inner.projections()
    }

    /// The intermediate (`d → ffn`) and output (`ffn → d`) dense layers.
    pub fn ffn_layers(&self) -> [&Linear; 2] {
        self.inner.ffn_layers()
    }

    /// The LayerNorms after the attention and after the FFN.
    pub fn norms(&self) -> [&LayerNorm; 2] {
        self.inner.norms()
    }

    /// Training forward `[T, d] → [T, d]`, caching what the backward pass needs. `train` is
    /// passed on to the sub-layers (there is no dropout, so it does not change the result).
    ///
    /// # Panics
    /// If `tokens` is not `hidden` wide or `offsets` does not pack its rows.
    pub fn forward(
        &mut self,
        tokens: ArrayView2<'_, f32>,
        offsets: &[usize],
        train: bool,
    ) -> Array2<f32> {
        self.inner.forward(tokens, offsets, train)
    }

    /// Inference forward: no caching, `&self`.
    ///
    /// # Panics
    /// As [`BertLayer::forward`].
    pub fn forward_inference(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        self.inner.forward_inference(tokens, offsets)
    }

    /// Backward for the last [`BertLayer::forward`]: accumulates the gradients of the trainable
    /// parameters and returns ∂loss/∂tokens `[T, d]`.
    ///
    /// # Panics
    /// Before any forward, or if `grad_out` is not `[T, d]`.
    pub fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        self.inner.backward(grad_out)
    }

    /// Like [`BertLayer::backward`] without the input gradient (for the lowest fine-tuned
    /// layer, whose input comes from the frozen part of the backbone).
    pub fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        self.inner.backward_params_only(grad_out)
    }

    /// The parameters in Hugging Face's order: query, key, value, attention output dense
    /// (weight, bias each), attention LayerNorm, intermediate dense, output dense, output
    /// LayerNorm.
    pub fn params(&self) -> Vec<&Param> {
        self.inner.params()
    }

    /// The parameters, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.inner.params_mut()
    }

    /// Drops the cached activations.
    pub fn clear_cache(&mut self) {
        self.inner.clear_cache()
    }
}

#[cfg(test)]
pub(crate) mod tests;
