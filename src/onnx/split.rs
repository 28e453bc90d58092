//! A backbone split at a layer: the frozen bottom (embeddings and layers `0..L-K`) as an ONNX
//! graph cut out of the backbone's fp32 graph and run by ONNX Runtime, and the top `K` BERT
//! layers in tandem's native code ([`BertLayer`]) from the same pretrained weights, so that
//! they can be trained on the device while the bottom stays frozen.
//!
//! The bottom graph is the backbone graph with one output, `hidden_states` (`[batch, seq,
//! dim]`, the output of layer `L-K-1`'s last LayerNorm, or of the embeddings' LayerNorm when all
//! layers are on top), int64 `input_ids` and `attention_mask` inputs (`token_type_ids`, if the
//! backbone reads it, is fed zeros inside the graph, as tandem does), and every node no longer
//! needed pruned.

use ndarray::{Array2, ArrayView2};
use ort::session::Session;
use ort::value::Tensor;

use super::bert::{attention_heads, bert_layer_count, load_bert_layers};
use super::export::{normalize_inputs, prune};
use super::proto::{tensor_proto::DataType, ModelProto};
use super::read::{self, OnnxModel};
use super::write::{self, Dim, GraphBuilder};
use crate::backbone::{
    build_session, l2_normalize, Backbone, GraphSource, Pooling, TokenSeqs, Variant,
};
use crate::cache::{CacheStats, TokenCache};
use crate::error::{Error, ErrorKind, Result};
use crate::nn::bert::BertLayer;

/// The bottom graph's output.
pub const HIDDEN_OUTPUT: &str = "hidden_states";

/// The backbone graph `model` cut after its first `keep` BERT layers (see the module doc).
pub fn bottom_graph(model: &OnnxModel, keep: usize) -> Result<ModelProto> {
    let layers = bert_layer_count(model);
    if keep >= layers {
        return Err(Error::invalid(format!(
            "the graph has {layers} layers: the bottom must keep fewer than that (at least one on top)"
        )));
    }
    let suffix = if keep == 0 {
        "/embeddings/LayerNorm/LayerNormalization".to_string()
    } else {
        format!(
            "/encoder/layer.{}/output/LayerNorm/LayerNormalization",
            keep - 1
        )
    };
    let g = model.graph();
    let found: Vec<&String> = g
        .node
        .iter()
        .filter(|n| n.name.ends_with(&suffix))
        .filter_map(|n| n.output.first())
        .collect();
    let [cut] = found.as_slice() else {
        return Err(Error::format(format!(
            "{} nodes named `…{suffix}` in the graph (the split needs exactly one)",
            found.len()
        )));
    };
    let cut = (*cut).clone();
    let mut proto = model.proto.clone();
    let graph = proto.graph.take().expect("checked at read");
    let mut b = GraphBuilder::extend(graph);
    b.graph_mut().output.clear();
    normalize_inputs(&mut b)?;
    b.output(
        &cut,
        HIDDEN_OUTPUT,
        DataType::Float,
        &[Dim::named("batch"), Dim::named("seq"), Dim::named("dim")],
    );
    let mut graph = b.into_graph();
    prune(&mut graph);
    read::check_graph(&graph)?;
    let mut out = write::model(graph, &[]);
    out.ir_version = proto.ir_version.max(write::IR_VERSION);
    out.opset_import = proto.opset_import;
    Ok(out)
}

/// A backbone split for training its top layers: the bottom in ONNX Runtime, the top natively.
pub struct SplitBackbone {
    session: std::sync::Mutex<Session>,
    top: Vec<BertLayer>,
    keep: usize,
}

impl std::fmt::Debug for SplitBackbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitBackbone")
            .field("bottom_layers", &self.keep)
            .field("top_layers", &self.top.len())
            .finish()
    }
}

impl SplitBackbone {
    /// Splits `backbone`'s fp32 graph so that its top `k` layers run natively, with as many
    /// attention heads as the graph's attention reshapes say ([`attention_heads`]).
    pub fn open(backbone: &Backbone, k: usize) -> Result<SplitBackbone> {
        let model = read::read(&fp32_graph(backbone)?)?;
        require_bert_layers(backbone, &model)?;
        let heads = attention_heads(&model)?;
        Self::from_model(backbone, &model, k, heads)
    }

    /// Splits `backbone`'s fp32 graph so that its top `k` layers (of `heads` attention heads
    /// each) run natively; the bottom runs on the backbone's runtime and device.
    pub fn new(backbone: &Backbone, k: usize, heads: usize) -> Result<SplitBackbone> {
        let model = read::read(&fp32_graph(backbone)?)?;
        require_bert_layers(backbone, &model)?;
        Self::from_model(backbone, &model, k, heads)
    }

    fn from_model(
        backbone: &Backbone,
        model: &OnnxModel,
        k: usize,
        heads: usize,
    ) -> Result<SplitBackbone> {
        let layers = bert_layer_count(model);
        if k == 0 || k > layers {
            return Err(Error::invalid(format!(
                "{k} trainable layers: the backbone has {layers} (choose 1 to {layers})"
            )));
        }
        let keep = layers - k;
        let bottom = write::encode(&bottom_graph(model, keep)?);
        let top = load_bert_layers(model, heads)?.split_off(keep);
        let session = build_session(
            backbone.runtime(),
            GraphSource::Memory(&bottom),
            backbone.options().threads.unwrap_or(0),
            backbone.options().device,
        )?;
        Ok(SplitBackbone {
            session: std::sync::Mutex::new(session),
            top,
            keep,
        })
    }

    /// The native top layers.
    pub fn top(&self) -> &[BertLayer] {
        &self.top
    }

    /// The native top layers, taken out of the split (to train them).
    pub fn into_top(self) -> Vec<BertLayer> {
        self.top
    }

    /// The native top layers, to train.
    pub fn top_mut(&mut self) -> &mut [BertLayer] {
        &mut self.top
    }

    /// Layers in the bottom graph.
    pub fn bottom_layers(&self) -> usize {
        self.keep
    }

    /// The bottom's hidden states of each text's tokens, packed: `[T, dim]` and offsets
    /// (`b + 1` entries), the input the top layers take.
    pub fn bottom(&self, backbone: &Backbone, texts: &[&str]) -> Result<(Array2<f32>, Vec<usize>)> {
        let ids = backbone.tokenizer().encode(texts)?;
        let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        self.bottom_of(backbone, &rows)
    }

    /// [`SplitBackbone::bottom`] of token ids, padded into one run.
    fn bottom_of(&self, backbone: &Backbone, rows: &[&[u32]]) -> Result<(Array2<f32>, Vec<usize>)> {
        let batch = backbone.tokenizer().pad(rows);
        let shape = vec![batch.rows as i64, batch.width as i64];
        let t = |v: Vec<i64>| {
            Tensor::from_array((shape.clone(), v)).map_err(|e| Error::onnx("building an input", e))
        };
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        // A bottom of the embeddings alone reads no attention mask (it was pruned).
        let wants = |n: &str| session.inputs().iter().any(|i| i.name() == n);
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        inputs.push(("input_ids".into(), t(batch.ids.clone())?.into()));
        if wants("attention_mask") {
            inputs.push(("attention_mask".into(), t(batch.mask.clone())?.into()));
        }
        let out = session
            .run(inputs)
            .map_err(|e| Error::onnx("running the bottom graph", e))?;
        let (shape, data) = out[HIDDEN_OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::onnx("reading the hidden states", e))?;
        let dim = *shape.last().unwrap_or(&0) as usize;
        let mut packed = Vec::new();
        let mut offsets = vec![0usize];
        for (r, mask) in batch.row_masks.iter().enumerate() {
            // Right padding: the real tokens are the row's first ones.
            let n = mask.iter().filter(|&&m| m != 0).count().max(1);
            let start = r * batch.width * dim;
            packed.extend_from_slice(&data[start..start + n * dim]);
            offsets.push(offsets.last().copied().unwrap_or(0) + n);
        }
        let tokens = Array2::from_shape_vec((packed.len() / dim.max(1), dim), packed)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        Ok((tokens, offsets))
    }

    /// The bottom's hidden states of `texts` as token sequences (stored as f16), through
    /// `cache` when given: only texts it lacks run the bottom graph, so training epochs never
    /// rerun the frozen layers. The cache must be this split's
    /// ([`TokenCache::open_split`] with [`SplitBackbone::bottom_layers`]).
    pub fn hidden(
        &self,
        backbone: &Backbone,
        cache: Option<&TokenCache>,
        texts: &[&str],
    ) -> Result<(TokenSeqs, CacheStats)> {
        let run = |batch: &[&str]| -> Result<(Array2<f32>, TokenSeqs)> {
            // In length-matched runs, as the backbone batches its own: TREC questions in runs
            // of 32 in file order were about 45% padding.
            let ids = backbone.tokenizer().encode(batch)?;
            let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
            let mut each: Vec<Option<Array2<f32>>> = vec![None; batch.len()];
            for run in backbone.plan_runs(&lengths) {
                let rows: Vec<&[u32]> = run.iter().map(|&i| ids[i].as_slice()).collect();
                let (tokens, offsets) = self.bottom_of(backbone, &rows)?;
                for (&i, w) in run.iter().zip(offsets.windows(2)) {
                    each[i] = Some(tokens.slice(ndarray::s![w[0]..w[1], ..]).to_owned());
                }
            }
            let mut seqs = TokenSeqs::new(backbone.dim());
            for t in each {
                let t = t.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Internal,
                        "a text was left out of the bottom's runs",
                    )
                })?;
                seqs.push(t.view());
            }
            Ok((Array2::zeros((batch.len(), 0)), seqs))
        };
        match cache {
            Some(c) => c.embed_with(texts, None, run),
            None => {
                let (_, seqs) = run(texts)?;
                let stats = CacheStats {
                    misses: texts.len(),
                    ..Default::default()
                };
                Ok((seqs, stats))
            }
        }
    }

    /// The top layers over packed hidden states (inference).
    pub fn top_forward(&self, tokens: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        let mut h = tokens.to_owned();
        for layer in &self.top {
            h = layer.forward_inference(h.view(), offsets);
        }
        h
    }

    /// Sentence embeddings through the split: bottom, native top layers, the manifest's pooling
    /// of each text's tokens and (when the manifest says so) L2 normalization, as the whole
    /// graph computes them.
    pub fn embed(&self, backbone: &Backbone, texts: &[&str]) -> Result<Array2<f32>> {
        let (tokens, offsets) = self.bottom(backbone, texts)?;
        let h = self.top_forward(tokens.view(), &offsets);
        let m = backbone.manifest();
        Ok(pool(h.view(), &offsets, m.pooling, m.normalize))
    }
}

/// Refuses a graph without BERT encoder layers (an MPNet backbone, for one: its layers add a
/// relative position bias that tandem's native layer does not compute), naming the family.
fn require_bert_layers(backbone: &Backbone, model: &OnnxModel) -> Result<()> {
    if bert_layer_count(model) > 0 {
        return Ok(());
    }
    let m = backbone.manifest();
    let family = if m.architecture.is_empty() {
        "not BERT".to_string()
    } else {
        m.architecture.clone()
    };
    Err(Error::invalid(format!(
        "backbone {} ({family}): tandem fine-tunes the top layers of BERT-family backbones only \
         (its graph has no `…/encoder/layer.0/attention/self/query/MatMul`); train frozen heads on \
         it (no --trainable-layers)",
        m.name
    )))
}

/// The fp32 graph of `backbone`, which splits are cut from.
fn fp32_graph(backbone: &Backbone) -> Result<std::path::PathBuf> {
    let manifest = backbone.manifest();
    let file = manifest.graphs.get(Variant::Fp32.name()).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("backbone {} has no fp32 graph to split", manifest.name),
        )
    })?;
    Ok(backbone.dir().join(file))
}

/// Sentence embeddings of packed token rows `h` (`offsets` delimit each text's), pooled as
/// `pooling` says and L2-normalized when `normalize` (as the backbone's manifest says).
pub fn pool(
    h: ArrayView2<'_, f32>,
    offsets: &[usize],
    pooling: Pooling,
    normalize: bool,
) -> Array2<f32> {
    let mut emb = pooling.pool_packed(h, offsets);
    if normalize {
        l2_normalize(&mut emb);
    }
    emb
}
