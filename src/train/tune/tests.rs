//! Tests of [`Tuning`]: the gradient that flows from the heads' input through the L2
//! normalization, the mean pooling and the trainable layers passes central-difference checks
//! (with and without normalization, with every layer or only the top one training), and the
//! progressive schedule freezes what it says.

use ndarray::Array2;

use super::*;
use crate::nn::bert::tests::random_layer;
use crate::nn::bert::{BertConfig, BERT_LAYER_NORM_EPS};
use crate::nn::gradcheck::{compare, random, Grads, Tol};
use crate::nn::optim::zero_grad;
use crate::train::config::LayerUnfreeze;

const CFG: BertConfig = BertConfig {
    hidden: 8,
    heads: 2,
    intermediate: 12,
    layer_norm_eps: BERT_LAYER_NORM_EPS,
};

/// Steps of the central differences (as in `nn::bert`'s checks: the f32 forward drowns
/// smaller ones in rounding noise).
const TOL: Tol = Tol {
    eps: 1e-2,
    rtol: 2e-2,
    atol: 2e-3,
};

/// Two layers with every parameter random.
fn top(normalize: bool) -> BackboneTop {
    let layers = (0..2)
        .map(|i| random_layer(&CFG, i, &format!("encoder.layer.{i}")))
        .collect();
    BackboneTop { layers, normalize }
}

/// Hidden states of texts of `lengths` tokens.
fn hidden(lengths: &[usize]) -> TokenSeqs {
    let mut seqs = TokenSeqs::new(CFG.hidden);
    for (i, &n) in lengths.iter().enumerate() {
        seqs.push(random(n, CFG.hidden, 10 + i as u64).view());
    }
    seqs
}

fn config(unfreeze: LayerUnfreeze) -> BackboneConfig {
    BackboneConfig {
        trainable_layers: 2,
        unfreeze,
        heads_only_epochs: 1,
        epochs_per_layer: 1,
        ..BackboneConfig::default()
    }
}

/// Σ r ⊙ embeddings of the rows `idx`.
fn objective(t: &mut Tuning<'_>, idx: &[usize], r: &Array2<f32>) -> f64 {
    let y = t.forward(idx);
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Analytic and central-difference gradients of every parameter of the trainable layers.
fn grads(t: &mut Tuning<'_>, idx: &[usize]) -> (Grads, Grads) {
    let r = random(idx.len(), CFG.hidden, 0x5eed);
    zero_grad(t.params_mut());
    t.forward(idx);
    t.backward(r.view());
    let trainable = |t: &Tuning<'_>| -> Vec<usize> {
        (0..t.params().len())
            .filter(|&i| t.params()[i].trainable)
            .collect()
    };
    let which = trainable(t);
    let analytic = Grads {
        input: None,
        params: which
            .iter()
            .map(|&i| (t.params()[i].name.clone(), t.params()[i].grad.clone()))
            .collect(),
    };
    let h = TOL.eps;
    let mut params = Vec::new();
    for &pi in &which {
        let (name, mut g) = {
            let p = &t.params()[pi];
            (p.name.clone(), p.value.mapv(|_| 0.0f32))
        };
        for k in 0..g.len() {
            let at = |t: &mut Tuning<'_>, v: f32| {
                t.params_mut()[pi].value.as_slice_mut().unwrap()[k] = v;
            };
            let orig = t.params()[pi].value.as_slice().unwrap()[k];
            at(t, orig + h);
            let fp = objective(t, idx, &r);
            at(t, orig - h);
            let fm = objective(t, idx, &r);
            at(t, orig);
            g.as_slice_mut().unwrap()[k] = ((fp - fm) / (2.0 * h as f64)) as f32;
        }
        params.push((name, g));
    }
    (
        analytic,
        Grads {
            input: None,
            params,
        },
    )
}

#[test]
fn gradients_through_normalization_pooling_and_layers_match_finite_differences() {
    let seqs = hidden(&[1, 4, 3, 2]);
    for normalize in [true, false] {
        let mut top = top(normalize);
        let cfg = config(LayerUnfreeze::Partial);
        let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10).unwrap();
        assert_eq!(t.active(), 2);
        // A batch in another order than the data, with a one-token text.
        let (a, n) = grads(&mut t, &[2, 0, 3]);
        assert_eq!(a.params.len(), 32);
        match compare(&a, &n, TOL) {
            Ok(worst) => eprintln!("normalize {normalize}: worst {worst:.3} of the tolerance"),
            Err(e) => panic!("normalize {normalize}: {e}"),
        }
    }
}

#[test]
fn progressive_unfreezing_trains_the_top_layer_first_and_freezes_the_others() {
    let seqs = hidden(&[3, 2, 5]);
    let mut top = top(true);
    let cfg = config(LayerUnfreeze::Progressive);
    let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10).unwrap();
    // Epoch 0: heads only.
    assert_eq!(t.active(), 0);
    assert!(t.params().iter().all(|p| !p.trainable));
    // Epoch 1: the top layer; its gradient still checks out with the bottom one frozen.
    assert!(t.set_epoch(1));
    assert_eq!(t.active(), 1);
    let (a, n) = grads(&mut t, &[0, 1, 2]);
    assert!(a
        .params
        .iter()
        .all(|(name, _)| name.starts_with("encoder.layer.1.")));
    compare(&a, &n, TOL).unwrap();
    assert!(t
        .params()
        .iter()
        .take(16)
        .all(|p| p.grad.iter().all(|&g| g == 0.0)));
    // Epoch 2 on: both.
    assert!(t.set_epoch(2));
    assert!(!t.set_epoch(5));
    assert_eq!(t.active(), 2);
    t.finish();
    assert!(top.params().iter().all(|p| p.trainable));
}

#[test]
fn embeddings_in_chunks_match_the_training_forward() {
    // More texts than one inference chunk: `embed` and `forward` agree row for row.
    let lengths: Vec<usize> = (0..CHUNK + 7).map(|i| 1 + i % 5).collect();
    let seqs = hidden(&lengths);
    let mut top = top(true);
    let want = top.embed(&seqs);
    let cfg = config(LayerUnfreeze::Partial);
    let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10).unwrap();
    let idx: Vec<usize> = (0..seqs.len()).collect();
    let got = t.forward(&idx);
    for (a, b) in got.iter().zip(want.iter()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    for row in got.rows() {
        assert!((row.dot(&row).sqrt() - 1.0).abs() < 1e-5);
    }
}
