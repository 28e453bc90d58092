//! The bundle manifest (serde): format version, backbone identity, feature pipeline, tasks with
//! labels and thresholds, architecture, metrics, training config and provenance.

use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::data::TaskKind;
use crate::error::{Error, ErrorKind, Result};
pub use crate::heads::TaskEntry;
use crate::heads::{Architecture, Normalizer};

/// The bundle format this build reads and writes.
pub const BUNDLE_FORMAT: &str = "tandem-bundle/1";

/// Which backbone the heads were trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneRef {
    /// Backbone name (e.g. all-MiniLM-L6-v2).
    pub name: String,
    /// sha256 of the backbone's reference fp32 graph: the identity checked at load.
    pub family_sha256: String,
    /// The variant used for training (fp32, opt, int8).
    pub variant: String,
    /// sha256 of that variant's graph.
    pub graph_sha256: String,
    /// Embedding dimension.
    pub dim: usize,
}

impl BackboneRef {
    /// The reference of a bundle that reads no backbone: an encoder bundle (`tandem
    /// pretrain`), whose metadata encoder works on any.
    pub fn none() -> Self {
        BackboneRef {
            name: "none".to_string(),
            family_sha256: String::new(),
            variant: "fp32".to_string(),
            graph_sha256: String::new(),
            dim: 0,
        }
    }

    /// The reference for a loaded backbone.
    pub fn of(b: &Backbone) -> Self {
        BackboneRef {
            name: b.manifest().name.clone(),
            family_sha256: b.family_sha256().to_string(),
            variant: b.options().variant.name().to_string(),
            graph_sha256: b.graph_sha256().to_string(),
            dim: b.dim(),
        }
    }
}

/// The metadata feature pipeline stored with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpecRef {
    /// The extractor's feature set at training time ([`crate::metadata::FEATURE_SET`]; 1 for
    /// bundles from before sets were recorded).
    #[serde(default = "first_feature_set")]
    pub version: u32,
    /// Names of all features the extractor produced at training time, in order.
    pub names: Vec<String>,
    /// Indices (into `names`) of the features the model uses.
    pub selected: Vec<usize>,
    /// z-score means of the selected features.
    pub mean: Vec<f32>,
    /// z-score standard deviations of the selected features (never 0).
    pub std: Vec<f32>,
}

impl FeatureSpecRef {
    /// The bundle form of `normalizer`, with the names of every feature the extractor produced.
    pub fn of(normalizer: &Normalizer, names: &[&str]) -> FeatureSpecRef {
        FeatureSpecRef {
            version: crate::metadata::FEATURE_SET,
            names: names.iter().map(|s| s.to_string()).collect(),
            selected: normalizer.selected.clone(),
            mean: normalizer.mean.clone(),
            std: normalizer.std.clone(),
        }
    }

    /// The normalizer this pipeline describes, its features found **by name** among
    /// `current` (this build's extractor's names, in its order): a bundle trained on an older
    /// feature set, or with the features in another order, reads exactly the features it was
    /// trained on. A feature `current` lacks is refused, naming it. Indices are checked by
    /// [`BundleManifest::check_heads`] first.
    pub fn normalizer_for(&self, current: &[&str]) -> Result<Normalizer> {
        let selected = self
            .selected
            .iter()
            .map(|&i| {
                let name = self.names.get(i).ok_or_else(|| {
                    Error::format(format!(
                        "feature index {i} is out of range ({} names)",
                        self.names.len()
                    ))
                })?;
                current.iter().position(|c| c == name).ok_or_else(|| {
                    Error::format(format!(
                        "the bundle's heads read metadata feature `{name}` (feature set {}), \
                         which this tandem's extractor (set {}) does not produce; retrain the bundle",
                        self.version,
                        crate::metadata::FEATURE_SET
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Normalizer {
            selected,
            mean: self.mean.clone(),
            std: self.std.clone(),
        })
    }
}

fn first_feature_set() -> u32 {
    1
}

/// `manifest.json` of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The tandem version that wrote it.
    pub created_by: String,
    /// Backbone identity.
    pub backbone: BackboneRef,
    /// Feature pipeline (absent for embedding-only models).
    pub features: Option<FeatureSpecRef>,
    /// Tasks, in head order.
    pub tasks: Vec<TaskEntry>,
    /// The heads' architecture (mode, layer sizes, ...).
    pub architecture: Architecture,
    /// Validation / test metrics at save time.
    pub metrics: serde_json::Value,
    /// The effective training config.
    pub training: serde_json::Value,
    /// Seed used for training.
    pub seed: u64,
    /// sha256 of weights.safetensors (filled in by `save`).
    pub weights_sha256: String,
    /// `f32` or `f16` (filled in by `save`).
    pub weights_dtype: String,
}

impl BundleManifest {
    /// Refuses a bundle with nothing to serve: an encoder bundle (`tandem pretrain`) holds a
    /// pre-trained metadata encoder and no task heads.
    pub fn check_servable(&self) -> Result<()> {
        if self.tasks.is_empty() {
            return Err(Error::invalid(
                "this bundle holds a pre-trained metadata encoder and no task heads (`tandem \
                 pretrain`), so it predicts nothing: train heads from it with `tandem train \
                 --init-encoder` (metadata.init_encoder)",
            ));
        }
        Ok(())
    }

    /// Refuses a backbone other than the one the heads were trained on.
    pub fn check_backbone(&self, b: &Backbone) -> Result<()> {
        let have = b.family_sha256();
        if have != self.backbone.family_sha256 || b.dim() != self.backbone.dim {
            return Err(Error::new(
                ErrorKind::BackboneMismatch,
                format!(
                    "bundle was trained on backbone {} (sha256 {}, dim {}), but the loaded backbone is {} (sha256 {have}, dim {})",
                    self.backbone.name,
                    self.backbone.family_sha256,
                    self.backbone.dim,
                    b.manifest().name,
                    b.dim()
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the tasks and the feature pipeline agree with the network they decode and
    /// feed, whose per-task output widths are `outputs`, which reads `n_features` selected
    /// features and `emb_dim`-wide embeddings. Everything a prediction indexes is checked here,
    /// so a tampered manifest fails to load instead of panicking on every predict.
    pub fn check_heads(&self, outputs: &[usize], n_features: usize, emb_dim: usize) -> Result<()> {
        let bad = |m: String| Err(Error::format(format!("manifest: {m}")));
        if emb_dim != 0 && emb_dim != self.backbone.dim {
            return bad(format!(
                "the heads read {emb_dim}-wide embeddings, the backbone gives {}",
                self.backbone.dim
            ));
        }
        if self.tasks.len() != outputs.len() {
            return bad(format!(
                "{} tasks, but the architecture has {} heads",
                self.tasks.len(),
                outputs.len()
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (task, &width) in self.tasks.iter().zip(outputs) {
            let spec = &task.spec;
            let name = &spec.name;
            if name.is_empty() || !names.insert(name.as_str()) {
                return bad(format!(
                    "task names must be unique and non-empty (`{name}`)"
                ));
            }
            let (labels, thresholds) = match spec.kind {
                TaskKind::Multiclass => (width, 0),
                TaskKind::Binary => (2, 1),
                TaskKind::Multilabel => (width, width),
                TaskKind::Regression => (0, 0),
            };
            let head = match spec.kind {
                TaskKind::Binary | TaskKind::Regression => 1,
                _ => width,
            };
            if width != head || spec.labels.len() != labels {
                return bad(format!(
                    "task `{name}` ({}) has {} labels and a head of width {width}",
                    spec.kind.name(),
                    spec.labels.len()
                ));
            }
            if spec.kind == TaskKind::Multiclass && labels < 2 {
                return bad(format!("multiclass task `{name}` needs at least 2 labels"));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(l) = spec.labels.iter().find(|l| !seen.insert(l.as_str())) {
                return bad(format!("task `{name}` lists label `{l}` twice"));
            }
            if task.thresholds.len() != thresholds {
                return bad(format!(
                    "task `{name}` ({}) has {} thresholds, expected {thresholds}",
                    spec.kind.name(),
                    task.thresholds.len()
                ));
            }
            if let Some(t) = task.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
                return bad(format!("task `{name}`: threshold {t} is outside [0, 1]"));
            }
        }
        match (&self.features, n_features) {
            (None, 0) => {}
            (None, n) => {
                return bad(format!(
                    "the heads read {n} features, but `features` is null"
                ))
            }
            (Some(_), 0) => return bad("`features` is set, but the heads read none".into()),
            (Some(f), n) => {
                if f.selected.len() != n || f.mean.len() != n || f.std.len() != n {
                    return bad(format!(
                        "the heads read {n} features, but `features` selects {} with {} means \
                         and {} stds",
                        f.selected.len(),
                        f.mean.len(),
                        f.std.len()
                    ));
                }
                if f.selected.windows(2).any(|w| w[0] >= w[1])
                    || f.selected.iter().any(|&i| i >= f.names.len())
                {
                    return bad(format!(
                        "`features.selected` must be ascending indices below {}",
                        f.names.len()
                    ));
                }
                if let Some(m) = f.mean.iter().find(|m| !m.is_finite()) {
                    return bad(format!("feature mean {m} is not finite"));
                }
                if let Some(s) = f.std.iter().find(|s| !s.is_finite() || **s <= 0.0) {
                    return bad(format!("feature std {s} must be finite and positive"));
                }
            }
        }
        Ok(())
    }
}
