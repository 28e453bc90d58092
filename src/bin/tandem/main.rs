//! The `tandem` command-line tool.

mod backbone;
mod cache;
mod compare;
mod doctor;
mod embed;
mod eval;
mod export;
mod import_head;
mod input;
mod inspect;
mod pack;
mod predict;
mod pretrain;
mod progress;
mod train;
mod train_report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait, INSTRUMENTED_SYSTEM};
use tandem::model::Model;
use tandem::{Backbone, BackboneOptions, Device, Error, HeadsEngine, Result, Variant};

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    long_version = LONG_VERSION,
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
    /// Pre-train a metadata encoder on unlabelled texts (self-supervised targets) and save it
    /// as an encoder bundle for `train --init-encoder`.
    Pretrain(pretrain::PretrainArgs),
    /// Evaluate a bundle on labelled data: a readable summary, or every metric as JSON (--json).
    Eval(eval::EvalArgs),
    /// Predict with a bundle; writes JSONL, or a TSV table with `--format tsv`.
    Predict(predict::PredictArgs),
    /// Train every mode on the same splits over several seeds; table of mean ± sd and a verdict.
    Compare(compare::CompareArgs),
    /// Show what a bundle holds: tasks, metrics, provenance, architecture, files, weights.
    Inspect(inspect::InspectArgs),
    /// Gather what a device needs to run a bundle from C (library, header, ONNX Runtime, the
    /// bundle's graph, tokenizer, bundle) into one directory, and print its size.
    Pack(pack::PackArgs),
    /// Write a trained model as one ONNX graph (backbone and heads) for stock ONNX Runtime.
    Export(export::ExportArgs),
    /// Make a bundle from an ONNX MLP head (as torch.onnx.export writes one) and label names.
    ImportHead(import_head::ImportHeadArgs),
    /// Show the named metadata features of a text.
    Features(inspect::FeaturesArgs),
    /// Show the embedding caches (size per backbone and kind) or prune them by age or to a cap.
    Cache(cache::CacheArgs),
    /// The installed backbones: list them, or compare their speed, memory and accuracy.
    Backbone(backbone::BackboneArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `tandem man > tandem.1`.
    Man,
}

/// Cargo features this build has, for `--version`.
#[cfg(feature = "cuda")]
macro_rules! features {
    () => {
        "cuda"
    };
}
#[cfg(not(feature = "cuda"))]
macro_rules! features {
    () => {
        "none (CPU only)"
    };
}

/// `tandem --version`: the version, the commit it was built from and the enabled features. The
/// ONNX Runtime library is found at run time (`tandem doctor` reports which one and its
/// version); this build needs its C API 31 (`ort`'s `api-31`), so ONNX Runtime 1.31 or newer.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("TANDEM_GIT_COMMIT"),
    "\nfeatures: ",
    features!(),
    "\nONNX Runtime: loaded at run time, C API 31 (1.31 or newer); `tandem doctor` shows the library",
);

/// Options shared by every command that loads a backbone.
#[derive(Args, Clone)]
pub(crate) struct BackboneArgs {
    /// Backbone: a name setup installs (`minilm-l6`), a directory name under the cache's
    /// `models/`, or a path (default: the cache's all-MiniLM-L6-v2).
    #[arg(long, value_name = "NAME|DIR")]
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
    /// What runs a model's heads: native code, or ONNX Runtime on the heads written as an ONNX
    /// graph (the same results to 1e-5).
    #[arg(long, default_value = "native", value_name = "native|onnx")]
    heads: HeadsEngine,
}

impl BackboneArgs {
    fn dir(&self) -> PathBuf {
        self.backbone
            .as_deref()
            .map(tandem::home::resolve_backbone)
            .unwrap_or_else(tandem::home::default_backbone_dir)
    }

    fn options(&self, batch_size: usize) -> BackboneOptions {
        BackboneOptions {
            variant: self.variant.unwrap_or_default(),
            device: self.device,
            threads: self.threads,
            ort_library: self.ort_lib.clone(),
            batch_size,
            heads: self.heads,
            ..Default::default()
        }
    }

    fn load(&self, batch_size: usize) -> Result<Backbone> {
        Backbone::load(self.dir(), self.options(batch_size))
    }
}

/// `tandem --version` in full: [`LONG_VERSION`], then the ONNX Runtime library this process
/// would load and its version, found without loading it.
fn print_version() {
    println!("tandem {LONG_VERSION}");
    let (path, source) = tandem::runtime::locate_library(None);
    let version = tandem::runtime::library_version(&path);
    match (path.exists(), version) {
        (true, Some(v)) => println!(
            "ONNX Runtime library: {v} at {} ({source:?})",
            path.display()
        ),
        (true, None) => println!("ONNX Runtime library: {} ({source:?})", path.display()),
        (false, _) => println!(
            "ONNX Runtime library: not found at {} ({source:?}; run scripts/setup.sh)",
            path.display()
        ),
    }
}

/// The system allocator, counting live heap bytes: `compare` reports each run's peak.
#[global_allocator]
static HEAP: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// `compare`'s measure of a run's peak memory: the heap counter above.
pub(crate) fn memory_probe() -> tandem::compare::MemoryProbe {
    tandem::compare::MemoryProbe {
        reset: || HEAP.reset_peak_memory(),
        peak: || HEAP.get_peak_memory() as u64,
    }
}

fn main() -> ExitCode {
    // Only the full form: `-V` stays clap's one-line version, for scripts.
    if std::env::args().skip(1).eq(["--version"]) {
        print_version();
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    let json_log = match &cli.command {
        Command::Embed(a) => a.log.log_format,
        Command::Train(a) => a.log.log_format,
        Command::Pretrain(a) => a.log.log_format,
        Command::Eval(a) => a.log.log_format,
        Command::Predict(a) => a.log.log_format,
        Command::Doctor(_)
        | Command::Compare(_)
        | Command::Inspect(_)
        | Command::Pack(_)
        | Command::Export(_)
        | Command::ImportHead(_)
        | Command::Features(_)
        | Command::Cache(_)
        | Command::Backbone(_)
        | Command::Completions { .. }
        | Command::Man => progress::LogFormat::Text,
    } == progress::LogFormat::Json;
    let result = match cli.command {
        Command::Embed(args) => embed::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Train(args) => train::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Compare(args) => compare::compare(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Pack(args) => pack::run(args),
        Command::Export(args) => export::run(args),
        Command::ImportHead(args) => import_head::run(args),
        Command::Features(args) => inspect::features(args),
        Command::Cache(args) => cache::run(args),
        Command::Backbone(args) => backbone::run(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "tandem", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map(|_| ExitCode::SUCCESS)
            .map_err(|e| Error::new(tandem::ErrorKind::Io, format!("writing the man page: {e}"))),
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
    load_model_batched(dir, backbone_args, 32)
}

/// [`load_model`] with at most `batch_size` texts per backbone run.
pub(crate) fn load_model_batched(
    dir: &Path,
    backbone_args: &BackboneArgs,
    batch_size: usize,
) -> Result<Model> {
    let backbone = backbone_args
        .backbone
        .as_deref()
        .map(tandem::home::resolve_backbone);
    Model::open_on(
        dir,
        backbone_args.options(batch_size),
        backbone_args.variant,
        backbone.as_deref(),
    )
}
