//! Reading what the commands take: text lines or JSONL records (embed, predict), and
//! labelled rows with their tasks (train, compare, eval).

use std::io::BufRead;
use std::path::Path;

use tandem::data::{read_rows, Row, Targets, TaskKind, TaskSpec};
use tandem::{Error, ErrorKind, Result};

/// One input record: its text and, for JSONL, its `id` and all its fields.
pub(crate) struct Record {
    /// The text.
    pub text: String,
    /// JSONL's `id` field, echoed in the output.
    pub id: Option<serde_json::Value>,
    /// Every JSONL field (for `--group-field`).
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Records from a file, or from standard input for `None` or `-`; JSONL texts are in the
/// `text_field` field.
pub(crate) fn read_input(input: Option<&Path>, text_field: &str) -> Result<Vec<Record>> {
    match input {
        None => read_records(std::io::stdin().lock(), "<stdin>", text_field),
        Some(p) if p == Path::new("-") => {
            read_records(std::io::stdin().lock(), "<stdin>", text_field)
        }
        Some(p) => {
            // The data file cap and type check (a device or a directory is refused).
            let (f, _) = tandem::files::open(p, tandem::files::DATA)?;
            let capped = std::io::Read::take(f, tandem::files::DATA.bytes);
            read_records(
                std::io::BufReader::new(capped),
                &p.display().to_string(),
                text_field,
            )
        }
    }
}

/// Reads text lines, or JSONL objects with a string `text_field` field when the first non-blank
/// line is a JSON object. A later line that is not valid JSONL is an error naming its line
/// number.
pub(crate) fn read_records(
    reader: impl BufRead,
    source: &str,
    text_field: &str,
) -> Result<Vec<Record>> {
    let mut lines = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::InvalidData {
                ErrorKind::InvalidUtf8
            } else {
                ErrorKind::Io
            };
            Error::new(kind, format!("{source}:{}: {e}", n + 1))
        })?;
        lines.push(line);
    }
    let jsonl = lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with('{'));
    if !jsonl {
        return Ok(lines
            .into_iter()
            .map(|text| Record {
                text,
                id: None,
                fields: None,
            })
            .collect());
    }
    let mut out = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| Error::format(format!("{source}:{}: {why}", n + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
        let text = v
            .get(text_field)
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad(&format!("object has no string `{text_field}` field")))?;
        out.push(Record {
            text: text.to_string(),
            id: v.get("id").cloned(),
            fields: v.as_object().cloned(),
        });
    }
    Ok(out)
}

pub(crate) fn texts_of(rows: &[Row], field: &str) -> Result<Vec<String>> {
    rows.iter()
        .map(|r| match r.fields.get(field) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => Err(Error::invalid(format!(
                "line {}: no string `{field}` field",
                r.line
            ))),
        })
        .collect()
}

/// Each row's stratum for `--stratify-by`: the values of `fields`, joined (a row without one
/// of them is an error naming its line, so that no row silently falls into a stratum of its
/// own).
pub(crate) fn field_strata(rows: &[Row], fields: &[String]) -> Result<Vec<String>> {
    rows.iter()
        .map(|r| {
            let values = fields
                .iter()
                .map(|f| {
                    r.text(f).ok_or_else(|| {
                        Error::invalid(format!(
                            "line {}: no `{f}` field to stratify the validation split by",
                            r.line
                        ))
                    })
                })
                .collect::<Result<Vec<String>>>()?;
            Ok(values.join("\u{1f}"))
        })
        .collect()
}

/// Labelled data as the training commands read it: the rows, their texts, and one task spec
/// and target set per label field.
pub(crate) struct Labelled {
    /// The rows, in file order.
    pub rows: Vec<Row>,
    /// Each row's text.
    pub texts: Vec<String>,
    /// One task per label field.
    pub specs: Vec<TaskSpec>,
    /// Each task's targets.
    pub targets: Vec<Targets>,
}

/// What the training commands are told about their labels.
pub(crate) struct LabelArgs<'a> {
    /// The data file.
    pub data: &'a Path,
    /// Field holding the text.
    pub text_field: &'a str,
    /// One field per task.
    pub label_fields: &'a [String],
    /// One kind per task.
    pub tasks: &'a [TaskKind],
    /// Positive label of binary tasks.
    pub positive: Option<&'a str>,
}

impl LabelArgs<'_> {
    /// Reads the data and infers each task's labels from it.
    pub fn read(&self) -> Result<Labelled> {
        if self.label_fields.len() != self.tasks.len() {
            return Err(Error::invalid(format!(
                "{} --label-field but {} --task: give one task kind per label field",
                self.label_fields.len(),
                self.tasks.len()
            )));
        }
        let rows = read_rows(self.data)?;
        if rows.is_empty() {
            return Err(Error::invalid(format!("{}: no rows", self.data.display())));
        }
        let texts = texts_of(&rows, self.text_field)?;
        let mut specs = Vec::new();
        let mut targets = Vec::new();
        for (field, kind) in self.label_fields.iter().zip(self.tasks) {
            let (spec, t) = TaskSpec::infer(field, *kind, field, &rows, self.positive)?;
            specs.push(spec);
            targets.push(t);
        }
        Ok(Labelled {
            rows,
            texts,
            specs,
            targets,
        })
    }

    /// Validation data for tasks already inferred: its rows, texts and targets.
    pub fn read_valid(&self, path: &Path, specs: &[TaskSpec]) -> Result<Labelled> {
        let rows = read_rows(path)?;
        let texts = texts_of(&rows, self.text_field)?;
        let targets = specs
            .iter()
            .zip(self.label_fields)
            .map(|(s, f)| s.parse(f, &rows))
            .collect::<Result<Vec<_>>>()?;
        Ok(Labelled {
            rows,
            texts,
            specs: specs.to_vec(),
            targets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_lines_including_empty_ones() {
        let r = read_records("a\n\nb c\n".as_bytes(), "t", "text").unwrap();
        let texts: Vec<_> = r.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, vec!["a", "", "b c"]);
    }

    #[test]
    fn reads_jsonl_with_ids_and_reports_bad_lines() {
        let r = read_records(
            "{\"text\":\"x\",\"id\":7}\n\n{\"text\":\"y\"}\n".as_bytes(),
            "t",
            "text",
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].id, Some(serde_json::json!(7)));
        assert_eq!(r[1].text, "y");
        let e = read_records(
            "{\"text\":\"x\"}\n{\"nope\":1}\n".as_bytes(),
            "f.jsonl",
            "text",
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), ErrorKind::Format);
        assert!(e.message().contains("f.jsonl:2"), "{}", e.message());
    }

    #[test]
    fn reads_texts_from_another_field() {
        let r = read_records("{\"body\":\"x\",\"id\":1}\n".as_bytes(), "t", "body").unwrap();
        assert_eq!(r[0].text, "x");
        let e = read_records("{\"text\":\"x\"}\n".as_bytes(), "t", "body")
            .err()
            .unwrap();
        assert!(e.message().contains("`body`"), "{}", e.message());
    }

    #[test]
    fn invalid_utf8_is_reported_not_panicked() {
        let e = read_records(&b"ok\n\xff\xfe\n"[..], "bin", "text")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
    }
}
