//! The bundle manifest of freshly trained heads: what they are, what they were trained on and
//! with, and how well they did.

use std::path::Path;

use serde_json::{json, Value};

use super::config::TrainConfig;
use super::run::Trained;
use super::stage::EpochRecord;
use crate::backbone::Backbone;
use crate::bundle::{self, BackboneRef, BundleManifest, FeatureSpecRef, BUNDLE_FORMAT};
use crate::error::Result;
use crate::onnx::tuned::TunedBackbone;

/// Saves `trained` as a bundle in `dir` (atomically: a crash leaves no partial bundle). Its
/// fine-tuned layers, if any, go into a backbone of the bundle's own, which the heads then
/// name; otherwise the bundle names `backbone`.
pub fn save_trained(
    dir: &Path,
    backbone: &Backbone,
    trained: &Trained,
    config: &TrainConfig,
) -> Result<()> {
    let tuned = trained
        .top
        .as_ref()
        .map(|t| TunedBackbone::new(backbone, &t.layers))
        .transpose()?;
    let reference = tuned
        .as_ref()
        .map_or_else(|| BackboneRef::of(backbone), TunedBackbone::reference);
    let manifest = manifest_for(
        trained,
        reference,
        &crate::metadata::feature_names(),
        config,
    );
    bundle::save_with(
        dir,
        &manifest,
        &trained.heads.network.weights(),
        config.f16_weights,
        |tmp| match &tuned {
            Some(t) => t.write(&tmp.join(bundle::BACKBONE_DIR)),
            None => Ok(()),
        },
    )
}

/// The learned uncertainty weight of each task in the last stage, by task name (None with
/// fixed weights).
pub fn learned_weights(trained: &Trained) -> Option<std::collections::BTreeMap<String, f32>> {
    let w = trained.report.stages.last()?.learned_weights.as_ref()?;
    Some(
        trained
            .heads
            .tasks
            .iter()
            .zip(w)
            .map(|(t, &w)| (t.spec.name.clone(), w))
            .collect(),
    )
}

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
        if let Some(w) = learned_weights(trained) {
            m.insert("learned_task_weights".into(), json!(w));
        }
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
