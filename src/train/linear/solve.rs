//! The L2-regularized linear model of one task, solved to convergence: the objective
//! `½‖W‖² + C · Σᵢ sᵢ · ℓ(W xᵢ + b, yᵢ)` (the intercept is not penalized, as in scikit-learn's
//! `LogisticRegression`), minimized by L-BFGS (argmin) in f64. It is convex, so the solution
//! does not depend on the start: warm starts only save iterations.

use std::cell::{Cell, RefCell};

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{Error, ErrorKind, Result};

/// The loss of a linear head, by task kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearLoss {
    /// Softmax cross-entropy over the outputs (multiclass); targets are one-hot.
    Softmax,
    /// Independent sigmoid cross-entropies (binary, multi-label); targets are 0 or 1.
    Sigmoid,
    /// Half the squared error (regression, on standardized targets).
    Squared,
}

/// A solved linear model: `outputs = x · weightᵀ + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSolution {
    /// `[outputs, inputs]`, as `nn::Linear` stores it.
    pub weight: Array2<f64>,
    /// `[outputs]`.
    pub bias: Array1<f64>,
    /// L-BFGS iterations run.
    pub iterations: u64,
    /// Whether a convergence criterion stopped it (not the iteration cap).
    pub converged: bool,
}

impl LinearSolution {
    /// All zeros: the start of a cold solve.
    pub fn zeros(outputs: usize, inputs: usize) -> LinearSolution {
        LinearSolution {
            weight: Array2::zeros((outputs, inputs)),
            bias: Array1::zeros(outputs),
            iterations: 0,
            converged: false,
        }
    }

    /// Raw outputs (logits or standardized values) for the rows of `x`.
    pub fn outputs(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        x.dot(&self.weight.t()) + &self.bias
    }

    fn flat(&self) -> Vec<f64> {
        self.weight
            .iter()
            .chain(self.bias.iter())
            .copied()
            .collect()
    }

    fn from_flat(p: &[f64], outputs: usize, inputs: usize) -> LinearSolution {
        let w = outputs * inputs;
        LinearSolution {
            weight: Array2::from_shape_vec((outputs, inputs), p[..w].to_vec())
                .expect("outputs x inputs values"),
            bias: Array1::from(p[w..].to_vec()),
            iterations: 0,
            converged: false,
        }
    }
}

/// The solver's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveOptions {
    /// Stop when the gradient norm of the objective, divided by `C · Σ sᵢ`, is below this.
    pub tolerance: f64,
    /// Iteration cap.
    pub max_iterations: u64,
    /// Cap on objective evaluations, line searches included: argmin's line search has no
    /// iteration cap of its own, and near the optimum in f64 it can fail to terminate.
    pub max_evaluations: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            tolerance: 1e-6,
            max_iterations: 1000,
            max_evaluations: 20_000,
        }
    }
}

/// One linear problem: inputs `[n, d]`, targets `[n, k]` as [`LinearLoss`] reads them,
/// optional per-row weights, and the inverse regularization strength `C`.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// Inputs.
    pub x: ArrayView2<'a, f64>,
    /// Targets.
    pub y: ArrayView2<'a, f64>,
    /// Per-row loss weights (None: all 1).
    pub weights: Option<ArrayView1<'a, f64>>,
    /// The loss.
    pub loss: LinearLoss,
    /// Inverse regularization strength (> 0).
    pub c: f64,
}

impl Problem<'_> {
    /// The objective and its gradient (flat: weight row-major, then bias), both divided by
    /// `C · Σ sᵢ` so that their scale does not depend on `C` or the data size.
    pub fn objective(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let (k, d) = (self.y.ncols(), self.x.ncols());
        let s = LinearSolution::from_flat(p, k, d);
        let z = s.outputs(self.x);
        let (losses, mut g) = row_losses(self.loss, z, self.y);
        let total_weight = match self.weights {
            Some(w) => {
                g *= &w.insert_axis(Axis(1));
                w.sum()
            }
            None => self.x.nrows() as f64,
        };
        let data_loss = match self.weights {
            Some(w) => losses.dot(&w),
            None => losses.sum(),
        };
        let scale = 1.0 / (self.c * total_weight);
        let reg = 0.5 * s.weight.iter().map(|v| v * v).sum::<f64>();
        let cost = reg * scale + data_loss / total_weight;
        // d/dW = W + C · Gᵀ X; d/db = C · Σ G; then the same scale.
        let gw = &s.weight * scale + &(g.t().dot(&self.x) / total_weight);
        let gb = g.sum_axis(Axis(0)) / total_weight;
        (cost, gw.iter().chain(gb.iter()).copied().collect())
    }
}

/// Each row's loss and the loss's gradient with respect to the outputs `z`.
fn row_losses(
    loss: LinearLoss,
    z: Array2<f64>,
    y: ArrayView2<'_, f64>,
) -> (Array1<f64>, Array2<f64>) {
    let n = z.nrows();
    let mut l = Array1::zeros(n);
    let mut g = z;
    match loss {
        LinearLoss::Softmax => {
            for ((mut row, yr), li) in g.rows_mut().into_iter().zip(y.rows()).zip(l.iter_mut()) {
                let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
                let lse = max + sum.ln();
                *li = lse - row.dot(&yr);
                row.zip_mut_with(&yr, |v, &t| *v = (*v - lse).exp() - t);
            }
        }
        LinearLoss::Sigmoid => {
            for ((mut row, yr), li) in g.rows_mut().into_iter().zip(y.rows()).zip(l.iter_mut()) {
                let mut acc = 0.0;
                row.zip_mut_with(&yr, |v, &t| {
                    // softplus(z) − t·z, stable for any z.
                    acc += v.max(0.0) + (-v.abs()).exp().ln_1p() - t * *v;
                    *v = 1.0 / (1.0 + (-*v).exp()) - t;
                });
                *li = acc;
            }
        }
        LinearLoss::Squared => {
            for ((mut row, yr), li) in g.rows_mut().into_iter().zip(y.rows()).zip(l.iter_mut()) {
                row.zip_mut_with(&yr, |v, &t| *v -= t);
                *li = 0.5 * row.dot(&row);
            }
        }
    }
    (l, g)
}

/// One evaluation: the point, the cost, the gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// What the evaluations of one solve have seen: the last point (L-BFGS asks for the cost and
/// the gradient at the same point separately), the best point, and the count against the
/// budget. Kept outside argmin's executor, so that the best point survives a run that ends on
/// the budget.
struct Track {
    last: RefCell<Option<Evaluation>>,
    best: RefCell<Option<(Vec<f64>, f64)>>,
    evaluations: Cell<usize>,
    max_evaluations: usize,
}

/// argmin's view of a [`Problem`].
struct Objective<'p, 't> {
    problem: Problem<'p>,
    track: &'t Track,
}

/// The error that ends a solve when the evaluation budget is spent.
const BUDGET_SPENT: &str = "evaluation budget spent";

impl Objective<'_, '_> {
    /// The cost and gradient at `p`; an error once the evaluation budget is spent.
    fn eval(&self, p: &[f64]) -> std::result::Result<(f64, Vec<f64>), argmin::core::Error> {
        let t = self.track;
        if let Some((at, cost, grad)) = t.last.borrow().as_ref() {
            if at.as_slice() == p {
                return Ok((*cost, grad.clone()));
            }
        }
        if t.evaluations.get() >= t.max_evaluations {
            return Err(argmin::core::Error::msg(BUDGET_SPENT));
        }
        t.evaluations.set(t.evaluations.get() + 1);
        let (cost, grad) = self.problem.objective(p);
        if cost.is_finite() && t.best.borrow().as_ref().is_none_or(|(_, b)| cost < *b) {
            *t.best.borrow_mut() = Some((p.to_vec(), cost));
        }
        *t.last.borrow_mut() = Some((p.to_vec(), cost, grad.clone()));
        Ok((cost, grad))
    }
}

impl CostFunction for Objective<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.eval(p)?.0)
    }
}

impl Gradient for Objective<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.eval(p)?.1)
    }
}

/// Minimizes `problem`'s objective from `start` (a previous solution of a similar problem, or
/// [`LinearSolution::zeros`]). Deterministic. A solve that reaches neither tolerance within
/// the caps returns its best point, marked not converged.
pub fn solve(
    problem: Problem<'_>,
    start: &LinearSolution,
    options: SolveOptions,
) -> Result<LinearSolution> {
    let (n, d, k) = (problem.x.nrows(), problem.x.ncols(), problem.y.ncols());
    if n == 0 || problem.y.nrows() != n || problem.weights.is_some_and(|w| w.len() != n) {
        return Err(Error::invalid(format!(
            "a linear head needs rows: {n} inputs, {} targets",
            problem.y.nrows()
        )));
    }
    if start.weight.dim() != (k, d) || start.bias.len() != k {
        return Err(Error::new(
            ErrorKind::Internal,
            "linear warm start of another shape",
        ));
    }
    if !(problem.c.is_finite() && problem.c > 0.0) {
        return Err(Error::invalid(format!(
            "the inverse regularization C must be positive, not {}",
            problem.c
        )));
    }
    let track = Track {
        last: RefCell::new(None),
        best: RefCell::new(None),
        evaluations: Cell::new(0),
        max_evaluations: options.max_evaluations.max(1),
    };
    let objective = Objective {
        problem,
        track: &track,
    };
    let internal = |e: argmin::core::Error| Error::new(ErrorKind::Internal, format!("L-BFGS: {e}"));
    // Also stops when an iteration no longer changes the cost (argmin's default, f64::EPSILON):
    // near the optimum in f64 a tighter gradient tolerance may be out of reach.
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(options.tolerance)
        .map_err(internal)?;
    let (iterations, converged) = match Executor::new(objective, solver)
        .configure(|state| state.param(start.flat()).max_iters(options.max_iterations))
        .run()
    {
        Ok(result) => {
            let state = result.state();
            // Converged: the gradient or the cost criterion, not a cap or a line search that
            // ended on the evaluation budget.
            let converged = matches!(
                state.get_termination_status(),
                TerminationStatus::Terminated(TerminationReason::SolverConverged)
            );
            (state.get_iter(), converged)
        }
        Err(e) if e.to_string().contains(BUDGET_SPENT) => (0, false),
        Err(e) => return Err(internal(e)),
    };
    let best = track.best.borrow();
    let (best, _) = best.as_ref().ok_or_else(|| {
        Error::numeric("the linear head's objective is not finite (inputs out of range?)")
    })?;
    let mut solution = LinearSolution::from_flat(best, k, d);
    solution.iterations = iterations;
    solution.converged = converged;
    Ok(solution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn data() -> (Array2<f64>, Array2<f64>) {
        let x = array![
            [0.5, -1.0, 0.2],
            [1.5, 0.3, -0.7],
            [-0.4, 0.8, 1.1],
            [0.0, -0.2, 0.4],
            [2.0, 1.0, -1.0],
            [-1.2, -0.5, 0.3],
        ];
        let y = array![
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
        ];
        (x, y)
    }

    /// The analytic gradient against central differences, for every loss, with weights.
    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = data();
        let w = array![1.0, 2.0, 0.5, 1.0, 3.0, 1.0];
        for loss in [
            LinearLoss::Softmax,
            LinearLoss::Sigmoid,
            LinearLoss::Squared,
        ] {
            let problem = Problem {
                x: x.view(),
                y: y.view(),
                weights: Some(w.view()),
                loss,
                c: 0.7,
            };
            let p: Vec<f64> = (0..12).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3).collect();
            let (_, grad) = problem.objective(&p);
            for i in 0..p.len() {
                let h = 1e-6;
                let (mut a, mut b) = (p.clone(), p.clone());
                a[i] += h;
                b[i] -= h;
                let fd = (problem.objective(&a).0 - problem.objective(&b).0) / (2.0 * h);
                assert!(
                    (fd - grad[i]).abs() < 1e-7 * (1.0 + fd.abs()),
                    "{loss:?} parameter {i}: analytic {} vs finite difference {fd}",
                    grad[i]
                );
            }
        }
    }

    /// At the solution the gradient vanishes, and a cold and a warm start agree.
    #[test]
    fn solutions_are_stationary_and_do_not_depend_on_the_start() {
        let (x, y) = data();
        for loss in [
            LinearLoss::Softmax,
            LinearLoss::Sigmoid,
            LinearLoss::Squared,
        ] {
            let problem = Problem {
                x: x.view(),
                y: y.view(),
                weights: None,
                loss,
                c: 2.0,
            };
            let cold = solve(
                problem,
                &LinearSolution::zeros(3, 3),
                SolveOptions::default(),
            )
            .unwrap();
            assert!(cold.converged, "{loss:?}");
            let (_, g) = problem.objective(&cold.flat());
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(norm < 1e-5, "{loss:?}: gradient norm {norm}");
            let mut start = LinearSolution::zeros(3, 3);
            start.weight.fill(3.0);
            let warm = solve(problem, &start, SolveOptions::default()).unwrap();
            let diff = (&warm.weight - &cold.weight)
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(diff < 1e-4, "{loss:?}: {diff}");
        }
    }

    /// Ridge regression has a closed form: (XᵀX + I/C) w = Xᵀy with a centered intercept.
    #[test]
    fn squared_loss_matches_the_ridge_closed_form() {
        let (x, _) = data();
        let y = array![[1.0], [2.5], [-0.3], [0.7], [3.1], [-1.4]];
        let c = 0.8;
        let problem = Problem {
            x: x.view(),
            y: y.view(),
            weights: None,
            loss: LinearLoss::Squared,
            c,
        };
        let s = solve(
            problem,
            &LinearSolution::zeros(1, 3),
            SolveOptions::default(),
        )
        .unwrap();
        // Center, then solve the 3x3 system by Cramer's rule (independent of the solver).
        let xm = x.mean_axis(Axis(0)).unwrap();
        let ym = y.mean_axis(Axis(0)).unwrap()[0];
        let xc = &x - &xm;
        let yc = y.column(0).mapv(|v| v - ym);
        let mut a = xc.t().dot(&xc);
        for i in 0..3 {
            a[[i, i]] += 1.0 / c;
        }
        let rhs = xc.t().dot(&yc);
        let det = |m: &Array2<f64>| {
            m[[0, 0]] * (m[[1, 1]] * m[[2, 2]] - m[[1, 2]] * m[[2, 1]])
                - m[[0, 1]] * (m[[1, 0]] * m[[2, 2]] - m[[1, 2]] * m[[2, 0]])
                + m[[0, 2]] * (m[[1, 0]] * m[[2, 1]] - m[[1, 1]] * m[[2, 0]])
        };
        let d = det(&a);
        for j in 0..3 {
            let mut aj = a.clone();
            aj.column_mut(j).assign(&rhs);
            let wj = det(&aj) / d;
            assert!(
                (s.weight[[0, j]] - wj).abs() < 1e-5,
                "w{j}: {} vs {wj}",
                s.weight[[0, j]]
            );
        }
        let b = ym - xm.dot(&s.weight.row(0));
        assert!((s.bias[0] - b).abs() < 1e-5);
    }

    /// A spent evaluation budget ends the solve with the best point so far, not an error or a
    /// hang.
    #[test]
    fn the_evaluation_budget_ends_a_solve_cleanly() {
        let (x, y) = data();
        let problem = Problem {
            x: x.view(),
            y: y.view(),
            weights: None,
            loss: LinearLoss::Softmax,
            c: 100.0,
        };
        let options = SolveOptions {
            max_evaluations: 4,
            ..SolveOptions::default()
        };
        let s = solve(problem, &LinearSolution::zeros(3, 3), options).unwrap();
        assert!(!s.converged);
        assert!(s.weight.iter().all(|v| v.is_finite()));
        let full = solve(
            problem,
            &LinearSolution::zeros(3, 3),
            SolveOptions::default(),
        )
        .unwrap();
        assert!(full.converged);
        assert!(problem.objective(&full.flat()).0 < problem.objective(&s.flat()).0);
    }

    #[test]
    fn bad_problems_are_errors() {
        let (x, y) = data();
        let p = |c| Problem {
            x: x.view(),
            y: y.view(),
            weights: None,
            loss: LinearLoss::Softmax,
            c,
        };
        let zeros = LinearSolution::zeros(3, 3);
        assert!(solve(p(0.0), &zeros, SolveOptions::default()).is_err());
        assert!(solve(p(f64::NAN), &zeros, SolveOptions::default()).is_err());
        assert!(solve(
            p(1.0),
            &LinearSolution::zeros(2, 3),
            SolveOptions::default()
        )
        .is_err());
    }
}
