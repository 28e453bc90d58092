//! Decision-threshold tuning on validation scores, for binary and multi-label heads.

use super::metrics::f1;
use crate::error::{Error, Result};

/// The threshold on `scores` that maximizes F1 of `positive`, and that F1.
///
/// Candidates are midpoints between consecutive distinct scores (plus 0.5 as the default), so the
/// chosen threshold separates validation examples instead of sitting on one. With no positive
/// examples it returns 0.5 and F1 0. A NaN or infinite score is a [`Numeric`] error: it means
/// the model diverged, and no threshold on it would mean anything.
///
/// [`Numeric`]: crate::ErrorKind::Numeric
pub fn best_f1_threshold(scores: &[f32], positive: &[bool]) -> Result<(f32, f64)> {
    if scores.len() != positive.len() {
        return Err(Error::invalid(format!(
            "{} scores for {} labels",
            scores.len(),
            positive.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::numeric(format!(
            "validation score {i} is {}: the model's outputs are not finite (training diverged)",
            scores[i]
        )));
    }
    let total_pos = positive.iter().filter(|&&p| p).count();
    if total_pos == 0 || scores.is_empty() {
        return Ok((0.5, 0.0));
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Sweep from the highest score down: everything above the cut is predicted positive.
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best = (0.5f32, f1(0, 0, total_pos));
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if positive[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let next = if i < idx.len() {
            scores[idx[i]]
        } else {
            s - 1e-3
        };
        let cut = (s + next) / 2.0;
        let f = f1(tp, fp, total_pos - tp);
        if f > best.1 {
            best = (cut, f);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_get_a_separating_threshold() {
        let (t, f) =
            best_f1_threshold(&[0.1, 0.2, 0.35, 0.4], &[false, false, true, true]).unwrap();
        assert!((t - 0.275).abs() < 1e-6, "{t}");
        assert!((f - 1.0).abs() < 1e-12);
    }

    #[test]
    fn no_positives_falls_back_to_half() {
        assert_eq!(
            best_f1_threshold(&[0.3, 0.9], &[false, false]).unwrap(),
            (0.5, 0.0)
        );
    }

    #[test]
    fn picks_the_best_tradeoff() {
        // scores .9(P) .8(N) .7(P) .1(N): cut above .9 -> f1 2/3 ; above .7 -> tp2 fp1 -> .8
        let (t, f) = best_f1_threshold(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false]).unwrap();
        assert!((f - 0.8).abs() < 1e-12);
        assert!((t - 0.4).abs() < 1e-6);
    }

    #[test]
    fn non_finite_scores_are_a_numeric_error_not_a_hang() {
        // Before the fix a NaN never compared equal to itself and the sweep never advanced.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let e = best_f1_threshold(&[0.2, bad, 0.7], &[false, true, true]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Numeric, "{bad}");
        }
        assert!(best_f1_threshold(&[0.2], &[true, false]).is_err());
    }
}
