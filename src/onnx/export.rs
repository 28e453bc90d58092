//! A whole model as one ONNX graph: the backbone's graph (fp32, opt or int8) with the heads'
//! nodes after it, so that stock ONNX Runtime runs a trained model from token ids (and the
//! raw metadata features, when the model reads them) to per-task probabilities.
//!
//! Inputs: `input_ids` and `attention_mask` (int64 `[batch, seq]`, right-padded, as the
//! tokenizer beside the graph writes them) and, when the heads read metadata, `metadata`
//! (float32 `[batch, n]`: the raw features in the order `tandem features --json` lists them).
//! Outputs: `<task>.probabilities` (`[batch, labels]`; a binary task gives `[1 - p, p]`, as
//! `tandem predict` does) or `<task>.value` (`[batch, 1]`). Label names, thresholds and the
//! feature names are in the graph's metadata_props (`tandem.tasks`, `tandem.metadata_features`)
//! and in `<stem>.tandem.json` beside it, with the backbone's `tokenizer.json`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::heads::{self, BinaryOutput, HeadsInputs};
use super::proto::{tensor_proto::DataType, GraphProto, ModelProto, OperatorSetIdProto};
use super::read;
use super::write::{self, attr_int, attr_tensor, Dim, GraphBuilder};
use crate::backbone::{Pooling, Variant};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Model;

/// The format name in an export's metadata_props (`tandem.format`).
pub const EXPORT_FORMAT: &str = "tandem-onnx/1";

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The graph file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The files written beside it (tokenizer, labels and thresholds).
    pub beside: Vec<PathBuf>,
    /// The graph's inputs.
    pub inputs: Vec<String>,
    /// The graph's outputs.
    pub outputs: Vec<String>,
}

/// The default-domain opset of `m` (0 if it imports none).
fn default_opset(m: &ModelProto) -> i64 {
    m.opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0)
}

/// Rewrites every node input named `old` to `new` (top-level nodes: backbone exports have no
/// subgraphs that read their inputs).
fn rename_reads(g: &mut GraphProto, old: &str, new: &str) {
    for n in &mut g.node {
        for x in &mut n.input {
            if x == old {
                *x = new.to_string();
            }
        }
    }
}

/// The element type of graph input `name`, if it is one.
fn input_type(g: &GraphProto, name: &str) -> Option<i32> {
    use super::proto::type_proto::Value;
    g.input
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.r#type.as_ref())
        .and_then(|t| match &t.value {
            Some(Value::TensorType(t)) => Some(t.elem_type),
            _ => None,
        })
}

/// Makes `input_ids` and `attention_mask` int64 graph inputs (casting inside the graph when
/// the backbone reads int32), and feeds `token_type_ids`, if the backbone reads it, with zeros
/// of the ids' shape (as tandem does).
pub(crate) fn normalize_inputs(b: &mut GraphBuilder) -> Result<()> {
    let before = b.graph().node.len();
    let batch_seq = [Dim::named("batch"), Dim::named("seq")];
    for name in ["input_ids", "attention_mask"] {
        let t = input_type(b.graph(), name)
            .ok_or_else(|| Error::format(format!("the backbone graph has no `{name}` input")))?;
        if t == DataType::Int64 as i32 {
            continue;
        }
        let inner = b.fresh(&format!("{name}.{}", read::elem_type_name(t)));
        rename_reads(b.graph_mut(), name, &inner);
        b.graph_mut().input.retain(|v| v.name != name);
        b.input(name, DataType::Int64, &batch_seq);
        b.raw_node(super::proto::NodeProto {
            input: vec![name.to_string()],
            output: vec![inner.clone()],
            name: format!("{inner}/Cast"),
            op_type: "Cast".into(),
            attribute: vec![attr_int("to", i64::from(t))],
            ..Default::default()
        });
    }
    if let Some(t) = input_type(b.graph(), "token_type_ids") {
        b.graph_mut().input.retain(|v| v.name != "token_type_ids");
        let shape = b.node("Shape", &["input_ids"], vec![], "token_type_ids");
        let zero = match DataType::try_from(t) {
            Ok(DataType::Int32) => super::proto::TensorProto {
                dims: vec![1],
                data_type: DataType::Int32 as i32,
                raw_data: 0i32.to_le_bytes().to_vec(),
                ..Default::default()
            },
            _ => write::tensor_i64("", &[1], &[0]),
        };
        b.raw_node(super::proto::NodeProto {
            input: vec![shape],
            output: vec!["token_type_ids".into()],
            name: "token_type_ids/ConstantOfShape".into(),
            op_type: "ConstantOfShape".into(),
            attribute: vec![attr_tensor("value", zero)],
            ..Default::default()
        });
    }
    // The new nodes feed the backbone's: they go first, so the graph stays in order.
    let g = b.graph_mut();
    let added = g.node.len() - before;
    g.node.rotate_right(added);
    // Inputs a caller feeds, in the documented order.
    g.input.sort_by_key(|v| match v.name.as_str() {
        "input_ids" => 0,
        "attention_mask" => 1,
        _ => 2,
    });
    Ok(())
}

/// The pooled, normalized embedding as tandem computes it: the graph's `sentence_embedding`
/// when it has one, else the manifest's pooling of the token vectors (the mean of the valid
/// ones, or the first's); then L2-normalized when the manifest says so (rows with a norm of at
/// most 1e-12 are left as they are).
fn embedding(
    b: &mut GraphBuilder,
    outputs: &[String],
    pooling: Pooling,
    normalize: bool,
) -> Result<String> {
    let emb = if outputs.iter().any(|o| o == "sentence_embedding") {
        "sentence_embedding".to_string()
    } else if pooling == Pooling::Cls {
        let tokens = token_output(outputs)?;
        let first = b.scalar_i64("pool.first", 0);
        b.node(
            "Gather",
            &[&tokens, &first],
            vec![attr_int("axis", 1)],
            "pool",
        )
    } else {
        let tokens = token_output(outputs)?;
        let mask = b.node("Cast", &["attention_mask"], vec![attr_int("to", 1)], "pool");
        let axis2 = b.ints("pool.axis2", &[2]);
        let m3 = b.node("Unsqueeze", &[&mask, &axis2], vec![], "pool");
        let masked = b.node("Mul", &[&tokens, &m3], vec![], "pool");
        let axis1 = b.ints("pool.axis1", &[1]);
        let sum = b.node(
            "ReduceSum",
            &[&masked, &axis1],
            vec![attr_int("keepdims", 0)],
            "pool",
        );
        let count = b.node(
            "ReduceSum",
            &[&m3, &axis1],
            vec![attr_int("keepdims", 0)],
            "pool",
        );
        let one = b.scalar("pool.one", 1.0);
        let count = b.node("Max", &[&count, &one], vec![], "pool");
        b.node("Div", &[&sum, &count], vec![], "pool")
    };
    if !normalize {
        return Ok(emb);
    }
    let axis = b.ints("l2.axis", &[1]);
    let sq = b.node("Mul", &[&emb, &emb], vec![], "l2");
    let ss = b.node(
        "ReduceSum",
        &[&sq, &axis],
        vec![attr_int("keepdims", 1)],
        "l2",
    );
    let norm = b.node("Sqrt", &[&ss], vec![], "l2");
    let tiny = b.scalar("l2.tiny", 1e-12);
    let one = b.scalar("l2.one", 1.0);
    let big = b.node("Greater", &[&norm, &tiny], vec![], "l2");
    let denom = b.node("Where", &[&big, &norm, &one], vec![], "l2");
    Ok(b.node("Div", &[&emb, &denom], vec![], "l2"))
}

/// The backbone graph's per-token output.
fn token_output(outputs: &[String]) -> Result<String> {
    ["token_embeddings", "last_hidden_state"]
        .iter()
        .find(|n| outputs.iter().any(|o| o == *n))
        .map(|n| n.to_string())
        .ok_or_else(|| {
            Error::format(
                "the backbone graph has none of the outputs sentence_embedding, \
                 token_embeddings, last_hidden_state",
            )
        })
}

/// The task description stored with an export: names, kinds, labels, thresholds and the
/// graph output of each task, and the metadata features the graph reads.
fn description(model: &Model, variant: Variant, reads_metadata: bool) -> serde_json::Value {
    let heads = model.heads();
    let bb = model.backbone().manifest();
    let tasks: Vec<_> = heads
        .tasks
        .iter()
        .map(|t| {
            json!({
                "name": t.spec.name,
                "kind": t.spec.kind.name(),
                "labels": t.spec.labels,
                "thresholds": t.thresholds,
                "output": heads::output_name(&t.spec.name, t.spec.kind),
            })
        })
        .collect();
    json!({
        "format": EXPORT_FORMAT,
        "backbone": bb.name,
        "variant": variant.name(),
        "max_length": bb.max_length,
        "tokenizer": "tokenizer.json",
        "tasks": tasks,
        "metadata_features": if reads_metadata {
            crate::metadata::feature_names().into_iter().map(String::from).collect::<Vec<_>>()
        } else {
            vec![]
        },
    })
}

/// Builds the whole-model graph of `model` on the backbone's `variant` graph.
pub fn build(model: &Model, variant: Variant) -> Result<ModelProto> {
    let backbone = model.backbone();
    let manifest = backbone.manifest();
    let file = manifest.graphs.get(variant.name()).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "backbone {} has no {} graph (it has: {})",
                manifest.name,
                variant.name(),
                manifest
                    .graphs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let source = read::read(&backbone.dir().join(file))?;
    let opset = default_opset(&source.proto);
    if opset < write::OPSET {
        return Err(Error::format(format!(
            "{file} is at opset {opset}; a whole-model export needs a backbone graph at opset \
             {} or newer (re-export the backbone with onnx/export.py)",
            write::OPSET
        )));
    }
    let heads = model.heads();
    let mut proto = source.proto;
    let graph = proto.graph.take().expect("checked at read");
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut b = GraphBuilder::extend(graph);
    b.graph_mut().output.clear();
    normalize_inputs(&mut b)?;
    let batch = Dim::named("batch");
    let mut inputs = HeadsInputs::default();
    if heads::reads_embedding(&heads) {
        inputs.embedding = Some(embedding(
            &mut b,
            &outputs,
            manifest.pooling,
            manifest.normalize,
        )?);
    }
    if heads.network.arch.needs_tokens() {
        // tandem stores per-token vectors as f16 before sequence heads read them: the round
        // trip through f16 here makes the graph see exactly the values tandem's heads see.
        let tokens = token_output(&outputs)?;
        let half = b.node(
            "Cast",
            &[&tokens],
            vec![attr_int("to", DataType::Float16 as i64)],
            "tokens",
        );
        let tokens = b.node(
            "Cast",
            &[&half],
            vec![attr_int("to", DataType::Float as i64)],
            "tokens",
        );
        inputs.tokens = Some((tokens, "attention_mask".to_string()));
    }
    let reads_metadata = heads::reads_metadata(&heads);
    if reads_metadata {
        inputs.metadata = Some(b.input(
            heads::METADATA_INPUT,
            DataType::Float,
            &[
                batch.clone(),
                Dim::Fixed(crate::metadata::num_features() as i64),
            ],
        ));
    }
    let outs = heads::append(&mut b, &heads, &inputs, BinaryOutput::Pair)?;
    for o in &outs {
        b.output(
            &o.value,
            &o.name,
            DataType::Float,
            &[batch.clone(), Dim::Fixed(o.width as i64)],
        );
    }
    let mut graph = b.into_graph();
    graph.name = "tandem".into();
    prune(&mut graph);
    read::check_graph(&graph)?;
    let desc = description(model, variant, reads_metadata);
    let mut meta = vec![
        ("tandem.format".to_string(), EXPORT_FORMAT.to_string()),
        ("tandem.tasks".to_string(), desc["tasks"].to_string()),
        (
            "tandem.metadata_features".to_string(),
            desc["metadata_features"].to_string(),
        ),
        ("tandem.backbone".to_string(), manifest.name.clone()),
        (
            "tandem.max_length".to_string(),
            manifest.max_length.to_string(),
        ),
        ("tandem.tokenizer".to_string(), "tokenizer.json".to_string()),
        // What tandem's own CPU sessions turn off: a host that turns off the same gets exactly
        // tandem's numbers (it matters for the int8 graph, where a 1e-7 change of an
        // activation can move it to the next quantization step).
        (
            "tandem.ort_disabled_optimizers".to_string(),
            crate::backbone::CPU_DISABLED_OPTIMIZERS.to_string(),
        ),
    ];
    meta.retain(|(k, _)| k != "tandem.metadata_features" || reads_metadata);
    let mut out = write::model(graph, &meta);
    out.ir_version = proto.ir_version.max(write::IR_VERSION);
    // The backbone's opsets (the int8 and opt graphs also import com.microsoft).
    out.opset_import = proto.opset_import.clone();
    if !out
        .opset_import
        .iter()
        .any(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        out.opset_import.push(OperatorSetIdProto {
            domain: String::new(),
            version: write::OPSET,
        });
    }
    Ok(out)
}

/// Drops nodes and initializers that no output depends on (the backbone's own outputs that the
/// export no longer returns, e.g. `token_embeddings` of a pooled model).
pub(crate) fn prune(g: &mut GraphProto) {
    let mut needed: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; g.node.len()];
    for (i, n) in g.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().cloned());
            // Subgraph attributes may read outer values: keep what they name.
            for a in &n.attribute {
                for sub in a.g.iter().chain(&a.graphs) {
                    for sn in &sub.node {
                        needed.extend(sn.input.iter().cloned());
                    }
                }
            }
        }
    }
    let mut it = keep.into_iter();
    g.node.retain(|_| it.next().unwrap_or(true));
    g.initializer.retain(|t| needed.contains(&t.name));
    g.input.retain(|v| needed.contains(&v.name));
}

/// Writes `model` as one ONNX graph at `out` (atomically: a temporary file renamed into place),
/// with `tokenizer.json` and `<stem>.tandem.json` (tasks, labels, thresholds, feature names)
/// beside it. A different `tokenizer.json` already there is an error, not overwritten.
pub fn export(model: &Model, variant: Variant, out: &Path) -> Result<Exported> {
    let proto = build(model, variant)?;
    let bytes = write::encode(&proto);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("{}: no such directory", dir.display()),
        ));
    }
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| Error::invalid(format!("{}: not a file name", out.display())))?;
    let tokenizer_src = model.backbone().dir().join("tokenizer.json");
    let tokenizer = std::fs::read(&tokenizer_src).map_err(|e| Error::io(&tokenizer_src, e))?;
    let tokenizer_dst = dir.join("tokenizer.json");
    if tokenizer_dst.exists() {
        let have = std::fs::read(&tokenizer_dst).map_err(|e| Error::io(&tokenizer_dst, e))?;
        if have != tokenizer {
            return Err(Error::invalid(format!(
                "{} exists and is another tokenizer; export to another directory",
                tokenizer_dst.display()
            )));
        }
    }
    let desc = description(model, variant, heads::reads_metadata(&model.heads()));
    let desc_path = dir.join(format!("{stem}.tandem.json"));
    let desc_text = serde_json::to_string_pretty(&desc)
        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
    crate::files::write_atomic(&tokenizer_dst, &tokenizer)?;
    crate::files::write_atomic(&desc_path, desc_text.as_bytes())?;
    crate::files::write_atomic(out, &bytes)?;
    let g = proto.graph.as_ref().expect("built with a graph");
    Ok(Exported {
        path: out.to_path_buf(),
        bytes: bytes.len() as u64,
        beside: vec![tokenizer_dst, desc_path],
        inputs: g.input.iter().map(|v| v.name.clone()).collect(),
        outputs: g.output.iter().map(|v| v.name.clone()).collect(),
    })
}
