//! On-device training: create from a backbone and a JSON spec, add examples, train with a
//! progress/cancel callback, evaluate, save.

use std::ffi::{c_char, c_void, CString};

use super::backbone::tandem_backbone;
use super::{
    guard, guard_or, handle, handle_mut, into_c_string, out_ptr, path_arg, str_arg, strs_arg,
    tandem_error, write_out,
};
use crate::error::{Error, ErrorKind, Result};
use crate::train::{EpochRecord, Trainer};

/// Progress callback for `tandem_trainer_train`: `stage` is `"embed"` (then `epoch` counts
/// chunks of texts embedded and the losses are NaN), `"stage1"`, `"stage2"`, `"joint"`, ...,
/// and last `"thresholds"` (one report per binary or multi-label task whose decision thresholds
/// are tuned; losses NaN); `epoch` is 0-based out of `epochs`. `stage` is valid only during the call. Return `false` to
/// cancel: training stops with TANDEM_ERR_CANCELLED and the trainer keeps its examples and its
/// previously trained heads. Called on the thread that called `tandem_trainer_train`. It must
/// return normally: no C++ exception, Go panic or longjmp may unwind through tandem's frames.
/// Cancelling takes effect at the next report (every 256 texts embedded, every epoch, every
/// task's thresholds).
pub type tandem_progress_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        stage: *const c_char,
        epoch: u32,
        epochs: u32,
        train_loss: f32,
        valid_loss: f32,
    ) -> bool,
>;

/// The host's progress callback as a training progress closure (no callback: never cancels).
///
/// # Safety
/// `progress`, when set, must be safe to call with `user_data` for as long as the closure lives.
pub(crate) unsafe fn c_progress(
    progress: tandem_progress_fn,
    user_data: *mut c_void,
) -> impl FnMut(&EpochRecord) -> bool {
    move |r: &EpochRecord| -> bool {
        let Some(f) = progress else { return true };
        let stage = CString::new(r.stage.as_str()).unwrap_or_default();
        // SAFETY: the host's callback with the host's user_data, as the caller promised.
        unsafe {
            f(
                user_data,
                stage.as_ptr(),
                u32::try_from(r.epoch).unwrap_or(u32::MAX),
                u32::try_from(r.epochs).unwrap_or(u32::MAX),
                r.train_loss,
                r.valid_loss,
            )
        }
    }
}

/// A trainer: labelled examples in, heads out. Use from one thread at a time.
pub struct tandem_trainer {
    pub(crate) inner: Trainer,
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
}

/// The labels JSON argument, parsed.
///
/// # Safety
/// As `str_arg`: `ptr` is NULL (with `len` 0) or points to `len` readable bytes.
unsafe fn labels_arg(ptr: *const c_char, len: usize) -> Result<serde_json::Value> {
    // SAFETY: forwarded contract of the calling export.
    let text = unsafe { str_arg(ptr, len, "labels_json") }?;
    serde_json::from_str(text).map_err(|e| Error::invalid(format!("labels_json: {e}")))
}

/// The body of both add-example exports.
unsafe fn add(
    trainer: *mut tandem_trainer,
    text: *const c_char,
    text_len: usize,
    labels_json: *const c_char,
    labels_len: usize,
    validation: bool,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: forwarded contract of the exports.
        let t = unsafe { handle_mut(trainer, "trainer") }?;
        let text = unsafe { str_arg(text, text_len, "text") }?;
        let labels = unsafe { labels_arg(labels_json, labels_len) }?;
        if validation {
            t.inner.add_validation_example(text, &labels)
        } else {
            t.inner.add_example(text, &labels)
        }
    })
}

/// Creates a trainer on `backbone` from a JSON spec (`len` bytes):
/// `{"tasks": [{"name": "topic", "kind": "multiclass"}, {"name": "spam", "kind": "binary",
/// "positive": "spam"}], "config": {...}, "embedding_cache": true}`. Kinds: multiclass, binary,
/// multilabel, regression. `config` takes the keys of the TOML training config (mode, seed,
/// stages, losses...; unknown keys are errors naming the key). `embedding_cache` (default true)
/// keeps embeddings in the on-disk cache; `"config": {"cache": {"max_size": "500MB"}}` (bytes or
/// a string with a unit; 0, the default, for none) caps that cache: while embedding, training
/// removes the least recently used cache files until the caches fit (`tandem_cache_prune` prunes
/// at any other time). `"recipe": "auto"` chooses the recipe (mode and head type) by validation
/// data at each `tandem_trainer_train`, as `tandem train` without flags does, within
/// `"budget_seconds"` (default 60; the final fit is not counted), fine-tuning the backbone's
/// top 2 layers among the candidates unless `"finetune": false`; the default, `"config"`,
/// trains the config's mode and head. `"config": {"backbone": {"trainable_layers": 2}}`
/// fine-tunes the backbone's top 2 layers with the heads (`lr`, `weight_decay`,
/// `warmup_fraction`, `clip_norm`, `unfreeze` = "partial" or "progressive" with
/// `heads_only_epochs` and `epochs_per_layer`, `contrastive_epochs` and `contrastive_pairs` for a
/// contrastive warm-up, as the TOML `[backbone]` table), with the measured fine-tuning recipe
/// for what the config does not set (mode "embedding_only", 5 head-stage epochs, label
/// smoothing 0.1); the saved bundle then carries the fine-tuned backbone (fp32 and int8
/// graphs), which `tandem_model_load` runs. `"checkpoints": {"dir": "...", "keep_top": 3,
/// "every": 0}` saves bundles of the K best epochs (by the last stage's `monitor`, e.g.
/// `"config": {"head": {"stage": {"monitor": "macro_f1"}}}`) and of every N-th epoch into a new
/// or empty directory while each `tandem_trainer_train` runs, listed in its
/// `checkpoints.json` (recipe "config" only). Writes the trainer to `*out`, to free with
/// `tandem_trainer_free`; it keeps the backbone alive.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (bad spec), IO (embedding cache).
///
/// Ownership: `backbone` is shared (the trainer keeps it alive); the spec is copied; the caller owns `*out`.
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_new(
    backbone: *const tandem_backbone,
    spec_json: *const c_char,
    len: usize,
    out: *mut *mut tandem_trainer,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let b = unsafe { handle(backbone, "backbone") }?;
        let spec = unsafe { str_arg(spec_json, len, "spec_json") }?;
        out_ptr(out, "out")?;
        let inner = Trainer::from_json(b.inner.clone(), spec)?;
        unsafe { write_out(out, Box::into_raw(Box::new(tandem_trainer { inner }))) };
        Ok(())
    })
}

/// Frees a trainer. NULL is a no-op.
///
/// Ownership: consumes the trainer.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_free(trainer: *mut tandem_trainer) {
    // SAFETY: a pointer from `tandem_trainer_new`, freed once.
    unsafe { super::free_box(trainer) }
}

/// Adds a training example: `text` (`text_len` bytes) and `labels_json` (`labels_len` bytes), a
/// JSON object with one label per task, e.g. `{"topic": "sport", "spam": false}`; multi-label
/// tasks take a list, regression a number. A malformed example is rejected whole.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (bad JSON, unknown or missing task, a
/// label of the wrong shape).
///
/// Ownership: text and labels are copied.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_add_example(
    trainer: *mut tandem_trainer,
    text: *const c_char,
    text_len: usize,
    labels_json: *const c_char,
    labels_len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe { add(trainer, text, text_len, labels_json, labels_len, false) }
}

/// Adds a validation example (same arguments as `tandem_trainer_add_example`). Without any,
/// training holds out a stratified fraction (`config.valid_fraction`) of the training examples.
/// Errors: as `tandem_trainer_add_example`.
///
/// Ownership: text and labels are copied.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_add_validation_example(
    trainer: *mut tandem_trainer,
    text: *const c_char,
    text_len: usize,
    labels_json: *const c_char,
    labels_len: usize,
) -> *mut tandem_error {
    // SAFETY: forwarded contract of this function.
    unsafe { add(trainer, text, text_len, labels_json, labels_len, true) }
}

/// Adds a text without labels (`text_len` bytes of UTF-8), for distillation: with teacher
/// bundles named in the spec's config (`"distill": {"teachers": ["dir", ...]}`), it joins the
/// training split at `tandem_trainer_train`, labelled by the teachers' decisions and carrying
/// their outputs as soft targets; training without a teacher fails with INVALID_ARGUMENT.
/// Errors: NULL_ARGUMENT, INVALID_UTF8.
///
/// Ownership: the text is copied.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_add_unlabelled(
    trainer: *mut tandem_trainer,
    text: *const c_char,
    text_len: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: `trainer` is NULL or a live trainer, `text` NULL or `text_len` readable bytes,
        // as documented.
        let t = unsafe { handle_mut(trainer, "trainer") }?;
        let text = unsafe { str_arg(text, text_len, "text") }?;
        t.inner.add_unlabelled(text);
        Ok(())
    })
}

/// Unlabelled texts added so far (`tandem_trainer_add_unlabelled`); 0 for NULL.
///
/// Ownership: borrows `trainer`.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_unlabelled_count(trainer: *const tandem_trainer) -> usize {
    // SAFETY: NULL or a live trainer.
    guard_or(0, || {
        unsafe { trainer.as_ref() }.map_or(0, |t| t.inner.unlabelled_count())
    })
}

/// Training examples added so far; 0 for NULL.
///
/// Ownership: borrows `trainer`.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_example_count(trainer: *const tandem_trainer) -> usize {
    // SAFETY: NULL or a live trainer.
    guard_or(0, || {
        unsafe { trainer.as_ref() }.map_or(0, |t| t.inner.len())
    })
}

/// Validation examples added so far; 0 for NULL.
///
/// Ownership: borrows `trainer`.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_validation_count(trainer: *const tandem_trainer) -> usize {
    // SAFETY: NULL or a live trainer.
    guard_or(0, || {
        unsafe { trainer.as_ref() }.map_or(0, |t| t.inner.validation_len())
    })
}

/// Trains heads on the examples added so far (embedding each distinct text once, through the
/// embedding cache), seeded and deterministic. `progress` (may be NULL) is called with
/// `user_data` after each chunk of embeddings and each epoch; returning false cancels. On any
/// error, including cancellation, the trainer keeps its examples and its previous heads.
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (no examples, too few to split, bad labels),
/// CANCELLED, ONNX, TOKENIZER.
///
/// Ownership: `user_data` is passed through untouched; tandem never frees it.
/// Thread safety: use one trainer from one thread at a time. The callback runs on the calling thread.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_train(
    trainer: *mut tandem_trainer,
    progress: tandem_progress_fn,
    user_data: *mut c_void,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let t = unsafe { handle_mut(trainer, "trainer") }?;
        // SAFETY: the host's callback and user_data, as documented.
        let mut cb = unsafe { c_progress(progress, user_data) };
        t.inner.train(&mut cb).map(|_| ())
    })
}

/// The last training run's report as JSON (`recipe`, `mode`, `stages` with per-epoch history,
/// `valid_metrics` with the metrics `tandem eval` prints, timings, sizes; after a recipe search
/// also `selection`, every candidate's validation score, and `reason`, one sentence on the
/// choice), written to `*out` and freed with `tandem_string_free`.
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (not trained yet).
///
/// Ownership: the caller owns `*out`.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_report_json(
    trainer: *const tandem_trainer,
    out: *mut *mut c_char,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let t = unsafe { handle(trainer, "trainer") }?;
        out_ptr(out, "out")?;
        let json = to_json(&t.inner.report_json()?)?;
        unsafe { write_out(out, into_c_string(&json)) };
        Ok(())
    })
}

/// Evaluates the trained heads on `n` labelled texts (`texts`/`lens` as for predict; labels as
/// for `tandem_trainer_add_example`, `labels_lens` NULL for NUL-terminated) and writes a metrics
/// JSON object to `*out` (`accuracy`, `macro_f1`, `micro_f1`, per-class details; or `mae`,
/// `rmse`, `pearson`; every task under `tasks`), freed with `tandem_string_free`.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (not trained, bad or unknown labels,
/// n == 0), ONNX.
///
/// Ownership: texts and labels are borrowed for the call; the caller owns `*out`.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_evaluate(
    trainer: *mut tandem_trainer,
    texts: *const *const c_char,
    lens: *const usize,
    labels_json: *const *const c_char,
    labels_lens: *const usize,
    n: usize,
    out: *mut *mut c_char,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let t = unsafe { handle_mut(trainer, "trainer") }?;
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        let labels = unsafe { strs_arg(labels_json, labels_lens, n, "labels_json") }?
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| Error::invalid(format!("labels_json[{i}]: {e}")))
            })
            .collect::<Result<Vec<serde_json::Value>>>()?;
        out_ptr(out, "out")?;
        let json = to_json(&t.inner.evaluate(&texts, &labels)?)?;
        unsafe { write_out(out, into_c_string(&json)) };
        Ok(())
    })
}

/// Saves the trained heads as a bundle in directory `dir` (`len` bytes), atomically: written to
/// a temporary directory, then renamed, so a crash never leaves a partial bundle. An existing
/// bundle there is replaced.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (not trained yet), IO.
///
/// Ownership: `dir` is borrowed for the call.
/// Thread safety: use one trainer from one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn tandem_trainer_save(
    trainer: *const tandem_trainer,
    dir: *const c_char,
    len: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let t = unsafe { handle(trainer, "trainer") }?;
        let dir = unsafe { path_arg(dir, len, "dir") }?;
        t.inner.save(&dir)
    })
}
