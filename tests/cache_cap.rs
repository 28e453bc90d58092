//! The library's `Trainer` keeps the embedding-cache cap of its config (`cache.max_size`, which
//! the C ABI's trainer spec takes too) while a sequence-head run fills the caches. A test binary
//! of its own: it points `TANDEM_HOME` at a scratch directory for the whole process. Needs
//! `scripts/setup.sh` (ONNX Runtime and the tiny test backbone).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tandem::train::Trainer;
use tandem::{Backbone, BackboneOptions};

mod common;

/// Bytes of the regular files in the graph directories of the cache at `root`.
fn cache_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|f| f.file_type().unwrap().is_file())
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

#[test]
fn a_sequence_head_trainer_leaves_the_cache_under_the_cap_of_its_config() {
    // Resolved before TANDEM_HOME moves: the setup's backbone and ONNX Runtime.
    let tiny = std::env::var_os("TANDEM_TEST_BACKBONE")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::backbone_dir("tiny-random-bert"));
    let ort = std::env::var_os("TANDEM_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(tandem::home::ort_library);
    let home = common::tmp("cache_cap", "home");
    std::env::set_var("TANDEM_HOME", &home);
    let root = home.join("embcache");
    // Another graph's file, ten days old: it goes first.
    let other = root.join("00000000deadbeef").join("pooled.v2");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, vec![0u8; 100_000]).unwrap();
    let backbone = Arc::new(
        Backbone::load(
            &tiny,
            BackboneOptions {
                ort_library: Some(ort),
                threads: Some(2),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let graph = root.join(&backbone.graph_sha256()[..16]);
    let texts: Vec<String> = (0..300)
        .map(|i| format!("example number {i} says something about topic {}", i % 3))
        .collect();
    let train = |cap: u64| {
        let spec = json!({
            "tasks": [{"name": "topic", "kind": "multiclass"}],
            "config": {
                "head": {"kind": "sequence", "hidden": [16],
                         "sequence": {"conv_kernels": [3], "conv_channels": 4},
                         "stage": {"epochs": 2}},
                "metadata": {"stage": {"epochs": 2}},
                "cache": {"max_size": cap},
            },
        });
        let mut t = Trainer::from_json(backbone.clone(), &spec.to_string()).unwrap();
        for (i, text) in texts.iter().enumerate() {
            t.add_example(text, &json!({"topic": format!("t{}", i % 3)}))
                .unwrap();
        }
        let report = t.train(&mut |_| true).unwrap();
        assert!(report.n_train > 0);
    };
    // Without a cap everything stays: the run's per-token file is larger than its pooled one.
    train(0);
    let size = |name: &str| std::fs::metadata(graph.join(name)).map_or(0, |m| m.len());
    let (pooled, tokens) = (size("pooled.v2"), size("tokens.v3"));
    assert!(pooled > 0 && tokens > pooled, "{pooled} {tokens}");
    assert!(other.exists());
    // A cap with room for the pooled file alone: the other graph's file goes, then this run's
    // per-token file (300 texts: two chunks, so it was pruned mid-run too), not the pooled one.
    let cap = pooled + 1000;
    train(cap);
    assert!(cache_bytes(&root) <= cap, "{} > {cap}", cache_bytes(&root));
    assert!(!other.exists());
    assert_eq!((size("pooled.v2"), size("tokens.v3")), (pooled, 0));
    // A cap below that: the run still trains, and leaves the cache under the cap.
    train(1000);
    assert!(cache_bytes(&root) <= 1000);
    let _ = std::fs::remove_dir_all(home);
}
