//! Where tandem keeps what setup installs: the ONNX Runtime library, backbones and demo data.
//!
//! The cache directory is `$TANDEM_HOME` when set, else `$XDG_CACHE_HOME/tandem`, else
//! `~/.cache/tandem`. `scripts/setup.sh` fills it; nothing here downloads anything.

use std::path::{Path, PathBuf};

/// Name of the default backbone's directory under `models/`.
pub const DEFAULT_BACKBONE: &str = "all-MiniLM-L6-v2";

/// The backbones setup installs by name: (name, directory under `models/`). `--backbone NAME`
/// finds them in the cache.
pub const BACKBONES: [(&str, &str); 3] = [
    ("minilm-l6", DEFAULT_BACKBONE),
    ("minilm-l3", "paraphrase-MiniLM-L3-v2"),
    ("mpnet-base", "all-mpnet-base-v2"),
];

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

/// The backbone directory a `--backbone` argument names: a name from [`BACKBONES`]
/// (`minilm-l6`), the name of a directory under the cache's `models/` (`all-MiniLM-L6-v2`),
/// or a path. A bare name that is also a directory here is the path: what is on disk where the
/// user stands wins over the cache.
pub fn resolve_backbone(arg: &Path) -> PathBuf {
    resolve_backbone_in(arg, &cache_dir().join("models"))
}

fn resolve_backbone_in(arg: &Path, models: &Path) -> PathBuf {
    let Some(name) = arg
        .to_str()
        .filter(|s| !s.contains(std::path::MAIN_SEPARATOR))
    else {
        return arg.to_path_buf();
    };
    if arg.exists() || name.is_empty() || name == "." || name == ".." {
        return arg.to_path_buf();
    }
    match BACKBONES.iter().find(|(n, _)| *n == name) {
        Some((_, dir)) => models.join(dir),
        None if models.join(name).is_dir() => models.join(name),
        None => arg.to_path_buf(),
    }
}

/// The cache's directory for the backbone a bundle records by name (`all-MiniLM-L6-v2`), if
/// it is installed. The name comes from an untrusted manifest: only a plain directory name is
/// looked up, never a path.
pub fn installed_backbone(name: &str) -> Option<PathBuf> {
    let dir = cache_dir().join("models").join(name);
    (plain_name(name) && dir.is_dir()).then_some(dir)
}

/// Whether `name` is one directory name: not empty, `.`, `..`, or anything with a separator.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).components().count() == 1
}

/// The installed backbone a name picks: a name from [`BACKBONES`] (`minilm-l3`) or a directory
/// name under the cache's `models/`. Unlike [`resolve_backbone`], never a path and never the
/// working directory's: what a host library is given by name must not depend on where the
/// host runs. Errors: INVALID_ARGUMENT for what is not a plain name, NOT_FOUND (naming the
/// setup command) for a backbone that is not installed.
pub fn named_backbone(name: &str) -> crate::Result<PathBuf> {
    named_backbone_in(name, &cache_dir().join("models"))
}

fn named_backbone_in(name: &str, models: &Path) -> crate::Result<PathBuf> {
    if !plain_name(name) {
        return Err(crate::Error::invalid(format!(
            "backbone name {name:?} is not a name (give a directory as a path instead)"
        )));
    }
    let known = BACKBONES.iter().find(|(n, _)| *n == name);
    let dir = models.join(known.map_or(name, |(_, d)| *d));
    if dir.join("manifest.json").is_file() {
        return Ok(dir);
    }
    let hint = match known {
        Some(_) => format!("install it with scripts/setup.sh --backbone {name}"),
        None => format!(
            "the names setup installs: {}",
            BACKBONES.map(|(n, _)| n).join(", ")
        ),
    };
    Err(crate::Error::new(
        crate::ErrorKind::NotFound,
        format!(
            "backbone {name:?} is not installed in {}: {hint}",
            models.display()
        ),
    ))
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
    fn backbone_names_resolve_in_the_cache_and_paths_stay_paths() {
        let models = std::env::temp_dir().join(format!("tandem-home-{}", std::process::id()));
        std::fs::create_dir_all(models.join("my-bert")).unwrap();
        let r = |a: &str| resolve_backbone_in(Path::new(a), &models);
        assert_eq!(r("minilm-l6"), models.join(DEFAULT_BACKBONE));
        assert_eq!(r("my-bert"), models.join("my-bert"));
        // Unknown names, paths and existing local directories are left as given.
        assert_eq!(r("no-such-backbone"), PathBuf::from("no-such-backbone"));
        assert_eq!(r("some/dir"), PathBuf::from("some/dir"));
        assert_eq!(r("."), PathBuf::from("."));
        // `src` exists where cargo runs the tests (the crate root) and in the cache: the local
        // directory wins.
        std::fs::create_dir_all(models.join("src")).unwrap();
        assert_eq!(r("src"), PathBuf::from("src"));
        std::fs::remove_dir_all(&models).unwrap();
    }

    #[test]
    fn a_backbone_name_picks_an_installed_backbone_and_nothing_else() {
        let models = std::env::temp_dir().join(format!("tandem-named-{}", std::process::id()));
        for dir in ["paraphrase-MiniLM-L3-v2", "my-bert", "empty"] {
            std::fs::create_dir_all(models.join(dir)).unwrap();
        }
        std::fs::write(models.join("paraphrase-MiniLM-L3-v2/manifest.json"), "{}").unwrap();
        std::fs::write(models.join("my-bert/manifest.json"), "{}").unwrap();
        let n = |a: &str| named_backbone_in(a, &models);
        assert_eq!(
            n("minilm-l3").unwrap(),
            models.join("paraphrase-MiniLM-L3-v2")
        );
        assert_eq!(n("my-bert").unwrap(), models.join("my-bert"));
        let e = n("mpnet-base").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert!(
            e.message().contains("setup.sh --backbone mpnet-base"),
            "{e}"
        );
        assert_eq!(n("empty").unwrap_err().kind(), crate::ErrorKind::NotFound);
        assert!(n("no-such").unwrap_err().message().contains("minilm-l6"));
        // `src` is a directory where the tests run: a name never means the working directory.
        assert_eq!(n("src").unwrap_err().kind(), crate::ErrorKind::NotFound);
        for bad in ["", ".", "..", "../my-bert", "/etc", "a/b", "a\\b", "a\0b"] {
            assert_eq!(
                n(bad).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
        std::fs::remove_dir_all(&models).unwrap();
    }

    #[test]
    fn a_recorded_backbone_name_is_never_a_path() {
        for name in ["", ".", "..", "../x", "/etc", "a/b", "a\\b"] {
            assert_eq!(installed_backbone(name), None, "{name:?}");
        }
    }

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
