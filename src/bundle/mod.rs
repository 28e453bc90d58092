//! Bundles: a trained model on disk. A directory with `manifest.json` (what the model is, what
//! it was trained on and how well it did) and `weights.safetensors` (its tensors by name).
//!
//! Saving is atomic: the bundle is written to a temporary sibling directory and renamed into
//! place, so readers see the old bundle or the new one, never a mix. Loading checks the format
//! version, the weights' sha256 and, against a backbone, the backbone identity.

mod manifest;
mod weights;

use std::path::{Path, PathBuf};

pub use self::manifest::{BackboneRef, BundleManifest, FeatureSpecRef, TaskEntry, BUNDLE_FORMAT};
pub use self::weights::{read_weights, write_weights, Weights};
use crate::backbone::sha256_file;
use crate::error::{Error, ErrorKind, Result};

/// File names inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The weights file inside a bundle directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Writes `manifest` and `weights` to `dir` atomically (replacing an existing bundle there).
/// `manifest.weights_sha256` and `weights_dtype` are filled in here.
pub fn save(dir: &Path, manifest: &BundleManifest, weights: &Weights, f16: bool) -> Result<()> {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(Path::new("."), e))?
            .join(dir)
    };
    let parent = dir
        .parent()
        .ok_or_else(|| Error::invalid(format!("{}: no parent directory", dir.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid(format!("{}: bad bundle name", dir.display())))?;
    // Process id plus a counter: threads of one process may save at the same time.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = parent.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let wpath = tmp.join(WEIGHTS_FILE);
        write_weights(&wpath, weights, f16)?;
        let mut m = manifest.clone();
        m.weights_sha256 = sha256_file(&wpath)?;
        m.weights_dtype = if f16 { "f16" } else { "f32" }.to_string();
        let text = serde_json::to_string_pretty(&m)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let mpath = tmp.join(MANIFEST_FILE);
        std::fs::write(&mpath, text).map_err(|e| Error::io(&mpath, e))?;
        for f in [&wpath, &mpath] {
            std::fs::File::open(f)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(f, e))?;
        }
        replace_dir(&tmp, &dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Moves `from` to `to`; an existing `to` is moved aside first and removed after.
fn replace_dir(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        if !to.join(MANIFEST_FILE).is_file() {
            return Err(Error::invalid(format!(
                "{} exists and is not a tandem bundle; refusing to replace it",
                to.display()
            )));
        }
        let old = PathBuf::from(format!("{}-old", from.display()));
        std::fs::rename(to, &old).map_err(|e| Error::io(to, e))?;
        std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    }
    Ok(())
}

/// Reads and checks a bundle: format, weights hash, tensors. Backbone identity is checked by
/// the caller that has a backbone ([`BundleManifest::check_backbone`]).
pub fn load(dir: &Path) -> Result<(BundleManifest, Weights)> {
    let mpath = dir.join(MANIFEST_FILE);
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("{}: no such bundle directory", dir.display()),
        ));
    }
    let text = std::fs::read_to_string(&mpath).map_err(|e| Error::io(&mpath, e))?;
    let probe: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(format!("{}: invalid JSON: {e}", mpath.display())))?;
    let format = probe.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != BUNDLE_FORMAT {
        return Err(Error::format(format!(
            "{}: unknown bundle format `{format}` (this tandem reads `{BUNDLE_FORMAT}`)",
            mpath.display()
        )));
    }
    let manifest: BundleManifest = serde_json::from_value(probe)
        .map_err(|e| Error::format(format!("{}: {e}", mpath.display())))?;
    let wpath = dir.join(WEIGHTS_FILE);
    let sha = sha256_file(&wpath)?;
    if sha != manifest.weights_sha256 {
        return Err(Error::format(format!(
            "{}: sha256 {sha} does not match the manifest ({}); the bundle is corrupt",
            wpath.display(),
            manifest.weights_sha256
        )));
    }
    let weights = read_weights(&wpath)?;
    Ok((manifest, weights))
}
