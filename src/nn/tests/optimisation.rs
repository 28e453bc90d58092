//! Optimisation.

use super::*;

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
