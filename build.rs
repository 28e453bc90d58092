//! Records the git commit tandem is built from, for `tandem --version` (`unknown` outside a
//! git checkout, e.g. from a source tarball), and on Linux gives the shared library its SONAME,
//! `libtandem.so.MAJOR` (the Makefile installs it as a versioned chain:
//! libtandem.so -> libtandem.so.0 -> libtandem.so.0.1.0); and generates the ONNX protobuf
//! messages from the vendored onnx/proto/onnx.proto3.

use std::process::Command;

/// `git ARGS` in the package directory, trimmed, if it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Puts `libtandem.so.MAJOR -> libtandem.so` beside the library cargo writes (the profile
/// directory, e.g. target/release). A program linked against cargo's libtandem.so records the
/// SONAME and looks for that name at run time, so every in-tree link (`-Ltarget/release
/// -ltandem` with an rpath: the C and C++ tests, the Go binding's default build) needs it; cargo
/// itself writes only libtandem.so. Best effort: a failure only costs those in-tree links.
fn soname_link(soname: &str) {
    #[cfg(unix)]
    {
        use std::path::Path;
        let Some(out) = std::env::var_os("OUT_DIR") else {
            return;
        };
        // OUT_DIR is <profile dir>/build/tandem-<hash>/out.
        let Some(profile) = Path::new(&out).ancestors().nth(3) else {
            return;
        };
        let link = profile.join(soname);
        if std::fs::read_link(&link).is_ok_and(|t| t == Path::new("libtandem.so")) {
            return;
        }
        if link
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            let _ = std::fs::remove_file(&link);
        }
        if let Err(e) = std::os::unix::fs::symlink("libtandem.so", &link) {
            println!("cargo:warning=could not create {}: {e}", link.display());
        }
    }
    #[cfg(not(unix))]
    let _ = soname;
}

/// Generates the ONNX protobuf messages (`onnx.rs` in OUT_DIR) from the vendored
/// `onnx/proto/onnx.proto3`, parsed by protox (pure Rust, so no `protoc` binary is needed).
fn onnx_messages() {
    let proto = "onnx/proto/onnx.proto3";
    println!("cargo:rerun-if-changed={proto}");
    let fds =
        protox::compile([proto], ["onnx/proto"]).unwrap_or_else(|e| panic!("parsing {proto}: {e}"));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating Rust from {proto}: {e}"));
}

fn main() {
    onnx_messages();
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TANDEM_GIT_COMMIT={commit}");
    // Rerun when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit), and
    // packed refs. Worktrees keep these outside `.git/`, so ask git where they are.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for w in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &w]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        let soname = format!("libtandem.so.{major}");
        // cdylib-link-arg reaches only the cdylib, not the CLI, the tests or the staticlib.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
        soname_link(&soname);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
