//! Mean pooling over valid tokens and L2 normalization, as sentence-transformers does.

use ndarray::{Array2, ArrayView3};

/// Mean of each row's token vectors where `mask` is 1. A row with no valid token pools to zeros.
pub fn mean_pool(tokens: ArrayView3<'_, f32>, mask: &[Vec<u32>]) -> Array2<f32> {
    let (b, s, d) = tokens.dim();
    let mut out = Array2::<f32>::zeros((b, d));
    for (i, row_mask) in mask.iter().enumerate().take(b) {
        let mut n = 0.0f32;
        let mut acc = out.row_mut(i);
        for (t, &m) in row_mask.iter().enumerate().take(s) {
            if m != 0 {
                acc += &tokens.slice(ndarray::s![i, t, ..]);
                n += 1.0;
            }
        }
        if n > 0.0 {
            acc /= n;
        }
    }
    out
}

/// Scales each row to unit L2 norm; rows with a tiny norm are left as they are (no NaN).
pub fn l2_normalize(x: &mut Array2<f32>) {
    for mut row in x.rows_mut() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 1e-12 {
            row /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn mean_pool_ignores_masked_tokens() {
        // Row 0: tokens [1,2], [3,4], [100,100] masked out -> mean [2,3].
        let t = Array3::from_shape_vec(
            (2, 3, 2),
            vec![1., 2., 3., 4., 100., 100., 5., 6., 0., 0., 0., 0.],
        )
        .unwrap();
        let p = mean_pool(t.view(), &[vec![1, 1, 0], vec![1, 0, 0]]);
        assert_eq!(p.row(0).to_vec(), vec![2.0, 3.0]);
        assert_eq!(p.row(1).to_vec(), vec![5.0, 6.0]);
    }

    #[test]
    fn normalize_is_unit_and_total() {
        let mut x = Array2::from_shape_vec((2, 2), vec![3., 4., 0., 0.]).unwrap();
        l2_normalize(&mut x);
        assert!((x[[0, 0]] - 0.6).abs() < 1e-6 && (x[[0, 1]] - 0.8).abs() < 1e-6);
        assert_eq!(x.row(1).to_vec(), vec![0.0, 0.0]);
    }
}
