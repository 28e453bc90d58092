//! The backbone manifest written by `onnx/export.py`: what the model is and how to run it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Pooling;
use crate::error::{Error, Result};

/// The only manifest format this build understands.
pub const BACKBONE_FORMAT: &str = "tandem-backbone/1";

/// Contents of `manifest.json` in a backbone directory. Unknown fields are kept out of the way
/// (ignored), so newer exporters can add provenance without breaking older runtimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackboneManifest {
    /// Format tag; must equal [`BACKBONE_FORMAT`].
    pub format: String,
    /// Human name of the model, e.g. `all-MiniLM-L6-v2`.
    pub name: String,
    /// Where the weights came from (package and version).
    #[serde(default)]
    pub source: String,
    /// The model family (`bert`, `mpnet`), where the exporter records it: tandem fine-tunes
    /// BERT layers only, and says so naming the family.
    #[serde(default)]
    pub architecture: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Maximum tokens per text, special tokens included; longer texts are truncated.
    pub max_length: usize,
    /// How token vectors become the sentence embedding (`mean` or `cls`): what a pooled
    /// output computes, and what tandem computes for a graph with only per-token outputs and
    /// for fine-tuned top layers.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalized.
    pub normalize: bool,
    /// Graph file per variant (`fp32`, `opt`, `int8`).
    pub graphs: BTreeMap<String, String>,
    /// sha256 (hex) of every file in the directory that matters.
    pub files: BTreeMap<String, String>,
}

impl BackboneManifest {
    /// Reads and checks `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("manifest.json");
        let text = crate::files::read_text(&path, crate::files::BACKBONE_MANIFEST).map_err(|e| {
            let mut err = e;
            if err.kind() == crate::ErrorKind::NotFound {
                err = Error::new(
                    crate::ErrorKind::NotFound,
                    format!(
                        "{}: no backbone manifest here; run `scripts/setup.sh` to export the default backbone",
                        path.display()
                    ),
                );
            }
            err
        })?;
        Self::parse(&text)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))
    }

    /// Parses and checks the text of a backbone `manifest.json`: valid JSON with every field of
    /// its type, the format [`BACKBONE_FORMAT`], a known pooling, a positive dimension and a
    /// `max_length` of at least 2. Untrusted input: anything else is a
    /// [`Format`](crate::ErrorKind::Format) error.
    pub fn parse(text: &str) -> Result<Self> {
        let m: BackboneManifest = serde_json::from_str(text)
            .map_err(|e| Error::format(format!("invalid manifest: {e}")))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<()> {
        if self.format != BACKBONE_FORMAT {
            return Err(Error::format(format!(
                "unsupported backbone format `{}` (this build reads `{BACKBONE_FORMAT}`)",
                self.format
            )));
        }
        if self.dim == 0 || self.max_length < 2 {
            return Err(Error::format(
                "manifest has a zero dimension or a max_length below 2",
            ));
        }
        Ok(())
    }

    /// The sha256 recorded for `file`, if any.
    pub fn sha256_of(&self, file: &str) -> Option<&str> {
        self.files.get(file).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) {
        std::fs::write(dir.join("manifest.json"), json).unwrap();
    }

    #[test]
    fn rejects_unknown_format_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("tandem-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = BackboneManifest::load(&dir.join("nope")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        write(
            &dir,
            r#"{"format":"other/9","name":"x","dim":3,"max_length":8,"pooling":"mean","normalize":true,"graphs":{},"files":{}}"#,
        );
        let err = BackboneManifest::load(&dir).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Format);
        assert!(err.message().contains("other/9"));
        write(&dir, "{not json");
        assert_eq!(
            BackboneManifest::load(&dir).unwrap_err().kind(),
            crate::ErrorKind::Format
        );
        write(
            &dir,
            r#"{"format":"tandem-backbone/1","name":"x","dim":3,"max_length":8,"pooling":"mean","normalize":true,"graphs":{"fp32":"m.onnx"},"files":{"m.onnx":"ab"}}"#,
        );
        let m = BackboneManifest::load(&dir).unwrap();
        assert_eq!(m.sha256_of("m.onnx"), Some("ab"));
        assert_eq!(m.pooling, Pooling::Mean);
        // An unknown pooling is a format error naming it.
        write(
            &dir,
            r#"{"format":"tandem-backbone/1","name":"x","dim":3,"max_length":8,"pooling":"max","normalize":true,"graphs":{},"files":{}}"#,
        );
        let err = BackboneManifest::load(&dir).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Format);
        assert!(err.message().contains("max"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
