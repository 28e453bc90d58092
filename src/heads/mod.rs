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

impl Heads {
    /// Freshly trained heads for `tasks`, before their thresholds are tuned (none yet), at
    /// version 0 and served natively.
    pub fn untuned(
        network: Network,
        normalizer: Option<Normalizer>,
        tasks: &[crate::data::TaskSpec],
    ) -> Heads {
        Heads {
            network,
            normalizer,
            tasks: tasks
                .iter()
                .map(|s| TaskEntry {
                    spec: s.clone(),
                    thresholds: vec![],
                })
                .collect(),
            version: 0,
            onnx: None,
        }
    }
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
    let raw = in_chunks(&net.arch, emb, feats, tokens, |e, f, t| {
        net.forward(e, f, t)
    })?;
    Ok(probabilities(&heads.tasks, &net.arch, &raw))
}

/// Monte-Carlo dropout over [`predict_arrays`]' inputs: `samples` passes with dropout on (see
/// [`Network::forward_sampled`]), on a copy of the network whose dropout streams start from
/// `seed` (the same seed gives the same result). Per task, the mean of the passes'
/// probabilities (or values) and their standard deviation.
///
/// # Errors
/// INVALID_ARGUMENT when `samples` is 0 or the heads have no dropout to sample (a linear head,
/// or dropout 0), as for [`predict_arrays`].
pub fn predict_sampled(
    heads: &Heads,
    emb: ArrayView2<'_, f32>,
    feats: ArrayView2<'_, f32>,
    tokens: Option<&TokenSeqs>,
    samples: usize,
    seed: u64,
) -> Result<Spread> {
    if samples == 0 {
        return Err(Error::invalid(
            "Monte-Carlo dropout needs at least 1 sample",
        ));
    }
    let mut net = heads.network.clone();
    if net.reseed_all_dropout(seed) == 0 {
        return Err(Error::invalid(
            "these heads have no dropout (dropout 0, or a linear head): Monte-Carlo dropout \
             has nothing to sample",
        ));
    }
    let arch = heads.network.arch.clone();
    let mut sum: Vec<Array2<f64>> = Vec::new();
    let mut sum_sq: Vec<Array2<f64>> = Vec::new();
    for _ in 0..samples {
        let raw = in_chunks(&arch, emb, feats, tokens, |e, f, t| {
            net.forward_sampled(e, f, t)
        })?;
        let probs = probabilities(&heads.tasks, &arch, &raw);
        if sum.is_empty() {
            sum = probs.iter().map(|p| Array2::zeros(p.raw_dim())).collect();
            sum_sq = sum.clone();
        }
        for ((s, q), p) in sum.iter_mut().zip(sum_sq.iter_mut()).zip(&probs) {
            let p = p.mapv(f64::from);
            *q += &(&p * &p);
            *s += &p;
        }
    }
    let k = samples as f64;
    let mean: Vec<Array2<f32>> = sum.iter().map(|s| s.mapv(|v| (v / k) as f32)).collect();
    // Population standard deviation of the passes, floored at 0 against rounding.
    let std = sum
        .iter()
        .zip(&sum_sq)
        .map(|(s, q)| {
            ndarray::Zip::from(s)
                .and(q)
                .map_collect(|&s, &q| ((q / k - (s / k).powi(2)).max(0.0)).sqrt() as f32)
        })
        .collect();
    Ok(Spread { mean, std, samples })
}

/// What Monte-Carlo dropout gives per task: mean and standard deviation over the passes.
#[derive(Debug, Clone)]
pub struct Spread {
    /// Each task's mean probabilities (or values), `[n, outputs]`.
    pub mean: Vec<Array2<f32>>,
    /// Their standard deviation over the passes, same shapes.
    pub std: Vec<Array2<f32>>,
    /// Passes run.
    pub samples: usize,
}

/// Every task's raw outputs from `run` over the inputs: in one call for pooled heads, in
/// chunks of [`SEQUENCE_CHUNK`] texts (their tokens packed per chunk) for sequence heads.
fn in_chunks(
    arch: &Architecture,
    emb: ArrayView2<'_, f32>,
    feats: ArrayView2<'_, f32>,
    tokens: Option<&TokenSeqs>,
    mut run: impl FnMut(
        ArrayView2<'_, f32>,
        ArrayView2<'_, f32>,
        Option<&crate::backbone::PackedBatch>,
    ) -> Result<Vec<Array2<f32>>>,
) -> Result<Vec<Array2<f32>>> {
    let t = match (arch.needs_tokens(), tokens) {
        (false, _) => return run(emb, feats, None),
        (true, None) => {
            return Err(Error::invalid(
                "sequence heads need the texts' per-token vectors",
            ))
        }
        (true, Some(t)) => t,
    };
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
        parts.push(run(
            emb.slice(ndarray::s![rows, ..]),
            f,
            Some(&t.gather(idx)),
        )?);
    }
    Ok((0..arch.outputs.len())
        .map(|k| {
            let views: Vec<_> = parts.iter().map(|p| p[k].view()).collect();
            ndarray::concatenate(ndarray::Axis(0), &views).expect("same widths")
        })
        .collect())
}
