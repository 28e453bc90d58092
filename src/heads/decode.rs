//! From the heads' raw outputs to what a caller reads: probabilities (softmax, sigmoid) or
//! de-standardized values per task, then labels by argmax or tuned threshold, and group votes.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::architecture::Architecture;
use crate::data::{TaskKind, TaskSpec};
use crate::nn::loss::{sigmoid_probs, softmax};
use crate::nn::special::argmax;

/// One task as stored in a bundle and decoded at prediction time: spec, and the decision
/// thresholds of its sigmoid outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    /// Name, kind and labels.
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// Decision threshold per output (binary: one; multi-label: one per label; else empty).
    pub thresholds: Vec<f32>,
}

/// One task's prediction for one text (or one group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskPrediction {
    /// Task name.
    pub task: String,
    /// Predicted labels: one for multiclass/binary, any number for multi-label, none for
    /// regression.
    pub labels: Vec<String>,
    /// Probability per label (softmax for multiclass; sigmoid per label for binary, where it is
    /// `[1 - p, p]`, and multi-label); empty for regression.
    pub probabilities: Vec<f32>,
    /// The predicted value (regression only).
    pub value: Option<f32>,
    /// With Monte-Carlo dropout only: the standard deviation over the passes of each
    /// probability (in `probabilities`' order, binary `[1 - p, p]` alike) or of the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Vec<f32>>,
}

impl TaskPrediction {
    /// A prediction for `task` with nothing predicted yet.
    fn empty(task: &str) -> Self {
        TaskPrediction {
            task: task.to_string(),
            labels: vec![],
            probabilities: vec![],
            value: None,
            spread: None,
        }
    }
}

/// One group's key and its per-task predictions.
pub type GroupPrediction = (String, Vec<TaskPrediction>);

/// Converts raw head outputs into probabilities (or de-standardized values) per task.
pub fn probabilities(
    tasks: &[TaskEntry],
    arch: &Architecture,
    raw: &[Array2<f32>],
) -> Vec<Array2<f32>> {
    tasks
        .iter()
        .zip(raw)
        .enumerate()
        .map(|(t, (task, z))| match task.spec.kind {
            TaskKind::Multiclass => softmax(z.view()),
            TaskKind::Binary | TaskKind::Multilabel => sigmoid_probs(z.view()),
            TaskKind::Regression => {
                let (mean, std) = arch.target_scale.get(t).copied().unwrap_or((0.0, 1.0));
                z.mapv(|v| v * std + mean)
            }
        })
        .collect()
}

/// Decodes one row of probabilities (or a value) into a [`TaskPrediction`].
pub fn decode(task: &TaskEntry, row: &[f32]) -> TaskPrediction {
    let labels = &task.spec.labels;
    let mut out = TaskPrediction::empty(&task.spec.name);
    match task.spec.kind {
        TaskKind::Multiclass => {
            let best = argmax(row);
            out.labels.push(labels[best].clone());
            out.probabilities = row.to_vec();
        }
        TaskKind::Binary => {
            let p = row[0];
            let th = task.thresholds.first().copied().unwrap_or(0.5);
            out.labels.push(labels[usize::from(p >= th)].clone());
            out.probabilities = vec![1.0 - p, p];
        }
        TaskKind::Multilabel => {
            for (j, &p) in row.iter().enumerate() {
                if p >= task.thresholds.get(j).copied().unwrap_or(0.5) {
                    out.labels.push(labels[j].clone());
                }
            }
            out.probabilities = row.to_vec();
        }
        TaskKind::Regression => out.value = row.first().copied(),
    }
    out
}

/// Decodes a group's vote shares of a binary or multi-label head ([`crate::eval::vote_shares`]): a label is
/// predicted when more than half of the group's texts voted for it (a tie is no majority), and
/// the probabilities are the shares (binary: `[1 - share, share]`).
pub fn decode_votes(task: &TaskEntry, shares: &[f32]) -> TaskPrediction {
    let majority = |s: f32| s > 0.5;
    let labels = &task.spec.labels;
    let mut out = TaskPrediction::empty(&task.spec.name);
    if task.spec.kind == TaskKind::Binary {
        let s = shares.first().copied().unwrap_or(0.0);
        out.labels.push(labels[usize::from(majority(s))].clone());
        out.probabilities = vec![1.0 - s, s];
    } else {
        for (l, &s) in labels.iter().zip(shares) {
            if majority(s) {
                out.labels.push(l.clone());
            }
        }
        out.probabilities = shares.to_vec();
    }
    out
}
