//! Replays the fuzz corpora kept in the repository through the fuzz targets' own checks
//! (`fuzz/src/checks.rs`, compiled in here), so what the fuzzer once found stays fixed without
//! cargo-fuzz: every input in `fuzz/regressions/<target>/` must be handled (accepted or refused)
//! without a panic or a failed check, and every seed in `fuzz/seeds/<target>/` of the file
//! parsers must still be accepted (a seed the library now refuses would fuzz nothing but the
//! refusal: regenerate the seeds, see fuzz/README.md). `c_abi` inputs replay through the fuzz
//! binary itself (`scripts/fuzz.sh --smoke`), as they call the C ABI.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file in `fuzz/<kind>/<target>/`, sorted (none when the directory does not exist).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs `check` on every regression input of `target`, and on every seed, which must be
/// accepted when `seeds_accepted`.
fn replay(target: &str, seeds_accepted: bool, check: impl Fn(&[u8]) -> bool) {
    let regressions = inputs("regressions", target);
    for (path, bytes) in &regressions {
        eprintln!("{target}: {}", path.display());
        check(bytes);
    }
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "no seeds for {target}");
    for (path, bytes) in &seeds {
        let accepted = check(bytes);
        assert!(
            accepted || !seeds_accepted,
            "{}: the seed is refused now; regenerate the seeds (fuzz/README.md)",
            path.display()
        );
    }
}

#[test]
fn bundle_inputs() {
    replay("bundle", true, checks::bundle);
}

#[test]
fn bundle_arch_inputs() {
    replay("bundle_arch", true, checks::bundle_arch);
}

#[test]
fn trainer_spec_inputs() {
    replay("trainer_spec", true, checks::trainer_spec);
}

#[test]
fn onnx_graph_inputs() {
    replay("onnx_graph", true, checks::onnx_graph);
}

#[test]
fn backbone_manifest_inputs() {
    replay("backbone_manifest", true, checks::backbone_manifest);
}

#[test]
fn jsonl_inputs() {
    replay("jsonl", true, checks::jsonl);
}

#[test]
fn csv_inputs() {
    replay("csv", true, checks::csv);
}

#[test]
fn metadata_inputs() {
    replay("metadata", true, checks::metadata);
}

fn scratch(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-fuzzreg-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pooled_cache_inputs() {
    let dir = scratch("pooled");
    let check = checks::PooledCacheCheck::new(&dir);
    replay("pooled_cache", false, |b| {
        check.check(b);
        true
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_cache_inputs() {
    let dir = scratch("tokens");
    let check = checks::TokenCacheCheck::new(&dir);
    replay("token_cache", false, |b| {
        check.check(b);
        true
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn onnx_graph_check_walks_a_real_bert_graph() {
    // The fuzz check's BERT branch (layers read, heads found, layers written back) on the tiny
    // test backbone that setup exports: the path fuzzing explores must hold on a real graph.
    let path = tandem::home::cache_dir().join("models/tiny-random-bert/model.onnx");
    let bytes = std::fs::read(&path).expect("run scripts/setup.sh");
    let model = tandem::onnx::read::parse(&bytes).unwrap();
    let onnx = tandem::onnx::OnnxModel {
        proto: model,
        dir: None,
    };
    assert!(tandem::onnx::bert::bert_layer_count(&onnx) > 0);
    assert!(tandem::onnx::bert::attention_heads(&onnx).unwrap() > 0);
    assert!(checks::onnx_graph(&bytes));
}
