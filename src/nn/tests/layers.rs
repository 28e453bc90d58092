//! Layer behaviour.

use super::*;

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
