//! Serving a fine-tuned model: the backbone graph with its top layers fine-tuned (what a bundle
//! with `trainable_layers > 0` carries) against the stock graph, int8 and fp32, in the same run.
//!
//! `cargo bench --bench tuned`. The fine-tuned graphs are written as training writes them
//! (`TunedBackbone`: the layers back into the fp32 graph, re-quantized into the int8 graph), for
//! the top 2 layers of all-MiniLM-L6-v2 moved by a deterministic change as large as a fine-tune
//! makes (the values do not change the work: same nodes, same shapes, same quantization). Each
//! point (graph, text length, batch) measures sentences per second of `Backbone::embed` with 2
//! threads, the two sides alternating within each of `TANDEM_BENCH_ROUNDS` rounds (default 5;
//! which side goes first alternates too) for `TANDEM_BENCH_SECONDS` each (default 1). Reported:
//! the median over rounds of the fine-tuned/stock throughput ratio (paired, as the load of this
//! shared host shifts between rounds) and each side's best. Writes `target/bench/tuned.json`.
//! Needs `scripts/setup.sh` (backbone and demo data).

use std::path::Path;
use std::time::Instant;

use tandem::onnx::split::SplitBackbone;
use tandem::onnx::tuned::TunedBackbone;
use tandem::{Backbone, BackboneOptions, Variant};

mod common;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn texts(file: &str, n: usize, long: bool) -> Vec<String> {
    let rows = tandem::data::read_rows(&tandem::home::data_dir().join(file))
        .expect("demo data (scripts/setup.sh)");
    rows.iter()
        .filter_map(|r| r.text("text"))
        .filter(|t| !long || t.len() > 1200)
        .take(n)
        .collect()
}

fn load(dir: &Path, variant: Variant) -> Backbone {
    Backbone::load(
        dir,
        BackboneOptions {
            variant,
            threads: Some(2),
            ..Default::default()
        },
    )
    .expect("backbone")
}

/// Sentences per second embedding `texts` in batches of `batch` for about `seconds`.
fn rate(b: &Backbone, texts: &[&str], batch: usize, seconds: f64) -> f64 {
    let t = Instant::now();
    let mut done = 0usize;
    while t.elapsed().as_secs_f64() < seconds {
        for chunk in texts.chunks(batch) {
            b.embed(chunk).expect("embed");
            done += chunk.len();
            if t.elapsed().as_secs_f64() >= seconds {
                break;
            }
        }
    }
    done as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !common::start("tuned") {
        return;
    }
    let rounds: usize = env_or("TANDEM_BENCH_ROUNDS", 5);
    let seconds: f64 = env_or("TANDEM_BENCH_SECONDS", 1.0);
    let base = load(&tandem::home::default_backbone_dir(), Variant::Fp32);
    let mut split = SplitBackbone::new(&base, 2, 12).expect("split");
    for layer in split.top_mut() {
        for p in layer.params_mut() {
            p.value.mapv_inplace(|v| v * 1.05 + 0.01 * (v * 31.0).sin());
        }
    }
    let tuned = TunedBackbone::new(&base, split.top()).expect("fine-tuned backbone");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/tuned-backbone");
    let _ = std::fs::remove_dir_all(&dir);
    tuned.write(&dir).expect("write");
    let short = texts("trec.jsonl", 256, false);
    let long = texts("bbc.jsonl", 64, true);
    let mut results = Vec::new();
    println!("fine-tuned (top 2 layers) vs stock graph, sentences/s, 2 threads");
    for variant in [Variant::Int8, Variant::Fp32] {
        let stock = load(&tandem::home::default_backbone_dir(), variant);
        let mine = load(&dir, variant);
        for (length, set) in [("short", &short), ("long", &long)] {
            let refs: Vec<&str> = set.iter().map(String::as_str).collect();
            for batch in [1usize, 32] {
                // Warm both sessions up first.
                rate(&stock, &refs, batch, 0.2);
                rate(&mine, &refs, batch, 0.2);
                let (mut s, mut m, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
                for r in 0..rounds {
                    let (a, b) = if r % 2 == 0 {
                        let a = rate(&stock, &refs, batch, seconds);
                        (a, rate(&mine, &refs, batch, seconds))
                    } else {
                        let b = rate(&mine, &refs, batch, seconds);
                        (rate(&stock, &refs, batch, seconds), b)
                    };
                    s.push(a);
                    m.push(b);
                    ratio.push(b / a);
                }
                let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
                let med = median(ratio.clone());
                println!(
                    "{:>4} {length:>5} batch {batch:>2}: stock {:>7.1}, fine-tuned {:>7.1} (best rounds); fine-tuned / stock = {med:.3} (median of paired rounds)",
                    variant.name(),
                    best(&s),
                    best(&m)
                );
                results.push(serde_json::json!({
                    "variant": variant.name(), "length": length, "batch": batch,
                    "stock_best": best(&s), "tuned_best": best(&m), "ratio_median": med,
                    "stock": s, "tuned": m, "ratio": ratio,
                }));
            }
        }
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::write(
        out.join("tuned.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "results": results })).unwrap(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
