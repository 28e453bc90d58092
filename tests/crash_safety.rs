//! Bundle saves killed with SIGKILL at random moments: after every kill, the bundle directory
//! loads whole (the old or the new bundle, its weights matching its manifest), and the next save
//! removes whatever temporary directories the killed ones left.
//!
//! The binary plays both parts (no libtest harness): run plainly, it is the parent, which starts
//! itself again with `TANDEM_CRASH_CHILD=DIR` as a child that saves to DIR in a loop, and kills
//! it. `TANDEM_CRASH_KILLS` sets the number of kills (default 250).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use tandem::bundle::{self, BackboneRef, BundleManifest, Weights, BUNDLE_FORMAT};

/// A bundle whose seed says which save wrote it; ~200 KB of weights, so a save takes long enough
/// for kills to land in every step of it.
fn bundle(seed: u64) -> (BundleManifest, Weights) {
    let m = BundleManifest {
        format: BUNDLE_FORMAT.into(),
        created_by: "crash_safety".into(),
        backbone: BackboneRef {
            name: "none".into(),
            family_sha256: "0".repeat(64),
            variant: "fp32".into(),
            graph_sha256: "0".repeat(64),
            dim: 4,
        },
        features: None,
        tasks: vec![],
        architecture: tandem::heads::Architecture::embedding_only(4, vec![1]),
        metrics: serde_json::json!({}),
        training: serde_json::json!({}),
        seed,
        weights_sha256: String::new(),
        weights_dtype: String::new(),
    };
    let mut w = Weights::new();
    w.insert(
        "w".into(),
        ArrayD::from_shape_fn(IxDyn(&[50_000]), |i| (seed as f32) + i[0] as f32 * 1e-3),
    );
    (m, w)
}

fn child(dir: &Path) -> ! {
    let mut seed = std::process::id() as u64 * 1_000_000;
    loop {
        let (m, w) = bundle(seed);
        bundle::save(dir, &m, &w, false).expect("save");
        seed += 1;
    }
}

/// The bundle in `dir` loads, and its weights are the ones its manifest's seed wrote.
fn check_whole(dir: &Path) -> u64 {
    let (m, w) = bundle::load(dir).unwrap_or_else(|e| panic!("bundle does not load: {e}"));
    assert_eq!(w["w"][[0]], m.seed as f32, "weights of another save");
    m.seed
}

fn temporaries(parent: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".m.tmp-"))
        .map(|e| e.path())
        .collect()
}

fn main() {
    if let Some(dir) = std::env::var_os("TANDEM_CRASH_CHILD") {
        child(Path::new(&dir));
    }
    let kills: usize = std::env::var("TANDEM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    let parent = std::env::temp_dir().join(format!("tandem-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    let dir = parent.join("m");
    let (m, w) = bundle(0);
    bundle::save(&dir, &m, &w, false).unwrap();
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .env("TANDEM_CRASH_CHILD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    // The kill window scales with how long a child takes to land its first save here and now
    // (start-up included): on a loaded machine a fixed window would kill every child before
    // any save lands, and measure nothing.
    let window_us = {
        let before = check_whole(&dir);
        let t0 = Instant::now();
        let mut c = spawn();
        while check_whole(&dir) == before && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let first = t0.elapsed();
        c.kill().unwrap();
        c.wait().unwrap();
        (2 * first.as_micros() as u64).max(40_000)
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let started = Instant::now();
    let (mut changed, mut most_left) = (0, 0);
    let mut last = 0;
    for _ in 0..kills {
        let mut c = spawn();
        // Random moments: most kills land mid-save (a save takes a few ms here).
        std::thread::sleep(Duration::from_micros(rng.random_range(0..window_us)));
        c.kill().unwrap(); // SIGKILL
        let status = c.wait().unwrap();
        assert!(
            status.code().is_none(),
            "the child exited by itself: {status}"
        );
        let seen = check_whole(&dir);
        if seen != last {
            changed += 1;
            last = seen;
        }
        most_left = most_left.max(temporaries(&parent).len());
    }
    // The next save removes what the killed ones left, and lands.
    let (m, w) = bundle(1);
    bundle::save(&dir, &m, &w, false).unwrap();
    assert_eq!(check_whole(&dir), 1);
    assert!(
        temporaries(&parent).is_empty(),
        "{:?}",
        temporaries(&parent)
    );
    // Some saves must have landed between kills, or this measured nothing.
    assert!(
        changed > kills / 10,
        "only {changed} of {kills} runs saved anything"
    );
    println!(
        "crash_safety: {kills} kills in {:.1} s: the bundle loaded whole after every one; {changed} \
         runs landed a new bundle; at most {most_left} temporary directories left behind, all \
         removed by the next save",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&parent);
}
