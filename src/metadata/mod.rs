//! Native text metadata: a fixed vector of named, documented features computed from raw text.
//!
//! ```
//! use tandem::metadata;
//!
//! let v = metadata::extract("Hello, world! How are you?");
//! assert_eq!(v.len(), metadata::num_features());
//! let names = metadata::feature_names();
//! let words = names.iter().position(|n| *n == "word_count").unwrap();
//! assert_eq!(v[words], 5.0);
//! ```
//!
//! The features come in nine groups ([`FeatureGroup`]): length, punctuation, casing, character
//! classes, web tokens, lexical statistics, readability, English function-word profiles and
//! character and word n-gram statistics.
//! `docs/features.md` defines every one; [`feature_specs`] carries the same names and one-line
//! definitions at run time.
//!
//! **Stability.** Feature names and their definitions are stored with trained heads in model
//! bundles, with the feature set's version ([`FEATURE_SET`]); bundles find their features by
//! name. Renaming, removing or redefining a feature (including the word lists and the
//! tokenization rules in the module docs) is a format change; adding one is not, and bumps
//! [`FEATURE_SET`].
//!
//! **Robustness.** Extraction is total: any `&str` (empty, whitespace only, CJK, emoji with ZWJ
//! and skin tones, combining marks, right-to-left text, control chars, megabytes) gives a vector
//! of finite values. Every ratio or rate is 0 when its denominator is 0, and the readability
//! formulas are 0 for a text without words. Values are *not* scaled: counts grow with the text,
//! so heads should standardize the features (as they do with any input).
//!
//! **Speed.** One pass over the chars feeds every surface scanner; words are normalized into a
//! reused buffer and word lists are searched by binary search. The n-gram tables, VADER and the
//! part-of-speech tagger keep their buffers between calls too, and the tagger compares tags as
//! small integers. `cargo bench --bench metadata` measures it: about 5–7 MB/s per core for
//! feature set 2, below the 10 MB/s target (docs/performance.md says where the time goes).
//!
//! How the work is split:
//!
//! - `specs` — the feature table (names, groups, definitions, output order);
//! - `chars` — character classes and emoji sequences;
//! - `punct` — punctuation marks and runs of them;
//! - `tokens` — words, sentences and lines (the tokenization rules are documented there);
//! - `web` — URLs, e-mails, mentions, hashtags, numbers and currency;
//! - `lexicon` — the English closed-class word lists;
//! - `syllables` — the English syllable estimate;
//! - `readability` — the readability formulas;
//! - `extract` — the single pass and the arithmetic that produces the vector.

mod chars;
mod extract;
mod lexicon;
mod pos;
mod punct;
mod readability;
mod sentiment;
mod specs;
mod syllables;
mod tokens;
mod web;

#[cfg(test)]
mod tests;

pub use extract::{extract, extract_batch, extract_into};
pub use specs::{FeatureGroup, FeatureSpec};

/// The version of the feature set [`feature_names`] lists, recorded in bundles: 1 was the 67
/// features of the groups length to function words; 2 added the n-gram group. Bundles find
/// their features by name, so a bundle of an older set keeps working.
pub const FEATURE_SET: u32 = 2;

/// Every feature, in output order. The order is stable (see the module docs).
pub fn feature_specs() -> &'static [FeatureSpec] {
    specs::SPECS
}

/// Every feature name, in output order.
pub fn feature_names() -> Vec<&'static str> {
    specs::SPECS.iter().map(|s| s.name).collect()
}

/// The length of every feature vector.
pub fn num_features() -> usize {
    specs::SPECS.len()
}
