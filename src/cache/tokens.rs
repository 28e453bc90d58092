//! On-disk cache of per-token embeddings, for sequence heads.
//!
//! Beside a graph's pooled cache lives `tokens.v3`: an append-only file of variable-length
//! records `sha256(text)`, `u32` token count `n`, a CRC-32 of the key and the count, then
//! `n * dim` little-endian f16s and a CRC-32 of the key, the count and the values (all
//! little-endian). The values' CRC covers the key, so the values of another record of the same
//! length (a block copied or written to the wrong place) fail it instead of being served as
//! this text's. No padding is stored, and f16 halves the size again (MiniLM: 768 bytes per
//! token).
//!
//! A count is never trusted: it must pass its CRC, be positive and fit in the file, or the scan
//! stops there (what follows cannot be delimited, and the next append overwrites it). Values are
//! checked against their CRC when read; a damaged record is a miss, embedded again and stored
//! anew ([`CacheStats::repaired`]).
//!
//! Opening reads only the record headers, into an index of file offsets; a lookup reads just
//! the records it needs. One cache file serves every dataset a backbone has seen (over a GB once
//! long texts are in it), so loading it whole would cost seconds and that much memory per run.
//! Appends take an exclusive file lock and first index what other processes appended since,
//! skipping texts they have just stored.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;
use ndarray::Array2;

use super::{
    append_locked, crc, key, open_cache_file, read_at, same_handle, still_at, touch, CacheStats,
    EmbeddingCache, KEY,
};
use crate::backbone::{Backbone, TokenSeqs};
use crate::error::{Error, Result};

/// The token cache's file name (format 3: checksummed headers, and values checksummed with
/// their key and count; format 2's value CRC did not cover the key).
pub const TOKENS_FILE: &str = "tokens.v3";

/// Key, count, header CRC.
const HEADER: usize = KEY + 8;

/// The most tokens one record may claim (a backbone's longest input is far shorter); a larger
/// count is corruption, whatever its CRC says.
const MAX_TOKENS: usize = 1 << 16;

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
    /// The file has been indexed up to here (a record boundary).
    indexed_to: u64,
    /// A read handle on the file, once it exists.
    reader: Option<File>,
}

impl Inner {
    /// Indexes a record; a later record of a key replaces an earlier one (a repair).
    fn add(&mut self, k: [u8; KEY], rec: Record) {
        if let Some(old) = self.index.insert(k, rec) {
            self.total_tokens -= old.tokens;
        }
        self.total_tokens += rec.tokens;
    }

    fn remove(&mut self, k: &[u8; KEY]) {
        if let Some(old) = self.index.remove(k) {
            self.total_tokens -= old.tokens;
        }
    }

    /// Forgets the file: its index and read handle (it was removed, e.g. by pruning).
    fn reset(&mut self) {
        self.index.clear();
        self.total_tokens = 0;
        self.indexed_to = 0;
        self.reader = None;
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

/// Bytes of a record's values plus their CRC.
fn body_len(tokens: usize, dim: usize) -> u64 {
    tokens as u64 * dim as u64 * 2 + 4
}

/// Walks the whole records of `file` from `start` (a record boundary), reading only their
/// headers, and calls `f(key, record)` for each. It stops at a torn tail, and at a header whose
/// CRC fails or whose count is 0, over [`MAX_TOKENS`] or past the end of the file. Returns where
/// the last whole record ends.
fn scan(
    file: &mut File,
    start: u64,
    dim: usize,
    mut f: impl FnMut([u8; KEY], Record),
) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len <= start {
        return Ok(start.min(len));
    }
    file.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::with_capacity(1 << 16, &*file);
    let mut at = start;
    let mut header = [0u8; HEADER];
    while len - at >= HEADER as u64 {
        r.read_exact(&mut header)?;
        let (k, rest) = header.split_at(KEY);
        let count = &rest[..4];
        let stored = u32::from_le_bytes(rest[4..].try_into().expect("4 bytes"));
        let n = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
        if crc(&[k, count]) != stored || n == 0 || n > MAX_TOKENS {
            break;
        }
        let body = body_len(n, dim);
        let end = at + HEADER as u64 + body;
        if end > len {
            break;
        }
        f(
            k.try_into().expect("KEY bytes"),
            Record {
                at: at + HEADER as u64,
                tokens: n,
            },
        );
        r.seek_relative(i64::try_from(body).map_err(std::io::Error::other)?)?;
        at = end;
    }
    Ok(at)
}

impl TokenCache {
    /// Opens (creating if needed) the token cache for `backbone` under `root` (default:
    /// `<cache dir>/embcache`), next to its pooled cache.
    pub fn open(root: Option<&Path>, backbone: &Backbone) -> Result<Self> {
        let dir = super::graph_dir(root, backbone)?;
        Self::open_file(&dir.join(TOKENS_FILE), backbone.dim())
    }

    /// Opens (creating if needed) the cache of hidden states at a split of `backbone` after its
    /// first `keep` layers (`split.l{keep}.v1`: per-token records like the token cache's, f16),
    /// under `root` (default: `<cache dir>/embcache`), in the directory of the backbone's fp32
    /// graph, which the split's bottom graph is cut from.
    pub fn open_split(root: Option<&Path>, backbone: &Backbone, keep: usize) -> Result<Self> {
        let root = root
            .map(Path::to_path_buf)
            .unwrap_or_else(|| crate::home::cache_dir().join("embcache"));
        let sha = backbone.family_sha256();
        let dir = root.join(if sha.len() >= 16 {
            &sha[..16]
        } else {
            "unhashed"
        });
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Self::open_file(&dir.join(format!("split.l{keep}.v1")), backbone.dim())
    }

    /// Opens the token cache file at `path` for vectors of `dim` values.
    pub fn open_file(path: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("token cache dimension must be positive"));
        }
        touch(path);
        let mut inner = Inner {
            index: HashMap::new(),
            total_tokens: 0,
            indexed_to: 0,
            reader: open_cache_file(path)?,
        };
        if let Some(mut file) = inner.reader.take() {
            inner.indexed_to = scan(&mut file, 0, dim, |k, rec| inner.add(k, rec))
                .map_err(|e| Error::io(path, e))?;
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

    /// Indexes what other processes appended since this handle last looked (starting over when
    /// the file was pruned since).
    fn refresh(&self, inner: &mut Inner) -> Result<()> {
        if inner
            .reader
            .as_ref()
            .is_some_and(|f| !still_at(f, &self.path))
        {
            inner.reset();
        }
        if inner.reader.is_none() {
            inner.reader = open_cache_file(&self.path)?;
        }
        if let Some(mut file) = inner.reader.take() {
            let from = inner.indexed_to;
            let end = scan(&mut file, from, self.dim, |k, rec| inner.add(k, rec));
            inner.reader = Some(file);
            inner.indexed_to = end.map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
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
        let (found, repaired) = self.lookup(&keys)?;
        let mut missing: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for (i, k) in keys.iter().enumerate() {
            if found[i].is_none() && seen.insert(*k) {
                missing.push(i);
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
            if let Some(i) = (0..seqs.len()).find(|&i| seqs.length(i) == 0) {
                return Err(Error::invalid(format!(
                    "token embedding function returned no tokens for text {i}"
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
        let mut out = TokenSeqs::new(self.dim);
        for (k, f) in keys.iter().zip(&found) {
            match f {
                Some(values) => out.push_f16(values),
                None => out.push_f16(fresh.text(fresh_at[k])),
            }
        }
        // Repeats of a text within the call count as hits: only distinct texts are embedded.
        let hits = texts.len() - missing.len();
        Ok((
            out,
            CacheStats {
                hits,
                misses: missing.len(),
                repaired,
            },
        ))
    }

    /// The cached sequences of `keys` whose records are whole, `None` for a miss; a damaged
    /// record is dropped from the index (the caller re-embeds it) and counted.
    fn lookup(&self, keys: &[[u8; KEY]]) -> Result<(Vec<Option<Vec<f16>>>, usize)> {
        let io = |e| Error::io(&self.path, e);
        let mut inner = self.lock();
        self.refresh(&mut inner)?;
        let mut out = Vec::with_capacity(keys.len());
        let mut repaired = 0;
        let mut bytes = Vec::new();
        for k in keys {
            let Some(rec) = inner.index.get(k).copied() else {
                out.push(None);
                continue;
            };
            let file = inner.reader.as_mut().ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::Internal,
                    "token cache: indexed but never opened",
                )
            })?;
            bytes.resize(body_len(rec.tokens, self.dim) as usize, 0);
            read_at(file, &mut bytes, rec.at).map_err(io)?;
            let (values, stored) = bytes.split_at(bytes.len() - 4);
            let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
            let seq = le_to_f16(values);
            let count = (rec.tokens as u32).to_le_bytes();
            if crc(&[k, &count, values]) != stored || seq.iter().any(|v| !v.is_finite()) {
                inner.remove(k);
                repaired += 1;
                out.push(None);
            } else {
                out.push(Some(seq));
            }
        }
        Ok((out, repaired))
    }

    /// Appends the sequences of the keys not indexed yet, once each, under the file lock:
    /// records other processes appended meanwhile are indexed first, and their texts skipped.
    fn append(&self, keys: &[[u8; KEY]], seqs: &TokenSeqs) -> Result<()> {
        let dim = self.dim;
        let mut inner = self.lock();
        let inner = &mut *inner;
        let (written, file) = append_locked(&self.path, |f| {
            // The file was pruned since this handle indexed it: index the one at the path now.
            if inner.reader.as_ref().is_some_and(|r| !same_handle(r, f)) {
                inner.reset();
            }
            let end = scan(f, inner.indexed_to, dim, |k, rec| inner.add(k, rec))?;
            let mut buf = Vec::new();
            let mut at = end;
            for (i, k) in keys.iter().enumerate() {
                let n = seqs.length(i);
                // Longer than any record may be: served from memory this time, not cached.
                if inner.index.contains_key(k) || n > MAX_TOKENS {
                    continue;
                }
                let count = (n as u32).to_le_bytes();
                let values: Vec<u8> = seqs.text(i).iter().flat_map(|v| v.to_le_bytes()).collect();
                buf.extend_from_slice(k);
                buf.extend_from_slice(&count);
                buf.extend_from_slice(&crc(&[k, &count]).to_le_bytes());
                buf.extend_from_slice(&values);
                buf.extend_from_slice(&crc(&[k, &count, &values]).to_le_bytes());
                inner.add(
                    *k,
                    Record {
                        at: at + HEADER as u64,
                        tokens: n,
                    },
                );
                at += HEADER as u64 + body_len(n, dim);
            }
            Ok((end, buf))
        })?;
        inner.indexed_to = written;
        if inner.reader.is_none() {
            // This file, not whatever the path names by now: the index is of this one.
            inner.reader = Some(file);
        }
        Ok(())
    }
}

/// Records (texts) in the token cache file `file` of width `dim`, counted from their headers
/// alone with one small read per record (cheap even for a file of gigabytes), stopping where
/// [`scan`] would.
pub(crate) fn count_records(file: &mut File, dim: usize) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let (mut at, mut n) = (0u64, 0u64);
    let mut header = [0u8; HEADER];
    while len.saturating_sub(at) >= HEADER as u64 {
        read_at(file, &mut header, at)?;
        let (k, rest) = header.split_at(KEY);
        let count = &rest[..4];
        let stored = u32::from_le_bytes(rest[4..].try_into().expect("4 bytes"));
        let tokens = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
        if crc(&[k, count]) != stored || tokens == 0 || tokens > MAX_TOKENS {
            break;
        }
        let end = at + HEADER as u64 + body_len(tokens, dim);
        if end > len {
            break;
        }
        n += 1;
        at = end;
    }
    Ok(n)
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

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tandem-tokcache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Bytes of a record of `n` tokens of width 2.
    fn rec(n: usize) -> usize {
        HEADER + n * 2 * 2 + 4
    }

    #[test]
    fn stores_ragged_f16_once_and_persists() {
        let dir = scratch("persist");
        let path = dir.join("tokens.v3");
        let pooled = EmbeddingCache::open_file(&dir.join("pooled.v2"), 2).unwrap();
        let cache = TokenCache::open_file(&path, 2).unwrap();
        let mut calls = 0;
        let (s, st) = cache
            .embed_with(&["a", "bbb", "a"], Some(&pooled), |t| {
                calls += t.len();
                fake(t)
            })
            .unwrap();
        assert_eq!(calls, 2);
        assert_eq!((st.hits, st.misses), (1, 2));
        assert_eq!(s.offsets(), &[0, 2, 6, 8]);
        assert_eq!(s.gather(&[1]).tokens[[3, 1]], 34.0);
        // The pooled rows came along: the pooled cache needs no backbone now.
        let (p, ps) = pooled
            .embed_with(&["bbb"], |_| panic!("pooled rows were stored"))
            .unwrap();
        assert_eq!((p[[0, 0]], ps.misses), (3.0, 0));
        // Record sizes: 40-byte header, 2 bytes per value, a 4-byte CRC; no padding.
        let expect = rec(2) + rec(4);
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
        assert_eq!(cache.file_bytes(), (expect + rec(3)) as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_handles_share_the_file_and_store_each_text_once() {
        let dir = scratch("two");
        let path = dir.join("tokens.v3");
        let a = TokenCache::open_file(&path, 2).unwrap();
        let b = TokenCache::open_file(&path, 2).unwrap();
        let (first, _) = a.embed_with(&["a", "bbb"], None, fake).unwrap();
        // `b` (another process, say) sees what `a` appended since it opened.
        let (ab, st) = b
            .embed_with(&["bbb", "a"], None, |_| panic!("stored by a"))
            .unwrap();
        assert_eq!(st.hits, 2);
        assert_eq!(ab.gather(&[1]).tokens, first.gather(&[0]).tokens);
        // Both miss "cc"; `a` stores it while `b` is embedding it: `b` does not store it again.
        let (cc_b, st) = b
            .embed_with(&["cc"], None, |t| {
                a.embed_with(&["cc"], None, fake).unwrap();
                fake(t)
            })
            .unwrap();
        assert_eq!(st.misses, 1);
        let c = TokenCache::open_file(&path, 2).unwrap();
        assert_eq!((c.len(), c.total_tokens()), (3, 9));
        assert_eq!(c.file_bytes(), (rec(2) + rec(4) + rec(3)) as u64);
        let (all_c, _) = c
            .embed_with(&["bbb", "cc", "a"], None, |_| panic!("cached"))
            .unwrap();
        assert_eq!(all_c.offsets(), &[0, 4, 7, 9]);
        assert_eq!(all_c.gather(&[1]).tokens, cc_b.gather(&[0]).tokens);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_values_and_untrustworthy_counts_are_misses_not_panics() {
        let dir = scratch("damaged");
        let path = dir.join("tokens.v3");
        let cache = TokenCache::open_file(&path, 2).unwrap();
        cache.embed_with(&["a", "bbb", "cc"], None, fake).unwrap();
        let good = std::fs::read(&path).unwrap();
        // A flipped bit in text "bbb"'s values: that text is embedded again, the others not.
        let mut bytes = good.clone();
        bytes[rec(2) + HEADER + 5] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let cache = TokenCache::open_file(&path, 2).unwrap();
        let mut again = Vec::new();
        let (s, st) = cache
            .embed_with(&["a", "bbb", "cc"], None, |t| {
                again.extend(t.iter().map(|t| t.to_string()));
                fake(t)
            })
            .unwrap();
        assert_eq!(again, ["bbb"]);
        assert_eq!((st.hits, st.repaired), (2, 1));
        assert_eq!(s, fake(&["a", "bbb", "cc"]).unwrap().1);
        // A count of 0 under a valid header CRC (before: "AttentionPool: offsets must be
        // strictly increasing", a panic) and a huge count: the scan stops there, the texts from
        // there on are misses, embedded again, and the file is whole again afterwards.
        for n in [0u32, 1 << 30] {
            let mut bytes = good.clone();
            let at = rec(2);
            let count = n.to_le_bytes();
            bytes[at + KEY..at + KEY + 4].copy_from_slice(&count);
            let k: [u8; KEY] = bytes[at..at + KEY].try_into().unwrap();
            bytes[at + KEY + 4..at + HEADER].copy_from_slice(&crc(&[&k, &count]).to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let cache = TokenCache::open_file(&path, 2).unwrap();
            assert_eq!(cache.len(), 1, "count {n}");
            let (s, st) = cache.embed_with(&["a", "bbb", "cc"], None, fake).unwrap();
            assert_eq!((st.hits, st.misses), (1, 2));
            assert_eq!(s, fake(&["a", "bbb", "cc"]).unwrap().1);
            let cache = TokenCache::open_file(&path, 2).unwrap();
            assert_eq!(cache.len(), 3, "count {n}: repaired");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn values_copied_from_another_record_are_a_miss_not_a_wrong_embedding() {
        // Found by fuzzing (fuzz/regressions/token_cache): the values' CRC covered only the
        // values, so the values of "b" copied over those of "a" (both 2 tokens) passed it and
        // were served as "a"'s.
        let dir = scratch("copied");
        let path = dir.join("tokens.v3");
        let cache = TokenCache::open_file(&path, 2).unwrap();
        cache.embed_with(&["a", "b"], None, fake).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let body = rec(2) - HEADER;
        let (a, b) = (HEADER, rec(2) + HEADER);
        bytes.copy_within(b..b + body, a);
        std::fs::write(&path, &bytes).unwrap();
        let cache = TokenCache::open_file(&path, 2).unwrap();
        let mut again = Vec::new();
        let (s, st) = cache
            .embed_with(&["a", "b"], None, |t| {
                again.extend(t.iter().map(|t| t.to_string()));
                fake(t)
            })
            .unwrap();
        assert_eq!(again, ["a"]);
        assert_eq!((st.hits, st.repaired), (1, 1));
        assert_eq!(s, fake(&["a", "b"]).unwrap().1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wrong_embedder_is_an_error_and_stores_nothing() {
        let dir = scratch("bad");
        let cache = TokenCache::open_file(&dir.join("t.v2"), 3).unwrap();
        assert!(cache.embed_with(&["x"], None, fake).is_err());
        assert!(cache.is_empty());
        assert!(TokenCache::open_file(&dir.join("t.v2"), 0).is_err());
        let empty = |t: &[&str]| -> Result<(Array2<f32>, TokenSeqs)> {
            let mut s = TokenSeqs::new(3);
            for _ in t {
                s.push_f16(&[]);
            }
            Ok((Array2::zeros((t.len(), 3)), s))
        };
        assert!(cache.embed_with(&["x"], None, empty).is_err());
        assert!(cache.is_empty());
        assert!(TokenCache::open_file(Path::new("/dev/zero"), 3).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
