//! Pooling token vectors into a sentence embedding (mean over the valid tokens, or the first
//! token's: `[CLS]`), and L2 normalization, as sentence-transformers does.

use ndarray::{Array2, ArrayView2, ArrayView3};
use serde::{Deserialize, Serialize};

/// How a backbone turns its token vectors into one sentence embedding (the backbone
/// manifest's `pooling`). Graphs with a pooled output pool inside the graph; this names what
/// they do, and is what tandem computes for graphs with only per-token outputs and for
/// fine-tuned top layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean of the valid (unpadded) tokens' vectors (all-MiniLM, all-mpnet).
    #[default]
    Mean,
    /// The first token's vector, `[CLS]` (BGE and many BERT classifiers).
    Cls,
}

impl Pooling {
    /// The manifest's name for it (`mean`, `cls`).
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }

    /// Padded token vectors `[b, s, d]` with per-row masks → `[b, d]`. A row with no valid
    /// token pools to zeros under `Mean`; tokenizers always emit `[CLS]` first, so `Cls`
    /// reads position 0 (right padding).
    pub fn pool_padded(self, tokens: ArrayView3<'_, f32>, mask: &[Vec<u32>]) -> Array2<f32> {
        match self {
            Pooling::Mean => mean_pool(tokens, mask),
            Pooling::Cls => {
                let (b, s, d) = tokens.dim();
                if s == 0 {
                    return Array2::zeros((b, d));
                }
                tokens.slice(ndarray::s![.., 0, ..]).to_owned()
            }
        }
    }

    /// Packed token rows `h` (`offsets` delimit each text's, `n + 1` of them) → `[n, d]`; an
    /// empty text pools to zeros.
    pub fn pool_packed(self, h: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        let mut emb = Array2::<f32>::zeros((offsets.len().saturating_sub(1), h.ncols()));
        for (i, w) in offsets.windows(2).enumerate() {
            if w[1] <= w[0] {
                continue;
            }
            match self {
                Pooling::Mean => {
                    let rows = h.slice(ndarray::s![w[0]..w[1], ..]);
                    emb.row_mut(i)
                        .assign(&rows.mean_axis(ndarray::Axis(0)).unwrap_or_default());
                }
                Pooling::Cls => emb.row_mut(i).assign(&h.row(w[0])),
            }
        }
        emb
    }

    /// The gradient on packed token rows (`[offsets.last(), d]`) of [`Pooling::pool_packed`]
    /// given the gradient `g` on its output: each text's row spread evenly over its tokens
    /// (`Mean`), or all of it on its first token (`Cls`).
    pub fn backward_packed(self, g: ArrayView2<'_, f32>, offsets: &[usize]) -> Array2<f32> {
        let total = *offsets.last().unwrap_or(&0);
        let mut gt = Array2::<f32>::zeros((total, g.ncols()));
        for (r, w) in offsets.windows(2).enumerate() {
            if w[1] <= w[0] {
                continue;
            }
            match self {
                Pooling::Mean => {
                    let n = (w[1] - w[0]) as f32;
                    let row = g.row(r).mapv(|v| v / n);
                    gt.slice_mut(ndarray::s![w[0]..w[1], ..]).assign(
                        &row.broadcast((w[1] - w[0], g.ncols()))
                            .expect("row broadcast"),
                    );
                }
                Pooling::Cls => gt.row_mut(w[0]).assign(&g.row(r)),
            }
        }
        gt
    }
}

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
    fn cls_reads_the_first_token_padded_or_packed() {
        let t = Array3::from_shape_vec(
            (2, 3, 2),
            vec![1., 2., 3., 4., 100., 100., 5., 6., 0., 0., 0., 0.],
        )
        .unwrap();
        let mask = [vec![1, 1, 0], vec![1, 0, 0]];
        let p = Pooling::Cls.pool_padded(t.view(), &mask);
        assert_eq!(p, ndarray::arr2(&[[1., 2.], [5., 6.]]));
        assert_eq!(
            Pooling::Mean.pool_padded(t.view(), &mask),
            mean_pool(t.view(), &mask)
        );
        // The same texts packed: rows 0..2 and 2..3, and an empty third text.
        let h = ndarray::arr2(&[[1., 2.], [3., 4.], [5., 6.]]);
        let offsets = [0, 2, 3, 3];
        assert_eq!(
            Pooling::Cls.pool_packed(h.view(), &offsets),
            ndarray::arr2(&[[1., 2.], [5., 6.], [0., 0.]])
        );
        assert_eq!(
            Pooling::Mean.pool_packed(h.view(), &offsets),
            ndarray::arr2(&[[2., 3.], [5., 6.], [0., 0.]])
        );
    }

    #[test]
    fn packed_pooling_gradients_are_the_transpose_of_the_pooling() {
        // Pooling is linear: <g, P h> = <P^T g, h> for any h and g.
        let h = Array2::from_shape_fn((6, 3), |(i, j)| ((i * 3 + j) as f32 * 0.7).sin());
        let offsets = [0, 1, 4, 4, 6];
        let g = Array2::from_shape_fn((4, 3), |(i, j)| ((i * 3 + j) as f32 * 1.3).cos());
        for p in [Pooling::Mean, Pooling::Cls] {
            let lhs: f32 = (&p.pool_packed(h.view(), &offsets) * &g).sum();
            let rhs: f32 = (&p.backward_packed(g.view(), &offsets) * &h).sum();
            assert!((lhs - rhs).abs() < 1e-5, "{p:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn manifest_names_parse_and_others_are_refused() {
        assert_eq!(
            serde_json::from_str::<Pooling>("\"cls\"").unwrap(),
            Pooling::Cls
        );
        assert_eq!(serde_json::to_string(&Pooling::Mean).unwrap(), "\"mean\"");
        let e = serde_json::from_str::<Pooling>("\"max\"").unwrap_err();
        assert!(e.to_string().contains("max"), "{e}");
    }

    #[test]
    fn normalize_is_unit_and_total() {
        let mut x = Array2::from_shape_vec((2, 2), vec![3., 4., 0., 0.]).unwrap();
        l2_normalize(&mut x);
        assert!((x[[0, 0]] - 0.6).abs() < 1e-6 && (x[[0, 1]] - 0.8).abs() < 1e-6);
        assert_eq!(x.row(1).to_vec(), vec![0.0, 0.0]);
    }
}
