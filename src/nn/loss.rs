//! Loss functions returning the scalar loss and its gradient with respect to the logits or
//! predictions, plus class-weight helpers.
//!
//! Every loss takes a batch `[batch, outputs]` and returns `(loss, grad)` with `grad` of the same
//! shape, ready for [`crate::nn::Layer::backward`]. The loss is a **weighted mean** over the
//! batch (each function documents its weights and denominator); when the total weight is zero
//! (empty batch, everything masked) the loss is 0 and the gradient is zero. Per-row arithmetic
//! is done in f64 and the sums in f64, so gradients are accurate to f32 rounding.
//!
//! Arguments are validated (shapes, class indices, finite non-negative weights) and reported as
//! [`crate::ErrorKind::InvalidArgument`].

use ndarray::{Array2, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Options of [`softmax_cross_entropy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossEntropyOptions<'a> {
    /// Weight of each class (length = number of classes), e.g. from [`class_weights`].
    pub class_weights: Option<&'a [f32]>,
    /// Label smoothing ε in [0, 1): the target distribution is (1−ε)·onehot + ε/K.
    pub label_smoothing: f32,
    /// Weight of each example (length = batch), e.g. 0 to drop an example.
    pub sample_weights: Option<&'a [f32]>,
}

/// Options of [`softmax_focal`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FocalOptions<'a> {
    /// Focusing parameter γ ≥ 0 (0 gives cross-entropy; 2 is the usual choice).
    pub gamma: f32,
    /// Per-class α (length = number of classes); `None` means 1 for every class.
    pub alpha: Option<&'a [f32]>,
    /// Weight of each example (length = batch).
    pub sample_weights: Option<&'a [f32]>,
}

/// Options of [`sigmoid_focal`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SigmoidFocalOptions<'a> {
    /// Focusing parameter γ ≥ 0.
    pub gamma: f32,
    /// Balance α in [0, 1] applied as α to positives and 1−α to negatives (torchvision's
    /// convention; 0.25 in the RetinaNet paper); `None` disables it.
    pub alpha: Option<f32>,
    /// Element weights `[batch, outputs]`, 0 for a missing label.
    pub mask: Option<ArrayView2<'a, f32>>,
}

/// Options of [`bce_with_logits`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BceOptions<'a> {
    /// Weight of the positive term per output (length = outputs), PyTorch's `pos_weight`,
    /// typically negatives/positives (see [`bce_pos_weights`]).
    pub pos_weight: Option<&'a [f32]>,
    /// Element weights `[batch, outputs]`, 0 for a missing label.
    pub mask: Option<ArrayView2<'a, f32>>,
}

fn check_weights(what: &str, w: &[f32], len: usize) -> Result<()> {
    if w.len() != len {
        return Err(Error::invalid(format!(
            "{what}: expected {len} values, got {}",
            w.len()
        )));
    }
    if let Some(v) = w.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::invalid(format!(
            "{what} must be finite and non-negative, got {v}"
        )));
    }
    Ok(())
}

fn check_targets(logits: &ArrayView2<'_, f32>, targets: &[usize]) -> Result<()> {
    if targets.len() != logits.nrows() {
        return Err(Error::invalid(format!(
            "{} targets for a batch of {}",
            targets.len(),
            logits.nrows()
        )));
    }
    let k = logits.ncols();
    if let Some(t) = targets.iter().find(|&&t| t >= k) {
        return Err(Error::invalid(format!(
            "class index {t} out of range for {k} classes"
        )));
    }
    Ok(())
}

fn check_same_shape(what: &str, a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(Error::invalid(format!(
            "{what}: shape {:?} does not match {:?}",
            b.dim(),
            a.dim()
        )));
    }
    Ok(())
}

fn check_mask(mask: &Option<ArrayView2<'_, f32>>, shape: &ArrayView2<'_, f32>) -> Result<()> {
    if let Some(m) = mask {
        check_same_shape("mask", shape, m)?;
        if let Some(v) = m.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::invalid(format!(
                "mask values must be finite and non-negative, got {v}"
            )));
        }
    }
    Ok(())
}

/// Writes log-softmax of `row` into `out` (f64) and returns log-sum-exp.
fn log_softmax_row(row: ndarray::ArrayView1<'_, f32>, out: &mut [f64]) -> f64 {
    let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let s: f64 = row.iter().map(|&z| (z as f64 - m).exp()).sum();
    let lse = m + s.ln();
    for (o, &z) in out.iter_mut().zip(row.iter()) {
        *o = z as f64 - lse;
    }
    lse
}

/// Softmax cross-entropy with integer class targets.
///
/// Per example i with target yᵢ, log-probabilities log pᵢ = log_softmax(zᵢ) and target
/// distribution qᵢ = (1−ε)·onehot(yᵢ) + ε/K:
/// lᵢ = −Σⱼ qᵢⱼ log pᵢⱼ. With example weight wᵢ = class_weight(yᵢ) · sample_weight(i)
/// (each 1 when absent), the loss is Σᵢ wᵢ lᵢ / Σᵢ wᵢ and ∂loss/∂zᵢⱼ = wᵢ (pᵢⱼ − qᵢⱼ) / Σ wᵢ.
///
/// Without label smoothing this is PyTorch's `cross_entropy(weight=…, reduction="mean")`;
/// without class weights it matches PyTorch's label smoothing too. (With both, PyTorch weights
/// the smoothing term per class instead; here the whole example is weighted by its class.)
pub fn softmax_cross_entropy(
    logits: ArrayView2<'_, f32>,
    targets: &[usize],
    opts: &CrossEntropyOptions<'_>,
) -> Result<(f32, Array2<f32>)> {
    check_targets(&logits, targets)?;
    let (n, k) = logits.dim();
    if let Some(w) = opts.class_weights {
        check_weights("class weights", w, k)?;
    }
    if let Some(w) = opts.sample_weights {
        check_weights("sample weights", w, n)?;
    }
    let eps = opts.label_smoothing;
    if !(0.0..1.0).contains(&eps) {
        return Err(Error::invalid(format!(
            "label smoothing must be in [0, 1), got {eps}"
        )));
    }
    let weight = |i: usize| -> f64 {
        let cw = opts.class_weights.map_or(1.0, |w| w[targets[i]] as f64);
        let sw = opts.sample_weights.map_or(1.0, |w| w[i] as f64);
        cw * sw
    };
    let total: f64 = (0..n).map(weight).sum();
    let mut grad = Array2::zeros((n, k));
    if total <= 0.0 || k == 0 {
        return Ok((0.0, grad));
    }
    let eps = eps as f64;
    let off = eps / k as f64;
    let on = 1.0 - eps + off;
    let mut logp = vec![0.0f64; k];
    let mut loss = 0.0f64;
    for (i, (row, mut grow)) in logits.rows().into_iter().zip(grad.rows_mut()).enumerate() {
        let w = weight(i);
        if w == 0.0 {
            continue;
        }
        log_softmax_row(row, &mut logp);
        let y = targets[i];
        let mut l = 0.0;
        for (j, (&lp, g)) in logp.iter().zip(grow.iter_mut()).enumerate() {
            let q = if j == y { on } else { off };
            l -= q * lp;
            *g = (w * (lp.exp() - q) / total) as f32;
        }
        loss += w * l;
    }
    Ok(((loss / total) as f32, grad))
}

/// Multi-class focal loss (Lin et al. 2017) on softmax probabilities.
///
/// With pᵢ = softmax(zᵢ)_yᵢ: FLᵢ = −α_yᵢ (1−pᵢ)^γ log pᵢ. The loss is
/// Σᵢ sᵢ FLᵢ / Σᵢ sᵢ with sᵢ the sample weights (1 when absent): α scales examples but, as in
/// the paper and torchvision, is **not** renormalised. γ = 0 and no α gives
/// [`softmax_cross_entropy`].
pub fn softmax_focal(
    logits: ArrayView2<'_, f32>,
    targets: &[usize],
    opts: &FocalOptions<'_>,
) -> Result<(f32, Array2<f32>)> {
    check_targets(&logits, targets)?;
    let (n, k) = logits.dim();
    if let Some(a) = opts.alpha {
        check_weights("focal alpha", a, k)?;
    }
    if let Some(w) = opts.sample_weights {
        check_weights("sample weights", w, n)?;
    }
    if !(opts.gamma.is_finite() && opts.gamma >= 0.0) {
        return Err(Error::invalid(format!(
            "focal gamma must be finite and non-negative, got {}",
            opts.gamma
        )));
    }
    let sw = |i: usize| opts.sample_weights.map_or(1.0, |w| w[i] as f64);
    let total: f64 = (0..n).map(sw).sum();
    let mut grad = Array2::zeros((n, k));
    if total <= 0.0 || k == 0 {
        return Ok((0.0, grad));
    }
    let gamma = opts.gamma as f64;
    let mut logp = vec![0.0f64; k];
    let mut loss = 0.0f64;
    for (i, (row, mut grow)) in logits.rows().into_iter().zip(grad.rows_mut()).enumerate() {
        let s = sw(i);
        if s == 0.0 {
            continue;
        }
        log_softmax_row(row, &mut logp);
        let y = targets[i];
        let a = opts.alpha.map_or(1.0, |a| a[y] as f64) * s / total;
        let lp = logp[y];
        let p = lp.exp();
        let omp = -lp.exp_m1(); // 1 − p without cancellation
        let mod_ = if gamma == 0.0 { 1.0 } else { omp.powf(gamma) };
        loss += -a * mod_ * lp;
        // ∂FL/∂zⱼ = α [γ(1−p)^(γ−1) p log p − (1−p)^γ] (δⱼy − pⱼ)
        let focus = if gamma != 0.0 && omp > 0.0 {
            gamma * omp.powf(gamma - 1.0) * p * lp
        } else {
            0.0
        };
        let c = a * (focus - mod_);
        for (j, (&lpj, g)) in logp.iter().zip(grow.iter_mut()).enumerate() {
            let delta = if j == y { 1.0 } else { 0.0 };
            *g = (c * (delta - lpj.exp())) as f32;
        }
    }
    Ok((loss as f32, grad))
}

/// softplus(x) = ln(1 + eˣ), stable for all x.
#[inline]
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// σ(x), stable for all x.
#[inline]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Binary cross-entropy on logits, for one binary output or several independent ones
/// (multi-label), with PyTorch's `pos_weight`.
///
/// Element loss, with targets t in [0, 1] (0/1, or soft) and pw the output's positive weight:
/// l = pw·t·softplus(−x) + (1−t)·softplus(x) = −[pw·t·log σ(x) + (1−t)·log(1−σ(x))], evaluated
/// in the stable softplus form (no overflow for any x). Its gradient is
/// ∂l/∂x = (1−t)·σ(x) − pw·t·σ(−x). The loss is Σ m·l / Σ m over all elements with m the mask
/// (1 when absent) — PyTorch's `reduction="mean"` when there is no mask.
pub fn bce_with_logits(
    logits: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    opts: &BceOptions<'_>,
) -> Result<(f32, Array2<f32>)> {
    check_same_shape("targets", &logits, &targets)?;
    check_mask(&opts.mask, &logits)?;
    if let Some(pw) = opts.pos_weight {
        check_weights("pos_weight", pw, logits.ncols())?;
    }
    elementwise_loss(logits, targets, opts.mask, |j, x, t| {
        let pw = opts.pos_weight.map_or(1.0, |p| p[j] as f64);
        let l = pw * t * softplus(-x) + (1.0 - t) * softplus(x);
        let g = (1.0 - t) * sigmoid(x) - pw * t * sigmoid(-x);
        (l, g)
    })
}

/// Sigmoid focal loss for binary and multi-label outputs (torchvision's
/// `sigmoid_focal_loss`): with p = σ(x), pₜ = p·t + (1−p)(1−t) and αₜ = α·t + (1−α)(1−t),
/// l = αₜ · (1−pₜ)^γ · BCE(x, t). The loss is Σ m·l / Σ m over all elements (m the mask, 1 when
/// absent); γ = 0 without α gives [`bce_with_logits`].
pub fn sigmoid_focal(
    logits: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    opts: &SigmoidFocalOptions<'_>,
) -> Result<(f32, Array2<f32>)> {
    check_same_shape("targets", &logits, &targets)?;
    check_mask(&opts.mask, &logits)?;
    if !(opts.gamma.is_finite() && opts.gamma >= 0.0) {
        return Err(Error::invalid(format!(
            "focal gamma must be finite and non-negative, got {}",
            opts.gamma
        )));
    }
    if let Some(a) = opts.alpha {
        if !(0.0..=1.0).contains(&a) {
            return Err(Error::invalid(format!(
                "focal alpha must be in [0, 1], got {a}"
            )));
        }
    }
    let gamma = opts.gamma as f64;
    elementwise_loss(logits, targets, opts.mask, |_, x, t| {
        let p = sigmoid(x);
        let q = sigmoid(-x); // 1 − p
        let ce = t * softplus(-x) + (1.0 - t) * softplus(x);
        let dce = p - t;
        let omp_t = t * q + (1.0 - t) * p; // 1 − pₜ
        let (m, dm) = if gamma == 0.0 {
            (1.0, 0.0)
        } else {
            let m = omp_t.powf(gamma);
            // ∂(1−pₜ)/∂x = −p(1−p)(2t−1)
            let dm = if omp_t > 0.0 {
                -gamma * omp_t.powf(gamma - 1.0) * p * q * (2.0 * t - 1.0)
            } else {
                0.0
            };
            (m, dm)
        };
        let a = opts.alpha.map_or(1.0, |a| {
            let a = a as f64;
            a * t + (1.0 - a) * (1.0 - t)
        });
        (a * ce * m, a * (dce * m + ce * dm))
    })
}

/// Mean squared error: Σ m·(y − t)² / Σ m over all elements (m the mask, 1 when absent);
/// gradient 2m(y − t)/Σ m.
pub fn mse(
    preds: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    mask: Option<ArrayView2<'_, f32>>,
) -> Result<(f32, Array2<f32>)> {
    check_same_shape("targets", &preds, &targets)?;
    check_mask(&mask, &preds)?;
    elementwise_loss(preds, targets, mask, |_, y, t| {
        let r = y - t;
        (r * r, 2.0 * r)
    })
}

/// Huber loss with threshold δ > 0 (PyTorch's `HuberLoss`): with r = y − t,
/// l = ½r² for |r| ≤ δ, else δ(|r| − ½δ); gradient r, else δ·sign(r). The loss is
/// Σ m·l / Σ m over all elements (m the mask, 1 when absent).
pub fn huber(
    preds: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    delta: f32,
    mask: Option<ArrayView2<'_, f32>>,
) -> Result<(f32, Array2<f32>)> {
    check_same_shape("targets", &preds, &targets)?;
    check_mask(&mask, &preds)?;
    if !(delta.is_finite() && delta > 0.0) {
        return Err(Error::invalid(format!(
            "Huber delta must be positive, got {delta}"
        )));
    }
    let d = delta as f64;
    elementwise_loss(preds, targets, mask, |_, y, t| {
        let r = y - t;
        if r.abs() <= d {
            (0.5 * r * r, r)
        } else {
            (d * (r.abs() - 0.5 * d), d * r.signum())
        }
    })
}

/// Σ m·l / Σ m for an element loss `f(column, x, t) -> (l, ∂l/∂x)`.
fn elementwise_loss(
    x: ArrayView2<'_, f32>,
    t: ArrayView2<'_, f32>,
    mask: Option<ArrayView2<'_, f32>>,
    f: impl Fn(usize, f64, f64) -> (f64, f64),
) -> Result<(f32, Array2<f32>)> {
    let total: f64 = match &mask {
        Some(m) => m.iter().map(|&v| v as f64).sum(),
        None => x.len() as f64,
    };
    let mut grad = Array2::zeros(x.dim());
    if total <= 0.0 {
        return Ok((0.0, grad));
    }
    if let Some(v) = t.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("targets must be finite, got {v}")));
    }
    let mut loss = 0.0f64;
    for (i, (xr, mut gr)) in x.rows().into_iter().zip(grad.rows_mut()).enumerate() {
        for (j, (&xv, g)) in xr.iter().zip(gr.iter_mut()).enumerate() {
            let m = mask.as_ref().map_or(1.0, |m| m[[i, j]] as f64);
            if m == 0.0 {
                continue;
            }
            let (l, d) = f(j, xv as f64, t[[i, j]] as f64);
            loss += m * l;
            *g = (m * d / total) as f32;
        }
    }
    Ok(((loss / total) as f32, grad))
}

/// How [`class_weights`] turns class counts into loss weights.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum ClassWeighting {
    /// Every class 1.
    #[default]
    None,
    /// n / (K · count_c) (scikit-learn's "balanced"; the count-weighted mean is 1).
    Balanced,
    /// Class-balanced loss (Cui et al. 2019): (1−β)/(1−β^count_c), normalised to mean 1 over
    /// the classes. β in [0, 1); β = 0 gives all ones, β → 1 approaches 1/count.
    EffectiveNumber {
        /// β in [0, 1), typically 0.9–0.9999.
        beta: f32,
    },
    /// 1/√count_c, normalised to mean 1 over the classes.
    Sqrt,
}

/// Loss weights for classes with the given training counts (length K).
///
/// A class with count 0 is treated as having count 1 (the largest finite weight), so no weight
/// is ever infinite; if every count is 0 all weights are 1. The result feeds
/// [`CrossEntropyOptions::class_weights`] or [`FocalOptions::alpha`].
pub fn class_weights(counts: &[usize], scheme: ClassWeighting) -> Result<Vec<f32>> {
    let k = counts.len();
    if k == 0 {
        return Ok(Vec::new());
    }
    if counts.iter().all(|&c| c == 0) {
        return Ok(vec![1.0; k]);
    }
    let c = |i: usize| counts[i].max(1) as f64;
    let normalise = |w: Vec<f64>| -> Vec<f32> {
        let mean = w.iter().sum::<f64>() / k as f64;
        w.iter().map(|v| (v / mean) as f32).collect()
    };
    Ok(match scheme {
        ClassWeighting::None => vec![1.0; k],
        ClassWeighting::Balanced => {
            let n: f64 = counts.iter().map(|&c| c as f64).sum();
            (0..k).map(|i| (n / (k as f64 * c(i))) as f32).collect()
        }
        ClassWeighting::EffectiveNumber { beta } => {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::invalid(format!(
                    "effective-number beta must be in [0, 1), got {beta}"
                )));
            }
            let b = beta as f64;
            // (1−β)/(1−β^c); for β = 0 every class gets 1.
            normalise((0..k).map(|i| (1.0 - b) / (1.0 - b.powf(c(i)))).collect())
        }
        ClassWeighting::Sqrt => normalise((0..k).map(|i| 1.0 / c(i).sqrt()).collect()),
    })
}

/// `pos_weight` for [`bce_with_logits`] from label counts: negatives/positives per output
/// (1 for an output with no positives or no negatives).
pub fn bce_pos_weights(positives: &[usize], total: usize) -> Vec<f32> {
    positives
        .iter()
        .map(|&p| {
            if p == 0 || p >= total {
                1.0
            } else {
                ((total - p) as f64 / p as f64) as f32
            }
        })
        .collect()
}

/// Softmax of each row (f32, max-subtracted), for turning logits into probabilities.
pub fn softmax(logits: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut p = logits.to_owned();
    for mut row in p.rows_mut() {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|z| (z - m).exp());
        let s = row.sum();
        row /= s;
    }
    p
}

/// Element-wise logistic sigmoid (f32, stable), for turning logits into probabilities.
pub fn sigmoid_probs(logits: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut p = Array2::zeros(logits.dim());
    Zip::from(&mut p)
        .and(&logits)
        .for_each(|p, &x| *p = sigmoid(x as f64) as f32);
    p
}
