//! Version and health information.

use std::ffi::c_char;

use super::options::tandem_options;
use super::{guard, guard_or, into_c_string, out_ptr, tandem_error, write_out};

/// The C ABI version: bumped on any incompatible change to this header's functions or types.
pub const TANDEM_ABI_VERSION: u32 = 1;

/// tandem's version (`"0.1.0"`), a static string: never free it.
///
/// Ownership: static string, never freed.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn tandem_version() -> *const c_char {
    static V: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    guard_or(c"".as_ptr(), || {
        V.get_or_init(|| super::c_string(crate::VERSION)).as_ptr()
    })
}

/// The ABI version this library implements (`TANDEM_ABI_VERSION` of its header). A host built
/// against another ABI version should refuse to run.
///
/// Ownership: nothing is allocated.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn tandem_abi_version() -> u32 {
    TANDEM_ABI_VERSION
}

/// Checks the ONNX Runtime library, execution providers, backbone files (sha256) and that every
/// graph loads and embeds, with `options` (NULL for the defaults). Writes a JSON report
/// `{"ok": bool, "checks": [{"name", "ok", "detail"}], "execution_providers": [...]}` to `*out`,
/// freed with `tandem_string_free`. Failed checks are in the report, not errors.
/// Errors: NULL_ARGUMENT (`out`).
///
/// Ownership: `options` is borrowed for the call; the caller owns `*out`.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_doctor_json(
    options: *const tandem_options,
    out: *mut *mut c_char,
) -> *mut tandem_error {
    guard(|| {
        out_ptr(out, "out")?;
        // SAFETY: NULL or live options.
        let report = match unsafe { options.as_ref() } {
            Some(o) => crate::doctor::doctor(&o.dir(), &o.backbone),
            None => {
                crate::doctor::doctor(&crate::home::default_backbone_dir(), &Default::default())
            }
        };
        let json = serde_json::to_string(&report)
            .map_err(|e| crate::Error::new(crate::ErrorKind::Internal, e.to_string()))?;
        // SAFETY: checked above.
        unsafe { write_out(out, into_c_string(&json)) };
        Ok(())
    })
}
