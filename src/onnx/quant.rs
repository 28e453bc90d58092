//! Fine-tuned BERT layers written into a backbone's int8 graph, quantized the way the graph's
//! own layers were: the int8 graph of a fine-tuned model, which ONNX Runtime serves at the
//! frozen int8 backbone's speed because it *is* that graph with other weights.
//!
//! tandem's int8 graph (`onnx/export.py`) is ONNX Runtime's transformer optimizer followed by
//! `quantize_dynamic` (per-channel symmetric QInt8 weights, activations quantized per run),
//! after an exact rewrite of each FFN that keeps BERT's outlier channels out of the per-tensor
//! activation scales. Per layer:
//!
//! ```text
//! x_q ─ QAttention(W_qkv int8 [d,3d], b_qkv) ─ DynamicQuantizeLinear ─ MatMulInteger(W_o)
//!     ─ Cast ─ Mul(scales) ─ Add(b_o) ─ Add(x) ─ LayerNorm₁ = h
//! h ─ [Mul(s) ─ Gather(r) ─ Concat]  (outlier input channels c split into 1/s_c parts)
//!   ─ DynamicQuantizeLinear ─ MatMulInteger([W₁ ; W₁[r]]) ─ Cast ─ Mul ─ BiasGelu(b₁)
//!   ─ DynamicQuantizeLinear ─ MatMulInteger(W₂) ─ Cast ─ Mul ─ [Add(side)] ─ Add(b₂) ─ Add(h)
//!   ─ LayerNorm₂
//! side path (fp32, for the intermediate channels I with outliers): h ─ MatMul(W₁[:, I])
//!   ─ BiasGelu(b₁[I]) ─ MatMul(W₂[I, :]); the main path has W₁[:, I] = 0, b₁[I] = -1e4 and
//!   W₂[I, :] = 0 there, so its GELU is exactly 0 on I.
//! ```
//!
//! [`with_layers_int8`] finds these tensors through the nodes (not their names), keeps the
//! graph's choice of outlier channels (the rewrites are exact whatever the channels, and a
//! fine-tune moves the weights little), and writes the fine-tuned weights through the same
//! rewrites and the same quantization ([`quantize_columns`]: re-quantizing the pretrained
//! layers reproduces the graph's int8 weights bit for bit, a test). A graph of another layout
//! is a clear format error.

use std::collections::HashMap;

use ndarray::{concatenate, Array2, ArrayView2, Axis, Ix1, Ix2};

use super::proto::{tensor_proto::DataType, GraphProto, ModelProto, NodeProto, TensorProto};
use super::read::{tensor_to_f32, tensor_to_i64, OnnxModel};
use crate::error::{Error, Result};
use crate::nn::bert::BertLayer;

/// The bias the main FFN path carries on channels computed by the side path: GELU(-1e4) is
/// exactly 0 in fp32.
const MASKED_BIAS: f32 = -1e4;

/// Symmetric per-column int8 quantization of `w` `[rows, cols]` into `[-qmax, qmax]`, as ONNX
/// Runtime's `quantize_dynamic(per_channel=True, weight_type=QInt8)` computes it: scale =
/// max|w[:, c]| / qmax (1 for an all-zero column), q = round-half-even(w / scale), zero point 0.
/// `qmax` is 127 at full range and 64 with `reduce_range` (tandem's graphs: see
/// [`Int8Range`]). Returns the int8 values (row-major) and the scales.
pub fn quantize_columns(w: ArrayView2<'_, f32>, range: Int8Range) -> (Vec<i8>, Vec<f32>) {
    let qmax = range.qmax();
    let scales: Vec<f32> = w
        .columns()
        .into_iter()
        .map(|c| {
            let m = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if m > 0.0 {
                m / qmax
            } else {
                1.0
            }
        })
        .collect();
    let mut q = Vec::with_capacity(w.len());
    for row in w.rows() {
        for (v, s) in row.iter().zip(&scales) {
            q.push((v / s).round_ties_even().clamp(-qmax, qmax) as i8);
        }
    }
    (q, scales)
}

/// The range of a graph's symmetric int8 weights. Setup quantizes with `reduce_range` (7 bits,
/// [-64, 64]) since CPUs without VNNI saturate at full range; graphs made before then, or by
/// other tools, use [-127, 127]. A fine-tune is quantized as its graph's own weights were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Range {
    /// [-127, 127].
    Full,
    /// [-64, 64] (`reduce_range=True`).
    Reduced,
}

impl Int8Range {
    /// The largest magnitude.
    pub fn qmax(self) -> f32 {
        match self {
            Int8Range::Full => 127.0,
            Int8Range::Reduced => 64.0,
        }
    }

    /// The range whose largest magnitude the quantized values `q` reach: per-column symmetric
    /// quantization maps every column's largest weight onto ±qmax exactly.
    pub fn of(q: impl IntoIterator<Item = i64>) -> Option<Int8Range> {
        match q.into_iter().map(i64::abs).max() {
            Some(127) => Some(Int8Range::Full),
            Some(64) => Some(Int8Range::Reduced),
            _ => None,
        }
    }
}

/// Where the graph reads an initializer: node index and input slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    node: usize,
    input: usize,
}

/// A dynamically quantized MatMul: `DynamicQuantizeLinear → MatMulInteger → Cast → Mul`.
#[derive(Debug)]
struct QMatMul {
    weight: Slot,
    scale: Slot,
    zero_point: Slot,
    output: String,
}

/// The fp32 side path of an FFN's outlier channels.
#[derive(Debug)]
struct Side {
    up: Slot,
    bias: Option<Slot>,
    down: Slot,
    channels: Vec<usize>,
}

/// Where every weight of one int8 BERT layer is read.
#[derive(Debug)]
struct Int8Layer {
    qkv_weight: Slot,
    qkv_bias: Slot,
    qkv_scale: Slot,
    qkv_zero_point: Slot,
    out: QMatMul,
    out_bias: Slot,
    ln1: (Slot, Slot),
    /// The up-projection's input split: the channels repeated (`Gather` indices).
    repeats: Vec<usize>,
    up: QMatMul,
    up_bias: Slot,
    side: Option<Side>,
    down: QMatMul,
    down_bias: Slot,
    ln2: (Slot, Slot),
}

/// The graph with its edges indexed, for walking one layer's nodes.
struct Walk<'a> {
    g: &'a GraphProto,
    model: &'a OnnxModel,
    consumers: HashMap<&'a str, Vec<usize>>,
    inits: HashMap<&'a str, &'a TensorProto>,
    layer: usize,
}

impl<'a> Walk<'a> {
    fn new(model: &'a OnnxModel) -> Walk<'a> {
        let g = model.graph();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for input in &n.input {
                consumers.entry(input.as_str()).or_default().push(i);
            }
        }
        Walk {
            g,
            model,
            consumers,
            inits: super::read::initializers(g),
            layer: 0,
        }
    }

    fn err(&self, what: String) -> Error {
        Error::format(format!(
            "int8 graph, BERT layer {}: {what} (not the layout of tandem's int8 graphs)",
            self.layer
        ))
    }

    fn node(&self, i: usize) -> &'a NodeProto {
        &self.g.node[i]
    }

    fn output(&self, i: usize) -> Result<&'a str> {
        let n = self.node(i);
        n.output
            .first()
            .map(String::as_str)
            .ok_or_else(|| self.err(format!("node `{}` has no output", n.name)))
    }

    /// The nodes of type `op` that read `value`.
    fn readers(&self, value: &str, op: &str) -> Vec<usize> {
        self.consumers
            .get(value)
            .map(|c| {
                c.iter()
                    .copied()
                    .filter(|&i| self.node(i).op_type == op)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one node of type `op` that reads `value`.
    fn one(&self, value: &str, op: &str) -> Result<usize> {
        match self.readers(value, op)[..] {
            [i] => Ok(i),
            ref found => Err(self.err(format!(
                "expected one {op} reading `{value}`, found {}",
                found.len()
            ))),
        }
    }

    fn is_init(&self, name: &str) -> bool {
        self.inits.contains_key(name)
    }

    /// Input `input` of node `node`, which must be an initializer.
    fn init_at(&self, node: usize, input: usize) -> Result<Slot> {
        let n = self.node(node);
        match n.input.get(input) {
            Some(name) if self.is_init(name) => Ok(Slot { node, input }),
            _ => Err(self.err(format!(
                "input {input} of `{}` ({}) is not an initializer",
                n.name, n.op_type
            ))),
        }
    }

    /// The one initializer input of node `node`.
    fn the_init(&self, node: usize) -> Result<Slot> {
        let n = self.node(node);
        let mut found = n
            .input
            .iter()
            .enumerate()
            .filter(|(_, name)| self.is_init(name));
        match (found.next(), found.next()) {
            (Some((input, _)), None) => Ok(Slot { node, input }),
            _ => Err(self.err(format!(
                "`{}` ({}) does not read exactly one initializer",
                n.name, n.op_type
            ))),
        }
    }

    fn name(&self, s: Slot) -> &'a str {
        &self.node(s.node).input[s.input]
    }

    fn dims(&self, s: Slot) -> Vec<usize> {
        self.inits[self.name(s)]
            .dims
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect()
    }

    fn f32s(&self, s: Slot) -> Result<ndarray::ArrayD<f32>> {
        tensor_to_f32(self.inits[self.name(s)], self.model.dir.as_deref())
    }

    /// The range the int8 weights at `s` were quantized into.
    fn int8_range(&self, s: Slot) -> Result<Int8Range> {
        let q = tensor_to_i64(self.inits[self.name(s)], self.model.dir.as_deref())?;
        Int8Range::of(q.iter().copied()).ok_or_else(|| {
            self.err(format!(
                "the int8 weights `{}` reach neither ±127 nor ±64: not per-column symmetric \
                 int8 as ONNX Runtime quantizes it",
                self.name(s)
            ))
        })
    }

    /// The quantized MatMul that the `DynamicQuantizeLinear` node `dql` feeds.
    fn qmatmul(&self, dql: usize) -> Result<QMatMul> {
        let d = self.node(dql);
        if d.output.len() != 3 {
            return Err(self.err(format!("`{}` does not have 3 outputs", d.name)));
        }
        let mm = self.one(&d.output[0], "MatMulInteger")?;
        let m = self.node(mm);
        if m.input.len() != 4 || m.input[0] != d.output[0] || m.input[2] != d.output[2] {
            return Err(self.err(format!(
                "`{}` does not read `{}`'s values and zero point",
                m.name, d.name
            )));
        }
        let weight = self.init_at(mm, 1)?;
        let zero_point = self.init_at(mm, 3)?;
        let scales = self.one(&d.output[1], "Mul")?;
        let scale = self.the_init(scales)?;
        let cast = self.one(self.output(mm)?, "Cast")?;
        let mul = self.one(self.output(cast)?, "Mul")?;
        let scaled_by = self.output(scales)?;
        if !self.node(mul).input.iter().any(|i| i == scaled_by) {
            return Err(self.err(format!(
                "`{}` does not scale by `{}`",
                self.node(mul).name,
                self.node(scales).name
            )));
        }
        if self.dims(weight).len() != 2 {
            return Err(self.err(format!("`{}` is not a matrix", self.name(weight))));
        }
        Ok(QMatMul {
            weight,
            scale,
            zero_point,
            output: self.output(mul)?.to_string(),
        })
    }

    /// `value + bias` (an Add with an initializer): the bias and the sum.
    fn bias_add(&self, value: &str) -> Result<(Slot, &'a str)> {
        let add = self.one(value, "Add")?;
        Ok((self.the_init(add)?, self.output(add)?))
    }

    /// `LayerNorm(value + residual)`: the LayerNorm's node.
    fn residual_norm(&self, value: &str) -> Result<usize> {
        let add = self.one(value, "Add")?;
        self.one(self.output(add)?, "LayerNormalization")
    }

    fn layer_at(&mut self, qatt: usize, layer: usize, heads: usize) -> Result<Int8Layer> {
        self.layer = layer;
        let q = self.node(qatt);
        let num_heads = q
            .attribute
            .iter()
            .find(|a| a.name == "num_heads")
            .map_or(0, |a| a.i);
        if num_heads != heads as i64 {
            return Err(self.err(format!(
                "`{}` has {num_heads} heads, the fine-tuned layer {heads}",
                q.name
            )));
        }
        let dql = self.one(self.output(qatt)?, "DynamicQuantizeLinear")?;
        let out = self.qmatmul(dql)?;
        let (out_bias, v) = self.bias_add(&out.output)?;
        let ln1 = self.residual_norm(v)?;
        let h = self.output(ln1)?;

        // The up-projection's input: quantized directly, or its outlier channels split first.
        let (dql_up, repeats) = match self.readers(h, "DynamicQuantizeLinear")[..] {
            [d] => (d, Vec::new()),
            _ => {
                let mul = self.one(h, "Mul")?;
                let scaled = self.output(mul)?;
                let gather = self.one(scaled, "Gather")?;
                let repeats = self.init_at(gather, 1)?;
                let concat = self.one(self.output(gather)?, "Concat")?;
                if self.node(concat).input.first().map(String::as_str) != Some(scaled) {
                    return Err(self.err(format!(
                        "`{}` does not put the scaled input first",
                        self.node(concat).name
                    )));
                }
                let r = tensor_to_i64(self.inits[self.name(repeats)], None)?;
                let width = self.dims(self.the_init(mul)?).iter().product::<usize>();
                let r = r
                    .iter()
                    .map(|&c| {
                        usize::try_from(c)
                            .ok()
                            .filter(|&c| c < width)
                            .ok_or_else(|| self.err(format!("split channel {c} out of range")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                (self.one(self.output(concat)?, "DynamicQuantizeLinear")?, r)
            }
        };
        let up = self.qmatmul(dql_up)?;
        let gelu = self.one(&up.output, "BiasGelu")?;
        let up_bias = self.init_at(gelu, 1)?;
        let dql_down = self.one(self.output(gelu)?, "DynamicQuantizeLinear")?;
        let down = self.qmatmul(dql_down)?;

        // The side path of the outlier intermediate channels, if any.
        let side_mm: Vec<usize> = self
            .readers(h, "MatMul")
            .into_iter()
            .filter(|&i| self.init_at(i, 1).is_ok())
            .collect();
        let (side, v) = match side_mm[..] {
            [] => (None, down.output.as_str()),
            [sm] => {
                let sg = self.output(sm)?;
                let (gelu, bias) = match self.readers(sg, "BiasGelu")[..] {
                    [g] => (g, Some(self.init_at(g, 1)?)),
                    _ => (self.one(sg, "Gelu")?, None),
                };
                let sd = self.one(self.output(gelu)?, "MatMul")?;
                let sd_out = self.output(sd)?;
                let add = self.one(&down.output, "Add")?;
                if !self.node(add).input.iter().any(|i| i == sd_out) {
                    return Err(self.err(format!(
                        "`{}` does not add the side path `{}`",
                        self.node(add).name,
                        self.node(sd).name
                    )));
                }
                // The side path's channels: where the main path's bias masks GELU to 0.
                let b = self
                    .f32s(up_bias)?
                    .into_dimensionality::<Ix1>()
                    .map_err(|_| self.err("the FFN bias is not a vector".into()))?;
                let channels: Vec<usize> = b
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v == MASKED_BIAS)
                    .map(|(c, _)| c)
                    .collect();
                let side = Side {
                    up: self.init_at(sm, 1)?,
                    bias,
                    down: self.init_at(sd, 1)?,
                    channels,
                };
                if self.dims(side.up).get(1) != Some(&side.channels.len()) {
                    return Err(self.err(format!(
                        "the side path `{}` is {:?} wide, but {} channels are masked",
                        self.node(sm).name,
                        self.dims(side.up),
                        side.channels.len()
                    )));
                }
                (Some(side), self.output(add)?)
            }
            _ => return Err(self.err("more than one fp32 MatMul reads the FFN input".into())),
        };
        let (down_bias, v) = self.bias_add(v)?;
        let ln2 = self.residual_norm(v)?;
        Ok(Int8Layer {
            qkv_weight: self.init_at(qatt, 1)?,
            qkv_bias: self.init_at(qatt, 2)?,
            qkv_scale: self.init_at(qatt, 4)?,
            qkv_zero_point: self.init_at(qatt, 7)?,
            out,
            out_bias,
            ln1: (self.init_at(ln1, 1)?, self.init_at(ln1, 2)?),
            repeats,
            up,
            up_bias,
            side,
            down,
            down_bias,
            ln2: (self.init_at(ln2, 1)?, self.init_at(ln2, 2)?),
        })
    }
}

/// The graph's QAttention nodes, in order: one per BERT layer.
fn attention_nodes(g: &GraphProto) -> Vec<usize> {
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "QAttention")
        .map(|(i, _)| i)
        .collect()
}

/// The number of BERT layers of an int8 graph in tandem's layout (its QAttention nodes).
pub fn int8_layer_count(model: &OnnxModel) -> usize {
    attention_nodes(model.graph()).len()
}

/// A fine-tuned layer's parameters by their names below the layer, as matrices in the graph's
/// `[in, out]` layout (Linear weights transposed) or vectors.
struct Params(HashMap<String, ndarray::ArrayD<f32>>);

impl Params {
    fn of(layer: &BertLayer) -> Params {
        let prefix = format!("{}.", layer.name());
        Params(
            layer
                .params()
                .into_iter()
                .map(|p| {
                    let local = p.name.strip_prefix(&prefix).unwrap_or(&p.name).to_string();
                    (local, p.value.clone())
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Result<&ndarray::ArrayD<f32>> {
        self.0.get(name).ok_or_else(|| {
            Error::new(
                crate::ErrorKind::Internal,
                format!("BERT layer without `{name}`"),
            )
        })
    }

    /// A Linear's weight, transposed to `[in, out]`.
    fn matrix(&self, linear: &str) -> Result<Array2<f32>> {
        let w = self.get(&format!("{linear}.weight"))?;
        let w = w.view().into_dimensionality::<Ix2>().map_err(|_| {
            Error::new(
                crate::ErrorKind::Internal,
                format!("`{linear}.weight` is not a matrix"),
            )
        })?;
        Ok(w.t().as_standard_layout().into_owned())
    }

    fn vector(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.get(name)?.iter().copied().collect())
    }
}

/// The rewritten graph's new tensors, and which node inputs read them.
struct Rewrite<'a> {
    walk: &'a Walk<'a>,
    prefix: String,
    tensors: Vec<(Slot, TensorProto)>,
}

impl Rewrite<'_> {
    fn check(&self, s: Slot, role: &str, dims: &[usize]) -> Result<()> {
        let have = self.walk.dims(s);
        if have != dims {
            return Err(self.walk.err(format!(
                "the fine-tuned {role} has shape {dims:?}, the graph's `{}` {have:?}",
                self.walk.name(s)
            )));
        }
        Ok(())
    }

    fn f32s(&mut self, s: Slot, role: &str, dims: &[usize], values: Vec<f32>) -> Result<()> {
        self.check(s, role, dims)?;
        let name = format!("{}.{role}", self.prefix);
        self.tensors
            .push((s, super::write::tensor_f32(&name, dims, values)));
        Ok(())
    }

    fn i8s(&mut self, s: Slot, role: &str, dims: &[usize], values: Vec<i8>) -> Result<()> {
        self.check(s, role, dims)?;
        self.tensors.push((
            s,
            TensorProto {
                name: format!("{}.{role}", self.prefix),
                dims: dims.iter().map(|&d| d as i64).collect(),
                data_type: DataType::Int8 as i32,
                raw_data: values.iter().map(|&v| v as u8).collect(),
                ..Default::default()
            },
        ));
        Ok(())
    }

    /// The layer's vector parameter `param` (a bias or LayerNorm parameter) as is.
    fn vector(&mut self, s: Slot, role: &str, p: &Params, param: &str) -> Result<()> {
        let v = p.vector(param)?;
        self.f32s(s, role, &[v.len()], v)
    }

    /// `w` `[in, out]` quantized into the MatMul `m` (weights, scales, zero points).
    fn qmatmul(&mut self, m: &QMatMul, role: &str, w: ArrayView2<'_, f32>) -> Result<()> {
        let (q, scales) = quantize_columns(w, self.walk.int8_range(m.weight)?);
        let cols = w.ncols();
        self.i8s(m.weight, &format!("{role}.weight"), &[w.nrows(), cols], q)?;
        self.f32s(m.scale, &format!("{role}.scale"), &[cols], scales)?;
        self.i8s(
            m.zero_point,
            &format!("{role}.zero_point"),
            &[cols],
            vec![0; cols],
        )
    }
}

/// The int8 graph `model` with the weights of BERT layers `first..first + layers.len()`
/// replaced by `layers`' (fine-tuned), written through the graph's outlier rewrites and
/// quantized as its own layers are (see the [module docs](self)).
///
/// # Errors
/// A format error naming the node when the graph is not in tandem's int8 layout, has fewer
/// layers, or a weight has another shape than the fine-tuned layer's.
pub fn with_layers_int8(
    model: &OnnxModel,
    first: usize,
    layers: &[BertLayer],
) -> Result<ModelProto> {
    let g = model.graph();
    let qatts = attention_nodes(g);
    if first + layers.len() != qatts.len() {
        return Err(Error::format(format!(
            "int8 graph: {} QAttention layers, but layers {first}..{} were fine-tuned",
            qatts.len(),
            first + layers.len()
        )));
    }
    let mut walk = Walk::new(model);
    let mut tensors = Vec::new();
    for (k, layer) in layers.iter().enumerate() {
        let i = first + k;
        let found = walk.layer_at(qatts[i], i, layer.config().heads)?;
        let p = Params::of(layer);
        let mut rw = Rewrite {
            walk: &walk,
            prefix: format!("tandem.tuned.int8.layer{i}"),
            tensors: Vec::new(),
        };
        // Attention: Q, K and V side by side, [d, 3d].
        let qkv = concatenate(
            Axis(1),
            &[
                p.matrix("attention.self.query")?.view(),
                p.matrix("attention.self.key")?.view(),
                p.matrix("attention.self.value")?.view(),
            ],
        )
        .map_err(|e| Error::new(crate::ErrorKind::Internal, e.to_string()))?;
        let (q, scales) = quantize_columns(qkv.view(), walk.int8_range(found.qkv_weight)?);
        let (d, d3) = qkv.dim();
        rw.i8s(found.qkv_weight, "qkv.weight", &[d, d3], q)?;
        rw.f32s(found.qkv_scale, "qkv.scale", &[d3], scales)?;
        rw.i8s(found.qkv_zero_point, "qkv.zero_point", &[d3], vec![0; d3])?;
        let mut bias = p.vector("attention.self.query.bias")?;
        bias.extend(p.vector("attention.self.key.bias")?);
        bias.extend(p.vector("attention.self.value.bias")?);
        rw.f32s(found.qkv_bias, "qkv.bias", &[d3], bias)?;
        // Attention output and its LayerNorm.
        rw.qmatmul(
            &found.out,
            "out",
            p.matrix("attention.output.dense")?.view(),
        )?;
        rw.vector(
            found.out_bias,
            "out.bias",
            &p,
            "attention.output.dense.bias",
        )?;
        rw.vector(
            found.ln1.0,
            "ln1.weight",
            &p,
            "attention.output.LayerNorm.weight",
        )?;
        rw.vector(
            found.ln1.1,
            "ln1.bias",
            &p,
            "attention.output.LayerNorm.bias",
        )?;
        // The FFN: side-path channels out of the main path, split input channels repeated.
        let mut w1 = p.matrix("intermediate.dense")?;
        let mut b1 = p.vector("intermediate.dense.bias")?;
        let mut w2 = p.matrix("output.dense")?;
        let (hidden, ffn) = w1.dim();
        if let Some(side) = &found.side {
            let idx = &side.channels;
            if idx.iter().any(|&c| c >= ffn) {
                return Err(walk.err("a side-path channel is past the FFN width".into()));
            }
            let n = idx.len();
            let up = w1.select(Axis(1), idx);
            let down = w2.select(Axis(0), idx);
            rw.f32s(
                side.up,
                "side.up",
                &[hidden, n],
                up.iter().copied().collect(),
            )?;
            rw.f32s(
                side.down,
                "side.down",
                &[n, w2.ncols()],
                down.iter().copied().collect(),
            )?;
            if let Some(b) = side.bias {
                rw.f32s(b, "side.bias", &[n], idx.iter().map(|&c| b1[c]).collect())?;
            }
            for &c in idx {
                w1.column_mut(c).fill(0.0);
                w2.row_mut(c).fill(0.0);
                b1[c] = MASKED_BIAS;
            }
        }
        if found.repeats.iter().any(|&c| c >= hidden) {
            return Err(walk.err("a split channel is past the layer's width".into()));
        }
        let up = concatenate(
            Axis(0),
            &[w1.view(), w1.select(Axis(0), &found.repeats).view()],
        )
        .map_err(|e| Error::new(crate::ErrorKind::Internal, e.to_string()))?;
        rw.qmatmul(&found.up, "up", up.view())?;
        rw.f32s(found.up_bias, "up.bias", &[ffn], b1)?;
        rw.qmatmul(&found.down, "down", w2.view())?;
        rw.vector(found.down_bias, "down.bias", &p, "output.dense.bias")?;
        rw.vector(found.ln2.0, "ln2.weight", &p, "output.LayerNorm.weight")?;
        rw.vector(found.ln2.1, "ln2.bias", &p, "output.LayerNorm.bias")?;
        tensors.extend(rw.tensors);
    }
    let mut proto = model.proto.clone();
    let g = proto.graph.as_mut().expect("checked at read");
    for (slot, t) in tensors {
        g.node[slot.node].input[slot.input] = t.name.clone();
        g.initializer.push(t);
    }
    // The replaced initializers nothing reads any more.
    super::export::prune(g);
    Ok(proto)
}
