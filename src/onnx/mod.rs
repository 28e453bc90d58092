//! ONNX in and out: the protobuf messages (generated from the vendored `onnx.proto3`), a
//! checked reader for graphs tandem did not write, a graph builder, the heads (pooled and
//! sequence) written as ONNX nodes, and serving those heads through ONNX Runtime.

pub mod bert;
pub mod export;
pub mod heads;
pub mod import;
pub mod proto;
pub mod quant;
pub mod read;
pub mod sequence;
pub mod serve;
pub mod split;
pub mod tuned;
pub mod write;

pub use self::read::{GraphSummary, OnnxModel};
pub use self::serve::OnnxHeads;
