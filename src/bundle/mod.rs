//! Bundles: a trained model on disk. A directory with `manifest.json` (what the model is, what
//! it was trained on and how well it did) and `weights.safetensors` (its tensors by name).
//!
//! Every save also writes a model card, `README.md` ([`card`]): documentation for people,
//! never read back.
//!
//! Saving is atomic: the bundle is written to a temporary sibling directory and swapped into
//! place (`renameat2(RENAME_EXCHANGE)` on Linux), so readers see the old bundle or the new one,
//! never a mix and never none; saves to one path are serialized by a lock file, and stale
//! temporary directories of killed saves are removed ([`save`](self::save)). Loading checks the
//! format version, the weights' sha256 and, against a backbone, the backbone identity. Every
//! file is untrusted input read with a size cap.

pub mod card;
mod manifest;
mod save;
mod weights;

use std::path::Path;

pub use self::card::CARD_FILE;
pub use self::manifest::{BackboneRef, BundleManifest, FeatureSpecRef, TaskEntry, BUNDLE_FORMAT};
pub(crate) use self::save::readable_dir;
pub use self::save::BUNDLE_FILES;
pub use self::weights::{parse_weights, read_weights, write_weights, Weights};
use crate::error::{Error, ErrorKind, Result};
use crate::heads::{Heads, Network};

/// File names inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The weights file inside a bundle directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// The directory inside a bundle holding a backbone of the bundle's own: the backbone with its
/// top layers fine-tuned (see [`crate::onnx::tuned`]), which serving runs instead of the
/// backbone it is handed.
pub const BACKBONE_DIR: &str = "backbone";

/// Writes `manifest` and `weights` to `dir` atomically, replacing a bundle there (see
/// [`save`](self) for the guarantees: the old or the new bundle at every instant, saves to one
/// path serialized, anything that is not a bundle refused and left untouched).
/// `manifest.weights_sha256` and `weights_dtype` are filled in here, and the model card
/// (`README.md`, [`card::render`]) is written from the finished manifest, in the same swap.
pub fn save(dir: &Path, manifest: &BundleManifest, weights: &Weights, f16: bool) -> Result<()> {
    save_with(dir, manifest, weights, f16, |_| Ok(()))
}

/// [`save`], with `extra` writing more of the bundle (its own backbone, [`BACKBONE_DIR`]) into
/// the temporary directory before the swap, so that it is part of the same atomic replace.
pub fn save_with(
    dir: &Path,
    manifest: &BundleManifest,
    weights: &Weights,
    f16: bool,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    save::replace(dir, |tmp| {
        extra(tmp)?;
        let wpath = tmp.join(WEIGHTS_FILE);
        write_weights(&wpath, weights, f16)?;
        let mut m = manifest.clone();
        m.weights_sha256 = crate::files::sha256_file(&wpath, crate::files::BUNDLE_WEIGHTS)?;
        m.weights_dtype = if f16 { "f16" } else { "f32" }.to_string();
        let text = serde_json::to_string_pretty(&m)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let mpath = tmp.join(MANIFEST_FILE);
        std::fs::write(&mpath, text).map_err(|e| Error::io(&mpath, e))?;
        let cpath = tmp.join(CARD_FILE);
        std::fs::write(&cpath, card::render(&m)).map_err(|e| Error::io(&cpath, e))?;
        for f in [&wpath, &mpath, &cpath] {
            std::fs::File::open(f)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(f, e))?;
        }
        Ok(())
    })
}

/// Refuses, before any work is done, a `dir` that [`save`] would refuse to replace: anything
/// but a tandem bundle or an empty directory, or a bundle holding files of someone else's.
pub fn check_target(dir: &Path) -> Result<()> {
    save::check_replaceable(dir)
}

/// Reads and checks a bundle: format, weights hash, tensors (finite, F32 or F16). Every file
/// is read with a size cap ([`crate::files`]). Backbone identity is checked by the caller that
/// has a backbone ([`BundleManifest::check_backbone`]), and the manifest against the tensors by
/// [`crate::model::Heads::from_bundle`].
pub fn load(dir: &Path) -> Result<(BundleManifest, Weights)> {
    let dir = save::readable_dir(dir);
    let dir = dir.as_path();
    let mpath = dir.join(MANIFEST_FILE);
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("{}: no such bundle directory", dir.display()),
        ));
    }
    let wpath = dir.join(WEIGHTS_FILE);
    let mut attempts = 0;
    loop {
        let text = crate::files::read_text(&mpath, crate::files::BUNDLE_MANIFEST)?;
        let manifest = parse_manifest(&text)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", mpath.display(), e.message())))?;
        // Read once: the hash and the tensors come from the same bytes.
        let bytes = crate::files::read(&wpath, crate::files::BUNDLE_WEIGHTS)?;
        match check_weights(&manifest, &bytes) {
            Ok(weights) => return Ok((manifest, weights)),
            // A save swapped the directory between the two reads: the weights hash tells, and
            // a second read finds one whole bundle.
            Err(_)
                if attempts < 5
                    && crate::files::read_text(&mpath, crate::files::BUNDLE_MANIFEST).ok()
                        != Some(text) =>
            {
                attempts += 1;
            }
            Err(e) => {
                return Err(Error::new(
                    e.kind(),
                    format!("{}: {}", wpath.display(), e.message()),
                ))
            }
        }
    }
}

/// The heads a bundle's manifest and tensors describe, after every check that needs no
/// backbone: the architecture against the tensors' real sizes (before anything is
/// allocated), the tasks and feature pipeline against the architecture, and the features the
/// heads read, found by name among this build's extractor's. A bundle is untrusted input: whatever passes here
/// predicts without panicking.
pub fn build_heads(manifest: &BundleManifest, weights: &Weights) -> Result<Heads> {
    let arch = manifest.architecture.clone();
    arch.check_weights(weights)?;
    manifest.check_heads(&arch.outputs, arch.n_features, arch.emb_dim)?;
    let current = crate::metadata::feature_names();
    let normalizer = manifest
        .features
        .as_ref()
        .map(|f| f.normalizer_for(&current))
        .transpose()?;
    let network = Network::from_weights(arch, weights)?;
    Ok(Heads {
        network,
        normalizer,
        tasks: manifest.tasks.clone(),
        version: 0,
        onnx: None,
    })
}

/// Parses a bundle's `manifest.json`: the format first (anything but [`BUNDLE_FORMAT`] is
/// refused, naming what was found), then every field with its type.
pub fn parse_manifest(text: &str) -> Result<BundleManifest> {
    let probe: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::format(format!("invalid JSON: {e}")))?;
    let format = probe.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != BUNDLE_FORMAT {
        return Err(Error::format(format!(
            "unknown bundle format `{format}` (this tandem reads `{BUNDLE_FORMAT}`)"
        )));
    }
    serde_json::from_value(probe).map_err(|e| Error::format(e.to_string()))
}

/// The tensors of a bundle's weights file, after checking its bytes against the manifest's
/// sha256.
pub fn check_weights(manifest: &BundleManifest, bytes: &[u8]) -> Result<Weights> {
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
    if sha != manifest.weights_sha256 {
        return Err(Error::format(format!(
            "sha256 {sha} does not match the manifest ({}); the bundle is corrupt",
            manifest.weights_sha256
        )));
    }
    parse_weights(bytes)
}
