//! Element-wise activations: ReLU and exact (erf) GELU.

use std::f32::consts::FRAC_1_SQRT_2;

use ndarray::{Array2, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

use super::layer::Layer;
use super::param::Param;
use super::simd::vectorized;
use super::special::{erf_f32, exp_f32};

/// 1/√(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Which activation a block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// max(x, 0).
    Relu,
    /// Exact GELU, x·Φ(x).
    #[default]
    Gelu,
}

/// ReLU: y = max(x, 0). The derivative at exactly 0 is taken as 0.
#[derive(Debug, Clone, Default)]
pub struct Relu {
    name: String,
    /// The last output (its sign is the mask).
    output: Option<Array2<f32>>,
}

impl Relu {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Relu {
    fn forward(&mut self, x: ArrayView2<'_, f32>, _train: bool) -> Array2<f32> {
        let y = self.forward_inference(x);
        self.output = Some(y.clone());
        y
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let y = self
            .output
            .as_ref()
            .expect("Relu::backward called before forward");
        assert_eq!(grad_out.dim(), y.dim(), "Relu: gradient shape mismatch");
        let mut dx = grad_out.to_owned();
        Zip::from(&mut dx)
            .and(y)
            .for_each(|g, &y| *g = if y > 0.0 { *g } else { 0.0 });
        dx
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        x.mapv(|v| if v > 0.0 { v } else { 0.0 })
    }

    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    fn clear_cache(&mut self) {
        self.output = None;
    }
}

/// The exact GELU: y = x·Φ(x) with Φ(x) = ½(1 + erf(x/√2)) (not the tanh approximation),
/// using [`erf_f32`] (absolute error ≤ 1.5e-7, so y is within ~|x|·1e-7 of the exact value).
/// Its derivative is Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
#[derive(Debug, Clone, Default)]
pub struct Gelu {
    name: String,
    /// d GELU/dx at the last input (all the backward pass needs).
    deriv: Option<Array2<f32>>,
}

impl Gelu {
    /// A GELU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Φ(x) in f32.
#[inline]
pub fn gelu_cdf(x: f32) -> f32 {
    0.5 + 0.5 * erf_f32(x * FRAC_1_SQRT_2)
}

/// GELU(x) = x·Φ(x) in f32.
#[inline]
pub fn gelu(x: f32) -> f32 {
    x * gelu_cdf(x)
}

/// d GELU/dx = Φ(x) + x·φ(x), given Φ(x).
#[inline]
fn gelu_grad(x: f32, cdf: f32) -> f32 {
    cdf + x * INV_SQRT_2PI * exp_f32(-0.5 * x * x)
}

impl Layer for Gelu {
    fn forward(&mut self, x: ArrayView2<'_, f32>, _train: bool) -> Array2<f32> {
        let mut deriv = match self.deriv.take() {
            Some(d) if d.dim() == x.dim() => d,
            _ => Array2::zeros(x.dim()),
        };
        let mut y = Array2::zeros(x.dim());
        let x = x.as_standard_layout();
        // Plain slice loops over contiguous arrays so that the branch-free erf and exp
        // vectorize.
        let xs = x.as_slice().expect("standard layout");
        let ds = deriv.as_slice_mut().expect("contiguous");
        let ys = y.as_slice_mut().expect("contiguous");
        vectorized(
            #[inline(always)]
            || {
                for ((y, d), &x) in ys.iter_mut().zip(ds.iter_mut()).zip(xs) {
                    let p = gelu_cdf(x);
                    *d = gelu_grad(x, p);
                    *y = x * p;
                }
            },
        );
        self.deriv = Some(deriv);
        y
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let deriv = self
            .deriv
            .as_ref()
            .expect("Gelu::backward called before forward");
        assert_eq!(grad_out.dim(), deriv.dim(), "Gelu: gradient shape mismatch");
        let mut dx = Array2::zeros(deriv.dim());
        let g = grad_out.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        let ds = deriv.as_slice().expect("contiguous");
        let out = dx.as_slice_mut().expect("contiguous");
        vectorized(
            #[inline(always)]
            || {
                for ((o, &g), &d) in out.iter_mut().zip(gs).zip(ds) {
                    *o = g * d;
                }
            },
        );
        dx
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        x.mapv(gelu)
    }

    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    fn clear_cache(&mut self) {
        self.deriv = None;
    }
}
