//! The frozen backbone: tokenizer, ONNX Runtime sessions, pooling.
//!
//! `text ─► tokenizer ─► session (fp32 | opt | int8, CPU | CUDA) ─► pooled, normalized embedding`
//!
//! [`Backbone`] is `Send + Sync`: [`Backbone::embed`] may be called from many threads at once.
//! ONNX Runtime sessions need exclusive access to run, so each call borrows a session from a
//! small pool (`BackboneOptions::sessions`, created on demand); callers beyond the pool size wait
//! for a free session rather than failing.

mod manifest;
mod plan;
mod pool;
mod pooling;
mod tokenize;
mod tokens;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{Array2, ArrayView3};
use ort::session::{
    builder::GraphOptimizationLevel, OutputSelector, RunOptions, Session, SessionInputValue,
};
use ort::value::{Tensor, TensorElementType};
use sha2::{Digest, Sha256};

pub use self::manifest::{BackboneManifest, BACKBONE_FORMAT};
use self::pool::{SessionPool, Worker};
pub use self::pooling::{l2_normalize, mean_pool};
pub use self::tokenize::{EncodedBatch, TextTokenizer};
pub use self::tokens::{PackedBatch, TokenSeqs};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime::{self, Runtime};

/// Which of the exported graphs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Variant {
    /// The plain fp32 export (`model.onnx`).
    #[default]
    Fp32,
    /// fp32 after ONNX Runtime's transformer optimizer (`model.opt.onnx`).
    Opt,
    /// Dynamically quantized int8 for CPU (`model.int8.onnx`).
    Int8,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 3] = [Variant::Fp32, Variant::Opt, Variant::Int8];

    /// Whether this graph is meant for `device`. The int8 graph is quantized for the CPU: on CUDA,
    /// ONNX Runtime runs its quantization ops on the CPU behind 57 device copies, measured on an
    /// H200 at 0.2-0.7x the speed of the same graph on the CPU, so tandem refuses it there rather
    /// than fall back to the CPU piecemeal.
    pub fn runs_on(self, device: Device) -> bool {
        !(self == Variant::Int8 && matches!(device, Device::Cuda { .. }))
    }

    /// The manifest key: `fp32`, `opt` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Fp32 => "fp32",
            Variant::Opt => "opt",
            Variant::Int8 => "int8",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fp32" => Ok(Variant::Fp32),
            "opt" => Ok(Variant::Opt),
            "int8" => Ok(Variant::Int8),
            other => Err(Error::invalid(format!(
                "unknown backbone variant `{other}` (expected fp32, opt or int8)"
            ))),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on the given GPU. Needs the `cuda` cargo feature and a CUDA
    /// build of ONNX Runtime; if it cannot run, loading fails instead of falling back to CPU.
    Cuda {
        /// CUDA device ordinal.
        device_id: i32,
    },
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda { device_id: 0 }),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(id)) if id >= 0 => Ok(Device::Cuda { device_id: id }),
                _ => Err(Error::invalid(format!(
                    "unknown device `{other}` (expected cpu, cuda or cuda:N)"
                ))),
            },
        }
    }
}

/// How to load and run a backbone.
#[derive(Debug, Clone)]
pub struct BackboneOptions {
    /// Graph variant.
    pub variant: Variant,
    /// Intra-op threads per session; `None` uses all available cores.
    pub threads: Option<usize>,
    /// Execution provider.
    pub device: Device,
    /// Explicit ONNX Runtime library; else `TANDEM_ORT_LIB`, else the cache.
    pub ort_library: Option<PathBuf>,
    /// Most texts per graph run. Inputs are sorted by length before batching, and on the CPU
    /// a run is cut short where its padding would cost more than another run, so padding stays
    /// small.
    pub batch_size: usize,
    /// Most padded tokens (rows x longest row) per graph run. Long texts run in smaller batches:
    /// attention's cost and memory traffic grow with the padded area, and past a few thousand
    /// tokens a bigger batch is slower per text, not faster (measured on 128–256-token texts
    /// with 2 threads: 2048 beat 1024 by 4–17% and 4096 by up to 8%).
    pub max_batch_tokens: usize,
    /// Most sessions kept for concurrent callers (each holds its own copy of the weights).
    pub sessions: usize,
    /// Check the sha256 of the graph and tokenizer against the manifest while loading.
    pub verify: bool,
}

impl Default for BackboneOptions {
    fn default() -> Self {
        BackboneOptions {
            variant: Variant::Fp32,
            threads: None,
            device: Device::Cpu,
            ort_library: None,
            batch_size: 32,
            max_batch_tokens: 2048,
            sessions: 1,
            verify: false,
        }
    }
}

impl BackboneOptions {
    /// The most intra-op threads per session: beyond this, ONNX Runtime would try to start
    /// that many threads (a mistyped count could ask for billions).
    pub const MAX_THREADS: usize = 1024;
    /// The most concurrent sessions: each holds its own copy of the weights.
    pub const MAX_SESSIONS: usize = 256;
    /// The most texts per graph run.
    pub const MAX_BATCH_SIZE: usize = 65_536;
    /// The most padded tokens per graph run.
    pub const MAX_BATCH_TOKENS: usize = 1 << 24;

    /// Checks every count: each at least 1 and at most its `MAX_*` bound, so an absurd value is
    /// a clear error instead of a hang or an out-of-memory abort at load or at the first run.
    pub fn validate(&self) -> Result<()> {
        let checks = [
            ("threads", self.threads.unwrap_or(1), Self::MAX_THREADS),
            ("sessions", self.sessions, Self::MAX_SESSIONS),
            ("batch_size", self.batch_size, Self::MAX_BATCH_SIZE),
            (
                "max_batch_tokens",
                self.max_batch_tokens,
                Self::MAX_BATCH_TOKENS,
            ),
        ];
        for (name, value, max) in checks {
            if value == 0 || value > max {
                return Err(Error::invalid(format!(
                    "{name} must be between 1 and {max}, got {value}"
                )));
            }
        }
        Ok(())
    }
}

/// What the graph expects and yields, detected from the graph itself.
#[derive(Debug, Clone)]
struct GraphIo {
    /// Whether `token_type_ids` is an input (BERT exports without pooling have it).
    token_type_ids: bool,
    /// Whether id inputs are int32 rather than int64.
    int32_ids: bool,
    /// The output to read.
    output: Output,
    /// The per-token output (`token_embeddings` / `last_hidden_state`), if the graph has one.
    tokens: Option<String>,
}

#[derive(Debug, Clone)]
enum Output {
    /// `sentence_embedding [b, d]`: already pooled.
    Pooled(String),
    /// `token_embeddings` / `last_hidden_state [b, s, d]`: mean-pooled here.
    Tokens(String),
}

impl Output {
    fn name(&self) -> &str {
        match self {
            Output::Pooled(n) | Output::Tokens(n) => n,
        }
    }
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

/// One file's recorded and actual sha256, from [`Backbone::verify`] and [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// File name inside the backbone directory.
    pub file: String,
    /// Size in bytes, if the file exists.
    pub size: Option<u64>,
    /// Hash recorded in the manifest.
    pub expected: String,
    /// Hash of the file on disk, if it could be read.
    pub actual: Option<String>,
}

impl FileCheck {
    /// The file exists and matches its recorded hash.
    pub fn ok(&self) -> bool {
        self.actual.as_deref() == Some(self.expected.as_str())
    }
}

/// Hashes every file the manifest lists in `dir` and compares it with the recorded sha256.
pub fn verify_dir(dir: &Path, manifest: &BackboneManifest) -> Vec<FileCheck> {
    manifest
        .files
        .iter()
        .map(|(file, expected)| {
            let path = dir.join(file);
            FileCheck {
                file: file.clone(),
                size: std::fs::metadata(&path).ok().map(|m| m.len()),
                expected: expected.clone(),
                actual: sha256_file(&path).ok(),
            }
        })
        .collect()
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let (f, _) = crate::files::open(path, crate::files::BACKBONE_FILE)?;
    let mut f = std::io::Read::take(f, crate::files::BACKBONE_FILE.bytes);
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(h.finalize()))
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
        let first = build_session(&runtime, &graph_path, threads, options.device)?;
        let io = detect_io(&first, &graph_path)?;
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
            let runtime = Arc::clone(&runtime);
            let graph_path = graph_path.clone();
            let device = options.device;
            move || worker(build_session(&runtime, &graph_path, threads, device)?)
        };
        let pool = SessionPool::new(first, options.sessions, Box::new(make));
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

    /// Tokenizes `texts` (no-op when empty), plans length-sorted batches and runs each through
    /// the graph, handing `each` the batch's text indices, pooled rows and (with `tokens`)
    /// per-token vectors.
    #[allow(clippy::type_complexity)]
    fn run_batches(
        &self,
        texts: &[&str],
        tokens: bool,
        mut each: impl FnMut(&[usize], Array2<f32>, Option<Vec<Vec<half::f16>>>),
    ) -> Result<()> {
        if texts.is_empty() {
            return Ok(());
        }
        // On a GPU the graph runs faster than one core tokenizes (measured on an H200: long
        // texts plateaued at ~2,000/s, the sequential tokenizer's rate), and ONNX Runtime's own
        // threads are idle while it waits, so tokenizing fans out over every core there.
        let ids = match self.options.device {
            Device::Cpu => self.tokenizer.encode(texts)?,
            Device::Cuda { .. } => self.tokenizer.encode_parallel(texts)?,
        };
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        for chunk in plan::plan_batches(
            &lengths,
            self.options.batch_size,
            self.options.max_batch_tokens,
            self.run_cost,
        ) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let batch = self.tokenizer.pad(&rows);
            let (emb, toks) = self.run_batch(&batch, tokens)?;
            each(&chunk, emb, toks);
        }
        Ok(())
    }

    /// Runs one padded batch through the graph and pools it; with `tokens`, also returns each
    /// row's valid token vectors (unpadded, f16).
    #[allow(clippy::type_complexity)]
    fn run_batch(
        &self,
        batch: &EncodedBatch,
        tokens: bool,
    ) -> Result<(Array2<f32>, Option<Vec<Vec<half::f16>>>)> {
        let shape = vec![batch.rows as i64, batch.width as i64];
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(3);
        let mut add = |name: &'static str, data: Vec<i64>| -> Result<()> {
            let value: SessionInputValue<'_> = if self.io.int32_ids {
                let v: Vec<i32> = data.iter().map(|&x| x as i32).collect();
                Tensor::from_array((shape.clone(), v))
                    .map_err(|e| Error::onnx("building input tensor", e))?
                    .into()
            } else {
                Tensor::from_array((shape.clone(), data))
                    .map_err(|e| Error::onnx("building input tensor", e))?
                    .into()
            };
            inputs.push((Cow::Borrowed(name), value));
            Ok(())
        };
        add("input_ids", batch.ids.clone())?;
        add("attention_mask", batch.mask.clone())?;
        if self.io.token_type_ids {
            add("token_type_ids", vec![0; batch.ids.len()])?;
        }
        let mut worker = self.pool.acquire()?;
        let Worker {
            session,
            run_options,
            token_run_options,
        } = &mut *worker;
        let options = match (tokens, token_run_options) {
            (true, Some(o)) => o,
            (true, None) => return Err(Error::format("the graph has no per-token output")),
            (false, _) => run_options,
        };
        let outputs = session
            .run_with_options(inputs, options)
            .map_err(|e| Error::onnx("running the backbone", e))?;
        let dim = self.dim();
        let token_view = |name: &str| -> Result<Vec<f32>> {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::onnx("reading the token output", e))?;
            check_shape(shape, &[batch.rows, batch.width, dim])?;
            Ok(data.to_vec())
        };
        let mut emb = match &self.io.output {
            Output::Pooled(name) => {
                let (shape, data) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| Error::onnx("reading the pooled output", e))?;
                check_shape(shape, &[batch.rows, dim])?;
                Array2::from_shape_vec((batch.rows, dim), data.to_vec())
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?
            }
            Output::Tokens(name) => {
                let data = token_view(name)?;
                let view = ArrayView3::from_shape((batch.rows, batch.width, dim), &data[..])
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
                mean_pool(view, &batch.row_masks)
            }
        };
        if self.manifest.normalize {
            l2_normalize(&mut emb);
        }
        let per_row = match (tokens, &self.io.tokens) {
            (true, Some(name)) => {
                let data = token_view(name)?;
                let per_row = batch
                    .row_masks
                    .iter()
                    .enumerate()
                    .map(|(r, mask)| {
                        // Right padding: the valid tokens are the row's first `len`.
                        // A text with no tokens at all (only possible with a tokenizer that adds no
                        // special tokens) keeps its one padding position, so no sequence is empty.
                        let len = mask.iter().filter(|&&m| m != 0).count().max(1);
                        let start = r * batch.width * dim;
                        let src = &data[start..start + len * dim];
                        let mut dst = vec![half::f16::ZERO; src.len()];
                        half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut dst[..], src);
                        dst
                    })
                    .collect();
                Some(per_row)
            }
            _ => None,
        };
        Ok((emb, per_row))
    }
}

fn check_shape(shape: &[i64], want: &[usize]) -> Result<()> {
    let ok = shape.len() == want.len() && shape.iter().zip(want).all(|(&a, &b)| a == b as i64);
    if ok {
        Ok(())
    } else {
        Err(Error::format(format!(
            "graph output has shape {shape:?}, expected {want:?} (does the manifest's dim match the graph?)"
        )))
    }
}

/// ONNX Runtime graph optimizers that CPU sessions turn off (see `build_session`); the
/// benchmark's onnxruntime-python baseline uses the same list.
pub const CPU_DISABLED_OPTIMIZERS: &str = "SkipLayerNormFusion";

fn build_session(
    runtime: &Runtime,
    graph: &Path,
    threads: usize,
    device: Device,
) -> Result<Session> {
    let ctx = |e: ort::Error<_>| Error::onnx("configuring the session", e);
    let mut builder = Session::builder(runtime.env())
        .map_err(|e| Error::onnx("creating a session builder", e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ctx)?
        .with_intra_threads(threads)
        .map_err(ctx)?;
    match device {
        // ONNX Runtime fuses each residual Add + LayerNormalization into SkipLayerNormalization,
        // whose CPU kernel is slower than the two ops it replaces: measured on the int8 graph
        // (short texts, batch 32, 2 threads) it took 15% of the run, against 6% for Add +
        // LayerNormalization, and turning the fusion off makes the int8 and opt graphs ~12%
        // faster with the same embeddings. (Fused kernels are what the CUDA provider wants.)
        Device::Cpu => {
            builder = builder
                .with_disabled_optimizers(CPU_DISABLED_OPTIMIZERS)
                .map_err(ctx)?;
        }
        #[cfg(feature = "cuda")]
        Device::Cuda { device_id } => {
            use ort::ep::ExecutionProvider;
            if !ort::ep::CUDA::is_available().unwrap_or(false) {
                return Err(Error::new(
                    ErrorKind::ExecutionProviderUnavailable,
                    format!(
                        "the ONNX Runtime at {} has no CUDA execution provider; use a CUDA build \
                         (PyPI onnxruntime-gpu) via TANDEM_ORT_LIB",
                        runtime.library().display()
                    ),
                ));
            }
            // TF32 off: its 10-bit mantissa in every MatMul would trade the reference parity
            // that the embeddings promise (and the CPU path keeps) for speed.
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default()
                    .with_device_id(device_id)
                    .with_tf32(false)
                    .build()
                    .error_on_failure()])
                .map_err(|e| {
                    Error::new(
                        ErrorKind::ExecutionProviderUnavailable,
                        format!("CUDA execution provider failed to start: {e}"),
                    )
                })?;
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda { .. } => {
            return Err(Error::new(
                ErrorKind::ExecutionProviderUnavailable,
                "CUDA was requested but this tandem was built without the `cuda` feature",
            ));
        }
    }
    builder
        .commit_from_file(graph)
        .map_err(|e| Error::onnx(&format!("loading {}", graph.display()), e))
}

fn detect_io(session: &Session, graph: &Path) -> Result<GraphIo> {
    let has_input = |n: &str| session.inputs().iter().any(|i| i.name() == n);
    for required in ["input_ids", "attention_mask"] {
        if !has_input(required) {
            return Err(Error::format(format!(
                "{}: graph has no `{required}` input",
                graph.display()
            )));
        }
    }
    let int32_ids = session
        .inputs()
        .iter()
        .find(|i| i.name() == "input_ids")
        .and_then(|i| i.dtype().tensor_type())
        == Some(TensorElementType::Int32);
    let has_output = |n: &str| session.outputs().iter().any(|o| o.name() == n);
    let output = if has_output("sentence_embedding") {
        Output::Pooled("sentence_embedding".into())
    } else if let Some(name) = ["token_embeddings", "last_hidden_state"]
        .into_iter()
        .find(|n| has_output(n))
    {
        Output::Tokens(name.into())
    } else {
        return Err(Error::format(format!(
            "{}: graph has none of the outputs sentence_embedding, token_embeddings, last_hidden_state",
            graph.display()
        )));
    };
    let tokens = ["token_embeddings", "last_hidden_state"]
        .into_iter()
        .find(|n| has_output(n))
        .map(String::from);
    Ok(GraphIo {
        token_type_ids: has_input("token_type_ids"),
        int32_ids,
        output,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_variant_and_device() {
        assert_eq!("int8".parse::<Variant>().unwrap(), Variant::Int8);
        assert_eq!(
            "fp16".parse::<Variant>().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!(
            "cuda:1".parse::<Device>().unwrap(),
            Device::Cuda { device_id: 1 }
        );
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
    }

    #[test]
    fn only_the_int8_graph_is_kept_off_cuda() {
        let cuda = Device::Cuda { device_id: 0 };
        assert!(Variant::ALL.iter().all(|v| v.runs_on(Device::Cpu)));
        assert!(Variant::Fp32.runs_on(cuda) && Variant::Opt.runs_on(cuda));
        assert!(!Variant::Int8.runs_on(cuda));
    }

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
