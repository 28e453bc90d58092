//! The inference pass: from embeddings, normalized features and token vectors to every
//! task's raw outputs. Validation during training runs it too.

use ndarray::{s, Array2, ArrayView2};

use super::Network;
use crate::backbone::{PackedBatch, TokenSeqs};
use crate::error::{Error, Result};
use crate::heads::{InputLayout, Mode, SEQUENCE_CHUNK};
use crate::nn::Layer;

impl Network {
    /// The metadata code of normalized features (inference); `None` without an encoder.
    pub fn code(&self, features: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
        self.encoder.as_ref().map(|e| e.forward_inference(features))
    }

    /// The pooled blocks of the semantic heads' input, [embedding ; code] (the embedding alone
    /// in embedding-only mode), for inference.
    pub fn pooled_input(
        &self,
        emb: ArrayView2<'_, f32>,
        features: ArrayView2<'_, f32>,
    ) -> Array2<f32> {
        let code = match self.arch.mode {
            Mode::TwoStage | Mode::Joint => self.code(features),
            Mode::EmbeddingOnly | Mode::MetadataOnly => None,
        };
        InputLayout::join(&[Some(emb), code.as_ref().map(|c| c.view())])
    }

    /// The sequence block (the sequence encoder's output) of every text of `tokens`, run in
    /// chunks of [`SEQUENCE_CHUNK`] texts so the f32 copy of the tokens stays small; `None`
    /// for pooled heads.
    pub fn sequence_block(&self, tokens: &TokenSeqs) -> Option<Array2<f32>> {
        let seq = self.sequence.as_ref()?;
        let mut out = Array2::<f32>::zeros((tokens.len(), seq.out_dim()));
        let all: Vec<usize> = (0..tokens.len()).collect();
        for (c, idx) in all.chunks(SEQUENCE_CHUNK).enumerate() {
            let b = tokens.gather(idx);
            let z = seq.forward_inference(b.tokens.view(), &b.offsets);
            out.slice_mut(s![c * SEQUENCE_CHUNK..c * SEQUENCE_CHUNK + idx.len(), ..])
                .assign(&z);
        }
        Some(out)
    }

    /// Every semantic head's raw outputs on a complete input `[pooled ; sequence]`.
    pub fn heads_forward(&self, input: ArrayView2<'_, f32>) -> Vec<Array2<f32>> {
        self.heads
            .iter()
            .map(|h| h.forward_inference(input))
            .collect()
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
        if self.arch.mode == Mode::MetadataOnly {
            let code = self.code(features).ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::Internal,
                    "metadata-only network without an encoder",
                )
            })?;
            return Ok(self
                .aux_heads
                .iter()
                .map(|h| h.forward_inference(code.view()))
                .collect());
        }
        let pooled = self.pooled_input(emb, features);
        let sequence = match (&self.sequence, tokens) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "sequence heads need the texts' per-token vectors",
                ))
            }
            (Some(seq), Some(tokens)) => {
                if tokens.offsets.len() != pooled.nrows() + 1 {
                    return Err(Error::invalid(format!(
                        "{} token sequences for {} texts",
                        tokens.offsets.len().saturating_sub(1),
                        pooled.nrows()
                    )));
                }
                Some(seq.forward_inference(tokens.tokens.view(), &tokens.offsets))
            }
        };
        let input = match sequence {
            Some(z) => InputLayout::join(&[Some(pooled.view()), Some(z.view())]),
            None => pooled,
        };
        Ok(self.heads_forward(input.view()))
    }
}
