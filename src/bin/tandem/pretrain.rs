//! `tandem pretrain`: unlabelled texts in, an encoder bundle out (a metadata encoder and its
//! feature normalizer, pre-trained on self-supervised targets) for `train --init-encoder`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use tandem::train::pretrain::{pretrain_texts, save_encoder, summary};
use tandem::train::TrainConfig;
use tandem::{bundle, Result};

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

/// The texts as borrowed strings.
fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
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
    let train = texts(&args.data)?;
    let valid = args.valid.as_ref().map(texts).transpose()?;
    let valid_refs = valid.as_deref().map(refs);
    log.note(&format!(
        "pre-training on {} texts{}, targets {}",
        train.len(),
        match &valid {
            Some(v) => format!(" ({} more for validation)", v.len()),
            None => format!(
                " ({:.0}% held out for validation)",
                config.valid_fraction * 100.0
            ),
        },
        config.metadata.stage1_targets.join(", ")
    ));
    let mut progress = |r: &tandem::train::EpochRecord| {
        log.epoch(r);
        true
    };
    let trained = pretrain_texts(&refs(&train), valid_refs.as_deref(), &config, &mut progress)?;
    save_encoder(&args.out, &trained, &config)?;
    let summary = summary(&trained);
    if !log.json() && !args.log.quiet {
        let losses = summary["target_losses"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "encoder bundle: {}  (best epoch {} of {}, validation loss {:.4}: {losses})",
            args.out.display(),
            summary["best_epoch"].as_u64().unwrap_or(0) + 1,
            summary["epochs_run"],
            summary["valid_loss"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "use it: tandem train --init-encoder {} ...",
            args.out.display()
        );
    }
    log.done(json!({
        "out": args.out,
        "best_epoch": summary["best_epoch"],
        "epochs_run": summary["epochs_run"],
        "valid_loss": round_to(summary["valid_loss"].as_f64().unwrap_or(f64::NAN), 6),
        "target_losses": summary["target_losses"],
    }));
    Ok(ExitCode::SUCCESS)
}
