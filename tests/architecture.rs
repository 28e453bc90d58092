//! The code's shape, checked: serving code imports nothing from training (data flows one
//! way: training builds the serving types, never the reverse), and `unsafe` appears only in
//! the C ABI (`src/ffi/`).

use std::path::{Path, PathBuf};

/// The modules (directories or files under `src/`) that serve a trained model, and everything
/// they stand on.
const SERVING: [&str; 16] = [
    "backbone",
    "bundle",
    "cache",
    "data",
    "doctor.rs",
    "ensemble.rs",
    "error.rs",
    "eval",
    "files.rs",
    "heads",
    "home.rs",
    "metadata",
    "model.rs",
    "nn",
    "onnx",
    "runtime.rs",
];

/// The training side: what serving must not import.
const TRAINING: [&str; 3] = ["crate::train", "crate::compare", "crate::report"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path` (or `path` itself).
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(path).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The file's lines with their numbers, comment lines (`//`, `///`, `//!`) left out.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

#[test]
fn serving_code_imports_nothing_from_training() {
    let mut found = Vec::new();
    for module in SERVING {
        let path = src().join(module);
        assert!(path.exists(), "{} is gone: update SERVING", path.display());
        for file in rust_files(&path) {
            for (n, line) in code_lines(&file) {
                if TRAINING.iter().any(|t| line.contains(t)) {
                    found.push(format!("{}:{n}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "serving code imports training code:\n{}",
        found.join("\n")
    );
}

#[test]
fn unsafe_code_lives_only_in_the_c_abi() {
    let ffi = src().join("ffi");
    let uses = [
        "unsafe {",
        "unsafe fn",
        "unsafe impl",
        "unsafe extern",
        "unsafe trait",
    ];
    let mut found = Vec::new();
    for file in rust_files(&src()) {
        if file.starts_with(&ffi) {
            continue;
        }
        for (n, line) in code_lines(&file) {
            if uses.iter().any(|u| line.contains(u)) {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "unsafe outside src/ffi:\n{}",
        found.join("\n")
    );
    // The crate denies it everywhere else, and allows it only on the ffi module.
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));
    assert_eq!(lib.matches("#[allow(unsafe_code)]").count(), 1);
    assert!(lib.contains("#[allow(unsafe_code)]\npub mod ffi;"));
}
