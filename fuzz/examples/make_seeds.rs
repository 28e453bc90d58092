//! Writes the seed corpora of the targets whose inputs are files (`fuzz/seeds/<target>/`):
//! real bundles trained here on the demo data over the tiny test backbone (small widths, so a
//! seed is a few KB), the installed backbones' manifests, demo data as JSONL and CSV, and texts
//! for the metadata extractor. Needs `scripts/setup.sh`. Run from `fuzz/`:
//!
//! ```sh
//! cargo run --release --example make_seeds
//! ```
//!
//! The seeds of `c_abi` (arbitrary-encoded calls) are not made here: they are a few inputs of
//! a short run (see `fuzz/README.md`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tandem::bundle::{self, BackboneRef};
use tandem::data::{read_rows, Row, TaskKind, TaskSpec};
use tandem::train::config::HeadKind;
use tandem::train::{manifest_for, split_examples};
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, BackboneOptions};

/// The embedding width of the sequence-head seed.
const SEQ_DIM: usize = 8;

fn seeds(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rows(file: &str, n: usize) -> Vec<Row> {
    let rows = read_rows(&tandem::home::data_dir().join(file)).unwrap();
    let step = (rows.len() / n).max(1);
    rows.into_iter().step_by(step).take(n).collect()
}

/// What one bundle seed is: data, task and how the network is shaped.
struct Spec {
    name: &'static str,
    file: &'static str,
    field: &'static str,
    kind: TaskKind,
    mode: Mode,
    sequence: bool,
    f16: bool,
    top_k: usize,
}

/// Trains a tiny bundle, saves it with `bundle::save`, and writes the seed: the manifest's
/// length (u32, little-endian), the manifest (metrics and training config emptied: they are
/// free-form JSON and only make the seed bigger), then the weights file.
fn bundle_seed(b: &Backbone, s: &Spec) {
    let rows = rows(s.file, 120);
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (spec, targets) = TaskSpec::infer(s.field, s.kind, s.field, &rows, None).unwrap();
    let (emb, tokens) = if s.sequence {
        let (e, t) = b.embed_tokens(&refs).unwrap();
        (e, Some(t))
    } else {
        (b.embed(&refs).unwrap(), None)
    };
    // Sequence heads: only the first 8 dimensions of the embeddings and token vectors, so the
    // transformer layer's weights stay small.
    let (emb, tokens, dim) = match tokens {
        Some(t) => {
            let mut narrow = tandem::TokenSeqs::new(SEQ_DIM);
            for i in 0..t.len() {
                let v: Vec<_> = t
                    .text(i)
                    .chunks(t.dim())
                    .flat_map(|row| row[..SEQ_DIM].to_vec())
                    .collect();
                narrow.push_f16(&v);
            }
            let emb = emb.slice(ndarray::s![.., ..SEQ_DIM]).to_owned();
            (emb, Some(narrow), SEQ_DIM)
        }
        None => (emb, None, b.dim()),
    };
    let all = Examples {
        emb,
        feats: tandem::metadata::extract_batch(&refs),
        targets: vec![targets],
        tokens,
        hidden: None,
        strata: None,
        soft: None,
    };
    let mut cfg = TrainConfig {
        mode: s.mode,
        seed: 1,
        ..Default::default()
    };
    cfg.metadata.top_k = s.top_k;
    cfg.metadata.hidden = vec![4];
    cfg.metadata.code_dim = 2;
    cfg.metadata.stage.epochs = 2;
    cfg.head.hidden = vec![4];
    cfg.head.stage.epochs = 2;
    if s.sequence {
        cfg.head.kind = HeadKind::Sequence;
        let q = &mut cfg.head.sequence;
        q.attention_queries = 1;
        q.conv_kernels = vec![1, 3];
        q.conv_channels = 2;
        q.transformer = true;
        q.transformer_heads = 2;
        q.transformer_ffn = 4;
    }
    let (tr, va) = split_examples(&all, &cfg).unwrap();
    let trained = tandem::train::train(&[spec], &tr, &va, &cfg, &mut |_| true).unwrap();
    let m = manifest_for(
        &trained,
        BackboneRef {
            dim,
            ..BackboneRef::of(b)
        },
        &tandem::metadata::feature_names(),
        &cfg,
    );
    let dir = std::env::temp_dir().join(format!("tandem-seed-{}-{}", s.name, std::process::id()));
    bundle::save(&dir, &m, &trained.heads.network.weights(), s.f16).unwrap();
    write_bundle_seed(&dir, s.name);
}

/// The bundle saved in `dir` as the `bundle` seed `name` (metrics and training config emptied),
/// after checking that it loads as a bundle does (less the weights hash); removes `dir`.
fn write_bundle_seed(dir: &std::path::Path, name: &str) {
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join(bundle::MANIFEST_FILE)).unwrap()).unwrap();
    manifest["metrics"] = json!({});
    manifest["training"] = json!({});
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let weights = std::fs::read(dir.join(bundle::WEIGHTS_FILE)).unwrap();
    let m = bundle::parse_manifest(std::str::from_utf8(&manifest).unwrap()).unwrap();
    bundle::build_heads(&m, &bundle::parse_weights(&weights).unwrap()).unwrap();
    let mut seed = (manifest.len() as u32).to_le_bytes().to_vec();
    seed.extend_from_slice(&manifest);
    seed.extend_from_slice(&weights);
    let path = seeds("bundle").join(format!("{name}.bin"));
    std::fs::write(&path, &seed).unwrap();
    println!("{}: {} bytes", path.display(), seed.len());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The first `chars` characters of a text.
fn short(t: &str, chars: usize) -> String {
    t.chars().take(chars).collect()
}

/// An encoder bundle (`tandem pretrain`: no tasks, mode metadata_only) pre-trained on a few
/// texts' features, as the `bundle` seed `metadata_only_encoder`.
fn encoder_seed() {
    let rows = rows("sms_spam.jsonl", 80);
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let feats = tandem::metadata::extract_batch(&refs);
    let mut cfg = TrainConfig {
        seed: 1,
        ..Default::default()
    };
    cfg.metadata.hidden = vec![4];
    cfg.metadata.code_dim = 2;
    cfg.metadata.stage.epochs = 2;
    let (tr, va) = (
        feats.slice(ndarray::s![..60, ..]),
        feats.slice(ndarray::s![60.., ..]),
    );
    let trained = tandem::train::pretrain::pretrain(tr, va, &cfg, &mut |_| true).unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-seed-encoder-{}", std::process::id()));
    tandem::train::pretrain::save_encoder(&dir, &trained, &cfg).unwrap();
    write_bundle_seed(&dir, "metadata_only_encoder");
}

fn main() {
    let models = tandem::home::cache_dir().join("models");
    for name in ["all-MiniLM-L6-v2", "tiny-random-bert"] {
        let text = std::fs::read_to_string(models.join(name).join("manifest.json")).unwrap();
        tandem::backbone::BackboneManifest::parse(&text).unwrap();
        std::fs::write(
            seeds("backbone_manifest").join(format!("{name}.json")),
            text,
        )
        .unwrap();
    }

    // Data files: a few rows of each demo dataset, texts cut short.
    let mut csv = String::from("text,label,fine\n");
    for (file, n) in [
        ("sms_spam.jsonl", 4),
        ("trec.jsonl", 4),
        ("vader.jsonl", 2),
        ("reuters.jsonl", 2),
    ] {
        let mut jsonl = String::new();
        for row in rows(file, n) {
            let mut fields = row.fields.clone();
            if let Some(Value::String(t)) = fields.get_mut("text") {
                *t = short(t, 120);
            }
            jsonl.push_str(&serde_json::to_string(&fields).unwrap());
            jsonl.push('\n');
            if file == "trec.jsonl" {
                let q = |f: &str| format!("\"{}\"", row.text(f).unwrap().replace('"', "\"\""));
                csv.push_str(&format!("{},{},{}\n", q("text"), q("label"), q("fine")));
            }
        }
        let stem = file.trim_end_matches(".jsonl");
        std::fs::write(seeds("jsonl").join(format!("{stem}.jsonl")), jsonl).unwrap();
    }
    let csv_seeds = [
        ("trec.csv", csv.as_str()),
        (
            "quoted.csv",
            "text,label\n\"hi, there\",spam\nyo,ham\n\"two\nlines \"\"quoted\"\"\",ham\n",
        ),
        ("crlf.csv", "\u{feff}id,text\r\n1,\"a\"\r\n2,b\r\n"),
    ];
    for (name, text) in csv_seeds {
        std::fs::write(seeds("csv").join(name), text).unwrap();
    }

    // Texts for the metadata extractor.
    let mut texts: Vec<(String, String)> = vec![
        ("empty".into(), String::new()),
        (
            "web".into(),
            "Mail bob@example.com or see https://x.co/a?b=1 #deal @alice $19.99 (50% off!!!)"
                .into(),
        ),
        (
            "scripts".into(),
            "naïve café — 東京は晴れ 🌧️👩🏽‍💻 مرحبا بالعالم\tשלום\u{200f}\n\u{0}\u{7}".into(),
        ),
        (
            "shouting".into(),
            "WHY?!?! Is THIS... the END??? No. No! NO!!!\n\n- yes\n- no".into(),
        ),
    ];
    for (file, n) in [("sms_spam.jsonl", 2), ("bbc.jsonl", 1), ("vader.jsonl", 2)] {
        for (i, row) in rows(file, n).iter().enumerate() {
            let stem = file.trim_end_matches(".jsonl");
            texts.push((format!("{stem}{i}"), short(&row.text("text").unwrap(), 600)));
        }
    }
    for (name, text) in texts {
        std::fs::write(seeds("metadata").join(format!("{name}.txt")), text).unwrap();
    }

    // Damage to the caches (`checks::query`, then `checks::Op`s): all five texts looked up,
    // after one kind of damage each. The same bytes serve both caches.
    let all = [5u8, 0, 1, 2, 3, 4];
    let damage: [(&str, &[u8]); 9] = [
        ("intact", &[]),
        ("flip", &[0, 90, 0, 0x40]),
        ("overwrite", &[1, 50, 0, 4, 0xff, 0xff, 0x7f, 0x7f]),
        ("truncate", &[2, 100, 0]),
        ("append", &[3, 7, 1, 2, 3, 4, 5, 6, 7]),
        ("copy", &[4, 0, 0, 48, 0, 40]),
        ("poisoned", &[5, 2, 2, 0, 0, 0, 0, 0, 0]),
        ("count_zero", &[6, 1, 0, 0, 0, 0]),
        ("count_huge", &[6, 3, 0, 0, 0, 64]),
    ];
    for (name, ops) in damage {
        let seed = [&all[..], ops].concat();
        for target in ["pooled_cache", "token_cache"] {
            std::fs::write(seeds(target).join(name), &seed).unwrap();
        }
    }

    // Architectures for `bundle_arch` (fields in the order `checks::bundle_arch` reads them).
    let archs: [(&str, &[u8]); 4] = [
        // Two-stage; encoder [4], head [6, 6] residual ReLU; a 4-class and a binary task.
        (
            "two_stage_two_tasks",
            &[
                0, 7, 3, 1, 1, 3, 0, 1, 0, 0, 2, 5, 5, 1, 0, 1, 1, 1, 0, 2, 128, 128, 16, 1, 100,
                0, 0, 0, 1, 2, 3, 4, 128, 130, 120, 140, 32, 16, 64, 8, 1, 0, 0, 0, 0, 0,
            ],
        ),
        // Embedding-only sequence head: attention, kernels [1, 3], a transformer; multi-label;
        // f16 weights.
        (
            "sequence_transformer_multilabel_f16",
            &[
                2, 7, 0, 0, 0, 0, 0, 1, 3, 0, 2, 0, 0, 0, 2, 2, 128, 0, 0, 1, 1, 2, 0, 1, 1, 1, 1,
                3, 1, 7, 0, 0, 0, 0, 1,
            ],
        ),
        // Metadata-only regression on two features.
        (
            "metadata_only_regression",
            &[
                3, 1, 2, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 140, 8, 5, 6, 100, 150, 4, 40,
                9, 0, 0, 0, 0, 0,
            ],
        ),
        // Joint, a kernel-5 convolution only, regression and binary, weights scaled by 1e30
        // (the outputs overflow).
        (
            "joint_conv_huge_weights",
            &[
                1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 128, 0, 1, 255, 0, 0, 1, 0, 1,
                2, 3, 0, 0, 0, 0, 7, 0, 0, 3, 0, 0, 0, 3, 0,
            ],
        ),
    ];
    for (name, bytes) in archs {
        assert!(
            tandem_fuzz::checks::bundle_arch(bytes),
            "{name} does not load"
        );
        std::fs::write(seeds("bundle_arch").join(name), bytes).unwrap();
    }

    // Bundles, over the tiny test backbone (32-wide embeddings).
    let b = Backbone::load(models.join("tiny-random-bert"), BackboneOptions::default()).unwrap();
    let specs = [
        Spec {
            name: "two_stage_multiclass",
            file: "trec.jsonl",
            field: "label",
            kind: TaskKind::Multiclass,
            mode: Mode::TwoStage,
            sequence: false,
            f16: false,
            top_k: 8,
        },
        Spec {
            name: "embedding_only_binary_f16",
            file: "sms_spam.jsonl",
            field: "label",
            kind: TaskKind::Binary,
            mode: Mode::EmbeddingOnly,
            sequence: false,
            f16: true,
            top_k: 0,
        },
        Spec {
            name: "sequence_binary",
            file: "sms_spam.jsonl",
            field: "label",
            kind: TaskKind::Binary,
            mode: Mode::EmbeddingOnly,
            sequence: true,
            f16: false,
            top_k: 0,
        },
        Spec {
            name: "metadata_only_regression",
            file: "vader.jsonl",
            field: "rating",
            kind: TaskKind::Regression,
            mode: Mode::MetadataOnly,
            sequence: false,
            f16: false,
            top_k: 4,
        },
        Spec {
            name: "joint_multilabel",
            file: "reuters.jsonl",
            field: "labels",
            kind: TaskKind::Multilabel,
            mode: Mode::Joint,
            sequence: false,
            f16: false,
            top_k: 0,
        },
    ];
    for s in &specs {
        bundle_seed(&b, s);
    }
    encoder_seed();
}
