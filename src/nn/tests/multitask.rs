//! Multi-task.

use super::*;

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
