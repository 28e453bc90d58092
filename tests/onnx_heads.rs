//! Heads written as ONNX and run by ONNX Runtime agree with the native heads: every mode, MLP
//! shape and task kind, on random weights and inputs, to 1e-5; a model loaded with the ONNX
//! heads engine predicts what the native one does on real texts; and the written graph reads
//! back through tandem's own ONNX reader. Needs `scripts/setup.sh` (ONNX Runtime).

mod common;

use std::sync::Arc;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde_json::json;
use tandem::data::{TaskKind, TaskSpec};
use tandem::heads::{predict_arrays, Architecture, Heads, Mode, Network, Normalizer, TaskEntry};
use tandem::model::Model;
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
        let got = onnx.run(emb.view(), raw.view()).unwrap();
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

fn trec(n: usize) -> Vec<(String, String)> {
    let rows = tandem::data::read_rows(&tandem::home::data_dir().join("trec.jsonl"))
        .expect("run scripts/setup.sh");
    rows.iter()
        .take(n)
        .map(|r| (r.text("text").unwrap(), r.text("label").unwrap()))
        .collect()
}

#[test]
fn a_model_served_by_onnx_heads_predicts_what_native_heads_do() {
    // Joint heads with metadata and hidden layers, trained on real texts and saved.
    let backbone = Arc::new(common::load(Variant::Int8));
    let data = trec(700);
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
