//! `tandem eval`: metrics of a bundle on labelled data, overall and by a field's values.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ndarray::Array2;
use tandem::data::{read_rows, Targets};
use tandem::eval::evaluate_arrays;
use tandem::{Error, ErrorKind, Result};

use crate::embed::{embed, features};
use crate::input::texts_of;
use crate::progress::{Log, LogArgs};
use crate::{load_model, BackboneArgs};

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

/// `tandem eval`.
pub fn run(args: EvalArgs) -> Result<ExitCode> {
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
