//! Sequence heads end to end on real demo data and the real backbone's per-token vectors:
//! every task kind, determinism, the bundle round trip (the architecture is stored and the
//! loaded model re-embeds tokens itself), the trainer session with the token cache, and the
//! errors a misconfiguration gets. Needs `scripts/setup.sh`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use tandem::bundle::{self, BackboneRef};
use tandem::data::{read_rows, TaskKind, TaskSpec};
use tandem::model::Model;
use tandem::train::config::HeadKind;
use tandem::train::{manifest_for, split_examples};
use tandem::train::{Examples, Mode, TrainConfig, Trainer};
use tandem::{Backbone, ErrorKind, Variant};

fn backbone() -> Arc<Backbone> {
    Arc::new(common::load(Variant::Int8))
}

/// Every 7th of the first rows of a demo dataset, with embeddings, per-token vectors and raw
/// features.
fn dataset(
    b: &Backbone,
    file: &str,
    n: usize,
    field: &str,
    kind: TaskKind,
) -> (Vec<TaskSpec>, Examples, Vec<String>) {
    let rows = read_rows(&tandem::home::data_dir().join(file)).unwrap();
    let rows: Vec<_> = rows.into_iter().step_by(7).take(n).collect();
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (s, t) = TaskSpec::infer(field, kind, field, &rows, None).unwrap();
    let (emb, tokens) = b.embed_tokens(&refs).unwrap();
    let ex = Examples {
        emb,
        feats: tandem::metadata::extract_batch(&refs),
        targets: vec![t],
        tokens: Some(tokens),
        hidden: None,
        strata: None,
        soft: None,
    };
    (vec![s], ex, texts)
}

/// A small sequence head (tests run unoptimized): attention pooling and two conv widths.
fn quick(mode: Mode, seed: u64) -> TrainConfig {
    let mut c = TrainConfig {
        mode,
        seed,
        ..Default::default()
    };
    c.head.kind = HeadKind::Sequence;
    c.head.sequence.conv_kernels = vec![1, 3];
    c.head.sequence.conv_channels = 16;
    c.head.hidden = vec![64];
    c.metadata.stage.epochs = 4;
    c.head.stage.epochs = 6;
    c
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("seq", name)
}

#[test]
fn sequence_heads_learn_trec_deterministically_and_round_trip_through_bundles() {
    let b = backbone();
    let (specs, all, texts) = dataset(&b, "trec.jsonl", 360, "label", TaskKind::Multiclass);
    let cfg = quick(Mode::TwoStage, 3);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let a = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let again = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let weights = a.heads.network.weights();
    assert_eq!(weights, again.heads.network.weights(), "not deterministic");
    assert!(
        weights.iter().any(|(n, _)| n.starts_with("sequence.")),
        "no sequence encoder weights"
    );
    let other =
        tandem::train::train(&specs, &tr, &va, &quick(Mode::TwoStage, 4), &mut |_| true).unwrap();
    assert_ne!(weights, other.heads.network.weights(), "seed ignored");
    let f1 = a.report.valid_metrics["macro_f1"].as_f64().unwrap();
    // Six classes: chance is ~0.17 macro-F1.
    assert!(f1 > 0.5, "macro-F1 {f1}");

    // The bundle stores the architecture; the loaded model embeds tokens itself and predicts
    // exactly what the trained heads do.
    let dir = tmp("trec");
    let manifest = manifest_for(
        &a,
        BackboneRef::of(&b),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    assert_eq!(
        serde_json::to_value(&manifest.architecture).unwrap()["sequence"]["conv_kernels"],
        serde_json::json!([1, 3])
    );
    bundle::save(&dir, &manifest, &weights, false).unwrap();
    let model = Model::load(&dir, Arc::clone(&b)).unwrap();
    assert!(model.heads().network.arch.needs_tokens());
    let sample: Vec<&str> = texts.iter().take(20).map(String::as_str).collect();
    let direct = Model::from_parts(Arc::clone(&b), manifest.clone(), a.heads.clone());
    assert_eq!(
        model.predict(&sample).unwrap(),
        direct.predict(&sample).unwrap()
    );
    // Predictions in one call or text by text agree: the encoder never mixes texts. (Only
    // nearly: the int8 graph's activation scales depend on the batch.)
    let one = &model.predict(&sample[3..4]).unwrap()[0][0];
    let all = &model.predict(&sample).unwrap()[3][0];
    assert_eq!(one.labels, all.labels);
    for (p, q) in one.probabilities.iter().zip(&all.probabilities) {
        assert!((p - q).abs() < 0.02, "{one:?} vs {all:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn binary_multilabel_and_regression_sequence_heads_train() {
    let b = backbone();
    let cases: [(&str, &str, TaskKind, &str, f64); 3] = [
        ("sms_spam.jsonl", "label", TaskKind::Binary, "roc_auc", 0.7),
        (
            "reuters.jsonl",
            "labels",
            TaskKind::Multilabel,
            "micro_f1",
            0.3,
        ),
        (
            "vader.jsonl",
            "rating",
            TaskKind::Regression,
            "pearson",
            0.3,
        ),
    ];
    for (file, field, kind, metric, floor) in cases {
        let (specs, all, _) = dataset(&b, file, 240, field, kind);
        for mode in [Mode::EmbeddingOnly, Mode::Joint] {
            let cfg = quick(mode, 1);
            let (tr, va) = split_examples(&all, &cfg).unwrap();
            let t = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
            let v = t.report.valid_metrics[metric].as_f64().unwrap();
            assert!(v > floor, "{file} {mode:?}: {metric} {v}");
        }
    }
}

#[test]
fn misconfigured_sequence_heads_get_clear_errors() {
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 60, "label", TaskKind::Multiclass);
    let cfg = quick(Mode::EmbeddingOnly, 0);
    let (mut tr, va) = split_examples(&all, &cfg).unwrap();
    tr.tokens = None;
    let e = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("per-token"), "{}", e.message());
    let mut meta = quick(Mode::MetadataOnly, 0);
    assert!(meta.validate().is_err());
    meta.mode = Mode::Joint;
    meta.head.sequence.conv_kernels = vec![2];
    let e = meta.validate().unwrap_err();
    assert!(e.message().contains("head.sequence"), "{}", e.message());
    meta.head.sequence.conv_kernels = vec![];
    meta.head.sequence.attention_queries = 0;
    assert!(meta.validate().is_err(), "an encoder with nothing in it");
}

#[test]
fn the_trainer_session_trains_sequence_heads_through_the_token_cache() {
    let b = backbone();
    let rows = read_rows(&tandem::home::data_dir().join("trec.jsonl")).unwrap();
    let spec = serde_json::json!({
        "tasks": [{"name": "label", "kind": "multiclass"}],
        "config": {
            "mode": "embedding_only",
            "seed": 5,
            "head": {"kind": "sequence", "hidden": [32],
                     "sequence": {"conv_kernels": [3], "conv_channels": 8},
                     "stage": {"epochs": 3}}
        }
    });
    let mut trainer = Trainer::from_json(Arc::clone(&b), &spec.to_string()).unwrap();
    for r in rows.iter().step_by(11).take(150) {
        let label = serde_json::json!({ "label": r.text("label").unwrap() });
        trainer
            .add_example(&r.text("text").unwrap(), &label)
            .unwrap();
    }
    trainer.train(&mut |_| true).unwrap();
    let texts: Vec<String> = rows
        .iter()
        .skip(5)
        .step_by(13)
        .take(30)
        .map(|r| r.text("text").unwrap())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let labels: Vec<serde_json::Value> = rows
        .iter()
        .skip(5)
        .step_by(13)
        .take(30)
        .map(|r| serde_json::json!({ "label": r.text("label").unwrap() }))
        .collect();
    let m = trainer.evaluate(&refs, &labels).unwrap();
    assert!(m["accuracy"].as_f64().unwrap() > 0.2, "{m}");
    // The texts' token vectors are in the on-disk cache now, ragged.
    let cache = tandem::cache::TokenCache::open(None, &b).unwrap();
    let (seqs, stats) = cache.embed(&b, None, &refs[..5]).unwrap();
    assert_eq!(stats.misses, 0);
    assert!(seqs.total_tokens() < 5 * 256);
    let dir = tmp("session");
    trainer.save(&dir).unwrap();
    let model = Model::load(&dir, Arc::clone(&b)).unwrap();
    assert_eq!(model.predict(&refs).unwrap().len(), 30);
    let _ = std::fs::remove_dir_all(dir);
}
