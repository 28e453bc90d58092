//! What the training benches share.

/// True when run by `cargo bench` (`--bench` given); otherwise prints how to run `name` and
/// returns false, so `cargo test --all-targets` only smoke-compiles the bench. When true it
/// pins rayon's global pool to 2 threads, like the PyTorch side, whatever the machine has.
pub fn start(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} bench: run with `cargo bench --bench {name}`");
        return false;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .expect("the first use of rayon's global pool");
    true
}

/// Runs a PyTorch comparison script from `benches/` with the tooling venv's Python and `args`,
/// and returns the JSON it prints.
// Each bench compiles this module on its own, and not every bench has a PyTorch side.
#[allow(dead_code)]
pub fn run_torch(script: &str, args: &[&str]) -> serde_json::Value {
    let py = tandem::home::cache_dir().join("venv/bin/python");
    let res = std::process::Command::new(&py)
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("benches")
                .join(script),
        )
        .args(args)
        .output()
        .expect("run scripts/setup.sh (PyTorch lives in the tooling venv)");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    serde_json::from_slice(&res.stdout).expect("the script prints JSON")
}
