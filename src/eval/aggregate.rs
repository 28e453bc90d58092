//! Group aggregation: one prediction per group (e.g. per author) from many texts' outputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::TaskKind;
use crate::error::{Error, Result};
use crate::heads::TaskEntry;
use crate::nn::special::argmax;

/// How per-text outputs combine into a group's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Mean of each output (probabilities or values).
    Mean,
    /// Median of each output.
    Median,
    /// Each text votes: for its argmax class (multiclass), or for every output whose
    /// probability reaches the tuned threshold (binary and multi-label heads, see
    /// [`vote_shares`]); the group's output is the vote share per class or output.
    /// Regression outputs are averaged.
    Majority,
    /// The share of the group's texts voting for each output, as [`Aggregation::Majority`]
    /// counts votes, taken as the group's probability: a binary or multi-label output is
    /// decided at the head's tuned threshold (majority: more than half), so a group with a
    /// minority of positive texts can be positive when that threshold is low. Multiclass
    /// groups are decided as by majority; regression outputs are averaged.
    #[serde(rename = "total_vote")]
    TotalVote,
}

impl Aggregation {
    /// Every method, in the order reports list them.
    pub const ALL: [Aggregation; 4] = [
        Aggregation::Mean,
        Aggregation::Median,
        Aggregation::Majority,
        Aggregation::TotalVote,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Median => "median",
            Aggregation::Majority => "majority",
            Aggregation::TotalVote => "total_vote",
        }
    }
}

impl std::str::FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Aggregation::Mean),
            "median" => Ok(Aggregation::Median),
            "majority" => Ok(Aggregation::Majority),
            "total_vote" => Ok(Aggregation::TotalVote),
            o => Err(Error::invalid(format!(
                "unknown aggregation `{o}` (expected mean, median, majority or total_vote)"
            ))),
        }
    }
}

/// Combines `rows` (one output vector per text) by `groups` (one key per text). Returns the
/// groups in sorted key order with their combined vectors. Majority vote ties go to the lower
/// class index.
pub fn aggregate(
    groups: &[String],
    rows: &[Vec<f32>],
    how: Aggregation,
) -> Result<Vec<(String, Vec<f32>)>> {
    if groups.len() != rows.len() {
        return Err(Error::invalid(format!(
            "{} group keys for {} rows",
            groups.len(),
            rows.len()
        )));
    }
    let mut by: BTreeMap<&str, Vec<&Vec<f32>>> = BTreeMap::new();
    for (g, r) in groups.iter().zip(rows) {
        by.entry(g.as_str()).or_default().push(r);
    }
    let width = rows.first().map_or(0, |r| r.len());
    if rows.iter().any(|r| r.len() != width) {
        return Err(Error::invalid("rows have different lengths"));
    }
    Ok(by
        .into_iter()
        .map(|(g, members)| {
            let n = members.len() as f32;
            let out = match how {
                Aggregation::Mean => (0..width)
                    .map(|j| members.iter().map(|r| r[j]).sum::<f32>() / n)
                    .collect(),
                Aggregation::Median => (0..width)
                    .map(|j| {
                        let mut col: Vec<f32> = members.iter().map(|r| r[j]).collect();
                        col.sort_by(|a, b| a.total_cmp(b));
                        let m = col.len();
                        if m % 2 == 1 {
                            col[m / 2]
                        } else {
                            (col[m / 2 - 1] + col[m / 2]) / 2.0
                        }
                    })
                    .collect(),
                Aggregation::Majority | Aggregation::TotalVote => {
                    let mut votes = vec![0.0f32; width];
                    for r in &members {
                        let best = argmax(r.iter());
                        if width > 0 {
                            votes[best] += 1.0;
                        }
                    }
                    votes.iter().map(|v| v / n).collect()
                }
            };
            (g.to_string(), out)
        })
        .collect())
}

/// Per-output votes of independent sigmoid outputs (binary and multi-label heads): each text
/// votes for output `j` when its probability reaches `thresholds[j]` (0.5 where none is given),
/// and each group gets the share of its texts that voted for each output, groups in sorted key
/// order. A binary head has one output, so an argmax vote would always pick it: that made every
/// group positive with p = 1.
pub fn vote_shares(
    groups: &[String],
    rows: &[Vec<f32>],
    thresholds: &[f32],
) -> Result<Vec<(String, Vec<f32>)>> {
    let votes: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, &p)| f32::from(u8::from(p >= thresholds.get(j).copied().unwrap_or(0.5))))
                .collect()
        })
        .collect();
    aggregate(groups, &votes, Aggregation::Mean)
}

/// One task's outputs combined per group by `how`, as prediction combines them: sigmoid
/// outputs (binary, multi-label) vote one by one on their tuned thresholds under majority and
/// total vote ([`vote_shares`]), regression values average under both, the rest as
/// [`aggregate`] does. Groups in sorted key order.
pub fn group_outputs(
    task: &TaskEntry,
    groups: &[String],
    rows: &[Vec<f32>],
    how: Aggregation,
) -> Result<Vec<(String, Vec<f32>)>> {
    let votes = matches!(how, Aggregation::Majority | Aggregation::TotalVote);
    match task.spec.kind {
        TaskKind::Regression if votes => aggregate(groups, rows, Aggregation::Mean),
        TaskKind::Binary | TaskKind::Multilabel if votes => {
            vote_shares(groups, rows, &task.thresholds)
        }
        _ => aggregate(groups, rows, how),
    }
}

/// The thresholds that decide a group's combined sigmoid outputs: under majority, a share
/// above one half (the next `f32` above 0.5, since outputs at or above a threshold are
/// positive); otherwise the head's tuned thresholds, as for one text.
pub fn group_thresholds(task: &TaskEntry, how: Aggregation) -> Vec<f32> {
    match how {
        Aggregation::Majority => {
            let above_half = f32::from_bits(0.5f32.to_bits() + 1);
            vec![above_half; task.spec.labels.len().max(task.thresholds.len()).max(1)]
        }
        _ => task.thresholds.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_median_majority_by_hand() {
        let g: Vec<String> = ["a", "a", "a", "b"].iter().map(|s| s.to_string()).collect();
        let r = vec![
            vec![0.9, 0.1],
            vec![0.4, 0.6],
            vec![0.2, 0.8],
            vec![1.0, 0.0],
        ];
        let mean = aggregate(&g, &r, Aggregation::Mean).unwrap();
        assert_eq!(mean[0].0, "a");
        assert!((mean[0].1[0] - 0.5).abs() < 1e-6);
        let med = aggregate(&g, &r, Aggregation::Median).unwrap();
        assert!((med[0].1[0] - 0.4).abs() < 1e-6);
        let maj = aggregate(&g, &r, Aggregation::Majority).unwrap();
        assert!((maj[0].1[1] - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(maj[1].1, vec![1.0, 0.0]);
        assert!(aggregate(&g[..2], &r, Aggregation::Mean).is_err());
    }

    #[test]
    fn sigmoid_outputs_vote_per_output_with_their_thresholds() {
        let g: Vec<String> = ["a", "a", "a", "b"].iter().map(|s| s.to_string()).collect();
        // A width-1 (binary) head: two of group a's texts reach the threshold 0.3.
        let r = vec![vec![0.1], vec![0.35], vec![0.9], vec![0.2]];
        let v = vote_shares(&g, &r, &[0.3]).unwrap();
        assert_eq!(v[0], ("a".to_string(), vec![2.0 / 3.0]));
        assert_eq!(v[1], ("b".to_string(), vec![0.0]));
        // Before: argmax over one output voted "positive" for every text.
        assert_eq!(
            aggregate(&g, &r, Aggregation::Majority).unwrap()[1].1,
            vec![1.0]
        );
        // Multi-label: each output on its own threshold.
        let r = vec![
            vec![0.6, 0.1],
            vec![0.7, 0.4],
            vec![0.2, 0.5],
            vec![0.9, 0.9],
        ];
        let v = vote_shares(&g, &r, &[0.5, 0.45]).unwrap();
        assert_eq!(v[0].1, vec![2.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(v[1].1, vec![1.0, 1.0]);
    }

    #[test]
    fn majority_needs_more_than_half_and_total_vote_the_tuned_threshold() {
        use crate::data::TaskSpec;
        let task = TaskEntry {
            spec: TaskSpec {
                name: "spam".into(),
                kind: TaskKind::Binary,
                labels: vec!["ham".into(), "spam".into()],
            },
            thresholds: vec![0.3],
        };
        // Two of five texts reach the tuned threshold: a share of 0.4.
        let g: Vec<String> = vec!["a".into(); 5];
        let rows = vec![vec![0.9], vec![0.31], vec![0.1], vec![0.2], vec![0.05]];
        for how in [Aggregation::Majority, Aggregation::TotalVote] {
            let out = group_outputs(&task, &g, &rows, how).unwrap();
            assert!((out[0].1[0] - 0.4).abs() < 1e-6, "{how:?}");
        }
        let decides = |how, share: f32| share >= group_thresholds(&task, how)[0];
        assert!(!decides(Aggregation::Majority, 0.4));
        assert!(!decides(Aggregation::Majority, 0.5), "a tie is no majority");
        assert!(decides(Aggregation::Majority, 0.51));
        assert!(decides(Aggregation::TotalVote, 0.4));
        assert!(!decides(Aggregation::TotalVote, 0.2));
        // Mean and median use the probabilities themselves.
        let mean = group_outputs(&task, &g, &rows, Aggregation::Mean).unwrap();
        assert!((mean[0].1[0] - 0.312).abs() < 1e-6);
        assert_eq!(
            "total_vote".parse::<Aggregation>().unwrap(),
            Aggregation::TotalVote
        );
        assert_eq!(Aggregation::TotalVote.name(), "total_vote");
    }
}
