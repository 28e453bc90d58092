//! The documents users read stay inside the repository and short where they promise to: every
//! relative link in the README, `docs/` and the bindings' READMEs names a file or folder of the
//! repository (none reaches outside it), and the README stays a first-screen read.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files users read.
fn documents() -> Vec<PathBuf> {
    let mut out = vec![
        root().join("README.md"),
        root().join("bindings/cpp/README.md"),
        root().join("bindings/go/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// `text` without fenced code blocks and inline code spans, where `](` is code, not a link.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            // Drop `inline code`: every other backtick-delimited piece.
            for (i, piece) in line.split('`').enumerate() {
                if i % 2 == 0 {
                    out.push_str(piece);
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The targets of `[text](target)` links in `text`'s prose.
fn link_targets(text: &str) -> Vec<String> {
    let text = prose(text);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn relative_links_name_files_of_the_repository() {
    let repo = root().canonicalize().unwrap();
    let mut bad = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for target in link_targets(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with('#')
            {
                continue;
            }
            let path = target.split('#').next().unwrap();
            let full = doc.parent().unwrap().join(path);
            match full.canonicalize() {
                Ok(p) if p.starts_with(&repo) => {}
                Ok(p) => bad.push(format!(
                    "{}: {target} is outside the repository ({})",
                    doc.display(),
                    p.display()
                )),
                Err(_) => bad.push(format!("{}: {target} does not exist", doc.display())),
            }
        }
        assert!(
            !text.contains("../shared"),
            "{} refers to ../shared, which users do not have",
            doc.display()
        );
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_readme_is_short() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; measurements belong in docs/"
    );
}
