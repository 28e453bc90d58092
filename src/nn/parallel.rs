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

/// Runs `f` on a thread of rayon's global pool and returns its result (directly when already
/// on one). Work split with `rayon::join` or parallel iterators from a thread outside the pool
/// is injected into the pool as a whole while the caller sleeps on a latch: hot loops that
/// split work on every step run much faster when the whole loop is on a pool thread.
pub(crate) fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    // `scope` runs its body on a worker of the global pool and waits for it.
    rayon::scope(|_| f())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_pool_runs_on_a_pool_thread_and_nests() {
        assert!(
            rayon::current_thread_index().is_none(),
            "test threads are not rayon's"
        );
        let caller = std::thread::current().id();
        let (index, id) = on_pool(|| (rayon::current_thread_index(), std::thread::current().id()));
        assert!(index.is_some());
        assert_ne!(id, caller);
        // Already on the pool: runs in place.
        let nested = on_pool(|| {
            let outer = std::thread::current().id();
            on_pool(|| std::thread::current().id() == outer)
        });
        assert!(nested);
        let v: Vec<u32> = (0..10).collect();
        assert_eq!(on_pool(|| v.iter().sum::<u32>()), 45);
    }
}
