//! `tandem backbone list` and `tandem backbone compare`: the installed backbones side by side —
//! throughput on short and long texts at batch 1 and 32, load time, peak memory, file sizes,
//! and the accuracy of a linear head on a labelled dataset — for each graph variant.
//!
//! Each backbone and variant is measured in a child process (`tandem backbone measure`, hidden),
//! so that its peak RSS is its own and one backbone's warm caches do not flatter the next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use tandem::backbone::BackboneManifest;
use tandem::compare::{compare as run_compare, headline_metrics, Arm, CompareOptions};
use tandem::data::{stratified_split, TaskKind};
use tandem::train::{examples, Needs, TrainConfig};
use tandem::{Backbone, BackboneOptions, Error, Result, Variant};

use crate::embed::embed;
use crate::input::{LabelArgs, Labelled};

#[derive(Args)]
pub struct BackboneArgs {
    #[command(subcommand)]
    command: BackboneCommand,
}

#[derive(Subcommand)]
enum BackboneCommand {
    /// The backbones installed in the cache: name, directory, width, layers, pooling, graphs.
    List,
    /// Measure installed backbones side by side and print a table.
    Compare(CompareArgs),
    /// Measure one backbone and variant and print JSON (what `compare` runs in a child).
    #[command(hide = true)]
    Measure(MeasureArgs),
}

/// What both `compare` and `measure` take.
#[derive(Args, Clone)]
struct Workload {
    /// Labelled data (JSONL or CSV) for the accuracy columns: the linear recipe (an
    /// L2-regularized linear head, its strength chosen by cross-validation) trained on a
    /// stratified 80% and scored on the other 20% (seed 0). Without it, no accuracy is measured.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the label.
    #[arg(long, default_value = "label")]
    label_field: String,
    /// Task kind of the label: multiclass, binary, multilabel or regression.
    #[arg(long, default_value = "multiclass")]
    task: TaskKind,
    /// Positive label of a binary task (default: the rarer value, or 1/true).
    #[arg(long)]
    positive: Option<String>,
    /// Measure accuracy on a stratified sample of at most this many examples of --data (seed
    /// 0), for data too large to embed with every backbone.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Skip the speed runs (accuracy only).
    #[arg(long)]
    no_speed: bool,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// ONNX Runtime library (default: $TANDEM_ORT_LIB, then the cache).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    /// Backbones to compare, by name or path, comma-separated (default: every backbone setup
    /// installs by name that is installed).
    #[arg(long, value_delimiter = ',', value_name = "NAME|DIR")]
    backbone: Vec<PathBuf>,
    /// Graph variants, comma-separated (those a backbone lacks are skipped).
    #[arg(long, value_delimiter = ',', default_value = "fp32,int8")]
    variants: Vec<Variant>,
    /// Write the measurements as JSON.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Write the table as Markdown.
    #[arg(long, value_name = "OUT.md")]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    workload: Workload,
}

#[derive(Args)]
struct MeasureArgs {
    /// The backbone directory.
    #[arg(long)]
    dir: PathBuf,
    /// The graph variant.
    #[arg(long)]
    variant: Variant,
    #[command(flatten)]
    workload: Workload,
}

/// One backbone and variant, measured.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Measurement {
    backbone: String,
    variant: String,
    dim: usize,
    layers: usize,
    max_length: usize,
    graph_mb: f64,
    load_seconds: f64,
    peak_rss_mb: f64,
    /// Texts per second: short and long texts, one per call and 32 per call (none with
    /// `--no-speed`).
    speed: Option<Speed>,
    /// The task kind of the data given.
    task: String,
    /// Examples the linear recipe used (train and test together), if data was given.
    examples: Option<usize>,
    /// The linear recipe's test metrics on the data given: the task kind's headline metrics.
    metrics: BTreeMap<String, f64>,
}

/// Texts per second on short and long texts, one per call and 32 per call.
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
struct Speed {
    short_b1: f64,
    short_b32: f64,
    long_b1: f64,
    long_b32: f64,
}

pub fn run(args: BackboneArgs) -> Result<ExitCode> {
    match args.command {
        BackboneCommand::List => list(),
        BackboneCommand::Compare(a) => compare(a),
        BackboneCommand::Measure(a) => {
            let m = measure(&a.dir, a.variant, &a.workload)?;
            println!(
                "{}",
                serde_json::to_string(&m).map_err(|e| Error::invalid(e.to_string()))?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Every backbone directory under the cache's `models/`, with the name setup knows it by.
fn installed() -> Vec<(Option<&'static str>, PathBuf)> {
    let models = tandem::home::cache_dir().join("models");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&models)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("manifest.json").is_file());
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            let name = tandem::home::BACKBONES
                .iter()
                .find(|(_, dir)| d.file_name().is_some_and(|f| f == *dir))
                .map(|(n, _)| *n);
            (name, d)
        })
        .collect()
}

fn list() -> Result<ExitCode> {
    let all = installed();
    if all.is_empty() {
        println!("no backbones installed: run scripts/setup.sh");
    }
    println!(
        "{:<12} {:<26} {:>5} {:>6} {:>8} {:>9}  graphs",
        "name", "directory", "dim", "layers", "pooling", "normalize"
    );
    for (name, dir) in all {
        let m = match BackboneManifest::load(&dir) {
            Ok(m) => m,
            Err(e) => {
                println!("{:<12} {:<26} unreadable: {e}", "-", file_name(&dir));
                continue;
            }
        };
        println!(
            "{:<12} {:<26} {:>5} {:>6} {:>8} {:>9}  {}",
            name.unwrap_or("-"),
            file_name(&dir),
            m.dim,
            layers(&dir).map_or("?".into(), |l| l.to_string()),
            m.pooling.name(),
            m.normalize,
            m.graphs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn file_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| dir.display().to_string(), |f| f.to_string_lossy().into())
}

/// The number of encoder layers, as the manifest's provenance records it.
fn layers(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["layers"].as_u64().map(|l| l as usize)
}

fn compare(args: CompareArgs) -> Result<ExitCode> {
    let dirs: Vec<PathBuf> = if args.backbone.is_empty() {
        installed()
            .into_iter()
            .filter_map(|(name, dir)| name.map(|_| dir))
            .collect()
    } else {
        args.backbone
            .iter()
            .map(|b| tandem::home::resolve_backbone(b))
            .collect()
    };
    if dirs.is_empty() {
        return Err(Error::invalid(
            "no backbones to compare: run scripts/setup.sh (--backbone NAME adds others)",
        ));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io(Path::new("tandem"), e))?;
    let mut rows = Vec::new();
    for dir in &dirs {
        let manifest = BackboneManifest::load(dir)?;
        for variant in &args.variants {
            if !manifest.graphs.contains_key(&variant.to_string()) {
                eprintln!("{}: no {variant} graph, skipped", file_name(dir));
                continue;
            }
            eprintln!("measuring {} {variant} ...", file_name(dir));
            let mut cmd = Command::new(&exe);
            cmd.args(["backbone", "measure", "--variant", &variant.to_string()])
                .arg("--dir")
                .arg(dir)
                .args(["--text-field", &args.workload.text_field])
                .args(["--label-field", &args.workload.label_field])
                .args(["--task", args.workload.task.name()]);
            if let Some(d) = &args.workload.data {
                cmd.arg("--data").arg(d);
            }
            if let Some(p) = &args.workload.positive {
                cmd.args(["--positive", p]);
            }
            if let Some(n) = args.workload.limit {
                cmd.args(["--limit", &n.to_string()]);
            }
            if args.workload.no_speed {
                cmd.arg("--no-speed");
            }
            if let Some(t) = args.workload.threads {
                cmd.args(["--threads", &t.to_string()]);
            }
            if let Some(l) = &args.workload.ort_lib {
                cmd.arg("--ort-lib").arg(l);
            }
            let out = cmd.output().map_err(|e| Error::io(&exe, e))?;
            if !out.status.success() {
                return Err(Error::invalid(format!(
                    "measuring {} {variant} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let m: Measurement = serde_json::from_slice(&out.stdout)
                .map_err(|e| Error::format(format!("measurement output: {e}")))?;
            rows.push(m);
        }
    }
    let metrics = match args.workload.data {
        Some(_) => headline_metrics(args.workload.task).0,
        None => &[],
    };
    print!("{}", table(&rows, metrics, false));
    if let Some(p) = &args.markdown {
        std::fs::write(p, table(&rows, metrics, true)).map_err(|e| Error::io(p, e))?;
    }
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "data": args.workload.data,
            "label_field": args.workload.label_field,
            "task": args.workload.task.name(),
            "limit": args.workload.limit,
            "threads": args.workload.threads,
            "texts_per_second": "short: 8-12 token questions; long: texts truncated at the backbone's max_length",
            "rows": rows,
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| Error::invalid(e.to_string()))?;
        std::fs::write(p, text).map_err(|e| Error::io(p, e))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The measurements as a fixed-width (or Markdown) table: the speed columns when measured,
/// then the linear recipe's `metrics`.
fn table(rows: &[Measurement], metrics: &[&str], markdown: bool) -> String {
    let speed = rows.iter().any(|m| m.speed.is_some());
    let mut head: Vec<String> = ["backbone", "variant", "dim", "layers", "graph MB", "load s"]
        .map(String::from)
        .to_vec();
    if speed {
        head.extend(
            [
                "peak RSS MB",
                "short b1/s",
                "short b32/s",
                "long b1/s",
                "long b32/s",
            ]
            .map(String::from),
        );
    }
    head.extend(metrics.iter().map(|m| m.replace('_', "-")));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            let mut row = vec![
                m.backbone.clone(),
                m.variant.clone(),
                m.dim.to_string(),
                m.layers.to_string(),
                format!("{:.1}", m.graph_mb),
                format!("{:.2}", m.load_seconds),
            ];
            if speed {
                row.push(format!("{:.0}", m.peak_rss_mb));
                row.extend(match m.speed {
                    Some(s) => vec![
                        format!("{:.0}", s.short_b1),
                        format!("{:.0}", s.short_b32),
                        format!("{:.1}", s.long_b1),
                        format!("{:.1}", s.long_b32),
                    ],
                    None => vec!["-".to_string(); 4],
                });
            }
            row.extend(
                metrics
                    .iter()
                    .map(|k| m.metrics.get(*k).map_or("-".into(), |x| format!("{x:.4}"))),
            );
            row
        })
        .collect();
    let mut out = String::new();
    if markdown {
        out += &format!("| {} |\n", head.join(" | "));
        out += &format!("|{}\n", "---|".repeat(head.len()));
        for r in &body {
            out += &format!("| {} |\n", r.join(" | "));
        }
        return out;
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].len())
                .fold(head[i].len(), usize::max)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    out += &line(head.iter().map(String::as_str).collect());
    for r in &body {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Short texts: questions of 8 to 12 tokens.
const SHORT: [&str; 8] = [
    "What is the capital of Australia?",
    "Who wrote the novel Moby Dick?",
    "How many days are in a leap year?",
    "Where is the Eiffel Tower located?",
    "When did the Berlin Wall fall?",
    "Why is the sky blue during the day?",
    "Which planet is closest to the sun?",
    "How do I reset my account password?",
];

/// A long text: longer than any backbone's max_length, so every copy is truncated to it.
fn long_text(i: usize) -> String {
    (0..400)
        .map(|k| {
            SHORT[(i + k) % SHORT.len()]
                .split(' ')
                .nth(k % 5)
                .unwrap_or("word")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Texts per second of `backbone` on `texts`, `per_call` texts per call, after a warm-up call.
fn throughput(backbone: &Backbone, texts: &[String], per_call: usize) -> Result<f64> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    backbone.embed(&refs[..per_call.min(refs.len())])?;
    let start = Instant::now();
    for chunk in refs.chunks(per_call) {
        backbone.embed(chunk)?;
    }
    Ok(refs.len() as f64 / start.elapsed().as_secs_f64())
}

/// Peak resident memory of this process so far, in MB (Linux; 0 elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn measure(dir: &Path, variant: Variant, work: &Workload) -> Result<Measurement> {
    let manifest = BackboneManifest::load(dir)?;
    let graph = manifest
        .graphs
        .get(&variant.to_string())
        .ok_or_else(|| Error::invalid(format!("{}: no {variant} graph", dir.display())))?;
    let graph_mb = std::fs::metadata(dir.join(graph))
        .map_err(|e| Error::io(&dir.join(graph), e))?
        .len() as f64
        / 1e6;
    let start = Instant::now();
    let backbone = Backbone::load(
        dir,
        BackboneOptions {
            variant,
            threads: work.threads,
            ort_library: work.ort_lib.clone(),
            batch_size: 32,
            ..Default::default()
        },
    )?;
    let load_seconds = start.elapsed().as_secs_f64();
    let speed = if work.no_speed {
        None
    } else {
        let short: Vec<String> = (0..256)
            .map(|i| SHORT[i % SHORT.len()].to_string())
            .collect();
        let long: Vec<String> = (0..64).map(long_text).collect();
        Some(Speed {
            short_b1: throughput(&backbone, &short[..64], 1)?,
            short_b32: throughput(&backbone, &short, 32)?,
            long_b1: throughput(&backbone, &long[..16], 1)?,
            long_b32: throughput(&backbone, &long, 32)?,
        })
    };
    // Before the accuracy run, so that it is the backbone's and not the training data's.
    let peak_rss_mb = peak_rss_mb();
    let (examples, metrics) = match &work.data {
        Some(data) => {
            let (n, m) = linear_accuracy(&backbone, data, work)?;
            (Some(n), m)
        }
        None => (None, BTreeMap::new()),
    };
    Ok(Measurement {
        backbone: manifest.name.clone(),
        variant: variant.to_string(),
        dim: manifest.dim,
        layers: layers(dir).unwrap_or(0),
        max_length: manifest.max_length,
        graph_mb,
        load_seconds,
        peak_rss_mb,
        speed,
        task: work.task.name().to_string(),
        examples,
        metrics,
    })
}

/// The linear recipe's headline test metrics on `data` (a stratified 20% held out, seed 0), as
/// `tandem compare --modes linear` measures them, and the number of examples it used.
fn linear_accuracy(
    backbone: &Backbone,
    data: &Path,
    work: &Workload,
) -> Result<(usize, BTreeMap<String, f64>)> {
    let fields = [work.label_field.clone()];
    let labels = LabelArgs {
        data,
        text_field: &work.text_field,
        label_fields: &fields,
        tasks: &[work.task],
        positive: work.positive.as_deref(),
    };
    let Labelled {
        mut texts,
        specs,
        mut targets,
        ..
    } = labels.read()?;
    if let Some(limit) = work.limit.filter(|&n| n < texts.len()) {
        if limit == 0 {
            return Err(Error::invalid("--limit must be at least 1"));
        }
        let (_, keep) =
            stratified_split(&targets[0].strata(), limit as f64 / texts.len() as f64, 0);
        texts = keep
            .iter()
            .map(|&i| std::mem::take(&mut texts[i]))
            .collect();
        targets = targets.iter().map(|t| t.select(&keep)).collect();
    }
    let config = TrainConfig::default();
    let options = CompareOptions {
        split_seed: 0,
        config,
        arms: vec![Arm::Linear],
        seeds: vec![0],
        test_fraction: 0.2,
        top: None,
        explicit: None,
        train_fraction: 1.0,
        memory: None,
    };
    let needs = Needs::of(&Arm::Linear.config(&options.config, 0));
    let log = crate::progress::Log::new(&crate::progress::LogArgs {
        quiet: true,
        log_format: crate::progress::LogFormat::Text,
    });
    let n = texts.len();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (all, _) = examples::build(&refs, targets, needs, |refs| {
        embed(
            backbone,
            refs,
            needs.tokens,
            options.config.cache.max_size,
            &log,
            "data",
        )
    })?;
    let summary = run_compare(&specs, &all, None, &options, &mut |_| {})?;
    let run = summary
        .runs
        .first()
        .ok_or_else(|| Error::invalid("the linear recipe did not run"))?;
    let metrics = headline_metrics(work.task)
        .0
        .iter()
        .map(|k| {
            run.test
                .get(*k)
                .map(|v| (k.to_string(), *v))
                .ok_or_else(|| Error::invalid(format!("the linear recipe reported no test {k}")))
        })
        .collect::<Result<_>>()?;
    Ok((n, metrics))
}
