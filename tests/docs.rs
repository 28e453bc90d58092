//! The documentation stays in step with the code: the guide quotes the C, C++ and Go examples
//! that `make test-c`, `bindings/cpp/run_test.sh` and `scripts/go_test.sh` build and run,
//! documents every CLI command, the bundle page names every manifest field, and
//! the README links the docs. (docs/config.toml and docs/features.md have their own sync tests
//! next to the code they document.)

use std::path::Path;
use std::process::Command;

use tandem::bundle::{BackboneRef, BundleManifest, FeatureSpecRef};
use tandem::heads::Architecture;
use tandem::train::TrainConfig;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Asserts that docs/guide.md quotes the file `rel` exactly, as a fenced block tagged `lang`.
fn assert_guide_quotes(rel: &str, lang: &str) {
    let guide = read("docs/guide.md");
    let source = read(rel);
    assert!(
        guide.contains(&format!("```{lang}\n{source}```")),
        "docs/guide.md must quote {rel} exactly in a ```{lang} block (update the guide)"
    );
}

#[test]
fn guide_quotes_the_c_example_verbatim() {
    assert_guide_quotes("examples/c/hello.c", "c");
}

#[test]
fn guide_quotes_the_cpp_example_verbatim() {
    assert_guide_quotes("examples/cpp/hello.cpp", "cpp");
}

#[test]
fn guide_quotes_the_go_example_verbatim() {
    assert_guide_quotes("examples/go/hello/main.go", "go");
}

#[test]
fn guide_and_readme_document_every_cli_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    // clap lists subcommands under "Commands:" as "  name  about".
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    for c in [
        "train", "eval", "predict", "embed", "doctor", "compare", "inspect", "features",
    ] {
        assert!(commands.contains(&c), "`tandem --help` lacks {c}: {help}");
    }
    let guide = read("docs/guide.md");
    let readme = read("README.md");
    for c in &commands {
        assert!(
            guide.contains(&format!("### `tandem {c}`")),
            "docs/guide.md has no section for `tandem {c}`"
        );
        assert!(
            readme.contains(&format!("tandem {c}")),
            "README.md does not mention `tandem {c}`"
        );
    }
}

#[test]
fn readme_links_the_docs() {
    let readme = read("README.md");
    for doc in [
        "docs/guide.md",
        "docs/config.toml",
        "docs/features.md",
        "docs/bundle.md",
        "docs/results.md",
    ] {
        assert!(
            readme.contains(&format!("({doc})")),
            "README.md does not link {doc}"
        );
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc).is_file());
    }
}

/// Every key of a JSON object (not nested).
fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn bundle_doc_names_every_manifest_field() {
    let doc = read("docs/bundle.md");
    // Sequence heads, so that the optional `sequence` field is checked too.
    let mut config = TrainConfig::default();
    config.head.kind = tandem::train::config::HeadKind::Sequence;
    let arch = Architecture::from_config(&config, 384, 67, vec![6], vec![(0.0, 1.0)]);
    let manifest = BundleManifest {
        format: tandem::bundle::BUNDLE_FORMAT.into(),
        created_by: String::new(),
        backbone: BackboneRef {
            name: String::new(),
            family_sha256: String::new(),
            variant: String::new(),
            graph_sha256: String::new(),
            dim: 384,
        },
        features: Some(FeatureSpecRef {
            version: tandem::metadata::FEATURE_SET,
            names: vec![],
            selected: vec![],
            mean: vec![],
            std: vec![],
        }),
        tasks: vec![],
        architecture: arch.clone(),
        metrics: serde_json::json!({}),
        training: serde_json::to_value(&config).unwrap(),
        seed: 0,
        weights_sha256: String::new(),
        weights_dtype: String::new(),
    };
    let m = serde_json::to_value(&manifest).unwrap();
    let task = serde_json::to_value(tandem::bundle::TaskEntry {
        spec: tandem::data::TaskSpec {
            name: "t".into(),
            kind: tandem::data::TaskKind::Binary,
            labels: vec![],
        },
        thresholds: vec![],
    })
    .unwrap();
    for (what, v) in [
        ("manifest", &m),
        ("backbone", &m["backbone"]),
        ("features", &m["features"]),
        ("architecture", &m["architecture"]),
        ("tasks[]", &task),
    ] {
        for k in keys(v) {
            assert!(
                doc.contains(&format!("| `{k}` |")),
                "docs/bundle.md does not document {what} field `{k}`"
            );
        }
    }
    assert!(doc.contains(tandem::bundle::BUNDLE_FORMAT));
}

/// The guide's `tandem features` sample is real output: its rows are the first rows the command
/// prints for that text, and the row count it states is the count printed.
#[test]
fn guide_features_sample_is_real_output() {
    let guide = read("docs/guide.md");
    let prompt = "$ tandem features \"Hello, world! How are you?\"\n";
    let start = guide
        .find(prompt)
        .expect("the guide shows a features sample")
        + prompt.len();
    let block = &guide[start..start + guide[start..].find("```").unwrap()];
    let (shown, rest) = block
        .split_once("...")
        .expect("the sample ends with `...   (N rows in all)`");
    let total: usize = rest
        .trim()
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the sample states the row count");
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["features", "Hello, world! How are you?"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.starts_with(shown),
        "docs/guide.md's features sample differs from the output:\n{printed}"
    );
    assert_eq!(printed.lines().count() - 1, total, "rows after the header");
}
