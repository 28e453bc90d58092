//! Building ONNX graphs: a small builder over the protobuf messages that names every value
//! uniquely, stores weights as raw little-endian initializers, and writes a model at one opset.

use std::collections::HashSet;

use ndarray::ArrayViewD;
use prost::Message;

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The default-domain opset tandem writes: 18 is what the backbone graphs use, so a whole-model
/// export needs no version conversion, and it has LayerNormalization (17) and the reductions
/// with `axes` as an input (18).
pub const OPSET: i64 = 18;

/// The IR version written with [`OPSET`] (IR 8 is what opset 18 needs, and what the backbones
/// have).
pub const IR_VERSION: i64 = 8;

/// One dimension of a graph input or output: fixed, or named (e.g. `batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size, shared by every value that uses the same name.
    Named(String),
}

impl Dim {
    /// A symbolic dimension.
    pub fn named(name: &str) -> Dim {
        Dim::Named(name.to_string())
    }
}

/// A graph input or output: name, element type and shape.
pub fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                Dim::Named(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
            }),
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

/// An f32 tensor with its values as raw little-endian bytes (the compact form).
pub fn tensor_f32(
    name: &str,
    dims: &[usize],
    values: impl IntoIterator<Item = f32>,
) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values.into_iter().flat_map(f32::to_le_bytes).collect(),
        ..Default::default()
    }
}

/// An f64 tensor with raw little-endian bytes.
pub fn tensor_f64(name: &str, dims: &[usize], values: &[f64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Double as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor with raw little-endian bytes.
pub fn tensor_i64(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// A tensor attribute (e.g. `ConstantOfShape`'s `value`).
pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Tensor as i32,
        t: Some(t),
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A graph under construction. Values get unique names from a hint (`heads.0/Gemm_3`), so
/// callers never collide with each other or with a graph this one is merged into, as long as
/// that graph's names are reserved first ([`GraphBuilder::reserve`]).
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    names: HashSet<String>,
    counter: usize,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A builder that extends `graph`: its nodes, initializers, inputs and outputs are kept,
    /// and every name it uses is reserved.
    pub fn extend(graph: GraphProto) -> Self {
        let mut names = HashSet::new();
        names.extend(graph.input.iter().map(|v| v.name.clone()));
        names.extend(graph.initializer.iter().map(|t| t.name.clone()));
        for n in &graph.node {
            names.extend(n.output.iter().cloned());
            names.insert(n.name.clone());
        }
        GraphBuilder {
            graph,
            names,
            counter: 0,
        }
    }

    /// The graph, mutably (to rewire what [`GraphBuilder::extend`] kept).
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        &mut self.graph
    }

    /// Marks names as taken (those of a graph this one extends).
    pub fn reserve<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.names.extend(names.into_iter().map(str::to_string));
    }

    /// A fresh value name from `hint`.
    pub fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        while self.names.contains(&name) {
            self.counter += 1;
            name = format!("{hint}_{}", self.counter);
        }
        self.names.insert(name.clone());
        name
    }

    /// Declares a graph input; returns its name (exactly `name`: inputs are the graph's API).
    pub fn input(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> String {
        self.names.insert(name.to_string());
        self.graph.input.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Declares `value` a graph output called `name` (through an Identity when the names
    /// differ, so outputs have exactly the names callers read).
    pub fn output(&mut self, value: &str, name: &str, elem: DataType, dims: &[Dim]) {
        if value != name {
            self.names.insert(name.to_string());
            self.graph.node.push(NodeProto {
                input: vec![value.to_string()],
                output: vec![name.to_string()],
                name: format!("{name}/Identity"),
                op_type: "Identity".into(),
                ..Default::default()
            });
        }
        self.graph.output.push(value_info(name, elem, dims));
    }

    /// Adds an f32 initializer holding `a`; returns its name.
    pub fn weight(&mut self, hint: &str, a: ArrayViewD<'_, f32>) -> String {
        let name = self.fresh(hint);
        let t = tensor_f32(&name, a.shape(), a.iter().copied());
        self.graph.initializer.push(t);
        name
    }

    /// Adds a 1-D f32 initializer.
    pub fn floats(&mut self, hint: &str, v: &[f32]) -> String {
        let name = self.fresh(hint);
        self.graph
            .initializer
            .push(tensor_f32(&name, &[v.len()], v.iter().copied()));
        name
    }

    /// Adds an f32 scalar initializer (rank 0, which broadcasts against anything).
    pub fn scalar(&mut self, hint: &str, v: f32) -> String {
        let name = self.fresh(hint);
        self.graph.initializer.push(tensor_f32(&name, &[], [v]));
        name
    }

    /// Adds a 1-D int64 initializer (indices, axes, shapes).
    pub fn ints(&mut self, hint: &str, v: &[i64]) -> String {
        let name = self.fresh(hint);
        self.graph
            .initializer
            .push(tensor_i64(&name, &[v.len()], v));
        name
    }

    /// Adds an int64 scalar initializer (rank 0: what Range and Gather-to-scalar need).
    pub fn scalar_i64(&mut self, hint: &str, v: i64) -> String {
        let name = self.fresh(hint);
        self.graph.initializer.push(tensor_i64(&name, &[], &[v]));
        name
    }

    /// Adds a 1-D f64 initializer (for values that must be computed in double precision).
    pub fn doubles(&mut self, hint: &str, v: &[f64]) -> String {
        let name = self.fresh(hint);
        self.graph
            .initializer
            .push(tensor_f64(&name, &[v.len()], v));
        name
    }

    /// Adds an existing initializer as it is (its name must be fresh).
    pub fn initializer(&mut self, t: TensorProto) {
        self.names.insert(t.name.clone());
        self.graph.initializer.push(t);
    }

    /// Adds a node with one output; returns the output's name. `hint` names node and output.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        hint: &str,
    ) -> String {
        let out = self.fresh(&format!("{hint}/{op}"));
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_string(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// Appends a node as it is (names must already be unique; see [`GraphBuilder::reserve`]).
    pub fn raw_node(&mut self, node: NodeProto) {
        self.names.extend(node.output.iter().cloned());
        self.graph.node.push(node);
    }

    /// The graph so far.
    pub fn graph(&self) -> &GraphProto {
        &self.graph
    }

    /// The finished graph.
    pub fn into_graph(self) -> GraphProto {
        self.graph
    }
}

/// A model around `graph` at [`OPSET`], with `metadata` as its metadata_props.
pub fn model(graph: GraphProto, metadata: &[(String, String)]) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "tandem".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

/// The model's protobuf bytes.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_never_collide() {
        let mut b = GraphBuilder::new("g");
        b.reserve(["x/Relu"]);
        let a = b.node("Relu", &["x"], vec![], "x");
        let c = b.node("Relu", &["x"], vec![], "x");
        assert_ne!(a, "x/Relu");
        assert_ne!(a, c);
        assert_eq!(b.graph().node.len(), 2);
    }

    #[test]
    fn raw_tensors_are_little_endian() {
        let t = tensor_f32("w", &[2], [1.0, -2.0]);
        assert_eq!(t.raw_data.len(), 8);
        assert_eq!(
            f32::from_le_bytes(t.raw_data[4..8].try_into().unwrap()),
            -2.0
        );
        let i = tensor_i64("i", &[1], &[7]);
        assert_eq!(i64::from_le_bytes(i.raw_data[..].try_into().unwrap()), 7);
    }
}
