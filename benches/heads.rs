//! Serving the heads: tandem's native code against the same heads written as an ONNX graph and
//! run by ONNX Runtime (`HeadsEngine::Onnx`), at batch 1 and 64, in the same run.
//!
//! `cargo bench --bench heads`. The heads are the default pooled shape on all-MiniLM-L6-v2:
//! joint mode, 384-wide embeddings and 67 raw metadata features, an encoder (64 hidden, code 32)
//! and a 256-wide head with LayerNorm and GELU, three tasks (multi-class, binary, regression).
//! Each side runs from the same inputs to the same probabilities: native z-scores the features
//! and runs the network; ONNX gets the raw features (its graph selects and z-scores them).
//! The two sides alternate for `TANDEM_BENCH_ROUNDS` rounds (default 5) and each side's best
//! round counts; the outputs are checked to agree to 1e-5 first. Writes
//! `target/bench/heads.json`. Needs `scripts/setup.sh` (ONNX Runtime).

use std::sync::Arc;
use std::time::Instant;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem::data::{TaskKind, TaskSpec};
use tandem::heads::{predict_arrays, Architecture, Heads, Mode, Network, Normalizer, TaskEntry};
use tandem::nn::MlpConfig;
use tandem::onnx::OnnxHeads;
use tandem::Device;

mod common;

fn heads(n_raw: usize) -> Heads {
    let n_features = 40;
    let arch = Architecture {
        mode: Mode::Joint,
        emb_dim: 384,
        n_features,
        encoder: MlpConfig {
            hidden: vec![64],
            ..Default::default()
        },
        code_dim: 32,
        head: MlpConfig::default(),
        outputs: vec![6, 1, 1],
        target_scale: vec![(0.0, 1.0), (0.0, 1.0), (3.0, 2.0)],
        sequence: None,
    };
    let network = Network::new(arch, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let task = |name: &str, kind, labels: &[&str]| TaskEntry {
        spec: TaskSpec {
            name: name.into(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        },
        thresholds: if kind == TaskKind::Binary {
            vec![0.5]
        } else {
            vec![]
        },
    };
    Heads {
        network,
        normalizer: Some(Normalizer {
            selected: (0..n_features).map(|k| k * n_raw / n_features).collect(),
            mean: vec![0.5; n_features],
            std: vec![2.0; n_features],
        }),
        tasks: vec![
            task(
                "topic",
                TaskKind::Multiclass,
                &["a", "b", "c", "d", "e", "f"],
            ),
            task("spam", TaskKind::Binary, &["ham", "spam"]),
            task("score", TaskKind::Regression, &[]),
        ],
        version: 0,
        onnx: None,
    }
}

/// Seconds per call of `f`, the best of `reps`-call rounds within `rounds`.
fn time(mut f: impl FnMut(), reps: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    if !common::start("heads") {
        return;
    }
    let rounds: usize = std::env::var("TANDEM_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tandem::runtime::runtime(None).expect("ONNX Runtime (scripts/setup.sh)");
    let n_raw = tandem::metadata::num_features();
    let h = heads(n_raw);
    let onnx = OnnxHeads::from_heads(&h, Arc::clone(&runtime), Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut results = Vec::new();
    for batch in [1usize, 64] {
        let emb = Array2::from_shape_fn((batch, 384), |_| rng.random_range(-0.1..0.1f32));
        let raw = Array2::from_shape_fn((batch, n_raw), |_| rng.random_range(0.0..5.0f32));
        let native = || {
            let feats = h.normalizer.as_ref().unwrap().transform(raw.view());
            predict_arrays(&h, emb.view(), feats.view(), None).unwrap()
        };
        let via_onnx = || onnx.run(emb.view(), raw.view(), None).unwrap();
        let (a, b) = (native(), via_onnx());
        let diff = a
            .iter()
            .zip(&b)
            .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
            .fold(0.0f32, f32::max);
        assert!(
            diff <= 1e-5,
            "batch {batch}: ONNX differs from native by {diff}"
        );
        let reps = if batch == 1 { 2000 } else { 200 };
        let (mut best_native, mut best_onnx) = (f64::INFINITY, f64::INFINITY);
        let mut all = Vec::new();
        for _ in 0..rounds {
            let n = time(|| drop(native()), reps);
            let o = time(|| drop(via_onnx()), reps);
            best_native = best_native.min(n);
            best_onnx = best_onnx.min(o);
            all.push(serde_json::json!({"native_s": n, "onnx_s": o}));
        }
        println!(
            "batch {batch:>2}: native {:>8.1} µs, ONNX Runtime {:>8.1} µs per call; ONNX / native = {:.2}x (max diff {diff:.1e})",
            best_native * 1e6,
            best_onnx * 1e6,
            best_onnx / best_native
        );
        results.push(serde_json::json!({
            "batch": batch, "native_s": best_native, "onnx_s": best_onnx,
            "onnx_over_native": best_onnx / best_native, "max_abs_diff": diff, "rounds": all,
        }));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("heads.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "results": results })).unwrap(),
    )
    .unwrap();
}
