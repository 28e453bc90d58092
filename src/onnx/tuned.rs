//! A backbone whose top layers were fine-tuned on the device, as a backbone directory of its
//! own: the base backbone's fp32 graph with the fine-tuned layers' weights written back
//! ([`with_layers`]), its int8 graph likewise with the layers re-quantized
//! ([`with_layers_int8`], when the base has an int8 graph in tandem's layout), the base's
//! tokenizer, and a manifest naming them. A bundle carries it
//! (`<bundle>/backbone/`), so that ONNX Runtime serves the fine-tuned model at the frozen
//! backbone's speed, and [`Model::load`](crate::model::Model::load) runs it instead of the
//! backbone it was handed.

use std::path::Path;

use sha2::Digest;

use super::bert::{bert_layer_count, with_layers};
use super::quant::with_layers_int8;
use super::read;
use super::write;
use crate::backbone::{Backbone, BackboneManifest, Variant};
use crate::bundle::BackboneRef;
use crate::error::{Error, Result};
use crate::nn::bert::BertLayer;

/// The fine-tuned graph's file name inside the backbone directory.
pub const GRAPH_FILE: &str = "model.onnx";
/// The fine-tuned int8 graph's file name.
pub const INT8_FILE: &str = "model.int8.onnx";
/// The tokenizer's file name (as in every backbone directory).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A fine-tuned backbone, in memory until [`TunedBackbone::write`].
pub struct TunedBackbone {
    manifest: BackboneManifest,
    graph: Vec<u8>,
    int8: std::result::Result<Vec<u8>, String>,
    tokenizer: std::path::PathBuf,
}

impl std::fmt::Debug for TunedBackbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunedBackbone")
            .field("name", &self.manifest.name)
            .field("graph_bytes", &self.graph.len())
            .field("int8_bytes", &self.int8.as_ref().map(Vec::len))
            .finish()
    }
}

impl TunedBackbone {
    /// `base` with its top `top.len()` layers replaced by `top`.
    pub fn new(base: &Backbone, top: &[BertLayer]) -> Result<TunedBackbone> {
        let m = base.manifest();
        let file = m.graphs.get(Variant::Fp32.name()).ok_or_else(|| {
            Error::invalid(format!(
                "backbone {} has no fp32 graph to write fine-tuned layers into",
                m.name
            ))
        })?;
        let model = read::read(&base.dir().join(file))?;
        let layers = bert_layer_count(&model);
        let first = layers.checked_sub(top.len()).ok_or_else(|| {
            Error::invalid(format!(
                "{} fine-tuned layers for a backbone of {layers}",
                top.len()
            ))
        })?;
        let graph = write::encode(&with_layers(&model, first, top)?);
        let sha = hex(&sha2::Sha256::digest(&graph));
        // The int8 graph when the base has one tandem can re-quantize; otherwise why not (a
        // fine-tuned model is still saved, and serves in fp32).
        let int8 = match m.graphs.get(Variant::Int8.name()) {
            None => Err(format!("backbone {} has no int8 graph", m.name)),
            Some(file) => read::read(&base.dir().join(file))
                .and_then(|q| with_layers_int8(&q, first, top))
                .map(|q| write::encode(&q))
                .map_err(|e| e.message().to_string()),
        };
        let tokenizer = base.dir().join(TOKENIZER_FILE);
        let tok_sha = crate::backbone::sha256_file(&tokenizer)?;
        let mut manifest = m.clone();
        manifest.name = format!("{} (top {} layers fine-tuned)", m.name, top.len());
        manifest.source = format!(
            "{} with layers {first}..{layers} fine-tuned by tandem (base graph sha256 {})",
            if m.source.is_empty() {
                &m.name
            } else {
                &m.source
            },
            base.family_sha256()
        );
        manifest.graphs = [(Variant::Fp32.name().to_string(), GRAPH_FILE.to_string())].into();
        manifest.files = [
            (GRAPH_FILE.to_string(), sha),
            (TOKENIZER_FILE.to_string(), tok_sha),
        ]
        .into();
        match &int8 {
            Ok(bytes) => {
                manifest
                    .graphs
                    .insert(Variant::Int8.name().to_string(), INT8_FILE.to_string());
                manifest
                    .files
                    .insert(INT8_FILE.to_string(), hex(&sha2::Sha256::digest(bytes)));
            }
            Err(why) => manifest.source += &format!("; no int8 graph: {why}"),
        }
        Ok(TunedBackbone {
            manifest,
            graph,
            int8,
            tokenizer,
        })
    }

    /// What a bundle of heads trained on this backbone records (and checks at load).
    pub fn reference(&self) -> BackboneRef {
        let sha = self.manifest.files[GRAPH_FILE].clone();
        BackboneRef {
            name: self.manifest.name.clone(),
            family_sha256: sha.clone(),
            variant: Variant::Fp32.name().to_string(),
            graph_sha256: sha,
            dim: self.manifest.dim,
        }
    }

    /// Size of the fp32 graph in bytes.
    pub fn graph_bytes(&self) -> usize {
        self.graph.len()
    }

    /// Size of the int8 graph in bytes, or why there is none (the base backbone has no int8
    /// graph, or one in a layout tandem cannot re-quantize).
    pub fn int8(&self) -> std::result::Result<usize, &str> {
        self.int8.as_ref().map(Vec::len).map_err(String::as_str)
    }

    /// Writes the backbone directory `dir` (created; its files synced).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let graph = dir.join(GRAPH_FILE);
        std::fs::write(&graph, &self.graph).map_err(|e| Error::io(&graph, e))?;
        let mut files = vec![graph];
        if let Ok(bytes) = &self.int8 {
            let int8 = dir.join(INT8_FILE);
            std::fs::write(&int8, bytes).map_err(|e| Error::io(&int8, e))?;
            files.push(int8);
        }
        let tok = dir.join(TOKENIZER_FILE);
        std::fs::copy(&self.tokenizer, &tok).map_err(|e| Error::io(&tok, e))?;
        let manifest = dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&self.manifest)
            .map_err(|e| Error::new(crate::ErrorKind::Internal, e.to_string()))?;
        std::fs::write(&manifest, text).map_err(|e| Error::io(&manifest, e))?;
        files.extend([tok, manifest]);
        for f in &files {
            std::fs::File::open(f)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(f, e))?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
