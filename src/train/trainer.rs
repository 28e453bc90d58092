//! A trainer fed one example at a time: the stateful face of [`train`](super::train) that host
//! applications (and the C ABI) use to adapt heads on the device.
//!
//! Create it from a backbone and a JSON spec, add labelled examples (optionally a validation
//! set), train with a progress/cancel callback, evaluate, save a bundle, or hand the heads to a
//! live [`Model`](crate::model::Model). A failed or cancelled run leaves the examples and the
//! previously trained heads untouched, so nothing is lost.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ndarray::Array2;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::checkpoint::{CheckpointPolicy, Checkpoints};
use super::config::{ExplicitKeys, HeadKind, Mode, TrainConfig};
use super::examples::{self, split_examples_of, Examples, Needs};
use super::manifest::save_trained;
use super::run::{TrainReport, Trained};
use super::stage::{EpochRecord, Progress};
use super::tune::BackboneTop;
use crate::backbone::Backbone;
use crate::backbone::TokenSeqs;

use crate::cache::usage::keep_caches_under;
use crate::cache::{embed_chunked, embed_for_heads, EmbeddingCache, TokenCache, EMBED_CHUNK};
use crate::compare::select::{
    candidate_config, select_with, FineTuneCandidate, SelectOptions, Selection, Validation,
    Vectors, DEFAULT_BUDGET_SECONDS,
};
use crate::data::{Row, Targets, TaskKind, TaskSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::eval::evaluate_arrays;
use crate::heads::Heads;
use crate::onnx::split::SplitBackbone;

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

/// How a [`Trainer`] chooses its recipe (mode and head type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    /// The config's `mode` and `head.kind`, as given: a host that set them gets them, and
    /// training takes no longer than that recipe does.
    #[default]
    Config,
    /// Chosen by validation within `budget_seconds`, as `tandem train` does without `--mode`
    /// or `--head` ([`select`](crate::compare::select)): every candidate trains with the
    /// config's other settings.
    Auto,
}

/// What a [`Trainer`] is created from, as JSON:
/// `{"tasks": [{"name": "intent", "kind": "multiclass"}], "config": {...}, "embedding_cache": true}`,
/// optionally with `"recipe": "auto"` and `"budget_seconds": 60`.
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
    /// How the recipe is chosen (default: the config's).
    #[serde(default)]
    pub recipe: Recipe,
    /// Wall-clock budget of an `auto` recipe search in seconds (default
    /// [`DEFAULT_BUDGET_SECONDS`](crate::compare::select::DEFAULT_BUDGET_SECONDS)); the
    /// final fit is not counted.
    #[serde(default)]
    pub budget_seconds: Option<f64>,
    /// With `"recipe": "auto"` only: whether fine-tuning the backbone's top layers is a
    /// candidate (default true, where the backbone's graph splits under them; false keeps the
    /// bundle on the stock backbone, under a megabyte).
    #[serde(default)]
    pub finetune: Option<bool>,
    /// Checkpoints of the model's last stage, saved as it trains (recipe `config` only):
    /// `{"dir": "...", "keep_top": 3, "every": 0}` (see [`super::checkpoint`]).
    #[serde(default)]
    pub checkpoints: Option<CheckpointSpec>,
    /// The config keys the spec named (fine-tuning's measured defaults fill in the rest).
    #[serde(skip)]
    pub explicit: ExplicitKeys,
}

fn default_true() -> bool {
    true
}

/// Where and which checkpoints a [`Trainer`] saves while it trains.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// A new or empty directory.
    pub dir: std::path::PathBuf,
    /// The K best epochs by the last stage's `monitor` (default 3).
    #[serde(default = "default_keep_top")]
    pub keep_top: usize,
    /// Every N-th epoch too (default 0: none).
    #[serde(default)]
    pub every: usize,
}

fn default_keep_top() -> usize {
    3
}

impl TrainerSpec {
    /// Parses and validates a spec: at least one task, unique non-empty task names, a valid
    /// config.
    pub fn parse_json(text: &str) -> Result<Self> {
        let mut spec: TrainerSpec =
            serde_json::from_str(text).map_err(|e| Error::invalid(format!("trainer spec: {e}")))?;
        // Fine-tuning's measured recipe where the spec's config says nothing.
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::invalid(format!("trainer spec: {e}")))?;
        spec.explicit = ExplicitKeys::of_json(&raw["config"]);
        spec.config.apply_finetune_defaults(&spec.explicit);
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
        if spec.finetune.is_some() && spec.recipe != Recipe::Auto {
            return Err(Error::invalid(
                "trainer spec: `finetune` needs \"recipe\": \"auto\" (with the config's recipe, \
                 backbone.trainable_layers says what is fine-tuned)",
            ));
        }
        if let Some(b) = spec.budget_seconds {
            if spec.recipe != Recipe::Auto {
                return Err(Error::invalid(
                    "trainer spec: `budget_seconds` needs \"recipe\": \"auto\"",
                ));
            }
            if !(b.is_finite() && (0.0..=MAX_BUDGET_SECONDS).contains(&b)) {
                return Err(Error::invalid(format!(
                    "trainer spec: `budget_seconds` must be between 0 and {MAX_BUDGET_SECONDS}, got {b}"
                )));
            }
        }
        spec.config.validate()?;
        Ok(spec)
    }

    /// The recipe search's budget.
    fn budget(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(
            self.budget_seconds.unwrap_or(DEFAULT_BUDGET_SECONDS as f64),
        )
    }
}

/// The largest `budget_seconds` accepted: a day (a larger one is a unit mistake).
pub const MAX_BUDGET_SECONDS: f64 = 86_400.0;

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
    /// Texts without labels, for distillation (`[distill] teachers`).
    unlabelled: Vec<String>,
    trained: Option<Trained>,
    /// The config the trained heads were trained with (the chosen recipe's, after a search).
    trained_config: Option<TrainConfig>,
    /// The last search's outcome (`recipe: auto`).
    selection: Option<Selection>,
    /// The backbone split under its trainable layers (`[backbone] trainable_layers`), and the
    /// on-disk cache of the hidden states there.
    split: Option<(SplitBackbone, Option<TokenCache>)>,
}

/// The progress record of chunk `index` of `chunks` of an embedding pass (losses NaN).
fn embed_record(index: usize, chunks: usize) -> EpochRecord {
    EpochRecord {
        stage: "embed".into(),
        epoch: index,
        epochs: chunks,
        train_loss: f32::NAN,
        valid_loss: f32::NAN,
        metric: None,
        monitored: None,
        task_losses: Vec::new(),
        lr: 0.0,
        elapsed: 0.0,
    }
}

/// `split` with the on-disk cache of its hidden states, when the spec keeps one.
fn with_cache(
    split: SplitBackbone,
    backbone: &Backbone,
    cache: bool,
) -> Result<(SplitBackbone, Option<TokenCache>)> {
    let cache = cache
        .then(|| TokenCache::open_split(None, backbone, split.bottom_layers()))
        .transpose()?;
    Ok((split, cache))
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
        let auto = spec.recipe == Recipe::Auto;
        let uses_emb = auto || spec.config.mode != Mode::MetadataOnly;
        let disk_cache = if spec.embedding_cache && uses_emb {
            Some(EmbeddingCache::open(None, &backbone)?)
        } else {
            None
        };
        // Sequence heads on fine-tuned layers read the top layer's tokens, computed in training.
        let tuned = spec.config.backbone.trainable_layers > 0;
        let wants_tokens = (uses_emb && spec.config.head.kind == HeadKind::Sequence && !tuned)
            || (auto && backbone.has_token_output());
        if wants_tokens && !auto && !backbone.has_token_output() {
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
        let split = match spec.config.backbone.trainable_layers {
            // The fine-tuning candidate's layers, where the graph splits under them (a graph
            // of the user's own may not: then the search goes without it).
            0 if auto && spec.finetune != Some(false) => {
                let k = crate::compare::Arm::finetune_layers(&spec.config);
                match SplitBackbone::open(&backbone, k) {
                    Ok(split) => Some(with_cache(split, &backbone, spec.embedding_cache)?),
                    Err(_) => None,
                }
            }
            0 => None,
            _ if auto => {
                return Err(Error::invalid(
                    "trainer spec: \"recipe\": \"auto\" chooses the recipe, fine-tuning the \
                     backbone's top 2 layers among its candidates; a number of layers of your \
                     own (backbone.trainable_layers) needs the config's recipe",
                ))
            }
            k => Some(with_cache(
                SplitBackbone::open(&backbone, k)?,
                &backbone,
                spec.embedding_cache,
            )?),
        };
        Ok(Trainer {
            backbone,
            spec,
            disk_cache,
            token_cache,
            memo: HashMap::new(),
            train_set: ExampleSet::default(),
            valid_set: ExampleSet::default(),
            unlabelled: Vec::new(),
            trained: None,
            trained_config: None,
            selection: None,
            split,
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

    /// Adds a text without labels: with a teacher (`[distill] teachers`), it joins the
    /// training split with the teacher's decisions as its labels and the teacher's outputs as
    /// soft targets; training without a teacher refuses it.
    pub fn add_unlabelled(&mut self, text: &str) {
        self.unlabelled.push(text.to_string());
    }

    /// Unlabelled texts added so far.
    pub fn unlabelled_count(&self) -> usize {
        self.unlabelled.len()
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
        let distilling = !config.distill.teachers.is_empty();
        if !self.unlabelled.is_empty() && !distilling {
            return Err(Error::invalid(format!(
                "{} unlabelled texts were added, but no teacher labels them: name teacher \
                 bundles in the config's distill.teachers",
                self.unlabelled.len()
            )));
        }
        if self.spec.recipe == Recipe::Auto {
            if distilling {
                return Err(Error::invalid(
                    "trainer spec: distilling a teacher needs recipe \"config\" (the auto \
                     recipe's candidates train on the labels)",
                ));
            }
            if self.spec.checkpoints.is_some() {
                return Err(Error::invalid(
                    "trainer spec: checkpoints need recipe \"config\" (the auto recipe \
                     trains many candidates)",
                ));
            }
            return self.train_auto(&specs, targets, progress);
        }
        let mut all = self.examples(&self.train_set.clone(), targets, progress)?;
        let teacher = super::distill::load_teachers(&config, self.backbone.options())?;
        if let Some(t) = &teacher {
            let refs: Vec<&str> = self.train_set.texts.iter().map(String::as_str).collect();
            all.soft = Some(super::distill::teacher_outputs(t, &refs, &specs)?);
        }
        let (train, valid) = if self.valid_set.rows.is_empty() {
            split_examples_of(&all, &config, &specs[0])?
        } else {
            let vt = specs
                .iter()
                .map(|s| s.parse(&s.name, &self.valid_set.rows))
                .collect::<Result<Vec<_>>>()?;
            (all, self.examples(&self.valid_set.clone(), vt, progress)?)
        };
        let train = match &teacher {
            Some(t) if !self.unlabelled.is_empty() => {
                let texts = self.unlabelled.clone();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let outputs = super::distill::teacher_outputs(t, &refs, &specs)?;
                let set = ExampleSet {
                    texts: texts.clone(),
                    rows: Vec::new(),
                };
                let pseudo = super::distill::teacher_targets(t.tasks(), &outputs);
                let mut extra = self.examples(&set, pseudo, progress)?;
                extra.soft = Some(outputs);
                extra.strata = train
                    .strata
                    .as_ref()
                    .map(|_| vec![String::new(); texts.len()]);
                train.concat(extra)?
            }
            _ => train,
        };
        let top = self.split.as_ref().map(|(s, _)| self.pretrained_top(s));
        let backbone = Arc::clone(&self.backbone);
        let mut checkpoints = self
            .spec
            .checkpoints
            .as_ref()
            .map(|c| {
                let policy = CheckpointPolicy {
                    dir: c.dir.clone(),
                    keep_top: c.keep_top,
                    every: c.every,
                };
                let config = &config;
                Checkpoints::new(
                    policy,
                    Box::new(move |dir: &Path, t: &Trained| {
                        save_trained(dir, &backbone, t, config)
                    }),
                )
            })
            .transpose()?;
        let trained = super::train_checkpointed(
            &specs,
            &train,
            &valid,
            &config,
            top,
            checkpoints.as_mut(),
            progress,
        )?;
        drop(checkpoints);
        self.trained_config = Some(config);
        self.selection = None;
        Ok(&self.trained.insert(trained).report)
    }

    /// Chooses the recipe by validation within the budget and trains it (see [`Recipe::Auto`]).
    /// Per-token vectors are embedded only when the sequence candidate's turn comes, and a
    /// deadline reached while embedding them skips that candidate (the vectors done are kept
    /// in memory and in the cache).
    fn train_auto(
        &mut self,
        specs: &[TaskSpec],
        targets: Vec<Targets>,
        progress: Progress<'_>,
    ) -> Result<&TrainReport> {
        let pooled = Needs {
            embeddings: true,
            tokens: false,
            features: true,
        };
        let (train_set, valid_set) = (self.train_set.clone(), self.valid_set.clone());
        let all = self.examples_for(&train_set, targets, pooled, progress)?;
        let valid = if valid_set.rows.is_empty() {
            None
        } else {
            let vt = specs
                .iter()
                .map(|s| s.parse(&s.name, &valid_set.rows))
                .collect::<Result<Vec<_>>>()?;
            Some(self.examples_for(&valid_set, vt, pooled, progress)?)
        };
        let options = SelectOptions {
            config: self.spec.config.clone(),
            budget: self.spec.budget(),
            finetune: self.split.as_ref().map(|(s, _)| FineTuneCandidate {
                top: self.pretrained_top(s),
                explicit: self.spec.explicit.clone(),
            }),
            ..SelectOptions::default()
        };
        let has_tokens = self.backbone.has_token_output();
        // The host's callback serves both the token embedding and the candidates' epochs,
        // which never run at once.
        let host = RefCell::new(progress);
        let outcome = {
            let mut tokens = |kind: Vectors, which: &str, until: Instant| {
                let set = if which == "valid" {
                    &valid_set
                } else {
                    &train_set
                };
                if kind == Vectors::Hidden {
                    let texts: Vec<&str> = set.texts.iter().map(String::as_str).collect();
                    let mut h = host.borrow_mut();
                    return self.hidden_until(&texts, until, &mut *h);
                }
                if !has_tokens {
                    return Ok(Err(
                        "this backbone's graph has no per-token output".to_string()
                    ));
                }
                let texts: Vec<&str> = set.texts.iter().map(String::as_str).collect();
                let mut late = false;
                let mut h = host.borrow_mut();
                let mut until_deadline = |r: &EpochRecord| {
                    if Instant::now() >= until {
                        late = true;
                        return false;
                    }
                    h(r)
                };
                match self.embed(&texts, true, &mut until_deadline) {
                    Ok((_, Some(t))) => Ok(Ok(t)),
                    Ok((_, None)) => Ok(Err("no per-token vectors came back".to_string())),
                    Err(e) if e.kind() == ErrorKind::Cancelled && late => Ok(Err(
                        "its per-token embeddings did not finish within the budget (those done \
                         are kept: a rerun gets further)"
                            .to_string(),
                    )),
                    Err(e) => Err(e),
                }
            };
            let mut h = |r: &EpochRecord| (host.borrow_mut())(r);
            select_with(
                specs,
                &all,
                valid.as_ref(),
                &mut tokens,
                &options,
                &mut |_, _, _| {},
                &mut h,
            )
        };
        let (selection, trained, _) = outcome?;
        let cross_validated = matches!(selection.validation, Validation::CrossValidation { .. });
        self.trained_config = Some(candidate_config(
            selection.chosen,
            &options,
            specs,
            cross_validated,
        ));
        self.selection = Some(selection);
        Ok(&self.trained.insert(trained).report)
    }

    /// Embeddings and raw features for a set, as the mode needs them; with trainable backbone
    /// layers, the hidden states below them, and the embeddings the pretrained layers make of
    /// them.
    fn examples(
        &mut self,
        set: &ExampleSet,
        targets: Vec<Targets>,
        progress: Progress<'_>,
    ) -> Result<Examples> {
        let needs = Needs::of(self.config());
        // A search's fine-tuning candidate opens the split too; heads of a frozen winner read
        // the stock backbone's embeddings.
        let tuned = self.config().backbone.trainable_layers > 0;
        let Some((split, cache)) = self.split.as_ref().filter(|_| tuned) else {
            return self.examples_for(set, targets, needs, progress);
        };
        let refs: Vec<&str> = set.texts.iter().map(String::as_str).collect();
        let (hidden, _) = split.hidden(&self.backbone, cache.as_ref(), &refs)?;
        let emb = self.pretrained_top(split).embed(&hidden);
        let (mut ex, _) = examples::build(&refs, targets, needs, |_| Ok((emb, None)))?;
        ex.hidden = Some(hidden);
        Ok(ex)
    }

    /// The hidden states of `texts` under the fine-tuning candidate's layers, in chunks of
    /// [`EMBED_CHUNK`] texts (cached), each an `embed` record to `progress`; stops at `until` or
    /// when `progress` says so (then, like a deadline, a skip of that candidate).
    fn hidden_until(
        &self,
        texts: &[&str],
        until: Instant,
        progress: Progress<'_>,
    ) -> Result<std::result::Result<TokenSeqs, String>> {
        let (split, cache) = self.split.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "hidden states asked for without a split backbone",
            )
        })?;
        let mut all = TokenSeqs::new(self.backbone.dim());
        let chunks = texts.len().div_ceil(EMBED_CHUNK);
        for (index, run) in texts.chunks(EMBED_CHUNK).enumerate() {
            if Instant::now() >= until {
                return Ok(Err(
                    "its hidden states did not finish within the budget (those done are \
                     cached: a rerun gets further)"
                        .to_string(),
                ));
            }
            let (h, _) = split.hidden(&self.backbone, cache.as_ref(), run)?;
            all.extend(&h);
            // As embedding passes report their chunks.
            if !progress(&embed_record(index, chunks)) {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    "training cancelled by the progress callback (hidden states)",
                ));
            }
        }
        Ok(Ok(all))
    }

    /// The split's pretrained top layers, as fine-tuning starts from them.
    fn pretrained_top(&self, split: &SplitBackbone) -> BackboneTop {
        BackboneTop {
            layers: split.top().to_vec(),
            normalize: self.backbone.manifest().normalize,
            pooling: self.backbone.manifest().pooling,
        }
    }

    /// Embeddings and raw features for a set, as `needs` says.
    fn examples_for(
        &mut self,
        set: &ExampleSet,
        targets: Vec<Targets>,
        needs: Needs,
        progress: Progress<'_>,
    ) -> Result<Examples> {
        let refs: Vec<&str> = set.texts.iter().map(String::as_str).collect();
        let (ex, _) = examples::build(&refs, targets, needs, |texts| {
            self.embed(texts, needs.tokens, progress)
        })?;
        Ok(ex)
    }

    /// The config the heads were (or will be) trained with: the chosen recipe's after a
    /// search, else the spec's.
    fn config(&self) -> &TrainConfig {
        self.trained_config.as_ref().unwrap_or(&self.spec.config)
    }

    /// Embeds each distinct text once per trainer (and once ever with the disk cache), in
    /// chunks so that `progress` can cancel between them (an `embed` record per chunk, losses
    /// NaN); with sequence heads, also returns the per-token vectors.
    fn embed(
        &mut self,
        texts: &[&str],
        want_tokens: bool,
        progress: Progress<'_>,
    ) -> Result<(Array2<f32>, Option<TokenSeqs>)> {
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
        let report = |c: &crate::cache::Chunk| progress(&embed_record(c.index, c.chunks));
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

    /// The last recipe search's outcome: every candidate's score and the one chosen (None
    /// unless the last successful run had `"recipe": "auto"`).
    pub fn selection(&self) -> Option<&Selection> {
        self.selection.as_ref()
    }

    /// The report as JSON, with the recipe trained (`recipe`: its name) and, after a search,
    /// `selection` (the candidates, their scores, the choice) and `reason` (one sentence).
    pub fn report_json(&self) -> Result<Value> {
        let trained = self.trained()?;
        let mut v = serde_json::to_value(&trained.report)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("report: {e}")))?;
        let config = self.config();
        let recipe = match (&self.selection, config.head.kind) {
            (Some(s), _) => s.chosen.name().to_string(),
            (None, HeadKind::Linear) => "linear".to_string(),
            (None, HeadKind::Sequence) => format!("{} with a sequence head", config.mode.name()),
            (None, HeadKind::Pooled)
                if config.mode == Mode::TwoStage && config.unfreeze.at_epoch.is_some() =>
            {
                "two_stage_unfreeze".to_string()
            }
            (None, HeadKind::Pooled) => config.mode.name().to_string(),
        };
        v["recipe"] = Value::String(recipe);
        if let Some(s) = &self.selection {
            v["reason"] = Value::String(s.reason());
            v["selection"] = serde_json::to_value(s)
                .map_err(|e| Error::new(ErrorKind::Internal, format!("selection: {e}")))?;
        }
        Ok(v)
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
        // The heads read the fine-tuned layers' embeddings (and tokens, with sequence heads).
        if let (Some(top), Some(h)) = (&self.trained()?.top, &ex.hidden) {
            let (emb, tokens) = top.outputs(h, heads.network.sequence.is_some());
            ex.emb = emb;
            if tokens.is_some() {
                ex.tokens = tokens;
            }
        }
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
    /// Heads trained with fine-tuned backbone layers read that backbone's embeddings, which
    /// no live model computes: they are refused here (save the bundle and load it instead).
    pub fn heads(&self) -> Result<Heads> {
        let trained = self.trained()?;
        if trained.top.is_some() {
            return Err(Error::new(
                ErrorKind::BackboneMismatch,
                "these heads read the embeddings of a backbone whose top layers were fine-tuned \
                 with them: save the bundle (it carries that backbone) and load it as a model \
                 instead of swapping the heads into one",
            ));
        }
        Ok(trained.heads.clone())
    }

    /// Saves the trained heads as a bundle in `dir` (atomically: a crash leaves no partial
    /// bundle).
    pub fn save(&self, dir: &Path) -> Result<()> {
        super::manifest::save_trained(dir, &self.backbone, self.trained()?, self.config())
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
        assert_eq!(ok.recipe, Recipe::Config);
        let auto = TrainerSpec::parse_json(
            r#"{"tasks":[{"name":"y","kind":"binary"}],"recipe":"auto","budget_seconds":2.5}"#,
        )
        .unwrap();
        assert_eq!(auto.recipe, Recipe::Auto);
        assert_eq!(auto.budget(), std::time::Duration::from_millis(2500));
        assert_eq!(auto.finetune, None);
        let frozen = TrainerSpec::parse_json(
            r#"{"tasks":[{"name":"y","kind":"binary"}],"recipe":"auto","finetune":false}"#,
        )
        .unwrap();
        assert_eq!(frozen.finetune, Some(false));
        for bad in [
            r#"{"tasks":[]}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"bogus":1}"#,
            r#"{"tasks":[{"name":"y","kind":"nope"}]}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"},{"name":"y","kind":"regression"}]}"#,
            r#"{"tasks":[{"name":"y","kind":"regression","positive":"a"}]}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"config":{"unknown_key":1}}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"config":{"seed":"x"}}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"recipe":"best"}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"budget_seconds":5}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"finetune":false}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"recipe":"auto","finetune":1}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"recipe":"auto","budget_seconds":-1}"#,
            r#"{"tasks":[{"name":"y","kind":"binary"}],"recipe":"auto","budget_seconds":1e9}"#,
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
        // Fine-tuning takes the measured recipe for what the spec's config leaves unset.
        let ft = TrainerSpec::parse_json(
            r#"{"tasks":[{"name":"y","kind":"binary"}],
                "config":{"backbone":{"trainable_layers":2},"head":{"stage":{"epochs":7}}}}"#,
        )
        .unwrap();
        assert_eq!(ft.config.mode, Mode::EmbeddingOnly);
        assert_eq!(ft.config.head.stage.epochs, 7);
        assert_eq!(
            ft.config.loss.label_smoothing,
            crate::train::config::FINETUNE_LABEL_SMOOTHING
        );
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
