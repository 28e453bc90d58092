//! `tandem export`: a trained model as one ONNX graph that stock ONNX Runtime runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tandem::{Device, Result, Variant};

use crate::BackboneArgs;

/// Arguments of `tandem export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Bundle directory.
    model: PathBuf,
    /// The graph file to write; `tokenizer.json` and `<stem>.tandem.json` (labels, thresholds,
    /// metadata feature names) go beside it.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Which backbone graph the export starts from: fp32, int8 (the quantized graph, for CPUs)
    /// or opt (fp32 with ONNX Runtime's fused operators).
    #[arg(long, default_value = "fp32")]
    variant: Variant,
    /// Backbone directory (default: the cache's all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR")]
    backbone: Option<PathBuf>,
    /// ONNX Runtime library (default: $TANDEM_ORT_LIB, then the cache).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
}

/// Runs `tandem export`.
pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let backbone = BackboneArgs {
        backbone: args.backbone.clone(),
        variant: None,
        device: Device::Cpu,
        threads: None,
        ort_lib: args.ort_lib.clone(),
        heads: Default::default(),
    };
    let model = crate::load_model(&args.model, &backbone)?;
    let done = tandem::onnx::export::export(&model, args.variant, &args.out)?;
    println!(
        "wrote {} ({:.1} MB, {} backbone graph)",
        done.path.display(),
        done.bytes as f64 / 1e6,
        args.variant
    );
    println!("  inputs:  {}", done.inputs.join(", "));
    println!("  outputs: {}", done.outputs.join(", "));
    for f in &done.beside {
        println!("  beside:  {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
