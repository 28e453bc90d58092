//! `tandem predict`: labels, probabilities and values per text, or per group of texts, as JSONL
//! (exact) or a TSV table (rounded).

use std::cmp::Ordering;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};
use tandem::data::TaskKind;
use tandem::ensemble::Ensemble;
use tandem::eval::Aggregation;
use tandem::heads::{TaskEntry, TaskPrediction};
use tandem::{Error, ErrorKind, Result};

use crate::input::read_input;
use crate::progress::{Log, LogArgs};
use crate::BackboneArgs;

/// How predictions are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per text (or group), probabilities exact.
    #[default]
    Jsonl,
    /// A header row, then one tab-separated row per text (or group), probabilities rounded to
    /// 4 decimals.
    Tsv,
}

#[derive(Args)]
pub struct PredictArgs {
    /// Bundle directory. Repeat it to average several bundles with the same tasks (an
    /// ensemble): each task's probabilities (or values) are averaged over the bundles and
    /// decided on their mean thresholds; bundles on one backbone share its run.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// Input: text lines or JSONL with a text field; `-` or nothing reads standard input.
    input: Option<PathBuf>,
    /// JSONL field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// JSONL field whose value groups texts (e.g. an author id): one prediction per group.
    #[arg(long)]
    group_field: Option<String>,
    /// How group members combine: mean, median, majority or total_vote.
    #[arg(long, default_value = "mean")]
    aggregate: Aggregation,
    /// Output format: jsonl (exact) or tsv (a header row, probabilities rounded to 4 decimals).
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// For multiclass tasks, only the K most probable labels with their probabilities.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    top_k: Option<u64>,
    /// Most texts per backbone run. 1 makes each text's prediction independent of the others
    /// in the input (the int8 graph quantizes each run's activations with one scale per run).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    batch_size: u64,
    /// Monte-Carlo dropout: average N passes of the heads with dropout on, decide on the mean,
    /// and report each probability's (or value's) standard deviation over the passes as
    /// `spread` (TSV: `:sd` columns). One bundle, texts not grouped.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    mc_samples: Option<u64>,
    /// Seed of the Monte-Carlo dropout masks (the same seed and input, the same output).
    #[arg(long, default_value_t = 0, requires = "mc_samples")]
    mc_seed: u64,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
}

/// What each output row starts with: a text's index and id, or a group's key and size.
enum RowKey<'a> {
    Text {
        index: usize,
        id: Option<&'a Value>,
        text: &'a str,
    },
    Group {
        key: &'a str,
        size: usize,
    },
}

/// Writes rows in the chosen format (the TSV header first).
struct Writer<'a, W: Write> {
    w: W,
    format: Format,
    tasks: &'a [TaskEntry],
    top_k: Option<usize>,
    /// TSV: whether the rows have an `id` column.
    ids: bool,
    /// TSV: whether predictions carry Monte-Carlo spreads (their `:sd` columns).
    spread: bool,
}

fn io(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, e.to_string())
}

/// The `k` most probable labels of a multiclass prediction, most probable first (ties in label
/// order).
fn top(task: &TaskEntry, p: &TaskPrediction, k: usize) -> Vec<(String, f32)> {
    let mut v: Vec<(String, f32)> = task
        .spec
        .labels
        .iter()
        .cloned()
        .zip(p.probabilities.iter().copied())
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(k);
    v
}

/// The spreads of the `k` labels [`top`] shows, in its order (empty without spreads).
fn top_spreads(task: &TaskEntry, p: &TaskPrediction, k: usize) -> Vec<f32> {
    let Some(s) = &p.spread else {
        return Vec::new();
    };
    let mut order: Vec<usize> = (0..task.spec.labels.len().min(p.probabilities.len())).collect();
    order.sort_by(|&a, &b| p.probabilities[b].total_cmp(&p.probabilities[a]));
    order.truncate(k);
    order.iter().filter_map(|&i| s.get(i).copied()).collect()
}

/// A text for a TSV cell: backslash, tab, newline and carriage return escaped.
fn tsv_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// A probability or value rounded to 4 decimals, trailing zeros dropped.
fn rounded(v: f32) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

impl<W: Write> Writer<'_, W> {
    /// Whether task `t` is written as its top K labels.
    fn top_k(&self, t: &TaskEntry) -> Option<usize> {
        self.top_k
            .filter(|_| t.spec.kind == TaskKind::Multiclass)
            .map(|k| k.min(t.spec.labels.len()))
    }

    /// The TSV header row (nothing for JSONL).
    fn header(&mut self, groups: bool) -> Result<()> {
        if self.format != Format::Tsv {
            return Ok(());
        }
        let mut cols: Vec<String> = if groups {
            vec!["group".into(), "size".into()]
        } else if self.ids {
            vec!["index".into(), "id".into()]
        } else {
            vec!["index".into()]
        };
        for t in self.tasks {
            let name = tsv_cell(&t.spec.name);
            cols.push(name.clone());
            if let Some(k) = self.top_k(t) {
                for i in 1..=k {
                    cols.push(format!("{name}:top{i}"));
                    cols.push(format!("{name}:p{i}"));
                    if self.spread {
                        cols.push(format!("{name}:sd{i}"));
                    }
                }
            } else if t.spec.kind != TaskKind::Regression {
                for l in &t.spec.labels {
                    cols.push(format!("{name}:{}", tsv_cell(l)));
                }
                if self.spread {
                    for l in &t.spec.labels {
                        cols.push(format!("{name}:{}:sd", tsv_cell(l)));
                    }
                }
            } else if self.spread {
                cols.push(format!("{name}:sd"));
            }
        }
        if !groups {
            cols.push("text".into());
        }
        writeln!(self.w, "{}", cols.join("\t")).map_err(io)
    }

    /// One task's prediction as JSON: no null value, no empty probabilities, and no labels for
    /// regression; with top K, `top` instead of `probabilities`.
    fn task_json(&self, t: &TaskEntry, p: &TaskPrediction) -> Value {
        let mut m = Map::new();
        m.insert("task".into(), json!(p.task));
        if t.spec.kind != TaskKind::Regression {
            m.insert("labels".into(), json!(p.labels));
        }
        if let Some(k) = self.top_k(t) {
            let top: Vec<Value> = top(t, p, k)
                .into_iter()
                .map(|(label, prob)| json!({ "label": label, "probability": prob }))
                .collect();
            m.insert("top".into(), Value::Array(top));
        } else if !p.probabilities.is_empty() {
            m.insert("probabilities".into(), json!(p.probabilities));
        }
        if let Some(v) = p.value {
            m.insert("value".into(), json!(v));
        }
        if let Some(s) = &p.spread {
            // With top K, the spreads of the labels shown, in their order.
            let shown = match self.top_k(t) {
                Some(k) => top_spreads(t, p, k),
                None => s.clone(),
            };
            m.insert("spread".into(), json!(shown));
        }
        Value::Object(m)
    }

    /// One task's TSV cells, in the header's order.
    fn task_cells(&self, t: &TaskEntry, p: &TaskPrediction, cells: &mut Vec<String>) {
        match t.spec.kind {
            TaskKind::Regression => {
                cells.push(p.value.map(rounded).unwrap_or_default());
                if self.spread {
                    cells.push(p.spread.as_ref().map(|s| rounded(s[0])).unwrap_or_default());
                }
                return;
            }
            _ => cells.push(
                p.labels
                    .iter()
                    .map(|l| tsv_cell(l))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
        if let Some(k) = self.top_k(t) {
            let sds = top_spreads(t, p, k);
            for (i, (label, prob)) in top(t, p, k).into_iter().enumerate() {
                cells.push(tsv_cell(&label));
                cells.push(rounded(prob));
                if self.spread {
                    cells.push(sds.get(i).copied().map(rounded).unwrap_or_default());
                }
            }
        } else {
            cells.extend(p.probabilities.iter().map(|&v| rounded(v)));
            if self.spread {
                let s = p.spread.as_deref().unwrap_or(&[]);
                cells.extend(s.iter().map(|&v| rounded(v)));
            }
        }
    }

    /// One row: a text's or a group's predictions.
    fn row(&mut self, key: RowKey<'_>, preds: &[TaskPrediction]) -> Result<()> {
        match self.format {
            Format::Jsonl => {
                let mut m = Map::new();
                match key {
                    RowKey::Text { index, id, .. } => {
                        m.insert("index".into(), json!(index));
                        if let Some(id) = id.filter(|v| !v.is_null()) {
                            m.insert("id".into(), id.clone());
                        }
                    }
                    RowKey::Group { key, size } => {
                        m.insert("group".into(), json!(key));
                        m.insert("size".into(), json!(size));
                    }
                }
                let preds: Vec<Value> = self
                    .tasks
                    .iter()
                    .zip(preds)
                    .map(|(t, p)| self.task_json(t, p))
                    .collect();
                m.insert("predictions".into(), Value::Array(preds));
                writeln!(self.w, "{}", Value::Object(m)).map_err(io)
            }
            Format::Tsv => {
                let mut cells = Vec::new();
                let text = match key {
                    RowKey::Text { index, id, text } => {
                        cells.push(index.to_string());
                        if self.ids {
                            cells.push(match id {
                                None | Some(Value::Null) => String::new(),
                                Some(Value::String(s)) => tsv_cell(s),
                                Some(v) => tsv_cell(&v.to_string()),
                            });
                        }
                        Some(text)
                    }
                    RowKey::Group { key, size } => {
                        cells.push(tsv_cell(key));
                        cells.push(size.to_string());
                        None
                    }
                };
                for (t, p) in self.tasks.iter().zip(preds) {
                    self.task_cells(t, p, &mut cells);
                }
                if let Some(text) = text {
                    cells.push(tsv_cell(text));
                }
                writeln!(self.w, "{}", cells.join("\t")).map_err(io)
            }
        }
    }
}

/// Natural order: runs of ASCII digits compare as numbers ("user2" < "user10", "a02" after
/// "a2" only as a tie-break), everything else character by character; equal strings only
/// compare equal.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (i, j) = (run(x), run(y));
                let (m, n) = (
                    x[..i].trim_start_matches('0'),
                    y[..j].trim_start_matches('0'),
                );
                let ord = m.len().cmp(&n.len()).then_with(|| m.cmp(n));
                if ord != Ordering::Equal {
                    return ord;
                }
                (x, y) = (&x[i..], &y[j..]);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                (x, y) = (&x[c.len_utf8()..], &y[d.len_utf8()..]);
            }
        }
    }
}

/// One bundle, or several averaged.
enum Predictor {
    One(
        Box<tandem::model::Model>,
        std::sync::Arc<tandem::heads::Heads>,
    ),
    Many(Ensemble),
}

impl Predictor {
    /// Loads the bundles in `dirs`: the first on the backbone it records (or the one given),
    /// the others on that same loaded backbone.
    fn load(dirs: &[PathBuf], backbone: &BackboneArgs, batch_size: usize) -> Result<Predictor> {
        let first = crate::load_model_batched(&dirs[0], backbone, batch_size)?;
        if dirs.len() == 1 {
            let heads = first.heads();
            return Ok(Predictor::One(Box::new(first), heads));
        }
        let shared = std::sync::Arc::clone(first.backbone());
        let mut members = vec![first];
        for dir in &dirs[1..] {
            members.push(tandem::model::Model::load(
                dir,
                std::sync::Arc::clone(&shared),
            )?);
        }
        Ok(Predictor::Many(Ensemble::new(members)?))
    }

    fn tasks(&self) -> &[TaskEntry] {
        match self {
            Predictor::One(_, heads) => &heads.tasks,
            Predictor::Many(e) => e.tasks(),
        }
    }

    /// Predictions, with Monte-Carlo dropout when `mc` gives (samples, seed).
    fn predict(
        &self,
        texts: &[&str],
        mc: Option<(usize, u64)>,
    ) -> Result<Vec<Vec<TaskPrediction>>> {
        match (self, mc) {
            (Predictor::One(m, _), None) => m.predict(texts),
            (Predictor::One(m, _), Some((n, seed))) => Ok(m.predict_sampled(texts, n, seed)?.0),
            (Predictor::Many(e), None) => e.predict(texts),
            (Predictor::Many(_), Some(_)) => Err(Error::invalid(
                "--mc-samples samples one bundle's dropout: give one --model",
            )),
        }
    }

    fn predict_groups(
        &self,
        texts: &[&str],
        groups: &[String],
        how: Aggregation,
    ) -> Result<Vec<(String, Vec<TaskPrediction>)>> {
        match self {
            Predictor::One(m, _) => m.predict_groups(texts, groups, how),
            Predictor::Many(e) => e.predict_groups(texts, groups, how),
        }
    }
}

/// `tandem predict`.
pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let mut log = Log::new(&args.log);
    let mc = args
        .mc_samples
        .map(|n| (usize::try_from(n).unwrap_or(usize::MAX), args.mc_seed));
    if mc.is_some() && (args.model.len() > 1 || args.group_field.is_some()) {
        return Err(Error::invalid(
            "--mc-samples samples one bundle's dropout per text: give one --model and no \
             --group-field",
        ));
    }
    let model = Predictor::load(&args.model, &args.backbone, args.batch_size as usize)?;
    let records = read_input(args.input.as_deref(), &args.text_field)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let stdout = std::io::stdout();
    let mut w = Writer {
        w: BufWriter::new(stdout.lock()),
        format: args.format,
        tasks: model.tasks(),
        top_k: args.top_k.map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
        ids: records
            .iter()
            .any(|r| r.id.as_ref().is_some_and(|v| !v.is_null())),
        spread: mc.is_some(),
    };
    if let Some(field) = &args.group_field {
        let groups: Vec<String> = records
            .iter()
            .map(|r| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get(field))
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .ok_or_else(|| Error::invalid(format!("a record has no `{field}` field")))
            })
            .collect::<Result<_>>()?;
        let mut sizes = std::collections::HashMap::<&str, usize>::new();
        for g in &groups {
            *sizes.entry(g.as_str()).or_default() += 1;
        }
        // Groups need every member at once: one call, no progress to show.
        let mut out = model.predict_groups(&texts, &groups, args.aggregate)?;
        out.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        w.header(true)?;
        for (key, preds) in &out {
            let size = sizes.get(key.as_str()).copied().unwrap_or(0);
            w.row(RowKey::Group { key, size }, preds)?;
        }
    } else {
        w.header(false)?;
        // In chunks, so that progress advances and output streams.
        let progress = log.texts("predict", texts.len());
        let chunk_size = tandem::cache::EMBED_CHUNK;
        for (c, chunk) in texts.chunks(chunk_size).enumerate() {
            let base = c * chunk_size;
            for (j, preds) in model.predict(chunk, mc)?.into_iter().enumerate() {
                let i = base + j;
                let key = RowKey::Text {
                    index: i,
                    id: records[i].id.as_ref(),
                    text: texts[i],
                };
                w.row(key, &preds)?;
            }
            progress.inc(chunk.len());
        }
        progress.close();
    }
    w.w.flush().map_err(io)?;
    log.done(json!({"command": "predict", "texts": texts.len()}));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec![
            "user10", "user2", "user1", "b", "a10b", "a2b", "user02", "", "10", "9", "a",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["", "9", "10", "a", "a2b", "a10b", "b", "user1", "user02", "user2", "user10"]
        );
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
        assert_eq!(natural_cmp("é2", "é10"), Ordering::Less);
        // Very long digit runs do not overflow.
        assert_eq!(
            natural_cmp("n99999999999999999999999", "n100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn tsv_cells_escape_and_round() {
        assert_eq!(tsv_cell("a\tb\nc\\d"), "a\\tb\\nc\\\\d");
        assert_eq!(rounded(0.123_456), "0.1235");
        assert_eq!(rounded(1.0), "1");
        assert_eq!(rounded(-0.000_01), "0");
        assert_eq!(rounded(2.5), "2.5");
    }
}
