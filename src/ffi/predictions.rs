//! Prediction results: an owned object with accessors, so hosts never parse JSON to serve.

use std::ffi::{c_char, CString};

use super::{
    c_string, floats_out, guard, guard_or, handle, into_c_string, out_ptr, tandem_error, write_out,
};
use crate::data::TaskKind;
use crate::error::Error;
use crate::heads::TaskEntry;
use crate::model::{Heads, TaskPrediction};

/// Task kind: exactly one of several classes.
pub const TANDEM_TASK_MULTICLASS: u32 = 0;
/// Task kind: one of two classes; the second class name is the positive one.
pub const TANDEM_TASK_BINARY: u32 = 1;
/// Task kind: any subset of several labels.
pub const TANDEM_TASK_MULTILABEL: u32 = 2;
/// Task kind: a real value.
pub const TANDEM_TASK_REGRESSION: u32 = 3;

struct TaskInfo {
    name: CString,
    kind: u32,
    classes: Vec<CString>,
}

struct Cell {
    labels: Vec<CString>,
    probabilities: Vec<f32>,
    value: Option<f32>,
    spread: Option<Vec<f32>>,
}

struct Row {
    group: Option<CString>,
    cells: Vec<Cell>,
}

/// Predictions for a batch of texts (or groups): per row and task, the predicted labels, the
/// probability of every class, or the value. Immutable: a `const tandem_predictions *` may be
/// read from many threads. Every string it returns lives until `tandem_predictions_free`.
pub struct tandem_predictions {
    version: u64,
    tasks: Vec<TaskInfo>,
    rows: Vec<Row>,
    /// The JSON form, made on the first `tandem_predictions_json` (serving rarely asks).
    json: std::sync::OnceLock<String>,
}

fn kind_code(kind: TaskKind) -> u32 {
    match kind {
        TaskKind::Multiclass => TANDEM_TASK_MULTICLASS,
        TaskKind::Binary => TANDEM_TASK_BINARY,
        TaskKind::Multilabel => TANDEM_TASK_MULTILABEL,
        TaskKind::Regression => TANDEM_TASK_REGRESSION,
    }
}

impl tandem_predictions {
    /// Packs predictions made by `heads`; `groups` holds each row's group key when grouped.
    pub(crate) fn new(
        heads: &Heads,
        rows: Vec<(Option<String>, Vec<TaskPrediction>)>,
    ) -> tandem_predictions {
        tandem_predictions::of_tasks(heads.version, &heads.tasks, rows)
    }

    /// Packs predictions for `tasks` made by heads of version `version` (0 for an ensemble).
    pub(crate) fn of_tasks(
        version: u64,
        tasks: &[TaskEntry],
        rows: Vec<(Option<String>, Vec<TaskPrediction>)>,
    ) -> tandem_predictions {
        tandem_predictions {
            version,
            tasks: tasks
                .iter()
                .map(|t| TaskInfo {
                    name: c_string(&t.spec.name),
                    kind: kind_code(t.spec.kind),
                    classes: t.spec.labels.iter().map(|l| c_string(l)).collect(),
                })
                .collect(),
            rows: rows
                .into_iter()
                .map(|(g, preds)| Row {
                    group: g.as_deref().map(c_string),
                    cells: preds
                        .into_iter()
                        .map(|p| Cell {
                            labels: p.labels.iter().map(|l| c_string(l)).collect(),
                            probabilities: p.probabilities,
                            value: p.value,
                            spread: p.spread,
                        })
                        .collect(),
                })
                .collect(),
            json: std::sync::OnceLock::new(),
        }
    }

    /// One JSON object per row, one per line, as `tandem predict` prints them: `index` (or
    /// `group`) and per task its `labels`, `probabilities`, `task` and `value`.
    fn to_json(&self) -> String {
        let text = |s: &CString| s.to_string_lossy().into_owned();
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let preds: Vec<serde_json::Value> = self
                    .tasks
                    .iter()
                    .zip(&row.cells)
                    .map(|(t, c)| {
                        let mut v = serde_json::json!({
                            "task": text(&t.name),
                            "labels": c.labels.iter().map(text).collect::<Vec<_>>(),
                            "probabilities": c.probabilities,
                            "value": c.value,
                        });
                        if let Some(s) = &c.spread {
                            v["spread"] = serde_json::json!(s);
                        }
                        v
                    })
                    .collect();
                match &row.group {
                    Some(g) => serde_json::json!({"group": text(g), "predictions": preds}),
                    None => serde_json::json!({"index": i, "predictions": preds}),
                }
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn cell(&self, row: usize, task: usize) -> Option<&Cell> {
        self.rows.get(row)?.cells.get(task)
    }
}

fn cell_arg(p: &tandem_predictions, row: usize, task: usize) -> crate::Result<&Cell> {
    p.cell(row, task).ok_or_else(|| {
        Error::invalid(format!(
            "row {row} / task {task} out of range ({} rows, {} tasks)",
            p.rows.len(),
            p.tasks.len()
        ))
    })
}

/// Reads `p`, or returns `default` when it is NULL (or on a bug).
///
/// # Safety
/// `p` is NULL or live predictions from this library.
unsafe fn read<T: Copy>(
    p: *const tandem_predictions,
    default: T,
    f: impl FnOnce(&tandem_predictions) -> T,
) -> T {
    // SAFETY: NULL or live predictions, immutable while shared.
    guard_or(default, || unsafe { p.as_ref() }.map_or(default, f))
}

fn ptr_or_null(s: Option<&CString>) -> *const c_char {
    s.map_or(std::ptr::null(), |s| s.as_ptr())
}

/// Frees predictions. NULL is a no-op.
///
/// Ownership: consumes the predictions and every string they returned.
/// Thread safety: no other thread may use the handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_free(predictions: *mut tandem_predictions) {
    // SAFETY: a pointer from a predict call, freed once.
    unsafe { super::free_box(predictions) }
}

/// Rows: one per input text, or one per group for grouped predictions. 0 for NULL.
///
/// Ownership: borrows `predictions`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_len(predictions: *const tandem_predictions) -> usize {
    // SAFETY: NULL or live predictions, as documented.
    unsafe { read(predictions, 0, |p| p.rows.len()) }
}

/// Tasks per row, in the bundle's order. 0 for NULL.
///
/// Ownership: borrows `predictions`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_task_count(
    predictions: *const tandem_predictions,
) -> usize {
    // SAFETY: NULL or live predictions, as documented.
    unsafe { read(predictions, 0, |p| p.tasks.len()) }
}

/// The version of the heads that made every prediction in this object (0 for heads as loaded,
/// then +1 per hot swap; always 0 for an ensemble's); a prediction never mixes two versions.
/// 0 for NULL.
///
/// Ownership: borrows `predictions`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_heads_version(
    predictions: *const tandem_predictions,
) -> u64 {
    // SAFETY: NULL or live predictions, as documented.
    unsafe { read(predictions, 0, |p| p.version) }
}

/// Task `task`'s name, owned by `predictions`; NULL when out of range.
///
/// Ownership: the string belongs to `predictions`; do not free it.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_task_name(
    predictions: *const tandem_predictions,
    task: usize,
) -> *const c_char {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, std::ptr::null(), |p| {
            ptr_or_null(p.tasks.get(task).map(|t| &t.name))
        })
    }
}

/// Task `task`'s kind, a `TANDEM_TASK_*` value; `UINT32_MAX` when out of range.
///
/// Ownership: borrows `predictions`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_task_kind(
    predictions: *const tandem_predictions,
    task: usize,
) -> u32 {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, u32::MAX, |p| {
            p.tasks.get(task).map_or(u32::MAX, |t| t.kind)
        })
    }
}

/// Classes of task `task` (0 for regression): the length of its probability vectors.
///
/// Ownership: borrows `predictions`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_class_count(
    predictions: *const tandem_predictions,
    task: usize,
) -> usize {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, 0, |p| {
            p.tasks.get(task).map_or(0, |t| t.classes.len())
        })
    }
}

/// The name of class `class` of task `task` (the label that probability index `class` refers
/// to), owned by `predictions`; NULL when out of range.
///
/// Ownership: the string belongs to `predictions`; do not free it.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_class_name(
    predictions: *const tandem_predictions,
    task: usize,
    class: usize,
) -> *const c_char {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, std::ptr::null(), |p| {
            ptr_or_null(p.tasks.get(task).and_then(|t| t.classes.get(class)))
        })
    }
}

/// The group key of row `row` for grouped predictions, owned by `predictions`; NULL for
/// ungrouped predictions or when out of range.
///
/// Ownership: the string belongs to `predictions`; do not free it.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_group(
    predictions: *const tandem_predictions,
    row: usize,
) -> *const c_char {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, std::ptr::null(), |p| {
            ptr_or_null(p.rows.get(row).and_then(|r| r.group.as_ref()))
        })
    }
}

/// How many labels row `row` predicts for task `task`: 1 for multiclass and binary, any number
/// for multi-label, 0 for regression (and when out of range).
///
/// Ownership: borrows `predictions`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_label_count(
    predictions: *const tandem_predictions,
    row: usize,
    task: usize,
) -> usize {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, 0, |p| {
            p.cell(row, task).map_or(0, |c| c.labels.len())
        })
    }
}

/// The `k`-th predicted label of row `row` for task `task`, owned by `predictions`; NULL when
/// out of range. Binary and multi-label decisions use the thresholds tuned on validation data
/// (stored in the bundle), not 0.5: a binary label can be the class with the lower probability.
///
/// Ownership: the string belongs to `predictions`; do not free it.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_label(
    predictions: *const tandem_predictions,
    row: usize,
    task: usize,
    k: usize,
) -> *const c_char {
    // SAFETY: NULL or live predictions, as documented.
    unsafe {
        read(predictions, std::ptr::null(), |p| {
            ptr_or_null(p.cell(row, task).and_then(|c| c.labels.get(k)))
        })
    }
}

/// Copies the class probabilities of row `row` for task `task` into `out` (`cap` floats;
/// `tandem_predictions_class_count` of them are written, in class order). For binary tasks
/// they are `[1 - p, p]`; for multi-label, independent per-label probabilities.
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (row/task out of range, or a regression task),
/// BUFFER_TOO_SMALL.
///
/// Ownership: `out` is the caller's.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_probabilities(
    predictions: *const tandem_predictions,
    row: usize,
    task: usize,
    out: *mut f32,
    cap: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let p = unsafe { handle(predictions, "predictions") }?;
        let c = cell_arg(p, row, task)?;
        if c.value.is_some() {
            return Err(Error::invalid(format!(
                "task {task} is a regression task: read its value"
            )));
        }
        let dst = unsafe { floats_out(out, cap, c.probabilities.len()) }?;
        dst.copy_from_slice(&c.probabilities);
        Ok(())
    })
}

/// Writes the predicted value of row `row` for regression task `task` to `*out`.
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (out of range, or not a regression task).
///
/// Ownership: `out` is the caller's.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_value(
    predictions: *const tandem_predictions,
    row: usize,
    task: usize,
    out: *mut f32,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let p = unsafe { handle(predictions, "predictions") }?;
        out_ptr(out, "out")?;
        let v = cell_arg(p, row, task)?
            .value
            .ok_or_else(|| Error::invalid(format!("task {task} is not a regression task")))?;
        unsafe { write_out(out, v) };
        Ok(())
    })
}

/// Writes the Monte-Carlo spread of row `row`, task `task` (predictions made by
/// `tandem_model_predict_sampled`) to `out`: the standard deviation over the passes of each
/// class's probability (`tandem_predictions_class_count` floats, in class order; binary
/// tasks' two are equal) or, for a regression task, of its value (1 float).
/// Errors: NULL_ARGUMENT, INVALID_ARGUMENT (out of range, or predictions made without
/// Monte-Carlo dropout), BUFFER_TOO_SMALL.
///
/// Ownership: `out` is the caller's.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_spread(
    predictions: *const tandem_predictions,
    row: usize,
    task: usize,
    out: *mut f32,
    cap: usize,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let p = unsafe { handle(predictions, "predictions") }?;
        let s = cell_arg(p, row, task)?.spread.as_ref().ok_or_else(|| {
            Error::invalid(
                "these predictions have no spread: make them with tandem_model_predict_sampled",
            )
        })?;
        let dst = unsafe { floats_out(out, cap, s.len()) }?;
        dst.copy_from_slice(s);
        Ok(())
    })
}

/// All predictions as JSONL (one `{"index"|"group", "predictions": [...]}` object per row, the
/// format of `tandem predict`), written to `*out` and freed with `tandem_string_free`.
/// Errors: NULL_ARGUMENT.
///
/// Ownership: the caller owns `*out`.
/// Thread safety: safe from many threads at once on one predictions object.
#[no_mangle]
pub unsafe extern "C" fn tandem_predictions_json(
    predictions: *const tandem_predictions,
    out: *mut *mut c_char,
) -> *mut tandem_error {
    guard(|| {
        // SAFETY: as documented on the function.
        let p = unsafe { handle(predictions, "predictions") }?;
        out_ptr(out, "out")?;
        let json = p.json.get_or_init(|| p.to_json());
        unsafe { write_out(out, into_c_string(json)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TaskSpec;
    use crate::heads::{Architecture, Network, TaskEntry};
    use rand::SeedableRng;

    #[test]
    fn json_is_made_on_demand_and_matches_the_predictions() {
        let arch = Architecture::embedding_only(4, vec![2, 1]);
        let network = Network::new(arch, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
        let task = |name: &str, kind, labels: &[&str]| TaskEntry {
            spec: TaskSpec {
                name: name.into(),
                kind,
                labels: labels.iter().map(|l| l.to_string()).collect(),
            },
            thresholds: vec![],
        };
        let heads = Heads {
            network,
            normalizer: None,
            tasks: vec![
                task("topic", TaskKind::Multiclass, &["a \"b\"", "c"]),
                task("score", TaskKind::Regression, &[]),
            ],
            version: 3,
            onnx: None,
        };
        let rows: Vec<(Option<String>, Vec<TaskPrediction>)> = vec![
            (
                None,
                vec![
                    TaskPrediction {
                        task: "topic".into(),
                        labels: vec!["a \"b\"".into()],
                        probabilities: vec![0.75, 0.25],
                        value: None,
                        spread: None,
                    },
                    TaskPrediction {
                        task: "score".into(),
                        labels: vec![],
                        probabilities: vec![],
                        value: Some(1.5),
                        spread: None,
                    },
                ],
            );
            2
        ];
        // What the predictions serialized to when they were made eagerly.
        let want = rows
            .iter()
            .enumerate()
            .map(|(i, (_, p))| serde_json::json!({"index": i, "predictions": p}).to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let p = tandem_predictions::new(&heads, rows.clone());
        assert!(p.json.get().is_none(), "no JSON until asked");
        assert_eq!(p.to_json(), want);
        let grouped = vec![(Some("g1".to_string()), rows[0].1.clone())];
        let g = tandem_predictions::new(&heads, grouped.clone());
        let want = serde_json::json!({"group": "g1", "predictions": grouped[0].1}).to_string();
        assert_eq!(g.to_json(), want);
    }
}
