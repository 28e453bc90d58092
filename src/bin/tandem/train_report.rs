//! `tandem train --report`: validation predictions of the trained heads and the breakdown
//! column, handed to the library's report module.

use std::path::Path;

use ndarray::Array2;
use tandem::data::Row;
use tandem::model::predict_arrays;
use tandem::report::{Breakdown, ReportInput, RunSummary};
use tandem::train::{Examples, Trained};
use tandem::Result;

pub use tandem::report::epoch_metric_name as metric_name;

/// Writes the HTML report of `trained` on its validation examples (`valid_rows` are their input
/// rows, for `--report-by`).
pub fn write(
    path: &Path,
    summary: &RunSummary,
    trained: &Trained,
    valid: &Examples,
    valid_rows: &[Row],
    by: Option<&str>,
) -> Result<()> {
    let heads = &trained.heads;
    let feats = match &heads.normalizer {
        Some(n) => n.transform(valid.feats.view()),
        None => Array2::zeros((valid.len(), 0)),
    };
    // Fine-tuned layers embed the validation texts anew, as the bundle serves them.
    let tuned = trained
        .top
        .as_ref()
        .zip(valid.hidden.as_ref())
        .map(|(top, h)| top.embed(h));
    let emb = tuned.as_ref().unwrap_or(&valid.emb);
    let probs = predict_arrays(heads, emb.view(), feats.view(), valid.tokens.as_ref())?;
    let breakdown = by.map(|field| Breakdown {
        field: field.to_string(),
        keys: valid_rows
            .iter()
            .map(|r| r.text(field).unwrap_or_else(|| "(missing)".into()))
            .collect(),
    });
    tandem::report::write(
        path,
        &ReportInput {
            summary,
            report: &trained.report,
            tasks: &heads.tasks,
            probs: &probs,
            targets: &valid.targets,
            breakdown: breakdown.as_ref(),
        },
    )
}
