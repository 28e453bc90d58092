//! Error analysis: the examples a model gets wrong, with what each cost, worst first.

use ndarray::Array2;
use serde::Serialize;
use serde_json::{json, Value};

use crate::data::{Targets, TaskKind};
use crate::heads::TaskEntry;
use crate::nn::special::argmax;

/// Probabilities are clamped this far from 0 and 1 before a log, so a confident mistake costs
/// a large but finite loss (as the training losses clamp).
const EPS: f64 = 1e-7;

/// One example of one task the model got wrong (for regression: missed), with its cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCase {
    /// The example's row (0-based, in the order given).
    pub index: usize,
    /// The task's name.
    pub task: String,
    /// The true label (multiclass, binary), label set (multi-label) or value (regression).
    pub truth: Value,
    /// What the model decided, in the same form.
    pub predicted: Value,
    /// The probability the model gave its decision: of the predicted class (multiclass,
    /// binary), the mean over labels of the probability of each label's decision
    /// (multi-label); none for regression.
    pub confidence: Option<f64>,
    /// The example's loss: cross-entropy of the true class (multiclass), binary cross-entropy
    /// (binary; per label, averaged, for multi-label), squared error (regression).
    pub loss: f64,
}

/// The examples each task gets wrong, worst (highest loss) first within each task, tasks in
/// head order: misclassified rows of classification tasks (decisions made as prediction makes
/// them: argmax, or the tuned thresholds), and for regression every row, since every value
/// misses by something. `probs` are the heads' outputs per task, as
/// [`crate::eval::evaluate_probs`] takes them.
pub fn error_cases(
    tasks: &[TaskEntry],
    probs: &[Array2<f32>],
    targets: &[Targets],
) -> Vec<ErrorCase> {
    let mut out = Vec::new();
    for ((task, p), t) in tasks.iter().zip(probs).zip(targets) {
        let labels = &task.spec.labels;
        let name = |i: usize| json!(labels.get(i).map_or("?", String::as_str));
        let threshold = |j: usize| f64::from(task.thresholds.get(j).copied().unwrap_or(0.5));
        let mut cases: Vec<ErrorCase> = match (task.spec.kind, t) {
            (TaskKind::Multiclass, Targets::Class(c)) => c
                .iter()
                .enumerate()
                .filter_map(|(i, &truth)| {
                    let row = p.row(i);
                    let pred = argmax(row.iter());
                    (pred != truth).then(|| ErrorCase {
                        index: i,
                        task: task.spec.name.clone(),
                        truth: name(truth),
                        predicted: name(pred),
                        confidence: Some(f64::from(row[pred])),
                        loss: -f64::from(row[truth]).clamp(EPS, 1.0).ln(),
                    })
                })
                .collect(),
            (TaskKind::Binary, Targets::Class(c)) => c
                .iter()
                .enumerate()
                .filter_map(|(i, &truth)| {
                    let s = f64::from(p[[i, 0]]);
                    let pred = usize::from(s >= threshold(0));
                    (pred != truth).then(|| ErrorCase {
                        index: i,
                        task: task.spec.name.clone(),
                        truth: name(truth),
                        predicted: name(pred),
                        confidence: Some(if pred == 1 { s } else { 1.0 - s }),
                        loss: bce(s, truth == 1),
                    })
                })
                .collect(),
            (TaskKind::Multilabel, Targets::MultiHot(rows)) => rows
                .iter()
                .enumerate()
                .filter_map(|(i, truth)| {
                    let scores: Vec<f64> = p.row(i).iter().map(|&s| f64::from(s)).collect();
                    let pred: Vec<bool> = scores
                        .iter()
                        .enumerate()
                        .map(|(j, &s)| s >= threshold(j))
                        .collect();
                    let want: Vec<bool> = truth.iter().map(|&v| v >= 0.5).collect();
                    let set = |on: &[bool]| {
                        json!(on
                            .iter()
                            .enumerate()
                            .filter(|(_, &b)| b)
                            .map(|(j, _)| name(j))
                            .collect::<Vec<_>>())
                    };
                    let n = scores.len().max(1) as f64;
                    (pred != want).then(|| ErrorCase {
                        index: i,
                        task: task.spec.name.clone(),
                        truth: set(&want),
                        predicted: set(&pred),
                        confidence: Some(
                            scores
                                .iter()
                                .zip(&pred)
                                .map(|(&s, &on)| if on { s } else { 1.0 - s })
                                .sum::<f64>()
                                / n,
                        ),
                        loss: scores
                            .iter()
                            .zip(&want)
                            .map(|(&s, &y)| bce(s, y))
                            .sum::<f64>()
                            / n,
                    })
                })
                .collect(),
            (TaskKind::Regression, Targets::Value(y)) => y
                .iter()
                .enumerate()
                .map(|(i, &truth)| {
                    let pred = f64::from(p[[i, 0]]);
                    ErrorCase {
                        index: i,
                        task: task.spec.name.clone(),
                        truth: json!(truth),
                        predicted: json!(pred),
                        confidence: None,
                        loss: (pred - f64::from(truth)).powi(2),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        // Worst first; the earlier row on a tie, so the order is the same on every run.
        cases.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.index.cmp(&b.index)));
        out.extend(cases);
    }
    out
}

/// Binary cross-entropy of probability `p` for a target `y`.
fn bce(p: f64, y: bool) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    -(if y { p.ln() } else { (1.0 - p).ln() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TaskSpec;
    use ndarray::array;

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

    #[test]
    fn multiclass_mistakes_come_worst_first_with_their_cross_entropy() {
        let tasks = [entry(
            "topic",
            TaskKind::Multiclass,
            &["a", "b", "c"],
            vec![],
        )];
        let p = array![
            [0.7, 0.2, 0.1],
            [0.1, 0.3, 0.6],
            [0.2, 0.5, 0.3],
            [0.05, 0.9, 0.05]
        ];
        let cases = error_cases(&tasks, &[p], &[Targets::Class(vec![0, 2, 0, 0])]);
        // Row 0 and row 1 are right; rows 3 (p_true 0.05) and 2 (p_true 0.2) are wrong.
        assert_eq!(cases.iter().map(|c| c.index).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(
            (&cases[0].truth, &cases[0].predicted),
            (&json!("a"), &json!("b"))
        );
        assert!((cases[0].loss - -(0.05f64.ln())).abs() < 1e-6);
        assert!((cases[1].loss - -(0.2f64.ln())).abs() < 1e-6);
        assert!((cases[0].confidence.unwrap() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn binary_decisions_use_the_tuned_threshold() {
        let tasks = [entry("spam", TaskKind::Binary, &["ham", "spam"], vec![0.3])];
        // 0.35 is spam at threshold 0.3 (right for row 0), 0.25 is ham (wrong for row 1).
        let p = array![[0.35], [0.25], [0.9]];
        let cases = error_cases(&tasks, &[p], &[Targets::Class(vec![1, 1, 0])]);
        assert_eq!(cases.iter().map(|c| c.index).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(cases[0].predicted, json!("spam"));
        assert!((cases[0].loss - -(0.1f64.ln())).abs() < 1e-6);
        assert!((cases[1].confidence.unwrap() - 0.75).abs() < 1e-6);
    }

    #[test]
    fn multilabel_rows_are_wrong_when_any_label_is() {
        let tasks = [entry(
            "tags",
            TaskKind::Multilabel,
            &["x", "y"],
            vec![0.5, 0.5],
        )];
        let p = array![[0.9, 0.1], [0.9, 0.6], [0.2, 0.2]];
        let t = Targets::MultiHot(vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]]);
        let cases = error_cases(&tasks, &[p], &[t]);
        assert_eq!(cases.iter().map(|c| c.index).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(cases[1].predicted, json!(["x", "y"]));
        assert_eq!(cases[1].truth, json!(["x"]));
        let want = (-(0.9f64.ln()) - (0.4f64.ln())) / 2.0;
        assert!((cases[1].loss - want).abs() < 1e-6);
    }

    #[test]
    fn regression_rows_come_by_squared_error() {
        let tasks = [entry("score", TaskKind::Regression, &[], vec![])];
        let p = array![[1.0], [3.0], [0.0]];
        let cases = error_cases(&tasks, &[p], &[Targets::Value(vec![1.5, 1.0, 0.0])]);
        assert_eq!(cases.iter().map(|c| c.index).collect::<Vec<_>>(), [1, 0, 2]);
        assert!((cases[0].loss - 4.0).abs() < 1e-9);
        assert_eq!(cases[0].confidence, None);
    }
}
