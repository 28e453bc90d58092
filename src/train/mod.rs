//! Training heads on the device: configuration, examples (texts → arrays, through the caches),
//! fitting the feature normalizer, per-task objectives, the stage loop and its steps (with the
//! data-parallel split), the orchestration of the two-stage, joint, embedding-only and
//! metadata-only modes, the manifest of what was trained, and the stateful [`Trainer`] that
//! hosts and the C ABI drive. Training builds the serving types of [`crate::heads`]; nothing
//! in serving imports from here.

pub mod checkpoint;
pub mod config;
mod data_parallel;
pub mod distill;
pub mod examples;
pub mod linear;
pub mod manifest;
pub mod normalize;
pub mod objective;
pub mod pretext;
pub mod pretrain;
pub mod run;
pub mod stage;
mod step;
pub mod trainer;
pub mod tune;
pub mod weights;

pub use self::config::{Mode, TrainConfig};
pub use self::examples::{
    split_examples, split_examples_of, split_indices, split_indices_of, Examples, Needs,
};
pub use self::manifest::manifest_for;
pub use self::run::{train, train_checkpointed, train_top, TrainReport, Trained};
pub use self::stage::{EpochRecord, StageReport};
pub use self::trainer::{TaskDecl, Trainer, TrainerSpec};
pub use self::tune::BackboneTop;
