//! Training reports: one self-contained HTML page (inline CSS, inline SVG charts, a small inline
//! self-check script; nothing fetched) built from a [`TrainReport`] and the validation
//! predictions: loss and metric curves per stage, and per task a confusion matrix, per-class
//! bars, a reliability diagram, threshold sweeps or a predicted-vs-true scatter, plus a breakdown
//! by an input column.

pub mod html;
pub mod plots;
pub mod stats;

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array2, Axis};

use self::html::{escape, key_values, number, table};
use self::stats::{analyze, expected_calibration_error, TaskAnalysis};
use crate::bundle::TaskEntry;
use crate::data::{Targets, TaskKind};
use crate::error::{Error, Result};
use crate::eval::evaluate_probs;
use crate::train::TrainReport;

/// A breakdown table lists at most this many groups (the largest).
pub const MAX_GROUPS: usize = 50;

/// What the report says about the run besides the training report itself.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Training data (a path or a description).
    pub data: String,
    /// Where the validation set came from.
    pub validation: String,
    /// Where the bundle was saved, if it was.
    pub bundle: Option<String>,
    /// Named wall times in seconds (embedding, features, ...), shown with the training times.
    pub timings: Vec<(String, f64)>,
    /// The effective training config as TOML.
    pub config_toml: String,
}

/// A column of the validation rows to break metrics down by.
#[derive(Debug, Clone)]
pub struct Breakdown {
    /// The column's name.
    pub field: String,
    /// Its value per validation row, in row order.
    pub keys: Vec<String>,
}

/// Everything a report is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// Run description.
    pub summary: &'a RunSummary,
    /// The training report (stages with per-epoch history, final validation metrics).
    pub report: &'a TrainReport,
    /// The trained tasks with their decision thresholds.
    pub tasks: &'a [TaskEntry],
    /// Validation probabilities (or values) per task, as `predict_arrays` returns them.
    pub probs: &'a [Array2<f32>],
    /// Validation targets per task.
    pub targets: &'a [Targets],
    /// Optional breakdown column.
    pub breakdown: Option<&'a Breakdown>,
}

/// Writes the report for `input` to `path` (HTML).
pub fn write(path: &Path, input: &ReportInput<'_>) -> Result<()> {
    let page = render(input)?;
    std::fs::write(path, page).map_err(|e| Error::io(path, e))
}

/// The report as an HTML document.
pub fn render(input: &ReportInput<'_>) -> Result<String> {
    if input.tasks.len() != input.probs.len() || input.tasks.len() != input.targets.len() {
        return Err(Error::invalid(
            "report: one probability matrix and one target set per task",
        ));
    }
    let n_valid = input.targets.first().map_or(0, Targets::len);
    if input.probs.iter().any(|p| p.nrows() != n_valid)
        || input.targets.iter().any(|t| t.len() != n_valid)
    {
        return Err(Error::invalid(
            "report: every task needs one row per validation example",
        ));
    }
    if let Some(b) = input.breakdown {
        if b.keys.len() != n_valid {
            return Err(Error::invalid(format!(
                "report: {} breakdown values for {n_valid} validation rows",
                b.keys.len()
            )));
        }
    }
    let mut body = String::new();
    body.push_str(&header(input));
    body.push_str(&final_metrics(input));
    body.push_str(&curves(input)?);
    for ((task, p), t) in input.tasks.iter().zip(input.probs).zip(input.targets) {
        body.push_str(&task_section(task, p, t)?);
    }
    if let Some(b) = input.breakdown {
        body.push_str(&breakdown(input, b));
    }
    body.push_str(&format!(
        "<section><h2>Configuration</h2><pre class=\"config\">{}</pre></section>\n",
        escape(&input.summary.config_toml)
    ));
    let title = format!(
        "tandem training report: {}",
        input
            .tasks
            .iter()
            .map(|t| t.spec.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n<script>{ERROR_HOOK}</script>\n</head>\n\
         <body>\n{body}<div id=\"report-check\" hidden></div>\n<script>{SELF_CHECK}</script>\n\
         </body>\n</html>\n",
        escape(&title)
    ))
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px auto;max-width:1360px;color:#222}\
h1{font-size:24px}h2{font-size:20px;margin-top:32px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 10px;\
text-align:left;font-size:14px}thead th{background:#f4f4f4}\
.plots{display:flex;flex-wrap:wrap;gap:16px}figure.plot{margin:0}\
figure.plot svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{font-size:13px;color:#555;max-width:640px}\
pre.config{background:#f8f8f8;padding:12px;font-size:13px;overflow:auto}";

/// Collects script errors, console errors and blocked loads for the self-check.
const ERROR_HOOK: &str = "window.__reportErrors=[];\
window.addEventListener('error',function(e){window.__reportErrors.push('error: '+e.message)});\
document.addEventListener('securitypolicyviolation',function(e){\
window.__reportErrors.push('blocked: '+e.blockedURI)});\
(function(){var f=console.error;console.error=function(){\
window.__reportErrors.push('console: '+Array.prototype.join.call(arguments,' '));\
return f.apply(console,arguments)}})();";

/// Checks, once the page has loaded, that every chart rendered at a nonzero size with at least
/// its data marks visible (`data-mark` elements with a nonzero box, `data-marks` of them) and that
/// nothing failed; writes the verdict into `#report-check` for headless tests (`data-status` ok
/// or fail, details as JSON text).
const SELF_CHECK: &str = "window.addEventListener('load',function(){var problems=[];\
var figs=document.querySelectorAll('figure.plot');\
figs.forEach(function(f){var name=f.getAttribute('data-plot');var svg=f.querySelector('svg');\
if(!svg){problems.push(name+': no svg');return}var r=svg.getBoundingClientRect();\
if(!(r.width>0&&r.height>0)){problems.push(name+': not rendered')}\
var need=parseInt(f.getAttribute('data-marks'),10);var seen=0;\
svg.querySelectorAll(f.getAttribute('data-mark')).forEach(function(s){\
var b=s.getBBox();if(b.width>0&&b.height>0){seen++}});\
if(!(need>0)){problems.push(name+': no data')}\
else if(seen<need){problems.push(name+': '+seen+' visible marks of '+need)}});\
var out=document.getElementById('report-check');var errors=window.__reportErrors||[];\
out.setAttribute('data-plots',String(figs.length));\
out.setAttribute('data-status',problems.length||errors.length||!figs.length?'fail':'ok');\
out.textContent=JSON.stringify({plots:figs.length,problems:problems,errors:errors})});";

/// A chart in a figure: `name` identifies it; the chart's data marks (type and count) are what
/// the self-check requires the browser to render.
fn figure(name: &str, chart: &plots::Chart, caption: &str) -> String {
    format!(
        "<figure class=\"plot\" data-plot=\"{0}\" id=\"plot-{0}\" data-mark=\"{1}\" \
         data-marks=\"{2}\">{3}<figcaption>{4}</figcaption></figure>\n",
        escape(name),
        chart.mark,
        chart.marks,
        chart.svg,
        escape(caption)
    )
}

fn header(input: &ReportInput<'_>) -> String {
    let r = input.report;
    let s = input.summary;
    let tasks = input
        .tasks
        .iter()
        .map(|t| match t.spec.kind {
            TaskKind::Regression => format!("{} (regression)", t.spec.name),
            k => format!(
                "{} ({}, {} labels)",
                t.spec.name,
                k.name(),
                t.spec.labels.len()
            ),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut rows = vec![
        ("mode".to_string(), r.mode.name().to_string()),
        ("tasks".to_string(), tasks),
        (
            "training data".to_string(),
            format!("{} ({} rows)", s.data, r.n_train),
        ),
        (
            "validation data".to_string(),
            format!("{} ({} rows)", s.validation, r.n_valid),
        ),
    ];
    if let Some(b) = &s.bundle {
        rows.push(("bundle".into(), b.clone()));
    }
    for (name, secs) in &s.timings {
        rows.push((format!("{name} time"), format!("{secs:.2} s")));
    }
    rows.push(("training time".into(), format!("{:.2} s", r.train_seconds)));
    rows.push((
        "time to best epoch".into(),
        format!("{:.2} s", r.seconds_to_best),
    ));
    for st in &r.stages {
        rows.push((
            format!("stage {}", st.stage),
            format!(
                "{} epochs run, best epoch {} by {} ({:.4}; valid loss {:.4}), {:.2} s",
                st.epochs_run,
                st.best_epoch + 1,
                st.monitor,
                st.best_monitored,
                st.best_valid_loss,
                st.seconds
            ),
        ));
    }
    if let Some(w) = r.stages.last().and_then(|st| st.learned_weights.as_ref()) {
        let each: Vec<String> = input
            .tasks
            .iter()
            .zip(w)
            .map(|(t, w)| format!("{} {w:.3}", t.spec.name))
            .collect();
        rows.push(("learned task weights (uncertainty)".into(), each.join(", ")));
    }
    rows.push(("created by".into(), format!("tandem {}", crate::VERSION)));
    format!(
        "<header><h1>tandem training report</h1>\n{}</header>\n",
        key_values("summary", &rows)
    )
}

/// The numeric fields of each task's final validation metrics, as trained (thresholds tuned).
fn final_metrics(input: &ReportInput<'_>) -> String {
    let mut s = String::from("<section><h2>Final validation metrics</h2>\n");
    for task in input.tasks {
        let m = &input.report.valid_metrics["tasks"][&task.spec.name];
        let rows: Vec<(String, String)> = m
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), number(x))))
            .collect();
        s.push_str(&format!("<h3>{}</h3>\n", escape(&task.spec.name)));
        s.push_str(&key_values("metrics", &rows));
    }
    s.push_str("</section>\n");
    s
}

/// The name of the per-epoch validation metric (`EpochRecord::metric`) when the first task is
/// of `kind`.
pub fn epoch_metric_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Regression => "RMSE",
        _ => "macro-F1",
    }
}

fn curves(input: &ReportInput<'_>) -> Result<String> {
    let name = input
        .tasks
        .first()
        .map_or("macro-F1", |t| epoch_metric_name(t.spec.kind));
    let first = input.tasks.first().map_or("", |t| t.spec.name.as_str());
    let note = match input.tasks.first().map(|t| t.spec.kind) {
        Some(TaskKind::Binary | TaskKind::Multilabel) => {
            " (at probability 0.5; the final metrics use the tuned thresholds)."
        }
        _ => ".",
    };
    let mut s = String::from("<section><h2>Training curves</h2>\n<div class=\"plots\">\n");
    for st in &input.report.stages {
        s.push_str(&figure(
            &format!("loss-{}", st.stage),
            &plots::loss_curves(st)?,
            &format!(
                "{}: mean training loss and validation loss per epoch; dashed: the best epoch, \
                 whose weights are kept.",
                st.stage
            ),
        ));
        if let Some(chart) = plots::metric_curve(st, name)? {
            s.push_str(&figure(
                &format!("metric-{}", st.stage),
                &chart,
                &format!(
                    "{}: validation {name} of task {first} per epoch{note}",
                    st.stage
                ),
            ));
        }
    }
    s.push_str("</div></section>\n");
    Ok(s)
}

fn task_section(task: &TaskEntry, probs: &Array2<f32>, targets: &Targets) -> Result<String> {
    let name = &task.spec.name;
    let mut s = format!(
        "<section><h2>Task {} ({})</h2>\n<div class=\"plots\">\n",
        escape(name),
        task.spec.kind.name()
    );
    let id = |what: &str| format!("{what}-{name}");
    match analyze(task, probs, targets) {
        Some(TaskAnalysis::Classes {
            metrics,
            reliability,
            curve,
        }) => class_figures(&mut s, task, &id, &metrics, &reliability, curve)?,
        Some(TaskAnalysis::Labels {
            metrics,
            reliability,
            curves,
        }) => label_figures(&mut s, &id, &metrics, &reliability, &curves)?,
        Some(TaskAnalysis::Values {
            metrics,
            truth,
            pred,
        }) => {
            s.push_str(&figure(
                &id("scatter"),
                &plots::scatter(&truth, &pred)?,
                &format!(
                    "Predicted against true values; MAE {:.4}, RMSE {:.4}, Pearson {:.4}.",
                    metrics.mae, metrics.rmse, metrics.pearson
                ),
            ));
        }
        None => s.push_str("<p>The targets do not match the task kind.</p>\n"),
    }
    s.push_str("</div></section>\n");
    Ok(s)
}

/// A multiclass or binary task's figures: confusion, per-class bars, reliability, and the
/// threshold curve of a binary task.
fn class_figures(
    s: &mut String,
    task: &TaskEntry,
    id: &dyn Fn(&str) -> String,
    metrics: &crate::eval::ClassificationMetrics,
    reliability: &[stats::ReliabilityBin],
    curve: Option<stats::ThresholdCurve>,
) -> Result<()> {
    s.push_str(&figure(
        &id("confusion"),
        &plots::confusion_heatmap(&task.spec.labels, &metrics.confusion)?,
        "Rows: true class; columns: predicted class; shade: share of the row.",
    ));
    s.push_str(&figure(
        &id("per-class"),
        &plots::class_bars(&metrics.per_class)?,
        "Precision, recall and F1 per class on the validation set.",
    ));
    let (x, y) = if task.spec.kind == TaskKind::Binary {
        let pos = task.spec.labels.get(1).map_or("positive", String::as_str);
        (
            format!("predicted probability of {pos}"),
            format!("fraction {pos}"),
        )
    } else {
        (
            "confidence of the predicted class".into(),
            "accuracy".into(),
        )
    };
    s.push_str(&figure(
        &id("reliability"),
        &plots::reliability_diagram(reliability, &x, &y)?,
        &format!(
            "{} confidence bins; expected calibration error {:.4}.",
            stats::RELIABILITY_BINS,
            expected_calibration_error(reliability)
        ),
    ));
    if let Some(c) = curve {
        let caption = format!(
            "F1 of {} at each threshold; dashed: the tuned threshold {:.3}.",
            c.label, c.chosen
        );
        s.push_str(&figure(
            &id("threshold"),
            &plots::threshold_f1(std::slice::from_ref(&c))?,
            &caption,
        ));
    }
    Ok(())
}

/// A multi-label task's figures: per-label bars, pooled reliability, threshold curves.
fn label_figures(
    s: &mut String,
    id: &dyn Fn(&str) -> String,
    metrics: &crate::eval::MultilabelMetrics,
    reliability: &[stats::ReliabilityBin],
    curves: &[stats::ThresholdCurve],
) -> Result<()> {
    s.push_str(&figure(
        &id("per-label"),
        &plots::class_bars(&metrics.per_label)?,
        "Precision, recall and F1 per label at the tuned thresholds.",
    ));
    s.push_str(&figure(
        &id("reliability"),
        &plots::reliability_diagram(
            reliability,
            "predicted probability of a label",
            "fraction with the label",
        )?,
        &format!(
            "Every label's probability, pooled, in {} bins; expected calibration error \
             {:.4}.",
            stats::RELIABILITY_BINS,
            expected_calibration_error(reliability)
        ),
    ));
    s.push_str(&figure(
        &id("threshold"),
        &plots::threshold_f1(curves)?,
        &format!(
            "F1 per label at each threshold (the {} most frequent of {}); dashed: the \
             tuned thresholds.",
            curves.len(),
            metrics.per_label.len()
        ),
    ));
    Ok(())
}

/// The headline metrics of each task kind, for breakdown columns.
fn headline_keys(kind: TaskKind) -> &'static [&'static str] {
    match kind {
        TaskKind::Multiclass | TaskKind::Binary => &["accuracy", "macro_f1"],
        TaskKind::Multilabel => &["subset_accuracy", "micro_f1", "macro_f1"],
        TaskKind::Regression => &["mae", "rmse"],
    }
}

fn breakdown(input: &ReportInput<'_>, b: &Breakdown) -> String {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in b.keys.iter().enumerate() {
        groups.entry(k.as_str()).or_default().push(i);
    }
    let total = groups.len();
    let mut ordered: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
    ordered.sort_by(|a, c| c.1.len().cmp(&a.1.len()).then(a.0.cmp(c.0)));
    ordered.truncate(MAX_GROUPS);
    let multi = input.tasks.len() > 1;
    let mut head = vec![b.field.clone(), "n".to_string()];
    for t in input.tasks {
        for k in headline_keys(t.spec.kind) {
            head.push(if multi {
                format!("{} {k}", t.spec.name)
            } else {
                k.to_string()
            });
        }
    }
    let rows: Vec<Vec<String>> = ordered
        .iter()
        .map(|(key, idx)| {
            let probs: Vec<Array2<f32>> =
                input.probs.iter().map(|p| p.select(Axis(0), idx)).collect();
            let targets: Vec<Targets> = input.targets.iter().map(|t| t.select(idx)).collect();
            let m = evaluate_probs(input.tasks, &probs, &targets);
            let mut row = vec![key.to_string(), idx.len().to_string()];
            for t in input.tasks {
                for k in headline_keys(t.spec.kind) {
                    row.push(
                        m["tasks"][&t.spec.name][*k]
                            .as_f64()
                            .map_or_else(|| "–".into(), number),
                    );
                }
            }
            row
        })
        .collect();
    let note = if total > MAX_GROUPS {
        format!("<p>The {MAX_GROUPS} largest of {total} groups.</p>\n")
    } else {
        String::new()
    };
    format!(
        "<section><h2>Validation metrics by {}</h2>\n{note}{}</section>\n",
        escape(&b.field),
        table("breakdown", &head, &rows)
    )
}

#[cfg(test)]
mod tests;
