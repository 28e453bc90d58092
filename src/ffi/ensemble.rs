//! Ensembles: several bundles with the same tasks predicting together on one backbone.

use std::ffi::c_char;

use super::model::{aggregation as aggregation_of, open_model, tandem_model};
use super::options::tandem_options;
use super::predictions::tandem_predictions;
use super::{
    groups_arg, guard, guard_or, handle, out_ptr, path_of, strs_arg, tandem_error, write_out,
};
use crate::ensemble::Ensemble;
use crate::error::Error;
use crate::model::Model;

/// Several bundles with the same tasks predicting together: each task's probabilities (or
/// values) are the mean of the members', and labels are decided on them as one model's would
/// be, with each binary and multi-label threshold the mean of the members' tuned ones. Members
/// on one loaded backbone share its run: texts are embedded once for all of them. Immutable: a
/// `const tandem_ensemble *` may be used from many threads at once.
pub struct tandem_ensemble {
    inner: Ensemble,
}

fn boxed(members: Vec<Model>) -> crate::Result<*mut tandem_ensemble> {
    let inner = Ensemble::new(members)?;
    Ok(Box::into_raw(Box::new(tandem_ensemble { inner })))
}

/// Loads the `n` bundles in directories `dirs` (`dirs[i]` of `lens[i]` bytes of UTF-8, or
/// NUL-terminated when `lens` is NULL) as one ensemble, as `tandem predict --model A --model B`
/// does: the first opens on the backbone it records, as `tandem_model_open` opens it with
/// `options` (NULL: the defaults), and the others load onto that same loaded backbone (a bundle
/// with a fine-tuned backbone of its own runs on that one). The bundles must have the same
/// tasks: the same names, kinds and labels in the same order. Writes the ensemble to `*out`, to
/// free with `tandem_ensemble_free`; it owns its backbone.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (`n` is 0, an empty directory, or a
/// bundle with other tasks than the first: the message names both), NOT_FOUND (no bundle
/// there), FORMAT, BACKBONE_MISMATCH (a bundle trained on another backbone than the first, or
/// whose backbone is not installed), ONNX, RUNTIME_LOAD.
///
/// Ownership: `dirs`, `lens` and `options` are borrowed for the call; the caller owns `*out`.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_ensemble_open(
    dirs: *const *const c_char,
    lens: *const usize,
    n: usize,
    options: *const tandem_options,
    out: *mut *mut tandem_ensemble,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let dirs = unsafe { strs_arg(dirs, lens, n, "dirs") }?;
        out_ptr(out, "out")?;
        if dirs.is_empty() {
            return Err(Error::invalid(
                "an ensemble needs at least one bundle (`n` is 0)",
            ));
        }
        let dirs = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| path_of(d, &format!("dirs[{i}]")))
            .collect::<crate::Result<Vec<_>>>()?;
        // SAFETY: `options` is NULL or live options, as documented.
        let first = unsafe { open_model(&dirs[0], options) }?;
        let shared = std::sync::Arc::clone(first.backbone());
        let mut members = vec![first];
        for dir in &dirs[1..] {
            members.push(Model::load(dir, std::sync::Arc::clone(&shared))?);
        }
        let e = boxed(members)?;
        unsafe { write_out(out, e) };
        Ok(())
    })
}

/// An ensemble of the `n` models `models[0..n]` (loaded with `tandem_model_load` or
/// `tandem_model_open`), which must have the same tasks: the same names, kinds and labels in
/// the same order. Members on one loaded backbone (models loaded onto one `tandem_backbone`)
/// share its run. The ensemble takes the heads each model serves at this call: later hot swaps
/// into a model do not change it (build a new ensemble to follow them). Writes the ensemble to
/// `*out`, to free with `tandem_ensemble_free`.
/// Errors: NULL_ARGUMENT (`models`, or one of them, is NULL), INVALID_ARGUMENT (`n` is 0, or a
/// model with other tasks than the first: the message names both).
///
/// Ownership: the models are borrowed for the call; the ensemble shares their backbones and
/// heads, so they may be freed before it. The caller owns `*out`.
/// Thread safety: safe to call from any thread, while other threads use the models.
#[no_mangle]
pub unsafe extern "C" fn tandem_ensemble_new(
    models: *const *const tandem_model,
    n: usize,
    out: *mut *mut tandem_ensemble,
) -> *mut tandem_error {
    guard(|| {
        let ptrs = if n == 0 {
            &[][..]
        } else {
            // SAFETY: the caller promises an array of `n` model pointers.
            unsafe { handle(models, "models") }?;
            unsafe { std::slice::from_raw_parts(models, n) }
        };
        let members = ptrs
            .iter()
            .enumerate()
            // SAFETY: each NULL or a live model, as documented.
            .map(|(i, &m)| {
                Ok(unsafe { handle(m, &format!("models[{i}]")) }?
                    .inner
                    .snapshot())
            })
            .collect::<crate::Result<Vec<_>>>()?;
        out_ptr(out, "out")?;
        let e = boxed(members)?;
        unsafe { write_out(out, e) };
        Ok(())
    })
}

/// Frees an ensemble. NULL is a no-op.
///
/// Ownership: consumes the ensemble (the models it was built from are not affected).
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_ensemble_free(ensemble: *mut tandem_ensemble) {
    // SAFETY: a pointer from `tandem_ensemble_open` or `_new`, freed once.
    unsafe { super::free_box(ensemble) }
}

/// The number of members. 0 for NULL.
///
/// Ownership: borrows `ensemble`.
/// Thread safety: safe from many threads at once on one ensemble.
#[no_mangle]
pub unsafe extern "C" fn tandem_ensemble_member_count(ensemble: *const tandem_ensemble) -> usize {
    // SAFETY: NULL or a live ensemble.
    guard_or(0, || {
        unsafe { ensemble.as_ref() }.map_or(0, |e| e.inner.members().len())
    })
}

/// Predicts every task for `n` texts (`texts[i]` of `lens[i]` bytes, or NUL-terminated when
/// `lens` is NULL) with every member, averages their probabilities (or values), decides labels
/// on the mean thresholds, and writes the results to `*out`, to free with
/// `tandem_predictions_free` (read it with the `tandem_predictions_*` accessors, as a model's;
/// its heads version is 0).
/// Errors: NULL_ARGUMENT, INVALID_UTF8, TOKENIZER, ONNX.
///
/// Ownership: texts are borrowed for the call; the caller owns `*out`.
/// Thread safety: safe from many threads at once on one ensemble.
#[no_mangle]
pub unsafe extern "C" fn tandem_ensemble_predict(
    ensemble: *const tandem_ensemble,
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    out: *mut *mut tandem_predictions,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let e = unsafe { handle(ensemble, "ensemble") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        out_ptr(out, "out")?;
        let rows = e.inner.predict(&texts)?.into_iter().map(|p| (None, p));
        let p = tandem_predictions::of_tasks(0, e.inner.tasks(), rows.collect());
        unsafe { write_out(out, Box::into_raw(Box::new(p))) };
        Ok(())
    })
}

/// One prediction per group, as `tandem_model_predict_groups` makes them, from the members'
/// averaged outputs: text `i` belongs to group `groups[i]` (`group_lens[i]` bytes, or
/// NUL-terminated when `group_lens` is NULL), and each group's averaged outputs are combined by
/// `aggregation` (`TANDEM_AGGREGATE_*`, decided on the mean thresholds). Rows come back in
/// sorted group order; `tandem_predictions_group` gives each row's key.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (unknown aggregation), TOKENIZER, ONNX.
///
/// Ownership: texts and keys are borrowed for the call; the caller owns `*out`.
/// Thread safety: safe from many threads at once on one ensemble.
#[no_mangle]
pub unsafe extern "C" fn tandem_ensemble_predict_groups(
    ensemble: *const tandem_ensemble,
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
        let e = unsafe { handle(ensemble, "ensemble") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        let groups = unsafe { groups_arg(groups, group_lens, n) }?;
        out_ptr(out, "out")?;
        let how = aggregation_of(aggregation)?;
        let rows = e.inner.predict_groups(&texts, &groups, how)?;
        let rows = rows.into_iter().map(|(g, p)| (Some(g), p)).collect();
        let p = tandem_predictions::of_tasks(0, e.inner.tasks(), rows);
        unsafe { write_out(out, Box::into_raw(Box::new(p))) };
        Ok(())
    })
}
