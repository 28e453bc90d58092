//! Gradient checks: layers.

use super::*;

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
    ok(gradcheck::compare(&a, &n, tol));
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
