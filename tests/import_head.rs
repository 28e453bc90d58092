//! ONNX heads in, the round trip: an MLP head written by PyTorch (`torch.onnx.export`) imports
//! as a bundle that predicts what PyTorch computes (natively and through ONNX Runtime), trains
//! further on the device from its weights (`--init-head`), and exports again as one graph that
//! stock ONNX Runtime runs; heads with operators tandem lacks are refused, naming them. Needs
//! `scripts/setup.sh` (backbone, ONNX Runtime and the Python tooling venv with PyTorch).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use tandem::data::{TaskKind, TaskSpec};
use tandem::model::Model;
use tandem::onnx::import;
use tandem::train::Trainer;
use tandem::{Backbone, ErrorKind, HeadsEngine, Variant};

const LABELS: [&str; 6] = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"];

fn python() -> PathBuf {
    tandem::home::cache_dir().join("venv/bin/python3")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn probs(model: &Model, texts: &[&str]) -> Vec<Vec<f32>> {
    let (p, _) = model.predict_raw(texts).unwrap();
    p[0].rows().into_iter().map(|r| r.to_vec()).collect()
}

fn rows_of(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn a_pytorch_head_imports_serves_trains_further_and_exports_again() {
    let root = std::env::temp_dir().join(format!("tandem-import-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let backbone = Arc::new(common::load(Variant::Fp32));
    let data = common::labelled("trec.jsonl", 500);
    let texts: Vec<&str> = data[400..].iter().map(|(t, _)| t.as_str()).collect();

    // PyTorch writes the heads and computes their probabilities on tandem's embeddings.
    let emb = backbone.embed(&texts).unwrap();
    let rows: Vec<Vec<f32>> = emb.rows().into_iter().map(|r| r.to_vec()).collect();
    let emb_file = root.join("emb.json");
    std::fs::write(&emb_file, json!({ "embeddings": rows }).to_string()).unwrap();
    let out = Command::new(python())
        .arg(script("torch_head.py"))
        .arg(&root)
        .arg(&emb_file)
        .args(["--classes", "6", "--hidden", "48"])
        .output()
        .expect("the Python tooling venv (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let torch: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Imported: the architecture is read from the graph (GELU spelled out with Erf, LayerNorm).
    let head = import::read_head(&root.join("head.onnx")).unwrap();
    assert_eq!(head.config.hidden, [48]);
    assert_eq!(head.config.activation, tandem::nn::ActivationKind::Gelu);
    assert!(head.config.layer_norm);
    let spec = TaskSpec {
        name: "label".into(),
        kind: TaskKind::Multiclass,
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
    };
    let bundle = root.join("imported");
    import::import_bundle(&root.join("head.onnx"), spec.clone(), &backbone, &bundle).unwrap();

    // It serves what PyTorch computes, natively and through ONNX Runtime.
    let native = Model::load(&bundle, Arc::clone(&backbone)).unwrap();
    let want = rows_of(&torch["head"]);
    let d = max_diff(&probs(&native, &texts), &want);
    assert!(d <= 1e-5, "native vs PyTorch: {d}");
    let mut opts = backbone.options().clone();
    opts.heads = HeadsEngine::Onnx;
    let onnx_bb = Arc::new(Backbone::load(backbone.dir(), opts).unwrap());
    let onnx = Model::load(&bundle, onnx_bb).unwrap();
    let d = max_diff(&probs(&onnx, &texts), &want);
    assert!(d <= 1e-5, "ONNX Runtime vs PyTorch: {d}");

    // A ReLU head ending in a softmax imports too (the softmax is the task's own).
    let relu = root.join("relu");
    import::import_bundle(&root.join("head_relu.onnx"), spec.clone(), &backbone, &relu).unwrap();
    let m = Model::load(&relu, Arc::clone(&backbone)).unwrap();
    assert_eq!(
        m.heads().network.arch.head.activation,
        tandem::nn::ActivationKind::Relu
    );
    let d = max_diff(&probs(&m, &texts), &rows_of(&torch["head_relu"]));
    assert!(d <= 1e-5, "ReLU head vs PyTorch: {d}");

    // Refusals name what is wrong: an activation and an operator tandem's heads lack, labels
    // that do not fit, another backbone's width.
    let e = import::read_head(&root.join("head_tanh.onnx")).unwrap_err();
    assert!(e.message().contains("Tanh"), "{e}");
    let e = import::read_head(&root.join("head_bn.onnx")).unwrap_err();
    assert!(e.message().contains("BatchNormalization"), "{e}");
    let mut five = spec.clone();
    five.labels.pop();
    let e = import::import_bundle(&root.join("head.onnx"), five, &backbone, &root.join("x"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(!root.join("x").exists());

    // Trains further from the imported weights: the first epoch starts where PyTorch left off
    // (its training loss is that of the imported head, far from a fresh head's), and the
    // result differs from both the import and a fresh start with the same seed.
    let trainer = |init: Option<&Path>| {
        let mut head = json!({"hidden": [48], "activation": "gelu", "layer_norm": true,
                              "stage": {"epochs": 3}});
        if let Some(p) = init {
            head["init"] = json!(p);
        }
        let spec = json!({
            "tasks": [{"name": "label", "kind": "multiclass"}],
            "config": {"mode": "embedding_only", "seed": 4, "head": head},
        });
        let mut t = Trainer::from_json(Arc::clone(&backbone), &spec.to_string()).unwrap();
        for (text, label) in &data[..400] {
            t.add_example(text, &json!({ "label": label })).unwrap();
        }
        t.train(&mut |_| true).unwrap();
        t
    };
    let from_import = trainer(Some(&root.join("head.onnx")));
    let fresh = trainer(None);
    let w = |t: &Trainer| t.heads().unwrap().network.weights();
    assert_ne!(w(&from_import), w(&fresh));
    assert_ne!(w(&from_import), native.heads().network.weights());
    let again = trainer(Some(&root.join("head.onnx")));
    assert_eq!(w(&from_import), w(&again), "not deterministic");

    // Exported again, it runs in stock ONNX Runtime to 1e-4 of tandem.
    let trained = root.join("trained");
    from_import.save(&trained).unwrap();
    let model = Model::load(&trained, Arc::clone(&backbone)).unwrap();
    let graph = root.join("export/model.onnx");
    std::fs::create_dir_all(graph.parent().unwrap()).unwrap();
    tandem::onnx::export::export(&model, Variant::Fp32, &graph).unwrap();
    let preds = probs(&model, &texts);
    let cases = root.join("cases.json");
    std::fs::write(
        &cases,
        json!({"texts": texts, "expected": {"label.probabilities": preds}}).to_string(),
    )
    .unwrap();
    let res = Command::new(python())
        .arg(script("check_export.py"))
        .arg(&graph)
        .arg(&cases)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );

    // The same through the CLI: import-head, train --init-head, export.
    let tandem = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tandem {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let head_file = root.join("head.onnx");
    let h = head_file.to_str().unwrap();
    let cli_bundle = root.join("cli-imported");
    let said = tandem(&[
        "import-head",
        h,
        "--labels",
        &LABELS.join(","),
        "--out",
        cli_bundle.to_str().unwrap(),
    ]);
    assert!(
        said.contains("multiclass") && said.contains("Gelu"),
        "{said}"
    );
    let shown = tandem(&["inspect", cli_bundle.to_str().unwrap(), "--json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["serving"]["imported_from"]["file"], "head.onnx");
    let jsonl = root.join("local.jsonl");
    let lines: Vec<String> = data[..200]
        .iter()
        .map(|(t, l)| json!({"text": t, "label": l}).to_string())
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let adapted = root.join("adapted");
    tandem(&[
        "train",
        "--data",
        jsonl.to_str().unwrap(),
        "--label-field",
        "label",
        "--task",
        "multiclass",
        "--init-head",
        h,
        "--out",
        adapted.to_str().unwrap(),
    ]);
    let graph = root.join("export2/adapted.onnx");
    std::fs::create_dir_all(graph.parent().unwrap()).unwrap();
    tandem(&[
        "export",
        adapted.to_str().unwrap(),
        "--out",
        graph.to_str().unwrap(),
    ]);
    assert!(graph.is_file());
    std::fs::remove_dir_all(&root).unwrap();
}
