//! Hand-computed cases.

use super::*;

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
