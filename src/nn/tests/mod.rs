//! Tests of the nn toolkit: finite-difference gradient checks, reference values, optimizer,
//! schedules, early stopping, determinism and small end-to-end training runs.

use std::collections::HashMap;

use ndarray::{array, s, Array2, ArrayD, ArrayView2, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gradcheck::{self, check_layer, check_layer_with, check_loss, random, Tol};
use super::loss::{self, *};
use super::optim::{clip_grad_norm, grad_norm, zero_grad};
use super::param::{self, load_values};
use super::schedule::cosine_with_warmup_factor;
use super::*;

pub(super) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub(super) fn assert_close(a: f32, b: f64, tol: f64, what: &str) {
    assert!(
        ((a as f64) - b).abs() <= tol * b.abs().max(1.0),
        "{what}: got {a}, want {b}"
    );
}

pub(super) fn ok(r: Result<f64, String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

mod gradients;
mod layers;
mod losses;
mod multitask;
mod optimisation;
mod training;
