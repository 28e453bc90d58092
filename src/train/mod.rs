//! Head-only training: configuration, the feature pipeline, per-task objectives, the network
//! (metadata encoder + task heads), the stage loop, and the orchestration of the two-stage,
//! joint, embedding-only and metadata-only modes.

pub mod config;
mod data_parallel;
pub mod normalize;
pub mod objective;
pub mod session;
pub mod stage;
mod step;
pub mod trainer;

pub use self::config::{Mode, TrainConfig};
pub use self::session::{TaskDecl, Trainer, TrainerSpec};
pub use self::stage::{EpochRecord, StageReport};
pub use self::trainer::{train, Examples, TrainReport, Trained};
