//! On-disk embedding cache, so retraining never runs the backbone twice on the same text.
//!
//! One directory per graph (keyed by the graph's sha256, since fp32 and int8 embeddings differ),
//! holding an append-only file of fixed-size records: `sha256(text)` then `dim` little-endian
//! f32s. Appends take an exclusive file lock, so several processes can share a cache; a torn
//! record left by a crash is ignored (and overwritten by the next append).
//!
//! Sequence heads also need every token's vector: [`TokenCache`] keeps those, ragged and f16,
//! beside the pooled file of the same graph.

mod tokens;

pub use tokens::TokenCache;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::backbone::Backbone;
use crate::error::{Error, Result};

pub(crate) const KEY: usize = 32;

/// Statistics of one `embed` call through the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Texts found in the cache.
    pub hits: usize,
    /// Distinct texts that had to be embedded.
    pub misses: usize,
}

struct Inner {
    index: HashMap<[u8; KEY], usize>,
    rows: Vec<f32>,
}

/// A persistent cache of pooled embeddings for one backbone graph. Thread-safe.
pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingCache")
            .field("path", &self.path)
            .field("dim", &self.dim)
            .finish()
    }
}

pub(crate) fn key(text: &str) -> [u8; KEY] {
    Sha256::digest(text.as_bytes()).into()
}

impl EmbeddingCache {
    /// Opens (creating if needed) the cache for `backbone` under `root`
    /// (default: `<cache dir>/embcache`).
    pub fn open(root: Option<&Path>, backbone: &Backbone) -> Result<Self> {
        let root = root
            .map(Path::to_path_buf)
            .unwrap_or_else(|| crate::home::cache_dir().join("embcache"));
        let sha = backbone.graph_sha256();
        let name = if sha.len() >= 16 {
            &sha[..16]
        } else {
            "unhashed"
        };
        Self::open_file(&root.join(name).join("pooled.f32"), backbone.dim())
    }

    /// Opens the cache file at `path` for vectors of `dim` floats.
    pub fn open_file(path: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("embedding cache dimension must be positive"));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut inner = Inner {
            index: HashMap::new(),
            rows: Vec::new(),
        };
        if path.exists() {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| Error::io(path, e))?;
            let rec = KEY + 4 * dim;
            for chunk in bytes.chunks_exact(rec) {
                let mut k = [0u8; KEY];
                k.copy_from_slice(&chunk[..KEY]);
                let row = inner.rows.len() / dim;
                inner.rows.extend(
                    chunk[KEY..]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                inner.index.insert(k, row);
            }
        }
        Ok(EmbeddingCache {
            path: path.to_path_buf(),
            dim,
            inner: Mutex::new(inner),
        })
    }

    /// Number of cached texts.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .index
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Embeddings of `texts` (in order), running `backbone` only on texts not cached yet, and
    /// each distinct text once.
    pub fn embed(&self, backbone: &Backbone, texts: &[&str]) -> Result<(Array2<f32>, CacheStats)> {
        self.embed_with(texts, |batch| backbone.embed(batch))
    }

    /// Like [`EmbeddingCache::embed`], with the embedding function given (for tests and for
    /// callers that batch or report progress themselves).
    pub fn embed_with(
        &self,
        texts: &[&str],
        mut embed: impl FnMut(&[&str]) -> Result<Array2<f32>>,
    ) -> Result<(Array2<f32>, CacheStats)> {
        let keys: Vec<[u8; KEY]> = texts.iter().map(|t| key(t)).collect();
        let mut missing: Vec<usize> = Vec::new();
        {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen = std::collections::HashSet::new();
            for (i, k) in keys.iter().enumerate() {
                if !inner.index.contains_key(k) && seen.insert(*k) {
                    missing.push(i);
                }
            }
        }
        if !missing.is_empty() {
            let batch: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let emb = embed(&batch)?;
            if emb.dim() != (batch.len(), self.dim) {
                return Err(Error::invalid(format!(
                    "embedding function returned {:?} for {} texts of dimension {}",
                    emb.dim(),
                    batch.len(),
                    self.dim
                )));
            }
            self.append(&missing.iter().map(|&i| keys[i]).collect::<Vec<_>>(), &emb)?;
        }
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Array2::<f32>::zeros((texts.len(), self.dim));
        for (i, k) in keys.iter().enumerate() {
            let row = inner.index[k];
            out.row_mut(i)
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(&inner.rows[row * self.dim..(row + 1) * self.dim]);
        }
        Ok((
            out,
            CacheStats {
                hits: texts.len() - missing.len(),
                misses: missing.len(),
            },
        ))
    }

    /// Stores rows computed elsewhere (e.g. by [`crate::Backbone::embed_tokens`], which yields
    /// the pooled rows too) for the texts not cached yet, so they are never embedded again.
    pub fn insert(&self, texts: &[&str], emb: &Array2<f32>) -> Result<()> {
        if emb.dim() != (texts.len(), self.dim) {
            return Err(Error::invalid(format!(
                "{:?} rows for {} texts of dimension {}",
                emb.dim(),
                texts.len(),
                self.dim
            )));
        }
        let mut keys = Vec::new();
        let mut rows = Vec::new();
        {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen = std::collections::HashSet::new();
            for (i, t) in texts.iter().enumerate() {
                let k = key(t);
                if !inner.index.contains_key(&k) && seen.insert(k) {
                    keys.push(k);
                    rows.push(i);
                }
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.append(&keys, &emb.select(ndarray::Axis(0), &rows))
    }

    fn append(&self, keys: &[[u8; KEY]], emb: &Array2<f32>) -> Result<()> {
        let rec = KEY + 4 * self.dim;
        let mut buf = Vec::with_capacity(keys.len() * rec);
        for (k, row) in keys.iter().zip(emb.rows()) {
            buf.extend_from_slice(k);
            for x in row {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        let rec = rec as u64;
        // Start at the last whole record, dropping a torn tail from an interrupted write.
        append_locked(&self.path, &buf, |f| {
            let len = f.metadata()?.len();
            Ok(len - len % rec)
        })?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (k, row) in keys.iter().zip(emb.rows()) {
            let at = inner.rows.len() / self.dim;
            inner.rows.extend(row.iter().copied());
            inner.index.insert(*k, at);
        }
        Ok(())
    }
}

/// Appends `buf` to the cache file at `path` under an exclusive lock, starting where `whole_end`
/// says the last whole record ends (so a torn tail from an interrupted write is overwritten).
/// Shared by the pooled and the token cache, which differ only in how records are delimited.
/// Returns the offset `buf` was written at.
pub(crate) fn append_locked(
    path: &Path,
    buf: &[u8],
    whole_end: impl FnOnce(&mut File) -> std::io::Result<u64>,
) -> Result<u64> {
    let io = |e| Error::io(path, e);
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    f.lock().map_err(io)?;
    let whole = whole_end(&mut f).map_err(io)?;
    f.set_len(whole).map_err(io)?;
    f.seek(SeekFrom::Start(whole)).map_err(io)?;
    f.write_all(buf).map_err(io)?;
    f.flush().map_err(io)?;
    Ok(whole)
}

/// Embeds `texts` as heads need them: pooled rows, plus per-token vectors when `want_tokens`.
/// Through the caches given (the token cache is used only together with the pooled cache of the
/// same graph), the backbone runs only on texts not cached yet; without, it runs on every
/// text. Returns what the caches held.
pub fn embed_for_heads(
    backbone: &Backbone,
    pooled: Option<&EmbeddingCache>,
    tokens: Option<&TokenCache>,
    texts: &[&str],
    want_tokens: bool,
) -> Result<(Array2<f32>, Option<crate::backbone::TokenSeqs>, CacheStats)> {
    match (pooled, tokens.filter(|_| want_tokens), want_tokens) {
        (Some(pooled), _, false) => {
            let (emb, stats) = pooled.embed(backbone, texts)?;
            Ok((emb, None, stats))
        }
        (Some(pooled), Some(tokens), true) => {
            // Token misses fill the pooled cache too, so the pooled lookup then hits.
            let (seqs, stats) = tokens.embed(backbone, Some(pooled), texts)?;
            let (emb, _) = pooled.embed(backbone, texts)?;
            Ok((emb, Some(seqs), stats))
        }
        (None, _, false) => Ok((
            backbone.embed(texts)?,
            None,
            CacheStats {
                hits: 0,
                misses: texts.len(),
            },
        )),
        (_, _, true) => {
            let (emb, seqs) = backbone.embed_tokens(texts)?;
            Ok((
                emb,
                Some(seqs),
                CacheStats {
                    hits: 0,
                    misses: texts.len(),
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(texts: &[&str]) -> Result<Array2<f32>> {
        Ok(Array2::from_shape_fn((texts.len(), 3), |(i, j)| {
            texts[i].len() as f32 + j as f32
        }))
    }

    #[test]
    fn embeds_each_distinct_text_once_and_persists() {
        let dir = std::env::temp_dir().join(format!("tandem-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("c.f32");
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        let mut calls = 0;
        let (e, s) = cache
            .embed_with(&["a", "bb", "a"], |t| {
                calls += t.len();
                fake(t)
            })
            .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(s, CacheStats { hits: 1, misses: 2 });
        assert_eq!(e.row(2).to_vec(), vec![1.0, 2.0, 3.0]);
        // Reopen: everything comes from disk.
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        assert_eq!(cache.len(), 2);
        let (e2, s) = cache
            .embed_with(&["bb", "a"], |_| panic!("should not embed"))
            .unwrap();
        assert_eq!(s.misses, 0);
        assert_eq!(e2.row(0), e.row(1));
        // A torn tail is ignored on open and overwritten on append.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[1, 2, 3])
            .unwrap();
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        assert_eq!(cache.len(), 2);
        cache.embed_with(&["ccc"], fake).unwrap();
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            3 * (32 + 12) as u64
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_dimension_from_embedder_is_an_error() {
        let dir = std::env::temp_dir().join(format!("tandem-cache-dim-{}", std::process::id()));
        let cache = EmbeddingCache::open_file(&dir.join("c.f32"), 4).unwrap();
        assert!(cache.embed_with(&["x"], fake).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
