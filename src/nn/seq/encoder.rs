//! The configurable sequence encoder: optional transformer layer, then attention and
//! convolution pooling side by side, then dropout.

use ndarray::{s, Array2, ArrayView2};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::attention_pool::AttentionPool;
use super::conv::{self, MultiConv};
use super::transformer::{self, EncoderLayer};
use crate::error::{Error, Result};
use crate::nn::dropout::Dropout;
use crate::nn::layer::Layer;
use crate::nn::param::{join_name, Param};

/// Shape of a [`SequenceEncoder`]. Serialises as JSON/TOML such as
/// `{"attention_queries":1,"conv_kernels":[1,3,5],"conv_channels":128,"transformer":false,
/// "transformer_heads":4,"transformer_ffn":512,"dropout":0.1}`; missing fields take the
/// defaults below, unknown fields are rejected (a typo must not silently fall back to a
/// default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceConfig {
    /// Learned queries of the attention pooling; 0 leaves attention pooling out. Default 1.
    pub attention_queries: usize,
    /// Odd kernel sizes of the convolution pooling; empty leaves it out. Default `[1, 3, 5]`.
    pub conv_kernels: Vec<usize>,
    /// Output channels per convolution kernel. Default 128.
    pub conv_channels: usize,
    /// Whether a transformer encoder layer runs over the tokens before pooling. Default false.
    pub transformer: bool,
    /// Attention heads of the transformer layer (must divide the token width). Default 4.
    pub transformer_heads: usize,
    /// FFN width of the transformer layer. Default 512.
    pub transformer_ffn: usize,
    /// Dropout probability in [0, 1) on the pooled output (and, with `transformer`, on the
    /// transformer's two residual branches). Default 0.1.
    pub dropout: f32,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            attention_queries: 1,
            conv_kernels: vec![1, 3, 5],
            conv_channels: 128,
            transformer: false,
            transformer_heads: 4,
            transformer_ffn: 512,
            dropout: 0.1,
        }
    }
}

impl SequenceConfig {
    /// Checks everything that does not depend on the token width: at least one pooling,
    /// odd positive kernels, positive channels, positive transformer heads and FFN width (when
    /// the transformer is on), dropout in [0, 1).
    pub fn validate(&self) -> Result<()> {
        if self.attention_queries == 0 && self.conv_kernels.is_empty() {
            return Err(Error::invalid(
                "sequence encoder needs a pooling: set attention_queries > 0 or a non-empty \
                 conv_kernels",
            ));
        }
        if !self.conv_kernels.is_empty() {
            // The token width is checked by validate_for; 1 stands in for it here.
            conv::validate(1, &self.conv_kernels, self.conv_channels)
                .map_err(|e| Error::invalid(format!("sequence encoder: {}", e.message())))?;
        }
        if self.transformer && (self.transformer_heads == 0 || self.transformer_ffn == 0) {
            return Err(Error::invalid(format!(
                "sequence encoder: transformer_heads and transformer_ffn must be positive, got \
                 {} and {}",
                self.transformer_heads, self.transformer_ffn
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(format!(
                "sequence encoder: dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// [`SequenceConfig::validate`] plus the checks against the token width `in_dim`: positive,
    /// and divisible by `transformer_heads` when the transformer is on.
    pub fn validate_for(&self, in_dim: usize) -> Result<()> {
        self.validate()?;
        if in_dim == 0 {
            return Err(Error::invalid(
                "sequence encoder: token width must be positive",
            ));
        }
        if self.transformer {
            transformer::validate(in_dim, self.transformer_heads, self.transformer_ffn)
                .map_err(|e| Error::invalid(format!("sequence encoder: {}", e.message())))?;
        }
        Ok(())
    }

    /// [`SequenceConfig::out_dim`] with checked arithmetic: `None` where it overflows (the
    /// config may come from an untrusted bundle).
    pub fn checked_out_dim(&self, in_dim: usize) -> Option<usize> {
        let conv = if self.conv_kernels.is_empty() {
            0
        } else {
            self.conv_channels.checked_mul(self.conv_kernels.len())?
        };
        self.attention_queries
            .checked_mul(in_dim)?
            .checked_add(conv)
    }

    /// The number of scalar parameters of an encoder with this config over `in_dim`-wide
    /// tokens, computed without building it (`None` on overflow): the transformer's four
    /// projections, FFN and two LayerNorms, the attention queries, and every conv kernel.
    pub fn parameter_count(&self, in_dim: usize) -> Option<u64> {
        let d = in_dim as u64;
        let mut total = 0u64;
        if self.transformer {
            let f = self.transformer_ffn as u64;
            let proj = d.checked_mul(d)?.checked_add(d)?.checked_mul(4)?;
            let ffn = d
                .checked_mul(f)?
                .checked_mul(2)?
                .checked_add(f)?
                .checked_add(d)?;
            let norms = d.checked_mul(4)?;
            total = proj.checked_add(ffn)?.checked_add(norms)?;
        }
        if self.attention_queries > 0 {
            let q = self.attention_queries as u64;
            total = total.checked_add(q.checked_mul(d)?.checked_add(q)?)?;
        }
        let c = self.conv_channels as u64;
        for &k in &self.conv_kernels {
            let w = c.checked_mul(d)?.checked_mul(k as u64)?;
            total = total.checked_add(w)?.checked_add(c)?;
        }
        Some(total)
    }

    /// Output width for `in_dim`-wide tokens: `attention_queries·in_dim +
    /// conv_channels·conv_kernels.len()`.
    pub fn out_dim(&self, in_dim: usize) -> usize {
        let conv = if self.conv_kernels.is_empty() {
            0
        } else {
            self.conv_channels * self.conv_kernels.len()
        };
        self.attention_queries * in_dim + conv
    }
}

/// Pools the token vectors of each text into one vector: an optional [`EncoderLayer`] over the
/// tokens, then [`AttentionPool`] and [`MultiConv`] side by side (output
/// `[attention ; conv]`, either may be off), then dropout. Input is a packed batch (see
/// [`crate::nn::seq`]), output `[b, out_dim]`.
///
/// Parameter names, for an encoder named `seq`: `seq.transformer.*` (see [`EncoderLayer`]),
/// `seq.attention.score.weight`, `seq.attention.score.bias`, `seq.conv.{j}.weight`,
/// `seq.conv.{j}.bias`, in that order.
#[derive(Debug, Clone)]
pub struct SequenceEncoder {
    config: SequenceConfig,
    in_dim: usize,
    name: String,
    transformer: Option<EncoderLayer>,
    attention: Option<AttentionPool>,
    conv: Option<MultiConv>,
    dropout: Dropout,
}

impl SequenceEncoder {
    /// Builds the encoder for `in_dim`-wide tokens, drawing (in this order) the transformer's,
    /// the attention pool's and the convolution's weights and the dropout seeds from `rng`.
    /// Errors on an invalid configuration (see [`SequenceConfig::validate_for`]).
    pub fn new(in_dim: usize, cfg: &SequenceConfig, rng: &mut ChaCha8Rng) -> Result<Self> {
        cfg.validate_for(in_dim)?;
        let transformer = if cfg.transformer {
            Some(EncoderLayer::new(
                in_dim,
                cfg.transformer_heads,
                cfg.transformer_ffn,
                cfg.dropout,
                rng,
            )?)
        } else {
            None
        };
        let attention = if cfg.attention_queries > 0 {
            Some(AttentionPool::new(in_dim, cfg.attention_queries, rng)?)
        } else {
            None
        };
        let conv = if cfg.conv_kernels.is_empty() {
            None
        } else {
            Some(MultiConv::new(
                in_dim,
                &cfg.conv_kernels,
                cfg.conv_channels,
                rng,
            )?)
        };
        let dropout = Dropout::new(cfg.dropout, rng)?;
        let mut enc = SequenceEncoder {
            config: cfg.clone(),
            in_dim,
            name: String::new(),
            transformer,
            attention,
            conv,
            dropout,
        };
        enc.set_name("");
        Ok(enc)
    }

    /// Builder form of [`SequenceEncoder::set_name`].
    pub fn named(mut self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Renames the encoder and its parts (`{name}.transformer`, `{name}.attention`,
    /// `{name}.conv`, `{name}.dropout`).
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        if let Some(t) = &mut self.transformer {
            t.set_name(&join_name(name, "transformer"));
        }
        if let Some(a) = &mut self.attention {
            a.set_name(&join_name(name, "attention"));
        }
        if let Some(c) = &mut self.conv {
            c.set_name(&join_name(name, "conv"));
        }
        self.dropout.set_name(&join_name(name, "dropout"));
    }

    /// The encoder's full name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &SequenceConfig {
        &self.config
    }

    /// Token width d.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output width (see [`SequenceConfig::out_dim`]).
    pub fn out_dim(&self) -> usize {
        self.attention_dim() + self.conv.as_ref().map_or(0, MultiConv::out_dim)
    }

    /// Width of the attention part of the output (0 without attention pooling).
    fn attention_dim(&self) -> usize {
        self.attention.as_ref().map_or(0, AttentionPool::out_dim)
    }

    /// The transformer layer, if any.
    pub fn transformer(&self) -> Option<&EncoderLayer> {
        self.transformer.as_ref()
    }

    /// The attention pooling, if any.
    pub fn attention(&self) -> Option<&AttentionPool> {
        self.attention.as_ref()
    }

    /// The convolution pooling, if any.
    pub fn conv(&self) -> Option<&MultiConv> {
        self.conv.as_ref()
    }

    fn check_width(&self, tokens: ArrayView2<'_, f32>) {
        assert_eq!(
            tokens.ncols(),
            self.in_dim,
            "SequenceEncoder {:?}: tokens have {} features, expected {}",
            self.name,
            tokens.ncols(),
            self.in_dim
        );
    }

    /// Training forward: `[T, d]` packed tokens → `[b, out_dim]`, caching what
    /// [`SequenceEncoder::backward`] needs; `train` enables dropout.
    ///
    /// # Panics
    /// If `tokens` is not `in_dim` wide or `offsets` does not pack its rows.
    pub fn forward(
        &mut self,
        tokens: ArrayView2<'_, f32>,
        offsets: &[usize],
        train: bool,
    ) -> Array2<f32> {
        self.check_width(tokens);
        let h = self
            .transformer
            .as_mut()
            .map(|t| t.forward(tokens, offsets, train));
        let x = h.as_ref().map_or(tokens, |h| h.view());
        let (wa, out) = (self.attention_dim(), self.out_dim());
        let mut pooled = Array2::zeros((offsets.len().saturating_sub(1), out));
        if let Some(a) = &mut self.attention {
            pooled
                .slice_mut(s![.., ..wa])
                .assign(&a.forward(x, offsets, train));
        }
        if let Some(c) = &mut self.conv {
            pooled
                .slice_mut(s![.., wa..])
                .assign(&c.forward(x, offsets, train));
        }
        self.dropout.forward(pooled.view(), train)
    }

    /// Inference forward: no caching, no dropout, `&self`.
    ///
    /// # Panics
    /// As [`SequenceEncoder::forward`].
    pub fn forward_inference(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        self.check_width(tokens);
        let h = self
            .transformer
            .as_ref()
            .map(|t| t.forward_inference(tokens, offsets));
        let x = h.as_ref().map_or(tokens, |h| h.view());
        let (wa, out) = (self.attention_dim(), self.out_dim());
        let mut pooled = Array2::zeros((offsets.len().saturating_sub(1), out));
        if let Some(a) = &self.attention {
            pooled
                .slice_mut(s![.., ..wa])
                .assign(&a.forward_inference(x, offsets));
        }
        if let Some(c) = &self.conv {
            pooled
                .slice_mut(s![.., wa..])
                .assign(&c.forward_inference(x, offsets));
        }
        pooled
    }

    /// Backward for the last [`SequenceEncoder::forward`]: accumulates every parameter
    /// gradient and returns ∂loss/∂tokens `[T, d]`.
    ///
    /// # Panics
    /// Before any forward, or if `grad_out` is not `[b, out_dim]`.
    pub fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let dx = self.pools_backward(grad_out);
        match &mut self.transformer {
            Some(t) => t.backward(dx.view()),
            None => dx,
        }
    }

    /// Like [`SequenceEncoder::backward`] without ∂loss/∂tokens (the tokens are frozen data):
    /// without a transformer the pools skip their input gradients entirely; with one, only the
    /// transformer's input-side GEMMs are skipped (its parameters need the pools' input
    /// gradient).
    pub fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        if self.transformer.is_some() {
            let dx = self.pools_backward(grad_out);
            if let Some(t) = &mut self.transformer {
                t.backward_params_only(dx.view());
            }
            return;
        }
        let g = self.dropout.backward(grad_out);
        let wa = self.attention_dim();
        if let Some(a) = &mut self.attention {
            a.backward_params_only(g.slice(s![.., ..wa]));
        }
        if let Some(c) = &mut self.conv {
            c.backward_params_only(g.slice(s![.., wa..]));
        }
    }

    /// Dropout and pooling backward: ∂loss/∂(pooling input) `[T, d]`.
    fn pools_backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let g = self.dropout.backward(grad_out);
        let wa = self.attention_dim();
        let da = self
            .attention
            .as_mut()
            .map(|a| a.backward(g.slice(s![.., ..wa])));
        let dc = self
            .conv
            .as_mut()
            .map(|c| c.backward(g.slice(s![.., wa..])));
        match (da, dc) {
            (Some(mut a), Some(c)) => {
                a += &c;
                a
            }
            (Some(a), None) => a,
            (None, Some(c)) => c,
            (None, None) => unreachable!("validated: at least one pooling"),
        }
    }

    /// The parameters: transformer, attention, convolution (each in its own order).
    pub fn params(&self) -> Vec<&Param> {
        let mut ps = Vec::new();
        if let Some(t) = &self.transformer {
            ps.extend(t.params());
        }
        if let Some(a) = &self.attention {
            ps.extend(a.params());
        }
        if let Some(c) = &self.conv {
            ps.extend(c.params());
        }
        ps
    }

    /// The parameters, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut ps = Vec::new();
        if let Some(t) = &mut self.transformer {
            ps.extend(t.params_mut());
        }
        if let Some(a) = &mut self.attention {
            ps.extend(a.params_mut());
        }
        if let Some(c) = &mut self.conv {
            ps.extend(c.params_mut());
        }
        ps
    }

    /// Restarts every dropout stream (transformer's, then the output's) from seeds derived from
    /// `seed`, e.g. to give data-parallel replicas different masks or to replay a run.
    pub fn reseed_dropout(&mut self, seed: u64) {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        if let Some(t) = &mut self.transformer {
            t.reseed_dropout(master.next_u64());
        }
        self.dropout.reseed(master.next_u64());
    }

    /// Drops every cached activation.
    pub fn clear_cache(&mut self) {
        if let Some(t) = &mut self.transformer {
            t.clear_cache();
        }
        if let Some(a) = &mut self.attention {
            a.clear_cache();
        }
        if let Some(c) = &mut self.conv {
            c.clear_cache();
        }
        self.dropout.clear_cache();
    }
}
