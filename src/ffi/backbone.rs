//! The frozen backbone: load and embed.

use std::ffi::c_char;
use std::sync::Arc;

use super::options::tandem_options;
use super::{floats_out, guard, guard_or, handle, out_ptr, strs_arg, tandem_error, write_out};
use crate::Backbone;

/// A loaded backbone (ONNX Runtime session pool + tokenizer). Immutable: a
/// `const tandem_backbone *` may be used from many threads at once.
pub struct tandem_backbone {
    pub(crate) inner: Arc<Backbone>,
    pub(crate) graph_sha256: std::ffi::CString,
}

/// Loads a backbone with `options` (NULL for the defaults) and writes it to `*out`, to free with
/// `tandem_backbone_free`. Models and trainers made from it keep it alive, so it may be freed
/// before them.
/// Errors: NULL_ARGUMENT (`out`), NOT_FOUND (model files), RUNTIME_UNAVAILABLE (no ONNX
/// Runtime library; the message says how to get one), EXECUTION_PROVIDER_UNAVAILABLE, ONNX,
/// TOKENIZER, FORMAT.
///
/// Ownership: `options` is copied (free it whenever you like); the caller owns `*out`.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_backbone_load(
    options: *const tandem_options,
    out: *mut *mut tandem_backbone,
) -> *mut tandem_error {
    guard(|| {
        out_ptr(out, "out")?;
        // SAFETY: NULL or live options.
        let backbone = match unsafe { options.as_ref() } {
            Some(o) => Backbone::load(o.dir(), o.backbone.clone())?,
            None => Backbone::load_default(Default::default())?,
        };
        let handle = tandem_backbone {
            graph_sha256: super::c_string(backbone.graph_sha256()),
            inner: Arc::new(backbone),
        };
        // SAFETY: checked above.
        unsafe { write_out(out, Box::into_raw(Box::new(handle))) };
        Ok(())
    })
}

/// Frees a backbone handle (the backbone lives on while models or trainers use it). NULL is a
/// no-op.
///
/// Ownership: consumes the handle; models and trainers made from it hold their own reference.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_backbone_free(backbone: *mut tandem_backbone) {
    // SAFETY: a pointer from `tandem_backbone_load`, freed once.
    unsafe { super::free_box(backbone) }
}

/// The embedding dimension (384 for all-MiniLM-L6-v2); 0 when `backbone` is NULL.
///
/// Ownership: borrows `backbone` for the call.
/// Thread safety: safe from many threads at once on one backbone.
#[no_mangle]
pub unsafe extern "C" fn tandem_backbone_dim(backbone: *const tandem_backbone) -> usize {
    // SAFETY: NULL or a live backbone.
    guard_or(0, || {
        unsafe { backbone.as_ref() }.map_or(0, |b| b.inner.dim())
    })
}

/// The sha256 of the graph in use, as 64 hex digits owned by `backbone` (valid until it is
/// freed); "" when `backbone` is NULL.
///
/// Ownership: the string belongs to `backbone`; do not free it.
/// Thread safety: safe from many threads at once on one backbone.
#[no_mangle]
pub unsafe extern "C" fn tandem_backbone_graph_sha256(
    backbone: *const tandem_backbone,
) -> *const c_char {
    // SAFETY: NULL or a live backbone.
    guard_or(c"".as_ptr(), || {
        unsafe { backbone.as_ref() }.map_or(c"".as_ptr(), |b| b.graph_sha256.as_ptr())
    })
}

/// Embeds `n` texts (`texts[i]` of `lens[i]` bytes, or NUL-terminated when `lens` is NULL) into
/// `out`, row-major `n x dim` L2-normalized floats; `cap` is `out`'s length in floats and must
/// be at least `n * tandem_backbone_dim(backbone)`. `out` is written only on success.
/// Thread-safe: many threads may embed with one backbone at once.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, BUFFER_TOO_SMALL, TOKENIZER, ONNX.
///
/// Ownership: texts are borrowed for the call; `out` is the caller's.
/// Thread safety: safe from many threads at once on one backbone.
#[no_mangle]
pub unsafe extern "C" fn tandem_backbone_embed(
    backbone: *const tandem_backbone,
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    out: *mut f32,
    cap: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let b = unsafe { handle(backbone, "backbone") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        let needed = n * b.inner.dim();
        let dst = unsafe { floats_out(out, cap, needed) }?;
        let emb = b.inner.embed(&texts)?;
        dst.copy_from_slice(emb.as_slice().ok_or_else(|| {
            crate::Error::new(crate::ErrorKind::Internal, "embeddings not contiguous")
        })?);
        Ok(())
    })
}
