//! Serving heads through ONNX Runtime instead of native code: the heads graph of
//! [`super::heads`] in a small pool of sessions (a session runs one call at a time, so
//! concurrent predictions each borrow their own).

use std::sync::{Arc, Mutex};

use ndarray::{Array2, ArrayView2};
use ort::session::Session;
use ort::value::Tensor;

use super::heads::{self, BinaryOutput, EMBEDDING_INPUT, METADATA_INPUT};
use crate::backbone::{build_session, Device, GraphSource};
use crate::error::{Error, ErrorKind, Result};
use crate::heads::Heads;
use crate::runtime::Runtime;

/// A heads graph ready to run: its bytes, what it reads, and idle sessions.
pub struct OnnxHeads {
    bytes: Vec<u8>,
    runtime: Arc<Runtime>,
    device: Device,
    idle: Mutex<Vec<Session>>,
    embedding: bool,
    metadata: bool,
    outputs: Vec<(String, usize)>,
}

impl std::fmt::Debug for OnnxHeads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxHeads")
            .field("bytes", &self.bytes.len())
            .field("outputs", &self.outputs)
            .finish()
    }
}

impl OnnxHeads {
    /// Writes `heads` as an ONNX graph and opens it in ONNX Runtime on `device` (binary tasks
    /// yield the positive class's probability, as native serving does).
    pub fn from_heads(heads: &Heads, runtime: Arc<Runtime>, device: Device) -> Result<OnnxHeads> {
        let model = heads::heads_model(
            heads,
            crate::metadata::num_features(),
            BinaryOutput::Positive,
            &[],
        )?;
        let outputs = model
            .graph
            .as_ref()
            .map(|g| {
                g.output
                    .iter()
                    .zip(&heads.network.arch.outputs)
                    .map(|(o, &w)| (o.name.clone(), w))
                    .collect()
            })
            .unwrap_or_default();
        let me = OnnxHeads {
            bytes: super::write::encode(&model),
            runtime,
            device,
            idle: Mutex::new(Vec::new()),
            embedding: heads::reads_embedding(heads),
            metadata: heads::reads_metadata(heads),
            outputs,
        };
        // Open one session now, so a graph ONNX Runtime refuses fails the load, not a predict.
        let first = me.session()?;
        me.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(first);
        Ok(me)
    }

    /// The graph's bytes.
    pub fn graph_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the graph reads raw metadata features (not normalized: it normalizes them).
    pub fn reads_metadata(&self) -> bool {
        self.metadata
    }

    fn session(&self) -> Result<Session> {
        // One intra-op thread: heads are small, and callers parallelize across calls.
        build_session(
            &self.runtime,
            GraphSource::Memory(&self.bytes),
            1,
            self.device,
        )
    }

    /// Every task's probabilities (or values) for `emb` [n, dim] and the raw metadata
    /// features `metadata` [n, features] (either may be empty when the heads do not read it).
    pub fn run(
        &self,
        emb: ArrayView2<'_, f32>,
        metadata: ArrayView2<'_, f32>,
    ) -> Result<Vec<Array2<f32>>> {
        let n = if self.embedding {
            emb.nrows()
        } else {
            metadata.nrows()
        };
        if n == 0 {
            return Ok(self
                .outputs
                .iter()
                .map(|(_, w)| Array2::zeros((0, *w)))
                .collect());
        }
        let tensor = |a: ArrayView2<'_, f32>| -> Result<Tensor<f32>> {
            Tensor::from_array(a.as_standard_layout().into_owned())
                .map_err(|e| Error::onnx("building a heads input", e))
        };
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        if self.embedding {
            inputs.push((EMBEDDING_INPUT.into(), tensor(emb)?.into()));
        }
        if self.metadata {
            if metadata.nrows() != n {
                return Err(Error::invalid(format!(
                    "{} metadata rows for {n} texts",
                    metadata.nrows()
                )));
            }
            inputs.push((METADATA_INPUT.into(), tensor(metadata)?.into()));
        }
        let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut session = match popped {
            Some(s) => s,
            None => self.session()?,
        };
        let result = (|| -> Result<Vec<Array2<f32>>> {
            let outs = session
                .run(inputs)
                .map_err(|e| Error::onnx("running the heads graph", e))?;
            self.outputs
                .iter()
                .map(|(name, w)| {
                    let (shape, data) = outs[name.as_str()]
                        .try_extract_tensor::<f32>()
                        .map_err(|e| Error::onnx("reading a heads output", e))?;
                    if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != *w {
                        return Err(Error::new(
                            ErrorKind::Internal,
                            format!(
                                "heads output `{name}` has shape {shape:?}, expected [{n}, {w}]"
                            ),
                        ));
                    }
                    Array2::from_shape_vec((n, *w), data.to_vec())
                        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
                })
                .collect()
        })();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(session);
        result
    }
}
