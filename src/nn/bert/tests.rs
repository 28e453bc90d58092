//! Tests of [`BertLayer`]: finite-difference gradients on ragged packed batches, a naive f64
//! reference forward written from BERT's definition, isolation of texts, names.

use ndarray::{s, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::nn::gradcheck::{compare, random, Grads, Tol};
use crate::nn::optim::zero_grad;
use crate::nn::param::check_unique_names;

const CFG: BertConfig = BertConfig {
    hidden: 8,
    heads: 2,
    intermediate: 12,
    layer_norm_eps: BERT_LAYER_NORM_EPS,
};

fn offsets_of(lengths: &[usize]) -> Vec<usize> {
    let mut o = vec![0];
    for &l in lengths {
        o.push(o.last().unwrap() + l);
    }
    o
}

/// A layer with every parameter random (biases and LayerNorm parameters too, so that every
/// gradient term is exercised).
fn layer(seed: u64) -> BertLayer {
    random_layer(&CFG, seed, "encoder.layer.0")
}

/// A layer of shape `cfg` named `name` with every parameter random, drawn from `seed` (also
/// for the gradient checks of what trains BERT layers elsewhere).
pub(crate) fn random_layer(cfg: &BertConfig, seed: u64, name: &str) -> BertLayer {
    let mut l = BertLayer::new(cfg, &mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap()
        .named(name);
    let mut r = ChaCha8Rng::seed_from_u64(seed + 100);
    for p in l.params_mut() {
        if p.shape().len() == 1 {
            let base = if p.name.ends_with("LayerNorm.weight") {
                1.0
            } else {
                0.0
            };
            p.value
                .mapv_inplace(|_| base + 0.3 * r.random_range(-1.0f32..1.0));
        }
    }
    l
}

fn objective(l: &mut BertLayer, x: ArrayView2<'_, f32>, o: &[usize], r: &Array2<f32>) -> f64 {
    let y = l.forward(x, o, true);
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Analytic (one backward) and central-difference gradients of Σ r ⊙ layer(x).
fn grads(l: &mut BertLayer, x: &Array2<f32>, o: &[usize], h: f32) -> (Grads, Grads) {
    let r = random(x.nrows(), x.ncols(), 0x5eed);
    zero_grad(l.params_mut());
    l.forward(x.view(), o, true);
    let dx = l.backward(r.view());
    let analytic = Grads {
        input: Some(dx),
        params: l
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.grad.clone()))
            .collect(),
    };
    let mut xp = x.clone();
    let mut ndx = Array2::zeros(x.dim());
    for i in 0..x.nrows() {
        for j in 0..x.ncols() {
            let orig = xp[[i, j]];
            xp[[i, j]] = orig + h;
            let fp = objective(l, xp.view(), o, &r);
            xp[[i, j]] = orig - h;
            let fm = objective(l, xp.view(), o, &r);
            xp[[i, j]] = orig;
            ndx[[i, j]] = ((fp - fm) / (2.0 * h as f64)) as f32;
        }
    }
    let mut params = Vec::new();
    for pi in 0..l.params().len() {
        let (name, mut g) = {
            let p = &l.params()[pi];
            (p.name.clone(), p.value.mapv(|_| 0.0f32))
        };
        for k in 0..g.len() {
            let orig = l.params()[pi].value.as_slice().unwrap()[k];
            l.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig + h;
            let fp = objective(l, x.view(), o, &r);
            l.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig - h;
            let fm = objective(l, x.view(), o, &r);
            l.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig;
            g.as_slice_mut().unwrap()[k] = ((fp - fm) / (2.0 * h as f64)) as f32;
        }
        params.push((name, g));
    }
    (
        analytic,
        Grads {
            input: Some(ndx),
            params,
        },
    )
}

/// The tolerance of the transformer gradient checks in `nn::seq` (ε = 1e-2: smaller steps
/// drown the central differences of the f32 forward in rounding noise).
const TOL: Tol = Tol {
    eps: 1e-2,
    rtol: 1e-2,
    atol: 1e-3,
};

#[test]
fn gradcheck_params_and_input_on_ragged_batches() {
    for (k, lengths) in [[1usize, 4, 7], [3, 1, 2]].iter().enumerate() {
        let o = offsets_of(lengths);
        let mut l = layer(6 + k as u64);
        let x = random(*o.last().unwrap(), CFG.hidden, 8 + k as u64);
        let (a, n) = grads(&mut l, &x, &o, TOL.eps);
        match compare(&a, &n, TOL) {
            Ok(worst) => eprintln!("lengths {lengths:?}: worst error {worst:.3} of the tolerance"),
            Err(e) => panic!("lengths {lengths:?}: {e}"),
        }
    }
}

#[test]
fn gradcheck_catches_a_wrong_gradient() {
    // The check is sharp enough: 3 % off in the largest query-weight gradient fails it.
    let o = offsets_of(&[1, 4, 7]);
    let mut l = layer(6);
    let x = random(12, CFG.hidden, 8);
    let (mut a, n) = grads(&mut l, &x, &o, TOL.eps);
    compare(&a, &n, TOL).unwrap();
    let w = &mut a.params[0].1;
    let k = w
        .iter()
        .enumerate()
        .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
        .unwrap()
        .0;
    w.as_slice_mut().unwrap()[k] *= 1.03;
    assert!(compare(&a, &n, TOL).is_err());
}

/// BERT's layer written out naively in f64 from its definition, one text at a time.
fn reference(l: &BertLayer, x: &Array2<f32>, offsets: &[usize]) -> Array2<f64> {
    let p: Vec<Array2<f64>> = l
        .params()
        .iter()
        .map(|p| {
            let v = p.value.mapv(|v| v as f64);
            let cols = if p.shape().len() == 2 {
                p.shape()[1]
            } else {
                p.shape()[0]
            };
            let rows = p.len() / cols;
            v.into_shape_with_order((rows, cols)).unwrap()
        })
        .collect();
    let lin = |x: &Array2<f64>, w: &Array2<f64>, b: &Array2<f64>| x.dot(&w.t()) + b.row(0);
    let ln = |x: &Array2<f64>, g: &Array2<f64>, b: &Array2<f64>| {
        let mut y = x.clone();
        for mut row in y.rows_mut() {
            let n = row.len() as f64;
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let rs = 1.0 / (var + CFG.layer_norm_eps as f64).sqrt();
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) * rs * g[[0, j]] + b[[0, j]];
            }
        }
        y
    };
    let gelu = |v: f64| 0.5 * v * (1.0 + libm_erf(v / 2f64.sqrt()));
    let d = CFG.hidden;
    let dh = d / CFG.heads;
    let mut out = Array2::zeros((x.nrows(), d));
    for w in offsets.windows(2) {
        let xt = x.slice(s![w[0]..w[1], ..]).mapv(|v| v as f64);
        let n = xt.nrows();
        let (q, k, v) = (
            lin(&xt, &p[0], &p[1]),
            lin(&xt, &p[2], &p[3]),
            lin(&xt, &p[4], &p[5]),
        );
        let mut att = Array2::<f64>::zeros((n, d));
        for h in 0..CFG.heads {
            let c = s![.., h * dh..(h + 1) * dh];
            let scores = q.slice(c).dot(&k.slice(c).t()) / (dh as f64).sqrt();
            for a in 0..n {
                let m = scores.row(a).fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let e: Vec<f64> = scores.row(a).iter().map(|&v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for b in 0..n {
                    for j in 0..dh {
                        att[[a, h * dh + j]] += e[b] / z * v[[b, h * dh + j]];
                    }
                }
            }
        }
        let h1 = ln(&(lin(&att, &p[6], &p[7]) + &xt), &p[8], &p[9]);
        let f = lin(&h1, &p[10], &p[11]).mapv(gelu);
        let y = ln(&(lin(&f, &p[12], &p[13]) + &h1), &p[14], &p[15]);
        out.slice_mut(s![w[0]..w[1], ..]).assign(&y);
    }
    out
}

/// erf in f64 (Abramowitz–Stegun 7.1.26 is too coarse; this is the series / continued
/// fraction split, accurate to ~1e-15).
fn libm_erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series.
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        for n in 1..80 {
            term *= -x2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // Continued fraction for erfc.
        let ax = x.abs();
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (ax + f);
        }
        let erfc = (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f);
        (1.0 - erfc).copysign(x)
    }
}

#[test]
fn forward_matches_a_naive_reference_of_bert() {
    let o = offsets_of(&[1, 4, 7]);
    let mut l = layer(3);
    let x = random(12, CFG.hidden, 4).mapv(|v| 3.0 * v);
    let want = reference(&l, &x, &o);
    let got = l.forward(x.view(), &o, true);
    let inf = l.forward_inference(x.view(), &o);
    let mut worst = 0.0f64;
    for ((&g, &i), &w) in got.iter().zip(&inf).zip(&want) {
        assert!(
            (g - i).abs() <= 1e-6,
            "training and inference forwards differ"
        );
        worst = worst.max((g as f64 - w).abs());
    }
    eprintln!("max |native − f64 reference| = {worst:.2e}");
    assert!(worst < 1e-5, "max difference {worst}");
}

#[test]
fn no_positions_and_texts_are_isolated() {
    // A BERT layer has no positional encodings: permuting a text's tokens permutes its output.
    let l = layer(9);
    let x = random(5, CFG.hidden, 10);
    let y = l.forward_inference(x.view(), &[0, 5]);
    let perm = [3usize, 0, 4, 1, 2];
    let xp = Array2::from_shape_fn(x.dim(), |(i, j)| x[[perm[i], j]]);
    let yp = l.forward_inference(xp.view(), &[0, 5]);
    for (i, &pi) in perm.iter().enumerate() {
        for j in 0..CFG.hidden {
            assert!((yp[[i, j]] - y[[pi, j]]).abs() < 1e-5);
        }
    }
    // Packed texts give what each text gives alone.
    let o = offsets_of(&[2, 1, 2]);
    let y = l.forward_inference(x.view(), &o);
    for w in o.windows(2) {
        let alone = l.forward_inference(x.slice(s![w[0]..w[1], ..]), &[0, w[1] - w[0]]);
        for (a, b) in alone.iter().zip(y.slice(s![w[0]..w[1], ..])) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn names_config_and_params_only_backward() {
    let mut l = layer(1);
    check_unique_names(l.params()).unwrap();
    let names: Vec<&str> = l.params().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "encoder.layer.0.attention.self.query.weight",
            "encoder.layer.0.attention.self.query.bias",
            "encoder.layer.0.attention.self.key.weight",
            "encoder.layer.0.attention.self.key.bias",
            "encoder.layer.0.attention.self.value.weight",
            "encoder.layer.0.attention.self.value.bias",
            "encoder.layer.0.attention.output.dense.weight",
            "encoder.layer.0.attention.output.dense.bias",
            "encoder.layer.0.attention.output.LayerNorm.weight",
            "encoder.layer.0.attention.output.LayerNorm.bias",
            "encoder.layer.0.intermediate.dense.weight",
            "encoder.layer.0.intermediate.dense.bias",
            "encoder.layer.0.output.dense.weight",
            "encoder.layer.0.output.dense.bias",
            "encoder.layer.0.output.LayerNorm.weight",
            "encoder.layer.0.output.LayerNorm.bias",
        ]
    );
    assert_eq!(l.config(), CFG);
    assert_eq!(l.norms()[0].eps(), BERT_LAYER_NORM_EPS);
    assert_eq!(l.ffn_layers()[0].out_features(), CFG.intermediate);
    // Parameters-only backward accumulates the same parameter gradients.
    let o = offsets_of(&[2, 3]);
    let x = random(5, CFG.hidden, 2);
    let g = random(5, CFG.hidden, 3);
    let mut m = l.clone();
    l.forward(x.view(), &o, true);
    l.backward(g.view());
    m.forward(x.view(), &o, true);
    m.backward_params_only(g.view());
    for (a, b) in l.params().iter().zip(m.params()) {
        assert_eq!(a.grad, b.grad, "{}", a.name);
    }
    assert!(BertLayer::new(
        &BertConfig { heads: 3, ..CFG },
        &mut ChaCha8Rng::seed_from_u64(0)
    )
    .is_err());
    assert!(BertLayer::new(
        &BertConfig {
            layer_norm_eps: f32::NAN,
            ..CFG
        },
        &mut ChaCha8Rng::seed_from_u64(0)
    )
    .is_err());
}
