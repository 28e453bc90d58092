//! `tandem predict`: labels, probabilities and values per text, or per group of texts.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tandem::eval::Aggregation;
use tandem::{Error, ErrorKind, Result};

use crate::input::read_input;
use crate::progress::{Log, LogArgs};
use crate::{load_model, BackboneArgs};

#[derive(Args)]
pub struct PredictArgs {
    /// Bundle directory.
    #[arg(long)]
    model: PathBuf,
    /// Input: text lines or JSONL with a `text` field; `-` or nothing reads standard input.
    input: Option<PathBuf>,
    /// JSONL field whose value groups texts (e.g. an author id): one prediction per group.
    #[arg(long)]
    group_field: Option<String>,
    /// How group members combine: mean, median or majority.
    #[arg(long, default_value = "mean")]
    aggregate: Aggregation,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

/// `tandem predict`.
pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let mut log = Log::new(&args.log);
    let model = load_model(&args.model, &args.backbone)?;
    let records = read_input(args.input.as_deref())?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, e.to_string());
    if let Some(field) = &args.group_field {
        let groups: Vec<String> = records
            .iter()
            .map(|r| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get(field))
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .ok_or_else(|| Error::invalid(format!("a record has no `{field}` field")))
            })
            .collect::<Result<_>>()?;
        // Groups need every member at once: one call, no progress to show.
        for (key, preds) in model.predict_groups(&texts, &groups, args.aggregate)? {
            let line = serde_json::json!({ "group": key, "predictions": preds });
            writeln!(w, "{line}").map_err(io)?;
        }
    } else {
        // In chunks, so that the bar advances and output streams.
        let progress = log.texts("predict", texts.len());
        let chunk_size = tandem::cache::EMBED_CHUNK;
        for (c, chunk) in texts.chunks(chunk_size).enumerate() {
            let base = c * chunk_size;
            for (j, preds) in model.predict(chunk)?.into_iter().enumerate() {
                let i = base + j;
                let mut obj = serde_json::json!({ "index": i, "predictions": preds });
                if let Some(id) = &records[i].id {
                    obj["id"] = id.clone();
                }
                writeln!(w, "{obj}").map_err(io)?;
            }
            progress.inc(chunk.len());
        }
        progress.close();
    }
    w.flush().map_err(io)?;
    log.done(serde_json::json!({"command": "predict", "texts": texts.len()}));
    Ok(ExitCode::SUCCESS)
}
