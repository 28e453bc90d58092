//! Tokenization with dynamic padding: each batch is padded only to its own longest text, and
//! every text is truncated at the model's max length (the shipped tokenizer.json pads to a fixed
//! 128, which both wastes compute and cuts long texts short, so both settings are overridden).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, ErrorKind, Result};

/// Token ids and masks for one batch, padded to the batch's longest row.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// Row-major `[rows, width]` token ids.
    pub ids: Vec<i64>,
    /// Row-major `[rows, width]` attention mask (1 = real token).
    pub mask: Vec<i64>,
    /// Per-row mask, for pooling.
    pub row_masks: Vec<Vec<u32>>,
    /// Number of rows.
    pub rows: usize,
    /// Padded length.
    pub width: usize,
}

/// A loaded tokenizer configured for tandem's padding and truncation.
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    max_length: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("pad_id", &self.pad_id)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and sets truncation at `max_length` with no fixed padding.
    pub fn load(path: &Path, max_length: usize) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{}: tokenizer not found", path.display()),
            ));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| {
            Error::new(
                ErrorKind::Tokenizer,
                format!("{}: cannot load tokenizer: {e}", path.display()),
            )
        })?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::new(ErrorKind::Tokenizer, format!("truncation: {e}")))?;
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        Ok(TextTokenizer {
            inner,
            pad_id,
            max_length,
        })
    }

    /// Maximum tokens per text, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Token ids of each text (special tokens added, truncated), without padding.
    ///
    /// Sequential on purpose: the batch variant fans out over rayon, whose spinning workers
    /// compete with ONNX Runtime's own spinning threads for the same cores, and tokenizing is a
    /// small fraction of the model's cost anyway.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.encode_one(t)).collect()
    }

    /// [`TextTokenizer::encode`] across rayon's pool: the same ids in the same order. For when
    /// the graph does not run on the CPU (see the note on `encode`).
    pub fn encode_parallel(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        use rayon::prelude::*;
        texts
            .par_iter()
            .with_min_len(8)
            .map(|t| self.encode_one(t))
            .collect()
    }

    fn encode_one(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::new(ErrorKind::Tokenizer, format!("encoding failed: {e}")))
    }

    /// Pads the given rows of token ids into one batch.
    pub fn pad(&self, rows: &[&[u32]]) -> EncodedBatch {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        let mut row_masks = Vec::with_capacity(rows.len());
        for r in rows {
            let mut m = vec![0u32; width];
            for (t, &id) in r.iter().enumerate() {
                ids.push(i64::from(id));
                mask.push(1);
                m[t] = 1;
            }
            for _ in r.len()..width {
                ids.push(i64::from(self.pad_id));
                mask.push(0);
            }
            row_masks.push(m);
        }
        EncodedBatch {
            ids,
            mask,
            row_masks,
            rows: rows.len(),
            width,
        }
    }
}
