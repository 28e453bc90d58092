//! Checkpoints of a training run: bundles of the best epochs so far and of every N-th epoch,
//! written while the model's last stage trains, so that a long run leaves loadable models
//! behind and earlier epochs can be compared after it. Each checkpoint is a whole bundle
//! (thresholds tuned on the validation data at that epoch), saved atomically; an index,
//! `checkpoints.json`, lists the kept ones and is rewritten atomically after every change.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run::Trained;
use super::stage::EpochRecord;
use crate::error::{Error, Result};
use crate::nn::Mode;

/// The index file in a checkpoint directory.
pub const INDEX_FILE: &str = "checkpoints.json";

/// Which epochs to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPolicy {
    /// Where the checkpoints go: a new or empty directory.
    pub dir: PathBuf,
    /// Keep the bundles of the K best epochs by the stage's monitored number (0: none).
    pub keep_top: usize,
    /// Also keep every N-th epoch's bundle (epochs N, 2N, ... counted from 1; 0: none).
    pub every: usize,
}

/// One kept checkpoint, as the index lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The bundle's directory name inside the checkpoint directory.
    pub bundle: String,
    /// Stage whose epoch it is.
    pub stage: String,
    /// 0-based epoch.
    pub epoch: usize,
    /// The monitored number at that epoch.
    pub value: f32,
    /// The validation loss at that epoch.
    pub valid_loss: f32,
    /// Kept as one of the best `keep_top` epochs.
    pub top: bool,
    /// Kept as a periodic checkpoint.
    pub periodic: bool,
}

/// The index file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointIndex {
    /// What ranks the epochs, e.g. `macro_f1 of topic (max)`.
    pub monitor: String,
    /// The best kept checkpoint's bundle name, if any is kept for being among the best.
    pub best: Option<String>,
    /// Every kept checkpoint, by epoch.
    pub checkpoints: Vec<Checkpoint>,
}

/// Saves a trained model as a bundle in a directory (the caller knows the backbone).
pub type SaveBundle<'a> = Box<dyn FnMut(&Path, &Trained) -> Result<()> + 'a>;

/// The checkpoints of one run.
pub struct Checkpoints<'a> {
    save: SaveBundle<'a>,
    book: Book,
}

/// Which checkpoints are kept, and the files that say so.
struct Book {
    policy: CheckpointPolicy,
    direction: Mode,
    monitor: String,
    kept: Vec<Checkpoint>,
}

impl<'a> Checkpoints<'a> {
    /// Checkpoints under `policy`, each written by `save`. The directory must be new or empty
    /// (checkpoints of another run are never mixed in or deleted); it is created here, before
    /// any training.
    pub fn new(policy: CheckpointPolicy, save: SaveBundle<'a>) -> Result<Self> {
        if policy.keep_top == 0 && policy.every == 0 {
            return Err(Error::invalid(
                "checkpoints need --keep-top K or --checkpoint-every N (at least 1)",
            ));
        }
        let dir = &policy.dir;
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{}: the checkpoint directory must be new or empty (it holds files; \
                     checkpoints of another run are never overwritten)",
                    dir.display()
                )));
            }
        } else {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(Checkpoints {
            save,
            book: Book {
                policy,
                direction: Mode::Min,
                monitor: String::new(),
                kept: Vec::new(),
            },
        })
    }

    /// The stage about to be checkpointed ranks epochs by `monitor` (its report label) in
    /// `direction`.
    pub(super) fn set_monitor(&mut self, monitor: String, direction: Mode) {
        self.book.monitor = monitor;
        self.book.direction = direction;
    }

    /// Whether epoch `rec` is kept: (among the best, periodic).
    pub(super) fn wants(&self, rec: &EpochRecord) -> (bool, bool) {
        self.book.wants(rec)
    }

    /// Saves `trained` as epoch `rec`'s checkpoint (when [`Checkpoints::wants`] it), drops the
    /// top checkpoint it displaces, and rewrites the index.
    pub(super) fn record(&mut self, rec: &EpochRecord, trained: &Trained) -> Result<()> {
        let save = &mut self.save;
        self.book.keep(rec, |path| save(path, trained))
    }

    /// The kept checkpoints, by epoch.
    pub fn kept(&self) -> &[Checkpoint] {
        &self.book.kept
    }

    /// The index as it is on disk.
    pub fn index(&self) -> CheckpointIndex {
        self.book.index()
    }
}

impl Book {
    fn wants(&self, rec: &EpochRecord) -> (bool, bool) {
        let value = monitored(rec);
        let periodic = self.policy.every > 0 && (rec.epoch + 1).is_multiple_of(self.policy.every);
        let tops: Vec<f32> = self
            .kept
            .iter()
            .filter(|c| c.top)
            .map(|c| c.value)
            .collect();
        let top = self.policy.keep_top > 0
            && !value.is_nan()
            && (tops.len() < self.policy.keep_top
                || self.worst_top().is_some_and(|w| {
                    self.direction
                        .improves(value, Some(self.kept[w].value), 0.0)
                }));
        (top, periodic)
    }

    /// Saves epoch `rec` with `save` when it is kept, drops what it displaces, rewrites the
    /// index.
    fn keep(&mut self, rec: &EpochRecord, save: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let (top, periodic) = self.wants(rec);
        if !top && !periodic {
            return Ok(());
        }
        let bundle = format!("{}-epoch-{:03}", rec.stage, rec.epoch + 1);
        save(&self.policy.dir.join(&bundle))?;
        self.kept.push(Checkpoint {
            bundle,
            stage: rec.stage.clone(),
            epoch: rec.epoch,
            value: monitored(rec),
            valid_loss: rec.valid_loss,
            top,
            periodic,
        });
        if self.kept.iter().filter(|c| c.top).count() > self.policy.keep_top {
            if let Some(w) = self.worst_top() {
                self.kept[w].top = false;
                if !self.kept[w].periodic {
                    let gone = self.kept.remove(w);
                    let path = self.policy.dir.join(&gone.bundle);
                    std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                }
            }
        }
        self.write_index()
    }

    fn index(&self) -> CheckpointIndex {
        let best = self
            .kept
            .iter()
            .filter(|c| c.top)
            .reduce(|a, b| {
                if self.direction.improves(b.value, Some(a.value), 0.0) {
                    b
                } else {
                    a
                }
            })
            .map(|c| c.bundle.clone());
        CheckpointIndex {
            monitor: self.monitor.clone(),
            best,
            checkpoints: self.kept.clone(),
        }
    }

    /// The kept top checkpoint with the worst value (the latest of equals, so that an earlier
    /// epoch wins ties as in early stopping).
    fn worst_top(&self) -> Option<usize> {
        let mut worst: Option<usize> = None;
        for (i, c) in self.kept.iter().enumerate().filter(|(_, c)| c.top) {
            let replace = match worst {
                None => true,
                Some(w) => !self
                    .direction
                    .improves(c.value, Some(self.kept[w].value), 0.0),
            };
            if replace {
                worst = Some(i);
            }
        }
        worst
    }

    fn write_index(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.index())
            .map_err(|e| Error::invalid(format!("checkpoint index: {e}")))?;
        crate::files::write_atomic(&self.policy.dir.join(INDEX_FILE), text.as_bytes())
    }
}

/// The number that ranks an epoch: the monitored one, or the validation loss.
fn monitored(rec: &EpochRecord) -> f32 {
    rec.monitored.unwrap_or(rec.valid_loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize, value: f32) -> EpochRecord {
        EpochRecord {
            stage: "heads".into(),
            epoch,
            epochs: 10,
            train_loss: 1.0,
            valid_loss: value,
            metric: None,
            monitored: None,
            task_losses: Vec::new(),
            lr: 1e-3,
            elapsed: 0.0,
        }
    }

    /// Records which bundles a run saves, writing a marker file as its "bundle".
    fn run(
        keep_top: usize,
        every: usize,
        values: &[f32],
        direction: Mode,
    ) -> (Vec<String>, CheckpointIndex) {
        let root = scratch(&format!("{keep_top}-{every}-{values:?}-{direction:?}"));
        let mut saved = Vec::new();
        let policy = CheckpointPolicy {
            dir: root.clone(),
            keep_top,
            every,
        };
        let none: SaveBundle<'static> = Box::new(|_: &Path, _: &Trained| Ok(()));
        let mut c = Checkpoints::new(policy, none).unwrap();
        c.set_monitor("m".into(), direction);
        for (e, &v) in values.iter().enumerate() {
            c.book
                .keep(&rec(e, v), |p| {
                    std::fs::create_dir(p).unwrap();
                    saved.push(p.file_name().unwrap().to_string_lossy().into_owned());
                    Ok(())
                })
                .unwrap();
        }
        let index = c.index();
        let on_disk: CheckpointIndex =
            serde_json::from_str(&std::fs::read_to_string(root.join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(on_disk.checkpoints, index.checkpoints);
        let mut dirs: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != INDEX_FILE)
            .collect();
        dirs.sort();
        let kept: Vec<String> = index.checkpoints.iter().map(|c| c.bundle.clone()).collect();
        let mut sorted = kept.clone();
        sorted.sort();
        assert_eq!(dirs, sorted, "exactly the kept bundles are on disk");
        std::fs::remove_dir_all(&root).unwrap();
        (saved, index)
    }

    #[test]
    fn the_best_k_epochs_stay_and_displaced_ones_are_deleted() {
        let (saved, index) = run(2, 0, &[0.9, 0.5, 0.7, 0.4, 0.8, 0.6], Mode::Min);
        // Epochs 1 (0.9), 2 (0.5), 3 (0.7 beats 0.9), 4 (0.4), 6 (0.6 beats 0.7... no: top two
        // are 0.4 and 0.5 by then).
        assert_eq!(
            saved,
            [
                "heads-epoch-001",
                "heads-epoch-002",
                "heads-epoch-003",
                "heads-epoch-004"
            ]
        );
        let kept: Vec<(usize, f32)> = index
            .checkpoints
            .iter()
            .map(|c| (c.epoch, c.value))
            .collect();
        assert_eq!(kept, [(1, 0.5), (3, 0.4)]);
        assert_eq!(index.best.as_deref(), Some("heads-epoch-004"));
    }

    #[test]
    fn a_maximised_monitor_keeps_the_highest() {
        let (_, index) = run(1, 0, &[0.2, 0.6, 0.5, 0.6], Mode::Max);
        let kept: Vec<usize> = index.checkpoints.iter().map(|c| c.epoch).collect();
        assert_eq!(kept, [1], "a tie does not displace the earlier epoch");
    }

    #[test]
    fn periodic_checkpoints_stay_beside_the_best() {
        let (saved, index) = run(1, 2, &[0.5, 0.9, 0.4, 0.8], Mode::Min);
        assert_eq!(
            saved,
            [
                "heads-epoch-001",
                "heads-epoch-002",
                "heads-epoch-003",
                "heads-epoch-004"
            ]
        );
        let kept: Vec<(usize, bool, bool)> = index
            .checkpoints
            .iter()
            .map(|c| (c.epoch, c.top, c.periodic))
            .collect();
        // Epoch 1 was the best until epoch 3 displaced it; 2 and 4 are periodic.
        assert_eq!(kept, [(1, false, true), (2, true, false), (3, false, true)]);
    }

    /// A fresh directory path under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let tag: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let dir = std::env::temp_dir().join(format!("tandem-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_used_directory_or_no_policy_is_refused() {
        let root = scratch("used");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("x"), "other run").unwrap();
        let save = || -> SaveBundle<'static> { Box::new(|_: &Path, _: &Trained| Ok(())) };
        let policy = |keep_top, every| CheckpointPolicy {
            dir: root.clone(),
            keep_top,
            every,
        };
        let e = Checkpoints::new(policy(1, 0), save()).err().unwrap();
        assert!(e.message().contains("new or empty"), "{}", e.message());
        let e = Checkpoints::new(policy(0, 0), save()).err().unwrap();
        assert!(e.message().contains("--keep-top"), "{}", e.message());
        assert_eq!(
            std::fs::read_to_string(root.join("x")).unwrap(),
            "other run"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
