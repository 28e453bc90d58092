//! Matrix products for the layers, through faer's GEMM: its x86 kernels are dispatched at run
//! time (AVX-512 where present, else AVX2/FMA) and run the head-training shapes about twice as
//! fast as matrixmultiply's AVX2 kernels.
//!
//! Those kernels are assembly that returns with the upper halves of the vector registers dirty.
//! Until a `vzeroupper`, every legacy-SSE instruction (all code compiled for baseline x86-64,
//! libm's `exp` included) pays a merge penalty: measured, it made the rest of a training step
//! ~40% slower. Each product therefore clears the state when it is done.

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// A faer view of `a` when it is one contiguous row-major block, or one column-major block (a
/// transposed row-major array).
fn faer_ref<'a>(a: &ArrayView2<'a, f32>) -> Option<MatRef<'a, f32>> {
    let (r, c) = a.dim();
    if a.is_standard_layout() {
        Some(MatRef::from_row_major_slice(
            a.to_slice_memory_order()?,
            r,
            c,
        ))
    } else if a.t().is_standard_layout() {
        Some(MatRef::from_column_major_slice(
            a.to_slice_memory_order()?,
            r,
            c,
        ))
    } else {
        None
    }
}

/// `dst ← a·b`, or `dst += a·b` with `accumulate`. Operands that are not one contiguous block
/// (row- or column-major) are copied first.
///
/// # Panics
/// If the shapes do not agree.
pub fn matmul(
    mut dst: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
) {
    check_shapes(&dst, &a, &b);
    let a_own;
    let a_ref = match faer_ref(&a) {
        Some(m) => m,
        None => {
            a_own = a.as_standard_layout().into_owned();
            faer_ref(&a_own.view()).expect("standard layout")
        }
    };
    let b_own;
    let b_ref = match faer_ref(&b) {
        Some(m) => m,
        None => {
            b_own = b.as_standard_layout().into_owned();
            faer_ref(&b_own.view()).expect("standard layout")
        }
    };
    let beta = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    let (r, c) = dst.dim();
    if dst.is_standard_layout() {
        let s = dst.as_slice_memory_order_mut().expect("standard layout");
        let d = MatMut::from_row_major_slice_mut(s, r, c);
        product(d, beta, a_ref, b_ref);
    } else if dst.t().is_standard_layout() {
        let s = dst.as_slice_memory_order_mut().expect("column-major");
        let d = MatMut::from_column_major_slice_mut(s, r, c);
        product(d, beta, a_ref, b_ref);
    } else {
        let mut tmp = if accumulate {
            dst.as_standard_layout().into_owned()
        } else {
            Array2::zeros((r, c))
        };
        matmul(tmp.view_mut(), accumulate, a, b);
        dst.assign(&tmp);
    }
}

/// Which GEMM kernels a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// faer's x86 kernels: the fastest on the training shapes, but each thread that first runs
    /// one reserves twice the L3 cache size of address space for packing (600 MB per thread on
    /// a 300 MB-L3 host, more on large servers), and aborts when it cannot. For training.
    Fast,
    /// matrixmultiply's kernels (through ndarray), whose packing buffers are allocated per call
    /// and sized by the blocking (a few MB): a host that caps its address space gets what it
    /// asked for. Every inference forward (serving, validation) runs on these.
    Bounded,
}

/// `dst ← a·b`, or `dst += a·b` with `accumulate`, on the chosen [`Kernel`]s. Large products
/// are cut into row or column pieces run on rayon's pool, at cuts that depend only on the
/// shapes, so the result is the same on any number of threads.
///
/// # Panics
/// If the shapes do not agree.
pub fn matmul_on(
    kernel: Kernel,
    dst: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
) {
    match kernel {
        Kernel::Fast => matmul(dst, accumulate, a, b),
        Kernel::Bounded => bounded(dst, accumulate, a, b),
    }
}

fn bounded(
    mut dst: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
) {
    check_shapes(&dst, &a, &b);
    let (m, n, k) = (dst.nrows(), dst.ncols(), a.ncols());
    let long = m.max(n);
    if m * n * k < SPLIT_MIN || long < 2 * SPLIT_ALIGN {
        let beta = if accumulate { 1.0 } else { 0.0 };
        ndarray::linalg::general_mat_mul(1.0, &a, &b, beta, &mut dst);
        return;
    }
    let cut = (long / 2).next_multiple_of(SPLIT_ALIGN).min(long - 1);
    if n >= m {
        let (d0, d1) = dst.split_at(ndarray::Axis(1), cut);
        let (b0, b1) = b.split_at(ndarray::Axis(1), cut);
        rayon::join(
            || bounded(d0, accumulate, a, b0),
            || bounded(d1, accumulate, a, b1),
        );
    } else {
        let (d0, d1) = dst.split_at(ndarray::Axis(0), cut);
        let (a0, a1) = a.split_at(ndarray::Axis(0), cut);
        rayon::join(
            || bounded(d0, accumulate, a0, b),
            || bounded(d1, accumulate, a1, b),
        );
    }
}

/// Products of at least this many multiply-adds are cut in two (recursively): the pieces are
/// worth handing to another thread. Measured on the 2-core host, cutting the head-training
/// products (3.7M–7.4M multiply-adds) cost more in thread hand-offs than it saved; head steps
/// split whole half-batches instead (`train::data_parallel`), and the large products of sequence layers and
/// batch inference still split.
const SPLIT_MIN: usize = 1 << 23;

/// Pieces are cut at multiples of this many rows or columns (the kernels' vector width).
const SPLIT_ALIGN: usize = 16;

/// `dst (+)= a·b` in faer views, large products cut into halves along the longer side of `dst`
/// and run on rayon's pool. The cuts depend only on the shapes, never on the number of
/// threads, and each piece is one sequential GEMM: the result is bit-identical with one thread
/// or many.
fn product(dst: MatMut<'_, f32>, beta: Accum, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    let (m, n, k) = (dst.nrows(), dst.ncols(), a.ncols());
    let long = m.max(n);
    if m * n * k < SPLIT_MIN || long < 2 * SPLIT_ALIGN {
        faer::linalg::matmul::matmul(dst, beta, a, b, 1.0, Par::Seq);
        // On whichever thread ran it (see the module docs).
        clear_upper_state();
        return;
    }
    let cut = (long / 2).next_multiple_of(SPLIT_ALIGN).min(long - 1);
    if n >= m {
        let (d0, d1) = dst.split_at_col_mut(cut);
        let (b0, b1) = b.split_at_col(cut);
        rayon::join(|| product(d0, beta, a, b0), || product(d1, beta, a, b1));
    } else {
        let (d0, d1) = dst.split_at_row_mut(cut);
        let (a0, a1) = a.split_at_row(cut);
        rayon::join(|| product(d0, beta, a0, b), || product(d1, beta, a1, b));
    }
}

/// `vzeroupper` where the CPU has AVX (see the module docs); nothing elsewhere.
#[inline]
fn clear_upper_state() {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx) = pulp::core_arch::x86::Avx::try_new() {
        avx._mm256_zeroupper();
    }
}

/// Panics unless `dst = a · b` is well-formed (a programming error, not bad input).
fn check_shapes(dst: &ArrayViewMut2<'_, f32>, a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) {
    assert!(
        a.ncols() == b.nrows() && dst.dim() == (a.nrows(), b.ncols()),
        "matmul: {:?} x {:?} into {:?}",
        a.dim(),
        b.dim(),
        dst.dim()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn filled(r: usize, c: usize, k: usize) -> Array2<f32> {
        Array2::from_shape_fn((r, c), |(i, j)| ((i * 7 + j * 3 + k) % 11) as f32 - 5.0)
    }

    #[test]
    fn matches_ndarray_for_every_layout() {
        let a = filled(37, 45, 1);
        let b = filled(45, 29, 2);
        let want = a.dot(&b);
        let a_f = a.t().as_standard_layout().into_owned();
        let b_f = b.t().as_standard_layout().into_owned();
        let a_wide = filled(37, 90, 3);
        let mut a_strided = a_wide.clone();
        a_strided.slice_mut(s![.., ..;2]).assign(&a);
        let a_views = [a.view(), a_f.t(), a_strided.slice(s![.., ..;2])];
        for av in a_views {
            for bv in [b.view(), b_f.t()] {
                let mut c = Array2::zeros((37, 29));
                matmul(c.view_mut(), false, av, bv);
                assert_eq!(c, want);
                matmul(c.view_mut(), true, av, bv);
                assert_eq!(c, &want * 2.0);
                let mut c_f = Array2::zeros((29, 37));
                matmul(c_f.view_mut().reversed_axes(), false, av, bv);
                assert_eq!(c_f.t(), want);
                let mut c_wide = Array2::ones((37, 58));
                matmul(c_wide.slice_mut(s![.., ..;2]), true, av, bv);
                assert_eq!(c_wide.slice(s![.., ..;2]), &want + 1.0);
                assert!(c_wide.slice(s![.., 1..;2]).iter().all(|&v| v == 1.0));
            }
        }
    }

    #[test]
    fn bounded_kernels_agree_with_fast_ones_and_not_with_threads() {
        let a = Array2::from_shape_fn((300, 451), |(i, j)| ((i * 451 + j) as f32 * 0.37).sin());
        let b = Array2::from_shape_fn((451, 256), |(i, j)| ((i * 256 + j) as f32 * 0.11).cos());
        let run = |kernel: Kernel, threads: usize| {
            crate::nn::parallel::on_threads(threads, || {
                let mut c = Array2::ones((300, 256));
                matmul_on(kernel, c.view_mut(), false, a.view(), b.view());
                let mut g = Array2::ones((451, 256));
                matmul_on(kernel, g.view_mut(), true, a.t(), c.view());
                (c, g)
            })
        };
        let bounded = run(Kernel::Bounded, 1);
        assert_eq!(bounded, run(Kernel::Bounded, 2));
        assert_eq!(bounded, run(Kernel::Bounded, 3));
        let fast = run(Kernel::Fast, 2);
        let err = |x: &Array2<f32>, y: &Array2<f32>| {
            let scale = y.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            (x - y).iter().fold(0.0f32, |m, &d| m.max(d.abs())) / scale
        };
        assert!(err(&bounded.0, &fast.0) < 1e-5);
        assert!(err(&bounded.1, &fast.1) < 1e-5);
        let small = filled(3, 5, 1);
        let mut c = Array2::zeros((3, 5));
        matmul_on(
            Kernel::Bounded,
            c.view_mut(),
            false,
            small.view(),
            filled(5, 5, 2).view(),
        );
        assert_eq!(c, small.dot(&filled(5, 5, 2)));
    }

    #[test]
    fn large_products_are_the_same_on_any_number_of_threads() {
        // Big enough to be cut into pieces; non-integer values, so rounding would show.
        let a = Array2::from_shape_fn((64, 451), |(i, j)| ((i * 451 + j) as f32 * 0.37).sin());
        let b = Array2::from_shape_fn((451, 256), |(i, j)| ((i * 256 + j) as f32 * 0.11).cos());
        let run = |threads: usize| {
            crate::nn::parallel::on_threads(threads, || {
                let mut c = Array2::zeros((64, 256));
                matmul(c.view_mut(), false, a.view(), b.view());
                let mut g = Array2::ones((451, 256));
                matmul(g.view_mut(), true, a.t(), c.view());
                (c, g)
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
        let want = a.dot(&b);
        let err = (&one.0 - &want).iter().fold(0.0f32, |m, &d| m.max(d.abs()));
        assert!(err < 1e-3, "max error {err}");
    }
}
