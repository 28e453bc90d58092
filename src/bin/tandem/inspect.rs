//! `tandem inspect` (what a bundle holds) and `tandem features` (the metadata of one text).

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};
use tandem::bundle::{self, BundleManifest, Weights};
use tandem::data::TaskKind;
use tandem::train::TrainConfig;
use tandem::{Error, ErrorKind, Result};

#[derive(Args)]
pub struct InspectArgs {
    /// Bundle directory.
    dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print, instead, fixed task weights for `[loss] task_weights` found from the bundle's
    /// training history by inverse-variance weighting (several tasks trained together).
    #[arg(long)]
    task_weights: bool,
}

#[derive(Args)]
pub struct FeaturesArgs {
    /// The text; `-` reads it from standard input (one trailing newline is dropped).
    text: String,
    /// Print JSON (name, group, value, description, formula of each feature) instead of a table.
    #[arg(long)]
    json: bool,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, e.to_string())
}

/// Everything `inspect` reports, as JSON (the text form is rendered from it).
fn report(dir: &std::path::Path, manifest: &BundleManifest, weights: &Weights) -> Result<Value> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let meta = e.metadata().map_err(|err| Error::io(&e.path(), err))?;
        if meta.is_file() {
            files.push(json!({
                "name": e.file_name().to_string_lossy(),
                "bytes": meta.len(),
            }));
        }
    }
    let tensors: Vec<Value> = weights
        .iter()
        .map(|(name, a)| json!({ "name": name, "shape": a.shape(), "parameters": a.len() }))
        .collect();
    let parameters: usize = weights.values().map(|a| a.len()).sum();
    // A fine-tuned backbone of the bundle's own: its layers and files.
    let own = dir.join(bundle::BACKBONE_DIR);
    let fine_tuned = if own.is_dir() {
        let mut files = Vec::new();
        let mut bytes = 0u64;
        for e in std::fs::read_dir(&own).map_err(|e| Error::io(&own, e))? {
            let e = e.map_err(|err| Error::io(&own, err))?;
            let len = e.metadata().map_err(|err| Error::io(&e.path(), err))?.len();
            bytes += len;
            files.push(json!({ "name": e.file_name().to_string_lossy(), "bytes": len }));
        }
        files.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        json!({
            "trainable_layers": manifest.training["backbone"]["trainable_layers"],
            "unfreeze": manifest.training["backbone"]["unfreeze"],
            "dir": bundle::BACKBONE_DIR,
            "files": files,
            "bytes": bytes,
        })
    } else {
        Value::Null
    };
    let bundle_bytes: u64 = files
        .iter()
        .filter_map(|f| f["bytes"].as_u64())
        .sum::<u64>()
        + fine_tuned["bytes"].as_u64().unwrap_or(0);
    let tasks: Vec<Value> = manifest
        .tasks
        .iter()
        .map(|t| {
            let mut v = json!({
                "name": t.spec.name,
                "kind": t.spec.kind.name(),
                "labels": t.spec.labels,
                "thresholds": t.thresholds,
            });
            if t.spec.kind == TaskKind::Binary {
                v["positive"] = json!(t.spec.labels.get(1));
            }
            if let Some(m) = task_metrics(manifest, &t.spec.name) {
                v["metrics"] = m;
            }
            v
        })
        .collect();
    let features = manifest.features.as_ref().map(|f| {
        json!({
            "set": f.version,
            "extracted": f.names.len(),
            "selected": f.selected.len(),
            "selected_names": f.selected.iter().filter_map(|&i| f.names.get(i)).collect::<Vec<_>>(),
        })
    });
    let mut metrics = manifest.metrics.clone();
    if let Some(m) = metrics.as_object_mut() {
        // The per-epoch history is long; its length says enough here.
        if let Some(h) = m.remove("history") {
            m.insert(
                "history_epochs".into(),
                json!(h.as_array().map_or(0, Vec::len)),
            );
        }
    }
    Ok(json!({
        "path": dir.display().to_string(),
        "format": manifest.format,
        "created_by": manifest.created_by,
        "seed": manifest.seed,
        "backbone": manifest.backbone,
        "fine_tuned": fine_tuned,
        "bundle_bytes": bundle_bytes,
        "tasks": tasks,
        "features": features,
        "architecture": manifest.architecture,
        "metrics": metrics,
        "training": manifest.training,
        // What can run the heads: every bundle's heads are native weights, which ONNX Runtime
        // also runs once written as a graph (`--heads onnx`, `tandem export`).
        "serving": {
            "default": "native",
            "engines": ["native", "onnx"],
            "imported_from": manifest.training.get("imported"),
        },
        "files": files,
        "weights": {
            "dtype": manifest.weights_dtype,
            "sha256": manifest.weights_sha256,
            "sha256_verified": true,
            "tensors": tensors,
            "parameters": parameters,
        },
    }))
}

/// The numeric validation metrics of task `name` (its headline figures; per-class details stay
/// under `metrics.tasks`), when the bundle recorded them.
fn task_metrics(manifest: &BundleManifest, name: &str) -> Option<Value> {
    let m = manifest.metrics.get("tasks")?.get(name)?.as_object()?;
    let numbers: serde_json::Map<String, Value> = m
        .iter()
        .filter(|(_, v)| v.is_number())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Value::Object(numbers))
}

/// The headline figures of a metrics object, as "name value" pairs.
fn headline(m: &Value) -> String {
    [
        "macro_f1", "micro_f1", "accuracy", "roc_auc", "rmse", "mae", "pearson",
    ]
    .iter()
    .filter_map(|k| m[*k].as_f64().map(|v| format!("{k} {v:.4}")))
    .collect::<Vec<_>>()
    .join(", ")
}

fn human_bytes(n: u64) -> String {
    if n < 10 * 1024 {
        format!("{n} B")
    } else if n < 10 * 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

fn list(v: &[String], max: usize) -> String {
    if v.len() <= max {
        v.join(", ")
    } else {
        format!("{}, ... ({} in all)", v[..max].join(", "), v.len())
    }
}

fn sizes(v: &[usize]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn render(r: &Value, manifest: &BundleManifest) -> String {
    let mut out = String::new();
    render_provenance(&mut out, r, manifest);
    render_tasks(&mut out, manifest);
    render_architecture(&mut out, &manifest.architecture);
    render_results(&mut out, r, manifest);
    render_files(&mut out, r, manifest);
    out
}

/// Where the bundle is, what wrote it, and the backbone it runs on.
fn render_provenance(out: &mut String, r: &Value, manifest: &BundleManifest) {
    let b = &manifest.backbone;
    let _ = writeln!(out, "bundle        {}", r["path"].as_str().unwrap_or(""));
    let _ = writeln!(out, "format        {}", manifest.format);
    let _ = writeln!(out, "created by    {}", manifest.created_by);
    let _ = writeln!(out, "seed          {}", manifest.seed);
    let _ = writeln!(
        out,
        "backbone      {} (variant {}, dim {})",
        b.name, b.variant, b.dim
    );
    let _ = writeln!(out, "  graph sha256   {}", b.graph_sha256);
    let _ = writeln!(out, "  family sha256  {}", b.family_sha256);
    let ft = &r["fine_tuned"];
    if !ft.is_null() {
        let _ = writeln!(
            out,
            "  fine-tuned     top {} layers ({} unfreezing), served by ONNX Runtime from {}/ ({})",
            ft["trainable_layers"],
            ft["unfreeze"].as_str().unwrap_or("?"),
            bundle::BACKBONE_DIR,
            human_bytes(ft["bytes"].as_u64().unwrap_or(0))
        );
        // Which graphs it can serve (fp32, and int8 when the base had one tandem re-quantized).
        let graphs: Vec<String> = ft["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f["name"].as_str()?;
                let variant = match name {
                    "model.onnx" => "fp32",
                    "model.int8.onnx" => "int8",
                    _ => return None,
                };
                Some(format!(
                    "{variant} {name} ({})",
                    human_bytes(f["bytes"].as_u64().unwrap_or(0))
                ))
            })
            .collect();
        let _ = writeln!(out, "  graphs         {}", graphs.join(", "));
    }
    if manifest.tasks.is_empty() {
        let _ = writeln!(
            out,
            "heads         none: an encoder bundle (`tandem pretrain`), for `tandem train \
             --init-encoder`"
        );
    } else {
        let _ = writeln!(
            out,
            "heads         served by native code (default) or ONNX Runtime (--heads onnx); \
             `tandem export` writes them as ONNX"
        );
    }
    if let Some(i) = r["serving"]["imported_from"].as_object() {
        let _ = writeln!(
            out,
            "  imported from  {} (sha256 {}, written by {})",
            i.get("file").and_then(Value::as_str).unwrap_or("?"),
            i.get("sha256").and_then(Value::as_str).unwrap_or("?"),
            i.get("producer").and_then(Value::as_str).unwrap_or("?")
        );
    }
}

/// Each task: kind, labels, thresholds.
fn render_tasks(out: &mut String, manifest: &BundleManifest) {
    let _ = writeln!(out, "tasks");
    for t in &manifest.tasks {
        let mut line = format!("  {}  {}", t.spec.name, t.spec.kind.name());
        match t.spec.kind {
            TaskKind::Regression => {}
            TaskKind::Binary => {
                let _ = write!(
                    line,
                    "  labels {}  positive {}",
                    list(&t.spec.labels, 12),
                    t.spec.labels.get(1).map_or("?", String::as_str)
                );
            }
            _ => {
                let _ = write!(
                    line,
                    "  {} labels: {}",
                    t.spec.labels.len(),
                    list(&t.spec.labels, 12)
                );
            }
        }
        if !t.thresholds.is_empty() {
            let th: Vec<String> = t.thresholds.iter().map(|x| format!("{x:.3}")).collect();
            let _ = write!(
                line,
                "  threshold{} {}",
                if th.len() > 1 { "s" } else { "" },
                list(&th, 12)
            );
        }
        let _ = writeln!(out, "{line}");
    }
}

/// The encoder, sequence encoder and heads, with their widths.
fn render_architecture(out: &mut String, a: &tandem::heads::Architecture) {
    let _ = writeln!(out, "architecture  mode {}", a.mode.name());
    if a.n_features > 0 {
        let _ = writeln!(
            out,
            "  encoder        {} features -> hidden {} -> code {} (dropout {})",
            a.n_features,
            sizes(&a.encoder.hidden),
            a.code_dim,
            a.encoder.dropout
        );
    }
    if let Some(seq) = &a.sequence {
        let mut parts = Vec::new();
        if seq.transformer {
            parts.push(format!(
                "transformer layer ({} heads, ffn {})",
                seq.transformer_heads, seq.transformer_ffn
            ));
        }
        if seq.attention_queries > 0 {
            parts.push(format!("attention pooling x{}", seq.attention_queries));
        }
        if !seq.conv_kernels.is_empty() {
            parts.push(format!(
                "conv {} x {} + max pool",
                sizes(&seq.conv_kernels),
                seq.conv_channels
            ));
        }
        let _ = writeln!(
            out,
            "  sequence       tokens {} -> {} -> {} (dropout {})",
            a.emb_dim,
            parts.join(", "),
            a.sequence_output(),
            seq.dropout
        );
    }
    if a.head_input() > 0 {
        let mut input = if a.code_dim > 0 && a.emb_dim > 0 {
            format!("embedding {} + code {}", a.emb_dim, a.code_dim)
        } else {
            format!("embedding {}", a.emb_dim)
        };
        if a.sequence.is_some() {
            input.push_str(&format!(" + sequence {}", a.sequence_output()));
        }
        let _ = writeln!(
            out,
            "  heads          input {} ({}) -> hidden {} -> outputs {} (dropout {})",
            a.head_input(),
            input,
            sizes(&a.head.hidden),
            sizes(&a.outputs),
            a.head.dropout
        );
    } else {
        let _ = writeln!(
            out,
            "  heads          linear on the code -> outputs {}",
            sizes(&a.outputs)
        );
    }
}

/// Features, validation metrics, and the training config.
fn render_results(out: &mut String, r: &Value, manifest: &BundleManifest) {
    match &r["features"] {
        Value::Null => {
            let _ = writeln!(out, "features      none (embedding only)");
        }
        f => {
            let _ = writeln!(
                out,
                "features      {} of {} metadata features (feature set {})",
                f["selected"], f["extracted"], f["set"]
            );
        }
    }
    let m = &r["metrics"];
    // One task: its figures on the line; several: a line per task (the top level holds only
    // the first task's).
    let tasks: Vec<(&str, &Value)> = r["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["name"].as_str()?, t.get("metrics")?)))
        .collect();
    let _ = writeln!(
        out,
        "metrics       {} ({}){}",
        m["split"].as_str().unwrap_or("?"),
        format_args!(
            "{} train / {} valid",
            m["n_train"].as_u64().unwrap_or(0),
            m["n_valid"].as_u64().unwrap_or(0)
        ),
        match (tasks.len(), m["pretext_valid_loss"].as_f64()) {
            (0, Some(loss)) => format!(
                ": self-supervised loss {loss:.4} ({})",
                m["pretext_target_losses"]
                    .as_object()
                    .map(|t| t
                        .iter()
                        .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            (n, _) if n > 1 => String::new(),
            _ => format!(": {}", headline(m)),
        }
    );
    if tasks.len() > 1 {
        for (name, tm) in tasks {
            let _ = writeln!(out, "  {name}: {}", headline(tm));
        }
    }
    if let Some(t) = m["train_seconds"].as_f64() {
        let _ = writeln!(
            out,
            "  trained in {t:.2}s, best validation after {:.2}s; epochs {}",
            m["seconds_to_best"].as_f64().unwrap_or(0.0),
            m["epochs"]
        );
    }
    if let Some(w) = m["learned_task_weights"].as_object() {
        let each: Vec<String> = w.iter().map(|(t, v)| format!("{t} {v:.3}")).collect();
        let _ = writeln!(
            out,
            "  learned task weights (uncertainty): {}",
            each.join(", ")
        );
    }
    let _ = writeln!(out, "training config");
    match serde_json::from_value::<TrainConfig>(manifest.training.clone()) {
        Ok(c) => {
            for l in c.to_toml().lines().filter(|l| !l.is_empty()) {
                let _ = writeln!(out, "  {l}");
            }
        }
        Err(_) => {
            let _ = writeln!(out, "  {}", manifest.training);
        }
    }
}

/// The files and every tensor, with the verified weights hash.
fn render_files(out: &mut String, r: &Value, manifest: &BundleManifest) {
    let _ = writeln!(out, "files");
    for f in r["files"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("");
        let note = if name == bundle::CARD_FILE {
            "  (the model card: for people, not read)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<22} {}{note}",
            name,
            human_bytes(f["bytes"].as_u64().unwrap_or(0))
        );
    }
    for f in r["fine_tuned"]["files"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<22} {}",
            format!(
                "{}/{}",
                bundle::BACKBONE_DIR,
                f["name"].as_str().unwrap_or("")
            ),
            human_bytes(f["bytes"].as_u64().unwrap_or(0))
        );
    }
    let _ = writeln!(
        out,
        "  {:<22} {}",
        "(bundle total)",
        human_bytes(r["bundle_bytes"].as_u64().unwrap_or(0))
    );
    let w = &r["weights"];
    let _ = writeln!(
        out,
        "weights       {}, {} tensors, {} parameters",
        manifest.weights_dtype,
        w["tensors"].as_array().map_or(0, Vec::len),
        w["parameters"]
    );
    let _ = writeln!(out, "  sha256 {} (verified)", manifest.weights_sha256);
    for t in w["tensors"].as_array().into_iter().flatten() {
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_u64().map(|v| v as usize))
            .collect();
        let _ = writeln!(
            out,
            "  {:<34} {}",
            t["name"].as_str().unwrap_or(""),
            sizes(&shape)
        );
    }
}

pub fn inspect(args: InspectArgs) -> Result<ExitCode> {
    // `load` checks the format and the weights' sha256, and `from_bundle` everything a load
    // for serving checks short of the backbone, before anything is shown as verified.
    let (manifest, weights) = bundle::load(&args.dir)?;
    bundle::build_heads(&manifest, &weights)
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", args.dir.display(), e.message())))?;
    if args.task_weights {
        return print_task_weights(&manifest, args.json);
    }
    let r = report(&args.dir, &manifest, &weights)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r).map_err(internal)?);
    } else {
        print!("{}", render(&r, &manifest));
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect --task-weights`: inverse-variance weights from the bundle's history, as a config
/// snippet (or JSON).
fn print_task_weights(manifest: &BundleManifest, json: bool) -> Result<ExitCode> {
    // Records with a number JSON cannot hold (NaN is written as null) are skipped: they carry
    // no per-task losses.
    let history: Vec<tandem::train::EpochRecord> = manifest.metrics["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .collect();
    let names: Vec<String> = manifest.tasks.iter().map(|t| t.spec.name.clone()).collect();
    let found = tandem::train::weights::inverse_variance(&history, &names)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&found).map_err(internal)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let quote = |n: &str| serde_json::to_string(n).unwrap_or_default();
    let each: Vec<String> = found
        .weights
        .iter()
        .map(|(t, w)| format!("{} = {w:.4}", quote(t)))
        .collect();
    println!(
        "# inverse-variance task weights: 1 / (each task's mean validation loss over {} epochs \
         {}-{}), averaging 1",
        found.stage,
        found.epochs.0 + 1,
        found.epochs.1 + 1
    );
    println!("[loss]\ntask_weights = {{ {} }}", each.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// A feature value for the table: integers without decimals, the rest with 4 significant
/// digits (trailing zeros dropped).
fn show_value(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        return format!("{v:.0}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 9) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub fn features(args: FeaturesArgs) -> Result<ExitCode> {
    let text = if args.text == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::InvalidData {
                ErrorKind::InvalidUtf8
            } else {
                ErrorKind::Io
            };
            Error::new(kind, format!("<stdin>: {e}"))
        })?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        s
    } else {
        args.text.clone()
    };
    let values = tandem::metadata::extract(&text);
    let specs = tandem::metadata::feature_specs();
    if args.json {
        let feats: Vec<Value> = specs
            .iter()
            .zip(&values)
            .map(|(s, v)| {
                json!({
                    "name": s.name,
                    "group": s.group.name(),
                    "value": v,
                    "description": s.description,
                    "formula": s.formula,
                })
            })
            .collect();
        let out = json!({ "chars": text.chars().count(), "features": feats });
        println!("{}", serde_json::to_string_pretty(&out).map_err(internal)?);
        return Ok(ExitCode::SUCCESS);
    }
    let nw = specs.iter().map(|s| s.name.len()).max().unwrap_or(4);
    let gw = specs
        .iter()
        .map(|s| s.group.name().len())
        .max()
        .unwrap_or(5);
    println!("{:<nw$}  {:<gw$}  value", "name", "group");
    for (s, v) in specs.iter().zip(&values) {
        println!(
            "{:<nw$}  {:<gw$}  {}",
            s.name,
            s.group.name(),
            show_value(*v)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_compactly() {
        assert_eq!(show_value(5.0), "5");
        assert_eq!(show_value(0.0), "0");
        assert_eq!(show_value(0.25), "0.25");
        assert_eq!(show_value(1.0 / 3.0), "0.3333");
        assert_eq!(show_value(-423.5), "-423.5");
        assert_eq!(show_value(1.0 / 42.0), "0.02381");
        assert_eq!(show_value(12345.67), "12346");
        assert_eq!(show_value(8.0 / 3.0), "2.667");
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(20 * 1024), "20.0 KiB");
        assert_eq!(sizes(&[64, 32]), "[64, 32]");
        assert_eq!(
            list(&["a".into(), "b".into(), "c".into()], 2),
            "a, b, ... (3 in all)"
        );
    }
}
