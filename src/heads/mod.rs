//! Serving the heads: what a bundle's heads are (architecture, network, feature normalizer,
//! tasks) and how texts' embeddings become per-task predictions. Training builds these types
//! and the model serves them; nothing here imports training code.

mod architecture;
mod decode;
mod network;
mod normalizer;

use ndarray::{Array2, ArrayView2};

pub use self::architecture::{Architecture, InputLayout, Mode};
pub use self::decode::{
    decode, decode_votes, probabilities, GroupPrediction, TaskEntry, TaskPrediction,
};
pub use self::network::{Network, TrainBatch};
pub use self::normalizer::Normalizer;
use crate::backbone::TokenSeqs;
use crate::error::{Error, Result};

/// Texts per sequence-encoder pass when validating or predicting: bounds the f32 copy of the
/// tokens (256 texts of 256 tokens x 384 floats = 100 MB at most).
pub const SEQUENCE_CHUNK: usize = 256;

/// The heads of a model and what decodes them; replaced as a whole on hot-swap.
#[derive(Debug, Clone)]
pub struct Heads {
    /// The network.
    pub network: Network,
    /// Feature normalizer (None in embedding-only mode).
    pub normalizer: Option<Normalizer>,
    /// Tasks, labels and thresholds, in head order.
    pub tasks: Vec<TaskEntry>,
    /// A version number, increased on every swap (0 for the loaded one).
    pub version: u64,
    /// The same heads as an ONNX graph in ONNX Runtime, when they are served that way
    /// ([`crate::HeadsEngine::Onnx`]); `None` serves them natively.
    pub onnx: Option<std::sync::Arc<crate::onnx::OnnxHeads>>,
}

/// Probabilities (or values) per task from embeddings, normalized features and, for sequence
/// heads, the texts' per-token vectors (which pooled heads ignore). Sequence heads run in
/// chunks of texts, so the f32 copy of the tokens stays small.
pub fn predict_arrays(
    heads: &Heads,
    emb: ArrayView2<'_, f32>,
    feats: ArrayView2<'_, f32>,
    tokens: Option<&TokenSeqs>,
) -> Result<Vec<Array2<f32>>> {
    let net = &heads.network;
    let raw = match (net.arch.needs_tokens(), tokens) {
        (false, _) => net.forward(emb, feats, None)?,
        (true, None) => {
            return Err(Error::invalid(
                "sequence heads need the texts' per-token vectors",
            ))
        }
        (true, Some(t)) => {
            let n = emb.nrows();
            if t.len() != n {
                return Err(Error::invalid(format!(
                    "{} token sequences for {n} texts",
                    t.len()
                )));
            }
            let mut parts: Vec<Vec<Array2<f32>>> = Vec::new();
            let all: Vec<usize> = (0..n).collect();
            for idx in all.chunks(SEQUENCE_CHUNK) {
                let rows = idx[0]..idx[0] + idx.len();
                // Features may be an empty placeholder (embedding-only mode).
                let f = if feats.nrows() == n {
                    feats.slice(ndarray::s![rows.clone(), ..])
                } else {
                    feats.view()
                };
                parts.push(net.forward(
                    emb.slice(ndarray::s![rows, ..]),
                    f,
                    Some(&t.gather(idx)),
                )?);
            }
            (0..net.arch.outputs.len())
                .map(|k| {
                    let views: Vec<_> = parts.iter().map(|p| p[k].view()).collect();
                    ndarray::concatenate(ndarray::Axis(0), &views).expect("same widths")
                })
                .collect()
        }
    };
    Ok(probabilities(&heads.tasks, &net.arch, &raw))
}
