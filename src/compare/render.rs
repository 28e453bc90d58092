//! A comparison as text: an aligned table, Markdown, or a small self-contained HTML page.

use std::fmt::Write as _;

use super::CompareSummary;
use crate::report::html;

/// Decimals shown for a metric: 4 for scores, 3 for errors on the target's scale.
fn decimals(metric: &str) -> usize {
    match metric {
        "rmse" | "mae" => 3,
        _ => 4,
    }
}

/// The sample-efficiency curves of comparisons run on growing shares of one training split
/// (one [`CompareSummary`] per share, in order): per arm, the first test metric's mean ± sd at
/// each share, as aligned text.
pub fn efficiency_table(runs: &[CompareSummary]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let metric = &first.metrics[0];
    let mut header = vec![format!("test {metric}")];
    header.extend(
        runs.iter()
            .map(|s| format!("{:.0}% ({})", s.train_fraction * 100.0, s.n_train)),
    );
    let rows: Vec<Vec<String>> = first
        .arms
        .iter()
        .map(|&arm| {
            let mut r = vec![arm.name().to_string()];
            r.extend(runs.iter().map(|s| {
                s.summaries
                    .iter()
                    .find(|a| a.arm == arm)
                    .and_then(|a| a.test.get(metric))
                    .map_or_else(|| "-".to_string(), |st| st.show(decimals(metric)))
            }));
            r
        })
        .collect();
    let mut out = format!(
        "sample efficiency: test {metric} (mean ± sd over seeds) by share of the training split (examples)\n"
    );
    out.push_str(&aligned(&header, &rows));
    out
}

/// Rows of cells as aligned text: the first column left-aligned, the others right-aligned, two
/// spaces apart, one line each (the header first).
fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .chain([header[c].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

impl CompareSummary {
    /// Column headers and one row of cells per arm: mode, runs, time to best, train time, best
    /// validation loss, and each test metric, as `mean ± sd`.
    pub fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header: Vec<String> = [
            "mode",
            "runs",
            "time to best (s)",
            "train time (s)",
            "best valid loss",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend(self.metrics.iter().map(|m| format!("test {m}")));
        header.push("trained params".into());
        header.push("peak heap MiB".into());
        let rows = self
            .summaries
            .iter()
            .map(|s| {
                let mut r = vec![
                    s.arm.name().to_string(),
                    s.runs.to_string(),
                    s.seconds_to_best.show(2),
                    s.train_seconds.show(2),
                    s.best_valid_loss.show(4),
                ];
                r.extend(self.metrics.iter().map(|m| {
                    s.test
                        .get(m)
                        .map_or_else(|| "-".to_string(), |st| st.show(decimals(m)))
                }));
                r.push(s.trainable_parameters.to_string());
                r.push(
                    s.peak_memory_mib
                        .map_or_else(|| "-".to_string(), |m| format!("{:.1}", m.mean)),
                );
                r
            })
            .collect();
        (header, rows)
    }

    /// One line describing the data and the protocol.
    pub fn setting(&self) -> String {
        format!(
            "task `{}` ({}); {}{} train / {} validation / {} test examples (test {:.0}%, split seed {}); seeds {}; mean ± sd over seeds; two_stage_unfreeze unfreezes at stage-2 epoch {} with {}× the head LR",
            self.task,
            self.kind.name(),
            self.n_train,
            if self.train_fraction < 1.0 {
                format!(" ({:.0}% of the training split)", self.train_fraction * 100.0)
            } else {
                String::new()
            },
            self.n_valid,
            self.n_test,
            self.test_fraction * 100.0,
            self.split_seed,
            self.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.unfreeze.at_epoch,
            self.unfreeze.lr_scale
        )
    }

    /// The table as aligned plain text, followed by the verdict.
    pub fn table(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.setting());
        out.push_str(&aligned(&header, &rows));
        out.push('\n');
        for l in &self.verdict.lines {
            let _ = writeln!(out, "- {l}");
        }
        out
    }

    /// The table and verdict as Markdown.
    pub fn to_markdown(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = String::new();
        let _ = writeln!(out, "# tandem compare\n\n{}\n", self.setting());
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let align: Vec<&str> = (0..header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", align.join("|"));
        for r in &rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        let _ = writeln!(out, "\n## Verdict\n");
        for l in &self.verdict.lines {
            let _ = writeln!(out, "- {l}");
        }
        out
    }

    /// A small self-contained HTML page (inline CSS, no scripts, nothing fetched) with the
    /// setting, the table and the verdict.
    pub fn to_html(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = String::new();
        out.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tandem compare</title>\n<style>\nbody{font-family:system-ui,sans-serif;margin:2em;color:#222}\ntable{border-collapse:collapse}\nth,td{border:1px solid #ccc;padding:.3em .6em}\ntd{text-align:right;font-variant-numeric:tabular-nums}\ntd:first-child{text-align:left}\ntr.best td{font-weight:bold}\n</style>\n</head>\n<body>\n<h1>tandem compare</h1>\n",
        );
        let _ = writeln!(out, "<p>{}</p>", html::escape(&self.setting()));
        let best = |i: usize| (self.summaries[i].arm == self.verdict.best).then_some("best");
        out.push_str(&html::table_with("", &header, &rows, best));
        out.push_str("<h2>Verdict</h2>\n<ul>\n");
        for l in &self.verdict.lines {
            let _ = writeln!(out, "<li>{}</li>", html::escape(l));
        }
        out.push_str("</ul>\n</body>\n</html>\n");
        out
    }
}
