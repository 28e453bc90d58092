//! Head-only training: configuration, the model (metadata encoder + task heads), and the
//! two-stage, joint, embedding-only and metadata-only trainers.

pub mod config;
pub mod features;

pub use self::config::TrainConfig;
