//! Pre-training a metadata encoder on unlabelled texts (`tandem pretrain`): stage 1 on
//! self-supervised targets alone ([`super::pretext`]), saved as an encoder bundle that
//! `train --init-encoder` starts from. Pre-train once on a large corpus, reuse it for every
//! task.
//!
//! An encoder bundle is an ordinary bundle (same files, same checks at load) with mode
//! `metadata_only`, the encoder and its feature normalizer, and no tasks: serving refuses it,
//! naming what it is for. It names no backbone: the metadata side never reads one.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::config::{Mode, TrainConfig};
use super::pretext::Pretext;
use super::run::{check_finite, stage_seed, TrainReport, Trained};
use super::stage::{fit, Phase, Progress, StageData};
use crate::bundle::{self, BackboneRef};
use crate::error::{Error, Result};
use crate::heads::{Architecture, Heads, Network, Normalizer};

/// Pre-trains a metadata encoder on the raw features of unlabelled texts, `train` (every
/// extracted feature, in the extractor's order), early-stopping on `valid`'s self-supervised
/// loss. `config.metadata` gives the encoder's shape, its stage (`[metadata.stage]`), the
/// targets (`stage1_targets`, which must not name `labels`) and `mask_rate`; `config.seed`
/// makes it reproducible. The result has no tasks.
pub fn pretrain(
    train: ArrayView2<'_, f32>,
    valid: ArrayView2<'_, f32>,
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<Trained> {
    let meta = &config.metadata;
    meta.validate_targets()?;
    if meta.has_labels() || !meta.has_pretext() {
        return Err(Error::invalid(format!(
            "pre-training has no labels: metadata.stage1_targets must name self-supervised \
             targets only (masked_features, or feature groups such as length and \
             readability), not {:?}",
            meta.stage1_targets
        )));
    }
    if meta.top_k > 0 {
        return Err(Error::invalid(
            "metadata.top_k ranks features by their information about the labels, and \
             pre-training has none: set it to 0 (the encoder reads every feature)",
        ));
    }
    let width = crate::metadata::num_features();
    for (name, x) in [("training", &train), ("validation", &valid)] {
        if x.nrows() == 0 {
            return Err(Error::invalid(format!(
                "pre-training needs {name} texts; none were given"
            )));
        }
        if x.ncols() != width {
            return Err(Error::invalid(format!(
                "{name} features have {} columns; the extractor gives {width}",
                x.ncols()
            )));
        }
        check_finite(*x, &format!("{name} metadata features"))?;
    }
    let normalizer = Normalizer::fit(train, &[], 0);
    let (feats, valid_feats) = (normalizer.transform(train), normalizer.transform(valid));
    let pretext = Pretext::new(meta, &normalizer.selected, stage_seed(config, 5))?
        .ok_or_else(|| Error::invalid("no self-supervised target to pre-train on"))?;
    let shaped = TrainConfig {
        mode: Mode::MetadataOnly,
        ..config.clone()
    };
    let arch = Architecture::from_config(&shaped, 0, feats.ncols(), vec![], vec![]);
    let mut net = Network::new(arch, &mut ChaCha8Rng::seed_from_u64(config.seed))?;
    net.aux_heads = pretext.heads(net.arch.code_dim, &net.arch.encoder, stage_seed(config, 6))?;
    let no_emb = |n: usize| Array2::<f32>::zeros((n, 0));
    let (emb, valid_emb) = (no_emb(feats.nrows()), no_emb(valid_feats.nrows()));
    let data = StageData {
        emb: emb.view(),
        feats: feats.view(),
        objectives: &[],
        valid_emb: valid_emb.view(),
        valid_feats: valid_feats.view(),
        valid_objectives: &[],
        tokens: None,
        valid_tokens: None,
        hidden: None,
        task_names: &[],
        pretext: Some(&pretext),
    };
    let stage = fit(
        "pretrain",
        &mut net,
        Phase::Metadata,
        &data,
        &meta.stage,
        config.loss.multitask,
        stage_seed(config, 1),
        progress,
    )?;
    // The targets' heads only taught the encoder.
    net.aux_heads.clear();
    let best = stage
        .history
        .iter()
        .find(|r| r.epoch == stage.best_epoch)
        .map(|r| r.task_losses.clone())
        .unwrap_or_default();
    let per_target: serde_json::Map<String, serde_json::Value> = pretext
        .names()
        .into_iter()
        .zip(best)
        .map(|(n, l)| (n, json!(l)))
        .collect();
    let report = TrainReport {
        mode: Mode::MetadataOnly,
        valid_metrics: json!({
            "pretext_valid_loss": stage.best_valid_loss,
            "pretext_target_losses": per_target,
        }),
        train_seconds: stage.seconds,
        seconds_to_best: stage.seconds_to_best,
        stages: vec![stage],
        n_train: train.nrows(),
        n_valid: valid.nrows(),
        linear: None,
    };
    Ok(Trained {
        heads: Heads::untuned(net, Some(normalizer), &[]),
        report,
        top: None,
    })
}

/// [`pretrain`] on texts: extracts their metadata features and early-stops on `valid`, or,
/// without it, on a share of `texts` (`config.valid_fraction`) held out at random by
/// `config.seed`. The CLI's `tandem pretrain` and the C ABI's `tandem_pretrain_encoder` both
/// come here, so one seed gives one encoder through either.
pub fn pretrain_texts(
    texts: &[&str],
    valid: Option<&[&str]>,
    config: &TrainConfig,
    progress: Progress<'_>,
) -> Result<Trained> {
    config.metadata.validate_targets()?;
    let (train, valid): (Vec<&str>, Vec<&str>) = match valid {
        Some(v) => (texts.to_vec(), v.to_vec()),
        None => {
            // No labels to stratify on: one class, so the split is a seeded random one.
            let one = vec![String::new(); texts.len()];
            let (t, v) = crate::data::stratified_split(&one, config.valid_fraction, config.seed);
            if t.is_empty() || v.is_empty() {
                return Err(Error::invalid(format!(
                    "{} texts cannot be split into training and validation texts \
                     (valid_fraction {}): give more, or validation texts",
                    texts.len(),
                    config.valid_fraction
                )));
            }
            let pick = |idx: &[usize]| idx.iter().map(|&i| texts[i]).collect();
            (pick(&t), pick(&v))
        }
    };
    let (train_feats, valid_feats) = (
        crate::metadata::extract_batch(&train),
        crate::metadata::extract_batch(&valid),
    );
    pretrain(train_feats.view(), valid_feats.view(), config, progress)
}

/// A pre-training run in brief, for the CLI's `--json` and the C ABI's report: the best epoch
/// (0-based) of those run, its validation loss and each target's, the texts used, and the
/// seconds spent.
pub fn summary(trained: &Trained) -> serde_json::Value {
    let r = &trained.report;
    let (best_epoch, epochs_run, valid_loss) = r.stages.first().map_or((0, 0, f32::NAN), |s| {
        (s.best_epoch, s.epochs_run, s.best_valid_loss)
    });
    json!({
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "valid_loss": valid_loss,
        "target_losses": r.valid_metrics["pretext_target_losses"],
        "n_train": r.n_train,
        "n_valid": r.n_valid,
        "train_seconds": r.train_seconds,
    })
}

/// Saves a pre-trained encoder (from [`pretrain`]) as an encoder bundle in `dir`, atomically.
pub fn save_encoder(dir: &Path, trained: &Trained, config: &TrainConfig) -> Result<()> {
    if !trained.heads.tasks.is_empty() {
        return Err(Error::invalid(
            "an encoder bundle holds no tasks: save trained heads as a bundle instead",
        ));
    }
    let manifest = super::manifest::manifest_for(
        trained,
        BackboneRef::none(),
        &crate::metadata::feature_names(),
        config,
    );
    bundle::save(
        dir,
        &manifest,
        &trained.heads.network.weights(),
        config.f16_weights,
    )
}
