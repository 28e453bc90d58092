//! The committed C header is exactly what cbindgen generates from src/ffi, and its version
//! macros are Cargo.toml's version.
//!
//! After changing the C ABI: `TANDEM_BLESS_HEADER=1 cargo test --test header`.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo_version() -> (String, String, String) {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    let v = manifest["package"]["version"].as_str().unwrap().to_string();
    let mut parts = v.split(['.', '-']).map(str::to_string);
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

fn generate() -> String {
    let mut config = cbindgen::Config::from_file(root().join("cbindgen.toml")).unwrap();
    let (major, minor, patch) = cargo_version();
    config.after_includes = Some(format!(
        "\n#define TANDEM_VERSION_MAJOR {major}\n#define TANDEM_VERSION_MINOR {minor}\n\
         #define TANDEM_VERSION_PATCH {patch}\n#define TANDEM_VERSION_STRING \"{major}.{minor}.{patch}\"\n"
    ));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_src(root().join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn committed_header_is_what_cbindgen_generates() {
    let path = root().join("include/tandem.h");
    let fresh = generate();
    if std::env::var_os("TANDEM_BLESS_HEADER").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/tandem.h is stale: regenerate with `TANDEM_BLESS_HEADER=1 cargo test --test header` and commit it"
    );
}

#[test]
fn version_macros_match_cargo_toml() {
    let header = std::fs::read_to_string(root().join("include/tandem.h")).unwrap();
    let (major, minor, patch) = cargo_version();
    for (name, want) in [("MAJOR", major), ("MINOR", minor), ("PATCH", patch)] {
        let line = format!("#define TANDEM_VERSION_{name} {want}\n");
        assert!(header.contains(&line), "header lacks `{}`", line.trim());
    }
    assert_eq!(env!("CARGO_PKG_VERSION"), tandem::VERSION);
}

#[test]
fn every_export_is_documented_with_its_contract() {
    let header = std::fs::read_to_string(root().join("include/tandem.h")).unwrap();
    let lines: Vec<&str> = header.lines().collect();
    let mut functions = 0;
    for (i, line) in lines.iter().enumerate() {
        // A prototype starts at column 0 and contains `tandem_...(`.
        let is_proto = !line.starts_with([' ', '/', '#', '}', '{'])
            && line.contains(" tandem_")
            && line.contains('(')
            && !line.starts_with("typedef");
        if !is_proto {
            continue;
        }
        functions += 1;
        // The doc comment is the `/** ... */` block right above the prototype.
        assert_eq!(lines[i - 1].trim(), "*/", "undocumented: {line}");
        let start = (0..i).rev().find(|&j| lines[j].trim() == "/**").unwrap();
        let doc = lines[start..i].join("\n");
        for needed in ["Ownership:", "Thread safety:"] {
            assert!(
                doc.contains(needed),
                "`{line}`: its doc comment lacks `{needed}`"
            );
        }
    }
    assert!(
        functions >= 40,
        "only {functions} functions found in the header"
    );
}

#[test]
fn the_c_tests_call_every_exported_function() {
    let header = std::fs::read_to_string(root().join("include/tandem.h")).unwrap();
    let mut tests = String::new();
    for name in ["test_api.c", "test_concurrency.c"] {
        tests += &std::fs::read_to_string(root().join("tests/c").join(name)).unwrap();
    }
    let mut missing = Vec::new();
    let prototypes = header
        .lines()
        .filter(|l| !l.starts_with([' ', '/', '#', '*']) && !l.starts_with("typedef"));
    for line in prototypes {
        if let Some(start) = line.find("tandem_") {
            let rest = &line[start..];
            if let Some(end) = rest.find('(') {
                let name = &rest[..end];
                if !name.contains(' ') && !tests.contains(&format!("{name}(")) {
                    missing.push(name.to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "not called by tests/c: {missing:?}");
}
