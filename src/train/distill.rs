//! Distillation: a stronger model (a fine-tuned one, one on a larger backbone, or an ensemble
//! of bundles) teaches the heads. Its outputs on the training texts become soft targets
//! ([`Examples::soft`](super::Examples)), which each task's objective mixes with the labels
//! (`[distill] weight` and `temperature`, see [`Objective::with_teacher`](super::objective::Objective::with_teacher)).
//! Texts without labels take the teacher's decisions as their labels.

use ndarray::Array2;

use crate::data::{Targets, TaskKind, TaskSpec};
use crate::ensemble::Ensemble;
use crate::error::{Error, Result};
use crate::heads::TaskEntry;

/// The teacher bundles `config` names (`[distill] teachers`), each loaded on the backbone it
/// records (its own fine-tuned one, or a larger one) with `options` (threads, device, ONNX
/// Runtime library), averaged as an ensemble; None without teachers.
pub fn load_teachers(
    config: &crate::train::TrainConfig,
    options: &crate::BackboneOptions,
) -> Result<Option<Ensemble>> {
    if config.distill.teachers.is_empty() {
        return Ok(None);
    }
    let members = config
        .distill
        .teachers
        .iter()
        .map(|dir| crate::model::Model::open(dir, options.clone(), None))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Ensemble::new(members)?))
}

/// The teacher's outputs for `texts`, per task, as soft targets for a student of `tasks`: the
/// teacher must have the same tasks (names, kinds and labels, in order; an error names the
/// first difference).
pub fn teacher_outputs(
    teacher: &Ensemble,
    texts: &[&str],
    tasks: &[TaskSpec],
) -> Result<Vec<Array2<f32>>> {
    check_tasks(teacher.tasks(), tasks)?;
    teacher.predict_raw(texts)
}

/// Refuses a teacher whose tasks are not the student's.
pub fn check_tasks(teacher: &[TaskEntry], tasks: &[TaskSpec]) -> Result<()> {
    if teacher.len() != tasks.len() {
        return Err(Error::invalid(format!(
            "the teacher has {} tasks, the student {}: distillation needs the same tasks",
            teacher.len(),
            tasks.len()
        )));
    }
    for (t, s) in teacher.iter().zip(tasks) {
        if &t.spec != s {
            return Err(Error::invalid(format!(
                "the teacher's task `{}` ({}: {}) is not the student's `{}` ({}: {}): \
                 distillation needs the same tasks, kinds and labels, in the same order",
                t.spec.name,
                t.spec.kind.name(),
                t.spec.labels.join(", "),
                s.name,
                s.kind.name(),
                s.labels.join(", ")
            )));
        }
    }
    Ok(())
}

/// The teacher's decisions as targets, per task (for texts without labels): the most probable
/// class, the label or labels over the teacher's thresholds, the value.
pub fn teacher_targets(teacher: &[TaskEntry], outputs: &[Array2<f32>]) -> Vec<Targets> {
    teacher
        .iter()
        .zip(outputs)
        .map(|(task, out)| {
            let threshold = |j: usize| task.thresholds.get(j).copied().unwrap_or(0.5);
            match task.spec.kind {
                TaskKind::Multiclass => Targets::Class(
                    out.rows()
                        .into_iter()
                        .map(|r| crate::nn::special::argmax(r.iter()))
                        .collect(),
                ),
                TaskKind::Binary => Targets::Class(
                    out.column(0)
                        .iter()
                        .map(|&p| usize::from(p >= threshold(0)))
                        .collect(),
                ),
                TaskKind::Multilabel => Targets::MultiHot(
                    out.rows()
                        .into_iter()
                        .map(|r| {
                            r.iter()
                                .enumerate()
                                .map(|(j, &p)| if p >= threshold(j) { 1.0 } else { 0.0 })
                                .collect()
                        })
                        .collect(),
                ),
                TaskKind::Regression => Targets::Value(out.column(0).to_vec()),
            }
        })
        .collect()
}
