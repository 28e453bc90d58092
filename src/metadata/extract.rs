//! The extractor: one pass over the chars feeding every scanner, then the arithmetic that turns
//! their counts into the feature vector.
//!
//! Per-call memory (the buffer for normalizing words, the word-frequency and n-gram tables,
//! the sentiment analyzer's and the tagger's buffers) lives in a thread-local scratch that keeps
//! its capacity between calls.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ndarray::Array2;

use super::chars::{self, CharClasses};
use super::lexicon;
use super::pos;
use super::punct::{self, Punctuation};
use super::readability::Totals;
use super::sentiment;
use super::specs::{F, SPECS};
use super::syllables;
use super::tokens::{Scanner, WordInfo, WordSink};
use super::web::Web;

/// Feature vectors of many texts, one row per text, in [`feature_specs`](super::feature_specs)
/// order: shape `(texts.len(), num_features())`.
pub fn extract_batch(texts: &[&str]) -> Array2<f32> {
    let n = SPECS.len();
    let mut data = vec![0f32; texts.len() * n];
    if n > 0 {
        for (row, text) in data.chunks_exact_mut(n).zip(texts) {
            extract_into(text, row);
        }
    }
    Array2::from_shape_vec((texts.len(), n), data)
        .expect("the buffer has exactly rows * features elements")
}

/// The feature vector of `text`, in [`feature_specs`](super::feature_specs) order.
pub fn extract(text: &str) -> Vec<f32> {
    let mut out = vec![0f32; SPECS.len()];
    extract_into(text, &mut out);
    out
}

/// Writes the feature vector of `text` into `out`, in [`feature_specs`](super::feature_specs)
/// order, reusing the calling thread's scratch buffers.
///
/// Any `&str` is fine, and every value written is finite.
///
/// # Panics
///
/// If `out.len() != num_features()`: that is a bug in the caller, not a property of the text.
pub fn extract_into(text: &str, out: &mut [f32]) {
    assert_eq!(
        out.len(),
        SPECS.len(),
        "extract_into: `out` has {} slots, there are {} features",
        out.len(),
        SPECS.len()
    );
    let done = SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            run(text, &mut scratch, out);
            true
        }
        Err(_) => false,
    });
    if done != Ok(true) {
        // Only during thread teardown (or re-entrance, which cannot happen): use a fresh scratch.
        run(text, &mut Scratch::default(), out);
    }
}

/// A `Hasher` for keys that already are good 64-bit hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Word frequencies keyed by a 64-bit hash of the normalized word. Collisions would merge two
/// types; at 64 bits that has probability ~n²/2⁶⁵, about 10⁻⁸ for a million distinct words.
type Freq = HashMap<u64, u64, BuildHasherDefault<PreHashed>>;

#[derive(Default)]
struct Scratch {
    word: String,
    freq: Freq,
    /// The text's word hashes in order (for word bigrams).
    seq: Vec<u64>,
    /// N-gram counts, reused for each kind of n-gram in turn.
    grams: Freq,
    /// The text's chars, lower-cased, for the char n-grams.
    lower: Vec<u64>,
    /// The sentiment analyzer's buffers.
    sentiment: sentiment::Scratch,
    /// The part-of-speech tagger's buffers.
    pos: pos::Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Scratch capacity kept after a call; beyond it (after a long text) the memory is returned.
/// Clearing and iterating a hash table costs its capacity, so a table left large by one long
/// text would slow down every short text after it.
const KEEP_TYPES: usize = 1 << 11;
const KEEP_WORD_BYTES: usize = 1 << 12;

/// Per-word totals.
struct WordStats<'a> {
    freq: &'a mut Freq,
    seq: &'a mut Vec<u64>,
    chars: u64,
    letters: u64,
    alnum: u64,
    syllables: u64,
    complex: u64,
    long: u64,
    short: u64,
    all_caps: u64,
    title: u64,
    lower: u64,
    mixed: u64,
    stop: u64,
    function: u64,
    /// Words in each lexicon class, by bit position.
    classes: [u64; 10],
}

impl<'a> WordStats<'a> {
    fn new(freq: &'a mut Freq, seq: &'a mut Vec<u64>) -> Self {
        WordStats {
            freq,
            seq,
            chars: 0,
            letters: 0,
            alnum: 0,
            syllables: 0,
            complex: 0,
            long: 0,
            short: 0,
            all_caps: 0,
            title: 0,
            lower: 0,
            mixed: 0,
            stop: 0,
            function: 0,
            classes: [0; 10],
        }
    }
}

impl WordSink for WordStats<'_> {
    #[inline]
    fn word(&mut self, norm: &str, w: &WordInfo) {
        self.chars += w.chars;
        self.letters += w.letters;
        self.alnum += w.alnum;

        if w.lower == 0 && w.upper >= 2 {
            self.all_caps += 1;
        } else if w.first_upper && w.upper == 1 && w.lower >= 1 {
            self.title += 1;
        } else if w.upper == 0 && w.lower >= 1 {
            self.lower += 1;
        } else if w.upper >= 1 && w.lower >= 1 {
            self.mixed += 1;
        }

        self.long += u64::from(w.letters > 6);
        self.short += u64::from((1..=3).contains(&w.letters));

        let syl = syllables::count(norm);
        self.syllables += syl;
        self.complex += u64::from(syl >= 3);

        let h = lexicon::hash(norm);
        let flags = lexicon::classify(norm, h);
        if flags != 0 {
            self.stop += u64::from(flags & lexicon::STOP != 0);
            self.function += u64::from(flags & lexicon::FUNCTION != 0);
            let mut bits = flags & lexicon::FUNCTION;
            while bits != 0 {
                self.classes[bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
        }

        *self.freq.entry(h).or_insert(0) += 1;
        self.seq.push(h);
    }
}

/// Shannon entropy in bits, and the number of occurrences, of the counts in `freq`:
/// log2 N - sum(f log2 f) / N.
fn entropy(freq: &Freq) -> (f64, f64) {
    // The sum runs in the table's iteration order, term by term as ever (so every bit of the
    // result stays what it was). A count of 1 adds exactly +0 (1 * log2 1), which leaves the
    // non-negative sum as it is, so it is skipped with its `log2`; most n-grams occur once.
    // The total is an integer, added exactly in any order.
    let (mut n, mut s) = (0u64, 0f64);
    for &f in freq.values() {
        n += f;
        if f > 1 {
            let f = f as f64;
            s += f * f.log2();
        }
    }
    let n = n as f64;
    if n > 0.0 {
        (n.log2() - s / n, n)
    } else {
        (0.0, 0.0)
    }
}

/// The n-gram features: character bigram and trigram entropies and the share of repeated
/// trigrams, over lowercased chars (each char's first lowercase char, so the key is exact: 21
/// bits a char); then word unigram and bigram entropies and the share of repeated bigrams, over
/// the word hashes in `seq`.
struct Ngrams {
    char_bigram_entropy: f64,
    char_trigram_entropy: f64,
    repeated_char_trigrams: f64,
    word_entropy: f64,
    word_bigram_entropy: f64,
    repeated_word_bigrams: f64,
}

impl Ngrams {
    fn of(text: &str, words: &Freq, seq: &[u64], grams: &mut Freq, lower: &mut Vec<u64>) -> Ngrams {
        // Each char's first lowercase char, once for both passes (ASCII without the case
        // tables: the same char).
        lower.clear();
        lower.extend(text.chars().map(|c| {
            let l = if c.is_ascii() {
                c.to_ascii_lowercase()
            } else {
                c.to_lowercase().next().unwrap_or(c)
            };
            u64::from(l)
        }));
        // `Freq` hashes by the key itself: spread the exact char codes over all 64 bits (an odd
        // multiplier is a bijection, so distinct n-grams stay distinct) or the table's probes
        // see the same high bits for every key and crawl.
        let mix = |k: u64| k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let repeated = |grams: &Freq, n: f64| ratio(n - grams.len() as f64, n);
        grams.clear();
        let mut prev = None::<u64>;
        for &c in lower.iter() {
            if let Some(x) = prev {
                *grams.entry(mix(x << 21 | c)).or_insert(0) += 1;
            }
            prev = Some(c);
        }
        let (char_bigram_entropy, _) = entropy(grams);
        grams.clear();
        let (mut a, mut b) = (None::<u64>, None::<u64>);
        for &c in lower.iter() {
            if let (Some(x), Some(y)) = (a, b) {
                *grams.entry(mix(x << 42 | y << 21 | c)).or_insert(0) += 1;
            }
            (a, b) = (b, Some(c));
        }
        let (char_trigram_entropy, n3) = entropy(grams);
        let repeated_char_trigrams = repeated(grams, n3);
        grams.clear();
        for w in seq.windows(2) {
            *grams.entry(w[0].rotate_left(17) ^ w[1]).or_insert(0) += 1;
        }
        let (word_bigram_entropy, n2) = entropy(grams);
        Ngrams {
            char_bigram_entropy,
            char_trigram_entropy,
            repeated_char_trigrams,
            word_entropy: entropy(words).0,
            word_bigram_entropy,
            repeated_word_bigrams: repeated(grams, n2),
        }
    }
}

fn ratio(n: f64, d: f64) -> f64 {
    if d > 0.0 {
        n / d
    } else {
        0.0
    }
}

/// `v` as f32, with anything not finite (which the formulas never produce) mapped to 0.
fn finite(v: f64) -> f32 {
    let x = v as f32;
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

fn run(text: &str, scratch: &mut Scratch, out: &mut [f32]) {
    scratch.freq.clear();
    scratch.seq.clear();
    let mut classes = CharClasses::default();
    let mut punctuation = Punctuation::default();
    let mut web = Web::default();
    let mut words = WordStats::new(&mut scratch.freq, &mut scratch.seq);
    let mut scanner = Scanner::new(text, &mut scratch.word);

    for (i, c) in text.char_indices() {
        let k = chars::kind(c);
        let m = punct::classify(c);
        classes.feed(c, k);
        punctuation.feed(m);
        scanner.feed(i, c, k, m, &mut words);
        web.feed(text, i, c, k);
    }
    scanner.finish(&mut words);
    punctuation.finish();
    web.finish(text);

    let (mut types, mut hapax, mut sum_sq) = (0f64, 0f64, 0f64);
    for &n in words.freq.values() {
        types += 1.0;
        hapax += f64::from(u8::from(n == 1));
        sum_sq += n as f64 * n as f64;
    }

    let f = |n: u64| n as f64;
    let n_chars = f(classes.chars);
    let n_words = f(scanner.words);
    let n_sentences = f(scanner.sentences);
    let per_char = |n: u64| ratio(f(n), n_chars);
    let per_word = |n: u64| ratio(f(n), n_words);
    let totals = Totals {
        words: n_words,
        sentences: n_sentences,
        syllables: f(words.syllables),
        complex: f(words.complex),
        letters: f(words.letters),
        alnum: f(words.alnum),
    };
    let class = |bit: u16| per_word(words.classes[bit.trailing_zeros() as usize]);
    let grams = Ngrams::of(
        text,
        words.freq,
        words.seq,
        &mut scratch.grams,
        &mut scratch.lower,
    );
    let senti = sentiment::scores(text, &mut scratch.sentiment);
    let tags = pos::counts(text, &mut scratch.pos);
    let per_token = |n: f64| ratio(n, tags.words);
    let p = &punctuation;

    let values: [(F, f64); SPEC_COUNT] = [
        (F::CharCount, n_chars),
        (F::WordCount, n_words),
        (F::SentenceCount, n_sentences),
        (F::LineCount, f(scanner.lines)),
        (F::MeanWordLength, per_word(words.chars)),
        (F::MeanSentenceLength, ratio(n_words, n_sentences)),
        (F::PeriodRate, per_char(p.period)),
        (F::CommaRate, per_char(p.comma)),
        (F::ExclamationRate, per_char(p.exclamation)),
        (F::QuestionRate, per_char(p.question)),
        (F::SemicolonRate, per_char(p.semicolon)),
        (F::ColonRate, per_char(p.colon)),
        (F::ApostropheRate, per_char(p.apostrophe)),
        (F::QuoteRate, per_char(p.quote)),
        (F::HyphenRate, per_char(p.hyphen)),
        (F::DashRate, per_char(p.dash)),
        (F::ParenthesisRate, per_char(p.parenthesis)),
        (F::BracketRate, per_char(p.bracket)),
        (F::PunctuationRate, per_char(p.total)),
        (F::EllipsisRate, per_char(p.ellipses)),
        (F::RepeatedExclamationRate, per_char(p.repeated_exclamation)),
        (F::RepeatedQuestionRate, per_char(p.repeated_question)),
        (F::MixedExclamationQuestionRate, per_char(p.mixed)),
        (
            F::UppercaseRatio,
            ratio(f(classes.upper), f(classes.upper + classes.lower)),
        ),
        (F::AllCapsWordRatio, per_word(words.all_caps)),
        (F::TitleCaseWordRatio, per_word(words.title)),
        (F::LowercaseWordRatio, per_word(words.lower)),
        (F::MixedCaseWordRatio, per_word(words.mixed)),
        (F::LetterRatio, per_char(classes.letters)),
        (F::DigitRatio, per_char(classes.digits)),
        (F::WhitespaceRatio, per_char(classes.whitespace)),
        (F::NonAsciiRatio, per_char(classes.non_ascii)),
        (F::CjkRatio, per_char(classes.cjk)),
        (F::EmojiRatio, per_char(classes.emoji)),
        (F::UrlCount, f(web.urls)),
        (F::EmailCount, f(web.emails)),
        (F::MentionCount, f(web.mentions)),
        (F::HashtagCount, f(web.hashtags)),
        (F::NumberCount, f(web.numbers)),
        (F::CurrencySymbolCount, f(web.currency_symbols)),
        (F::CurrencyAmountCount, f(web.currency_amounts)),
        (F::TypeTokenRatio, ratio(types, n_words)),
        (F::RootTypeTokenRatio, ratio(types, n_words.sqrt())),
        (F::HapaxRatio, ratio(hapax, n_words)),
        (F::YuleK, ratio(1e4 * (sum_sq - n_words), n_words * n_words)),
        (F::StopWordRatio, per_word(words.stop)),
        (F::LongWordRatio, per_word(words.long)),
        (F::ShortWordRatio, per_word(words.short)),
        (F::SyllablesPerWord, per_word(words.syllables)),
        (F::ComplexWordRatio, per_word(words.complex)),
        (F::FleschReadingEase, totals.flesch_reading_ease()),
        (F::FleschKincaidGrade, totals.flesch_kincaid_grade()),
        (F::GunningFog, totals.gunning_fog()),
        (F::SmogIndex, totals.smog_index()),
        (F::ColemanLiauIndex, totals.coleman_liau_index()),
        (
            F::AutomatedReadabilityIndex,
            totals.automated_readability_index(),
        ),
        (F::PronounFirstSingularRate, class(lexicon::FIRST_SINGULAR)),
        (F::PronounFirstPluralRate, class(lexicon::FIRST_PLURAL)),
        (F::PronounSecondRate, class(lexicon::SECOND)),
        (F::PronounThirdRate, class(lexicon::THIRD)),
        (F::DeterminerRate, class(lexicon::DETERMINER)),
        (F::PrepositionRate, class(lexicon::PREPOSITION)),
        (F::ConjunctionRate, class(lexicon::CONJUNCTION)),
        (F::AuxiliaryRate, class(lexicon::AUXILIARY)),
        (F::NegationRate, class(lexicon::NEGATION)),
        (F::QuestionWordRate, class(lexicon::QUESTION)),
        (F::FunctionWordRate, per_word(words.function)),
        (F::CharBigramEntropy, grams.char_bigram_entropy),
        (F::CharTrigramEntropy, grams.char_trigram_entropy),
        (F::RepeatedCharTrigramRatio, grams.repeated_char_trigrams),
        (F::WordEntropy, grams.word_entropy),
        (F::WordBigramEntropy, grams.word_bigram_entropy),
        (F::RepeatedWordBigramRatio, grams.repeated_word_bigrams),
        (F::SentimentCompound, senti.compound),
        (F::SentimentPositive, senti.pos),
        (F::SentimentNegative, senti.neg),
        (F::SentimentNeutral, senti.neu),
        (
            F::SentimentTokenRatio,
            ratio(senti.sentiment_tokens as f64, senti.tokens as f64),
        ),
        (
            F::SentimentIntensity,
            ratio(senti.magnitude, senti.sentiment_tokens as f64),
        ),
        (F::PosNounRate, per_token(tags.nouns)),
        (F::PosProperNounRate, per_token(tags.proper_nouns)),
        (F::PosVerbRate, per_token(tags.verbs)),
        (F::PosPastVerbRate, per_token(tags.past_verbs)),
        (F::PosAdjectiveRate, per_token(tags.adjectives)),
        (F::PosAdverbRate, per_token(tags.adverbs)),
        (F::PosPronounRate, per_token(tags.pronouns)),
        (F::PosNumeralRate, per_token(tags.numerals)),
        (F::PosInterjectionRate, per_token(tags.interjections)),
        (F::PosTagEntropy, tags.tag_entropy),
        (F::EntityPersonRate, per_token(tags.persons)),
        (F::EntityLocationRate, per_token(tags.locations)),
        (F::EntityOrganisationRate, per_token(tags.organisations)),
        (F::EntityDateRate, per_token(tags.dates)),
    ];
    for (feature, v) in values {
        out[feature as usize] = finite(v);
    }

    if scratch.freq.capacity() > KEEP_TYPES {
        scratch.freq = Freq::default();
    }
    if scratch.grams.capacity() > KEEP_TYPES {
        scratch.grams = Freq::default();
    }
    if scratch.seq.capacity() > KEEP_TYPES {
        scratch.seq = Vec::new();
    }
    if scratch.lower.capacity() > KEEP_WORD_BYTES {
        scratch.lower = Vec::new();
    }
    scratch.sentiment.trim(KEEP_WORD_BYTES);
    scratch.pos.trim(KEEP_WORD_BYTES);
    if scratch.word.capacity() > KEEP_WORD_BYTES {
        scratch.word = String::new();
    }
}

/// The number of features; `values` in [`run`] must name each exactly once (checked by a test).
const SPEC_COUNT: usize = F::EntityDateRate as usize + 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_is_written_once() {
        // Poison the buffer, extract, and check that no slot kept the poison. The order of
        // `values` is irrelevant, but a missing or duplicated feature would leave a slot NaN.
        let mut out = vec![f32::NAN; SPECS.len()];
        extract_into("Some text, with 2 words!", &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
        assert_eq!(SPEC_COUNT, SPECS.len());
    }

    #[test]
    fn scratch_is_returned_after_huge_texts() {
        let big: String = (0..100_000).map(|i| format!("w{i} ")).collect();
        let _ = extract(&big);
        SCRATCH.with(|s| assert!(s.borrow().freq.capacity() <= KEEP_TYPES));
    }
}
