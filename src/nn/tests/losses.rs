//! Losses.

use super::*;

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
