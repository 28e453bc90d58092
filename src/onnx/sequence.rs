//! A sequence encoder ([`SequenceEncoder`]) written as ONNX nodes, over a PADDED batch.
//!
//! Natively the sequence layers take packed ragged batches (see [`crate::nn::seq`]); ONNX
//! tensors are rectangular, so the graph reads `tokens` `[batch, seq, dim]` right-padded with
//! `mask` `[batch, seq]` (nonzero = a real token, real tokens first) and makes sure padding
//! never reaches a result:
//!
//! * the tokens are zeroed at padded positions (whatever the caller put there), and so is the
//!   transformer's output, so the convolution sees exactly the zeros its "same padding inside
//!   each text" implies past a text's last token;
//! * attention scores (the transformer's keys, the pooling's tokens) are −∞ at padded
//!   positions before the softmax, so padding gets weight exactly 0;
//! * the convolution's max pooling sees −∞ at padded positions.
//!
//! Positions restart in every text natively; with real tokens first, a token's position is its
//! index along `seq`. Every text needs at least one token (as natively): a text with none gets
//! NaN.

use super::heads::{gelu, layer_norm, linear_last_axis};
use super::proto::tensor_proto::DataType;
use super::write::{attr_int, attr_ints, GraphBuilder};
use crate::error::{Error, Result};
use crate::nn::seq::transformer::position_divisor;
use crate::nn::seq::{AttentionPool, EncoderLayer, MultiConv, SequenceEncoder};

/// Appends the nodes of `enc`'s inference pass ([`SequenceEncoder::forward_inference`]) over
/// the padded batch `tokens` (float32 `[batch, seq, dim]`) and `mask` (int64 `[batch, seq]`);
/// returns the name of its output, float32 `[batch, out_dim]` (`[attention ; conv]`, as
/// natively; dropout is the identity at inference).
pub fn append_sequence(
    b: &mut GraphBuilder,
    enc: &SequenceEncoder,
    tokens: &str,
    mask: &str,
) -> Result<String> {
    let hint = if enc.name().is_empty() {
        "sequence"
    } else {
        enc.name()
    };
    let m = Masks::new(b, mask, hint);
    let x = m.zero_padding(b, tokens, hint);
    let x = match enc.transformer() {
        Some(t) => {
            let h = transformer(b, t, &x, &m)?;
            // Padded rows of the output are finite garbage; the conv must see zeros there.
            m.zero_padding(b, &h, t.name())
        }
        None => x,
    };
    let mut parts = Vec::new();
    if let Some(a) = enc.attention() {
        parts.push(attention_pool(b, a, &x, &m));
    }
    if let Some(c) = enc.conv() {
        parts.push(conv_pool(b, c, &x, &m)?);
    }
    match parts.len() {
        0 => Err(Error::format("a sequence encoder without a pooling")),
        1 => Ok(parts.remove(0)),
        _ => {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            Ok(b.node("Concat", &refs, vec![attr_int("axis", 1)], hint))
        }
    }
}

/// The mask in the forms the layers need, made once.
struct Masks {
    /// `[batch, seq, 1]` bool: where a token is real.
    tokens: String,
    /// `[batch, 1, 1, seq]` bool: which keys the transformer's attention may read.
    keys: String,
    /// `[batch, 1, seq]` bool: which conv outputs the max pooling may read.
    channels: String,
    /// 0 and −∞ as f32 scalars.
    zero: String,
    neg_inf: String,
}

impl Masks {
    fn new(b: &mut GraphBuilder, mask: &str, hint: &str) -> Masks {
        let h = format!("{hint}.mask");
        // Any nonzero counts as a real token, as a bool.
        let valid = b.node(
            "Cast",
            &[mask],
            vec![attr_int("to", DataType::Bool as i64)],
            &h,
        );
        let mut unsqueeze = |axes: &[i64]| {
            let a = b.ints(&format!("{h}.axes"), axes);
            b.node("Unsqueeze", &[&valid, &a], vec![], &h)
        };
        let tokens = unsqueeze(&[2]);
        let keys = unsqueeze(&[1, 2]);
        let channels = unsqueeze(&[1]);
        Masks {
            tokens,
            keys,
            channels,
            zero: b.scalar(&format!("{h}.zero"), 0.0),
            neg_inf: b.scalar(&format!("{h}.neg_inf"), f32::NEG_INFINITY),
        }
    }

    /// `x` `[batch, seq, d]` with padded positions set to 0 (a Where, not a product, so that
    /// NaN or ∞ in padding cannot survive).
    fn zero_padding(&self, b: &mut GraphBuilder, x: &str, hint: &str) -> String {
        b.node("Where", &[&self.tokens, x, &self.zero], vec![], hint)
    }
}

/// [`AttentionPool`]: per query, a softmax over each text's real tokens of `W·x + b`, and the
/// weighted sum of the tokens; `[batch, h·d]` with query q in columns `q·d..(q+1)·d`.
fn attention_pool(b: &mut GraphBuilder, a: &AttentionPool, x: &str, m: &Masks) -> String {
    let hint = a.name();
    let wt = b.weight(
        &format!("{}.t", a.score_weight().name),
        a.score_weight().value2().t().into_dyn(),
    );
    let bias = b.weight(&a.score_bias().name, a.score_bias().value.view());
    let s = b.node("MatMul", &[x, &wt], vec![], hint);
    let s = b.node("Add", &[&s, &bias], vec![], hint);
    // [batch, seq, h]: the softmax runs over seq, padding excluded.
    let s = b.node("Where", &[&m.tokens, &s, &m.neg_inf], vec![], hint);
    let alpha = b.node("Softmax", &[&s], vec![attr_int("axis", 1)], hint);
    let alpha = b.node(
        "Transpose",
        &[&alpha],
        vec![attr_ints("perm", &[0, 2, 1])],
        hint,
    );
    let pooled = b.node("MatMul", &[&alpha, x], vec![], hint);
    let shape = b.ints(&format!("{hint}.shape"), &[0, -1]);
    b.node("Reshape", &[&pooled, &shape], vec![], hint)
}

/// [`MultiConv`]: per kernel, a Conv1d with "same" zero padding over the (zero-padded) tokens,
/// GELU, and the maximum over each text's real tokens; `[batch, C·kernels]`, kernel j in
/// columns `j·C..(j+1)·C`.
fn conv_pool(b: &mut GraphBuilder, c: &MultiConv, x: &str, m: &Masks) -> Result<String> {
    let hint = c.name();
    // Conv reads [batch, channels, length].
    let xt = b.node("Transpose", &[x], vec![attr_ints("perm", &[0, 2, 1])], hint);
    let axes = b.ints(&format!("{hint}.axes"), &[2]);
    let mut outs = Vec::new();
    for ((w, bias), &k) in c
        .kernel_weights()
        .iter()
        .zip(c.kernel_biases())
        .zip(c.kernels())
    {
        if k % 2 == 0 {
            return Err(Error::format(format!("conv kernel {k} is not odd")));
        }
        let p = (k / 2) as i64;
        let wn = b.weight(&w.name, w.value.view());
        let bn = b.weight(&bias.name, bias.value.view());
        // PyTorch's Conv1d and ONNX's Conv are both cross-correlations over [C, d, k]
        // weights, so out[t] = b + Σ_o W[:, :, o]·x[t + o − k/2] in both.
        let y = b.node(
            "Conv",
            &[&xt, &wn, &bn],
            vec![
                attr_ints("kernel_shape", &[k as i64]),
                attr_ints("pads", &[p, p]),
            ],
            hint,
        );
        let g = gelu(b, &y, &format!("{hint}.gelu"));
        let g = b.node("Where", &[&m.channels, &g, &m.neg_inf], vec![], hint);
        outs.push(b.node(
            "ReduceMax",
            &[&g, &axes],
            vec![attr_int("keepdims", 0)],
            hint,
        ));
    }
    Ok(match outs.len() {
        1 => outs.remove(0),
        _ => {
            let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
            b.node("Concat", &refs, vec![attr_int("axis", 1)], hint)
        }
    })
}

/// [`EncoderLayer`]: sinusoidal positions, multi-head self-attention over each text's real
/// tokens, then post-LN residual blocks; `[batch, seq, d]` (padded rows are finite garbage).
fn transformer(b: &mut GraphBuilder, t: &EncoderLayer, x: &str, m: &Masks) -> Result<String> {
    let hint = t.name();
    let (d, heads) = (t.in_dim(), t.heads());
    if heads == 0 || d % heads != 0 {
        return Err(Error::format(format!(
            "transformer with {heads} heads over width {d}"
        )));
    }
    let dh = d / heads;
    let x0 = {
        let pe = positions(b, x, d, &format!("{hint}.positions"));
        b.node("Add", &[x, &pe], vec![], hint)
    };
    let [q, k, v, o] = t.projections();
    let split = b.ints(&format!("{hint}.split"), &[0, 0, heads as i64, dh as i64]);
    // [batch, seq, d] → [batch, heads, seq, dh] (keys: [batch, heads, dh, seq]).
    let mut project = |l, perm: &[i64]| {
        let y = linear_last_axis(b, l, &x0);
        let y = b.node("Reshape", &[&y, &split], vec![], hint);
        b.node("Transpose", &[&y], vec![attr_ints("perm", perm)], hint)
    };
    let qh = project(q, &[0, 2, 1, 3]);
    let kh = project(k, &[0, 2, 3, 1]);
    let vh = project(v, &[0, 2, 1, 3]);
    // Scores scaled after the dot product, by the same f32 1/√dh as natively.
    let scale = b.scalar(&format!("{hint}.scale"), 1.0 / (dh as f32).sqrt());
    let s = b.node("MatMul", &[&qh, &kh], vec![], hint);
    let s = b.node("Mul", &[&s, &scale], vec![], hint);
    let s = b.node("Where", &[&m.keys, &s, &m.neg_inf], vec![], hint);
    let p = b.node("Softmax", &[&s], vec![attr_int("axis", -1)], hint);
    let att = b.node("MatMul", &[&p, &vh], vec![], hint);
    let att = b.node(
        "Transpose",
        &[&att],
        vec![attr_ints("perm", &[0, 2, 1, 3])],
        hint,
    );
    let merge = b.ints(&format!("{hint}.merge"), &[0, 0, d as i64]);
    let att = b.node("Reshape", &[&att, &merge], vec![], hint);
    // Post-LN residual blocks; dropout is the identity at inference.
    let [norm1, norm2] = t.norms();
    let [ffn1, ffn2] = t.ffn_layers();
    let r1 = linear_last_axis(b, o, &att);
    let r1 = b.node("Add", &[&r1, &x0], vec![], hint);
    let h1 = layer_norm(b, norm1, &r1);
    let f = linear_last_axis(b, ffn1, &h1);
    let f = gelu(b, &f, &format!("{hint}.act"));
    let r2 = linear_last_axis(b, ffn2, &f);
    let r2 = b.node("Add", &[&r2, &h1], vec![], hint);
    Ok(layer_norm(b, norm2, &r2))
}

/// The sinusoidal encodings `[seq, d]` of positions `0..seq` (seq read from `x`'s shape),
/// computed in double precision and rounded to f32 as the native table is, so they are the
/// same values for any length.
fn positions(b: &mut GraphBuilder, x: &str, d: usize, hint: &str) -> String {
    let shape = b.node("Shape", &[x], vec![], hint);
    let one = b.scalar_i64(&format!("{hint}.axis"), 1);
    let len = b.node("Gather", &[&shape, &one], vec![attr_int("axis", 0)], hint);
    let start = b.scalar_i64(&format!("{hint}.start"), 0);
    let pos = b.node("Range", &[&start, &len, &one], vec![], hint);
    let pos = b.node(
        "Cast",
        &[&pos],
        vec![attr_int("to", DataType::Double as i64)],
        hint,
    );
    let axes = b.ints(&format!("{hint}.axes"), &[1]);
    let pos = b.node("Unsqueeze", &[&pos, &axes], vec![], hint);
    let div: Vec<f64> = (0..d).map(|j| position_divisor(j, d)).collect();
    let div = b.doubles(&format!("{hint}.divisor"), &div);
    let angle = b.node("Div", &[&pos, &div], vec![], hint);
    let to_f32 = |b: &mut GraphBuilder, v: &str| {
        b.node(
            "Cast",
            &[v],
            vec![attr_int("to", DataType::Float as i64)],
            hint,
        )
    };
    let sin = b.node("Sin", &[&angle], vec![], hint);
    let sin = to_f32(b, &sin);
    let cos = b.node("Cos", &[&angle], vec![], hint);
    let cos = to_f32(b, &cos);
    // Even features take the sine, odd ones the cosine.
    let even: Vec<i64> = (0..d).map(|j| i64::from(j % 2 == 0)).collect();
    let even = b.ints(&format!("{hint}.even"), &even);
    let even = b.node(
        "Cast",
        &[&even],
        vec![attr_int("to", DataType::Bool as i64)],
        hint,
    );
    b.node("Where", &[&even, &sin, &cos], vec![], hint)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, Array3};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::backbone::{build_session, Device, GraphSource};
    use crate::nn::seq::SequenceConfig;
    use crate::onnx::write::{self, Dim};

    /// Runs `enc`'s graph on texts of `lengths` with `fill` in every padded position (real
    /// tokens first) and returns the largest difference from the native packed pass.
    fn max_difference(enc: &SequenceEncoder, lengths: &[usize], fill: f32, seed: u64) -> f32 {
        let runtime = crate::runtime::runtime(None).expect("ONNX Runtime (scripts/setup.sh)");
        let d = enc.in_dim();
        let mut b = GraphBuilder::new("sequence");
        let batch = Dim::named("batch");
        let tokens = b.input(
            "tokens",
            DataType::Float,
            &[batch.clone(), Dim::named("seq"), Dim::Fixed(d as i64)],
        );
        let mask = b.input("mask", DataType::Int64, &[batch.clone(), Dim::named("seq")]);
        let out = append_sequence(&mut b, enc, &tokens, &mask).unwrap();
        b.output(
            &out,
            "pooled",
            DataType::Float,
            &[batch, Dim::Fixed(enc.out_dim() as i64)],
        );
        let bytes = write::encode(&write::model(b.into_graph(), &[]));

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let longest = lengths.iter().copied().max().unwrap();
        let total: usize = lengths.iter().sum();
        let packed = Array2::from_shape_fn((total, d), |_| rng.random_range(-1.0f32..1.0));
        let mut offsets = vec![0];
        let mut padded = Array3::from_elem((lengths.len(), longest, d), fill);
        let mut mask = Array2::<i64>::zeros((lengths.len(), longest));
        for (i, &len) in lengths.iter().enumerate() {
            let at = *offsets.last().unwrap();
            for t in 0..len {
                padded
                    .slice_mut(ndarray::s![i, t, ..])
                    .assign(&packed.row(at + t));
                mask[[i, t]] = 1;
            }
            offsets.push(at + len);
        }
        let native = enc.forward_inference(packed.view(), &offsets);

        let mut session =
            build_session(&runtime, GraphSource::Memory(&bytes), 1, Device::Cpu).unwrap();
        let inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = vec![
            (
                "tokens".into(),
                ort::value::Tensor::from_array(padded).unwrap().into(),
            ),
            (
                "mask".into(),
                ort::value::Tensor::from_array(mask).unwrap().into(),
            ),
        ];
        let outs = session.run(inputs).unwrap();
        let (shape, data) = outs["pooled"].try_extract_tensor::<f32>().unwrap();
        assert_eq!(shape.to_vec(), [lengths.len() as i64, enc.out_dim() as i64]);
        native
            .iter()
            .zip(data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    fn encoder(cfg: &SequenceConfig, d: usize, seed: u64) -> SequenceEncoder {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut enc = SequenceEncoder::new(d, cfg, &mut rng).unwrap().named("seq");
        // Nonzero biases and LayerNorm affines, so a graph that drops them fails.
        for p in enc.params_mut() {
            p.value
                .mapv_inplace(|v| v + 0.1 * rng.random_range(-1.0f32..1.0));
        }
        enc
    }

    #[test]
    fn every_part_matches_native_whatever_the_padding_holds() {
        let cfg = SequenceConfig {
            attention_queries: 2,
            conv_kernels: vec![1, 3, 5],
            conv_channels: 6,
            transformer: true,
            transformer_heads: 2,
            transformer_ffn: 20,
            dropout: 0.1,
        };
        let enc = encoder(&cfg, 8, 3);
        let lengths = [1, 4, 9, 2, 1, 7];
        // Garbage in the padding (NaN, huge values) must not reach any result.
        for fill in [0.0, f32::NAN, 1e30, -7.0] {
            let diff = max_difference(&enc, &lengths, fill, 5);
            assert!(diff <= 1e-5, "padding {fill}: max difference {diff}");
        }
    }

    #[test]
    fn positions_past_the_native_table_match() {
        // 300 tokens: past the 256 precomputed positions of the native layer.
        let cfg = SequenceConfig {
            attention_queries: 1,
            conv_kernels: vec![],
            transformer: true,
            transformer_heads: 1,
            transformer_ffn: 8,
            ..Default::default()
        };
        let enc = encoder(&cfg, 6, 4);
        let diff = max_difference(&enc, &[300, 3], 0.0, 6);
        assert!(diff <= 1e-5, "max difference {diff}");
    }

    #[test]
    fn each_pooling_alone_matches_native() {
        for (queries, kernels) in [(0, vec![3]), (0, vec![7, 1]), (3, vec![])] {
            let cfg = SequenceConfig {
                attention_queries: queries,
                conv_kernels: kernels.clone(),
                conv_channels: 5,
                ..Default::default()
            };
            let enc = encoder(&cfg, 10, 7);
            let diff = max_difference(&enc, &[5, 1, 12, 3], 1e6, 8);
            assert!(
                diff <= 1e-5,
                "{queries} queries, kernels {kernels:?}: {diff}"
            );
        }
    }
}
