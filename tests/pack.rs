//! `tandem pack` end to end: a bundle trained on the tiny test backbone is packed, the pack is
//! copied elsewhere, and `examples/c/predict.c`, built against the copy's header and library
//! alone, classifies with no cache directory and nothing but the copy's paths. Taking away any
//! runtime file of the pack makes that run fail, so the pack holds exactly what it needs.
//! Needs `scripts/setup.sh` (the tiny backbone, ONNX Runtime, the TREC data) and a C compiler.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn tandem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
}

fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The tiny test backbone (a model trains and predicts in seconds).
fn tiny_backbone() -> PathBuf {
    std::env::var_os("TANDEM_TEST_BACKBONE")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::backbone_dir("tiny-random-bert"))
}

/// Copies the directory tree `from` to `to`, links as links (what `cp -a` does).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every path under `dir`, relative, with whether it is a link, sorted.
fn listing(dir: &Path, rel: &str, out: &mut Vec<(String, bool)>) {
    for e in std::fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        let t = e.file_type().unwrap();
        if t.is_dir() {
            listing(dir, &format!("{name}/"), out);
        } else {
            out.push((name, t.is_symlink()));
        }
    }
    out.sort();
}

#[test]
fn a_pack_runs_the_c_example_from_a_copy_with_no_cache_directory() {
    let dir = common::tmp("pack", "run");
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = tiny_backbone();
    let ort = std::env::var_os("TANDEM_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(tandem::home::ort_library);

    // A bundle on the tiny backbone, from 120 TREC questions.
    let src = tandem::home::data_dir().join("trec.jsonl");
    let text = std::fs::read_to_string(&src)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", src.display()));
    let rows: Vec<&str> = text.lines().step_by(40).take(120).collect();
    let data = dir.join("trec.jsonl");
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let model = dir.join("model");
    ok(tandem()
        .args(["train", "--label-field", "label", "--task", "multiclass"])
        .args(["--mode", "embedding_only", "--quiet", "--data"])
        .arg(&data)
        .arg("--backbone")
        .arg(&tiny)
        .arg("--ort-lib")
        .arg(&ort)
        .arg("--out")
        .arg(&model));
    let labels: Vec<String> = serde_json::from_str::<Value>(
        &std::fs::read_to_string(model.join("manifest.json")).unwrap(),
    )
    .unwrap()["tasks"][0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();

    // Pack it: libtandem.so is found beside the tandem executable, where `cargo build --lib`
    // puts it (`cargo test` alone builds only the rlib; scripts/test.sh builds the library
    // first).
    let exe_dir = Path::new(env!("CARGO_BIN_EXE_tandem")).parent().unwrap();
    assert!(
        exe_dir.join("libtandem.so").is_file(),
        "{}/libtandem.so is missing: build the shared library first (cargo build --lib; \
         scripts/test.sh does)",
        exe_dir.display()
    );
    let pack = dir.join("pack");
    let pack_cmd = || {
        let mut c = tandem();
        c.arg("pack")
            .arg(&model)
            .arg("--out")
            .arg(&pack)
            .arg("--backbone")
            .arg(&tiny)
            .arg("--ort-lib")
            .arg(&ort);
        c
    };
    let summary = String::from_utf8(ok(&mut pack_cmd()).stdout).unwrap();
    let ort_name = std::fs::canonicalize(&ort)
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut want: Vec<(String, bool)> = vec![
        ("README.txt".into(), false),
        ("backbone/manifest.json".into(), false),
        ("backbone/model.onnx".into(), false),
        ("backbone/tokenizer.json".into(), false),
        ("include/tandem.h".into(), false),
        ("lib/libtandem.so".into(), true),
        ("lib/libtandem.so.0".into(), false),
        (format!("lib/{ort_name}"), false),
        ("model/README.md".into(), false),
        ("model/manifest.json".into(), false),
        ("model/weights.safetensors".into(), false),
    ];
    if ort_name != "libonnxruntime.so" {
        want.push(("lib/libonnxruntime.so".into(), true));
    }
    want.sort();
    let mut have = Vec::new();
    listing(&pack, "", &mut have);
    assert_eq!(have, want, "{summary}");
    // The summary names every file with its size, and the total is their sum.
    let total: u64 = have
        .iter()
        .filter(|(_, link)| !link)
        .map(|(f, _)| std::fs::metadata(pack.join(f)).unwrap().len())
        .sum();
    for (f, _) in &have {
        assert!(summary.contains(f.as_str()), "{f}: {summary}");
    }
    assert!(
        summary.contains(&format!("({total} bytes) in 10 files")),
        "{summary}"
    );
    // The header is this build's; the graph, tokenizer and manifest are the backbone's.
    assert_eq!(
        std::fs::read_to_string(pack.join("include/tandem.h")).unwrap(),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/tandem.h"))
            .unwrap()
    );
    for f in ["manifest.json", "model.onnx", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(pack.join("backbone").join(f)).unwrap(),
            std::fs::read(tiny.join(f)).unwrap(),
            "{f}"
        );
    }
    // A second pack into the same, now non-empty, directory is refused and changes nothing.
    let again = pack_cmd().output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A copy elsewhere; the C example built against the copy alone.
    let copy = dir.join("elsewhere").join("device");
    copy_tree(&pack, &copy);
    std::fs::remove_dir_all(&pack).unwrap();
    let exe = dir.join("predict");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    ok(Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c/predict.c"))
        .arg(format!("-I{}", copy.join("include").display()))
        .arg(format!("-L{}", copy.join("lib").display()))
        .arg("-ltandem")
        .arg(format!("-Wl,-rpath,{}", copy.join("lib").display()))
        .arg("-o")
        .arg(&exe));
    // No cache directory: TANDEM_HOME names one that does not exist, and the home and XDG
    // cache directories hold none.
    let no_cache = dir.join("no-cache");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = || {
        let mut c = Command::new(&exe);
        c.env_remove("TANDEM_ORT_LIB")
            .env_remove("TANDEM_TEST_BACKBONE")
            .env_remove("LD_LIBRARY_PATH")
            .env("TANDEM_HOME", &no_cache)
            .env("XDG_CACHE_HOME", &home)
            .env("HOME", &home)
            .arg("--backbone")
            .arg(copy.join("backbone"))
            .args(["--variant", "fp32", "--ort-lib"])
            .arg(copy.join("lib/libonnxruntime.so"))
            .arg(copy.join("model"))
            .args(["Who wrote Hamlet?", "How far is the moon?"]);
        c
    };
    let out = String::from_utf8(ok(&mut run()).stdout).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        let label = l["predictions"][0]["labels"][0].as_str().unwrap();
        assert!(labels.iter().any(|x| x == label), "{label}: {out}");
    }
    // Nor did the run make one (ONNX Runtime itself may leave a device id under
    // $XDG_CACHE_HOME/Microsoft; that is not tandem's).
    assert!(!no_cache.exists());
    assert!(!home.join("tandem").exists() && !home.join(".cache").exists());

    // Every runtime file is needed: without any one of them, the run fails.
    let runtime_files = [
        "backbone/manifest.json".to_string(),
        "backbone/model.onnx".to_string(),
        "backbone/tokenizer.json".to_string(),
        "lib/libtandem.so.0".to_string(),
        format!("lib/{ort_name}"),
        "model/manifest.json".to_string(),
        "model/weights.safetensors".to_string(),
    ];
    for f in &runtime_files {
        let (at, away) = (copy.join(f), dir.join("away"));
        std::fs::rename(&at, &away).unwrap();
        let out = run().output().unwrap();
        std::fs::rename(&away, &at).unwrap();
        assert!(!out.status.success(), "ran without {f}");
    }
    ok(&mut run());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pack_refuses_a_graph_the_backbone_lacks_and_another_backbone() {
    let dir = common::tmp("pack", "refuse");
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = tiny_backbone();
    // A bundle manifest is enough to be refused on: pack checks before it writes anything.
    let model = dir.join("model");
    let data = dir.join("d.jsonl");
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{{\"text\": \"text number {i}\", \"label\": \"{}\"}}\n",
                i % 2
            )
        })
        .collect();
    std::fs::write(&data, rows).unwrap();
    ok(tandem()
        .args(["train", "--label-field", "label", "--task", "multiclass"])
        .args(["--mode", "embedding_only", "--quiet", "--data"])
        .arg(&data)
        .arg("--backbone")
        .arg(&tiny)
        .arg("--out")
        .arg(&model));
    let pack = dir.join("pack");
    // The tiny backbone has only an fp32 graph.
    let out = tandem()
        .arg("pack")
        .arg(&model)
        .arg("--out")
        .arg(&pack)
        .arg("--backbone")
        .arg(&tiny)
        .args(["--variant", "int8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no `int8` graph"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default backbone is another family.
    let default = tandem::home::default_backbone_dir();
    if default.join("manifest.json").is_file() {
        let out = tandem()
            .arg("pack")
            .arg(&model)
            .arg("--out")
            .arg(&pack)
            .arg("--backbone")
            .arg(&default)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("BackboneMismatch")
                || String::from_utf8_lossy(&out.stderr).contains("trained on backbone"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!pack.exists(), "a refused pack leaves nothing behind");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("pack-tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
