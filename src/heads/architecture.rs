//! What a bundle's heads are made of: the training mode (which parts exist and what the heads
//! see) and every width and setting needed to rebuild the network, stored typed in the bundle
//! manifest. Validated with checked arithmetic before anything is built, since a bundle is
//! untrusted input.

use std::ops::Range;

use ndarray::{concatenate, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::seq::SequenceConfig;
use crate::nn::{MlpConfig, Weights};

/// How the model is put together and trained; the modes exist so approaches compare honestly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Stage 1 trains the metadata encoder with auxiliary heads; stage 2 freezes it (optionally
    /// unfreezing later) and trains the heads on [embedding ; metadata code].
    TwoStage,
    /// One stage: encoder and heads on [embedding ; code] trained together from scratch.
    Joint,
    /// Heads on the embedding alone; no metadata.
    EmbeddingOnly,
    /// The metadata encoder and its heads alone; no embedding.
    MetadataOnly,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            Error::invalid(format!(
                "unknown mode `{s}` (expected two_stage, joint, embedding_only or metadata_only)"
            ))
        })
    }
}

impl Mode {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::TwoStage => "two_stage",
            Mode::Joint => "joint",
            Mode::EmbeddingOnly => "embedding_only",
            Mode::MetadataOnly => "metadata_only",
        }
    }
}

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
    /// Heads on the embedding alone (no metadata, pooled), with the default head MLP: the
    /// smallest complete architecture, e.g. for heads built by hand or in tests.
    pub fn embedding_only(emb_dim: usize, outputs: Vec<usize>) -> Self {
        Architecture {
            mode: Mode::EmbeddingOnly,
            emb_dim,
            n_features: 0,
            encoder: MlpConfig::default(),
            code_dim: 0,
            head: MlpConfig::default(),
            target_scale: vec![(0.0, 1.0); outputs.len()],
            outputs,
            sequence: None,
        }
    }

    /// Where each block of the semantic heads' input sits.
    pub fn input_layout(&self) -> InputLayout {
        let (emb, code) = match self.mode {
            Mode::EmbeddingOnly => (self.emb_dim, 0),
            Mode::MetadataOnly => (0, 0),
            Mode::TwoStage | Mode::Joint => (self.emb_dim, self.code_dim),
        };
        let seq = self
            .sequence
            .as_ref()
            .map_or(0, |c| c.out_dim(self.emb_dim));
        InputLayout {
            embedding: 0..emb,
            code: emb..emb + code,
            sequence: emb + code..emb + code + seq,
        }
    }

    /// Width of the pooled part of the heads' input: [embedding ; code].
    pub fn pooled_input(&self) -> usize {
        self.input_layout().code.end
    }

    /// Width of the sequence encoder's output (0 for pooled heads).
    pub fn sequence_output(&self) -> usize {
        self.input_layout().sequence.len()
    }

    /// Width of what the semantic heads see: [embedding ; code ; sequence output].
    pub fn head_input(&self) -> usize {
        self.input_layout().width()
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
        // No task at all is an encoder bundle's (`tandem pretrain`): metadata only.
        if self.outputs.contains(&0) || (self.outputs.is_empty() && self.mode != Mode::MetadataOnly)
        {
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

/// The semantic heads' input, `[embedding ; code ; sequence]`: the one place that says which
/// columns hold which block. The code is present in the two-stage and joint modes, the
/// sequence block with sequence heads; an absent block is an empty range. Inference builds the
/// input in this order, and the training pass's backward slices the input gradient by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLayout {
    /// The pooled embedding's columns.
    pub embedding: Range<usize>,
    /// The metadata code's columns.
    pub code: Range<usize>,
    /// The sequence encoder's output columns.
    pub sequence: Range<usize>,
}

impl InputLayout {
    /// The input's width.
    pub fn width(&self) -> usize {
        self.sequence.end
    }

    /// The present blocks side by side, in layout order (a single block is copied as it is).
    pub fn join(blocks: &[Option<ArrayView2<'_, f32>>]) -> Array2<f32> {
        let present: Vec<ArrayView2<'_, f32>> = blocks.iter().flatten().copied().collect();
        match present.as_slice() {
            [] => Array2::zeros((0, 0)),
            [one] => one.to_owned(),
            many => concatenate(Axis(1), many).expect("blocks of the same texts"),
        }
    }
}
