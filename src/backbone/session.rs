//! ONNX Runtime sessions for a backbone graph: building one for a device, and reading from the
//! graph itself what it takes and yields.

use std::path::Path;

use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::TensorElementType;

use super::options::Device;
use crate::error::{Error, ErrorKind, Result};
use crate::runtime::Runtime;

/// What the graph expects and yields, detected from the graph itself.
#[derive(Debug, Clone)]
pub(super) struct GraphIo {
    /// Whether `token_type_ids` is an input (BERT exports without pooling have it).
    pub(super) token_type_ids: bool,
    /// Whether id inputs are int32 rather than int64.
    pub(super) int32_ids: bool,
    /// The output to read.
    pub(super) output: Output,
    /// The per-token output (`token_embeddings` / `last_hidden_state`), if the graph has one.
    pub(super) tokens: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) enum Output {
    /// `sentence_embedding [b, d]`: already pooled.
    Pooled(String),
    /// `token_embeddings` / `last_hidden_state [b, s, d]`: mean-pooled here.
    Tokens(String),
}

impl Output {
    pub(super) fn name(&self) -> &str {
        match self {
            Output::Pooled(n) | Output::Tokens(n) => n,
        }
    }
}

/// ONNX Runtime graph optimizers that CPU sessions turn off (see `build_session`); the
/// benchmark's onnxruntime-python baseline uses the same list.
pub const CPU_DISABLED_OPTIMIZERS: &str = "SkipLayerNormFusion";

/// Where a session's graph comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GraphSource<'a> {
    /// A graph file.
    File(&'a Path),
    /// A graph's bytes (heads graphs made in memory).
    Memory(&'a [u8]),
}

/// A session for `graph` on `device` with `threads` intra-op threads.
pub(crate) fn build_session(
    runtime: &Runtime,
    graph: GraphSource<'_>,
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
    match graph {
        GraphSource::File(path) => builder
            .commit_from_file(path)
            .map_err(|e| Error::onnx(&format!("loading {}", path.display()), e)),
        GraphSource::Memory(bytes) => builder
            .commit_from_memory(bytes)
            .map_err(|e| Error::onnx("loading an in-memory graph", e)),
    }
}

pub(super) fn detect_io(session: &Session, graph: &Path) -> Result<GraphIo> {
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
