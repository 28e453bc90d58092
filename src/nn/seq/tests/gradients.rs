//! Gradient checks.

use super::*;

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
    ok("gradients", compare(&a, &n, Tol::default()));
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
    ok("gradients", compare(&a, &n, Tol::default()));
    let mut bad = a.clone();
    bad.params[0].1.fill(0.0);
    assert!(compare(&bad, &n, Tol::default()).is_err());
}
