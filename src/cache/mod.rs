//! On-disk embedding cache, so retraining never runs the backbone twice on the same text.
//!
//! One directory per graph (keyed by the graph's sha256, since fp32 and int8 embeddings differ),
//! holding `pooled.v2`, an append-only file of fixed-size records: `sha256(text)`, a CRC-32 of
//! the key and the values, then `dim` little-endian f32s. Opening reads only the keys, into an
//! index of file offsets; a lookup reads just its record and checks its CRC, so a flipped bit is
//! a miss (the text is embedded again, and [`CacheStats::repaired`] counts it), never a wrong
//! embedding. Appends take an exclusive file lock and first index what other processes appended
//! since, so several processes share one file and a text one of them has just stored is not
//! stored twice; a torn record left by a crash is overwritten by the next append.
//!
//! Sequence heads also need every token's vector: [`TokenCache`] keeps those, ragged and f16,
//! beside the pooled file of the same graph.
//!
//! Nothing is removed by these caches themselves: [`usage`] reports what the cache directory
//! holds and prunes it by age or to a size cap, whole files, least recently used first (opening
//! a cache marks its file used). A file may be pruned while another process has it open: an
//! append locks the file and checks that its path still names it, and a lookup checks the same,
//! so a handle whose file is gone drops its index and treats every text as a miss (embedded and
//! stored again in a new file), never reading one file's records at another file's offsets.

mod tokens;
pub mod usage;

pub use tokens::TokenCache;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::backbone::{Backbone, TokenSeqs};
use crate::error::{Error, Result};

pub(crate) const KEY: usize = 32;

/// The pooled cache's file name (format 2: checksummed records).
pub const POOLED_FILE: &str = "pooled.v2";

/// Files of earlier cache formats, removed when the cache of a graph is opened: no checksums
/// (`pooled.f32`, `tokens.f16`), or token values whose checksum did not cover their key
/// (`tokens.v2`).
const LEGACY_FILES: [&str; 3] = ["pooled.f32", "tokens.f16", "tokens.v2"];

/// Statistics of one `embed` call through the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Texts found in the cache.
    pub hits: usize,
    /// Distinct texts that had to be embedded.
    pub misses: usize,
    /// Of the misses, texts whose cached record failed its checksum (or held non-finite
    /// values): they were embedded again and stored anew.
    pub repaired: usize,
}

impl CacheStats {
    /// Adds another call's counts.
    pub fn add(&mut self, other: CacheStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.repaired += other.repaired;
    }
}

struct Inner {
    /// Record offset by key (the last whole record of a key wins: a repair appends anew).
    index: HashMap<[u8; KEY], u64>,
    /// The file has been indexed up to here (a record boundary).
    indexed_to: u64,
    /// A read handle on the file, once it exists.
    reader: Option<File>,
}

impl Inner {
    /// Forgets the file: its index and read handle (it was removed, e.g. by pruning).
    fn reset(&mut self) {
        self.index.clear();
        self.indexed_to = 0;
        self.reader = None;
    }
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

/// The cache directory of `backbone`'s graph under `root` (default `<cache dir>/embcache`),
/// created if needed, with files of earlier formats removed.
pub(crate) fn graph_dir(root: Option<&Path>, backbone: &Backbone) -> Result<PathBuf> {
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::home::cache_dir().join("embcache"));
    let sha = backbone.graph_sha256();
    let name = if sha.len() >= 16 {
        &sha[..16]
    } else {
        "unhashed"
    };
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for old in LEGACY_FILES {
        // Unverifiable records are worth less than the disk they hold (over a GB for tokens).
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(dir)
}

/// Opens (creating it if needed) a cache file for reading and appending, refusing anything but
/// a regular file (a device or a FIFO at a cache path would read forever or block).
pub(crate) fn open_cache_file(path: &Path) -> Result<Option<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
        Ok(m) if !m.is_file() => Err(Error::invalid(format!(
            "{}: an embedding cache must be a regular file",
            path.display()
        ))),
        Ok(_) => match File::open(path) {
            Ok(f) => Ok(Some(f)),
            // Pruned between the two calls: absent, as if it had never been there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        },
    }
}

/// Indexes the whole `rec`-byte records of the pooled cache file `f` from `start` (a record
/// boundary) by their keys, reading only the keys. Returns where the last whole record ends.
fn index_records(
    f: &mut File,
    start: u64,
    rec: u64,
    index: &mut HashMap<[u8; KEY], u64>,
) -> std::io::Result<u64> {
    let len = f.metadata()?.len();
    let end = len - len % rec;
    if end <= start {
        return Ok(start.max(end));
    }
    f.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::with_capacity(1 << 16, &*f);
    let mut k = [0u8; KEY];
    let mut at = start;
    while at < end {
        r.read_exact(&mut k)?;
        index.insert(k, at);
        r.seek_relative(rec as i64 - KEY as i64)?;
        at += rec;
    }
    Ok(end)
}

/// The identity of a file (device and inode on Unix): equal for two handles on the same file,
/// different once a path names a new file. `None` where the platform does not say.
fn file_id(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// Whether the open handles `a` and `b` are on the same file (true when it cannot be told).
pub(crate) fn same_handle(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => file_id(&a) == file_id(&b),
        _ => false,
    }
}

/// Whether `path` still names the file `f` has open: false once it was removed (pruned) or
/// replaced, true when it cannot be told.
pub(crate) fn still_at(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => file_id(&a) == file_id(&b),
        _ => false,
    }
}

/// Marks the cache file at `path` used now (its modification time), so that pruning, which
/// evicts the least recently used files first, sees reads as well as appends. Only a regular
/// file (opening a FIFO to write would block; a device is not the cache's to touch). Best
/// effort: a read-only cache is still read.
pub(crate) fn touch(path: &Path) {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return;
    }
    if let Ok(f) = OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Reads exactly `buf.len()` bytes of `f` at `offset`.
pub(crate) fn read_at(f: &mut File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// CRC-32 of a record's parts, in order.
pub(crate) fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

impl EmbeddingCache {
    /// Opens (creating if needed) the cache for `backbone` under `root`
    /// (default: `<cache dir>/embcache`).
    pub fn open(root: Option<&Path>, backbone: &Backbone) -> Result<Self> {
        Self::open_file(
            &graph_dir(root, backbone)?.join(POOLED_FILE),
            backbone.dim(),
        )
    }

    /// Opens the cache file at `path` for vectors of `dim` floats. Only the keys are read.
    pub fn open_file(path: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("embedding cache dimension must be positive"));
        }
        let rec = (KEY + 4 + 4 * dim) as u64;
        touch(path);
        let mut inner = Inner {
            index: HashMap::new(),
            indexed_to: 0,
            reader: open_cache_file(path)?,
        };
        if let Some(f) = inner.reader.as_mut() {
            inner.indexed_to =
                index_records(f, 0, rec, &mut inner.index).map_err(|e| Error::io(path, e))?;
        }
        Ok(EmbeddingCache {
            path: path.to_path_buf(),
            dim,
            inner: Mutex::new(inner),
        })
    }

    fn record_len(&self) -> u64 {
        (KEY + 4 + 4 * self.dim) as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Embeddings of `texts` (in order), running `backbone` only on texts not cached yet, and
    /// each distinct text once.
    pub fn embed(&self, backbone: &Backbone, texts: &[&str]) -> Result<(Array2<f32>, CacheStats)> {
        self.embed_with(texts, |batch| backbone.embed(batch))
    }

    /// Reads and checks the record at `offset` for key `k`: its values, or `None` when the
    /// record is damaged (wrong key, CRC mismatch, non-finite values).
    fn read_record(&self, f: &mut File, k: &[u8; KEY], offset: u64) -> Result<Option<Vec<f32>>> {
        let mut buf = vec![0u8; self.record_len() as usize];
        read_at(f, &mut buf, offset).map_err(|e| Error::io(&self.path, e))?;
        let (head, values) = buf.split_at(KEY + 4);
        let stored = u32::from_le_bytes(head[KEY..].try_into().expect("4 bytes"));
        if &head[..KEY] != k || crc(&[k, values]) != stored {
            return Ok(None);
        }
        let row: Vec<f32> = values
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(row.iter().all(|x| x.is_finite()).then_some(row))
    }

    /// The cached rows of `keys` that are whole: `found[i]` for key `i`, `None` for a miss.
    /// A damaged record is dropped from the index (the caller re-embeds it) and counted.
    fn lookup(&self, keys: &[[u8; KEY]]) -> Result<(Vec<Option<Vec<f32>>>, usize)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        // Pick up what other processes appended since this handle last looked (the file may
        // even have been created since, or pruned and created anew).
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
        if let Some(f) = inner.reader.as_mut() {
            inner.indexed_to =
                index_records(f, inner.indexed_to, self.record_len(), &mut inner.index)
                    .map_err(|e| Error::io(&self.path, e))?;
        }
        let mut found = Vec::with_capacity(keys.len());
        let mut repaired = 0;
        for k in keys {
            let row = match (inner.index.get(k).copied(), inner.reader.as_mut()) {
                (Some(at), Some(f)) => {
                    let row = self.read_record(f, k, at)?;
                    if row.is_none() {
                        inner.index.remove(k);
                        repaired += 1;
                    }
                    row
                }
                _ => None,
            };
            found.push(row);
        }
        Ok((found, repaired))
    }

    /// Like [`EmbeddingCache::embed`], with the embedding function given (for tests and for
    /// callers that batch or report progress themselves).
    pub fn embed_with(
        &self,
        texts: &[&str],
        mut embed: impl FnMut(&[&str]) -> Result<Array2<f32>>,
    ) -> Result<(Array2<f32>, CacheStats)> {
        let keys: Vec<[u8; KEY]> = texts.iter().map(|t| key(t)).collect();
        let (found, repaired) = self.lookup(&keys)?;
        let mut out = Array2::<f32>::zeros((texts.len(), self.dim));
        // Distinct missing texts, by first position.
        let mut first: HashMap<[u8; KEY], usize> = HashMap::new();
        let mut missing: Vec<usize> = Vec::new();
        for (i, (k, row)) in keys.iter().zip(&found).enumerate() {
            match row {
                Some(r) => out.row_mut(i).assign(&ndarray::ArrayView1::from(&r[..])),
                None => {
                    if let std::collections::hash_map::Entry::Vacant(e) = first.entry(*k) {
                        e.insert(missing.len());
                        missing.push(i);
                    }
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
            for (i, (k, row)) in keys.iter().zip(&found).enumerate() {
                if row.is_none() {
                    out.row_mut(i).assign(&emb.row(first[k]));
                }
            }
            let new_keys: Vec<[u8; KEY]> = missing.iter().map(|&i| keys[i]).collect();
            self.append(&new_keys, &emb)?;
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
        let keys: Vec<[u8; KEY]> = texts.iter().map(|t| key(t)).collect();
        self.append(&keys, emb)
    }

    /// Appends the rows of the keys not indexed yet, once each, under the file lock: records
    /// other processes appended meanwhile are indexed first, and their texts skipped.
    fn append(&self, keys: &[[u8; KEY]], emb: &Array2<f32>) -> Result<()> {
        let rec = self.record_len();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let (written, file) = append_locked(&self.path, |f| {
            // The file was pruned since this handle indexed it: index the one at the path now.
            if inner.reader.as_ref().is_some_and(|r| !same_handle(r, f)) {
                inner.reset();
            }
            let end = index_records(f, inner.indexed_to, rec, &mut inner.index)?;
            let mut buf = Vec::new();
            let mut at = end;
            for (k, row) in keys.iter().zip(emb.rows()) {
                if inner.index.contains_key(k) {
                    continue;
                }
                let values: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
                buf.extend_from_slice(k);
                buf.extend_from_slice(&crc(&[k, &values]).to_le_bytes());
                buf.extend_from_slice(&values);
                inner.index.insert(*k, at);
                at += rec;
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

/// Appends to the cache file at `path` under an exclusive lock. `prepare` gets the locked file
/// and returns where the last whole record ends (a torn tail from an interrupted write is cut
/// there and overwritten) and the bytes to write there. Shared by the pooled and the token
/// cache, which differ only in how records are delimited. Returns the new end of the file and
/// the file, unlocked (the handle to read it with when the caller has none on this file).
///
/// Pruning removes a file under the same lock: when the path no longer names the file locked
/// (it was removed while this waited), the new file at the path is opened and locked instead,
/// so nothing is written to a removed file.
pub(crate) fn append_locked(
    path: &Path,
    prepare: impl FnOnce(&mut File) -> std::io::Result<(u64, Vec<u8>)>,
) -> Result<(u64, File)> {
    let io = |e| Error::io(path, e);
    let mut tries = 0;
    let mut f = loop {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        f.lock().map_err(io)?;
        tries += 1;
        if still_at(&f, path) || tries == 16 {
            break f;
        }
    };
    let (whole, buf) = prepare(&mut f).map_err(io)?;
    f.set_len(whole).map_err(io)?;
    f.seek(SeekFrom::Start(whole)).map_err(io)?;
    f.write_all(&buf).map_err(io)?;
    f.flush().map_err(io)?;
    f.unlock().map_err(io)?;
    Ok((whole + buf.len() as u64, f))
}

/// Texts per embedding call of a chunked pass ([`embed_chunked`]): small enough that progress
/// reports come often and cancelling is prompt, large enough to batch well.
pub const EMBED_CHUNK: usize = 256;

/// One finished chunk of an [`embed_chunked`] pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based index of the chunk.
    pub index: usize,
    /// Chunks in the pass.
    pub chunks: usize,
    /// Texts in this chunk.
    pub texts: usize,
    /// What the caches held for it.
    pub stats: CacheStats,
}

/// Embeds `texts` in chunks of [`EMBED_CHUNK`] through `embed` (a chunk's pooled rows, its
/// per-token vectors when `want_tokens`, and cache statistics; [`embed_for_heads`] is the usual
/// one), calling `progress` after every chunk: `false` cancels with
/// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled). Returns every text's rows in order,
/// the token vectors when asked for, and the summed statistics. `dim` is the embedding width.
pub fn embed_chunked(
    texts: &[&str],
    dim: usize,
    want_tokens: bool,
    mut embed: impl FnMut(&[&str]) -> Result<(Array2<f32>, Option<TokenSeqs>, CacheStats)>,
    mut progress: impl FnMut(&Chunk) -> bool,
) -> Result<(Array2<f32>, Option<TokenSeqs>, CacheStats)> {
    let mut out = Array2::zeros((texts.len(), dim));
    let mut all_tokens = want_tokens.then(|| TokenSeqs::new(dim));
    let mut stats = CacheStats::default();
    let chunks = texts.len().div_ceil(EMBED_CHUNK);
    for (index, chunk) in texts.chunks(EMBED_CHUNK).enumerate() {
        let (emb, seqs, s) = embed(chunk)?;
        if emb.dim() != (chunk.len(), dim) {
            return Err(Error::invalid(format!(
                "embedding function returned {:?} for {} texts of width {dim}",
                emb.dim(),
                chunk.len()
            )));
        }
        stats.add(s);
        let start = index * EMBED_CHUNK;
        out.slice_mut(ndarray::s![start..start + chunk.len(), ..])
            .assign(&emb);
        if let Some(all) = all_tokens.as_mut() {
            let seqs = seqs.ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::Internal,
                    "token vectors asked for, none given",
                )
            })?;
            all.extend(&seqs);
        }
        let done = Chunk {
            index,
            chunks,
            texts: chunk.len(),
            stats: s,
        };
        if !progress(&done) {
            return Err(Error::new(
                crate::ErrorKind::Cancelled,
                "cancelled while embedding",
            ));
        }
    }
    Ok((out, all_tokens, stats))
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
) -> Result<(Array2<f32>, Option<TokenSeqs>, CacheStats)> {
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
                misses: texts.len(),
                ..CacheStats::default()
            },
        )),
        (_, _, true) => {
            let (emb, seqs) = backbone.embed_tokens(texts)?;
            Ok((
                emb,
                Some(seqs),
                CacheStats {
                    misses: texts.len(),
                    ..CacheStats::default()
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

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tandem-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    const REC: u64 = (KEY + 4 + 12) as u64;

    #[test]
    fn embeds_each_distinct_text_once_and_persists() {
        let dir = scratch("persist");
        let path = dir.join("c.v2");
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        let mut calls = 0;
        let (e, s) = cache
            .embed_with(&["a", "bb", "a"], |t| {
                calls += t.len();
                fake(t)
            })
            .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(
            s,
            CacheStats {
                hits: 1,
                misses: 2,
                repaired: 0
            }
        );
        assert_eq!(e.row(2).to_vec(), vec![1.0, 2.0, 3.0]);
        // Reopen: everything comes from disk.
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        assert_eq!(cache.len(), 2);
        let (e2, s) = cache
            .embed_with(&["bb", "a"], |_| panic!("should not embed"))
            .unwrap();
        assert_eq!((s.hits, s.misses), (2, 0));
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
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * REC);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_record_is_a_miss_that_is_embedded_again_and_repaired() {
        // Before: one flipped exponent bit per record trained a bad model with exit 0.
        let dir = scratch("damaged");
        let path = dir.join("c.v2");
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        cache.embed_with(&["a", "bb", "ccc"], fake).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Record 1's first value: flip an exponent bit. Record 2's CRC: flip a bit.
        bytes[REC as usize + KEY + 4 + 3] ^= 0x40;
        bytes[2 * REC as usize + KEY] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        let mut again = Vec::new();
        let (e, s) = cache
            .embed_with(&["a", "bb", "ccc"], |t| {
                again.extend(t.iter().map(|t| t.to_string()));
                fake(t)
            })
            .unwrap();
        assert_eq!(again, ["bb", "ccc"]);
        assert_eq!((s.hits, s.misses, s.repaired), (1, 2, 2));
        assert_eq!(e, fake(&["a", "bb", "ccc"]).unwrap());
        // The repairs were appended; a fresh handle serves every text from disk, correctly.
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        let (e, s) = cache
            .embed_with(&["a", "bb", "ccc"], |_| {
                panic!("repaired records are cached")
            })
            .unwrap();
        assert_eq!((s.hits, s.repaired), (3, 0));
        assert_eq!(e, fake(&["a", "bb", "ccc"]).unwrap());
        // NaN values under a valid CRC (a buggy writer) are refused as well.
        let k = key("nan");
        let values: Vec<u8> = [f32::NAN, 0.0, 0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let mut rec = k.to_vec();
        rec.extend_from_slice(&crc(&[&k, &values]).to_le_bytes());
        rec.extend_from_slice(&values);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&rec)
            .unwrap();
        let cache = EmbeddingCache::open_file(&path, 3).unwrap();
        let (e, s) = cache.embed_with(&["nan"], fake).unwrap();
        assert_eq!(s.repaired, 1);
        assert!(e.iter().all(|x| x.is_finite()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn handles_on_one_file_skip_what_the_other_has_stored() {
        // Before: two trains on 600 texts stored 1,186 records.
        let dir = scratch("shared");
        let path = dir.join("c.v2");
        let a = EmbeddingCache::open_file(&path, 3).unwrap();
        let b = EmbeddingCache::open_file(&path, 3).unwrap();
        let texts: Vec<String> = (0..600).map(|i| format!("text {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        a.embed_with(&refs[..300], fake).unwrap();
        // `b` finds what `a` stored since `b` was opened, without embedding it.
        let (_, s) = b
            .embed_with(&refs[..300], |_| panic!("stored by a"))
            .unwrap();
        assert_eq!(s.hits, 300);
        // Both miss the rest; `a` stores it while `b` is still embedding: `b` skips it.
        let (eb, s) = b
            .embed_with(&refs, |t| {
                a.embed_with(&refs[300..], fake).unwrap();
                fake(t)
            })
            .unwrap();
        assert_eq!((s.hits, s.misses), (300, 300));
        assert_eq!(eb, fake(&refs).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 600 * REC);
        assert_eq!(EmbeddingCache::open_file(&path, 3).unwrap().len(), 600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_dimension_and_non_files_are_errors() {
        let dir = scratch("dim");
        let cache = EmbeddingCache::open_file(&dir.join("c.v2"), 4).unwrap();
        assert!(cache.embed_with(&["x"], fake).is_err());
        assert!(cache.is_empty());
        // Before: /dev/zero as a cache read until memory ran out.
        let e = EmbeddingCache::open_file(Path::new("/dev/zero"), 4).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(EmbeddingCache::open_file(&dir, 4).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
