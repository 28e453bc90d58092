//! Self-supervised stage-1 targets: targets computed from the features themselves, so the
//! metadata encoder can pre-train without labels (`[metadata] stage1_targets`).
//!
//! Each row hides some of its (normalized) features, which then read 0 (their training mean),
//! and a linear head per target predicts what was hidden from the code of the rest:
//! `masked_features` hides each feature with probability `mask_rate`, and a group target
//! (`length`, `readability`, ...) hides its whole group with that probability. A target's loss
//! is the mean squared error over what it hid. The draws are a function of the seed, the epoch
//! and the row's index only, so a run is reproducible whatever the batches, and each epoch
//! hides afresh; validation uses one fixed draw, so its loss compares across epochs.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{MetadataConfig, LABELS_TARGET, MASKED_FEATURES_TARGET};
use crate::error::{Error, Result};
use crate::metadata::FeatureGroup;
use crate::nn::{Layer, Mlp, MlpConfig};

/// The draw that hides the validation rows' features (training draws are epochs).
pub(super) const VALID_DRAW: u64 = u64::MAX;

/// What one target hides, per row.
#[derive(Debug, Clone, PartialEq)]
enum Unit {
    /// Every column, each on its own.
    Features,
    /// These columns together.
    Group(Vec<usize>),
}

/// One self-supervised target.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    name: String,
    unit: Unit,
}

/// The self-supervised targets of a stage 1 over `width` normalized feature columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Pretext {
    targets: Vec<Target>,
    rate: f32,
    seed: u64,
    width: usize,
}

/// One batch with features hidden: the encoder's input and, per target, which entries of its
/// output the loss counts (1) or not (0).
pub(super) struct Hidden {
    /// The batch's features with the hidden ones at 0.
    pub input: Array2<f32>,
    /// Per target, `[rows, target width]` 0/1.
    pub masks: Vec<Array2<f32>>,
}

impl Pretext {
    /// The self-supervised targets `config.stage1_targets` names (None when it names only the
    /// labels), over the normalized columns that are the extractor's features `selected`.
    pub fn new(config: &MetadataConfig, selected: &[usize], seed: u64) -> Result<Option<Pretext>> {
        config.validate_targets()?;
        let specs = crate::metadata::feature_specs();
        let mut targets = Vec::new();
        for name in &config.stage1_targets {
            let unit = match name.as_str() {
                LABELS_TARGET => continue,
                MASKED_FEATURES_TARGET => Unit::Features,
                group => {
                    let cols: Vec<usize> = selected
                        .iter()
                        .enumerate()
                        .filter(|(_, &f)| specs.get(f).is_some_and(|s| s.group.name() == group))
                        .map(|(c, _)| c)
                        .collect();
                    if cols.is_empty() {
                        // The selection (top_k) kept none of its features: nothing to hide.
                        continue;
                    }
                    Unit::Group(cols)
                }
            };
            targets.push(Target {
                name: name.clone(),
                unit,
            });
        }
        if targets.is_empty() {
            if !config.has_labels() {
                return Err(Error::invalid(format!(
                    "metadata.stage1_targets {:?}: the selected features (metadata.top_k) \
                     include none of these groups' features, so stage 1 has nothing to train \
                     on: add \"masked_features\" or \"labels\"",
                    config.stage1_targets
                )));
            }
            return Ok(None);
        }
        if selected.is_empty() {
            return Err(Error::invalid(
                "self-supervised stage-1 targets need metadata features",
            ));
        }
        Ok(Some(Pretext {
            targets,
            rate: config.mask_rate,
            seed,
            width: selected.len(),
        }))
    }

    /// Each target's name, in order (`masked_features`, `length`, ...).
    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// Each target's output width: every column, or its group's.
    pub fn outputs(&self) -> Vec<usize> {
        self.targets
            .iter()
            .map(|t| match &t.unit {
                Unit::Features => self.width,
                Unit::Group(cols) => cols.len(),
            })
            .collect()
    }

    /// A freshly initialized linear head per target on the `code_dim`-wide code (the encoder's
    /// activation and dropout settings, no hidden layer, as the tasks' auxiliary heads), drawn
    /// from `seed` so the network's own initial weights stay as they were.
    pub(super) fn heads(
        &self,
        code_dim: usize,
        encoder: &MlpConfig,
        seed: u64,
    ) -> Result<Vec<Mlp>> {
        let linear = MlpConfig {
            hidden: vec![],
            ..encoder.clone()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.targets
            .iter()
            .zip(self.outputs())
            .map(|(t, o)| {
                Ok(Mlp::new(code_dim, Some(o), &linear, &mut rng)?
                    .named(&format!("pretext.{}", t.name)))
            })
            .collect()
    }

    /// Hides features of the batch `x`, whose rows are the stage's rows `rows`, in draw `draw`
    /// (the epoch, or [`VALID_DRAW`]).
    pub(super) fn hide(&self, x: ArrayView2<'_, f32>, rows: &[usize], draw: u64) -> Hidden {
        let mut input = x.to_owned();
        let mut masks: Vec<Array2<f32>> = self
            .outputs()
            .into_iter()
            .map(|w| Array2::zeros((x.nrows(), w)))
            .collect();
        let draw_seed = self.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (i, &row) in rows.iter().enumerate() {
            // One stream per row: the draws do not depend on which rows share a batch.
            let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
            rng.set_stream(row as u64);
            for (t, target) in self.targets.iter().enumerate() {
                match &target.unit {
                    Unit::Features => {
                        for j in 0..self.width {
                            if rng.random::<f32>() < self.rate {
                                masks[t][[i, j]] = 1.0;
                                input[[i, j]] = 0.0;
                            }
                        }
                    }
                    Unit::Group(cols) => {
                        if rng.random::<f32>() < self.rate {
                            for (k, &j) in cols.iter().enumerate() {
                                masks[t][[i, k]] = 1.0;
                                input[[i, j]] = 0.0;
                            }
                        }
                    }
                }
            }
        }
        Hidden { input, masks }
    }

    /// Each target's loss on its head's outputs `outs` for the batch whose clean features are
    /// `x` and whose hidden entries are `masks`: the mean squared error over the hidden
    /// entries (0 where the target hid nothing), and its gradient wrt the outputs.
    pub(super) fn losses(
        &self,
        outs: &[Array2<f32>],
        x: ArrayView2<'_, f32>,
        masks: &[Array2<f32>],
    ) -> Vec<(f32, Array2<f32>)> {
        self.targets
            .iter()
            .zip(outs.iter().zip(masks))
            .map(|(target, (out, mask))| {
                let want = |i: usize, k: usize| match &target.unit {
                    Unit::Features => x[[i, k]],
                    Unit::Group(cols) => x[[i, cols[k]]],
                };
                let count = mask.sum().max(1.0);
                let mut grad = Array2::zeros(out.raw_dim());
                let mut sum = 0.0f64;
                for ((i, k), &m) in mask.indexed_iter() {
                    if m > 0.0 {
                        let d = out[[i, k]] - want(i, k);
                        sum += (d * d) as f64;
                        grad[[i, k]] = 2.0 * d / count;
                    }
                }
                ((sum / count as f64) as f32, grad)
            })
            .collect()
    }
}

/// The feature group a stage-1 target names, if it names one.
pub fn target_group(name: &str) -> Option<FeatureGroup> {
    FeatureGroup::ALL.into_iter().find(|g| g.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: &[&str], rate: f32) -> MetadataConfig {
        MetadataConfig {
            stage1_targets: targets.iter().map(|s| s.to_string()).collect(),
            mask_rate: rate,
            ..MetadataConfig::default()
        }
    }

    #[test]
    fn labels_alone_are_no_pretext() {
        let all: Vec<usize> = (0..crate::metadata::num_features()).collect();
        assert!(Pretext::new(&config(&["labels"], 0.15), &all, 1)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_group_target_reads_its_groups_selected_columns() {
        let specs = crate::metadata::feature_specs();
        // Every other feature selected: the length group's columns are the selected ones.
        let selected: Vec<usize> = (0..specs.len()).step_by(2).collect();
        let p = Pretext::new(&config(&["labels", "length"], 0.5), &selected, 1)
            .unwrap()
            .unwrap();
        let want: Vec<usize> = selected
            .iter()
            .enumerate()
            .filter(|(_, &f)| specs[f].group == FeatureGroup::Length)
            .map(|(c, _)| c)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(p.outputs(), vec![want.len()]);
        assert_eq!(p.names(), vec!["length".to_string()]);
        // A group none of whose features is selected is skipped; with nothing left to train
        // on, stage 1 is refused.
        let no_length: Vec<usize> = (0..specs.len())
            .filter(|&f| specs[f].group != FeatureGroup::Length)
            .collect();
        let p = Pretext::new(&config(&["length", "masked_features"], 0.5), &no_length, 1)
            .unwrap()
            .unwrap();
        assert_eq!(p.names(), vec!["masked_features".to_string()]);
        let err = Pretext::new(&config(&["length"], 0.5), &no_length, 1).unwrap_err();
        assert!(err.message().contains("length"), "{}", err.message());
        assert!(
            Pretext::new(&config(&["labels", "length"], 0.5), &no_length, 1)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unknown_or_repeated_targets_are_refused() {
        for targets in [&["lenght"][..], &["labels", "labels"], &[]] {
            assert!(
                config(targets, 0.15).validate_targets().is_err(),
                "{targets:?}"
            );
        }
        assert!(config(&["masked_features"], 0.0)
            .validate_targets()
            .is_err());
        assert!(config(&["masked_features"], 1.0)
            .validate_targets()
            .is_err());
    }

    #[test]
    fn hiding_depends_on_the_row_and_draw_not_the_batch() {
        let all: Vec<usize> = (0..crate::metadata::num_features()).collect();
        let p = Pretext::new(&config(&["masked_features", "sentiment"], 0.3), &all, 7)
            .unwrap()
            .unwrap();
        let n = 40;
        let x = Array2::from_shape_fn((n, all.len()), |(i, j)| 1.0 + (i * 31 + j) as f32);
        let rows: Vec<usize> = (0..n).collect();
        let whole = p.hide(x.view(), &rows, 3);
        // The same rows in another batch, in another order.
        let picked = [17usize, 2, 39];
        let sub = x.select(ndarray::Axis(0), &picked);
        let part = p.hide(sub.view(), &picked, 3);
        for (k, &r) in picked.iter().enumerate() {
            assert_eq!(part.input.row(k), whole.input.row(r));
            for t in 0..2 {
                assert_eq!(part.masks[t].row(k), whole.masks[t].row(r));
            }
        }
        // Another epoch hides other entries; hidden entries read 0 and only those.
        let other = p.hide(x.view(), &rows, 4);
        assert_ne!(other.masks[0], whole.masks[0]);
        let hidden_share = whole.masks[0].mean().unwrap();
        assert!((0.2..0.4).contains(&hidden_share), "{hidden_share}");
        let group = target_group("sentiment").unwrap();
        let specs = crate::metadata::feature_specs();
        for i in 0..n {
            for (j, spec) in specs.iter().enumerate() {
                let by_group = spec.group == group && whole.masks[1][[i, 0]] > 0.0;
                let hidden = whole.masks[0][[i, j]] > 0.0 || by_group;
                assert_eq!(whole.input[[i, j]] == 0.0, hidden, "row {i} col {j}");
            }
        }
    }

    #[test]
    fn the_loss_is_the_mean_squared_error_over_hidden_entries() {
        let all: Vec<usize> = (0..crate::metadata::num_features()).collect();
        let p = Pretext::new(&config(&["masked_features"], 0.5), &all, 2)
            .unwrap()
            .unwrap();
        let (n, w) = (6, all.len());
        let x = Array2::from_shape_fn((n, w), |(i, j)| ((i * w + j) as f32 * 0.1).sin());
        let rows: Vec<usize> = (0..n).collect();
        let h = p.hide(x.view(), &rows, 0);
        let out = Array2::from_shape_fn((n, w), |(i, j)| ((i + 2 * j) as f32 * 0.05).cos());
        let (loss, grad) = p
            .losses(std::slice::from_ref(&out), x.view(), &h.masks)
            .remove(0);
        // By hand: the squared errors of the hidden entries, averaged.
        let mut errs = Vec::new();
        for i in 0..n {
            for j in 0..w {
                if h.masks[0][[i, j]] > 0.0 {
                    errs.push(((out[[i, j]] - x[[i, j]]) as f64).powi(2));
                }
            }
        }
        let want = errs.iter().sum::<f64>() / errs.len() as f64;
        assert!((loss as f64 - want).abs() < 1e-5, "{loss} vs {want}");
        // The gradient against central differences of the loss.
        let eps = 1e-3f32;
        for (i, j) in [(0, 0), (1, 5), (3, 17), (5, w - 1)] {
            let mut plus = out.clone();
            plus[[i, j]] += eps;
            let mut minus = out.clone();
            minus[[i, j]] -= eps;
            let lp = p.losses(&[plus], x.view(), &h.masks)[0].0;
            let lm = p.losses(&[minus], x.view(), &h.masks)[0].0;
            let fd = (lp - lm) / (2.0 * eps);
            assert!(
                (fd - grad[[i, j]]).abs() < 1e-3,
                "({i},{j}) {fd} vs {}",
                grad[[i, j]]
            );
        }
    }
}
