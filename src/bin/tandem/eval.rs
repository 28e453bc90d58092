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
    /// Print the full metrics as JSON (per-class figures, confusion matrices, breakdowns)
    /// instead of the readable summary.
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
        embed(
            model.backbone(),
            &refs,
            arch.needs_tokens(),
            0,
            &log,
            "eval",
        )?
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
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report)
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?
        );
    } else {
        print!("{}", summary(&report));
    }
    log.done(serde_json::json!({"command": "eval", "rows": texts.len()}));
    Ok(ExitCode::SUCCESS)
}

/// The headline figures of a metrics object, in a fixed order, rounded for reading.
fn headline(m: &serde_json::Value) -> String {
    const KEYS: [&str; 12] = [
        "accuracy",
        "macro_f1",
        "micro_f1",
        "macro_precision",
        "macro_recall",
        "subset_accuracy",
        "roc_auc",
        "mae",
        "rmse",
        "pearson",
        "r2",
        "threshold",
    ];
    figures(m, &KEYS)
}

/// The numeric figures of `m` named by `keys` that it has, in that order, as "name value"
/// pairs rounded to 4 decimals.
pub(crate) fn figures(m: &serde_json::Value, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| {
            m.get(*k)
                .and_then(|v| v.as_f64())
                .map(|v| format!("{k} {v:.4}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The readable form of `eval`'s report: per task its headline figures and per-class (or
/// per-label) precision, recall, F1 and support; then the breakdown groups, if any.
fn summary(report: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(tasks) = report.get("tasks").and_then(|t| t.as_object()) {
        for (name, m) in tasks {
            let n = m.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
            out += &format!("task {name} ({n} texts): {}\n", headline(m));
            let classes = m.get("per_class").or_else(|| m.get("per_label"));
            if let Some(rows) = classes.and_then(|c| c.as_array()) {
                let width = rows
                    .iter()
                    .filter_map(|r| r["label"].as_str())
                    .map(|l| l.chars().count())
                    .max()
                    .unwrap_or(5)
                    .max(5);
                out += &format!(
                    "  {:<width$}  precision  recall      f1  support\n",
                    "label"
                );
                for r in rows {
                    out += &format!(
                        "  {:<width$}  {:>9.3}  {:>6.3}  {:>6.3}  {:>7}\n",
                        r["label"].as_str().unwrap_or("?"),
                        r["precision"].as_f64().unwrap_or(f64::NAN),
                        r["recall"].as_f64().unwrap_or(f64::NAN),
                        r["f1"].as_f64().unwrap_or(f64::NAN),
                        r["support"].as_u64().unwrap_or(0)
                    );
                }
            }
        }
    }
    if let Some(b) = report.get("breakdown") {
        let by = b["by"].as_str().unwrap_or("?");
        if let Some(groups) = b["groups"].as_object() {
            out += &format!("by {by}:\n");
            for (k, m) in groups {
                let n = m.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
                out += &format!("  {k} ({n} texts): {}\n", headline(m));
            }
        }
    }
    out += "(--json prints every figure: per-class details, confusion matrices, all tasks)\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_shows_headlines_classes_and_groups_rounded() {
        let report = serde_json::json!({
            "accuracy": 0.5,
            "tasks": {"spam": {"n": 4, "accuracy": 0.123456, "macro_f1": 0.5,
                "per_class": [{"label": "ham", "precision": 1.0, "recall": 0.5, "f1": 0.6667,
                               "support": 2}]},
                      "score": {"n": 4, "rmse": 1.25, "r2": -0.5}},
            "breakdown": {"by": "source", "groups": {"web": {"n": 3, "accuracy": 0.3333333}}}
        });
        let text = summary(&report);
        assert!(
            text.contains("task spam (4 texts): accuracy 0.1235, macro_f1 0.5000"),
            "{text}"
        );
        assert!(
            text.contains("  ham        1.000   0.500   0.667        2"),
            "{text}"
        );
        assert!(
            text.contains("task score (4 texts): rmse 1.2500, r2 -0.5000"),
            "{text}"
        );
        assert!(
            text.contains("by source:\n  web (3 texts): accuracy 0.3333"),
            "{text}"
        );
    }
}
