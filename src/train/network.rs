//! The trainable network: a metadata encoder (features → code), auxiliary heads on the code
//! (stage 1, and the whole model in metadata-only mode), and one semantic head per task on
//! [embedding ; code] (or the embedding alone).

use std::collections::HashMap;

use ndarray::{concatenate, Array2, ArrayView2, Axis};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::{HeadKind, Mode, SequenceConfig, TrainConfig};
use crate::backbone::PackedBatch;
use crate::bundle::Weights;
use crate::error::{Error, Result};
use crate::nn::seq::SequenceEncoder;
use crate::nn::{ActivationKind, Layer, Mlp, MlpConfig, Param};

/// Everything needed to rebuild the network's shape; stored in the bundle as `architecture`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Training mode (decides which parts exist and what the heads see).
    pub mode: Mode,
    /// Embedding width (0 in metadata-only mode).
    pub emb_dim: usize,
    /// Number of (selected) metadata features (0 in embedding-only mode).
    pub n_features: usize,
    /// Encoder hidden layers, code width and its MLP settings.
    pub encoder: MlpConfig,
    /// Width of the metadata code.
    pub code_dim: usize,
    /// Head MLP settings.
    pub head: MlpConfig,
    /// Output width of each task's head.
    pub outputs: Vec<usize>,
    /// Per task: mean and std the regression target was standardized with (1, 0 otherwise).
    pub target_scale: Vec<(f32, f32)>,
    /// The sequence encoder over per-token vectors, for sequence heads (absent: pooled heads).
    /// Its output joins the heads' input after [embedding ; code].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceConfig>,
}

impl Architecture {
    /// The architecture `config` describes for the given input and output sizes.
    pub fn from_config(
        config: &TrainConfig,
        emb_dim: usize,
        n_features: usize,
        outputs: Vec<usize>,
        target_scale: Vec<(f32, f32)>,
    ) -> Self {
        let mlp = |hidden: &[usize], dropout: f32| MlpConfig {
            hidden: hidden.to_vec(),
            activation: ActivationKind::Gelu,
            dropout,
            layer_norm: true,
            residual: false,
        };
        let uses_meta = config.mode != Mode::EmbeddingOnly;
        let uses_emb = config.mode != Mode::MetadataOnly;
        Architecture {
            mode: config.mode,
            emb_dim: if uses_emb { emb_dim } else { 0 },
            n_features: if uses_meta { n_features } else { 0 },
            encoder: mlp(&config.metadata.hidden, config.metadata.dropout),
            code_dim: if uses_meta {
                config.metadata.code_dim
            } else {
                0
            },
            head: mlp(&config.head.hidden, config.head.dropout),
            outputs,
            target_scale,
            sequence: (uses_emb && config.head.kind == HeadKind::Sequence)
                .then(|| config.head.sequence.clone()),
        }
    }

    /// Width of the pooled part of the heads' input: [embedding ; code].
    pub fn pooled_input(&self) -> usize {
        match self.mode {
            Mode::EmbeddingOnly => self.emb_dim,
            Mode::MetadataOnly => 0,
            Mode::TwoStage | Mode::Joint => self.emb_dim + self.code_dim,
        }
    }

    /// Width of the sequence encoder's output (0 for pooled heads).
    pub fn sequence_output(&self) -> usize {
        self.sequence
            .as_ref()
            .map_or(0, |c| c.out_dim(self.emb_dim))
    }

    /// Width of what the semantic heads see: [embedding ; code ; sequence output].
    pub fn head_input(&self) -> usize {
        self.pooled_input() + self.sequence_output()
    }

    /// Whether the heads read per-token vectors.
    pub fn needs_tokens(&self) -> bool {
        self.sequence.is_some()
    }

    /// Checks that the architecture describes a network that can be built and run: the parts
    /// its mode needs (and only those), positive widths, one finite target scale per task with
    /// a positive std, valid MLP and sequence settings, and widths whose sums and products fit
    /// (checked arithmetic, so a hostile bundle cannot overflow them).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::format(format!("architecture: {m}")));
        let (uses_emb, uses_meta) = match self.mode {
            Mode::EmbeddingOnly => (true, false),
            Mode::MetadataOnly => (false, true),
            Mode::TwoStage | Mode::Joint => (true, true),
        };
        let mode = self.mode.name();
        if uses_emb != (self.emb_dim > 0) {
            return bad(format!("mode {mode} with emb_dim {}", self.emb_dim));
        }
        if uses_meta != (self.n_features > 0) || uses_meta != (self.code_dim > 0) {
            return bad(format!(
                "mode {mode} with n_features {} and code_dim {}",
                self.n_features, self.code_dim
            ));
        }
        if self.outputs.is_empty() || self.outputs.contains(&0) {
            return bad(format!("outputs {:?}: every task needs one", self.outputs));
        }
        if self.target_scale.len() != self.outputs.len() {
            return bad(format!(
                "{} target scales for {} tasks",
                self.target_scale.len(),
                self.outputs.len()
            ));
        }
        if let Some((m, s)) = self
            .target_scale
            .iter()
            .find(|(m, s)| !m.is_finite() || !s.is_finite() || *s <= 0.0)
        {
            return bad(format!(
                "target scale ({m}, {s}) needs a finite mean and std > 0"
            ));
        }
        for (what, mlp) in [("encoder", &self.encoder), ("head", &self.head)] {
            mlp.validate()
                .or_else(|e| bad(format!("{what}: {}", e.message())))?;
        }
        if let Some(seq) = &self.sequence {
            if !uses_emb {
                return bad(format!(
                    "mode {mode} has no embeddings for a sequence encoder"
                ));
            }
            seq.validate_for(self.emb_dim)
                .or_else(|e| bad(e.message().to_string()))?;
            if seq.checked_out_dim(self.emb_dim).is_none() {
                return bad("sequence encoder width overflows".into());
            }
        }
        if self.parameter_count().is_none() {
            return bad("parameter count overflows".into());
        }
        Ok(())
    }

    /// The number of scalar parameters the network of this architecture has, computed without
    /// building it (`None` on overflow). Loading compares it with the tensors a bundle really
    /// holds before allocating anything, so a manifest that claims a 10M-wide layer cannot
    /// make a load allocate gigabytes.
    pub fn parameter_count(&self) -> Option<u64> {
        let mut total = 0u64;
        if self.n_features > 0 {
            total = self
                .encoder
                .parameter_count(self.n_features, Some(self.code_dim))?;
            if matches!(self.mode, Mode::TwoStage | Mode::MetadataOnly) {
                let linear = MlpConfig {
                    hidden: vec![],
                    ..self.encoder.clone()
                };
                for &o in &self.outputs {
                    total = total.checked_add(linear.parameter_count(self.code_dim, Some(o))?)?;
                }
            }
        }
        let seq_out = match &self.sequence {
            Some(c) => c.checked_out_dim(self.emb_dim)?,
            None => 0,
        };
        if self.mode != Mode::MetadataOnly {
            let pooled = match self.mode {
                Mode::EmbeddingOnly => self.emb_dim,
                _ => self.emb_dim.checked_add(self.code_dim)?,
            };
            let input = pooled.checked_add(seq_out)?;
            for &o in &self.outputs {
                total = total.checked_add(self.head.parameter_count(input, Some(o))?)?;
            }
        }
        if let Some(c) = &self.sequence {
            total = total.checked_add(c.parameter_count(self.emb_dim)?)?;
        }
        Some(total)
    }

    /// Checks this architecture against tensors read from a bundle, before anything is built:
    /// [`Architecture::validate`], then the parameter count against the tensors' total size.
    /// [`Network::from_weights`] then matches every tensor by name and shape.
    pub fn check_weights(&self, weights: &Weights) -> Result<()> {
        self.validate()?;
        let want = self.parameter_count().expect("validated");
        let have: u64 = weights.values().map(|a| a.len() as u64).sum();
        if want != have {
            return Err(Error::format(format!(
                "architecture needs {want} parameters, but the weights hold {have}; the manifest \
                 does not describe these weights"
            )));
        }
        Ok(())
    }
}

/// The network's layers. `Clone` gives an independent copy (used to hot-swap heads).
#[derive(Debug, Clone)]
pub struct Network {
    /// Shape description.
    pub arch: Architecture,
    /// features → code (a final linear layer to `code_dim`).
    pub encoder: Option<Mlp>,
    /// code → task outputs, one linear head per task (stage 1 and metadata-only mode).
    pub aux_heads: Vec<Mlp>,
    /// [embedding ; code ; sequence output] → task outputs, one per task (absent in
    /// metadata-only mode).
    pub heads: Vec<Mlp>,
    /// Per-token vectors → a fixed-width summary (sequence heads only), shared by every task.
    pub sequence: Option<SequenceEncoder>,
}

impl Network {
    /// A freshly initialized network, all weights drawn from `rng` in a fixed order.
    pub fn new(arch: Architecture, rng: &mut ChaCha8Rng) -> Result<Network> {
        let mut encoder = None;
        let mut aux_heads = Vec::new();
        if arch.n_features > 0 {
            encoder = Some(
                Mlp::new(arch.n_features, Some(arch.code_dim), &arch.encoder, rng)?
                    .named("encoder"),
            );
            if matches!(arch.mode, Mode::TwoStage | Mode::MetadataOnly) {
                let linear = MlpConfig {
                    hidden: vec![],
                    ..arch.encoder.clone()
                };
                for (t, &o) in arch.outputs.iter().enumerate() {
                    aux_heads.push(
                        Mlp::new(arch.code_dim, Some(o), &linear, rng)?.named(&format!("aux.{t}")),
                    );
                }
            }
        }
        let mut heads = Vec::new();
        if arch.mode != Mode::MetadataOnly {
            for (t, &o) in arch.outputs.iter().enumerate() {
                heads.push(
                    Mlp::new(arch.head_input(), Some(o), &arch.head, rng)?
                        .named(&format!("heads.{t}")),
                );
            }
        }
        // Drawn last, so pooled networks keep exactly the weights they had before sequence
        // heads existed.
        let sequence = match &arch.sequence {
            Some(cfg) => Some(SequenceEncoder::new(arch.emb_dim, cfg, rng)?.named("sequence")),
            None => None,
        };
        if let Some(seq) = &sequence {
            if seq.out_dim() != arch.sequence_output() {
                return Err(Error::new(
                    crate::error::ErrorKind::Internal,
                    "sequence encoder width disagrees with the architecture",
                ));
            }
        }
        Ok(Network {
            arch,
            encoder,
            aux_heads,
            heads,
            sequence,
        })
    }

    /// Every parameter, in a stable order.
    pub fn params(&self) -> Vec<&Param> {
        let mut v: Vec<&Param> = Vec::new();
        if let Some(e) = &self.encoder {
            v.extend(e.params());
        }
        for h in self.aux_heads.iter().chain(&self.heads) {
            v.extend(h.params());
        }
        if let Some(s) = &self.sequence {
            v.extend(s.params());
        }
        v
    }

    /// Every parameter, mutably, in the same order as [`Network::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v: Vec<&mut Param> = Vec::new();
        if let Some(e) = &mut self.encoder {
            v.extend(e.params_mut());
        }
        for h in self.aux_heads.iter_mut().chain(self.heads.iter_mut()) {
            v.extend(h.params_mut());
        }
        if let Some(s) = &mut self.sequence {
            v.extend(s.params_mut());
        }
        v
    }

    /// The metadata code of normalized features (inference).
    pub fn code(&self, features: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
        self.encoder.as_ref().map(|e| e.forward_inference(features))
    }

    /// The pooled part of what the semantic heads see, from embeddings and an optional code.
    pub fn head_input(&self, emb: ArrayView2<'_, f32>, code: Option<&Array2<f32>>) -> Array2<f32> {
        match (self.arch.mode, code) {
            (Mode::TwoStage | Mode::Joint, Some(c)) => {
                concatenate(Axis(1), &[emb, c.view()]).expect("same number of rows")
            }
            _ => emb.to_owned(),
        }
    }

    /// Raw outputs (logits, or standardized values) of every task, for inference.
    /// `emb` may be empty in metadata-only mode; `features` in embedding-only mode; `tokens`
    /// (the same texts' per-token vectors) is needed by sequence heads and ignored otherwise.
    pub fn forward(
        &self,
        emb: ArrayView2<'_, f32>,
        features: ArrayView2<'_, f32>,
        tokens: Option<&PackedBatch>,
    ) -> Result<Vec<Array2<f32>>> {
        let code = if self.arch.n_features > 0 {
            self.code(features)
        } else {
            None
        };
        if self.arch.mode == Mode::MetadataOnly {
            let code = code.expect("metadata-only network has an encoder");
            return Ok(self
                .aux_heads
                .iter()
                .map(|h| h.forward_inference(code.view()))
                .collect());
        }
        let mut input = self.head_input(emb, code.as_ref());
        if let Some(seq) = &self.sequence {
            let tokens = tokens.ok_or_else(|| {
                Error::invalid("sequence heads need the texts' per-token vectors")
            })?;
            if tokens.offsets.len() != input.nrows() + 1 {
                return Err(Error::invalid(format!(
                    "{} token sequences for {} texts",
                    tokens.offsets.len().saturating_sub(1),
                    input.nrows()
                )));
            }
            let pooled = seq.forward_inference(tokens.tokens.view(), &tokens.offsets);
            input = concatenate(Axis(1), &[input.view(), pooled.view()]).expect("rows");
        }
        Ok(self
            .heads
            .iter()
            .map(|h| h.forward_inference(input.view()))
            .collect())
    }

    /// The parameters as named tensors, for the bundle.
    pub fn weights(&self) -> Weights {
        self.params()
            .into_iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    }

    /// Rebuilds a network from its architecture and bundle tensors; every parameter must be
    /// present with the right shape, and no tensor may be left over.
    pub fn from_weights(arch: Architecture, weights: &Weights) -> Result<Network> {
        // Before Network::new allocates what the architecture claims.
        arch.check_weights(weights)?;
        // The seed only shapes initial values, which are all overwritten below.
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let mut net = Network::new(arch, &mut rng)?;
        let values: HashMap<String, ndarray::ArrayD<f32>> = weights
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut params = net.params_mut();
        crate::nn::param::load_values(&mut params, &values, true)?;
        if values.len() != params.len() {
            return Err(Error::format(format!(
                "bundle has {} tensors, the architecture expects {}",
                values.len(),
                params.len()
            )));
        }
        Ok(net)
    }
}
