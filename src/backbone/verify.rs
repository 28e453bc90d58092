//! Checking a backbone's files against the sha256 its manifest records.

use std::path::Path;

use super::sha256_file;
use super::BackboneManifest;

/// One file's recorded and actual sha256, from [`Backbone::verify`] and [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// File name inside the backbone directory.
    pub file: String,
    /// Size in bytes, if the file exists.
    pub size: Option<u64>,
    /// Hash recorded in the manifest.
    pub expected: String,
    /// Hash of the file on disk, if it could be read.
    pub actual: Option<String>,
}

impl FileCheck {
    /// The file exists and matches its recorded hash.
    pub fn ok(&self) -> bool {
        self.actual.as_deref() == Some(self.expected.as_str())
    }
}

/// Hashes every file the manifest lists in `dir` and compares it with the recorded sha256.
pub fn verify_dir(dir: &Path, manifest: &BackboneManifest) -> Vec<FileCheck> {
    manifest
        .files
        .iter()
        .map(|(file, expected)| {
            let path = dir.join(file);
            FileCheck {
                file: file.clone(),
                size: std::fs::metadata(&path).ok().map(|m| m.len()),
                expected: expected.clone(),
                actual: sha256_file(&path).ok(),
            }
        })
        .collect()
}
