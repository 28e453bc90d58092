//! Layer normalisation.

use ndarray::{Array1, Array2, ArrayD, ArrayView2, IxDyn};

use super::layer::Layer;
use super::param::{join_name, Param};
use super::simd::{self, vectorized};

/// Default ε added to the variance.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// Layer normalisation over the feature axis: y = γ ⊙ (x − μ)/√(σ² + ε) + β, with μ and the
/// biased variance σ² computed per row (two-pass, in f32, 8-lane partial sums) and ε = 1e-5.
///
/// Parameters: `{name}.weight` (γ, starts at 1) and `{name}.bias` (β, starts at 0), both
/// `[features]` (PyTorch's names).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    name: String,
    eps: f32,
    weight: Param,
    bias: Param,
    /// Normalised input x̂ and 1/√(σ²+ε) per row, from the last forward.
    cache: Option<(Array2<f32>, Array1<f32>)>,
}

impl LayerNorm {
    /// A layer normalising `features` columns, γ = 1, β = 0, ε = 1e-5.
    pub fn new(features: usize) -> Self {
        Self::with_eps(features, LAYER_NORM_EPS)
    }

    /// Same with a custom ε.
    pub fn with_eps(features: usize, eps: f32) -> Self {
        LayerNorm {
            name: String::new(),
            eps,
            weight: Param::new("weight", ArrayD::ones(IxDyn(&[features]))),
            bias: Param::new("bias", ArrayD::zeros(IxDyn(&[features]))),
            cache: None,
        }
    }

    /// Number of normalised features.
    pub fn features(&self) -> usize {
        self.weight.len()
    }

    /// The ε added to the variance.
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// Normalises `x` into `xhat` (same shape, contiguous) and returns the per-row
    /// 1/√(σ²+ε).
    fn normalise(&self, x: ArrayView2<'_, f32>, xhat: &mut Array2<f32>) -> Array1<f32> {
        assert_eq!(
            x.ncols(),
            self.features(),
            "LayerNorm {:?}: input has {} features, expected {}",
            self.name,
            x.ncols(),
            self.features()
        );
        xhat.assign(&x);
        let d = x.ncols().max(1) as f32;
        let mut rstd = Array1::zeros(x.nrows());
        let eps = self.eps;
        vectorized(
            #[inline(always)]
            || {
                for (mut row, r) in xhat.rows_mut().into_iter().zip(rstd.iter_mut()) {
                    let h = row.as_slice_mut().expect("contiguous");
                    let mean = simd::sum(h) / d;
                    for v in h.iter_mut() {
                        *v -= mean;
                    }
                    let rs = 1.0 / (simd::dot(h, h) / d + eps).sqrt();
                    *r = rs;
                    for v in h.iter_mut() {
                        *v *= rs;
                    }
                }
            },
        );
        rstd
    }

    fn affine(&self, xhat: &Array2<f32>) -> Array2<f32> {
        let g = self.weight.value.as_slice().expect("contiguous");
        let b = self.bias.value.as_slice().expect("contiguous");
        let mut y = xhat.clone();
        vectorized(
            #[inline(always)]
            || {
                for mut row in y.rows_mut() {
                    let r = row.as_slice_mut().expect("contiguous");
                    for ((v, &g), &b) in r.iter_mut().zip(g).zip(b) {
                        *v = *v * g + b;
                    }
                }
            },
        );
        y
    }
}

impl Layer for LayerNorm {
    fn forward(&mut self, x: ArrayView2<'_, f32>, _train: bool) -> Array2<f32> {
        let mut xhat = match self.cache.take() {
            Some((h, _)) if h.dim() == x.dim() => h,
            _ => Array2::zeros(x.dim()),
        };
        let rstd = self.normalise(x, &mut xhat);
        let y = self.affine(&xhat);
        self.cache = Some((xhat, rstd));
        y
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let (xhat, rstd) = self
            .cache
            .as_ref()
            .expect("LayerNorm::backward called before forward");
        assert_eq!(
            grad_out.dim(),
            xhat.dim(),
            "LayerNorm {:?}: gradient shape does not match the last output",
            self.name
        );
        let g = grad_out.as_standard_layout();
        let mut dx = Array2::zeros(xhat.dim());
        let d = xhat.ncols().max(1) as f32;
        let (weight, bias) = (&mut self.weight, &mut self.bias);
        let gamma = weight.value.as_slice().expect("contiguous");
        let mut gw = weight
            .trainable
            .then(|| weight.grad.as_slice_mut().expect("contiguous"));
        let mut gb = bias
            .trainable
            .then(|| bias.grad.as_slice_mut().expect("contiguous"));
        vectorized(
            #[inline(always)]
            || {
                let rows = g.rows().into_iter().zip(xhat.rows()).zip(rstd);
                for (mut dr, ((gr, hr), &rs)) in dx.rows_mut().into_iter().zip(rows) {
                    let dr = dr.as_slice_mut().expect("contiguous");
                    let gr = gr.to_slice().expect("contiguous");
                    let hr = hr.to_slice().expect("contiguous");
                    if let Some(gw) = gw.as_deref_mut() {
                        for ((a, &g), &h) in gw.iter_mut().zip(gr).zip(hr) {
                            *a += g * h;
                        }
                    }
                    if let Some(gb) = gb.as_deref_mut() {
                        for (a, &g) in gb.iter_mut().zip(gr) {
                            *a += g;
                        }
                    }
                    // dx̂ = g ⊙ γ; dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)).
                    for ((o, &g), &w) in dr.iter_mut().zip(gr).zip(gamma) {
                        *o = g * w;
                    }
                    let m1 = simd::sum(dr) / d;
                    let m2 = simd::dot(dr, hr) / d;
                    for (o, &h) in dr.iter_mut().zip(hr) {
                        *o = rs * (*o - m1 - h * m2);
                    }
                }
            },
        );
        dx
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut xhat = Array2::zeros(x.dim());
        self.normalise(x, &mut xhat);
        self.affine(&xhat)
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        self.weight.name = join_name(name, "weight");
        self.bias.name = join_name(name, "bias");
    }

    fn clear_cache(&mut self) {
        self.cache = None;
    }
}
