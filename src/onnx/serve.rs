//! Serving heads through ONNX Runtime instead of native code: the heads graph of
//! [`super::heads`] (sequence heads read their texts' tokens padded into a rectangle) in a
//! small pool of sessions (a session runs one call at a time, so concurrent predictions each
//! borrow their own).

use std::sync::{Arc, Mutex};

use half::slice::HalfFloatSliceExt;
use ndarray::{s, Array2, Array3, ArrayView2, Axis};
use ort::session::Session;
use ort::value::Tensor;

use super::heads::{
    self, BinaryOutput, EMBEDDING_INPUT, METADATA_INPUT, TOKENS_INPUT, TOKEN_MASK_INPUT,
};
use crate::backbone::{build_session, Device, GraphSource, TokenSeqs};
use crate::error::{Error, ErrorKind, Result};
use crate::heads::{Heads, SEQUENCE_CHUNK};
use crate::runtime::Runtime;

/// A heads graph ready to run: its bytes, what it reads, and idle sessions.
pub struct OnnxHeads {
    bytes: Vec<u8>,
    runtime: Arc<Runtime>,
    device: Device,
    idle: Mutex<Vec<Session>>,
    embedding: bool,
    metadata: bool,
    /// The token width, for sequence heads.
    tokens: Option<usize>,
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
            tokens: heads::reads_tokens(heads).then_some(heads.network.arch.emb_dim),
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

    /// Whether the graph reads the texts' per-token vectors (sequence heads).
    pub fn reads_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Every task's probabilities (or values) for `emb` [n, dim], the raw metadata features
    /// `metadata` [n, features] (either may be empty when the heads do not read it) and, for
    /// sequence heads, the same texts' per-token vectors `tokens` (ignored otherwise). Sequence
    /// heads run in chunks of [`SEQUENCE_CHUNK`] texts, each padded to its longest text, so the
    /// padded f32 copy stays small.
    pub fn run(
        &self,
        emb: ArrayView2<'_, f32>,
        metadata: ArrayView2<'_, f32>,
        tokens: Option<&TokenSeqs>,
    ) -> Result<Vec<Array2<f32>>> {
        let n = if self.embedding {
            emb.nrows()
        } else {
            metadata.nrows()
        };
        if self.metadata && metadata.nrows() != n {
            return Err(Error::invalid(format!(
                "{} metadata rows for {n} texts",
                metadata.nrows()
            )));
        }
        if n == 0 {
            return Ok(self
                .outputs
                .iter()
                .map(|(_, w)| Array2::zeros((0, *w)))
                .collect());
        }
        let Some(dim) = self.tokens else {
            return self.run_rows(emb, metadata, None);
        };
        let t = tokens
            .ok_or_else(|| Error::invalid("sequence heads need the texts' per-token vectors"))?;
        if t.len() != n {
            return Err(Error::invalid(format!(
                "{} token sequences for {n} texts",
                t.len()
            )));
        }
        if t.dim() != dim {
            return Err(Error::invalid(format!(
                "token vectors of width {}, the heads read {dim}",
                t.dim()
            )));
        }
        if let Some(i) = (0..n).find(|&i| t.length(i) == 0) {
            return Err(Error::invalid(format!("text {i} has no token vectors")));
        }
        // Chunks of texts of similar length (sorted), so one long text does not pad a whole
        // chunk of short ones; results go back to the input order.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| t.length(i));
        let mut out: Vec<Array2<f32>> = self
            .outputs
            .iter()
            .map(|(_, w)| Array2::zeros((n, *w)))
            .collect();
        for idx in order.chunks(SEQUENCE_CHUNK) {
            let e = if self.embedding {
                emb.select(Axis(0), idx)
            } else {
                emb.to_owned()
            };
            let m = if self.metadata {
                metadata.select(Axis(0), idx)
            } else {
                metadata.to_owned()
            };
            let part = self.run_rows(e.view(), m.view(), Some(pad(t, idx)))?;
            for (o, p) in out.iter_mut().zip(&part) {
                for (r, &i) in idx.iter().enumerate() {
                    o.row_mut(i).assign(&p.row(r));
                }
            }
        }
        Ok(out)
    }

    /// One run of the graph on `emb`'s (or `metadata`'s) rows and, for sequence heads, their
    /// padded tokens and mask.
    fn run_rows(
        &self,
        emb: ArrayView2<'_, f32>,
        metadata: ArrayView2<'_, f32>,
        tokens: Option<(Array3<f32>, Array2<i64>)>,
    ) -> Result<Vec<Array2<f32>>> {
        let n = if self.embedding {
            emb.nrows()
        } else {
            metadata.nrows()
        };
        let tensor = |a: ArrayView2<'_, f32>| -> Result<Tensor<f32>> {
            Tensor::from_array(a.as_standard_layout().into_owned())
                .map_err(|e| Error::onnx("building a heads input", e))
        };
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        if self.embedding {
            inputs.push((EMBEDDING_INPUT.into(), tensor(emb)?.into()));
        }
        if self.metadata {
            inputs.push((METADATA_INPUT.into(), tensor(metadata)?.into()));
        }
        if let Some((tokens, mask)) = tokens {
            let tokens = Tensor::from_array(tokens)
                .map_err(|e| Error::onnx("building the tokens input", e))?;
            let mask = Tensor::from_array(mask)
                .map_err(|e| Error::onnx("building the token mask input", e))?;
            inputs.push((TOKENS_INPUT.into(), tokens.into()));
            inputs.push((TOKEN_MASK_INPUT.into(), mask.into()));
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

/// The tokens of `t`'s texts `rows` as `[rows, longest, dim]` f32, right-padded with zeros, and
/// the mask `[rows, longest]` (1 where a token is real).
fn pad(t: &TokenSeqs, rows: &[usize]) -> (Array3<f32>, Array2<i64>) {
    let (dim, b) = (t.dim(), rows.len());
    let longest = rows.iter().map(|&i| t.length(i)).max().unwrap_or(0);
    let mut tokens = Array3::<f32>::zeros((b, longest, dim));
    let mut mask = Array2::<i64>::zeros((b, longest));
    for (r, &i) in rows.iter().enumerate() {
        let len = t.length(i);
        let dst = tokens.as_slice_mut().expect("contiguous");
        let dst = &mut dst[r * longest * dim..][..len * dim];
        HalfFloatSliceExt::convert_to_f32_slice(t.text(i), dst);
        mask.row_mut(r).slice_mut(s![..len]).fill(1);
    }
    (tokens, mask)
}
