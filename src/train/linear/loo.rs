//! Choosing a ridge regression's regularization by exact leave-one-out, as scikit-learn's
//! `RidgeCV` does by default. Ridge is a linear smoother, so every example's leave-one-out
//! residual follows from one fit on all of them: `eᵢ = (yᵢ − ŷᵢ) / (1 − hᵢᵢ)`, with `H` the hat
//! matrix. One eigendecomposition (of the n×n Gram matrix or the d×d covariance, whichever is
//! smaller) gives `H` for every grid point. Five random folds of a few dozen examples move the
//! chosen value from draw to draw; leave-one-out has no folds to move.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::select::{score, Score, Selection};
use super::solve::LinearLoss;
use crate::error::{Error, Result};

/// Eigenvalues below this fraction of the largest are zero (rank deficiency, rounding).
const RANK_TOLERANCE: f64 = 1e-12;

/// Scores every `C` of `grid` by exact leave-one-out for the ridge problem
/// `min ‖y − b − Xw‖² + ‖w‖²/C` (an unpenalized intercept `b`, the problem `solve` minimizes
/// with [`LinearLoss::Squared`]), one column of `y` per output. Returns the `C` with the lowest
/// mean squared leave-one-out error (ties keep the earlier one) and the leave-one-out outputs
/// at it. `each` sees every grid point's score in order and may stop the search by returning
/// false (then `Ok(None)`).
pub fn leave_one_out(
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    grid: &[f64],
    each: &mut dyn FnMut(usize, f64, &Score) -> bool,
) -> Result<Option<Selection>> {
    let n = x.nrows();
    if n < 3 || y.nrows() != n || grid.is_empty() {
        return Err(Error::invalid(
            "leave-one-out needs at least 3 rows, one target row per row and a grid",
        ));
    }
    let mean = x.mean_axis(Axis(0)).expect("rows checked above");
    let xc = &x - &mean;
    let ymean = y.mean_axis(Axis(0)).expect("rows checked above");
    let yc = &y - &ymean;
    let (q, lambda) = spectrum(xc.view())?;
    // Projections of the centered targets on the eigenvectors, shared by every grid point.
    let qty = q.t().dot(&yc);
    let q2 = q.mapv(|v| v * v);
    let mut best: Option<(Selection, Score)> = None;
    let mut scores = Vec::with_capacity(grid.len());
    for (g, &c) in grid.iter().enumerate() {
        let alpha = 1.0 / c;
        let shrink: Array1<f64> = lambda.mapv(|l| l / (l + alpha));
        let fitted = q.dot(&(&qty * &shrink.view().insert_axis(Axis(1)))) + &ymean;
        // The intercept's column of ones contributes 1/n to every diagonal entry of H.
        let h = q2.dot(&shrink) + 1.0 / n as f64;
        let mut loo = Array2::zeros(y.raw_dim());
        for i in 0..n {
            // h < 1 unless an example is fitted exactly whatever the others say; then its
            // leave-one-out output is unknowable, and the mean stands in for it.
            let free = 1.0 - h[i];
            for j in 0..y.ncols() {
                loo[[i, j]] = if free > 1e-12 {
                    y[[i, j]] - (y[[i, j]] - fitted[[i, j]]) / free
                } else {
                    ymean[j]
                };
            }
        }
        let sc = score(LinearLoss::Squared, loo.view(), y);
        scores.push((c, sc));
        if best.as_ref().is_none_or(|(_, b)| sc.beats(b)) {
            let selection = Selection {
                c,
                scores: Vec::new(),
                out_of_fold: loo,
                folds: n,
            };
            best = Some((selection, sc));
        }
        if !each(g, c, &sc) {
            return Ok(None);
        }
    }
    Ok(best.map(|(mut b, _)| {
        b.scores = scores;
        b
    }))
}

/// Orthonormal columns `Q` [n, r] and eigenvalues `λ` [r] with `Xc Xcᵀ = Q diag(λ) Qᵀ`, through
/// whichever of `Xc Xcᵀ` (n×n) and `Xcᵀ Xc` (d×d) is smaller; zero eigenvalues are dropped.
fn spectrum(xc: ArrayView2<'_, f64>) -> Result<(Array2<f64>, Array1<f64>)> {
    let (n, d) = xc.dim();
    let gram_side = n <= d;
    let m = if gram_side {
        xc.dot(&xc.t())
    } else {
        xc.t().dot(&xc)
    };
    let r = m.nrows();
    let mat = faer::Mat::<f64>::from_fn(r, r, |i, j| m[[i, j]]);
    let eig = mat
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| Error::numeric(format!("ridge leave-one-out: eigendecomposition: {e:?}")))?;
    let (u, s) = (eig.U(), eig.S().column_vector());
    let top = (0..r).map(|k| s[k]).fold(0.0f64, f64::max);
    if !top.is_finite() {
        return Err(Error::numeric("ridge leave-one-out: non-finite features"));
    }
    let keep: Vec<usize> = (0..r).filter(|&k| s[k] > top * RANK_TOLERANCE).collect();
    let lambda = Array1::from_iter(keep.iter().map(|&k| s[k]));
    let vecs = Array2::from_shape_fn((r, keep.len()), |(i, k)| u[(i, keep[k])]);
    let q = if gram_side {
        vecs
    } else {
        // Xc v / √λ are the Gram matrix's eigenvectors for the same eigenvalues.
        let mut q = xc.dot(&vecs);
        for (mut col, &l) in q.columns_mut().into_iter().zip(&lambda) {
            col /= l.sqrt();
        }
        q
    };
    Ok((q, lambda))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::linear::select::default_grid;
    use crate::train::linear::solve::{solve, LinearSolution, Problem, SolveOptions};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn data(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0));
        let w: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y = Array2::from_shape_fn((n, 1), |(i, _)| {
            (0..d).map(|j| x[[i, j]] * w[j]).sum::<f64>() + 0.5 + rng.random_range(-0.5..0.5)
        });
        (x, y)
    }

    /// Leave-one-out done the slow way: refit without each row (by L-BFGS, the solver the
    /// recipe trains with) and predict it.
    fn brute_force(x: &Array2<f64>, y: &Array2<f64>, c: f64) -> Array2<f64> {
        let n = x.nrows();
        let mut out = Array2::zeros(y.raw_dim());
        for i in 0..n {
            let rest: Vec<usize> = (0..n).filter(|&r| r != i).collect();
            let (xt, yt) = (x.select(Axis(0), &rest), y.select(Axis(0), &rest));
            let problem = Problem {
                x: xt.view(),
                y: yt.view(),
                weights: None,
                loss: LinearLoss::Squared,
                c,
            };
            let opts = SolveOptions {
                tolerance: 1e-12,
                ..SolveOptions::default()
            };
            let s = solve(problem, &LinearSolution::zeros(1, x.ncols()), opts).unwrap();
            out.row_mut(i)
                .assign(&s.outputs(x.select(Axis(0), &[i]).view()).row(0));
        }
        out
    }

    #[test]
    fn matches_refitting_without_each_row_on_both_sides_of_the_spectrum() {
        // n < d (the Gram side) and n > d (the covariance side).
        for &(n, d) in &[(12, 20), (30, 6)] {
            let (x, y) = data(n, d, n as u64);
            let grid = [0.01, 1.0, 100.0];
            let mut seen = Vec::new();
            let sel = leave_one_out(x.view(), y.view(), &grid, &mut |_, c, s| {
                seen.push((c, s.primary));
                true
            })
            .unwrap()
            .unwrap();
            assert_eq!(seen.len(), 3);
            assert_eq!(sel.folds, n);
            for &(c, primary) in &seen {
                let slow = brute_force(&x, &y, c);
                let mse = (&slow - &y).mapv(|v| v * v).mean().unwrap();
                assert!((primary + mse).abs() < 1e-6 * mse.max(1.0), "{n}x{d} C={c}");
                if c == sel.c {
                    let gap = (&slow - &sel.out_of_fold).mapv(f64::abs);
                    assert!(gap.iter().all(|&g| g < 1e-5), "{n}x{d}: {gap}");
                }
            }
            let best = seen.iter().fold(f64::NEG_INFINITY, |m, &(_, p)| m.max(p));
            assert_eq!(
                sel.scores
                    .iter()
                    .find(|(c, _)| *c == sel.c)
                    .unwrap()
                    .1
                    .primary,
                best
            );
        }
    }

    #[test]
    fn noise_wants_more_regularization_than_signal() {
        let (x, y) = data(40, 10, 7);
        let pick = |y: &Array2<f64>| {
            leave_one_out(x.view(), y.view(), &default_grid(), &mut |_, _, _| true)
                .unwrap()
                .unwrap()
                .c
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let noise = Array2::from_shape_fn((40, 1), |_| rng.random_range(-1.0..1.0));
        assert!(pick(&y) > pick(&noise), "{} vs {}", pick(&y), pick(&noise));
    }

    #[test]
    fn stops_when_asked_and_refuses_too_few_rows() {
        let (x, y) = data(10, 4, 1);
        let mut calls = 0;
        let r = leave_one_out(x.view(), y.view(), &default_grid(), &mut |_, _, _| {
            calls += 1;
            calls < 2
        })
        .unwrap();
        assert!(r.is_none());
        assert_eq!(calls, 2);
        let two = x.select(Axis(0), &[0, 1]);
        let y2 = y.select(Axis(0), &[0, 1]);
        let err = leave_one_out(two.view(), y2.view(), &[1.0], &mut |_, _, _| true).unwrap_err();
        assert!(err.message().contains("at least 3"), "{}", err.message());
    }
}
