//! Fitting the metadata feature pipeline: z-score statistics of the training features, and
//! optional top-k feature selection by mutual information with the labels. Applying it is the
//! serving side's [`Normalizer::transform`].

use ndarray::ArrayView2;

use crate::data::Targets;
pub use crate::heads::Normalizer;

/// Quantile bins per feature for the mutual-information estimate.
const MI_BINS: usize = 10;

impl Normalizer {
    /// Fits on training features `x` [rows, features]. With `top_k > 0`, keeps the `top_k`
    /// features with the highest mutual information summed over `targets` (ties by index).
    pub fn fit(x: ArrayView2<'_, f32>, targets: &[&Targets], top_k: usize) -> Normalizer {
        let all: Vec<usize> = (0..x.nrows()).collect();
        Self::fit_ranked_on(x, targets, top_k, (&all, targets))
    }

    /// [`Normalizer::fit`], ranking the features on the rows `on.0` of `x` only, whose
    /// targets are `on.1` (a held-out part of the training rows); the z-score statistics are
    /// still those of every row.
    pub fn fit_ranked_on(
        x: ArrayView2<'_, f32>,
        targets: &[&Targets],
        top_k: usize,
        on: (&[usize], &[&Targets]),
    ) -> Normalizer {
        let n_feat = x.ncols();
        let mut selected: Vec<usize> = (0..n_feat).collect();
        let (rows, ranked_targets) = on;
        if top_k > 0 && top_k < n_feat && !targets.is_empty() {
            let strata: Vec<Vec<String>> = ranked_targets.iter().map(|t| t.strata()).collect();
            let mut scored: Vec<(f64, usize)> = (0..n_feat)
                .map(|j| {
                    let col = x.column(j);
                    let bins = quantile_bins(rows.iter().map(|&i| col[i]).collect());
                    let mi: f64 = strata.iter().map(|s| mutual_information(&bins, s)).sum();
                    (mi, j)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            selected = scored.into_iter().take(top_k).map(|(_, j)| j).collect();
            selected.sort_unstable();
        }
        let n = x.nrows().max(1) as f64;
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for &j in &selected {
            let col = x.column(j);
            let m = col.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = col.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
            mean.push(m as f32);
            // A constant feature gets std 1: it normalizes to 0 instead of dividing by 0.
            std.push(if var > 1e-12 { var.sqrt() as f32 } else { 1.0 });
        }
        Normalizer {
            selected,
            mean,
            std,
        }
    }
}

/// Bin index per value: equal-frequency bins by rank (ties share a bin).
fn quantile_bins(values: Vec<f32>) -> Vec<usize> {
    let n = values.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut bins = vec![0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && values[idx[j + 1]] == values[idx[i]] {
            j += 1;
        }
        let bin = (i * MI_BINS / n.max(1)).min(MI_BINS - 1);
        for &k in &idx[i..=j] {
            bins[k] = bin;
        }
        i = j + 1;
    }
    bins
}

/// Mutual information (nats) between discrete `a` and `b` from their joint counts.
fn mutual_information(a: &[usize], b: &[String]) -> f64 {
    use std::collections::HashMap;
    let n = a.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    let mut joint: HashMap<(usize, &str), f64> = HashMap::new();
    let mut pa: HashMap<usize, f64> = HashMap::new();
    let mut pb: HashMap<&str, f64> = HashMap::new();
    for (&x, y) in a.iter().zip(b) {
        *joint.entry((x, y.as_str())).or_default() += 1.0;
        *pa.entry(x).or_default() += 1.0;
        *pb.entry(y.as_str()).or_default() += 1.0;
    }
    joint
        .iter()
        .map(|(&(x, y), &c)| {
            let pxy = c / n;
            pxy * (pxy / ((pa[&x] / n) * (pb[y] / n))).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn zscore_uses_training_stats_and_handles_constants() {
        let x = array![[1.0f32, 5.0], [3.0, 5.0]];
        let n = Normalizer::fit(x.view(), &[], 0);
        assert_eq!(n.mean, vec![2.0, 5.0]);
        assert_eq!(n.std, vec![1.0, 1.0]);
        let t = n.transform(array![[4.0f32, 5.0]].view());
        assert_eq!(t, array![[2.0f32, 0.0]]);
    }

    #[test]
    fn features_are_ranked_on_the_rows_named_and_scaled_on_all() {
        // Feature 0 follows the label on rows 0..40 and is noise after; feature 1 the reverse.
        let labels: Vec<usize> = (0..80).map(|i| i % 2).collect();
        let x = Array2::from_shape_fn((80, 2), |(i, j)| {
            let informative = (j == 0) == (i < 40);
            if informative {
                labels[i] as f32
            } else {
                ((i * 7) % 5) as f32
            }
        });
        let t = Targets::Class(labels.clone());
        let ranked = |rows: Vec<usize>| {
            let held = t.select(&rows);
            Normalizer::fit_ranked_on(x.view(), &[&t], 1, (&rows, &[&held])).selected
        };
        assert_eq!(ranked((0..40).collect()), [0]);
        assert_eq!(ranked((40..80).collect()), [1]);
        // The statistics are of every row, whichever rows ranked.
        let n = Normalizer::fit_ranked_on(
            x.view(),
            &[&t],
            1,
            (
                &(0..40).collect::<Vec<_>>(),
                &[&t.select(&(0..40).collect::<Vec<_>>())],
            ),
        );
        let all = Normalizer::fit(x.view(), &[], 0);
        assert_eq!((n.mean[0], n.std[0]), (all.mean[0], all.std[0]));
    }

    #[test]
    fn mutual_information_by_hand() {
        // Perfectly dependent binary variables: MI = ln 2.
        let mi = mutual_information(
            &[0, 0, 1, 1],
            &["a".into(), "a".into(), "b".into(), "b".into()],
        );
        assert!((mi - std::f64::consts::LN_2).abs() < 1e-12);
        // Independent: MI = 0.
        let mi = mutual_information(
            &[0, 1, 0, 1],
            &["a".into(), "a".into(), "b".into(), "b".into()],
        );
        assert!(mi.abs() < 1e-12);
    }

    #[test]
    fn top_k_keeps_the_informative_feature() {
        // Feature 1 equals the label; features 0 and 2 are noise.
        let rows = 200;
        let labels: Vec<usize> = (0..rows).map(|i| (i * 7 % 3) % 2).collect();
        let x = Array2::from_shape_fn((rows, 3), |(i, j)| match j {
            1 => labels[i] as f32,
            0 => ((i * 37) % 11) as f32,
            _ => ((i * 13) % 5) as f32,
        });
        let t = Targets::Class(labels);
        let n = Normalizer::fit(x.view(), &[&t], 1);
        assert_eq!(n.selected, vec![1]);
    }
}
