//! Ragged per-token embeddings: what sequence heads read.
//!
//! Texts have different lengths, so their token vectors are stored back to back with no
//! padding (`offsets[i]..offsets[i + 1]` are text `i`'s rows) and in f16, which halves memory
//! and the on-disk cache while keeping ~3 significant digits, far below what a head can use.
//! Training and serving both read the same f16 values, so there is no train/serve skew.

use half::f16;
use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

/// Token vectors of many texts, packed without padding, stored as f16.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSeqs {
    dim: usize,
    data: Vec<f16>,
    offsets: Vec<usize>,
}

/// A mini-batch of token sequences in f32, as layers consume it: `tokens [T, dim]` with text
/// `i` in rows `offsets[i]..offsets[i + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBatch {
    /// Token vectors of every text, back to back.
    pub tokens: Array2<f32>,
    /// `n + 1` row offsets into `tokens`, starting at 0.
    pub offsets: Vec<usize>,
}

impl TokenSeqs {
    /// No texts yet, vectors of `dim` floats.
    pub fn new(dim: usize) -> Self {
        TokenSeqs {
            dim,
            data: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Builds from raw parts; `offsets` must start at 0, never decrease and end at
    /// `data.len() / dim`.
    pub fn from_parts(dim: usize, data: Vec<f16>, offsets: Vec<usize>) -> Result<Self> {
        let ok = dim > 0
            && offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && data.len() == offsets.last().copied().unwrap_or(0) * dim;
        if !ok {
            return Err(Error::format(format!(
                "token sequences: {} values, dim {dim} and offsets ending at {:?} do not agree",
                data.len(),
                offsets.last()
            )));
        }
        Ok(TokenSeqs { dim, data, offsets })
    }

    /// Appends one text's token vectors `[len, dim]`, rounding them to f16.
    pub fn push(&mut self, tokens: ArrayView2<'_, f32>) {
        assert_eq!(tokens.ncols(), self.dim, "token width");
        let start = self.data.len();
        self.data.resize(start + tokens.len(), f16::ZERO);
        let dst = &mut self.data[start..];
        match tokens.as_slice() {
            Some(src) => half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src),
            None => {
                for (d, &s) in dst.iter_mut().zip(tokens.iter()) {
                    *d = f16::from_f32(s);
                }
            }
        }
        self.offsets
            .push(self.offsets.last().unwrap() + tokens.nrows());
    }

    /// Appends one text already in f16 (`len * dim` values).
    pub fn push_f16(&mut self, values: &[f16]) {
        assert_eq!(values.len() % self.dim, 0, "token width");
        self.data.extend_from_slice(values);
        self.offsets
            .push(self.offsets.last().unwrap() + values.len() / self.dim);
    }

    /// Appends every text of `other`.
    pub fn extend(&mut self, other: &TokenSeqs) {
        assert_eq!(other.dim, self.dim, "token width");
        for i in 0..other.len() {
            self.push_f16(other.text(i));
        }
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of texts.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when there are no texts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens of text `i`.
    pub fn length(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Total tokens over all texts.
    pub fn total_tokens(&self) -> usize {
        *self.offsets.last().unwrap()
    }

    /// Text `i`'s values, `length(i) * dim` f16s.
    pub fn text(&self, i: usize) -> &[f16] {
        &self.data[self.offsets[i] * self.dim..self.offsets[i + 1] * self.dim]
    }

    /// The first text (by index) with a NaN or infinite value, as `Err(index)`; `Ok` when
    /// every value is finite.
    pub fn check_finite(&self) -> std::result::Result<(), usize> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            // The first offset past the value's row is the end of its text.
            Some(at) => Err(self.offsets.partition_point(|&o| o * self.dim <= at) - 1),
        }
    }

    /// Row offsets (`len() + 1` of them).
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Bytes held by the vectors (2 per value).
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }

    /// The texts at `idx` (repeats allowed), in that order.
    pub fn select(&self, idx: &[usize]) -> TokenSeqs {
        let mut out = TokenSeqs::new(self.dim);
        out.data
            .reserve(idx.iter().map(|&i| self.length(i)).sum::<usize>() * self.dim);
        for &i in idx {
            out.push_f16(self.text(i));
        }
        out
    }

    /// The texts at `idx` as one f32 [`PackedBatch`], for a layer's forward pass.
    pub fn gather(&self, idx: &[usize]) -> PackedBatch {
        let total: usize = idx.iter().map(|&i| self.length(i)).sum();
        let mut values = vec![0f32; total * self.dim];
        let mut offsets = Vec::with_capacity(idx.len() + 1);
        offsets.push(0);
        let mut at = 0;
        for &i in idx {
            let src = self.text(i);
            half::slice::HalfFloatSliceExt::convert_to_f32_slice(
                src,
                &mut values[at * self.dim..at * self.dim + src.len()],
            );
            at += self.length(i);
            offsets.push(at);
        }
        PackedBatch {
            tokens: Array2::from_shape_vec((total, self.dim), values).expect("sized above"),
            offsets,
        }
    }

    /// Every text as one f32 [`PackedBatch`].
    pub fn to_packed(&self) -> PackedBatch {
        self.gather(&(0..self.len()).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn push_select_gather_round_trip() {
        let mut s = TokenSeqs::new(2);
        s.push(array![[1.0, 2.0]].view());
        s.push(array![[3.0, 4.0], [5.0, 6.5]].view());
        s.push(array![[0.1, -7.0], [8.0, 9.0], [10.0, 11.0]].view());
        assert_eq!(s.len(), 3);
        assert_eq!(s.total_tokens(), 6);
        assert_eq!(s.offsets(), &[0, 1, 3, 6]);
        assert_eq!(s.bytes(), 24);
        let b = s.gather(&[2, 0, 2]);
        assert_eq!(b.offsets, vec![0, 3, 4, 7]);
        assert_eq!(b.tokens.row(3).to_vec(), vec![1.0, 2.0]);
        // f16 rounding: 0.1 is not exact, but within half an ulp (2^-14 relative here).
        assert!((b.tokens[[0, 0]] - 0.1).abs() < 1e-4);
        assert_eq!(b.tokens[[6, 1]], 11.0);
        let sel = s.select(&[1]);
        assert_eq!(sel.to_packed().tokens, array![[3.0, 4.0], [5.0, 6.5]]);
        let mut e = TokenSeqs::new(2);
        e.extend(&s);
        e.extend(&sel);
        assert_eq!(e.len(), 4);
        assert_eq!(e.text(3), sel.text(0));
    }

    #[test]
    fn check_finite_names_the_text() {
        let mut s = TokenSeqs::new(2);
        s.push(array![[1.0, 2.0]].view());
        s.push(array![[3.0, 4.0], [5.0, f32::NAN]].view());
        s.push(array![[0.0, 1.0]].view());
        assert_eq!(s.check_finite(), Err(1));
        assert_eq!(s.select(&[0, 2]).check_finite(), Ok(()));
        let mut e = TokenSeqs::new(1);
        e.push_f16(&[]);
        e.push_f16(&[f16::INFINITY]);
        assert_eq!(e.check_finite(), Err(1));
    }

    #[test]
    fn from_parts_checks_consistency() {
        let data = vec![f16::ONE; 6];
        assert!(TokenSeqs::from_parts(2, data.clone(), vec![0, 1, 3]).is_ok());
        assert!(TokenSeqs::from_parts(2, data.clone(), vec![0, 2]).is_err());
        assert!(TokenSeqs::from_parts(2, data.clone(), vec![1, 3]).is_err());
        assert!(TokenSeqs::from_parts(2, data, vec![0, 2, 1, 3]).is_err());
        assert!(TokenSeqs::from_parts(0, vec![], vec![0]).is_err());
    }
}
