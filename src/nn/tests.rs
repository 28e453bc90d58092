//! Tests of the nn toolkit: finite-difference gradient checks, reference values, optimizer,
//! schedules, early stopping, determinism and small end-to-end training runs.

use std::collections::HashMap;

use ndarray::{array, s, Array2, ArrayD, ArrayView2, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gradcheck::{self, check_layer, check_layer_with, check_loss, random, Tol};
use super::loss::{self, *};
use super::optim::{clip_grad_norm, grad_norm, zero_grad};
use super::param::{self, load_values};
use super::schedule::cosine_with_warmup_factor;
use super::*;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn assert_close(a: f32, b: f64, tol: f64, what: &str) {
    assert!(
        ((a as f64) - b).abs() <= tol * b.abs().max(1.0),
        "{what}: got {a}, want {b}"
    );
}

fn ok(r: Result<f64, String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------- gradient checks: layers

#[test]
fn gradcheck_linear_weights_bias_input() {
    let mut l = Linear::new(5, 4, Init::KaimingUniform, &mut rng(1)).named("lin");
    // Non-zero bias so the bias path is exercised in the values too.
    l.bias_mut().unwrap().value = random(1, 4, 9).into_shape_with_order(IxDyn(&[4])).unwrap();
    ok(check_layer(&mut l, &random(3, 5, 2), Tol::default()));
    let mut nb = Linear::with_bias(3, 2, false, Init::XavierUniform, &mut rng(2));
    ok(check_layer(&mut nb, &random(4, 3, 3), Tol::default()));
}

#[test]
fn gradcheck_layer_norm_gamma_beta_input() {
    let mut ln = LayerNorm::new(6).named("ln");
    // Non-trivial γ, β.
    ln.params_mut()[0].value = random(1, 6, 4)
        .mapv(|v| 1.0 + 0.5 * v)
        .into_dyn()
        .into_shape_with_order(IxDyn(&[6]))
        .unwrap();
    ln.params_mut()[1].value = random(1, 6, 5)
        .into_dyn()
        .into_shape_with_order(IxDyn(&[6]))
        .unwrap();
    let x = random(4, 6, 6).mapv(|v| 2.0 * v + 0.3);
    ok(check_layer(&mut ln, &x, Tol::default()));
}

#[test]
fn gradcheck_relu_away_from_zero() {
    let x = random(4, 7, 7).mapv(|v| if v.abs() < 0.05 { v.signum() * 0.3 } else { v });
    ok(check_layer(&mut Relu::new(), &x, Tol::default()));
}

#[test]
fn gradcheck_gelu() {
    // Covers the tails (|x| up to 4) where erf saturates.
    let x = random(5, 8, 8).mapv(|v| 4.0 * v);
    ok(check_layer(&mut Gelu::new(), &x, Tol::default()));
}

#[test]
fn gelu_matches_f64_reference() {
    for i in -800..=800 {
        let x = i as f32 * 0.01;
        let want = x as f64 * special::normal_cdf(x as f64);
        let got = activation::gelu(x) as f64;
        assert!(
            (got - want).abs() <= 2e-7 * (1.0 + x.abs() as f64),
            "gelu({x})"
        );
    }
}

#[test]
fn gradcheck_dropout_with_fixed_mask() {
    let mut d = Dropout::new(0.4, &mut rng(3)).unwrap();
    let x = random(6, 5, 9);
    ok(check_layer_with(
        &mut d,
        &x,
        Tol::default(),
        &mut |d: &mut Dropout| d.reseed(42),
    ));
    // The mask really drops and rescales.
    d.reseed(1);
    let y = d.forward(Array2::ones((50, 40)).view(), true);
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.4).abs() < 0.05, "dropped fraction {zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.6).abs() < 1e-6));
    // Identity when not training, in both passes.
    let y = d.forward(x.view(), false);
    assert_eq!(y, x);
    assert_eq!(d.backward(x.view()), x);
}

#[test]
fn gradcheck_residual_and_sequential() {
    let mut r = rng(4);
    let inner = Sequential::new()
        .with_named("linear", Linear::new(5, 5, Init::KaimingUniform, &mut r))
        .with_named("norm", LayerNorm::new(5))
        .with_named("act", Gelu::new());
    let mut res = Residual::new(inner).named("block");
    ok(check_layer(&mut res, &random(3, 5, 10), Tol::default()));
    let names: Vec<_> = res.params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(
        names,
        [
            "block.linear.weight",
            "block.linear.bias",
            "block.norm.weight",
            "block.norm.bias"
        ]
    );
    let mut seq = Sequential::new()
        .with(Linear::new(4, 5, Init::KaimingUniform, &mut r))
        .with(Relu::new())
        .with(res)
        .named("net");
    // The residual was renamed with its new position.
    assert_eq!(seq.params()[2].name, "net.2.linear.weight");
    let x = random(3, 4, 11);
    // Keep ReLU inputs away from the kink: check at a point where no pre-activation is near 0.
    let pre = seq.children().next().unwrap().1.forward_inference(x.view());
    assert!(pre.iter().all(|v| v.abs() > 2e-2), "choose another seed");
    ok(check_layer(&mut seq, &x, Tol::default()));
}

#[test]
fn gradcheck_mlp_end_to_end() {
    for (act, residual, dropout) in [
        (ActivationKind::Gelu, true, 0.0),
        (ActivationKind::Relu, false, 0.0),
        (ActivationKind::Gelu, true, 0.3),
    ] {
        let cfg = MlpConfig {
            hidden: vec![6, 6],
            activation: act,
            dropout,
            layer_norm: true,
            residual,
        };
        let mut mlp = Mlp::new(4, Some(3), &cfg, &mut rng(5))
            .unwrap()
            .named("enc");
        let x = random(3, 4, 12).mapv(|v| 2.0 * v);
        ok(check_layer_with(
            &mut mlp,
            &x,
            Tol::default(),
            &mut |m: &mut Mlp| m.reseed_dropout(7),
        ));
    }
}

#[test]
fn gradcheck_detects_wrong_gradients() {
    // The checker must fail on small errors: a 3 % error in one weight gradient entry, a
    // missing bias gradient, or a GELU derivative taken from the tanh approximation.
    let mut l = Linear::new(4, 3, Init::KaimingUniform, &mut rng(6));
    let x = random(5, 4, 13);
    let r = random(5, 3, 14);
    let a = gradcheck::analytic(&mut l, &x, &r, &mut |_| {});
    let n = gradcheck::numeric(&mut l, &x, &r, 1e-3, &mut |_| {});
    let tol = Tol::default();
    assert!(gradcheck::compare(&a, &n, tol).is_ok());
    let mut bad = a.clone();
    let (_, w) = &mut bad.params[0];
    let k = w
        .iter()
        .enumerate()
        .max_by(|p, q| p.1.abs().total_cmp(&q.1.abs()))
        .unwrap()
        .0;
    w.as_slice_mut().unwrap()[k] *= 1.03;
    assert!(gradcheck::compare(&bad, &n, tol).is_err());
    let mut bad = a.clone();
    bad.params[1].1.fill(0.0);
    assert!(gradcheck::compare(&bad, &n, tol).is_err());

    let mut g = Gelu::new();
    let x = random(4, 6, 15).mapv(|v| 3.0 * v);
    let r = random(4, 6, 16);
    let n = gradcheck::numeric(&mut g, &x, &r, 1e-3, &mut |_| {});
    // Forgetting the x·φ(x) term of GELU's derivative.
    let wrong = x.mapv(activation::gelu_cdf) * &r;
    let bad = gradcheck::Grads {
        input: Some(wrong),
        params: vec![],
    };
    assert!(gradcheck::compare(&bad, &n, tol).is_err());
}

// ---------------------------------------------------------------- layer behaviour

#[test]
fn mlp_names_shapes_and_inference() {
    let cfg = MlpConfig {
        hidden: vec![8, 8],
        residual: true,
        ..Default::default()
    };
    let mut mlp = Mlp::new(5, Some(3), &cfg, &mut rng(8))
        .unwrap()
        .named("encoder");
    let names: Vec<(String, Vec<usize>)> = mlp
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.shape().to_vec()))
        .collect();
    let want = [
        ("encoder.0.linear.weight", vec![8, 5]),
        ("encoder.0.linear.bias", vec![8]),
        ("encoder.0.norm.weight", vec![8]),
        ("encoder.0.norm.bias", vec![8]),
        ("encoder.1.linear.weight", vec![8, 8]),
        ("encoder.1.linear.bias", vec![8]),
        ("encoder.1.norm.weight", vec![8]),
        ("encoder.1.norm.bias", vec![8]),
        ("encoder.out.weight", vec![3, 8]),
        ("encoder.out.bias", vec![3]),
    ];
    assert_eq!(names.len(), want.len());
    for ((n, s), (wn, ws)) in names.iter().zip(want.iter()) {
        assert_eq!((n.as_str(), s), (*wn, ws));
    }
    assert!(param::check_unique_names(mlp.params()).is_ok());
    // Block 1 is residual (8 → 8), block 0 is not (5 → 8).
    assert!(matches!(
        mlp.net().children().nth(1).unwrap().1,
        Module::Residual(_)
    ));
    assert!(matches!(
        mlp.net().children().next().unwrap().1,
        Module::Sequential(_)
    ));
    assert_eq!(mlp.out_features(), 3);
    assert_eq!(mlp.num_params(), 8 * 5 + 8 + 16 + 64 + 8 + 16 + 24 + 3);

    let x = random(7, 5, 17);
    let inf = mlp.forward_inference(x.view());
    let eval = mlp.forward(x.view(), false);
    assert_eq!(inf, eval);
    let train = mlp.forward(x.view(), true);
    assert_ne!(inf, train, "dropout is active in training");
    // Row independence: inference on one row equals the batched row.
    let one = mlp.forward_inference(x.slice(s![2..3, ..]));
    for (a, b) in one.row(0).iter().zip(inf.row(2)) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn mlp_config_serde_and_validation() {
    let cfg: MlpConfig =
        serde_json::from_str(r#"{"hidden":[64,32],"activation":"relu","dropout":0.2}"#).unwrap();
    assert_eq!(cfg.hidden, [64, 32]);
    assert_eq!(cfg.activation, ActivationKind::Relu);
    assert!(cfg.layer_norm && !cfg.residual);
    let back: MlpConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    assert!(serde_json::from_str::<MlpConfig>(r#"{"hiden":[3]}"#).is_err());
    let bad = MlpConfig {
        dropout: 1.0,
        ..Default::default()
    };
    assert!(Mlp::new(4, None, &bad, &mut rng(0)).is_err());
    let bad = MlpConfig {
        hidden: vec![0],
        ..Default::default()
    };
    assert!(Mlp::new(4, None, &bad, &mut rng(0)).is_err());
    // No hidden layers and no output: the identity with zero parameters.
    let id = Mlp::new(
        3,
        None,
        &MlpConfig {
            hidden: vec![],
            ..Default::default()
        },
        &mut rng(0),
    )
    .unwrap();
    assert_eq!(id.out_features(), 3);
    assert_eq!(
        id.forward_inference(array![[1.0, 2.0, 3.0]].view()),
        array![[1.0, 2.0, 3.0]]
    );
}

#[test]
fn backward_params_only_matches_and_skips_frozen_prefix() {
    let cfg = MlpConfig {
        hidden: vec![6, 5],
        dropout: 0.0,
        ..Default::default()
    };
    let mut a = Mlp::new(4, Some(2), &cfg, &mut rng(9))
        .unwrap()
        .named("enc");
    let mut b = a.clone();
    let x = random(3, 4, 18);
    let g = random(3, 2, 19);
    a.forward(x.view(), true);
    a.backward(g.view());
    b.forward(x.view(), true);
    b.backward_params_only(g.view());
    for (pa, pb) in a.params().iter().zip(b.params()) {
        assert_eq!(pa.grad, pb.grad, "{}", pa.name);
    }
    // Freeze block 0: its gradients stay zero, later blocks still get theirs.
    b.zero_grad();
    assert_eq!(b.set_trainable("enc.0", false), 4);
    b.forward(x.view(), true);
    b.backward_params_only(g.view());
    for (pa, pb) in a.params().iter().zip(b.params()) {
        if pb.name.starts_with("enc.0.") {
            assert!(
                !pb.trainable && pb.grad.iter().all(|&v| v == 0.0),
                "{}",
                pb.name
            );
        } else {
            assert!(pb.trainable);
            assert_eq!(pa.grad, pb.grad, "{}", pa.name);
        }
    }
    // Full backward with a frozen layer: still the right input gradient.
    let mut c = a.clone();
    c.zero_grad();
    c.set_trainable("", false);
    c.forward(x.view(), true);
    let dx_frozen = c.backward(g.view());
    a.zero_grad();
    a.forward(x.view(), true);
    let dx = a.backward(g.view());
    assert_eq!(dx, dx_frozen);
    assert!(c.params().iter().all(|p| p.grad.iter().all(|&v| v == 0.0)));
    assert_eq!(c.set_trainable("enc.1", true), 4);
    assert_eq!(c.params().iter().filter(|p| p.trainable).count(), 4);
}

#[test]
fn grads_accumulate_across_backward_calls() {
    let mut l = Linear::new(3, 2, Init::XavierUniform, &mut rng(10));
    let x = random(4, 3, 20);
    let g = random(4, 2, 21);
    l.forward(x.view(), true);
    l.backward(g.view());
    let once = l.weight().grad.clone();
    l.forward(x.view(), true);
    l.backward(g.view());
    let twice = &l.weight().grad;
    for (a, b) in once.iter().zip(twice) {
        assert!((2.0 * a - b).abs() < 1e-6);
    }
    l.zero_grad();
    assert!(l.weight().grad.iter().all(|&v| v == 0.0));
}

#[test]
fn models_are_send_sync_and_infer_concurrently() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Mlp>();
    assert_send_sync::<Module>();
    assert_send_sync::<AdamW>();
    let mlp = Mlp::new(6, Some(3), &MlpConfig::default(), &mut rng(11)).unwrap();
    let x = random(5, 6, 22);
    let want = mlp.forward_inference(x.view());
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| mlp.forward_inference(x.view())))
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}

#[test]
fn save_and_load_by_name() {
    let cfg = MlpConfig {
        hidden: vec![4],
        ..Default::default()
    };
    let a = Mlp::new(3, Some(2), &cfg, &mut rng(12))
        .unwrap()
        .named("encoder");
    let mut b = Mlp::new(3, Some(2), &cfg, &mut rng(13))
        .unwrap()
        .named("encoder");
    let x = random(2, 3, 23);
    assert_ne!(a.forward_inference(x.view()), b.forward_inference(x.view()));
    let saved: HashMap<String, ArrayD<f32>> = a
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    load_values(&mut b.params_mut(), &saved, true).unwrap();
    assert_eq!(a.forward_inference(x.view()), b.forward_inference(x.view()));
    let mut c = Mlp::new(3, Some(2), &cfg, &mut rng(13))
        .unwrap()
        .named("other");
    assert!(load_values(&mut c.params_mut(), &saved, false).is_err());
}

// ---------------------------------------------------------------- losses

fn logits() -> Array2<f32> {
    array![[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
}

#[test]
fn cross_entropy_reference_values() {
    let (l, g) =
        softmax_cross_entropy(array![[1.0f32, 2.0, 3.0]].view(), &[2], &Default::default())
            .unwrap();
    assert_close(l, 0.4076059644443804, 1e-6, "CE");
    let p = loss::softmax(array![[1.0f32, 2.0, 3.0]].view());
    assert_close(g[[0, 2]], p[[0, 2]] as f64 - 1.0, 1e-6, "CE grad");
    let opts = CrossEntropyOptions {
        class_weights: Some(&[1.0, 2.0, 0.5]),
        label_smoothing: 0.1,
        sample_weights: None,
    };
    let (l, _) = softmax_cross_entropy(logits().view(), &[2, 0], &opts).unwrap();
    assert_close(l, 1.330076185919565, 1e-6, "CE smoothing + class weights");
    // Extreme logits stay finite.
    let (l, g) = softmax_cross_entropy(
        array![[1000.0f32, -1000.0]].view(),
        &[1],
        &Default::default(),
    )
    .unwrap();
    assert_close(l, 2000.0, 1e-6, "CE extreme");
    assert!(g.iter().all(|v| v.is_finite()));
    // Errors.
    assert!(softmax_cross_entropy(logits().view(), &[3, 0], &Default::default()).is_err());
    assert!(softmax_cross_entropy(logits().view(), &[0], &Default::default()).is_err());
    // Empty batch and all-zero weights give 0.
    let (l, _) = softmax_cross_entropy(
        Array2::<f32>::zeros((0, 3)).view(),
        &[],
        &Default::default(),
    )
    .unwrap();
    assert_eq!(l, 0.0);
}

#[test]
fn gradcheck_cross_entropy_variants() {
    let z = random(4, 5, 30).mapv(|v| 3.0 * v);
    let t = [0usize, 3, 4, 3];
    let cw = [0.5f32, 1.0, 2.0, 1.5, 0.7];
    let sw = [1.0f32, 0.0, 2.0, 0.5];
    for opts in [
        CrossEntropyOptions::default(),
        CrossEntropyOptions {
            label_smoothing: 0.2,
            ..Default::default()
        },
        CrossEntropyOptions {
            class_weights: Some(&cw),
            label_smoothing: 0.1,
            sample_weights: Some(&sw),
        },
    ] {
        ok(check_loss(
            &|z: ArrayView2<'_, f32>| softmax_cross_entropy(z, &t, &opts).unwrap(),
            &z,
            Tol {
                atol: 2e-4,
                ..Default::default()
            },
        ));
    }
}

#[test]
fn focal_reference_values_and_gradients() {
    let opts = FocalOptions {
        gamma: 2.0,
        alpha: Some(&[0.25, 0.5, 1.0]),
        sample_weights: None,
    };
    let (l, _) = softmax_focal(logits().view(), &[2, 0], &opts).unwrap();
    assert_close(l, 0.17088212498268318, 1e-6, "focal");
    // γ = 0, no α: cross-entropy.
    let z = random(4, 5, 31).mapv(|v| 3.0 * v);
    let t = [1usize, 0, 4, 2];
    let (lf, gf) = softmax_focal(z.view(), &t, &Default::default()).unwrap();
    let (lc, gc) = softmax_cross_entropy(z.view(), &t, &Default::default()).unwrap();
    assert_close(lf, lc as f64, 1e-6, "focal γ=0");
    assert!(gf.iter().zip(&gc).all(|(a, b)| (a - b).abs() < 1e-7));
    let alpha = [0.3f32, 1.0, 0.6, 2.0, 0.9];
    for gamma in [0.5f32, 1.0, 2.0, 3.5] {
        let o = FocalOptions {
            gamma,
            alpha: Some(&alpha),
            sample_weights: Some(&[1.0, 2.0, 0.5, 1.0]),
        };
        ok(check_loss(
            &|z: ArrayView2<'_, f32>| softmax_focal(z, &t, &o).unwrap(),
            &z,
            Tol {
                atol: 2e-4,
                ..Default::default()
            },
        ));
    }
    // A confidently correct example contributes (almost) nothing and its gradient is finite.
    let (l, g) = softmax_focal(
        array![[30.0f32, -30.0]].view(),
        &[0],
        &FocalOptions {
            gamma: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(l < 1e-20 && g.iter().all(|v| v.is_finite()));
}

#[test]
fn bce_reference_values_and_gradients() {
    let x = array![[0.5f32, -1.0], [2.0, 0.3]];
    let y = array![[1.0f32, 0.0], [0.0, 1.0]];
    let m = array![[1.0f32, 1.0], [1.0, 0.0]];
    let opts = BceOptions {
        pos_weight: Some(&[2.0, 0.5]),
        mask: Some(m.view()),
    };
    let (l, g) = bce_with_logits(x.view(), y.view(), &opts).unwrap();
    assert_close(l, 1.1294478889738024, 1e-6, "BCE");
    assert_eq!(g[[1, 1]], 0.0, "masked element has no gradient");
    // Stable at extreme logits.
    let (l, g) = bce_with_logits(
        array![[100.0f32, -100.0]].view(),
        array![[0.0f32, 1.0]].view(),
        &Default::default(),
    )
    .unwrap();
    assert_close(l, 100.0, 1e-6, "BCE extreme");
    assert!(g.iter().all(|v| v.is_finite()));
    let z = random(4, 3, 32).mapv(|v| 4.0 * v);
    let t = random(4, 3, 33).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let mask = random(4, 3, 34).mapv(|v| if v > -0.6 { 1.0 } else { 0.0 });
    let pw = [3.0f32, 0.5, 1.0];
    for o in [
        BceOptions::default(),
        BceOptions {
            pos_weight: Some(&pw),
            mask: Some(mask.view()),
        },
    ] {
        ok(check_loss(
            &|z: ArrayView2<'_, f32>| bce_with_logits(z, t.view(), &o).unwrap(),
            &z,
            Tol {
                atol: 2e-4,
                ..Default::default()
            },
        ));
    }
    // Soft targets work too.
    let soft = random(4, 3, 35).mapv(|v| 0.5 + 0.5 * v);
    ok(check_loss(
        &|z: ArrayView2<'_, f32>| bce_with_logits(z, soft.view(), &Default::default()).unwrap(),
        &z,
        Tol {
            atol: 2e-4,
            ..Default::default()
        },
    ));
    assert!(bce_with_logits(x.view(), y.slice(s![.., ..1]), &Default::default()).is_err());
}

#[test]
fn sigmoid_focal_reference_values_and_gradients() {
    let x = array![[0.5f32, -1.0], [2.0, 0.3]];
    let y = array![[1.0f32, 0.0], [0.0, 1.0]];
    let opts = SigmoidFocalOptions {
        gamma: 2.0,
        alpha: Some(0.25),
        mask: None,
    };
    let (l, _) = sigmoid_focal(x.view(), y.view(), &opts).unwrap();
    assert_close(l, 0.3241359672997328, 1e-6, "sigmoid focal");
    // γ = 0, no α: BCE.
    let (lf, gf) = sigmoid_focal(x.view(), y.view(), &Default::default()).unwrap();
    let (lb, gb) = bce_with_logits(x.view(), y.view(), &Default::default()).unwrap();
    assert_close(lf, lb as f64, 1e-6, "sigmoid focal γ=0");
    assert!(gf.iter().zip(&gb).all(|(a, b)| (a - b).abs() < 1e-7));
    let z = random(4, 3, 36).mapv(|v| 4.0 * v);
    let t = random(4, 3, 37).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let mask = random(4, 3, 38).mapv(|v| if v > -0.6 { 1.0 } else { 0.0 });
    for gamma in [0.5f32, 2.0] {
        let o = SigmoidFocalOptions {
            gamma,
            alpha: Some(0.3),
            mask: Some(mask.view()),
        };
        ok(check_loss(
            &|z: ArrayView2<'_, f32>| sigmoid_focal(z, t.view(), &o).unwrap(),
            &z,
            Tol {
                atol: 2e-4,
                ..Default::default()
            },
        ));
    }
}

#[test]
fn regression_losses_reference_values_and_gradients() {
    let p = array![[0.5f32, 3.0], [-2.0, 0.1]];
    let t = Array2::<f32>::zeros((2, 2));
    let (l, g) = mse(p.view(), t.view(), None).unwrap();
    assert_close(l, 3.315, 1e-6, "MSE");
    assert_close(g[[0, 1]], 2.0 * 3.0 / 4.0, 1e-6, "MSE grad");
    let (l, g) = huber(p.view(), t.view(), 1.0, None).unwrap();
    assert_close(l, 1.0325, 1e-6, "Huber");
    assert_close(g[[0, 1]], 0.25, 1e-6, "Huber grad linear side");
    assert_close(g[[1, 0]], -0.25, 1e-6, "Huber grad linear side (negative)");
    assert_close(g[[0, 0]], 0.5 / 4.0, 1e-6, "Huber grad quadratic side");
    // Gradient checks on both sides of δ (residuals kept away from ±δ itself).
    let z = array![[0.2f32, -0.7, 1.6], [-2.5, 0.05, 3.0]];
    let tt = Array2::<f32>::zeros((2, 3));
    let mask = array![[1.0f32, 1.0, 0.0], [1.0, 2.0, 1.0]];
    ok(check_loss(
        &|z: ArrayView2<'_, f32>| huber(z, tt.view(), 1.0, Some(mask.view())).unwrap(),
        &z,
        Tol {
            atol: 2e-4,
            ..Default::default()
        },
    ));
    ok(check_loss(
        &|z: ArrayView2<'_, f32>| mse(z, tt.view(), Some(mask.view())).unwrap(),
        &z,
        Tol {
            atol: 2e-4,
            ..Default::default()
        },
    ));
    assert!(huber(p.view(), t.view(), 0.0, None).is_err());
}

#[test]
fn class_weight_schemes() {
    let counts = [10usize, 90, 0];
    let close = |got: Vec<f32>, want: &[f64]| {
        for (g, w) in got.iter().zip(want) {
            assert_close(*g, *w, 1e-6, "class weight");
        }
    };
    close(
        class_weights(&counts, ClassWeighting::None).unwrap(),
        &[1.0, 1.0, 1.0],
    );
    close(
        class_weights(&counts, ClassWeighting::Balanced).unwrap(),
        &[3.3333333333333335, 0.37037037037037035, 33.333333333333336],
    );
    close(
        class_weights(&counts, ClassWeighting::EffectiveNumber { beta: 0.99 }).unwrap(),
        &[0.279787519100048, 0.04494227942184476, 2.675270201478107],
    );
    close(
        class_weights(&counts, ClassWeighting::Sqrt).unwrap(),
        &[0.6673175246560303, 0.22243917488534345, 2.1102433004586265],
    );
    close(
        class_weights(&[5, 5], ClassWeighting::EffectiveNumber { beta: 0.0 }).unwrap(),
        &[1.0, 1.0],
    );
    for scheme in [
        ClassWeighting::Balanced,
        ClassWeighting::Sqrt,
        ClassWeighting::EffectiveNumber { beta: 0.999 },
    ] {
        let w = class_weights(&[0, 0, 0], scheme).unwrap();
        assert_eq!(w, [1.0, 1.0, 1.0]);
        assert!(class_weights(&[0, 7, 1_000_000], scheme)
            .unwrap()
            .iter()
            .all(|v| v.is_finite() && *v > 0.0));
    }
    assert!(class_weights(&[1, 2], ClassWeighting::EffectiveNumber { beta: 1.0 }).is_err());
    let json = serde_json::to_string(&ClassWeighting::EffectiveNumber { beta: 0.9 }).unwrap();
    assert_eq!(json, r#"{"scheme":"effective_number","beta":0.9}"#);
    assert_eq!(bce_pos_weights(&[10, 0, 100], 100), [9.0, 1.0, 1.0]);
}

// ---------------------------------------------------------------- optimisation

#[test]
fn adamw_one_and_two_steps_match_hand_computation() {
    let mut w = Param::new("w", array![[1.0f32, -2.0]].into_dyn());
    let mut b = Param::new("b", array![0.5f32].into_dyn());
    let mut opt = AdamW::new(AdamWConfig {
        lr: 0.1,
        weight_decay: 0.01,
        ..Default::default()
    })
    .unwrap();
    w.grad = array![[0.5f32, -0.1]].into_dyn();
    b.grad = array![0.2f32].into_dyn();
    opt.step(&mut [&mut w, &mut b]);
    assert_close(w.value[[0, 0]], 0.8990000019999999, 1e-7, "w0 step 1");
    assert_close(w.value[[0, 1]], -1.898000009999999, 1e-7, "w1 step 1");
    // 1-D parameters are not decayed by default: 0.5 − 0.1·0.2/(0.2 + 1e-8).
    assert_close(b.value[[0]], 0.400000005, 1e-7, "bias step 1");
    opt.step(&mut [&mut w, &mut b]);
    assert_close(w.value[[0, 0]], 0.7981010039980004, 1e-6, "w0 step 2");
    assert_close(w.value[[0, 1]], -1.7961020199899986, 1e-6, "w1 step 2");
    assert_eq!(opt.param_steps("w"), 2);
}

#[test]
fn adamw_skips_frozen_and_applies_group_multipliers() {
    let mut a = Param::new("enc.0.w", array![[1.0f32]].into_dyn());
    let mut b = Param::new("heads.x.w", array![[1.0f32]].into_dyn());
    let mut c = Param::new("enc.10.w", array![[1.0f32]].into_dyn());
    for p in [&mut a, &mut b, &mut c] {
        p.grad.fill(1.0);
    }
    a.trainable = false;
    let mut opt = AdamW::new(AdamWConfig {
        lr: 0.1,
        weight_decay: 0.0,
        ..Default::default()
    })
    .unwrap();
    opt.set_lr_multiplier("enc", 0.5);
    opt.set_lr_multiplier("enc.10", 0.0);
    assert_eq!(opt.lr_multiplier("enc.0.w"), 0.5);
    assert_eq!(opt.lr_multiplier("enc.10.w"), 0.0);
    assert_eq!(opt.lr_multiplier("encoder.w"), 1.0);
    opt.step(&mut [&mut a, &mut b, &mut c]);
    assert_eq!(a.value[[0, 0]], 1.0, "frozen parameter unchanged");
    assert_eq!(opt.param_steps("enc.0.w"), 0);
    assert_close(b.value[[0, 0]], 0.9, 1e-6, "full-rate step");
    assert_eq!(c.value[[0, 0]], 1.0, "zero multiplier");
    // Unfreeze: its own bias correction starts at step 1 → a full lr·mult step.
    a.trainable = true;
    opt.step(&mut [&mut a, &mut b, &mut c]);
    assert_close(a.value[[0, 0]], 0.95, 1e-6, "unfrozen at 0.5× lr");
    assert_eq!(opt.param_steps("enc.0.w"), 1);
    assert_eq!(opt.param_steps("heads.x.w"), 2);
}

#[test]
fn clipping_scales_to_max_norm() {
    let mut a = Param::new("a", array![[3.0f32, 0.0]].into_dyn());
    let mut b = Param::new("b", array![4.0f32].into_dyn());
    let mut frozen = Param::new("f", array![100.0f32].into_dyn());
    a.grad = array![[3.0f32, 0.0]].into_dyn();
    b.grad = array![4.0f32].into_dyn();
    frozen.grad = array![100.0f32].into_dyn();
    frozen.trainable = false;
    let norm = clip_grad_norm(&mut [&mut a, &mut b, &mut frozen], 1.0);
    assert_close(norm, 5.0, 1e-7, "pre-clip norm");
    assert_close(grad_norm([&a, &b]), 1.0, 1e-5, "post-clip norm");
    assert_close(a.grad[[0, 0]], 0.6, 1e-5, "scaled");
    assert_eq!(frozen.grad[[0]], 100.0);
    // Below the threshold nothing changes.
    let norm = clip_grad_norm(&mut [&mut a, &mut b], 10.0);
    assert!(norm < 1.0 + 1e-5);
    assert_close(a.grad[[0, 0]], 0.6, 1e-5, "unchanged");
    // Non-finite norms are reported, not applied.
    b.grad[[0]] = f32::NAN;
    assert!(clip_grad_norm(&mut [&mut a, &mut b], 1.0).is_nan());
    assert_close(a.grad[[0, 0]], 0.6, 1e-5, "unchanged on NaN");
    zero_grad([&mut a, &mut b]);
    assert_eq!(grad_norm([&a, &b]), 0.0);
}

#[test]
fn fused_step_matches_clip_step_zero() {
    let cfg = MlpConfig {
        hidden: vec![7],
        dropout: 0.0,
        ..Default::default()
    };
    let mut a = Mlp::new(5, Some(3), &cfg, &mut rng(14)).unwrap();
    a.set_trainable("0.norm", false);
    let mut b = a.clone();
    let mut oa = AdamW::new(AdamWConfig::default()).unwrap();
    let mut ob = oa.clone();
    for step in 0..3 {
        let x = random(4, 5, 50 + step);
        let g = random(4, 3, 60 + step).mapv(|v| 10.0 * v);
        for (m, o, fused) in [(&mut a, &mut oa, false), (&mut b, &mut ob, true)] {
            m.forward(x.view(), true);
            m.backward(g.view());
            let mut ps = m.params_mut();
            if fused {
                o.step_clipped(&mut ps, Some(0.5));
            } else {
                clip_grad_norm(&mut ps, 0.5);
                o.step(&mut ps);
                zero_grad(ps);
            }
        }
    }
    for (pa, pb) in a.params().iter().zip(b.params()) {
        for (x, y) in pa.value.iter().zip(&pb.value) {
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{}", pa.name);
        }
        assert!(pb.grad.iter().all(|&v| v == 0.0));
    }
    // A non-finite gradient skips the step.
    let before: Vec<_> = b.params().iter().map(|p| p.value.clone()).collect();
    b.params_mut()[0].grad[[0, 0]] = f32::INFINITY;
    let norm = ob.step_clipped(&mut b.params_mut(), Some(1.0));
    assert!(!norm.is_finite());
    let after: Vec<_> = b.params().iter().map(|p| p.value.clone()).collect();
    assert_eq!(before, after);
    assert!(b.params().iter().all(|p| p.grad.iter().all(|&v| v == 0.0)));
}

#[test]
fn cosine_schedule_values() {
    let (w, t, r) = (10, 110, 0.1f32);
    assert_close(
        cosine_with_warmup_factor(0, w, t, r),
        0.1,
        1e-7,
        "first warmup step",
    );
    assert_close(
        cosine_with_warmup_factor(4, w, t, r),
        0.5,
        1e-7,
        "mid warmup",
    );
    assert_close(
        cosine_with_warmup_factor(9, w, t, r),
        1.0,
        1e-7,
        "warmup end",
    );
    assert_close(
        cosine_with_warmup_factor(10, w, t, r),
        1.0,
        1e-7,
        "decay start",
    );
    assert_close(
        cosine_with_warmup_factor(60, w, t, r),
        0.55,
        1e-6,
        "half decay",
    );
    assert_close(cosine_with_warmup_factor(110, w, t, r), 0.1, 1e-7, "end");
    assert_close(
        cosine_with_warmup_factor(500, w, t, r),
        0.1,
        1e-7,
        "past end",
    );
    let mut s = LrScheduler::new(
        Schedule::CosineWithWarmup {
            warmup_steps: w,
            total_steps: t,
            min_lr_ratio: r,
        },
        2e-3,
    )
    .unwrap();
    let mut last = 0.0;
    for step in 0..t {
        let lr = s.lr();
        if step < w {
            assert!(lr > last);
        } else if step > w {
            assert!(lr <= last);
        }
        last = lr;
        s.step();
    }
    assert_close(s.lr(), 2e-4, 1e-6, "scheduler end");
    let json = r#"{"kind":"cosine_with_warmup","warmup_steps":1,"total_steps":5,"min_lr_ratio":0}"#;
    let parsed: Schedule = serde_json::from_str(json).unwrap();
    assert!(matches!(
        parsed,
        Schedule::CosineWithWarmup { total_steps: 5, .. }
    ));
    assert!(LrScheduler::new(
        Schedule::CosineWithWarmup {
            warmup_steps: 6,
            total_steps: 5,
            min_lr_ratio: 0.0
        },
        1.0
    )
    .is_err());
    let mut c = LrScheduler::new(Schedule::Constant, 0.5).unwrap();
    c.step();
    assert!(!c.on_metric(1.0));
    assert_eq!(c.lr(), 0.5);
}

#[test]
fn reduce_on_plateau_behaviour() {
    let mut s = LrScheduler::new(
        Schedule::ReduceOnPlateau {
            factor: 0.5,
            patience: 2,
            min_lr: 0.3,
            threshold: 0.01,
            mode: Mode::Min,
        },
        1.0,
    )
    .unwrap();
    assert!(!s.on_metric(1.0)); // best
    assert!(!s.on_metric(0.995)); // < 1 % better: bad 1
    assert!(!s.on_metric(1.2)); // bad 2
    assert_eq!(s.lr(), 1.0);
    assert!(s.on_metric(1.1)); // bad 3 > patience → reduce
    assert_eq!(s.lr(), 0.5);
    assert!(!s.on_metric(0.5)); // improvement resets
    for _ in 0..2 {
        assert!(!s.on_metric(0.6));
    }
    assert!(s.on_metric(0.6));
    assert_eq!(s.lr(), 0.3, "clamped at min_lr");
    for _ in 0..6 {
        assert!(!s.on_metric(0.7), "no further reduction below min_lr");
    }
    assert_eq!(s.lr(), 0.3);
    // Max mode.
    let mut s = LrScheduler::new(
        Schedule::ReduceOnPlateau {
            factor: 0.1,
            patience: 0,
            min_lr: 0.0,
            threshold: 0.0,
            mode: Mode::Max,
        },
        1.0,
    )
    .unwrap();
    assert!(!s.on_metric(0.5));
    assert!(!s.on_metric(0.6));
    assert!(s.on_metric(0.6));
    assert_close(s.lr(), 0.1, 1e-7, "max mode");
    assert!(s.on_metric(f32::NAN), "NaN is not an improvement");
}

#[test]
fn early_stopping_and_restore_best() {
    let mut p = Param::new("w", array![[1.0f32]].into_dyn());
    let mut es = EarlyStopping::new(EarlyStoppingConfig {
        patience: 2,
        min_delta: 0.01,
        mode: Mode::Max,
        restore_best: true,
    })
    .unwrap();
    assert_eq!(es.update(0.5, &[&p]), EarlyStopDecision::Improved);
    p.value[[0, 0]] = 2.0;
    assert_eq!(es.update(0.8, &[&p]), EarlyStopDecision::Improved);
    p.value[[0, 0]] = 3.0;
    assert_eq!(es.update(0.805, &[&p]), EarlyStopDecision::NoImprovement); // < min_delta
    p.value[[0, 0]] = 4.0;
    assert_eq!(es.update(0.7, &[&p]), EarlyStopDecision::Stop);
    assert!(es.should_stop());
    assert_eq!(es.best(), Some(0.8));
    assert_eq!(es.best_eval(), Some(1));
    assert!(es.restore_best(&mut [&mut p]).unwrap());
    assert_eq!(p.value[[0, 0]], 2.0);
    // Without restore_best nothing is kept.
    let mut es = EarlyStopping::new(EarlyStoppingConfig {
        restore_best: false,
        patience: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(es.update(1.0, &[&p]), EarlyStopDecision::Improved);
    assert_eq!(es.update(f32::NAN, &[&p]), EarlyStopDecision::Stop);
    assert!(!es.restore_best(&mut [&mut p]).unwrap());
}

// ---------------------------------------------------------------- multi-task

#[test]
fn uncertainty_weights_values_and_gradients() {
    let mut uw = UncertaintyWeights::new("mtl", &["intent", "rating"], 0.0).unwrap();
    uw.set_log_vars(&[0.3, -0.5]).unwrap();
    assert_eq!(uw.params()[1].name, "mtl.rating");
    let losses = [1.2f32, 0.4];
    let c = uw.combine(&losses).unwrap();
    let want = (-0.3f64).exp() * 1.2 + 0.3 + 0.5f64.exp() * 0.4 - 0.5;
    assert_close(c.total, want, 1e-6, "total");
    assert_close(c.scales[1], 0.5f64.exp(), 1e-6, "scale");
    // ∂total/∂s by central differences in f64 of the documented formula, and of combine.
    let total_at = |s: [f32; 2]| {
        let mut u = UncertaintyWeights::new("m", &["a", "b"], 0.0).unwrap();
        u.set_log_vars(&s).unwrap();
        u.combine(&losses).unwrap().total as f64
    };
    let eps = 1e-3f32;
    for t in 0..2 {
        let mut sp = [0.3f32, -0.5];
        let mut sm = sp;
        sp[t] += eps;
        sm[t] -= eps;
        let num = (total_at(sp) - total_at(sm)) / (2.0 * eps as f64);
        let ana = uw.params()[t].grad[[0]] as f64;
        assert!(
            (num - ana).abs() <= 1e-3 + 1e-2 * ana.abs(),
            "task {t}: {ana} vs {num}"
        );
    }
    // Chained through a loss: ∂total/∂logits = scale · ∂L/∂logits.
    let z = random(3, 4, 40);
    let targets = [1usize, 3, 0];
    let f = |z: ArrayView2<'_, f32>| {
        let (l, g) = softmax_cross_entropy(z, &targets, &Default::default()).unwrap();
        let mut u = UncertaintyWeights::new("m", &["a"], 0.7).unwrap();
        let c = u.combine(&[l]).unwrap();
        (c.total, g * c.scales[0])
    };
    ok(check_loss(
        &f,
        &z,
        Tol {
            atol: 2e-4,
            ..Default::default()
        },
    ));
    // At the optimum s = log L the gradient vanishes.
    let mut u = UncertaintyWeights::new("m", &["a"], 1.2f32.ln()).unwrap();
    u.combine(&[1.2]).unwrap();
    assert!(u.params()[0].grad[[0]].abs() < 1e-6);
    assert!(UncertaintyWeights::new("m", &["a", "a"], 0.0).is_err());
    let fw = FixedWeights::new(vec![1.0, 0.5]).unwrap();
    let c = fw.combine(&losses).unwrap();
    assert_close(c.total, 1.4, 1e-6, "fixed");
    assert_eq!(c.scales, [1.0, 0.5]);
    assert!(fw.combine(&[1.0]).is_err());
}

// ---------------------------------------------------------------- training

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

/// Throughput of the reference workload: 10k × 20 epochs of 450 → 256 → 6 (GELU, LayerNorm,
/// dropout 0.1), batch 32 (or `NN_BENCH_BATCH`), one thread. Run with
/// `cargo test --release --lib nn::tests::bench_training -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run in release"]
fn bench_training() {
    let n = 10_000;
    let x = random(n, 450, 1);
    let y: Vec<usize> = (0..n).map(|i| i % 6).collect();
    let cfg = MlpConfig {
        hidden: vec![256],
        ..Default::default()
    };
    let mut model = Mlp::new(450, Some(6), &cfg, &mut rng(1)).unwrap();
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let batch: usize = std::env::var("NN_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let t0 = std::time::Instant::now();
    let mut t_fwd = std::time::Duration::ZERO;
    let mut t_bwd = std::time::Duration::ZERO;
    let mut t_opt = std::time::Duration::ZERO;
    for _epoch in 0..20 {
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let xb = x.slice(s![start..end, ..]);
            let a = std::time::Instant::now();
            let z = model.forward(xb, true);
            let (_, g) =
                softmax_cross_entropy(z.view(), &y[start..end], &Default::default()).unwrap();
            let b = std::time::Instant::now();
            model.backward_params_only(g.view());
            let c = std::time::Instant::now();
            opt.step_clipped(&mut model.params_mut(), Some(1.0));
            t_fwd += b - a;
            t_bwd += c - b;
            t_opt += c.elapsed();
        }
    }
    eprintln!(
        "10k x 20 epochs, 450→256→6, batch {batch}: {:.3} s (forward+loss {:.3}, backward {:.3}, clip+step+zero {:.3})",
        t0.elapsed().as_secs_f64(),
        t_fwd.as_secs_f64(),
        t_bwd.as_secs_f64(),
        t_opt.as_secs_f64()
    );
}
