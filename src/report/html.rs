//! HTML building blocks: escaping, number formatting and tables.

/// `s` with the five HTML-significant characters escaped, safe in text and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for a table cell: integers as is, others to 4 decimals, non-finite as "–".
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// A table with a header row; every cell is escaped.
pub fn table(class: &str, head: &[String], rows: &[Vec<String>]) -> String {
    table_with(class, head, rows, |_| None)
}

/// [`table`], with a class on the rows `row_class` names (by row index); an empty `class`
/// leaves the table's class attribute out.
pub fn table_with(
    class: &str,
    head: &[String],
    rows: &[Vec<String>],
    row_class: impl Fn(usize) -> Option<&'static str>,
) -> String {
    let mut s = if class.is_empty() {
        "<table><thead><tr>".to_string()
    } else {
        format!("<table class=\"{}\"><thead><tr>", escape(class))
    };
    for h in head {
        s.push_str(&format!("<th>{}</th>", escape(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for (i, r) in rows.iter().enumerate() {
        match row_class(i) {
            Some(c) => s.push_str(&format!("<tr class=\"{}\">", escape(c))),
            None => s.push_str("<tr>"),
        }
        for c in r {
            s.push_str(&format!("<td>{}</td>", escape(c)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>\n");
    s
}

/// A two-column key/value table; every cell is escaped.
pub fn key_values(class: &str, rows: &[(String, String)]) -> String {
    let mut s = format!("<table class=\"{}\"><tbody>", escape(class));
    for (k, v) in rows {
        s.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    s.push_str("</tbody></table>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn tables_escape_every_cell() {
        let t = table("c", &["<h>".into()], &[vec!["<td>".into()]]);
        assert!(t.contains("&lt;h&gt;") && t.contains("&lt;td&gt;"));
        let kv = key_values("c", &[("a<".into(), "b>".into())]);
        assert!(kv.contains("a&lt;") && kv.contains("b&gt;"));
    }

    #[test]
    fn numbers() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(f64::NAN), "–");
    }
}
