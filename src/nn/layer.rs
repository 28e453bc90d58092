//! The [`Layer`] trait shared by every layer and container.

use ndarray::{Array2, ArrayView2};

use super::param::{self, Param};

/// A differentiable map from a batch `[batch, in_features]` to a batch `[batch, out_features]`
/// with hand-written backpropagation.
///
/// Training uses [`Layer::forward`] (which caches what the backward pass needs) followed by
/// [`Layer::backward`] with the gradient of the loss with respect to the output. Backward
/// passes **accumulate** (`+=`) into the `grad` of every trainable [`Param`] and skip frozen
/// ones; call [`Layer::zero_grad`] (or [`crate::nn::optim::zero_grad`]) between steps.
/// Serving uses [`Layer::forward_inference`], which takes `&self`, caches nothing and disables
/// dropout, so one trained model can be shared by many threads.
///
/// Layers panic on shape mismatches (wrong input width, a gradient whose shape differs from the
/// last output, backward before forward): those are programming errors, not data errors.
pub trait Layer {
    /// Training-mode forward pass: computes the output and caches what [`Layer::backward`]
    /// needs. `train` enables dropout; every other layer behaves the same either way.
    fn forward(&mut self, x: ArrayView2<'_, f32>, train: bool) -> Array2<f32>;

    /// Backward pass for the last [`Layer::forward`]: accumulates parameter gradients and
    /// returns the gradient with respect to that forward's input.
    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32>;

    /// Like [`Layer::backward`] but without the gradient with respect to the input, for the
    /// first layer of a model whose input is data. Layers override it to skip work (a
    /// [`crate::nn::Linear`] saves a third of its backward matmuls; a container skips frozen
    /// leading layers entirely).
    fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        let _ = self.backward(grad_out);
    }

    /// Inference forward pass: no caching, no dropout, `&self`.
    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32>;

    /// The parameters, in a stable order (the order they are created and applied).
    fn params(&self) -> Vec<&Param>;

    /// The parameters, mutably, in the same order as [`Layer::params`].
    fn params_mut(&mut self) -> Vec<&mut Param>;

    /// The layer's full hierarchical name (empty for an unnamed top-level layer).
    fn name(&self) -> &str;

    /// Renames the layer and, recursively, its parameters and children: a parameter `weight`
    /// of a layer named `heads.intent` is called `heads.intent.weight`.
    fn set_name(&mut self, name: &str);

    /// Drops cached activations (they are rebuilt by the next [`Layer::forward`]).
    fn clear_cache(&mut self);

    /// Builder form of [`Layer::set_name`].
    fn named(mut self, name: &str) -> Self
    where
        Self: Sized,
    {
        self.set_name(name);
        self
    }

    /// Freezes (`false`) or unfreezes (`true`) every parameter in the subtree `prefix` of the
    /// full names (see [`param::name_in_subtree`]; `""` means all). Returns how many
    /// parameters matched.
    fn set_trainable(&mut self, prefix: &str, trainable: bool) -> usize {
        param::set_trainable(self.params_mut(), prefix, trainable)
    }

    /// Zeroes every parameter's gradient.
    fn zero_grad(&mut self) {
        param::zero_grad(self.params_mut());
    }

    /// Whether any parameter is trainable.
    fn has_trainable_params(&self) -> bool {
        self.params().iter().any(|p| p.trainable)
    }

    /// Total number of scalar parameters.
    fn num_params(&self) -> usize {
        param::count(self.params())
    }
}
