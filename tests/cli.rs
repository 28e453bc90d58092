//! The CLI end to end through the built binary: `compare` (every mode × seed on real data, and
//! determinism across reruns), `inspect` (on bundles trained here), `features`, and
//! `train --print-config` with unknown-key errors. Needs `scripts/setup.sh`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tandem::train::TrainConfig;

mod common;

fn tandem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
}

fn tmp(name: &str) -> PathBuf {
    let d = common::tmp("cli", name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tandem <verb>` on the `label` field of `data` as a `task`, with a config file.
fn labelled(verb: &str, task: &str, data: &Path, config: &Path) -> Command {
    let mut cmd = tandem();
    cmd.args([verb, "--label-field", "label", "--task", task])
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(config);
    cmd
}

/// Runs the command and returns its output, failing the test (with stderr) when it fails.
fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run tandem");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Every `step`-th row of a demo dataset (files are grouped by label), `n` rows, as a file.
fn slice(dir: &Path, file: &str, n: usize, step: usize) -> PathBuf {
    let src = tandem::home::data_dir().join(file);
    let text = std::fs::read_to_string(&src)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", src.display()));
    let rows: Vec<&str> = text.lines().step_by(step).take(n).collect();
    assert_eq!(rows.len(), n, "{file} has too few rows");
    let path = dir.join(file);
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path
}

/// A short training config (the CLI tests check plumbing and determinism, not accuracy). It
/// names the mode, so that `train` trains it instead of searching for a recipe (the search has
/// its own test).
fn quick_config(dir: &Path, epochs: usize) -> PathBuf {
    let p = dir.join("quick.toml");
    std::fs::write(
        &p,
        format!(
            "mode = \"two_stage\"\n\n[metadata.stage]\nepochs = {epochs}\n\n[head.stage]\nepochs = {epochs}\n"
        ),
    )
    .unwrap();
    p
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const ARMS: [&str; 5] = [
    "embedding_only",
    "metadata_only",
    "joint",
    "two_stage",
    "two_stage_unfreeze",
];

/// The deterministic part of a run (everything but wall-clock times).
fn outcome(run: &Value) -> Value {
    let mut r = run.clone();
    let o = r.as_object_mut().unwrap();
    o.remove("seconds_to_best");
    o.remove("train_seconds");
    // Allocation peaks depend on how threads interleave, and on what the process did before.
    o.remove("peak_memory_bytes");
    r
}

#[test]
fn compare_runs_every_mode_and_seed_and_reruns_identically() {
    let dir = tmp("compare");
    let data = slice(&dir, "trec.jsonl", 400, 13);
    let config = quick_config(&dir, 3);
    let (json, md, html) = (
        dir.join("out.json"),
        dir.join("out.md"),
        dir.join("out.html"),
    );
    // The modes (the linear and sequence recipes have their own test: compare runs them too
    // by default).
    let out = ok(labelled("compare", "multiclass", &data, &config)
        .args(["--seeds", "3", "--quiet", "--modes", &ARMS.join(",")])
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--html")
        .arg(&html));
    let table = stdout(&out);
    let report = json_file(&json);

    // The same held-out test split for every run: 20% of 400, stratified.
    assert_eq!(report["n_test"], 80);
    assert_eq!(
        report["n_train"].as_u64().unwrap() + report["n_valid"].as_u64().unwrap(),
        320
    );
    assert_eq!(
        report["metrics"],
        serde_json::json!(["macro_f1", "accuracy"])
    );

    // Every mode × seed ran once, with sane numbers.
    let runs = report["runs"].as_array().unwrap();
    let ran: BTreeSet<(String, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["arm"].as_str().unwrap().to_string(),
                r["seed"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, u64)> = ARMS
        .iter()
        .flat_map(|a| (0..3).map(move |s| (a.to_string(), s)))
        .collect();
    assert_eq!(ran, want);
    assert_eq!(runs.len(), 15);
    for r in runs {
        let f1 = r["test"]["macro_f1"].as_f64().unwrap();
        let acc = r["test"]["accuracy"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&f1) && (0.0..=1.0).contains(&acc),
            "{r}"
        );
        assert_eq!(r["test_metrics"]["n"], 80, "scored on the test split");
        let (tb, tt) = (
            r["seconds_to_best"].as_f64().unwrap(),
            r["train_seconds"].as_f64().unwrap(),
        );
        assert!(
            tb > 0.0 && tb <= tt + 1e-9,
            "time to best {tb} vs total {tt}"
        );
        assert!(r["best_valid_loss"].as_f64().unwrap().is_finite());
        let epochs = r["epochs"].as_object().unwrap();
        let stages: Vec<&str> = epochs.keys().map(String::as_str).collect();
        let expected: &[&str] = match r["arm"].as_str().unwrap() {
            "embedding_only" => &["heads"],
            "metadata_only" => &["metadata"],
            "joint" => &["joint"],
            _ => &["stage1", "stage2"],
        };
        assert_eq!(stages, expected);
        assert!(epochs
            .values()
            .all(|e| (1..=3).contains(&e.as_u64().unwrap())));
    }
    // Six classes: chance macro-F1 is ~0.17; embeddings learn something even in 3 epochs.
    let mean_f1 = |arm: &str| {
        let v: Vec<f64> = runs
            .iter()
            .filter(|r| r["arm"] == arm)
            .map(|r| r["test"]["macro_f1"].as_f64().unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean_f1("embedding_only") > 0.3,
        "{}",
        mean_f1("embedding_only")
    );

    // The aggregates are the runs' mean ± sd, and the verdict names the best mean.
    let summaries = report["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 5);
    let mut best = ("", f64::MIN);
    for s in summaries {
        let arm = s["arm"].as_str().unwrap();
        let stat = &s["test"]["macro_f1"];
        assert_eq!(stat["n"], 3);
        assert!((stat["mean"].as_f64().unwrap() - mean_f1(arm)).abs() < 1e-12);
        let v: Vec<f64> = runs
            .iter()
            .filter(|r| r["arm"] == arm)
            .map(|r| r["test"]["macro_f1"].as_f64().unwrap())
            .collect();
        let m = mean_f1(arm);
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((stat["sd"].as_f64().unwrap() - sd).abs() < 1e-12);
        if m > best.1 {
            best = (arm, m);
        }
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(arm) && l.contains(&format!("{m:.4} ±"))),
            "table lacks {arm} with {m:.4}:\n{table}"
        );
    }
    assert_eq!(report["verdict"]["best"], best.0);
    let verdict: Vec<&str> = report["verdict"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(verdict[0].starts_with(&format!(
        "best on test macro_f1 (higher is better): {}",
        best.0
    )));
    for pair in [
        "two_stage vs joint: ",
        "two_stage vs embedding_only: ",
        "two_stage_unfreeze vs joint: ",
    ] {
        assert!(
            verdict.iter().any(|l| l.starts_with(pair)),
            "no `{pair}` line in {verdict:?}"
        );
    }
    for l in &verdict {
        assert!(table.contains(l), "verdict line not printed: {l}");
    }

    // Markdown: the table, one row per mode, and the verdict.
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| mode | runs | time to best (s) |"));
    for arm in ARMS {
        assert!(md.contains(&format!("| {arm} | 3 | ")), "{md}");
    }
    assert!(md.contains(verdict[0]));
    // HTML: self-contained, nothing fetched, no scripts.
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<table>"));
    for banned in ["<script", "src=", "href=", "http:", "https:", "@import"] {
        assert!(!html.contains(banned), "HTML contains {banned}");
    }
    assert_eq!(
        html.matches("<tr").count(),
        6,
        "a header row and one per mode"
    );

    // Determinism: seed 1 alone, rerun in a new process, gives exactly seed 1's numbers.
    let json2 = dir.join("again.json");
    ok(labelled("compare", "multiclass", &data, &config)
        .args(["--seed-list", "1", "--quiet", "--modes", &ARMS.join(",")])
        .arg("--json")
        .arg(&json2));
    let again = json_file(&json2);
    let again_runs = again["runs"].as_array().unwrap();
    assert_eq!(again_runs.len(), 5);
    for r in again_runs {
        let first = runs
            .iter()
            .find(|x| x["arm"] == r["arm"] && x["seed"] == 1)
            .unwrap();
        assert_eq!(
            outcome(r),
            outcome(first),
            "{} seed 1 differs on rerun",
            r["arm"]
        );
    }
    // ... and another seed gives other numbers.
    for arm in ARMS {
        let of = |seed: u64| {
            outcome(
                runs.iter()
                    .find(|x| x["arm"] == arm && x["seed"] == seed)
                    .unwrap(),
            )
        };
        assert_ne!(
            of(0)["best_valid_loss"],
            of(1)["best_valid_loss"],
            "{arm}: seed ignored"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compare_rejects_bad_arguments_with_clear_errors() {
    let dir = tmp("compare-bad");
    let data = slice(&dir, "trec.jsonl", 30, 100);
    let out = tandem()
        .args(["compare", "--label-field", "label", "--task", "multiclass"])
        .arg("--data")
        .arg(&data)
        .args(["--modes", "two_stage,three_stage"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("three_stage") && err.contains("two_stage_unfreeze"),
        "{err}"
    );
    let out = tandem()
        .args(["compare", "--label-field", "label", "--task", "multiclass"])
        .arg("--data")
        .arg(&data)
        .args(["--test-fraction", "0.95", "--modes", "metadata_only"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("test fraction"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn sha256_hex(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn inspect_shows_tasks_metrics_provenance_architecture_files_and_weights() {
    let dir = tmp("inspect");
    let config = quick_config(&dir, 3);
    // A metadata-only binary bundle (no embeddings needed) ...
    let sms = slice(&dir, "sms_spam.jsonl", 300, 17);
    let meta = dir.join("meta-bundle");
    ok(labelled("train", "binary", &sms, &config)
        .args(["--mode", "metadata_only", "--seed", "5", "--quiet"])
        .arg("--out")
        .arg(&meta));
    let text = stdout(&ok(tandem().arg("inspect").arg(&meta)));
    for want in [
        "tandem-bundle/1",
        "created by    tandem ",
        "seed          5",
        "all-MiniLM-L6-v2 (variant fp32, dim 384)",
        "graph sha256",
        "family sha256",
        "label  binary  labels ham, spam  positive spam  threshold ",
        "architecture  mode metadata_only",
        "93 features -> hidden [64] -> code 32",
        "features      93 of 93 metadata features (feature set 2)",
        "metrics       validation (",
        "mode = \"metadata_only\"",
        "manifest.json",
        "weights.safetensors",
        "README.md",
        "(the model card: for people, not read)",
        "weights       f32, ",
        "(verified)",
    ] {
        assert!(
            text.contains(want),
            "inspect output lacks `{want}`:\n{text}"
        );
    }
    let j: Value =
        serde_json::from_slice(&ok(tandem().arg("inspect").arg(&meta).arg("--json")).stdout)
            .unwrap();
    assert_eq!(j["format"], "tandem-bundle/1");
    assert_eq!(j["seed"], 5);
    assert_eq!(j["training"]["seed"], 5);
    assert_eq!(j["training"]["mode"], "metadata_only");
    assert_eq!(j["tasks"][0]["kind"], "binary");
    assert_eq!(j["tasks"][0]["labels"], serde_json::json!(["ham", "spam"]));
    assert_eq!(j["tasks"][0]["positive"], "spam");
    assert_eq!(j["tasks"][0]["thresholds"].as_array().unwrap().len(), 1);
    assert_eq!(j["architecture"]["mode"], "metadata_only");
    assert_eq!(j["features"]["selected"], 93);
    assert_eq!(j["features"]["set"], 2);
    assert_eq!(j["backbone"]["name"], "all-MiniLM-L6-v2");
    assert_eq!(j["backbone"]["graph_sha256"].as_str().unwrap().len(), 64);
    assert!(j["metrics"]["macro_f1"].as_f64().is_some());
    let weights = meta.join("weights.safetensors");
    assert_eq!(j["weights"]["sha256"], sha256_hex(&weights));
    assert_eq!(j["weights"]["dtype"], "f32");
    let tensors = j["weights"]["tensors"].as_array().unwrap();
    let from_shapes: u64 = tensors
        .iter()
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    assert_eq!(j["weights"]["parameters"], from_shapes);
    assert!(tensors
        .iter()
        .any(|t| t["name"].as_str().unwrap().starts_with("encoder")));
    // f32: 4 bytes per parameter plus the safetensors header.
    let files = j["files"].as_array().unwrap();
    for f in files {
        let len = std::fs::metadata(meta.join(f["name"].as_str().unwrap()))
            .unwrap()
            .len();
        assert_eq!(f["bytes"], len);
    }
    let wbytes = std::fs::metadata(&weights).unwrap().len();
    assert!(wbytes > 4 * from_shapes && wbytes < 4 * from_shapes + 16_384);

    // ... and an embedding-only multiclass one.
    let trec = slice(&dir, "trec.jsonl", 300, 17);
    let emb = dir.join("emb-bundle");
    ok(labelled("train", "multiclass", &trec, &config)
        .args(["--mode", "embedding_only", "--quiet"])
        .arg("--out")
        .arg(&emb));
    let text = stdout(&ok(tandem().arg("inspect").arg(&emb)));
    for want in [
        "label  multiclass  6 labels: ",
        "architecture  mode embedding_only",
        "heads          input 384 (embedding 384) -> hidden [256] -> outputs [6]",
        "features      none (embedding only)",
    ] {
        assert!(
            text.contains(want),
            "inspect output lacks `{want}`:\n{text}"
        );
    }

    // A corrupted bundle is refused, not described.
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let out = tandem().arg("inspect").arg(&meta).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    let out = tandem()
        .arg("inspect")
        .arg(dir.join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn features_prints_every_named_feature_from_an_argument_or_stdin() {
    let text = "Hello, world! How are you?";
    let out = stdout(&ok(tandem().args(["features", text])));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + tandem::metadata::num_features());
    assert!(
        lines[0].starts_with("name") && lines[0].contains("group") && lines[0].ends_with("value")
    );
    let cell = |name: &str| -> Vec<String> {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(cell("word_count"), ["word_count", "length", "5"]);
    assert_eq!(cell("sentence_count"), ["sentence_count", "length", "2"]);
    assert_eq!(cell("question_rate")[1], "punctuation");
    for (line, spec) in lines[1..].iter().zip(tandem::metadata::feature_specs()) {
        assert!(line.starts_with(spec.name), "{line}");
    }

    let j: Value =
        serde_json::from_slice(&ok(tandem().args(["features", text, "--json"])).stdout).unwrap();
    let feats = j["features"].as_array().unwrap();
    let expected = tandem::metadata::extract(text);
    assert_eq!(feats.len(), expected.len());
    for ((f, spec), v) in feats
        .iter()
        .zip(tandem::metadata::feature_specs())
        .zip(&expected)
    {
        assert_eq!(f["name"], spec.name);
        assert_eq!(f["group"], spec.group.name());
        assert_eq!(f["formula"], spec.formula);
        assert_eq!(f["value"].as_f64().unwrap() as f32, *v, "{}", spec.name);
    }

    // `-` reads standard input; the trailing newline of `echo` is not part of the text.
    let mut child = tandem()
        .args(["features", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{text}\n").as_bytes())
        .unwrap();
    let piped: Value = serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(piped, j);
}

#[test]
fn print_config_shows_the_effective_config_and_unknown_keys_are_named() {
    let parse = |out: &Output| TrainConfig::parse(&stdout(out)).unwrap();
    // No data or task needed to print the config.
    assert_eq!(
        parse(&ok(tandem().args(["train", "--print-config"]))),
        TrainConfig::default()
    );
    let c = parse(&ok(tandem().args([
        "train",
        "--print-config",
        "--seed",
        "5",
        "--mode",
        "joint",
        "--head",
        "sequence",
    ])));
    assert_eq!((c.seed, c.mode), (5, tandem::train::Mode::Joint));
    assert_eq!(c.head.kind, tandem::train::config::HeadKind::Sequence);
    // Whatever compare names its winner trains: two_stage_unfreeze is two_stage with compare's
    // unfreezing schedule (stage-2 epoch 3 and 0.1x the head LR with the defaults).
    let c = parse(&ok(tandem().args([
        "train",
        "--print-config",
        "--mode",
        "two_stage_unfreeze",
    ])));
    assert_eq!(c.mode, tandem::train::Mode::TwoStage);
    let arm = tandem::compare::Arm::TwoStageUnfreeze.config(&TrainConfig::default(), 0);
    assert_eq!(c.unfreeze, arm.unfreeze);
    assert!(c.unfreeze.at_epoch.is_some());
    let e = tandem()
        .args(["train", "--print-config", "--head", "lstm"])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("lstm"));
    let documented = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.toml");
    assert_eq!(
        parse(&ok(tandem()
            .args(["train", "--print-config", "--config"])
            .arg(&documented))),
        TrainConfig::default()
    );
    let dir = tmp("config");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[head.stage]\nepoch = 3\n").unwrap();
    let out = tandem()
        .args(["train", "--print-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `epoch`") && err.contains("bad.toml"),
        "{err}"
    );
    // Training itself still requires data and a task.
    let out = tandem().args(["train", "--out", "x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_without_a_recipe_chooses_one_by_validation_and_compare_runs_every_recipe() {
    let dir = tmp("auto");
    // 72 examples of 6 classes: the search cross-validates (small data).
    let data = slice(&dir, "trec.jsonl", 72, 61);
    let config = dir.join("auto.toml");
    std::fs::write(
        &config,
        "[head]\nhidden = [32]\n\n[head.sequence]\nconv_kernels = [3]\nconv_channels = 8\n\n\
         [head.stage]\nepochs = 3\n\n[metadata.stage]\nepochs = 3\n",
    )
    .unwrap();
    // Fine-tuning (a candidate too: below) takes minutes in a debug build.
    let run = |seed: &str, budget: &str, out: &Path| -> (Value, String) {
        let o = ok(labelled("train", "multiclass", &data, &config)
            .args(["--seed", seed, "--budget", budget, "--log-format", "json"])
            .arg("--no-finetune")
            .arg("--out")
            .arg(out));
        let err = String::from_utf8(o.stderr).unwrap();
        let events: Vec<Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let done = events.last().unwrap().clone();
        (done, err)
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (done, log) = run("1", "600", &a);
    assert_eq!(done["event"], "done");
    let sel = &done["selection"];
    assert_eq!(sel["validation"]["kind"], "cross_validation", "{sel}");
    let cands = sel["candidates"].as_array().unwrap();
    let names: Vec<&str> = cands.iter().map(|c| c["arm"].as_str().unwrap()).collect();
    // On small data: the linear recipe and an MLP head (fine-tuning is left out here); the
    // recipes whose cross-validated wins did not hold on test are not tried.
    assert_eq!(names, ["linear", "embedding_only"]);
    // With a budget this large every candidate is measured (on every fold), and the winner has
    // the best score, or a cheaper recipe stayed because the best one won within the noise.
    let scores: Vec<f64> = cands.iter().map(|c| c["score"].as_f64().unwrap()).collect();
    assert!(cands
        .iter()
        .all(|c| c["fold_scores"].as_array().unwrap().len() == 2));
    let best = scores.iter().cloned().fold(f64::MIN, f64::max);
    let chosen = sel["chosen"].as_str().unwrap();
    let i = names.iter().position(|n| *n == chosen).unwrap();
    let (text, _) = {
        let o = ok(labelled("train", "multiclass", &data, &config)
            .args(["--seed", "1", "--budget", "600", "--no-finetune"])
            .arg("--out")
            .arg(dir.join("text")));
        (String::from_utf8(o.stderr).unwrap(), ())
    };
    assert!(
        scores[i] == best || text.contains("higher but not clearly"),
        "{sel}\n{text}"
    );
    assert_eq!(done["recipe"], chosen);
    // One recipe event per candidate, as it is decided.
    assert_eq!(log.matches("\"event\":\"recipe\"").count(), 2, "{log}");
    // The bundle holds the chosen recipe and serves like any other.
    let manifest = json_file(&a.join("manifest.json"));
    let head = manifest["training"]["head"]["kind"].as_str().unwrap();
    match chosen {
        "linear" | "sequence" => assert_eq!(head, chosen),
        mode => assert_eq!(
            manifest["training"]["mode"].as_str().unwrap(),
            mode.trim_end_matches("_unfreeze")
        ),
    }
    ok(tandem()
        .args(["eval", "--label-field", "label", "--model"])
        .arg(&a)
        .arg("--data")
        .arg(&data));
    // Deterministic for a seed when every candidate fits the budget.
    let (again, _) = run("1", "600", &b);
    assert_eq!(
        again["selection"]["candidates"].as_array().unwrap().len(),
        2
    );
    for (x, y) in cands
        .iter()
        .zip(again["selection"]["candidates"].as_array().unwrap())
    {
        assert_eq!(x["score"], y["score"]);
    }
    assert_eq!(
        std::fs::read(a.join("weights.safetensors")).unwrap(),
        std::fs::read(b.join("weights.safetensors")).unwrap()
    );
    // A zero budget measures the first candidate only, and says what it left out.
    let o = ok(labelled("train", "multiclass", &data, &config)
        .args(["--seed", "1", "--budget", "0"])
        .arg("--out")
        .arg(dir.join("c")));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("chose linear: best 2-fold cross-validated macro_f1"),
        "{err}"
    );
    assert!(
        err.contains("not measured: finetune, embedding_only"),
        "{err}"
    );
    // --no-finetune leaves fine-tuning out of the search.
    let o = ok(labelled("train", "multiclass", &data, &config)
        .args(["--seed", "1", "--budget", "0", "--no-finetune"])
        .arg("--out")
        .arg(dir.join("frozen")));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("not measured: embedding_only") && !err.contains("finetune"),
        "{err}"
    );
    // Measured, fine-tuning (second) fetches the hidden states under the top layers;
    // a fine-tuned winner's bundle carries its own backbone. (One short epoch and no warm-up
    // here: a debug build trains transformer layers slowly.)
    std::fs::create_dir_all(dir.join("few")).unwrap();
    let few = slice(&dir.join("few"), "trec.jsonl", 24, 62);
    let ft_config = dir.join("ft.toml");
    std::fs::write(
        &ft_config,
        "[head]\nhidden = [16]\n\n[head.stage]\nepochs = 1\n\n[metadata.stage]\nepochs = 1\n\n\
         [backbone]\ncontrastive_epochs = 0\n",
    )
    .unwrap();
    let ft = dir.join("ft");
    let o = ok(labelled("train", "multiclass", &few, &ft_config)
        .args(["--seed", "2", "--budget", "600", "--log-format", "json"])
        .arg("--out")
        .arg(&ft));
    let err = String::from_utf8(o.stderr).unwrap();
    let done: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    let cands = done["selection"]["candidates"].as_array().unwrap();
    assert_eq!(cands[1]["arm"], "finetune", "{err}");
    assert!(cands[1]["score"].as_f64().is_some(), "{err}");
    assert!(err.contains("(bottom layers)"), "{err}");
    let manifest = json_file(&ft.join("manifest.json"));
    let tuned = done["recipe"] == "finetune";
    assert_eq!(
        manifest["training"]["backbone"]["trainable_layers"],
        if tuned { 2 } else { 0 },
        "{err}"
    );
    assert_eq!(ft.join("backbone").join("model.onnx").is_file(), tuned);
    ok(tandem()
        .args(["eval", "--label-field", "label", "--model"])
        .arg(&ft)
        .arg("--data")
        .arg(&few));
    // compare's recipe names train as compare trained them.
    for (name, kind) in [("linear", "linear"), ("sequence", "sequence")] {
        let out = dir.join(format!("named-{name}"));
        ok(labelled("train", "multiclass", &data, &config)
            .args(["--mode", name, "--quiet"])
            .arg("--out")
            .arg(&out));
        let m = json_file(&out.join("manifest.json"));
        assert_eq!(m["training"]["head"]["kind"], kind);
        assert_eq!(m["training"]["mode"], "embedding_only");
    }
    // --mode or --head name a recipe: no search.
    let o = ok(labelled("train", "multiclass", &data, &config)
        .args(["--mode", "embedding_only"])
        .arg("--out")
        .arg(dir.join("d")));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!err.contains("recipe 1/"), "{err}");
    // compare runs every recipe by default, the linear and sequence ones included.
    let json = dir.join("cmp.json");
    ok(labelled("compare", "multiclass", &data, &config)
        .args(["--seeds", "1", "--quiet"])
        .arg("--json")
        .arg(&json));
    let arms: Vec<String> = json_file(&json)["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(arms.len(), 7);
    assert!(arms.contains(&"linear".into()) && arms.contains(&"sequence".into()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sequence_heads_through_compare_train_inspect_and_eval() {
    let dir = tmp("sequence");
    let data = slice(&dir, "trec.jsonl", 150, 31);
    let config = dir.join("seq.toml");
    std::fs::write(
        &config,
        "[head]\nhidden = [32]\n\n[head.sequence]\nconv_kernels = [3]\nconv_channels = 8\n\n\
         [head.stage]\nepochs = 3\n\n[metadata.stage]\nepochs = 3\n",
    )
    .unwrap();
    // compare: the head type applies to every arm that reads the backbone.
    let json = dir.join("cmp.json");
    ok(labelled("compare", "multiclass", &data, &config)
        .args([
            "--head",
            "sequence",
            "--modes",
            "embedding_only,two_stage",
            "--seeds",
            "1",
            "--quiet",
        ])
        .arg("--json")
        .arg(&json));
    let report = json_file(&json);
    assert_eq!(report["config"]["head"]["kind"], "sequence");
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    // train → inspect → eval: the bundle carries the encoder and eval re-embeds tokens.
    let model = dir.join("model");
    ok(labelled("train", "multiclass", &data, &config)
        .args(["--head", "sequence", "--mode", "joint", "--quiet"])
        .arg("--out")
        .arg(&model));
    let shown = stdout(&ok(tandem().arg("inspect").arg(&model)));
    assert!(shown.contains("sequence       tokens 384"), "{shown}");
    let m: Value = serde_json::from_str(&stdout(&ok(tandem()
        .args(["eval", "--label-field", "label", "--json", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data))))
    .unwrap();
    assert!(m["accuracy"].as_f64().unwrap() > 0.3, "{m}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hostile_outputs_inputs_and_hosts_get_errors_not_data_loss_or_aborts() {
    let dir = tmp("hostile");
    let data = slice(&dir, "sms_spam.jsonl", 300, 3);
    let config = quick_config(&dir, 3);
    // `--out` naming someone's directory that happens to hold a manifest.json: refused before
    // any training, and nothing in it touched (it used to be replaced whole).
    let pwa = dir.join("pwa");
    std::fs::create_dir_all(pwa.join("src")).unwrap();
    std::fs::write(pwa.join("manifest.json"), r#"{"name":"My PWA"}"#).unwrap();
    std::fs::write(pwa.join("src/app.js"), "code").unwrap();
    let out = labelled("train", "binary", &data, &config)
        .arg("--out")
        .arg(&pwa)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a tandem bundle"));
    assert_eq!(
        std::fs::read_to_string(pwa.join("src/app.js")).unwrap(),
        "code"
    );
    // A real bundle is replaced by the next train, as before.
    let model = dir.join("model");
    for _ in 0..2 {
        ok(labelled("train", "binary", &data, &config)
            .arg("--out")
            .arg(&model)
            .arg("--log-format")
            .arg("json"));
    }
    // Predicting 300 texts under a 1.2 GB address-space cap (it used to abort: each GEMM
    // thread reserved ~600 MB).
    let texts = dir.join("texts.txt");
    let rows: Vec<Value> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r["text"].as_str().unwrap().replace('\n', " "))
        .collect();
    std::fs::write(&texts, lines.join("\n") + "\n").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1200000 && exec \"$0\" predict --model \"$1\" \"$2\"")
        .arg(env!("CARGO_BIN_EXE_tandem"))
        .arg(&model)
        .arg(&texts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "under ulimit -v: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out).lines().count(), 300);
    // `eval` on an empty file is an error, not accuracy 0 with exit 0.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = tandem()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rows"));
    // `/dev/zero` as data: refused at once (it used to read until memory ran out).
    let out = labelled("train", "binary", Path::new("/dev/zero"), &config)
        .arg("--out")
        .arg(dir.join("zero"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("device"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn linear_recipe_cross_validates_on_every_example_and_serves_like_any_bundle() {
    let dir = tmp("linear");
    let data = slice(&dir, "trec.jsonl", 120, 37);
    let train = |out: &Path| {
        let mut cmd = tandem();
        cmd.args(["train", "--label-field", "label", "--task", "multiclass"])
            .args(["--head", "linear", "--log-format", "json", "--seed", "4"])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out);
        ok(&mut cmd)
    };
    let model = dir.join("model");
    let out = train(&model);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let done: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no done event in {stderr}"));
    // Nothing held out: every example trains, and every one is scored out-of-fold.
    assert_eq!(done["n_train"], 120, "{done}");
    assert_eq!(done["n_valid"], 120, "{done}");
    assert_eq!(done["head"], "linear");
    assert_eq!(done["mode"], "embedding_only");
    let linear = &done["linear"][0];
    // 5 folds, or as many as the smallest class has examples (2 in this slice).
    let folds = linear["folds"].as_u64().unwrap();
    assert!((2..=5).contains(&folds), "{done}");
    // The grid of 10, stopped 2 points past the chosen C (GRID_PATIENCE).
    let c = linear["c"].as_f64().unwrap();
    let grid = linear["grid"].as_array().unwrap();
    let best = grid.iter().position(|g| g[0].as_f64() == Some(c)).unwrap();
    assert_eq!(grid.len(), (best + 3).min(10), "{done}");
    assert!(c > 0.0);
    assert!(done["metrics"]["macro_f1"].as_f64().is_some(), "{done}");
    // The same seed gives the same weights.
    let again = dir.join("again");
    train(&again);
    let weights = |m: &Path| std::fs::read(m.join("weights.safetensors")).unwrap();
    assert_eq!(weights(&model), weights(&again));
    // Served like any bundle: eval on the training texts is near perfect for a linear model.
    let m: Value = serde_json::from_str(&stdout(&ok(tandem()
        .args(["eval", "--label-field", "label", "--json", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data))))
    .unwrap();
    assert!(m["accuracy"].as_f64().unwrap() > 0.7, "{m}");
    // A mode that reads metadata, and a report without validation data, are clear errors.
    for (extra, says) in [
        (vec!["--mode", "joint"], "embedding_only"),
        (vec!["--report", "r.html"], "--valid"),
    ] {
        let out = tandem()
            .args(["train", "--label-field", "label", "--task", "multiclass"])
            .args(["--head", "linear"])
            .args(&extra)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(dir.join("bad"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{extra:?}: {err}"
        );
        assert!(!dir.join("bad").exists());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn eval_writes_the_errors_worst_first_breaks_down_by_field_pairs_and_compares_group_methods() {
    let dir = tmp("eval-tools");
    let src = slice(&dir, "trec.jsonl", 120, 37);
    // Two made-up fields to break down by, and authors of four questions each.
    let rows: Vec<Value> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["src"] = if i % 2 == 0 { "web" } else { "mail" }.into();
            v["lang"] = (i % 3).into();
            v["author"] = format!("user{}", i / 4).into();
            v["id"] = format!("q{i}").into();
            v
        })
        .collect();
    let data = dir.join("data.jsonl");
    let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let model = dir.join("model");
    ok(tandem()
        .args(["train", "--label-field", "label", "--task", "multiclass"])
        .args(["--head", "linear", "--seed", "1", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&model));
    let errors = dir.join("errors.jsonl");
    let report: Value = serde_json::from_str(&stdout(&ok(tandem()
        .args([
            "eval",
            "--label-field",
            "label",
            "--json",
            "--by",
            "src,lang",
        ])
        .args(["--group-field", "author", "--errors-top", "5", "--errors"])
        .arg(&errors)
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data))))
    .unwrap();
    // The misclassified examples, at most 5, worst first, each as the data has it.
    let n = report["n"].as_u64().unwrap() as f64;
    let wrong = (n * (1.0 - report["accuracy"].as_f64().unwrap())).round() as usize;
    let cases: Vec<Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cases.len(), wrong.min(5), "{report}");
    for (k, c) in cases.iter().enumerate() {
        let i = c["index"].as_u64().unwrap() as usize;
        assert_eq!(c["text"], rows[i]["text"]);
        assert_eq!(c["id"], rows[i]["id"]);
        assert_eq!(c["truth"], rows[i]["label"]);
        assert_ne!(c["predicted"], c["truth"]);
        assert_eq!(c["task"], "label");
        let p = c["confidence"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{c}");
        if k > 0 {
            assert!(cases[k - 1]["loss"].as_f64() >= c["loss"].as_f64(), "{c}");
        }
    }
    // Every combination of the two fields' values.
    let b = &report["breakdown"];
    assert_eq!(b["by"], "src,lang");
    let groups = b["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 6, "{b}");
    assert!(
        groups.contains_key("web / 0") && groups.contains_key("mail / 2"),
        "{b}"
    );
    let total: u64 = groups.values().map(|g| g["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 120);
    // Group-level metrics of each aggregation method, side by side.
    let g = &report["groups"];
    assert_eq!((&g["field"], &g["groups"]), (&"author".into(), &30.into()));
    for how in ["mean", "median", "majority", "total_vote"] {
        let m = &g["methods"][how];
        assert_eq!(m["n"], 30, "{how}: {g}");
        let acc = m["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{how}: {m}");
    }
    // The readable summary shows the same.
    let text = stdout(&ok(tandem()
        .args([
            "eval",
            "--label-field",
            "label",
            "--group-field",
            "author",
            "--by",
            "src",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)));
    assert!(text.contains("groups by author (30 groups"), "{text}");
    assert!(text.contains("  total_vote  accuracy"), "{text}");
    assert!(text.contains("by src:"), "{text}");
    // Two bundles averaged: `predict --model A --model B` gives the mean of their probabilities.
    let second = dir.join("second");
    ok(tandem()
        .args(["train", "--label-field", "label", "--task", "multiclass"])
        .args(["--seed", "2", "--quiet", "--config"])
        .arg(quick_config(&dir, 3))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&second));
    let probs = |models: &[&Path]| -> Vec<Vec<f64>> {
        let mut cmd = tandem();
        cmd.arg("predict");
        for m in models {
            cmd.arg("--model").arg(m);
        }
        let out = stdout(&ok(cmd.arg(&src)));
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["predictions"][0]["probabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let (a, b) = (probs(&[&model]), probs(&[&second]));
    let both = probs(&[&model, &second]);
    assert_eq!(both.len(), 120);
    for ((x, y), m) in a.iter().zip(&b).zip(&both) {
        for ((p, q), r) in x.iter().zip(y).zip(m) {
            assert!((r - (p + q) / 2.0).abs() < 1e-6, "{r} vs {p} and {q}");
        }
    }
    // --errors-top without --errors is a usage error.
    let out = tandem()
        .args(["eval", "--errors-top", "3", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn version_completions_and_man_page_come_from_the_cli_definition() {
    let v = stdout(&ok(tandem().arg("--version")));
    assert!(
        v.starts_with(&format!("tandem {}\ncommit: ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let commit = v.lines().nth(1).unwrap().trim_start_matches("commit: ");
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{v}"
    );
    assert!(v.contains("\nfeatures: "), "{v}");
    assert!(v.contains("ONNX Runtime library: "), "{v}");
    assert_eq!(
        stdout(&ok(tandem().arg("-V"))).trim(),
        format!("tandem {}", env!("CARGO_PKG_VERSION"))
    );
    for (shell, marker) in [
        ("bash", "_tandem()"),
        ("zsh", "#compdef tandem"),
        ("fish", "complete -c tandem"),
    ] {
        let script = stdout(&ok(tandem().args(["completions", shell])));
        assert!(script.contains(marker), "{shell}: {script}");
        // Every command and a nested option are in it.
        for word in ["train", "compare", "label-field"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let bad = tandem().args(["completions", "cmd.exe"]).output().unwrap();
    assert!(!bad.status.success());
    let man = stdout(&ok(tandem().arg("man")));
    assert!(man.contains(".TH tandem 1"), "{man}");
    assert!(man.contains("train") && man.contains("predict"), "{man}");
}

/// `bytes` bytes at `root/graph/name`, last modified `age_s` seconds ago.
fn aged_file(root: &Path, graph: &str, name: &str, bytes: usize, age_s: u64) -> PathBuf {
    let dir = root.join(graph);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, vec![7u8; bytes]).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age_s))
        .unwrap();
    p
}

/// Total bytes of the regular files in the graph directories (16 hex digits) of the cache at
/// `root`.
fn cache_bytes(root: &Path) -> u64 {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return 0;
    };
    let graph = |n: &str| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit());
    dirs.flatten()
        .filter(|d| d.file_type().unwrap().is_dir())
        .filter(|d| graph(&d.file_name().to_string_lossy()))
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|f| f.file_type().unwrap().is_file())
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

/// The tiny test backbone (a sequence-head run in seconds).
fn tiny_backbone() -> PathBuf {
    std::env::var_os("TANDEM_TEST_BACKBONE")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::backbone_dir("tiny-random-bert"))
}

/// `tandem` with its cache directory at `home` (the ONNX Runtime library still the setup's).
fn tandem_at_home(home: &Path) -> Command {
    let mut cmd = tandem();
    cmd.env("TANDEM_HOME", home);
    if std::env::var_os("TANDEM_ORT_LIB").is_none() {
        cmd.env("TANDEM_ORT_LIB", tandem::home::ort_library());
    }
    cmd
}

#[test]
fn cache_shows_sizes_per_backbone_and_kind_and_prunes_by_age_and_size() {
    let home = tmp("cache-show");
    let root = home.join("embcache");
    // A graph of an installed backbone (named from its manifest, records counted), an unknown
    // one (shown by its hash), and a link that is neither counted nor followed.
    let tiny = tiny_backbone();
    let models = home.join("models").join("tiny-random-bert");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(tiny.join("manifest.json"), models.join("manifest.json")).unwrap();
    let m: Value = json_file(&models.join("manifest.json"));
    let sha = m["files"]["model.onnx"].as_str().unwrap();
    let dim = m["dim"].as_u64().unwrap() as usize;
    let rec = 32 + 4 + 4 * dim;
    let pooled = aged_file(&root, &sha[..16], "pooled.v2", 10 * rec, 3600);
    let old = aged_file(&root, "00000000deadbeef", "tokens.v3", 50_000, 40 * 86_400);
    let split = aged_file(&root, "00000000deadbeef", "split.l4", 2_000, 86_400);
    let outside = aged_file(&home, "elsewhere", "pooled.v2", 1_000_000, 90 * 86_400);
    // Not a graph directory: not the cache's.
    let stranger = aged_file(&root, "my-notes", "pooled.v2", 1_000, 90 * 86_400);
    std::os::unix::fs::symlink(&outside, root.join("00000000deadbeef").join("pooled.v2")).unwrap();
    let cache = |args: &[&str]| {
        let mut cmd = tandem_at_home(&home);
        cmd.arg("cache").args(args);
        cmd
    };
    let shown: Value = serde_json::from_str(&stdout(&ok(&mut cache(&["--json"])))).unwrap();
    assert_eq!(shown["total_bytes"], 10 * rec as u64 + 52_000, "{shown}");
    let entries = shown["entries"].as_array().unwrap();
    let row = |kind: &str| {
        entries
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {shown}"))
    };
    assert_eq!(row("pooled")["backbone"], "tiny-random-bert (fp32)");
    assert_eq!(row("pooled")["records"], 10);
    assert_eq!(row("per-token")["graph"], "00000000deadbeef");
    assert_eq!(row("per-token")["bytes"], 50_000);
    assert_eq!(row("split-layer")["bytes"], 2_000);
    assert_eq!(entries.len(), 3);
    let table = stdout(&ok(&mut cache(&[])));
    for word in [
        "tiny-random-bert (fp32)",
        "00000000deadbeef",
        "per-token",
        "50.0 kB",
        "total",
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }
    // Prune: an age or a size is required; bad ones are named.
    for (args, says) in [
        (&["prune"][..], "--max-size"),
        (&["prune", "--max-size", "lots"][..], "lots"),
        (
            &["prune", "--older-than", "3 fortnights"][..],
            "3 fortnights",
        ),
    ] {
        let out = cache(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A dry run removes nothing; by age, the 40-day-old file goes.
    let dry = stdout(&ok(&mut cache(&[
        "prune",
        "--older-than",
        "30d",
        "--dry-run",
    ])));
    assert!(dry.contains("would remove") && old.exists(), "{dry}");
    let out: Value = serde_json::from_str(&stdout(&ok(&mut cache(&[
        "prune",
        "--older-than",
        "30d",
        "--json",
    ]))))
    .unwrap();
    assert_eq!(out["freed_bytes"], 50_000, "{out}");
    assert!(!old.exists() && split.exists() && pooled.exists());
    // To a size: least recently used first (the split-layer file, a day old).
    let text = stdout(&ok(&mut cache(&[
        "prune",
        "--max-size",
        &format!("{}B", 10 * rec),
    ])));
    assert!(
        text.contains("removed 00000000deadbeef split-layer"),
        "{text}"
    );
    assert!(!split.exists() && pooled.exists());
    assert_eq!(cache_bytes(&root), 10 * rec as u64);
    // Nothing outside the cache was touched, link or not, nor a directory not the cache's.
    assert!(outside.exists() && stranger.exists());
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn a_cache_cap_in_the_config_holds_after_a_sequence_head_training_run() {
    let home = tmp("cache-cap");
    let root = home.join("embcache");
    let data = slice(&home, "trec.jsonl", 150, 31);
    let other = aged_file(&root, "00000000deadbeef", "pooled.v2", 100_000, 10 * 86_400);
    let train = |cap: &str, out: &str| {
        let config = home.join(format!("{out}.toml"));
        std::fs::write(
            &config,
            format!(
                "[head]\nhidden = [16]\n\n[head.sequence]\nconv_kernels = [3]\nconv_channels = 4\n\n\
                 [head.stage]\nepochs = 2\n\n[metadata.stage]\nepochs = 2\n\n[cache]\nmax_size = {cap}\n"
            ),
        )
        .unwrap();
        let mut cmd = tandem_at_home(&home);
        cmd.args(["train", "--label-field", "label", "--task", "multiclass"])
            .args(["--head", "sequence", "--quiet", "--backbone"])
            .arg(tiny_backbone())
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(home.join(out));
        ok(&mut cmd);
        assert!(home.join(out).join("manifest.json").is_file(), "{out}");
    };
    let files = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
            .map(|f| {
                (
                    f.file_name().to_string_lossy().into_owned(),
                    f.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    // A roomy cap: everything stays.
    train("\"10MB\"", "roomy");
    let all = files();
    let size = |name: &str| all.iter().filter(|f| f.0 == name).map(|f| f.1).sum::<u64>();
    let (pooled, tokens) = (size("pooled.v2") - 100_000, size("tokens.v3"));
    assert!(pooled > 0 && tokens > pooled, "{all:?}");
    assert!(other.exists());
    // A cap the run's pooled vectors fit in with a little room: the other graph's file goes
    // first, then this run's per-token file; the pooled file stays.
    let cap = pooled + 1000;
    train(&cap.to_string(), "tight");
    assert!(cache_bytes(&root) <= cap, "{:?} over {cap}", files());
    assert!(!other.exists());
    assert_eq!(files(), [("pooled.v2".to_string(), pooled)]);
    // A cap below even that: the run trains, and leaves the cache under the cap.
    train("\"1kB\"", "tiny");
    assert!(cache_bytes(&root) <= 1000, "{:?}", files());
    let _ = std::fs::remove_dir_all(home);
}

/// Every line of `stderr` that parses as a JSON event named `name`.
fn events(stderr: &str, name: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == name)
        .collect()
}

#[test]
fn progress_comes_every_interval_when_stderr_is_not_a_terminal() {
    let home = tmp("progress");
    // Three chunks of texts: a progress report after each once the interval has passed.
    let data = slice(&home, "trec.jsonl", 600, 7);
    let embed = |interval: &str, extra: &[&str]| -> String {
        let mut cmd = tandem_at_home(&home);
        cmd.args(["embed", "--no-cache", "--backbone"])
            .arg(tiny_backbone())
            .arg(&data)
            .arg("-o")
            .arg(home.join("e.npy"))
            .args(extra)
            .env("TANDEM_PROGRESS_INTERVAL_MS", interval);
        String::from_utf8(ok(&mut cmd).stderr).unwrap()
    };
    // Text: `progress (set): done/total texts, R texts/s, ETA Es`, rates rounded.
    let err = embed("0", &[]);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress (input): "))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    let mut last = 0;
    for l in &lines {
        let rest = l.strip_prefix("progress (input): ").unwrap();
        let (counts, rest) = rest.split_once(" texts, ").unwrap();
        let (done, total) = counts.split_once('/').unwrap();
        let done: usize = done.parse().unwrap();
        assert!(done > last && total == "600", "{l}");
        last = done;
        let (rate, eta) = rest.split_once(" texts/s, ETA ").unwrap();
        let r: f64 = rate.parse().unwrap();
        assert!(r > 0.0 && (r < 10.0 || !rate.contains('.')), "{l}");
        assert!(eta.strip_suffix('s').unwrap().parse::<u64>().is_ok(), "{l}");
    }
    assert_eq!(last, 600);
    // JSON: progress events, and the embed event's figures rounded.
    let err = embed("1", &["--log-format", "json"]);
    let progress = events(&err, "progress");
    assert!(!progress.is_empty(), "{err}");
    for p in &progress {
        assert_eq!(p["set"], "input");
        assert_eq!(p["total"], 600);
        assert!(p["done"].as_u64().unwrap() <= 600);
        assert!(p["texts_per_second"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["eta_seconds"].as_u64().is_some(), "{p}");
    }
    let e = &events(&err, "embed")[0];
    let secs = e["seconds"].as_f64().unwrap();
    assert!(((secs * 100.0).round() - secs * 100.0).abs() < 1e-6, "{e}");
    let rate = e["texts_per_second"].as_f64().unwrap();
    assert!(((rate * 10.0).round() - rate * 10.0).abs() < 1e-6, "{e}");
    // Nothing before the first interval has passed, and nothing when quiet.
    let err = embed("600000", &[]);
    assert!(!err.contains("progress ("), "{err}");
    let err = embed("0", &["--quiet"]);
    assert!(!err.contains("progress ("), "{err}");
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn predict_reads_a_text_field_writes_tsv_top_k_and_natural_sized_groups_and_inspect_shows_every_task(
) {
    let home = tmp("predict");
    // A two-task bundle: the source of a text (multiclass) and its rating (regression).
    let data = slice(&home, "vader.jsonl", 200, 40);
    let config = home.join("q.toml");
    std::fs::write(
        &config,
        "[head]\nhidden = [16]\n\n[metadata.stage]\nepochs = 2\n\n[head.stage]\nepochs = 2\n",
    )
    .unwrap();
    let bundle = home.join("bundle");
    ok(tandem_at_home(&home)
        .args(["train", "--label-field", "source", "--task", "multiclass"])
        .args(["--label-field", "rating", "--task", "regression"])
        .args(["--mode", "two_stage", "--quiet", "--backbone"])
        .arg(tiny_backbone())
        .arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&bundle));

    // inspect summarizes both tasks' validation metrics.
    let text = stdout(&ok(tandem().arg("inspect").arg(&bundle)));
    assert!(text.contains("\n  source: macro_f1 "), "{text}");
    assert!(text.contains("\n  rating: rmse "), "{text}");
    let j: Value =
        serde_json::from_slice(&ok(tandem().arg("inspect").arg(&bundle).arg("--json")).stdout)
            .unwrap();
    assert!(
        j["tasks"][0]["metrics"]["macro_f1"].as_f64().is_some(),
        "{j}"
    );
    assert!(j["tasks"][1]["metrics"]["rmse"].as_f64().is_some(), "{j}");
    let labels: Vec<String> = j["tasks"][0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();

    // Input with the text in `body`, ids on some records (one null), a user per record.
    let input = home.join("in.jsonl");
    let rows = [
        (r#""id":"a","#, "user10", "Great movie, loved it"),
        ("", "user2", "so\tbored today"),
        (r#""id":null,"#, "user1", "What a film"),
        (r#""id":7,"#, "user2", "lol"),
        ("", "user10", "terrible acting"),
        ("", "user10", "ok"),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(id, user, text)| {
            format!(
                "{{{id}\"user\":\"{user}\",\"body\":{}}}",
                serde_json::to_string(text).unwrap()
            )
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let predict = |args: &[&str]| -> Output {
        let mut cmd = tandem_at_home(&home);
        cmd.args(["predict", "--quiet", "--backbone"])
            .arg(tiny_backbone())
            .arg("--model")
            .arg(&bundle)
            .arg(&input)
            .args(args);
        cmd.output().unwrap()
    };
    let jsonl = |o: &Output| -> Vec<Value> {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    // Without --text-field the records have no `text`: an error naming the field.
    let o = predict(&[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("`text`"));

    // JSONL: exact probabilities; no null id, no empty labels or probabilities, no null value.
    let out = jsonl(&predict(&["--text-field", "body"]));
    assert_eq!(out.len(), 6);
    assert_eq!(out[0]["id"], "a");
    assert_eq!(out[3]["id"], 7);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r["index"], i);
        if i != 0 && i != 3 {
            assert!(r.get("id").is_none(), "{r}");
        }
        let (c, v) = (&r["predictions"][0], &r["predictions"][1]);
        assert_eq!(c["task"], "source");
        assert_eq!(c["labels"].as_array().unwrap().len(), 1, "{c}");
        assert_eq!(c["probabilities"].as_array().unwrap().len(), labels.len());
        assert!(c.get("value").is_none() && c.get("top").is_none(), "{c}");
        assert_eq!(v["task"], "rating");
        assert!(v["value"].as_f64().is_some(), "{v}");
        assert!(
            v.get("labels").is_none() && v.get("probabilities").is_none(),
            "{v}"
        );
    }

    // --top-k 1: the most probable label and its probability, for the multiclass task only.
    let top = jsonl(&predict(&["--text-field", "body", "--top-k", "1"]));
    for (r, full) in top.iter().zip(&out) {
        let c = &r["predictions"][0];
        assert!(c.get("probabilities").is_none(), "{c}");
        let t = c["top"].as_array().unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0]["label"], c["labels"][0]);
        let p = t[0]["probability"].as_f64().unwrap();
        let best = full["predictions"][0]["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert_eq!(p, best);
        assert_eq!(r["predictions"][1], full["predictions"][1]);
    }
    assert!(!predict(&["--text-field", "body", "--top-k", "0"])
        .status
        .success());

    // TSV: a header, a row per text, probabilities rounded to 4 decimals, text escaped.
    let o = predict(&["--text-field", "body", "--format", "tsv"]);
    assert!(o.status.success());
    let tsv = stdout(&o);
    let rows: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    let mut header = vec!["index".to_string(), "id".into(), "source".into()];
    header.extend(labels.iter().map(|l| format!("source:{l}")));
    header.extend(["rating".into(), "text".into()]);
    assert_eq!(rows[0], header, "{tsv}");
    assert_eq!(rows.len(), 7);
    for (row, full) in rows[1..].iter().zip(&out) {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[2], full["predictions"][0]["labels"][0]);
        for (cell, p) in row[3..3 + labels.len()]
            .iter()
            .zip(full["predictions"][0]["probabilities"].as_array().unwrap())
        {
            let x: f64 = cell.parse().unwrap();
            assert!((x - p.as_f64().unwrap()).abs() <= 5e-5 + 1e-9, "{cell} {p}");
            assert!(
                cell.split('.').nth(1).is_none_or(|d| d.len() <= 4),
                "{cell}"
            );
        }
    }
    assert_eq!(rows[1][1], "a");
    assert_eq!(rows[3][1], "");
    assert_eq!(rows[2].last().unwrap(), &"so\\tbored today");
    let o = predict(&["--text-field", "body", "--format", "tsv", "--top-k", "1"]);
    let header = stdout(&o).lines().next().unwrap().to_string();
    assert_eq!(
        header,
        "index\tid\tsource\tsource:top1\tsource:p1\trating\ttext"
    );

    // Groups sort naturally and say their sizes, in JSONL and TSV.
    let groups = jsonl(&predict(&[
        "--text-field",
        "body",
        "--group-field",
        "user",
        "--aggregate",
        "majority",
    ]));
    let keys: Vec<(&str, u64)> = groups
        .iter()
        .map(|g| (g["group"].as_str().unwrap(), g["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(keys, [("user1", 1), ("user2", 2), ("user10", 3)]);
    let o = predict(&[
        "--text-field",
        "body",
        "--group-field",
        "user",
        "--format",
        "tsv",
    ]);
    let tsv = stdout(&o);
    let firsts: Vec<String> = tsv
        .lines()
        .map(|l| l.split('\t').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        firsts,
        ["group size", "user1 1", "user2 2", "user10 3"],
        "{tsv}"
    );
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn backbone_list_and_compare_measure_the_installed_backbones() {
    let out = ok(tandem().args(["backbone", "list"]));
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("minilm-l6") && l.contains("all-MiniLM-L6-v2")),
        "{list}"
    );
    assert!(list.contains("minilm-l3"), "{list}");

    let dir = tmp("backbone-compare");
    let data = dir.join("trec.jsonl");
    let rows: Vec<String> = std::fs::read_to_string(tandem::home::data_dir().join("trec.jsonl"))
        .unwrap()
        .lines()
        .take(150)
        .map(str::to_string)
        .collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    let json = dir.join("backbones.json");
    let md = dir.join("backbones.md");
    let out = ok(tandem()
        .args(["backbone", "compare", "--backbone", "minilm-l3,minilm-l6"])
        .args(["--variants", "int8", "--threads", "2", "--data"])
        .arg(&data)
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&md));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("paraphrase-MiniLM-L3-v2") && table.contains("all-MiniLM-L6-v2"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["variant"], "int8");
        assert_eq!(r["dim"], 384);
        for k in ["short_b1", "short_b32", "long_b1", "long_b32"] {
            assert!(r["speed"][k].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
        for k in ["load_seconds", "peak_rss_mb"] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
        assert_eq!(r["task"], "multiclass");
        assert_eq!(r["examples"], 150);
        for k in ["accuracy", "macro_f1"] {
            let m = r["metrics"][k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&m), "{k}: {r}");
        }
    }
    // In the order given.
    assert_eq!(rows[0]["layers"], 3);
    assert_eq!(rows[1]["layers"], 6);
    let md = std::fs::read_to_string(&md).unwrap();
    assert_eq!(md.lines().count(), 4, "{md}");
    assert!(
        md.lines()
            .next()
            .unwrap()
            .ends_with("| macro-f1 | accuracy |"),
        "{md}"
    );

    // Another task kind, on a stratified sample, without the speed runs.
    let vader = dir.join("vader.jsonl");
    let rows: Vec<String> = std::fs::read_to_string(tandem::home::data_dir().join("vader.jsonl"))
        .unwrap()
        .lines()
        .take(300)
        .map(str::to_string)
        .collect();
    std::fs::write(&vader, rows.join("\n")).unwrap();
    let compare_vader = |limit: &str| {
        tandem()
            .args([
                "backbone",
                "compare",
                "--backbone",
                "minilm-l3",
                "--variants",
            ])
            .args([
                "int8",
                "--threads",
                "2",
                "--no-speed",
                "--task",
                "regression",
            ])
            .args(["--label-field", "rating", "--limit", limit, "--data"])
            .arg(&vader)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap()
    };
    let out = compare_vader("120");
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("rmse") && !table.contains("b32/s"),
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = &v["rows"][0];
    assert_eq!(
        (&r["task"], &r["examples"]),
        (&"regression".into(), &120.into())
    );
    assert!(r["speed"].is_null(), "{r}");
    // Ratings lie in [-4, 4]: an RMSE within that scale, a correlation in [-1, 1].
    let rmse = r["metrics"]["rmse"].as_f64().unwrap();
    assert!(rmse > 0.0 && rmse < 4.0, "{r}");
    assert!(
        r["metrics"]["pearson"].as_f64().unwrap().abs() <= 1.0,
        "{r}"
    );
    let out = compare_vader("0");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--limit"));

    let out = tandem()
        .args(["backbone", "compare", "--backbone", "no-such-backbone"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no-such-backbone"), "{err}");
}

#[test]
fn train_checkpoints_the_best_and_periodic_epochs_by_the_configured_monitor() {
    let dir = tmp("checkpoints");
    let data = slice(&dir, "sms_spam.jsonl", 240, 5);
    let config = dir.join("monitor.toml");
    std::fs::write(
        &config,
        "mode = \"embedding_only\"\n\n[head.stage]\nepochs = 6\npatience = 0\nmonitor = \"macro_f1\"\n",
    )
    .unwrap();
    let ckpt = dir.join("ckpt");
    let _ = std::fs::remove_dir_all(&ckpt);
    let model = dir.join("model");
    let train = |ckpt: &Path| {
        let mut cmd = labelled("train", "binary", &data, &config);
        cmd.args(["--seed", "2", "--keep-top", "2", "--checkpoint-every", "3"])
            .arg("--checkpoint-dir")
            .arg(ckpt)
            .arg("--out")
            .arg(&model);
        cmd
    };
    let out = ok(&mut train(&ckpt));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("checkpoints: "), "{log}");
    let index = json_file(&ckpt.join("checkpoints.json"));
    assert_eq!(index["monitor"], "macro_f1 of label (max)");
    let kept = index["checkpoints"].as_array().unwrap();
    let tops = kept.iter().filter(|c| c["top"] == true).count();
    assert!((1..=2).contains(&tops), "{index}");
    let periodic: Vec<u64> = kept
        .iter()
        .filter(|c| c["periodic"] == true)
        .map(|c| c["epoch"].as_u64().unwrap() + 1)
        .collect();
    assert_eq!(periodic, [3, 6]);
    // Each checkpoint is a bundle that predicts; the best one predicts as the final bundle does.
    let best = ckpt.join(index["best"].as_str().unwrap());
    let predict = |bundle: &Path| {
        stdout(&ok(tandem()
            .args(["predict", "--quiet", "--model"])
            .arg(bundle)
            .arg(&data)))
    };
    assert_eq!(predict(&best), predict(&model));
    for c in kept {
        let b = ckpt.join(c["bundle"].as_str().unwrap());
        assert!(!predict(&b).is_empty());
    }
    // A used directory is refused before any training, naming the problem.
    let out = train(&ckpt).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be new or empty"), "{err}");
    // Checkpoint options need a directory; a monitor the task lacks is named.
    let out = labelled("train", "binary", &data, &config)
        .args(["--keep-top", "2", "--out"])
        .arg(dir.join("m2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::write(
        &config,
        "mode = \"embedding_only\"\n\n[head.stage]\nepochs = 2\nmonitor = \"rmse\"\n",
    )
    .unwrap();
    let out = labelled("train", "binary", &data, &config)
        .arg("--out")
        .arg(dir.join("m3"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a regression task"), "{err}");
}

#[test]
fn learned_task_weights_are_shown_and_inverse_variance_weights_feed_a_config() {
    let dir = tmp("task-weights");
    let data = slice(&dir, "trec.jsonl", 300, 13);
    let config = dir.join("uncertainty.toml");
    std::fs::write(
        &config,
        "mode = \"embedding_only\"\n\n[head.stage]\nepochs = 6\n\n[loss]\nmultitask = \"uncertainty\"\n",
    )
    .unwrap();
    let model = dir.join("model");
    let two_tasks = |config: &Path, out: &Path| {
        let mut cmd = tandem();
        cmd.args(["train", "--label-field", "label", "--task", "multiclass"])
            .args([
                "--label-field",
                "fine",
                "--task",
                "multiclass",
                "--seed",
                "1",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(config)
            .arg("--out")
            .arg(out);
        cmd
    };
    let log = String::from_utf8(ok(&mut two_tasks(&config, &model)).stderr).unwrap();
    assert!(
        log.contains("learned task weights (uncertainty): fine "),
        "{log}"
    );
    let shown = stdout(&ok(tandem().arg("inspect").arg(&model)));
    assert!(
        shown.contains("learned task weights (uncertainty): fine "),
        "{shown}"
    );
    // The learned weights are exp(-s) of the bundle's own log-variance parameters' run: both
    // positive, and different tasks learn different ones.
    let manifest = json_file(&model.join("manifest.json"));
    let learned = &manifest["metrics"]["learned_task_weights"];
    let (a, b) = (
        learned["label"].as_f64().unwrap(),
        learned["fine"].as_f64().unwrap(),
    );
    assert!(a > 0.0 && b > 0.0 && a != b, "{learned}");
    // Inverse-variance weights from the history: 1 / mean loss over the stage's second half,
    // checked here against the recorded per-task losses.
    let found: Value = serde_json::from_str(&stdout(&ok(tandem()
        .args(["inspect", "--task-weights", "--json"])
        .arg(&model))))
    .unwrap();
    let history = manifest["metrics"]["history"].as_array().unwrap();
    let n = history.len();
    let settled = &history[n / 2..];
    let mean = |t: usize| {
        settled
            .iter()
            .map(|r| r["task_losses"][t].as_f64().unwrap())
            .sum::<f64>()
            / settled.len() as f64
    };
    let (inv_label, inv_fine) = (1.0 / mean(0), 1.0 / mean(1));
    let scale = 2.0 / (inv_label + inv_fine);
    let w = &found["weights"];
    assert!(
        (w["label"].as_f64().unwrap() - inv_label * scale).abs() < 1e-4,
        "{found}"
    );
    assert!(
        (w["fine"].as_f64().unwrap() - inv_fine * scale).abs() < 1e-4,
        "{found}"
    );
    // The text form is a config snippet that trains.
    let snippet = stdout(&ok(tandem()
        .args(["inspect", "--task-weights"])
        .arg(&model)));
    let fixed = dir.join("fixed.toml");
    std::fs::write(
        &fixed,
        format!("mode = \"embedding_only\"\n\n[head.stage]\nepochs = 2\n\n{snippet}"),
    )
    .unwrap();
    ok(&mut two_tasks(&fixed, &dir.join("fixed-model")));
    let used = json_file(&dir.join("fixed-model").join("manifest.json"));
    let tw = &used["training"]["loss"]["task_weights"];
    assert!(
        (tw["label"].as_f64().unwrap() - w["label"].as_f64().unwrap()).abs() < 1e-3,
        "{tw}"
    );
}

#[test]
fn train_holds_validation_out_stratified_by_a_field() {
    let dir = tmp("stratify");
    let src = slice(&dir, "trec.jsonl", 200, 23);
    let rows: Vec<String> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["src"] = if i < 150 { "web" } else { "mail" }.into();
            v["id"] = format!("q{i}").into();
            v.to_string()
        })
        .collect();
    let data = dir.join("data.jsonl");
    std::fs::write(&data, rows.join("\n")).unwrap();
    let config = quick_config(&dir, 2);
    let report = dir.join("report.html");
    let train = |fields: &str, out: &str| {
        let mut cmd = labelled("train", "multiclass", &data, &config);
        cmd.args(["--mode", "embedding_only", "--stratify-by", fields, "--out"])
            .arg(dir.join(out));
        cmd
    };
    ok(train("src,label", "by-src")
        .arg("--report")
        .arg(&report)
        .args(["--report-by", "src"]));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("stratified by src + label"),
        "report names the strata"
    );
    let failing = |mut cmd: Command| {
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = failing(train("nope", "x"));
    assert!(err.contains("line 1: no `nope` field"), "{err}");
    let err = failing(train("id", "x"));
    assert!(err.contains("stratified by field"), "{err}");
    let mut with_valid = train("src", "x");
    with_valid.arg("--valid").arg(&data);
    let err = failing(with_valid);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn predict_samples_dropout_and_reports_the_spread() {
    let dir = tmp("mc-dropout");
    let data = slice(&dir, "trec.jsonl", 150, 29);
    let config = quick_config(&dir, 3);
    let model = dir.join("model");
    ok(labelled("train", "multiclass", &data, &config)
        .args([
            "--mode",
            "embedding_only",
            "--seed",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&model));
    let predict = |extra: &[&str]| {
        stdout(&ok(tandem()
            .args(["predict", "--quiet", "--model"])
            .arg(&model)
            .args(extra)
            .arg(&data)))
    };
    let sampled = predict(&["--mc-samples", "16"]);
    assert_eq!(sampled, predict(&["--mc-samples", "16", "--mc-seed", "0"]));
    assert_ne!(sampled, predict(&["--mc-samples", "16", "--mc-seed", "5"]));
    let plain = predict(&[]);
    let mut spread_seen = false;
    for (line, plain) in sampled.lines().zip(plain.lines()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let p = &v["predictions"][0];
        let probs: Vec<f64> = serde_json::from_value(p["probabilities"].clone()).unwrap();
        let spread: Vec<f64> = serde_json::from_value(p["spread"].clone()).unwrap();
        assert_eq!(probs.len(), spread.len());
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        // The label is the argmax of the mean.
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        let labels = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"];
        assert_eq!(p["labels"][0], labels[best]);
        spread_seen |= spread.iter().any(|&s| s > 0.0);
        // A plain prediction has no spread.
        assert!(
            serde_json::from_str::<Value>(plain).unwrap()["predictions"][0]["spread"].is_null()
        );
    }
    assert!(spread_seen, "dropout makes the passes differ");
    let tsv = predict(&["--mc-samples", "4", "--format", "tsv", "--top-k", "2"]);
    let header = tsv.lines().next().unwrap();
    assert!(
        header.contains("label:top1\tlabel:p1\tlabel:sd1\tlabel:top2"),
        "{header}"
    );
    // One bundle, per text only.
    let out = tandem()
        .args(["predict", "--mc-samples", "4", "--model"])
        .arg(&model)
        .arg("--model")
        .arg(&model)
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("one --model"));
}

#[test]
fn train_starts_from_another_bundles_encoder() {
    let dir = tmp("init-encoder");
    let data = slice(&dir, "trec.jsonl", 200, 19);
    let config = quick_config(&dir, 2);
    let first = dir.join("first");
    ok(labelled("train", "multiclass", &data, &config)
        .args(["--mode", "metadata_only", "--quiet", "--out"])
        .arg(&first));
    let second = dir.join("second");
    let log = String::from_utf8(
        ok(labelled("train", "multiclass", &data, &config)
            .arg("--init-encoder")
            .arg(&first)
            .arg("--out")
            .arg(&second))
        .stderr,
    )
    .unwrap();
    assert!(log.contains("trained two_stage"), "{log}");
    let m = json_file(&second.join("manifest.json"));
    assert_eq!(
        m["metrics"]["epochs"].as_object().unwrap().len(),
        1,
        "stage 2 only"
    );
    assert!(m["training"]["metadata"]["init_encoder"]
        .as_str()
        .unwrap()
        .ends_with("first"));
    let out = labelled("train", "multiclass", &data, &config)
        .args(["--mode", "embedding_only", "--init-encoder"])
        .arg(&first)
        .arg("--out")
        .arg(dir.join("third"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("two_stage or joint"));
}

#[test]
fn pretrain_makes_an_encoder_bundle_from_unlabelled_text_that_train_starts_from() {
    let dir = tmp("pretrain");
    let data = slice(&dir, "trec.jsonl", 200, 19);
    // Unlabelled: text lines (sms spam's texts), no label anywhere.
    let corpus = dir.join("corpus.txt");
    let sms = std::fs::read_to_string(tandem::home::data_dir().join("sms_spam.jsonl")).unwrap();
    let lines: Vec<String> = sms
        .lines()
        .step_by(13)
        .take(300)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().replace('\n', " ")
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let config = quick_config(&dir, 3);
    let encoder = dir.join("encoder");
    let pretrain = |out: &Path, seed: &str| {
        let mut c = tandem();
        c.args([
            "pretrain",
            "--targets",
            "masked_features,length",
            "--seed",
            seed,
        ])
        .arg("--data")
        .arg(&corpus)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(out);
        c
    };
    let log = stdout(&ok(&mut pretrain(&encoder, "5")));
    assert!(log.contains("encoder bundle"), "{log}");
    let m = json_file(&encoder.join("manifest.json"));
    assert_eq!(m["tasks"].as_array().unwrap().len(), 0);
    assert_eq!(m["backbone"]["name"], "none");
    let losses = m["metrics"]["pretext_target_losses"].as_object().unwrap();
    assert_eq!(losses.len(), 2);
    assert!(losses["masked_features"].as_f64().unwrap() > 0.0);
    // The same seed, the same weights.
    let again = dir.join("again");
    ok(&mut pretrain(&again, "5"));
    assert_eq!(
        std::fs::read(encoder.join("weights.safetensors")).unwrap(),
        std::fs::read(again.join("weights.safetensors")).unwrap()
    );
    let shown = stdout(&ok(tandem().arg("inspect").arg(&encoder)));
    assert!(shown.contains("an encoder bundle"), "{shown}");
    assert!(shown.contains("masked_features"), "{shown}");

    // Serving it is refused, saying what it is for; training starts from it.
    let out = tandem()
        .args(["predict", "--model"])
        .arg(&encoder)
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--init-encoder"));
    let model = dir.join("model");
    ok(labelled("train", "multiclass", &data, &config)
        .args(["--quiet", "--init-encoder"])
        .arg(&encoder)
        .arg("--out")
        .arg(&model));
    let trained = json_file(&model.join("manifest.json"));
    assert_eq!(trained["tasks"].as_array().unwrap().len(), 1);

    // Labels are no pre-training target; an unknown target is named.
    for (targets, says) in [("labels", "self-supervised"), ("lenght", "lenght")] {
        let out = tandem()
            .args(["pretrain", "--targets", targets, "--data"])
            .arg(&corpus)
            .arg("--out")
            .arg(dir.join("bad"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn train_distils_a_teacher_on_labelled_and_unlabelled_text() {
    let dir = tmp("distil");
    let data = slice(&dir, "trec.jsonl", 240, 19);
    let config = quick_config(&dir, 3);
    let teacher = dir.join("teacher");
    ok(labelled("train", "multiclass", &data, &config)
        .args(["--mode", "joint", "--quiet", "--seed", "8", "--out"])
        .arg(&teacher));
    // Unlabelled questions: other TREC lines, as text lines.
    let unlabelled = dir.join("unlabelled.txt");
    let trec = std::fs::read_to_string(tandem::home::data_dir().join("trec.jsonl")).unwrap();
    let lines: Vec<String> = trec
        .lines()
        .skip(5)
        .step_by(23)
        .take(150)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    std::fs::write(&unlabelled, lines.join("\n") + "\n").unwrap();
    let distil = |out: &Path| {
        let mut c = labelled("train", "multiclass", &data, &config);
        c.args(["--mode", "joint", "--teacher"])
            .arg(&teacher)
            .arg("--unlabelled")
            .arg(&unlabelled)
            .arg("--out")
            .arg(out);
        c
    };
    let student = dir.join("student");
    let log = String::from_utf8(ok(&mut distil(&student)).stderr).unwrap();
    assert!(log.contains("150 unlabelled texts join"), "{log}");
    let m = json_file(&student.join("manifest.json"));
    assert!(m["training"]["distill"]["teachers"][0]
        .as_str()
        .unwrap()
        .ends_with("teacher"));
    // The unlabelled texts joined the training split.
    let plain = dir.join("plain");
    ok(labelled("train", "multiclass", &data, &config)
        .args(["--mode", "joint", "--quiet", "--out"])
        .arg(&plain));
    let n = |b: &Path| {
        json_file(&b.join("manifest.json"))["metrics"]["n_train"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(n(&student), n(&plain) + 150);
    // Deterministic: the same run, the same weights.
    let again = dir.join("again");
    ok(&mut distil(&again));
    assert_eq!(
        std::fs::read(student.join("weights.safetensors")).unwrap(),
        std::fs::read(again.join("weights.safetensors")).unwrap()
    );
    // A teacher of other tasks is refused, naming the difference; --unlabelled needs one.
    let spam = slice(&dir, "sms_spam.jsonl", 200, 13);
    let other = dir.join("other");
    ok(labelled("train", "binary", &spam, &config)
        .args(["--mode", "joint", "--quiet", "--out"])
        .arg(&other));
    let out = labelled("train", "multiclass", &data, &config)
        .args(["--mode", "joint", "--teacher"])
        .arg(&other)
        .arg("--out")
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("same tasks"));
    let out = labelled("train", "multiclass", &data, &config)
        .arg("--unlabelled")
        .arg(&unlabelled)
        .arg("--out")
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--teacher"));
}

#[test]
fn compare_draws_sample_efficiency_curves_with_parameters_and_peak_memory() {
    let dir = tmp("fractions");
    let data = slice(&dir, "trec.jsonl", 400, 11);
    let config = quick_config(&dir, 2);
    let json = dir.join("curves.json");
    let out = stdout(&ok(labelled("compare", "multiclass", &data, &config)
        .args([
            "--modes",
            "embedding_only,metadata_only,two_stage",
            "--seeds",
            "2",
        ])
        .args(["--fractions", "0.25,1", "--quiet", "--json"])
        .arg(&json)));
    assert!(out.contains("== 25% of the training split"), "{out}");
    assert!(out.contains("sample efficiency: test macro_f1"), "{out}");
    assert!(
        out.contains("trained params") && out.contains("peak heap MiB"),
        "{out}"
    );
    let v = json_file(&json);
    let shares = v["fractions"].as_array().unwrap();
    let n = |i: usize| shares[i]["n_train"].as_u64().unwrap();
    // A stratified quarter of the same training split, and the same test split.
    assert!(
        (n(0) as f64 - n(1) as f64 * 0.25).abs() <= 6.0,
        "{} of {}",
        n(0),
        n(1)
    );
    assert_eq!(shares[0]["n_test"], shares[1]["n_test"]);
    assert_eq!(shares[0]["train_fraction"], 0.25);
    let params = |arm: &str| {
        shares[1]["summaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["arm"] == arm)
            .unwrap()["trainable_parameters"]
            .as_u64()
            .unwrap()
    };
    // Two-stage trains the encoder, its auxiliary heads and the heads: more than either side.
    assert!(params("two_stage") > params("embedding_only"));
    assert!(params("two_stage") > params("metadata_only"));
    assert!(params("metadata_only") > 0);
    // The CLI counts its heap: every run's peak is measured, and training allocates.
    for run in shares[1]["runs"].as_array().unwrap() {
        assert!(run["peak_memory_bytes"].as_u64().unwrap() > 0, "{run}");
    }
}
