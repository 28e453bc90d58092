//! The on-disk embedding caches: pruning them from a host.

use std::ffi::c_char;
use std::time::Duration;

use super::{guard, path_of, str_arg, tandem_error, write_out};
use crate::cache::usage::{default_root, prune, PruneOptions};

/// Prunes the on-disk embedding caches under `root` (`root_len` bytes of UTF-8; NULL or empty:
/// the default, `<cache dir>/embcache`): first every cache file not used for `older_than_s`
/// seconds (0: no age limit), then the least recently used files until the caches hold at most
/// `max_bytes` bytes (`UINT64_MAX`: no cap). Whole files are removed (pooled embeddings,
/// per-token vectors, ... of one backbone graph each); symbolic links are never followed, so
/// nothing outside `root` is removed. Processes that have a removed file open are safe: their
/// lookups of it become misses and the texts are embedded again. Writes the bytes freed to
/// `*freed_out` when it is not NULL. A missing `root` holds nothing: 0 bytes freed. To keep a cap
/// while training, set `"config": {"cache": {"max_size": ...}}` in the trainer spec instead.
/// Errors: INVALID_UTF8, NULL_ARGUMENT (`root` NULL with a nonzero length), IO (a file could not
/// be removed).
///
/// Ownership: `root` is borrowed for the call; nothing is allocated.
/// Thread safety: safe to call from any thread, and while other threads and processes use the
/// caches.
#[no_mangle]
pub unsafe extern "C" fn tandem_cache_prune(
    root: *const c_char,
    root_len: usize,
    max_bytes: u64,
    older_than_s: u64,
    freed_out: *mut u64,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let root = unsafe { str_arg(root, root_len, "root") }?;
        let root = if root.is_empty() {
            default_root()
        } else {
            path_of(root, "root")?
        };
        let options = PruneOptions {
            older_than: (older_than_s > 0).then(|| Duration::from_secs(older_than_s)),
            max_bytes: (max_bytes < u64::MAX).then_some(max_bytes),
            dry_run: false,
        };
        let pruned = prune(&root, &options, &[])?;
        if !freed_out.is_null() {
            // SAFETY: non-NULL, and the caller owns the pointed-to storage.
            unsafe { write_out(freed_out, pruned.freed) };
        }
        Ok(())
    })
}
