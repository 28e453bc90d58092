//! Element-wise loops compiled for the best vector instruction set the CPU has.
//!
//! The crate is built for baseline x86-64 (SSE2), so plain loops vectorize 4 lanes wide.
//! [`vectorized`] runs a closure through pulp's run-time dispatch, inside a function compiled
//! with AVX2 and FMA where the CPU has them; the closure (and what it calls) is inlined there and
//! its loops vectorize 8 lanes wide. Results do not depend on the instruction set: the loops do
//! the same f32 operations in the same order, only more of them at once (no FMA contraction:
//! Rust never fuses a multiply and an add on its own).

/// Runs `f` compiled for AVX2 + FMA when the CPU has them, else as is.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Lanes of the partial sums in [`sum`] and [`dot`].
const LANES: usize = 8;

/// Σ xᵢ in [`LANES`] interleaved partial sums (lane j takes elements j, j+8, …) added up in a
/// fixed order at the end: this vectorizes (a plain sequential f32 sum cannot), and the result
/// is the same on every CPU.
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
        *a += x;
    }
    acc.iter().sum()
}

/// Σ aᵢ·bᵢ over the common length, in the same order as [`sum`].
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    for ((s, &x), &y) in acc.iter_mut().zip(ca.remainder()).zip(cb.remainder()) {
        *s += x * y;
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_match_f64() {
        for n in [0usize, 1, 7, 8, 9, 64, 257] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let s64: f64 = a.iter().map(|&x| x as f64).sum();
            let d64: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((sum(&a) as f64 - s64).abs() < 1e-5, "sum of {n}");
            assert!((dot(&a, &b) as f64 - d64).abs() < 1e-5, "dot of {n}");
            assert_eq!(vectorized(|| sum(&a)), sum(&a));
        }
    }
}
