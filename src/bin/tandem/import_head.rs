//! `tandem import-head`: an ONNX MLP head (as `torch.onnx.export` writes one) made into a bundle.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tandem::data::{TaskKind, TaskSpec};
use tandem::onnx::import::{self, OutputFunction};
use tandem::{Error, Result};

use crate::BackboneArgs;

/// Arguments of `tandem import-head`.
#[derive(Args)]
pub struct ImportHeadArgs {
    /// The head graph: an MLP from the pooled embedding to one task's logits.
    head: PathBuf,
    /// The bundle directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Label names in output order, comma-separated (binary: negative,positive; regression:
    /// none).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Task kind (default: multiclass for a softmax or several logits, binary or multilabel
    /// for a sigmoid, by the output width).
    #[arg(long)]
    kind: Option<TaskKind>,
    /// Task name.
    #[arg(long, default_value = "label")]
    task: String,
    #[command(flatten)]
    backbone: BackboneArgs,
}

/// Runs `tandem import-head`.
pub fn run(args: ImportHeadArgs) -> Result<ExitCode> {
    let head = import::read_head(&args.head)?;
    let kind = match args.kind {
        Some(k) => k,
        None => match (head.output, head.output_dim) {
            (OutputFunction::Sigmoid, 1) => TaskKind::Binary,
            (OutputFunction::Sigmoid, _) => TaskKind::Multilabel,
            (_, k) if k > 1 => TaskKind::Multiclass,
            _ => {
                return Err(Error::invalid(
                    "the head has one output and no sigmoid: say --kind binary or regression",
                ))
            }
        },
    };
    let spec = TaskSpec {
        name: args.task.clone(),
        kind,
        labels: args.labels.clone(),
    };
    let backbone = args.backbone.load(32)?;
    let heads = import::import_bundle(&args.head, spec, &backbone, &args.out)?;
    let arch = &heads.network.arch;
    println!(
        "imported {} ({} -> {:?} -> {}, {:?}{}) as a {} task `{}`; bundle: {}",
        args.head.display(),
        arch.emb_dim,
        arch.head.hidden,
        arch.outputs[0],
        arch.head.activation,
        if arch.head.layer_norm {
            ", LayerNorm"
        } else {
            ""
        },
        kind.name(),
        args.task,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
