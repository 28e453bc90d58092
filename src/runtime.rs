//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! ort's `load-dynamic` binds one library per process, so the first successful load wins and a
//! later request for a *different* library is an error rather than a silent no-op.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::home;

/// Environment variable that names the ONNX Runtime library when no explicit path is given.
pub const ORT_LIB_ENV: &str = "TANDEM_ORT_LIB";

/// Where the library path came from; reported by `tandem doctor` and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// Passed explicitly by the caller (Rust option, C option, CLI flag).
    Explicit,
    /// From the `TANDEM_ORT_LIB` environment variable.
    Environment,
    /// The copy that `scripts/setup.sh` put in the cache directory.
    Cache,
}

impl std::fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LibrarySource::Explicit => "explicit option",
            LibrarySource::Environment => ORT_LIB_ENV,
            LibrarySource::Cache => "tandem cache",
        })
    }
}

/// A loaded ONNX Runtime: the library and the environment that sessions are created in.
pub struct Runtime {
    env: ort::environment::Environment,
    library: PathBuf,
    source: LibrarySource,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("source", &self.source)
            .finish()
    }
}

impl Runtime {
    /// The ONNX Runtime environment.
    pub(crate) fn env(&self) -> &ort::environment::Environment {
        &self.env
    }

    /// Absolute path of the loaded library.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Where the path came from.
    pub fn source(&self) -> LibrarySource {
        self.source
    }

    /// ONNX Runtime's build string (version, commit, build flags).
    pub fn build_info(&self) -> String {
        ort::info().to_string()
    }

    /// The ONNX Runtime version (e.g. `1.31.1`), from the library's versioned file name
    /// (`libonnxruntime.so.1.31.1`) or else the build string's release branch.
    pub fn version(&self) -> String {
        version_from_file_name(&self.library)
            .or_else(|| parse_version(ort::info()))
            .unwrap_or_else(|| "unknown".to_string())
    }

    /// Execution providers this build of tandem can use and whether the loaded library offers
    /// them, as `(name, available)`.
    pub fn execution_providers(&self) -> Vec<(&'static str, bool)> {
        use ort::ep::ExecutionProvider;
        #[cfg_attr(not(feature = "cuda"), allow(unused_mut))]
        let mut eps = vec![(
            "CPUExecutionProvider",
            ort::ep::CPU::is_available().unwrap_or(false),
        )];
        #[cfg(feature = "cuda")]
        eps.push((
            "CUDAExecutionProvider",
            ort::ep::CUDA::is_available().unwrap_or(false),
        ));
        eps
    }
}

/// The version of the ONNX Runtime library at `path` from its versioned file name, following
/// symbolic links, without loading it (None when the name carries no version).
pub fn library_version(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    version_from_file_name(&real).or_else(|| version_from_file_name(path))
}

/// Parses `1.31.1` out of `libonnxruntime.so.1.31.1` (or `libonnxruntime.1.31.1.dylib`).
fn version_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let v: Vec<&str> = name
        .split('.')
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    (v.len() >= 2).then(|| v.join("."))
}

/// Parses `1.31.1` out of a build string containing `git-branch=rel-1.31.1`.
fn parse_version(info: &str) -> Option<String> {
    let start = info.find("rel-")? + 4;
    let rest = &info[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let v = rest[..end].trim_end_matches('.');
    (!v.is_empty()).then(|| v.to_string())
}

/// Picks the library path: explicit, then `TANDEM_ORT_LIB`, then the cache.
pub fn locate_library(explicit: Option<&Path>) -> (PathBuf, LibrarySource) {
    if let Some(p) = explicit {
        return (p.to_path_buf(), LibrarySource::Explicit);
    }
    if let Some(p) = std::env::var_os(ORT_LIB_ENV).filter(|p| !p.is_empty()) {
        return (PathBuf::from(p), LibrarySource::Environment);
    }
    (home::ort_library(), LibrarySource::Cache)
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// Loads ONNX Runtime (once per process) and returns it.
///
/// Safe to call from many threads. Fails with [`ErrorKind::RuntimeUnavailable`] when the library
/// is missing or unusable, naming the path tried and how to install it; fails with
/// [`ErrorKind::InvalidArgument`] when a different library is already loaded.
pub fn runtime(explicit: Option<&Path>) -> Result<Arc<Runtime>> {
    let (path, source) = locate_library(explicit);
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        let wanted_other = explicit.is_some() || source == LibrarySource::Environment;
        if wanted_other && !same_file(&path, &rt.library) {
            return Err(Error::invalid(format!(
                "ONNX Runtime is already loaded from {} in this process; cannot switch to {}",
                rt.library.display(),
                path.display()
            )));
        }
        return Ok(Arc::clone(rt));
    }
    if !path.is_file() {
        return Err(Error::new(
            ErrorKind::RuntimeUnavailable,
            format!(
                "ONNX Runtime library not found at {} (from {source}). Run `scripts/setup.sh` to \
                 install it into the tandem cache, or point {ORT_LIB_ENV} at libonnxruntime.so \
                 1.31+ (shipped in the PyPI `onnxruntime` wheel under onnxruntime/capi/)",
                path.display()
            ),
        ));
    }
    let library = path.canonicalize().map_err(|e| Error::io(&path, e))?;
    let builder = ort::init_from(&library).map_err(|e| {
        Error::new(
            ErrorKind::RuntimeUnavailable,
            format!("cannot load ONNX Runtime from {}: {e}", library.display()),
        )
    })?;
    let env = builder
        .with_name("tandem")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::onnx("creating the ONNX Runtime environment", e))?;
    let rt = Arc::new(Runtime {
        env,
        library,
        source,
    });
    *slot = Some(Arc::clone(&rt));
    Ok(rt)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_parsed_from_build_info() {
        let info = "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release";
        assert_eq!(parse_version(info).as_deref(), Some("1.31.1"));
        assert_eq!(parse_version("no branch here"), None);
    }

    #[test]
    fn version_from_library_file_name() {
        let v = |p: &str| version_from_file_name(Path::new(p));
        assert_eq!(v("/x/libonnxruntime.so.1.31.1").as_deref(), Some("1.31.1"));
        assert_eq!(v("/x/libonnxruntime.so"), None);
    }

    #[test]
    fn explicit_path_wins() {
        let (p, s) = locate_library(Some(Path::new("/opt/ort.so")));
        assert_eq!(p, PathBuf::from("/opt/ort.so"));
        assert_eq!(s, LibrarySource::Explicit);
    }
}
