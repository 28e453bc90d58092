//! Combining the losses of several tasks: learned uncertainty weighting and fixed weights.

use ndarray::{arr1, ArrayD};

use super::param::{join_name, Param};
use crate::error::{Error, Result};

/// The result of combining task losses.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCombination {
    /// The combined objective.
    pub total: f32,
    /// ∂total/∂Lₜ per task: multiply task t's loss gradient (e.g. the `grad` returned by a
    /// [`crate::nn::loss`] function) by this before backpropagating it.
    pub scales: Vec<f32>,
}

/// Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018) with one learnable
/// log-variance sₜ = log σₜ² per task:
///
/// total = Σₜ exp(−sₜ)·Lₜ + sₜ
///
/// This is the simplified form used by most implementations for classification and regression
/// alike (the paper's regression term is ½exp(−sₜ)Lₜ + ½sₜ, i.e. the same objective up to a
/// factor ½ and a reparameterisation, and its classification term is approximated by this
/// form). Minimising over sₜ alone gives sₜ = log Lₜ, so each task settles at weight ≈ 1/Lₜ.
///
/// Parameters: `{prefix}.{task}`, each of shape `[1]`, initialised to `init_log_var` (0 means
/// weight 1). [`UncertaintyWeights::combine`] accumulates ∂total/∂sₜ = 1 − exp(−sₜ)·Lₜ into
/// their gradients, so the usual optimizer step trains them with the rest of the model.
#[derive(Debug, Clone)]
pub struct UncertaintyWeights {
    tasks: Vec<String>,
    log_vars: Vec<Param>,
}

impl UncertaintyWeights {
    /// One log-variance per task name (names must be unique and non-empty).
    pub fn new(prefix: &str, tasks: &[&str], init_log_var: f32) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            if t.is_empty() || !seen.insert(*t) {
                return Err(Error::invalid(format!(
                    "task names must be unique and non-empty: {tasks:?}"
                )));
            }
        }
        Ok(UncertaintyWeights {
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            log_vars: tasks
                .iter()
                .map(|t| Param::new(join_name(prefix, t), arr1(&[init_log_var]).into_dyn()))
                .collect(),
        })
    }

    /// Task names, in order.
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }

    /// Current sₜ.
    pub fn log_vars(&self) -> Vec<f32> {
        self.log_vars.iter().map(|p| p.value[[0]]).collect()
    }

    /// Current task weights exp(−sₜ).
    pub fn weights(&self) -> Vec<f32> {
        self.log_vars
            .iter()
            .map(|p| (-p.value[[0]]).exp())
            .collect()
    }

    /// The per-task gradient scales exp(−sₜ) exactly as [`UncertaintyWeights::combine`]
    /// returns them (computed in f64), without touching the gradients.
    pub fn scales(&self) -> Vec<f32> {
        self.log_vars
            .iter()
            .map(|p| (-(p.value[[0]] as f64)).exp() as f32)
            .collect()
    }

    /// Computes the total from per-task losses (same order as the tasks), accumulates
    /// ∂total/∂sₜ into the log-variance gradients (if trainable), and returns the per-task
    /// gradient scales exp(−sₜ).
    pub fn combine(&mut self, losses: &[f32]) -> Result<TaskCombination> {
        if losses.len() != self.tasks.len() {
            return Err(Error::invalid(format!(
                "{} losses for {} tasks",
                losses.len(),
                self.tasks.len()
            )));
        }
        let mut total = 0.0f64;
        let mut scales = Vec::with_capacity(losses.len());
        for (p, &l) in self.log_vars.iter_mut().zip(losses) {
            let s = p.value[[0]] as f64;
            let w = (-s).exp();
            total += w * l as f64 + s;
            scales.push(w as f32);
            if p.trainable {
                p.grad[[0]] += (1.0 - w * l as f64) as f32;
            }
        }
        Ok(TaskCombination {
            total: total as f32,
            scales,
        })
    }

    /// The log-variance parameters.
    pub fn params(&self) -> Vec<&Param> {
        self.log_vars.iter().collect()
    }

    /// The log-variance parameters, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.log_vars.iter_mut().collect()
    }

    /// Sets all sₜ (e.g. when loading a model); `values` must have one entry per task.
    pub fn set_log_vars(&mut self, values: &[f32]) -> Result<()> {
        if values.len() != self.log_vars.len() {
            return Err(Error::invalid("one log-variance per task expected"));
        }
        for (p, &v) in self.log_vars.iter_mut().zip(values) {
            p.value = ArrayD::from_elem(p.value.raw_dim(), v);
        }
        Ok(())
    }
}

/// Fixed task weights: total = Σₜ wₜ·Lₜ, scales = wₜ.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedWeights {
    weights: Vec<f32>,
}

impl FixedWeights {
    /// Finite, non-negative weights, one per task.
    pub fn new(weights: Vec<f32>) -> Result<Self> {
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::invalid(format!(
                "task weights must be finite and non-negative: {weights:?}"
            )));
        }
        Ok(FixedWeights { weights })
    }

    /// Equal weights of 1 for `n` tasks.
    pub fn uniform(n: usize) -> Self {
        FixedWeights {
            weights: vec![1.0; n],
        }
    }

    /// The weights.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Combines per-task losses.
    pub fn combine(&self, losses: &[f32]) -> Result<TaskCombination> {
        if losses.len() != self.weights.len() {
            return Err(Error::invalid(format!(
                "{} losses for {} tasks",
                losses.len(),
                self.weights.len()
            )));
        }
        let total = losses
            .iter()
            .zip(&self.weights)
            .map(|(&l, &w)| l as f64 * w as f64)
            .sum::<f64>();
        Ok(TaskCombination {
            total: total as f32,
            scales: self.weights.clone(),
        })
    }
}
