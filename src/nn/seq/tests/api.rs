//! API behaviour.

use super::*;

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
