//! `tandem train`, `tandem eval` and `tandem predict`.

use std::cell::Cell;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use ndarray::Array2;
use tandem::bundle;
use tandem::cache::{EmbeddingCache, TokenCache};
use tandem::data::{read_rows, Row, Targets, TaskKind, TaskSpec};
use tandem::eval::evaluate_arrays;
use tandem::eval::Aggregation;
use tandem::model::Model;
use tandem::train::config::HeadKind;
use tandem::train::{examples, manifest_for, split_indices_of, Needs};
use tandem::train::{Examples, Mode, TrainConfig};
use tandem::{Backbone, Error, ErrorKind, Result, TokenSeqs};

use crate::progress::{Log, LogArgs};
use crate::train_report;
use crate::{embed_texts, read_input, BackboneArgs};

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: JSONL, or CSV with a header row.
    #[arg(long, required_unless_present = "print_config")]
    data: Option<PathBuf>,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the label; repeat (with --task) to train several heads together.
    #[arg(long, required_unless_present = "print_config")]
    label_field: Vec<String>,
    /// Task kind per label field: multiclass, binary, multilabel or regression.
    #[arg(long, required_unless_present = "print_config")]
    task: Vec<TaskKind>,
    /// Output bundle directory (replaced atomically).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Validation data; without it a stratified share of --data is held out.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Training config (TOML; see `--print-config` for every option).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed (overrides the config's).
    #[arg(long)]
    seed: Option<u64>,
    /// Mode (overrides the config's): two_stage, joint, embedding_only, metadata_only.
    #[arg(long)]
    mode: Option<Mode>,
    /// Head type (overrides the config's head.kind): `pooled` reads the sentence embedding;
    /// `sequence` also reads every token's vector through a sequence encoder ([head.sequence]).
    #[arg(long)]
    head: Option<HeadKind>,
    /// Run the backbone on every text, without reading or writing the on-disk embedding caches
    /// (to time training end to end, embedding included).
    #[arg(long)]
    no_cache: bool,
    /// Positive label of a binary task (default: the rarer value, or 1/true).
    #[arg(long)]
    positive: Option<String>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Write a self-contained HTML training report here (curves, confusion matrix, per-class
    /// bars, calibration, thresholds or a regression scatter, on the validation set).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// In the report, break validation metrics down by this field (like `eval --by`).
    #[arg(long, value_name = "FIELD", requires = "report")]
    report_by: Option<String>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Bundle directory.
    #[arg(long)]
    model: PathBuf,
    /// Labelled data: JSONL or CSV.
    #[arg(long)]
    data: PathBuf,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the label, once per task in the bundle's order (default: the task names).
    #[arg(long)]
    label_field: Vec<String>,
    /// Also report metrics per value of this field (e.g. `source`).
    #[arg(long)]
    by: Option<String>,
    /// Print JSON (always JSON today; the flag is kept for the documented contract).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[derive(Args)]
pub struct PredictArgs {
    /// Bundle directory.
    #[arg(long)]
    model: PathBuf,
    /// Input: text lines or JSONL with a `text` field; `-` or nothing reads standard input.
    input: Option<PathBuf>,
    /// JSONL field whose value groups texts (e.g. an author id): one prediction per group.
    #[arg(long)]
    group_field: Option<String>,
    /// How group members combine: mean, median or majority.
    #[arg(long, default_value = "mean")]
    aggregate: Aggregation,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

pub(crate) fn texts_of(rows: &[Row], field: &str) -> Result<Vec<String>> {
    rows.iter()
        .map(|r| match r.fields.get(field) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => Err(Error::invalid(format!(
                "line {}: no string `{field}` field",
                r.line
            ))),
        })
        .collect()
}

/// Embeddings (and, with `want_tokens`, per-token vectors) through the on-disk caches: the
/// backbone runs once per distinct text, ever.
pub(crate) fn embed(
    backbone: &Backbone,
    texts: &[&str],
    want_tokens: bool,
    log: &Log,
    what: &str,
) -> Result<(Array2<f32>, Option<TokenSeqs>)> {
    embed_maybe_cached(backbone, texts, want_tokens, true, log, what)
}

/// [`embed`], or with `cached` false the backbone on every text and no cache touched.
fn embed_maybe_cached(
    backbone: &Backbone,
    texts: &[&str],
    want_tokens: bool,
    cached: bool,
    log: &Log,
    what: &str,
) -> Result<(Array2<f32>, Option<TokenSeqs>)> {
    let pooled = cached
        .then(|| EmbeddingCache::open(None, backbone))
        .transpose()?;
    let tokens = (cached && want_tokens)
        .then(|| TokenCache::open(None, backbone))
        .transpose()?;
    embed_texts(
        backbone,
        pooled.as_ref(),
        tokens.as_ref(),
        texts,
        want_tokens,
        log,
        what,
    )
}

pub(crate) fn features(texts: &[String]) -> Array2<f32> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    tandem::metadata::extract_batch(&refs)
}

pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(p) => TrainConfig::load(p)?,
        None => TrainConfig::default(),
    };
    if let Some(s) = args.seed {
        config.seed = s;
    }
    if let Some(m) = args.mode {
        config.mode = m;
    }
    if let Some(h) = args.head {
        config.head.kind = h;
    }
    config.validate()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let out = args
        .out
        .clone()
        .ok_or_else(|| Error::invalid("--out DIR is required"))?;
    // Before minutes of training, not after: --out must be a bundle, empty or new.
    bundle::check_target(&out)?;
    if args.label_field.len() != args.task.len() {
        return Err(Error::invalid(format!(
            "{} --label-field but {} --task: give one task kind per label field",
            args.label_field.len(),
            args.task.len()
        )));
    }
    let data = args
        .data
        .clone()
        .ok_or_else(|| Error::invalid("--data FILE is required"))?;
    let rows = read_rows(&data)?;
    if rows.is_empty() {
        return Err(Error::invalid(format!("{}: no rows", data.display())));
    }
    let texts = texts_of(&rows, &args.text_field)?;
    let mut specs = Vec::new();
    let mut targets = Vec::new();
    for (field, kind) in args.label_field.iter().zip(&args.task) {
        let (spec, t) = TaskSpec::infer(field, *kind, field, &rows, args.positive.as_deref())?;
        specs.push(spec);
        targets.push(t);
    }
    let valid_rows = args.valid.as_deref().map(read_rows).transpose()?;
    let valid_texts = valid_rows
        .as_deref()
        .map(|r| texts_of(r, &args.text_field))
        .transpose()?;
    let mut log = Log::new(&args.log);
    let backbone = args.backbone.load(32)?;
    let needs = Needs::of(&config);
    // Wall times of embedding and feature extraction, for the report.
    let (embed_secs, feature_secs) = (Cell::new(0.0), Cell::new(0.0));
    let mk = |texts: &[String], targets: Vec<Targets>, what: &str| -> Result<Examples> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (ex, t) = examples::build(&refs, targets, needs, |refs| {
            embed_maybe_cached(&backbone, refs, needs.tokens, !args.no_cache, &log, what)
        })?;
        embed_secs.set(embed_secs.get() + t.embed_seconds);
        feature_secs.set(feature_secs.get() + t.feature_seconds);
        Ok(ex)
    };
    let all = mk(&texts, targets, "train")?;
    // The validation rows themselves are kept for the report's breakdown column.
    let (train_ex, valid_ex, valid_rows) = match (valid_rows, &valid_texts) {
        (Some(vr), Some(vt)) => {
            let vt_targets = specs
                .iter()
                .zip(&args.label_field)
                .map(|(s, f)| s.parse(f, &vr))
                .collect::<Result<Vec<_>>>()?;
            let v = mk(vt, vt_targets, "valid")?;
            (all, v, vr)
        }
        _ => {
            let (tr, va) = split_indices_of(&all, &config, Some(&specs[0]))?;
            let vr = va.iter().map(|&i| rows[i].clone()).collect();
            (all.select(&tr), all.select(&va), vr)
        }
    };
    log.set_metric_name(train_report::metric_name(specs[0].kind));
    let mut progress = |r: &tandem::train::EpochRecord| {
        // Threshold tuning takes milliseconds: not worth a line of its own.
        if r.stage != "thresholds" {
            log.epoch(r);
        }
        true
    };
    let trained = tandem::train::train(&specs, &train_ex, &valid_ex, &config, &mut progress)?;
    log.finish_stage();
    let manifest = manifest_for(
        &trained,
        bundle::BackboneRef::of(&backbone),
        &tandem::metadata::feature_names(),
        &config,
    );
    bundle::save(
        &out,
        &manifest,
        &trained.heads.network.weights(),
        config.f16_weights,
    )?;
    if let Some(path) = &args.report {
        let summary = tandem::report::RunSummary {
            data: data.display().to_string(),
            validation: match &args.valid {
                Some(v) => v.display().to_string(),
                None => format!(
                    "{:.0}% of the training data, held out (stratified by {}, seed {})",
                    config.valid_fraction * 100.0,
                    specs[0].name,
                    config.seed
                ),
            },
            bundle: Some(out.display().to_string()),
            timings: vec![
                ("embedding".into(), embed_secs.get()),
                ("metadata features".into(), feature_secs.get()),
            ],
            config_toml: config.to_toml(),
        };
        train_report::write(
            path,
            &summary,
            &trained,
            &valid_ex,
            &valid_rows,
            args.report_by.as_deref(),
        )?;
    }
    let m = &trained.report.valid_metrics;
    let headline = ["macro_f1", "accuracy", "rmse", "mae"]
        .iter()
        .filter_map(|k| {
            m.get(*k)
                .and_then(|v| v.as_f64())
                .map(|v| format!("{k} {v:.4}"))
        })
        .collect::<Vec<_>>()
        .join(", ");
    if log.json() {
        let mut metrics = m.clone();
        if let Some(o) = metrics.as_object_mut() {
            // Per-task details (confusion matrices, per-class lists) stay in the bundle.
            o.retain(|_, v| v.is_number());
        }
        log.done(serde_json::json!({
            "command": "train",
            "mode": config.mode.name(),
            "n_train": trained.report.n_train,
            "n_valid": trained.report.n_valid,
            "train_seconds": trained.report.train_seconds,
            "metrics": metrics,
            "bundle": out.display().to_string(),
            "report": args.report.as_ref().map(|p| p.display().to_string()),
        }));
    } else {
        eprintln!(
            "trained {} ({} train / {} valid) in {:.1}s; validation: {headline}; bundle: {}",
            config.mode.name(),
            trained.report.n_train,
            trained.report.n_valid,
            trained.report.train_seconds,
            out.display()
        );
        if let Some(p) = &args.report {
            eprintln!("report: {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a bundle on the backbone it names (the variant it was trained with unless overridden).
fn load_model(dir: &Path, backbone_args: &BackboneArgs) -> Result<Model> {
    let manifest_path = dir.join(bundle::MANIFEST_FILE);
    let text = tandem::files::read_text(&manifest_path, tandem::files::BUNDLE_MANIFEST)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(format!("{}: {e}", manifest_path.display())))?;
    let mut args = backbone_args.clone();
    if !backbone_args.variant_given() {
        if let Some(var) = v["backbone"]["variant"].as_str() {
            args.variant = Some(var.parse()?);
        }
    }
    let backbone = Arc::new(args.load(32)?);
    Model::load(dir, backbone)
}

pub fn eval(args: EvalArgs) -> Result<ExitCode> {
    let mut log = Log::new(&args.log);
    let model = load_model(&args.model, &args.backbone)?;
    let heads = model.heads();
    let fields: Vec<String> = if args.label_field.is_empty() {
        heads.tasks.iter().map(|t| t.spec.name.clone()).collect()
    } else {
        args.label_field.clone()
    };
    if fields.len() != heads.tasks.len() {
        return Err(Error::invalid(format!(
            "the bundle has {} tasks; give one --label-field per task",
            heads.tasks.len()
        )));
    }
    let rows = read_rows(&args.data)?;
    if rows.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no rows to evaluate",
            args.data.display()
        )));
    }
    let texts = texts_of(&rows, &args.text_field)?;
    let targets = heads
        .tasks
        .iter()
        .zip(&fields)
        .map(|(t, f)| t.spec.parse(f, &rows))
        .collect::<Result<Vec<_>>>()?;
    let arch = &heads.network.arch;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (emb, tokens) = if arch.emb_dim > 0 {
        embed(model.backbone(), &refs, arch.needs_tokens(), &log, "eval")?
    } else {
        (Array2::zeros((texts.len(), 0)), None)
    };
    let feats = match &heads.normalizer {
        Some(n) => n.transform(features(&texts).view()),
        None => Array2::zeros((texts.len(), 0)),
    };
    let mut report = evaluate_arrays(&heads, emb.view(), feats.view(), tokens.as_ref(), &targets)?;
    if let Some(by) = &args.by {
        let keys: Vec<String> = rows
            .iter()
            .map(|r| r.text(by).unwrap_or_else(|| "(missing)".into()))
            .collect();
        let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, k) in keys.iter().enumerate() {
            groups.entry(k.as_str()).or_default().push(i);
        }
        let mut breakdown = serde_json::Map::new();
        for (k, idx) in groups {
            let t: Vec<Targets> = targets.iter().map(|t| t.select(&idx)).collect();
            let e = emb.select(ndarray::Axis(0), &idx);
            let f = feats.select(ndarray::Axis(0), &idx);
            let tok = tokens.as_ref().map(|s| s.select(&idx));
            let mut m = evaluate_arrays(&heads, e.view(), f.view(), tok.as_ref(), &t)?;
            if let Some(o) = m.as_object_mut() {
                o.remove("tasks");
                o.insert("n".into(), idx.len().into());
            }
            breakdown.insert(k.to_string(), m);
        }
        report["breakdown"] = serde_json::json!({ "by": by, "groups": breakdown });
    }
    let _ = args.json;
    println!(
        "{}",
        serde_json::to_string_pretty(&report)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?
    );
    log.done(serde_json::json!({"command": "eval", "rows": texts.len()}));
    Ok(ExitCode::SUCCESS)
}

pub fn predict(args: PredictArgs) -> Result<ExitCode> {
    let mut log = Log::new(&args.log);
    let model = load_model(&args.model, &args.backbone)?;
    let records = read_input(args.input.as_deref())?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, e.to_string());
    if let Some(field) = &args.group_field {
        let groups: Vec<String> = records
            .iter()
            .map(|r| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get(field))
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .ok_or_else(|| Error::invalid(format!("a record has no `{field}` field")))
            })
            .collect::<Result<_>>()?;
        // Groups need every member at once: one call, no progress to show.
        for (key, preds) in model.predict_groups(&texts, &groups, args.aggregate)? {
            let line = serde_json::json!({ "group": key, "predictions": preds });
            writeln!(w, "{line}").map_err(io)?;
        }
    } else {
        // In chunks, so that the bar advances and output streams.
        let progress = log.texts("predict", texts.len());
        let chunk_size = tandem::cache::EMBED_CHUNK;
        for (c, chunk) in texts.chunks(chunk_size).enumerate() {
            let base = c * chunk_size;
            for (j, preds) in model.predict(chunk)?.into_iter().enumerate() {
                let i = base + j;
                let mut obj = serde_json::json!({ "index": i, "predictions": preds });
                if let Some(id) = &records[i].id {
                    obj["id"] = id.clone();
                }
                writeln!(w, "{obj}").map_err(io)?;
            }
            progress.inc(chunk.len());
        }
        progress.close();
    }
    w.flush().map_err(io)?;
    log.done(serde_json::json!({"command": "predict", "texts": texts.len()}));
    Ok(ExitCode::SUCCESS)
}
