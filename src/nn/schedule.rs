//! Learning-rate schedules: constant, linear warmup + cosine decay, and reduce-on-plateau.

use serde::{Deserialize, Serialize};

use super::metric::Mode;
use crate::error::{Error, Result};

/// A learning-rate schedule, serialisable as e.g.
/// `{"kind":"cosine_with_warmup","warmup_steps":100,"total_steps":2000,"min_lr_ratio":0.05}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Linear warmup then cosine decay to `min_lr_ratio · base`, by optimizer step:
    /// for step s (0-based) < warmup: base·(s+1)/warmup; then with
    /// progress = min(1, (s − warmup)/(total − warmup)):
    /// base·(r + (1−r)·½(1 + cos(π·progress))). So the rate is the full base at s = warmup − 1
    /// and s = warmup, (1+r)/2·base halfway through the decay, and r·base from `total_steps` on.
    CosineWithWarmup {
        /// Steps of linear warmup (0 for none).
        warmup_steps: usize,
        /// Step at which the decay reaches its floor (usually epochs × batches per epoch).
        total_steps: usize,
        /// Floor as a fraction r of the base rate, in [0, 1].
        min_lr_ratio: f32,
    },
    /// Multiply the rate by `factor` when the monitored metric has not improved for more than
    /// `patience` consecutive evaluations (PyTorch's `ReduceLROnPlateau`, relative threshold,
    /// no cooldown), never going below `min_lr`.
    ReduceOnPlateau {
        /// Multiplier in (0, 1).
        factor: f32,
        /// Evaluations without improvement tolerated; the rate drops on the next one.
        patience: usize,
        /// Lower bound of the rate.
        min_lr: f32,
        /// Relative improvement needed: in `min` mode a value improves on `best` when it is
        /// below best − threshold·|best| (above best + threshold·|best| in `max` mode).
        threshold: f32,
        /// Whether the metric is minimised or maximised.
        mode: Mode,
    },
}

/// The multiplier of [`Schedule::CosineWithWarmup`] at a 0-based optimizer step.
pub fn cosine_with_warmup_factor(
    step: usize,
    warmup_steps: usize,
    total_steps: usize,
    min_lr_ratio: f32,
) -> f32 {
    if step < warmup_steps {
        return (step + 1) as f32 / warmup_steps as f32;
    }
    let span = total_steps.saturating_sub(warmup_steps).max(1);
    let progress = ((step - warmup_steps) as f64 / span as f64).min(1.0);
    let r = min_lr_ratio as f64;
    (r + (1.0 - r) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
}

/// Drives a [`Schedule`]: ask [`LrScheduler::lr`] before each optimizer step and pass it to
/// the optimizer, call [`LrScheduler::step`] after it, and call [`LrScheduler::on_metric`] after
/// each validation (only `ReduceOnPlateau` reacts to it).
#[derive(Debug, Clone)]
pub struct LrScheduler {
    schedule: Schedule,
    base_lr: f32,
    step: usize,
    /// Current rate for ReduceOnPlateau.
    plateau_lr: f32,
    best: Option<f32>,
    bad_evals: usize,
}

impl LrScheduler {
    /// A scheduler starting at step 0.
    pub fn new(schedule: Schedule, base_lr: f32) -> Result<Self> {
        let bad = |m: &str| Err(Error::invalid(format!("invalid schedule: {m}")));
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return bad("base learning rate must be finite and non-negative");
        }
        match &schedule {
            Schedule::Constant => {}
            Schedule::CosineWithWarmup {
                min_lr_ratio,
                warmup_steps,
                total_steps,
            } => {
                if !(0.0..=1.0).contains(min_lr_ratio) {
                    return bad("min_lr_ratio must be in [0, 1]");
                }
                if warmup_steps > total_steps {
                    return bad("warmup_steps exceeds total_steps");
                }
            }
            Schedule::ReduceOnPlateau {
                factor,
                min_lr,
                threshold,
                ..
            } => {
                if !(*factor > 0.0 && *factor < 1.0) {
                    return bad("factor must be in (0, 1)");
                }
                if !(min_lr.is_finite() && *min_lr >= 0.0) {
                    return bad("min_lr must be non-negative");
                }
                if !(threshold.is_finite() && *threshold >= 0.0) {
                    return bad("threshold must be non-negative");
                }
            }
        }
        Ok(LrScheduler {
            schedule,
            base_lr,
            step: 0,
            plateau_lr: base_lr,
            best: None,
            bad_evals: 0,
        })
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Number of optimizer steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The learning rate for the next optimizer step.
    pub fn lr(&self) -> f32 {
        match &self.schedule {
            Schedule::Constant => self.base_lr,
            Schedule::CosineWithWarmup {
                warmup_steps,
                total_steps,
                min_lr_ratio,
            } => {
                self.base_lr
                    * cosine_with_warmup_factor(
                        self.step,
                        *warmup_steps,
                        *total_steps,
                        *min_lr_ratio,
                    )
            }
            Schedule::ReduceOnPlateau { .. } => self.plateau_lr,
        }
    }

    /// Records that one optimizer step was taken.
    pub fn step(&mut self) {
        self.step += 1;
    }

    /// Feeds a validation metric. For `ReduceOnPlateau`, returns true when this call reduced
    /// the rate; other schedules ignore it and return false. NaN counts as no improvement.
    pub fn on_metric(&mut self, metric: f32) -> bool {
        let Schedule::ReduceOnPlateau {
            factor,
            patience,
            min_lr,
            threshold,
            mode,
        } = self.schedule
        else {
            return false;
        };
        let margin = self.best.map_or(0.0, |b| threshold * b.abs());
        if mode.improves(metric, self.best, margin) {
            self.best = Some(metric);
            self.bad_evals = 0;
            return false;
        }
        self.bad_evals += 1;
        if self.bad_evals > patience {
            self.bad_evals = 0;
            let new = (self.plateau_lr * factor).max(min_lr);
            if new < self.plateau_lr {
                self.plateau_lr = new;
                return true;
            }
        }
        false
    }
}
