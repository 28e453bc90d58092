//! Bundles find their metadata features by name: one trained on an older feature set (set 1, the
//! 67 features before the n-gram group) or with its features in another order loads and predicts
//! exactly as it was trained, natively and through ONNX heads; one naming a feature this build
//! does not produce is refused, naming it. Needs `scripts/setup.sh`.

mod common;

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, Axis};
use serde_json::Value;
use tandem::backbone::HeadsEngine;
use tandem::bundle::{self, BackboneRef};
use tandem::data::{read_rows, TaskKind, TaskSpec};
use tandem::heads::predict_arrays;
use tandem::model::Model;
use tandem::train::{manifest_for, split_examples, Examples, Mode, TrainConfig};
use tandem::{Backbone, ErrorKind, Variant};

/// The first 67 features: the whole of feature set 1.
const SET_1: usize = 67;

/// Trains a two-stage bundle whose extractor produced the columns `cols` of today's features
/// (in that order) and saves it with their names; returns the expected outputs of the trained
/// heads on `probe` texts, computed from those columns directly.
fn train_on_columns(
    b: &Arc<Backbone>,
    cols: &[usize],
    out: &Path,
    probe: &[&str],
) -> Vec<Array2<f32>> {
    let rows = read_rows(&tandem::home::data_dir().join("trec.jsonl")).unwrap();
    let rows: Vec<_> = rows.into_iter().step_by(13).take(200).collect();
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (spec, targets) =
        TaskSpec::infer("label", TaskKind::Multiclass, "label", &rows, None).unwrap();
    let old = |texts: &[&str]| tandem::metadata::extract_batch(texts).select(Axis(1), cols);
    let all = Examples {
        emb: b.embed(&refs).unwrap(),
        feats: old(&refs),
        targets: vec![targets],
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
    };
    let mut cfg = TrainConfig {
        mode: Mode::TwoStage,
        seed: 3,
        ..Default::default()
    };
    cfg.metadata.stage.epochs = 3;
    cfg.head.stage.epochs = 3;
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let trained = tandem::train::train(&[spec], &tr, &va, &cfg, &mut |_| true).unwrap();
    let all_names = tandem::metadata::feature_names();
    let names: Vec<&str> = cols.iter().map(|&c| all_names[c]).collect();
    let m = manifest_for(&trained, BackboneRef::of(b), &names, &cfg);
    bundle::save(out, &m, &trained.heads.network.weights(), false).unwrap();
    let heads = &trained.heads;
    let feats = heads
        .normalizer
        .as_ref()
        .unwrap()
        .transform(old(probe).view());
    predict_arrays(heads, b.embed(probe).unwrap().view(), feats.view(), None).unwrap()
}

fn max_diff(a: &[Array2<f32>], b: &[Array2<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join(bundle::MANIFEST_FILE);
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(path, m.to_string()).unwrap();
}

#[test]
fn bundles_of_older_or_reordered_feature_sets_predict_as_trained() {
    let b = Arc::new(common::load(Variant::Int8));
    let mut onnx_opts = b.options().clone();
    onnx_opts.heads = HeadsEngine::Onnx;
    let onnx_bb = Arc::new(Backbone::load(b.dir(), onnx_opts).unwrap());
    let probe = [
        "Who wrote the the the the Iliad ?",
        "How many feet are in a mile ?",
        "win win win a free free free prize",
    ];
    let n = tandem::metadata::num_features();
    assert!(n > SET_1, "the n-gram group is new in set 2");
    let older: Vec<usize> = (0..SET_1).collect();
    let reversed: Vec<usize> = (0..n).rev().collect();
    for (what, cols, version) in [("set 1", older, None), ("reversed", reversed, Some(2))] {
        let dir = common::tmp("feature-sets", what);
        let want = train_on_columns(&b, &cols, &dir, &probe);
        edit_manifest(&dir, |m| match version {
            // A bundle from before feature sets were recorded has no version.
            None => {
                m["features"].as_object_mut().unwrap().remove("version");
            }
            Some(v) => assert_eq!(m["features"]["version"], v),
        });
        let (manifest, _) = bundle::load(&dir).unwrap();
        assert_eq!(manifest.features.as_ref().unwrap().names.len(), cols.len());
        assert_eq!(manifest.features.unwrap().version, version.unwrap_or(1));
        for backbone in [&b, &onnx_bb] {
            let model = Model::load(&dir, Arc::clone(backbone)).unwrap();
            let (got, _) = model.predict_raw(&probe).unwrap();
            let d = max_diff(&got, &want);
            assert!(
                d <= 1e-5,
                "{what}, {:?} heads: {d}",
                backbone.options().heads
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_bundle_reading_a_feature_this_build_lacks_is_refused_naming_it() {
    let b = Arc::new(common::load(Variant::Int8));
    let dir = common::tmp("feature-sets", "unknown");
    train_on_columns(&b, &(0..SET_1).collect::<Vec<_>>(), &dir, &["x"]);
    edit_manifest(&dir, |m| {
        let first = m["features"]["selected"][0].as_u64().unwrap() as usize;
        m["features"]["names"][first] = "sentiment_from_the_future".into();
    });
    let e = Model::load(&dir, Arc::clone(&b)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format, "{e}");
    assert!(e.message().contains("`sentiment_from_the_future`"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
