//! Tests of the sequence layers: finite-difference gradient checks on ragged packed batches,
//! masking (no text sees another), hand-computed cases, determinism, configuration checks and
//! small learning runs on a task that only token order solves.

use ndarray::{array, s, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::nn::gradcheck::{compare, random, Grads, Tol};
use crate::nn::loss::softmax_cross_entropy;
use crate::nn::optim::{zero_grad, AdamW, AdamWConfig};
use crate::nn::param::{check_unique_names, Param};
use crate::nn::{Init, Layer, Linear};

pub(super) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Offsets of texts with the given lengths.
pub(super) fn offsets_of(lengths: &[usize]) -> Vec<usize> {
    let mut o = vec![0];
    for &l in lengths {
        o.push(o.last().unwrap() + l);
    }
    o
}

/// The ragged batch of the gradient checks: a 1-token text, a 4-token and a 7-token one.
pub(super) const LENGTHS: [usize; 3] = [1, 4, 7];

pub(super) fn assert_close_arrays(a: &Array2<f32>, b: &Array2<f32>, tol: f32, what: &str) {
    assert_eq!(a.dim(), b.dim(), "{what}: shapes");
    for ((idx, &x), &y) in a.indexed_iter().zip(b.iter()) {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())),
            "{what} at {idx:?}: {x} vs {y}"
        );
    }
}

/// The common API of the sequence layers, so the checks below are written once.
trait Packed: Clone {
    fn fwd(&mut self, x: ArrayView2<'_, f32>, offsets: &[usize], train: bool) -> Array2<f32>;
    fn inf(&self, x: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32>;
    fn bwd(&mut self, g: ArrayView2<'_, f32>) -> Array2<f32>;
    fn bwd_params(&mut self, g: ArrayView2<'_, f32>);
    fn ps(&self) -> Vec<&Param>;
    fn ps_mut(&mut self) -> Vec<&mut Param>;
    fn reseed(&mut self, seed: u64);
}

macro_rules! packed {
    ($($t:ty),*) => {
        $(impl Packed for $t {
            fn fwd(&mut self, x: ArrayView2<'_, f32>, o: &[usize], train: bool) -> Array2<f32> {
                self.forward(x, o, train)
            }
            fn inf(&self, x: ArrayView2<'_, f32>, o: &[usize]) -> Array2<f32> {
                self.forward_inference(x, o)
            }
            fn bwd(&mut self, g: ArrayView2<'_, f32>) -> Array2<f32> {
                self.backward(g)
            }
            fn bwd_params(&mut self, g: ArrayView2<'_, f32>) {
                self.backward_params_only(g)
            }
            fn ps(&self) -> Vec<&Param> {
                self.params()
            }
            fn ps_mut(&mut self) -> Vec<&mut Param> {
                self.params_mut()
            }
            fn reseed(&mut self, seed: u64) {
                self.reseed_dropout(seed)
            }
        })*
    };
}
packed!(AttentionPool, MultiConv, EncoderLayer, SequenceEncoder);

/// Every part of the encoder on, at small widths.
pub(super) fn full_config() -> SequenceConfig {
    SequenceConfig {
        attention_queries: 2,
        conv_kernels: vec![1, 3],
        conv_channels: 3,
        transformer: true,
        transformer_heads: 2,
        transformer_ffn: 6,
        dropout: 0.25,
    }
}

mod api;
mod configuration;
mod determinism;
mod gradients;
mod hand_computed;
mod learning;
mod masking;
