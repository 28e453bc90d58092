//! Which texts run together through the graph.
//!
//! A run costs work proportional to its padded area (rows × longest row) plus an overhead.
//! Sorting by length and cutting the sorted list where a run's padding would cost more than an
//! extra run does keeps that total low: 32 TREC questions in one run are ~45% padding, and cut
//! into length-matched runs they embed 1.17–1.44× faster on the CPU (the embed bench's paired
//! medians against onnxruntime-python running them whole).

/// What one graph run costs the planner, in padded tokens: `fixed`, plus
/// (rows + `extra_rows`) × the run's longest row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunCost {
    /// Tokens per run, whatever its shape.
    pub fixed: usize,
    /// Rows' worth of the run's own width per run.
    pub extra_rows: usize,
}

impl RunCost {
    /// The cost of one run of `rows` texts padded to `width` tokens.
    pub fn of(self, rows: usize, width: usize) -> usize {
        self.fixed
            .saturating_add(rows.saturating_add(self.extra_rows).saturating_mul(width))
    }
}

/// The CPU run cost for sessions of `threads` intra-op threads: one padded row per run, per two
/// threads. Measured with ONNX Runtime 1.31 on all-MiniLM-L6-v2 with 2 threads by replaying the
/// embed bench's batches through onnxruntime-python: a run's overhead grows with its width, so a
/// fixed cost cannot suit both short and long texts. A fixed 12 tokens was best on TREC
/// questions (8–32 tokens; 24–48 were 0–3% slower, 100–200 6–27%) but cut 128–256-token texts
/// into runs of ~3.7 rows, and there fixed costs of 100–200 ran 4–13% (fp32) and 13–17% (int8)
/// faster. One row per run gives ~12 tokens on the short texts and ~200 on the long ones. A run's
/// per-token time divides among the threads and its overhead does not, so the overhead grows
/// with them; only 1–2 threads were measurable here, and the scaling errs, on bigger machines,
/// towards fewer and fuller runs, which is what batching did before planning.
pub(crate) fn cpu_run_cost(threads: usize) -> RunCost {
    RunCost {
        fixed: 0,
        extra_rows: (threads / 2).max(1),
    }
}

/// A GPU's run cost: its per-run overhead dwarfs its per-token cost, so charging a whole token
/// budget per run makes the fewest runs win.
pub(crate) fn gpu_run_cost(max_tokens: usize) -> RunCost {
    RunCost {
        fixed: max_tokens,
        extra_rows: 0,
    }
}

/// Groups text indices into runs that minimise the total [`RunCost`], with at most `max_rows`
/// texts and at most `max_tokens` padded tokens per run (a single text longer than that still
/// runs alone).
///
/// Texts are sorted by length (stably), so each run is a contiguous stretch of that order, and
/// the cut points come from an exact dynamic programme over it: O(n · `max_rows`). A dear run
/// gives the fewest runs (what a GPU wants); a cheap one, the least padding. On a tie the
/// longer last run wins. The plan depends only on the lengths, never on timing, so it
/// is reproducible.
pub(crate) fn plan_batches(
    lengths: &[usize],
    max_rows: usize,
    max_tokens: usize,
    run_cost: RunCost,
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
            let cost = best[i].saturating_add(run_cost.of(rows, w));
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

    /// A run cost of `fixed` tokens per run and no extra rows.
    fn fixed(fixed: usize) -> RunCost {
        RunCost {
            fixed,
            extra_rows: 0,
        }
    }

    /// Σ (fixed + (rows + extra rows) × width) of a plan, written out.
    fn cost(lengths: &[usize], runs: &[Vec<usize>], rc: RunCost) -> usize {
        runs.iter()
            .map(|r| {
                let width = r.iter().map(|&i| lengths[i].max(1)).max().unwrap();
                rc.fixed + (r.len() + rc.extra_rows) * width
            })
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
    fn brute_force(lengths: &[usize], max_rows: usize, max_tokens: usize, rc: RunCost) -> usize {
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
                    total += rc.fixed + (rows + rc.extra_rows) * w;
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
            let rc = RunCost {
                fixed: [0, 1, 12, 1000][case % 4],
                extra_rows: [0, 1, 2][case % 3],
            };
            let runs = plan_batches(&lengths, max_rows, max_tokens, rc);
            check_valid(&lengths, &runs, max_rows, max_tokens);
            assert_eq!(
                cost(&lengths, &runs, rc),
                brute_force(&lengths, max_rows, max_tokens, rc),
                "{lengths:?} rows {max_rows} tokens {max_tokens} run cost {rc:?}"
            );
        }
    }

    #[test]
    fn the_cpu_run_cost_grows_with_the_threads() {
        assert_eq!(
            cpu_run_cost(2),
            RunCost {
                fixed: 0,
                extra_rows: 1
            }
        );
        assert_eq!(cpu_run_cost(0), cpu_run_cost(1));
        assert!(cpu_run_cost(16).extra_rows > cpu_run_cost(2).extra_rows);
    }

    #[test]
    fn the_cpu_cost_cuts_long_texts_as_it_cuts_short_ones() {
        // The same spread of lengths, short and 20x longer: a row's worth of width per run is
        // 8–19 tokens on the short texts and 160–380 on the long ones, so both are cut alike,
        // where a fixed 12 tokens would run every long text alone (its neighbours are 20
        // tokens apart, and padding to them costs more than a run).
        let short = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
        let long: Vec<usize> = short.iter().map(|l| l * 20).collect();
        let rc = cpu_run_cost(2);
        let s = plan_batches(&short, 32, 4096, rc);
        let l = plan_batches(&long, 32, 4096, rc);
        assert_eq!(
            s.len(),
            l.len(),
            "the cost scales with the width, and so do the cuts"
        );
        assert_eq!(
            plan_batches(&long, 32, 4096, fixed(12)).len(),
            long.len(),
            "a fixed 12 tokens runs every long text alone"
        );
        assert!(l.len() < long.len() / 2, "{l:?}");
    }

    #[test]
    fn padding_is_cut_only_where_it_costs_more_than_a_run() {
        // Eight short texts and one long one: with a cheap run, the long one goes alone; with
        // a dear run, all nine share one.
        let lengths = [10, 10, 11, 10, 40, 12, 10, 11, 10];
        let cheap = plan_batches(&lengths, 32, 1024, fixed(12));
        assert_eq!(cheap, vec![vec![0, 1, 3, 6, 8, 2, 7, 5], vec![4]]);
        let dear = plan_batches(&lengths, 32, 1024, fixed(10_000));
        assert_eq!(dear.len(), 1);
        // Equal lengths never split below the row cap.
        let same = plan_batches(&[16; 70], 32, 1024, fixed(12));
        assert_eq!(same.iter().map(Vec::len).collect::<Vec<_>>(), [6, 32, 32]);
    }

    #[test]
    fn batches_respect_rows_and_token_budget() {
        let lengths = [10, 256, 12, 200, 3, 256, 11];
        for rc in [fixed(0), fixed(12), cpu_run_cost(2), gpu_run_cost(100_000)] {
            let runs = plan_batches(&lengths, 3, 512, rc);
            check_valid(&lengths, &runs, 3, 512);
        }
        // The fewest runs: 3,10,11 | 12,200 (2x200 <= 512) | 256,256 (2x256 = 512).
        assert_eq!(
            plan_batches(&lengths, 3, 512, gpu_run_cost(100_000)),
            vec![vec![4, 0, 6], vec![2, 3], vec![1, 5]]
        );
        // A text over the budget still runs, alone.
        assert_eq!(plan_batches(&[300], 8, 100, fixed(12)), vec![vec![0]]);
        assert!(plan_batches(&[], 8, 100, fixed(12)).is_empty());
    }
}
