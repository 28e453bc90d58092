//! Task kinds and label parsing: a row's label field becomes a class index, a multi-hot vector
//! or a value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::read::Row;
use crate::error::{Error, Result};

/// What a head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Exactly one of several classes (softmax).
    Multiclass,
    /// One of two classes, the second being "positive" (sigmoid, tunable threshold).
    Binary,
    /// Any subset of several labels (independent sigmoids, tunable thresholds).
    Multilabel,
    /// A real value.
    Regression,
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "multiclass" => Ok(TaskKind::Multiclass),
            "binary" => Ok(TaskKind::Binary),
            "multilabel" => Ok(TaskKind::Multilabel),
            "regression" => Ok(TaskKind::Regression),
            o => Err(Error::invalid(format!(
                "unknown task `{o}` (expected multiclass, binary, multilabel or regression)"
            ))),
        }
    }
}

impl TaskKind {
    /// The lowercase name used on the command line and in bundles.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Multiclass => "multiclass",
            TaskKind::Binary => "binary",
            TaskKind::Multilabel => "multilabel",
            TaskKind::Regression => "regression",
        }
    }
}

/// A task: its name, kind and label names (classes; for binary `[negative, positive]`; for
/// multi-label the label set; empty for regression).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task name (by default the label field's name).
    pub name: String,
    /// Task kind.
    pub kind: TaskKind,
    /// Label names, in output order.
    pub labels: Vec<String>,
}

/// Targets for a set of rows, in row order.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class index per row (multiclass and binary; binary positive = 1).
    Class(Vec<usize>),
    /// Multi-hot rows (multi-label), one `Vec` of 0/1 per row.
    MultiHot(Vec<Vec<f32>>),
    /// Values per row (regression).
    Value(Vec<f32>),
}

impl Targets {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Targets::Class(v) => v.len(),
            Targets::MultiHot(v) => v.len(),
            Targets::Value(v) => v.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// These targets followed by `other`'s; None when their kinds differ.
    pub fn concat(self, other: Targets) -> Option<Targets> {
        match (self, other) {
            (Targets::Class(mut a), Targets::Class(b)) => {
                a.extend(b);
                Some(Targets::Class(a))
            }
            (Targets::MultiHot(mut a), Targets::MultiHot(b)) => {
                a.extend(b);
                Some(Targets::MultiHot(a))
            }
            (Targets::Value(mut a), Targets::Value(b)) => {
                a.extend(b);
                Some(Targets::Value(a))
            }
            _ => None,
        }
    }

    /// The targets of the given rows, in that order.
    pub fn select(&self, idx: &[usize]) -> Targets {
        match self {
            Targets::Class(v) => Targets::Class(idx.iter().map(|&i| v[i]).collect()),
            Targets::MultiHot(v) => Targets::MultiHot(idx.iter().map(|&i| v[i].clone()).collect()),
            Targets::Value(v) => Targets::Value(idx.iter().map(|&i| v[i]).collect()),
        }
    }

    /// A stratification key per row: the class, the label set, or the value's quantile bin.
    pub fn strata(&self) -> Vec<String> {
        match self {
            Targets::Class(v) => v.iter().map(|c| c.to_string()).collect(),
            Targets::MultiHot(v) => v
                .iter()
                .map(|r| r.iter().map(|&x| if x > 0.5 { '1' } else { '0' }).collect())
                .collect(),
            Targets::Value(v) => {
                // Five quantile bins keep the value distribution alike across the split.
                let mut sorted = v.clone();
                sorted.sort_by(|a, b| a.total_cmp(b));
                let cut = |q: f32| sorted[((sorted.len() - 1) as f32 * q) as usize];
                let cuts: Vec<f32> = if sorted.is_empty() {
                    vec![]
                } else {
                    [0.2, 0.4, 0.6, 0.8].iter().map(|&q| cut(q)).collect()
                };
                v.iter()
                    .map(|x| cuts.iter().filter(|&&c| *x > c).count().to_string())
                    .collect()
            }
        }
    }
}

impl TaskKind {
    /// Checks that `v` has the shape this kind of task takes as a label (a string, number or
    /// boolean class; a list of them for multi-label; a finite number for regression), and says
    /// what was expected when it does not.
    pub fn check_label(self, v: &Value) -> std::result::Result<(), &'static str> {
        let ok = match self {
            TaskKind::Multiclass | TaskKind::Binary => label_strings(v).is_some(),
            TaskKind::Multilabel => multilabel_list(v).is_some(),
            TaskKind::Regression => match v {
                Value::Number(n) => n.as_f64().is_some_and(target_in_range),
                Value::String(s) => s.trim().parse::<f64>().is_ok_and(target_in_range),
                _ => false,
            },
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                TaskKind::Multiclass | TaskKind::Binary => "a string, number or boolean label",
                TaskKind::Multilabel => "a JSON list of labels",
                TaskKind::Regression => REGRESSION_RANGE,
            })
        }
    }
}

/// The largest magnitude a regression target may have. Targets are standardized with their
/// mean and standard deviation in f32, and predictions mapped back with them: beyond ~1e38 the
/// squares overflow and training ends with `null` metrics, so the limit sits well inside f32.
pub const MAX_REGRESSION_TARGET: f64 = 1e30;

const REGRESSION_RANGE: &str = "a finite number within ±1e30 (rescale larger targets)";

fn target_in_range(x: f64) -> bool {
    x.is_finite() && x.abs() <= MAX_REGRESSION_TARGET
}

fn label_strings(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn multilabel_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(items) => items.iter().map(label_strings).collect(),
        // CSV cells hold the JSON list as text.
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => items.iter().map(label_strings).collect(),
            _ => None,
        },
        _ => None,
    }
}

impl TaskSpec {
    /// Infers the label set from `rows` and parses every row's targets.
    ///
    /// Binary labels may be 0/1, true/false, or any two distinct strings; with two strings the
    /// rarer one is positive (spam, fraud, toxic...) unless `positive` names it. Multi-label
    /// fields are JSON lists. Every row must have a label; a missing or malformed one is an error
    /// naming its line.
    pub fn infer(
        name: &str,
        kind: TaskKind,
        field: &str,
        rows: &[Row],
        positive: Option<&str>,
    ) -> Result<(TaskSpec, Targets)> {
        let spec = Self::infer_labels(name, kind, field, rows, positive)?;
        let targets = spec.parse(field, rows)?;
        Ok((spec, targets))
    }

    fn infer_labels(
        name: &str,
        kind: TaskKind,
        field: &str,
        rows: &[Row],
        positive: Option<&str>,
    ) -> Result<TaskSpec> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in rows {
            let v = r.fields.get(field).ok_or_else(|| missing(field, r))?;
            match kind {
                TaskKind::Regression => {}
                TaskKind::Multilabel => {
                    for l in
                        multilabel_list(v).ok_or_else(|| bad(field, r, "a JSON list of labels"))?
                    {
                        *counts.entry(l).or_default() += 1;
                    }
                }
                _ => {
                    let l = label_strings(v)
                        .ok_or_else(|| bad(field, r, "a string, number or boolean label"))?;
                    *counts.entry(l).or_default() += 1;
                }
            }
        }
        let mut labels: Vec<String> = counts.keys().cloned().collect();
        match kind {
            TaskKind::Regression => labels.clear(),
            TaskKind::Multiclass if labels.len() < 2 => {
                return Err(Error::invalid(format!(
                    "multiclass task `{name}` needs at least 2 classes, found {labels:?}"
                )))
            }
            TaskKind::Multilabel if labels.is_empty() => {
                return Err(Error::invalid(format!(
                    "multi-label task `{name}` has no labels at all"
                )))
            }
            TaskKind::Binary => {
                if labels.len() != 2 {
                    return Err(Error::invalid(format!(
                        "binary task `{name}` needs exactly 2 label values, found {labels:?}"
                    )));
                }
                let pos = match positive {
                    Some(p) if labels.iter().any(|l| l == p) => p.to_string(),
                    Some(p) => {
                        return Err(Error::invalid(format!(
                            "positive label `{p}` is not one of {labels:?}"
                        )))
                    }
                    None if labels == ["0", "1"] || labels == ["false", "true"] => {
                        labels[1].clone()
                    }
                    None => {
                        // The rarer value is positive; ties go to the later name.
                        let (a, b) = (&labels[0], &labels[1]);
                        if counts[a] < counts[b] {
                            a.clone()
                        } else {
                            b.clone()
                        }
                    }
                };
                labels.retain(|l| *l != pos);
                labels.push(pos);
            }
            _ => {}
        }
        Ok(TaskSpec {
            name: name.to_string(),
            kind,
            labels,
        })
    }

    /// Parses every row's targets against this spec's labels (an unknown label is an error).
    pub fn parse(&self, field: &str, rows: &[Row]) -> Result<Targets> {
        let index = |l: &str, r: &Row| {
            self.labels.iter().position(|x| x == l).ok_or_else(|| {
                Error::invalid(format!(
                    "line {}: label `{l}` of field `{field}` is not one of {:?}",
                    r.line, self.labels
                ))
            })
        };
        match self.kind {
            TaskKind::Multiclass | TaskKind::Binary => rows
                .iter()
                .map(|r| {
                    let v = r.fields.get(field).ok_or_else(|| missing(field, r))?;
                    let l = label_strings(v).ok_or_else(|| bad(field, r, "a label"))?;
                    index(&l, r)
                })
                .collect::<Result<_>>()
                .map(Targets::Class),
            TaskKind::Multilabel => rows
                .iter()
                .map(|r| {
                    let v = r.fields.get(field).ok_or_else(|| missing(field, r))?;
                    let ls =
                        multilabel_list(v).ok_or_else(|| bad(field, r, "a JSON list of labels"))?;
                    let mut hot = vec![0.0; self.labels.len()];
                    for l in ls {
                        hot[index(&l, r)?] = 1.0;
                    }
                    Ok(hot)
                })
                .collect::<Result<_>>()
                .map(Targets::MultiHot),
            TaskKind::Regression => rows
                .iter()
                .map(|r| {
                    let v = r.fields.get(field).ok_or_else(|| missing(field, r))?;
                    let x = match v {
                        Value::Number(n) => n.as_f64(),
                        Value::String(s) => s.trim().parse::<f64>().ok(),
                        _ => None,
                    }
                    .filter(|&x| target_in_range(x))
                    .ok_or_else(|| bad(field, r, REGRESSION_RANGE))?;
                    Ok(x as f32)
                })
                .collect::<Result<_>>()
                .map(Targets::Value),
        }
    }
}

fn missing(field: &str, r: &Row) -> Error {
    Error::invalid(format!("line {}: no `{field}` field", r.line))
}

fn bad(field: &str, r: &Row, want: &str) -> Error {
    Error::invalid(format!("line {}: field `{field}` should be {want}", r.line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(vals: &[Value]) -> Vec<Row> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| Row {
                fields: [("y".to_string(), v.clone())].into_iter().collect(),
                line: i + 1,
            })
            .collect()
    }

    #[test]
    fn binary_rarer_string_is_positive_and_numbers_work() {
        use serde_json::json;
        let r = rows(&[json!("ham"), json!("spam"), json!("ham")]);
        let (spec, t) = TaskSpec::infer("y", TaskKind::Binary, "y", &r, None).unwrap();
        assert_eq!(spec.labels, vec!["ham", "spam"]);
        assert_eq!(t, Targets::Class(vec![0, 1, 0]));
        let r = rows(&[json!(1), json!(1), json!(0)]);
        let (spec, t) = TaskSpec::infer("y", TaskKind::Binary, "y", &r, None).unwrap();
        assert_eq!(spec.labels, vec!["0", "1"]);
        assert_eq!(t, Targets::Class(vec![1, 1, 0]));
        let r = rows(&[json!("a"), json!("b"), json!("c")]);
        assert!(TaskSpec::infer("y", TaskKind::Binary, "y", &r, None).is_err());
    }

    #[test]
    fn multilabel_from_lists_and_csv_strings() {
        use serde_json::json;
        let r = rows(&[json!(["corn", "grain"]), json!([]), json!("[\"grain\"]")]);
        let (spec, t) = TaskSpec::infer("y", TaskKind::Multilabel, "y", &r, None).unwrap();
        assert_eq!(spec.labels, vec!["corn", "grain"]);
        assert_eq!(
            t,
            Targets::MultiHot(vec![vec![1., 1.], vec![0., 0.], vec![0., 1.]])
        );
    }

    #[test]
    fn regression_rejects_non_numbers_with_line() {
        use serde_json::json;
        let r = rows(&[json!(1.5), json!("2"), json!("x")]);
        let e = TaskSpec::infer("y", TaskKind::Regression, "y", &r, None).unwrap_err();
        assert!(e.message().contains("line 3"), "{}", e.message());
        let r = rows(&[json!(1.5), json!("-2")]);
        let (_, t) = TaskSpec::infer("y", TaskKind::Regression, "y", &r, None).unwrap();
        assert_eq!(t, Targets::Value(vec![1.5, -2.0]));
        // Beyond f32's comfortable range: refused, not trained into `null` metrics.
        for huge in [json!(3e38), json!(-3e38), json!("1e31")] {
            let r = rows(&[json!(1.0), huge.clone()]);
            let e = TaskSpec::infer("y", TaskKind::Regression, "y", &r, None).unwrap_err();
            assert!(e.message().contains("1e30"), "{huge}: {}", e.message());
            assert!(TaskKind::Regression.check_label(&huge).is_err());
        }
        assert!(TaskKind::Regression.check_label(&json!(-1e30)).is_ok());
    }

    #[test]
    fn unknown_label_at_parse_time_is_an_error() {
        use serde_json::json;
        let spec = TaskSpec {
            name: "y".into(),
            kind: TaskKind::Multiclass,
            labels: vec!["a".into(), "b".into()],
        };
        assert!(spec.parse("y", &rows(&[json!("c")])).is_err());
    }

    #[test]
    fn regression_strata_are_quantile_bins() {
        let t = Targets::Value((0..10).map(|x| x as f32).collect());
        let s = t.strata();
        assert_eq!(s[0], "0");
        assert_eq!(s[9], "4");
    }
}
