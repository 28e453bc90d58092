//! Tests of [`Tuning`]: the gradient that flows from the heads' input through the L2
//! normalization, the mean (or [CLS]) pooling and the trainable layers passes central-difference checks
//! (with and without normalization, with every layer or only the top one training), and the
//! progressive schedule freezes what it says.

use ndarray::Array2;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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

/// Two layers with every parameter random, mean-pooled.
fn top(normalize: bool) -> BackboneTop {
    top_pooled(normalize, Pooling::Mean)
}

/// Two layers with every parameter random, pooled by `pooling`.
fn top_pooled(normalize: bool, pooling: Pooling) -> BackboneTop {
    let layers = (0..2)
        .map(|i| random_layer(&CFG, i, &format!("encoder.layer.{i}")))
        .collect();
    BackboneTop {
        layers,
        normalize,
        pooling,
    }
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

/// Σ r ⊙ embeddings of the rows `idx`, plus Σ q ⊙ token vectors when the tuning returns
/// them (`q` drawn from the token count).
fn objective(t: &mut Tuning<'_>, idx: &[usize], r: &Array2<f32>) -> f64 {
    let out = t.forward_output(idx);
    let dot = |a: &Array2<f32>, b: &Array2<f32>| -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    };
    let mut f = dot(&out.emb, r);
    if let Some(k) = &out.tokens {
        f += dot(&k.tokens, &token_weights(k.tokens.nrows()));
    }
    f
}

/// The weights of the token vectors in [`objective`].
fn token_weights(rows: usize) -> Array2<f32> {
    random(rows, CFG.hidden, 0xbeef)
}

/// Analytic and central-difference gradients of every parameter of the trainable layers.
fn grads(t: &mut Tuning<'_>, idx: &[usize]) -> (Grads, Grads) {
    let r = random(idx.len(), CFG.hidden, 0x5eed);
    zero_grad(t.params_mut());
    let out = t.forward_output(idx);
    let q = out.tokens.map(|k| token_weights(k.tokens.nrows()));
    t.backward_output(r.view(), q.as_ref().map(|q| q.view()));
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
    for (normalize, pooling) in [
        (true, Pooling::Mean),
        (false, Pooling::Mean),
        (true, Pooling::Cls),
    ] {
        let mut top = top_pooled(normalize, pooling);
        let cfg = config(LayerUnfreeze::Partial);
        let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 0).unwrap();
        assert_eq!(t.active(), 2);
        // A batch in another order than the data, with a one-token text.
        let (a, n) = grads(&mut t, &[2, 0, 3]);
        assert_eq!(a.params.len(), 32);
        match compare(&a, &n, TOL) {
            Ok(worst) => eprintln!("{normalize} {pooling:?}: worst {worst:.3} of the tolerance"),
            Err(e) => panic!("normalize {normalize}, {pooling:?}: {e}"),
        }
    }
}

#[test]
fn gradients_from_the_token_vectors_sequence_heads_read_match_finite_differences() {
    // Sequence heads read the top layer's tokens as well as the pooled embedding: both
    // gradients flow into the layers, whole and in token-bounded chunks.
    let seqs = hidden(&[1, 4, 3, 2]);
    let idx = [2, 0, 3, 1];
    for max in [usize::MAX, 5] {
        let mut top = top(true);
        let cfg = config(LayerUnfreeze::Partial);
        let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 0).unwrap();
        t.set_token_output(true);
        t.set_max_tokens(max);
        let out = t.forward_output(&idx);
        let k = out.tokens.expect("token vectors");
        // The batch's texts in its order, each as the inference pass computes it.
        assert_eq!(k.offsets, vec![0, 3, 4, 6, 10]);
        let want = t.top.outputs(&seqs, true).1.unwrap();
        for (r, &i) in idx.iter().enumerate() {
            let got = k
                .tokens
                .slice(ndarray::s![k.offsets[r]..k.offsets[r + 1], ..]);
            for (a, b) in got.iter().zip(want.text(i)) {
                assert!(
                    (a - b.to_f32()).abs() <= 2e-3 * (1.0 + a.abs()),
                    "{a} vs {b}"
                );
            }
        }
        let (a, n) = grads(&mut t, &idx);
        match compare(&a, &n, TOL) {
            Ok(worst) => eprintln!("max tokens {max}: worst {worst:.3} of the tolerance"),
            Err(e) => panic!("max tokens {max}: {e}"),
        }
    }
}

#[test]
fn progressive_unfreezing_trains_the_top_layer_first_and_freezes_the_others() {
    let seqs = hidden(&[3, 2, 5]);
    let mut top = top(true);
    let cfg = config(LayerUnfreeze::Progressive);
    let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 0).unwrap();
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
    let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 0).unwrap();
    let idx: Vec<usize> = (0..seqs.len()).collect();
    let got = t.forward(&idx);
    for (a, b) in got.iter().zip(want.iter()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    for row in got.rows() {
        assert!((row.dot(&row).sqrt() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn contrastive_pair_gradients_match_finite_differences() {
    let seqs = hidden(&[2, 3, 1, 4]);
    for normalize in [true, false] {
        let mut top = top(normalize);
        let cfg = config(LayerUnfreeze::Partial);
        let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 0).unwrap();
        let pairs = [(0, 1, 1.0), (2, 3, 0.0), (1, 3, 0.0)];
        let n = pairs.len() as f64;
        let loss = |t: &mut Tuning<'_>| -> f64 {
            let idx: Vec<usize> = pairs
                .iter()
                .map(|p| p.0)
                .chain(pairs.iter().map(|p| p.1))
                .collect();
            let e = t.forward(&idx);
            let b = pairs.len();
            pairs
                .iter()
                .enumerate()
                .map(|(r, &(_, _, target))| {
                    let (a, o) = (e.row(r), e.row(b + r));
                    let c = a.dot(&o) as f64 / (a.dot(&a) as f64 * o.dot(&o) as f64).sqrt();
                    (c - target as f64).powi(2) / n
                })
                .sum()
        };
        zero_grad(t.params_mut());
        t.pair_grads(&pairs);
        let h = TOL.eps;
        let mut analytic = Vec::new();
        let mut numeric = Vec::new();
        // Every parameter of the top layer's attention output and LayerNorms, and a few others.
        for pi in (0..t.params().len()).step_by(3) {
            let len = t.params()[pi].value.len();
            let name = t.params()[pi].name.clone();
            let mut g = t.params()[pi].value.mapv(|_| 0.0f32);
            for k in (0..len).step_by(7) {
                let orig = t.params()[pi].value.as_slice().unwrap()[k];
                t.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig + h;
                let fp = loss(&mut t);
                t.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig - h;
                let fm = loss(&mut t);
                t.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig;
                g.as_slice_mut().unwrap()[k] = ((fp - fm) / (2.0 * h as f64)) as f32;
            }
            let mut a = t.params()[pi].grad.clone();
            for (k, v) in a.iter_mut().enumerate() {
                if k % 7 != 0 {
                    *v = 0.0;
                }
            }
            analytic.push((name.clone(), a));
            numeric.push((name, g));
        }
        let a = Grads {
            input: None,
            params: analytic,
        };
        let nm = Grads {
            input: None,
            params: numeric,
        };
        match compare(&a, &nm, TOL) {
            Ok(worst) => eprintln!("normalize {normalize}: worst {worst:.3} of the tolerance"),
            Err(e) => panic!("normalize {normalize}: {e}"),
        }
    }
}

#[test]
fn pairs_alternate_same_and_other_class_and_are_seeded() {
    let labels = [0, 0, 0, 1, 1, 2];
    let draw = |seed| draw_pairs(&labels, 4, &mut ChaCha8Rng::seed_from_u64(seed));
    let pairs = draw(1);
    assert_eq!(pairs.len(), labels.len() * 4);
    for &(i, j, target) in &pairs {
        assert_ne!(i, j);
        assert_eq!(target == 1.0, labels[i] == labels[j], "{i} {j} {target}");
    }
    // Class 2 has one example: its pairs are all with other classes.
    assert!(pairs.iter().filter(|p| p.0 == 5).all(|p| p.2 == 0.0));
    let same = pairs.iter().filter(|p| p.2 == 1.0).count();
    assert_eq!(
        same,
        5 * 2,
        "half of the pairs of examples with a classmate"
    );
    assert_eq!(draw(1), pairs);
    assert_ne!(draw(2), pairs);
    // One class only: every pair is same-class; one example alone: no pair at all.
    assert!(draw_pairs(&[3, 3], 2, &mut ChaCha8Rng::seed_from_u64(0))
        .iter()
        .all(|p| p.2 == 1.0));
    assert!(draw_pairs(&[3], 2, &mut ChaCha8Rng::seed_from_u64(0)).is_empty());
}

#[test]
fn dropout_masks_follow_the_seed_and_stop_with_training() {
    let seqs = hidden(&[3, 2, 5]);
    let cfg = BackboneConfig {
        dropout: 0.3,
        ..config(LayerUnfreeze::Partial)
    };
    let idx = [0, 1, 2];
    let run = |seed: u64| {
        let mut top = top(true);
        let plain = top.embed(&seqs);
        let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, seed).unwrap();
        let a = t.forward(&idx);
        let b = t.forward(&idx);
        // Inference is never dropped.
        assert_eq!(t.outputs().0 .0, plain);
        t.finish();
        // After training the layers run without dropout even in a training forward.
        let mut c = Vec::new();
        for layer in &mut top.layers {
            c.push(layer.forward(random(2, CFG.hidden, 3).view(), &[0, 2], true));
        }
        let d: Vec<_> = top
            .layers
            .iter()
            .map(|l| l.forward_inference(random(2, CFG.hidden, 3).view(), &[0, 2]))
            .collect();
        assert_eq!(c, d);
        (a, b, plain)
    };
    let (a, b, plain) = run(7);
    assert_ne!(a, b, "a new mask every forward");
    assert_ne!(a, plain, "training forwards drop");
    let (a2, b2, _) = run(7);
    assert_eq!((a2, b2), (a.clone(), b), "the same seed, the same masks");
    let (a3, _, _) = run(8);
    assert_ne!(a3, a);
    let bad = BackboneConfig {
        dropout: 1.0,
        ..cfg.clone()
    };
    let mut top = top(true);
    assert!(Tuning::new(&mut top, &seqs, &seqs, &bad, 10, 0).is_err());
}

#[test]
fn batches_over_the_token_budget_run_in_chunks_with_the_same_result() {
    let seqs = hidden(&[3, 4, 2, 5, 1, 6]);
    let idx = [4, 0, 2, 5, 3, 1];
    assert_eq!(
        token_chunks(&seqs, &idx, 7),
        vec![(0, 3), (3, 4), (4, 5), (5, 6)]
    );
    assert_eq!(
        token_chunks(&seqs, &idx, 1),
        (0..6).map(|i| (i, i + 1)).collect::<Vec<_>>()
    );
    assert_eq!(token_chunks(&seqs, &idx, 100), vec![(0, 6)]);
    let r = random(idx.len(), CFG.hidden, 0x5eed);
    for dropout in [0.0, 0.2] {
        let cfg = BackboneConfig {
            dropout,
            ..config(LayerUnfreeze::Partial)
        };
        let run = |max: usize| {
            let mut top = top(true);
            let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 3).unwrap();
            t.set_max_tokens(max);
            zero_grad(t.params_mut());
            let y = t.forward(&idx);
            t.backward(r.view());
            let g: Vec<_> = t.params().iter().map(|p| p.grad.clone()).collect();
            (y, g)
        };
        let (y, g) = run(usize::MAX);
        let (yc, gc) = run(7);
        // Chunks change nothing but the memory: the chunks are the batch's rows in order, so
        // even the dropout masks come out the same, and the recomputed backward replays them.
        for (a, b) in y.iter().zip(&yc) {
            assert!((a - b).abs() < 1e-5, "dropout {dropout}: {a} vs {b}");
        }
        for (a, b) in g.iter().zip(&gc) {
            let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (u, v) in a.iter().zip(b) {
                assert!(
                    (u - v).abs() <= 1e-4 * scale,
                    "dropout {dropout}: {u} vs {v}"
                );
            }
        }
        if dropout > 0.0 {
            let (plain, _) = {
                let cfg = config(LayerUnfreeze::Partial);
                let mut top = top(true);
                let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 3).unwrap();
                (t.forward(&idx), ())
            };
            assert_ne!(plain, yc, "dropout was applied");
        }
    }
    // The chunked gradient passes the central-difference check too (no dropout: masks would
    // change between the difference's forwards).
    let mut top = top(true);
    let cfg = config(LayerUnfreeze::Partial);
    let mut t = Tuning::new(&mut top, &seqs, &seqs, &cfg, 10, 0).unwrap();
    t.set_max_tokens(5);
    let (a, n) = grads(&mut t, &[2, 0, 3]);
    compare(&a, &n, TOL).unwrap();
}
