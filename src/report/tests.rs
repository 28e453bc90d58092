//! Report tests on synthetic validation predictions: every task kind yields its charts, every
//! chart is a drawn SVG, user text is escaped, and nothing points outside the page.

use ndarray::Array2;

use super::*;
use crate::data::TaskSpec;
use crate::train::{EpochRecord, Mode, StageReport};

fn entry(name: &str, kind: TaskKind, labels: &[&str], thresholds: Vec<f32>) -> TaskEntry {
    TaskEntry {
        spec: TaskSpec {
            name: name.into(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        },
        thresholds,
    }
}

fn stage(name: &str, epochs: usize, metric: bool) -> StageReport {
    StageReport {
        stage: name.into(),
        epochs_run: epochs,
        best_epoch: epochs - 1,
        best_valid_loss: 0.5,
        monitor: "valid_loss (min)".into(),
        best_monitored: 0.5,
        learned_weights: None,
        seconds: 1.5,
        seconds_to_best: 1.5,
        history: (0..epochs)
            .map(|e| EpochRecord {
                stage: name.into(),
                epoch: e,
                epochs: 20,
                train_loss: 1.0 / (1.0 + e as f32),
                valid_loss: 1.1 / (1.0 + e as f32),
                metric: metric.then_some(0.4 + 0.05 * e as f32),
                monitored: None,
                task_losses: Vec::new(),
                lr: 1e-3,
                elapsed: 0.1 * e as f64,
            })
            .collect(),
    }
}

/// A deterministic value in [0, 1) from `i`.
fn noise(i: usize) -> f32 {
    ((i as u64).wrapping_mul(2654435761) % 1000) as f32 / 1000.0
}

struct Case {
    tasks: Vec<TaskEntry>,
    probs: Vec<Array2<f32>>,
    targets: Vec<Targets>,
}

/// One task of `kind` with `n` validation rows whose predictions mostly agree with the truth.
fn case(kind: TaskKind, n: usize) -> Case {
    let (task, probs, targets) = match kind {
        TaskKind::Multiclass => {
            let truth: Vec<usize> = (0..n).map(|i| i % 3).collect();
            let p = Array2::from_shape_fn((n, 3), |(i, j)| {
                let base = if j == truth[i] { 0.6 } else { 0.2 };
                base * (0.5 + noise(i * 3 + j))
            });
            let p = &p / &p.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
            (
                entry(
                    "intent",
                    kind,
                    &["<b>book</b>", "cancel & refund", "other"],
                    vec![],
                ),
                p,
                Targets::Class(truth),
            )
        }
        TaskKind::Binary => {
            let truth: Vec<usize> = (0..n).map(|i| usize::from(i % 4 == 0)).collect();
            let p = Array2::from_shape_fn((n, 1), |(i, _)| {
                (0.35 * truth[i] as f32 + 0.65 * noise(i)).clamp(0.0, 1.0)
            });
            (
                entry("spam", kind, &["ham", "spam"], vec![0.45]),
                p,
                Targets::Class(truth),
            )
        }
        TaskKind::Multilabel => {
            let rows: Vec<Vec<f32>> = (0..n)
                .map(|i| {
                    vec![
                        f32::from(u8::from(i % 2 == 0)),
                        f32::from(u8::from(i % 3 == 0)),
                    ]
                })
                .collect();
            let p = Array2::from_shape_fn((n, 2), |(i, j)| {
                (0.4 * rows[i][j] + 0.6 * noise(i * 2 + j)).clamp(0.0, 1.0)
            });
            (
                entry("topics", kind, &["grain", "corn"], vec![0.5, 0.4]),
                p,
                Targets::MultiHot(rows),
            )
        }
        TaskKind::Regression => {
            let truth: Vec<f32> = (0..n).map(|i| -4.0 + 8.0 * noise(i)).collect();
            let p = Array2::from_shape_fn((n, 1), |(i, _)| 0.8 * truth[i] + noise(i + 7) - 0.5);
            (entry("rating", kind, &[], vec![]), p, Targets::Value(truth))
        }
    };
    Case {
        tasks: vec![task],
        probs: vec![probs],
        targets: vec![targets],
    }
}

fn render_case(c: &Case, mode: Mode, breakdown: Option<&Breakdown>) -> String {
    let stages = match mode {
        Mode::TwoStage => vec![stage("stage1", 4, true), stage("stage2", 6, true)],
        _ => vec![stage("heads", 5, true)],
    };
    let report = TrainReport {
        mode,
        stages,
        valid_metrics: evaluate_probs(&c.tasks, &c.probs, &c.targets),
        train_seconds: 3.0,
        seconds_to_best: 3.0,
        n_train: 400,
        n_valid: c.targets[0].len(),
        linear: None,
    };
    let summary = RunSummary {
        data: "data/<train>.jsonl".into(),
        validation: "20% held out".into(),
        bundle: Some("/tmp/model".into()),
        timings: vec![("embedding".into(), 1.25)],
        config_toml: "seed = 42\nmode = \"two_stage\" # <not markup>\n".into(),
    };
    render(&ReportInput {
        summary: &summary,
        report: &report,
        tasks: &c.tasks,
        probs: &c.probs,
        targets: &c.targets,
        breakdown,
    })
    .unwrap()
}

/// The `data-plot` names of the page's figures, each checked to hold one SVG with at least
/// its declared data marks.
fn figures(page: &str) -> Vec<String> {
    let attr = |part: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let rest = &part[part.find(&key).unwrap() + key.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let mut names = Vec::new();
    for part in page.split("<figure class=\"plot\" ").skip(1) {
        let name = attr(part, "data-plot");
        let body = &part[..part.find("</figure>").unwrap()];
        let svg_start = body
            .find("<svg")
            .unwrap_or_else(|| panic!("{name}: no svg"));
        let svg = &body[svg_start..body.find("</svg>").unwrap()];
        let mark = attr(part, "data-mark");
        let marks: usize = attr(part, "data-marks").parse().unwrap();
        let found = svg.matches(&format!("<{mark}")).count();
        assert!(
            marks > 0 && found >= marks,
            "{name}: {found} <{mark}> for {marks} marks"
        );
        names.push(name);
    }
    names
}

#[test]
fn multiclass_report_has_curves_confusion_bars_and_reliability() {
    let page = render_case(&case(TaskKind::Multiclass, 90), Mode::TwoStage, None);
    let names = figures(&page);
    assert_eq!(
        names,
        [
            "loss-stage1",
            "metric-stage1",
            "loss-stage2",
            "metric-stage2",
            "confusion-intent",
            "per-class-intent",
            "reliability-intent",
        ]
    );
    assert!(page.contains("macro-F1"));
}

#[test]
fn binary_report_adds_a_threshold_curve() {
    let names = figures(&render_case(
        &case(TaskKind::Binary, 80),
        Mode::EmbeddingOnly,
        None,
    ));
    assert_eq!(
        names,
        [
            "loss-heads",
            "metric-heads",
            "confusion-spam",
            "per-class-spam",
            "reliability-spam",
            "threshold-spam",
        ]
    );
}

#[test]
fn multilabel_report_has_per_label_bars_reliability_and_thresholds() {
    let page = render_case(&case(TaskKind::Multilabel, 60), Mode::EmbeddingOnly, None);
    let names = figures(&page);
    assert_eq!(
        names,
        [
            "loss-heads",
            "metric-heads",
            "per-label-topics",
            "reliability-topics",
            "threshold-topics",
        ]
    );
    assert!(page.contains("grain (threshold 0.50)") && page.contains("corn (threshold 0.40)"));
}

#[test]
fn regression_report_has_a_scatter_and_rmse_curves() {
    let page = render_case(&case(TaskKind::Regression, 70), Mode::EmbeddingOnly, None);
    assert_eq!(
        figures(&page),
        ["loss-heads", "metric-heads", "scatter-rating"]
    );
    assert!(page.contains("validation RMSE"));
}

#[test]
fn user_text_is_escaped_everywhere() {
    let c = case(TaskKind::Multiclass, 30);
    let keys: Vec<String> = (0..30)
        .map(|i| {
            if i % 2 == 0 {
                "<img src=x>".into()
            } else {
                "a\"b".into()
            }
        })
        .collect();
    let b = Breakdown {
        field: "<source>".into(),
        keys,
    };
    let page = render_case(&c, Mode::EmbeddingOnly, Some(&b));
    for raw in [
        "<b>book</b>",
        "<img src=x>",
        "<source>",
        "<train>",
        "<not markup>",
    ] {
        assert!(!page.contains(raw), "unescaped {raw}");
    }
    assert!(page.contains("&lt;b&gt;book&lt;/b&gt;"));
    assert!(page.contains("&lt;img src=x&gt;") && page.contains("a&quot;b"));
    assert!(page.contains("Validation metrics by &lt;source&gt;"));
}

#[test]
fn breakdown_rows_match_the_groups() {
    let c = case(TaskKind::Binary, 40);
    let keys: Vec<String> = (0..40)
        .map(|i| ["web", "app", "mail"][i % 3].to_string())
        .collect();
    let b = Breakdown {
        field: "source".into(),
        keys,
    };
    let page = render_case(&c, Mode::EmbeddingOnly, Some(&b));
    let table = &page[page.find("<table class=\"breakdown\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    // 40 rows over 3 sources: 14, 13, 13, largest first, then by name.
    assert!(table.contains("<td>web</td><td>14</td>"), "{table}");
    let app = table.find("<td>app</td><td>13</td>").unwrap();
    let mail = table.find("<td>mail</td><td>13</td>").unwrap();
    assert!(app < mail);
    assert!(table.contains("<th>macro_f1</th>"));
}

#[test]
fn page_is_self_contained_and_self_checking() {
    let page = render_case(&case(TaskKind::Binary, 50), Mode::TwoStage, None);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("Content-Security-Policy"));
    assert!(page.contains("id=\"report-check\""));
    for bad in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
        assert!(!page.contains(bad), "{bad}");
    }
    // The only URLs are SVG namespace identifiers, which are never fetched.
    let urls = page.matches("http://").count() + page.matches("https://").count();
    assert_eq!(urls, page.matches("http://www.w3.org/2000/svg").count());
}

#[test]
fn mismatched_inputs_are_errors() {
    let c = case(TaskKind::Binary, 10);
    let report = TrainReport {
        mode: Mode::EmbeddingOnly,
        stages: vec![stage("heads", 2, false)],
        valid_metrics: serde_json::json!({}),
        train_seconds: 0.0,
        seconds_to_best: 0.0,
        n_train: 1,
        n_valid: 10,
        linear: None,
    };
    let summary = RunSummary::default();
    let input = ReportInput {
        summary: &summary,
        report: &report,
        tasks: &c.tasks,
        probs: &c.probs,
        targets: &[],
        breakdown: None,
    };
    assert!(render(&input).is_err());
    let b = Breakdown {
        field: "f".into(),
        keys: vec!["x".into()],
    };
    let input = ReportInput {
        targets: &c.targets,
        breakdown: Some(&b),
        ..input
    };
    assert!(render(&input).is_err());
    // Without per-epoch metrics, no metric chart.
    let input = ReportInput {
        breakdown: None,
        ..input
    };
    assert_eq!(figures(&render(&input).unwrap()).len(), 5);
}

#[test]
fn axis_ranges_hold_every_point_outliers_included() {
    use plotters::style::RGBColor;
    // Epoch charts: a valid-loss outlier, an epoch past the history's length and a NaN (left
    // out) all stay on the chart; the best epoch's marker too.
    let mut s = stage("stage2", 4, true);
    s.best_epoch = 9;
    let ink = RGBColor(0, 0, 0);
    let series = [
        ("train", ink, vec![(1.0, 0.5), (2.0, 0.4), (7.0, 0.3)]),
        ("valid", ink, vec![(1.0, 0.6), (2.0, 40.0), (3.0, f64::NAN)]),
    ];
    let ((x0, x1), (y0, y1)) = plots::epoch_ranges(&series, &s);
    assert!(x0 <= 1.0 && x1 >= 10.0, "{x0}..{x1}");
    assert!((0.0..=0.3).contains(&y0) && y1 > 40.0, "{y0}..{y1}");
    assert!(y1.is_finite());
    // Negative values (a metric could be) are not cut at 0.
    let neg = [("r", ink, vec![(1.0, -2.0), (2.0, 1.0)])];
    assert!(plots::epoch_ranges(&neg, &s).1 .0 < -2.0);

    // Fixed [0, 1] axes grow to an outlier, and keep their extent otherwise.
    assert_eq!(plots::cover((0.0, 1.0), [0.2, 0.9, f64::NAN]), (0.0, 1.0));
    let (lo, hi) = plots::cover((0.0, 1.0), [-0.5, 1.5]);
    assert!(lo < -0.5 && hi > 1.5, "{lo}..{hi}");
    let curve = stats::ThresholdCurve {
        label: "x".into(),
        points: vec![(0.0, 0.5), (1.2, 1.3)],
        chosen: -0.1,
    };
    let ((tx0, tx1), (_, ty1)) = plots::threshold_ranges(std::slice::from_ref(&curve));
    assert!(tx0 < -0.1 && tx1 > 1.2 && ty1 > 1.3);
    let bins = stats::reliability(&[0.1, 0.5, 0.99], &[false, true, true], 10);
    let ((rx0, rx1), (ry0, ry1)) = plots::reliability_ranges(&bins);
    assert!(rx0 <= 0.0 && rx1 >= 1.0 && ry0 <= 0.0 && ry1 >= 1.0);

    // The scatter's shared axis holds the largest true and predicted values alike.
    let truth = [0.0, 1.0, 2.0];
    let pred = [0.5, 1.0, 100.0];
    let (lo, hi) = plots::scatter_range(&truth, &pred);
    assert!(lo < 0.0 && hi > 100.0);
    // And every chart still draws with its outlier.
    assert!(plots::scatter(&truth, &pred).is_ok());
    assert!(plots::threshold_f1(&[curve]).is_ok());
}
