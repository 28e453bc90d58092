//! Sequence layers over frozen token embeddings: the per-token vectors of a backbone are
//! pooled into one vector per text by learned layers, trained natively like the rest of `nn`.
//!
//! # Packed ragged batches
//!
//! Texts have different lengths, and padding a batch to its longest text wastes work and needs
//! masks everywhere. These layers take **packed** batches instead: `tokens` `[T, d]` holds the
//! token vectors of all `b` texts back to back and `offsets` (length `b + 1`, `offsets[0] = 0`,
//! `offsets[b] = T`, strictly increasing) says where each text starts: text `i` is rows
//! `offsets[i]..offsets[i + 1]`. Pooling layers return `[b, out_dim]`; the transformer layer
//! maps tokens to tokens (`[T, d]`). No layer ever mixes tokens of different texts.
//!
//! # Layers
//!
//! * [`AttentionPool`]: softmax attention pooling with one or more learned queries.
//! * [`MultiConv`]: multi-scale 1-D convolution (odd kernels, "same" padding inside each text),
//!   GELU, max pooling over the text; one GEMM for all kernels and offsets.
//! * [`EncoderLayer`]: one post-LN transformer encoder layer with sinusoidal positions.
//! * [`SequenceEncoder`]: the configurable composition of the three ([`SequenceConfig`]).
//!
//! The conventions are those of [`crate::nn`]: PyTorch weight layouts and names built with
//! [`crate::nn::param::join_name`], backward passes accumulate into [`crate::nn::Param::grad`]
//! and skip frozen parameters, `forward_inference(&self)` for serving, initialisation and
//! dropout drawn from a caller-seeded `ChaCha8Rng` (bit-identical results for a fixed seed).
//! The layers take an extra `offsets` argument, so they have inherent methods of the same shape
//! as [`crate::nn::Layer`] instead of implementing it.
//!
//! ```
//! use ndarray::Array2;
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use tandem::nn::seq::{SequenceConfig, SequenceEncoder};
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(1);
//! let cfg = SequenceConfig { conv_channels: 8, ..Default::default() };
//! let mut enc = SequenceEncoder::new(16, &cfg, &mut rng)?.named("seq");
//! // Three texts of 1, 4 and 2 tokens.
//! let tokens = Array2::<f32>::ones((7, 16));
//! let offsets = [0, 1, 5, 7];
//! let pooled = enc.forward(tokens.view(), &offsets, true);
//! assert_eq!(pooled.dim(), (3, enc.out_dim()));
//! enc.backward_params_only(Array2::ones(pooled.dim()).view());
//! assert_eq!(enc.params()[0].name, "seq.attention.score.weight");
//! # Ok::<(), tandem::Error>(())
//! ```

pub mod attention_pool;
pub mod conv;
pub mod encoder;
pub mod transformer;

#[cfg(test)]
mod tests;

pub use attention_pool::AttentionPool;
pub use conv::MultiConv;
pub use encoder::{SequenceConfig, SequenceEncoder};
pub use transformer::EncoderLayer;

use ndarray::ArrayView2;

/// Checks that `offsets` packs `rows` tokens into non-empty texts. Bad offsets are a
/// programming error of the caller (they come from its own packing code), so this panics like a
/// shape mismatch does.
#[track_caller]
pub(crate) fn check_offsets(layer: &str, offsets: &[usize], rows: usize) {
    assert!(
        offsets.first() == Some(&0),
        "{layer}: offsets must start with 0, got {offsets:?}"
    );
    assert!(
        offsets.last() == Some(&rows),
        "{layer}: offsets must end with the number of tokens {rows}, got {:?}",
        offsets.last()
    );
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "{layer}: offsets must be strictly increasing (every text needs a token)"
    );
}

/// A copy of a batch's tokens kept for the backward pass, in a buffer reused across batches of
/// any size (training batches differ in token count, so a cache that only fits one shape would
/// reallocate megabytes every step).
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenBuf {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl TokenBuf {
    /// Copies `x` (any memory layout) in row-major order.
    pub(crate) fn assign(&mut self, x: ArrayView2<'_, f32>) {
        self.data.clear();
        match x.as_slice() {
            Some(s) => self.data.extend_from_slice(s),
            None => self.data.extend(x.iter()),
        }
        (self.rows, self.cols) = x.dim();
    }

    /// The stored tokens `[T, d]`.
    pub(crate) fn view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.rows, self.cols), &self.data).expect("sized by assign")
    }

    /// The stored tokens, row-major.
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

/// `dst += a · src`, element-wise over the common length (the shared inner loop of the pooling
/// passes; inlined into the callers' vectorized closures).
#[inline(always)]
pub(crate) fn axpy(dst: &mut [f32], a: f32, src: &[f32]) {
    for (o, &v) in dst.iter_mut().zip(src) {
        *o += a * v;
    }
}
