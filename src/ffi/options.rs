//! Backbone/runtime options as an opaque object with setters, so new options never break the ABI.

use std::ffi::c_char;
use std::path::PathBuf;

use super::{guard, handle_mut, path_of, str_arg, tandem_error};
use crate::BackboneOptions;

/// Options for loading a backbone: model directory, graph variant, threads, execution provider,
/// ONNX Runtime library, batching.
pub struct tandem_options {
    pub(crate) backbone: BackboneOptions,
    pub(crate) dir: Option<PathBuf>,
    /// Whether the variant was set (`tandem_model_open` otherwise uses the bundle's).
    pub(crate) variant_set: bool,
}

impl tandem_options {
    /// The backbone directory: the one set, else the default model in the cache.
    pub(crate) fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(crate::home::default_backbone_dir)
    }
}

/// New options with the defaults: the default backbone in the cache, the fp32 graph, all cores,
/// CPU, the ONNX Runtime library from `TANDEM_ORT_LIB` or the cache. Never NULL. Free with
/// `tandem_options_free`. An options object is used by one thread at a time; loading copies it,
/// so it may be freed right after.
///
/// Ownership: the caller owns the result.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn tandem_options_new() -> *mut tandem_options {
    Box::into_raw(Box::new(tandem_options {
        backbone: BackboneOptions::default(),
        dir: None,
        variant_set: false,
    }))
}

/// Frees options. NULL is a no-op.
///
/// Ownership: consumes the options.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_free(options: *mut tandem_options) {
    // SAFETY: a pointer from `tandem_options_new`, freed once.
    unsafe { super::free_box(options) }
}

/// The body of the string-valued setters: checks the handle, reads the string, applies `set`.
unsafe fn set_str(
    options: *mut tandem_options,
    ptr: *const c_char,
    len: usize,
    what: &str,
    set: impl FnOnce(&mut tandem_options, &str) -> crate::Result<()>,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: forwarded contract of the setters.
        let o = unsafe { handle_mut(options, "options") }?;
        set(o, unsafe { str_arg(ptr, len, what) }?)
    })
}

/// Sets intra-op threads per session; 0 means all available cores.
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (more than 1024; options unchanged).
///
/// Ownership: borrows `options`.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_threads(
    options: *mut tandem_options,
    threads: u32,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: NULL or live options used by this thread only.
        let o = unsafe { handle_mut(options, "options") }?;
        let mut next = o.backbone.clone();
        next.threads = (threads > 0).then_some(threads as usize);
        next.validate()?;
        o.backbone = next;
        Ok(())
    })
}

/// Sets the graph variant: `"fp32"`, `"opt"` or `"int8"` (`len` bytes of UTF-8).
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (unknown name; options unchanged).
///
/// Ownership: `name` is borrowed for the call.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_variant(
    options: *mut tandem_options,
    name: *const c_char,
    len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe {
        set_str(options, name, len, "name", |o, s| {
            o.backbone.variant = s.parse()?;
            o.variant_set = true;
            Ok(())
        })
    }
}

/// Sets the execution provider: `"cpu"`, `"cuda"` or `"cuda:N"`. CUDA needs a build with the
/// `cuda` feature and a CUDA ONNX Runtime; if it cannot run, `tandem_backbone_load` fails with
/// EXECUTION_PROVIDER_UNAVAILABLE rather than falling back to CPU.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (unknown name; options unchanged).
///
/// Ownership: `name` is borrowed for the call.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_device(
    options: *mut tandem_options,
    name: *const c_char,
    len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe {
        set_str(options, name, len, "name", |o, s| {
            o.backbone.device = s.parse()?;
            Ok(())
        })
    }
}

/// Sets what runs the heads of models loaded on backbones made with these options: `"native"`
/// (tandem's own code, the default) or `"onnx"` (the heads written as an ONNX graph and run by
/// ONNX Runtime on the backbone's device; the same results to 1e-5). With `"onnx"`,
/// `tandem_model_load` and the hot swaps fail with ONNX or INVALID_ARGUMENT if the heads cannot
/// be written or run as a graph.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (unknown name; options unchanged).
///
/// Ownership: `name` is borrowed for the call.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_heads(
    options: *mut tandem_options,
    name: *const c_char,
    len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe {
        set_str(options, name, len, "name", |o, s| {
            o.backbone.heads = s.parse()?;
            Ok(())
        })
    }
}

/// Sets the ONNX Runtime shared library to load (else `TANDEM_ORT_LIB`, else the cache). The
/// library is loaded once per process: the first backbone load decides.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (empty path).
///
/// Ownership: the path is copied.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_ort_library(
    options: *mut tandem_options,
    path: *const c_char,
    len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe {
        set_str(options, path, len, "path", |o, s| {
            o.backbone.ort_library = Some(path_of(s, "path")?);
            Ok(())
        })
    }
}

/// Sets the backbone directory (with `manifest.json`, the graphs and `tokenizer.json`); the
/// default is all-MiniLM-L6-v2 in the cache.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (empty path).
///
/// Ownership: the path is copied.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_backbone_dir(
    options: *mut tandem_options,
    path: *const c_char,
    len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe {
        set_str(options, path, len, "path", |o, s| {
            o.dir = Some(path_of(s, "path")?);
            Ok(())
        })
    }
}

/// Sets the backbone by name: one setup installs (`minilm-l6`, the default; `minilm-l3`, the
/// fastest; `mpnet-base`, the most accurate) or a directory name under the cache's `models/`.
/// The name is looked up in the cache now, never as a path or in the working directory.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (not a plain name), NOT_FOUND (not
/// installed; the message names the setup command); options unchanged.
///
/// Ownership: the name is copied.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_backbone_name(
    options: *mut tandem_options,
    name: *const c_char,
    len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe {
        set_str(options, name, len, "name", |o, s| {
            o.dir = Some(crate::home::named_backbone(s)?);
            Ok(())
        })
    }
}

/// Sets the most texts per graph run (default 32) and the most concurrent sessions (default 1;
/// each holds its own copy of the weights, so more sessions serve more threads at once).
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (a zero, over 65,536 texts or over 256 sessions;
/// options unchanged).
///
/// Ownership: borrows `options`.
/// Thread safety: use one options object from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_options_set_batching(
    options: *mut tandem_options,
    batch_size: usize,
    sessions: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let o = unsafe { handle_mut(options, "options") }?;
        let mut next = o.backbone.clone();
        next.batch_size = batch_size;
        next.sessions = sessions;
        next.validate()?;
        o.backbone = next;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_counts_are_refused_and_leave_the_options_unchanged() {
        let o = tandem_options_new();
        // SAFETY: `o` is live until freed at the end; errors are freed once.
        unsafe {
            assert!(tandem_options_set_threads(o, 3).is_null());
            for e in [
                tandem_options_set_threads(o, u32::MAX),
                tandem_options_set_batching(o, 8, 1_000_000),
                tandem_options_set_batching(o, usize::MAX, 1),
                tandem_options_set_batching(o, 0, 1),
            ] {
                assert_eq!(
                    super::super::error::tandem_error_code(e),
                    crate::ErrorKind::InvalidArgument.code()
                );
                super::super::error::tandem_error_free(e);
            }
            let opts = &(*o).backbone;
            assert_eq!(
                (opts.threads, opts.batch_size, opts.sessions),
                (Some(3), 32, 1)
            );
            tandem_options_free(o);
        }
    }
}
