//! The verdict of a comparison: which arm is best on the test metric, and whether two-stage
//! training reached its best validation loss sooner and generalized better than the
//! single-stage arms, each difference called clear or within seed noise.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stats::{ArmSummary, Stat};
use super::Arm;
use crate::data::TaskKind;

/// What the numbers say, computed from the summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The metric the verdict ranks by (`macro_f1`, or `rmse` for regression).
    pub metric: String,
    /// Whether a higher value of it is better.
    pub higher_is_better: bool,
    /// The arm with the best mean test metric (the earlier arm on a tie).
    pub best: Arm,
    /// Sentences stating the findings, one per line.
    pub lines: Vec<String>,
}

/// The headline metrics of a task kind; the first is the one the verdict ranks by.
pub fn headline_metrics(kind: TaskKind) -> (&'static [&'static str], bool) {
    match kind {
        TaskKind::Multiclass | TaskKind::Binary => (&["macro_f1", "accuracy"], true),
        TaskKind::Multilabel => (&["macro_f1", "micro_f1", "accuracy"], true),
        TaskKind::Regression => (&["rmse", "mae", "pearson"], false),
    }
}

/// The verdict on `summaries` ranked by `metric`. Differences are called clear or within seed
/// noise by [`Stat::clearly_differs`].
pub fn verdict(summaries: &[ArmSummary], metric: &str, higher_is_better: bool) -> Verdict {
    let j = Judge {
        metric,
        higher_is_better,
    };
    let mut best: Option<&ArmSummary> = None;
    for s in summaries {
        if best.is_none_or(|b| j.better(j.score(s).mean, j.score(b).mean)) {
            best = Some(s);
        }
    }
    let Some(best) = best else {
        return Verdict {
            metric: metric.to_string(),
            higher_is_better,
            best: Arm::TwoStage,
            lines: vec!["no runs".to_string()],
        };
    };
    let mut lines = vec![j.headline(summaries, best)];
    let baselines: Vec<&ArmSummary> = summaries
        .iter()
        .filter(|s| matches!(s.arm, Arm::Joint | Arm::EmbeddingOnly))
        .collect();
    for two in summaries.iter().filter(|s| s.arm.is_two_stage()) {
        for base in &baselines {
            lines.push(j.pair(two, base));
        }
    }
    let two_best =
        summaries
            .iter()
            .filter(|s| s.arm.is_two_stage())
            .fold(None::<&ArmSummary>, |acc, s| match acc {
                Some(a) if !j.better(j.score(s).mean, j.score(a).mean) => Some(a),
                _ => Some(s),
            });
    if let (Some(two), false) = (two_best, baselines.is_empty()) {
        lines.push(j.claims(two, &baselines));
    }
    if summaries.iter().any(|s| s.runs >= 2) {
        lines.push(
            "clear: the means differ by more than twice the standard error of their difference over seeds; otherwise within seed noise"
                .to_string(),
        );
    }
    Verdict {
        metric: metric.to_string(),
        higher_is_better,
        best: best.arm,
        lines,
    }
}

/// How a verdict compares arms: by one test metric, in one direction.
struct Judge<'a> {
    metric: &'a str,
    higher_is_better: bool,
}

impl Judge<'_> {
    fn score(&self, s: &ArmSummary) -> Stat {
        s.test.get(self.metric).copied().unwrap_or(Stat::of(&[]))
    }

    fn better(&self, a: f64, b: f64) -> bool {
        if self.higher_is_better {
            a > b
        } else {
            a < b
        }
    }

    /// Whether a difference is clear, within seed noise, or not judgeable.
    fn noise(a: &Stat, b: &Stat) -> &'static str {
        if a.n < 2 || b.n < 2 {
            "one seed, no spread to judge by"
        } else if a.clearly_differs(b) {
            "clear"
        } else {
            "within seed noise"
        }
    }

    /// The first line: the best arm, and how far ahead of the next it is.
    fn headline(&self, summaries: &[ArmSummary], best: &ArmSummary) -> String {
        let mut ranking: Vec<&ArmSummary> = summaries.iter().collect();
        ranking.sort_by(|a, b| {
            let (x, y) = (self.score(a).mean, self.score(b).mean);
            if self.higher_is_better {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            }
        });
        let direction = if self.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        let metric = self.metric;
        let mut line = format!(
            "best on test {metric} ({direction} is better): {} ({})",
            best.arm,
            self.score(best).show(4)
        );
        if let Some(r) = ranking.iter().find(|s| s.arm != best.arm) {
            let _ = write!(
                line,
                "; next {} ({}), {}",
                r.arm,
                self.score(r).show(4),
                Self::noise(&self.score(best), &self.score(r))
            );
        }
        line
    }

    /// A two-stage arm against a single-stage one: time to best and test metric.
    fn pair(&self, two: &ArmSummary, base: &ArmSummary) -> String {
        let (ta, tb) = (two.seconds_to_best, base.seconds_to_best);
        let (ma, mb) = (self.score(two), self.score(base));
        let faster = if ta.mean < tb.mean {
            "faster"
        } else {
            "not faster"
        };
        let gen = if self.better(ma.mean, mb.mean) {
            "better"
        } else {
            "not better"
        };
        format!(
            "{} vs {}: {faster} to best validation ({:.2} s vs {:.2} s, {}), {gen} on test {} ({:.4} vs {:.4}, {})",
            two.arm,
            base.arm,
            ta.mean,
            tb.mean,
            Self::noise(&ta, &tb),
            self.metric,
            ma.mean,
            mb.mean,
            Self::noise(&ma, &mb)
        )
    }

    /// The approach's two claims, checked for the better two-stage arm against the baselines.
    fn claims(&self, two: &ArmSummary, baselines: &[&ArmSummary]) -> String {
        let time = |s: &ArmSummary| s.seconds_to_best;
        let sooner: Vec<(&str, bool, &str)> = baselines
            .iter()
            .map(|b| {
                (
                    b.arm.name(),
                    two.seconds_to_best.mean < b.seconds_to_best.mean,
                    Self::noise(&time(two), &time(b)),
                )
            })
            .collect();
        let gen: Vec<(&str, bool, &str)> = baselines
            .iter()
            .map(|b| {
                (
                    b.arm.name(),
                    self.better(self.score(two).mean, self.score(b).mean),
                    Self::noise(&self.score(two), &self.score(b)),
                )
            })
            .collect();
        format!(
            "on this data, two-stage ({}) {}, and {} on test {}",
            two.arm,
            finding(
                "reached its best validation loss sooner than",
                "did not reach its best validation loss sooner than",
                &sooner
            ),
            finding(
                "generalized better than",
                "did not generalize better than",
                &gen
            ),
            self.metric
        )
    }
}

/// "`yes` A and B (q)", "`no` A and B (q)", or "`yes` A (q) but not than B (q)", from
/// (name, holds, noise label) per comparison; q is one label when all agree.
fn finding(yes: &str, no: &str, items: &[(&str, bool, &str)]) -> String {
    let group = |want: bool| -> Option<String> {
        let g: Vec<&(&str, bool, &str)> = items.iter().filter(|i| i.1 == want).collect();
        let first = g.first()?;
        let names = g.iter().map(|i| i.0).collect::<Vec<_>>().join(" and ");
        let q = if g.iter().all(|i| i.2 == first.2) {
            first.2.to_string()
        } else {
            g.iter()
                .map(|i| format!("{} against {}", i.2, i.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Some(format!("{names} ({q})"))
    };
    match (group(true), group(false)) {
        (Some(y), Some(n)) => format!("{yes} {y} but not than {n}"),
        (Some(y), None) => format!("{yes} {y}"),
        (None, Some(n)) => format!("{no} {n}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::stats::tests::summary;

    #[test]
    fn verdict_states_what_was_measured() {
        let s = vec![
            summary(Arm::EmbeddingOnly, &[0.8, 0.8, 0.8], &[0.82, 0.83, 0.84]),
            summary(Arm::Joint, &[0.8, 1.2, 1.0], &[0.70, 0.71, 0.72]),
            summary(Arm::TwoStage, &[1.2, 1.2, 1.2], &[0.79, 0.81, 0.83]),
        ];
        let v = verdict(&s, "macro_f1", true);
        assert_eq!(v.best, Arm::EmbeddingOnly);
        assert_eq!(
            v.lines[0],
            "best on test macro_f1 (higher is better): embedding_only (0.8300 ± 0.0100); next two_stage (0.8100 ± 0.0200), within seed noise"
        );
        assert_eq!(
            v.lines[1],
            "two_stage vs embedding_only: not faster to best validation (1.20 s vs 0.80 s, clear), not better on test macro_f1 (0.8100 vs 0.8300, within seed noise)"
        );
        assert_eq!(
            v.lines[2],
            "two_stage vs joint: not faster to best validation (1.20 s vs 1.00 s, within seed noise), better on test macro_f1 (0.8100 vs 0.7100, clear)"
        );
        assert_eq!(
            v.lines[3],
            "on this data, two-stage (two_stage) did not reach its best validation loss sooner than embedding_only and joint (clear against embedding_only, within seed noise against joint), and generalized better than joint (clear) but not than embedding_only (within seed noise) on test macro_f1"
        );
        assert!(v.lines[4].starts_with("clear: the means differ by more than twice"));
        assert_eq!(v.lines.len(), 5);
    }

    #[test]
    fn verdict_for_regression_prefers_lower_error_and_picks_the_better_two_stage_arm() {
        let mut s = vec![
            summary(Arm::Joint, &[2.0, 2.0, 2.0], &[1.30, 1.31, 1.32]),
            summary(Arm::TwoStage, &[1.0, 1.0, 1.0], &[1.20, 1.21, 1.22]),
            summary(Arm::TwoStageUnfreeze, &[1.5, 1.5, 1.5], &[1.10, 1.11, 1.12]),
        ];
        for x in &mut s {
            let st = x.test.remove("macro_f1").unwrap();
            x.test.insert("rmse".into(), st);
        }
        let v = verdict(&s, "rmse", false);
        assert_eq!(v.best, Arm::TwoStageUnfreeze);
        assert!(v.lines[0].starts_with("best on test rmse (lower is better): two_stage_unfreeze"));
        assert!(
            v.lines[1].starts_with("two_stage vs joint: faster"),
            "{}",
            v.lines[1]
        );
        assert!(v.lines[1].contains("better on test rmse (1.2100 vs 1.3100, clear)"));
        assert!(v.lines[2].starts_with("two_stage_unfreeze vs joint: faster"));
        assert_eq!(
            v.lines[3],
            "on this data, two-stage (two_stage_unfreeze) reached its best validation loss sooner than joint (clear), and generalized better than joint (clear) on test rmse"
        );
    }

    #[test]
    fn findings_group_agreeing_comparisons() {
        let f = |items: &[(&str, bool, &str)]| finding("beat", "did not beat", items);
        assert_eq!(
            f(&[("a", true, "clear"), ("b", true, "clear")]),
            "beat a and b (clear)"
        );
        assert_eq!(
            f(&[("a", false, "clear"), ("b", false, "within seed noise")]),
            "did not beat a and b (clear against a, within seed noise against b)"
        );
        assert_eq!(
            f(&[("a", true, "clear"), ("b", false, "within seed noise")]),
            "beat a (clear) but not than b (within seed noise)"
        );
    }
}
