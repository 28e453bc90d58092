//! Whether a validation metric is to be minimised or maximised.

use serde::{Deserialize, Serialize};

/// Direction of a monitored metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Lower is better (losses).
    #[default]
    Min,
    /// Higher is better (accuracy, F1).
    Max,
}

impl Mode {
    /// Whether `value` beats `best` by more than `margin` (an absolute amount ≥ 0). A `None`
    /// best (nothing seen yet) is always beaten by a finite value; NaN never improves.
    pub fn improves(self, value: f32, best: Option<f32>, margin: f32) -> bool {
        if value.is_nan() {
            return false;
        }
        match best {
            None => true,
            Some(b) => match self {
                Mode::Min => value < b - margin,
                Mode::Max => value > b + margin,
            },
        }
    }
}
