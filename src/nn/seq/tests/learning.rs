//! Learning.

use super::*;

/// The order task: every text holds the two marker tokens A and B side by side, once, among
/// filler tokens; the label is 1 when A comes first. A text and its mirror (A and B swapped)
/// have the same multiset of tokens, so no order-blind pooling can do better than chance.
struct OrderTask {
    tokens: Array2<f32>,
    offsets: Vec<usize>,
    labels: Vec<usize>,
    /// Token rows of each text's mirror image, for the control check.
    mirror: Array2<f32>,
}

fn order_task(n: usize, d: usize, seed: u64) -> OrderTask {
    let vocab = random(10, d, 1234);
    let mut r = rng(seed);
    let (mut rows, mut mirror_rows, mut offsets, mut labels) = (vec![], vec![], vec![0], vec![]);
    for i in 0..n {
        let len = r.random_range(3..=8usize);
        let at = r.random_range(0..len - 1);
        let ab = i % 2 == 0;
        for p in 0..len {
            let (tok, mtok) = if p == at {
                if ab {
                    (0, 1)
                } else {
                    (1, 0)
                }
            } else if p == at + 1 {
                if ab {
                    (1, 0)
                } else {
                    (0, 1)
                }
            } else {
                let f = r.random_range(2..10usize);
                (f, f)
            };
            rows.push(tok);
            mirror_rows.push(mtok);
        }
        offsets.push(rows.len());
        labels.push(ab as usize);
    }
    OrderTask {
        tokens: vocab.select(Axis(0), &rows),
        offsets,
        labels,
        mirror: vocab.select(Axis(0), &mirror_rows),
    }
}

fn accuracy(z: &Array2<f32>, labels: &[usize]) -> f64 {
    let correct = z
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, &t)| (row[1] > row[0]) == (t == 1))
        .count();
    correct as f64 / labels.len() as f64
}

/// Trains encoder + linear head on the order task (full batch, AdamW); returns held-out
/// accuracy.
fn learn_order(cfg: &SequenceConfig, steps: usize, lr: f32) -> f64 {
    let d = 8;
    let train = order_task(96, d, 1);
    let test = order_task(96, d, 2);
    let mut r = rng(3);
    let mut enc = SequenceEncoder::new(d, cfg, &mut r).unwrap();
    let mut head = Linear::new(enc.out_dim(), 2, Init::XavierUniform, &mut r);
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        weight_decay: 0.0,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..steps {
        let y = enc.forward(train.tokens.view(), &train.offsets, true);
        let z = head.forward(y.view(), true);
        let (_, g) = softmax_cross_entropy(z.view(), &train.labels, &Default::default()).unwrap();
        let gy = head.backward(g.view());
        enc.backward_params_only(gy.view());
        let mut ps = enc.params_mut();
        ps.extend(head.params_mut());
        opt.step_clipped(&mut ps, Some(5.0));
    }
    let y = enc.forward_inference(test.tokens.view(), &test.offsets);
    accuracy(&head.forward_inference(y.view()), &test.labels)
}

#[test]
fn conv_learns_token_order() {
    let cfg = SequenceConfig {
        attention_queries: 0,
        conv_kernels: vec![3],
        conv_channels: 8,
        dropout: 0.0,
        ..Default::default()
    };
    let acc = learn_order(&cfg, 150, 0.02);
    assert!(acc > 0.95, "held-out accuracy {acc}");
}

#[test]
fn transformer_learns_token_order() {
    // Only the transformer sees order here: attention pooling and kernel-1 convolution are
    // blind to it.
    let cfg = SequenceConfig {
        attention_queries: 1,
        conv_kernels: vec![],
        transformer: true,
        transformer_heads: 2,
        transformer_ffn: 16,
        dropout: 0.0,
        ..Default::default()
    };
    let acc = learn_order(&cfg, 200, 0.01);
    assert!(acc > 0.9, "held-out accuracy {acc}");
}

#[test]
fn order_blind_pooling_cannot_tell_mirrors_apart() {
    // The control for the two tests above: without the transformer, attention pooling and a
    // kernel-1 convolution give a text and its mirror the same output (up to summation order).
    let task = order_task(20, 8, 4);
    let cfg = SequenceConfig {
        attention_queries: 2,
        conv_kernels: vec![1],
        conv_channels: 4,
        ..Default::default()
    };
    let enc = SequenceEncoder::new(8, &cfg, &mut rng(5)).unwrap();
    let a = enc.forward_inference(task.tokens.view(), &task.offsets);
    let b = enc.forward_inference(task.mirror.view(), &task.offsets);
    assert_close_arrays(&a, &b, 1e-5, "mirror");
    // With a kernel-3 convolution the mirrors differ.
    let cfg = SequenceConfig {
        conv_kernels: vec![3],
        ..cfg
    };
    let enc = SequenceEncoder::new(8, &cfg, &mut rng(5)).unwrap();
    let a = enc.forward_inference(task.tokens.view(), &task.offsets);
    let b = enc.forward_inference(task.mirror.view(), &task.offsets);
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
}
