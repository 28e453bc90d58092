//! Training end to end on real demo data and real embeddings: every task kind, every mode,
//! determinism, multi-task, unfreezing, cancellation, and bundles that round-trip and refuse
//! what they should. Needs `scripts/setup.sh`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::Array2;
use tandem::bundle::{self, BackboneRef};
use tandem::data::{read_rows, TaskKind, TaskSpec};
use tandem::model::Model;
use tandem::train::{manifest_for, split_examples};
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, ErrorKind, Variant};

fn backbone() -> Arc<Backbone> {
    Arc::new(common::load(Variant::Int8))
}

/// The first `n` rows of a demo dataset, with texts, embeddings and raw features.
fn dataset(
    b: &Backbone,
    file: &str,
    n: usize,
    fields: &[(&str, TaskKind)],
) -> (Vec<TaskSpec>, Examples, Vec<String>) {
    let rows = read_rows(&tandem::home::data_dir().join(file)).unwrap();
    // Every 7th row spreads the sample over the file (files are grouped by label or source).
    let rows: Vec<_> = rows.into_iter().step_by(7).take(n).collect();
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut specs = Vec::new();
    let mut targets = Vec::new();
    for (f, k) in fields {
        let (s, t) = TaskSpec::infer(f, *k, f, &rows, None).unwrap();
        specs.push(s);
        targets.push(t);
    }
    let ex = Examples {
        emb: b.embed(&refs).unwrap(),
        feats: tandem::metadata::extract_batch(&refs),
        targets,
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
    };
    (specs, ex, texts)
}

fn quick(mode: Mode) -> TrainConfig {
    let mut c = TrainConfig {
        mode,
        seed: 3,
        ..Default::default()
    };
    c.metadata.stage.epochs = 6;
    c.head.stage.epochs = 8;
    c
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("training", name)
}

#[test]
fn every_mode_learns_trec_and_same_seed_gives_same_weights() {
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 700, &[("label", TaskKind::Multiclass)]);
    for mode in [
        Mode::TwoStage,
        Mode::Joint,
        Mode::EmbeddingOnly,
        Mode::MetadataOnly,
    ] {
        let cfg = quick(mode);
        let (tr, va) = split_examples(&all, &cfg).unwrap();
        let a = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
        let again = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
        assert_eq!(
            a.heads.network.weights(),
            again.heads.network.weights(),
            "{mode:?} not deterministic"
        );
        let f1 = a.report.valid_metrics["macro_f1"].as_f64().unwrap();
        // Six classes: chance is ~0.17 macro-F1. Metadata alone is weak but above chance.
        let floor = if mode == Mode::MetadataOnly { 0.2 } else { 0.6 };
        assert!(f1 > floor, "{mode:?}: macro-F1 {f1}");
        let other = TrainConfig {
            seed: 4,
            ..cfg.clone()
        };
        let c = tandem::train::train(&specs, &tr, &va, &other, &mut |_| true).unwrap();
        assert_ne!(
            a.heads.network.weights(),
            c.heads.network.weights(),
            "{mode:?}: seed ignored"
        );
    }
}

#[test]
fn binary_multilabel_and_regression_heads_train_and_round_trip_through_bundles() {
    let b = backbone();
    let cases: [(&str, &str, TaskKind, &str); 3] = [
        ("sms_spam.jsonl", "label", TaskKind::Binary, "roc_auc"),
        ("reuters.jsonl", "labels", TaskKind::Multilabel, "micro_f1"),
        ("vader.jsonl", "rating", TaskKind::Regression, "pearson"),
    ];
    for (file, field, kind, metric) in cases {
        let (specs, all, texts) = dataset(&b, file, 500, &[(field, kind)]);
        let mut cfg = quick(Mode::TwoStage);
        cfg.loss.class_weights = tandem::train::config::ClassWeights::Balanced;
        let (tr, va) = split_examples(&all, &cfg).unwrap();
        let trained = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
        let m = &trained.report.valid_metrics;
        let v = m[metric]
            .as_f64()
            .unwrap_or_else(|| panic!("{file}: no {metric} in {m}"));
        assert!(v > 0.3, "{file}: {metric} {v}");
        if kind != TaskKind::Regression {
            assert!(
                !trained.heads.tasks[0].thresholds.is_empty(),
                "{file}: thresholds not tuned"
            );
        }
        // Bundle round trip: same predictions from the loaded model as from the trained heads.
        let dir = tmp(&format!("rt-{field}"));
        let manifest = manifest_for(
            &trained,
            BackboneRef::of(&b),
            &tandem::metadata::feature_names(),
            &cfg,
        );
        bundle::save(&dir, &manifest, &trained.heads.network.weights(), false).unwrap();
        let model = Model::load(&dir, Arc::clone(&b)).unwrap();
        let sample: Vec<&str> = texts.iter().take(20).map(String::as_str).collect();
        let direct = Model::from_parts(Arc::clone(&b), manifest.clone(), trained.heads.clone());
        assert_eq!(
            model.predict(&sample).unwrap(),
            direct.predict(&sample).unwrap()
        );
        // f16 weights: half the file, nearly the same outputs.
        let dir16 = tmp(&format!("rt16-{field}"));
        bundle::save(&dir16, &manifest, &trained.heads.network.weights(), true).unwrap();
        let m16 = Model::load(&dir16, Arc::clone(&b)).unwrap();
        let (p32, _) = model.predict_raw(&sample).unwrap();
        let (p16, _) = m16.predict_raw(&sample).unwrap();
        let diff = (&p32[0] - &p16[0])
            .mapv(f32::abs)
            .fold(0.0f32, |a, &x| a.max(x));
        assert!(diff < 0.05, "{file}: f16 changes outputs by {diff}");
        let size = |d: &PathBuf| {
            std::fs::metadata(d.join(bundle::WEIGHTS_FILE))
                .unwrap()
                .len()
        };
        assert!(size(&dir16) * 10 < size(&dir) * 6);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(dir16);
    }
}

#[test]
fn two_tasks_train_together_with_uncertainty_weighting() {
    let b = backbone();
    let (specs, all, texts) = dataset(
        &b,
        "trec.jsonl",
        600,
        &[
            ("label", TaskKind::Multiclass),
            ("fine", TaskKind::Multiclass),
        ],
    );
    let mut cfg = quick(Mode::TwoStage);
    cfg.loss.multitask = tandem::train::config::MultiTask::Uncertainty;
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let trained = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let tasks = trained.report.valid_metrics["tasks"].as_object().unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks["label"]["macro_f1"].as_f64().unwrap() > 0.5);
    // The learned weights exp(-s) are reported; the gradient of s is 1 - exp(-s)·L, so the
    // task with the larger loss (fine, ~50 classes) learns the smaller weight.
    let last = trained.report.stages.last().unwrap();
    let w = last.learned_weights.as_ref().unwrap();
    let losses = &last.history[last.best_epoch].task_losses;
    assert!(losses[1] > losses[0], "{losses:?}");
    assert!(w[1] < w[0] && w[0] > 0.0, "{w:?}");
    let named = tandem::train::manifest::learned_weights(&trained).unwrap();
    assert_eq!((named["label"], named["fine"]), (w[0], w[1]));
    let model = Model::from_parts(
        b,
        manifest_for(
            &trained,
            BackboneRef::of(&backbone()),
            &tandem::metadata::feature_names(),
            &cfg,
        ),
        trained.heads,
    );
    let p = model.predict(&[texts[0].as_str()]).unwrap();
    assert_eq!(p[0].len(), 2);
    assert_eq!(p[0][1].task, "fine");
}

#[test]
fn unfreezing_changes_the_encoder_only_from_its_epoch() {
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 400, &[("label", TaskKind::Multiclass)]);
    let frozen_cfg = quick(Mode::TwoStage);
    let mut unfreeze_cfg = frozen_cfg.clone();
    unfreeze_cfg.unfreeze.at_epoch = Some(2);
    unfreeze_cfg.head.stage.patience = 0;
    let mut frozen_cfg = frozen_cfg;
    frozen_cfg.head.stage.patience = 0;
    let (tr, va) = split_examples(&all, &frozen_cfg).unwrap();
    let enc = |t: &tandem::train::Trained| {
        t.heads
            .network
            .weights()
            .into_iter()
            .filter(|(k, _)| k.starts_with("encoder"))
            .collect::<Vec<_>>()
    };
    let frozen = tandem::train::train(&specs, &tr, &va, &frozen_cfg, &mut |_| true).unwrap();
    let unfrozen = tandem::train::train(&specs, &tr, &va, &unfreeze_cfg, &mut |_| true).unwrap();
    // Stage 1 is identical (same seed), so only unfreezing can make the encoders differ.
    assert_ne!(enc(&frozen), enc(&unfrozen));
    let mut one_epoch = unfreeze_cfg.clone();
    one_epoch.head.stage.epochs = 2; // ends before the unfreeze epoch
    let before = tandem::train::train(&specs, &tr, &va, &one_epoch, &mut |_| true).unwrap();
    assert_eq!(enc(&frozen), enc(&before));
}

#[test]
fn cancelling_from_the_progress_callback_stops_with_cancelled() {
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 200, &[("label", TaskKind::Multiclass)]);
    let cfg = quick(Mode::TwoStage);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let mut seen = 0;
    // The steps run on rayon's pool, but a host's callback (C, Go) is called on its own thread.
    let caller = std::thread::current().id();
    let e = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| {
        assert_eq!(std::thread::current().id(), caller);
        seen += 1;
        seen < 3
    })
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(seen, 3);
}

#[test]
fn bundles_refuse_other_backbones_unknown_formats_and_corruption() {
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 200, &[("label", TaskKind::Multiclass)]);
    let cfg = quick(Mode::EmbeddingOnly);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let trained = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let mut manifest = manifest_for(
        &trained,
        BackboneRef::of(&b),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    let dir = tmp("refuse");
    bundle::save(&dir, &manifest, &trained.heads.network.weights(), false).unwrap();
    assert!(Model::load(&dir, Arc::clone(&b)).is_ok());
    // Another backbone.
    manifest.backbone.family_sha256 = "0".repeat(64);
    bundle::save(&dir, &manifest, &trained.heads.network.weights(), false).unwrap();
    assert_eq!(
        Model::load(&dir, Arc::clone(&b)).unwrap_err().kind(),
        ErrorKind::BackboneMismatch
    );
    // Unknown format.
    let mpath = dir.join(bundle::MANIFEST_FILE);
    let text = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace("tandem-bundle/1", "tandem-bundle/9");
    std::fs::write(&mpath, text).unwrap();
    let e = Model::load(&dir, Arc::clone(&b)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.message().contains("tandem-bundle/9"));
    // Corrupt weights.
    let good = manifest_for(
        &trained,
        BackboneRef::of(&b),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    bundle::save(&dir, &good, &trained.heads.network.weights(), false).unwrap();
    let w = dir.join(bundle::WEIGHTS_FILE);
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&w, bytes).unwrap();
    assert_eq!(
        Model::load(&dir, Arc::clone(&b)).unwrap_err().kind(),
        ErrorKind::Format
    );
    // Missing directory.
    assert_eq!(
        Model::load(&dir.join("nope"), b).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Saving over a directory that is not a bundle is refused, and it is left alone.
    let other = tmp("not-a-bundle");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), b"precious").unwrap();
    assert!(bundle::save(&other, &good, &trained.heads.network.weights(), false).is_err());
    assert_eq!(std::fs::read(other.join("keep.txt")).unwrap(), b"precious");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other);
}

#[test]
fn hot_swapped_heads_are_used_whole() {
    let b = backbone();
    let (specs, all, texts) = dataset(&b, "trec.jsonl", 200, &[("label", TaskKind::Multiclass)]);
    let cfg = quick(Mode::EmbeddingOnly);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let t1 = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let t2 = tandem::train::train(
        &specs,
        &tr,
        &va,
        &TrainConfig {
            seed: 9,
            ..cfg.clone()
        },
        &mut |_| true,
    )
    .unwrap();
    let manifest = manifest_for(
        &t1,
        BackboneRef::of(&b),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    let model = Model::from_parts(Arc::clone(&b), manifest, t1.heads.clone());
    let sample = [texts[0].as_str(), texts[1].as_str()];
    let (p1, v1) = model.predict_raw(&sample).unwrap();
    assert_eq!(v1, 0);
    let v = model.swap_heads(t2.heads.clone()).unwrap();
    let (p2, v2) = model.predict_raw(&sample).unwrap();
    assert_eq!((v, v2), (1, 1));
    let direct: Array2<f32> = Model::from_parts(Arc::clone(&b), model.manifest().clone(), t2.heads)
        .predict_raw(&sample)
        .unwrap()
        .0
        .remove(0);
    assert_eq!(p2[0], direct);
    assert_ne!(p1[0], p2[0]);
}

#[test]
fn divergence_and_non_finite_inputs_stop_with_a_numeric_error_instead_of_hanging() {
    // Before: a NaN validation score made threshold tuning loop forever (and the progress
    // callback was never called again, so a host could not even cancel).
    let b = backbone();
    let (specs, all, _) = dataset(&b, "sms_spam.jsonl", 200, &[("label", TaskKind::Binary)]);
    let mut cfg = quick(Mode::EmbeddingOnly);
    cfg.head.stage.lr = 1e30;
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let e = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Numeric, "{e}");
    assert!(e.message().contains("diverged"), "{e}");
    // NaN in the inputs (a corrupt cache, say): refused before any step.
    let cfg = quick(Mode::EmbeddingOnly);
    let mut bad = tr.clone();
    bad.emb[[3, 7]] = f32::NAN;
    let e = tandem::train::train(&specs, &bad, &va, &cfg, &mut |_| true)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Numeric);
    assert!(e.message().contains("row 3, column 7"), "{e}");
    // Threshold tuning reports progress, and cancelling there cancels the run.
    let mut stages = Vec::new();
    let e = tandem::train::train(&specs, &tr, &va, &cfg, &mut |r| {
        stages.push(r.stage.clone());
        r.stage != "thresholds"
    })
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(stages.last().map(String::as_str), Some("thresholds"));
}

#[test]
fn majority_votes_of_a_binary_head_use_its_threshold() {
    // Before: each text voted for the argmax of the one output of a binary head, so every
    // group, all-ham ones included, came out "spam" with p = 1.
    let b = backbone();
    let (specs, all, texts) = dataset(&b, "sms_spam.jsonl", 300, &[("label", TaskKind::Binary)]);
    let cfg = quick(Mode::EmbeddingOnly);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let trained = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let manifest = manifest_for(
        &trained,
        BackboneRef::of(&b),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    let model = Model::from_parts(Arc::clone(&b), manifest, trained.heads);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let singles = model.predict(&refs).unwrap();
    let spam: Vec<&str> = (0..refs.len())
        .filter(|&i| singles[i][0].labels[0] == "spam")
        .map(|i| refs[i])
        .take(3)
        .collect();
    let ham: Vec<&str> = (0..refs.len())
        .filter(|&i| singles[i][0].labels[0] == "ham")
        .map(|i| refs[i])
        .take(3)
        .collect();
    assert_eq!((spam.len(), ham.len()), (3, 3));
    // Group "h": three ham texts; group "m": two spam and one ham; group "s": three spam.
    let group_texts: Vec<&str> = [&ham[..], &spam[..2], &ham[..1], &spam[..]].concat();
    let keys: Vec<String> = ["h", "h", "h", "m", "m", "m", "s", "s", "s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let groups = model
        .predict_groups(&group_texts, &keys, tandem::eval::Aggregation::Majority)
        .unwrap();
    let got: Vec<(&str, &str, f32)> = groups
        .iter()
        .map(|(k, p)| (k.as_str(), p[0].labels[0].as_str(), p[0].probabilities[1]))
        .collect();
    assert_eq!(
        got,
        vec![
            ("h", "ham", 0.0),
            ("m", "spam", 2.0 / 3.0),
            ("s", "spam", 1.0)
        ]
    );
}

#[test]
fn checkpoints_keep_the_best_epochs_by_the_monitor_and_load_as_models() {
    use tandem::train::checkpoint::{CheckpointIndex, CheckpointPolicy, Checkpoints, INDEX_FILE};
    let b = backbone();
    let (specs, all, texts) = dataset(&b, "trec.jsonl", 600, &[("label", TaskKind::Multiclass)]);
    let mut cfg = quick(Mode::TwoStage);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    cfg.head.stage.monitor = tandem::train::config::Monitor::MacroF1;
    cfg.head.stage.patience = 0;
    let dir = tmp("checkpoints");
    let _ = std::fs::remove_dir_all(&dir);
    let policy = CheckpointPolicy {
        dir: dir.clone(),
        keep_top: 2,
        every: 3,
    };
    let save_cfg = cfg.clone();
    let mut ckpt = Checkpoints::new(
        policy,
        Box::new(|p: &std::path::Path, t: &tandem::train::Trained| {
            tandem::train::manifest::save_trained(p, &b, t, &save_cfg)
        }),
    )
    .unwrap();
    let trained = tandem::train::train_checkpointed(
        &specs,
        &tr,
        &va,
        &cfg,
        None,
        Some(&mut ckpt),
        &mut |_| true,
    )
    .unwrap();
    drop(ckpt);
    let stage = trained.report.stages.last().unwrap();
    assert_eq!(stage.monitor, "macro_f1 of label (max)");
    let f1: Vec<f32> = stage.history.iter().map(|r| r.monitored.unwrap()).collect();
    // The kept weights are the first epoch with the highest macro-F1.
    let best = f1
        .iter()
        .enumerate()
        .fold(0, |b, (i, &v)| if v > f1[b] { i } else { b });
    assert_eq!(stage.best_epoch, best, "{f1:?}");
    assert_eq!(stage.best_monitored, f1[best]);

    let index: CheckpointIndex =
        serde_json::from_str(&std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap()).unwrap();
    let mut ranked = f1.clone();
    ranked.sort_by(|a, b| b.total_cmp(a));
    let mut top: Vec<f32> = index
        .checkpoints
        .iter()
        .filter(|c| c.top)
        .map(|c| c.value)
        .collect();
    top.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(top, ranked[..2], "the two best epochs are kept");
    let periodic: Vec<usize> = index
        .checkpoints
        .iter()
        .filter(|c| c.periodic)
        .map(|c| c.epoch + 1)
        .collect();
    assert_eq!(periodic, [3, 6]);
    for c in &index.checkpoints {
        assert_eq!(c.stage, "stage2");
        assert!(
            dir.join(&c.bundle).join("manifest.json").is_file(),
            "{}",
            c.bundle
        );
    }
    // The best checkpoint is the model training returned (the best epoch restored), bit for
    // bit, thresholds included.
    let best_dir = dir.join(index.best.as_deref().unwrap());
    let final_dir = tmp("checkpoints-final");
    tandem::train::manifest::save_trained(&final_dir, &b, &trained, &cfg).unwrap();
    let sample: Vec<&str> = texts.iter().take(40).map(String::as_str).collect();
    let from_ckpt = Model::load(&best_dir, Arc::clone(&b)).unwrap();
    let from_final = Model::load(&final_dir, Arc::clone(&b)).unwrap();
    assert_eq!(
        from_ckpt.predict_raw(&sample).unwrap().0,
        from_final.predict_raw(&sample).unwrap().0
    );
    // Another run may not write into a used directory.
    let none: tandem::train::checkpoint::SaveBundle<'_> = Box::new(|_, _| Ok(()));
    let used = CheckpointPolicy {
        dir: dir.clone(),
        keep_top: 1,
        every: 0,
    };
    assert_eq!(
        Checkpoints::new(used, none).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn a_monitor_the_task_lacks_is_refused_before_training() {
    use tandem::train::config::Monitor;
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 120, &[("label", TaskKind::Multiclass)]);
    let mut cfg = quick(Mode::EmbeddingOnly);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    cfg.head.stage.monitor = Monitor::Rmse;
    let e = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true)
        .err()
        .unwrap();
    assert!(
        e.message().contains("needs a regression task"),
        "{}",
        e.message()
    );
    cfg.head.stage.monitor = Monitor::Accuracy;
    cfg.head.stage.monitor_task = Some("nope".into());
    let e = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true)
        .err()
        .unwrap();
    assert!(
        e.message().contains("`nope` is not a task"),
        "{}",
        e.message()
    );
    cfg.head.stage.monitor_task = Some("label".into());
    let t = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    assert_eq!(t.report.stages[0].monitor, "accuracy of label (max)");
}

#[test]
fn a_pretrained_encoder_from_another_bundle_replaces_stage_one() {
    use tandem::nn::Layer;
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 500, &[("label", TaskKind::Multiclass)]);
    let mut cfg = quick(Mode::TwoStage);
    cfg.metadata.top_k = 40;
    cfg.metadata.validation_split = 0.3;
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let first = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let dir = tmp("pretrained-encoder");
    tandem::train::manifest::save_trained(&dir, &b, &first, &cfg).unwrap();
    let encoder_of = |t: &tandem::train::Trained| -> Vec<Vec<f32>> {
        let e = t.heads.network.encoder.as_ref().unwrap();
        e.params()
            .iter()
            .map(|p| p.value.iter().copied().collect())
            .collect()
    };

    // two_stage from it: no stage 1, the encoder and normalizer as saved (frozen in stage 2).
    let mut again = quick(Mode::TwoStage);
    again.seed = 9;
    again.metadata.init_encoder = Some(dir.clone());
    let second = tandem::train::train(&specs, &tr, &va, &again, &mut |_| true).unwrap();
    let stages: Vec<&str> = second
        .report
        .stages
        .iter()
        .map(|s| s.stage.as_str())
        .collect();
    assert_eq!(stages, ["stage2"]);
    assert_eq!(encoder_of(&second), encoder_of(&first));
    let (n1, n2) = (
        first.heads.normalizer.as_ref().unwrap(),
        second.heads.normalizer.as_ref().unwrap(),
    );
    assert_eq!(
        (&n1.selected, &n1.mean, &n1.std),
        (&n2.selected, &n2.mean, &n2.std)
    );
    assert_eq!(n2.selected.len(), 40);
    // It learns (guessing among TREC's 6 classes would be about 0.17 accuracy).
    let acc = |t: &tandem::train::Trained| t.report.valid_metrics["accuracy"].as_f64().unwrap();
    assert!(acc(&second) > 0.45, "{} vs {}", acc(&second), acc(&first));

    // joint from it: the encoder trains further from those weights.
    let mut joint = quick(Mode::Joint);
    joint.metadata.init_encoder = Some(dir.clone());
    let third = tandem::train::train(&specs, &tr, &va, &joint, &mut |_| true).unwrap();
    assert_ne!(encoder_of(&third), encoder_of(&first));
    assert_eq!(
        third.heads.normalizer.as_ref().unwrap().selected,
        n1.selected
    );

    // Modes without an encoder to start, and bundles without one, are refused.
    let mut wrong = quick(Mode::EmbeddingOnly);
    wrong.metadata.init_encoder = Some(dir.clone());
    assert!(wrong
        .validate()
        .unwrap_err()
        .message()
        .contains("two_stage or joint"));
    let plain =
        tandem::train::train(&specs, &tr, &va, &quick(Mode::EmbeddingOnly), &mut |_| true).unwrap();
    let no_encoder = tmp("no-encoder");
    tandem::train::manifest::save_trained(&no_encoder, &b, &plain, &quick(Mode::EmbeddingOnly))
        .unwrap();
    let mut from_plain = quick(Mode::TwoStage);
    from_plain.metadata.init_encoder = Some(no_encoder);
    let e = tandem::train::train(&specs, &tr, &va, &from_plain, &mut |_| true)
        .err()
        .unwrap();
    assert!(
        e.message().contains("no metadata encoder"),
        "{}",
        e.message()
    );
}

#[test]
fn stage_one_trains_on_self_supervised_targets_and_an_encoder_pretrains_without_labels() {
    use tandem::nn::Layer;
    use tandem::train::pretrain::{pretrain, save_encoder};
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 500, &[("label", TaskKind::Multiclass)]);
    let base = quick(Mode::TwoStage);
    let (tr, va) = split_examples(&all, &base).unwrap();
    let names = |t: &tandem::train::Trained| -> Vec<String> {
        let mut n: Vec<String> = t.heads.network.weights().into_keys().collect();
        n.sort();
        n
    };
    let encoder_of = |net: &tandem::heads::Network| -> Vec<Vec<f32>> {
        let e = net.encoder.as_ref().unwrap();
        e.params()
            .iter()
            .map(|p| p.value.iter().copied().collect())
            .collect()
    };

    // Labels plus masked features and a group: stage 1 reports a loss per target, the
    // targets' heads are dropped after it, and a seed gives the same weights twice.
    let plain = tandem::train::train(&specs, &tr, &va, &base, &mut |_| true).unwrap();
    let mut mixed = base.clone();
    mixed.metadata.stage1_targets =
        vec!["labels".into(), "masked_features".into(), "length".into()];
    let one = tandem::train::train(&specs, &tr, &va, &mixed, &mut |_| true).unwrap();
    let two = tandem::train::train(&specs, &tr, &va, &mixed, &mut |_| true).unwrap();
    assert_eq!(one.heads.network.weights(), two.heads.network.weights());
    assert_eq!(names(&one), names(&plain));
    assert_ne!(
        encoder_of(&one.heads.network),
        encoder_of(&plain.heads.network)
    );
    let s1 = &one.report.stages[0];
    assert_eq!(s1.stage, "stage1");
    assert!(s1.history.iter().all(|r| r.task_losses.len() == 3));

    // Self-supervised targets alone: the tasks' auxiliary heads stay as initialized.
    let mut unlabelled = base.clone();
    unlabelled.metadata.stage1_targets = vec!["masked_features".into()];
    let t = tandem::train::train(&specs, &tr, &va, &unlabelled, &mut |_| true).unwrap();
    let aux = |t: &tandem::train::Trained| -> Vec<Vec<f32>> {
        t.heads.network.aux_heads[0]
            .params()
            .iter()
            .map(|p| p.value.iter().copied().collect())
            .collect()
    };
    let fresh = tandem::heads::Network::new(
        t.heads.network.arch.clone(),
        &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(base.seed),
    )
    .unwrap();
    let fresh_aux: Vec<Vec<f32>> = fresh.aux_heads[0]
        .params()
        .iter()
        .map(|p| p.value.iter().copied().collect())
        .collect();
    // As initialized, but for stage 2's decoupled weight decay, which scales every weight
    // (no gradient reaches them) by one factor.
    let ratios: Vec<f32> = aux(&t)[0]
        .iter()
        .zip(&fresh_aux[0])
        .map(|(a, f)| a / f)
        .collect();
    assert!(ratios
        .iter()
        .all(|r| (r - ratios[0]).abs() < 1e-5 && *r > 0.99 && *r <= 1.0));
    assert_eq!(aux(&t)[1], fresh_aux[1]);
    assert!(t.report.stages[0]
        .history
        .iter()
        .all(|r| r.metric.is_none()));

    // Pre-training on the features of texts without labels: the validation loss of the
    // masked features ends below that of predicting their mean (0 after normalizing), which
    // is computed here independently, from the same hidden entries' values.
    let mut cfg = TrainConfig {
        seed: 4,
        ..Default::default()
    };
    cfg.metadata.stage.epochs = 30;
    cfg.metadata.stage1_targets = vec!["masked_features".into(), "readability".into()];
    let pre = pretrain(tr.feats.view(), va.feats.view(), &cfg, &mut |_| true).unwrap();
    let again = pretrain(tr.feats.view(), va.feats.view(), &cfg, &mut |_| true).unwrap();
    assert_eq!(pre.heads.network.weights(), again.heads.network.weights());
    assert!(pre.heads.tasks.is_empty());
    assert!(pre.heads.network.aux_heads.is_empty());
    let stage = &pre.report.stages[0];
    let first = stage.history[0].task_losses[0];
    let best = stage.history[stage.best_epoch].task_losses[0];
    assert!(best < first, "{best} vs {first}");
    let norm = pre.heads.normalizer.as_ref().unwrap();
    let z = norm.transform(va.feats.view());
    // Predicting the mean: the mean square of the normalized values, about 1 over all
    // entries (a random 15% share of them is what the loss averages over).
    let mean_guess = z.iter().map(|v| v * v).sum::<f32>() / z.len() as f32;
    assert!(
        best < 0.85 * mean_guess,
        "masked-feature loss {best} vs {mean_guess} for the mean"
    );

    // Saved as an encoder bundle: serving refuses it, --init-encoder starts from it.
    let dir = tmp("encoder-bundle");
    save_encoder(&dir, &pre, &cfg).unwrap();
    let e = Model::load(&dir, b.clone()).err().unwrap();
    assert!(
        e.message().contains("pre-trained metadata encoder"),
        "{}",
        e.message()
    );
    let mut init = quick(Mode::TwoStage);
    init.metadata.init_encoder = Some(dir.clone());
    let from = tandem::train::train(&specs, &tr, &va, &init, &mut |_| true).unwrap();
    assert_eq!(
        encoder_of(&from.heads.network),
        encoder_of(&pre.heads.network)
    );
    assert_eq!(from.heads.normalizer.as_ref().unwrap(), norm);
    let acc = from.report.valid_metrics["accuracy"].as_f64().unwrap();
    assert!(acc > 0.45, "{acc}");

    // Labels cannot be a pre-training target; modes without a stage 1 ignore the targets.
    let mut labelled = cfg.clone();
    labelled.metadata.stage1_targets = vec!["labels".into(), "length".into()];
    assert!(pretrain(tr.feats.view(), va.feats.view(), &labelled, &mut |_| true).is_err());
    let mut joint = quick(Mode::Joint);
    let default_joint = tandem::train::train(&specs, &tr, &va, &joint, &mut |_| true).unwrap();
    joint.metadata.stage1_targets = vec!["labels".into(), "length".into()];
    let other_joint = tandem::train::train(&specs, &tr, &va, &joint, &mut |_| true).unwrap();
    assert_eq!(
        default_joint.heads.network.weights(),
        other_joint.heads.network.weights()
    );
    // metadata_only trains its auxiliary heads (the model) on the labels whatever the targets.
    let mut meta = quick(Mode::MetadataOnly);
    meta.metadata.stage1_targets = vec!["masked_features".into()];
    let m = tandem::train::train(&specs, &tr, &va, &meta, &mut |_| true).unwrap();
    assert!(m.report.valid_metrics["accuracy"].as_f64().unwrap() > 0.3);
}

#[test]
fn multi_sample_dropout_trains_deterministically_and_is_validated() {
    let b = backbone();
    let (specs, all, _) = dataset(&b, "trec.jsonl", 300, &[("label", TaskKind::Multiclass)]);
    let mut cfg = quick(Mode::Joint);
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let one = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    cfg.head.stage.dropout_samples = 4;
    let four = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let again = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    assert_eq!(four.heads.network.weights(), again.heads.network.weights());
    assert_ne!(four.heads.network.weights(), one.heads.network.weights());
    let acc = four.report.valid_metrics["accuracy"].as_f64().unwrap();
    assert!(acc > 0.45, "{acc}");
    cfg.head.stage.dropout_samples = 0;
    let e = cfg.validate().unwrap_err();
    assert!(e.message().contains("dropout_samples"), "{}", e.message());
}

#[test]
fn a_distilled_student_follows_its_teacher() {
    use tandem::train::distill::{teacher_outputs, teacher_targets};
    let b = backbone();
    let (specs, all, texts) = dataset(&b, "trec.jsonl", 500, &[("label", TaskKind::Multiclass)]);
    let cfg = quick(Mode::Joint);
    let (tr_idx, va_idx) = tandem::train::split_indices(&all, &cfg).unwrap();
    let (tr, va) = (all.select(&tr_idx), all.select(&va_idx));
    // The teacher learned shifted classes (each text's class + 1): a student that follows it
    // disagrees with the labels it is given, one that does not agrees with them.
    let shift = |e: &tandem::train::Examples| {
        let mut e = e.clone();
        if let tandem::data::Targets::Class(c) = &mut e.targets[0] {
            c.iter_mut().for_each(|k| *k = (*k + 1) % 6);
        }
        e
    };
    let mut tcfg = quick(Mode::Joint);
    tcfg.seed = 11;
    let taught =
        tandem::train::train(&specs, &shift(&tr), &shift(&va), &tcfg, &mut |_| true).unwrap();
    let dir = tmp("teacher");
    tandem::train::manifest::save_trained(&dir, &b, &taught, &tcfg).unwrap();
    let teacher =
        tandem::ensemble::Ensemble::new(vec![Model::load(&dir, b.clone()).unwrap()]).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let soft = teacher_outputs(&teacher, &refs, &specs).unwrap();
    let mut with_soft = all.clone();
    with_soft.soft = Some(soft.clone());
    let (str_, sva) = (with_soft.select(&tr_idx), with_soft.select(&va_idx));

    // Agreement with the teacher's decisions on the validation texts.
    let decisions = |t: &tandem::train::Trained| -> Vec<usize> {
        let probs = tandem::heads::predict_arrays(
            &t.heads,
            va.emb.view(),
            t.heads
                .normalizer
                .as_ref()
                .map(|n| n.transform(va.feats.view()))
                .unwrap()
                .view(),
            None,
        )
        .unwrap();
        probs[0]
            .rows()
            .into_iter()
            .map(|r| tandem::nn::special::argmax(r.iter()))
            .collect()
    };
    let teacher_says: Vec<usize> = soft[0]
        .select(ndarray::Axis(0), &va_idx)
        .rows()
        .into_iter()
        .map(|r| tandem::nn::special::argmax(r.iter()))
        .collect();
    let agreement = |d: Vec<usize>| {
        d.iter().zip(&teacher_says).filter(|(a, b)| a == b).count() as f64 / d.len() as f64
    };
    let plain = tandem::train::train(&specs, &tr, &va, &cfg, &mut |_| true).unwrap();
    let mut dcfg = cfg.clone();
    dcfg.distill.weight = 1.0;
    dcfg.distill.temperature = 2.0;
    let student = tandem::train::train(&specs, &str_, &sva, &dcfg, &mut |_| true).unwrap();
    let again = tandem::train::train(&specs, &str_, &sva, &dcfg, &mut |_| true).unwrap();
    assert_eq!(
        student.heads.network.weights(),
        again.heads.network.weights()
    );
    let (a_plain, a_student) = (agreement(decisions(&plain)), agreement(decisions(&student)));
    // (Early stopping still watches the true labels' validation loss, which pulls the
    // distilled student back towards them.)
    assert!(
        a_student > 0.5 && a_plain < 0.2,
        "agreement with the teacher: distilled {a_student}, plain {a_plain}"
    );

    // Unlabelled texts take the teacher's decisions as labels.
    let pseudo = teacher_targets(teacher.tasks(), &soft);
    match &pseudo[0] {
        tandem::data::Targets::Class(c) => assert_eq!(
            c.iter().step_by(50).copied().collect::<Vec<_>>(),
            soft[0]
                .rows()
                .into_iter()
                .step_by(50)
                .map(|r| tandem::nn::special::argmax(r.iter()))
                .collect::<Vec<_>>()
        ),
        other => panic!("{other:?}"),
    }

    // A teacher of other tasks is refused, and so are teachers named without outputs.
    let mut other = specs.clone();
    other[0].labels.reverse();
    let e = teacher_outputs(&teacher, &refs, &other).unwrap_err();
    assert!(e.message().contains("same tasks"), "{}", e.message());
    let mut named = cfg.clone();
    named.distill.teachers = vec![dir.clone()];
    let e = tandem::train::train(&specs, &tr, &va, &named, &mut |_| true)
        .err()
        .unwrap();
    assert!(e.message().contains("teacher outputs"), "{}", e.message());
}
