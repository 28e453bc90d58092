//! What the embedding caches hold on disk, and pruning them by age or to a size cap.
//!
//! The cache root (default `<cache dir>/embcache`) holds one directory per backbone graph, named
//! by the first 16 hex digits of the graph's sha256, and in it one file per kind of cached
//! vector. A file's kind is known from its name ([`CacheKind::of`]): `pooled.*` pooled
//! embeddings, `tokens.*` per-token vectors, `split.l{K}.v1` hidden states after the first K layers
//! (the frozen bottom of a split backbone, [`crate::onnx::split`], in the fp32 graph's
//! directory); anything else is `other`. The backbone a directory belongs to
//! is found from the manifests of the installed backbones (`<cache dir>/models/*/manifest.json`,
//! which hold each graph file's sha256); an unknown graph is shown by its hash. Directories not
//! named like a graph's (16 hex digits, or `unhashed`) are not the cache's and are left alone.
//!
//! Pruning removes whole files, the least recently used first. A cache file's modification time
//! is its last use: appends change it, and opening a cache sets it. Only regular files directly
//! inside a graph directory of the root are counted or removed; symbolic links (to files or to
//! directories) are ignored, never followed, so nothing outside the root is ever removed. Sizes
//! are file lengths.
//!
//! Removing a file takes the lock appends take, so no append is half-written into it; a process
//! that has the file open notices on its next lookup or append and starts a new file (its texts
//! are misses, embedded again). Disk space of a removed file that a process still holds open is
//! freed when that process next touches its cache or exits.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{still_at, KEY};
use crate::backbone::BackboneManifest;
use crate::error::{Error, Result};

/// What a cache file holds, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheKind {
    /// Pooled sentence embeddings (`pooled.v2`).
    Pooled,
    /// Per-token vectors, for sequence heads (`tokens.v3`).
    PerToken,
    /// Hidden states at a split layer (`split.l{K}.v1`, written by
    /// [`crate::onnx::split::SplitBackbone::hidden`]).
    SplitLayer,
    /// A file of no kind tandem knows.
    Other,
}

impl CacheKind {
    /// The kind of the cache file named `file_name` (the part before the first `.`).
    pub fn of(file_name: &str) -> CacheKind {
        match file_name.split('.').next().unwrap_or_default() {
            "pooled" => CacheKind::Pooled,
            "tokens" => CacheKind::PerToken,
            "split" => CacheKind::SplitLayer,
            _ => CacheKind::Other,
        }
    }

    /// The kind's name: `pooled`, `per-token`, `split-layer` or `other`.
    pub fn name(self) -> &'static str {
        match self {
            CacheKind::Pooled => "pooled",
            CacheKind::PerToken => "per-token",
            CacheKind::SplitLayer => "split-layer",
            CacheKind::Other => "other",
        }
    }
}

/// One file of the cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheFile {
    /// Its path.
    pub path: PathBuf,
    /// The graph directory's name (a sha256 prefix).
    pub graph: String,
    /// The backbone and variant the graph is, e.g. `all-MiniLM-L6-v2 (int8)`, when an installed
    /// backbone's manifest names it.
    pub backbone: Option<String>,
    /// What it holds.
    pub kind: CacheKind,
    /// Its length in bytes.
    pub bytes: u64,
    /// Texts it holds, when that is cheap to know (pooled and per-token files of a known
    /// backbone).
    pub records: Option<u64>,
    /// When it was last used (its modification time), in seconds since the Unix epoch.
    pub last_used: u64,
}

impl CacheFile {
    /// How to show its graph: the backbone when known, else the hash prefix.
    pub fn label(&self) -> &str {
        self.backbone.as_deref().unwrap_or(&self.graph)
    }
}

/// The default cache root, `<cache dir>/embcache` (see [`crate::home::cache_dir`]).
pub fn default_root() -> PathBuf {
    crate::home::cache_dir().join("embcache")
}

/// A graph's backbone label and embedding width.
#[derive(Debug, Clone)]
struct GraphInfo {
    label: String,
    dim: usize,
}

/// The graphs of the backbones installed under each of `models_dirs` (`<dir>/<name>/manifest.json`),
/// by the first 16 hex digits of their sha256. Unreadable manifests are skipped.
fn installed_graphs(models_dirs: &[PathBuf]) -> HashMap<String, GraphInfo> {
    let mut out = HashMap::new();
    for models in models_dirs {
        let Ok(entries) = std::fs::read_dir(models) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let Ok(m) = BackboneManifest::load(&dir) else {
                continue;
            };
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| m.name.clone());
            for (variant, file) in &m.graphs {
                if let Some(sha) = m.sha256_of(file).filter(|s| s.len() >= 16) {
                    out.entry(sha[..16].to_string())
                        .or_insert_with(|| GraphInfo {
                            label: format!("{name} ({variant})"),
                            dim: m.dim,
                        });
                }
            }
        }
    }
    out
}

/// Where to look for backbone manifests for the cache at `root`: the `models` directory beside
/// it, and the cache directory's.
fn models_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(parent) = root.parent() {
        dirs.push(parent.join("models"));
    }
    let home = crate::home::cache_dir().join("models");
    if !dirs.contains(&home) {
        dirs.push(home);
    }
    dirs
}

/// Whether `name` is what [`graph_dir`](super::graph_dir) names a graph's directory: 16 hex
/// digits of its sha256, or `unhashed`. Nothing else under the root is the cache's, so a
/// root given by mistake (a home directory, say) has nothing to prune.
fn is_graph_dir_name(name: &str) -> bool {
    name == "unhashed" || (name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Seconds since the Unix epoch of `t` (0 before it).
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records in a cache file, when cheap: pooled files by their length, per-token files by their
/// record headers.
fn records(path: &Path, kind: CacheKind, bytes: u64, dim: Option<usize>) -> Option<u64> {
    let dim = dim?;
    match kind {
        CacheKind::Pooled => Some(bytes / (KEY + 4 + 4 * dim) as u64),
        CacheKind::PerToken => {
            let mut f = File::open(path).ok()?;
            super::tokens::count_records(&mut f, dim).ok()
        }
        _ => None,
    }
}

/// Every cache file under `root`, the least recently used first. A missing root holds nothing.
pub fn scan(root: &Path) -> Result<Vec<CacheFile>> {
    scan_with(root, true, true)
}

/// [`scan`], finding the backbones of graphs with `labels` and counting records with
/// `count_records`.
fn scan_with(root: &Path, labels: bool, count_records: bool) -> Result<Vec<CacheFile>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root, e)),
    };
    let graphs = if labels || count_records {
        installed_graphs(&models_dirs(root))
    } else {
        HashMap::new()
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        // `file_type` does not follow links: a link to a directory is not a graph directory.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let graph = entry.file_name().to_string_lossy().into_owned();
        if !is_graph_dir_name(&graph) {
            continue;
        }
        let dir = entry.path();
        let info = graphs.get(&graph);
        let Ok(inner) = std::fs::read_dir(&dir) else {
            continue; // Removed meanwhile, or unreadable: nothing of it can be pruned either.
        };
        for f in inner.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(f.path()) else {
                continue;
            };
            if !meta.file_type().is_file() {
                continue;
            }
            let name = f.file_name().to_string_lossy().into_owned();
            let kind = CacheKind::of(&name);
            let bytes = meta.len();
            let path = f.path();
            files.push(CacheFile {
                records: if count_records {
                    records(&path, kind, bytes, info.map(|i| i.dim))
                } else {
                    None
                },
                path,
                graph: graph.clone(),
                backbone: info.map(|i| i.label.clone()),
                kind,
                bytes,
                last_used: meta.modified().map_or(0, unix_seconds),
            });
        }
    }
    files.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.path.cmp(&b.path)));
    Ok(files)
}

/// What to prune.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Remove files not used for longer than this.
    pub older_than: Option<Duration>,
    /// Then remove files, least recently used first, until the cache holds at most this many
    /// bytes.
    pub max_bytes: Option<u64>,
    /// Only say what would be removed.
    pub dry_run: bool,
}

/// What a prune removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pruned {
    /// The files removed, in the order they were.
    pub removed: Vec<CacheFile>,
    /// Their bytes.
    pub freed: u64,
    /// Bytes the cache holds afterwards (as scanned: appends since are not counted).
    pub remaining: u64,
}

/// Prunes the cache at `root`: first every file not used within `older_than`, then, while the
/// cache holds more than `max_bytes`, the least recently used file. The files in `last` are
/// taken only after every other file, in the order given (a training run names its own per-token
/// and pooled files, so other graphs' and kinds' files go first). Files that another process
/// removed meanwhile are skipped.
pub fn prune(root: &Path, options: &PruneOptions, last: &[&Path]) -> Result<Pruned> {
    prune_with(root, options, last, true)
}

/// [`prune`], finding the backbones of the graphs removed with `labels`.
fn prune_with(root: &Path, options: &PruneOptions, last: &[&Path], labels: bool) -> Result<Pruned> {
    let mut files = scan_with(root, labels, false)?;
    let rank = |f: &CacheFile| last.iter().position(|p| *p == f.path);
    // Least recently used first; the files of `last` after all others, in their order.
    files.sort_by_key(|f| (rank(f).is_some(), rank(f), f.last_used));
    let cutoff = options
        .older_than
        .map(|d| unix_seconds(SystemTime::now()).saturating_sub(d.as_secs()));
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let mut out = Pruned::default();
    for f in files {
        let old = cutoff.is_some_and(|c| f.last_used < c);
        let over = options.max_bytes.is_some_and(|m| total > m);
        if !(old || over) {
            continue;
        }
        let removed = options.dry_run || remove_cache_file(&f.path)?;
        // Gone either way: removed here, or by another process since the scan.
        total -= f.bytes;
        if removed {
            out.freed += f.bytes;
            out.removed.push(f);
        }
    }
    out.remaining = total;
    Ok(out)
}

/// Removes the regular file at `path` under the append lock, so no append is half-way through
/// it. Returns false when it was gone already (or is no longer a regular file).
fn remove_cache_file(path: &Path) -> Result<bool> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => return Ok(false),
        Err(e) if gone(&e) => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    f.lock().map_err(|e| Error::io(path, e))?;
    // Between the check and the open the path may have become a link, or another file.
    let still_regular = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if !still_regular || !still_at(&f, path) {
        return Ok(false);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if gone(&e) => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Keeps the cache at `root` within `max_bytes` while `in_use` (the files of the caches a run
/// has open, the one to give up first first) are being filled: other files go first, least
/// recently used first, then those. Called by training after each chunk of texts embedded, so
/// the cache never holds more than the cap and one chunk's vectors.
pub fn keep_under(root: &Path, max_bytes: u64, in_use: &[&Path]) -> Result<Pruned> {
    let options = PruneOptions {
        max_bytes: Some(max_bytes),
        ..PruneOptions::default()
    };
    prune_with(root, &options, in_use, false)
}

/// [`keep_under`] for the caches a run has open (opened by their `open`, so their files are in
/// graph directories of one root): the per-token file is given up before the pooled one. A cap
/// of 0 means none, and does nothing.
pub fn keep_caches_under(
    max_bytes: u64,
    pooled: Option<&super::EmbeddingCache>,
    tokens: Option<&super::TokenCache>,
) -> Result<()> {
    if max_bytes == 0 {
        return Ok(());
    }
    let in_use: Vec<&Path> = [tokens.map(|t| t.path()), pooled.map(|p| p.path())]
        .into_iter()
        .flatten()
        .collect();
    let Some(root) = in_use.first().and_then(|p| p.parent()?.parent()) else {
        return Ok(());
    };
    keep_under(root, max_bytes, &in_use).map(|_| ())
}

/// Parses a size: bytes (`1500`), or a number with a unit, decimal (`k`/`kB`, `M`/`MB`,
/// `G`/`GB`, `T`/`TB`: powers of 1000) or binary (`KiB`, `MiB`, `GiB`, `TiB`: powers of 1024),
/// case-insensitive, e.g. `500MB`, `1.5G`, `2 GiB`.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::invalid(format!(
            "`{text}` is not a size: give bytes, or a number with a unit (kB, MB, GB, TB, KiB, \
             MiB, GiB, TiB), e.g. 500MB"
        ))
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = (n * scale as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A size in decimal units with 3 significant digits at most: `512 B`, `1.8 GB`, `66.1 MB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// Parses an age: a whole number with a unit, `s`, `m` (minutes), `h`, `d` or `w`, e.g. `30d`.
pub fn parse_age(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::invalid(format!(
            "`{text}` is not an age: give a whole number with a unit, s, m, h, d or w (e.g. 30d)"
        ))
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs: u64 = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// A duration as a short age: `45s`, `12m`, `3h`, `5d`.
pub fn format_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{EmbeddingCache, TokenCache};
    use ndarray::Array2;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tandem-usage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes `bytes` bytes at `root/graph/file`, last used `age` seconds ago.
    fn file(root: &Path, graph: &str, name: &str, bytes: usize, age: u64) -> PathBuf {
        let dir = root.join(graph);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, vec![0u8; bytes]).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
        p
    }

    fn fake(texts: &[&str]) -> Result<Array2<f32>> {
        Ok(Array2::from_shape_fn((texts.len(), 3), |(i, j)| {
            texts[i].len() as f32 + j as f32
        }))
    }

    #[test]
    fn sizes_and_ages_parse_and_print() {
        assert_eq!(parse_size("1500").unwrap(), 1500);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("500M").unwrap(), 500_000_000);
        assert_eq!(parse_size("1.5g").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("10kib").unwrap(), 10240);
        for bad in ["", "MB", "5 parsecs", "-1", "1e3", "99999999999TB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1_800_000_000), "1.8 GB");
        assert_eq!(format_size(123_456_789), "123 MB");
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        for bad in ["30", "d", "1.5d", "3y", "-2d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(format_age(7200), "2h");
    }

    #[test]
    fn kinds_come_from_file_names() {
        assert_eq!(CacheKind::of("pooled.v2"), CacheKind::Pooled);
        assert_eq!(CacheKind::of("tokens.v3"), CacheKind::PerToken);
        assert_eq!(CacheKind::of("split.l4.v1"), CacheKind::SplitLayer);
        assert_eq!(CacheKind::of("notes.txt"), CacheKind::Other);
        assert_eq!(CacheKind::PerToken.name(), "per-token");
    }

    #[test]
    fn scan_reports_files_lru_first_with_records_and_skips_links() {
        let root = scratch("scan");
        let pooled =
            EmbeddingCache::open_file(&root.join("aaaaaaaaaaaaaaaa").join("pooled.v2"), 3).unwrap();
        pooled.embed_with(&["a", "bb"], fake).unwrap();
        file(&root, "bbbbbbbbbbbbbbbb", "tokens.v3", 100, 3600);
        file(&root, "bbbbbbbbbbbbbbbb", "split.l4", 10, 7200);
        file(&root, "bbbbbbbbbbbbbbbb", "junk", 1, 60);
        // A directory not named like a graph (16 hex digits) is not the cache's: never counted
        // or removed (a wrong --dir holds no graph directories).
        let stranger = file(&root, "notes", "pooled.v2", 5, 9_999_999);
        let outside = scratch("scan-outside");
        let target = file(&outside, "0123456789abcdef", "pooled.v2", 50, 0);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&target, root.join("bbbbbbbbbbbbbbbb").join("pooled.v2"))
                .unwrap();
            std::os::unix::fs::symlink(
                outside.join("0123456789abcdef"),
                root.join("cccccccccccccccc"),
            )
            .unwrap();
        }
        let files = scan(&root).unwrap();
        let seen: Vec<(&str, CacheKind, u64)> = files
            .iter()
            .map(|f| (f.graph.as_str(), f.kind, f.bytes))
            .collect();
        assert_eq!(
            seen,
            [
                ("bbbbbbbbbbbbbbbb", CacheKind::SplitLayer, 10),
                ("bbbbbbbbbbbbbbbb", CacheKind::PerToken, 100),
                ("bbbbbbbbbbbbbbbb", CacheKind::Other, 1),
                (
                    "aaaaaaaaaaaaaaaa",
                    CacheKind::Pooled,
                    2 * (KEY as u64 + 4 + 12)
                ),
            ]
        );
        assert!(files.iter().all(|f| f.backbone.is_none()));
        // Pruning everything leaves the link targets alone.
        let all = PruneOptions {
            max_bytes: Some(0),
            ..Default::default()
        };
        let p = prune(&root, &all, &[]).unwrap();
        assert_eq!(p.removed.len(), 4);
        assert_eq!(p.remaining, 0);
        assert!(target.is_file() && stranger.is_file());
        assert!(scan(&outside).unwrap().len() == 1);
        assert!(scan(&root.join("missing")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }

    #[test]
    fn prune_by_age_then_to_a_cap_least_recently_used_first() {
        let root = scratch("lru");
        let old = file(&root, "1111111111111111", "pooled.v2", 1000, 40 * 86_400);
        let mid = file(&root, "1111111111111111", "tokens.v3", 3000, 5 * 86_400);
        let new = file(&root, "2222222222222222", "tokens.v3", 2000, 3600);
        let newest = file(&root, "2222222222222222", "pooled.v2", 500, 10);
        // Dry: nothing goes.
        let dry = PruneOptions {
            older_than: Some(Duration::from_secs(30 * 86_400)),
            dry_run: true,
            ..Default::default()
        };
        let p = prune(&root, &dry, &[]).unwrap();
        assert_eq!(p.removed.len(), 1);
        assert!(old.exists());
        // Age alone.
        let p = prune(
            &root,
            &PruneOptions {
                dry_run: false,
                ..dry
            },
            &[],
        )
        .unwrap();
        assert_eq!((p.freed, p.remaining), (1000, 5500));
        assert!(!old.exists() && mid.exists());
        // A cap of 3000: the least recently used go until it fits.
        let cap = PruneOptions {
            max_bytes: Some(3000),
            ..Default::default()
        };
        let p = prune(&root, &cap, &[]).unwrap();
        assert_eq!(
            p.removed.iter().map(|f| &f.path).collect::<Vec<_>>(),
            [&mid]
        );
        assert_eq!(p.remaining, 2500);
        assert!(new.exists() && newest.exists());
        // Files named last go last, whatever their age: here the newest goes first.
        let cap = PruneOptions {
            max_bytes: Some(2100),
            ..Default::default()
        };
        let p = prune(&root, &cap, &[&new]).unwrap();
        assert_eq!(p.removed[0].path, newest);
        assert_eq!(p.remaining, 2000);
        let p = keep_under(&root, 100, &[&new]).unwrap();
        assert_eq!((p.freed, p.remaining), (2000, 0));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn opening_a_cache_marks_it_used() {
        let root = scratch("touch");
        let p = root.join("0123456789abcdef").join("pooled.v2");
        EmbeddingCache::open_file(&p, 3)
            .unwrap()
            .embed_with(&["a"], fake)
            .unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(86_400))
            .unwrap();
        let before = scan(&root).unwrap()[0].last_used;
        EmbeddingCache::open_file(&p, 3).unwrap();
        assert!(scan(&root).unwrap()[0].last_used >= before + 86_000);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[cfg(unix)]
    #[test]
    fn marking_a_cache_used_never_opens_a_fifo_or_a_device_to_write() {
        // Opening a FIFO to write blocks until a reader comes: the cache must refuse it instead.
        let root = scratch("fifo");
        let p = root.join("pooled.v2");
        let made = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success());
        if made {
            assert!(EmbeddingCache::open_file(&p, 3).is_err());
            assert!(TokenCache::open_file(&p, 3).is_err());
        }
        let before = std::fs::metadata("/dev/null")
            .and_then(|m| m.modified())
            .ok();
        assert!(EmbeddingCache::open_file(Path::new("/dev/null"), 3).is_err());
        let after = std::fs::metadata("/dev/null")
            .and_then(|m| m.modified())
            .ok();
        assert_eq!(before, after);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_handle_whose_file_is_pruned_misses_and_stores_anew() {
        let root = scratch("pruned");
        let path = root.join("0123456789abcdef").join("pooled.v2");
        let a = EmbeddingCache::open_file(&path, 3).unwrap();
        let texts: Vec<String> = (0..50).map(|i| format!("text number {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        a.embed_with(&refs, fake).unwrap();
        // Pruned while `a` is open; then another handle stores other texts in a new file, so
        // `a`'s offsets would point at other records (or past the end) in it.
        prune(
            &root,
            &PruneOptions {
                max_bytes: Some(0),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert!(!path.exists());
        let b = EmbeddingCache::open_file(&path, 3).unwrap();
        b.embed_with(&["other"], fake).unwrap();
        let mut again = 0;
        let (e, s) = a
            .embed_with(&refs, |t| {
                again += t.len();
                fake(t)
            })
            .unwrap();
        assert_eq!((again, s.misses, s.repaired), (50, 50, 0));
        assert_eq!(e, fake(&refs).unwrap());
        // Both handles see one whole file with each text once.
        let (_, s) = b.embed_with(&refs, |_| panic!("stored by a")).unwrap();
        assert_eq!(s.hits, 50);
        assert_eq!(EmbeddingCache::open_file(&path, 3).unwrap().len(), 51);
        // The same for the token cache, pruned between two appends of one handle.
        let tpath = root.join("0123456789abcdef").join("tokens.v3");
        let t = TokenCache::open_file(&tpath, 3).unwrap();
        let tok = |texts: &[&str]| {
            let mut seqs = crate::TokenSeqs::new(3);
            for s in texts {
                seqs.push(Array2::from_elem((s.len(), 3), s.len() as f32).view());
            }
            Ok((fake(texts)?, seqs))
        };
        t.embed_with(&refs[..25], None, tok).unwrap();
        keep_under(&root, 0, &[]).unwrap();
        t.embed_with(&refs[25..], None, tok).unwrap();
        let (seqs, s) = t.embed_with(&refs, None, tok).unwrap();
        assert_eq!((s.hits, s.misses), (25, 25));
        assert_eq!(seqs, tok(&refs).unwrap().1);
        let fresh = TokenCache::open_file(&tpath, 3).unwrap();
        assert_eq!(fresh.len(), 50);
        let files = scan(&root).unwrap();
        assert!(files.iter().all(|f| f.records.is_none()));
        assert_eq!(
            super::super::tokens::count_records(&mut File::open(&tpath).unwrap(), 3).unwrap(),
            50
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn pruning_while_other_threads_append_and_read_never_gives_a_wrong_embedding() {
        let root = scratch("concurrent");
        let path = root.join("0123456789abcdef").join("pooled.v2");
        let texts: Vec<String> = (0..400).map(|i| format!("concurrent text {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let want = fake(&refs).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for w in 0..3 {
                let (refs, want, path, stop) = (&refs, &want, &path, &stop);
                s.spawn(move || {
                    let c = EmbeddingCache::open_file(path, 3).unwrap();
                    let mut i = w * 37;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let at = i % 350;
                        let (e, _) = c.embed_with(&refs[at..at + 50], fake).unwrap();
                        assert_eq!(e, want.slice(ndarray::s![at..at + 50, ..]));
                        i += 13;
                    }
                });
            }
            // At least 200 prunes, and on until one removed the file (on a loaded machine the
            // readers may take a while to write it), for 20 seconds at most.
            let started = std::time::Instant::now();
            let mut removed = 0;
            let mut rounds = 0;
            while rounds < 200 || (removed == 0 && started.elapsed().as_secs() < 20) {
                removed += keep_under(&root, 2000, &[]).unwrap().removed.len();
                rounds += 1;
                std::thread::yield_now();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(removed > 0, "the file was never pruned");
        });
        let _ = std::fs::remove_dir_all(&root);
    }
}
