//! Choosing the regularization of a linear head by k-fold cross-validation, as scikit-learn's
//! `LogisticRegressionCV` does: a grid of `C` values, folds stratified by class, each fold's
//! solutions warm-started along the grid. Every example is scored once, by a model that did not
//! see it (out-of-fold), so the scores and the thresholds tuned on them are honest even with a
//! handful of examples, where one small hold-out would be noise.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::solve::{solve, LinearLoss, LinearSolution, Problem, SolveOptions};
use crate::error::Result;
use crate::eval::macro_f1;

/// The default grid: 10 values from 1e-4 to 1e4, evenly spaced in log scale
/// (`LogisticRegressionCV(Cs=10)`).
pub fn default_grid() -> Vec<f64> {
    (0..10)
        .map(|i| 10f64.powf(-4.0 + 8.0 * i as f64 / 9.0))
        .collect()
}

/// The most folds k-fold cross-validation uses (as `LogisticRegressionCV`'s default `cv=5`).
pub const MAX_FOLDS: usize = 5;

/// How many grid points in a row may score below the best before the search along the grid
/// stops: the out-of-fold score of a regularization path rises to one peak and falls, and two
/// points past it are past it.
pub const GRID_PATIENCE: usize = 2;

/// Fold index of each row: classes dealt round-robin over `k` folds after a seeded shuffle
/// (stratified), or all rows dealt so when `strata` is None.
pub fn fold_of(n: usize, strata: Option<&[usize]>, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b66_6f6c_6473);
    let mut fold = vec![0; n];
    let groups: Vec<Vec<usize>> = match strata {
        Some(s) => {
            let classes = s.iter().copied().max().map_or(0, |m| m + 1);
            let mut g = vec![Vec::new(); classes];
            for (i, &c) in s.iter().enumerate() {
                g[c].push(i);
            }
            g
        }
        None => vec![(0..n).collect()],
    };
    // Continue the round-robin across classes so that small classes do not all start at fold 0.
    let mut next = 0;
    for mut rows in groups {
        rows.shuffle(&mut rng);
        for i in rows {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// The number of folds for these rows: 5, or fewer when the smallest class has fewer members
/// (each fold must see every class in training); None when no two folds are possible.
pub fn folds_for(n: usize, strata: Option<&[usize]>) -> Option<usize> {
    let smallest = match strata {
        Some(s) => {
            let classes = s.iter().copied().max().map_or(0, |m| m + 1);
            let mut counts = vec![0usize; classes];
            for &c in s {
                counts[c] += 1;
            }
            counts.into_iter().filter(|&c| c > 0).min().unwrap_or(0)
        }
        None => n,
    };
    let k = smallest.min(MAX_FOLDS);
    (k >= 2).then_some(k)
}

/// How well out-of-fold outputs fit: higher is better. Classification: macro-F1 at the default
/// decision (argmax, or 0.5 per sigmoid), ties broken by the mean loss; regression: minus the
/// mean squared error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Macro-F1 (classification) or −MSE (regression).
    pub primary: f64,
    /// The mean out-of-fold loss (lower is better).
    pub loss: f64,
}

impl Score {
    /// Whether `self` beats `other` (strictly, so that ties keep the earlier, smaller `C`).
    pub fn beats(&self, other: &Score) -> bool {
        const EPS: f64 = 1e-12;
        self.primary > other.primary + EPS
            || ((self.primary - other.primary).abs() <= EPS && self.loss < other.loss - EPS)
    }
}

/// Scores raw outputs `z` against targets `y` (as [`LinearLoss`] reads them).
pub fn score(loss: LinearLoss, z: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>) -> Score {
    let n = z.nrows().max(1) as f64;
    match loss {
        LinearLoss::Softmax => {
            let k = z.ncols();
            let mut counts = vec![(0usize, 0usize, 0usize); k];
            let mut total = 0.0;
            for (zr, yr) in z.rows().into_iter().zip(y.rows()) {
                let pred = argmax(zr);
                let truth = argmax(yr);
                let max = zr.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let lse = max + zr.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                total += lse - zr[truth];
                if pred == truth {
                    counts[truth].0 += 1;
                } else {
                    counts[pred].1 += 1;
                    counts[truth].2 += 1;
                }
            }
            Score {
                primary: macro_f1(&counts),
                loss: total / n,
            }
        }
        LinearLoss::Sigmoid => {
            // Binary (one output): both classes' F1, as the task's macro-F1 counts them;
            // multi-label: each label's F1.
            let k = z.ncols();
            let mut counts = vec![(0usize, 0usize, 0usize); if k == 1 { 2 } else { k }];
            let mut total = 0.0;
            for (zr, yr) in z.rows().into_iter().zip(y.rows()) {
                for (j, (&v, &t)) in zr.iter().zip(yr.iter()).enumerate() {
                    total += v.max(0.0) + (-v.abs()).exp().ln_1p() - t * v;
                    let (p, t) = (v > 0.0, t > 0.5);
                    let count = |c: &mut (usize, usize, usize), p: bool, t: bool| match (p, t) {
                        (true, true) => c.0 += 1,
                        (true, false) => c.1 += 1,
                        (false, true) => c.2 += 1,
                        (false, false) => {}
                    };
                    count(&mut counts[j], p, t);
                    if k == 1 {
                        count(&mut counts[1], !p, !t);
                    }
                }
            }
            Score {
                primary: macro_f1(&counts),
                loss: total / n,
            }
        }
        LinearLoss::Squared => {
            let mse = (&z - &y).mapv(|v| v * v).sum() / n;
            Score {
                primary: -mse,
                loss: mse,
            }
        }
    }
}

fn argmax(v: ArrayView1<'_, f64>) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// What cross-validation found.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The chosen `C`.
    pub c: f64,
    /// Each grid point's `C` and out-of-fold score.
    pub scores: Vec<(f64, Score)>,
    /// The out-of-fold raw outputs at the chosen `C`, `[n, k]`.
    pub out_of_fold: Array2<f64>,
    /// Folds used.
    pub folds: usize,
}

/// Cross-validates `grid` (ascending) on the rows of `x` with folds `fold` (`k` of them):
/// for each `C`, every fold's model is solved on the other folds (warm-started from that fold's
/// previous solution) and scores its own rows; the search stops [`GRID_PATIENCE`] points past
/// the best. `each` is called after every `C` with its index and score, and may stop the
/// search by returning false (then `Ok(None)`).
#[allow(clippy::too_many_arguments)]
pub fn cross_validate(
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    weights: Option<ArrayView1<'_, f64>>,
    loss: LinearLoss,
    grid: &[f64],
    fold: &[usize],
    k: usize,
    each: &mut dyn FnMut(usize, f64, &Score) -> bool,
) -> Result<Option<Selection>> {
    let (n, d, outputs) = (x.nrows(), x.ncols(), y.ncols());
    let rows_of = |f: usize, inside: bool| -> Vec<usize> {
        (0..n).filter(|&i| (fold[i] == f) == inside).collect()
    };
    let parts: Vec<_> = (0..k)
        .map(|f| {
            let (train, test) = (rows_of(f, false), rows_of(f, true));
            let xt = x.select(Axis(0), &train);
            let yt = y.select(Axis(0), &train);
            let wt = weights.map(|w| w.select(Axis(0), &train));
            (train, test, xt, yt, wt)
        })
        .collect();
    let mut starts: Vec<LinearSolution> =
        (0..k).map(|_| LinearSolution::zeros(outputs, d)).collect();
    let mut best: Option<(Selection, Score)> = None;
    let mut scores = Vec::with_capacity(grid.len());
    let mut since_best = 0;
    for (g, &c) in grid.iter().enumerate() {
        let mut oof = Array2::zeros((n, outputs));
        // The folds' solves are independent: one per thread. Each is deterministic, so the
        // result does not depend on the thread count.
        let solved: Vec<LinearSolution> = parts
            .par_iter()
            .zip(starts.par_iter())
            .map(|((_, _, xt, yt, wt), start)| {
                let problem = Problem {
                    x: xt.view(),
                    y: yt.view(),
                    weights: wt.as_ref().map(|w| w.view()),
                    loss,
                    c,
                };
                solve(problem, start, SolveOptions::default())
            })
            .collect::<Result<_>>()?;
        for ((_, test, _, _, _), s) in parts.iter().zip(&solved) {
            let z = s.outputs(x.select(Axis(0), test).view());
            for (r, &i) in test.iter().enumerate() {
                oof.row_mut(i).assign(&z.row(r));
            }
        }
        starts = solved;
        let sc = score(loss, oof.view(), y);
        scores.push((c, sc));
        let improved = best.as_ref().is_none_or(|(_, b)| sc.beats(b));
        since_best = if improved { 0 } else { since_best + 1 };
        if improved {
            let selection = Selection {
                c,
                scores: Vec::new(),
                out_of_fold: oof,
                folds: k,
            };
            best = Some((selection, sc));
        }
        if !each(g, c, &sc) {
            return Ok(None);
        }
        // Past the best `C` the out-of-fold score falls as the fits approach the unregularized
        // one, and those are the slowest solves (most of the time at ten thousand examples).
        if since_best >= GRID_PATIENCE {
            break;
        }
    }
    Ok(best.map(|(mut b, _)| {
        b.scores = scores;
        b
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn folds_are_stratified_seeded_and_cover_every_row() {
        let strata: Vec<usize> = (0..23).map(|i| i % 3).collect();
        let f = fold_of(23, Some(&strata), 4, 7);
        assert_eq!(f, fold_of(23, Some(&strata), 4, 7));
        assert_ne!(f, fold_of(23, Some(&strata), 4, 8));
        for c in 0..3 {
            let mut per_fold = [0usize; 4];
            for i in (0..23).filter(|&i| strata[i] == c) {
                per_fold[f[i]] += 1;
            }
            let (lo, hi) = (
                per_fold.iter().min().unwrap(),
                per_fold.iter().max().unwrap(),
            );
            assert!(hi - lo <= 1, "class {c}: {per_fold:?}");
        }
        assert_eq!(folds_for(23, Some(&strata)), Some(5));
        assert_eq!(folds_for(4, Some(&[0, 0, 0, 1])), None);
        assert_eq!(folds_for(7, Some(&[0, 0, 0, 1, 1, 1, 1])), Some(3));
    }

    #[test]
    fn grid_is_sklearns() {
        let g = default_grid();
        assert_eq!(g.len(), 10);
        assert!((g[0] - 1e-4).abs() < 1e-12 && (g[9] - 1e4).abs() < 1e-6);
        assert!((g[1] - 7.742636826811277e-4).abs() < 1e-12);
    }

    #[test]
    fn scores_count_like_the_task_metrics() {
        // Softmax: rows predicted 0, 1, 1 for truths 0, 1, 0.
        let z = array![[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]];
        let y = array![[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]];
        let s = score(LinearLoss::Softmax, z.view(), y.view());
        // Class 0: tp 1, fn 1 -> F1 2/3; class 1: tp 1, fp 1 -> 2/3.
        assert!((s.primary - 2.0 / 3.0).abs() < 1e-12);
        // The same decisions through one sigmoid output.
        let zb = array![[-2.0], [1.0], [3.0]];
        let yb = array![[0.0], [1.0], [0.0]];
        let b = score(LinearLoss::Sigmoid, zb.view(), yb.view());
        assert!((b.primary - 2.0 / 3.0).abs() < 1e-12);
        let r = score(
            LinearLoss::Squared,
            array![[1.0], [2.0]].view(),
            array![[0.0], [2.0]].view(),
        );
        assert_eq!(r.primary, -0.5);
        assert!(Score {
            primary: 0.5,
            loss: 1.0
        }
        .beats(&Score {
            primary: 0.4,
            loss: 0.1
        }));
        assert!(Score {
            primary: 0.5,
            loss: 0.9
        }
        .beats(&Score {
            primary: 0.5,
            loss: 1.0
        }));
        assert!(!Score {
            primary: 0.5,
            loss: 1.0
        }
        .beats(&Score {
            primary: 0.5,
            loss: 1.0
        }));
    }

    #[test]
    fn the_grid_search_stops_two_points_past_the_best() {
        use rand::Rng;
        // Labels independent of the inputs: past small C the fits only overfit, and the
        // out-of-fold score falls.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n, d) = (60, 20);
        let x = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0));
        let y = Array2::from_shape_fn((n, 1), |(i, _)| f64::from(i % 2 == 0));
        let strata: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let fold = fold_of(n, Some(&strata), 5, 0);
        let grid = default_grid();
        let mut seen = Vec::new();
        let sel = cross_validate(
            x.view(),
            y.view(),
            None,
            LinearLoss::Sigmoid,
            &grid,
            &fold,
            5,
            &mut |g, _, s| {
                seen.push((g, *s));
                true
            },
        )
        .unwrap()
        .unwrap();
        let best = grid.iter().position(|&c| c == sel.c).unwrap();
        assert!(seen.len() < grid.len(), "{seen:?}");
        assert_eq!(seen.len(), best + 1 + GRID_PATIENCE, "{seen:?}");
        // Every point after the best is worse than it; the best beats every point before.
        for (g, s) in &seen {
            if *g != best {
                assert!(seen[best].1.beats(s), "{g}: {s:?}");
            }
        }
    }
}
