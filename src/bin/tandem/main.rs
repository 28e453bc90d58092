//! The `tandem` command-line tool.

mod compare;
mod doctor;
mod embed;
mod eval;
mod input;
mod inspect;
mod predict;
mod progress;
mod train;
mod train_report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tandem::bundle;
use tandem::model::Model;
use tandem::{Backbone, BackboneOptions, Device, Error, Result, Variant};

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "Embedded text classification that learns on the device"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed text lines or JSONL (`text` field); write JSONL or .npy.
    Embed(embed::EmbedArgs),
    /// Check the ONNX Runtime library, execution providers and model files.
    Doctor(doctor::DoctorArgs),
    /// Train heads on labelled JSONL/CSV and save a bundle.
    Train(train::TrainArgs),
    /// Evaluate a bundle on labelled data; prints metrics as JSON.
    Eval(eval::EvalArgs),
    /// Predict with a bundle; writes JSONL.
    Predict(predict::PredictArgs),
    /// Train every mode on the same splits over several seeds; table of mean ± sd and a verdict.
    Compare(compare::CompareArgs),
    /// Show what a bundle holds: tasks, metrics, provenance, architecture, files, weights.
    Inspect(inspect::InspectArgs),
    /// Show the named metadata features of a text.
    Features(inspect::FeaturesArgs),
}

/// Options shared by every command that loads a backbone.
#[derive(Args, Clone)]
pub(crate) struct BackboneArgs {
    /// Backbone directory (default: the cache's all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR")]
    backbone: Option<PathBuf>,
    /// Graph variant: fp32, opt or int8 (default fp32; for a bundle, the one it was trained on).
    #[arg(long)]
    variant: Option<Variant>,
    /// Execution provider: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// ONNX Runtime library (default: $TANDEM_ORT_LIB, then the cache).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
}

impl BackboneArgs {
    fn variant_given(&self) -> bool {
        self.variant.is_some()
    }

    fn dir(&self) -> PathBuf {
        self.backbone
            .clone()
            .unwrap_or_else(tandem::home::default_backbone_dir)
    }

    fn load(&self, batch_size: usize) -> Result<Backbone> {
        Backbone::load(
            self.dir(),
            BackboneOptions {
                variant: self.variant.unwrap_or_default(),
                device: self.device,
                threads: self.threads,
                ort_library: self.ort_lib.clone(),
                batch_size,
                ..Default::default()
            },
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_log = match &cli.command {
        Command::Embed(a) => a.log.log_format,
        Command::Train(a) => a.log.log_format,
        Command::Eval(a) => a.log.log_format,
        Command::Predict(a) => a.log.log_format,
        Command::Doctor(_) | Command::Compare(_) | Command::Inspect(_) | Command::Features(_) => {
            progress::LogFormat::Text
        }
    } == progress::LogFormat::Json;
    let result = match cli.command {
        Command::Embed(args) => embed::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Compare(args) => compare::compare(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Features(args) => inspect::features(args),
    };
    match result {
        Ok(code) => code,
        Err(e) if json_log => {
            progress::event(
                "error",
                serde_json::json!({"kind": e.kind().name(), "code": e.code(), "message": e.message()}),
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tandem: error [{}]: {}", e.kind(), e.message());
            ExitCode::FAILURE
        }
    }
}

/// Loads a bundle on the backbone it names (the variant it was trained with unless overridden).
pub(crate) fn load_model(dir: &Path, backbone_args: &BackboneArgs) -> Result<Model> {
    let manifest_path = dir.join(bundle::MANIFEST_FILE);
    let text = tandem::files::read_text(&manifest_path, tandem::files::BUNDLE_MANIFEST)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(format!("{}: {e}", manifest_path.display())))?;
    let mut args = backbone_args.clone();
    if !backbone_args.variant_given() {
        if let Some(var) = v["backbone"]["variant"].as_str() {
            args.variant = Some(var.parse()?);
        }
    }
    let backbone = Arc::new(args.load(32)?);
    Model::load(dir, backbone)
}
