//! The model card: `README.md` in every bundle, written by [`save`](super::save) from the
//! manifest so that whoever receives a bundle can read what it is without tandem — its tasks
//! and labels, how much data it saw, its validation metrics, the recipe, the backbone, what it
//! is for and where it stops being trustworthy.
//!
//! The card is documentation only: loading never reads it, so it cannot change what a bundle
//! does, and a card that disagrees with `manifest.json` loses (the manifest is hashed against
//! the weights, the card is not).

use std::fmt::Write as _;

use serde_json::Value;

use super::BundleManifest;
use crate::data::TaskKind;

/// The model card's file name inside a bundle.
pub const CARD_FILE: &str = "README.md";

/// Validation examples of a class below which its metrics are called out as unreliable.
const FEW_SUPPORT: u64 = 10;

/// Headline metrics shown per task, in this order, when the task's metrics have them.
const HEADLINE: [(&str, &str); 11] = [
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("micro_f1", "micro-F1"),
    ("macro_precision", "macro precision"),
    ("macro_recall", "macro recall"),
    ("roc_auc", "ROC AUC"),
    ("subset_accuracy", "subset accuracy"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("pearson", "Pearson r"),
    ("r2", "R²"),
];

/// The model card of the bundle `m` describes, as Markdown. A pure function of the manifest
/// (no clock, no paths), so equal bundles get equal cards.
pub fn render(m: &BundleManifest) -> String {
    let mut out = String::new();
    let names: Vec<&str> = m.tasks.iter().map(|t| t.spec.name.as_str()).collect();
    let _ = writeln!(out, "# Model card: {}\n", names.join(", "));
    let _ = writeln!(
        out,
        "A tandem bundle (`{}`): task heads trained on the `{}` backbone. Written by {} when \
         the bundle was saved, from `manifest.json`, which is the model's authoritative record; \
         tandem never reads this file, and `tandem inspect` shows the same facts verified.\n",
        m.format,
        m.backbone.name,
        or_unknown(&m.created_by),
    );
    tasks(&mut out, m);
    data(&mut out, m);
    metrics(&mut out, m);
    recipe(&mut out, m);
    backbone(&mut out, m);
    intended_use(&mut out, m);
    limits(&mut out, m);
    provenance(&mut out, m);
    out
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "an unknown tandem"
    } else {
        s
    }
}

fn n_train(m: &BundleManifest) -> Option<u64> {
    m.metrics.get("n_train").and_then(Value::as_u64)
}

fn n_valid(m: &BundleManifest) -> Option<u64> {
    m.metrics.get("n_valid").and_then(Value::as_u64)
}

/// One task's validation metrics: `metrics.tasks.NAME`, or the top level for the first task of
/// a manifest without per-task metrics.
fn task_metrics<'a>(m: &'a BundleManifest, i: usize, name: &str) -> Option<&'a Value> {
    m.metrics
        .get("tasks")
        .and_then(|t| t.get(name))
        .or_else(|| (i == 0).then_some(&m.metrics))
        .filter(|v| v.is_object())
}

fn thresholds_tuned(m: &BundleManifest) -> bool {
    m.training
        .get("tune_thresholds")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

fn tasks(out: &mut String, m: &BundleManifest) {
    let _ = writeln!(out, "## Tasks\n");
    let _ = writeln!(out, "| task | kind | outputs |\n|---|---|---|");
    for t in &m.tasks {
        let labels = &t.spec.labels;
        let what = match t.spec.kind {
            TaskKind::Regression => "a number".to_string(),
            TaskKind::Binary => format!(
                "{} or {} (positive: {}; threshold {})",
                cell(labels.first().map_or("?", String::as_str)),
                cell(labels.get(1).map_or("?", String::as_str)),
                cell(labels.get(1).map_or("?", String::as_str)),
                list_f32(&t.thresholds)
            ),
            TaskKind::Multilabel => format!(
                "any of {} labels: {} (thresholds {})",
                labels.len(),
                cell(&labels.join(", ")),
                list_f32(&t.thresholds)
            ),
            TaskKind::Multiclass => {
                format!(
                    "one of {} labels: {}",
                    labels.len(),
                    cell(&labels.join(", "))
                )
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {what} |",
            cell(&t.spec.name),
            t.spec.kind.name()
        );
    }
    let thresholded = m
        .tasks
        .iter()
        .any(|t| matches!(t.spec.kind, TaskKind::Binary | TaskKind::Multilabel));
    if thresholded {
        let how = if thresholds_tuned(m) {
            "tuned on the validation split for the best F1"
        } else {
            "fixed at 0.5 (threshold tuning was off)"
        };
        let _ = writeln!(
            out,
            "\nDecision thresholds on the sigmoid outputs are {how}."
        );
    }
    out.push('\n');
}

fn data(out: &mut String, m: &BundleManifest) {
    let _ = writeln!(out, "## Training data\n");
    match (n_train(m), n_valid(m)) {
        (Some(t), Some(v)) => {
            let _ = writeln!(
                out,
                "Trained on {t} labelled examples; {v} more were held out for validation \
                 (early stopping, thresholds and the metrics below)."
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "The manifest does not record how many examples were used."
            );
        }
    }
    let _ = writeln!(
        out,
        "\ntandem records the data's size, not its source: where the texts came from, their \
         language, domain and time span, and how they were labelled are not known to it. Add \
         them here if you distribute this bundle.\n"
    );
}

fn metrics(out: &mut String, m: &BundleManifest) {
    let split = m
        .metrics
        .get("split")
        .and_then(Value::as_str)
        .unwrap_or("validation");
    let _ = writeln!(out, "## Metrics\n");
    let _ = writeln!(
        out,
        "Measured on the {split} split at save time, not on a separate test set; the same \
         split chose the epoch kept and the thresholds, so these numbers are optimistic.\n"
    );
    for (i, t) in m.tasks.iter().enumerate() {
        let Some(tm) = task_metrics(m, i, &t.spec.name) else {
            let _ = writeln!(
                out,
                "`{}`: no metrics recorded.\n",
                t.spec.name.replace('`', "'")
            );
            continue;
        };
        let n = tm.get("n").and_then(Value::as_u64);
        let _ = writeln!(
            out,
            "### {}{}\n",
            cell(&t.spec.name),
            n.map_or(String::new(), |n| format!(" (n = {n})"))
        );
        let headline: Vec<(&str, f64)> = HEADLINE
            .iter()
            .filter_map(|(k, label)| tm.get(*k).and_then(Value::as_f64).map(|v| (*label, v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        if headline.is_empty() {
            let _ = writeln!(out, "No headline metric recorded.\n");
        } else {
            let _ = writeln!(out, "| metric | value |\n|---|---|");
            for (label, v) in headline {
                let _ = writeln!(out, "| {label} | {v:.4} |");
            }
            out.push('\n');
        }
        let per = tm
            .get("per_class")
            .or_else(|| tm.get("per_label"))
            .and_then(Value::as_array);
        if let Some(rows) = per.filter(|r| !r.is_empty()) {
            let _ = writeln!(
                out,
                "| label | precision | recall | F1 | support |\n|---|---|---|---|---|"
            );
            for r in rows {
                let num = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_f64)
                        .map_or("–".to_string(), |v| format!("{v:.3}"))
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    cell(r.get("label").and_then(Value::as_str).unwrap_or("?")),
                    num("precision"),
                    num("recall"),
                    num("f1"),
                    r.get("support")
                        .and_then(Value::as_u64)
                        .map_or("–".to_string(), |s| s.to_string())
                );
            }
            out.push('\n');
        }
    }
}

fn recipe(out: &mut String, m: &BundleManifest) {
    let a = &m.architecture;
    let tr = &m.training;
    let head_kind =
        tr.pointer("/head/kind")
            .and_then(Value::as_str)
            .unwrap_or(if a.sequence.is_some() {
                "sequence"
            } else {
                "pooled"
            });
    let _ = writeln!(out, "## Recipe\n");
    let _ = writeln!(out, "- mode: `{}`, head: `{head_kind}`", a.mode.name());
    let _ = writeln!(
        out,
        "- head input {} (embedding {}{}), hidden {:?}, outputs {:?}",
        a.emb_dim + a.code_dim,
        a.emb_dim,
        if a.code_dim > 0 {
            format!(
                ", metadata code {} from {} features",
                a.code_dim, a.n_features
            )
        } else {
            String::new()
        },
        a.head.hidden,
        a.outputs
    );
    if let Some(p) = a.parameter_count() {
        let _ = writeln!(out, "- {p} parameters, stored as {}", m.weights_dtype);
    }
    if let Some(epochs) = m.metrics.get("epochs").and_then(Value::as_object) {
        let runs: Vec<String> = epochs
            .iter()
            .map(|(stage, n)| format!("{stage} {n}"))
            .collect();
        if !runs.is_empty() {
            let _ = writeln!(out, "- epochs run: {}", runs.join(", "));
        }
    }
    if let Some(s) = m.metrics.get("train_seconds").and_then(Value::as_f64) {
        let _ = writeln!(out, "- training time: {s:.1} s");
    }
    let loss = tr
        .pointer("/loss/classification")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let weights = tr
        .pointer("/loss/class_weights")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let _ = writeln!(
        out,
        "- classification loss `{loss}`, class weights `{weights}`, seed {}",
        m.seed
    );
    let _ = writeln!(
        out,
        "\nEvery training option is under `training` in `manifest.json`.\n"
    );
}

fn backbone(out: &mut String, m: &BundleManifest) {
    let b = &m.backbone;
    let _ = writeln!(out, "## Backbone\n");
    let _ = writeln!(
        out,
        "- `{}`, `{}` graph, {}-dimensional embeddings",
        b.name, b.variant, b.dim
    );
    let _ = writeln!(out, "- graph sha256 `{}`", b.graph_sha256);
    let _ = writeln!(out, "- family sha256 `{}`", b.family_sha256);
    let _ = writeln!(
        out,
        "\nThe bundle loads only on this backbone family (the sha256 of its fp32 graph); any of \
         its graphs runs it, but the metrics above are for the `{}` graph.\n",
        b.variant
    );
}

fn intended_use(out: &mut String, m: &BundleManifest) {
    let what: Vec<String> = m
        .tasks
        .iter()
        .map(|t| {
            format!(
                "`{}` ({})",
                t.spec.name.replace('`', "'"),
                t.spec.kind.name()
            )
        })
        .collect();
    let _ = writeln!(out, "## Intended use\n");
    let _ = writeln!(
        out,
        "Predicting {} for texts like the training data, through tandem (`tandem predict`, \
         the C ABI, or the C++ and Go bindings) on the backbone above. Check it on labelled \
         data of your own (`tandem eval`) before relying on it.\n",
        what.join(", ")
    );
}

fn limits(out: &mut String, m: &BundleManifest) {
    let _ = writeln!(out, "## Limits\n");
    if let Some(t) = n_train(m) {
        let _ = writeln!(
            out,
            "- It learned from {t} examples: it knows what they show and little more."
        );
    }
    let _ = writeln!(
        out,
        "- The metrics are validation metrics (see above), not a test-set estimate."
    );
    if m.tasks.iter().any(|t| t.spec.kind == TaskKind::Multiclass) {
        let _ = writeln!(
            out,
            "- A multiclass head always answers with one of its labels: it has no \"none of \
             these\" unless that was a label."
        );
    }
    for (i, t) in m.tasks.iter().enumerate() {
        let few: Vec<String> = task_metrics(m, i, &t.spec.name)
            .and_then(|tm| tm.get("per_class").or_else(|| tm.get("per_label")))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let s = r.get("support")?.as_u64()?;
                (s < FEW_SUPPORT).then(|| {
                    format!(
                        "{} ({s})",
                        r.get("label").and_then(Value::as_str).unwrap_or("?")
                    )
                })
            })
            .collect();
        if !few.is_empty() {
            let _ = writeln!(
                out,
                "- `{}`: fewer than {FEW_SUPPORT} validation examples of {}, so their metrics \
                 are noisy.",
                t.spec.name.replace('`', "'"),
                cell(&few.join(", "))
            );
        }
    }
    let minilm = m.backbone.name == crate::home::DEFAULT_BACKBONE;
    let _ = writeln!(
        out,
        "- Texts are truncated at the backbone's maximum length{}; what comes later is not \
         read.",
        if minilm { " (256 tokens)" } else { "" }
    );
    if minilm {
        let _ = writeln!(
            out,
            "- all-MiniLM-L6-v2 was trained on English text; other languages embed poorly."
        );
    }
    if m.features.is_some() {
        let _ = writeln!(
            out,
            "- The heads also read metadata features (length, punctuation, casing, ...) scaled \
             to the training data: texts far outside its range are extrapolated."
        );
    }
    let _ = writeln!(
        out,
        "- Probabilities are the heads' outputs, not calibrated to any real-world rate.\n"
    );
}

fn provenance(out: &mut String, m: &BundleManifest) {
    let _ = writeln!(out, "## Provenance\n");
    let _ = writeln!(out, "- written by {}", or_unknown(&m.created_by));
    let _ = writeln!(
        out,
        "- weights `weights.safetensors` ({}), sha256 `{}`",
        m.weights_dtype, m.weights_sha256
    );
    let _ = writeln!(
        out,
        "- the manifest records no date; the files' modification time is the save time"
    );
}

/// A value fit for a Markdown table cell: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn list_f32(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BackboneRef, BUNDLE_FORMAT};
    use crate::data::TaskSpec;
    use crate::heads::TaskEntry;
    use serde_json::json;

    fn manifest() -> BundleManifest {
        BundleManifest {
            format: BUNDLE_FORMAT.into(),
            created_by: "tandem 9.9.9".into(),
            backbone: BackboneRef {
                name: "all-MiniLM-L6-v2".into(),
                family_sha256: "f".repeat(64),
                variant: "int8".into(),
                graph_sha256: "a".repeat(64),
                dim: 4,
            },
            features: None,
            tasks: vec![TaskEntry {
                spec: TaskSpec {
                    name: "intent".into(),
                    kind: TaskKind::Multiclass,
                    labels: vec!["billing".into(), "tech|nical".into()],
                },
                thresholds: vec![],
            }],
            architecture: crate::heads::Architecture::embedding_only(4, vec![2]),
            metrics: json!({
                "accuracy": 0.8125, "macro_f1": 0.75, "n": 16, "n_train": 64, "n_valid": 16,
                "split": "validation", "train_seconds": 1.25, "epochs": {"heads": 7},
                "tasks": {"intent": {
                    "accuracy": 0.8125, "macro_f1": 0.75, "roc_auc": null, "n": 16,
                    "per_class": [
                        {"label": "billing", "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 12},
                        {"label": "tech|nical", "precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 4}
                    ]
                }}
            }),
            training: json!({"head": {"kind": "pooled"}, "loss": {"classification": "cross_entropy", "class_weights": "none"}, "tune_thresholds": true}),
            seed: 3,
            weights_sha256: "b".repeat(64),
            weights_dtype: "f32".into(),
        }
    }

    #[test]
    fn the_card_has_every_section_and_the_real_numbers() {
        let card = render(&manifest());
        for section in [
            "# Model card: intent",
            "## Tasks",
            "## Training data",
            "## Metrics",
            "## Recipe",
            "## Backbone",
            "## Intended use",
            "## Limits",
            "## Provenance",
        ] {
            assert!(card.contains(section), "{section}:\n{card}");
        }
        for fact in [
            "| intent | multiclass | one of 2 labels: billing, tech\\|nical |",
            "Trained on 64 labelled examples; 16 more were held out",
            "### intent (n = 16)",
            "| accuracy | 0.8125 |",
            "| macro-F1 | 0.7500 |",
            "| tech\\|nical | 0.500 | 0.600 | 0.550 | 4 |",
            "not on a separate test set",
            "mode: `embedding_only`, head: `pooled`",
            "epochs run: heads 7",
            "`all-MiniLM-L6-v2`, `int8` graph, 4-dimensional",
            &format!("graph sha256 `{}`", "a".repeat(64)),
            &format!("family sha256 `{}`", "f".repeat(64)),
            "It learned from 64 examples",
            "fewer than 10 validation examples of tech\\|nical (4)",
            "trained on English text",
            "written by tandem 9.9.9",
            &format!("sha256 `{}`", "b".repeat(64)),
            "seed 3",
        ] {
            assert!(card.contains(fact), "{fact}:\n{card}");
        }
        // No metric that is null or absent is invented.
        assert!(
            !card.contains("ROC AUC") && !card.contains("RMSE"),
            "{card}"
        );
        // Deterministic: a pure function of the manifest.
        assert_eq!(card, render(&manifest()));
    }

    #[test]
    fn a_card_survives_a_sparse_manifest() {
        let mut m = manifest();
        m.metrics = json!({});
        m.training = json!({});
        m.tasks[0].spec.kind = TaskKind::Binary;
        m.tasks[0].thresholds = vec![0.25];
        m.created_by = String::new();
        let card = render(&m);
        assert!(card.contains("does not record how many examples"), "{card}");
        assert!(card.contains("No headline metric recorded"), "{card}");
        assert!(card.contains("threshold 0.250"), "{card}");
        assert!(card.contains("tuned on the validation split"), "{card}");
        assert!(card.contains("an unknown tandem"), "{card}");
    }
}
