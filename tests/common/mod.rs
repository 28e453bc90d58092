//! Shared helpers for integration tests: the reference fixture and the installed backbones.
#![allow(dead_code)]

use std::path::PathBuf;

use tandem::{Backbone, BackboneOptions, Variant};

/// One reference item produced by sentence-transformers (tests/fixtures/minilm_embeddings.json).
pub struct RefItem {
    pub text: String,
    pub tokens: usize,
    pub embedding: Vec<f32>,
}

pub fn reference() -> Vec<RefItem> {
    fixture_items("minilm_embeddings.json")
        .iter()
        .map(|it| RefItem {
            text: it["text"].as_str().unwrap().to_string(),
            tokens: it["num_tokens_truncated"].as_u64().unwrap() as usize,
            embedding: floats(&it["embedding"]),
        })
        .collect()
}

/// The `items` of a reference file under tests/fixtures (each with `text` and `embedding`).
pub fn fixture_items(name: &str) -> Vec<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["items"].take().as_array().unwrap().clone()
}

/// A JSON array of numbers as f32s.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The first `n` reference texts (all of them with `usize::MAX`).
pub fn texts(refs: &[RefItem], n: usize) -> Vec<&str> {
    refs.iter().take(n).map(|r| r.text.as_str()).collect()
}

/// Embeds every suffix `texts[i..]` once alone, then again from 8 threads at once
/// (`calls` each, thread t taking suffixes t, t+1, …), and hands `check` each concurrent result
/// with the lone one: (concurrent, alone, thread, suffix).
pub fn embed_from_threads(
    b: &Backbone,
    texts: &[&str],
    calls: usize,
    check: impl Fn(&ndarray::Array2<f32>, &ndarray::Array2<f32>, usize, usize) + Sync,
) {
    let alone: Vec<_> = (0..texts.len())
        .map(|i| b.embed(&texts[i..]).unwrap())
        .collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (alone, check) = (&alone, &check);
            s.spawn(move || {
                for k in 0..calls {
                    let i = (t + k) % texts.len();
                    check(&b.embed(&texts[i..]).unwrap(), &alone[i], t, i);
                }
            });
        }
    });
}

/// Directory of an installed backbone; panics with the fix when setup has not run.
pub fn backbone_dir(name: &str) -> PathBuf {
    let dir = tandem::home::backbone_dir(name);
    assert!(
        dir.join("manifest.json").is_file(),
        "backbone {} is not installed: run scripts/setup.sh first",
        dir.display()
    );
    dir
}

pub fn load(variant: Variant) -> Backbone {
    Backbone::load(
        backbone_dir(tandem::home::DEFAULT_BACKBONE),
        BackboneOptions {
            variant,
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Each reference item's text and the cosine of its embedding on `b` with sentence-transformers'
/// embedding.
pub fn reference_cosines(b: &Backbone) -> Vec<(String, f32)> {
    let refs = reference();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let emb = b.embed(&texts).unwrap();
    assert_eq!(emb.dim(), (refs.len(), 384));
    refs.iter()
        .zip(emb.rows())
        .map(|(r, row)| {
            (
                r.text.clone(),
                cosine(row.as_slice().unwrap(), &r.embedding),
            )
        })
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// A fresh (removed if left over) scratch path `tandem-<suite>-<pid>-<name>` under the temp dir,
/// unique per test process so that concurrent runs do not collide.
pub fn tmp(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The first `n` (text, label) pairs of the demo dataset `file` (`text` and `label` fields).
pub fn labelled(file: &str, n: usize) -> Vec<(String, String)> {
    let rows = tandem::data::read_rows(&tandem::home::data_dir().join(file))
        .expect("run scripts/setup.sh");
    rows.iter()
        .take(n)
        .map(|r| (r.text("text").unwrap(), r.text("label").unwrap()))
        .collect()
}

/// The installed `all-MiniLM-L6-v2-hidden` backbone (per-token output only) with its manifest
/// saying `[CLS]` pooling, in `dir` (its graph and tokenizer linked, not copied): a backbone
/// whose sentence embedding is its first token's vector, which tandem pools itself.
pub fn cls_backbone(dir: &std::path::Path) -> Backbone {
    let src = backbone_dir("all-MiniLM-L6-v2-hidden");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for f in ["model.onnx", "tokenizer.json"] {
        std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(src.join("manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["pooling"] = "cls".into();
    m["name"] = "all-MiniLM-L6-v2 [CLS]".into();
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
    Backbone::load(
        dir,
        BackboneOptions {
            variant: Variant::Fp32,
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap()
}
