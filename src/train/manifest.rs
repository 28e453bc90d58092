//! The bundle manifest of freshly trained heads: what they are, what they were trained on and
//! with, and how well they did.

use serde_json::{json, Value};

use super::config::TrainConfig;
use super::run::Trained;
use super::stage::EpochRecord;
use crate::bundle::{BackboneRef, BundleManifest, FeatureSpecRef, BUNDLE_FORMAT};

/// A bundle manifest for trained heads.
pub fn manifest_for(
    trained: &Trained,
    backbone: BackboneRef,
    feature_names: &[&str],
    config: &TrainConfig,
) -> BundleManifest {
    let mut metrics = trained.report.valid_metrics.clone();
    if let Value::Object(m) = &mut metrics {
        m.insert("split".into(), json!("validation"));
        m.insert("train_seconds".into(), json!(trained.report.train_seconds));
        m.insert(
            "seconds_to_best".into(),
            json!(trained.report.seconds_to_best),
        );
        m.insert(
            "epochs".into(),
            json!(trained
                .report
                .stages
                .iter()
                .map(|s| (s.stage.clone(), s.epochs_run))
                .collect::<std::collections::BTreeMap<_, _>>()),
        );
        m.insert("n_train".into(), json!(trained.report.n_train));
        m.insert("n_valid".into(), json!(trained.report.n_valid));
        m.insert(
            "history".into(),
            serde_json::to_value(
                trained
                    .report
                    .stages
                    .iter()
                    .flat_map(|s| s.history.clone())
                    .collect::<Vec<EpochRecord>>(),
            )
            .unwrap_or_default(),
        );
    }
    BundleManifest {
        format: BUNDLE_FORMAT.to_string(),
        created_by: format!("tandem {}", crate::VERSION),
        backbone,
        features: trained
            .heads
            .normalizer
            .as_ref()
            .map(|n| FeatureSpecRef::of(n, feature_names)),
        tasks: trained.heads.tasks.clone(),
        architecture: trained.heads.network.arch.clone(),
        metrics,
        training: serde_json::to_value(config).unwrap_or_default(),
        seed: config.seed,
        weights_sha256: String::new(),
        weights_dtype: String::new(),
    }
}
