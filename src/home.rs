//! Where tandem keeps what setup installs: the ONNX Runtime library, backbones and demo data.
//!
//! The cache directory is `$TANDEM_HOME` when set, else `$XDG_CACHE_HOME/tandem`, else
//! `~/.cache/tandem`. `scripts/setup.sh` fills it; nothing here downloads anything.

use std::path::PathBuf;

/// Name of the default backbone's directory under `models/`.
pub const DEFAULT_BACKBONE: &str = "all-MiniLM-L6-v2";

/// The cache directory (it may not exist yet).
pub fn cache_dir() -> PathBuf {
    resolve(
        std::env::var_os("TANDEM_HOME"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// Pure resolution rule, separated from the environment so it can be tested.
fn resolve(
    tandem_home: Option<std::ffi::OsString>,
    xdg_cache: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    let non_empty = |v: Option<std::ffi::OsString>| v.filter(|s| !s.is_empty());
    if let Some(dir) = non_empty(tandem_home) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty(xdg_cache) {
        return PathBuf::from(dir).join("tandem");
    }
    let home = non_empty(home)
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".cache").join("tandem")
}

/// Directory of a backbone installed by setup, e.g. `models/all-MiniLM-L6-v2`.
pub fn backbone_dir(name: &str) -> PathBuf {
    cache_dir().join("models").join(name)
}

/// Directory of the default backbone.
pub fn default_backbone_dir() -> PathBuf {
    backbone_dir(DEFAULT_BACKBONE)
}

/// Where setup puts the ONNX Runtime shared library.
pub fn ort_library() -> PathBuf {
    cache_dir().join("ort").join("libonnxruntime.so")
}

/// Directory of the converted demo datasets (JSONL).
pub fn data_dir() -> PathBuf {
    cache_dir().join("data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_order() {
        let s = |x: &str| Some(std::ffi::OsString::from(x));
        assert_eq!(resolve(s("/t"), s("/x"), s("/h")), PathBuf::from("/t"));
        assert_eq!(resolve(None, s("/x"), s("/h")), PathBuf::from("/x/tandem"));
        assert_eq!(
            resolve(s(""), s(""), s("/h")),
            PathBuf::from("/h/.cache/tandem")
        );
    }
}
