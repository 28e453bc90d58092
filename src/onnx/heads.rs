//! A bundle's serving path after the backbone, written as ONNX nodes: feature selection and
//! z-scoring, the metadata encoder, the sequence encoder of sequence heads (see
//! [`super::sequence`]), the task heads and their output functions (softmax,
//! sigmoid, de-standardization). The same nodes serve as a standalone heads graph (run by
//! ONNX Runtime instead of native code) and as the tail of a whole-model export.

use std::f32::consts::FRAC_1_SQRT_2;

use super::proto::{tensor_proto::DataType, ModelProto};
use super::sequence;
use super::write::{self, attr_float, attr_int, Dim, GraphBuilder};
use crate::data::TaskKind;
use crate::error::{Error, Result};
use crate::heads::{Heads, Mode};
use crate::nn::container::{Module, Sequential};
use crate::nn::{Layer, LayerNorm, Linear, Mlp};

/// Input name of the pooled embedding `[batch, dim]` in a standalone heads graph.
pub const EMBEDDING_INPUT: &str = "embedding";

/// Input name of the raw metadata features `[batch, n]`, in the order `tandem features` lists
/// them (the graph selects and z-scores them itself).
pub const METADATA_INPUT: &str = "metadata";

/// Input name of the texts' per-token vectors `[batch, seq, dim]` (float32, right-padded) in
/// a standalone heads graph of sequence heads.
pub const TOKENS_INPUT: &str = "tokens";

/// Input name of the mask of [`TOKENS_INPUT`] `[batch, seq]` (int64, 1 for a real token, 0
/// for padding; real tokens first).
pub const TOKEN_MASK_INPUT: &str = "token_mask";

/// The value names the heads read inside a graph.
#[derive(Debug, Clone, Default)]
pub struct HeadsInputs {
    /// The pooled embedding `[batch, dim]` (needed unless the model is metadata-only).
    pub embedding: Option<String>,
    /// The raw metadata features `[batch, n]` (needed when the model reads metadata).
    pub metadata: Option<String>,
    /// The padded per-token vectors `[batch, seq, dim]` and their int64 mask `[batch, seq]`
    /// (needed by sequence heads).
    pub tokens: Option<(String, String)>,
}

/// How each task's output is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOutput {
    /// One column, the positive class's probability (what native decoding reads).
    Positive,
    /// Two columns `[1 - p, p]`, as `tandem predict` reports a binary task.
    Pair,
}

/// One task's output value in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutput {
    /// The value's name inside the graph.
    pub value: String,
    /// The graph output name: `<task>.probabilities` or `<task>.value`.
    pub name: String,
    /// Its width.
    pub width: usize,
}

/// The graph output name of a task: `<task>.value` for regression, else
/// `<task>.probabilities`.
pub fn output_name(task: &str, kind: TaskKind) -> String {
    match kind {
        TaskKind::Regression => format!("{task}.value"),
        _ => format!("{task}.probabilities"),
    }
}

/// Whether the heads read metadata features.
pub fn reads_metadata(heads: &Heads) -> bool {
    heads.network.encoder.is_some()
        && matches!(
            heads.network.arch.mode,
            Mode::TwoStage | Mode::Joint | Mode::MetadataOnly
        )
}

/// Whether the heads read the pooled embedding.
pub fn reads_embedding(heads: &Heads) -> bool {
    heads.network.arch.mode != Mode::MetadataOnly
}

/// Whether the heads read per-token vectors (sequence heads).
pub fn reads_tokens(heads: &Heads) -> bool {
    heads.network.arch.needs_tokens()
}

/// Appends the heads' nodes to `b`, reading `inputs`; returns each task's output.
pub fn append(
    b: &mut GraphBuilder,
    heads: &Heads,
    inputs: &HeadsInputs,
    binary: BinaryOutput,
) -> Result<Vec<TaskOutput>> {
    let net = &heads.network;
    let arch = &net.arch;
    let code = if reads_metadata(heads) {
        let raw = inputs
            .metadata
            .as_deref()
            .ok_or_else(|| Error::invalid("these heads read metadata features"))?;
        let norm = heads
            .normalizer
            .as_ref()
            .ok_or_else(|| Error::format("heads read metadata but have no normalizer"))?;
        let idx: Vec<i64> = norm.selected.iter().map(|&i| i as i64).collect();
        let idx = b.ints("normalizer.selected", &idx);
        let x = b.node(
            "Gather",
            &[raw, &idx],
            vec![attr_int("axis", 1)],
            "normalizer",
        );
        let mean = b.floats("normalizer.mean", &norm.mean);
        let std = b.floats("normalizer.std", &norm.std);
        let x = b.node("Sub", &[&x, &mean], vec![], "normalizer");
        let x = b.node("Div", &[&x, &std], vec![], "normalizer");
        let lo = b.scalar("normalizer.min", -10.0);
        let hi = b.scalar("normalizer.max", 10.0);
        let x = b.node("Clip", &[&x, &lo, &hi], vec![], "normalizer");
        let encoder = net
            .encoder
            .as_ref()
            .ok_or_else(|| Error::format("heads read metadata but have no encoder"))?;
        Some(mlp(b, encoder, &x)?)
    } else {
        None
    };
    let raw: Vec<String> = if arch.mode == Mode::MetadataOnly {
        let code = code.ok_or_else(|| Error::format("metadata-only heads without an encoder"))?;
        net.aux_heads
            .iter()
            .map(|h| mlp(b, h, &code))
            .collect::<Result<_>>()?
    } else {
        let emb = inputs
            .embedding
            .as_deref()
            .ok_or_else(|| Error::invalid("these heads read the pooled embedding"))?;
        // [embedding ; code ; sequence], as the native input layout.
        let mut blocks = vec![emb.to_string()];
        if let (Some(c), Mode::TwoStage | Mode::Joint) = (&code, arch.mode) {
            blocks.push(c.clone());
        }
        if arch.needs_tokens() {
            let enc = net
                .sequence
                .as_ref()
                .ok_or_else(|| Error::format("sequence heads without a sequence encoder"))?;
            let (tokens, mask) = inputs
                .tokens
                .as_ref()
                .ok_or_else(|| Error::invalid("these heads read per-token vectors"))?;
            blocks.push(sequence::append_sequence(b, enc, tokens, mask)?);
        }
        let input = match blocks.len() {
            1 => blocks.remove(0),
            _ => {
                let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
                b.node("Concat", &refs, vec![attr_int("axis", 1)], "heads.input")
            }
        };
        net.heads
            .iter()
            .map(|h| mlp(b, h, &input))
            .collect::<Result<_>>()?
    };
    if raw.len() != heads.tasks.len() {
        return Err(Error::format(format!(
            "{} heads for {} tasks",
            raw.len(),
            heads.tasks.len()
        )));
    }
    let mut out = Vec::new();
    for (t, (task, z)) in heads.tasks.iter().zip(&raw).enumerate() {
        let name = &task.spec.name;
        let width = arch.outputs.get(t).copied().unwrap_or(0);
        let (value, width) = match task.spec.kind {
            TaskKind::Multiclass => (
                b.node("Softmax", &[z], vec![attr_int("axis", -1)], name),
                width,
            ),
            TaskKind::Multilabel => (b.node("Sigmoid", &[z], vec![], name), width),
            TaskKind::Binary => {
                let p = b.node("Sigmoid", &[z], vec![], name);
                match binary {
                    BinaryOutput::Positive => (p, width),
                    BinaryOutput::Pair => {
                        let one = b.scalar(&format!("{name}.one"), 1.0);
                        let q = b.node("Sub", &[&one, &p], vec![], name);
                        (
                            b.node("Concat", &[&q, &p], vec![attr_int("axis", 1)], name),
                            2,
                        )
                    }
                }
            }
            TaskKind::Regression => {
                let (mean, std) = arch.target_scale.get(t).copied().unwrap_or((0.0, 1.0));
                let s = b.scalar(&format!("{name}.std"), std);
                let m = b.scalar(&format!("{name}.mean"), mean);
                let v = b.node("Mul", &[z, &s], vec![], name);
                (b.node("Add", &[&v, &m], vec![], name), width)
            }
        };
        out.push(TaskOutput {
            value,
            name: output_name(name, task.spec.kind),
            width,
        });
    }
    Ok(out)
}

/// A standalone heads graph: inputs [`EMBEDDING_INPUT`] and/or [`METADATA_INPUT`] (of
/// `n_metadata` raw features), plus [`TOKENS_INPUT`] and [`TOKEN_MASK_INPUT`] for sequence
/// heads; one output per task. `binary` shapes binary tasks' outputs.
pub fn heads_model(
    heads: &Heads,
    n_metadata: usize,
    binary: BinaryOutput,
    metadata: &[(String, String)],
) -> Result<ModelProto> {
    let mut b = GraphBuilder::new("tandem_heads");
    let batch = Dim::named("batch");
    let mut inputs = HeadsInputs::default();
    if reads_embedding(heads) {
        let d = heads.network.arch.emb_dim as i64;
        inputs.embedding = Some(b.input(
            EMBEDDING_INPUT,
            DataType::Float,
            &[batch.clone(), Dim::Fixed(d)],
        ));
    }
    if reads_metadata(heads) {
        inputs.metadata = Some(b.input(
            METADATA_INPUT,
            DataType::Float,
            &[batch.clone(), Dim::Fixed(n_metadata as i64)],
        ));
    }
    if reads_tokens(heads) {
        let (d, seq) = (heads.network.arch.emb_dim as i64, Dim::named("seq"));
        let tokens = b.input(
            TOKENS_INPUT,
            DataType::Float,
            &[batch.clone(), seq.clone(), Dim::Fixed(d)],
        );
        let mask = b.input(TOKEN_MASK_INPUT, DataType::Int64, &[batch.clone(), seq]);
        inputs.tokens = Some((tokens, mask));
    }
    let outs = append(&mut b, heads, &inputs, binary)?;
    for o in &outs {
        b.output(
            &o.value,
            &o.name,
            DataType::Float,
            &[batch.clone(), Dim::Fixed(o.width as i64)],
        );
    }
    Ok(write::model(b.into_graph(), metadata))
}

/// Appends an MLP's inference pass (dropout is the identity) to `b`; returns its output.
pub fn mlp(b: &mut GraphBuilder, m: &Mlp, x: &str) -> Result<String> {
    sequential(b, m.net(), x)
}

fn sequential(b: &mut GraphBuilder, s: &Sequential, x: &str) -> Result<String> {
    let mut h = x.to_string();
    for (_, child) in s.children() {
        h = module(b, child, &h)?;
    }
    Ok(h)
}

/// A parameter's name without its last segment (`heads.0.out.weight` -> `heads.0.out`).
fn scope(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

fn module(b: &mut GraphBuilder, m: &Module, x: &str) -> Result<String> {
    Ok(match m {
        Module::Linear(l) => linear(b, l, x),
        Module::LayerNorm(n) => layer_norm(b, n, x),
        Module::Relu(r) => b.node("Relu", &[x], vec![], r.name()),
        Module::Gelu(g) => gelu(b, x, g.name()),
        Module::Dropout(_) => x.to_string(),
        Module::Residual(r) => {
            let y = sequential(b, r.inner(), x)?;
            b.node("Add", &[&y, x], vec![], r.name())
        }
        Module::Sequential(s) => sequential(b, s, x)?,
    })
}

/// Appends a Linear layer `x·Wᵀ + b` over the matrix `x` `[n, in]` (one Gemm); returns its
/// output.
pub fn linear(b: &mut GraphBuilder, l: &Linear, x: &str) -> String {
    let w = l.weight();
    let hint = scope(&w.name).to_string();
    let wn = b.weight(&w.name, w.value.view());
    match l.bias() {
        Some(bias) => {
            let bn = b.weight(&bias.name, bias.value.view());
            b.node("Gemm", &[x, &wn, &bn], vec![attr_int("transB", 1)], &hint)
        }
        None => b.node("Gemm", &[x, &wn], vec![attr_int("transB", 1)], &hint),
    }
}

/// Appends a Linear layer over the last axis of `x` of any rank ≥ 2 (a MatMul against the
/// stored transpose, which broadcasts over the leading axes as Gemm cannot, then the bias);
/// returns its output.
pub fn linear_last_axis(b: &mut GraphBuilder, l: &Linear, x: &str) -> String {
    let w = l.weight();
    let hint = scope(&w.name).to_string();
    let wt = b.weight(&format!("{}.t", w.name), w.value2().t().into_dyn());
    let y = b.node("MatMul", &[x, &wt], vec![], &hint);
    match l.bias() {
        Some(bias) => {
            let bn = b.weight(&bias.name, bias.value.view());
            b.node("Add", &[&y, &bn], vec![], &hint)
        }
        None => y,
    }
}

/// Appends a LayerNorm over the last axis of `x`; returns its output.
pub fn layer_norm(b: &mut GraphBuilder, n: &LayerNorm, x: &str) -> String {
    let p = n.params();
    let hint = scope(&p[0].name).to_string();
    let g = b.weight(&p[0].name, p[0].value.view());
    let beta = b.weight(&p[1].name, p[1].value.view());
    b.node(
        "LayerNormalization",
        &[x, &g, &beta],
        vec![attr_int("axis", -1), attr_float("epsilon", n.eps())],
        &hint,
    )
}

/// The exact GELU, x·½(1 + erf(x/√2)), from opset-13 operators (the `Gelu` operator needs
/// opset 20, which older runtimes, onnxruntime-web among them, lack).
pub fn gelu(b: &mut GraphBuilder, x: &str, hint: &str) -> String {
    let c = b.scalar(&format!("{hint}.inv_sqrt2"), FRAC_1_SQRT_2);
    let half = b.scalar(&format!("{hint}.half"), 0.5);
    let one = b.scalar(&format!("{hint}.one"), 1.0);
    let s = b.node("Mul", &[x, &c], vec![], hint);
    let e = b.node("Erf", &[&s], vec![], hint);
    let e = b.node("Add", &[&e, &one], vec![], hint);
    let h = b.node("Mul", &[x, &half], vec![], hint);
    b.node("Mul", &[&h, &e], vec![], hint)
}
