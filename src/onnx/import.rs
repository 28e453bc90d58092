//! ONNX heads in: an MLP head written by another tool (PyTorch's `torch.onnx.export`, tandem's
//! own export) read into tandem's native layers, so it serves like a trained bundle and trains
//! further on the device.
//!
//! The graph maps the pooled embedding `[batch, d]` to one task's outputs `[batch, k]`: a
//! chain of linear layers (`Gemm`, or `MatMul` and `Add`), each hidden one optionally followed
//! by `LayerNormalization` and an activation (`Relu`, `Gelu`, or GELU spelled out with `Erf` as
//! older exporters write it), with `Dropout` and `Identity` ignored, ending in logits or in a
//! `Softmax` / `Sigmoid` (which the task kind applies anyway). Activations are recognised by
//! what they compute: the element-wise nodes between two layers are evaluated on sample
//! points and compared with ReLU and the exact GELU. Anything else is an error naming the node
//! and its operator.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::proto::{attribute_proto::AttributeType, GraphProto, NodeProto};
use super::read::{self, node_name, OnnxModel};
use crate::backbone::Backbone;
use crate::bundle::{self, BackboneRef, BundleManifest, TaskEntry, BUNDLE_FORMAT};
use crate::data::{TaskKind, TaskSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::heads::{Architecture, Heads, Network};
use crate::nn::norm::LAYER_NORM_EPS;
use crate::nn::{ActivationKind, Layer, Mlp, MlpConfig};

/// The most nodes an imported head graph may have.
pub const MAX_HEAD_NODES: usize = 4096;

/// The operators an imported head may use.
pub const SUPPORTED_OPS: &[&str] = &[
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Gelu",
    "Tanh",
    "Sigmoid",
    "LayerNormalization",
    "Dropout",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "Erf",
    "Mul",
    "Div",
    "Sub",
    "Constant",
];

/// What the graph ends in, after its last linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFunction {
    /// Raw logits (or values).
    None,
    /// A softmax (a multi-class head).
    Softmax,
    /// A sigmoid (binary or multi-label).
    Sigmoid,
}

/// An MLP head read from ONNX: its shape as tandem's [`MlpConfig`] and its parameters in the
/// order [`Mlp::params`] lists them.
#[derive(Debug, Clone)]
pub struct ImportedHead {
    /// Input width (the pooled embedding's).
    pub input_dim: usize,
    /// Output width.
    pub output_dim: usize,
    /// Hidden widths, activation and LayerNorm use (no dropout: inference graphs have none).
    pub config: MlpConfig,
    /// Parameter values, in [`Mlp::params`] order.
    pub values: Vec<ArrayD<f32>>,
    /// The graph's output function.
    pub output: OutputFunction,
    /// The graph's input name.
    pub input_name: String,
}

/// One step of the chain.
enum Step {
    Linear {
        weight: ArrayD<f32>,
        bias: ArrayD<f32>,
    },
    Norm {
        scale: ArrayD<f32>,
        bias: ArrayD<f32>,
    },
    Act(ActivationKind),
}

/// Reads the head graph at `path` (see the module doc).
pub fn read_head(path: &Path) -> Result<ImportedHead> {
    let model = read::read(path)?;
    parse_head(&model)
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a super::proto::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

/// Constant values of the graph: initializers and `Constant` nodes' tensors.
struct Constants<'a> {
    model: &'a OnnxModel,
    nodes: HashMap<&'a str, &'a NodeProto>,
}

impl<'a> Constants<'a> {
    fn new(model: &'a OnnxModel) -> Self {
        let nodes = model
            .graph()
            .node
            .iter()
            .filter(|n| n.op_type == "Constant")
            .filter_map(|n| n.output.first().map(|o| (o.as_str(), n)))
            .collect();
        Constants { model, nodes }
    }

    fn is_const(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
            || self
                .model
                .graph()
                .initializer
                .iter()
                .any(|t| t.name == name)
    }

    fn get(&self, name: &str) -> Result<ArrayD<f32>> {
        if let Some(n) = self.nodes.get(name) {
            let a = n
                .attribute
                .iter()
                .find(|a| a.name == "value" && a.r#type == AttributeType::Tensor as i32)
                .and_then(|a| a.t.as_ref())
                .ok_or_else(|| Error::format(format!("Constant `{name}` holds no tensor")))?;
            return read::tensor_to_f32(a, None);
        }
        self.model.initializer_f32(name)
    }
}

/// Reads an MLP head from a checked model (see the module doc).
pub fn parse_head(model: &OnnxModel) -> Result<ImportedHead> {
    let g = model.graph();
    let consts = Constants::new(model);
    let inits: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|v| !inits.contains(v.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(Error::invalid(format!(
            "a head graph has one input (the pooled embedding), this one has {}",
            inputs.len()
        )));
    };
    let [output] = g.output.as_slice() else {
        return Err(Error::invalid(format!(
            "a head graph has one output (one task's logits), this one has {}",
            g.output.len()
        )));
    };
    let summary = read::summarize(g);
    let in_summary = summary
        .inputs
        .iter()
        .find(|v| v.name == input.name)
        .expect("listed");
    if in_summary.elem_type != "float" {
        return Err(Error::invalid(format!(
            "input `{}` is {}, not float",
            input.name, in_summary.elem_type
        )));
    }
    let input_dim = match in_summary.dims.as_slice() {
        [_, d] => d.parse::<usize>().ok(),
        _ => None,
    }
    .filter(|&d| d > 0)
    .ok_or_else(|| {
        Error::invalid(format!(
            "input `{}` must be [batch, width] with a fixed width, not {:?}",
            input.name, in_summary.dims
        ))
    })?;

    // A head is a few dozen nodes; the walk below rescans the nodes at each step, so a huge
    // graph is refused up front rather than taking quadratic time.
    if g.node.len() > MAX_HEAD_NODES {
        return Err(Error::invalid(format!(
            "the graph has {} nodes; an MLP head has at most {MAX_HEAD_NODES}",
            g.node.len()
        )));
    }
    // Every operator is one tandem knows, before anything is interpreted.
    for (i, n) in g.node.iter().enumerate() {
        let known = (n.domain.is_empty() || n.domain == "ai.onnx")
            && SUPPORTED_OPS.contains(&n.op_type.as_str());
        if !known {
            return Err(Error::invalid(format!(
                "node `{}` uses operator {}{}, which tandem's heads do not have (supported: {})",
                node_name(n, i),
                if n.domain.is_empty() {
                    String::new()
                } else {
                    format!("{}.", n.domain)
                },
                n.op_type,
                SUPPORTED_OPS.join(", ")
            )));
        }
    }

    let consumers = |v: &str| -> Vec<usize> {
        g.node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type != "Constant" && n.input.iter().any(|x| x == v))
            .map(|(i, _)| i)
            .collect()
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut output_fn = OutputFunction::None;
    let mut v = input.name.clone();
    let mut width = input_dim;
    while v != output.name {
        let next = consumers(&v);
        if next.is_empty() {
            return Err(Error::invalid(format!(
                "`{v}` is read by no node and is not the output `{}`",
                output.name
            )));
        }
        let &[i] = next.as_slice() else {
            // Several readers: only an activation spelled out element-wise (x·½(1+erf(x/√2))
            // reads x twice) is allowed.
            let (act, out) = elementwise_activation(g, &consts, &v)?;
            steps.push(Step::Act(act));
            v = out;
            continue;
        };
        let n = &g.node[i];
        let name = node_name(n, i);
        let out = n.output.first().cloned().unwrap_or_default();
        if output_fn != OutputFunction::None {
            return Err(Error::invalid(format!(
                "node `{name}` ({}) follows the output function; a head ends in it",
                n.op_type
            )));
        }
        match n.op_type.as_str() {
            "Identity" | "Dropout" => {}
            "Gemm" => {
                if attr_i(n, "transA", 0) != 0
                    || attr_f(n, "alpha", 1.0) != 1.0
                    || attr_f(n, "beta", 1.0) != 1.0
                {
                    return Err(Error::invalid(format!(
                        "node `{name}` (Gemm): only transA = 0, alpha = beta = 1 are supported"
                    )));
                }
                let w = weight_of(&consts, n, 1, &name)?;
                let w = if attr_i(n, "transB", 0) == 1 {
                    w
                } else {
                    transpose(w)
                };
                let out_dim = linear_shape(&w, width, &name)?;
                let bias = match n.input.get(2).filter(|s| !s.is_empty()) {
                    Some(b) => bias_of(&consts, b, out_dim, &name)?,
                    None => ArrayD::zeros(IxDyn(&[out_dim])),
                };
                steps.push(Step::Linear { weight: w, bias });
                width = out_dim;
            }
            "MatMul" => {
                let w = transpose(weight_of(&consts, n, 1, &name)?);
                let out_dim = linear_shape(&w, width, &name)?;
                steps.push(Step::Linear {
                    weight: w,
                    bias: ArrayD::zeros(IxDyn(&[out_dim])),
                });
                width = out_dim;
            }
            "Add" => {
                // A bias after a MatMul (or a bias-less Gemm).
                let other = n
                    .input
                    .iter()
                    .find(|x| **x != v)
                    .cloned()
                    .unwrap_or_default();
                let Some(Step::Linear { bias, .. }) = steps.last_mut() else {
                    return Err(Error::invalid(format!(
                        "node `{name}` (Add) does not follow a linear layer (residual \
                         connections are not supported in imported heads)"
                    )));
                };
                if !consts.is_const(&other) {
                    return Err(Error::invalid(format!(
                        "node `{name}` (Add) adds a computed value, not a bias"
                    )));
                }
                *bias = &*bias + &bias_of(&consts, &other, width, &name)?;
            }
            "LayerNormalization" => {
                let axis = attr_i(n, "axis", -1);
                let eps = attr_f(n, "epsilon", 1e-5);
                if !(axis == -1 || axis == 1) || (eps - LAYER_NORM_EPS).abs() > 1e-9 {
                    return Err(Error::invalid(format!(
                        "node `{name}` (LayerNormalization): axis {axis}, epsilon {eps}; \
                         tandem's LayerNorm normalizes the last axis with epsilon {LAYER_NORM_EPS}"
                    )));
                }
                let scale = bias_of(&consts, n.input.get(1).map_or("", |s| s), width, &name)?;
                let bias = match n.input.get(2).filter(|s| !s.is_empty()) {
                    Some(b) => bias_of(&consts, b, width, &name)?,
                    None => ArrayD::zeros(IxDyn(&[width])),
                };
                steps.push(Step::Norm { scale, bias });
            }
            "Relu" => steps.push(Step::Act(ActivationKind::Relu)),
            "Gelu" => {
                let approx = attr(n, "approximate")
                    .map(|a| String::from_utf8_lossy(&a.s).into_owned())
                    .unwrap_or_else(|| "none".into());
                if approx != "none" {
                    return Err(Error::invalid(format!(
                        "node `{name}` (Gelu): approximate = {approx}; tandem's GELU is exact"
                    )));
                }
                steps.push(Step::Act(ActivationKind::Gelu));
            }
            "Softmax" | "LogSoftmax"
                if attr_i(n, "axis", -1) == -1 || attr_i(n, "axis", -1) == 1 =>
            {
                output_fn = OutputFunction::Softmax;
            }
            "Sigmoid" if consumers(&out).is_empty() => output_fn = OutputFunction::Sigmoid,
            "Mul" | "Div" | "Erf" | "Sub" | "Tanh" | "Sigmoid" => {
                let (act, out) = elementwise_activation(g, &consts, &v)?;
                steps.push(Step::Act(act));
                v = out;
                continue;
            }
            other => {
                return Err(Error::invalid(format!(
                    "node `{name}` ({other}) is not where a head MLP can have it"
                )))
            }
        }
        v = out;
    }
    assemble(steps, input_dim, output_fn, &input.name)
}

/// A weight matrix input of `n` (slot `k`), as a constant.
fn weight_of(consts: &Constants<'_>, n: &NodeProto, k: usize, name: &str) -> Result<ArrayD<f32>> {
    let w_name = n.input.get(k).map_or("", |s| s.as_str());
    if !consts.is_const(w_name) {
        return Err(Error::invalid(format!(
            "node `{name}` ({}): its weights `{w_name}` are computed, not stored",
            n.op_type
        )));
    }
    let w = consts.get(w_name)?;
    if w.ndim() != 2 {
        return Err(Error::invalid(format!(
            "node `{name}` ({}): weights of shape {:?}, not a matrix",
            n.op_type,
            w.shape()
        )));
    }
    Ok(w)
}

fn transpose(w: ArrayD<f32>) -> ArrayD<f32> {
    w.reversed_axes().as_standard_layout().into_owned()
}

/// The output width of `[out, in]` weights that must read `width` inputs.
fn linear_shape(w: &ArrayD<f32>, width: usize, name: &str) -> Result<usize> {
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    if inp != width || out == 0 {
        return Err(Error::invalid(format!(
            "node `{name}`: weights [{out}, {inp}] after a {width}-wide value"
        )));
    }
    Ok(out)
}

/// A vector of `width` values (a bias, a LayerNorm scale), from a constant of shape
/// `[width]` or `[1, width]`.
fn bias_of(consts: &Constants<'_>, v: &str, width: usize, name: &str) -> Result<ArrayD<f32>> {
    if !consts.is_const(v) {
        return Err(Error::invalid(format!(
            "node `{name}`: `{v}` is computed, not a stored vector"
        )));
    }
    let b = consts.get(v)?;
    if b.len() != width || !(b.ndim() == 1 || (b.ndim() == 2 && b.shape()[0] == 1)) {
        return Err(Error::invalid(format!(
            "node `{name}`: `{v}` has shape {:?}, expected [{width}]",
            b.shape()
        )));
    }
    Ok(b.into_shape_with_order(IxDyn(&[width]))
        .expect("same length"))
}

/// The element-wise nodes that start at `x`, up to the single value they all meet in,
/// recognised as ReLU or the exact GELU by evaluating them on sample points; returns the
/// activation and that value.
fn elementwise_activation(
    g: &GraphProto,
    consts: &Constants<'_>,
    x: &str,
) -> Result<(ActivationKind, String)> {
    const ELEMENTWISE: &[&str] = &[
        "Mul", "Div", "Add", "Sub", "Erf", "Tanh", "Sigmoid", "Relu", "Gelu", "Identity",
    ];
    // Nodes in graph order whose inputs are x, constants, or earlier nodes of the region.
    let mut region: Vec<&NodeProto> = Vec::new();
    let mut inside: std::collections::HashSet<String> = [x.to_string()].into();
    for n in &g.node {
        if n.op_type == "Constant" {
            continue;
        }
        let reads_region = n.input.iter().any(|i| inside.contains(i));
        if !reads_region {
            continue;
        }
        if !ELEMENTWISE.contains(&n.op_type.as_str())
            || !n
                .input
                .iter()
                .all(|i| inside.contains(i) || consts.is_const(i))
        {
            break;
        }
        region.push(n);
        inside.extend(n.output.iter().cloned());
        // The region ends where only one of its values is still read outside it.
        let open: Vec<&String> = inside
            .iter()
            .filter(|v| {
                g.node.iter().any(|m| {
                    !region.iter().any(|r| std::ptr::eq(*r, m)) && m.input.iter().any(|i| i == *v)
                }) || g.output.iter().any(|o| &o.name == *v)
            })
            .collect();
        if let [only] = open.as_slice() {
            // Complete unless the one open value feeds more element-wise arithmetic on
            // constants (x·(1 + erf(x/√2)) is followed by its · 0.5).
            let continues = {
                let readers: Vec<&NodeProto> = g
                    .node
                    .iter()
                    .filter(|m| m.input.iter().any(|i| i == *only))
                    .collect();
                matches!(readers.as_slice(), [m] if ELEMENTWISE.contains(&m.op_type.as_str())
                    && m.input.iter().all(|i| i == *only || consts.is_const(i)))
            };
            if *only != x && !continues {
                let out = (*only).clone();
                return Ok((classify(&region, consts, x, &out)?, out));
            }
        }
    }
    let first = region
        .first()
        .map_or_else(|| x.to_string(), |n| n.name.clone());
    Err(Error::invalid(format!(
        "the element-wise nodes after `{x}` (from `{first}`) are not an activation tandem's heads \
         have (ReLU or the exact GELU)"
    )))
}

/// Evaluates the region on sample points and names the activation it computes.
fn classify(
    region: &[&NodeProto],
    consts: &Constants<'_>,
    x: &str,
    out: &str,
) -> Result<ActivationKind> {
    let points: Vec<f64> = (-60..=60).map(|k| k as f64 / 10.0).collect();
    let mut values: HashMap<String, Vec<f64>> = HashMap::new();
    values.insert(x.to_string(), points.clone());
    let value = |values: &HashMap<String, Vec<f64>>, name: &str| -> Result<Vec<f64>> {
        if let Some(v) = values.get(name) {
            return Ok(v.clone());
        }
        let c = consts.get(name)?;
        if c.len() != 1 {
            return Err(Error::invalid(format!(
                "`{name}`: a per-channel constant in an activation is not supported"
            )));
        }
        Ok(vec![
            f64::from(c.iter().next().copied().unwrap_or(0.0));
            points.len()
        ])
    };
    for n in region {
        let a = value(&values, n.input.first().map_or("", |s| s))?;
        let b = n.input.get(1).map(|i| value(&values, i)).transpose()?;
        let zip = |f: fn(f64, f64) -> f64| -> Result<Vec<f64>> {
            let b = b
                .clone()
                .ok_or_else(|| Error::format(format!("{} needs two inputs", n.op_type)))?;
            Ok(a.iter().zip(&b).map(|(&p, &q)| f(p, q)).collect())
        };
        let y = match n.op_type.as_str() {
            "Mul" => zip(|p, q| p * q)?,
            "Div" => zip(|p, q| p / q)?,
            "Add" => zip(|p, q| p + q)?,
            "Sub" => zip(|p, q| p - q)?,
            "Erf" => a.iter().map(|&p| crate::nn::special::erf(p)).collect(),
            "Tanh" => a.iter().map(|&p| p.tanh()).collect(),
            "Sigmoid" => a.iter().map(|&p| 1.0 / (1.0 + (-p).exp())).collect(),
            "Relu" => a.iter().map(|&p| p.max(0.0)).collect(),
            "Gelu" => a
                .iter()
                .map(|&p| p * 0.5 * (1.0 + crate::nn::special::erf(p / 2f64.sqrt())))
                .collect(),
            _ => a,
        };
        for o in &n.output {
            values.insert(o.clone(), y.clone());
        }
    }
    let y = values
        .get(out)
        .ok_or_else(|| Error::format(format!("`{out}` was not computed")))?;
    let close = |f: &dyn Fn(f64) -> f64| {
        points
            .iter()
            .zip(y)
            .all(|(&p, &q)| (f(p) - q).abs() <= 1e-5)
    };
    if close(&|p| p.max(0.0)) {
        Ok(ActivationKind::Relu)
    } else if close(&|p| p * 0.5 * (1.0 + crate::nn::special::erf(p / 2f64.sqrt()))) {
        Ok(ActivationKind::Gelu)
    } else {
        Err(Error::invalid(format!(
            "the element-wise nodes from `{x}` to `{out}` ({}) compute neither ReLU nor the exact \
             GELU, the activations tandem's heads have",
            region
                .iter()
                .map(|n| n.op_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// Checks the chain is an MLP tandem builds (linear, [norm], activation, ..., linear) and
/// lays its parameters out in [`Mlp::params`] order.
fn assemble(
    steps: Vec<Step>,
    input_dim: usize,
    output: OutputFunction,
    input_name: &str,
) -> Result<ImportedHead> {
    let mut hidden = Vec::new();
    let mut values = Vec::new();
    let mut norm_flags = Vec::new();
    let mut acts = Vec::new();
    let mut it = steps.into_iter().peekable();
    let mut output_dim = None;
    while let Some(step) = it.next() {
        let Step::Linear { weight, bias } = step else {
            return Err(Error::invalid(
                "an imported head must start each block with a linear layer",
            ));
        };
        let width = weight.shape()[0];
        values.push(weight);
        values.push(bias);
        match it.peek() {
            None => {
                output_dim = Some(width);
                break;
            }
            Some(Step::Norm { .. }) => {
                let Some(Step::Norm { scale, bias }) = it.next() else {
                    unreachable!()
                };
                values.push(scale);
                values.push(bias);
                norm_flags.push(true);
            }
            Some(_) => norm_flags.push(false),
        }
        match it.next() {
            Some(Step::Act(a)) => acts.push(a),
            _ => {
                return Err(Error::invalid(
                    "every hidden layer of an imported head needs an activation (ReLU or GELU)",
                ))
            }
        }
        hidden.push(width);
    }
    let output_dim =
        output_dim.ok_or_else(|| Error::invalid("an imported head must end in a linear layer"))?;
    if norm_flags.windows(2).any(|w| w[0] != w[1]) || acts.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::invalid(
            "an imported head uses one activation and LayerNorm either on every hidden layer or \
             on none (tandem's MLP heads are built that way)",
        ));
    }
    Ok(ImportedHead {
        input_dim,
        output_dim,
        config: MlpConfig {
            hidden,
            activation: acts.first().copied().unwrap_or_default(),
            dropout: 0.0,
            layer_norm: norm_flags.first().copied().unwrap_or(false),
            residual: false,
        },
        values,
        output,
        input_name: input_name.to_string(),
    })
}

impl ImportedHead {
    /// Heads serving this graph for `task` (embedding-only, pooled), whose labels must match
    /// the output width: `k` labels for a multi-class or multi-label head of `k` outputs, two
    /// for a binary head of one output, none for a regression head of one.
    pub fn heads(&self, task: TaskSpec) -> Result<Heads> {
        let k = self.output_dim;
        let labels = task.labels.len();
        let ok = match task.kind {
            TaskKind::Multiclass => labels == k && k >= 2,
            TaskKind::Multilabel => labels == k,
            TaskKind::Binary => k == 1 && labels == 2,
            TaskKind::Regression => k == 1 && labels == 0,
        };
        if !ok {
            return Err(Error::invalid(format!(
                "the head has {k} outputs; a {} task `{}` with {labels} labels needs {}",
                task.kind.name(),
                task.name,
                match task.kind {
                    TaskKind::Multiclass => "one output per label (at least 2)",
                    TaskKind::Multilabel => "one output per label",
                    TaskKind::Binary => "one output and two labels (negative, positive)",
                    TaskKind::Regression => "one output and no labels",
                }
            )));
        }
        let mut arch = Architecture::embedding_only(self.input_dim, vec![k]);
        arch.head = self.config.clone();
        arch.validate()?;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let mut network = Network::new(arch, &mut rng)?;
        self.load_into(&mut network.heads[0])?;
        let thresholds = match task.kind {
            TaskKind::Binary => vec![0.5],
            TaskKind::Multilabel => vec![0.5; k],
            _ => vec![],
        };
        Ok(Heads {
            network,
            normalizer: None,
            tasks: vec![TaskEntry {
                spec: task,
                thresholds,
            }],
            version: 0,
            onnx: None,
        })
    }

    /// Copies the imported parameters into `mlp`, which must have this head's shape (built
    /// from [`ImportedHead::config`] with the same widths).
    pub fn load_into(&self, mlp: &mut Mlp) -> Result<()> {
        let mut params = mlp.params_mut();
        if params.len() != self.values.len() {
            return Err(Error::invalid(format!(
                "the imported head has {} tensors, this head {}",
                self.values.len(),
                params.len()
            )));
        }
        for (p, v) in params.iter_mut().zip(&self.values) {
            if p.shape() != v.shape() {
                return Err(Error::invalid(format!(
                    "imported tensor for {} has shape {:?}, the head expects {:?}",
                    p.name,
                    v.shape(),
                    p.shape()
                )));
            }
        }
        for (p, v) in params.iter_mut().zip(&self.values) {
            p.set_value(v.clone())?;
        }
        Ok(())
    }
}

/// Imports the head graph at `head` for `task` on `backbone` and saves it as a bundle in `out`
/// (atomically, as training does): it then loads, serves (natively or through ONNX Runtime),
/// exports and trains further (`train --init-head`) like any bundle. The manifest records the
/// graph's file name, sha256 and producer; the decision thresholds are 0.5.
pub fn import_bundle(
    head: &Path,
    task: TaskSpec,
    backbone: &Backbone,
    out: &Path,
) -> Result<Heads> {
    let imported = read_head(head)?;
    if imported.input_dim != backbone.dim() {
        return Err(Error::new(
            ErrorKind::BackboneMismatch,
            format!(
                "{}: the head reads {} inputs, the backbone {} gives {}-wide embeddings",
                head.display(),
                imported.input_dim,
                backbone.manifest().name,
                backbone.dim()
            ),
        ));
    }
    let heads = imported.heads(task)?;
    let model = read::read(head)?;
    let sha = crate::files::sha256_file(head, crate::files::ONNX_GRAPH)?;
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.to_string(),
        created_by: format!("tandem {}", crate::VERSION),
        backbone: BackboneRef::of(backbone),
        features: None,
        tasks: heads.tasks.clone(),
        architecture: heads.network.arch.clone(),
        metrics: serde_json::json!({}),
        training: serde_json::json!({
            "imported": {
                "file": head.file_name().map(|f| f.to_string_lossy().into_owned()),
                "sha256": sha,
                "producer": format!("{} {}", model.proto.producer_name, model.proto.producer_version).trim(),
                "input": imported.input_name,
                "output_function": format!("{:?}", imported.output).to_lowercase(),
            }
        }),
        seed: 0,
        weights_sha256: String::new(),
        weights_dtype: String::new(),
    };
    bundle::save(out, &manifest, &heads.network.weights(), false)?;
    Ok(heads)
}
