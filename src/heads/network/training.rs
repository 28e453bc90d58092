//! The training pass: forward with dropout and caches, then backward to the parameter
//! gradients, over the same input blocks inference reads ([`InputLayout`]). The stage loop
//! calls these; the metadata stage (encoder and auxiliary heads) has its own pair.

use ndarray::{s, Array2, ArrayView2, CowArray, Ix2};

use super::Network;
use crate::backbone::PackedBatch;
use crate::error::{Error, ErrorKind, Result};
use crate::heads::InputLayout;
use crate::nn::Layer;

/// One mini-batch as the training pass reads it.
#[derive(Debug, Clone, Copy)]
pub struct TrainBatch<'a> {
    /// The pooled blocks `[embedding ; code]` already computed, when the encoder is frozen
    /// (they do not change during a stage); `emb` and `feats` are then not read.
    pub pooled: Option<ArrayView2<'a, f32>>,
    /// The texts' embeddings.
    pub emb: ArrayView2<'a, f32>,
    /// The texts' normalized features (0 columns when the mode reads none).
    pub feats: ArrayView2<'a, f32>,
    /// The texts' per-token vectors (sequence heads).
    pub tokens: Option<&'a PackedBatch>,
}

/// Which blocks the last training forward ran through trainable layers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pass {
    /// The encoder ran in training mode (its gradient is wanted).
    encoder: bool,
    /// The sequence encoder ran.
    sequence: bool,
    /// Where the blocks sit in the heads' input.
    layout: (usize, usize, usize),
}

impl Network {
    /// Training forward of the semantic heads (dropout on; every layer keeps what its backward
    /// needs): the input `[embedding ; code ; sequence]`, with the encoder run when `pooled` is
    /// not given, then every head. Returns each task's raw outputs.
    pub fn forward_train(&mut self, batch: &TrainBatch<'_>) -> Result<Vec<Array2<f32>>> {
        let layout = self.arch.input_layout();
        let (pooled, encoder): (CowArray<'_, f32, Ix2>, bool) = match batch.pooled {
            // Read in place: the common head-only step copies nothing here.
            Some(p) => (p.into(), false),
            None => match self.encoder.as_mut() {
                Some(enc) if !layout.code.is_empty() && !layout.embedding.is_empty() => {
                    let code = enc.forward(batch.feats, true);
                    (
                        InputLayout::join(&[Some(batch.emb), Some(code.view())]).into(),
                        true,
                    )
                }
                _ => (batch.emb.into(), false),
            },
        };
        let input: CowArray<'_, f32, Ix2> = match (self.sequence.as_mut(), batch.tokens) {
            (Some(seq), Some(b)) => {
                let z = seq.forward(b.tokens.view(), &b.offsets, true);
                InputLayout::join(&[Some(pooled.view()), Some(z.view())]).into()
            }
            (Some(_), None) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "sequence heads without token vectors",
                ))
            }
            (None, _) => pooled,
        };
        self.pass = Some(Pass {
            encoder,
            sequence: self.sequence.is_some(),
            layout: (layout.code.start, layout.code.end, layout.sequence.end),
        });
        Ok(self
            .heads
            .iter_mut()
            .map(|h| h.forward(input.view(), true))
            .collect())
    }

    /// Backward of the last [`Network::forward_train`] from each task's output gradient
    /// (already weighted): accumulates the heads' parameter gradients, and, where they ran
    /// trainable, the sequence encoder's and the encoder's, from their blocks of the input
    /// gradient.
    ///
    /// # Panics
    /// Before any training forward (a caller's invariant).
    pub fn backward_train(&mut self, grads: &[Array2<f32>]) {
        self.backward(grads, false);
    }

    /// [`Network::backward_train`], also returning the gradient on the embedding block of the
    /// input `[b, emb_dim]` and, with sequence heads, on the token vectors the forward read
    /// (`[T, emb_dim]`): for fine-tuning what computed them.
    ///
    /// # Panics
    /// As [`Network::backward_train`].
    pub fn backward_train_inputs(
        &mut self,
        grads: &[Array2<f32>],
    ) -> (Array2<f32>, Option<Array2<f32>>) {
        let (emb, tokens) = self.backward(grads, true);
        (
            emb.expect("the embedding gradient is computed when asked for"),
            tokens,
        )
    }

    fn backward(
        &mut self,
        grads: &[Array2<f32>],
        inputs: bool,
    ) -> (Option<Array2<f32>>, Option<Array2<f32>>) {
        let pass = self
            .pass
            .expect("Network::backward_train called before forward_train");
        if !(pass.encoder || pass.sequence || inputs) {
            for (h, g) in self.heads.iter_mut().zip(grads) {
                h.backward_params_only(g.view());
            }
            return (None, None);
        }
        let (code_start, code_end, width) = pass.layout;
        let rows = grads.first().map_or(0, |g| g.nrows());
        let mut g_in = Array2::<f32>::zeros((rows, width));
        for (h, g) in self.heads.iter_mut().zip(grads) {
            g_in += &h.backward(g.view());
        }
        let mut g_tokens = None;
        if let Some(seq) = self.sequence.as_mut() {
            let g = g_in.slice(s![.., code_end..]);
            if inputs {
                g_tokens = Some(seq.backward(g));
            } else {
                seq.backward_params_only(g);
            }
        }
        if pass.encoder {
            let g_code = g_in.slice(s![.., code_start..code_end]).to_owned();
            if let Some(enc) = self.encoder.as_mut() {
                enc.backward_params_only(g_code.view());
            }
        }
        // The embedding block comes first in the input (see InputLayout).
        let g_emb = inputs.then(|| g_in.slice(s![.., ..code_start]).to_owned());
        (g_emb, g_tokens)
    }

    /// Training forward of the metadata stage: the encoder on normalized `feats`, then every
    /// auxiliary head on the code.
    pub fn forward_metadata_train(
        &mut self,
        feats: ArrayView2<'_, f32>,
    ) -> Result<Vec<Array2<f32>>> {
        let enc = self
            .encoder
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no encoder"))?;
        let code = enc.forward(feats, true);
        Ok(self
            .aux_heads
            .iter_mut()
            .map(|h| h.forward(code.view(), true))
            .collect())
    }

    /// Backward of the last [`Network::forward_metadata_train`] from each task's (weighted)
    /// output gradient: the auxiliary heads', then the encoder's parameter gradients.
    pub fn backward_metadata_train(&mut self, grads: &[Array2<f32>]) -> Result<()> {
        let mut g_code: Option<Array2<f32>> = None;
        for (h, g) in self.aux_heads.iter_mut().zip(grads) {
            let gi = h.backward(g.view());
            g_code = Some(match g_code {
                Some(acc) => acc + &gi,
                None => Array2::<f32>::zeros(gi.raw_dim()) + &gi,
            });
        }
        let enc = self
            .encoder
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no encoder"))?;
        if let Some(g) = g_code {
            enc.backward_params_only(g.view());
        }
        Ok(())
    }
}
