//! A small native neural-network toolkit for training heads on the device: layers with
//! hand-written backpropagation on `ndarray` (f32), losses, AdamW, schedules, early stopping
//! and multi-task weighting. Every gradient is verified against finite differences in the
//! tests.
//!
//! # Model, step and saving
//!
//! ```
//! use ndarray::Array2;
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use tandem::nn::{loss, optim, Init, Layer, Linear, Mlp, MlpConfig, Param};
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(7);
//! let cfg = MlpConfig { hidden: vec![32], ..Default::default() };
//! let mut encoder = Mlp::new(16, None, &cfg, &mut rng)?.named("encoder");
//! let mut intent = Linear::new(32, 3, Init::XavierUniform, &mut rng).named("heads.intent");
//! let mut spam = Linear::new(32, 1, Init::XavierUniform, &mut rng).named("heads.spam");
//! let mut opt = optim::AdamW::new(optim::AdamWConfig::default())?;
//!
//! let x = Array2::<f32>::zeros((4, 16));
//! let classes = [0usize, 2, 1, 0];
//! let spam_t = Array2::<f32>::zeros((4, 1));
//!
//! // Forward: encoder once, every head on its output.
//! let h = encoder.forward(x.view(), true);
//! let (l1, g1) = loss::softmax_cross_entropy(
//!     intent.forward(h.view(), true).view(), &classes, &Default::default())?;
//! let (l2, g2) = loss::bce_with_logits(
//!     spam.forward(h.view(), true).view(), spam_t.view(), &Default::default())?;
//! // Backward: heads return ∂loss/∂h, which add up; the encoder's input is data.
//! let mut gh = intent.backward(g1.view());
//! gh += &spam.backward(g2.view());
//! encoder.backward_params_only(gh.view());
//! // Step over every parameter, then clear the gradients.
//! let mut params: Vec<&mut Param> = encoder.params_mut();
//! params.extend(intent.params_mut());
//! params.extend(spam.params_mut());
//! optim::clip_grad_norm(&mut params, 1.0);
//! opt.step(&mut params);
//! optim::zero_grad(params);
//!
//! // Saving: names are stable and hierarchical.
//! let names: Vec<&str> = encoder.params().iter().map(|p| p.name.as_str()).collect();
//! assert_eq!(names[..2], ["encoder.0.linear.weight", "encoder.0.linear.bias"]);
//! # let _ = (l1, l2);
//! # Ok::<(), tandem::Error>(())
//! ```
//!
//! Conventions: batches are `[batch, features]`; `Linear` weights are `[out, in]` (PyTorch's
//! layout and names, so weights map one-to-one onto a safetensors file); backward passes
//! accumulate into `Param::grad`; frozen parameters (`trainable = false`) get no gradient and
//! no update; initialisation and dropout draw from a caller-seeded `ChaCha8Rng`, so a fixed
//! seed gives bit-identical training.

pub mod activation;
pub mod bert;
pub mod container;
pub mod dropout;
pub mod early_stop;
pub mod init;
pub mod layer;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod metric;
pub mod mlp;
pub mod multitask;
pub mod norm;
pub mod optim;
pub(crate) mod parallel;
pub mod param;
pub mod schedule;
pub mod seq;
mod simd;
pub mod special;

#[cfg(test)]
pub(crate) mod gradcheck;
#[cfg(test)]
mod tests;

pub use activation::{ActivationKind, Gelu, Relu};
pub use container::{Module, Residual, Sequential};
pub use dropout::Dropout;
pub use early_stop::{EarlyStopDecision, EarlyStopping, EarlyStoppingConfig};
pub use init::Init;
pub use layer::Layer;
pub use linear::Linear;
pub use loss::ClassWeighting;
pub use metric::Mode;
pub use mlp::{Mlp, MlpConfig};
pub use multitask::{FixedWeights, TaskCombination, UncertaintyWeights};
pub use norm::LayerNorm;
pub use optim::{AdamW, AdamWConfig, Mirror};
pub use param::{Param, ParamSnapshot, Weights};
pub use schedule::{LrScheduler, Schedule};
