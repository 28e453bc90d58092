//! `tandem compare`: every training mode on the same data and splits, over several seeds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use tandem::bundle::BackboneRef;
use tandem::cache::TokenCache;
use tandem::compare::{compare as run_compare, Arm, CompareOptions, CompareSummary};
use tandem::data::TaskKind;
use tandem::onnx::split::SplitBackbone;
use tandem::train::{examples, BackboneTop, Examples, Needs, TrainConfig};
use tandem::{Error, ErrorKind, Result};

use crate::embed::embed;
use crate::input::{LabelArgs, Labelled};
use crate::BackboneArgs;

#[derive(Args)]
pub struct CompareArgs {
    /// Labelled data: JSONL, or CSV with a header row. A stratified test split is held out.
    #[arg(long)]
    data: PathBuf,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the label; repeat (with --task) to train several heads together. The first
    /// one is scored and ranked.
    #[arg(long, required = true)]
    label_field: Vec<String>,
    /// Task kind per label field: multiclass, binary, multilabel or regression.
    #[arg(long, required = true)]
    task: Vec<TaskKind>,
    /// Validation data; without it a stratified share (the config's valid_fraction) of what is
    /// left after the test split is held out.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Share of --data held out as the test split.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the test and validation splits (default: the config's seed).
    #[arg(long)]
    split_seed: Option<u64>,
    /// Number of training seeds: the config's seed and the ones after it.
    #[arg(long, default_value_t = 3, conflicts_with = "seed_list")]
    seeds: usize,
    /// Explicit training seeds, comma-separated (e.g. 0,1,2).
    #[arg(long, value_delimiter = ',')]
    seed_list: Vec<u64>,
    /// Base training config (TOML); each run sets its own mode, seed and unfreezing.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Head type of every mode's runs (overrides the config's head.kind): pooled or sequence.
    /// Without it, the modes run pooled heads and the linear and sequence recipes run too.
    #[arg(long)]
    head: Option<tandem::train::config::HeadKind>,
    /// Recipes to compare, comma-separated (default all but finetune): embedding_only,
    /// metadata_only, joint, two_stage, two_stage_unfreeze, linear, sequence, and finetune (a
    /// pooled embedding-only head with the backbone's top layers fine-tuned under it: the
    /// config's `[backbone] trainable_layers`, or 2).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    modes: Vec<Arm>,
    /// Sample-efficiency curves: run the comparison on these shares of the training split
    /// (comma-separated, in (0, 1], e.g. 0.1,0.25,0.5,1; stratified, split seed), each with the
    /// same validation and test splits, and print the test metric per mode and share.
    #[arg(long, value_delimiter = ',', value_name = "SHARE,...")]
    fractions: Vec<f64>,
    /// Positive label of a binary task (default: the rarer value, or 1/true).
    #[arg(long)]
    positive: Option<String>,
    /// Write every run, the aggregates and the verdict as JSON.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Write the table and verdict as Markdown.
    #[arg(long, value_name = "OUT.md")]
    markdown: Option<PathBuf>,
    /// Write a self-contained HTML page with the table and verdict.
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
    /// No per-run output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    backbone: BackboneArgs,
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

pub fn compare(args: CompareArgs) -> Result<ExitCode> {
    let mut options = options_of(&args)?;
    let labels = LabelArgs {
        data: &args.data,
        text_field: &args.text_field,
        label_fields: &args.label_field,
        tasks: &args.task,
        positive: args.positive.as_deref(),
    };
    let Labelled {
        texts,
        specs,
        targets,
        ..
    } = labels.read()?;
    let backbone = args.backbone.load(32)?;
    // The finetune arm trains the backbone's top layers on the hidden states below them.
    let split = if options.arms.contains(&Arm::FineTune) {
        let split = SplitBackbone::open(&backbone, Arm::finetune_layers(&options.config))?;
        options.top = Some(BackboneTop {
            layers: split.top().to_vec(),
            normalize: backbone.manifest().normalize,
            pooling: backbone.manifest().pooling,
        });
        Some(split)
    } else {
        None
    };
    // One set of examples serves every arm: what any of them reads.
    let needs = options.arms.iter().fold(Needs::default(), |n, arm| {
        n.union(Needs::of(&arm.config(&options.config, 0)))
    });
    let quiet = args.quiet;
    let log = crate::progress::Log::new(&crate::progress::LogArgs {
        quiet,
        log_format: crate::progress::LogFormat::Text,
    });
    let mk = |texts: &[String], targets| -> Result<Examples> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (mut ex, _) = examples::build(&refs, targets, needs, |refs| {
            let cap = options.config.cache.max_size;
            embed(&backbone, refs, needs.tokens, cap, &log, "data")
        })?;
        if let Some(split) = &split {
            let cache = TokenCache::open_split(None, &backbone, split.bottom_layers())?;
            let progress = log.texts("data (bottom layers)", refs.len());
            let (hidden, stats) = split.hidden(&backbone, Some(&cache), &refs)?;
            log.embedded(progress, refs.len(), stats);
            ex.hidden = Some(hidden);
        }
        Ok(ex)
    };
    let all = mk(&texts, targets)?;
    let valid = match &args.valid {
        Some(path) => {
            let v = labels.read_valid(path, &specs)?;
            Some(mk(&v.texts, v.targets)?)
        }
        None => None,
    };
    let fractions = if args.fractions.is_empty() {
        vec![1.0]
    } else {
        args.fractions.clone()
    };
    let total = options.arms.len() * options.seeds.len() * fractions.len();
    let mut done = 0;
    let mut summaries = Vec::new();
    for &fraction in &fractions {
        options.train_fraction = fraction;
        let summary = run_compare(&specs, &all, valid.as_ref(), &options, &mut |r| {
            done += 1;
            if !quiet {
                let metrics = r
                    .test
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                eprintln!(
                    "[{done}/{total}] {} seed {}{}: best valid loss {:.4} after {:.2}s of {:.2}s; test {metrics}",
                    r.arm,
                    r.seed,
                    if fractions.len() > 1 {
                        format!(" at {:.0}%", fraction * 100.0)
                    } else {
                        String::new()
                    },
                    r.best_valid_loss,
                    r.seconds_to_best,
                    r.train_seconds
                );
            }
        })?;
        summaries.push(summary);
    }
    write_outputs(&args, &summaries, BackboneRef::of(&backbone))?;
    Ok(ExitCode::SUCCESS)
}

/// The comparison's settings from the command line: the config, the seeds and the arms.
fn options_of(args: &CompareArgs) -> Result<CompareOptions> {
    let (mut config, explicit) = match &args.config {
        Some(p) => TrainConfig::load_explicit(p)?,
        None => (TrainConfig::default(), Default::default()),
    };
    if let Some(h) = args.head {
        config.head.kind = h;
    }
    let seeds: Vec<u64> = if args.seed_list.is_empty() {
        if args.seeds == 0 {
            return Err(Error::invalid("--seeds must be at least 1"));
        }
        (0..args.seeds as u64)
            .map(|i| config.seed.wrapping_add(i))
            .collect()
    } else {
        args.seed_list.clone()
    };
    // Every recipe by default; with --head, the modes with that head type.
    let arms = if !args.modes.is_empty() {
        args.modes.clone()
    } else if args.head.is_some() {
        Arm::MODES.to_vec()
    } else {
        Arm::DEFAULT.to_vec()
    };
    Ok(CompareOptions {
        split_seed: args.split_seed.unwrap_or(config.seed),
        config,
        arms,
        seeds,
        test_fraction: args.test_fraction,
        top: None,
        explicit: Some(explicit),
        train_fraction: 1.0,
        memory: Some(crate::memory_probe()),
    })
}

/// The table on standard output (one per share of the training data, then the curves), and
/// the JSON, Markdown and HTML files asked for: the JSON has every share's comparison (under
/// `fractions` when there are several), Markdown and HTML the last share's, Markdown with the
/// curves.
fn write_outputs(
    args: &CompareArgs,
    summaries: &[CompareSummary],
    backbone: BackboneRef,
) -> Result<()> {
    let Some(last) = summaries.last() else {
        return Ok(());
    };
    let curves = (summaries.len() > 1).then(|| tandem::compare::efficiency_table(summaries));
    for s in summaries {
        if summaries.len() > 1 {
            println!("== {:.0}% of the training split", s.train_fraction * 100.0);
        }
        print!("{}", s.table());
    }
    if let Some(c) = &curves {
        print!("\n{c}");
    }
    if let Some(p) = &args.json {
        write_file(p, &json_report(summaries, args, backbone)?)?;
    }
    if let Some(p) = &args.markdown {
        let mut md = last.to_markdown();
        if let Some(c) = &curves {
            md.push_str(&format!("\n```\n{c}```\n"));
        }
        write_file(p, &md)?;
    }
    if let Some(p) = &args.html {
        write_file(p, &last.to_html())?;
    }
    Ok(())
}

/// The summary plus where the data came from and which backbone embedded it.
fn json_report(
    summaries: &[CompareSummary],
    args: &CompareArgs,
    backbone: BackboneRef,
) -> Result<String> {
    let internal = |e: serde_json::Error| Error::new(ErrorKind::Internal, e.to_string());
    let mut v = match summaries {
        [one] => serde_json::to_value(one).map_err(internal)?,
        many => serde_json::json!({
            "fractions": serde_json::to_value(many).map_err(internal)?,
            "curves": tandem::compare::efficiency_table(many),
        }),
    };
    v["data"] = serde_json::json!(args.data.display().to_string());
    v["valid"] = serde_json::json!(args.valid.as_ref().map(|p| p.display().to_string()));
    v["backbone"] = serde_json::to_value(backbone).map_err(internal)?;
    v["tandem_version"] = serde_json::json!(tandem::VERSION);
    serde_json::to_string_pretty(&v).map_err(internal)
}
