//! Training and evaluation data: reading rows from JSONL or CSV, turning a label field into task
//! targets, and seeded stratified splits.

mod read;
mod split;
mod task;

pub use self::read::{parse_rows, read_rows, Row};
pub use self::split::stratified_split;
pub use self::task::{Targets, TaskKind, TaskSpec};
