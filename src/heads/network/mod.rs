//! The trainable network: a metadata encoder (features → code), auxiliary heads on the code
//! (stage 1, and the whole model in metadata-only mode), a sequence encoder over per-token
//! vectors (sequence heads), and one semantic head per task on the input blocks
//! [embedding ; code ; sequence] (see [`InputLayout`](super::InputLayout)).
//!
//! Its passes: inference ([`Network::forward`]) and training ([`Network::forward_train`] and
//! [`Network::backward_train`], and their metadata-stage twins), each in its own file.

mod inference;
mod sampled;
mod training;

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;

pub use self::training::TrainBatch;
use super::architecture::{Architecture, Mode};
use crate::error::{Error, Result};
use crate::nn::seq::SequenceEncoder;
use crate::nn::{Layer, Mlp, MlpConfig, Param, Weights};

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
    /// Which blocks the last training forward ran through trainable layers (what its backward
    /// must reach).
    pass: Option<training::Pass>,
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
            pass: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::seq::SequenceConfig;
    use crate::nn::ActivationKind;
    use rand::SeedableRng;

    /// Architectures of every mode, with and without sequence heads, hidden layers, LayerNorm
    /// and residual blocks.
    fn architectures() -> Vec<Architecture> {
        let mlp = |hidden: Vec<usize>, layer_norm, residual| MlpConfig {
            hidden,
            activation: ActivationKind::Gelu,
            dropout: 0.1,
            layer_norm,
            residual,
        };
        let mut out = Vec::new();
        for mode in [
            Mode::TwoStage,
            Mode::Joint,
            Mode::EmbeddingOnly,
            Mode::MetadataOnly,
        ] {
            let uses_emb = mode != Mode::MetadataOnly;
            let uses_meta = mode != Mode::EmbeddingOnly;
            let sequences = if uses_emb {
                vec![
                    None,
                    Some(SequenceConfig {
                        conv_channels: 5,
                        ..Default::default()
                    }),
                    Some(SequenceConfig {
                        attention_queries: 2,
                        conv_kernels: vec![3],
                        conv_channels: 4,
                        transformer: true,
                        transformer_heads: 2,
                        transformer_ffn: 6,
                        dropout: 0.0,
                    }),
                ]
            } else {
                vec![None]
            };
            for sequence in sequences {
                for (head, encoder) in [
                    (mlp(vec![7], true, false), mlp(vec![5, 5], false, true)),
                    (mlp(vec![], true, false), mlp(vec![3], true, false)),
                ] {
                    out.push(Architecture {
                        mode,
                        emb_dim: if uses_emb { 8 } else { 0 },
                        n_features: if uses_meta { 6 } else { 0 },
                        encoder,
                        code_dim: if uses_meta { 4 } else { 0 },
                        head,
                        outputs: vec![3, 1],
                        target_scale: vec![(0.0, 1.0); 2],
                        sequence: sequence.clone(),
                    });
                }
            }
        }
        out
    }

    #[test]
    fn parameter_count_is_what_the_network_holds() {
        // Loading trusts this count to refuse a manifest before building anything.
        let archs = architectures();
        assert_eq!(archs.len(), 20);
        for arch in archs {
            arch.validate().unwrap();
            let want = arch.parameter_count().unwrap();
            let net =
                Network::new(arch.clone(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
            let have: u64 = net.params().iter().map(|p| p.len() as u64).sum();
            assert_eq!(want, have, "{arch:?}");
            assert!(arch.check_weights(&net.weights()).is_ok());
            let rebuilt = Network::from_weights(arch, &net.weights()).unwrap();
            assert_eq!(rebuilt.weights(), net.weights());
        }
    }
}
