//! Finite-difference gradient checking for the tests.
//!
//! A layer is checked through the scalar objective f(x, θ) = Σ r ⊙ layer(x) with a fixed random
//! `r`: the analytic gradients are what `backward(r)` returns / accumulates, the numeric ones
//! are central differences (f(·+ε) − f(·−ε)) / 2ε of f summed in f64. An entry passes when
//! |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|).

use ndarray::{Array2, ArrayD, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::layer::Layer;

/// Tolerances and step.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    pub eps: f32,
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tol {
    fn default() -> Self {
        Tol {
            eps: 1e-3,
            rtol: 1e-2,
            atol: 1e-3,
        }
    }
}

/// Gradients with respect to the input and each parameter (by name).
#[derive(Debug, Clone)]
pub struct Grads {
    pub input: Option<Array2<f32>>,
    pub params: Vec<(String, ArrayD<f32>)>,
}

/// A random matrix with entries uniform in [-1, 1).
pub fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-1.0..1.0))
}

fn objective<L: Layer>(
    layer: &mut L,
    x: ArrayView2<'_, f32>,
    r: &Array2<f32>,
    prep: &mut dyn FnMut(&mut L),
) -> f64 {
    prep(layer);
    let y = layer.forward(x, true);
    y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Analytic gradients of Σ r ⊙ layer(x).
pub fn analytic<L: Layer>(
    layer: &mut L,
    x: &Array2<f32>,
    r: &Array2<f32>,
    prep: &mut dyn FnMut(&mut L),
) -> Grads {
    layer.zero_grad();
    prep(layer);
    let y = layer.forward(x.view(), true);
    assert_eq!(y.dim(), r.dim());
    let dx = layer.backward(r.view());
    Grads {
        input: Some(dx),
        params: layer
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.grad.clone()))
            .collect(),
    }
}

/// Central-difference gradients of Σ r ⊙ layer(x).
pub fn numeric<L: Layer>(
    layer: &mut L,
    x: &Array2<f32>,
    r: &Array2<f32>,
    eps: f32,
    prep: &mut dyn FnMut(&mut L),
) -> Grads {
    let mut xp = x.clone();
    let mut dx = Array2::zeros(x.dim());
    for idx in 0..x.len() {
        let (i, j) = (idx / x.ncols(), idx % x.ncols());
        let orig = xp[[i, j]];
        xp[[i, j]] = orig + eps;
        let fp = objective(layer, xp.view(), r, prep);
        xp[[i, j]] = orig - eps;
        let fm = objective(layer, xp.view(), r, prep);
        xp[[i, j]] = orig;
        dx[[i, j]] = ((fp - fm) / (2.0 * eps as f64)) as f32;
    }
    let n_params = layer.params().len();
    let mut params = Vec::new();
    for pi in 0..n_params {
        let (name, len) = {
            let p = &layer.params()[pi];
            (p.name.clone(), p.len())
        };
        let mut g = ArrayD::zeros(layer.params()[pi].value.raw_dim());
        for k in 0..len {
            let orig = layer.params()[pi].value.as_slice().unwrap()[k];
            layer.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig + eps;
            let fp = objective(layer, x.view(), r, prep);
            layer.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig - eps;
            let fm = objective(layer, x.view(), r, prep);
            layer.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig;
            g.as_slice_mut().unwrap()[k] = ((fp - fm) / (2.0 * eps as f64)) as f32;
        }
        params.push((name, g));
    }
    Grads {
        input: Some(dx),
        params,
    }
}

fn compare_arrays<'a>(
    what: &str,
    a: impl IntoIterator<Item = &'a f32>,
    n: impl IntoIterator<Item = &'a f32>,
    tol: Tol,
    worst: &mut (f64, String),
) {
    for (k, (&a, &n)) in a.into_iter().zip(n).enumerate() {
        let (a, n) = (a as f64, n as f64);
        let allowed = tol.atol + tol.rtol * a.abs().max(n.abs());
        let ratio = (a - n).abs() / allowed;
        if ratio > worst.0 || ratio.is_nan() {
            *worst = (
                if ratio.is_nan() { f64::INFINITY } else { ratio },
                format!("{what}[{k}]: analytic {a:.6e}, numeric {n:.6e}"),
            );
        }
    }
}

/// Compares two sets of gradients; `Err` names the worst entry when any exceeds the tolerance.
/// `Ok` carries the worst |a−n|/allowed ratio (≤ 1).
pub fn compare(a: &Grads, n: &Grads, tol: Tol) -> Result<f64, String> {
    let mut worst = (0.0f64, String::new());
    if let (Some(ai), Some(ni)) = (&a.input, &n.input) {
        assert_eq!(ai.dim(), ni.dim());
        compare_arrays("input", ai.iter(), ni.iter(), tol, &mut worst);
    }
    assert_eq!(a.params.len(), n.params.len());
    for ((an, ag), (nn, ng)) in a.params.iter().zip(&n.params) {
        assert_eq!(an, nn);
        assert_eq!(ag.shape(), ng.shape());
        compare_arrays(an, ag.iter(), ng.iter(), tol, &mut worst);
    }
    if worst.0 <= 1.0 {
        Ok(worst.0)
    } else {
        Err(format!(
            "gradient check failed ({:.2}× tolerance) at {}",
            worst.0, worst.1
        ))
    }
}

/// Checks every input and parameter gradient of `layer` at `x`.
pub fn check_layer<L: Layer>(layer: &mut L, x: &Array2<f32>, tol: Tol) -> Result<f64, String> {
    check_layer_with(layer, x, tol, &mut |_| {})
}

/// Like [`check_layer`], calling `prep` before every forward (e.g. to reseed dropout).
pub fn check_layer_with<L: Layer>(
    layer: &mut L,
    x: &Array2<f32>,
    tol: Tol,
    prep: &mut dyn FnMut(&mut L),
) -> Result<f64, String> {
    let y = layer.forward(x.view(), true);
    let r = random(y.nrows(), y.ncols(), 0x5eed);
    let a = analytic(layer, x, &r, prep);
    let n = numeric(layer, x, &r, tol.eps, prep);
    compare(&a, &n, tol)
}

/// A loss as a function of its logits: `(loss, ∂loss/∂z)`.
pub type LossFn<'a> = dyn Fn(ArrayView2<'_, f32>) -> (f32, Array2<f32>) + 'a;

/// Checks the gradient returned by a loss `f(z) -> (loss, ∂loss/∂z)` at `z`.
pub fn check_loss(f: &LossFn<'_>, z: &Array2<f32>, tol: Tol) -> Result<f64, String> {
    let (_, g) = f(z.view());
    let mut zp = z.clone();
    let mut num = Array2::zeros(z.dim());
    for i in 0..z.nrows() {
        for j in 0..z.ncols() {
            let orig = zp[[i, j]];
            zp[[i, j]] = orig + tol.eps;
            let lp = f(zp.view()).0 as f64;
            zp[[i, j]] = orig - tol.eps;
            let lm = f(zp.view()).0 as f64;
            zp[[i, j]] = orig;
            num[[i, j]] = ((lp - lm) / (2.0 * tol.eps as f64)) as f32;
        }
    }
    compare(
        &Grads {
            input: Some(g),
            params: vec![],
        },
        &Grads {
            input: Some(num),
            params: vec![],
        },
        tol,
    )
}
