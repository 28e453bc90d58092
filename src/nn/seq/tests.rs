//! Tests of the sequence layers: finite-difference gradient checks on ragged packed batches,
//! masking (no text sees another), hand-computed cases, determinism, configuration checks and
//! small learning runs on a task that only token order solves.

use ndarray::{array, s, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::nn::gradcheck::{compare, random, Grads, Tol};
use crate::nn::loss::softmax_cross_entropy;
use crate::nn::optim::{zero_grad, AdamW, AdamWConfig};
use crate::nn::param::{check_unique_names, Param};
use crate::nn::{Init, Layer, Linear};

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Offsets of texts with the given lengths.
fn offsets_of(lengths: &[usize]) -> Vec<usize> {
    let mut o = vec![0];
    for &l in lengths {
        o.push(o.last().unwrap() + l);
    }
    o
}

/// The ragged batch of the gradient checks: a 1-token text, a 4-token and a 7-token one.
const LENGTHS: [usize; 3] = [1, 4, 7];

fn assert_close_arrays(a: &Array2<f32>, b: &Array2<f32>, tol: f32, what: &str) {
    assert_eq!(a.dim(), b.dim(), "{what}: shapes");
    for ((idx, &x), &y) in a.indexed_iter().zip(b.iter()) {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())),
            "{what} at {idx:?}: {x} vs {y}"
        );
    }
}

/// The common API of the sequence layers, so the checks below are written once.
trait Packed: Clone {
    fn fwd(&mut self, x: ArrayView2<'_, f32>, offsets: &[usize], train: bool) -> Array2<f32>;
    fn inf(&self, x: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32>;
    fn bwd(&mut self, g: ArrayView2<'_, f32>) -> Array2<f32>;
    fn bwd_params(&mut self, g: ArrayView2<'_, f32>);
    fn ps(&self) -> Vec<&Param>;
    fn ps_mut(&mut self) -> Vec<&mut Param>;
    fn reseed(&mut self, seed: u64);
}

macro_rules! packed {
    ($($t:ty),*) => {
        $(impl Packed for $t {
            fn fwd(&mut self, x: ArrayView2<'_, f32>, o: &[usize], train: bool) -> Array2<f32> {
                self.forward(x, o, train)
            }
            fn inf(&self, x: ArrayView2<'_, f32>, o: &[usize]) -> Array2<f32> {
                self.forward_inference(x, o)
            }
            fn bwd(&mut self, g: ArrayView2<'_, f32>) -> Array2<f32> {
                self.backward(g)
            }
            fn bwd_params(&mut self, g: ArrayView2<'_, f32>) {
                self.backward_params_only(g)
            }
            fn ps(&self) -> Vec<&Param> {
                self.params()
            }
            fn ps_mut(&mut self) -> Vec<&mut Param> {
                self.params_mut()
            }
            fn reseed(&mut self, seed: u64) {
                self.reseed_dropout(seed)
            }
        })*
    };
}
packed!(AttentionPool, MultiConv, EncoderLayer, SequenceEncoder);

// ---------------------------------------------------------------- gradient checks

/// Σ r ⊙ layer(x) in f64, dropout reseeded to the same masks before every forward.
fn objective<L: Packed>(l: &mut L, x: ArrayView2<'_, f32>, o: &[usize], r: &Array2<f32>) -> f64 {
    l.reseed(42);
    let y = l.fwd(x, o, true);
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Analytic gradients of [`objective`] (from one backward) and its central differences, for
/// every parameter and the input.
fn grads<L: Packed>(l: &mut L, x: &Array2<f32>, o: &[usize], h: f32) -> (Grads, Grads) {
    l.reseed(42);
    let y = l.fwd(x.view(), o, true);
    let r = random(y.nrows(), y.ncols(), 0x5eed);
    zero_grad(l.ps_mut());
    l.reseed(42);
    l.fwd(x.view(), o, true);
    let dx = l.bwd(r.view());
    let analytic = Grads {
        input: Some(dx),
        params: l
            .ps()
            .iter()
            .map(|p| (p.name.clone(), p.grad.clone()))
            .collect(),
    };
    let mut xp = x.clone();
    let mut ndx = Array2::zeros(x.dim());
    for idx in 0..x.len() {
        let (i, j) = (idx / x.ncols(), idx % x.ncols());
        let orig = xp[[i, j]];
        xp[[i, j]] = orig + h;
        let fp = objective(l, xp.view(), o, &r);
        xp[[i, j]] = orig - h;
        let fm = objective(l, xp.view(), o, &r);
        xp[[i, j]] = orig;
        ndx[[i, j]] = ((fp - fm) / (2.0 * h as f64)) as f32;
    }
    let mut params = Vec::new();
    for pi in 0..l.ps().len() {
        let (name, mut g) = {
            let p = &l.ps()[pi];
            (p.name.clone(), p.value.mapv(|_| 0.0f32))
        };
        for k in 0..g.len() {
            let orig = l.ps()[pi].value.as_slice().unwrap()[k];
            l.ps_mut()[pi].value.as_slice_mut().unwrap()[k] = orig + h;
            let fp = objective(l, x.view(), o, &r);
            l.ps_mut()[pi].value.as_slice_mut().unwrap()[k] = orig - h;
            let fm = objective(l, x.view(), o, &r);
            l.ps_mut()[pi].value.as_slice_mut().unwrap()[k] = orig;
            g.as_slice_mut().unwrap()[k] = ((fp - fm) / (2.0 * h as f64)) as f32;
        }
        params.push((name, g));
    }
    let numeric = Grads {
        input: Some(ndx),
        params,
    };
    (analytic, numeric)
}

/// Compares [`grads`]; `Ok` carries the worst |analytic − numeric| / allowed ratio.
fn gradcheck<L: Packed>(l: &mut L, x: &Array2<f32>, o: &[usize], tol: Tol) -> Result<f64, String> {
    let (a, n) = grads(l, x, o, tol.eps);
    compare(&a, &n, tol)
}

fn ok(what: &str, r: Result<f64, String>) {
    match r {
        Ok(worst) => eprintln!("{what}: worst error {worst:.3} of the tolerance"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Random non-zero values in every parameter (biases start at zero, LayerNorm at 1/0), so that
/// every term of the gradients is exercised.
fn perturb<L: Packed>(l: &mut L, seed: u64, scale: f32) {
    let mut r = rng(seed);
    for p in l.ps_mut() {
        if p.shape().len() == 1 {
            let base = if p.name.contains("norm") && p.name.ends_with("weight") {
                1.0
            } else {
                0.0
            };
            p.value
                .mapv_inplace(|_| base + scale * r.random_range(-1.0f32..1.0));
        }
    }
}

#[test]
fn gradcheck_attention_pool() {
    let o = offsets_of(&LENGTHS);
    for queries in [1, 2] {
        let mut l = AttentionPool::new(5, queries, &mut rng(1))
            .unwrap()
            .named("pool");
        perturb(&mut l, 2, 0.5);
        let x = random(12, 5, 3).mapv(|v| 2.0 * v);
        ok("attention pool", gradcheck(&mut l, &x, &o, Tol::default()));
    }
}

#[test]
fn gradcheck_multiconv() {
    let o = offsets_of(&LENGTHS);
    for (kernels, seed) in [(vec![1, 3, 5], 4u64), (vec![3, 5, 7], 5)] {
        let mut l = MultiConv::new(4, &kernels, 3, &mut rng(seed))
            .unwrap()
            .named("conv");
        perturb(&mut l, seed + 10, 0.5);
        let x = random(12, 4, seed + 20).mapv(|v| 1.5 * v);
        ok(
            &format!("conv {kernels:?}"),
            gradcheck(&mut l, &x, &o, Tol::default()),
        );
    }
}

#[test]
fn gradcheck_multiconv_across_pieces() {
    // 35 channels make three pieces of the weight-gradient pass and 21 texts two pieces of the
    // pooling and input-gradient passes. Most texts have one token, so that few max-pooling
    // winners can change within ε (a kink that would spoil the finite differences).
    let mut lengths = vec![1usize; 21];
    lengths[17] = 3;
    let o = offsets_of(&lengths);
    let mut l = MultiConv::new(3, &[1, 3], 35, &mut rng(6))
        .unwrap()
        .named("conv");
    perturb(&mut l, 16, 0.5);
    let x = random(*o.last().unwrap(), 3, 26).mapv(|v| 1.5 * v);
    ok(
        "conv across pieces",
        gradcheck(&mut l, &x, &o, Tol::default()),
    );
}

#[test]
fn conv_batch_across_pieces_sums_each_text_alone() {
    // 37 texts and 35 channels: three pieces of texts in the pooling and input-gradient passes,
    // three pieces of channels in the weight-gradient pass (16 each). The batch's outputs and
    // input gradients are each text's own, and its parameter gradients their sum. (A
    // finite-difference check at this size would cross max-pooling kinks: with ~2,600 pools, some
    // winner changes within any ε.)
    let lengths: Vec<usize> = (0..37).map(|i| 1 + (i * 5) % 4).collect();
    let o = offsets_of(&lengths);
    let (d, ch) = (3, 35);
    let x = random(*o.last().unwrap(), d, 26);
    let mut l = MultiConv::new(d, &[1, 3], ch, &mut rng(6)).unwrap();
    perturb(&mut l, 16, 0.5);
    let y = l.forward(x.view(), &o, true);
    let g = random(y.nrows(), y.ncols(), 27);
    let dx = l.backward(g.view());
    let batch: Vec<Vec<f32>> = l
        .params()
        .iter()
        .map(|p| p.grad.iter().copied().collect())
        .collect();
    let mut alone = l.clone();
    alone.clear_cache();
    for p in alone.params_mut() {
        p.grad.fill(0.0);
    }
    for (i, w) in o.windows(2).enumerate() {
        let xi = x.slice(s![w[0]..w[1], ..]);
        let yi = alone.forward(xi, &[0, w[1] - w[0]], true);
        // The GEMM's rounding may differ with the number of rows: close, not equal.
        let row = y.slice(s![i..i + 1, ..]).to_owned();
        assert_close_arrays(&yi, &row, 1e-5, &format!("output of text {i}"));
        let dxi = alone.backward(g.slice(s![i..i + 1, ..]));
        let rows = dx.slice(s![w[0]..w[1], ..]).to_owned();
        assert_close_arrays(&dxi, &rows, 1e-5, &format!("input gradient of text {i}"));
    }
    for (p, want) in alone.params().iter().zip(&batch) {
        let got: Array2<f32> =
            Array2::from_shape_vec((1, want.len()), p.grad.iter().copied().collect()).unwrap();
        let want = Array2::from_shape_vec((1, want.len()), want.clone()).unwrap();
        assert_close_arrays(&got, &want, 1e-5, &p.name);
    }
}

#[test]
fn conv_is_bit_identical_on_any_number_of_threads() {
    let lengths: Vec<usize> = (0..45).map(|i| 1 + (i * 7) % 9).collect();
    let o = offsets_of(&lengths);
    let x = random(*o.last().unwrap(), 24, 7);
    let run = |threads: usize| {
        crate::nn::parallel::on_threads(threads, || {
            let mut l = MultiConv::new(24, &[1, 3, 5], 40, &mut rng(8)).unwrap();
            let y = l.forward(x.view(), &o, true);
            let g = random(y.nrows(), y.ncols(), 9);
            let dx = l.backward(g.view());
            let grads: Vec<Vec<f32>> = l
                .params()
                .iter()
                .map(|p| p.grad.iter().copied().collect())
                .collect();
            (y, dx, grads, l.forward_inference(x.view(), &o))
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        let other = run(threads);
        assert_eq!(one.0, other.0, "output, {threads} threads");
        assert_eq!(one.1, other.1, "input gradient, {threads} threads");
        assert_eq!(one.2, other.2, "parameter gradients, {threads} threads");
        assert_eq!(one.3, other.3, "inference, {threads} threads");
    }
    assert_eq!(one.0, one.3, "training and inference forward agree");
}

/// The transformer's objective sums T·d LayerNorm outputs of magnitude ~1, whose f32 rounding
/// (~1e-6) divided by 2ε swamps small gradients at ε = 1e-3 (measured: 1.1× the tolerance on a
/// K-weight entry of 1e-2, while ε = 3e-3, 1e-2 and 3e-2 all agree with the analytic value). At
/// ε = 1e-2 the O(ε²) truncation error is still far below the tolerance.
const TRANSFORMER_TOL: Tol = Tol {
    eps: 1e-2,
    rtol: 1e-2,
    atol: 1e-3,
};

#[test]
fn gradcheck_encoder_layer() {
    let o = offsets_of(&LENGTHS);
    for dropout in [0.0, 0.3] {
        let mut l = EncoderLayer::new(8, 2, 12, dropout, &mut rng(6))
            .unwrap()
            .named("tf");
        perturb(&mut l, 7, 0.3);
        let x = random(12, 8, 8);
        ok(
            &format!("transformer, dropout {dropout}"),
            gradcheck(&mut l, &x, &o, TRANSFORMER_TOL),
        );
    }
}

#[test]
fn gradcheck_sequence_encoder() {
    let o = offsets_of(&LENGTHS);
    let cfgs = [
        SequenceConfig {
            attention_queries: 2,
            conv_kernels: vec![1, 3],
            conv_channels: 3,
            dropout: 0.2,
            ..Default::default()
        },
        SequenceConfig {
            attention_queries: 1,
            conv_kernels: vec![3],
            conv_channels: 2,
            transformer: true,
            transformer_heads: 2,
            transformer_ffn: 10,
            dropout: 0.2,
        },
        SequenceConfig {
            attention_queries: 0,
            conv_kernels: vec![5],
            conv_channels: 2,
            dropout: 0.0,
            ..Default::default()
        },
    ];
    for (i, cfg) in cfgs.iter().enumerate() {
        let mut l = SequenceEncoder::new(6, cfg, &mut rng(9))
            .unwrap()
            .named("seq");
        perturb(&mut l, 10, 0.3);
        let x = random(12, 6, 11 + i as u64);
        let tol = if cfg.transformer {
            TRANSFORMER_TOL
        } else {
            Tol::default()
        };
        ok(&format!("encoder {cfg:?}"), gradcheck(&mut l, &x, &o, tol));
    }
}

#[test]
fn gradcheck_catches_wrong_gradients() {
    // The checker is sharp enough for these layers: a 3 % error in the largest conv weight
    // gradient entry, or a dropped attention-score path, fails it.
    let o = offsets_of(&LENGTHS);
    let mut l = MultiConv::new(3, &[3], 2, &mut rng(12)).unwrap();
    let x = random(12, 3, 13);
    let (a, n) = grads(&mut l, &x, &o, 1e-3);
    assert!(compare(&a, &n, Tol::default()).is_ok());
    let mut bad = a.clone();
    let w = &mut bad.params[0].1;
    let k = w
        .iter()
        .enumerate()
        .max_by(|p, q| p.1.abs().total_cmp(&q.1.abs()))
        .unwrap()
        .0;
    w.as_slice_mut().unwrap()[k] *= 1.03;
    assert!(compare(&bad, &n, Tol::default()).is_err());

    let mut p = AttentionPool::new(3, 1, &mut rng(14)).unwrap();
    let (a, n) = grads(&mut p, &x, &o, 1e-3);
    assert!(compare(&a, &n, Tol::default()).is_ok());
    let mut bad = a.clone();
    bad.params[0].1.fill(0.0);
    assert!(compare(&bad, &n, Tol::default()).is_err());
}

// ---------------------------------------------------------------- hand-computed cases

#[test]
fn attention_pool_hand_computed() {
    // d = 2, one query, W = [[1, 0]], b = [0.5] (the bias cancels in the softmax).
    // Text 0: x₁ = (0, 4), x₂ = (ln 3, 0): scores 0.5 and 0.5 + ln 3, so
    //   α = (1/(1+3), 3/(1+3)) = (0.25, 0.75) and out = 0.25·(0, 4) + 0.75·(ln 3, 0)
    //   = (0.75·ln 3, 1) = (0.823959…, 1).
    // Text 1: one token, α = 1, out = the token itself.
    let mut l = AttentionPool::new(2, 1, &mut rng(0)).unwrap();
    l.params_mut()[0].value = array![[1.0f32, 0.0]].into_dyn();
    l.params_mut()[1].value = array![0.5f32].into_dyn();
    let ln3 = 3f32.ln();
    let x = array![[0.0f32, 4.0], [ln3, 0.0], [-7.0, 2.5]];
    let y = l.forward(x.view(), &[0, 2, 3], true);
    assert_close_arrays(&y, &array![[0.823_959_2, 1.0], [-7.0, 2.5]], 1e-6, "pooled");
    // Backward with g = (1, 0) on text 0: ∂out₀/∂x is α_t on the direct path, and the scores
    // add α_t (g·x_t − g·out) W: for x₂, 0.75·(ln 3 − 0.75 ln 3) = 0.1875·ln 3 on feature 0.
    let dx = l.backward(array![[1.0f32, 0.0], [0.0, 0.0]].view());
    let want = array![
        [0.25 + 0.25 * (0.0 - 0.75 * ln3), 0.0],
        [0.75 + 0.75 * (ln3 - 0.75 * ln3), 0.0],
        [0.0, 0.0]
    ];
    assert_close_arrays(&dx, &want, 1e-6, "input gradient");
}

#[test]
fn conv_maxpool_hand_computed() {
    // d = 1, C = 1, kernels [3, 1]. Kernel 3: W = [1, 2, −1] (offsets −1, 0, +1), b = 0.5, so
    // z_t = 0.5 + x_{t−1} + 2x_t − x_{t+1} with zeros outside the text. Kernel 1: W = [3], b = 0.
    //
    // Text A = [1, −2, 2]:
    //   kernel 3: z = [0.5+0+2+2, 0.5+1−4−2, 0.5−2+4−0] = [4.5, −4.5, 2.5];
    //             max GELU = GELU(4.5) = 4.5·Φ(4.5) = 4.4999847.
    //   kernel 1: z = [3, −6, 6]; GELU(6) = 5.99999999 (6.0 in f32).
    // Text B = [−1.54, 0.42]:
    //   kernel 3: z = [0.5+0−3.08−0.42, 0.5−1.54+0.84−0] = [−3.0, −0.2]; GELU(−3) = −0.0040497
    //             beats GELU(−0.2) = −0.0841481: the max of GELU is at the *smallest* z here.
    //   kernel 1: z = [−4.62, 1.26]; GELU(1.26) = 1.1291683.
    // Text C = [0.25] (alone in its window): kernel 3: z = 0.5 + 0.5 = 1, GELU(1) = 0.8413447;
    //   kernel 1: z = 0.75, GELU(0.75) = 0.5800295.
    // (Φ and GELU values from Python's math.erf.)
    let mut l = MultiConv::new(1, &[3, 1], 1, &mut rng(0)).unwrap();
    l.params_mut()[0].value = array![[[1.0f32, 2.0, -1.0]]].into_dyn();
    l.params_mut()[1].value = array![0.5f32].into_dyn();
    l.params_mut()[2].value = array![[[3.0f32]]].into_dyn();
    l.params_mut()[3].value = array![0.0f32].into_dyn();
    let x = array![[1.0f32], [-2.0], [2.0], [-1.54], [0.42], [0.25]];
    let o = [0, 3, 5, 6];
    let y = l.forward(x.view(), &o, true);
    let want = array![
        [4.499_984_7f32, 6.0],
        [-0.004_049_694, 1.129_168_3],
        [0.841_344_8, 0.580_029_5]
    ];
    assert_close_arrays(&y, &want, 2e-6, "pooled");
    assert_eq!(l.forward_inference(x.view(), &o), y);
    // Gradient 1 on text B's kernel-3 output only: it reaches the winner, token 0 of B (z = −3),
    // through GELU'(−3) = Φ(−3) − 3φ(−3) = −0.0119456; z₀ = 0.5 + 0 + 2x₀ − x₁, so
    // ∂/∂x₀ = 2·GELU'(−3), ∂/∂x₁ = −GELU'(−3), ∂b = GELU'(−3), ∂W = GELU'(−3)·(0, x₀, x₁).
    let mut g = Array2::zeros((3, 2));
    g[[1, 0]] = 1.0;
    let dx = l.backward(g.view());
    let gd = -0.011_945_647f32;
    let mut want_dx = Array2::zeros((6, 1));
    want_dx[[3, 0]] = 2.0 * gd;
    want_dx[[4, 0]] = -gd;
    assert_close_arrays(&dx, &want_dx, 1e-6, "input gradient");
    let dw = Array2::from_shape_vec((1, 3), l.params()[0].grad.iter().copied().collect());
    assert_close_arrays(
        &dw.unwrap(),
        &array![[0.0, -1.54 * gd, 0.42 * gd]],
        1e-6,
        "weight gradient",
    );
    assert!((l.params()[1].grad[[0]] - gd).abs() < 1e-7);
    assert!(l.params()[2].grad.iter().all(|&v| v == 0.0));
}

// ---------------------------------------------------------------- masking

/// Appending tokens to text 1 must leave texts 0 and 2 unchanged.
fn check_appending_isolates<L: Packed>(l: &L, d: usize, per_token: bool) {
    let lengths = [3usize, 2, 5];
    let grown = [3usize, 6, 5];
    let x = random(10, d, 30);
    let extra = random(4, d, 31);
    // The grown batch: same texts 0 and 2, text 1 with 4 more tokens at its end.
    let mut xg = Array2::zeros((14, d));
    xg.slice_mut(s![..5, ..]).assign(&x.slice(s![..5, ..]));
    xg.slice_mut(s![5..9, ..]).assign(&extra);
    xg.slice_mut(s![9.., ..]).assign(&x.slice(s![5.., ..]));
    let (o, og) = (offsets_of(&lengths), offsets_of(&grown));
    let a = l.inf(x.view(), &o);
    let b = l.inf(xg.view(), &og);
    let rows = |text: usize, offs: &[usize]| {
        if per_token {
            (offs[text], offs[text + 1])
        } else {
            (text, text + 1)
        }
    };
    for text in [0, 2] {
        let (a0, a1) = rows(text, &o);
        let (b0, b1) = rows(text, &og);
        assert_close_arrays(
            &a.slice(s![a0..a1, ..]).to_owned(),
            &b.slice(s![b0..b1, ..]).to_owned(),
            1e-5,
            &format!("text {text}"),
        );
    }
    let (a0, a1) = rows(1, &o);
    let (b0, b1) = rows(1, &og);
    if !per_token {
        assert_ne!(
            a.slice(s![a0..a1, ..]),
            b.slice(s![b0..b1, ..]),
            "text 1 changed"
        );
    } else {
        assert_eq!(b1 - b0, a1 - a0 + 4);
    }
}

#[test]
fn texts_never_see_each_other() {
    let d = 8;
    check_appending_isolates(&AttentionPool::new(d, 2, &mut rng(1)).unwrap(), d, false);
    check_appending_isolates(
        &MultiConv::new(d, &[1, 3, 5], 4, &mut rng(2)).unwrap(),
        d,
        false,
    );
    check_appending_isolates(
        &EncoderLayer::new(d, 2, 16, 0.1, &mut rng(3)).unwrap(),
        d,
        true,
    );
    let cfg = SequenceConfig {
        transformer: true,
        transformer_heads: 2,
        conv_channels: 4,
        ..Default::default()
    };
    check_appending_isolates(
        &SequenceEncoder::new(d, &cfg, &mut rng(4)).unwrap(),
        d,
        false,
    );
}

#[test]
fn batch_equals_each_text_alone() {
    // Windows never cross text boundaries (zero padding at each text's ends) and positions
    // restart in every text: each text alone gives its row of the batch.
    let d = 6;
    let lengths = [1usize, 4, 7, 2];
    let o = offsets_of(&lengths);
    let x = random(14, d, 40);
    let cfg = SequenceConfig {
        attention_queries: 2,
        conv_kernels: vec![3, 5, 7],
        conv_channels: 5,
        transformer: true,
        transformer_heads: 3,
        transformer_ffn: 12,
        dropout: 0.1,
    };
    let enc = SequenceEncoder::new(d, &cfg, &mut rng(5)).unwrap();
    let conv = MultiConv::new(d, &[1, 3, 5, 7], 5, &mut rng(6)).unwrap();
    let batch = enc.forward_inference(x.view(), &o);
    let conv_batch = conv.forward_inference(x.view(), &o);
    for (i, w) in o.windows(2).enumerate() {
        let xi = x.slice(s![w[0]..w[1], ..]);
        let alone = enc.forward_inference(xi, &[0, w[1] - w[0]]);
        assert_close_arrays(
            &alone,
            &batch.slice(s![i..i + 1, ..]).to_owned(),
            1e-5,
            &format!("encoder, text {i}"),
        );
        let alone = conv.forward_inference(xi, &[0, w[1] - w[0]]);
        assert_close_arrays(
            &alone,
            &conv_batch.slice(s![i..i + 1, ..]).to_owned(),
            1e-5,
            &format!("conv, text {i}"),
        );
    }
    // And the zero padding is real padding: a 1-token text through a kernel-3 conv equals the
    // centre tap alone.
    let mut c3 = MultiConv::new(d, &[3], 2, &mut rng(7)).unwrap();
    let x1 = random(1, d, 41);
    let y = c3.forward(x1.view(), &[0, 1], false);
    let w = c3.params()[0].value.clone();
    for c in 0..2 {
        let z: f32 = (0..d).map(|e| w[[c, e, 1]] * x1[[0, e]]).sum();
        assert!((y[[0, c]] - crate::nn::activation::gelu(z)).abs() < 1e-6);
    }
}

// ---------------------------------------------------------------- API behaviour

fn full_config() -> SequenceConfig {
    SequenceConfig {
        attention_queries: 2,
        conv_kernels: vec![1, 3],
        conv_channels: 3,
        transformer: true,
        transformer_heads: 2,
        transformer_ffn: 6,
        dropout: 0.25,
    }
}

#[test]
fn names_shapes_and_widths() {
    let enc = SequenceEncoder::new(4, &full_config(), &mut rng(1))
        .unwrap()
        .named("seq");
    let got: Vec<(String, Vec<usize>)> = enc
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.shape().to_vec()))
        .collect();
    let mut want: Vec<(String, Vec<usize>)> = Vec::new();
    for l in ["q", "k", "v", "o"] {
        want.push((format!("seq.transformer.{l}.weight"), vec![4, 4]));
        want.push((format!("seq.transformer.{l}.bias"), vec![4]));
    }
    for (n, s) in [
        ("seq.transformer.norm1.weight", vec![4]),
        ("seq.transformer.norm1.bias", vec![4]),
        ("seq.transformer.ffn1.weight", vec![6, 4]),
        ("seq.transformer.ffn1.bias", vec![6]),
        ("seq.transformer.ffn2.weight", vec![4, 6]),
        ("seq.transformer.ffn2.bias", vec![4]),
        ("seq.transformer.norm2.weight", vec![4]),
        ("seq.transformer.norm2.bias", vec![4]),
        ("seq.attention.score.weight", vec![2, 4]),
        ("seq.attention.score.bias", vec![2]),
        ("seq.conv.0.weight", vec![3, 4, 1]),
        ("seq.conv.0.bias", vec![3]),
        ("seq.conv.1.weight", vec![3, 4, 3]),
        ("seq.conv.1.bias", vec![3]),
    ] {
        want.push((n.to_string(), s));
    }
    assert_eq!(got, want);
    assert!(check_unique_names(enc.params()).is_ok());
    assert_eq!(enc.out_dim(), 2 * 4 + 2 * 3);
    assert_eq!(enc.out_dim(), full_config().out_dim(4));
    assert_eq!((enc.in_dim(), enc.name()), (4, "seq"));
    assert_eq!(enc.config(), &full_config());
    // Unnamed layers have bare names; renaming is idempotent.
    let pool = AttentionPool::new(3, 1, &mut rng(2)).unwrap();
    assert_eq!(pool.params()[0].name, "score.weight");
    let conv = MultiConv::new(3, &[5], 2, &mut rng(2))
        .unwrap()
        .named("a.b");
    assert_eq!(conv.params()[1].name, "a.b.0.bias");
    assert_eq!(conv.out_dim(), 2);
    let tf = EncoderLayer::new(6, 3, 5, 0.0, &mut rng(2)).unwrap();
    assert_eq!(tf.params()[0].name, "q.weight");
    assert_eq!((tf.heads(), tf.ffn(), tf.out_dim()), (3, 5, 6));
}

#[test]
fn inference_equals_eval_forward() {
    let o = offsets_of(&[2, 5, 1]);
    let x = random(8, 4, 50);
    let mut enc = SequenceEncoder::new(4, &full_config(), &mut rng(3)).unwrap();
    let inf = enc.forward_inference(x.view(), &o);
    assert_eq!(enc.forward(x.view(), &o, false), inf);
    assert_ne!(
        enc.forward(x.view(), &o, true),
        inf,
        "dropout is on in training"
    );
    let mut pool = AttentionPool::new(4, 3, &mut rng(4)).unwrap();
    assert_eq!(
        pool.forward(x.view(), &o, false),
        pool.forward_inference(x.view(), &o)
    );
    let mut conv = MultiConv::new(4, &[1, 5], 3, &mut rng(5)).unwrap();
    assert_eq!(
        conv.forward(x.view(), &o, true),
        conv.forward_inference(x.view(), &o)
    );
    let mut tf = EncoderLayer::new(4, 2, 8, 0.5, &mut rng(6)).unwrap();
    assert_eq!(
        tf.forward(x.view(), &o, false),
        tf.forward_inference(x.view(), &o)
    );
    // Strided and column-major input views give the same results, in training too.
    let mut wide = Array2::zeros((8, 8));
    wide.slice_mut(s![.., ..;2]).assign(&x);
    let col_major = x.t().as_standard_layout().into_owned();
    for view in [wide.slice(s![.., ..;2]), col_major.t()] {
        assert_eq!(enc.forward_inference(view, &o), inf);
        assert_eq!(enc.forward(view, &o, false), inf);
        let g = Array2::ones(inf.dim());
        assert_eq!(enc.backward(g.view()).dim(), x.dim());
    }
}

#[test]
fn backward_params_only_matches_backward_and_frozen_params_get_nothing() {
    let o = offsets_of(&[3, 1, 4]);
    let x = random(8, 4, 60);
    let g = random(3, full_config().out_dim(4), 61);
    for cfg in [
        full_config(),
        SequenceConfig {
            transformer: false,
            ..full_config()
        },
    ] {
        let mut a = SequenceEncoder::new(4, &cfg, &mut rng(7))
            .unwrap()
            .named("e");
        let g = g.slice(s![.., ..a.out_dim()]);
        let mut b = a.clone();
        a.reseed_dropout(1);
        a.forward(x.view(), &o, true);
        let dx = a.backward(g);
        assert_eq!(dx.dim(), x.dim());
        b.reseed_dropout(1);
        b.forward(x.view(), &o, true);
        b.backward_params_only(g);
        for (pa, pb) in a.params().iter().zip(b.params()) {
            assert_eq!(pa.grad, pb.grad, "{}", pa.name);
            // The score bias shifts every score of a text equally: it cancels in the softmax
            // and its gradient is exactly zero.
            if !pa.name.ends_with("score.bias") {
                assert!(
                    pa.grad.iter().any(|&v| v != 0.0),
                    "{} has a gradient",
                    pa.name
                );
            }
        }
        // Freeze the attention pool and the first conv kernel.
        let mut c = a.clone();
        zero_grad(c.params_mut());
        crate::nn::param::set_trainable(c.params_mut(), "e.attention", false);
        crate::nn::param::set_trainable(c.params_mut(), "e.conv.0", false);
        c.reseed_dropout(1);
        c.forward(x.view(), &o, true);
        let dxc = c.backward(g);
        assert_eq!(
            dxc, dx,
            "frozen parameters do not change the input gradient"
        );
        for (pa, pc) in a.params().iter().zip(c.params()) {
            if pc.trainable {
                assert_eq!(pa.grad, pc.grad, "{}", pa.name);
            } else {
                assert!(pc.grad.iter().all(|&v| v == 0.0), "{}", pc.name);
            }
        }
    }
}

/// `backward_params_only` accumulates the same parameter gradients as `backward`.
fn check_params_only<L: Packed>(mut a: L, x: &Array2<f32>, o: &[usize]) {
    let mut b = a.clone();
    a.reseed(3);
    let y = a.fwd(x.view(), o, true);
    let g = random(y.nrows(), y.ncols(), 62);
    a.bwd(g.view());
    b.reseed(3);
    b.fwd(x.view(), o, true);
    b.bwd_params(g.view());
    for (pa, pb) in a.ps().iter().zip(b.ps()) {
        assert_eq!(pa.grad, pb.grad, "{}", pa.name);
    }
}

#[test]
fn each_layer_backward_params_only_matches_backward() {
    let o = offsets_of(&[3, 1, 4]);
    let x = random(8, 6, 63);
    check_params_only(AttentionPool::new(6, 2, &mut rng(1)).unwrap(), &x, &o);
    check_params_only(
        MultiConv::new(6, &[1, 3, 5], 4, &mut rng(2)).unwrap(),
        &x,
        &o,
    );
    check_params_only(
        EncoderLayer::new(6, 3, 7, 0.2, &mut rng(3)).unwrap(),
        &x,
        &o,
    );
}

#[test]
fn inference_sees_every_weight_change() {
    // forward_inference keeps a stacked copy of the conv weights; changing them through
    // params_mut (an optimizer step, loading) must be seen by the next call.
    let o = offsets_of(&[3, 2]);
    let x = random(5, 4, 64);
    let mut e = SequenceEncoder::new(4, &full_config(), &mut rng(10)).unwrap();
    let before = e.forward_inference(x.view(), &o);
    for p in e.params_mut() {
        if p.name.starts_with("conv.1.weight") {
            p.value.mapv_inplace(|v| v * 0.5 + 0.01);
        }
    }
    let after = e.forward_inference(x.view(), &o);
    assert_ne!(before, after);
    assert_eq!(after, e.forward(x.view(), &o, false));
    let mut fresh = SequenceEncoder::new(4, &full_config(), &mut rng(11)).unwrap();
    let values: std::collections::HashMap<String, ndarray::ArrayD<f32>> = e
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    fresh.forward_inference(x.view(), &o);
    crate::nn::param::load_values(&mut fresh.params_mut(), &values, true).unwrap();
    assert_eq!(fresh.forward_inference(x.view(), &o), after);
}

#[test]
fn grads_accumulate_and_caches_clear() {
    let o = offsets_of(&[2, 3]);
    let x = random(5, 4, 70);
    let cfg = SequenceConfig {
        dropout: 0.0,
        ..full_config()
    };
    let mut e = SequenceEncoder::new(4, &cfg, &mut rng(8)).unwrap();
    let g = random(2, e.out_dim(), 71);
    e.forward(x.view(), &o, true);
    e.backward_params_only(g.view());
    let once: Vec<_> = e.params().iter().map(|p| p.grad.clone()).collect();
    e.forward(x.view(), &o, true);
    e.backward_params_only(g.view());
    for (a, p) in once.iter().zip(e.params()) {
        for (&a, &b) in a.iter().zip(&p.grad) {
            assert!((2.0 * a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{}", p.name);
        }
    }
    // A batch of another shape after one of this shape (buffer reuse must not leak).
    let o2 = offsets_of(&[1, 1, 4]);
    let x2 = random(6, 4, 72);
    let y2 = e.forward(x2.view(), &o2, true);
    assert_eq!(y2, e.forward_inference(x2.view(), &o2));
    e.clear_cache();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        e.backward(g.view());
    }));
    assert!(caught.is_err(), "backward after clear_cache panics");
}

#[test]
#[should_panic(expected = "before forward")]
fn conv_backward_before_forward_panics() {
    let mut c = MultiConv::new(3, &[3], 2, &mut rng(0)).unwrap();
    c.backward(Array2::zeros((1, 2)).view());
}

#[test]
#[should_panic(expected = "before forward")]
fn attention_backward_before_forward_panics() {
    let mut a = AttentionPool::new(3, 1, &mut rng(0)).unwrap();
    a.backward(Array2::zeros((1, 3)).view());
}

#[test]
#[should_panic(expected = "strictly increasing")]
fn empty_text_panics() {
    let c = MultiConv::new(3, &[3], 2, &mut rng(0)).unwrap();
    c.forward_inference(Array2::zeros((2, 3)).view(), &[0, 2, 2]);
}

#[test]
#[should_panic(expected = "number of tokens")]
fn offsets_not_covering_the_tokens_panic() {
    let a = AttentionPool::new(3, 1, &mut rng(0)).unwrap();
    a.forward_inference(Array2::zeros((4, 3)).view(), &[0, 3]);
}

#[test]
#[should_panic(expected = "features, expected")]
fn wrong_width_panics() {
    let e = SequenceEncoder::new(4, &SequenceConfig::default(), &mut rng(0)).unwrap();
    e.forward_inference(Array2::zeros((2, 3)).view(), &[0, 2]);
}

#[test]
fn encoders_are_send_sync_and_infer_concurrently() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<SequenceEncoder>();
    assert_traits::<AttentionPool>();
    assert_traits::<MultiConv>();
    assert_traits::<EncoderLayer>();
    assert_traits::<SequenceConfig>();
    let e = SequenceEncoder::new(4, &full_config(), &mut rng(9)).unwrap();
    let o = offsets_of(&[2, 2, 3]);
    let x = random(7, 4, 80);
    let want = e.forward_inference(x.view(), &o);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| e.forward_inference(x.view(), &o)))
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}

// ---------------------------------------------------------------- configuration

#[test]
fn config_defaults_serde_and_validation() {
    let d = SequenceConfig::default();
    assert_eq!(
        (
            d.attention_queries,
            d.conv_kernels.as_slice(),
            d.conv_channels
        ),
        (1, &[1usize, 3, 5][..], 128)
    );
    assert!(!d.transformer);
    assert_eq!(
        (d.transformer_heads, d.transformer_ffn, d.dropout),
        (4, 512, 0.1)
    );
    assert_eq!(d.out_dim(384), 384 + 384);
    let cfg: SequenceConfig =
        serde_json::from_str(r#"{"conv_kernels":[3,5,7],"transformer":true}"#).unwrap();
    assert_eq!(cfg.conv_kernels, [3, 5, 7]);
    assert!(cfg.transformer && cfg.attention_queries == 1);
    let back: SequenceConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let t: SequenceConfig = toml::from_str("attention_queries = 0\nconv_channels = 64\n").unwrap();
    assert_eq!((t.attention_queries, t.conv_channels), (0, 64));
    assert!(serde_json::from_str::<SequenceConfig>(r#"{"conv_kernel":[3]}"#).is_err());

    let err = |cfg: SequenceConfig, in_dim: usize| -> String {
        let e = SequenceEncoder::new(in_dim, &cfg, &mut rng(0)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        e.message().to_string()
    };
    let base = SequenceConfig::default;
    let m = err(
        SequenceConfig {
            conv_kernels: vec![3, 4],
            ..base()
        },
        8,
    );
    assert!(m.contains("odd") && m.contains('4'), "{m}");
    assert!(err(
        SequenceConfig {
            conv_kernels: vec![0],
            ..base()
        },
        8
    )
    .contains("odd"));
    assert!(err(
        SequenceConfig {
            conv_channels: 0,
            ..base()
        },
        8
    )
    .contains("channels"));
    let m = err(
        SequenceConfig {
            transformer: true,
            transformer_heads: 3,
            ..base()
        },
        8,
    );
    assert!(
        m.contains("divide") && m.contains('3') && m.contains('8'),
        "{m}"
    );
    assert!(err(
        SequenceConfig {
            transformer: true,
            transformer_ffn: 0,
            ..base()
        },
        8
    )
    .contains("positive"));
    assert!(err(
        SequenceConfig {
            attention_queries: 0,
            conv_kernels: vec![],
            ..base()
        },
        8
    )
    .contains("pooling"));
    for p in [1.0, -0.1, f32::NAN] {
        assert!(err(
            SequenceConfig {
                dropout: p,
                ..base()
            },
            8
        )
        .contains("dropout"));
    }
    assert!(err(base(), 0).contains("width"));
    // Settings of parts that are off are not checked; validate() needs no width.
    let off = SequenceConfig {
        transformer_heads: 0,
        conv_kernels: vec![],
        conv_channels: 0,
        ..base()
    };
    assert!(off.validate().is_ok());
    assert!(SequenceConfig {
        transformer: true,
        transformer_heads: 5,
        ..base()
    }
    .validate()
    .is_ok());
    // The layers check their own arguments too.
    assert!(AttentionPool::new(4, 0, &mut rng(0)).is_err());
    assert!(MultiConv::new(4, &[], 2, &mut rng(0)).is_err());
    assert!(MultiConv::new(4, &[2], 2, &mut rng(0)).is_err());
    assert!(EncoderLayer::new(6, 4, 8, 0.0, &mut rng(0)).is_err());
    assert!(EncoderLayer::new(8, 4, 8, 1.0, &mut rng(0)).is_err());
}

// ---------------------------------------------------------------- determinism

/// A few AdamW steps with dropout on a fixed batch; returns the parameters and the last output.
fn train_steps(seed: u64, steps: usize) -> (Vec<Param>, Array2<f32>) {
    let o = offsets_of(&[2, 5, 1, 3]);
    let x = random(11, 6, 90);
    let targets = [0usize, 1, 1, 0];
    let cfg = SequenceConfig {
        transformer_heads: 3,
        ..full_config()
    };
    let mut r = rng(seed);
    let mut enc = SequenceEncoder::new(6, &cfg, &mut r).unwrap().named("seq");
    let mut head = Linear::new(enc.out_dim(), 2, Init::XavierUniform, &mut r).named("head");
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let mut y = Array2::zeros((0, 0));
    for _ in 0..steps {
        y = enc.forward(x.view(), &o, true);
        let z = head.forward(y.view(), true);
        let (_, g) = softmax_cross_entropy(z.view(), &targets, &Default::default()).unwrap();
        let gy = head.backward(g.view());
        enc.backward_params_only(gy.view());
        let mut ps = enc.params_mut();
        ps.extend(head.params_mut());
        opt.step_clipped(&mut ps, Some(1.0));
    }
    (enc.params().into_iter().cloned().collect(), y)
}

#[test]
fn same_seed_gives_bit_identical_params_and_outputs() {
    let (pa, ya) = train_steps(1, 4);
    let (pb, yb) = train_steps(1, 4);
    let (pc, _) = train_steps(2, 4);
    assert_eq!(pa, pb);
    assert_eq!(ya, yb);
    assert_ne!(pa, pc);
    // Fresh encoders from the same seed are identical too.
    let a = SequenceEncoder::new(6, &full_config_heads3(), &mut rng(5)).unwrap();
    let b = SequenceEncoder::new(6, &full_config_heads3(), &mut rng(5)).unwrap();
    let pa: Vec<&Param> = a.params();
    assert_eq!(pa, b.params());
}

fn full_config_heads3() -> SequenceConfig {
    SequenceConfig {
        transformer_heads: 3,
        ..full_config()
    }
}

// ---------------------------------------------------------------- learning

/// The order task: every text holds the two marker tokens A and B side by side, once, among
/// filler tokens; the label is 1 when A comes first. A text and its mirror (A and B swapped)
/// have the same multiset of tokens, so no order-blind pooling can do better than chance.
struct OrderTask {
    tokens: Array2<f32>,
    offsets: Vec<usize>,
    labels: Vec<usize>,
    /// Token rows of each text's mirror image, for the control check.
    mirror: Array2<f32>,
}

fn order_task(n: usize, d: usize, seed: u64) -> OrderTask {
    let vocab = random(10, d, 1234);
    let mut r = rng(seed);
    let (mut rows, mut mirror_rows, mut offsets, mut labels) = (vec![], vec![], vec![0], vec![]);
    for i in 0..n {
        let len = r.random_range(3..=8usize);
        let at = r.random_range(0..len - 1);
        let ab = i % 2 == 0;
        for p in 0..len {
            let (tok, mtok) = if p == at {
                if ab {
                    (0, 1)
                } else {
                    (1, 0)
                }
            } else if p == at + 1 {
                if ab {
                    (1, 0)
                } else {
                    (0, 1)
                }
            } else {
                let f = r.random_range(2..10usize);
                (f, f)
            };
            rows.push(tok);
            mirror_rows.push(mtok);
        }
        offsets.push(rows.len());
        labels.push(ab as usize);
    }
    OrderTask {
        tokens: vocab.select(Axis(0), &rows),
        offsets,
        labels,
        mirror: vocab.select(Axis(0), &mirror_rows),
    }
}

fn accuracy(z: &Array2<f32>, labels: &[usize]) -> f64 {
    let correct = z
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, &t)| (row[1] > row[0]) == (t == 1))
        .count();
    correct as f64 / labels.len() as f64
}

/// Trains encoder + linear head on the order task (full batch, AdamW); returns held-out
/// accuracy.
fn learn_order(cfg: &SequenceConfig, steps: usize, lr: f32) -> f64 {
    let d = 8;
    let train = order_task(96, d, 1);
    let test = order_task(96, d, 2);
    let mut r = rng(3);
    let mut enc = SequenceEncoder::new(d, cfg, &mut r).unwrap();
    let mut head = Linear::new(enc.out_dim(), 2, Init::XavierUniform, &mut r);
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        weight_decay: 0.0,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..steps {
        let y = enc.forward(train.tokens.view(), &train.offsets, true);
        let z = head.forward(y.view(), true);
        let (_, g) = softmax_cross_entropy(z.view(), &train.labels, &Default::default()).unwrap();
        let gy = head.backward(g.view());
        enc.backward_params_only(gy.view());
        let mut ps = enc.params_mut();
        ps.extend(head.params_mut());
        opt.step_clipped(&mut ps, Some(5.0));
    }
    let y = enc.forward_inference(test.tokens.view(), &test.offsets);
    accuracy(&head.forward_inference(y.view()), &test.labels)
}

#[test]
fn conv_learns_token_order() {
    let cfg = SequenceConfig {
        attention_queries: 0,
        conv_kernels: vec![3],
        conv_channels: 8,
        dropout: 0.0,
        ..Default::default()
    };
    let acc = learn_order(&cfg, 150, 0.02);
    assert!(acc > 0.95, "held-out accuracy {acc}");
}

#[test]
fn transformer_learns_token_order() {
    // Only the transformer sees order here: attention pooling and kernel-1 convolution are
    // blind to it.
    let cfg = SequenceConfig {
        attention_queries: 1,
        conv_kernels: vec![],
        transformer: true,
        transformer_heads: 2,
        transformer_ffn: 16,
        dropout: 0.0,
        ..Default::default()
    };
    let acc = learn_order(&cfg, 200, 0.01);
    assert!(acc > 0.9, "held-out accuracy {acc}");
}

#[test]
fn order_blind_pooling_cannot_tell_mirrors_apart() {
    // The control for the two tests above: without the transformer, attention pooling and a
    // kernel-1 convolution give a text and its mirror the same output (up to summation order).
    let task = order_task(20, 8, 4);
    let cfg = SequenceConfig {
        attention_queries: 2,
        conv_kernels: vec![1],
        conv_channels: 4,
        ..Default::default()
    };
    let enc = SequenceEncoder::new(8, &cfg, &mut rng(5)).unwrap();
    let a = enc.forward_inference(task.tokens.view(), &task.offsets);
    let b = enc.forward_inference(task.mirror.view(), &task.offsets);
    assert_close_arrays(&a, &b, 1e-5, "mirror");
    // With a kernel-3 convolution the mirrors differ.
    let cfg = SequenceConfig {
        conv_kernels: vec![3],
        ..cfg
    };
    let enc = SequenceEncoder::new(8, &cfg, &mut rng(5)).unwrap();
    let a = enc.forward_inference(task.tokens.view(), &task.offsets);
    let b = enc.forward_inference(task.mirror.view(), &task.offsets);
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
}

// ---------------------------------------------------------------- timing

/// Training-step cost of the default pooling on realistic batches: 64 texts of 8–22 tokens
/// (≈ 15 on average; four batches of different sizes in turn, as in training), d = 384,
/// conv [1, 3, 5] × 128 + one attention query, dropout 0.1, one thread. Run with
/// `cargo test --release --lib nn::seq::tests::bench_sequence_encoder -- --ignored --nocapture`
/// (`SEQ_BENCH_TRANSFORMER=1` adds the transformer layer). Prints the median and the minimum
/// of 40 steps after 8 warm-up steps; on a shared machine the minimum is the better estimate.
#[test]
#[ignore = "benchmark; run in release"]
fn bench_sequence_encoder() {
    let d = 384;
    let mut r = rng(1);
    let batches: Vec<(Array2<f32>, Vec<usize>)> = (0..4)
        .map(|b| {
            let lengths: Vec<usize> = (0..64).map(|_| r.random_range(8..=22)).collect();
            let o = offsets_of(&lengths);
            (random(*o.last().unwrap(), d, 2 + b), o)
        })
        .collect();
    let tokens: usize = batches.iter().map(|(x, _)| x.nrows()).sum::<usize>() / batches.len();
    let cfg = SequenceConfig {
        transformer: std::env::var("SEQ_BENCH_TRANSFORMER").is_ok_and(|v| v == "1"),
        ..Default::default()
    };
    let mut enc = SequenceEncoder::new(d, &cfg, &mut r).unwrap();
    let g = random(64, enc.out_dim(), 9);
    struct Ms(f64, f64);
    impl std::fmt::Display for Ms {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:.2} ms (min {:.2})", self.0, self.1)
        }
    }
    let time = |f: &mut dyn FnMut(&Array2<f32>, &[usize])| {
        let mut ms: Vec<f64> = (0..48)
            .map(|i| {
                let (x, o) = &batches[i % batches.len()];
                let t0 = std::time::Instant::now();
                f(x, o);
                t0.elapsed().as_secs_f64() * 1e3
            })
            .skip(8)
            .collect();
        ms.sort_by(f64::total_cmp);
        Ms(ms[ms.len() / 2], ms[0])
    };
    let fwd = time(&mut |x, o| {
        enc.forward(x.view(), o, true);
    });
    let step = time(&mut |x, o| {
        enc.forward(x.view(), o, true);
        enc.backward_params_only(g.view());
    });
    let full = time(&mut |x, o| {
        enc.forward(x.view(), o, true);
        enc.backward(g.view());
    });
    let inf = time(&mut |x, o| {
        enc.forward_inference(x.view(), o);
    });
    eprintln!(
        "≈{tokens} tokens × d {d}, {cfg:?}:\n  forward {fwd}; forward + backward_params_only \
         {step}; forward + backward {full}; inference {inf}"
    );
    // The parts: the conv GEMM alone (Y = X·Wᵀ), then each pooling layer's passes.
    let w = random(cfg.conv_channels * 9, d, 10);
    let mut y = Array2::zeros((batches[0].0.nrows(), w.nrows()));
    let flops = 2.0 * (y.len() * d) as f64;
    let gemm = time(&mut |_, _| {
        crate::nn::matmul::matmul(y.view_mut(), false, batches[0].0.view(), w.t())
    });
    let mut conv = MultiConv::new(d, &cfg.conv_kernels, cfg.conv_channels, &mut r).unwrap();
    let gc = random(64, conv.out_dim(), 11);
    let c_fwd = time(&mut |x, o| {
        conv.forward(x.view(), o, true);
    });
    let c_bp = time(&mut |x, o| {
        conv.forward(x.view(), o, true);
        conv.backward_params_only(gc.view());
    });
    let c_b = time(&mut |x, o| {
        conv.forward(x.view(), o, true);
        conv.backward(gc.view());
    });
    let mut pool = AttentionPool::new(d, 1, &mut r).unwrap();
    let gp = random(64, d, 12);
    let p_b = time(&mut |x, o| {
        pool.forward(x.view(), o, true);
        pool.backward(gp.view());
    });
    eprintln!(
        "  conv GEMM {gemm} ({:.0} GFLOP/s at the minimum); conv forward {c_fwd}, + \
         backward_params_only {c_bp}, + backward {c_b}; attention forward + backward {p_b}",
        flops / gemm.1 / 1e6
    );
}
