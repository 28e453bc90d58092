//! A trainer fed one example at a time: the stateful face of [`train`](super::train) that host
//! applications (and the C ABI) use to adapt heads on the device.
//!
//! Create it from a backbone and a JSON spec, add labelled examples (optionally a validation
//! set), train with a progress/cancel callback, evaluate, save a bundle, or hand the heads to a
//! live [`Model`](crate::model::Model). A failed or cancelled run leaves the examples and the
//! previously trained heads untouched, so nothing is lost.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use ndarray::Array2;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::{HeadKind, Mode, TrainConfig};
use super::examples::{self, split_examples_of, Examples, Needs};
use super::manifest::manifest_for;
use super::run::{TrainReport, Trained};
use super::stage::{EpochRecord, Progress};
use crate::backbone::Backbone;
use crate::backbone::TokenSeqs;
use crate::bundle::{self, BackboneRef};
use crate::cache::usage::keep_caches_under;
use crate::cache::{embed_chunked, embed_for_heads, EmbeddingCache, TokenCache};
use crate::data::{Row, Targets, TaskKind, TaskSpec};
use crate::error::{Error, Result};
use crate::eval::evaluate_arrays;
use crate::heads::Heads;

/// One task the trainer learns: its name (the key of its label in each example), its kind, and
/// for binary tasks optionally which label is positive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDecl {
    /// Task name; each example's labels object has a value under this key.
    pub name: String,
    /// What the head predicts.
    pub kind: TaskKind,
    /// The positive label of a binary task (default: the rarer one, or `1`/`true`).
    #[serde(default)]
    pub positive: Option<String>,
}

/// What a [`Trainer`] is created from, as JSON:
/// `{"tasks": [{"name": "intent", "kind": "multiclass"}], "config": {...}, "embedding_cache": true}`.
///
/// `config` is a [`TrainConfig`] (every key optional, unknown keys are errors);
/// `embedding_cache` (default true) keeps embeddings in the on-disk cache so retraining on the
/// same texts, even in another process, never runs the backbone twice; the config's
/// `cache.max_size` caps that cache (see [`CacheConfig`](super::config::CacheConfig)).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerSpec {
    /// The tasks, one head each, trained together.
    pub tasks: Vec<TaskDecl>,
    /// Training configuration.
    #[serde(default)]
    pub config: TrainConfig,
    /// Use the on-disk embedding cache.
    #[serde(default = "default_true")]
    pub embedding_cache: bool,
}

fn default_true() -> bool {
    true
}

impl TrainerSpec {
    /// Parses and validates a spec: at least one task, unique non-empty task names, a valid
    /// config.
    pub fn parse_json(text: &str) -> Result<Self> {
        let spec: TrainerSpec =
            serde_json::from_str(text).map_err(|e| Error::invalid(format!("trainer spec: {e}")))?;
        if spec.tasks.is_empty() {
            return Err(Error::invalid(
                "trainer spec: `tasks` must name at least one task",
            ));
        }
        let mut seen = HashSet::new();
        for t in &spec.tasks {
            if t.name.is_empty() || !seen.insert(t.name.as_str()) {
                return Err(Error::invalid(format!(
                    "trainer spec: task names must be unique and non-empty (`{}`)",
                    t.name
                )));
            }
            if t.positive.is_some() && t.kind != TaskKind::Binary {
                return Err(Error::invalid(format!(
                    "trainer spec: `positive` only applies to binary tasks (task `{}`)",
                    t.name
                )));
            }
        }
        spec.config.validate()?;
        Ok(spec)
    }
}

/// Labelled examples: texts and one labels row each.
#[derive(Debug, Default, Clone)]
struct ExampleSet {
    texts: Vec<String>,
    rows: Vec<Row>,
}

impl ExampleSet {
    fn push(&mut self, text: &str, labels: Map<String, Value>) {
        self.rows.push(Row {
            fields: labels,
            line: self.rows.len() + 1,
        });
        self.texts.push(text.to_string());
    }
}

/// One text's backbone outputs, kept for the trainer's lifetime.
struct Memo {
    pooled: Box<[f32]>,
    /// Per-token vectors (`len * dim` f16s), once a sequence head has needed them.
    tokens: Option<Box<[half::f16]>>,
}

/// Accumulates examples and trains heads on them. Use from one thread at a time (`&mut self`).
pub struct Trainer {
    backbone: Arc<Backbone>,
    spec: TrainerSpec,
    disk_cache: Option<EmbeddingCache>,
    token_cache: Option<TokenCache>,
    memo: HashMap<String, Memo>,
    train_set: ExampleSet,
    valid_set: ExampleSet,
    trained: Option<Trained>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("tasks", &self.spec.tasks.len())
            .field("examples", &self.train_set.rows.len())
            .field("validation_examples", &self.valid_set.rows.len())
            .field("trained", &self.trained.is_some())
            .finish()
    }
}

impl Trainer {
    /// A trainer for `spec` on `backbone`.
    pub fn new(backbone: Arc<Backbone>, spec: TrainerSpec) -> Result<Trainer> {
        spec.config.validate()?;
        let uses_emb = spec.config.mode != Mode::MetadataOnly;
        let disk_cache = if spec.embedding_cache && uses_emb {
            Some(EmbeddingCache::open(None, &backbone)?)
        } else {
            None
        };
        let wants_tokens = uses_emb && spec.config.head.kind == HeadKind::Sequence;
        if wants_tokens && !backbone.has_token_output() {
            return Err(Error::invalid(
                "sequence heads need per-token vectors, and this backbone's graph has no \
                 token_embeddings or last_hidden_state output",
            ));
        }
        let token_cache = if spec.embedding_cache && wants_tokens {
            Some(TokenCache::open(None, &backbone)?)
        } else {
            None
        };
        Ok(Trainer {
            backbone,
            spec,
            disk_cache,
            token_cache,
            memo: HashMap::new(),
            train_set: ExampleSet::default(),
            valid_set: ExampleSet::default(),
            trained: None,
        })
    }

    /// A trainer from a JSON spec (see [`TrainerSpec`]).
    pub fn from_json(backbone: Arc<Backbone>, spec_json: &str) -> Result<Trainer> {
        Self::new(backbone, TrainerSpec::parse_json(spec_json)?)
    }

    /// The backbone whose embeddings the heads read.
    pub fn backbone(&self) -> &Arc<Backbone> {
        &self.backbone
    }

    /// The spec this trainer was created with.
    pub fn spec(&self) -> &TrainerSpec {
        &self.spec
    }

    /// Adds a training example. `labels` is a JSON object with one value per task, keyed by task
    /// name: a class (string, number or boolean), a list of labels (multi-label) or a number
    /// (regression). A malformed example is rejected whole and nothing is added.
    pub fn add_example(&mut self, text: &str, labels: &Value) -> Result<()> {
        let labels = self.check_labels(labels)?;
        self.train_set.push(text, labels);
        Ok(())
    }

    /// Adds a validation example (same format). With no validation examples, training holds
    /// out a stratified fraction of the training examples instead.
    pub fn add_validation_example(&mut self, text: &str, labels: &Value) -> Result<()> {
        let labels = self.check_labels(labels)?;
        self.valid_set.push(text, labels);
        Ok(())
    }

    /// Training examples added so far.
    pub fn len(&self) -> usize {
        self.train_set.rows.len()
    }

    /// True before any training example is added.
    pub fn is_empty(&self) -> bool {
        self.train_set.rows.is_empty()
    }

    /// Validation examples added so far.
    pub fn validation_len(&self) -> usize {
        self.valid_set.rows.len()
    }

    fn check_labels(&self, labels: &Value) -> Result<Map<String, Value>> {
        let obj = labels.as_object().ok_or_else(|| {
            Error::invalid("labels must be a JSON object with one value per task")
        })?;
        if let Some(k) = obj
            .keys()
            .find(|k| !self.spec.tasks.iter().any(|t| &t.name == *k))
        {
            return Err(Error::invalid(format!(
                "labels: unknown task `{k}` (tasks: {})",
                self.task_names().join(", ")
            )));
        }
        for t in &self.spec.tasks {
            let v = obj
                .get(&t.name)
                .ok_or_else(|| Error::invalid(format!("labels: no value for task `{}`", t.name)))?;
            t.kind.check_label(v).map_err(|want| {
                Error::invalid(format!(
                    "labels: task `{}` ({}) needs {want}, got {v}",
                    t.name,
                    t.kind.name()
                ))
            })?;
        }
        Ok(obj.clone())
    }

    fn task_names(&self) -> Vec<&str> {
        self.spec.tasks.iter().map(|t| t.name.as_str()).collect()
    }

    /// Trains heads on the examples added so far, replacing earlier trained heads only on
    /// success. `progress` sees an `embed` record per chunk of texts embedded (losses NaN),
    /// then every epoch; returning `false` cancels with [`ErrorKind::Cancelled`].
    pub fn train(&mut self, progress: Progress<'_>) -> Result<&TrainReport> {
        if self.train_set.rows.is_empty() {
            return Err(Error::invalid("no training examples: add some first"));
        }
        let config = self.spec.config.clone();
        let mut specs = Vec::new();
        let mut targets = Vec::new();
        for t in &self.spec.tasks {
            let (s, y) = TaskSpec::infer(
                &t.name,
                t.kind,
                &t.name,
                &self.train_set.rows,
                t.positive.as_deref(),
            )?;
            specs.push(s);
            targets.push(y);
        }
        let all = self.examples(&self.train_set.clone(), targets, progress)?;
        let (train, valid) = if self.valid_set.rows.is_empty() {
            split_examples_of(&all, &config, &specs[0])?
        } else {
            let vt = specs
                .iter()
                .map(|s| s.parse(&s.name, &self.valid_set.rows))
                .collect::<Result<Vec<_>>>()?;
            (all, self.examples(&self.valid_set.clone(), vt, progress)?)
        };
        let trained = super::train(&specs, &train, &valid, &config, progress)?;
        Ok(&self.trained.insert(trained).report)
    }

    /// Embeddings and raw features for a set, as the mode needs them.
    fn examples(
        &mut self,
        set: &ExampleSet,
        targets: Vec<Targets>,
        progress: Progress<'_>,
    ) -> Result<Examples> {
        let refs: Vec<&str> = set.texts.iter().map(String::as_str).collect();
        let needs = Needs::of(&self.spec.config);
        let (ex, _) = examples::build(&refs, targets, needs, |texts| self.embed(texts, progress))?;
        Ok(ex)
    }

    /// Whether the heads being trained read per-token vectors.
    fn wants_tokens(&self) -> bool {
        Needs::of(&self.spec.config).tokens
    }

    /// Embeds each distinct text once per trainer (and once ever with the disk cache), in
    /// chunks so that `progress` can cancel between them (an `embed` record per chunk, losses
    /// NaN); with sequence heads, also returns the per-token vectors.
    fn embed(
        &mut self,
        texts: &[&str],
        progress: Progress<'_>,
    ) -> Result<(Array2<f32>, Option<TokenSeqs>)> {
        let want_tokens = self.wants_tokens();
        let mut missing: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for &t in texts {
            let have = self
                .memo
                .get(t)
                .is_some_and(|m| !want_tokens || m.tokens.is_some());
            if !have && seen.insert(t) {
                missing.push(t);
            }
        }
        let dim = self.backbone.dim();
        let cap = self.spec.config.cache.max_size;
        let (backbone, pooled, tokens, memo) = (
            &self.backbone,
            self.disk_cache.as_ref(),
            self.token_cache.as_ref(),
            &mut self.memo,
        );
        // Each chunk goes into the memo as soon as it is embedded: a cancelled run keeps it.
        // The cache cap is kept after every chunk, so the caches never hold more than the cap
        // and one chunk's vectors.
        let embed = |chunk: &[&str]| {
            let (emb, seqs, stats) = embed_for_heads(backbone, pooled, tokens, chunk, want_tokens)?;
            keep_caches_under(cap, pooled, tokens)?;
            for (k, (t, row)) in chunk.iter().zip(emb.rows()).enumerate() {
                let tokens = seqs.as_ref().map(|s| s.text(k).to_vec().into_boxed_slice());
                memo.insert(
                    t.to_string(),
                    Memo {
                        pooled: row.to_vec().into_boxed_slice(),
                        tokens,
                    },
                );
            }
            Ok((emb, seqs, stats))
        };
        let report = |c: &crate::cache::Chunk| {
            progress(&EpochRecord {
                stage: "embed".into(),
                epoch: c.index,
                epochs: c.chunks,
                train_loss: f32::NAN,
                valid_loss: f32::NAN,
                metric: None,
                lr: 0.0,
                elapsed: 0.0,
            })
        };
        embed_chunked(&missing, dim, want_tokens, embed, report)?;
        // Also when every text was in memory: the cap holds after the pass.
        keep_caches_under(cap, self.disk_cache.as_ref(), self.token_cache.as_ref())?;
        let mut out = Array2::zeros((texts.len(), dim));
        let mut tokens = want_tokens.then(|| TokenSeqs::new(dim));
        for (mut row, t) in out.rows_mut().into_iter().zip(texts) {
            let m = &self.memo[*t];
            row.assign(&ndarray::ArrayView1::from(&m.pooled[..]));
            if let Some(all) = tokens.as_mut() {
                all.push_f16(m.tokens.as_deref().expect("embedded with tokens above"));
            }
        }
        Ok((out, tokens))
    }

    fn trained(&self) -> Result<&Trained> {
        self.trained
            .as_ref()
            .ok_or_else(|| Error::invalid("not trained yet: call train first"))
    }

    /// The report of the last successful training run (stages, validation metrics, timings).
    pub fn report(&self) -> Result<&TrainReport> {
        Ok(&self.trained()?.report)
    }

    /// Metrics of the trained heads on labelled `texts` (labels as for
    /// [`add_example`](Self::add_example)), as the JSON `tandem eval` prints.
    pub fn evaluate(&mut self, texts: &[&str], labels: &[Value]) -> Result<Value> {
        if texts.len() != labels.len() {
            return Err(Error::invalid(format!(
                "{} texts but {} label objects",
                texts.len(),
                labels.len()
            )));
        }
        if texts.is_empty() {
            return Err(Error::invalid("nothing to evaluate"));
        }
        let heads = self.trained()?.heads.clone();
        let mut set = ExampleSet::default();
        for (t, l) in texts.iter().zip(labels) {
            set.push(t, self.check_labels(l)?);
        }
        let targets = heads
            .tasks
            .iter()
            .map(|t| t.spec.parse(&t.spec.name, &set.rows))
            .collect::<Result<Vec<_>>>()?;
        let mut ex = self.examples(&set, targets, &mut |_| true)?;
        if let Some(n) = &heads.normalizer {
            ex.feats = n.transform(ex.feats.view());
        }
        evaluate_arrays(
            &heads,
            ex.emb.view(),
            ex.feats.view(),
            ex.tokens.as_ref(),
            &ex.targets,
        )
    }

    /// A copy of the trained heads, ready for [`Model::swap_heads`](crate::model::Model::swap_heads).
    pub fn heads(&self) -> Result<Heads> {
        Ok(self.trained()?.heads.clone())
    }

    /// Saves the trained heads as a bundle in `dir` (atomically: a crash leaves no partial
    /// bundle).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let trained = self.trained()?;
        let config = &self.spec.config;
        let manifest = manifest_for(
            trained,
            BackboneRef::of(&self.backbone),
            &crate::metadata::feature_names(),
            config,
        );
        bundle::save(
            dir,
            &manifest,
            &trained.heads.network.weights(),
            config.f16_weights,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    #[test]
    fn specs_are_checked() {
        let ok = TrainerSpec::parse_json(
            r#"{"tasks":[{"name":"y","kind":"binary","positive":"spam"}],"config":{"seed":3}}"#,
        )
        .unwrap();
        assert_eq!(ok.config.seed, 3);
        assert!(ok.embedding_cache);
        for bad in [
            r#"{"tasks":[]}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"bogus":1}"#,
            r#"{"tasks":[{"name":"y","kind":"nope"}]}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"},{"name":"y","kind":"regression"}]}"#,
            r#"{"tasks":[{"name":"y","kind":"regression","positive":"a"}]}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"config":{"unknown_key":1}}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"config":{"seed":"x"}}"#,
            "not json",
        ] {
            let e = TrainerSpec::parse_json(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
        let e = TrainerSpec::parse_json(
            r#"{"tasks":[{"name":"y","kind":"binary"}],"config":{"unknown_key":1}}"#,
        )
        .unwrap_err();
        assert!(e.message().contains("unknown_key"), "{}", e.message());
    }

    #[test]
    fn label_shapes_are_checked_per_kind() {
        use TaskKind::*;
        assert!(Multiclass.check_label(&json!("a")).is_ok());
        assert!(Binary.check_label(&json!(true)).is_ok());
        assert!(Multiclass.check_label(&json!(["a"])).is_err());
        assert!(Multilabel.check_label(&json!(["a", "b"])).is_ok());
        assert!(Multilabel.check_label(&json!([])).is_ok());
        assert!(Multilabel.check_label(&json!("a")).is_err());
        assert!(Regression.check_label(&json!(1.5)).is_ok());
        assert!(Regression.check_label(&json!("2.5")).is_ok());
        assert!(Regression.check_label(&json!("nan")).is_err());
        assert!(Regression.check_label(&json!(null)).is_err());
    }
}
