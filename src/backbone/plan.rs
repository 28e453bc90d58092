//! Which texts run together through the graph.
//!
//! A run costs a fixed overhead plus work proportional to its padded area (rows × longest row).
//! Sorting by length and cutting the sorted list where a run's padding would cost more than an
//! extra run does keeps that total low: 32 TREC questions in one run are ~45% padding, and cut
//! into length-matched runs they embed 1.17–1.29× faster on the CPU (the embed bench's paired
//! medians against onnxruntime-python running them whole).

/// Per-run overhead on the CPU, in padded tokens, per intra-op thread. Measured with ONNX
/// Runtime 1.31 on all-MiniLM-L6-v2 with 2 threads: fitting time = a + b·rows·width over 1–32
/// rows × 8–64 tokens gave ~12 tokens for fp32 and ~6 for int8 (noisy fits ranged higher), and
/// replaying TREC batches, a run cost of 12 beat 48, 100 and 200 on short texts and tied on long
/// ones.
const CPU_RUN_COST_PER_THREAD: usize = 6;

/// The CPU run cost for sessions of `threads` intra-op threads. A run's per-token time divides
/// among the threads and its fixed overhead does not, so in tokens the overhead grows with
/// them. Only 1–2 threads were measurable here; the linear scaling errs, on bigger machines,
/// towards fewer and fuller runs, which is what batching did before planning.
pub(crate) fn cpu_run_cost(threads: usize) -> usize {
    CPU_RUN_COST_PER_THREAD * threads.max(1)
}

/// Groups text indices into runs that minimise Σ (`run_cost` + rows × longest row), with at
/// most `max_rows` texts and at most `max_tokens` padded tokens per run (a single text longer
/// than that still runs alone).
///
/// Texts are sorted by length (stably), so each run is a contiguous stretch of that order, and
/// the cut points come from an exact dynamic programme over it: O(n · `max_rows`). A large
/// `run_cost` gives the fewest runs (what a GPU wants); a small one, the least padding. On a
/// tie the longer last run wins. The plan depends only on the lengths, never on timing, so it
/// is reproducible.
pub(crate) fn plan_batches(
    lengths: &[usize],
    max_rows: usize,
    max_tokens: usize,
    run_cost: usize,
) -> Vec<Vec<usize>> {
    let n = lengths.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| lengths[i]);
    let width = |k: usize| lengths[order[k]].max(1);
    // best[j]: least cost of the first j sorted texts; start[j]: where its last run starts.
    let mut best = vec![usize::MAX; n + 1];
    let mut start = vec![0usize; n + 1];
    best[0] = 0;
    for j in 1..=n {
        // Sorted ascending, so the last text of a run sets its padded width.
        let w = width(j - 1);
        for i in (j.saturating_sub(max_rows.max(1))..j).rev() {
            let rows = j - i;
            if rows > 1 && rows.saturating_mul(w) > max_tokens {
                break; // more rows only widen the area
            }
            let cost = best[i]
                .saturating_add(run_cost)
                .saturating_add(rows.saturating_mul(w));
            // `<=` while rows grow: on a tie the longer run (fewer runs) wins.
            if cost <= best[j] {
                best[j] = cost;
                start[j] = i;
            }
        }
    }
    let mut runs = Vec::new();
    let mut j = n;
    while j > 0 {
        let i = start[j];
        runs.push(order[i..j].to_vec());
        j = i;
    }
    runs.reverse();
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Σ (run_cost + rows × width) of a plan.
    fn cost(lengths: &[usize], runs: &[Vec<usize>], run_cost: usize) -> usize {
        runs.iter()
            .map(|r| run_cost + r.len() * r.iter().map(|&i| lengths[i].max(1)).max().unwrap())
            .sum()
    }

    fn check_valid(lengths: &[usize], runs: &[Vec<usize>], max_rows: usize, max_tokens: usize) {
        let mut all: Vec<usize> = runs.concat();
        all.sort();
        assert_eq!(
            all,
            (0..lengths.len()).collect::<Vec<_>>(),
            "every text once"
        );
        for r in runs {
            let width = r.iter().map(|&i| lengths[i].max(1)).max().unwrap();
            assert!(!r.is_empty() && r.len() <= max_rows, "{r:?}");
            assert!(r.len() == 1 || r.len() * width <= max_tokens, "{r:?}");
        }
    }

    /// The least cost over every way of cutting the sorted lengths into contiguous runs,
    /// by enumerating all 2^(n-1) cut sets: an independent check of the programme.
    fn brute_force(lengths: &[usize], max_rows: usize, max_tokens: usize, rc: usize) -> usize {
        let mut sorted: Vec<usize> = lengths.iter().map(|&l| l.max(1)).collect();
        sorted.sort();
        let n = sorted.len();
        let mut least = usize::MAX;
        for cuts in 0u32..(1 << (n - 1)) {
            let (mut total, mut begin, mut ok) = (0, 0, true);
            for end in 1..=n {
                if end == n || cuts & (1 << (end - 1)) != 0 {
                    let rows = end - begin;
                    let w = sorted[end - 1];
                    ok &= rows <= max_rows && (rows == 1 || rows * w <= max_tokens);
                    total += rc + rows * w;
                    begin = end;
                }
            }
            if ok {
                least = least.min(total);
            }
        }
        least
    }

    #[test]
    fn plans_are_optimal_against_brute_force() {
        // A fixed pseudo-random stream (an LCG), so the cases are the same every run.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % m) as usize
        };
        for case in 0..300 {
            let n = 1 + next(11);
            let lengths: Vec<usize> = (0..n).map(|_| next(40)).collect();
            let max_rows = 1 + next(6);
            let max_tokens = 20 + next(120);
            let rc = [0, 1, 12, 1000][case % 4];
            let runs = plan_batches(&lengths, max_rows, max_tokens, rc);
            check_valid(&lengths, &runs, max_rows, max_tokens);
            assert_eq!(
                cost(&lengths, &runs, rc),
                brute_force(&lengths, max_rows, max_tokens, rc),
                "{lengths:?} rows {max_rows} tokens {max_tokens} run cost {rc}"
            );
        }
    }

    #[test]
    fn the_cpu_run_cost_grows_with_the_threads() {
        assert_eq!(cpu_run_cost(2), 12);
        assert_eq!(cpu_run_cost(0), cpu_run_cost(1));
        assert!(cpu_run_cost(16) > cpu_run_cost(2));
    }

    #[test]
    fn padding_is_cut_only_where_it_costs_more_than_a_run() {
        // Eight short texts and one long one: with a cheap run, the long one goes alone; with
        // a dear run, all nine share one.
        let lengths = [10, 10, 11, 10, 40, 12, 10, 11, 10];
        let cheap = plan_batches(&lengths, 32, 1024, 12);
        assert_eq!(cheap, vec![vec![0, 1, 3, 6, 8, 2, 7, 5], vec![4]]);
        let dear = plan_batches(&lengths, 32, 1024, 10_000);
        assert_eq!(dear.len(), 1);
        // Equal lengths never split below the row cap.
        let same = plan_batches(&[16; 70], 32, 1024, 12);
        assert_eq!(same.iter().map(Vec::len).collect::<Vec<_>>(), [6, 32, 32]);
    }

    #[test]
    fn batches_respect_rows_and_token_budget() {
        let lengths = [10, 256, 12, 200, 3, 256, 11];
        for rc in [0, 12, 100_000] {
            let runs = plan_batches(&lengths, 3, 512, rc);
            check_valid(&lengths, &runs, 3, 512);
        }
        // The fewest runs: 3,10,11 | 12,200 (2x200 <= 512) | 256,256 (2x256 = 512).
        assert_eq!(
            plan_batches(&lengths, 3, 512, 100_000),
            vec![vec![4, 0, 6], vec![2, 3], vec![1, 5]]
        );
        // A text over the budget still runs, alone.
        assert_eq!(plan_batches(&[300], 8, 100, 12), vec![vec![0]]);
        assert!(plan_batches(&[], 8, 100, 12).is_empty());
    }
}
