//! A trained model ready to serve: a backbone plus the heads of a bundle.
//!
//! `Model::predict(&[&str])` is `&self` and thread-safe. The heads sit behind an `Arc` that is
//! swapped atomically ([`Model::swap_heads`]), so a prediction always uses exactly one version of
//! the heads even while a new one is being installed.

use std::path::Path;
use std::sync::{Arc, RwLock};

use ndarray::Array2;

use crate::backbone::{Backbone, BackboneOptions, HeadsEngine, Variant};
use crate::bundle::{self, BundleManifest};
use crate::data::TaskKind;
use crate::error::{Error, Result};
use crate::eval::{group_outputs, Aggregation};
pub use crate::heads::{
    decode, decode_votes, predict_arrays, predict_sampled, probabilities, GroupPrediction, Heads,
    Spread, TaskPrediction,
};

/// The heads of the bundle in `dir`, checked against `backbone` (for hot-swapping a bundle into
/// a live model): refuses another backbone, an unknown format, corrupt weights, or metadata
/// features this build does not produce.
pub fn load_heads(dir: &Path, backbone: &Backbone) -> Result<Heads> {
    Ok(load_checked(dir, backbone)?.1)
}

fn load_checked(dir: &Path, backbone: &Backbone) -> Result<(BundleManifest, Heads)> {
    let (manifest, weights) = bundle::load(dir)?;
    manifest
        .check_servable()
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", dir.display(), e.message())))?;
    manifest.check_backbone(backbone)?;
    let heads = bundle::build_heads(&manifest, &weights)
        .and_then(|h| engine(h, backbone))
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", dir.display(), e.message())))?;
    Ok((manifest, heads))
}

/// The backbone the heads of the bundle in `dir` run on: the bundle's own (see
/// [`Model::load`]) or `given`.
pub fn bundle_backbone(dir: &Path, given: Arc<Backbone>) -> Result<Arc<Backbone>> {
    let own = bundle::readable_dir(dir).join(bundle::BACKBONE_DIR);
    if !own.exists() {
        return Ok(given);
    }
    let mut options = given.options().clone();
    // A bundle is untrusted: its graph and tokenizer must be the ones its manifest names.
    options.verify = true;
    let b = Backbone::load(&own, options).map_err(|e| {
        Error::new(
            e.kind(),
            format!(
                "{}: the bundle's fine-tuned backbone: {}",
                dir.display(),
                e.message()
            ),
        )
    })?;
    Ok(Arc::new(b))
}

/// `heads` ready for the engine the backbone's options ask for: under
/// [`HeadsEngine::Onnx`], written as an ONNX graph and opened in ONNX Runtime on the backbone's
/// device (a graph the runtime refuses fails here, not at the first prediction).
pub fn engine(mut heads: Heads, backbone: &Backbone) -> Result<Heads> {
    heads.onnx = match backbone.options().heads {
        HeadsEngine::Native => None,
        HeadsEngine::Onnx => Some(Arc::new(crate::onnx::OnnxHeads::from_heads(
            &heads,
            backbone.runtime_shared(),
            backbone.options().device,
        )?)),
    };
    Ok(heads)
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
    ///
    /// A bundle with a backbone of its own ([`bundle::BACKBONE_DIR`]: top layers fine-tuned
    /// on the device) runs on that one, loaded with `backbone`'s options and checked against
    /// its manifest's sha256s; `backbone` then only lends its options.
    pub fn load(dir: &Path, backbone: Arc<Backbone>) -> Result<Model> {
        let backbone = bundle_backbone(dir, backbone)?;
        let (manifest, heads) = load_checked(dir, &backbone)?;
        Ok(Model {
            backbone,
            manifest,
            heads: RwLock::new(Arc::new(heads)),
        })
    }

    /// Loads the bundle in `dir` on the backbone it records, so no backbone need be named: its
    /// own fine-tuned one ([`bundle::BACKBONE_DIR`]), else the cache's backbone of the name it
    /// was trained on ([`crate::home::installed_backbone`]), else the default one; with
    /// `options` (threads, device, ONNX Runtime library, ...), the graph variant it was trained
    /// with unless `variant` names another. A bundle whose backbone is not installed is refused
    /// as by [`Model::load`], naming the backbone it needs.
    pub fn open(dir: &Path, options: BackboneOptions, variant: Option<Variant>) -> Result<Model> {
        Model::open_on(dir, options, variant, None)
    }

    /// [`Model::open`] on the backbone directory `backbone` where one is given (as a bundle's
    /// own fine-tuned backbone would be: the bundle still runs on that).
    pub fn open_on(
        dir: &Path,
        mut options: BackboneOptions,
        variant: Option<Variant>,
        backbone: Option<&Path>,
    ) -> Result<Model> {
        let readable = bundle::readable_dir(dir);
        let path = readable.join(bundle::MANIFEST_FILE);
        if !readable.is_dir() {
            return Err(Error::new(
                crate::ErrorKind::NotFound,
                format!("{}: no such bundle directory", dir.display()),
            ));
        }
        let text = crate::files::read_text(&path, crate::files::BUNDLE_MANIFEST)?;
        let parsed = bundle::parse_manifest(&text)
            .and_then(|m| m.check_servable().map(|_| m))
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))?;
        let recorded = parsed.backbone;
        options.variant = match variant {
            Some(v) => v,
            None => recorded.variant.parse()?,
        };
        let own = readable.join(bundle::BACKBONE_DIR);
        let backbone_dir = if own.exists() {
            // Untrusted like the rest of the bundle: checked against its manifest's sha256s.
            options.verify = true;
            own
        } else if let Some(dir) = backbone {
            dir.to_path_buf()
        } else {
            crate::home::installed_backbone(&recorded.name)
                .unwrap_or_else(crate::home::default_backbone_dir)
        };
        let backbone = Arc::new(Backbone::load(&backbone_dir, options)?);
        let (manifest, heads) = load_checked(dir, &backbone)?;
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

    /// Another model on the same loaded backbone serving the heads this one serves now (shared,
    /// not copied: only the manifest is cloned). Later swaps into either do not reach the other.
    pub fn snapshot(&self) -> Model {
        Model {
            backbone: Arc::clone(&self.backbone),
            manifest: self.manifest.clone(),
            heads: RwLock::new(self.heads()),
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
    pub fn swap_heads(&self, new: Heads) -> Result<u64> {
        // Built before taking the lock: opening an ONNX session takes milliseconds.
        let mut new = if new.onnx.is_none() {
            engine(new, &self.backbone)?
        } else {
            new
        };
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
        let inputs = self.inputs(texts, &Needs::of(heads))?;
        run_heads(heads, &inputs)
    }

    /// What heads with `needs` read of `texts` on this model's backbone.
    pub(crate) fn inputs(&self, texts: &[&str], needs: &Needs) -> Result<Inputs> {
        let (emb, tokens) = if needs.tokens {
            let (emb, tokens) = self.backbone.embed_tokens(texts)?;
            (emb, Some(tokens))
        } else if needs.embeddings {
            (self.backbone.embed(texts)?, None)
        } else {
            (Array2::zeros((texts.len(), 0)), None)
        };
        let raw = needs
            .features
            .then(|| crate::metadata::extract_batch(texts));
        Ok(Inputs {
            n: texts.len(),
            emb,
            tokens,
            raw,
        })
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

    /// Like [`predict_versioned`](Self::predict_versioned), with Monte-Carlo dropout: each
    /// task's probabilities (or value) are the mean of `samples` passes of the native heads
    /// with dropout on, drawn from `seed` (the same seed, the same numbers), labels are decided
    /// on that mean with the tuned thresholds, and [`TaskPrediction::spread`] holds the
    /// passes' standard deviation. Heads served through ONNX Runtime sample their native
    /// twin.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for 0 samples or heads without dropout; as `predict` otherwise.
    pub fn predict_sampled(
        &self,
        texts: &[&str],
        samples: usize,
        seed: u64,
    ) -> Result<(Vec<Vec<TaskPrediction>>, Arc<Heads>)> {
        let heads = self.heads();
        let inputs = self.inputs(texts, &Needs::of(&heads))?;
        let feats = native_features(&heads, &inputs)?;
        let tokens = inputs
            .tokens
            .as_ref()
            .filter(|_| heads.network.arch.needs_tokens());
        let emb = if heads.network.arch.emb_dim > 0 {
            inputs.emb.view()
        } else {
            inputs.emb.slice(ndarray::s![.., ..0])
        };
        let spread = predict_sampled(&heads, emb, feats.view(), tokens, samples, seed)?;
        let preds = (0..texts.len())
            .map(|i| decode_sampled(&heads, &spread, i))
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
        let out = group_predictions(&heads.tasks, &probs, groups, how)?;
        Ok((out, heads))
    }
}

/// What a model's heads read of a batch of texts, computed once so that several heads on one
/// backbone (an ensemble's members) share the backbone run.
pub(crate) struct Inputs {
    n: usize,
    emb: Array2<f32>,
    tokens: Option<crate::backbone::TokenSeqs>,
    /// The raw metadata features, when some heads read them.
    raw: Option<Array2<f32>>,
}

/// Which inputs heads read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    pub embeddings: bool,
    pub tokens: bool,
    pub features: bool,
}

impl Needs {
    /// What `heads` read.
    pub(crate) fn of(heads: &Heads) -> Needs {
        let arch = &heads.network.arch;
        Needs {
            embeddings: arch.emb_dim > 0,
            tokens: arch.needs_tokens(),
            features: heads.normalizer.is_some(),
        }
    }

    /// What either reads.
    pub(crate) fn or(self, other: Needs) -> Needs {
        Needs {
            embeddings: self.embeddings || other.embeddings,
            tokens: self.tokens || other.tokens,
            features: self.features || other.features,
        }
    }
}

/// `heads`' probabilities (or values) from `inputs`.
pub(crate) fn run_heads(heads: &Heads, inputs: &Inputs) -> Result<Vec<Array2<f32>>> {
    let n = inputs.n;
    let arch = &heads.network.arch;
    let empty = || Array2::zeros((n, 0));
    let emb = if arch.emb_dim > 0 {
        inputs.emb.clone()
    } else {
        empty()
    };
    let tokens = if arch.needs_tokens() {
        inputs.tokens.as_ref()
    } else {
        None
    };
    if let Some(onnx) = &heads.onnx {
        // The graph selects and z-scores the raw features itself.
        let raw = match (&inputs.raw, onnx.reads_metadata()) {
            (Some(r), true) => r.clone(),
            _ => empty(),
        };
        return onnx.run(emb.view(), raw.view(), tokens);
    }
    let feats = native_features(heads, inputs)?;
    predict_arrays(heads, emb.view(), feats.view(), tokens)
}

/// The normalized features native heads read (0 columns when they read none).
fn native_features(heads: &Heads, inputs: &Inputs) -> Result<Array2<f32>> {
    match (&heads.normalizer, &inputs.raw) {
        (Some(norm), Some(raw)) => Ok(norm.transform(raw.view())),
        (Some(_), None) => Err(Error::invalid("these heads read metadata features")),
        (None, _) => Ok(Array2::zeros((inputs.n, 0))),
    }
}

/// Decodes Monte-Carlo dropout's mean outputs like any prediction, with each value's spread.
fn decode_sampled(heads: &Heads, spread: &Spread, i: usize) -> Vec<TaskPrediction> {
    heads
        .tasks
        .iter()
        .zip(spread.mean.iter().zip(&spread.std))
        .map(|(task, (mean, std))| {
            let mut p = decode(task, mean.row(i).as_slice().unwrap_or(&[]));
            let s = std.row(i).to_vec();
            // A binary head's one output is shown as [1 - p, p]: both spread alike.
            p.spread = Some(match task.spec.kind {
                TaskKind::Binary => vec![s[0], s[0]],
                _ => s,
            });
            p
        })
        .collect()
}

/// One prediction per group (sorted key order): each task's per-text outputs `probs` combined
/// over the texts of a group by `how` ([`group_outputs`]) and decoded ([`decode_group`]).
pub(crate) fn group_predictions(
    tasks: &[crate::heads::TaskEntry],
    probs: &[Array2<f32>],
    groups: &[String],
    how: Aggregation,
) -> Result<Vec<GroupPrediction>> {
    let per_task = tasks
        .iter()
        .zip(probs)
        .map(|(task, p)| {
            let rows: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
            group_outputs(task, groups, &rows, how)
        })
        .collect::<Result<Vec<_>>>()?;
    let n_groups = per_task.first().map_or(0, Vec::len);
    Ok((0..n_groups)
        .map(|g| {
            let key = per_task[0][g].0.clone();
            let preds = tasks
                .iter()
                .zip(&per_task)
                .map(|(task, agg)| decode_group(task, how, &agg[g].1))
                .collect();
            (key, preds)
        })
        .collect())
}

/// Decodes a group's combined outputs ([`group_outputs`]) as `how` decides them: vote shares
/// of sigmoid outputs by majority, everything else (total vote's shares included) as one
/// text's probabilities, on the tuned thresholds.
pub(crate) fn decode_group(
    task: &crate::heads::TaskEntry,
    how: Aggregation,
    out: &[f32],
) -> TaskPrediction {
    match (how, task.spec.kind) {
        (Aggregation::Majority, TaskKind::Binary | TaskKind::Multilabel) => decode_votes(task, out),
        _ => decode(task, out),
    }
}
