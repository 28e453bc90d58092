//! Reading rows from JSONL (one object per line) or CSV (header row), chosen by file extension.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One input row: its fields as JSON values (CSV fields are strings) and its 1-based line.
#[derive(Debug, Clone)]
pub struct Row {
    /// Field values by name.
    pub fields: Map<String, Value>,
    /// Line (JSONL) or record (CSV) number, for error messages.
    pub line: usize,
}

impl Row {
    /// The field as a string: strings as they are, numbers and booleans in JSON form.
    pub fn text(&self, field: &str) -> Option<String> {
        match self.fields.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Reads `path` as CSV when its name ends in `.csv`, else as JSONL. Blank lines are skipped;
/// anything else that does not parse is an error naming the line.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    // Capped and type-checked; a byte-order mark is dropped (for JSONL as for CSV).
    let text = crate::files::read_text(path, crate::files::DATA)?;
    parse_rows(&text, is_csv, &path.display().to_string())
}

/// Parses the text of a data file: CSV with a header row when `csv` is set, else JSONL (one
/// JSON object per line; blank lines are skipped). `source` names the input in error messages.
/// Untrusted input: anything that does not parse (a line that is not a JSON object, a CSV
/// record with the wrong number of fields) is a [`Format`](crate::ErrorKind::Format) error
/// naming the line or record.
pub fn parse_rows(text: &str, csv: bool, source: &str) -> Result<Vec<Row>> {
    if csv {
        parse_csv(text, source)
    } else {
        parse_jsonl(text, source)
    }
}

fn parse_jsonl(text: &str, source: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::format(format!("{source}:{}: invalid JSON: {e}", i + 1)))?;
        match v {
            Value::Object(fields) => rows.push(Row {
                fields,
                line: i + 1,
            }),
            _ => {
                return Err(Error::format(format!(
                    "{source}:{}: expected a JSON object",
                    i + 1
                )))
            }
        }
    }
    Ok(rows)
}

fn parse_csv(text: &str, source: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::format(format!("{source}: bad CSV header: {e}")))?
        .clone();
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| Error::format(format!("{source}: record {}: {e}", i + 1)))?;
        let fields = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
            .collect();
        rows.push(Row {
            fields,
            line: i + 2,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn jsonl_skips_blank_lines_and_names_bad_ones() {
        let rows = parse_jsonl("{\"a\":1}\n\n{\"a\":\"x\"}\n", "f").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[0].text("a").as_deref(), Some("1"));
        let e = parse_jsonl("{\"a\":1}\n[1]\n", "f").unwrap_err();
        assert!(e.message().contains("f:2"), "{}", e.message());
        let e = parse_jsonl("{oops\n", "f").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format);
    }

    #[test]
    fn a_byte_order_mark_is_dropped_from_jsonl_and_csv_and_devices_are_refused() {
        // Before: a BOM at the start of a JSONL file was an "invalid JSON" error.
        let dir = std::env::temp_dir().join(format!("tandem-read-bom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("a.jsonl", "\u{feff}{\"text\":\"hi\",\"label\":\"x\"}\n"),
            ("a.csv", "\u{feff}text,label\nhi,x\n"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
            let rows = read_rows(&dir.join(name)).unwrap();
            assert_eq!(rows.len(), 1, "{name}");
            assert_eq!(rows[0].text("text").as_deref(), Some("hi"), "{name}");
        }
        // Before: /dev/zero as --data read until memory ran out.
        let e = read_rows(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn csv_with_quotes_and_ragged_rows() {
        let rows = parse_csv("text,label\n\"hi, there\",spam\nyo,ham\n", "c").unwrap();
        assert_eq!(rows[0].text("text").as_deref(), Some("hi, there"));
        assert_eq!(rows[1].text("label").as_deref(), Some("ham"));
        assert!(parse_csv("a,b\n1,2,3\n", "c").is_err());
    }
}
