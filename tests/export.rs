//! `tandem export` end to end: a trained model written as one ONNX graph, run by stock ONNX
//! Runtime in Python (scripts/check_export.py: the `tokenizers` package on the tokenizer file
//! beside the graph, onnx.checker with full checks, onnxruntime), reproduces what tandem
//! predicts to 1e-4, from the fp32 graph and from the int8 one. Needs `scripts/setup.sh` (the
//! backbone, ONNX Runtime and the Python tooling venv).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use tandem::model::Model;
use tandem::train::Trainer;
use tandem::{Backbone, ErrorKind, Variant};

fn python() -> PathBuf {
    tandem::home::cache_dir().join("venv/bin/python3")
}

/// Trains and saves a bundle; returns its directory.
fn train(backbone: &Arc<Backbone>, data: &[(String, String)], kind: &str, mode: &str, dir: &Path) {
    train_with(
        backbone,
        data,
        kind,
        mode,
        json!({"stage": {"epochs": 3}}),
        dir,
    );
}

/// [`train`] with the given head configuration.
fn train_with(
    backbone: &Arc<Backbone>,
    data: &[(String, String)],
    kind: &str,
    mode: &str,
    head: Value,
    dir: &Path,
) {
    let spec = json!({
        "tasks": [{"name": "label", "kind": kind}],
        "config": {"mode": mode, "seed": 2,
                   "metadata": {"stage": {"epochs": 2}}, "head": head},
    });
    let mut t = Trainer::from_json(Arc::clone(backbone), &spec.to_string()).unwrap();
    for (text, label) in data {
        t.add_example(text, &json!({ "label": label })).unwrap();
    }
    t.train(&mut |_| true).unwrap();
    t.save(dir).unwrap();
}

/// Exports `model` on `variant`, writes what tandem predicts for `texts` (and their raw
/// features), and runs the Python check; returns its report.
fn check(
    model: &Model,
    variant: Variant,
    texts: &[&str],
    dir: &Path,
    tol: f64,
    min_agree: f64,
    batch: usize,
) -> Value {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("model-{variant}.onnx"));
    let done = tandem::onnx::export::export(model, variant, &out).unwrap();
    assert_eq!(done.inputs[..2], ["input_ids", "attention_mask"]);
    let preds = model.predict(texts).unwrap();
    let heads = model.heads();
    let mut expected = serde_json::Map::new();
    for (k, task) in heads.tasks.iter().enumerate() {
        let name = tandem::onnx::heads::output_name(&task.spec.name, task.spec.kind);
        let rows: Vec<Vec<f32>> = preds
            .iter()
            .map(|p| match p[k].value {
                Some(v) => vec![v],
                None => p[k].probabilities.clone(),
            })
            .collect();
        expected.insert(name, json!(rows));
    }
    let features = tandem::metadata::extract_batch(texts);
    let metadata: Vec<Vec<f32>> = features.rows().into_iter().map(|r| r.to_vec()).collect();
    let cases = dir.join(format!("cases-{variant}.json"));
    std::fs::write(
        &cases,
        json!({"texts": texts, "metadata": metadata, "expected": expected}).to_string(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_export.py");
    let res = Command::new(python())
        .arg(script)
        .arg(&out)
        .arg(&cases)
        .args(["--tol", &tol.to_string()])
        .args(["--min-agree", &min_agree.to_string()])
        .args(["--batch", &batch.to_string()])
        .output()
        .expect("the Python tooling venv (scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{variant}: {stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn exported_graphs_reproduce_tandem_predict_in_stock_onnx_runtime() {
    let root = std::env::temp_dir().join(format!("tandem-export-{}", std::process::id()));
    let data = common::labelled("trec.jsonl", 600);
    let held: Vec<&str> = data[400..].iter().map(|(t, _)| t.as_str()).collect();

    // Joint heads that read metadata, on the fp32 backbone: the fp32 export to 1e-4.
    let fp32 = Arc::new(common::load(Variant::Fp32));
    train(
        &fp32,
        &data[..400],
        "multiclass",
        "joint",
        &root.join("trec"),
    );
    let model = Model::load(&root.join("trec"), Arc::clone(&fp32)).unwrap();
    let r = check(
        &model,
        Variant::Fp32,
        &held,
        &root.join("fp32"),
        1e-4,
        1.0,
        32,
    );
    assert_eq!(r["outputs"]["label.probabilities"]["argmax_agreement"], 1.0);

    // A sequence head (attention pooling, convolutions and a transformer layer over the
    // per-token vectors) next to metadata: the export rounds the tokens through f16 as tandem
    // stores them, and matches to 1e-4 too.
    let head = json!({"kind": "sequence", "hidden": [32], "stage": {"epochs": 2},
                      "sequence": {"attention_queries": 1, "conv_kernels": [1, 3],
                                   "conv_channels": 16, "transformer": true, "dropout": 0.1}});
    train_with(
        &fp32,
        &data[..300],
        "multiclass",
        "joint",
        head,
        &root.join("seq"),
    );
    let model = Model::load(&root.join("seq"), Arc::clone(&fp32)).unwrap();
    assert!(model.heads().network.arch.needs_tokens());
    let r = check(
        &model,
        Variant::Fp32,
        &held,
        &root.join("seq-fp32"),
        1e-4,
        1.0,
        32,
    );
    assert_eq!(r["outputs"]["label.probabilities"]["argmax_agreement"], 1.0);

    // A binary task (reported as [1 - p, p]) on the int8 backbone. The int8 graph quantizes each
    // run's activations with one scale for the whole run, padding included, so a text's
    // outputs depend on which texts share its run: with one text per run on both sides, the
    // export computes exactly what tandem does.
    let sms = common::labelled("sms_spam.jsonl", 500);
    let int8 = Arc::new(
        Backbone::load(
            common::backbone_dir(tandem::home::DEFAULT_BACKBONE),
            tandem::BackboneOptions {
                variant: Variant::Int8,
                threads: Some(2),
                batch_size: 1,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    train(&int8, &sms[..300], "binary", "two_stage", &root.join("sms"));
    let model = Model::load(&root.join("sms"), Arc::clone(&int8)).unwrap();
    let texts: Vec<&str> = sms[300..].iter().map(|(t, _)| t.as_str()).collect();
    let r = check(
        &model,
        Variant::Int8,
        &texts,
        &root.join("int8"),
        1e-4,
        1.0,
        1,
    );
    assert!(
        r["outputs"]["label.probabilities"]["max_abs_diff"]
            .as_f64()
            .unwrap()
            <= 1e-4
    );

    // A backbone graph with only a per-token output and a `token_type_ids` input (the tiny test
    // BERT): the export mean-pools and normalizes in the graph and feeds token types itself.
    let tiny = Arc::new(
        Backbone::load(
            common::backbone_dir("tiny-random-bert"),
            tandem::BackboneOptions {
                threads: Some(2),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    train(
        &tiny,
        &data[..200],
        "multiclass",
        "embedding_only",
        &root.join("tiny"),
    );
    let model = Model::load(&root.join("tiny"), Arc::clone(&tiny)).unwrap();
    let r = check(
        &model,
        Variant::Fp32,
        &held,
        &root.join("tiny-fp32"),
        1e-4,
        1.0,
        32,
    );
    assert!(
        r["outputs"]["label.probabilities"]["max_abs_diff"]
            .as_f64()
            .unwrap()
            <= 1e-4
    );

    // An output directory that does not exist is a clear error, and nothing is written.
    let err = tandem::onnx::export::export(&model, Variant::Opt, Path::new("/nonexistent/x.onnx"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// The trainer's native evaluation of `held` (text, label) gives the accuracy the saved model
/// serves, up to one text (native layers against ONNX Runtime's: a near tie may fall the other
/// way).
fn evaluation_agrees(t: &mut Trainer, model: &Model, held: &[(String, String)], what: &str) {
    let texts: Vec<&str> = held.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<_> = held.iter().map(|(_, l)| json!({ "label": l })).collect();
    let eval = t.evaluate(&texts, &labels).unwrap();
    let right = model
        .predict(&texts)
        .unwrap()
        .iter()
        .zip(held)
        .filter(|(p, (_, l))| p[0].labels == [l.clone()])
        .count();
    let acc = eval["tasks"]["label"]["accuracy"].as_f64().unwrap();
    let n = held.len() as f64;
    assert!(
        (acc - right as f64 / n).abs() <= 1.0 / n + 1e-9,
        "{what}: evaluate says accuracy {acc}, the model gets {right} of {n} right"
    );
}

#[test]
fn a_model_with_fine_tuned_layers_exports_and_runs_in_stock_onnx_runtime() {
    // The bundle's own backbone (top layer fine-tuned) goes into the export: stock ONNX
    // Runtime reproduces `predict` on the fine-tuned model.
    let root = std::env::temp_dir().join(format!("tandem-export-ft-{}", std::process::id()));
    let data = common::labelled("trec.jsonl", 160);
    let fp32 = Arc::new(common::load(Variant::Fp32));
    // Pooled heads, and sequence heads on the fine-tuned layer's tokens.
    for kind in ["pooled", "sequence"] {
        let spec = json!({
            "tasks": [{"name": "label", "kind": "multiclass"}],
            "embedding_cache": false,
            "config": {"mode": "embedding_only", "seed": 2,
                       "head": {"kind": kind, "stage": {"epochs": 2}},
                       "backbone": {"trainable_layers": 1, "lr": 0.001}},
        });
        let mut t = Trainer::from_json(Arc::clone(&fp32), &spec.to_string()).unwrap();
        for (text, label) in &data[..120] {
            t.add_example(text, &json!({ "label": label })).unwrap();
        }
        t.train(&mut |_| true).unwrap();
        t.save(&root.join(kind)).unwrap();
        let model = Model::load(&root.join(kind), Arc::clone(&fp32)).unwrap();
        assert!(model.backbone().manifest().name.contains("fine-tuned"));
        let held: Vec<&str> = data[120..].iter().map(|(t, _)| t.as_str()).collect();
        // The trainer's evaluation reads the fine-tuned layer's outputs, as the model does.
        evaluation_agrees(&mut t, &model, &data[120..], kind);
        let r = check(
            &model,
            Variant::Fp32,
            &held,
            &root.join(format!("out-{kind}")),
            1e-4,
            1.0,
            16,
        );
        println!("fine-tuned export, {kind} heads: {r}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_cls_pooled_backbone_trains_fine_tunes_and_exports() {
    // A backbone whose manifest says [CLS] pooling, with frozen and fine-tuned layers: the
    // export pools the first token as serving does, and stock ONNX Runtime reproduces
    // `predict`; the trainer's native evaluation agrees with the served model.
    let root = std::env::temp_dir().join(format!("tandem-export-cls-{}", std::process::id()));
    let cls = Arc::new(common::cls_backbone(&root.join("backbone")));
    let data = common::labelled("trec.jsonl", 160);
    for layers in [0, 1] {
        let spec = json!({
            "tasks": [{"name": "label", "kind": "multiclass"}],
            "embedding_cache": false,
            "config": {"mode": "embedding_only", "seed": 2, "head": {"stage": {"epochs": 3}},
                       "backbone": {"trainable_layers": layers, "lr": 0.001}},
        });
        let mut t = Trainer::from_json(Arc::clone(&cls), &spec.to_string()).unwrap();
        for (text, label) in &data[..120] {
            t.add_example(text, &json!({ "label": label })).unwrap();
        }
        t.train(&mut |_| true).unwrap();
        let dir = root.join(format!("k{layers}"));
        t.save(&dir).unwrap();
        let model = Model::load(&dir, Arc::clone(&cls)).unwrap();
        let held: Vec<&str> = data[120..].iter().map(|(t, _)| t.as_str()).collect();
        evaluation_agrees(&mut t, &model, &data[120..], &format!("K = {layers}"));
        let r = check(
            &model,
            Variant::Fp32,
            &held,
            &root.join(format!("out-{layers}")),
            1e-4,
            1.0,
            16,
        );
        println!("[CLS] backbone, K = {layers}: {r}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
