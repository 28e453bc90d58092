//! Crash-safe replacement of a bundle directory.
//!
//! A save writes the new bundle into a temporary sibling, `.NAME.tmp-PID-N`, then swaps it
//! with the old one. On Linux the swap is one `renameat2(RENAME_EXCHANGE)`, so `NAME` holds
//! the old or the new bundle at every instant. Where the file system cannot exchange, the old
//! bundle is first renamed aside to `.NAME.tmp-PID-N-old`: a crash between that rename and the
//! next leaves no `NAME`, and the next save restores the aside copy, while loads read it in
//! the meantime ([`readable_dir`]).
//!
//! Saves to one path are serialized by an exclusive lock on `.NAME.lock` (threads and
//! processes alike). Only a lock holder creates temporary siblings, so whatever temporary
//! sibling exists while the lock is held was left by a killed save, and is removed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::{CARD_FILE, MANIFEST_FILE, WEIGHTS_FILE};
use crate::error::{Error, Result};

/// Files a bundle directory may hold: the two that loading reads, the model card a save
/// writes, and the bundle's own backbone directory (fine-tuned layers). A save replaces a directory only if it holds nothing else, so no file of the user's
/// is ever deleted with it (the card is tandem's: an edited card is replaced by the next save).
pub const BUNDLE_FILES: [&str; 4] = [MANIFEST_FILE, WEIGHTS_FILE, CARD_FILE, super::BACKBONE_DIR];

/// Where a save of `dir` puts its lock, temporary copies and the aside copy of the old bundle.
pub(crate) struct Siblings {
    pub(crate) dir: PathBuf,
    parent: PathBuf,
    name: String,
}

impl Siblings {
    pub(crate) fn of(dir: &Path) -> Result<Siblings> {
        let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
        let parent = dir
            .parent()
            .ok_or_else(|| Error::invalid(format!("{}: no parent directory", dir.display())))?
            .to_path_buf();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::invalid(format!("{}: bad bundle name", dir.display())))?
            .to_string();
        Ok(Siblings { dir, parent, name })
    }

    fn tmp_prefix(&self) -> String {
        format!(".{}.tmp-", self.name)
    }

    fn lock_path(&self) -> PathBuf {
        self.parent.join(format!(".{}.lock", self.name))
    }

    /// A fresh temporary sibling: process id plus a per-process counter.
    fn new_tmp(&self) -> PathBuf {
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.parent
            .join(format!("{}{}-{n}", self.tmp_prefix(), std::process::id()))
    }

    /// The temporary siblings on disk (stale ones, when the lock is held).
    fn temporaries(&self) -> Vec<PathBuf> {
        let prefix = self.tmp_prefix();
        let Ok(entries) = std::fs::read_dir(&self.parent) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .map(|e| e.path())
            .collect()
    }

    /// The newest aside copy of an old bundle (`…-old`) that is a whole bundle.
    fn aside_bundle(&self) -> Option<PathBuf> {
        self.temporaries()
            .into_iter()
            .filter(|p| p.to_str().is_some_and(|s| s.ends_with("-old")))
            .filter(|p| is_bundle_dir(p))
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    }
}

/// The directory to read `dir`'s bundle from: `dir` itself, or, when a save on a file system
/// without atomic exchange was killed between its two renames, the old bundle it had moved
/// aside (the next save puts it back).
pub(crate) fn readable_dir(dir: &Path) -> PathBuf {
    if dir.exists() {
        return dir.to_path_buf();
    }
    Siblings::of(dir)
        .ok()
        .and_then(|s| s.aside_bundle())
        .unwrap_or_else(|| dir.to_path_buf())
}

/// Whether `dir` holds a tandem bundle manifest (what a save may replace).
fn is_bundle_dir(dir: &Path) -> bool {
    let Ok(text) = crate::files::read_text(&dir.join(MANIFEST_FILE), crate::files::BUNDLE_MANIFEST)
    else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
        v.get("format")
            .and_then(|f| f.as_str())
            .is_some_and(|f| f.starts_with("tandem-bundle/"))
    })
}

/// Refuses to replace anything but a tandem bundle (or an empty directory), and a bundle that
/// holds files of someone else's.
pub(crate) fn check_replaceable(dir: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let refuse = |why: String| {
        Err(Error::invalid(format!(
            "{} {why}; refusing to replace it (choose another --out, or remove it yourself)",
            dir.display()
        )))
    };
    if !meta.is_dir() {
        return refuse("exists and is not a directory".into());
    }
    let entries: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !is_bundle_dir(dir) {
        return refuse("exists and is not a tandem bundle (no tandem manifest.json)".into());
    }
    if let Some(other) = entries.iter().find(|e| !BUNDLE_FILES.contains(&e.as_str())) {
        return refuse(format!("holds `{other}`, which is not part of a bundle"));
    }
    Ok(())
}

/// A step of a save at which a test can stop it as a crash would (nothing cleaned up).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The new bundle is written in its temporary directory.
    Written,
    /// Without exchange: the old bundle has been renamed aside.
    MovedAside,
    /// The new bundle is in place; the old one is not removed yet.
    Swapped,
}

#[cfg(test)]
thread_local! {
    /// Where this thread's next saves stop, and whether they may use the atomic exchange.
    pub(crate) static CRASH_AT: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };
    pub(crate) static NO_EXCHANGE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Ok, or the simulated crash a test asked for at `step`.
#[allow(unused_variables)]
fn crash_point(step: &'static str) -> Result<()> {
    #[cfg(test)]
    {
        let at = CRASH_AT.with(|c| c.get());
        if at.is_some_and(|s| format!("{s:?}") == step) {
            return Err(Error::new(crate::ErrorKind::Internal, CRASHED));
        }
    }
    Ok(())
}

/// The message of a simulated crash: the save returns at once, cleaning nothing up.
const CRASHED: &str = "simulated crash (test hook)";

/// Writes a bundle with `write` into a temporary sibling of `dir` and swaps it into place,
/// under the save lock. A failed save removes its temporary directory and leaves the existing
/// bundle as it was.
pub(crate) fn replace(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let s = Siblings::of(dir)?;
    std::fs::create_dir_all(&s.parent).map_err(|e| Error::io(&s.parent, e))?;
    let lock_path = s.lock_path();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    recover(&s)?;
    check_replaceable(&s.dir)?;
    let tmp = s.new_tmp();
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        write(&tmp)?;
        sync_dir(&tmp)?;
        crash_point("Written")?;
        swap_in(&tmp, &s.dir)?;
        sync_dir(&s.parent)
    })();
    match &result {
        Err(e) if e.message() == CRASHED => {}
        Err(_) => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(()) => {}
    }
    drop(lock);
    result
}

/// Under the lock: puts back an old bundle a killed save left aside, then removes every
/// temporary sibling (all of them stale: their saves are dead).
fn recover(s: &Siblings) -> Result<()> {
    if !s.dir.exists() {
        if let Some(aside) = s.aside_bundle() {
            std::fs::rename(&aside, &s.dir).map_err(|e| Error::io(&s.dir, e))?;
        }
    }
    for t in s.temporaries() {
        std::fs::remove_dir_all(&t).map_err(|e| Error::io(&t, e))?;
    }
    Ok(())
}

/// Moves the finished `tmp` to `dir`, replacing a bundle there; the old bundle is removed.
fn swap_in(tmp: &Path, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e));
    }
    if exchange(tmp, dir)? {
        // `tmp` now holds the old bundle.
        crash_point("Swapped")?;
        let _ = std::fs::remove_dir_all(tmp);
        return Ok(());
    }
    let aside = PathBuf::from(format!("{}-old", tmp.display()));
    std::fs::rename(dir, &aside).map_err(|e| Error::io(dir, e))?;
    crash_point("MovedAside")?;
    std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))?;
    crash_point("Swapped")?;
    let _ = std::fs::remove_dir_all(&aside);
    Ok(())
}

/// Atomically exchanges two directories; `false` where this platform or file system cannot.
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    #[cfg(test)]
    if NO_EXCHANGE.with(|c| c.get()) {
        return Ok(false);
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(true),
            // Old kernels and some file systems (e.g. some network ones) cannot exchange.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Ok(false),
            Err(e) => Err(Error::io(b, e.into())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Flushes a directory's entries (renames, new files) to disk, where the platform can.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{load, save, BackboneRef, BundleManifest, Weights, BUNDLE_FORMAT};
    use ndarray::{ArrayD, IxDyn};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir()
            .join(format!("tandem-save-{}", std::process::id()))
            .join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A bundle whose seed says which save wrote it.
    fn bundle(seed: u64) -> (BundleManifest, Weights) {
        let m = BundleManifest {
            format: BUNDLE_FORMAT.into(),
            created_by: "test".into(),
            backbone: BackboneRef {
                name: "b".into(),
                family_sha256: "0".repeat(64),
                variant: "fp32".into(),
                graph_sha256: "0".repeat(64),
                dim: 4,
            },
            features: None,
            tasks: vec![],
            architecture: crate::heads::Architecture::embedding_only(4, vec![1]),
            metrics: serde_json::json!({}),
            training: serde_json::json!({}),
            seed,
            weights_sha256: String::new(),
            weights_dtype: String::new(),
        };
        let mut w = Weights::new();
        w.insert("w".into(), ArrayD::from_elem(IxDyn(&[3]), seed as f32));
        (m, w)
    }

    fn save_seed(dir: &Path, seed: u64) -> Result<()> {
        let (m, w) = bundle(seed);
        save(dir, &m, &w, false)
    }

    fn loaded_seed(dir: &Path) -> u64 {
        let (m, w) = load(dir).unwrap();
        assert_eq!(
            w["w"][[0]],
            m.seed as f32,
            "manifest and weights from one save"
        );
        m.seed
    }

    fn temporaries(dir: &Path) -> Vec<PathBuf> {
        Siblings::of(dir).unwrap().temporaries()
    }

    #[test]
    fn the_model_card_is_written_and_swapped_with_the_bundle() {
        let root = tmp("card");
        let b = root.join("m");
        let card = || std::fs::read_to_string(b.join(CARD_FILE)).unwrap();
        save_seed(&b, 1).unwrap();
        assert!(card().contains("seed 1"), "{}", card());
        // The card is the bundle's own: an edited one does not block the next save, which
        // replaces it with the new bundle's card in the same swap.
        std::fs::write(b.join(CARD_FILE), "my notes").unwrap();
        save_seed(&b, 2).unwrap();
        assert!(card().contains("seed 2"), "{}", card());
        assert_eq!(loaded_seed(&b), 2);
        // Loading never reads it: a card that is not even a file leaves loading alone.
        std::fs::remove_file(b.join(CARD_FILE)).unwrap();
        std::fs::create_dir(b.join(CARD_FILE)).unwrap();
        assert_eq!(loaded_seed(&b), 2);
        let mut names: Vec<String> = std::fs::read_dir(&b)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["README.md", "manifest.json", "weights.safetensors"]);
    }

    #[test]
    fn a_directory_that_is_not_a_bundle_is_refused_and_left_untouched() {
        // Before: any directory with a file named manifest.json was replaced (data loss).
        let root = tmp("pwa");
        let pwa = root.join("w");
        std::fs::create_dir_all(pwa.join("src")).unwrap();
        std::fs::write(pwa.join("manifest.json"), r#"{"name":"My PWA"}"#).unwrap();
        std::fs::write(pwa.join("src/app.js"), "code").unwrap();
        let e = save_seed(&pwa, 1).unwrap_err();
        assert!(
            e.message().contains("not a tandem bundle"),
            "{}",
            e.message()
        );
        assert_eq!(
            std::fs::read_to_string(pwa.join("src/app.js")).unwrap(),
            "code"
        );
        // A bundle that holds a file of the user's is refused too.
        let b = root.join("b");
        save_seed(&b, 1).unwrap();
        std::fs::write(b.join("notes.txt"), "mine").unwrap();
        let e = save_seed(&b, 2).unwrap_err();
        assert!(e.message().contains("notes.txt"), "{}", e.message());
        assert_eq!(loaded_seed(&b), 1);
        // A plain file, likewise; an empty directory is replaced (there is nothing to lose).
        std::fs::write(root.join("f"), "x").unwrap();
        assert!(save_seed(&root.join("f"), 1).is_err());
        std::fs::create_dir(root.join("empty")).unwrap();
        save_seed(&root.join("empty"), 3).unwrap();
        assert_eq!(loaded_seed(&root.join("empty")), 3);
        assert!(temporaries(&b).is_empty());
    }

    #[test]
    fn a_crash_at_any_step_leaves_the_old_or_the_new_bundle() {
        for exchange in [true, false] {
            for step in [Step::Written, Step::MovedAside, Step::Swapped] {
                let dir = tmp(&format!("crash-{exchange}-{step:?}")).join("m");
                save_seed(&dir, 1).unwrap();
                NO_EXCHANGE.with(|c| c.set(!exchange));
                CRASH_AT.with(|c| c.set(Some(step)));
                let crashed = save_seed(&dir, 2);
                CRASH_AT.with(|c| c.set(None));
                // The exchange path has no MovedAside step: that save completes.
                let reached = !(exchange && step == Step::MovedAside);
                assert_eq!(crashed.is_err(), reached, "{exchange} {step:?}");
                // Readers see a whole bundle, old or new, right after the crash.
                let seen = loaded_seed(&dir);
                let expect = match (step, reached) {
                    (Step::Written, _) | (Step::MovedAside, true) => 1,
                    _ => 2,
                };
                assert_eq!(seen, expect, "exchange {exchange}, crash at {step:?}");
                if step == Step::MovedAside && !exchange {
                    // The window the exchange closes: no `dir`, the old bundle aside.
                    assert!(!dir.exists());
                }
                // The next save recovers, cleans up what the crash left and succeeds.
                save_seed(&dir, 3).unwrap();
                NO_EXCHANGE.with(|c| c.set(false));
                assert_eq!(loaded_seed(&dir), 3);
                assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
            }
        }
    }

    #[test]
    fn stale_temporaries_of_killed_saves_are_removed() {
        let dir = tmp("stale").join("m");
        save_seed(&dir, 1).unwrap();
        let parent = dir.parent().unwrap();
        for t in [".m.tmp-999999-0", ".m.tmp-999999-1-old", ".m.tmp-1-7"] {
            std::fs::create_dir(parent.join(t)).unwrap();
            std::fs::write(parent.join(t).join("weights.safetensors"), "x").unwrap();
        }
        assert_eq!(temporaries(&dir).len(), 3);
        save_seed(&dir, 2).unwrap();
        assert!(temporaries(&dir).is_empty());
        assert_eq!(loaded_seed(&dir), 2);
        // Another bundle's temporaries in the same parent are not this save's business.
        std::fs::create_dir(parent.join(".other.tmp-1-0")).unwrap();
        save_seed(&dir, 3).unwrap();
        assert!(parent.join(".other.tmp-1-0").exists());
    }

    #[test]
    fn concurrent_saves_to_one_path_all_succeed() {
        // Before: 12 of 400 failed ("exists and is not a tandem bundle", "Directory not empty").
        let dir = tmp("concurrent").join("m");
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let dir = &dir;
                s.spawn(move || {
                    for i in 0..200 {
                        save_seed(dir, t * 1000 + i).unwrap();
                    }
                });
            }
            // A reader meanwhile always finds a whole bundle (once the first save is in).
            s.spawn(|| {
                let mut reads = 0;
                while reads < 200 {
                    if dir.exists() {
                        loaded_seed(&dir);
                        reads += 1;
                    }
                }
            });
        });
        assert!([199, 1199].contains(&loaded_seed(&dir)));
        assert!(temporaries(&dir).is_empty());
    }
}
