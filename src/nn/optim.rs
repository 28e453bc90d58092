//! AdamW, gradient clipping and gradient zeroing over lists of [`Param`]s.

use std::collections::HashMap;

use ndarray::ArrayD;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::parallel;
use super::param::{name_in_subtree, Param};
use super::simd::vectorized;
use crate::error::{Error, Result};

pub use super::param::zero_grad;

/// Hyper-parameters of [`AdamW`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Base learning rate (schedules overwrite it with [`AdamW::set_lr`]). Default 1e-3.
    pub lr: f32,
    /// First-moment decay β₁. Default 0.9.
    pub beta1: f32,
    /// Second-moment decay β₂. Default 0.999.
    pub beta2: f32,
    /// ε added to √v̂. Default 1e-8.
    pub eps: f32,
    /// Decoupled weight decay λ. Default 0.01.
    pub weight_decay: f32,
    /// Whether 1-D parameters (biases, LayerNorm γ/β, uncertainty log-variances) are decayed
    /// too. Default false: only matrices are decayed, the usual fine-tuning practice.
    pub decay_1d: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decay_1d: false,
        }
    }
}

impl AdamWConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps.is_finite()
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!("invalid AdamW settings: {self:?}")))
        }
    }
}

/// Moments smaller than this are set to zero (see [`AdamW::step_scaled`]).
const MOMENT_FLUSH: f32 = 1e-30;

/// Per-parameter optimizer state.
#[derive(Debug, Clone)]
struct Moments {
    m: ArrayD<f32>,
    v: ArrayD<f32>,
    step: u64,
}

/// AdamW (Loshchilov & Hutter 2019) as in PyTorch's `torch.optim.AdamW`:
///
/// ```text
/// lr' = lr · multiplier(name)
/// θ  ← θ · (1 − lr'·λ)                    (decoupled decay; matrices only unless decay_1d)
/// m  ← β₁ m + (1−β₁) g
/// v  ← β₂ v + (1−β₂) g²
/// θ  ← θ − lr' · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
/// ```
///
/// State (m, v, t) is kept per parameter **name**, created on a parameter's first update, and
/// t counts that parameter's own updates — so a subtree unfrozen late starts with proper bias
/// correction. Frozen parameters (`trainable == false`) are skipped entirely (no decay, no
/// state change). Learning-rate multipliers by name prefix give parameter groups, e.g. an
/// unfrozen encoder at 0.1× the heads' rate.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    lr: f32,
    multipliers: Vec<(String, f32)>,
    state: HashMap<String, Moments>,
}

impl AdamW {
    /// An optimizer with no state yet.
    pub fn new(config: AdamWConfig) -> Result<Self> {
        config.validate()?;
        Ok(AdamW {
            lr: config.lr,
            config,
            multipliers: Vec::new(),
            state: HashMap::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// The current base learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Sets the base learning rate (what a schedule does every step).
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Multiplies the learning rate of every parameter in the subtree `prefix` (see
    /// [`name_in_subtree`]) by `multiplier`. The longest matching prefix wins; setting a
    /// prefix again replaces its multiplier.
    pub fn set_lr_multiplier(&mut self, prefix: &str, multiplier: f32) {
        match self.multipliers.iter_mut().find(|(p, _)| p == prefix) {
            Some(e) => e.1 = multiplier,
            None => self.multipliers.push((prefix.to_string(), multiplier)),
        }
    }

    /// The learning-rate multiplier that applies to a parameter name (1 if none matches).
    pub fn lr_multiplier(&self, name: &str) -> f32 {
        self.multipliers
            .iter()
            .filter(|(p, _)| name_in_subtree(name, p))
            .max_by_key(|(p, _)| p.len())
            .map_or(1.0, |(_, m)| *m)
    }

    /// Number of updates applied so far to the parameter `name` (0 if never updated).
    pub fn param_steps(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.step)
    }

    /// Forgets all moments (e.g. after loading new weights).
    pub fn reset(&mut self) {
        self.state.clear();
    }

    /// Applies one update to every trainable parameter from its accumulated `grad`. Does not
    /// zero the gradients.
    pub fn step(&mut self, params: &mut [&mut Param]) {
        self.step_scaled(params, 1.0, false);
    }

    /// Clips, updates and zeroes in two passes over the gradients instead of four: computes the
    /// global gradient norm of the trainable parameters, then applies the update with the
    /// gradients scaled as [`clip_grad_norm`] would (`max_norm = None`: no clipping) and zeroes
    /// every gradient (frozen ones too). Returns the pre-clip norm. If that norm is not finite
    /// the parameters are left unchanged (the step is skipped) and the gradients are zeroed.
    pub fn step_clipped(&mut self, params: &mut [&mut Param], max_norm: Option<f32>) -> f32 {
        let norm = grad_norm(params.iter().map(|p| &**p));
        if !norm.is_finite() {
            zero_grad(params.iter_mut().map(|p| &mut **p));
            return norm;
        }
        let scale = max_norm.map_or(1.0, |m| clip_scale(norm, m));
        self.step_scaled(params, scale, true);
        norm
    }

    /// [`AdamW::step_clipped`] for parameters that have mirrors: other buffers of the same
    /// length that hold more gradient for the parameter and must hold its value. `mirrors[i]`,
    /// when given, has its gradient added into `params[i]`'s (and zeroed) in the pass that
    /// measures the norm, and receives the updated value in the pass that updates. Two passes
    /// over the weights, where adding, updating and copying separately took four; the result is
    /// bit-identical to adding first, calling `step_clipped`, then copying.
    pub fn step_clipped_mirrored(
        &mut self,
        params: &mut [&mut Param],
        mirrors: &mut [Option<Mirror<'_>>],
        max_norm: Option<f32>,
    ) -> f32 {
        assert_eq!(params.len(), mirrors.len(), "one mirror slot per parameter");
        let squares: f64 = params
            .iter_mut()
            .zip(mirrors.iter_mut())
            .filter(|(p, _)| p.trainable)
            .map(|(p, mirror)| {
                if !p.grad.is_standard_layout() {
                    p.grad = p.grad.as_standard_layout().into_owned();
                }
                let g = p.grad.as_slice_mut().expect("standard layout");
                match mirror {
                    Some(t) => merge_sum_squares(g, t.grad),
                    None => sum_squares(g),
                }
            })
            .sum();
        let norm = squares.sqrt() as f32;
        if !norm.is_finite() {
            zero_grad(params.iter_mut().map(|p| &mut **p));
            return norm;
        }
        let scale = max_norm.map_or(1.0, |m| clip_scale(norm, m));
        self.update_all(params, mirrors, scale, true);
        norm
    }

    /// One update using `grad_scale · grad` as the gradient; with `zero_grad`, every gradient
    /// (trainable or not) is set to zero afterwards in the same pass.
    pub fn step_scaled(&mut self, params: &mut [&mut Param], grad_scale: f32, zero_grad: bool) {
        let mut none: Vec<Option<Mirror<'_>>> = params.iter().map(|_| None).collect();
        self.update_all(params, &mut none, grad_scale, zero_grad);
    }

    fn update_all(
        &mut self,
        params: &mut [&mut Param],
        mirrors: &mut [Option<Mirror<'_>>],
        grad_scale: f32,
        zero_grad: bool,
    ) {
        let c = self.config.clone();
        for (p, mirror) in params.iter_mut().zip(mirrors.iter_mut()) {
            if !p.trainable {
                if zero_grad {
                    p.zero_grad();
                }
                continue;
            }
            if !p.value.is_standard_layout() {
                p.value = p.value.as_standard_layout().into_owned();
            }
            if !p.grad.is_standard_layout() {
                p.grad = p.grad.as_standard_layout().into_owned();
            }
            let lr = self.lr * self.lr_multiplier(&p.name);
            let st = match self.state.get_mut(&p.name) {
                Some(s) if s.m.shape() == p.value.shape() => s,
                _ => {
                    self.state.insert(
                        p.name.clone(),
                        Moments {
                            m: ArrayD::zeros(p.value.raw_dim()),
                            v: ArrayD::zeros(p.value.raw_dim()),
                            step: 0,
                        },
                    );
                    self.state.get_mut(&p.name).expect("just inserted")
                }
            };
            st.step += 1;
            let t = st.step.min(i32::MAX as u64) as i32;
            let bc1 = 1.0 - (c.beta1 as f64).powi(t);
            let bc2 = 1.0 - (c.beta2 as f64).powi(t);
            let step_size = (lr as f64 / bc1) as f32;
            let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
            let decay = if c.decay_1d || p.value.ndim() >= 2 {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            let k = UpdateConsts {
                b1: c.beta1,
                b2: c.beta2,
                eps: c.eps,
                grad_scale,
                step_size,
                inv_sqrt_bc2,
                decay,
            };
            let Param { value, grad, .. } = &mut **p;
            let value = value.as_slice_mut().expect("standard layout");
            let grad = grad.as_slice_mut().expect("standard layout");
            let m = st.m.as_slice_mut().expect("standard layout");
            let v = st.v.as_slice_mut().expect("standard layout");
            match (zero_grad, mirror) {
                (true, Some(t)) => update::<true, true>(&k, value, grad, m, v, t.value),
                (true, None) => update::<true, false>(&k, value, grad, m, v, &mut []),
                (false, Some(t)) => update::<false, true>(&k, value, grad, m, v, t.value),
                (false, None) => update::<false, false>(&k, value, grad, m, v, &mut []),
            }
        }
    }
}

/// A parameter's mirror (see [`AdamW::step_clipped_mirrored`]): a gradient and a value as long
/// as the parameter's. Mirrors of frozen parameters are left alone.
#[derive(Debug)]
pub struct Mirror<'a> {
    /// More gradient for the parameter: added into its gradient, then zeroed.
    pub grad: &'a mut [f32],
    /// Overwritten with the parameter's updated value.
    pub value: &'a mut [f32],
}

/// The constants of one parameter's update.
#[derive(Debug, Clone, Copy)]
struct UpdateConsts {
    b1: f32,
    b2: f32,
    eps: f32,
    grad_scale: f32,
    /// lr / (1 − β₁ᵗ).
    step_size: f32,
    /// 1 / √(1 − β₂ᵗ).
    inv_sqrt_bc2: f32,
    /// 1 − lr·λ, or 1 without decay.
    decay: f32,
}

/// [`update_slice`] over whole parameters, large ones split into pieces run on rayon's pool
/// (element-wise, so the result does not depend on how many threads run). With `MIRROR`,
/// `mirror` (as long as `w`) receives the updated weights; without, it is empty.
fn update<const ZERO_GRAD: bool, const MIRROR: bool>(
    k: &UpdateConsts,
    w: &mut [f32],
    g: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    mirror: &mut [f32],
) {
    assert!(
        !MIRROR || mirror.len() == w.len(),
        "mirror and parameter lengths differ"
    );
    let run = |w: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], t: &mut [f32]| {
        vectorized(
            #[inline(always)]
            || update_slice::<ZERO_GRAD, MIRROR>(k, w, g, m, v, t),
        )
    };
    if !parallel::worth_it(w.len()) {
        return run(w, g, m, v, mirror);
    }
    let piece = parallel::PIECE;
    let pieces = w
        .par_chunks_mut(piece)
        .zip(g.par_chunks_mut(piece))
        .zip(m.par_chunks_mut(piece))
        .zip(v.par_chunks_mut(piece));
    if MIRROR {
        pieces
            .zip(mirror.par_chunks_mut(piece))
            .for_each(|((((w, g), m), v), t)| run(w, g, m, v, t));
    } else {
        pieces.for_each(|(((w, g), m), v)| run(w, g, m, v, &mut []));
    }
}

/// The AdamW update of `w` with its gradient `g` and moments `m`, `v` (all the same length);
/// with `ZERO_GRAD` the gradient is zeroed in the same pass, with `MIRROR` the new weights are
/// also written to `mirror`. Branch-free, so it vectorizes.
#[inline(always)]
fn update_slice<const ZERO_GRAD: bool, const MIRROR: bool>(
    k: &UpdateConsts,
    w: &mut [f32],
    g: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    mirror: &mut [f32],
) {
    let n = w.len();
    let (g, m, v) = (&mut g[..n], &mut m[..n], &mut v[..n]);
    let mirror = if MIRROR { &mut mirror[..n] } else { mirror };
    for i in 0..n {
        let gs = g[i] * k.grad_scale;
        // Flush moments that decay towards the subnormal range (a gradient that stays exactly
        // zero, e.g. for an always-zero input feature, shrinks m by β₁ per step): subnormal
        // arithmetic is ~100× slower, and below 1e-30 the moments change the update by less
        // than lr·1e-15 anyway.
        let m_new = k.b1 * m[i] + (1.0 - k.b1) * gs;
        let v_new = k.b2 * v[i] + (1.0 - k.b2) * gs * gs;
        let m_new = if m_new.abs() < MOMENT_FLUSH {
            0.0
        } else {
            m_new
        };
        let v_new = if v_new < MOMENT_FLUSH { 0.0 } else { v_new };
        m[i] = m_new;
        v[i] = v_new;
        let denom = v_new.sqrt() * k.inv_sqrt_bc2 + k.eps;
        let w_new = w[i] * k.decay - k.step_size * m_new / denom;
        w[i] = w_new;
        if MIRROR {
            mirror[i] = w_new;
        }
        if ZERO_GRAD {
            g[i] = 0.0;
        }
    }
}

/// Elements per partial sum of [`sum_squares`].
const BLOCK: usize = 256;

/// Sum of squares of a slice: f32 partial sums over blocks of [`BLOCK`] (8 lanes each,
/// vectorized), added in f64 in block order. Large slices compute their block sums on rayon's
/// pool; the result is the same however many threads run.
fn sum_squares(xs: &[f32]) -> f64 {
    let mut blocks = vec![0.0f64; xs.len().div_ceil(BLOCK)];
    let run = |(out, xs): (&mut [f64], &[f32])| {
        vectorized(
            #[inline(always)]
            || {
                for (o, b) in out.iter_mut().zip(xs.chunks(BLOCK)) {
                    *o = block_sum_squares(b);
                }
            },
        )
    };
    let per_piece = parallel::PIECE / BLOCK;
    if parallel::worth_it(xs.len()) {
        blocks
            .par_chunks_mut(per_piece)
            .zip(xs.par_chunks(per_piece * BLOCK))
            .for_each(run);
    } else {
        run((&mut blocks, xs));
    }
    blocks.iter().fold(0.0, |a, &b| a + b)
}

/// [`sum_squares`] of `g + g2`, written into `g` block by block as it goes (and `g2` zeroed):
/// the same blocks and the same sums, so the same result as merging first.
fn merge_sum_squares(g: &mut [f32], g2: &mut [f32]) -> f64 {
    assert_eq!(g.len(), g2.len(), "mirror gradient lengths differ");
    let mut blocks = vec![0.0f64; g.len().div_ceil(BLOCK)];
    let run = |(out, (g, g2)): (&mut [f64], (&mut [f32], &mut [f32]))| {
        vectorized(
            #[inline(always)]
            || {
                for (o, (b, b2)) in out
                    .iter_mut()
                    .zip(g.chunks_mut(BLOCK).zip(g2.chunks_mut(BLOCK)))
                {
                    for (x, y) in b.iter_mut().zip(b2.iter_mut()) {
                        *x += *y;
                        *y = 0.0;
                    }
                    *o = block_sum_squares(b);
                }
            },
        )
    };
    let per_piece = parallel::PIECE / BLOCK;
    if parallel::worth_it(g.len()) {
        blocks
            .par_chunks_mut(per_piece)
            .zip(
                g.par_chunks_mut(per_piece * BLOCK)
                    .zip(g2.par_chunks_mut(per_piece * BLOCK)),
            )
            .for_each(run);
    } else {
        run((&mut blocks, (g, g2)));
    }
    blocks.iter().fold(0.0, |a, &b| a + b)
}

/// Σ x² of one block: 8 f32 lanes, added up in f64.
#[inline(always)]
fn block_sum_squares(block: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let mut chunks = block.chunks_exact(8);
    for c in &mut chunks {
        // A fixed-size array, so the 8 lanes become one vector multiply and add.
        let c: &[f32; 8] = c.try_into().expect("chunks of 8");
        for j in 0..8 {
            acc[j] += c[j] * c[j];
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&x| x * x).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}

/// The factor [`clip_grad_norm`] scales gradients by for a given norm: `max_norm / (norm +
/// 1e-6)` when `norm > max_norm`, else 1.
pub fn clip_scale(norm: f32, max_norm: f32) -> f32 {
    if norm.is_finite() && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// The global L2 norm of the gradients of the trainable parameters (partial sums in f32 over
/// blocks of 256, accumulated in f64).
pub fn grad_norm<'a>(params: impl IntoIterator<Item = &'a Param>) -> f32 {
    params
        .into_iter()
        .filter(|p| p.trainable)
        .map(|p| match p.grad.as_slice() {
            Some(s) => sum_squares(s),
            None => p.grad.iter().map(|&g| (g as f64) * (g as f64)).sum(),
        })
        .sum::<f64>()
        .sqrt() as f32
}

/// Global gradient-norm clipping (PyTorch's `clip_grad_norm_`): if the L2 norm of all trainable
/// gradients exceeds `max_norm`, scales them by `max_norm / (norm + 1e-6)`. Returns the norm
/// before clipping. A non-finite norm is returned as is and nothing is scaled, so the caller
/// can skip the step. ([`AdamW::step_clipped`] fuses this with the update.)
pub fn clip_grad_norm(params: &mut [&mut Param], max_norm: f32) -> f32 {
    let norm = grad_norm(params.iter().map(|p| &**p));
    let scale = clip_scale(norm, max_norm);
    if scale != 1.0 {
        for p in params.iter_mut().filter(|p| p.trainable) {
            p.grad.mapv_inplace(|g| g * scale);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn moments_never_become_subnormal() {
        let mut p = Param::new("w", array![[1.0f32, -1.0]].into_dyn());
        let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
        p.grad = array![[1e-3f32, 0.0]].into_dyn();
        opt.step(&mut [&mut p]);
        for _ in 0..2000 {
            p.grad.fill(0.0);
            opt.step(&mut [&mut p]);
        }
        let st = &opt.state["w"];
        for &x in st.m.iter().chain(st.v.iter()) {
            assert!(x == 0.0 || x.is_normal(), "subnormal moment {x:e}");
        }
        // m has decayed by 0.9^2000 and been flushed; v (β₂ = 0.999) is still tracking.
        assert_eq!(st.m[[0, 0]], 0.0);
        assert!(st.v[[0, 0]] > 0.0);
    }

    /// Params with pseudo-random values and gradients (several sizes: one split into pieces).
    fn params(seed: u32) -> Vec<Param> {
        let mut x = seed;
        let mut next = move || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        [(40_000usize, 2usize), (300, 1), (7, 1)]
            .iter()
            .enumerate()
            .map(|(i, &(n, dims))| {
                let shape = if dims == 2 {
                    vec![n / 100, 100]
                } else {
                    vec![n]
                };
                let mut p = Param::new(
                    format!("p{i}"),
                    ArrayD::from_shape_fn(shape.clone(), |_| next()),
                );
                p.grad = ArrayD::from_shape_fn(shape, |_| next());
                p
            })
            .collect()
    }

    #[test]
    fn mirrored_steps_are_merge_then_step_then_copy_bit_for_bit() {
        for clip in [None, Some(0.5)] {
            let (mut a, mut mirror_a) = (params(1), params(2));
            let mut b = a.clone();
            let mut mirror_b = mirror_a.clone();
            let cfg = AdamWConfig::default();
            let (mut opt_a, mut opt_b) =
                (AdamW::new(cfg.clone()).unwrap(), AdamW::new(cfg).unwrap());
            for step in 0..3 {
                // The reference: merge the mirror's gradient in, step, copy the weights out.
                for (p, t) in a.iter_mut().zip(mirror_a.iter_mut()) {
                    p.grad += &t.grad;
                    t.grad.fill(0.0);
                }
                let mut refs: Vec<&mut Param> = a.iter_mut().collect();
                let na = opt_a.step_clipped(&mut refs, clip);
                for (p, t) in a.iter().zip(mirror_a.iter_mut()) {
                    t.value.assign(&p.value);
                }
                let mut refs: Vec<&mut Param> = b.iter_mut().collect();
                let mut mirrors: Vec<Option<Mirror<'_>>> = mirror_b
                    .iter_mut()
                    .map(|t| {
                        let Param { value, grad, .. } = t;
                        Some(Mirror {
                            grad: grad.as_slice_mut().unwrap(),
                            value: value.as_slice_mut().unwrap(),
                        })
                    })
                    .collect();
                let nb = opt_b.step_clipped_mirrored(&mut refs, &mut mirrors, clip);
                assert_eq!(na.to_bits(), nb.to_bits(), "norm, step {step}");
                for ((p, q), (t, u)) in a.iter().zip(&b).zip(mirror_a.iter().zip(&mirror_b)) {
                    assert_eq!(p.value, q.value, "{} value, step {step}", p.name);
                    assert_eq!(t.value, u.value, "{} mirror value", p.name);
                    assert_eq!(
                        q.value, u.value,
                        "{}: the mirror has the new weights",
                        p.name
                    );
                    assert!(q.grad.iter().chain(u.grad.iter()).all(|&g| g == 0.0));
                }
                // New gradients for the next step, the same on both sides.
                for (i, (p, q)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                    let g = params(10 + step)[i].grad.clone();
                    p.grad.assign(&g);
                    q.grad.assign(&g);
                }
                for (i, (t, u)) in mirror_a.iter_mut().zip(mirror_b.iter_mut()).enumerate() {
                    let g = params(20 + step)[i].grad.clone();
                    t.grad.assign(&g);
                    u.grad.assign(&g);
                }
            }
        }
    }
}
