//! The `tandem` command-line tool.

mod compare;
mod heads;
mod inspect;
mod progress;
mod train_report;

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tandem::{Backbone, BackboneOptions, Device, Error, ErrorKind, Result, Variant};

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
    Embed(EmbedArgs),
    /// Check the ONNX Runtime library, execution providers and model files.
    Doctor(DoctorArgs),
    /// Train heads on labelled JSONL/CSV and save a bundle.
    Train(heads::TrainArgs),
    /// Evaluate a bundle on labelled data; prints metrics as JSON.
    Eval(heads::EvalArgs),
    /// Predict with a bundle; writes JSONL.
    Predict(heads::PredictArgs),
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

#[derive(Args)]
struct EmbedArgs {
    /// Input file; `-` or nothing reads standard input.
    input: Option<PathBuf>,
    /// Write a float32 .npy matrix here instead of JSONL to standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Texts per graph run.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Skip the on-disk embedding cache (by default cached texts are not embedded again).
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    log: progress::LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[derive(Args)]
struct DoctorArgs {
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backbone: BackboneArgs,
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
        Command::Embed(args) => embed(args),
        Command::Doctor(args) => doctor(args),
        Command::Train(args) => heads::train(args),
        Command::Eval(args) => heads::eval(args),
        Command::Predict(args) => heads::predict(args),
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

/// One input record: its text and, for JSONL, its `id` and all its fields.
pub(crate) struct Record {
    text: String,
    id: Option<serde_json::Value>,
    fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Records from a file, or from standard input for `None` or `-`.
pub(crate) fn read_input(input: Option<&Path>) -> Result<Vec<Record>> {
    match input {
        None => read_records(std::io::stdin().lock(), "<stdin>"),
        Some(p) if p == Path::new("-") => read_records(std::io::stdin().lock(), "<stdin>"),
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            read_records(std::io::BufReader::new(f), &p.display().to_string())
        }
    }
}

/// Reads text lines, or JSONL objects with a `text` field when the first non-blank line is a
/// JSON object. A later line that is not valid JSONL is an error naming its line number.
pub(crate) fn read_records(reader: impl BufRead, source: &str) -> Result<Vec<Record>> {
    let mut lines = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::InvalidData {
                ErrorKind::InvalidUtf8
            } else {
                ErrorKind::Io
            };
            Error::new(kind, format!("{source}:{}: {e}", n + 1))
        })?;
        lines.push(line);
    }
    let jsonl = lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with('{'));
    if !jsonl {
        return Ok(lines
            .into_iter()
            .map(|text| Record {
                text,
                id: None,
                fields: None,
            })
            .collect());
    }
    let mut out = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| Error::format(format!("{source}:{}: {why}", n + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("object has no string `text` field"))?;
        out.push(Record {
            text: text.to_string(),
            id: v.get("id").cloned(),
            fields: v.as_object().cloned(),
        });
    }
    Ok(out)
}

/// Embeddings of `texts` in chunks, through the on-disk caches given (cached texts cost a
/// lookup), with progress and a log line or event labelled `what`. With `want_tokens`, also
/// every text's per-token vectors (for sequence heads; cached with `tokens`).
pub(crate) fn embed_texts(
    backbone: &Backbone,
    pooled: Option<&tandem::cache::EmbeddingCache>,
    tokens: Option<&tandem::cache::TokenCache>,
    texts: &[&str],
    want_tokens: bool,
    log: &progress::Log,
    what: &str,
) -> Result<(ndarray::Array2<f32>, Option<tandem::TokenSeqs>)> {
    let progress = log.texts(what, texts.len());
    let (out, all_tokens, stats) = tandem::cache::embed_chunked(
        texts,
        backbone.dim(),
        want_tokens,
        |chunk| tandem::cache::embed_for_heads(backbone, pooled, tokens, chunk, want_tokens),
        |c| {
            progress.inc(c.texts);
            true
        },
    )?;
    log.embedded(progress, texts.len(), stats);
    Ok((out, all_tokens))
}

fn embed(args: EmbedArgs) -> Result<ExitCode> {
    let mut log = progress::Log::new(&args.log);
    let records = read_input(args.input.as_deref())?;
    let backbone = args.backbone.load(args.batch_size)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let cache = if args.no_cache {
        None
    } else {
        Some(tandem::cache::EmbeddingCache::open(None, &backbone)?)
    };
    let (emb, _) = embed_texts(
        &backbone,
        cache.as_ref(),
        None,
        &texts,
        false,
        &log,
        "input",
    )?;
    if let Some(path) = args.output {
        ndarray_npy::write_npy(&path, &emb)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        if log.json() {
            log.done(serde_json::json!({
                "command": "embed",
                "texts": emb.nrows(),
                "dim": emb.ncols(),
                "output": path.display().to_string(),
            }));
        } else {
            eprintln!(
                "wrote {} x {} embeddings to {}",
                emb.nrows(),
                emb.ncols(),
                path.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    for (i, (rec, row)) in records.iter().zip(emb.rows()).enumerate() {
        let mut obj = serde_json::Map::new();
        obj.insert("index".into(), i.into());
        if let Some(id) = &rec.id {
            obj.insert("id".into(), id.clone());
        }
        obj.insert("embedding".into(), row.to_vec().into());
        serde_json::to_writer(&mut w, &obj)
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        w.write_all(b"\n")
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    }
    w.flush()
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    log.done(serde_json::json!({"command": "embed", "texts": emb.nrows(), "dim": emb.ncols()}));
    Ok(ExitCode::SUCCESS)
}

fn doctor(args: DoctorArgs) -> Result<ExitCode> {
    let b = &args.backbone;
    let options = BackboneOptions {
        device: b.device,
        threads: b.threads,
        ort_library: b.ort_lib.clone(),
        ..Default::default()
    };
    let report = tandem::doctor::doctor(&b.dir(), &options);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let width = report
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &report.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            println!("{mark} {:width$}  {}", c.name, c.detail);
        }
        for p in report.execution_providers.iter().filter(|p| !p.available) {
            eprintln!("note: {} not available in this ONNX Runtime build", p.name);
        }
        let hint = match options.device {
            _ if report.ok => "",
            Device::Cpu => " (run scripts/setup.sh)",
            // On CUDA the likely gap is the CUDA build of ONNX Runtime or the GPU's libraries.
            Device::Cuda { .. } => {
                " (run scripts/setup.sh, then scripts/setup_cuda.sh and source its env.sh)"
            }
        };
        let status = if report.ok {
            "all checks passed"
        } else {
            "some checks failed"
        };
        println!("doctor: {status}{hint}");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_lines_including_empty_ones() {
        let r = read_records("a\n\nb c\n".as_bytes(), "t").unwrap();
        let texts: Vec<_> = r.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, vec!["a", "", "b c"]);
    }

    #[test]
    fn reads_jsonl_with_ids_and_reports_bad_lines() {
        let r = read_records(
            "{\"text\":\"x\",\"id\":7}\n\n{\"text\":\"y\"}\n".as_bytes(),
            "t",
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].id, Some(serde_json::json!(7)));
        assert_eq!(r[1].text, "y");
        let e = read_records("{\"text\":\"x\"}\n{\"nope\":1}\n".as_bytes(), "f.jsonl")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Format);
        assert!(e.message().contains("f.jsonl:2"), "{}", e.message());
    }

    #[test]
    fn invalid_utf8_is_reported_not_panicked() {
        let e = read_records(&b"ok\n\xff\xfe\n"[..], "bin").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
    }
}
