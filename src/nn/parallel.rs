//! When the layers and the optimizer use more than one thread.
//!
//! Parallel work runs on rayon's global pool (as many threads as cores unless the host
//! configures it, e.g. `RAYON_NUM_THREADS`). Work is always cut into the same pieces, whatever
//! the number of threads, and each piece is computed the same way: results are bit-identical
//! with one thread or many.

/// Elements per piece of element-wise work (64 KiB of f32: long enough to dwarf the cost of
/// handing it to another thread, short enough to split a 451 × 256 weight).
pub(crate) const PIECE: usize = 16 * 1024;

/// Whether element-wise work over `len` elements is worth splitting.
pub(crate) fn worth_it(len: usize) -> bool {
    len >= 2 * PIECE && rayon::current_num_threads() > 1
}

/// Runs `f` on a fresh pool of `threads` threads: tests check that results do not depend on
/// the thread count.
#[cfg(test)]
pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}
