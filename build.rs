//! Records the git commit tandem is built from, for `tandem --version` (`unknown` outside a
//! git checkout, e.g. from a source tarball).

use std::process::Command;

/// `git ARGS` in the package directory, trimmed, if it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
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
    println!("cargo:rerun-if-changed=build.rs");
}
