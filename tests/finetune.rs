//! Fine-tuning the backbone's top layers end to end on real data: the layers train (and only
//! the ones that should), the same seed gives the same weights, and the bundle's fine-tuned
//! backbone graph, served by ONNX Runtime, predicts what the native layers and heads predict
//! (≤ 1e-4 on probabilities). Needs `scripts/setup.sh`.

mod common;

use std::sync::Arc;

use ndarray::Array2;
use tandem::bundle;
use tandem::data::{read_rows, TaskKind, TaskSpec};
use tandem::heads::predict_arrays;
use tandem::model::Model;
use tandem::onnx::split::{pool, SplitBackbone};
use tandem::onnx::tuned::TunedBackbone;
use tandem::train::config::LayerUnfreeze;
use tandem::train::{manifest_for, split_examples, train_top, BackboneTop, Trained};
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, ErrorKind, Variant};

/// TREC questions spread over the file, with the bottom's hidden states below `k` layers.
struct Data {
    specs: Vec<TaskSpec>,
    train: Examples,
    valid: Examples,
    valid_texts: Vec<String>,
}

fn data(b: &Backbone, split: &SplitBackbone, n: usize, config: &TrainConfig) -> Data {
    let rows = read_rows(&tandem::home::data_dir().join("trec.jsonl")).unwrap();
    let rows: Vec<_> = rows.into_iter().step_by(11).take(n).collect();
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (spec, targets) =
        TaskSpec::infer("label", TaskKind::Multiclass, "label", &rows, None).unwrap();
    let (hidden, _) = split.hidden(b, None, &refs).unwrap();
    let top = top_of(split, b);
    let all = Examples {
        emb: top.embed(&hidden),
        feats: tandem::metadata::extract_batch(&refs),
        targets: vec![targets],
        tokens: None,
        hidden: Some(hidden),
        strata: None,
        soft: None,
    };
    let (train, valid) = split_examples(&all, config).unwrap();
    let (_, va) = tandem::train::split_indices(&all, config).unwrap();
    Data {
        specs: vec![spec],
        train,
        valid,
        valid_texts: va.iter().map(|&i| texts[i].clone()).collect(),
    }
}

fn top_of(split: &SplitBackbone, b: &Backbone) -> BackboneTop {
    BackboneTop {
        layers: split.top().to_vec(),
        normalize: b.manifest().normalize,
        pooling: b.manifest().pooling,
    }
}

fn config(mode: Mode, k: usize) -> TrainConfig {
    let mut c = TrainConfig {
        mode,
        seed: 5,
        ..Default::default()
    };
    c.metadata.stage.epochs = 3;
    c.head.stage.epochs = 3;
    c.backbone.trainable_layers = k;
    c
}

fn train(d: &Data, config: &TrainConfig, top: BackboneTop) -> Trained {
    train_top(&d.specs, &d.train, &d.valid, config, Some(top), &mut |_| {
        true
    })
    .unwrap()
}

/// The sentence embeddings and the top layer's token vectors (f16, as served ones are) of
/// `texts`, natively: the bottom graph in fp32, then `top`'s layers and the backbone's pooling.
fn native(
    split: &SplitBackbone,
    backbone: &Backbone,
    top: &BackboneTop,
    texts: &[&str],
) -> (Array2<f32>, tandem::backbone::TokenSeqs) {
    let (tokens, offsets) = split.bottom(backbone, texts).unwrap();
    let mut h = tokens;
    for layer in &top.layers {
        h = layer.forward_inference(h.view(), &offsets);
    }
    let m = backbone.manifest();
    let emb = pool(h.view(), &offsets, m.pooling, m.normalize);
    let mut seqs = tandem::backbone::TokenSeqs::new(h.ncols());
    for w in offsets.windows(2) {
        seqs.push(h.slice(ndarray::s![w[0]..w[1], ..]));
    }
    (emb, seqs)
}

fn values(top: &BackboneTop) -> Vec<ndarray::ArrayD<f32>> {
    top.params().iter().map(|p| p.value.clone()).collect()
}

#[test]
fn fine_tuned_layers_train_deterministically_and_serve_through_onnx_runtime() {
    let backbone = Arc::new(common::load(Variant::Fp32));
    let split = SplitBackbone::open(&backbone, 1).unwrap();
    for mode in [Mode::EmbeddingOnly, Mode::TwoStage] {
        let cfg = config(mode, 1);
        let d = data(&backbone, &split, 150, &cfg);
        let pretrained = values(&top_of(&split, &backbone));
        let trained = train(&d, &cfg, top_of(&split, &backbone));
        let top = trained.top.as_ref().expect("fine-tuned layers");
        assert!(top.params().iter().all(|p| p.trainable));
        assert_ne!(values(top), pretrained, "{mode:?}: the layer did not train");
        if mode == Mode::EmbeddingOnly {
            // Same seed, same data: the same layers and heads; another seed: others.
            let again = train(&d, &cfg, top_of(&split, &backbone));
            assert_eq!(values(again.top.as_ref().unwrap()), values(top));
            assert_eq!(
                again.heads.network.weights(),
                trained.heads.network.weights()
            );
            let other = TrainConfig {
                seed: 6,
                ..cfg.clone()
            };
            let other = train(&d, &other, top_of(&split, &backbone));
            assert_ne!(values(other.top.as_ref().unwrap()), values(top));
            // The pooled embeddings are recomputed from the hidden states through the layers
            // as they train; the examples' own are read for their width only (the CLI leaves
            // them zero rather than run the pretrained top over every text).
            let blank = |e: &Examples| Examples {
                emb: Array2::zeros(e.emb.raw_dim()),
                ..e.clone()
            };
            let zeroed = Data {
                specs: d.specs.clone(),
                train: blank(&d.train),
                valid: blank(&d.valid),
                valid_texts: vec![],
            };
            let same = train(&zeroed, &cfg, top_of(&split, &backbone));
            assert_eq!(values(same.top.as_ref().unwrap()), values(top));
            assert_eq!(
                same.heads.network.weights(),
                trained.heads.network.weights()
            );
            assert_eq!(same.report.valid_metrics, trained.report.valid_metrics);
        }

        // Natively: the bottom in fp32, the fine-tuned layer, pooling, the heads.
        let refs: Vec<&str> = d.valid_texts.iter().map(String::as_str).collect();
        let (emb, _) = native(&split, &backbone, top, &refs);
        let heads = &trained.heads;
        let feats = match &heads.normalizer {
            Some(n) => n.transform(tandem::metadata::extract_batch(&refs).view()),
            None => Array2::zeros((refs.len(), 0)),
        };
        let native = predict_arrays(heads, emb.view(), feats.view(), None).unwrap();

        // Saved with its fine-tuned backbone, loaded on the stock one: ONNX Runtime runs the
        // bundle's graph.
        let tuned = TunedBackbone::new(&backbone, &top.layers).unwrap();
        let manifest = manifest_for(
            &trained,
            tuned.reference(),
            &tandem::metadata::feature_names(),
            &cfg,
        );
        let dir = common::tmp("finetune", &format!("{mode:?}"));
        bundle::save_with(&dir, &manifest, &heads.network.weights(), false, |tmp| {
            tuned.write(&tmp.join(bundle::BACKBONE_DIR))
        })
        .unwrap();
        let model = Model::load(&dir, Arc::clone(&backbone)).unwrap();
        assert!(model.backbone().manifest().name.contains("fine-tuned"));
        let (served, _) = model.predict_raw(&refs).unwrap();
        let worst = native[0]
            .iter()
            .zip(served[0].iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{mode:?}: native vs ONNX Runtime, worst probability difference {worst:.2e}");
        assert!(worst <= 1e-4, "{mode:?}: {worst}");
        if mode == Mode::EmbeddingOnly {
            // The bundle's int8 graph (the layers re-quantized into the stock int8 graph)
            // serves it too, at int8's accuracy: the same labels for nearly every text.
            let int8 = Model::load(&dir, Arc::new(common::load(Variant::Int8))).unwrap();
            assert!(int8.backbone().manifest().name.contains("fine-tuned"));
            let (q, _) = int8.predict_raw(&refs).unwrap();
            let argmax = |r: ndarray::ArrayView1<f32>| {
                (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b })
            };
            let same = (0..refs.len())
                .filter(|&i| argmax(native[0].row(i)) == argmax(q[0].row(i)))
                .count();
            println!("int8: {same} of {} labels as native fp32", refs.len());
            assert!(same * 10 >= refs.len() * 9, "{same} of {}", refs.len());

            // `tandem pack --variant int8` takes the bundle's own int8 graph (and no fp32
            // one), and the pack serves what the bundle serves.
            let pack = common::tmp("finetune", "pack");
            let _ = std::fs::remove_dir_all(&pack);
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
                .arg("pack")
                .arg(&dir)
                .arg("--out")
                .arg(&pack)
                .args(["--variant", "int8"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let own = dir.join(bundle::BACKBONE_DIR);
            assert_eq!(
                std::fs::read(pack.join("backbone/model.int8.onnx")).unwrap(),
                std::fs::read(own.join("model.int8.onnx")).unwrap()
            );
            assert!(!pack.join("backbone/model.onnx").exists());
            let packed = Backbone::load(
                pack.join("backbone"),
                tandem::BackboneOptions {
                    variant: Variant::Int8,
                    threads: Some(2),
                    verify: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let from_pack = Model::load(&pack.join("model"), Arc::new(packed)).unwrap();
            assert_eq!(from_pack.predict_raw(&refs).unwrap().0, q);
            let _ = std::fs::remove_dir_all(&pack);
        }
        // Its heads cannot be hot-swapped onto the stock backbone's model: other embeddings.
        let e = tandem::model::load_heads(&dir, &backbone).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BackboneMismatch, "{e}");

        // A tampered fine-tuned graph is refused at load (its sha256 is in the manifests).
        let graph = dir.join(bundle::BACKBONE_DIR).join("model.onnx");
        let mut bytes = std::fs::read(&graph).unwrap();
        let at = bytes.len() - 100;
        bytes[at] ^= 1;
        std::fs::write(&graph, bytes).unwrap();
        let e = Model::load(&dir, Arc::clone(&backbone)).unwrap_err();
        assert!(e.message().contains("fine-tuned backbone"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn progressive_unfreezing_keeps_the_layers_frozen_through_the_heads_only_epochs() {
    use tandem::train::config::HeadKind;
    let backbone = common::load(Variant::Fp32);
    let split = SplitBackbone::open(&backbone, 2).unwrap();
    // Sequence heads read the pretrained top's tokens in the heads-only epochs.
    for kind in [HeadKind::Pooled, HeadKind::Sequence] {
        let mut cfg = config(Mode::EmbeddingOnly, 2);
        cfg.head.kind = kind;
        cfg.backbone.unfreeze = LayerUnfreeze::Progressive;
        cfg.backbone.heads_only_epochs = 3;
        let d = data(&backbone, &split, 80, &cfg);
        let pretrained = values(&top_of(&split, &backbone));
        // Three epochs, all of them heads only: the layers are the pretrained ones.
        let trained = train(&d, &cfg, top_of(&split, &backbone));
        assert_eq!(values(trained.top.as_ref().unwrap()), pretrained);
        // Two of five epochs train the top layer only.
        cfg.head.stage.epochs = 5;
        cfg.head.stage.patience = 0;
        cfg.backbone.epochs_per_layer = 5;
        let trained = train(&d, &cfg, top_of(&split, &backbone));
        let now = values(trained.top.as_ref().unwrap());
        let per_layer = now.len() / 2;
        assert_eq!(
            now[..per_layer],
            pretrained[..per_layer],
            "{kind:?}: the lower layer trained"
        );
        assert_ne!(
            now[per_layer..],
            pretrained[per_layer..],
            "{kind:?}: the top layer did not train"
        );
    }
}

#[test]
fn fine_tuning_without_its_inputs_is_a_clear_error() {
    let backbone = common::load(Variant::Fp32);
    let split = SplitBackbone::open(&backbone, 1).unwrap();
    let cfg = config(Mode::EmbeddingOnly, 1);
    let d = data(&backbone, &split, 60, &cfg);
    // No layers given.
    let e = tandem::train::train(&d.specs, &d.train, &d.valid, &cfg, &mut |_| true)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // Layers, but no hidden states.
    let mut bare = d.train.clone();
    bare.hidden = None;
    let e = train_top(
        &d.specs,
        &bare,
        &d.valid,
        &cfg,
        Some(top_of(&split, &backbone)),
        &mut |_| true,
    )
    .err()
    .unwrap();
    assert!(e.message().contains("hidden states"), "{e}");
    // More layers than the config trains.
    let two = SplitBackbone::open(&backbone, 2).unwrap();
    let e = train_top(
        &d.specs,
        &d.train,
        &d.valid,
        &cfg,
        Some(top_of(&two, &backbone)),
        &mut |_| true,
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The linear recipe (a closed-form fit on fixed embeddings) cannot train layers.
    let mut linear = cfg.clone();
    linear.head.kind = tandem::train::config::HeadKind::Linear;
    let e = linear.validate().unwrap_err();
    assert!(e.message().contains("closed-form"), "{e}");
}

#[test]
fn sequence_heads_train_on_the_fine_tuned_tokens_and_serve_through_onnx_runtime() {
    // Sequence heads read every token out of the top layer: the layer trains from their
    // gradient too, the same seed gives the same weights, and the bundle's fine-tuned graph
    // gives the served heads the tokens the native layer computes.
    let backbone = Arc::new(common::load(Variant::Fp32));
    let split = SplitBackbone::open(&backbone, 1).unwrap();
    let mut cfg = config(Mode::EmbeddingOnly, 1);
    cfg.head.kind = tandem::train::config::HeadKind::Sequence;
    cfg.validate().unwrap();
    let d = data(&backbone, &split, 120, &cfg);
    assert!(
        d.train.tokens.is_none(),
        "the examples carry no token vectors"
    );
    let pretrained = values(&top_of(&split, &backbone));
    let trained = train(&d, &cfg, top_of(&split, &backbone));
    assert!(trained.heads.network.sequence.is_some());
    let top = trained.top.as_ref().expect("fine-tuned layers");
    assert_ne!(values(top), pretrained, "the layer did not train");
    let again = train(&d, &cfg, top_of(&split, &backbone));
    assert_eq!(values(again.top.as_ref().unwrap()), values(top));
    assert_eq!(
        again.heads.network.weights(),
        trained.heads.network.weights()
    );

    // Natively: bottom, fine-tuned layer, pooled embedding and token vectors (f16, as the
    // served ones are), heads.
    let refs: Vec<&str> = d.valid_texts.iter().map(String::as_str).collect();
    let (emb, seqs) = native(&split, &backbone, top, &refs);
    let heads = &trained.heads;
    let feats = Array2::zeros((refs.len(), 0));
    let native = predict_arrays(heads, emb.view(), feats.view(), Some(&seqs)).unwrap();

    let tuned = TunedBackbone::new(&backbone, &top.layers).unwrap();
    let manifest = manifest_for(
        &trained,
        tuned.reference(),
        &tandem::metadata::feature_names(),
        &cfg,
    );
    let dir = common::tmp("finetune", "sequence");
    bundle::save_with(&dir, &manifest, &heads.network.weights(), false, |tmp| {
        tuned.write(&tmp.join(bundle::BACKBONE_DIR))
    })
    .unwrap();
    let model = Model::load(&dir, Arc::clone(&backbone)).unwrap();
    let (served, _) = model.predict_raw(&refs).unwrap();
    let worst = native[0]
        .iter()
        .zip(served[0].iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("sequence heads: native vs ONNX Runtime, worst probability difference {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_runs_the_finetune_arm_beside_frozen_ones() {
    use tandem::compare::{compare, Arm, CompareOptions};
    let backbone = common::load(Variant::Fp32);
    let split = SplitBackbone::open(&backbone, 1).unwrap();
    let mut cfg = config(Mode::EmbeddingOnly, 1);
    cfg.head.stage.epochs = 2;
    let d = data(&backbone, &split, 100, &cfg);
    let mut all = d.train.clone();
    all.emb
        .append(ndarray::Axis(0), d.valid.emb.view())
        .unwrap();
    all.feats
        .append(ndarray::Axis(0), d.valid.feats.view())
        .unwrap();
    let mut hidden = d.train.hidden.clone().unwrap();
    hidden.extend(d.valid.hidden.as_ref().unwrap());
    all.hidden = Some(hidden);
    let tandem::data::Targets::Class(mut y) = d.train.targets[0].clone() else {
        panic!("multiclass targets")
    };
    let tandem::data::Targets::Class(yv) = d.valid.targets[0].clone() else {
        panic!("multiclass targets")
    };
    y.extend(yv);
    all.targets = vec![tandem::data::Targets::Class(y)];
    let mut options = CompareOptions {
        config: cfg,
        arms: vec![Arm::EmbeddingOnly, Arm::FineTune],
        seeds: vec![0],
        ..CompareOptions::default()
    };
    // Without the layers the finetune arm is a clear error, not a frozen run in disguise.
    let e = compare(&d.specs, &all, None, &options, &mut |_| {}).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    options.top = Some(top_of(&split, &backbone));
    let summary = compare(&d.specs, &all, None, &options, &mut |_| {}).unwrap();
    assert_eq!(summary.runs.len(), 2);
    assert_eq!(summary.runs[1].arm, Arm::FineTune);
    assert!(summary.runs.iter().all(|r| r.test["macro_f1"] > 0.0));
    // The frozen arm trains no layer even when the base config names some.
    assert_eq!(
        Arm::EmbeddingOnly
            .config(&options.config, 0)
            .backbone
            .trainable_layers,
        0
    );
    assert_eq!(
        Arm::FineTune
            .config(&TrainConfig::default(), 0)
            .backbone
            .trainable_layers,
        2
    );
}

#[test]
fn a_contrastive_warm_up_trains_the_layers_before_the_heads() {
    let backbone = common::load(Variant::Fp32);
    let split = SplitBackbone::open(&backbone, 1).unwrap();
    let mut cfg = config(Mode::EmbeddingOnly, 1);
    cfg.head.stage.epochs = 1;
    cfg.backbone.contrastive_epochs = 2;
    cfg.backbone.contrastive_pairs = 2;
    let d = data(&backbone, &split, 60, &cfg);
    let mut seen = Vec::new();
    let trained = train_top(
        &d.specs,
        &d.train,
        &d.valid,
        &cfg,
        Some(top_of(&split, &backbone)),
        &mut |r| {
            seen.push(r.stage.clone());
            true
        },
    )
    .unwrap();
    let stages: Vec<&str> = trained
        .report
        .stages
        .iter()
        .map(|s| s.stage.as_str())
        .collect();
    assert_eq!(stages, ["contrastive", "heads"]);
    assert_eq!(&seen[..2], ["contrastive", "contrastive"]);
    let losses: Vec<f32> = trained.report.stages[0]
        .history
        .iter()
        .map(|r| r.train_loss)
        .collect();
    assert!(
        losses.iter().all(|l| l.is_finite() && *l >= 0.0),
        "{losses:?}"
    );
    // Deterministic, and not the run without the warm-up.
    let again = train(&d, &cfg, top_of(&split, &backbone));
    assert_eq!(
        values(again.top.as_ref().unwrap()),
        values(trained.top.as_ref().unwrap())
    );
    let plain = TrainConfig {
        backbone: tandem::train::config::BackboneConfig {
            contrastive_epochs: 0,
            ..cfg.backbone.clone()
        },
        ..cfg.clone()
    };
    let plain = train(&d, &plain, top_of(&split, &backbone));
    assert_ne!(
        values(plain.top.as_ref().unwrap()),
        values(trained.top.as_ref().unwrap())
    );
    // Cancelling in the warm-up is a clean error.
    let e = train_top(
        &d.specs,
        &d.train,
        &d.valid,
        &cfg,
        Some(top_of(&split, &backbone)),
        &mut |_| false,
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
}
