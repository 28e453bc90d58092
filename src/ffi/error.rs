//! Error objects and owned strings handed to C.
//!
//! The `TANDEM_ERR_*` codes are [`ErrorKind`]'s discriminants; the header's `#define`s are
//! generated from [`ErrorKind::ALL`] (`tests/header.rs`), so the list exists once.

use std::ffi::{c_char, CString};

use super::{c_string, guard_or};
use crate::error::{Error, ErrorKind};

/// An error: a stable code (`TANDEM_ERR_*`) and a UTF-8 message.
pub struct tandem_error {
    code: u32,
    message: CString,
}

impl tandem_error {
    /// Boxes `e` for C; freed by `tandem_error_free`.
    pub(crate) fn into_raw(e: Error) -> *mut tandem_error {
        Box::into_raw(Box::new(tandem_error {
            code: e.code(),
            message: c_string(e.message()),
        }))
    }
}

/// The error's stable code, one of `TANDEM_ERR_*`; 0 when `error` is NULL.
///
/// Ownership: borrows `error`.
/// Thread safety: errors are plain data; read one from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_error_code(error: *const tandem_error) -> u32 {
    // SAFETY: NULL or a live error from this library.
    guard_or(0, || unsafe { error.as_ref() }.map_or(0, |e| e.code))
}

/// The error's message: NUL-terminated UTF-8 owned by `error`, valid until
/// `tandem_error_free(error)`. Returns "" when `error` is NULL.
///
/// Ownership: the string belongs to `error` and dies with it.
/// Thread safety: errors are plain data; read one from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_error_message(error: *const tandem_error) -> *const c_char {
    const EMPTY: &std::ffi::CStr = c"";
    // SAFETY: NULL or a live error from this library.
    guard_or(EMPTY.as_ptr(), || {
        unsafe { error.as_ref() }.map_or(EMPTY.as_ptr(), |e| e.message.as_ptr())
    })
}

/// The stable lowercase name of an error code (`"not_found"`, ...), or `"unknown"`. The string
/// is static: never free it.
///
/// Ownership: static string, never freed.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn tandem_error_code_name(code: u32) -> *const c_char {
    static NAMES: std::sync::OnceLock<Vec<CString>> = std::sync::OnceLock::new();
    const UNKNOWN: &std::ffi::CStr = c"unknown";
    guard_or(UNKNOWN.as_ptr(), || {
        let names =
            NAMES.get_or_init(|| ErrorKind::ALL.iter().map(|k| c_string(k.name())).collect());
        ErrorKind::from_code(code)
            .and_then(|k| ErrorKind::ALL.iter().position(|x| *x == k))
            .map_or(UNKNOWN.as_ptr(), |i| names[i].as_ptr())
    })
}

/// Frees an error. NULL is a no-op. Each error is freed exactly once.
///
/// Ownership: consumes the error.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_error_free(error: *mut tandem_error) {
    // SAFETY: a pointer from `tandem_error::into_raw`, freed once.
    unsafe { super::free_box(error) }
}

/// Frees a string this library returned through a `char **` out-parameter (JSON reports,
/// predictions). NULL is a no-op.
///
/// Ownership: consumes the string.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: a pointer from `CString::into_raw` in this library, freed once.
        guard_or((), || drop(unsafe { CString::from_raw(s) }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_name() {
        for k in ErrorKind::ALL {
            // SAFETY: static string from this module.
            let name = unsafe { std::ffi::CStr::from_ptr(tandem_error_code_name(k.code())) };
            assert_eq!(name.to_str().unwrap(), k.name());
        }
    }

    #[test]
    fn errors_round_trip_and_null_is_harmless() {
        let e = tandem_error::into_raw(Error::new(ErrorKind::NotFound, "no such file"));
        // SAFETY: `e` is live until freed below.
        unsafe {
            assert_eq!(tandem_error_code(e), ErrorKind::NotFound.code());
            let m = std::ffi::CStr::from_ptr(tandem_error_message(e));
            assert_eq!(m.to_str().unwrap(), "no such file");
            tandem_error_free(e);
            assert_eq!(tandem_error_code(std::ptr::null()), 0);
            tandem_error_free(std::ptr::null_mut());
            tandem_string_free(std::ptr::null_mut());
        }
    }
}
