//! The published readability formulas, as functions of a few totals.
//!
//! Kept apart from the scanning so that each formula reads like its paper. Every formula is 0
//! when the text has no words or no sentences (the scanner guarantees that a text has a sentence
//! exactly when it has a word), so the outputs are always finite.

/// The totals the formulas need.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Totals {
    /// Words.
    pub words: f64,
    /// Sentences.
    pub sentences: f64,
    /// Estimated syllables over all words.
    pub syllables: f64,
    /// Words with at least 3 estimated syllables ("complex" for Gunning, "polysyllables" for
    /// SMOG).
    pub complex: f64,
    /// Alphabetic chars in words.
    pub letters: f64,
    /// Alphanumeric chars in words.
    pub alnum: f64,
}

impl Totals {
    fn defined(&self) -> bool {
        self.words > 0.0 && self.sentences > 0.0
    }

    /// Flesch (1948): 206.835 − 1.015·W/S − 84.6·Syl/W.
    pub(super) fn flesch_reading_ease(&self) -> f64 {
        if !self.defined() {
            return 0.0;
        }
        206.835 - 1.015 * (self.words / self.sentences) - 84.6 * (self.syllables / self.words)
    }

    /// Kincaid et al. (1975): 0.39·W/S + 11.8·Syl/W − 15.59.
    pub(super) fn flesch_kincaid_grade(&self) -> f64 {
        if !self.defined() {
            return 0.0;
        }
        0.39 * (self.words / self.sentences) + 11.8 * (self.syllables / self.words) - 15.59
    }

    /// Gunning (1952): 0.4·(W/S + 100·complex/W).
    pub(super) fn gunning_fog(&self) -> f64 {
        if !self.defined() {
            return 0.0;
        }
        0.4 * (self.words / self.sentences + 100.0 * (self.complex / self.words))
    }

    /// McLaughlin (1969): 1.0430·sqrt(polysyllables·30/S) + 3.1291.
    pub(super) fn smog_index(&self) -> f64 {
        if !self.defined() {
            return 0.0;
        }
        1.0430 * (self.complex * 30.0 / self.sentences).sqrt() + 3.1291
    }

    /// Coleman & Liau (1975): 0.0588·L − 0.296·S100 − 15.8, with L letters per 100 words and
    /// S100 sentences per 100 words.
    pub(super) fn coleman_liau_index(&self) -> f64 {
        if !self.defined() {
            return 0.0;
        }
        let l = self.letters / self.words * 100.0;
        let s = self.sentences / self.words * 100.0;
        0.0588 * l - 0.296 * s - 15.8
    }

    /// Smith & Senter (1967), automated readability index: 4.71·chars/W + 0.5·W/S − 21.43, with
    /// chars the letters and digits in words.
    pub(super) fn automated_readability_index(&self) -> f64 {
        if !self.defined() {
            return 0.0;
        }
        4.71 * (self.alnum / self.words) + 0.5 * (self.words / self.sentences) - 21.43
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_words_or_sentences_give_zero() {
        let empty = Totals::default();
        let no_sentences = Totals {
            words: 3.0,
            ..Totals::default()
        };
        for t in [empty, no_sentences] {
            assert_eq!(t.flesch_reading_ease(), 0.0);
            assert_eq!(t.flesch_kincaid_grade(), 0.0);
            assert_eq!(t.gunning_fog(), 0.0);
            assert_eq!(t.smog_index(), 0.0);
            assert_eq!(t.coleman_liau_index(), 0.0);
            assert_eq!(t.automated_readability_index(), 0.0);
        }
    }

    #[test]
    fn formulas_on_round_numbers() {
        // 100 words, 5 sentences, 150 syllables, 10 complex, 450 letters, 460 alphanumerics.
        let t = Totals {
            words: 100.0,
            sentences: 5.0,
            syllables: 150.0,
            complex: 10.0,
            letters: 450.0,
            alnum: 460.0,
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(
            t.flesch_reading_ease(),
            206.835 - 1.015 * 20.0 - 84.6 * 1.5
        ));
        assert!(close(
            t.flesch_kincaid_grade(),
            0.39 * 20.0 + 11.8 * 1.5 - 15.59
        ));
        assert!(close(t.gunning_fog(), 0.4 * (20.0 + 10.0)));
        assert!(close(t.smog_index(), 1.0430 * 60f64.sqrt() + 3.1291));
        assert!(close(
            t.coleman_liau_index(),
            0.0588 * 450.0 - 0.296 * 5.0 - 15.8
        ));
        assert!(close(
            t.automated_readability_index(),
            4.71 * 4.6 + 0.5 * 20.0 - 21.43
        ));
    }
}
