//! `tandem pretrain`: unlabelled texts in, an encoder bundle out (a metadata encoder and its
//! feature normalizer, pre-trained on self-supervised targets) for `train --init-encoder`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use tandem::train::pretrain::{pretrain, save_encoder};
use tandem::train::TrainConfig;
use tandem::{bundle, Error, Result};

use crate::input::read_input;
use crate::progress::{round_to, Log, LogArgs};

#[derive(Args)]
pub struct PretrainArgs {
    /// Unlabelled texts: text lines, or JSONL with the text in --text-field.
    #[arg(long)]
    data: PathBuf,
    /// Field holding the text (JSONL).
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Validation texts for early stopping; without it a share of --data (the config's
    /// valid_fraction) is held out at random.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Output encoder bundle directory (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Self-supervised targets (comma-separated): masked_features, and feature groups such as
    /// length and readability (see `[metadata] stage1_targets`). Default: the config's
    /// (masked_features, length, readability unless it sets them).
    #[arg(long, value_name = "TARGET,...", value_delimiter = ',')]
    targets: Vec<String>,
    /// Training config (TOML): `[metadata]` sets the encoder's shape, `mask_rate` and
    /// `[metadata.stage]` its optimisation.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed (overrides the config's).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// `tandem pretrain`.
pub fn run(args: PretrainArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(p) => TrainConfig::load_explicit(p)?.0,
        None => TrainConfig::default(),
    };
    if let Some(s) = args.seed {
        config.seed = s;
    }
    if !args.targets.is_empty() {
        config.metadata.stage1_targets = args.targets.clone();
    }
    config.metadata.validate_targets()?;
    bundle::check_target(&args.out)?;
    let mut log = Log::new(&args.log);
    let texts = |path: &PathBuf| -> Result<Vec<String>> {
        Ok(read_input(Some(path), &args.text_field)?
            .into_iter()
            .map(|r| r.text)
            .collect())
    };
    let all = texts(&args.data)?;
    let (train, valid) = match &args.valid {
        Some(v) => (all, texts(v)?),
        None => {
            let one = vec![String::new(); all.len()];
            let (t, v) = tandem::data::stratified_split(&one, config.valid_fraction, config.seed);
            if t.is_empty() || v.is_empty() {
                return Err(Error::invalid(format!(
                    "{} texts cannot be split into training and validation texts \
                     (valid_fraction {}): give more, or --valid FILE",
                    all.len(),
                    config.valid_fraction
                )));
            }
            let pick = |idx: &[usize]| idx.iter().map(|&i| all[i].clone()).collect();
            (pick(&t), pick(&v))
        }
    };
    let features = |texts: &[String]| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        tandem::metadata::extract_batch(&refs)
    };
    let (train_feats, valid_feats) = (features(&train), features(&valid));
    log.note(&format!(
        "pre-training on {} texts ({} for validation), targets {}",
        train.len(),
        valid.len(),
        config.metadata.stage1_targets.join(", ")
    ));
    let mut progress = |r: &tandem::train::EpochRecord| {
        log.epoch(r);
        true
    };
    let trained = pretrain(
        train_feats.view(),
        valid_feats.view(),
        &config,
        &mut progress,
    )?;
    save_encoder(&args.out, &trained, &config)?;
    let stage = &trained.report.stages[0];
    let losses = &trained.report.valid_metrics["pretext_target_losses"];
    if !log.json() && !args.log.quiet {
        println!(
            "encoder bundle: {}  (best epoch {} of {}, validation loss {:.4}: {})",
            args.out.display(),
            stage.best_epoch + 1,
            stage.epochs_run,
            stage.best_valid_loss,
            losses
                .as_object()
                .map(|m| m
                    .iter()
                    .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
        println!(
            "use it: tandem train --init-encoder {} ...",
            args.out.display()
        );
    }
    log.done(json!({
        "out": args.out,
        "best_epoch": stage.best_epoch,
        "valid_loss": round_to(stage.best_valid_loss as f64, 6),
        "target_losses": losses,
    }));
    Ok(ExitCode::SUCCESS)
}
