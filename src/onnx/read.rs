//! Reading ONNX graphs tandem did not write (imported heads, backbones merged into an export).
//! The bytes are untrusted: sizes are bounded, every tensor's data must match its shape and
//! type, every node input must be defined before it is used, external data must stay inside the
//! model's directory, and errors name the node or initializer at fault.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use prost::Message;

use super::proto::{
    tensor_proto::{DataLocation, DataType},
    type_proto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use crate::error::{Error, Result};

/// The most nodes a graph may have (a BERT-base export has a few thousand).
pub const MAX_NODES: usize = 1 << 20;

/// The most elements one tensor may claim (4 G floats: 16 GB, beyond any model tandem reads).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 32;

/// The most dimensions a tensor may have.
pub const MAX_RANK: usize = 16;

/// A parsed, checked model and where it came from (external data resolves against `dir`).
#[derive(Debug, Clone)]
pub struct OnnxModel {
    /// The protobuf message.
    pub proto: ModelProto,
    /// The model file's directory, the only place external data may come from (`None` for
    /// bytes with no file: then external data is refused).
    pub dir: Option<PathBuf>,
}

/// A graph input or output as the reader lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSummary {
    /// Name.
    pub name: String,
    /// Element type (`float`, `int64`, ...), or `?` for a non-tensor or untyped value.
    pub elem_type: String,
    /// Dimensions: a number, a symbolic name, or `?`.
    pub dims: Vec<String>,
}

/// A node as the reader lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    /// The node's name, or `op_type#index` when it has none.
    pub name: String,
    /// Operator (with its domain when not the default one: `com.microsoft.Attention`).
    pub op: String,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
}

/// An initializer as the reader lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializerSummary {
    /// Its name in the graph.
    pub name: String,
    /// A readable name: the graph's own unless it is anonymous (`onnx::MatMul_12`, a number),
    /// then the node and input slot that use it (`/fc1/MatMul:1`).
    pub display: String,
    /// Element type.
    pub elem_type: String,
    /// Shape.
    pub dims: Vec<i64>,
    /// Whether its data lives in an external file.
    pub external: bool,
}

/// What a graph holds, in order: inputs (initializers excluded), outputs, nodes, initializers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSummary {
    /// Inputs a caller feeds.
    pub inputs: Vec<ValueSummary>,
    /// Outputs.
    pub outputs: Vec<ValueSummary>,
    /// Nodes, in graph order.
    pub nodes: Vec<NodeSummary>,
    /// Initializers (weights).
    pub initializers: Vec<InitializerSummary>,
}

/// The name of an ONNX element type.
pub fn elem_type_name(t: i32) -> String {
    DataType::try_from(t)
        .map(|d| d.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| format!("type {t}"))
}

/// Decodes and checks a model's bytes (see the module doc for what is checked).
pub fn parse(bytes: &[u8]) -> Result<ModelProto> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::format(format!("not an ONNX model (protobuf: {e})")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::format("ONNX model has no graph"))?;
    check_graph(graph)?;
    Ok(model)
}

/// Reads and checks the model at `path` (at most [`crate::files::ONNX_GRAPH`] bytes).
pub fn read(path: &Path) -> Result<OnnxModel> {
    let bytes = crate::files::read(path, crate::files::ONNX_GRAPH)?;
    let proto = parse(&bytes)
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))?;
    Ok(OnnxModel {
        proto,
        dir: Some(
            path.parent()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from(".")),
        ),
    })
}

impl OnnxModel {
    /// The model's graph (present: [`parse`] checked it).
    pub fn graph(&self) -> &GraphProto {
        self.proto.graph.as_ref().expect("checked at parse")
    }

    /// The graph's inputs, outputs, nodes and initializers.
    pub fn summary(&self) -> GraphSummary {
        summarize(self.graph())
    }

    /// The value of the initializer `name` as f32 (from float, float16, bfloat16 or double
    /// data), resolving external data inside the model's directory.
    pub fn initializer_f32(&self, name: &str) -> Result<ArrayD<f32>> {
        self.initializer(name, tensor_to_f32)
    }

    /// The value of the initializer `name` as i64 (from int64 or int32 data).
    pub fn initializer_i64(&self, name: &str) -> Result<ArrayD<i64>> {
        self.initializer(name, tensor_to_i64)
    }

    /// The initializer `name` read by `convert`, errors naming it readably.
    fn initializer<T>(
        &self,
        name: &str,
        convert: fn(&TensorProto, Option<&Path>) -> Result<ArrayD<T>>,
    ) -> Result<ArrayD<T>> {
        let g = self.graph();
        let t = g
            .initializer
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::format(format!("no initializer `{name}`")))?;
        convert(t, self.dir.as_deref()).map_err(|e| {
            Error::new(
                e.kind(),
                format!("initializer `{}`: {}", display_name(g, name), e.message()),
            )
        })
    }
}

/// Lists a graph (see [`GraphSummary`]).
pub fn summarize(g: &GraphProto) -> GraphSummary {
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let values = |v: &[ValueInfoProto], skip_inits: bool| -> Vec<ValueSummary> {
        v.iter()
            .filter(|vi| !(skip_inits && inits.contains(vi.name.as_str())))
            .map(value_summary)
            .collect()
    };
    GraphSummary {
        inputs: values(&g.input, true),
        outputs: values(&g.output, false),
        nodes: g
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| NodeSummary {
                name: node_name(n, i),
                op: if n.domain.is_empty() || n.domain == "ai.onnx" {
                    n.op_type.clone()
                } else {
                    format!("{}.{}", n.domain, n.op_type)
                },
                inputs: n.input.clone(),
                outputs: n.output.clone(),
            })
            .collect(),
        initializers: g
            .initializer
            .iter()
            .map(|t| InitializerSummary {
                name: t.name.clone(),
                display: display_name(g, &t.name),
                elem_type: elem_type_name(t.data_type),
                dims: t.dims.clone(),
                external: t.data_location == DataLocation::External as i32,
            })
            .collect(),
    }
}

/// A node's name for messages: its own, or `op_type#index`.
pub fn node_name(n: &NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("{}#{index}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// Whether an initializer name says nothing about its role (exporters' generated names).
fn is_anonymous(name: &str) -> bool {
    name.is_empty() || name.starts_with("onnx::") || name.chars().all(|c| c.is_ascii_digit())
}

/// A readable name for the initializer `name`: its own, or (when anonymous) the first node
/// that reads it and the input slot, `node:slot`.
pub fn display_name(g: &GraphProto, name: &str) -> String {
    if !is_anonymous(name) {
        return name.to_string();
    }
    for (i, n) in g.node.iter().enumerate() {
        if let Some(slot) = n.input.iter().position(|x| x == name) {
            return format!("{}:{slot} ({name})", node_name(n, i));
        }
    }
    name.to_string()
}

fn value_summary(v: &ValueInfoProto) -> ValueSummary {
    let (elem_type, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => (
            elem_type_name(t.elem_type),
            t.shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(super::proto::tensor_shape_proto::dimension::Value::DimValue(
                                n,
                            )) => n.to_string(),
                            Some(super::proto::tensor_shape_proto::dimension::Value::DimParam(
                                p,
                            )) => p.clone(),
                            None => "?".into(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ("?".into(), vec![]),
    };
    ValueSummary {
        name: v.name.clone(),
        elem_type,
        dims,
    }
}

/// Structural checks of a graph: bounded sizes, unique names, initializer data that matches
/// shape and type, and nodes in an order where every input is defined before use.
pub fn check_graph(g: &GraphProto) -> Result<()> {
    if g.node.len() > MAX_NODES {
        return Err(Error::format(format!(
            "graph has {} nodes, more than the {MAX_NODES} tandem reads",
            g.node.len()
        )));
    }
    let mut defined: HashSet<&str> = HashSet::new();
    for t in &g.initializer {
        if !defined.insert(t.name.as_str()) {
            return Err(Error::format(format!(
                "initializer `{}` is defined twice",
                t.name
            )));
        }
        check_tensor(t).map_err(|e| {
            Error::format(format!(
                "initializer `{}`: {}",
                display_name(g, &t.name),
                e.message()
            ))
        })?;
    }
    for v in &g.input {
        // An input may repeat an initializer's name (old exporters list weights as inputs too).
        defined.insert(v.name.as_str());
    }
    for (i, n) in g.node.iter().enumerate() {
        for x in &n.input {
            // "" marks an omitted optional input.
            if !x.is_empty() && !defined.contains(x.as_str()) {
                return Err(Error::format(format!(
                    "node `{}` ({}) reads `{x}`, which nothing defines before it",
                    node_name(n, i),
                    n.op_type
                )));
            }
        }
        for y in &n.output {
            if y.is_empty() {
                continue;
            }
            if !defined.insert(y.as_str()) {
                return Err(Error::format(format!(
                    "node `{}` ({}) writes `{y}`, which is already defined",
                    node_name(n, i),
                    n.op_type
                )));
            }
        }
    }
    for o in &g.output {
        if !defined.contains(o.name.as_str()) {
            return Err(Error::format(format!(
                "graph output `{}` is not produced by any node",
                o.name
            )));
        }
    }
    Ok(())
}

/// Element count of a shape, checked: non-negative dimensions, bounded rank and product.
fn element_count(dims: &[i64]) -> Result<u64> {
    if dims.len() > MAX_RANK {
        return Err(Error::format(format!(
            "rank {} is over {MAX_RANK}",
            dims.len()
        )));
    }
    let mut n: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d).map_err(|_| Error::format(format!("negative dimension {d}")))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| Error::format(format!("shape {dims:?} is too large")))?;
    }
    Ok(n)
}

/// Bytes per element of the types tandem reads, if fixed.
fn elem_size(t: i32) -> Option<u64> {
    Some(match DataType::try_from(t).ok()? {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        _ => return None,
    })
}

/// A tensor's data agrees with its shape and type (external data: its location is well
/// formed; the bytes are checked when read).
fn check_tensor(t: &TensorProto) -> Result<()> {
    let n = element_count(&t.dims)?;
    if t.data_location == DataLocation::External as i32 {
        external_location(t)?;
        return Ok(());
    }
    if !t.raw_data.is_empty() {
        let size = elem_size(t.data_type).ok_or_else(|| {
            Error::format(format!("raw data of type {}", elem_type_name(t.data_type)))
        })?;
        if t.raw_data.len() as u64 != n * size {
            return Err(Error::format(format!(
                "{} bytes of raw data for shape {:?} of {}",
                t.raw_data.len(),
                t.dims,
                elem_type_name(t.data_type)
            )));
        }
        return Ok(());
    }
    let typed = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => t.float_data.len(),
        Ok(DataType::Double) => t.double_data.len(),
        Ok(DataType::Int64) => t.int64_data.len(),
        Ok(DataType::Uint64 | DataType::Uint32) => t.uint64_data.len(),
        Ok(DataType::String) => t.string_data.len(),
        Ok(_) => t.int32_data.len(),
        Err(_) => {
            return Err(Error::format(format!(
                "unknown element type {}",
                t.data_type
            )))
        }
    };
    if typed as u64 != n {
        return Err(Error::format(format!(
            "{typed} values for shape {:?}",
            t.dims
        )));
    }
    Ok(())
}

/// An external tensor's (relative path, offset, length) entries.
fn external_location(t: &TensorProto) -> Result<(PathBuf, u64, Option<u64>)> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let num = || {
            kv.value.parse::<u64>().map_err(|_| {
                Error::format(format!(
                    "external data {} `{}` is not a number",
                    kv.key, kv.value
                ))
            })
        };
        match kv.key.as_str() {
            "location" => location = Some(PathBuf::from(&kv.value)),
            "offset" => offset = num()?,
            "length" => length = Some(num()?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| Error::format("external data without a location"))?;
    // Inside the model's directory only: a relative path of plain names.
    if !location
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        || location.as_os_str().is_empty()
    {
        return Err(Error::format(format!(
            "external data location `{}` leaves the model's directory",
            location.display()
        )));
    }
    Ok((location, offset, length))
}

/// The tensor's bytes in raw little-endian form, from `raw_data` or an external file.
fn raw_bytes(t: &TensorProto, dir: Option<&Path>) -> Result<Option<Vec<u8>>> {
    if t.data_location != DataLocation::External as i32 {
        return Ok((!t.raw_data.is_empty()).then(|| t.raw_data.clone()));
    }
    let dir = dir.ok_or_else(|| Error::format("external data, but the model has no directory"))?;
    let (location, offset, length) = external_location(t)?;
    let size = elem_size(t.data_type).ok_or_else(|| {
        Error::format(format!(
            "external data of type {}",
            elem_type_name(t.data_type)
        ))
    })?;
    let want = element_count(&t.dims)? * size;
    if length.is_some_and(|l| l != want) {
        return Err(Error::format(format!(
            "external data length {} for {want} bytes of shape {:?}",
            length.unwrap_or(0),
            t.dims
        )));
    }
    let path = dir.join(&location);
    // A symlink could still point outside: compare canonical paths.
    let real = path.canonicalize().map_err(|e| Error::io(&path, e))?;
    let real_dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    if !real.starts_with(&real_dir) {
        return Err(Error::format(format!(
            "external data `{}` resolves outside the model's directory",
            location.display()
        )));
    }
    let limit = crate::files::Limit {
        what: "ONNX external data",
        bytes: u64::MAX,
        streams: false,
        too_big: crate::ErrorKind::Format,
    };
    let (mut f, len) = crate::files::open(&real, limit)?;
    if offset.checked_add(want).is_none_or(|end| end > len) {
        return Err(Error::format(format!(
            "external data `{}`: bytes {offset}..+{want} are past its end ({len} bytes)",
            location.display()
        )));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(&real, e))?;
    let mut buf = vec![0u8; usize::try_from(want).map_err(|_| Error::format("tensor too large"))?];
    f.read_exact(&mut buf).map_err(|e| Error::io(&real, e))?;
    Ok(Some(buf))
}

/// A tensor's values as f32 (float, float16, bfloat16, double).
pub fn tensor_to_f32(t: &TensorProto, dir: Option<&Path>) -> Result<ArrayD<f32>> {
    check_tensor(t)?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let dt = DataType::try_from(t.data_type).map_err(|_| Error::format("unknown element type"))?;
    let values: Vec<f32> = match (dt, raw_bytes(t, dir)?) {
        (DataType::Float, Some(b)) => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        (DataType::Float, None) => t.float_data.clone(),
        (DataType::Double, Some(b)) => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        (DataType::Double, None) => t.double_data.iter().map(|&v| v as f32).collect(),
        (DataType::Float16, Some(b)) => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        // Typed float16 data lives in int32_data, one value's bits per entry.
        (DataType::Float16, None) => t
            .int32_data
            .iter()
            .map(|&v| f16::from_bits(v as u16).to_f32())
            .collect(),
        (DataType::Bfloat16, Some(b)) => b
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        (DataType::Bfloat16, None) => t
            .int32_data
            .iter()
            .map(|&v| bf16::from_bits(v as u16).to_f32())
            .collect(),
        _ => {
            return Err(Error::format(format!(
                "{} is not a floating-point tensor",
                elem_type_name(t.data_type)
            )))
        }
    };
    ArrayD::from_shape_vec(IxDyn(&dims), values).map_err(|e| Error::format(e.to_string()))
}

/// A tensor's values as i64 (int64, int32, int8).
pub fn tensor_to_i64(t: &TensorProto, dir: Option<&Path>) -> Result<ArrayD<i64>> {
    check_tensor(t)?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let dt = DataType::try_from(t.data_type).map_err(|_| Error::format("unknown element type"))?;
    let values: Vec<i64> = match (dt, raw_bytes(t, dir)?) {
        (DataType::Int64, Some(b)) => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        (DataType::Int64, None) => t.int64_data.clone(),
        (DataType::Int32, Some(b)) => b
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        (DataType::Int32, None) => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        (DataType::Int8, Some(b)) => b.iter().map(|&v| i64::from(v as i8)).collect(),
        // Typed int8 data lives in int32_data, one value per entry.
        (DataType::Int8, None) => t.int32_data.iter().map(|&v| i64::from(v as i8)).collect(),
        _ => {
            return Err(Error::format(format!(
                "{} is not an integer tensor",
                elem_type_name(t.data_type)
            )))
        }
    };
    ArrayD::from_shape_vec(IxDyn(&dims), values).map_err(|e| Error::format(e.to_string()))
}

/// Every initializer of `g` by name (for importers that walk the nodes).
pub fn initializers(g: &GraphProto) -> HashMap<&str, &TensorProto> {
    g.initializer.iter().map(|t| (t.name.as_str(), t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::write::{self, Dim, GraphBuilder};

    fn tiny() -> Vec<u8> {
        let mut b = GraphBuilder::new("t");
        let x = b.input("x", DataType::Float, &[Dim::named("batch"), Dim::Fixed(2)]);
        let w = b.weight(
            "onnx::MatMul_7",
            ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]])
                .into_dyn()
                .view(),
        );
        let y = b.node("MatMul", &[&x, &w], vec![], "/fc/MatMul");
        b.output(
            &y,
            "y",
            DataType::Float,
            &[Dim::named("batch"), Dim::Fixed(2)],
        );
        write::encode(&write::model(b.into_graph(), &[]))
    }

    #[test]
    fn lists_and_reads_what_the_writer_wrote() {
        let m = OnnxModel {
            proto: parse(&tiny()).unwrap(),
            dir: None,
        };
        let s = m.summary();
        assert_eq!(s.inputs[0].dims, ["batch", "2"]);
        assert_eq!(s.outputs[0].name, "y");
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(
            s.initializers[0].display,
            "/fc/MatMul/MatMul:1 (onnx::MatMul_7)"
        );
        let w = m.initializer_f32("onnx::MatMul_7").unwrap();
        assert_eq!(w.shape(), &[2, 2]);
        assert_eq!(w[[1, 0]], 3.0);
    }

    #[test]
    fn bad_graphs_name_what_is_wrong() {
        assert!(parse(b"\xff\xff\xff").is_err());
        let mut m = parse(&tiny()).unwrap();
        m.graph.as_mut().unwrap().node[0].input[0] = "nope".into();
        let e = check_graph(m.graph.as_ref().unwrap()).unwrap_err();
        assert!(
            e.message().contains("/fc/MatMul/MatMul") && e.message().contains("nope"),
            "{e}"
        );
        let mut m = parse(&tiny()).unwrap();
        m.graph.as_mut().unwrap().initializer[0].raw_data.pop();
        let e = check_graph(m.graph.as_ref().unwrap()).unwrap_err();
        assert!(e.message().contains("/fc/MatMul/MatMul:1"), "{e}");
        let mut m = parse(&tiny()).unwrap();
        m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 40, 1 << 40];
        assert!(check_graph(m.graph.as_ref().unwrap()).is_err());
    }

    #[test]
    fn external_data_stays_in_the_model_directory() {
        let dir = std::env::temp_dir().join(format!("tandem-onnx-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("w.bin"), [0u8, 0, 128, 63, 0, 0, 0, 64]).unwrap();
        let ext = |loc: &str, off: &str| TensorProto {
            name: "w".into(),
            dims: vec![2],
            data_type: DataType::Float as i32,
            data_location: DataLocation::External as i32,
            external_data: [("location", loc), ("offset", off)]
                .iter()
                .map(|(k, v)| super::super::proto::StringStringEntryProto {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        };
        let v = tensor_to_f32(&ext("w.bin", "0"), Some(&dir)).unwrap();
        assert_eq!(v.as_slice().unwrap(), &[1.0, 2.0]);
        assert!(tensor_to_f32(&ext("../w.bin", "0"), Some(&dir)).is_err());
        assert!(tensor_to_f32(&ext("/etc/passwd", "0"), Some(&dir)).is_err());
        assert!(tensor_to_f32(&ext("w.bin", "4"), Some(&dir)).is_err());
        assert!(tensor_to_f32(&ext("w.bin", "0"), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
