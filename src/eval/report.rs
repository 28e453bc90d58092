//! Metrics of heads on labelled arrays, as the JSON `tandem eval` prints: per task under
//! `tasks`, and the first task's numbers at the top level.

use ndarray::{Array2, ArrayView2};
use serde_json::{json, Value};

use super::{classification_metrics, multilabel_metrics, regression_metrics};
use crate::backbone::TokenSeqs;
use crate::data::{Targets, TaskKind};
use crate::error::{Error, Result};
use crate::heads::{predict_arrays, Heads, TaskEntry};
use crate::nn::special::argmax;

/// Metrics of every task on given arrays (features already normalized), as JSON: per task
/// under `tasks`, and the first task's top-level numbers (`accuracy`, `macro_f1`, `micro_f1`;
/// or `mae`, `rmse`, `pearson`) at the top level.
/// `tokens` (the texts' per-token vectors) is needed by sequence heads.
pub fn evaluate_arrays(
    heads: &Heads,
    emb: ArrayView2<'_, f32>,
    feats: ArrayView2<'_, f32>,
    tokens: Option<&TokenSeqs>,
    targets: &[Targets],
) -> Result<Value> {
    // Metrics of nothing would read as accuracy 0.
    if targets.first().is_none_or(|t| t.is_empty()) {
        return Err(Error::invalid("nothing to evaluate: no labelled examples"));
    }
    Ok(evaluate_probs(
        &heads.tasks,
        &predict_arrays(heads, emb, feats, tokens)?,
        targets,
    ))
}

/// [`evaluate_arrays`] from predictions already made: probabilities (or values) per task, as
/// [`predict_arrays`] returns them.
pub fn evaluate_probs(tasks: &[TaskEntry], probs: &[Array2<f32>], targets: &[Targets]) -> Value {
    let mut per_task = serde_json::Map::new();
    for ((task, p), t) in tasks.iter().zip(probs).zip(targets) {
        per_task.insert(task.spec.name.clone(), task_metrics(task, p, t));
    }
    // The first task in head (declared) order, not the alphabetically first key.
    let mut top = tasks
        .first()
        .and_then(|t| per_task.get(&t.spec.name))
        .cloned()
        .unwrap_or(json!({}));
    if let Value::Object(m) = &mut top {
        m.insert("tasks".into(), Value::Object(per_task));
    }
    top
}

fn task_metrics(task: &TaskEntry, p: &Array2<f32>, t: &Targets) -> Value {
    let labels = &task.spec.labels;
    match (task.spec.kind, t) {
        (TaskKind::Multiclass, Targets::Class(c)) => {
            let pred: Vec<usize> = p.rows().into_iter().map(|r| argmax(r.iter())).collect();
            serde_json::to_value(classification_metrics(labels, c, &pred, None)).unwrap_or_default()
        }
        (TaskKind::Binary, Targets::Class(c)) => {
            let th = task.thresholds.first().copied().unwrap_or(0.5);
            let scores: Vec<f32> = p.column(0).to_vec();
            let pred: Vec<usize> = scores.iter().map(|&s| usize::from(s >= th)).collect();
            let mut v =
                serde_json::to_value(classification_metrics(labels, c, &pred, Some(&scores)))
                    .unwrap_or_default();
            v["threshold"] = json!(th);
            v
        }
        (TaskKind::Multilabel, Targets::MultiHot(rows)) => {
            let scores: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
            let pred: Vec<Vec<f32>> = scores
                .iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(j, &s)| {
                            f32::from(u8::from(
                                s >= task.thresholds.get(j).copied().unwrap_or(0.5),
                            ))
                        })
                        .collect()
                })
                .collect();
            let mut v = serde_json::to_value(multilabel_metrics(labels, rows, &pred, &scores))
                .unwrap_or_default();
            v["thresholds"] = json!(task.thresholds);
            v
        }
        (TaskKind::Regression, Targets::Value(y)) => {
            let pred: Vec<f32> = p.column(0).to_vec();
            serde_json::to_value(regression_metrics(y, &pred)).unwrap_or_default()
        }
        _ => json!({"error": "targets do not match the task kind"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TaskSpec;
    use crate::heads::{Architecture, Network};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn evaluating_nothing_is_an_error_not_accuracy_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let arch = Architecture::embedding_only(4, vec![2]);
        let heads = Heads {
            network: Network::new(arch, &mut rng).unwrap(),
            normalizer: None,
            tasks: vec![TaskEntry {
                spec: TaskSpec {
                    name: "y".into(),
                    kind: TaskKind::Multiclass,
                    labels: vec!["a".into(), "b".into()],
                },
                thresholds: vec![],
            }],
            version: 0,
            onnx: None,
        };
        let e = evaluate_arrays(
            &heads,
            Array2::zeros((0, 4)).view(),
            Array2::zeros((0, 0)).view(),
            None,
            &[Targets::Class(vec![])],
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let ok = evaluate_arrays(
            &heads,
            Array2::zeros((2, 4)).view(),
            Array2::zeros((2, 0)).view(),
            None,
            &[Targets::Class(vec![0, 1])],
        )
        .unwrap();
        assert_eq!(ok["n"], json!(2));
    }
}
