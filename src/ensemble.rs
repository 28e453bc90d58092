//! Ensembles: several bundles with the same tasks predicting together, each task's
//! probabilities (or values) averaged over the members and decided as one model's would be.
//!
//! Members on one backbone (the same loaded [`Backbone`](crate::Backbone)) share its run: the
//! texts are embedded once, and every member's heads read the same embeddings. A member with a
//! backbone of its own (fine-tuned layers) runs it for itself.

use std::sync::Arc;

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::eval::Aggregation;
use crate::heads::{decode, GroupPrediction, Heads, TaskEntry, TaskPrediction};
use crate::model::{group_predictions, run_heads, Model, Needs};

/// Several models predicting together.
pub struct Ensemble {
    members: Vec<Model>,
    /// The members' tasks, with each binary and multi-label threshold the mean of the
    /// members' tuned ones.
    tasks: Vec<TaskEntry>,
}

impl Ensemble {
    /// An ensemble of `members`, which must have the same tasks: the same names, kinds and
    /// labels in the same order (an error names the first difference).
    pub fn new(members: Vec<Model>) -> Result<Ensemble> {
        let first = members
            .first()
            .ok_or_else(|| Error::invalid("an ensemble needs at least one model"))?;
        let mut tasks = first.heads().tasks.clone();
        for (k, m) in members.iter().enumerate().skip(1) {
            let other = &m.heads().tasks;
            let same = other.len() == tasks.len()
                && other.iter().zip(&tasks).all(|(a, b)| a.spec == b.spec);
            if !same {
                let describe = |t: &[TaskEntry]| {
                    t.iter()
                        .map(|e| {
                            format!(
                                "{} ({}: {})",
                                e.spec.name,
                                e.spec.kind.name(),
                                e.spec.labels.join(", ")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(Error::invalid(format!(
                    "ensemble member {} has other tasks than the first: {} against {}",
                    k + 1,
                    describe(other),
                    describe(&tasks)
                )));
            }
        }
        let n = members.len() as f32;
        for (t, task) in tasks.iter_mut().enumerate() {
            for (j, th) in task.thresholds.iter_mut().enumerate() {
                *th = members
                    .iter()
                    .map(|m| m.heads().tasks[t].thresholds.get(j).copied().unwrap_or(0.5))
                    .sum::<f32>()
                    / n;
            }
        }
        Ok(Ensemble { members, tasks })
    }

    /// The tasks, with the mean thresholds the ensemble decides with.
    pub fn tasks(&self) -> &[TaskEntry] {
        &self.tasks
    }

    /// The members.
    pub fn members(&self) -> &[Model] {
        &self.members
    }

    /// Each task's probabilities (or values) for `texts`, averaged over the members.
    pub fn predict_raw(&self, texts: &[&str]) -> Result<Vec<Array2<f32>>> {
        let heads: Vec<Arc<Heads>> = self.members.iter().map(Model::heads).collect();
        let mut sum: Option<Vec<Array2<f32>>> = None;
        // Members on one loaded backbone share its run.
        let mut done = vec![false; self.members.len()];
        for i in 0..self.members.len() {
            if done[i] {
                continue;
            }
            let group: Vec<usize> = (i..self.members.len())
                .filter(|&j| {
                    !done[j] && Arc::ptr_eq(self.members[j].backbone(), self.members[i].backbone())
                })
                .collect();
            let needs = group
                .iter()
                .fold(Needs::default(), |n, &j| n.or(Needs::of(&heads[j])));
            let inputs = self.members[i].inputs(texts, &needs)?;
            for &j in &group {
                done[j] = true;
                let out = run_heads(&heads[j], &inputs)?;
                match &mut sum {
                    None => sum = Some(out),
                    Some(s) => {
                        for (a, b) in s.iter_mut().zip(&out) {
                            *a += b;
                        }
                    }
                }
            }
        }
        let n = self.members.len() as f32;
        Ok(sum.unwrap_or_default().into_iter().map(|a| a / n).collect())
    }

    /// Each task's prediction for every text, from the averaged outputs.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Vec<TaskPrediction>>> {
        let probs = self.predict_raw(texts)?;
        Ok((0..texts.len())
            .map(|i| {
                self.tasks
                    .iter()
                    .zip(&probs)
                    .map(|(task, p)| decode(task, p.row(i).as_slice().unwrap_or(&[])))
                    .collect()
            })
            .collect())
    }

    /// One prediction per group, the averaged outputs combined by `how` as
    /// [`Model::predict_groups`] combines one model's. Groups in sorted key order.
    pub fn predict_groups(
        &self,
        texts: &[&str],
        groups: &[String],
        how: Aggregation,
    ) -> Result<Vec<GroupPrediction>> {
        if texts.len() != groups.len() {
            return Err(Error::invalid(format!(
                "{} texts but {} group keys",
                texts.len(),
                groups.len()
            )));
        }
        let probs = self.predict_raw(texts)?;
        group_predictions(&self.tasks, &probs, groups, how)
    }
}
