//! Shared by the fuzz targets: their checks (also compiled into the main crate's
//! `tests/fuzz_regressions.rs`) and per-process scratch directories.

pub mod checks;

use std::path::PathBuf;

/// A scratch directory for this process, created if needed: on tmpfs (`/dev/shm`) when there
/// is one, so the cache targets do not wear a disk. `scripts/fuzz.sh` removes those of
/// finished runs.
pub fn scratch_dir(target: &str) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = root.join(format!("tandem-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
