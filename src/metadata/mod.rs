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
//! The features come in eight groups ([`FeatureGroup`]): length, punctuation, casing, character
//! classes, web tokens, lexical statistics, readability and English function-word profiles.
//! `docs/features.md` defines every one; [`feature_specs`] carries the same names and one-line
//! definitions at run time.
//!
//! **Stability.** Feature names, their order and their definitions are stored with trained
//! heads in model bundles. Renaming, removing, reordering or redefining a feature (including the
//! word lists and the tokenization rules in the module docs) is a format change; adding features
//! at the end is not a rename but still changes the vector length that a bundle records.
//!
//! **Robustness.** Extraction is total: any `&str` (empty, whitespace only, CJK, emoji with ZWJ
//! and skin tones, combining marks, right-to-left text, control chars, megabytes) gives a vector
//! of finite values. Every ratio or rate is 0 when its denominator is 0, and the readability
//! formulas are 0 for a text without words. Values are *not* scaled: counts grow with the text,
//! so heads should standardize the features (as they do with any input).
//!
//! **Speed.** One pass over the chars feeds every scanner; words are normalized into a reused
//! buffer and word lists are searched by binary search, so [`extract_into`] does not allocate
//! once warm. `cargo bench --bench metadata` measures it (well above 10 MB/s per core).
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
mod punct;
mod readability;
mod specs;
mod syllables;
mod tokens;
mod web;

#[cfg(test)]
mod tests;

pub use extract::{extract, extract_batch, extract_into};
pub use specs::{FeatureGroup, FeatureSpec};

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
