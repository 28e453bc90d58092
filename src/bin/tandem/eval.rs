//! `tandem eval`: metrics of a bundle on labelled data, overall and by a field's values.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ndarray::Array2;
use std::collections::BTreeMap;
use std::path::Path;

use tandem::data::{read_rows, Row, Targets, TaskKind};
use tandem::eval::{
    error_cases, evaluate_arrays, evaluate_probs, group_outputs, group_thresholds, Aggregation,
};
use tandem::heads::{predict_arrays, Heads, TaskEntry};
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
    /// Also report metrics per value of these fields, comma-separated (e.g. `source`, or
    /// `source,lang` for each combination of their values).
    #[arg(long, value_delimiter = ',', value_name = "FIELD[,FIELD...]")]
    by: Vec<String>,
    /// Write the examples the model gets wrong as JSONL, worst (highest loss) first within
    /// each task: row index, id, text, true and predicted labels, confidence and loss. For
    /// regression, every example by its squared error.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    /// At most this many examples per task in --errors.
    #[arg(long, value_name = "N", requires = "errors")]
    errors_top: Option<usize>,
    /// Also report group-level metrics with the texts grouped by this field (e.g. an author
    /// id), for each way of combining a group's predictions side by side: mean, median,
    /// majority and total_vote. A group's true label is its texts' most common one (values:
    /// their mean).
    #[arg(long, value_name = "FIELD")]
    group_field: Option<String>,
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
    let probs = predict_arrays(&heads, emb.view(), feats.view(), tokens.as_ref())?;
    let mut report = evaluate_probs(&heads.tasks, &probs, &targets);
    if let Some(path) = &args.errors {
        let n = write_errors(
            path,
            &rows,
            &texts,
            &heads,
            &probs,
            &targets,
            args.errors_top,
        )?;
        log.note(&format!("{n} examples written to {}", path.display()));
    }
    if let Some(field) = &args.group_field {
        let keys = field_values(&rows, std::slice::from_ref(field));
        report["groups"] = group_report(field, &keys, &heads.tasks, &probs, &targets)?;
    }
    if !args.by.is_empty() {
        let by = args.by.join(",");
        let keys = field_values(&rows, &args.by);
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

/// Each row's values of `fields`, joined by " / " (a missing value reads "(missing)").
fn field_values(rows: &[Row], fields: &[String]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            fields
                .iter()
                .map(|f| r.text(f).unwrap_or_else(|| "(missing)".into()))
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .collect()
}

/// Writes [`error_cases`] as JSONL to `path` (at most `top` per task), with each row's `id`
/// (when it has one) and text; returns how many lines were written.
fn write_errors(
    path: &Path,
    rows: &[Row],
    texts: &[String],
    heads: &Heads,
    probs: &[Array2<f32>],
    targets: &[Targets],
    top: Option<usize>,
) -> Result<usize> {
    let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for case in error_cases(&heads.tasks, probs, targets) {
        let seen = per_task.entry(case.task.clone()).or_default();
        if top.is_some_and(|k| *seen >= k) {
            continue;
        }
        *seen += 1;
        let mut v = serde_json::to_value(&case).map_err(|e| Error::invalid(e.to_string()))?;
        if let Some(id) = rows[case.index].fields.get("id").filter(|v| !v.is_null()) {
            v["id"] = id.clone();
        }
        v["text"] = texts[case.index].clone().into();
        out.push(v);
    }
    let mut text = String::new();
    for v in &out {
        text += &v.to_string();
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    Ok(out.len())
}

/// Group-level metrics for every aggregation method: each group's true label (its texts' most
/// common one; for multi-label, each label held by at least half of them; for regression,
/// their mean), and the metrics of the group predictions each method makes.
fn group_report(
    field: &str,
    keys: &[String],
    tasks: &[TaskEntry],
    probs: &[Array2<f32>],
    targets: &[Targets],
) -> Result<serde_json::Value> {
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        members.entry(k.as_str()).or_default().push(i);
    }
    let group_targets: Vec<Targets> = targets.iter().map(|t| group_truth(t, &members)).collect();
    // Groups whose texts disagree on the first task's label: their truth is a vote.
    let mixed = members
        .values()
        .filter(|idx| {
            let t = targets[0].select(idx);
            t.strata().iter().any(|s| *s != t.strata()[0])
        })
        .count();
    let mut methods = serde_json::Map::new();
    for how in Aggregation::ALL {
        let mut entries = Vec::new();
        let mut outputs = Vec::new();
        for (task, p) in tasks.iter().zip(probs) {
            let rows: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
            let groups = group_outputs(task, keys, &rows, how)?;
            let width = groups.first().map_or(0, |(_, v)| v.len());
            let flat: Vec<f32> = groups.into_iter().flat_map(|(_, v)| v).collect();
            outputs.push(
                Array2::from_shape_vec((members.len(), width), flat)
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?,
            );
            let mut entry = task.clone();
            if matches!(task.spec.kind, TaskKind::Binary | TaskKind::Multilabel) {
                entry.thresholds = group_thresholds(task, how);
            }
            entries.push(entry);
        }
        methods.insert(
            how.name().into(),
            evaluate_probs(&entries, &outputs, &group_targets),
        );
    }
    Ok(serde_json::json!({
        "field": field,
        "groups": members.len(),
        "mixed_groups": mixed,
        "methods": methods,
    }))
}

/// The true targets of each group (in key order) from its texts' targets.
fn group_truth(t: &Targets, members: &BTreeMap<&str, Vec<usize>>) -> Targets {
    match t {
        Targets::Class(c) => Targets::Class(
            members
                .values()
                .map(|idx| {
                    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
                    for &i in idx {
                        *counts.entry(c[i]).or_default() += 1;
                    }
                    // The most common class; the lower index on a tie.
                    counts
                        .iter()
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                        .map_or(0, |(k, _)| *k)
                })
                .collect(),
        ),
        Targets::MultiHot(rows) => Targets::MultiHot(
            members
                .values()
                .map(|idx| {
                    let width = rows.first().map_or(0, Vec::len);
                    (0..width)
                        .map(|j| {
                            let on = idx.iter().filter(|&&i| rows[i][j] >= 0.5).count();
                            f32::from(u8::from(2 * on >= idx.len()))
                        })
                        .collect()
                })
                .collect(),
        ),
        Targets::Value(v) => Targets::Value(
            members
                .values()
                .map(|idx| idx.iter().map(|&i| v[i]).sum::<f32>() / idx.len() as f32)
                .collect(),
        ),
    }
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
    if let Some(g) = report.get("groups") {
        out += &format!(
            "groups by {} ({} groups, {} with texts of different labels):\n",
            g["field"].as_str().unwrap_or("?"),
            g["groups"],
            g["mixed_groups"]
        );
        if let Some(methods) = g["methods"].as_object() {
            for how in Aggregation::ALL {
                if let Some(m) = methods.get(how.name()) {
                    out += &format!("  {:<10}  {}\n", how.name(), headline(m));
                }
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

    #[test]
    fn group_truths_are_the_most_common_label_and_the_mean_value() {
        let keys = ["a", "a", "a", "b", "b"];
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            members.entry(*k).or_default().push(i);
        }
        // Group a: classes 2, 1, 2 -> 2; group b: a tie of 0 and 1 -> the lower, 0.
        match group_truth(&Targets::Class(vec![2, 1, 2, 1, 0]), &members) {
            Targets::Class(c) => assert_eq!(c, [2, 0]),
            other => panic!("{other:?}"),
        }
        match group_truth(&Targets::Value(vec![1.0, 2.0, 6.0, 0.0, 1.0]), &members) {
            Targets::Value(v) => assert_eq!(v, [3.0, 0.5]),
            other => panic!("{other:?}"),
        }
        // A label held by at least half of a group's texts.
        let hot = vec![
            vec![1.0, 0.0],
            vec![1.0, 1.0],
            vec![0.0, 0.0],
            vec![0.0, 1.0],
            vec![0.0, 0.0],
        ];
        match group_truth(&Targets::MultiHot(hot), &members) {
            Targets::MultiHot(m) => assert_eq!(m, [vec![1.0, 0.0], vec![0.0, 1.0]]),
            other => panic!("{other:?}"),
        }
    }
}
