//! Training.

use super::*;

/// Three Gaussian blobs in 2-D, `n` per class.
fn blobs(n: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut r = rng(seed);
    let centres = [[0.0f32, 2.0], [-1.8, -1.0], [1.8, -1.0]];
    let mut x = Array2::zeros((3 * n, 2));
    let mut y = Vec::with_capacity(3 * n);
    for i in 0..3 * n {
        let c = i % 3;
        for d in 0..2 {
            // Sum of uniforms ≈ normal with σ ≈ 0.5.
            let u: f32 = (0..3).map(|_| r.random_range(-0.5f32..0.5)).sum();
            x[[i, d]] = centres[c][d] + u;
        }
        y.push(c);
    }
    (x, y)
}

/// Trains a small classifier; returns the final parameters and training accuracy.
fn train_blobs(seed: u64, steps: usize) -> (Vec<ArrayD<f32>>, f64) {
    let (x, y) = blobs(100, 99);
    let cfg = MlpConfig {
        hidden: vec![16],
        dropout: 0.1,
        ..Default::default()
    };
    let mut r = rng(seed);
    let mut model = Mlp::new(2, Some(3), &cfg, &mut r).unwrap().named("m");
    let mut opt = AdamW::new(AdamWConfig {
        lr: 0.02,
        ..Default::default()
    })
    .unwrap();
    let mut sched = LrScheduler::new(
        Schedule::CosineWithWarmup {
            warmup_steps: 10,
            total_steps: steps,
            min_lr_ratio: 0.1,
        },
        0.02,
    )
    .unwrap();
    let batch = 30;
    let mut order: Vec<usize> = (0..x.nrows()).collect();
    for step in 0..steps {
        let start = (step * batch) % x.nrows();
        if start == 0 {
            // Deterministic shuffle each epoch.
            for i in (1..order.len()).rev() {
                order.swap(i, r.random_range(0..=i));
            }
        }
        let idx = &order[start..start + batch];
        let xb = x.select(Axis(0), idx);
        let yb: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
        let z = model.forward(xb.view(), true);
        let (_, g) = softmax_cross_entropy(z.view(), &yb, &Default::default()).unwrap();
        model.backward_params_only(g.view());
        let mut ps = model.params_mut();
        clip_grad_norm(&mut ps, 5.0);
        opt.set_lr(sched.lr());
        opt.step(&mut ps);
        zero_grad(ps);
        sched.step();
    }
    let z = model.forward_inference(x.view());
    let correct = z
        .rows()
        .into_iter()
        .zip(&y)
        .filter(|(row, &t)| {
            let am = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            am == t
        })
        .count();
    (
        model.params().iter().map(|p| p.value.clone()).collect(),
        correct as f64 / y.len() as f64,
    )
}

#[test]
fn mlp_learns_three_gaussian_blobs() {
    let (_, acc) = train_blobs(1, 150);
    assert!(acc > 0.95, "training accuracy {acc}");
}

#[test]
fn same_seed_gives_identical_weights() {
    let (a, _) = train_blobs(3, 12);
    let (b, _) = train_blobs(3, 12);
    let (c, _) = train_blobs(4, 12);
    assert_eq!(a, b, "bit-identical with the same seed");
    assert_ne!(a, c);
}

#[test]
fn mlp_learns_xor_with_relu() {
    let x = array![[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let t = array![[0.0f32], [1.0], [1.0], [0.0]];
    let cfg = MlpConfig {
        hidden: vec![8],
        activation: ActivationKind::Relu,
        dropout: 0.0,
        layer_norm: false,
        residual: false,
    };
    let mut m = Mlp::new(2, Some(1), &cfg, &mut rng(21)).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 0.05,
        weight_decay: 0.0,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..300 {
        let z = m.forward(x.view(), true);
        let (_, g) = bce_with_logits(z.view(), t.view(), &Default::default()).unwrap();
        m.backward_params_only(g.view());
        let mut ps = m.params_mut();
        opt.step(&mut ps);
        zero_grad(ps);
    }
    let p = loss::sigmoid_probs(m.forward_inference(x.view()).view());
    for (pi, ti) in p.iter().zip(t.iter()) {
        assert!((pi - ti).abs() < 0.2, "XOR output {pi} for target {ti}");
    }
}
