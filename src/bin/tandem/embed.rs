//! `tandem embed`, and the embedding passes every command shares: chunked, through the
//! on-disk caches, with progress.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ndarray::Array2;
use tandem::cache::usage::keep_caches_under;
use tandem::cache::{EmbeddingCache, TokenCache};
use tandem::{Backbone, Error, ErrorKind, Result, TokenSeqs};

use crate::input::read_input;
use crate::progress::{self, Log};
use crate::BackboneArgs;

#[derive(Args)]
pub struct EmbedArgs {
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
    pub(crate) log: progress::LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

/// Embeddings of `texts` in chunks, through the on-disk caches given (cached texts cost a
/// lookup), with progress and a log line or event labelled `what`. With `want_tokens`, also
/// every text's per-token vectors (for sequence heads; cached with `tokens`). A `cap` other
/// than 0 is kept after every chunk (`[cache] max_size`: the least recently used cache files
/// are removed until the caches fit).
#[allow(clippy::too_many_arguments)]
pub(crate) fn embed_texts(
    backbone: &Backbone,
    pooled: Option<&tandem::cache::EmbeddingCache>,
    tokens: Option<&tandem::cache::TokenCache>,
    texts: &[&str],
    want_tokens: bool,
    cap: u64,
    log: &progress::Log,
    what: &str,
) -> Result<(ndarray::Array2<f32>, Option<tandem::TokenSeqs>)> {
    embed_texts_until(
        backbone,
        pooled,
        tokens,
        texts,
        want_tokens,
        cap,
        log,
        what,
        None,
    )
}

/// [`embed_texts`], cancelled (an error of kind `Cancelled`) once `until` has passed; the chunks
/// embedded by then stay in the caches.
#[allow(clippy::too_many_arguments)]
pub(crate) fn embed_texts_until(
    backbone: &Backbone,
    pooled: Option<&tandem::cache::EmbeddingCache>,
    tokens: Option<&tandem::cache::TokenCache>,
    texts: &[&str],
    want_tokens: bool,
    cap: u64,
    log: &progress::Log,
    what: &str,
    until: Option<std::time::Instant>,
) -> Result<(ndarray::Array2<f32>, Option<tandem::TokenSeqs>)> {
    let progress = log.texts(what, texts.len());
    let (out, all_tokens, stats) = tandem::cache::embed_chunked(
        texts,
        backbone.dim(),
        want_tokens,
        |chunk| {
            let out = tandem::cache::embed_for_heads(backbone, pooled, tokens, chunk, want_tokens)?;
            keep_caches_under(cap, pooled, tokens)?;
            Ok(out)
        },
        |c| {
            progress.inc(c.texts);
            until.is_none_or(|t| std::time::Instant::now() < t)
        },
    )?;
    // Also when every text was cached: the cap holds after the pass whatever came before.
    keep_caches_under(cap, pooled, tokens)?;
    log.embedded(progress, texts.len(), stats);
    Ok((out, all_tokens))
}

/// Embeddings (and, with `want_tokens`, per-token vectors) through the on-disk caches: the
/// backbone runs once per distinct text, ever (while the caches keep it). `cap` as for
/// [`embed_texts`].
pub(crate) fn embed(
    backbone: &Backbone,
    texts: &[&str],
    want_tokens: bool,
    cap: u64,
    log: &Log,
    what: &str,
) -> Result<(Array2<f32>, Option<TokenSeqs>)> {
    embed_maybe_cached(backbone, texts, want_tokens, true, cap, log, what)
}

/// [`embed`], or with `cached` false the backbone on every text and no cache touched.
pub(crate) fn embed_maybe_cached(
    backbone: &Backbone,
    texts: &[&str],
    want_tokens: bool,
    cached: bool,
    cap: u64,
    log: &Log,
    what: &str,
) -> Result<(Array2<f32>, Option<TokenSeqs>)> {
    let pooled = cached
        .then(|| EmbeddingCache::open(None, backbone))
        .transpose()?;
    let tokens = (cached && want_tokens)
        .then(|| TokenCache::open(None, backbone))
        .transpose()?;
    embed_texts(
        backbone,
        pooled.as_ref(),
        tokens.as_ref(),
        texts,
        want_tokens,
        cap,
        log,
        what,
    )
}

pub(crate) fn features(texts: &[String]) -> Array2<f32> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    tandem::metadata::extract_batch(&refs)
}

/// `tandem embed`.
pub fn run(args: EmbedArgs) -> Result<ExitCode> {
    let mut log = progress::Log::new(&args.log);
    let records = read_input(args.input.as_deref(), "text")?;
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
        0,
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
