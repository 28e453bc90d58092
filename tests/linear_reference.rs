//! The linear recipe's solver against scikit-learn: `tests/fixtures/linear_reference.json`
//! (written by `scripts/linear_reference.py`) holds `LogisticRegression` (multinomial and
//! binary) and `Ridge` solutions on a fixed dataset at three regularization strengths. The
//! objectives are convex, so tandem's L-BFGS must reach the same optimum.

use ndarray::Array2;
use serde_json::Value;
use tandem::train::linear::solve::{solve, LinearLoss, LinearSolution, Problem, SolveOptions};

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (n, d) = (rows.len(), rows[0].len());
    Array2::from_shape_vec((n, d), rows.into_iter().flatten().collect()).unwrap()
}

#[test]
fn solutions_match_scikit_learn() {
    let text = include_str!("fixtures/linear_reference.json");
    let fixture: Value = serde_json::from_str(text).unwrap();
    let x = matrix(&fixture["x"]);
    let n = x.nrows();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let c = case["c"].as_f64().unwrap();
        let want_w = matrix(&case["weight"]);
        let want_b: Vec<f64> = serde_json::from_value(case["bias"].clone()).unwrap();
        let (loss, y) = match case["loss"].as_str().unwrap() {
            "softmax" => {
                let classes: Vec<usize> = serde_json::from_value(case["y"].clone()).unwrap();
                let k = want_w.nrows();
                let y = Array2::from_shape_fn((n, k), |(i, j)| f64::from(classes[i] == j));
                (LinearLoss::Softmax, y)
            }
            "sigmoid" => {
                let y: Vec<f64> = serde_json::from_value(case["y"].clone()).unwrap();
                (
                    LinearLoss::Sigmoid,
                    Array2::from_shape_fn((n, 1), |(i, _)| y[i]),
                )
            }
            _ => {
                let y: Vec<f64> = serde_json::from_value(case["y"].clone()).unwrap();
                (
                    LinearLoss::Squared,
                    Array2::from_shape_fn((n, 1), |(i, _)| y[i]),
                )
            }
        };
        let problem = Problem {
            x: x.view(),
            y: y.view(),
            weights: None,
            loss,
            c,
        };
        let options = SolveOptions {
            tolerance: 1e-9,
            ..SolveOptions::default()
        };
        let start = LinearSolution::zeros(want_w.nrows(), want_w.ncols());
        let got = solve(problem, &start, options).unwrap();
        assert!(
            got.converged,
            "{loss:?} C={c}: {} iterations",
            got.iterations
        );
        let scale = want_w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let mut worst = 0.0f64;
        for (a, b) in got.weight.iter().zip(want_w.iter()) {
            worst = worst.max((a - b).abs());
        }
        for (a, b) in got.bias.iter().zip(&want_b) {
            worst = worst.max((a - b).abs());
        }
        assert!(
            worst < 1e-4 * scale,
            "{loss:?} C={c}: largest difference {worst} (weights up to {scale})\n\
             tandem {:?} {:?}\nsklearn {:?} {want_b:?}",
            got.weight.row(0),
            got.bias,
            want_w.row(0)
        );
    }
}
