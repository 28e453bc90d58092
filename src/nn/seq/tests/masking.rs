//! Masking.

use super::*;

/// Appending tokens to text 1 must leave texts 0 and 2 unchanged.
fn check_appending_isolates<L: Packed>(l: &L, d: usize, per_token: bool) {
    let lengths = [3usize, 2, 5];
    let grown = [3usize, 6, 5];
    let x = random(10, d, 30);
    let extra = random(4, d, 31);
    // The grown batch: same texts 0 and 2, text 1 with 4 more tokens at its end.
    let mut xg = Array2::zeros((14, d));
    xg.slice_mut(s![..5, ..]).assign(&x.slice(s![..5, ..]));
    xg.slice_mut(s![5..9, ..]).assign(&extra);
    xg.slice_mut(s![9.., ..]).assign(&x.slice(s![5.., ..]));
    let (o, og) = (offsets_of(&lengths), offsets_of(&grown));
    let a = l.inf(x.view(), &o);
    let b = l.inf(xg.view(), &og);
    let rows = |text: usize, offs: &[usize]| {
        if per_token {
            (offs[text], offs[text + 1])
        } else {
            (text, text + 1)
        }
    };
    for text in [0, 2] {
        let (a0, a1) = rows(text, &o);
        let (b0, b1) = rows(text, &og);
        assert_close_arrays(
            &a.slice(s![a0..a1, ..]).to_owned(),
            &b.slice(s![b0..b1, ..]).to_owned(),
            1e-5,
            &format!("text {text}"),
        );
    }
    let (a0, a1) = rows(1, &o);
    let (b0, b1) = rows(1, &og);
    if !per_token {
        assert_ne!(
            a.slice(s![a0..a1, ..]),
            b.slice(s![b0..b1, ..]),
            "text 1 changed"
        );
    } else {
        assert_eq!(b1 - b0, a1 - a0 + 4);
    }
}

#[test]
fn texts_never_see_each_other() {
    let d = 8;
    check_appending_isolates(&AttentionPool::new(d, 2, &mut rng(1)).unwrap(), d, false);
    check_appending_isolates(
        &MultiConv::new(d, &[1, 3, 5], 4, &mut rng(2)).unwrap(),
        d,
        false,
    );
    check_appending_isolates(
        &EncoderLayer::new(d, 2, 16, 0.1, &mut rng(3)).unwrap(),
        d,
        true,
    );
    let cfg = SequenceConfig {
        transformer: true,
        transformer_heads: 2,
        conv_channels: 4,
        ..Default::default()
    };
    check_appending_isolates(
        &SequenceEncoder::new(d, &cfg, &mut rng(4)).unwrap(),
        d,
        false,
    );
}

#[test]
fn batch_equals_each_text_alone() {
    // Windows never cross text boundaries (zero padding at each text's ends) and positions
    // restart in every text: each text alone gives its row of the batch.
    let d = 6;
    let lengths = [1usize, 4, 7, 2];
    let o = offsets_of(&lengths);
    let x = random(14, d, 40);
    let cfg = SequenceConfig {
        attention_queries: 2,
        conv_kernels: vec![3, 5, 7],
        conv_channels: 5,
        transformer: true,
        transformer_heads: 3,
        transformer_ffn: 12,
        dropout: 0.1,
    };
    let enc = SequenceEncoder::new(d, &cfg, &mut rng(5)).unwrap();
    let conv = MultiConv::new(d, &[1, 3, 5, 7], 5, &mut rng(6)).unwrap();
    let batch = enc.forward_inference(x.view(), &o);
    let conv_batch = conv.forward_inference(x.view(), &o);
    for (i, w) in o.windows(2).enumerate() {
        let xi = x.slice(s![w[0]..w[1], ..]);
        let alone = enc.forward_inference(xi, &[0, w[1] - w[0]]);
        assert_close_arrays(
            &alone,
            &batch.slice(s![i..i + 1, ..]).to_owned(),
            1e-5,
            &format!("encoder, text {i}"),
        );
        let alone = conv.forward_inference(xi, &[0, w[1] - w[0]]);
        assert_close_arrays(
            &alone,
            &conv_batch.slice(s![i..i + 1, ..]).to_owned(),
            1e-5,
            &format!("conv, text {i}"),
        );
    }
    // And the zero padding is real padding: a 1-token text through a kernel-3 conv equals the
    // centre tap alone.
    let mut c3 = MultiConv::new(d, &[3], 2, &mut rng(7)).unwrap();
    let x1 = random(1, d, 41);
    let y = c3.forward(x1.view(), &[0, 1], false);
    let w = c3.params()[0].value.clone();
    for c in 0..2 {
        let z: f32 = (0..d).map(|e| w[[c, e, 1]] * x1[[0, e]]).sum();
        assert!((y[[0, c]] - crate::nn::activation::gelu(z)).abs() < 1e-6);
    }
}
