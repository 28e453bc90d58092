//! Pre-training a metadata encoder on unlabelled texts, as `tandem pretrain` does: texts in, an
//! encoder bundle out, for a trainer's `"config": {"metadata": {"init_encoder": DIR}}`.

use std::ffi::{c_char, c_void};

use super::trainer::{c_progress, tandem_progress_fn};
use super::{guard, into_c_string, path_arg, str_arg, strs_arg, tandem_error, write_out};
use crate::error::{Error, ErrorKind};
use crate::train::pretrain::{pretrain_texts, save_encoder, summary};
use crate::train::TrainConfig;

/// Pre-trains a metadata encoder on the `n` unlabelled texts `texts` (`texts[i]` of `lens[i]`
/// bytes, or NUL-terminated when `lens` is NULL) and saves it atomically as an encoder bundle
/// in `out_dir` (`out_dir_len` bytes; a new or empty directory, or a bundle to replace). The
/// encoder learns self-supervised targets (`metadata.stage1_targets`: masked_features and
/// feature groups such as length and readability; default masked_features, length,
/// readability) and early-stops on a share of the texts (`valid_fraction`) held out at random
/// by `seed`. `config` (`config_len` bytes) is a training config as JSON or TOML text, the
/// keys of `tandem train --config` (`seed`, `valid_fraction`, `[metadata]` for the encoder's
/// shape, `mask_rate`, `stage1_targets` and `[metadata.stage]`); NULL with `config_len` 0 gives
/// the defaults. `progress` (may be NULL) reports each epoch as stage `"pretrain"` and cancels
/// when it returns `false`, as for `tandem_trainer_train`. When `report` is not NULL, a JSON
/// summary (`best_epoch`, `epochs_run`, `valid_loss`, `target_losses`, `n_train`, `n_valid`,
/// `train_seconds`) is written to `*report`, freed with `tandem_string_free`. The same seed
/// on the same texts gives the same encoder, here and through `tandem pretrain`. An encoder
/// bundle holds no tasks: `tandem_model_load` refuses it; trainers start from it.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (bad config, `labels` among the
/// targets, too few texts to hold some out, an empty `out_dir`), IO (the directory), CANCELLED
/// (nothing is written).
///
/// Ownership: texts, config and the path are borrowed for the call; `user_data` is passed
/// through untouched; the caller owns `*report`.
/// Thread safety: safe to call from any thread; the callback runs on the calling thread.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // one flat C signature: texts, config, target, callback
pub unsafe extern "C" fn tandem_pretrain_encoder(
    texts: *const *const c_char,
    lens: *const usize,
    n: usize,
    config: *const c_char,
    config_len: usize,
    out_dir: *const c_char,
    out_dir_len: usize,
    progress: tandem_progress_fn,
    user_data: *mut c_void,
    report: *mut *mut c_char,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let texts = unsafe { strs_arg(texts, lens, n, "texts") }?;
        let config_text = unsafe { str_arg(config, config_len, "config") }?;
        let config = if config_text.trim().is_empty() {
            TrainConfig::default()
        } else {
            TrainConfig::parse(config_text)?
        };
        let dir = unsafe { path_arg(out_dir, out_dir_len, "out_dir") }?;
        crate::bundle::check_target(&dir)?;
        // SAFETY: the host's callback and user_data, as documented.
        let mut cb = unsafe { c_progress(progress, user_data) };
        let trained = pretrain_texts(&texts, None, &config, &mut cb)?;
        save_encoder(&dir, &trained, &config)?;
        if !report.is_null() {
            let json = serde_json::to_string(&summary(&trained))
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
            // SAFETY: checked non-null; the caller owns the storage.
            unsafe { write_out(report, into_c_string(&json)) };
        }
        Ok(())
    })
}
