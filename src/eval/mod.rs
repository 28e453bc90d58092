//! Evaluation: metrics per task kind, decision-threshold tuning, breakdowns by an input column,
//! the examples a model gets wrong, and aggregation of many texts' predictions into one per group (e.g. per author).

mod aggregate;
mod errors;
mod metrics;
mod report;
mod threshold;

pub use self::aggregate::{aggregate, group_outputs, group_thresholds, vote_shares, Aggregation};
pub use self::errors::{error_cases, ErrorCase};
pub use self::metrics::{
    classification_metrics, f1, macro_f1, multilabel_metrics, regression_metrics, roc_auc,
    ClassMetrics, ClassificationMetrics, MultilabelMetrics, RegressionMetrics,
};
pub use self::report::{evaluate_arrays, evaluate_probs};
pub use self::threshold::best_f1_threshold;
