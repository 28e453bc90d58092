//! `tandem train`: labelled data in, a bundle (and optionally an HTML report) out.

use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tandem::bundle;
use tandem::compare::select::{self, SelectOptions};
use tandem::compare::Arm;
use tandem::data::{Row, TaskKind};
use tandem::onnx::split::SplitBackbone;
use tandem::train::checkpoint::{CheckpointPolicy, Checkpoints};
use tandem::train::config::{ExplicitKeys, HeadKind, LayerUnfreeze};
use tandem::train::manifest::save_trained;
use tandem::train::{examples, split_indices_of, Needs, Trained};
use tandem::train::{BackboneTop, Examples, Mode, TrainConfig};
use tandem::{Error, Result};

use crate::embed::embed_maybe_cached;
use crate::input::{LabelArgs, Labelled};
use crate::progress::{Log, LogArgs};
use crate::train_report;
use crate::BackboneArgs;

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: JSONL, or CSV with a header row.
    #[arg(long, required_unless_present = "print_config")]
    data: Option<PathBuf>,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the label; repeat (with --task) to train several heads together.
    #[arg(long, required_unless_present = "print_config")]
    label_field: Vec<String>,
    /// Task kind per label field: multiclass, binary, multilabel or regression.
    #[arg(long, required_unless_present = "print_config")]
    task: Vec<TaskKind>,
    /// Output bundle directory (replaced atomically).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Validation data; without it a stratified share of --data is held out.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Hold the validation share out stratified by these fields of --data (comma-separated;
    /// their combined values keep their proportions in both parts) instead of by the first
    /// task's labels. A label field may be one of them.
    #[arg(
        long,
        value_name = "FIELD,...",
        value_delimiter = ',',
        conflicts_with = "valid"
    )]
    stratify_by: Vec<String>,
    /// Training config (TOML; see `--print-config` for every option).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed (overrides the config's).
    #[arg(long)]
    seed: Option<u64>,
    /// Recipe, instead of choosing one by validation (--budget): two_stage, joint,
    /// embedding_only, metadata_only, two_stage_unfreeze (two_stage with the encoder unfrozen in
    /// stage 2 on `compare`'s schedule), linear, sequence or finetune (embedding_only with the
    /// backbone's top layers fine-tuned: the config's `[backbone] trainable_layers`, or 2), so
    /// that whatever `compare` names its winner trains.
    #[arg(long)]
    mode: Option<Arm>,
    /// Head type (overrides the config's head.kind): `pooled` reads the sentence embedding;
    /// `sequence` also reads every token's vector through a sequence encoder ([head.sequence]);
    /// `linear` is a regularized linear head solved to convergence, its regularization chosen
    /// by 5-fold cross-validation on every example (for small data; implies embedding_only).
    #[arg(long)]
    head: Option<HeadKind>,
    /// Start from an ONNX head's weights (an MLP on the pooled embedding, as `torch.onnx.export`
    /// writes one): sets one pooled embedding-only head of its shape (hidden widths,
    /// activation, LayerNorm), which trains further on the data.
    #[arg(long, value_name = "HEAD.onnx")]
    init_head: Option<PathBuf>,
    /// Start from the metadata encoder and feature normalizer another bundle pre-trained
    /// (mode two_stage skips stage 1 and keeps it frozen, or unfreezes it per [unfreeze];
    /// joint trains it further). Implies two_stage unless a mode is named.
    #[arg(long, value_name = "BUNDLE")]
    init_encoder: Option<PathBuf>,
    /// Distil this bundle's outputs into the heads (repeat to average several, as an ensemble
    /// predicts): each task's loss mixes the labels' with the teacher's soft targets
    /// (`[distill] weight` and `temperature`). The teacher needs the same tasks and labels; it
    /// may run another backbone (a fine-tuned or larger one). Implies a named recipe.
    #[arg(long, value_name = "BUNDLE")]
    teacher: Vec<PathBuf>,
    /// Texts without labels (text lines, or JSONL with --text-field) that join the training
    /// split with the teacher's decisions as their labels and its outputs as soft targets
    /// (with --teacher).
    #[arg(long, value_name = "FILE", requires = "teacher")]
    unlabelled: Option<PathBuf>,
    /// Fine-tune the backbone's top K layers with the heads (overrides the config's
    /// `[backbone] trainable_layers`; 0 keeps the backbone frozen). The bundle then carries the
    /// fine-tuned backbone as an ONNX graph, which serving runs instead of the stock one.
    #[arg(long, value_name = "K")]
    trainable_layers: Option<usize>,
    /// Time budget of the recipe search, in seconds, when neither --mode nor --head (nor the
    /// config's mode or head.kind) names a recipe: candidates are measured on validation data,
    /// cheapest first, until it is spent, and the best one is trained.
    #[arg(long, value_name = "SECONDS", default_value_t = tandem::compare::select::DEFAULT_BUDGET_SECONDS as f64)]
    budget: f64,
    /// Leave fine-tuning the backbone's top layers out of the recipe search (a frozen
    /// backbone keeps the bundle under a megabyte instead of carrying its own ~110 MB graphs).
    #[arg(long)]
    no_finetune: bool,
    /// Run the backbone on every text, without reading or writing the on-disk embedding caches
    /// (to time training end to end, embedding included).
    #[arg(long)]
    no_cache: bool,
    /// Positive label of a binary task (default: the rarer value, or 1/true).
    #[arg(long)]
    positive: Option<String>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Write a self-contained HTML training report here (curves, confusion matrix, per-class
    /// bars, calibration, thresholds or a regression scatter, on the validation set).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Save checkpoints here while the model's last stage trains: whole bundles of the best
    /// epochs (--keep-top) and of every N-th epoch (--checkpoint-every), listed in
    /// `checkpoints.json`. A new or empty directory.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Keep the bundles of the K best epochs by the stage's `monitor` (with --checkpoint-dir).
    #[arg(
        long,
        value_name = "K",
        requires = "checkpoint_dir",
        default_value_t = 3
    )]
    keep_top: usize,
    /// Also keep every N-th epoch's bundle (with --checkpoint-dir; 0: none).
    #[arg(
        long,
        value_name = "N",
        requires = "checkpoint_dir",
        default_value_t = 0
    )]
    checkpoint_every: usize,
    /// In the report, break validation metrics down by this field (like `eval --by`).
    #[arg(long, value_name = "FIELD", requires = "report")]
    report_by: Option<String>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

/// `tandem train`.
pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let (config, explicit) = config_of(&args)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let out = args
        .out
        .clone()
        .ok_or_else(|| Error::invalid("--out DIR is required"))?;
    // Before minutes of training, not after: --out must be a bundle, empty or new.
    bundle::check_target(&out)?;
    let data = args
        .data
        .clone()
        .ok_or_else(|| Error::invalid("--data FILE is required"))?;
    let labels = LabelArgs {
        data: &data,
        text_field: &args.text_field,
        label_fields: &args.label_field,
        tasks: &args.task,
        positive: args.positive.as_deref(),
    };
    let labelled = labels.read()?;
    let auto = recipe_is_open(&args)?;
    if auto {
        if args.checkpoint_dir.is_some() {
            return Err(Error::invalid(
                "--checkpoint-dir needs a named recipe (--mode or --head, or mode in the \
                 config): the recipe search trains many candidates",
            ));
        }
        check_auto(&args, &config, labelled.texts.len())?;
    }
    let mut log = Log::new(&args.log);
    let backbone = args.backbone.load(32)?;
    if auto {
        return run_auto(
            &args, &labels, labelled, config, explicit, &backbone, &mut log, &out, &data,
        );
    }
    let split = match config.backbone.trainable_layers {
        0 => None,
        k => Some(tandem::onnx::split::SplitBackbone::open(&backbone, k)?),
    };
    let sets = examples_of(
        &args,
        &labels,
        labelled,
        &config,
        &backbone,
        split.as_ref(),
        &log,
    )?;
    log.set_metric_name(train_report::metric_name(sets.specs[0].kind));
    let mut progress = |r: &tandem::train::EpochRecord| {
        // Threshold tuning takes milliseconds: not worth a line of its own.
        if r.stage != "thresholds" {
            log.epoch(r);
        }
        true
    };
    let mut checkpoints = args
        .checkpoint_dir
        .as_ref()
        .map(|dir| {
            let policy = CheckpointPolicy {
                dir: dir.clone(),
                keep_top: args.keep_top,
                every: args.checkpoint_every,
            };
            let config = &config;
            let backbone = &backbone;
            Checkpoints::new(
                policy,
                Box::new(move |path: &std::path::Path, t: &Trained| {
                    save_trained(path, backbone, t, config)
                }),
            )
        })
        .transpose()?;
    let trained = tandem::train::train_checkpointed(
        &sets.specs,
        &sets.train,
        &sets.valid,
        &config,
        split.as_ref().map(|s| top_of(s, &backbone)),
        checkpoints.as_mut(),
        &mut progress,
    )?;
    log.finish_stage();
    save_trained(&out, &backbone, &trained, &config)?;
    if let Some(path) = &args.report {
        write_report(path, &args, &data, &out, &config, &sets, &trained)?;
    }
    summarize(&mut log, &args, &out, &config, &trained, None);
    Ok(ExitCode::SUCCESS)
}

/// True when nothing names a recipe — no --mode, no --head, and no `mode` or `head.kind` in
/// the config file — so that `train` chooses one by validation.
fn recipe_is_open(args: &TrainArgs) -> Result<bool> {
    if args.mode.is_some()
        || args.head.is_some()
        || args.init_head.is_some()
        || args.init_encoder.is_some()
        || !args.teacher.is_empty()
        || args.trainable_layers.is_some_and(|k| k > 0)
    {
        return Ok(false);
    }
    let Some(path) = &args.config else {
        return Ok(true);
    };
    // Already parsed and checked by config_of; only which keys it sets matters here.
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: toml::Table = text
        .parse()
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    let head_kind = v
        .get("head")
        .and_then(|h| h.as_table())
        .is_some_and(|h| h.contains_key("kind"));
    let init_encoder = v
        .get("metadata")
        .and_then(|m| m.as_table())
        .is_some_and(|m| m.contains_key("init_encoder"));
    Ok(!v.contains_key("mode") && !head_kind && !init_encoder)
}

/// Refuses, before any work, what the recipe search cannot do.
fn check_auto(args: &TrainArgs, config: &TrainConfig, n: usize) -> Result<()> {
    if !(args.budget.is_finite() && args.budget >= 0.0) {
        return Err(Error::invalid(format!(
            "--budget {} must be a number of seconds, 0 or more",
            args.budget
        )));
    }
    let options = select_options(args, config);
    if args.report.is_some() && args.valid.is_none() && select::cross_validates(n, &options) {
        return Err(Error::invalid(format!(
            "--report needs --valid here: with fewer than {} examples the recipe is chosen by \
             cross-validation on every example, so nothing is held out to plot (or name a \
             recipe with --mode/--head)",
            options.cross_validate_below
        )));
    }
    Ok(())
}

fn select_options(args: &TrainArgs, config: &TrainConfig) -> SelectOptions {
    SelectOptions {
        config: config.clone(),
        budget: std::time::Duration::from_secs_f64(args.budget),
        ..SelectOptions::default()
    }
}

/// `train` with no recipe named: the search of [`tandem::compare::select`], then the bundle.
#[allow(clippy::too_many_arguments)]
fn run_auto(
    args: &TrainArgs,
    labels: &LabelArgs<'_>,
    labelled: Labelled,
    base: TrainConfig,
    explicit: ExplicitKeys,
    backbone: &tandem::Backbone,
    log: &mut Log,
    out: &std::path::Path,
    data: &std::path::Path,
) -> Result<ExitCode> {
    let mut options = select_options(args, &base);
    // The fine-tuning candidate, where the backbone's graph splits under its top layers (a
    // graph of the user's own may not).
    let split = if args.no_finetune {
        None
    } else {
        match SplitBackbone::open(backbone, Arm::finetune_layers(&base)) {
            Ok(s) => Some(s),
            Err(e) => {
                log.note(&format!("fine-tuning is not a candidate: {}", e.message()));
                None
            }
        }
    };
    options.finetune = split.as_ref().map(|s| select::FineTuneCandidate {
        top: top_of(s, backbone),
        explicit,
    });
    let cap = base.cache.max_size;
    // Every pooled candidate reads the embedding or the metadata features; per-token vectors
    // are fetched only if the sequence candidate's turn comes.
    let needs = Needs {
        embeddings: true,
        tokens: false,
        features: true,
    };
    let Labelled {
        rows,
        texts,
        specs,
        targets,
    } = labelled;
    log.set_metric_name(train_report::metric_name(specs[0].kind));
    let (embed_secs, feature_secs) = (Cell::new(0.0), Cell::new(0.0));
    let build = Builder {
        args,
        backbone,
        split: None,
        pretrained_emb: true,
        log,
        needs,
        cap,
        times: (&embed_secs, &feature_secs),
    };
    let mk = |texts: &[String], targets, what: &str| build.examples(texts, targets, what);
    let all = stratified(mk(&texts, targets, "train")?, &rows, &args.stratify_by)?;
    let valid = match &args.valid {
        Some(path) => {
            let v = labels.read_valid(path, &specs)?;
            Some((mk(&v.texts, v.targets, "valid")?, v.texts, v.rows))
        }
        None => None,
    };
    let mut tokens = |kind: select::Vectors, which: &str, until: std::time::Instant| {
        let texts = match (which, &valid) {
            ("valid", Some((_, t, _))) => t,
            _ => &texts,
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        if kind == select::Vectors::Hidden {
            let split = split.as_ref().ok_or_else(|| {
                Error::new(
                    tandem::ErrorKind::Internal,
                    "hidden states asked for without fine-tuning",
                )
            })?;
            let t0 = std::time::Instant::now();
            let r = build.hidden_states_until(split, &refs, which, Some(until));
            embed_secs.set(embed_secs.get() + t0.elapsed().as_secs_f64());
            return r;
        }
        let caches = (!args.no_cache)
            .then(|| {
                Ok::<_, Error>((
                    tandem::cache::EmbeddingCache::open(None, backbone)?,
                    tandem::cache::TokenCache::open(None, backbone)?,
                ))
            })
            .transpose()?;
        let t0 = std::time::Instant::now();
        let r = crate::embed::embed_texts_until(
            backbone,
            caches.as_ref().map(|c| &c.0),
            caches.as_ref().map(|c| &c.1),
            &refs,
            true,
            cap,
            log,
            &format!("{which} tokens"),
            Some(until),
        );
        embed_secs.set(embed_secs.get() + t0.elapsed().as_secs_f64());
        match r {
            Ok((_, Some(t))) => Ok(Ok(t)),
            Ok((_, None)) => Err(Error::new(
                tandem::ErrorKind::Internal,
                "the backbone returned no per-token vectors",
            )),
            Err(e) if e.kind() == tandem::ErrorKind::Cancelled => Ok(Err(
                "its per-token embeddings did not finish within the budget (those done are \
                 cached: a rerun gets further)"
                    .to_string(),
            )),
            Err(e) => Err(e),
        }
    };
    let (selection, trained, scored_on) = select::select(
        &specs,
        &all,
        valid.as_ref().map(|v| &v.0),
        &mut tokens,
        &options,
        &mut |c, i, n| log.candidate(c, i, n),
    )?;
    let cross_validated = matches!(
        selection.validation,
        select::Validation::CrossValidation { .. }
    );
    let config = select::candidate_config(selection.chosen, &options, &specs, cross_validated);
    save_trained(out, backbone, &trained, &config)?;
    if let Some(path) = &args.report {
        // The validation data the chosen recipe was scored on (check_auto refused the rest).
        let vex = scored_on.ok_or_else(|| {
            Error::invalid("--report: the recipe was cross-validated; nothing was held out")
        })?;
        let vrows = match valid {
            Some((_, _, rows)) => rows,
            None => {
                let (_, va) = select::hold_out(&all, &base, &specs[0])?;
                va.iter().map(|&i| rows[i].clone()).collect()
            }
        };
        let sets = Sets {
            specs: specs.clone(),
            train: all.select(&[]),
            valid: vex,
            valid_rows: vrows,
            embed_seconds: embed_secs.get(),
            feature_seconds: feature_secs.get(),
        };
        write_report(path, args, data, out, &config, &sets, &trained)?;
    }
    summarize(log, args, out, &config, &trained, Some(&selection));
    Ok(ExitCode::SUCCESS)
}

/// The effective config: the file's (or the defaults), with the command line's overrides; and
/// the settings the file and flags named.
fn config_of(args: &TrainArgs) -> Result<(TrainConfig, ExplicitKeys)> {
    let (mut config, mut explicit) = match &args.config {
        Some(p) => TrainConfig::load_explicit(p)?,
        None => (TrainConfig::default(), ExplicitKeys::default()),
    };
    if let Some(s) = args.seed {
        config.seed = s;
    }
    if let Some(k) = args.trainable_layers {
        config.backbone.trainable_layers = k;
    }
    if args.mode.is_some() {
        explicit.insert("mode");
    }
    match args.mode {
        // Exactly the config compare trained that arm with (its unfreezing schedule too).
        Some(Arm::TwoStageUnfreeze) => config = Arm::TwoStageUnfreeze.config(&config, config.seed),
        // The recipes named by their head type set it too.
        Some(arm @ (Arm::Linear | Arm::Sequence)) => {
            config.mode = arm.mode();
            config.head.kind = arm.head(config.head.kind);
        }
        // Exactly what compare's finetune arm trains (its layers unless the config names some).
        Some(Arm::FineTune) => {
            config.mode = Arm::FineTune.mode();
            config.head.kind = Arm::FineTune.head(config.head.kind);
            config.backbone.trainable_layers = Arm::finetune_layers(&config);
        }
        Some(arm) => config.mode = arm.mode(),
        None => {}
    }
    if let Some(h) = args.head {
        config.head.kind = h;
        // The linear recipe reads the embedding alone; say so only when the mode conflicts.
        if h == HeadKind::Linear && args.mode.is_none() {
            config.mode = Mode::EmbeddingOnly;
        }
    }
    // Fine-tuning's measured recipe where the config and flags say nothing.
    config.apply_finetune_defaults(&explicit);
    if let Some(path) = &args.init_encoder {
        config.metadata.init_encoder = Some(path.clone());
    }
    if !args.teacher.is_empty() {
        config.distill.teachers = args.teacher.clone();
    }
    if let Some(path) = &args.init_head {
        // The imported head decides the shape; the config keeps its optimisation settings.
        if args.mode.is_some_and(|m| m.mode() != Mode::EmbeddingOnly) || args.head.is_some() {
            return Err(Error::invalid(
                "--init-head trains a pooled head on the embedding alone: it takes no --head, \
                 and no --mode but embedding_only",
            ));
        }
        let head = tandem::onnx::import::read_head(path)?;
        config.mode = Mode::EmbeddingOnly;
        config.head.kind = HeadKind::Pooled;
        config.head.hidden = head.config.hidden.clone();
        config.head.activation = head.config.activation;
        config.head.layer_norm = head.config.layer_norm;
        config.head.init = Some(path.clone());
    }
    config.validate()?;
    if config.head.kind == HeadKind::Linear && args.report.is_some() && args.valid.is_none() {
        return Err(Error::invalid(
            "--report needs --valid with the linear recipe: it holds nothing out (it \
             cross-validates on every example), so there is no validation set to plot",
        ));
    }
    Ok((config, explicit))
}

/// The training and validation examples, the tasks, the validation rows (kept for the
/// report's breakdown column) and the wall times of embedding and feature extraction.
struct Sets {
    specs: Vec<tandem::data::TaskSpec>,
    train: Examples,
    valid: Examples,
    valid_rows: Vec<Row>,
    embed_seconds: f64,
    feature_seconds: f64,
}

/// The examples of the training data and of `--valid`, or of a stratified hold-out of the
/// training data.
fn examples_of(
    args: &TrainArgs,
    labels: &LabelArgs<'_>,
    labelled: Labelled,
    config: &TrainConfig,
    backbone: &tandem::Backbone,
    split: Option<&SplitBackbone>,
    log: &Log,
) -> Result<Sets> {
    let needs = Needs::of(config);
    let (embed_secs, feature_secs) = (Cell::new(0.0), Cell::new(0.0));
    let build = Builder {
        args,
        backbone,
        split,
        pretrained_emb: config.backbone.unfreeze != LayerUnfreeze::Partial,
        log,
        needs,
        cap: config.cache.max_size,
        times: (&embed_secs, &feature_secs),
    };
    let mk = |texts: &[String], targets, what: &str| build.examples(texts, targets, what);
    let Labelled {
        rows,
        texts,
        specs,
        targets,
    } = labelled;
    let mut all = stratified(mk(&texts, targets, "train")?, &rows, &args.stratify_by)?;
    let teacher = tandem::train::distill::load_teachers(config, &args.backbone.options(32))?;
    if let Some(t) = &teacher {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        log.note(&format!(
            "distilling {} teacher bundle(s) on {} texts",
            config.distill.teachers.len(),
            refs.len()
        ));
        all.soft = Some(tandem::train::distill::teacher_outputs(t, &refs, &specs)?);
    }
    let (train, valid, valid_rows) = match &args.valid {
        Some(path) => {
            let v = labels.read_valid(path, &specs)?;
            (all, mk(&v.texts, v.targets, "valid")?, v.rows)
        }
        None => {
            let (tr, va) = split_indices_of(&all, config, Some(&specs[0]))?;
            let vr = va.iter().map(|&i| rows[i].clone()).collect();
            (all.select(&tr), all.select(&va), vr)
        }
    };
    let train = match (&args.unlabelled, &teacher) {
        (Some(path), Some(t)) => {
            let texts: Vec<String> = crate::input::read_input(Some(path), &args.text_field)?
                .into_iter()
                .map(|r| r.text)
                .collect();
            if texts.is_empty() {
                return Err(Error::invalid(format!("{}: no texts", path.display())));
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let outputs = tandem::train::distill::teacher_outputs(t, &refs, &specs)?;
            let targets = tandem::train::distill::teacher_targets(t.tasks(), &outputs);
            let mut extra = mk(&texts, targets, "unlabelled")?;
            extra.soft = Some(outputs);
            // Splits are made; the strata only need to line up.
            extra.strata = train
                .strata
                .as_ref()
                .map(|_| vec!["unlabelled".to_string(); texts.len()]);
            log.note(&format!(
                "{} unlabelled texts join the training split with the teacher's labels",
                texts.len()
            ));
            train.concat(extra)?
        }
        _ => train,
    };
    Ok(Sets {
        specs,
        train,
        valid,
        valid_rows,
        embed_seconds: embed_secs.get(),
        feature_seconds: feature_secs.get(),
    })
}

/// `all`, split on the `--stratify-by` fields' values when any are named.
fn stratified(all: Examples, rows: &[Row], fields: &[String]) -> Result<Examples> {
    if fields.is_empty() {
        return Ok(all);
    }
    all.stratified_by(crate::input::field_strata(rows, fields)?)
}

/// `--report`: the HTML training report.
fn write_report(
    path: &std::path::Path,
    args: &TrainArgs,
    data: &std::path::Path,
    out: &std::path::Path,
    config: &TrainConfig,
    sets: &Sets,
    trained: &Trained,
) -> Result<()> {
    let summary = tandem::report::RunSummary {
        data: data.display().to_string(),
        validation: match &args.valid {
            Some(v) => v.display().to_string(),
            None => format!(
                "{:.0}% of the training data, held out (stratified by {}, seed {})",
                config.valid_fraction * 100.0,
                if args.stratify_by.is_empty() {
                    sets.specs[0].name.clone()
                } else {
                    args.stratify_by.join(" + ")
                },
                config.seed
            ),
        },
        bundle: Some(out.display().to_string()),
        timings: vec![
            ("embedding".into(), sets.embed_seconds),
            ("metadata features".into(), sets.feature_seconds),
        ],
        config_toml: config.to_toml(),
    };
    train_report::write(
        path,
        &summary,
        trained,
        &sets.valid,
        &sets.valid_rows,
        args.report_by.as_deref(),
    )
}

/// The headline metrics of one task's metrics object, as "name value" pairs.
fn headline_of(m: &serde_json::Value) -> String {
    crate::eval::figures(m, &["macro_f1", "accuracy", "rmse", "mae"])
}

/// Builds examples (embeddings through the caches, metadata features) and adds up the time
/// spent embedding and extracting features.
struct Builder<'a> {
    args: &'a TrainArgs,
    backbone: &'a tandem::Backbone,
    /// The backbone split under its trainable layers, when they train.
    split: Option<&'a SplitBackbone>,
    /// With `split`: whether the examples need the pretrained top's embeddings (else zeros).
    pretrained_emb: bool,
    log: &'a Log,
    needs: Needs,
    cap: u64,
    times: (&'a Cell<f64>, &'a Cell<f64>),
}

impl Builder<'_> {
    fn examples(
        &self,
        texts: &[String],
        targets: Vec<tandem::data::Targets>,
        what: &str,
    ) -> Result<Examples> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let hidden = std::cell::RefCell::new(None);
        let (mut ex, t) = examples::build(&refs, targets, self.needs, |refs| {
            if let Some(split) = self.split {
                // The bottom's hidden states (cached), and the embeddings the pretrained top
                // layers make of them: the backbone's, without running it again. When every
                // trainable layer trains from the first epoch, training recomputes them at
                // every step through the layers as they train and reads these for their width
                // only (tests/finetune.rs), so they stay zeros: the pretrained top over every
                // text is about 5% of a TREC fine-tune's time. (Progressive unfreezing's
                // heads-only epochs read them.)
                let h = self.hidden_states(split, refs, what)?;
                let emb = if self.pretrained_emb {
                    top_of(split, self.backbone).embed(&h)
                } else {
                    ndarray::Array2::zeros((h.len(), self.backbone.dim()))
                };
                *hidden.borrow_mut() = Some(h);
                return Ok((emb, None));
            }
            embed_maybe_cached(
                self.backbone,
                refs,
                self.needs.tokens,
                !self.args.no_cache,
                self.cap,
                self.log,
                what,
            )
        })?;
        ex.hidden = hidden.into_inner();
        self.times.0.set(self.times.0.get() + t.embed_seconds);
        self.times.1.set(self.times.1.get() + t.feature_seconds);
        Ok(ex)
    }

    /// The hidden states of `texts` below the trainable layers, through the split's cache
    /// unless --no-cache.
    fn hidden_states(
        &self,
        split: &SplitBackbone,
        texts: &[&str],
        what: &str,
    ) -> Result<tandem::backbone::TokenSeqs> {
        self.hidden_states_until(split, texts, what, None)?
            .map_err(|why| Error::new(tandem::ErrorKind::Internal, why))
    }

    /// [`Builder::hidden_states`] in runs of [`HIDDEN_RUN`] texts, stopping at `until` if
    /// given (a skip of the fine-tuning candidate, not an error: the runs done are cached).
    fn hidden_states_until(
        &self,
        split: &SplitBackbone,
        texts: &[&str],
        what: &str,
        until: Option<std::time::Instant>,
    ) -> Result<std::result::Result<tandem::backbone::TokenSeqs, String>> {
        let cache = (!self.args.no_cache)
            .then(|| {
                tandem::cache::TokenCache::open_split(None, self.backbone, split.bottom_layers())
            })
            .transpose()?;
        let progress = self
            .log
            .texts(&format!("{what} (bottom layers)"), texts.len());
        let mut all = tandem::backbone::TokenSeqs::new(self.backbone.dim());
        let mut total = tandem::cache::CacheStats::default();
        for run in texts.chunks(HIDDEN_RUN) {
            if until.is_some_and(|u| std::time::Instant::now() >= u) {
                return Ok(Err(
                    "its hidden states did not finish within the budget (those done are \
                     cached: a rerun gets further)"
                        .to_string(),
                ));
            }
            let (h, stats) = split.hidden(self.backbone, cache.as_ref(), run)?;
            all.extend(&h);
            total.add(stats);
        }
        self.log.embedded(progress, texts.len(), total);
        Ok(Ok(all))
    }
}

/// Texts per deadline check of [`Builder::hidden_states_until`]: seconds of work each.
const HIDDEN_RUN: usize = 256;

/// The split's pretrained top layers, as training starts from them.
fn top_of(split: &SplitBackbone, backbone: &tandem::Backbone) -> BackboneTop {
    BackboneTop {
        layers: split.top().to_vec(),
        normalize: backbone.manifest().normalize,
        pooling: backbone.manifest().pooling,
    }
}

/// The closing lines (text) or event (JSON) of a training run: the recipe (and, when it was
/// chosen, why), then every task's validation metrics.
fn summarize(
    log: &mut Log,
    args: &TrainArgs,
    out: &std::path::Path,
    config: &TrainConfig,
    trained: &Trained,
    selection: Option<&select::Selection>,
) {
    let m = &trained.report.valid_metrics;
    if log.json() {
        let mut metrics = m.clone();
        if let Some(o) = metrics.as_object_mut() {
            // Per-task details (confusion matrices, per-class lists) stay in the bundle.
            o.retain(|_, v| v.is_number());
        }
        let tasks: serde_json::Map<String, serde_json::Value> = m
            .get("tasks")
            .and_then(|t| t.as_object())
            .map(|t| {
                t.iter()
                    .map(|(name, v)| {
                        let mut v = v.clone();
                        if let Some(o) = v.as_object_mut() {
                            o.retain(|_, x| x.is_number());
                        }
                        (name.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        log.done(serde_json::json!({
            "command": "train",
            "recipe": selection.map_or_else(|| recipe_name(config), |s| s.chosen.name().to_string()),
            "mode": config.mode.name(),
            "head": config.head.kind.name(),
            "selection": selection,
            "linear": trained.report.linear,
            "n_train": trained.report.n_train,
            "n_valid": trained.report.n_valid,
            "train_seconds": trained.report.train_seconds,
            "metrics": metrics,
            "tasks": tasks,
            "bundle": out.display().to_string(),
            "report": args.report.as_ref().map(|p| p.display().to_string()),
            "checkpoints": args.checkpoint_dir.as_ref().map(|p| p.display().to_string()),
            "monitor": trained.report.stages.last().map(|s| &s.monitor),
            "learned_task_weights": tandem::train::manifest::learned_weights(trained),
        }));
        return;
    }
    if let Some(s) = selection {
        eprintln!("{}", s.reason());
    }
    // The linear recipe says what cross-validation chose; its validation is out-of-fold
    // unless a --valid file was given.
    let (recipe, validation) = match &trained.report.linear {
        Some(tasks) => {
            let chosen: Vec<String> = tasks
                .iter()
                .map(|t| match t.c {
                    Some(c) => format!("{} C = {c:.3}, {}", t.task, t.scheme()),
                    None => format!("{} C = 1 (too few examples to cross-validate)", t.task),
                })
                .collect();
            // Out-of-fold scores every example; a hold-out (a --valid file, or the search's
            // split before the refit on everything) fewer.
            let v = if args.valid.is_some() || trained.report.n_valid != trained.report.n_train {
                "validation"
            } else {
                "cross-validation (out-of-fold)"
            };
            (format!("a linear head ({})", chosen.join("; ")), v)
        }
        // Under cross-validation the winner's final fit holds nothing out: its scores are on
        // the data it trained on.
        None if selection.is_some_and(|s| {
            matches!(s.validation, select::Validation::CrossValidation { .. })
        }) =>
        {
            (
                recipe_name(config),
                "training data (cross-validated search: nothing held out)",
            )
        }
        None => (recipe_name(config), "validation"),
    };
    let tasks = m.get("tasks").and_then(|t| t.as_object());
    let headline = match tasks {
        Some(t) if t.len() > 1 => String::new(),
        _ => format!("; {validation}: {}", headline_of(m)),
    };
    let kept = kept_epoch(trained);
    eprintln!(
        "trained {recipe} ({} train / {} valid) in {:.1}s{kept}{headline}; bundle: {}",
        trained.report.n_train,
        trained.report.n_valid,
        trained.report.train_seconds,
        out.display()
    );
    if let Some(t) = tasks.filter(|t| t.len() > 1) {
        for (name, v) in t {
            eprintln!("  {name}: {validation}: {}", headline_of(v));
        }
    }
    if let Some(p) = &args.report {
        eprintln!("report: {}", p.display());
    }
    if let Some(w) = tandem::train::manifest::learned_weights(trained) {
        let each: Vec<String> = w.iter().map(|(t, w)| format!("{t} {w:.3}")).collect();
        eprintln!("learned task weights (uncertainty): {}", each.join(", "));
    }
    if let Some(dir) = &args.checkpoint_dir {
        eprintln!(
            "checkpoints: {} (listed in {})",
            dir.display(),
            tandem::train::checkpoint::INDEX_FILE
        );
    }
}

/// The recipe's name: mode and head type.
fn recipe_name(config: &TrainConfig) -> String {
    let base = frozen_recipe_name(config);
    match config.backbone.trainable_layers {
        0 => base,
        k => format!("{base} with the backbone's top {k} layers fine-tuned"),
    }
}

/// The recipe's name as on a frozen backbone.
fn frozen_recipe_name(config: &TrainConfig) -> String {
    match config.head.kind {
        HeadKind::Pooled if config.mode == Mode::TwoStage && config.unfreeze.at_epoch.is_some() => {
            format!(
                "two_stage (encoder unfrozen at stage-2 epoch {})",
                config.unfreeze.at_epoch.unwrap_or(0) + 1
            )
        }
        HeadKind::Pooled => config.mode.name().to_string(),
        h => format!("{} with a {} head", config.mode.name(), h.name()),
    }
}

/// Which epoch early stopping kept, when it stopped a stage short or kept an earlier epoch.
fn kept_epoch(trained: &Trained) -> String {
    if trained.report.linear.is_some() {
        return String::new();
    }
    let Some(last) = trained.report.stages.last() else {
        return String::new();
    };
    if last.best_epoch + 1 == last.epochs_run {
        return String::new();
    }
    let (name, direction) = last
        .monitor
        .rsplit_once(" (")
        .unwrap_or((last.monitor.as_str(), "min)"));
    let best = if direction.starts_with("max") {
        "highest"
    } else {
        "lowest"
    };
    format!(
        "; kept {} epoch {} of {} ({best} {} {:.4})",
        last.stage,
        last.best_epoch + 1,
        last.epochs_run,
        name.replace("valid_loss", "validation loss"),
        last.best_monitored
    )
}
