//! Native text metadata features, with their names.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use super::{c_string, floats_out, guard, guard_or, strs_arg, tandem_error};

fn names() -> &'static [CString] {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    NAMES.get_or_init(|| {
        crate::metadata::feature_names()
            .into_iter()
            .map(c_string)
            .collect()
    })
}

/// The number of metadata features per text.
///
/// Ownership: nothing is allocated.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn tandem_metadata_feature_count() -> usize {
    guard_or(0, crate::metadata::num_features)
}

/// The name of feature `index` (`"chars"`, `"flesch_reading_ease"`, ...): a static string, never
/// freed; NULL when `index` is out of range. Thread-safe.
///
/// Ownership: static string, never freed.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn tandem_metadata_feature_name(index: usize) -> *const c_char {
    guard_or(std::ptr::null(), || {
        names().get(index).map_or(std::ptr::null(), |n| n.as_ptr())
    })
}

/// Extracts the raw (un-normalized) features of `n` texts into `out`, row-major
/// `n x tandem_metadata_feature_count()`; `cap` is `out`'s length in floats. Needs no model.
/// Every value is finite. Thread-safe.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, BUFFER_TOO_SMALL.
///
/// Ownership: texts are borrowed for the call; `out` is the caller's.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_metadata_extract(
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    out: *mut f32,
    cap: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        let f = crate::metadata::num_features();
        let dst = unsafe { floats_out(out, cap, n * f) }?;
        for (text, row) in texts.iter().zip(dst.chunks_mut(f.max(1))) {
            crate::metadata::extract_into(text, row);
        }
        Ok(())
    })
}
