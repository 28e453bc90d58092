//! Heads written as ONNX and run by ONNX Runtime agree with the native heads: every mode, MLP
//! shape and task kind, pooled and sequence heads (several sequence encoders, ragged texts), on
//! random weights and inputs, to 1e-5; models loaded with the ONNX heads engine predict what
//! the native ones do on real texts; and the written graph reads back through tandem's own ONNX
//! reader. Needs `scripts/setup.sh` (ONNX Runtime).

mod common;

use std::sync::Arc;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde_json::json;
use tandem::backbone::TokenSeqs;
use tandem::data::{TaskKind, TaskSpec};
use tandem::heads::{predict_arrays, Architecture, Heads, Mode, Network, Normalizer, TaskEntry};
use tandem::model::Model;
use tandem::nn::seq::SequenceConfig;
use tandem::nn::{ActivationKind, MlpConfig};
use tandem::onnx::heads::{heads_model, BinaryOutput};
use tandem::onnx::{write, OnnxHeads, OnnxModel};
use tandem::train::Trainer;
use tandem::{Device, HeadsEngine, Variant};

const TOL: f32 = 1e-5;

fn tasks() -> Vec<TaskEntry> {
    let t = |name: &str, kind, labels: &[&str], thresholds: Vec<f32>| TaskEntry {
        spec: TaskSpec {
            name: name.into(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        },
        thresholds,
    };
    vec![
        t("topic", TaskKind::Multiclass, &["a", "b", "c"], vec![]),
        t("spam", TaskKind::Binary, &["ham", "spam"], vec![0.4]),
        t("tags", TaskKind::Multilabel, &["x", "y"], vec![0.5, 0.5]),
        t("score", TaskKind::Regression, &[], vec![]),
    ]
}

/// Pooled architectures of every mode with hidden layers, LayerNorm, residual blocks, both
/// activations, and the linear head (no hidden layer).
fn architectures(emb_dim: usize, n_features: usize) -> Vec<Architecture> {
    let mlp = |hidden: Vec<usize>, act, layer_norm, residual| MlpConfig {
        hidden,
        activation: act,
        dropout: 0.1,
        layer_norm,
        residual,
    };
    let mut out = Vec::new();
    for mode in [
        Mode::TwoStage,
        Mode::Joint,
        Mode::EmbeddingOnly,
        Mode::MetadataOnly,
    ] {
        let uses_meta = mode != Mode::EmbeddingOnly;
        for (head, encoder) in [
            (
                mlp(vec![16], ActivationKind::Gelu, true, false),
                mlp(vec![8, 8], ActivationKind::Relu, false, true),
            ),
            (
                mlp(vec![], ActivationKind::Gelu, false, false),
                mlp(vec![6], ActivationKind::Gelu, true, false),
            ),
            (
                mlp(vec![12, 12], ActivationKind::Relu, true, true),
                mlp(vec![], ActivationKind::Gelu, false, false),
            ),
        ] {
            out.push(Architecture {
                mode,
                emb_dim: if mode == Mode::MetadataOnly {
                    0
                } else {
                    emb_dim
                },
                n_features: if uses_meta { n_features } else { 0 },
                encoder,
                code_dim: if uses_meta { 5 } else { 0 },
                head,
                outputs: vec![3, 1, 2, 1],
                target_scale: vec![(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (2.5, 0.7)],
                sequence: None,
            });
        }
    }
    out
}

fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..scale))
}

fn max_diff(a: &[Array2<f32>], b: &[Array2<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert_eq!(x.dim(), y.dim());
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max)
        })
        .fold(0.0, f32::max)
}

#[test]
fn onnx_heads_match_native_heads_for_every_pooled_architecture() {
    let runtime = tandem::runtime::runtime(None).expect("ONNX Runtime (scripts/setup.sh)");
    let n_raw = tandem::metadata::num_features();
    let emb_dim = 24;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (i, arch) in architectures(emb_dim, 7).into_iter().enumerate() {
        let mut net = Network::new(arch.clone(), &mut ChaCha8Rng::seed_from_u64(i as u64)).unwrap();
        // Random LayerNorm affines too, so the graph cannot pass on ones and zeros.
        for p in net.params_mut() {
            p.value.mapv_inplace(|v| v + 0.05 * ((v * 997.0).sin()));
        }
        let normalizer = (arch.n_features > 0).then(|| Normalizer {
            selected: (0..arch.n_features).map(|k| (k * 5 + 1) % n_raw).collect(),
            mean: (0..arch.n_features).map(|k| k as f32 * 0.3).collect(),
            std: (0..arch.n_features).map(|k| 0.5 + k as f32 * 0.1).collect(),
        });
        let heads = Heads {
            network: net,
            normalizer,
            tasks: tasks(),
            version: 0,
            onnx: None,
        };
        let n = 37;
        let emb = random(&mut rng, n, emb_dim, 1.0);
        // Raw features with a few extremes, so the z-score clip matters.
        let raw = random(&mut rng, n, n_raw, 20.0);
        let feats = match &heads.normalizer {
            Some(norm) => norm.transform(raw.view()),
            None => Array2::zeros((n, 0)),
        };
        let native = predict_arrays(&heads, emb.view(), feats.view(), None).unwrap();
        let onnx = OnnxHeads::from_heads(&heads, Arc::clone(&runtime), Device::Cpu).unwrap();
        let got = onnx.run(emb.view(), raw.view(), None).unwrap();
        let d = max_diff(&native, &got);
        assert!(
            d <= TOL,
            "architecture {i} ({:?}): max difference {d}",
            arch.mode
        );
        // Zero texts: empty outputs of the right widths.
        let none = onnx
            .run(
                Array2::zeros((0, emb_dim)).view(),
                Array2::zeros((0, n_raw)).view(),
                None,
            )
            .unwrap();
        assert_eq!(none[0].dim(), (0, 3));

        // The graph reads back through tandem's reader with its inputs and outputs listed.
        let bytes = write::encode(&heads_model(&heads, n_raw, BinaryOutput::Pair, &[]).unwrap());
        let model = OnnxModel {
            proto: tandem::onnx::read::parse(&bytes).unwrap(),
            dir: None,
        };
        let s = model.summary();
        let outs: Vec<&str> = s.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            outs,
            [
                "topic.probabilities",
                "spam.probabilities",
                "tags.probabilities",
                "score.value"
            ]
        );
        assert_eq!(s.outputs[1].dims, ["batch", "2"]);
        let inputs: Vec<&str> = s.inputs.iter().map(|o| o.name.as_str()).collect();
        match arch.mode {
            Mode::MetadataOnly => assert_eq!(inputs, ["metadata"]),
            Mode::EmbeddingOnly => assert_eq!(inputs, ["embedding"]),
            _ => assert_eq!(inputs, ["embedding", "metadata"]),
        }
    }
}

/// Sequence configurations: convolution alone; attention queries, convolution and a
/// 2-head transformer together; other kernel sets; attention alone over a 4-head transformer.
fn sequence_configs() -> Vec<SequenceConfig> {
    let cfg = |queries, kernels: &[usize], transformer, heads| SequenceConfig {
        attention_queries: queries,
        conv_kernels: kernels.to_vec(),
        conv_channels: 6,
        transformer,
        transformer_heads: heads,
        transformer_ffn: 20,
        dropout: 0.1,
    };
    vec![
        cfg(0, &[3], false, 1),
        cfg(2, &[1, 3, 5], true, 2),
        cfg(1, &[7, 1], false, 1),
        cfg(0, &[5, 3], true, 2),
        cfg(1, &[], true, 4),
    ]
}

/// `n` texts of random lengths in 1..=12 (the first has one token) plus, when `long`, one of
/// 270 tokens (past the transformer's 256 precomputed positions).
fn token_seqs(rng: &mut ChaCha8Rng, n: usize, dim: usize, long: bool) -> TokenSeqs {
    let mut t = TokenSeqs::new(dim);
    for i in 0..n {
        let len = match i {
            0 => 1,
            5 if long => 270,
            _ => rng.random_range(1..=12),
        };
        t.push(random(rng, len, dim, 1.0).view());
    }
    t
}

#[test]
fn onnx_sequence_heads_match_native_heads() {
    let runtime = tandem::runtime::runtime(None).expect("ONNX Runtime (scripts/setup.sh)");
    let n_raw = tandem::metadata::num_features();
    let emb_dim = 24;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let pooled: Vec<Architecture> = architectures(emb_dim, 7)
        .into_iter()
        .filter(|a| a.mode != Mode::MetadataOnly)
        .collect();
    let mut worst = 0.0f32;
    let mut case = 0;
    for (s, seq) in sequence_configs().into_iter().enumerate() {
        // Every mode with an embedding, the head MLPs taking turns.
        for mode in [Mode::TwoStage, Mode::Joint, Mode::EmbeddingOnly] {
            let mut arch = pooled
                .iter()
                .filter(|a| a.mode == mode)
                .nth(s % 3)
                .unwrap()
                .clone();
            arch.sequence = Some(seq.clone());
            case += 1;
            let mut net = Network::new(arch.clone(), &mut ChaCha8Rng::seed_from_u64(case)).unwrap();
            assert!(net.sequence.is_some());
            // Nonzero biases and LayerNorm affines everywhere, so dropping one shows.
            for p in net.params_mut() {
                p.value
                    .mapv_inplace(|v| v + 0.1 * rng.random_range(-1.0f32..1.0));
            }
            let normalizer = (arch.n_features > 0).then(|| Normalizer {
                selected: (0..arch.n_features).map(|k| (k * 5 + 1) % n_raw).collect(),
                mean: (0..arch.n_features).map(|k| k as f32 * 0.3).collect(),
                std: (0..arch.n_features).map(|k| 0.5 + k as f32 * 0.1).collect(),
            });
            let heads = Heads {
                network: net,
                normalizer,
                tasks: tasks(),
                version: 0,
                onnx: None,
            };
            let onnx = OnnxHeads::from_heads(&heads, Arc::clone(&runtime), Device::Cpu).unwrap();
            assert!(onnx.reads_tokens());
            // One batch of mixed lengths, and (for the first mode) one past SEQUENCE_CHUNK
            // texts, so the chunks' seams are checked too.
            let mut sizes = vec![37];
            if mode == Mode::TwoStage {
                sizes.push(tandem::heads::SEQUENCE_CHUNK + 21);
            }
            for n in sizes {
                let long = seq.transformer && n == 37;
                let tokens = token_seqs(&mut rng, n, emb_dim, long);
                let emb = random(&mut rng, n, emb_dim, 1.0);
                let raw = random(&mut rng, n, n_raw, 20.0);
                let feats = match &heads.normalizer {
                    Some(norm) => norm.transform(raw.view()),
                    None => Array2::zeros((n, 0)),
                };
                let native =
                    predict_arrays(&heads, emb.view(), feats.view(), Some(&tokens)).unwrap();
                let got = onnx.run(emb.view(), raw.view(), Some(&tokens)).unwrap();
                let d = max_diff(&native, &got);
                eprintln!("sequence {s} {mode:?} n={n}: max difference {d:e}");
                worst = worst.max(d);
                assert!(
                    d <= TOL,
                    "sequence config {s} ({seq:?}), mode {mode:?}, {n} texts: max difference {d}"
                );
            }
            // Sequence heads refuse to run without the tokens, or with too few.
            assert!(onnx
                .run(
                    Array2::zeros((2, emb_dim)).view(),
                    Array2::zeros((2, n_raw)).view(),
                    None
                )
                .is_err());
            let one = token_seqs(&mut rng, 1, emb_dim, false);
            assert!(onnx
                .run(
                    Array2::zeros((2, emb_dim)).view(),
                    Array2::zeros((2, n_raw)).view(),
                    Some(&one)
                )
                .is_err());

            // The graph lists the token inputs after the pooled ones.
            let bytes =
                write::encode(&heads_model(&heads, n_raw, BinaryOutput::Pair, &[]).unwrap());
            let model = OnnxModel {
                proto: tandem::onnx::read::parse(&bytes).unwrap(),
                dir: None,
            };
            let summary = model.summary();
            let inputs: Vec<&str> = summary.inputs.iter().map(|o| o.name.as_str()).collect();
            match mode {
                Mode::EmbeddingOnly => assert_eq!(inputs, ["embedding", "tokens", "token_mask"]),
                _ => assert_eq!(inputs, ["embedding", "metadata", "tokens", "token_mask"]),
            }
            let n_in = summary.inputs.len();
            assert_eq!(summary.inputs[n_in - 2].dims, ["batch", "seq", "24"]);
            assert_eq!(summary.inputs[n_in - 1].dims, ["batch", "seq"]);
        }
    }
    eprintln!("{case} sequence architectures: worst max difference {worst:e}");
}

#[test]
fn a_model_served_by_onnx_heads_predicts_what_native_heads_do() {
    // Joint heads with metadata and hidden layers, trained on real texts and saved.
    let backbone = Arc::new(common::load(Variant::Int8));
    let data = common::labelled("trec.jsonl", 700);
    let spec = json!({
        "tasks": [{"name": "label", "kind": "multiclass"}],
        "config": {"mode": "joint", "seed": 5, "head": {"stage": {"epochs": 3}}},
    });
    let mut t = Trainer::from_json(Arc::clone(&backbone), &spec.to_string()).unwrap();
    for (text, label) in &data[..400] {
        t.add_example(text, &json!({ "label": label })).unwrap();
    }
    t.train(&mut |_| true).unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-onnx-heads-{}", std::process::id()));
    t.save(&dir).unwrap();

    let mut opts = backbone.options().clone();
    opts.heads = HeadsEngine::Onnx;
    let onnx_bb = Arc::new(tandem::Backbone::load(backbone.dir(), opts).unwrap());
    let native = Model::load(&dir, Arc::clone(&backbone)).unwrap();
    let onnx = Model::load(&dir, onnx_bb).unwrap();
    assert!(onnx.heads().onnx.is_some() && native.heads().onnx.is_none());
    let held: Vec<&str> = data[400..].iter().map(|(t, _)| t.as_str()).collect();
    let (a, _) = native.predict_raw(&held).unwrap();
    let (b, _) = onnx.predict_raw(&held).unwrap();
    let d = max_diff(&a, &b);
    assert!(d <= TOL, "max difference {d}");
    let labels = |m: &Model| -> Vec<Vec<String>> {
        m.predict(&held)
            .unwrap()
            .into_iter()
            .map(|p| p[0].labels.clone())
            .collect()
    };
    assert_eq!(labels(&native), labels(&onnx));

    // Heads swapped into the ONNX-served model are served through ONNX Runtime too.
    assert_eq!(onnx.swap_heads(t.heads().unwrap()).unwrap(), 1);
    assert!(onnx.heads().onnx.is_some());
    let (c, _) = onnx.predict_raw(&held).unwrap();
    assert!(max_diff(&a, &c) <= TOL);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sequence_model_served_by_onnx_heads_predicts_what_native_heads_do() {
    // Sequence heads (transformer, attention and conv pooling) trained on real texts, so the
    // backbone's own per-token vectors go through the padded graph.
    let backbone = Arc::new(common::load(Variant::Int8));
    let data = common::labelled("trec.jsonl", 300);
    let spec = json!({
        "tasks": [{"name": "label", "kind": "multiclass"}],
        "config": {
            "mode": "joint",
            "seed": 6,
            "head": {
                "kind": "sequence",
                "hidden": [16],
                "sequence": {
                    "attention_queries": 1,
                    "conv_kernels": [1, 3],
                    "conv_channels": 8,
                    "transformer": true,
                    "transformer_heads": 4,
                    "transformer_ffn": 32
                },
                "stage": {"epochs": 2}
            },
            "metadata": {"stage": {"epochs": 2}},
        },
    });
    let mut t = Trainer::from_json(Arc::clone(&backbone), &spec.to_string()).unwrap();
    for (text, label) in &data[..200] {
        t.add_example(text, &json!({ "label": label })).unwrap();
    }
    t.train(&mut |_| true).unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-onnx-seq-heads-{}", std::process::id()));
    t.save(&dir).unwrap();

    let mut opts = backbone.options().clone();
    opts.heads = HeadsEngine::Onnx;
    let onnx_bb = Arc::new(tandem::Backbone::load(backbone.dir(), opts).unwrap());
    let native = Model::load(&dir, Arc::clone(&backbone)).unwrap();
    let onnx = Model::load(&dir, onnx_bb).unwrap();
    assert!(native.heads().network.arch.needs_tokens());
    let graph = onnx
        .heads()
        .onnx
        .clone()
        .expect("served through ONNX Runtime");
    assert!(graph.reads_tokens());
    let held: Vec<&str> = data[200..].iter().map(|(t, _)| t.as_str()).collect();
    let (a, _) = native.predict_raw(&held).unwrap();
    let (b, _) = onnx.predict_raw(&held).unwrap();
    let d = max_diff(&a, &b);
    eprintln!("trained sequence heads: max difference {d:e}");
    assert!(d <= TOL, "max difference {d}");
    std::fs::remove_dir_all(&dir).unwrap();
}
