//! The metadata feature pipeline at prediction time: select the features the heads read and
//! z-score them with statistics learned at training time (fitting them is training's job:
//! `train::normalize`).

use ndarray::{Array2, ArrayView2};

/// A fitted normalizer: which features to keep and how to scale them.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    /// Indices of the kept features.
    pub selected: Vec<usize>,
    /// Means of the kept features.
    pub mean: Vec<f32>,
    /// Standard deviations of the kept features (floored, never 0).
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Selects and z-scores `x` [rows, all features] into [rows, selected].
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        Array2::from_shape_fn((x.nrows(), self.selected.len()), |(i, k)| {
            let v = (x[[i, self.selected[k]]] - self.mean[k]) / self.std[k];
            // Clip extremes so one odd text cannot blow up the encoder's input.
            v.clamp(-10.0, 10.0)
        })
    }
}
