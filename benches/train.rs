//! Head-training speed: 10k cached examples x 20 epochs of (384 + features) -> 256 -> classes,
//! against PyTorch training the same MLP on the same arrays in the same run.
//!
//! `cargo bench --bench train`. Inputs are real: SMS spam + TREC texts (8 classes), their
//! backbone embeddings from the embedding cache (computed once if missing) and their z-scored
//! metadata features. Also times the full two-stage trainer on the same data for reference.
//! The two sides alternate for `TANDEM_BENCH_ROUNDS` rounds (default 3), and each side's best
//! round counts: on a shared machine load from elsewhere only ever slows a round down (the embed
//! bench does the same). Writes `target/bench/train.json`, every round included. Needs
//! `scripts/setup.sh`.

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{concatenate, Array1, Array2, Axis};
use tandem::cache::EmbeddingCache;
use tandem::data::{read_rows, TaskKind, TaskSpec};
use tandem::heads::Normalizer;
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, BackboneOptions};

mod common;

const N: usize = 10_000;
const EPOCHS: usize = 20;

fn main() {
    if !common::start("train") {
        return;
    }
    let data = tandem::home::data_dir();
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for (file, prefix) in [("sms_spam.jsonl", "sms"), ("trec.jsonl", "trec")] {
        for r in read_rows(&data.join(file)).expect("run scripts/setup.sh") {
            texts.push(r.text("text").unwrap());
            labels.push(serde_json::json!(format!(
                "{prefix}:{}",
                r.text("label").unwrap()
            )));
        }
    }
    // Interleave the two sources deterministically, then keep N.
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (i * 7919) % texts.len());
    order.truncate(N);
    let texts: Vec<String> = order.iter().map(|&i| texts[i].clone()).collect();
    let rows: Vec<tandem::data::Row> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| tandem::data::Row {
            fields: [("y".to_string(), labels[i].clone())].into_iter().collect(),
            line: k + 1,
        })
        .collect();
    let (spec, targets) = TaskSpec::infer("y", TaskKind::Multiclass, "y", &rows, None).unwrap();
    let backbone = Backbone::load_default(BackboneOptions {
        threads: Some(2),
        ..Default::default()
    })
    .unwrap();
    let cache = EmbeddingCache::open(None, &backbone).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    let (emb, stats) = cache.embed(&backbone, &refs).unwrap();
    eprintln!(
        "embeddings: {} cached, {} computed ({:.1}s)",
        stats.hits,
        stats.misses,
        t.elapsed().as_secs_f64()
    );
    let raw = tandem::metadata::extract_batch(&refs);
    let feats = Normalizer::fit(raw.view(), &[], 0).transform(raw.view());
    let x = concatenate(Axis(1), &[emb.view(), feats.view()]).unwrap();
    let classes = match &targets {
        tandem::data::Targets::Class(c) => c.clone(),
        _ => unreachable!(),
    };

    // tandem: the same MLP via the trainer (embedding-only mode over the concatenated input).
    let mut cfg = TrainConfig {
        mode: Mode::EmbeddingOnly,
        seed: 0,
        ..Default::default()
    };
    cfg.head.hidden = vec![256];
    cfg.head.dropout = 0.2;
    cfg.head.stage.epochs = EPOCHS;
    cfg.head.stage.batch_size = 64;
    cfg.head.stage.patience = 0;
    cfg.head.stage.schedule = tandem::train::config::Schedule::Constant;
    cfg.tune_thresholds = false;
    // A small validation set: the per-epoch validation pass is part of tandem's loop.
    let valid_idx: Vec<usize> = (0..200).collect();
    let train_ex = Examples {
        emb: x.clone(),
        feats: Array2::zeros((N, 0)),
        targets: vec![targets.clone()],
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
    };
    let valid_ex = train_ex.select(&valid_idx);
    let train_tandem = || {
        let t = Instant::now();
        let trained = tandem::train::train(
            std::slice::from_ref(&spec),
            &train_ex,
            &valid_ex,
            &cfg,
            &mut |_| true,
        )
        .unwrap();
        let loss = trained.report.stages[0].history.last().unwrap().train_loss;
        (t.elapsed().as_secs_f64(), loss)
    };

    // Two-stage on the same data, for reference (stage 1 on features, stage 2 on [emb ; code]).
    let mut two = TrainConfig {
        seed: 0,
        ..Default::default()
    };
    two.metadata.stage.epochs = EPOCHS;
    two.metadata.stage.patience = 0;
    two.head.stage.epochs = EPOCHS;
    two.head.stage.patience = 0;
    two.tune_thresholds = false;
    let ex2 = Examples {
        emb: emb.clone(),
        feats: raw.clone(),
        targets: vec![targets.clone()],
        tokens: None,
        hidden: None,
        strata: None,
        soft: None,
    };
    let t = Instant::now();
    let tr2 = tandem::train::train(
        std::slice::from_ref(&spec),
        &ex2,
        &ex2.select(&valid_idx),
        &two,
        &mut |_| true,
    )
    .unwrap();
    let two_s = t.elapsed().as_secs_f64();
    let stage_s: Vec<(String, f64)> = tr2
        .report
        .stages
        .iter()
        .map(|s| (s.stage.clone(), s.seconds))
        .collect();

    // PyTorch on the same arrays.
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    ndarray_npy::write_npy(out.join("train_x.npy"), &x).unwrap();
    ndarray_npy::write_npy(
        out.join("train_y.npy"),
        &Array1::from(classes.iter().map(|&c| c as i64).collect::<Vec<_>>()),
    )
    .unwrap();
    let epochs = EPOCHS.to_string();
    let train_torch = || {
        common::run_torch(
            "train_torch.py",
            &[
                "--x",
                out.join("train_x.npy").to_str().unwrap(),
                "--y",
                out.join("train_y.npy").to_str().unwrap(),
                "--epochs",
                &epochs,
                "--batch",
                "64",
                "--hidden",
                "256",
                "--threads",
                "2",
            ],
        )
    };
    let rounds: usize = std::env::var("TANDEM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let (mut tandem_rounds, mut torch_rounds) = (Vec::new(), Vec::new());
    let (mut tandem_loss, mut torch) = (0.0f32, serde_json::Value::Null);
    for _ in 0..rounds {
        let (s, loss) = train_tandem();
        tandem_rounds.push(s);
        tandem_loss = loss;
        torch = train_torch();
        torch_rounds.push(torch["seconds"].as_f64().unwrap());
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (tandem_s, torch_s) = (best(&tandem_rounds), best(&torch_rounds));

    println!(
        "\nhead training: {N} examples x {EPOCHS} epochs, ({} -> 256 -> {}), batch 64, best of {rounds} rounds",
        x.ncols(),
        spec.labels.len()
    );
    println!("rounds: tandem {tandem_rounds:.2?} s, PyTorch {torch_rounds:.2?} s");
    println!("| trainer | seconds | final train loss |\n|---|---:|---:|");
    println!("| tandem (native) | {tandem_s:.2} | {tandem_loss:.4} |");
    println!(
        "| PyTorch 2 threads | {torch_s:.2} | {:.4} |",
        torch["final_loss"].as_f64().unwrap()
    );
    println!(
        "tandem / PyTorch speed: {:.2}x; target <= 1.0 s: {}",
        torch_s / tandem_s,
        if tandem_s <= 1.0 { "met" } else { "NOT met" }
    );
    println!("two-stage reference, {EPOCHS}+{EPOCHS} epochs: {two_s:.2}s ({stage_s:?})");
    let report = serde_json::json!({
        "examples": N, "epochs": EPOCHS, "input_dim": x.ncols(), "classes": spec.labels.len(),
        "statistic": "best round", "rounds": rounds,
        "tandem_seconds": tandem_s, "torch_seconds": torch_s, "speedup_vs_torch": torch_s / tandem_s,
        "tandem_rounds": tandem_rounds, "torch_rounds": torch_rounds,
        "tandem_final_loss": tandem_loss, "torch_final_loss": torch["final_loss"],
        "two_stage_seconds": two_s, "two_stage_stages": stage_s,
    });
    std::fs::write(
        out.join("train.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
}
