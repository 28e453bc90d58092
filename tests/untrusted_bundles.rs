//! A bundle is untrusted input: tampered manifests and weights must fail to load with a clear
//! `Format` error, never allocate what the manifest claims, abort or panic on a later predict.
//! Needs `scripts/setup.sh`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tandem::bundle::{self, BackboneRef};
use tandem::data::{read_rows, TaskKind, TaskSpec};
use tandem::model::Model;
use tandem::train::{manifest_for, split_examples};
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, ErrorKind, Variant};

fn tmp(name: &str) -> PathBuf {
    common::tmp("untrusted", name)
}

/// Trains a small two-stage bundle (features, encoder, aux heads) on `file` and saves it.
fn trained_bundle(b: &Arc<Backbone>, file: &str, field: &str, kind: TaskKind, out: &Path) {
    let rows = read_rows(&tandem::home::data_dir().join(file)).unwrap();
    let rows: Vec<_> = rows.into_iter().step_by(11).take(160).collect();
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (spec, targets) = TaskSpec::infer(field, kind, field, &rows, None).unwrap();
    let all = Examples {
        emb: b.embed(&refs).unwrap(),
        feats: tandem::metadata::extract_batch(&refs),
        targets: vec![targets],
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
    };
    let mut cfg = TrainConfig {
        mode: Mode::TwoStage,
        seed: 1,
        ..Default::default()
    };
    cfg.metadata.stage.epochs = 2;
    cfg.head.stage.epochs = 2;
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let trained = tandem::train::train(&[spec], &tr, &va, &cfg, &mut |_| true).unwrap();
    let m = manifest_for(
        &trained,
        BackboneRef::of(b),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    bundle::save(out, &m, &trained.heads.network.weights(), false).unwrap();
}

/// A copy of the bundle in `src` with its manifest changed by `edit` (the weights hash covers
/// only the weights, so the copy passes the hash check).
fn tampered(src: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        src.join(bundle::WEIGHTS_FILE),
        dir.join(bundle::WEIGHTS_FILE),
    )
    .unwrap();
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(bundle::MANIFEST_FILE)).unwrap())
            .unwrap();
    edit(&mut m);
    std::fs::write(dir.join(bundle::MANIFEST_FILE), m.to_string()).unwrap();
    dir
}

/// Loading fails with a Format error.
fn refused(b: &Arc<Backbone>, dir: &Path, what: &str) -> String {
    let e = Model::load(dir, Arc::clone(b))
        .err()
        .unwrap_or_else(|| panic!("{what}: the tampered bundle loaded"));
    assert_eq!(e.kind(), ErrorKind::Format, "{what}: {e}");
    // `inspect`'s check, without a backbone, agrees: the manifest does not parse, or its heads
    // do not build.
    match bundle::load(dir) {
        Ok((m, w)) => assert!(bundle::build_heads(&m, &w).is_err(), "{what}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Format, "{what}"),
    }
    e.message().to_string()
}

#[test]
fn tampered_manifests_fail_to_load_instead_of_aborting_or_panicking() {
    let b = Arc::new(common::load(Variant::Int8));
    let multi = tmp("trec");
    trained_bundle(&b, "trec.jsonl", "label", TaskKind::Multiclass, &multi);
    let binary = tmp("sms");
    trained_bundle(&b, "sms_spam.jsonl", "label", TaskKind::Binary, &binary);
    // The untampered bundles load and predict.
    for dir in [&multi, &binary] {
        let m = Model::load(dir, Arc::clone(&b)).unwrap();
        assert_eq!(m.predict(&["is this spam?"]).unwrap().len(), 1);
    }
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &Path, Edit)> = vec![
        // Before: a 16 GB allocation and SIGABRT.
        (
            "10M-wide hidden layer",
            &multi,
            Box::new(|m| m["architecture"]["head"]["hidden"] = json!([10_000_000])),
        ),
        (
            "1e12-wide hidden layer",
            &multi,
            Box::new(|m| m["architecture"]["head"]["hidden"] = json!([1_000_000_000_000u64])),
        ),
        (
            "1e12-wide encoder and code",
            &multi,
            Box::new(|m| {
                m["architecture"]["encoder"]["hidden"] = json!([1_000_000_000_000u64]);
                m["architecture"]["code_dim"] = json!(1_000_000_000_000u64);
            }),
        ),
        (
            "overflowing sequence encoder",
            &multi,
            Box::new(|m| {
                m["architecture"]["sequence"] =
                    json!({"attention_queries": usize::MAX, "conv_channels": usize::MAX})
            }),
        ),
        (
            "another embedding width",
            &multi,
            Box::new(|m| m["architecture"]["emb_dim"] = json!(100)),
        ),
        (
            "one more output",
            &multi,
            Box::new(|m| {
                let o = m["architecture"]["outputs"][0].as_u64().unwrap();
                m["architecture"]["outputs"][0] = json!(o + 1);
            }),
        ),
        (
            "no target scales",
            &multi,
            Box::new(|m| m["architecture"]["target_scale"] = json!([])),
        ),
        (
            "metadata-only mode over these weights",
            &multi,
            Box::new(|m| m["architecture"]["mode"] = json!("metadata_only")),
        ),
        // Before: these loaded and then panicked on every predict.
        (
            "selected feature out of range",
            &multi,
            Box::new(|m| m["features"]["selected"][0] = json!(100_000)),
        ),
        (
            "shortened mean",
            &multi,
            Box::new(|m| {
                m["features"]["mean"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "features null",
            &multi,
            Box::new(|m| m["features"] = Value::Null),
        ),
        (
            "empty label list",
            &multi,
            Box::new(|m| m["tasks"][0]["labels"] = json!([])),
        ),
        (
            "one label short",
            &multi,
            Box::new(|m| {
                m["tasks"][0]["labels"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "a label twice",
            &multi,
            Box::new(|m| m["tasks"][0]["labels"][1] = m["tasks"][0]["labels"][0].clone()),
        ),
        (
            "zero std",
            &multi,
            Box::new(|m| m["features"]["std"][3] = json!(0.0)),
        ),
        (
            "negative std",
            &multi,
            Box::new(|m| m["features"]["std"][0] = json!(-1.0)),
        ),
        (
            "threshold above 1",
            &binary,
            Box::new(|m| m["tasks"][0]["thresholds"] = json!([1.5])),
        ),
        (
            "negative threshold",
            &binary,
            Box::new(|m| m["tasks"][0]["thresholds"] = json!([-0.1])),
        ),
        (
            "no threshold",
            &binary,
            Box::new(|m| m["tasks"][0]["thresholds"] = json!([])),
        ),
        (
            "binary with three labels",
            &binary,
            Box::new(|m| m["tasks"][0]["labels"] = json!(["a", "b", "c"])),
        ),
        (
            "binary relabelled multiclass",
            &binary,
            Box::new(|m| m["tasks"][0]["kind"] = json!("multiclass")),
        ),
    ];
    for (i, (what, src, edit)) in cases.into_iter().enumerate() {
        let dir = tampered(src, &format!("case{i}"), edit);
        let msg = refused(&b, &dir, what);
        assert!(!msg.is_empty(), "{what}");
        // A hot swap checks exactly like a load.
        let live = Model::load(src, Arc::clone(&b)).unwrap();
        assert!(tandem::model::load_heads(&dir, &b).is_err(), "{what}: swap");
        assert_eq!(live.heads().version, 0);
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir_all(multi);
    let _ = std::fs::remove_dir_all(binary);
}

#[test]
fn non_finite_weights_are_refused_even_with_a_matching_hash() {
    let b = Arc::new(common::load(Variant::Int8));
    let src = tmp("nan-src");
    trained_bundle(&b, "trec.jsonl", "label", TaskKind::Multiclass, &src);
    let (m, mut w) = bundle::load(&src).unwrap();
    let first = w.keys().next().unwrap().clone();
    *w.get_mut(&first).unwrap().iter_mut().next().unwrap() = f32::NAN;
    // Written by hand: `bundle::save` itself refuses non-finite weights.
    let dir = tmp("nan");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = w
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                a.shape().to_vec(),
                a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes.iter().map(|(k, s, d)| {
        (
            k.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap(),
        )
    });
    let wpath = dir.join(bundle::WEIGHTS_FILE);
    safetensors::serialize_to_file(views, None, &wpath).unwrap();
    let mut m = m;
    m.weights_sha256 = tandem::backbone::sha256_file(&wpath).unwrap();
    std::fs::write(
        dir.join(bundle::MANIFEST_FILE),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
    let e = Model::load(&dir, Arc::clone(&b)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.message().contains("NaN"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(src);
}

#[test]
fn the_model_card_is_saved_with_real_numbers_and_never_read() {
    let b = Arc::new(common::load(Variant::Int8));
    let dir = tmp("card");
    trained_bundle(&b, "trec.jsonl", "label", TaskKind::Multiclass, &dir);
    let card = std::fs::read_to_string(dir.join(bundle::CARD_FILE)).unwrap();
    let (m, _) = bundle::load(&dir).unwrap();
    let n_train = m.metrics["n_train"].as_u64().unwrap();
    let accuracy = m.metrics["tasks"]["label"]["accuracy"].as_f64().unwrap();
    for fact in [
        format!("Trained on {n_train} labelled examples"),
        format!("| accuracy | {accuracy:.4} |"),
        format!("graph sha256 `{}`", m.backbone.graph_sha256),
        "mode: `two_stage`".to_string(),
        "## Intended use".to_string(),
        "## Limits".to_string(),
    ] {
        assert!(card.contains(&fact), "{fact}:\n{card}");
    }
    let before = Model::load(&dir, Arc::clone(&b))
        .unwrap()
        .predict(&["Who wrote Hamlet?"])
        .unwrap();
    // A card is documentation: one that would hang or exhaust memory if it were read (an
    // endless device) changes nothing about loading or predictions.
    std::fs::remove_file(dir.join(bundle::CARD_FILE)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join(bundle::CARD_FILE)).unwrap();
    let after = Model::load(&dir, Arc::clone(&b))
        .unwrap()
        .predict(&["Who wrote Hamlet?"])
        .unwrap();
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    let _ = std::fs::remove_dir_all(dir);
}
