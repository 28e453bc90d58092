//! On-disk cache of per-token embeddings, for sequence heads.
//!
//! Beside a graph's `pooled.f32` lives `tokens.f16`: an append-only file of variable-length
//! records `sha256(text)`, `u32` token count `n` (little-endian), then `n * dim` little-endian
//! f16s. No padding is stored, and f16 halves the size again (MiniLM: 768 bytes per token).
//! Appends take an exclusive file lock and first find the end of the last whole record, so
//! several processes can share the file and a torn record left by a crash is overwritten.
//!
//! Opening reads only the record headers, into an index of file offsets; a lookup reads just
//! the records it needs. One cache file serves every dataset a backbone has seen (over a GB once
//! long texts are in it), so loading it whole would cost seconds and that much memory per run.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;
use ndarray::Array2;

use super::{append_locked, key, CacheStats, EmbeddingCache, KEY};
use crate::backbone::{Backbone, TokenSeqs};
use crate::error::{Error, Result};

const HEADER: usize = KEY + 4;

/// Where one text's record is in the file.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Offset of the first value byte.
    at: u64,
    /// Token count.
    tokens: usize,
}

struct Inner {
    index: HashMap<[u8; KEY], Record>,
    /// Sum of the indexed records' token counts.
    total_tokens: usize,
    /// A read handle on the file, once it exists.
    reader: Option<File>,
}

impl Inner {
    /// Indexes a record (the first one of a key wins, as every record of a key holds the same
    /// values).
    fn add(&mut self, k: [u8; KEY], rec: Record) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.index.entry(k) {
            slot.insert(rec);
            self.total_tokens += rec.tokens;
        }
    }
}

/// A persistent cache of ragged f16 token embeddings for one backbone graph. Thread-safe.
pub struct TokenCache {
    path: PathBuf,
    dim: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("path", &self.path)
            .field("dim", &self.dim)
            .finish()
    }
}

/// Walks the whole records of `file` from its start, reading only their headers, and calls
/// `f(key, record)` for each; a torn tail is left out. Returns the end of the last whole record.
fn scan(file: &mut File, dim: usize, mut f: impl FnMut([u8; KEY], Record)) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::with_capacity(1 << 16, &*file);
    let mut at = 0u64;
    let mut header = [0u8; HEADER];
    while len - at >= HEADER as u64 {
        r.read_exact(&mut header)?;
        let n = u32::from_le_bytes(header[KEY..].try_into().expect("4 bytes")) as usize;
        let bytes = n as u64 * dim as u64 * 2;
        let end = at + HEADER as u64 + bytes;
        if end > len {
            break;
        }
        let k: [u8; KEY] = header[..KEY].try_into().expect("KEY bytes");
        f(
            k,
            Record {
                at: at + HEADER as u64,
                tokens: n,
            },
        );
        r.seek_relative(i64::try_from(bytes).map_err(std::io::Error::other)?)?;
        at = end;
    }
    Ok(at)
}

impl TokenCache {
    /// Opens (creating if needed) the token cache for `backbone` under `root` (default:
    /// `<cache dir>/embcache`), next to its pooled cache.
    pub fn open(root: Option<&Path>, backbone: &Backbone) -> Result<Self> {
        let pooled = EmbeddingCache::open(root, backbone)?;
        let dir = pooled.path().parent().expect("cache file has a directory");
        Self::open_file(&dir.join("tokens.f16"), backbone.dim())
    }

    /// Opens the token cache file at `path` for vectors of `dim` values.
    pub fn open_file(path: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("token cache dimension must be positive"));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut inner = Inner {
            index: HashMap::new(),
            total_tokens: 0,
            reader: None,
        };
        if path.exists() {
            let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
            scan(&mut file, dim, |k, rec| inner.add(k, rec)).map_err(|e| Error::io(path, e))?;
            inner.reader = Some(file);
        }
        Ok(TokenCache {
            path: path.to_path_buf(),
            dim,
            inner: Mutex::new(inner),
        })
    }

    /// Number of cached texts.
    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cached tokens over all texts.
    pub fn total_tokens(&self) -> usize {
        self.lock().total_tokens
    }

    /// Size of the cache file in bytes (0 if it does not exist yet).
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Token sequences of `texts` (in order), running `backbone` only on texts not cached yet,
    /// each distinct text once. The pooled rows that come with them go into `pooled` when
    /// given, so a later pooled lookup does not run the backbone either.
    pub fn embed(
        &self,
        backbone: &Backbone,
        pooled: Option<&EmbeddingCache>,
        texts: &[&str],
    ) -> Result<(TokenSeqs, CacheStats)> {
        self.embed_with(texts, pooled, |batch| backbone.embed_tokens(batch))
    }

    /// Like [`TokenCache::embed`], with the embedding function given (for tests, and for
    /// callers that batch or report progress themselves). It returns pooled rows and token
    /// sequences for the texts it is given.
    pub fn embed_with(
        &self,
        texts: &[&str],
        pooled: Option<&EmbeddingCache>,
        mut embed: impl FnMut(&[&str]) -> Result<(Array2<f32>, TokenSeqs)>,
    ) -> Result<(TokenSeqs, CacheStats)> {
        let keys: Vec<[u8; KEY]> = texts.iter().map(|t| key(t)).collect();
        let mut missing: Vec<usize> = Vec::new();
        {
            let inner = self.lock();
            let mut seen = HashSet::new();
            for (i, k) in keys.iter().enumerate() {
                if !inner.index.contains_key(k) && seen.insert(*k) {
                    missing.push(i);
                }
            }
        }
        // Sequences embedded now are served from memory, not read back from the file.
        let mut fresh = TokenSeqs::new(self.dim);
        let mut fresh_at: HashMap<[u8; KEY], usize> = HashMap::new();
        if !missing.is_empty() {
            let batch: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let (rows, seqs) = embed(&batch)?;
            if seqs.len() != batch.len() || seqs.dim() != self.dim {
                return Err(Error::invalid(format!(
                    "token embedding function returned {} sequences of width {} for {} texts of \
                     width {}",
                    seqs.len(),
                    seqs.dim(),
                    batch.len(),
                    self.dim
                )));
            }
            if let Some(p) = pooled {
                p.insert(&batch, &rows)?;
            }
            let new_keys: Vec<[u8; KEY]> = missing.iter().map(|&i| keys[i]).collect();
            self.append(&new_keys, &seqs)?;
            fresh_at = new_keys.into_iter().zip(0..).collect();
            fresh = seqs;
        }
        let seqs = self.read(&keys, &fresh_at, &fresh)?;
        Ok((
            seqs,
            CacheStats {
                hits: texts.len() - missing.len(),
                misses: missing.len(),
            },
        ))
    }

    fn append(&self, keys: &[[u8; KEY]], seqs: &TokenSeqs) -> Result<()> {
        let mut buf = Vec::with_capacity(keys.len() * HEADER + seqs.bytes());
        for (i, k) in keys.iter().enumerate() {
            buf.extend_from_slice(k);
            buf.extend_from_slice(&(seqs.length(i) as u32).to_le_bytes());
            for v in seqs.text(i) {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        let start = append_locked(&self.path, &buf, |f| scan(f, self.dim, |_, _| {}))?;
        let mut inner = self.lock();
        let mut at = start;
        for (i, k) in keys.iter().enumerate() {
            let tokens = seqs.length(i);
            inner.add(
                *k,
                Record {
                    at: at + HEADER as u64,
                    tokens,
                },
            );
            at += (HEADER + tokens * self.dim * 2) as u64;
        }
        Ok(())
    }

    /// The sequences of `keys`, in order: those in `fresh_at` from `fresh` (by position), the
    /// rest read from the file (every key is indexed).
    fn read(
        &self,
        keys: &[[u8; KEY]],
        fresh_at: &HashMap<[u8; KEY], usize>,
        fresh: &TokenSeqs,
    ) -> Result<TokenSeqs> {
        let io = |e| Error::io(&self.path, e);
        let mut out = TokenSeqs::new(self.dim);
        let mut inner = self.lock();
        let mut bytes = Vec::new();
        for k in keys {
            if let Some(&j) = fresh_at.get(k) {
                out.push_f16(fresh.text(j));
                continue;
            }
            let rec = inner.index[k];
            let file = match &mut inner.reader {
                Some(f) => f,
                slot => slot.insert(File::open(&self.path).map_err(io)?),
            };
            bytes.resize(rec.tokens * self.dim * 2, 0);
            file.seek(SeekFrom::Start(rec.at)).map_err(io)?;
            file.read_exact(&mut bytes).map_err(io)?;
            out.push_f16(&le_to_f16(&bytes));
        }
        Ok(out)
    }
}

fn le_to_f16(bytes: &[u8]) -> Vec<f16> {
    bytes
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A fake backbone: text `t` has `t.len() + 1` tokens whose values encode (text, token).
    fn fake(texts: &[&str]) -> Result<(Array2<f32>, TokenSeqs)> {
        let mut seqs = TokenSeqs::new(2);
        for t in texts {
            let n = t.len() + 1;
            seqs.push(Array2::from_shape_fn((n, 2), |(i, j)| (t.len() * 10 + i + j) as f32).view());
        }
        let pooled = Array2::from_shape_fn((texts.len(), 2), |(i, _)| texts[i].len() as f32);
        Ok((pooled, seqs))
    }

    #[test]
    fn stores_ragged_f16_once_and_persists() {
        let dir = std::env::temp_dir().join(format!("tandem-tokcache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("tokens.f16");
        let pooled = EmbeddingCache::open_file(&dir.join("pooled.f32"), 2).unwrap();
        let cache = TokenCache::open_file(&path, 2).unwrap();
        let mut calls = 0;
        let (s, st) = cache
            .embed_with(&["a", "bbb", "a"], Some(&pooled), |t| {
                calls += t.len();
                fake(t)
            })
            .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(st, CacheStats { hits: 1, misses: 2 });
        assert_eq!(s.offsets(), &[0, 2, 6, 8]);
        assert_eq!(s.gather(&[1]).tokens[[3, 1]], 34.0);
        // The pooled rows came along: the pooled cache needs no backbone now.
        let (p, ps) = pooled
            .embed_with(&["bbb"], |_| panic!("pooled rows were stored"))
            .unwrap();
        assert_eq!((p[[0, 0]], ps.misses), (3.0, 0));
        // Record sizes: 36-byte header + 2 bytes per value, no padding.
        let expect = (36 + 2 * 2 * 2) + (36 + 4 * 2 * 2);
        assert_eq!(cache.file_bytes(), expect as u64);
        // Reopen: everything from disk, identical.
        let cache = TokenCache::open_file(&path, 2).unwrap();
        assert_eq!((cache.len(), cache.total_tokens()), (2, 6));
        let (s2, st) = cache
            .embed_with(&["a", "bbb", "a"], None, |_| panic!("cached"))
            .unwrap();
        assert_eq!((s2, st.misses), (s, 0));
        // A torn tail is ignored on open and overwritten by the next append.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[7; 40])
            .unwrap();
        let cache = TokenCache::open_file(&path, 2).unwrap();
        assert_eq!(cache.len(), 2);
        cache.embed_with(&["cc"], None, fake).unwrap();
        let cache = TokenCache::open_file(&path, 2).unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.file_bytes(), (expect + 36 + 3 * 2 * 2) as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_handles_share_the_file_and_duplicates_index_once() {
        let dir = std::env::temp_dir().join(format!("tandem-tokcache-two-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("tokens.f16");
        let a = TokenCache::open_file(&path, 2).unwrap();
        let (first, _) = a.embed_with(&["a", "bbb"], None, fake).unwrap();
        // A second handle (another process, say) indexes what is on disk, and appends.
        let b = TokenCache::open_file(&path, 2).unwrap();
        assert_eq!((b.len(), b.total_tokens()), (2, 6));
        let (cc_b, st) = b.embed_with(&["cc", "a"], None, fake).unwrap();
        assert_eq!(st, CacheStats { hits: 1, misses: 1 });
        assert_eq!(cc_b.gather(&[1]).tokens, first.gather(&[0]).tokens);
        // The first handle has not seen "cc": it embeds it again and appends a duplicate.
        let (cc_a, st) = a.embed_with(&["cc"], None, fake).unwrap();
        assert_eq!(st.misses, 1);
        assert_eq!(cc_a.gather(&[0]).tokens, cc_b.gather(&[0]).tokens);
        // Both handles read each other's records; a fresh one indexes each text once.
        let (all_a, _) = a
            .embed_with(&["bbb", "cc", "a"], None, |_| panic!("cached"))
            .unwrap();
        let c = TokenCache::open_file(&path, 2).unwrap();
        assert_eq!((c.len(), c.total_tokens()), (3, 9));
        let (all_c, _) = c
            .embed_with(&["bbb", "cc", "a"], None, |_| panic!("cached"))
            .unwrap();
        assert_eq!(all_a, all_c);
        assert_eq!(all_c.offsets(), &[0, 4, 7, 9]);
        assert_eq!(all_c.gather(&[0]).tokens[[3, 1]], 34.0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wrong_embedder_is_an_error_and_stores_nothing() {
        let dir = std::env::temp_dir().join(format!("tandem-tokcache-bad-{}", std::process::id()));
        let cache = TokenCache::open_file(&dir.join("t.f16"), 3).unwrap();
        assert!(cache.embed_with(&["x"], None, fake).is_err());
        assert!(cache.is_empty());
        assert!(TokenCache::open_file(&dir.join("t.f16"), 0).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
