//! Early stopping on a validation metric, with restore-best.

use serde::{Deserialize, Serialize};

use super::metric::Mode;
use super::param::{Param, ParamSnapshot};
use crate::error::{Error, Result};

/// Settings of [`EarlyStopping`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// Consecutive evaluations without improvement after which training stops. Default 5.
    pub patience: usize,
    /// Absolute amount by which the metric must beat the best to count as an improvement.
    /// Default 0.
    pub min_delta: f32,
    /// Whether the metric is minimised (loss) or maximised (accuracy). Default min.
    pub mode: Mode,
    /// Whether to keep a copy of the parameters at the best evaluation so that
    /// [`EarlyStopping::restore_best`] can put them back. Default true.
    pub restore_best: bool,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            patience: 5,
            min_delta: 0.0,
            mode: Mode::Min,
            restore_best: true,
        }
    }
}

/// What [`EarlyStopping::update`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopDecision {
    /// New best; training continues.
    Improved,
    /// No improvement yet within patience; training continues.
    NoImprovement,
    /// Patience exhausted; training should stop.
    Stop,
}

/// Tracks the best validation metric and says when to stop (Keras-style: stop once `patience`
/// consecutive evaluations failed to improve by more than `min_delta`).
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    best: Option<f32>,
    best_eval: Option<usize>,
    evals: usize,
    bad_evals: usize,
    snapshot: Option<ParamSnapshot>,
}

impl EarlyStopping {
    /// A tracker that has seen nothing yet.
    pub fn new(config: EarlyStoppingConfig) -> Result<Self> {
        if !(config.min_delta.is_finite() && config.min_delta >= 0.0) {
            return Err(Error::invalid(format!(
                "early stopping min_delta must be non-negative, got {}",
                config.min_delta
            )));
        }
        Ok(EarlyStopping {
            config,
            best: None,
            best_eval: None,
            evals: 0,
            bad_evals: 0,
            snapshot: None,
        })
    }

    /// Records one evaluation of the metric for the model whose parameters are `params`
    /// (copied when the metric improves and `restore_best` is set). NaN never improves.
    pub fn update(&mut self, metric: f32, params: &[&Param]) -> EarlyStopDecision {
        let eval = self.evals;
        self.evals += 1;
        if self
            .config
            .mode
            .improves(metric, self.best, self.config.min_delta)
        {
            self.best = Some(metric);
            self.best_eval = Some(eval);
            self.bad_evals = 0;
            if self.config.restore_best {
                self.snapshot = Some(ParamSnapshot::capture(params.iter().copied()));
            }
            return EarlyStopDecision::Improved;
        }
        self.bad_evals += 1;
        if self.should_stop() {
            EarlyStopDecision::Stop
        } else {
            EarlyStopDecision::NoImprovement
        }
    }

    /// Whether patience is exhausted.
    pub fn should_stop(&self) -> bool {
        self.bad_evals > 0 && self.bad_evals >= self.config.patience
    }

    /// The best metric seen.
    pub fn best(&self) -> Option<f32> {
        self.best
    }

    /// 0-based index of the evaluation that gave the best metric.
    pub fn best_eval(&self) -> Option<usize> {
        self.best_eval
    }

    /// Consecutive evaluations without improvement.
    pub fn bad_evals(&self) -> usize {
        self.bad_evals
    }

    /// The stored best parameters, if any.
    pub fn snapshot(&self) -> Option<&ParamSnapshot> {
        self.snapshot.as_ref()
    }

    /// Writes the best parameters back (by name). Returns false when there is nothing to
    /// restore (`restore_best` off or no improvement seen).
    pub fn restore_best(&self, params: &mut [&mut Param]) -> Result<bool> {
        match &self.snapshot {
            Some(s) => s.restore(params).map(|()| true),
            None => Ok(false),
        }
    }
}
