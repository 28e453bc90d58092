//! Sequence heads: training time per epoch against the PyTorch prototype, and inference latency
//! against pooled heads.
//!
//! `cargo bench --bench seq`. Inputs are real: TREC questions, their per-token vectors from the
//! token cache (computed once if missing), the pooled embeddings and the coarse labels.
//! - Training: the native sequence head (attention pooling + conv1d kernels 1/3/5 with 128
//!   channels, joined with the sentence embedding, MLP 256 → 6, batch 64) for a few epochs,
//!   and `benches/seq_torch.py` training the same architecture on the same cached arrays with
//!   PyTorch on 2 threads, in the same run. Per-epoch seconds, median over epochs.
//! - Inference: `Model::predict` latency per text at batch 1 and 32 for a sequence head and a
//!   pooled head on the same backbone (the backbone run included, as a caller sees it).
//!
//! Writes `target/bench/seq.json`. Needs `scripts/setup.sh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ndarray::{Array1, Array2};
use tandem::bundle::BackboneRef;
use tandem::cache::{EmbeddingCache, TokenCache};
use tandem::data::{read_rows, Row, Targets, TaskKind, TaskSpec};
use tandem::model::Model;
use tandem::train::config::{HeadKind, Schedule};
use tandem::train::manifest_for;
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, BackboneOptions};

mod common;

const EPOCHS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn config(kind: HeadKind) -> TrainConfig {
    let mut cfg = TrainConfig {
        mode: Mode::EmbeddingOnly,
        seed: 0,
        tune_thresholds: false,
        ..Default::default()
    };
    cfg.head.kind = kind;
    cfg.head.sequence.attention_queries = 1;
    cfg.head.sequence.conv_kernels = vec![1, 3, 5];
    cfg.head.sequence.conv_channels = 128;
    cfg.head.hidden = vec![256];
    cfg.head.stage.epochs = EPOCHS;
    cfg.head.stage.batch_size = 64;
    cfg.head.stage.patience = 0;
    cfg.head.stage.schedule = Schedule::Constant;
    cfg
}

/// Milliseconds per text of `model.predict` on `texts` in batches of `batch` (median of rounds).
fn latency(model: &Model, texts: &[&str], batch: usize) -> f64 {
    let rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for chunk in texts.chunks(batch) {
                model.predict(chunk).unwrap();
            }
            t.elapsed().as_secs_f64() * 1e3 / texts.len() as f64
        })
        .collect();
    median(rounds)
}

fn main() {
    if !common::start("seq") {
        return;
    }
    let rows =
        read_rows(&tandem::home::data_dir().join("trec.jsonl")).expect("run scripts/setup.sh");
    let texts: Vec<String> = rows.iter().map(|r| r.text("text").unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let backbone = Arc::new(
        Backbone::load_default(BackboneOptions {
            threads: Some(2),
            ..Default::default()
        })
        .unwrap(),
    );
    let pooled_cache = EmbeddingCache::open(None, &backbone).unwrap();
    let token_cache = TokenCache::open(None, &backbone).unwrap();
    let t = Instant::now();
    let (tokens, stats) = token_cache
        .embed(&backbone, Some(&pooled_cache), &refs)
        .unwrap();
    let (emb, _) = pooled_cache.embed(&backbone, &refs).unwrap();
    eprintln!(
        "token vectors: {} cached, {} computed ({:.1}s); {} tokens, {:.1} MB in f16 ({:.2} MB per 1k texts)",
        stats.hits,
        stats.misses,
        t.elapsed().as_secs_f64(),
        tokens.total_tokens(),
        tokens.bytes() as f64 / 1e6,
        tokens.bytes() as f64 / 1e6 / texts.len() as f64 * 1e3
    );
    let labelled: Vec<Row> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            fields: [("y".to_string(), serde_json::json!(r.text("label").unwrap()))]
                .into_iter()
                .collect(),
            line: i + 1,
        })
        .collect();
    let (spec, targets) = TaskSpec::infer("y", TaskKind::Multiclass, "y", &labelled, None).unwrap();
    let n = texts.len();
    let all = Examples {
        emb: emb.clone(),
        feats: Array2::zeros((n, 0)),
        targets: vec![targets.clone()],
        tokens: Some(tokens.clone()),
        hidden: None,
        strata: None,
        soft: None,
    };
    // A small validation set: the per-epoch validation pass is part of tandem's loop.
    let valid = all.select(&(0..64).collect::<Vec<_>>());

    // Native sequence head.
    let cfg = config(HeadKind::Sequence);
    let trained =
        tandem::train::train(std::slice::from_ref(&spec), &all, &valid, &cfg, &mut |_| {
            true
        })
        .unwrap();
    let hist = &trained.report.stages[0].history;
    let mut epoch_secs = Vec::new();
    let mut prev = 0.0;
    for h in hist {
        epoch_secs.push(h.elapsed - prev);
        prev = h.elapsed;
    }
    let tandem_epoch = median(epoch_secs.clone());
    let tandem_loss = hist.last().unwrap().train_loss;

    // PyTorch prototype on the same arrays.
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let packed = tokens.to_packed();
    ndarray_npy::write_npy(out.join("seq_tokens.npy"), &packed.tokens).unwrap();
    ndarray_npy::write_npy(
        out.join("seq_offsets.npy"),
        &Array1::from(packed.offsets.iter().map(|&o| o as i64).collect::<Vec<_>>()),
    )
    .unwrap();
    ndarray_npy::write_npy(out.join("seq_sentence.npy"), &emb).unwrap();
    let classes = match &targets {
        Targets::Class(c) => c.iter().map(|&c| c as i64).collect::<Vec<_>>(),
        _ => unreachable!(),
    };
    ndarray_npy::write_npy(out.join("seq_labels.npy"), &Array1::from(classes)).unwrap();
    let path = |f: &str| out.join(f).display().to_string();
    let epochs = EPOCHS.to_string();
    let torch = common::run_torch(
        "seq_torch.py",
        &[
            "--tokens",
            &path("seq_tokens.npy"),
            "--offsets",
            &path("seq_offsets.npy"),
            "--sentence",
            &path("seq_sentence.npy"),
            "--labels",
            &path("seq_labels.npy"),
            "--epochs",
            &epochs,
            "--batch",
            "64",
            "--threads",
            "2",
            "--kernels",
            "1,3,5",
            "--channels",
            "128",
            "--queries",
            "1",
        ],
    );
    let torch_epoch = torch["median_epoch_seconds"].as_f64().unwrap();

    // Inference latency: the trained sequence head, and a pooled head, on the same backbone.
    let pooled_all = Examples {
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
        ..all.clone()
    };
    let pooled_valid = Examples {
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
        ..valid.clone()
    };
    let pooled = tandem::train::train(
        std::slice::from_ref(&spec),
        &pooled_all,
        &pooled_valid,
        &config(HeadKind::Pooled),
        &mut |_| true,
    )
    .unwrap();
    let model_of = |tr: &tandem::train::Trained, cfg: &TrainConfig| {
        let manifest = manifest_for(tr, BackboneRef::of(&backbone), &[], cfg);
        Model::from_parts(Arc::clone(&backbone), manifest, tr.heads.clone())
    };
    let seq_model = model_of(&trained, &cfg);
    let pooled_model = model_of(&pooled, &config(HeadKind::Pooled));
    let sample: Vec<&str> = refs.iter().step_by(17).take(128).copied().collect();
    let mut lat = Vec::new();
    for batch in [1usize, 32] {
        let p = latency(&pooled_model, &sample, batch);
        let s = latency(&seq_model, &sample, batch);
        lat.push(serde_json::json!({"batch": batch, "pooled_ms_per_text": p, "sequence_ms_per_text": s, "sequence_over_pooled": s / p}));
    }

    println!(
        "\nsequence-head training: {n} TREC texts, {} tokens, attention (1 query) + conv 1/3/5 x 128, MLP 256, batch 64",
        tokens.total_tokens()
    );
    println!(
        "| trainer | seconds per epoch (median of {EPOCHS}) | final train loss |\n|---|---:|---:|"
    );
    println!("| tandem (native, 2 threads) | {tandem_epoch:.2} | {tandem_loss:.4} |");
    println!(
        "| PyTorch prototype, 2 threads | {torch_epoch:.2} | {:.4} |",
        torch["final_loss"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "tandem / PyTorch speed: {:.2}x; target >= 3.0x: {}",
        torch_epoch / tandem_epoch,
        if torch_epoch / tandem_epoch >= 3.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("\ninference latency (Model::predict, backbone included), ms per text:");
    println!("| batch | pooled head | sequence head | ratio |\n|---:|---:|---:|---:|");
    for l in &lat {
        println!(
            "| {} | {:.2} | {:.2} | {:.2}x |",
            l["batch"],
            l["pooled_ms_per_text"].as_f64().unwrap(),
            l["sequence_ms_per_text"].as_f64().unwrap(),
            l["sequence_over_pooled"].as_f64().unwrap()
        );
    }
    let report = serde_json::json!({
        "texts": n, "tokens": tokens.total_tokens(),
        "token_cache_mb_per_1k_texts": tokens.bytes() as f64 / 1e6 / n as f64 * 1e3,
        "epochs": EPOCHS,
        "tandem_epoch_seconds": epoch_secs, "tandem_median_epoch_seconds": tandem_epoch,
        "torch": torch, "speedup_vs_torch": torch_epoch / tandem_epoch,
        "latency": lat,
    });
    std::fs::write(
        out.join("seq.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    eprintln!("wrote {}", out.join("seq.json").display());
}
