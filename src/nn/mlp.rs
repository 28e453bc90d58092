//! The multi-layer perceptron builder used for encoders and heads.

use ndarray::{Array2, ArrayView2};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::activation::{ActivationKind, Gelu, Relu};
use super::container::{Residual, Sequential};
use super::dropout::Dropout;
use super::init::Init;
use super::layer::Layer;
use super::linear::Linear;
use super::norm::LayerNorm;
use super::param::Param;
use crate::error::{Error, Result};

/// Shape of an [`Mlp`]: `input → [Linear → LayerNorm? → activation → Dropout?] × hidden.len()
/// → optional output Linear`. Serialises as JSON such as
/// `{"hidden":[256],"activation":"gelu","dropout":0.1,"layer_norm":true,"residual":false}`;
/// missing fields take the defaults below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Width of each hidden block (may be empty: then the MLP is only the output layer).
    /// Default `[256]`.
    pub hidden: Vec<usize>,
    /// Activation of the hidden blocks. Default GELU.
    pub activation: ActivationKind,
    /// Dropout probability after each activation, in [0, 1); 0 leaves the layer out.
    /// Default 0.1.
    pub dropout: f32,
    /// Whether each hidden block has a LayerNorm after its Linear. Default true.
    pub layer_norm: bool,
    /// Whether hidden blocks whose input and output widths agree are residual
    /// (x + block(x)). Blocks that change the width are never residual. Default false.
    pub residual: bool,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: vec![256],
            activation: ActivationKind::Gelu,
            dropout: 0.1,
            layer_norm: true,
            residual: false,
        }
    }
}

impl MlpConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.contains(&0) {
            return Err(Error::invalid("MLP hidden widths must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(format!(
                "MLP dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

impl MlpConfig {
    /// The number of scalar parameters of an MLP with this shape from `input_dim` inputs to
    /// `output_dim` outputs, computed without building it. `None` on overflow: the widths may
    /// come from an untrusted bundle, and must be checked before anything is allocated.
    pub fn parameter_count(&self, input_dim: usize, output_dim: Option<usize>) -> Option<u64> {
        let mut total = 0u64;
        let mut prev = input_dim as u64;
        for &h in &self.hidden {
            let h = h as u64;
            let norm = if self.layer_norm {
                h.checked_mul(2)?
            } else {
                0
            };
            total = total
                .checked_add(prev.checked_mul(h)?)?
                .checked_add(h)?
                .checked_add(norm)?;
            prev = h;
        }
        if let Some(o) = output_dim {
            let o = o as u64;
            total = total.checked_add(prev.checked_mul(o)?)?.checked_add(o)?;
        }
        Some(total)
    }
}

/// A multi-layer perceptron built from an [`MlpConfig`].
///
/// Parameter names, for an MLP named `encoder`: `encoder.{i}.linear.weight`,
/// `encoder.{i}.linear.bias`, `encoder.{i}.norm.weight`, `encoder.{i}.norm.bias` for hidden
/// block i, and `encoder.out.weight`, `encoder.out.bias` for the output layer. Hidden Linears
/// use Kaiming-uniform initialisation, the output Linear Xavier-uniform; all biases start at 0.
#[derive(Debug, Clone)]
pub struct Mlp {
    config: MlpConfig,
    input_dim: usize,
    output_dim: Option<usize>,
    net: Sequential,
}

impl Mlp {
    /// Builds the MLP, drawing every initial weight (and each dropout layer's seed) from `rng`
    /// in layer order.
    pub fn new(
        input_dim: usize,
        output_dim: Option<usize>,
        config: &MlpConfig,
        rng: &mut ChaCha8Rng,
    ) -> Result<Mlp> {
        config.validate()?;
        if input_dim == 0 || output_dim == Some(0) {
            return Err(Error::invalid(
                "MLP input and output widths must be positive",
            ));
        }
        let mut net = Sequential::new();
        let mut prev = input_dim;
        for (i, &h) in config.hidden.iter().enumerate() {
            let mut block = Sequential::new()
                .with_named("linear", Linear::new(prev, h, Init::KaimingUniform, rng));
            if config.layer_norm {
                block.push_named("norm", LayerNorm::new(h));
            }
            match config.activation {
                ActivationKind::Relu => block.push_named("act", Relu::new()),
                ActivationKind::Gelu => block.push_named("act", Gelu::new()),
            }
            if config.dropout > 0.0 {
                block.push_named("dropout", Dropout::new(config.dropout, rng)?);
            }
            if config.residual && prev == h {
                net.push_named(i.to_string(), Residual::new(block));
            } else {
                net.push_named(i.to_string(), block);
            }
            prev = h;
        }
        if let Some(o) = output_dim {
            net.push_named("out", Linear::new(prev, o, Init::XavierUniform, rng));
        }
        Ok(Mlp {
            config: config.clone(),
            input_dim,
            output_dim,
            net,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.input_dim
    }

    /// Output width: the output layer's, else the last hidden width, else the input width.
    pub fn out_features(&self) -> usize {
        self.output_dim
            .or_else(|| self.config.hidden.last().copied())
            .unwrap_or(self.input_dim)
    }

    /// Whether the MLP ends in an output Linear.
    pub fn has_output_layer(&self) -> bool {
        self.output_dim.is_some()
    }

    /// The underlying layers.
    pub fn net(&self) -> &Sequential {
        &self.net
    }

    /// The underlying layers, mutably.
    pub fn net_mut(&mut self) -> &mut Sequential {
        &mut self.net
    }

    /// Restarts every dropout layer's stream from seeds derived from `seed` (for example to
    /// give data-parallel replicas different masks, or to replay a run).
    pub fn reseed_dropout(&mut self, seed: u64) {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        self.net
            .for_each_dropout(&mut |d: &mut Dropout| d.reseed(master.next_u64()));
    }
}

impl Layer for Mlp {
    fn forward(&mut self, x: ArrayView2<'_, f32>, train: bool) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.input_dim,
            "Mlp {:?}: input has {} features, expected {}",
            self.net.name(),
            x.ncols(),
            self.input_dim
        );
        self.net.forward(x, train)
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        self.net.backward(grad_out)
    }

    fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        self.net.backward_params_only(grad_out)
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.input_dim,
            "Mlp {:?}: input has {} features, expected {}",
            self.net.name(),
            x.ncols(),
            self.input_dim
        );
        self.net.forward_inference(x)
    }

    fn params(&self) -> Vec<&Param> {
        self.net.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.net.params_mut()
    }

    fn name(&self) -> &str {
        self.net.name()
    }

    fn set_name(&mut self, name: &str) {
        self.net.set_name(name);
    }

    fn clear_cache(&mut self) {
        self.net.clear_cache();
    }
}
