//! Loading a backbone's pretrained BERT layers from its ONNX graph into native
//! [`BertLayer`]s (for fine-tuning its top layers on the device).
//!
//! Exporters rename and fold weights: `torch.onnx` stores each Linear weight transposed
//! (`[in, out]`) under an anonymous name such as `onnx::MatMul_788`, while biases and LayerNorm
//! parameters keep names like `encoder.layer.3.attention.output.LayerNorm.weight` (with a
//! prefix such as `0.model.` in sentence-transformers exports). So the weights are found
//! through the nodes that use them, whose names follow the PyTorch module path:
//! `…/encoder/layer.{i}/attention/self/query/MatMul` takes the query weight, the `Add` that
//! consumes its output takes the bias, and `…/encoder/layer.{i}/attention/output/LayerNorm/
//! LayerNormalization` takes the LayerNorm's scale, bias and ε.

use ndarray::{ArrayD, Ix2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::proto::NodeProto;
use super::read::OnnxModel;
use crate::error::{Error, Result};
use crate::nn::bert::{BertConfig, BertLayer};

/// The Linear layers of a BERT layer: the module path below `encoder/layer.{i}/` in node
/// names, and the parameter name below the [`BertLayer`]'s name.
const LINEARS: [(&str, &str); 6] = [
    ("attention/self/query", "attention.self.query"),
    ("attention/self/key", "attention.self.key"),
    ("attention/self/value", "attention.self.value"),
    ("attention/output/dense", "attention.output.dense"),
    ("intermediate/dense", "intermediate.dense"),
    ("output/dense", "output.dense"),
];

/// The LayerNorms, likewise.
const NORMS: [(&str, &str); 2] = [
    ("attention/output/LayerNorm", "attention.output.LayerNorm"),
    ("output/LayerNorm", "output.LayerNorm"),
];

/// Where one parameter of a BERT layer is stored in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The parameter's name below the layer (`attention.self.query.weight`).
    pub param: String,
    /// The initializer holding it (through any `Identity` nodes: exporters share one
    /// initializer among equal tensors, e.g. the zero biases of a freshly initialised model).
    pub initializer: String,
    /// Whether the initializer is the transpose (`[in, out]`: a MatMul weight).
    pub transposed: bool,
    /// The node that reads it.
    pub node: String,
    /// Which input of that node it is.
    pub slot: usize,
}

/// Where every parameter of BERT layer `layer` is stored, in [`BertLayer::params`]'s order
/// of names (Linears, then LayerNorms), and the layer's LayerNorm ε.
///
/// # Errors
/// As [`load_bert_layer`].
pub fn locate(model: &OnnxModel, layer: usize) -> Result<(Vec<Binding>, f32)> {
    let g = model.graph();
    let path = format!("encoder/layer.{layer}");
    let find = |module: &str, op: &str| -> Result<&NodeProto> {
        let suffix = format!("/{path}/{module}/{op}");
        let mut hits = g.node.iter().filter(|n| n.name.ends_with(&suffix));
        let node = hits.next().ok_or_else(|| {
            Error::format(format!(
                "BERT layer {layer}: the graph has no node named `…{suffix}` (not a BERT export, \
                 or an optimized graph whose {op} nodes were fused)"
            ))
        })?;
        if let Some(other) = hits.next() {
            return Err(Error::format(format!(
                "BERT layer {layer}: nodes `{}` and `{}` both match `…{suffix}`",
                node.name, other.name
            )));
        }
        if node.op_type != op {
            return Err(Error::format(format!(
                "BERT layer {layer}: node `{}` is a {}, expected {op}",
                node.name, node.op_type
            )));
        }
        Ok(node)
    };
    let is_init = |name: &str| g.initializer.iter().any(|t| t.name == name);
    // The initializer behind a value, through Identity nodes (a bounded walk: the graph may be
    // hostile).
    let source = |name: &str| -> Option<String> {
        let mut at = name.to_string();
        for _ in 0..8 {
            if is_init(&at) {
                return Some(at);
            }
            let id = g.node.iter().find(|n| {
                n.op_type == "Identity" && n.output.first().map(String::as_str) == Some(&at)
            })?;
            at = id.input.first()?.clone();
        }
        None
    };
    let input = |node: &NodeProto, k: usize, what: &str| -> Result<String> {
        match node.input.get(k) {
            Some(name) if source(name).is_some() => Ok(source(name).expect("checked")),
            Some(name) => Err(Error::format(format!(
                "BERT layer {layer}: the {what} of node `{}` is `{name}`, not an initializer",
                node.name
            ))),
            None => Err(Error::format(format!(
                "BERT layer {layer}: node `{}` has no {what} (input {k})",
                node.name
            ))),
        }
    };
    let bind =
        |param: String, initializer: String, transposed: bool, node: &NodeProto, slot: usize| {
            Binding {
                param,
                initializer,
                transposed,
                node: node.name.clone(),
                slot,
            }
        };
    let mut out = Vec::new();
    for (module, param) in LINEARS {
        let mm = find(module, "MatMul")?;
        let w_name = input(mm, 1, "weight")?;
        let mm_out = mm.output.first().ok_or_else(|| {
            Error::format(format!("BERT layer {layer}: `{}` has no output", mm.name))
        })?;
        let add = g
            .node
            .iter()
            .find(|n| n.op_type == "Add" && n.input.iter().any(|i| i == mm_out))
            .ok_or_else(|| {
                Error::format(format!(
                    "BERT layer {layer}: no bias Add after `{}` (a Linear without bias?)",
                    mm.name
                ))
            })?;
        let (b_slot, b_name) = add
            .input
            .iter()
            .enumerate()
            .find_map(|(k, i)| (i != mm_out).then(|| source(i).map(|s| (k, s))).flatten())
            .ok_or_else(|| {
                Error::format(format!(
                    "BERT layer {layer}: the Add `{}` after `{}` adds no initializer bias",
                    add.name, mm.name
                ))
            })?;
        out.push(bind(format!("{param}.weight"), w_name, true, mm, 1));
        out.push(bind(format!("{param}.bias"), b_name, false, add, b_slot));
    }
    let mut eps = Vec::new();
    for (module, param) in NORMS {
        let ln = find(module, "LayerNormalization")?;
        let axis = ln
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .map_or(-1, |a| a.i);
        if axis != -1 {
            return Err(Error::format(format!(
                "BERT layer {layer}: `{}` normalises axis {axis}, expected -1",
                ln.name
            )));
        }
        // ONNX's default ε is 1e-5.
        eps.push(
            ln.attribute
                .iter()
                .find(|a| a.name == "epsilon")
                .map_or(1e-5, |a| a.f),
        );
        out.push(bind(
            format!("{param}.weight"),
            input(ln, 1, "scale")?,
            false,
            ln,
            1,
        ));
        out.push(bind(
            format!("{param}.bias"),
            input(ln, 2, "bias")?,
            false,
            ln,
            2,
        ));
    }
    if eps[0] != eps[1] {
        return Err(Error::format(format!(
            "BERT layer {layer}: the two LayerNorms have different ε ({} and {})",
            eps[0], eps[1]
        )));
    }
    Ok((out, eps[0]))
}

/// The graph `model` with the weights of BERT layers `first..first + layers.len()` replaced by
/// `layers`' (fine-tuned on the device): the whole backbone as one ONNX graph again, which
/// ONNX Runtime serves at the frozen backbone's speed.
///
/// # Errors
/// As [`locate`]; a format error when a layer's parameter has another shape than the graph's.
pub fn with_layers(
    model: &OnnxModel,
    first: usize,
    layers: &[BertLayer],
) -> Result<super::proto::ModelProto> {
    let mut proto = model.proto.clone();
    for (k, layer) in layers.iter().enumerate() {
        let (bindings, _) = locate(model, first + k)?;
        let prefix = format!("{}.", layer.name());
        for p in layer.params() {
            let local = p.name.strip_prefix(&prefix).unwrap_or(&p.name);
            let b = bindings.iter().find(|b| b.param == local).ok_or_else(|| {
                Error::format(format!("BERT layer {}: no place for `{local}`", first + k))
            })?;
            let value = if b.transposed {
                p.value
                    .clone()
                    .into_dimensionality::<Ix2>()
                    .map_err(|_| Error::format(format!("`{}` is not a matrix", p.name)))?
                    .t()
                    .as_standard_layout()
                    .into_owned()
                    .into_dyn()
            } else {
                p.value.clone()
            };
            let g = proto.graph.as_mut().expect("checked at read");
            let t = g
                .initializer
                .iter()
                .find(|t| t.name == b.initializer)
                .expect("located above");
            let dims: Vec<i64> = value.shape().iter().map(|&d| d as i64).collect();
            if t.dims != dims {
                return Err(Error::format(format!(
                    "BERT layer {}: `{local}` has shape {:?}, the graph's `{}` {:?}",
                    first + k,
                    value.shape(),
                    b.initializer,
                    t.dims
                )));
            }
            // A new initializer named after the parameter, read by the node that read the old
            // one: an initializer the exporter shared with other tensors stays theirs.
            let name = format!("tandem.tuned.{}", p.name);
            let node = g
                .node
                .iter_mut()
                .find(|n| n.name == b.node)
                .expect("located above");
            node.input[b.slot] = name.clone();
            g.initializer.push(super::write::tensor_f32(
                &name,
                value.shape(),
                value.iter().copied(),
            ));
        }
    }
    // The replaced initializers (and Identity nodes) nothing reads any more.
    super::export::prune(proto.graph.as_mut().expect("checked at read"));
    Ok(proto)
}

/// The number of BERT layers in the graph: how many consecutive `encoder/layer.{i}` query
/// projections (from 0) it has.
pub fn bert_layer_count(model: &OnnxModel) -> usize {
    let g = model.graph();
    (0..)
        .take_while(|i| {
            let suffix = format!("/encoder/layer.{i}/attention/self/query/MatMul");
            g.node.iter().any(|n| n.name.ends_with(&suffix))
        })
        .count()
}

/// Reads layer `layer` of a BERT backbone graph into a [`BertLayer`] named
/// `encoder.layer.{layer}`, with `heads` attention heads (the graph only has them as reshape
/// constants; 12 for all-MiniLM-L6-v2). The widths come from the weights' shapes and the
/// LayerNorm ε from the graph's `LayerNormalization` nodes.
///
/// # Errors
/// [`crate::ErrorKind::Format`] naming the node or tensor when a node is missing or
/// ambiguous, a weight is not an initializer, or a tensor has the wrong shape;
/// invalid-argument errors when `heads` does not divide the width.
pub fn load_bert_layer(model: &OnnxModel, layer: usize, heads: usize) -> Result<BertLayer> {
    let (bindings, eps) = locate(model, layer)?;
    // (parameter name, value [out, in] or [n])
    let mut values: Vec<(String, ArrayD<f32>)> = Vec::new();
    for b in &bindings {
        let v = model.initializer_f32(&b.initializer)?;
        let v = if b.transposed {
            // MatMul weights are [in, out]; Linear wants PyTorch's [out, in].
            v.into_dimensionality::<Ix2>()
                .map_err(|_| {
                    Error::format(format!(
                        "BERT layer {layer}: the weight `{}` of `{}` is not a matrix",
                        b.initializer, b.node
                    ))
                })?
                .t()
                .as_standard_layout()
                .into_owned()
                .into_dyn()
        } else {
            v
        };
        values.push((b.param.clone(), v));
    }
    let q = &values[0].1;
    let ffn1 = &values[8].1;
    let cfg = BertConfig {
        hidden: q.shape()[1],
        heads,
        intermediate: ffn1.shape()[0],
        layer_norm_eps: eps,
    };
    // The initial values are all replaced below; the seed only makes construction cheap to
    // reason about.
    let mut bert = BertLayer::new(&cfg, &mut ChaCha8Rng::seed_from_u64(0))?
        .named(&format!("encoder.layer.{layer}"));
    let prefix = format!("{}.", bert.name());
    let mut set = 0;
    for p in bert.params_mut() {
        let local = p.name.strip_prefix(&prefix).unwrap_or(&p.name).to_string();
        let (_, v) = values
            .iter()
            .find(|(n, _)| *n == local)
            .expect("every BertLayer parameter has a source above");
        p.set_value(v.clone()).map_err(|_| {
            Error::format(format!(
                "BERT layer {layer}: {local} has shape {:?}, expected {:?} (hidden {}, \
                 intermediate {})",
                v.shape(),
                p.shape(),
                cfg.hidden,
                cfg.intermediate
            ))
        })?;
        set += 1;
    }
    debug_assert_eq!(set, values.len());
    Ok(bert)
}

/// Every BERT layer of the graph, in order (see [`load_bert_layer`]).
///
/// # Errors
/// As [`load_bert_layer`], and a format error when the graph has no BERT layer.
pub fn load_bert_layers(model: &OnnxModel, heads: usize) -> Result<Vec<BertLayer>> {
    let n = bert_layer_count(model);
    if n == 0 {
        return Err(Error::format(
            "the graph has no BERT layer (no node named `…/encoder/layer.0/attention/self/query/MatMul`)",
        ));
    }
    (0..n).map(|i| load_bert_layer(model, i, heads)).collect()
}

/// The number of attention heads of BERT layer 0, read from the graph: the query projection's
/// output is reshaped to `[batch, seq, heads, head_dim]`, and the exporter writes `heads` as a
/// constant (in the reshape's shape initializer, or in a `Constant` fed to the `Concat` that
/// builds the shape when the batch and sequence axes are dynamic).
///
/// # Errors
/// A format error when no such reshape is found or its heads do not divide the width.
pub fn attention_heads(model: &OnnxModel) -> Result<usize> {
    let g = model.graph();
    let (bindings, _) = locate(model, 0)?;
    let query = model.initializer_f32(&bindings[0].initializer)?;
    let &[_, width] = query.shape() else {
        return Err(Error::format(format!(
            "BERT layer 0: the query weight `{}` is not a matrix",
            bindings[0].initializer
        )));
    };
    let query_out = g
        .node
        .iter()
        .find(|n| n.name == bindings[1].node)
        .and_then(|n| n.output.first())
        .ok_or_else(|| Error::format("BERT layer 0: the query bias Add has no output"))?;
    let reshape = g
        .node
        .iter()
        .find(|n| n.op_type == "Reshape" && n.input.first() == Some(query_out))
        .ok_or_else(|| {
            Error::format("BERT layer 0: no Reshape of the query into attention heads")
        })?;
    let shape_name = reshape.input.get(1).cloned().unwrap_or_default();
    // The value of a constant tensor by name: an initializer or a Constant node's output.
    let constant = |name: &str| -> Option<Vec<i64>> {
        if let Ok(v) = model.initializer_i64(name) {
            return Some(v.iter().copied().collect());
        }
        let node = g.node.iter().find(|n| {
            n.op_type == "Constant" && n.output.first().map(String::as_str) == Some(name)
        })?;
        let t = node
            .attribute
            .iter()
            .find(|a| a.name == "value")?
            .t
            .as_ref()?;
        super::read::tensor_to_i64(t, None)
            .ok()
            .map(|v| v.iter().copied().collect())
    };
    let dims: Option<Vec<i64>> = constant(&shape_name).or_else(|| {
        let concat = g.node.iter().find(|n| {
            n.op_type == "Concat" && n.output.first().map(String::as_str) == Some(&shape_name)
        })?;
        concat
            .input
            .iter()
            .map(|i| constant(i).and_then(|v| (v.len() == 1).then(|| v[0])))
            // Dynamic parts (batch, sequence) are not constants: read as -1.
            .map(|v| Some(v.unwrap_or(-1)))
            .collect()
    });
    let heads = match dims.as_deref() {
        Some([.., h, d])
            if *h > 0 && *d > 0 && h.checked_mul(*d).is_some_and(|w| w as usize == width) =>
        {
            *h as usize
        }
        _ => {
            return Err(Error::format(format!(
                "BERT layer 0: the attention reshape `{}` does not split width {width} into \
                 [heads, head_dim] constants",
                reshape.name
            )))
        }
    };
    Ok(heads)
}
