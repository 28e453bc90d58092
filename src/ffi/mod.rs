//! The C ABI: the whole capability for C, C++ and Go hosts. The only module with raw pointers.
//!
//! Conventions (see `include/tandem.h` for the contract each function documents):
//! - every fallible function returns `tandem_error *`, NULL on success; errors travel with the
//!   call, never in thread-local state (Go moves goroutines across OS threads);
//! - handles are opaque; `tandem_X_free(NULL)` is a no-op; out-parameters come last and are
//!   written only on success;
//! - strings in are `(const char *, size_t len)` UTF-8 that need not be NUL-terminated; batches
//!   are an array of pointers plus an array of lengths (or NULL lengths for NUL-terminated
//!   strings);
//! - no panic crosses the boundary: every export runs inside `guard` or `guard_or`;
//! - `const` handles may be shared between threads, non-`const` ones are used by one thread at
//!   a time.
//!
//! `#[no_mangle]` items here are what cbindgen turns into the header.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // The safety contract of each export is in its doc comment.

pub mod backbone;
pub mod cache;
pub mod ensemble;
pub mod error;
pub mod info;
pub mod metadata;
pub mod model;
pub mod options;
pub mod predictions;
pub mod pretrain;
pub mod trainer;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};
pub use error::tandem_error;

/// Runs `f`, turning its error, or a panic inside it, into an owned `tandem_error`.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> *mut tandem_error {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => tandem_error::into_raw(e),
        Err(payload) => tandem_error::into_raw(panic_error(payload)),
    }
}

/// Runs an infallible accessor, returning `default` if it panics (a bug, but never a crash).
pub(crate) fn guard_or<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// The body of every `tandem_X_free`: drops the boxed handle `ptr`; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from `Box::into_raw` of a `T` in this library and is freed once.
pub(crate) unsafe fn free_box<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller's contract.
        guard_or((), || drop(unsafe { Box::from_raw(ptr) }));
    }
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::new(
        ErrorKind::Panic,
        format!("internal panic (a bug in tandem, please report it): {what}"),
    )
}

fn null(what: &str) -> Error {
    Error::new(ErrorKind::NullArgument, format!("`{what}` is NULL"))
}

/// A shared reference from a handle pointer, or a NullArgument error naming it.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: the caller passes a pointer it got from this library and has not freed.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(what))
}

/// An exclusive reference from a handle pointer, or a NullArgument error naming it.
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: as for `handle`; non-const handles are documented as single-threaded.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(what))
}

/// Checks that an out-pointer is usable before any work is done.
pub(crate) fn out_ptr<T>(ptr: *mut T, what: &str) -> Result<()> {
    if ptr.is_null() {
        Err(null(what))
    } else {
        Ok(())
    }
}

/// Writes `value` through an out-pointer already checked by [`out_ptr`].
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: checked non-null by `out_ptr`; the caller owns the pointed-to storage.
    unsafe { ptr.write(value) }
}

/// A `(ptr, len)` UTF-8 string; NULL is allowed only with `len == 0` (the empty string).
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return if len == 0 { Ok("") } else { Err(null(what)) };
    }
    // SAFETY: the caller promises `len` readable bytes at `ptr` for the duration of the call.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidUtf8,
            format!("`{what}` is not valid UTF-8 ({e})"),
        )
    })
}

/// A path given as a `(ptr, len)` UTF-8 string; it must not be empty.
pub(crate) unsafe fn path_arg(ptr: *const c_char, len: usize, what: &str) -> Result<PathBuf> {
    // SAFETY: forwarded contract of `str_arg`.
    path_of(unsafe { str_arg(ptr, len, what) }?, what)
}

/// A path from a string argument named `what`; it must not be empty.
pub(crate) fn path_of(s: &str, what: &str) -> Result<PathBuf> {
    if s.is_empty() {
        return Err(Error::invalid(format!("`{what}` is empty")));
    }
    Ok(PathBuf::from(s))
}

/// A batch of `n` strings: `texts[i]` with `lens[i]` bytes, or NUL-terminated when `lens` is
/// NULL. `texts` may be NULL only when `n == 0`.
pub(crate) unsafe fn strs_arg<'a>(
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    what: &str,
) -> Result<Vec<&'a str>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if texts.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller promises arrays of `n` elements.
    let ptrs = unsafe { std::slice::from_raw_parts(texts, n) };
    let lens = if lens.is_null() {
        None
    } else {
        // SAFETY: as above.
        Some(unsafe { std::slice::from_raw_parts(lens, n) })
    };
    ptrs.iter()
        .enumerate()
        .map(|(i, &p)| {
            let item = format!("{what}[{i}]");
            match lens {
                // SAFETY: forwarded contract of `str_arg`.
                Some(l) => unsafe { str_arg(p, l[i], &item) },
                None if p.is_null() => Err(null(&item)),
                // SAFETY: without lengths the caller promises NUL-terminated strings.
                None => unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidUtf8,
                        format!("`{item}` is not valid UTF-8 ({e})"),
                    )
                }),
            }
        })
        .collect()
}

/// The `n` group keys of a grouped prediction (as [`strs_arg`] reads them), owned: the
/// library keys its groups by them.
pub(crate) unsafe fn groups_arg(
    groups: *const *const c_char,
    lens: *const usize,
    n: usize,
) -> Result<Vec<String>> {
    // SAFETY: forwarded contract of `strs_arg`.
    let keys = unsafe { strs_arg(groups, lens, n, "groups") }?;
    Ok(keys.into_iter().map(str::to_string).collect())
}

/// A caller buffer of `cap` floats, checked to hold `needed`.
pub(crate) unsafe fn floats_out<'a>(
    out: *mut f32,
    cap: usize,
    needed: usize,
) -> Result<&'a mut [f32]> {
    if needed == 0 {
        return Ok(&mut []);
    }
    if out.is_null() {
        return Err(null("out"));
    }
    if cap < needed {
        return Err(Error::new(
            ErrorKind::BufferTooSmall,
            format!("the output buffer holds {cap} floats but {needed} are needed"),
        ));
    }
    // SAFETY: the caller promises `cap` writable floats at `out`; we use the first `needed`.
    Ok(unsafe { std::slice::from_raw_parts_mut(out, needed) })
}

/// An owned, NUL-terminated copy of `s` for returning to C (interior NULs become U+FFFD, which
/// only user-supplied label names could contain).
pub(crate) fn c_string(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// Hands an owned string to C; freed by `tandem_string_free`.
pub(crate) fn into_c_string(s: &str) -> *mut c_char {
    c_string(s).into_raw()
}
