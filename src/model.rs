//! A trained model ready to serve: backbone + metadata pipeline + network + task decoding.
//!
//! `Model::predict(&[&str])` is `&self` and thread-safe. The heads sit behind an `Arc` that is
//! swapped atomically ([`Model::swap_heads`]), so a prediction always uses exactly one version of
//! the heads even while a new one is being installed.

use std::path::Path;
use std::sync::{Arc, RwLock};

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::backbone::{Backbone, TokenSeqs};
use crate::bundle::{self, BundleManifest, TaskEntry};
use crate::data::TaskKind;
use crate::error::{Error, Result};
use crate::eval::{aggregate, vote_shares, Aggregation};
use crate::train::features::Normalizer;
use crate::train::network::{Architecture, Network};

/// One task's prediction for one text (or one group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskPrediction {
    /// Task name.
    pub task: String,
    /// Predicted labels: one for multiclass/binary, any number for multi-label, none for
    /// regression.
    pub labels: Vec<String>,
    /// Probability per label (softmax for multiclass; sigmoid per label for binary, where it is
    /// `[1 - p, p]`, and multi-label); empty for regression.
    pub probabilities: Vec<f32>,
    /// The predicted value (regression only).
    pub value: Option<f32>,
}

/// One group's key and its per-task predictions.
pub type GroupPrediction = (String, Vec<TaskPrediction>);

/// The heads of a model and what decodes them; replaced as a whole on hot-swap.
#[derive(Debug, Clone)]
pub struct Heads {
    /// The network.
    pub network: Network,
    /// Feature normalizer (None in embedding-only mode).
    pub normalizer: Option<Normalizer>,
    /// Tasks, labels and thresholds, in head order.
    pub tasks: Vec<TaskEntry>,
    /// A version number, increased on every swap (0 for the loaded one).
    pub version: u64,
}

impl Heads {
    /// The heads of the bundle in `dir`, checked against `backbone` (for hot-swapping a bundle
    /// into a live model): refuses another backbone, an unknown format, corrupt weights, or
    /// metadata features this build does not produce.
    pub fn load(dir: &Path, backbone: &Backbone) -> Result<Heads> {
        Ok(Self::load_checked(dir, backbone)?.1)
    }

    fn load_checked(dir: &Path, backbone: &Backbone) -> Result<(BundleManifest, Heads)> {
        let (manifest, weights) = bundle::load(dir)?;
        manifest.check_backbone(backbone)?;
        let heads = Self::from_bundle(&manifest, &weights)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", dir.display(), e.message())))?;
        Ok((manifest, heads))
    }

    /// The heads a bundle's manifest and tensors describe, after every check that needs no
    /// backbone: the feature names against this build's extractor, the architecture against
    /// the tensors' real sizes (before anything is allocated), and the tasks and feature
    /// pipeline against the architecture. A bundle is untrusted input: whatever passes here
    /// predicts without panicking.
    pub fn from_bundle(manifest: &BundleManifest, weights: &bundle::Weights) -> Result<Heads> {
        manifest.check_features(&crate::metadata::feature_names())?;
        let arch: Architecture = serde_json::from_value(manifest.architecture.clone())
            .map_err(|e| Error::format(format!("bad architecture: {e}")))?;
        arch.check_weights(weights)?;
        manifest.check_heads(&arch.outputs, arch.n_features, arch.emb_dim)?;
        let network = Network::from_weights(arch, weights)?;
        let normalizer = manifest.features.as_ref().map(Normalizer::from_spec);
        Ok(Heads {
            network,
            normalizer,
            tasks: manifest.tasks.clone(),
            version: 0,
        })
    }
}

/// Converts raw head outputs into probabilities (or de-standardized values) per task.
pub fn probabilities(
    tasks: &[TaskEntry],
    arch: &Architecture,
    raw: &[Array2<f32>],
) -> Vec<Array2<f32>> {
    tasks
        .iter()
        .zip(raw)
        .enumerate()
        .map(|(t, (task, z))| match task.spec.kind {
            TaskKind::Multiclass => {
                let mut p = z.clone();
                for mut row in p.rows_mut() {
                    let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                    row.mapv_inplace(|v| (v - m).exp());
                    let s = row.sum();
                    row /= s;
                }
                p
            }
            TaskKind::Binary | TaskKind::Multilabel => z.mapv(|v| 1.0 / (1.0 + (-v).exp())),
            TaskKind::Regression => {
                let (mean, std) = arch.target_scale.get(t).copied().unwrap_or((0.0, 1.0));
                z.mapv(|v| v * std + mean)
            }
        })
        .collect()
}

/// Decodes one row of probabilities (or a value) into a [`TaskPrediction`].
pub fn decode(task: &TaskEntry, row: &[f32]) -> TaskPrediction {
    let labels = &task.spec.labels;
    let mut out = TaskPrediction {
        task: task.spec.name.clone(),
        labels: vec![],
        probabilities: vec![],
        value: None,
    };
    match task.spec.kind {
        TaskKind::Multiclass => {
            let best = (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            out.labels.push(labels[best].clone());
            out.probabilities = row.to_vec();
        }
        TaskKind::Binary => {
            let p = row[0];
            let th = task.thresholds.first().copied().unwrap_or(0.5);
            out.labels.push(labels[usize::from(p >= th)].clone());
            out.probabilities = vec![1.0 - p, p];
        }
        TaskKind::Multilabel => {
            for (j, &p) in row.iter().enumerate() {
                if p >= task.thresholds.get(j).copied().unwrap_or(0.5) {
                    out.labels.push(labels[j].clone());
                }
            }
            out.probabilities = row.to_vec();
        }
        TaskKind::Regression => out.value = row.first().copied(),
    }
    out
}

/// Decodes a group's vote shares of a binary or multi-label head ([`vote_shares`]): a label is
/// predicted when more than half of the group's texts voted for it (a tie is no majority), and
/// the probabilities are the shares (binary: `[1 - share, share]`).
pub fn decode_votes(task: &TaskEntry, shares: &[f32]) -> TaskPrediction {
    let majority = |s: f32| s > 0.5;
    let labels = &task.spec.labels;
    let mut out = TaskPrediction {
        task: task.spec.name.clone(),
        labels: vec![],
        probabilities: vec![],
        value: None,
    };
    if task.spec.kind == TaskKind::Binary {
        let s = shares.first().copied().unwrap_or(0.0);
        out.labels.push(labels[usize::from(majority(s))].clone());
        out.probabilities = vec![1.0 - s, s];
    } else {
        for (l, &s) in labels.iter().zip(shares) {
            if majority(s) {
                out.labels.push(l.clone());
            }
        }
        out.probabilities = shares.to_vec();
    }
    out
}

/// A loaded bundle on a backbone.
pub struct Model {
    backbone: Arc<Backbone>,
    manifest: BundleManifest,
    heads: RwLock<Arc<Heads>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("tasks", &self.manifest.tasks.len())
            .finish()
    }
}

impl Model {
    /// Loads the bundle in `dir` for `backbone`, refusing another backbone, an unknown format,
    /// corrupt weights, or metadata features this build does not produce.
    pub fn load(dir: &Path, backbone: Arc<Backbone>) -> Result<Model> {
        let (manifest, heads) = Heads::load_checked(dir, &backbone)?;
        Ok(Model {
            backbone,
            manifest,
            heads: RwLock::new(Arc::new(heads)),
        })
    }

    /// Wraps freshly trained heads (no bundle on disk yet).
    pub fn from_parts(backbone: Arc<Backbone>, manifest: BundleManifest, heads: Heads) -> Model {
        Model {
            backbone,
            manifest,
            heads: RwLock::new(Arc::new(heads)),
        }
    }

    /// The bundle manifest this model was loaded from.
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The backbone.
    pub fn backbone(&self) -> &Arc<Backbone> {
        &self.backbone
    }

    /// The heads currently served (a snapshot: later swaps do not change it).
    pub fn heads(&self) -> Arc<Heads> {
        Arc::clone(&self.heads.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Atomically replaces the heads with `new` (which must have the same tasks); returns the
    /// new version number. Predictions in flight finish on the heads they started with.
    pub fn swap_heads(&self, mut new: Heads) -> Result<u64> {
        let mut slot = self.heads.write().unwrap_or_else(|p| p.into_inner());
        if new.network.arch.emb_dim != 0 && new.network.arch.emb_dim != self.backbone.dim() {
            return Err(Error::invalid(
                "new heads expect a different embedding size",
            ));
        }
        new.version = slot.version + 1;
        let v = new.version;
        *slot = Arc::new(new);
        Ok(v)
    }

    /// Per-task probabilities (or values) for `texts`, plus the heads version used.
    pub fn predict_raw(&self, texts: &[&str]) -> Result<(Vec<Array2<f32>>, u64)> {
        let heads = self.heads();
        Ok((self.run(&heads, texts)?, heads.version))
    }

    /// Probabilities from one given version of the heads: callers that also decode with the
    /// heads' tasks and thresholds must use the same snapshot, or a concurrent swap could pair
    /// one version's outputs with another's thresholds.
    fn run(&self, heads: &Heads, texts: &[&str]) -> Result<Vec<Array2<f32>>> {
        let arch = &heads.network.arch;
        let (emb, tokens) = if arch.needs_tokens() {
            let (emb, tokens) = self.backbone.embed_tokens(texts)?;
            (emb, Some(tokens))
        } else if arch.emb_dim > 0 {
            (self.backbone.embed(texts)?, None)
        } else {
            (Array2::zeros((texts.len(), 0)), None)
        };
        let feats = match &heads.normalizer {
            Some(n) => n.transform(crate::metadata::extract_batch(texts).view()),
            None => Array2::zeros((texts.len(), 0)),
        };
        predict_arrays(heads, emb.view(), feats.view(), tokens.as_ref())
    }

    /// Each task's labels, probabilities and values for every text, in order.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Vec<TaskPrediction>>> {
        Ok(self.predict_versioned(texts)?.0)
    }

    /// Like [`predict`](Self::predict), plus the heads that made every one of the predictions
    /// (their `version`, tasks and label names): one snapshot serves the whole call, even
    /// across a hot swap.
    pub fn predict_versioned(
        &self,
        texts: &[&str],
    ) -> Result<(Vec<Vec<TaskPrediction>>, Arc<Heads>)> {
        let heads = self.heads();
        let probs = self.run(&heads, texts)?;
        let preds = (0..texts.len())
            .map(|i| {
                heads
                    .tasks
                    .iter()
                    .zip(&probs)
                    .map(|(task, p)| decode(task, p.row(i).as_slice().unwrap_or(&[])))
                    .collect()
            })
            .collect();
        Ok((preds, heads))
    }

    /// One prediction per group: each text's outputs are combined by `how` over the texts
    /// sharing a group key (e.g. an author id). Groups come back in sorted key order.
    pub fn predict_groups(
        &self,
        texts: &[&str],
        groups: &[String],
        how: Aggregation,
    ) -> Result<Vec<(String, Vec<TaskPrediction>)>> {
        Ok(self.predict_groups_versioned(texts, groups, how)?.0)
    }

    /// Like [`predict_groups`](Self::predict_groups), plus the heads snapshot used.
    pub fn predict_groups_versioned(
        &self,
        texts: &[&str],
        groups: &[String],
        how: Aggregation,
    ) -> Result<(Vec<GroupPrediction>, Arc<Heads>)> {
        if texts.len() != groups.len() {
            return Err(Error::invalid(format!(
                "{} texts but {} group keys",
                texts.len(),
                groups.len()
            )));
        }
        let heads = self.heads();
        let probs = self.run(&heads, texts)?;
        let mut per_task = Vec::new();
        for (task, p) in heads.tasks.iter().zip(&probs) {
            let rows: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
            per_task.push(match (how, task.spec.kind) {
                // Values average; sigmoid outputs vote one by one, on their tuned thresholds.
                (Aggregation::Majority, TaskKind::Regression) => {
                    aggregate(groups, &rows, Aggregation::Mean)?
                }
                (Aggregation::Majority, TaskKind::Binary | TaskKind::Multilabel) => {
                    vote_shares(groups, &rows, &task.thresholds)?
                }
                _ => aggregate(groups, &rows, how)?,
            });
        }
        let n_groups = per_task.first().map_or(0, |v| v.len());
        let out = (0..n_groups)
            .map(|g| {
                let key = per_task[0][g].0.clone();
                let preds = heads
                    .tasks
                    .iter()
                    .zip(&per_task)
                    .map(|(task, agg)| match (how, task.spec.kind) {
                        (Aggregation::Majority, TaskKind::Binary | TaskKind::Multilabel) => {
                            decode_votes(task, &agg[g].1)
                        }
                        _ => decode(task, &agg[g].1),
                    })
                    .collect();
                (key, preds)
            })
            .collect();
        Ok((out, heads))
    }
}

/// Probabilities (or values) per task from embeddings, normalized features and, for sequence
/// heads, the texts' per-token vectors (which pooled heads ignore). Sequence heads run in
/// chunks of texts, so the f32 copy of the tokens stays small.
pub fn predict_arrays(
    heads: &Heads,
    emb: ArrayView2<'_, f32>,
    feats: ArrayView2<'_, f32>,
    tokens: Option<&TokenSeqs>,
) -> Result<Vec<Array2<f32>>> {
    let net = &heads.network;
    let raw = match (net.arch.needs_tokens(), tokens) {
        (false, _) => net.forward(emb, feats, None)?,
        (true, None) => {
            return Err(Error::invalid(
                "sequence heads need the texts' per-token vectors",
            ))
        }
        (true, Some(t)) => {
            let n = emb.nrows();
            if t.len() != n {
                return Err(Error::invalid(format!(
                    "{} token sequences for {n} texts",
                    t.len()
                )));
            }
            let mut parts: Vec<Vec<Array2<f32>>> = Vec::new();
            let all: Vec<usize> = (0..n).collect();
            for idx in all.chunks(crate::train::fit::SEQUENCE_CHUNK) {
                let rows = idx[0]..idx[0] + idx.len();
                // Features may be an empty placeholder (embedding-only mode).
                let f = if feats.nrows() == n {
                    feats.slice(ndarray::s![rows.clone(), ..])
                } else {
                    feats.view()
                };
                parts.push(net.forward(
                    emb.slice(ndarray::s![rows, ..]),
                    f,
                    Some(&t.gather(idx)),
                )?);
            }
            (0..net.arch.outputs.len())
                .map(|k| {
                    let views: Vec<_> = parts.iter().map(|p| p[k].view()).collect();
                    ndarray::concatenate(ndarray::Axis(0), &views).expect("same widths")
                })
                .collect()
        }
    };
    Ok(probabilities(&heads.tasks, &net.arch, &raw))
}
