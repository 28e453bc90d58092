//! Fully connected layer.

use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use rand_chacha::ChaCha8Rng;

use super::init::Init;
use super::layer::Layer;
use super::matmul::{matmul, matmul_on, Kernel};
use super::param::{join_name, Param};
use super::simd::vectorized;

/// y = x·Wᵀ + b, with W of shape `[out_features, in_features]` (PyTorch's layout, so weights
/// exchanged with PyTorch need no transpose) and b of shape `[out_features]`.
///
/// Parameters: `{name}.weight`, `{name}.bias` (if any). The bias starts at zero. The matmuls go
/// through [`matmul`] (faer's runtime-dispatched AVX-512/AVX2 kernels).
#[derive(Debug, Clone)]
pub struct Linear {
    name: String,
    weight: Param,
    bias: Option<Param>,
    input: Option<Array2<f32>>,
}

impl Linear {
    /// A layer with a bias, its weight drawn by `init` from `rng`.
    pub fn new(in_features: usize, out_features: usize, init: Init, rng: &mut ChaCha8Rng) -> Self {
        Self::with_bias(in_features, out_features, true, init, rng)
    }

    /// A layer with or without a bias.
    pub fn with_bias(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let weight = Param::new("weight", init.matrix(out_features, in_features, rng));
        let bias = bias.then(|| Param::new("bias", ArrayD::zeros(IxDyn(&[out_features]))));
        Linear {
            name: String::new(),
            weight,
            bias,
            input: None,
        }
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The weight, mutably.
    pub fn weight_mut(&mut self) -> &mut Param {
        &mut self.weight
    }

    /// The bias `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The bias, mutably.
    pub fn bias_mut(&mut self) -> Option<&mut Param> {
        self.bias.as_mut()
    }

    fn affine(&self, x: ArrayView2<'_, f32>, kernel: Kernel) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.in_features(),
            "Linear {:?}: input has {} features, expected {}",
            self.name,
            x.ncols(),
            self.in_features()
        );
        let mut y = Array2::zeros((x.nrows(), self.out_features()));
        // Start from the bias in every row and let the product accumulate onto it.
        if let Some(b) = &self.bias {
            let b = b.value.as_slice().expect("contiguous");
            for mut row in y.rows_mut() {
                row.as_slice_mut().expect("contiguous").copy_from_slice(b);
            }
        }
        matmul_on(
            kernel,
            y.view_mut(),
            self.bias.is_some(),
            x,
            self.weight.value2().t(),
        );
        y
    }

    fn param_grads(&mut self, g: ArrayView2<'_, f32>) {
        let x = self
            .input
            .as_ref()
            .expect("Linear::backward called before forward");
        assert_eq!(
            g.dim(),
            (x.nrows(), self.out_features()),
            "Linear {:?}: gradient shape does not match the last output",
            self.name
        );
        if self.weight.trainable {
            matmul(self.weight.grad2_mut(), true, g.t(), x.view());
        }
        if let Some(b) = self.bias.as_mut().filter(|b| b.trainable) {
            let bg = b.grad.as_slice_mut().expect("contiguous");
            let g = g.as_standard_layout();
            vectorized(
                #[inline(always)]
                || {
                    for row in g.rows() {
                        let row = row.to_slice().expect("standard layout");
                        for (a, &v) in bg.iter_mut().zip(row) {
                            *a += v;
                        }
                    }
                },
            );
        }
    }
}

impl Layer for Linear {
    fn forward(&mut self, x: ArrayView2<'_, f32>, _train: bool) -> Array2<f32> {
        let y = self.affine(x, Kernel::Fast);
        match &mut self.input {
            Some(c) if c.dim() == x.dim() => c.assign(&x),
            c => *c = Some(x.to_owned()),
        }
        y
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        self.param_grads(grad_out);
        let mut dx = Array2::zeros((grad_out.nrows(), self.in_features()));
        matmul(dx.view_mut(), false, grad_out, self.weight.value2());
        dx
    }

    fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        self.param_grads(grad_out);
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.affine(x, Kernel::Bounded)
    }

    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight)
            .chain(&mut self.bias)
            .collect()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        self.weight.name = join_name(name, "weight");
        if let Some(b) = &mut self.bias {
            b.name = join_name(name, "bias");
        }
    }

    fn clear_cache(&mut self) {
        self.input = None;
    }
}
