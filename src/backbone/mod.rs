//! The frozen backbone: tokenizer, ONNX Runtime sessions, pooling.
//!
//! `text ─► tokenizer ─► session (fp32 | opt | int8, CPU | CUDA) ─► pooled, normalized embedding`
//!
//! [`Backbone`] is `Send + Sync`: [`Backbone::embed`] may be called from many threads at once.
//! ONNX Runtime sessions need exclusive access to run, so each call borrows a session from a
//! small pool (`BackboneOptions::sessions`, created on demand); callers beyond the pool size wait
//! for a free session rather than failing.
//!
//! Files: `options` (what to load and how), `manifest`, `verify` (file hashes), `tokenize`,
//! `session` (building sessions, reading a graph's inputs and outputs), `pool`, `plan` (batch
//! planning), `run` (running batches), `pooling`, `tokens` (per-token vectors).

mod manifest;
mod options;
mod plan;
mod pool;
mod pooling;
mod run;
mod session;
mod tokenize;
mod tokens;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;
use ort::session::{OutputSelector, RunOptions, Session};

pub use self::manifest::{BackboneManifest, BACKBONE_FORMAT};
pub use self::options::{BackboneOptions, Device, HeadsEngine, Variant};
use self::pool::{SessionPool, Worker};
pub use self::pooling::{l2_normalize, mean_pool, Pooling};
pub use self::session::CPU_DISABLED_OPTIMIZERS;
pub(crate) use self::session::{build_session, GraphSource};
use self::session::{detect_io, GraphIo};
pub use self::tokenize::{EncodedBatch, TextTokenizer};
pub use self::tokens::{PackedBatch, TokenSeqs};
pub use self::verify::{verify_dir, FileCheck};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime::{self, Runtime};

/// Hex sha256 of a backbone file (graph, tokenizer), streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    crate::files::sha256_file(path, crate::files::BACKBONE_FILE)
}

/// A loaded, frozen backbone. See the module docs for thread safety.
pub struct Backbone {
    dir: PathBuf,
    manifest: BackboneManifest,
    options: BackboneOptions,
    graph_file: String,
    runtime: Arc<Runtime>,
    tokenizer: TextTokenizer,
    io: GraphIo,
    pool: SessionPool,
    /// What the batch planner charges per graph run (see [`plan`]).
    run_cost: plan::RunCost,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("dir", &self.dir)
            .field("name", &self.manifest.name)
            .field("variant", &self.options.variant)
            .finish()
    }
}

impl Backbone {
    /// Loads the backbone in `dir` (a directory written by `onnx/export.py`).
    ///
    /// Fails with a clear error when the directory, the manifest, the graph, the tokenizer or the
    /// ONNX Runtime library is missing, or when the requested device cannot run.
    pub fn load(dir: impl AsRef<Path>, options: BackboneOptions) -> Result<Backbone> {
        let dir = dir.as_ref().to_path_buf();
        options.validate()?;
        if !options.variant.runs_on(options.device) {
            return Err(Error::invalid(format!(
                "the {} graph is for the CPU and does not run on {:?}: use --variant fp32 or opt \
                 there (the opt graph is the faster on CUDA)",
                options.variant, options.device
            )));
        }
        let manifest = BackboneManifest::load(&dir)?;
        let graph_file = graph_file(&dir, &manifest, &options)?;
        if options.verify {
            for file in [graph_file.as_str(), "tokenizer.json"] {
                let expected = manifest.sha256_of(file).unwrap_or_default();
                let actual = sha256_file(&dir.join(file))?;
                if actual != expected {
                    return Err(Error::format(format!(
                        "{}: sha256 {actual} does not match the manifest ({expected})",
                        dir.join(file).display()
                    )));
                }
            }
        }
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), manifest.max_length)?;
        let runtime = runtime::runtime(options.ort_library.as_deref())?;
        let threads = options.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let (pool, io) = sessions(&runtime, &dir.join(&graph_file), threads, &options)?;
        let run_cost = match options.device {
            Device::Cpu => plan::cpu_run_cost(threads),
            Device::Cuda { .. } => plan::gpu_run_cost(options.max_batch_tokens),
        };
        Ok(Backbone {
            dir,
            manifest,
            options,
            graph_file,
            runtime,
            tokenizer,
            io,
            pool,
            run_cost,
        })
    }

    /// Loads the default backbone from the cache (see [`crate::home`]).
    pub fn load_default(options: BackboneOptions) -> Result<Backbone> {
        Self::load(crate::home::default_backbone_dir(), options)
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The backbone's manifest.
    pub fn manifest(&self) -> &BackboneManifest {
        &self.manifest
    }

    /// The directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs of text indices for texts of these token `lengths`, as this backbone batches its
    /// own graph runs: length-sorted, cut where padding would cost more than another run
    /// ([`plan`]). Graphs cut from it (a split's bottom) run best the same way.
    pub(crate) fn plan_runs(&self, lengths: &[usize]) -> Vec<Vec<usize>> {
        plan::plan_batches(
            lengths,
            self.options.batch_size,
            self.options.max_batch_tokens,
            self.run_cost,
        )
    }

    /// The options it was loaded with.
    pub fn options(&self) -> &BackboneOptions {
        &self.options
    }

    /// File name of the graph being run.
    pub fn graph_file(&self) -> &str {
        &self.graph_file
    }

    /// sha256 of the graph being run, as recorded in the manifest: the identity of the exact
    /// embeddings this backbone produces (fp32 and int8 graphs differ slightly).
    pub fn graph_sha256(&self) -> &str {
        self.manifest
            .sha256_of(&self.graph_file)
            .unwrap_or_default()
    }

    /// sha256 of the backbone's reference (fp32) graph: the identity of the model family, shared
    /// by all its variants. Bundles record it and refuse to load on another backbone.
    pub fn family_sha256(&self) -> &str {
        self.manifest
            .graphs
            .get("fp32")
            .and_then(|f| self.manifest.sha256_of(f))
            .unwrap_or_else(|| self.graph_sha256())
    }

    /// The ONNX Runtime it runs on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The ONNX Runtime, shared (for other sessions on the same runtime: ONNX heads).
    pub fn runtime_shared(&self) -> Arc<Runtime> {
        Arc::clone(&self.runtime)
    }

    /// The tokenizer, configured with dynamic padding and truncation at the max length.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Hashes the files the manifest lists and compares them with the recorded sha256.
    pub fn verify(&self) -> Vec<FileCheck> {
        verify_dir(&self.dir, &self.manifest)
    }

    /// Embeds `texts`: one L2-normalized row of [`Backbone::dim`] floats per text, in order.
    ///
    /// Texts are tokenized (truncated at the model's max length), sorted by length, and run in
    /// batches of at most `batch_size` texts and `max_batch_tokens` padded tokens, each padded
    /// to its own longest text. On the CPU a batch is cut further where its padding would cost
    /// more than another graph run (measured: mixed-length short texts run ~1.2–1.3x faster).
    /// Thread-safe.
    pub fn embed(&self, texts: &[&str]) -> Result<Array2<f32>> {
        let dim = self.dim();
        let mut out = Array2::<f32>::zeros((texts.len(), dim));
        self.run_batches(texts, false, |chunk, emb, _| {
            for (r, &i) in chunk.iter().enumerate() {
                out.row_mut(i).assign(&emb.row(r));
            }
        })?;
        Ok(out)
    }

    /// Whether the graph exposes per-token vectors, which [`Backbone::embed_tokens`] needs.
    pub fn has_token_output(&self) -> bool {
        self.io.tokens.is_some()
    }

    /// Embeds `texts` and also returns every token's vector (special tokens included, after
    /// truncation at the max length), ragged and in f16: what sequence heads read. The pooled
    /// rows are exactly what [`Backbone::embed`] returns. Batched like `embed`; thread-safe.
    ///
    /// Fails with [`ErrorKind::Format`] when the graph has no per-token output.
    pub fn embed_tokens(&self, texts: &[&str]) -> Result<(Array2<f32>, TokenSeqs)> {
        if self.io.tokens.is_none() {
            return Err(Error::format(format!(
                "{}: the graph has no per-token output (token_embeddings or \
                     last_hidden_state), which sequence heads need",
                self.dir.join(&self.graph_file).display()
            )));
        }
        let dim = self.dim();
        let mut pooled = Array2::<f32>::zeros((texts.len(), dim));
        let mut per_text: Vec<Vec<half::f16>> = vec![Vec::new(); texts.len()];
        self.run_batches(texts, true, |chunk, emb, tokens| {
            let mut tokens = tokens.expect("token output requested");
            for (r, &i) in chunk.iter().enumerate() {
                pooled.row_mut(i).assign(&emb.row(r));
                per_text[i] = std::mem::take(&mut tokens[r]);
            }
        })?;
        let mut seqs = TokenSeqs::new(dim);
        for t in &per_text {
            seqs.push_f16(t);
        }
        Ok((pooled, seqs))
    }
}

/// The graph file of the requested variant, which must exist.
fn graph_file(
    dir: &Path,
    manifest: &BackboneManifest,
    options: &BackboneOptions,
) -> Result<String> {
    let graph_file = manifest
        .graphs
        .get(options.variant.name())
        .cloned()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "backbone {} has no `{}` graph",
                    dir.display(),
                    options.variant
                ),
            )
        })?;
    let graph_path = dir.join(&graph_file);
    if !graph_path.is_file() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{}: graph missing; rerun `scripts/setup.sh`",
                graph_path.display()
            ),
        ));
    }
    Ok(graph_file)
}

/// The session pool for `graph`: a first session, from which the graph's inputs and outputs are
/// read, and a factory for more, each with run options that fetch only the outputs needed.
fn sessions(
    runtime: &Arc<Runtime>,
    graph: &Path,
    threads: usize,
    options: &BackboneOptions,
) -> Result<(SessionPool, GraphIo)> {
    let first = build_session(runtime, GraphSource::File(graph), threads, options.device)?;
    let io = detect_io(&first, graph)?;
    let output = io.output.name().to_string();
    let token_output = io.tokens.clone();
    let worker = move |session: Session| -> Result<Worker> {
        let select = |names: &[&str]| -> Result<RunOptions<_>> {
            let selector = names
                .iter()
                .fold(OutputSelector::no_default(), |s, n| s.with(*n));
            Ok(RunOptions::new()
                .map_err(|e| Error::onnx("creating run options", e))?
                .with_outputs(selector))
        };
        let token_run_options = match &token_output {
            Some(t) if *t == output => Some(select(&[t.as_str()])?),
            Some(t) => Some(select(&[output.as_str(), t.as_str()])?),
            None => None,
        };
        Ok(Worker {
            session,
            run_options: select(&[output.as_str()])?,
            token_run_options,
        })
    };
    let first = worker(first)?;
    let make = {
        let runtime = Arc::clone(runtime);
        let graph = graph.to_path_buf();
        let device = options.device;
        move || {
            worker(build_session(
                &runtime,
                GraphSource::File(&graph),
                threads,
                device,
            )?)
        }
    };
    Ok((
        SessionPool::new(first, options.sessions, Box::new(make)),
        io,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_rejects_zero_sizes_before_touching_disk() {
        let opts = BackboneOptions {
            batch_size: 0,
            ..Default::default()
        };
        let err = Backbone::load("/definitely/not/here", opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn missing_dir_is_not_found_with_setup_hint() {
        let err = Backbone::load("/definitely/not/here", BackboneOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("setup.sh"), "{}", err.message());
    }
}
