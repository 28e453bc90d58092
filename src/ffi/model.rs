//! Serving: load a bundle, predict (per text or per group), hot-swap heads.

use std::ffi::c_char;

use super::backbone::tandem_backbone;
use super::options::tandem_options;
use super::predictions::tandem_predictions;
use super::trainer::tandem_trainer;
use super::{
    groups_arg, guard, guard_or, handle, into_c_string, out_ptr, path_arg, strs_arg, tandem_error,
    write_out,
};
use crate::error::{Error, ErrorKind};
use crate::eval::Aggregation;
use crate::model::{Heads, Model};

/// Group aggregation: the mean of each probability (or value).
pub const TANDEM_AGGREGATE_MEAN: u32 = 0;
/// Group aggregation: the median of each probability (or value).
pub const TANDEM_AGGREGATE_MEDIAN: u32 = 1;
/// Group aggregation: each text votes for its top class (multiclass), or for every output that
/// reaches its tuned threshold (binary, multi-label); the vote share per class or output, and a
/// label where more than half voted for it (values average).
pub const TANDEM_AGGREGATE_MAJORITY: u32 = 2;
/// Group aggregation: the vote shares of `TANDEM_AGGREGATE_MAJORITY`, decided as probabilities
/// on the tuned thresholds (binary, multi-label): a group can be positive with a minority of
/// positive texts when the threshold is low. Multiclass as majority; values average.
pub const TANDEM_AGGREGATE_TOTAL_VOTE: u32 = 3;

/// A trained bundle on a backbone, ready to serve. A `const tandem_model *` may be used from
/// many threads at once, including `tandem_model_swap_heads`: predictions in flight finish on
/// the heads they started with.
pub struct tandem_model {
    pub(crate) inner: Model,
}

/// Loads the bundle in directory `dir` (`len` bytes of UTF-8) onto `backbone` and writes the
/// model to `*out`, to free with `tandem_model_free`. The model keeps the backbone alive.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, NOT_FOUND (no bundle there), FORMAT (unknown format or
/// corrupt weights), BACKBONE_MISMATCH (trained on another backbone).
///
/// Ownership: `backbone` is shared (the model keeps it alive); the caller owns `*out`.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_load(
    backbone: *const tandem_backbone,
    dir: *const c_char,
    len: usize,
    out: *mut *mut tandem_model,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let b = unsafe { handle(backbone, "backbone") }?;
        let dir = unsafe { path_arg(dir, len, "dir") }?;
        out_ptr(out, "out")?;
        let model = Model::load(&dir, b.inner.clone())?;
        unsafe { write_out(out, Box::into_raw(Box::new(tandem_model { inner: model }))) };
        Ok(())
    })
}

/// Loads the bundle in directory `dir` (`len` bytes of UTF-8) on the backbone it records, so
/// that no backbone need be loaded or named: the bundle's own fine-tuned one, else the cache's
/// backbone of the name it was trained on (as `scripts/setup.sh` installs them), else the
/// default one, with the graph variant it was trained with. `options` (NULL: the defaults)
/// give the threads, device, ONNX Runtime library and batching, and override the variant and
/// the backbone directory where they set them. Writes the model to `*out`, to free with
/// `tandem_model_free`; it owns its backbone.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, NOT_FOUND (no bundle there), FORMAT,
/// BACKBONE_MISMATCH (its backbone is not installed), ONNX, RUNTIME_LOAD.
///
/// Ownership: `options` and `dir` are borrowed for the call; the caller owns `*out`.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_open(
    dir: *const c_char,
    len: usize,
    options: *const tandem_options,
    out: *mut *mut tandem_model,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let dir = unsafe { path_arg(dir, len, "dir") }?;
        out_ptr(out, "out")?;
        let model = unsafe { open_model(&dir, options) }?;
        unsafe { write_out(out, Box::into_raw(Box::new(tandem_model { inner: model }))) };
        Ok(())
    })
}

/// The bundle in `dir` on the backbone it records, as `tandem_model_open` loads it.
///
/// # Safety
/// `options` is NULL (the defaults) or live options from `tandem_options_new`.
pub(crate) unsafe fn open_model(
    dir: &std::path::Path,
    options: *const tandem_options,
) -> crate::Result<Model> {
    if options.is_null() {
        return Model::open(dir, Default::default(), None);
    }
    // SAFETY: a non-NULL options pointer from `tandem_options_new`, as documented.
    let o = unsafe { handle(options, "options") }?;
    o.backbone.validate()?;
    let variant = o.variant_set.then_some(o.backbone.variant);
    Model::open_on(dir, o.backbone.clone(), variant, o.dir.as_deref())
}

/// Frees a model. NULL is a no-op. No other thread may be using it.
///
/// Ownership: consumes the model.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_free(model: *mut tandem_model) {
    // SAFETY: a pointer from `tandem_model_load`, freed once.
    unsafe { super::free_box(model) }
}

/// Predicts every task for `n` texts (`texts[i]` of `lens[i]` bytes, or NUL-terminated when
/// `lens` is NULL) and writes the results to `*out`, to free with `tandem_predictions_free`.
/// Thread-safe.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, TOKENIZER, ONNX.
///
/// Ownership: texts are borrowed for the call; the caller owns `*out`, which stays valid after later swaps.
/// Thread safety: safe from many threads at once on one model.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_predict(
    model: *const tandem_model,
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    out: *mut *mut tandem_predictions,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        out_ptr(out, "out")?;
        let (preds, heads) = m.inner.predict_versioned(&texts)?;
        let rows = preds.into_iter().map(|p| (None, p)).collect();
        let p = tandem_predictions::new(&heads, rows);
        unsafe { write_out(out, Box::into_raw(Box::new(p))) };
        Ok(())
    })
}

/// `tandem_model_predict` with Monte-Carlo dropout: every task's probabilities (or value) are
/// the mean of `samples` passes of the heads with dropout on, their masks drawn from `seed`
/// (the same seed and texts give the same numbers), labels are decided on that mean with the
/// tuned thresholds, and `tandem_predictions_spread` reads each number's standard deviation
/// over the passes. Costs one backbone run and `samples` head passes. Thread-safe.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (`samples` 0, or heads without
/// dropout, such as a linear head), TOKENIZER, ONNX.
///
/// Ownership: texts are borrowed for the call; the caller owns `*out`.
/// Thread safety: safe from many threads at once on one model.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_predict_sampled(
    model: *const tandem_model,
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    samples: usize,
    seed: u64,
    out: *mut *mut tandem_predictions,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        out_ptr(out, "out")?;
        let (preds, heads) = m.inner.predict_sampled(&texts, samples, seed)?;
        let rows = preds.into_iter().map(|p| (None, p)).collect();
        let p = tandem_predictions::new(&heads, rows);
        unsafe { write_out(out, Box::into_raw(Box::new(p))) };
        Ok(())
    })
}

/// One prediction per group: text `i` belongs to group `groups[i]` (`group_lens[i]` bytes, or
/// NUL-terminated when `group_lens` is NULL), e.g. an author id, and each group's outputs are
/// combined by `aggregation` (`TANDEM_AGGREGATE_*`). Rows come back in sorted group order;
/// `tandem_predictions_group` gives each row's key. Thread-safe.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (unknown aggregation), TOKENIZER, ONNX.
///
/// Ownership: texts and keys are borrowed for the call; the caller owns `*out`.
/// Thread safety: safe from many threads at once on one model.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_predict_groups(
    model: *const tandem_model,
    texts: *const *const c_char,
    lens: *const usize,
    groups: *const *const c_char,
    group_lens: *const usize,
    n: usize,
    aggregation: u32,
    out: *mut *mut tandem_predictions,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        let groups = unsafe { groups_arg(groups, group_lens, n) }?;
        out_ptr(out, "out")?;
        let how = self::aggregation(aggregation)?;
        let (preds, heads) = m.inner.predict_groups_versioned(&texts, &groups, how)?;
        let rows = preds.into_iter().map(|(g, p)| (Some(g), p)).collect();
        let p = tandem_predictions::new(&heads, rows);
        unsafe { write_out(out, Box::into_raw(Box::new(p))) };
        Ok(())
    })
}

/// The aggregation a `TANDEM_AGGREGATE_*` code names.
pub(crate) fn aggregation(code: u32) -> crate::Result<Aggregation> {
    Ok(match code {
        TANDEM_AGGREGATE_MEAN => Aggregation::Mean,
        TANDEM_AGGREGATE_MEDIAN => Aggregation::Median,
        TANDEM_AGGREGATE_MAJORITY => Aggregation::Majority,
        TANDEM_AGGREGATE_TOTAL_VOTE => Aggregation::TotalVote,
        other => return Err(Error::invalid(format!("unknown aggregation {other}"))),
    })
}

/// Installs `heads` and writes the new version to `out_version` when given.
fn swap(m: &tandem_model, heads: Heads, out_version: Option<&mut u64>) -> crate::Result<()> {
    let v = m.inner.swap_heads(heads)?;
    if let Some(out) = out_version {
        *out = v;
    }
    Ok(())
}

/// Hot-swaps the heads `trainer` last trained into `model`, without reloading the backbone,
/// and writes the new heads version to `*out_version` (may be NULL). Predictions already
/// running finish on the old heads; later ones use the new. Thread-safe with respect to
/// `model`; `trainer` must not be used by another thread during the call.
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (trainer not trained yet, or heads for another
/// embedding size), BACKBONE_MISMATCH (trainer on a different backbone graph family, or heads
/// trained with fine-tuned backbone layers, which read that backbone's embeddings: save the
/// bundle, which carries it, and load it with `tandem_model_load`).
///
/// Ownership: the heads are copied out of `trainer`, which stays usable (train it again, swap again).
/// Thread safety: safe from many threads at once on one model. `trainer` must not be in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_swap_heads(
    model: *const tandem_model,
    trainer: *const tandem_trainer,
    out_version: *mut u64,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        let t = unsafe { handle(trainer, "trainer") }?;
        if t.inner.backbone().family_sha256() != m.inner.backbone().family_sha256() {
            return Err(Error::new(
                ErrorKind::BackboneMismatch,
                "the trainer's backbone is not the model's: its heads would read other embeddings",
            ));
        }
        // SAFETY: NULL or a caller-owned u64, as documented.
        swap(m, t.inner.heads()?, unsafe { out_version.as_mut() })
    })
}

/// Hot-swaps the heads of the bundle in `dir` into `model` (checked like `tandem_model_load`),
/// writing the new heads version to `*out_version` (may be NULL). Thread-safe.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, NOT_FOUND, FORMAT, BACKBONE_MISMATCH.
///
/// Ownership: `dir` is borrowed for the call; the bundle files are not kept open.
/// Thread safety: safe from many threads at once on one model.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_swap_bundle(
    model: *const tandem_model,
    dir: *const c_char,
    len: usize,
    out_version: *mut u64,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        let dir = unsafe { path_arg(dir, len, "dir") }?;
        let heads = crate::model::load_heads(&dir, m.inner.backbone())?;
        // SAFETY: NULL or a caller-owned u64, as documented.
        swap(m, heads, unsafe { out_version.as_mut() })
    })
}

/// The version of the heads now serving (0 as loaded, +1 per swap); 0 for NULL. Thread-safe.
///
/// Ownership: borrows `model`.
/// Thread safety: safe from many threads at once on one model.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_heads_version(model: *const tandem_model) -> u64 {
    // SAFETY: NULL or a live model.
    guard_or(0, || {
        unsafe { model.as_ref() }.map_or(0, |m| m.inner.heads().version)
    })
}

/// The bundle manifest the model was loaded from (tasks, labels, thresholds, metrics,
/// provenance) as JSON. It describes the bundle as loaded: after a hot swap, the serving
/// heads' tasks and labels are read from each prediction (`tandem_predictions_task_name`,
/// `tandem_predictions_class_name`), written to `*out` and freed with `tandem_string_free`. Thread-safe.
/// Errors: NULL_ARGUMENT.
///
/// Ownership: the caller owns `*out`.
/// Thread safety: safe from many threads at once on one model.
#[no_mangle]
pub unsafe extern "C" fn tandem_model_manifest_json(
    model: *const tandem_model,
    out: *mut *mut c_char,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        out_ptr(out, "out")?;
        let json = serde_json::to_string(m.inner.manifest())
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        unsafe { write_out(out, into_c_string(&json)) };
        Ok(())
    })
}

/// Writes the model (its backbone's `variant` graph, `"fp32"`, `"opt"` or `"int8"`, followed by
/// the heads it serves now) as one ONNX graph to the file `path` (`path_len` bytes of UTF-8),
/// with `tokenizer.json` and `<stem>.tandem.json` (labels, thresholds, metadata feature names)
/// beside it; the same as `tandem export`. Inputs `input_ids`, `attention_mask` (int64) and,
/// when the heads read metadata, `metadata`; one output per task. Files are replaced
/// atomically; a different `tokenizer.json` already beside the path is refused.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (unknown variant, heads that cannot be
/// written as ONNX, another tokenizer in the way), NOT_FOUND (no such directory, or no such
/// graph in the backbone), FORMAT (a backbone graph that cannot be extended), IO.
///
/// Ownership: `path` and `variant` are borrowed for the call.
/// Thread safety: safe from many threads at once on one model (it reads a snapshot of the heads).
#[no_mangle]
pub unsafe extern "C" fn tandem_model_export_onnx(
    model: *const tandem_model,
    path: *const c_char,
    path_len: usize,
    variant: *const c_char,
    variant_len: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let m = unsafe { handle(model, "model") }?;
        let path = unsafe { path_arg(path, path_len, "path") }?;
        let variant: crate::Variant =
            unsafe { super::str_arg(variant, variant_len, "variant") }?.parse()?;
        crate::onnx::export::export(&m.inner, variant, &path)?;
        Ok(())
    })
}
