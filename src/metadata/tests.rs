//! Hand-computed values for every feature, plus properties over nasty inputs.
//!
//! Each group has a table of cases `(feature, text, expected)` whose expected value is written as
//! the arithmetic it comes from, with the counts spelled out in a comment;
//! `every_feature_has_a_hand_computed_case` checks that the tables cover every feature.

use super::*;

struct Case {
    feature: &'static str,
    text: &'static str,
    expected: f64,
}

const fn case(feature: &'static str, text: &'static str, expected: f64) -> Case {
    Case {
        feature,
        text,
        expected,
    }
}

fn index(feature: &str) -> usize {
    feature_names()
        .iter()
        .position(|n| *n == feature)
        .unwrap_or_else(|| panic!("no feature named {feature}"))
}

fn value(text: &str, feature: &str) -> f64 {
    f64::from(extract(text)[index(feature)])
}

fn check(cases: &[Case]) {
    for c in cases {
        let got = value(c.text, c.feature);
        let tolerance = 1e-5 * c.expected.abs().max(1.0);
        assert!(
            (got - c.expected).abs() <= tolerance,
            "{} of {:?}: got {got}, expected {}",
            c.feature,
            c.text,
            c.expected
        );
    }
}

/// 26 chars: "Hello"(5) ","(1) " "(1) "world"(5) "!"(1) " "(1) "How"(3) " "(1) "are"(3) " "(1)
/// "you"(3) "?"(1). Words: Hello world How are you (5; 19 letters, 2 upper, 17 lower).
/// Sentences: "Hello, world!" and "How are you?" (2). Syllables: hel-lo 2, world 1, how 1, are 1
/// (silent e), you 1 = 6. No word has 3 syllables.
const HELLO: &str = "Hello, world! How are you?";

/// Words: The beautiful cat sleeps It is happy (7; letters 3+9+3+6+2+2+5 = 30, no digits).
/// Sentences 2. Syllables: the 1, beau-ti-ful 3, cat 1, sleeps 1, it 1, is 1, hap-py 2 = 10.
/// Complex (>= 3 syllables): beautiful = 1.
const CAT: &str = "The beautiful cat sleeps. It is happy.";

const LENGTH: &[Case] = &[
    case("char_count", HELLO, 26.0),
    case("char_count", "👍🏽é", 3.0), // 👍, skin tone, é: scalar values, not graphemes
    case("word_count", HELLO, 5.0),
    // don't | well-known | x: inner apostrophes and hyphens join, outer ones do not.
    case("word_count", "don't well-known -x-", 3.0),
    // Unsegmented scripts: one run of ideographs and kana is one word.
    case("word_count", "東京は日本の首都です。大阪も。", 2.0),
    case("sentence_count", HELLO, 2.0),
    case("sentence_count", "No terminator here", 1.0),
    case("sentence_count", "Pi is 3.14. Really?!... Yes", 3.0), // 3.14 is not a break
    case("sentence_count", "東京は日本の首都です。大阪も。", 2.0),
    case("sentence_count", "?!...", 0.0), // no words, no sentence
    // Lines with content: "one", "two", " three "; the empty and blank lines do not count.
    case("line_count", "one\n\ntwo\r\n three \n  ", 3.0),
    case(
        "mean_word_length",
        HELLO,
        (5.0 + 5.0 + 3.0 + 3.0 + 3.0) / 5.0,
    ),
    case("mean_word_length", "don't stop", (5.0 + 4.0) / 2.0), // the apostrophe counts
    case("mean_sentence_length", HELLO, 5.0 / 2.0),
];

const PUNCTUATION: &[Case] = &[
    case("period_rate", "A. B.", 2.0 / 5.0),
    case("period_rate", "終わり。", 1.0 / 4.0),
    case("comma_rate", HELLO, 1.0 / 26.0),
    case("comma_rate", "a, b、c", 2.0 / 6.0),
    case("exclamation_rate", HELLO, 1.0 / 26.0),
    case("question_rate", HELLO, 1.0 / 26.0),
    case("semicolon_rate", "a; b", 1.0 / 4.0),
    case("colon_rate", "a: b", 1.0 / 4.0),
    // i t ' s ␠ ‘ x ’ = 8 chars, 3 apostrophes/single quotes.
    case("apostrophe_rate", "it's ‘x’", 3.0 / 8.0),
    // " a " ␠ « b » = 7 chars, 4 quotes.
    case("quote_rate", "\"a\" «b»", 4.0 / 7.0),
    // w e l l - k n o w n ␠ - ␠ x = 14 chars, 2 hyphens.
    case("hyphen_rate", "well-known - x", 2.0 / 14.0),
    // a — b ␠ – ␠ c = 7 chars, 2 dashes.
    case("dash_rate", "a—b – c", 2.0 / 7.0),
    case("parenthesis_rate", "(a) (b", 3.0 / 6.0),
    case("bracket_rate", "[a]{b}", 4.0 / 6.0),
    case("punctuation_rate", HELLO, 3.0 / 26.0),
    // a ␠ $ b ␠ @ c = 7 chars; ASCII symbols count as punctuation (like Python's).
    case("punctuation_rate", "a $b @c", 2.0 / 7.0),
    // "Wait..."(7) ␠ "ok…"(3) ␠ "no.."(4) = 16 chars; "..." and "…" are ellipses, ".." is not.
    case("ellipsis_rate", "Wait... ok… no..", 2.0 / 16.0),
    // "No!!"(4) ␠ "Yes!"(4) ␠ "Wow!!!"(6) = 16 chars; runs "!!" and "!!!".
    case("repeated_exclamation_rate", "No!! Yes! Wow!!!", 2.0 / 16.0),
    // "Why??"(5) ␠ "Ok?"(3) = 9 chars; one run "??".
    case("repeated_question_rate", "Why?? Ok?", 1.0 / 9.0),
    // "What?!"(6) ␠ "Really!?"(8) = 15 chars; runs "?!" and "!?".
    case(
        "mixed_exclamation_question_rate",
        "What?! Really!?",
        2.0 / 15.0,
    ),
];

const CASING: &[Case] = &[
    case("uppercase_ratio", HELLO, 2.0 / 19.0),
    // A B upper, c lower; 東京 is caseless and not counted.
    case("uppercase_ratio", "ABc 東京", 2.0 / 3.0),
    // NASA, OK are all caps; "I" has a single cased letter and is not.
    case("all_caps_word_ratio", "NASA and I went OK", 2.0 / 5.0),
    case("title_case_word_ratio", HELLO, 2.0 / 5.0), // Hello, How
    case("lowercase_word_ratio", HELLO, 3.0 / 5.0),  // world, are, you
    // iPhone and McDonald are mixed; Hello is title case; x is lower case.
    case(
        "mixed_case_word_ratio",
        "iPhone McDonald Hello x",
        2.0 / 4.0,
    ),
];

const CHAR_CLASS: &[Case] = &[
    case("letter_ratio", HELLO, 19.0 / 26.0),
    case("digit_ratio", "a1 23", 3.0 / 5.0),
    case("whitespace_ratio", HELLO, 4.0 / 26.0),
    case("whitespace_ratio", "a\u{3000}b\t", 2.0 / 4.0), // ideographic space, tab
    case("non_ascii_ratio", "café ü", 2.0 / 6.0),
    // 東 京 ␠ i s ␠ b i g = 9 chars.
    case("cjk_ratio", "東京 is big", 2.0 / 9.0),
    // h i ␠ 👍 🏽 ␠ 👨 ZWJ 👩 ZWJ 👧 = 11 chars, 2 emoji (a modified one, a ZWJ family).
    case("emoji_ratio", "hi 👍🏽 👨\u{200D}👩\u{200D}👧", 2.0 / 11.0),
];

const WEB: &[Case] = &[
    case("url_count", "see https://a.io/x?y=1 and www.b.com.", 2.0),
    case("email_count", "mail me@x.org or a@b", 1.0), // a@b has no dot in the domain
    case("mention_count", "@bob hi @ann_1 a@b @", 2.0),
    case("hashtag_count", "#fun #2 #a1", 2.0), // #2 has no letter
    // 3.14, 1,000, 2nd; "v2" starts with a letter.
    case("number_count", "3.14 and 1,000 and v2 and 2nd", 3.0),
    case("currency_symbol_count", "$5 or 5€ or ¥", 3.0),
    // $5, 5€, € 7; the 8 has no symbol.
    case("currency_amount_count", "$5 or 5€ or € 7 or 8", 3.0),
];

/// Words: the cat saw the dog (5); types the/cat/saw/dog (4); once: cat, saw, dog (3);
/// frequencies 2,1,1,1 so the sum of squares is 4+1+1+1 = 7.
const DOG: &str = "The cat saw the dog";

const LEXICAL: &[Case] = &[
    case("type_token_ratio", DOG, 4.0 / 5.0),
    case("type_token_ratio", "The the THE", 1.0 / 3.0), // case-insensitive
    case("root_type_token_ratio", DOG, 4.0 / 2.236_067_977_499_79), // 4 / sqrt(5)
    case("hapax_ratio", DOG, 3.0 / 5.0),
    case("yule_k", DOG, 1e4 * (7.0 - 5.0) / (5.0 * 5.0)),
    case("yule_k", HELLO, 0.0), // all distinct: sum of squares = words
    case("stop_word_ratio", DOG, 2.0 / 5.0), // the, the
    case("stop_word_ratio", HELLO, 3.0 / 5.0), // how, are, you
    case("stop_word_ratio", "very nice", 1.0 / 2.0),
    // extraordinary (13 letters) and celebrate (9) are long; people has exactly 6.
    case(
        "long_word_ratio",
        "extraordinary people celebrate",
        2.0 / 3.0,
    ),
    // I, saw, a, big have 1-3 letters; elephant has 8; 42 has no letters.
    case("short_word_ratio", "I saw a big elephant 42", 4.0 / 6.0),
];

const READABILITY: &[Case] = &[
    case("syllables_per_word", HELLO, 6.0 / 5.0),
    case("syllables_per_word", CAT, 10.0 / 7.0),
    // beau-ti-ful 3, read-a-bil-i-ty 5, is 1, good 1.
    case(
        "complex_word_ratio",
        "beautiful readability is good",
        2.0 / 4.0,
    ),
    case("complex_word_ratio", CAT, 1.0 / 7.0),
    case(
        "flesch_reading_ease",
        HELLO,
        206.835 - 1.015 * (5.0 / 2.0) - 84.6 * (6.0 / 5.0),
    ),
    case(
        "flesch_reading_ease",
        CAT,
        206.835 - 1.015 * (7.0 / 2.0) - 84.6 * (10.0 / 7.0),
    ),
    case(
        "flesch_kincaid_grade",
        HELLO,
        0.39 * (5.0 / 2.0) + 11.8 * (6.0 / 5.0) - 15.59,
    ),
    case(
        "flesch_kincaid_grade",
        CAT,
        0.39 * (7.0 / 2.0) + 11.8 * (10.0 / 7.0) - 15.59,
    ),
    case("gunning_fog", HELLO, 0.4 * (5.0 / 2.0 + 100.0 * 0.0)),
    case("gunning_fog", CAT, 0.4 * (7.0 / 2.0 + 100.0 * (1.0 / 7.0))),
    case("smog_index", HELLO, 1.0430 * 0.0 + 3.1291),
    // sqrt(1 * 30 / 2) = sqrt(15) = 3.872983346207417
    case("smog_index", CAT, 1.0430 * 3.872_983_346_207_417 + 3.1291),
    // L = 19 letters / 5 words * 100 = 380; S = 2 / 5 * 100 = 40.
    case(
        "coleman_liau_index",
        HELLO,
        0.0588 * 380.0 - 0.296 * 40.0 - 15.8,
    ),
    case(
        "coleman_liau_index",
        CAT,
        0.0588 * (30.0 / 7.0 * 100.0) - 0.296 * (2.0 / 7.0 * 100.0) - 15.8,
    ),
    case(
        "automated_readability_index",
        HELLO,
        4.71 * (19.0 / 5.0) + 0.5 * (5.0 / 2.0) - 21.43,
    ),
    case(
        "automated_readability_index",
        CAT,
        4.71 * (30.0 / 7.0) + 0.5 * (7.0 / 2.0) - 21.43,
    ),
    case("flesch_reading_ease", "", 0.0),
    case("smog_index", "...", 0.0),
];

const FUNCTION_WORDS: &[Case] = &[
    case(
        "pronoun_first_singular_rate",
        "I think my dog likes me",
        3.0 / 6.0,
    ),
    case("pronoun_first_singular_rate", "I'm sure", 1.0 / 2.0),
    case(
        "pronoun_first_plural_rate",
        "We told us and let's go",
        3.0 / 6.0,
    ),
    case("pronoun_second_rate", HELLO, 1.0 / 5.0),
    // She, him, its, they're (with a typographic apostrophe).
    case(
        "pronoun_third_rate",
        "She gave him its toy; they’re happy",
        4.0 / 7.0,
    ),
    case(
        "determiner_rate",
        "The cat ate a fish and some rice",
        3.0 / 8.0,
    ),
    case(
        "preposition_rate",
        "He sat on the mat with a hat",
        2.0 / 8.0,
    ),
    // and, but, because
    case(
        "conjunction_rate",
        "Tea and cake but not coffee because it is late",
        3.0 / 10.0,
    ),
    // has, been, can't
    case(
        "auxiliary_rate",
        "She has been there and can't stay",
        3.0 / 7.0,
    ),
    case("auxiliary_rate", HELLO, 1.0 / 5.0), // are
    // don't, nothing, never
    case("negation_rate", "I don't know nothing, never", 3.0 / 5.0),
    case("question_word_rate", "Who knows why or how", 3.0 / 5.0),
    case("question_word_rate", HELLO, 1.0 / 5.0),
    // I (pronoun), the (determiner); "very" is a stop word but in no class.
    case("function_word_rate", "I saw the very big house", 2.0 / 6.0),
    case("function_word_rate", HELLO, 3.0 / 5.0), // how, are, you
];

// Entropies in bits, from the counts spelled out: H = log2 N - sum(f log2 f) / N.
const NGRAMS: &[Case] = &[
    // "abab": char bigrams ab ab ba (N 3, counts 2 and 1); trigrams aba bab.
    case(
        "char_bigram_entropy",
        "abab",
        1.584_962_500_721_156 - 2.0 / 3.0,
    ),
    case("char_bigram_entropy", "a", 0.0),
    case("char_trigram_entropy", "abab", 1.0),
    // Case folds: "ABab" has the bigrams of "abab".
    case(
        "char_bigram_entropy",
        "ABab",
        1.584_962_500_721_156 - 2.0 / 3.0,
    ),
    // "aaaa": trigrams aaa aaa, one distinct: 1 of 2 repeats.
    case("repeated_char_trigram_ratio", "aaaa", 1.0 / 2.0),
    case("repeated_char_trigram_ratio", "abcd", 0.0),
    // the x3, cat x3: two equally likely words.
    case("word_entropy", "the cat the cat the cat", 1.0),
    case("word_entropy", "The the THE", 0.0),
    // Bigrams: (the cat) x3, (cat the) x2; N 5.
    case(
        "word_bigram_entropy",
        "the cat the cat the cat",
        2.321_928_094_887_362 - (3.0 * 1.584_962_500_721_156 + 2.0) / 5.0,
    ),
    case(
        "repeated_word_bigram_ratio",
        "the cat the cat the cat",
        3.0 / 5.0,
    ),
    case("repeated_word_bigram_ratio", "one two three", 0.0),
    case("repeated_word_bigram_ratio", "single", 0.0),
];

// VADER: `good` has valence 1.9 in its lexicon; `not` before it multiplies by −0.74 (−1.406).
// compound = s / sqrt(s² + 15); pos / neg / neu are the shares of (valence + 1) for positive,
// (valence − 1) for negative tokens, and 1 per neutral token.
const SENTIMENT: &[Case] = &[
    // 1.9 / √(1.9² + 15) = 1.9 / √18.61
    case("sentiment_compound", "good", 0.440_433_570_760_168_5),
    // −1.406 / √(1.406² + 15) = −1.406 / √16.976836
    case("sentiment_compound", "not good", -0.341_237_651_254_324_2),
    case("sentiment_compound", "a table", 0.0),
    case("sentiment_positive", "good", 1.0),
    case("sentiment_negative", "not good", 2.406 / 3.406),
    case("sentiment_neutral", "not good", 1.0 / 3.406),
    case("sentiment_neutral", "", 0.0),
    case("sentiment_token_ratio", "not good", 1.0 / 2.0),
    case("sentiment_intensity", "not good", 1.406),
    case("sentiment_intensity", "a table", 0.0),
];

// Tags by Pattern's tagger (the tagger itself is checked against Pattern in pos.rs):
// The/DT cat/NN sat/VBD ./. — 3 word tokens, 3 different tags.
// She/PRP quickly/RB ate/VBD two/CD red/JJ apples/NNS !/. — 6 word tokens.
// Wow/UH ,/, Barack/NNP-PERS Obama/NNP-PERS visited/VBD Paris/NNP-LOC on/IN Monday/NNP ./. — 7.
const PART_OF_SPEECH: &[Case] = &[
    case("pos_noun_rate", "The cat sat.", 1.0 / 3.0),
    case(
        "pos_noun_rate",
        "She quickly ate two red apples!",
        1.0 / 6.0,
    ),
    case(
        "pos_proper_noun_rate",
        "Wow, Barack Obama visited Paris on Monday.",
        4.0 / 7.0,
    ),
    case("pos_verb_rate", "The cat sat.", 1.0 / 3.0),
    case("pos_verb_rate", "Oh yes, we would.", 1.0 / 4.0),
    case(
        "pos_past_verb_rate",
        "She quickly ate two red apples!",
        1.0 / 6.0,
    ),
    case(
        "pos_adjective_rate",
        "She quickly ate two red apples!",
        1.0 / 6.0,
    ),
    case(
        "pos_adverb_rate",
        "She quickly ate two red apples!",
        1.0 / 6.0,
    ),
    case(
        "pos_pronoun_rate",
        "She quickly ate two red apples!",
        1.0 / 6.0,
    ),
    case(
        "pos_numeral_rate",
        "She quickly ate two red apples!",
        1.0 / 6.0,
    ),
    case("pos_interjection_rate", "Oh yes, we would.", 2.0 / 4.0),
    // Three tags once each: log2 3.
    case("pos_tag_entropy", "The cat sat.", 1.584_962_500_721_156),
    // UH twice, PRP, MD: 1/2 · 1 + 2 · 1/4 · 2 = 1.5 bits.
    case("pos_tag_entropy", "Oh yes, we would.", 1.5),
    case("pos_tag_entropy", "", 0.0),
];

// Barack Obama (PERS), Paris (LOC), Microsoft (ORG) are in Pattern's entity list.
const ENTITIES: &[Case] = &[
    case(
        "entity_person_rate",
        "Wow, Barack Obama visited Paris on Monday.",
        2.0 / 7.0,
    ),
    case(
        "entity_location_rate",
        "Wow, Barack Obama visited Paris on Monday.",
        1.0 / 7.0,
    ),
    // They met Microsoft in May 1999: 6 word tokens.
    case(
        "entity_organisation_rate",
        "They met Microsoft in May 1999.",
        1.0 / 6.0,
    ),
    // May (capitalized) and 1999.
    case(
        "entity_date_rate",
        "They met Microsoft in May 1999.",
        2.0 / 6.0,
    ),
    case(
        "entity_date_rate",
        "Wow, Barack Obama visited Paris on Monday.",
        1.0 / 7.0,
    ),
    case(
        "entity_date_rate",
        "you may go on 2009-03-04 or 3/4/2009",
        2.0 / 7.0,
    ),
];

const ALL_CASES: [&[Case]; 12] = [
    LENGTH,
    PUNCTUATION,
    CASING,
    CHAR_CLASS,
    WEB,
    LEXICAL,
    READABILITY,
    FUNCTION_WORDS,
    NGRAMS,
    SENTIMENT,
    PART_OF_SPEECH,
    ENTITIES,
];

#[test]
fn length_features() {
    check(LENGTH);
}

#[test]
fn punctuation_features() {
    check(PUNCTUATION);
}

#[test]
fn casing_features() {
    check(CASING);
}

#[test]
fn char_class_features() {
    check(CHAR_CLASS);
}

#[test]
fn web_features() {
    check(WEB);
}

#[test]
fn lexical_features() {
    check(LEXICAL);
}

#[test]
fn readability_features() {
    check(READABILITY);
}

#[test]
fn function_word_features() {
    check(FUNCTION_WORDS);
}

#[test]
fn ngram_features() {
    check(NGRAMS);
}

#[test]
fn sentiment_features() {
    check(SENTIMENT);
}

#[test]
fn part_of_speech_features() {
    check(PART_OF_SPEECH);
}

#[test]
fn entity_features() {
    check(ENTITIES);
}

#[test]
fn every_feature_has_a_hand_computed_case() {
    for spec in feature_specs() {
        assert!(
            ALL_CASES
                .iter()
                .flat_map(|t| t.iter())
                .any(|c| c.feature == spec.name),
            "feature {} has no hand-computed test case",
            spec.name
        );
    }
    for (table, group) in ALL_CASES.iter().zip(FeatureGroup::ALL) {
        for c in *table {
            assert_eq!(
                feature_specs()[index(c.feature)].group,
                group,
                "{}",
                c.feature
            );
        }
    }
}

#[test]
fn api_shapes_agree() {
    assert!(num_features() >= 40);
    assert_eq!(feature_names().len(), num_features());
    assert_eq!(feature_specs().len(), num_features());
    assert_eq!(extract("").len(), num_features());
    let names = feature_names();
    for (name, spec) in names.iter().zip(feature_specs()) {
        assert_eq!(*name, spec.name);
    }
}

/// Inputs that have broken text code before.
fn nasty_inputs() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "   \t\n\r\n",
        "東京は日本の首都です。",
        "👍🏽👨\u{200D}👩\u{200D}👧",
        "🇺🇸🇫🇷\u{200D}\u{200D}\u{FE0F}\u{20E3}",
        "e\u{301}",
        "\u{301}\u{301}abc\u{301}",
        "\u{202e}abc",
        "مرحبا بالعالم؟ كيف حالك",
        "שלום עולם!",
        "\u{0}\u{1}\u{7}\u{1b}[31m\u{7f}\u{85}\u{2028}",
        "\u{FEFF}\u{200B}\u{200C}\u{200D}",
        "'''---'-'",
        "@#$%^&*()_+{}|:\"<>?~`",
        "$ € ₹ ¥ 5 $$5$$ €€",
        "http:// www. @ # a@ @a. #_",
        "I'm not. Don't! y'all' 'n't -'-",
        "İSTANBUL ǅ ß ﬁ Ⅻ ½ ² ٣",
        "\u{10FFFF}\u{E000}\u{FFFD}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("!?.,;:…—\"'()[]".repeat(10_000)); // only punctuation
    v.push("a".repeat(10_000)); // one 10k-char word
    v.push("supercalifragilistic".repeat(500));
    v.push("1".repeat(10_000));
    v.push("👍🏽".repeat(5_000));
    v.push(
        "Visit https://example.com 👍 for $5! Numbers 3.14, 1,000. WHY?! "
            .repeat(16_000)
            .chars()
            .take(1_000_000)
            .collect(),
    );
    v
}

#[test]
fn every_output_is_finite_on_nasty_inputs() {
    for text in nasty_inputs() {
        let v = extract(&text);
        assert_eq!(v.len(), num_features());
        for (x, name) in v.iter().zip(feature_names()) {
            assert!(
                x.is_finite(),
                "{name} = {x} on {:?}",
                text.chars().take(40).collect::<String>()
            );
        }
    }
}

#[test]
fn empty_and_blank_texts() {
    assert!(extract("").iter().all(|&x| x == 0.0));
    let blank = extract("   ");
    for (x, name) in blank.iter().zip(feature_names()) {
        let expected = match name {
            "char_count" => 3.0,
            "whitespace_ratio" => 1.0,
            _ => 0.0,
        };
        assert_eq!(*x, expected, "{name}");
    }
}

#[test]
fn words_and_sentences_agree() {
    // A text has a sentence exactly when it has a word, so mean sentence length is defined
    // whenever there are words.
    for text in nasty_inputs() {
        let v = extract(&text);
        let words = v[index("word_count")];
        let sentences = v[index("sentence_count")];
        assert_eq!(
            words > 0.0,
            sentences > 0.0,
            "{:?}",
            &text.chars().take(40).collect::<String>()
        );
        assert!(sentences <= words);
        for name in [
            "type_token_ratio",
            "hapax_ratio",
            "stop_word_ratio",
            "uppercase_ratio",
        ] {
            let x = v[index(name)];
            assert!((0.0..=1.0).contains(&x), "{name} = {x}");
        }
    }
}

#[test]
fn extraction_is_deterministic_and_batch_matches_single() {
    let texts: Vec<String> = nasty_inputs().into_iter().take(20).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = extract_batch(&refs);
    assert_eq!(batch.dim(), (refs.len(), num_features()));
    for (row, text) in batch.rows().into_iter().zip(&refs) {
        let single = extract(text);
        assert_eq!(row.to_vec(), single);
        assert_eq!(extract(text), single); // same again, after the scratch was reused
    }
    // Another thread (a fresh scratch) gives the same bits.
    let first = extract(HELLO);
    let other = std::thread::spawn(|| extract(HELLO)).join().unwrap();
    assert_eq!(first, other);
    assert_eq!(extract_batch(&[]).dim(), (0, num_features()));
}

/// Texts whose every feature value is pinned bit for bit in [`PINNED_BITS`]: a tweet with emoji,
/// a review with VADER's negation, `but`, `kind of` and capitals, news with entities and dates,
/// CJK with an e-mail address and a URL, and repeated words (n-gram counts above 1).
const PINNED_TEXTS: [&str; 5] = [
    "Just landed in Lisbon!!! ☀️🌊 Best trip ever, thanks @sofia_travels #travel #portugal https://t.co/x12Yz",
    "The movie was not bad, but the ending was REALLY terrible :( and I kind of hated it. Never so good!",
    "In 1865, the Thirteenth Amendment abolished slavery in the United States; John Smith met the New York Times in Paris on Monday, March 3 (e.g. 3/4/2009).",
    "東京は日本の首都です。lol 😂😂 did u see that?? mail me at a.b@c.co.uk or www.example.com, it's un-believable",
    "the cat and the cat and the cat and the dog and the dog sat sat sat on the mat mat",
];

/// The f32 bits of every feature of [`PINNED_TEXTS`], in output order, as the extractor of
/// commit 1ce01fb computed them (each text extracted in turn on a fresh thread). Speed work
/// must not move a single bit; a deliberate change of a feature's definition updates these.
#[rustfmt::skip]
const PINNED_BITS: [[u32; 93]; 5] = [
    [
        0x42ce0000, 0x41800000, 0x40000000, 0x3f800000, 0x40960000, 0x41000000, 0x3c1f1166, 0x3c1f1166,
        0x3cee9a19, 0x00000000, 0x00000000, 0x3c1f1166, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x3e013e23, 0x00000000, 0x3c1f1166, 0x00000000, 0x00000000, 0x3d607038,
        0x00000000, 0x3e400000, 0x3f400000, 0x3d800000, 0x3f356fd8, 0x3c9f1166, 0x3dee9a19, 0x3cee9a19,
        0x00000000, 0x3c9f1166, 0x3f800000, 0x00000000, 0x3f800000, 0x40000000, 0x00000000, 0x00000000,
        0x00000000, 0x3f800000, 0x40800000, 0x3f800000, 0x00000000, 0x3e400000, 0x3e000000, 0x3e800000,
        0x3fc00000, 0x3d800000, 0x428fa148, 0x40a75c29, 0x40b66666, 0x40e56559, 0x40ea7ae1, 0x4094bd71,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3d800000, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x3d800000, 0x40cb0137, 0x40d1e4fb, 0x3d4ac5b4, 0x40800000, 0x407a0a7f,
        0x00000000, 0x3f56d433, 0x3ec2af5a, 0x00000000, 0x3f1ea853, 0x3e088889, 0x40233333, 0x3e800000,
        0x3daaaaab, 0x3e2aaaab, 0x3daaaaab, 0x3e800000, 0x3e2aaaab, 0x00000000, 0x00000000, 0x00000000,
        0x40457007, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
    ],
    [
        0x42c60000, 0x41a00000, 0x40000000, 0x3f800000, 0x406ccccd, 0x41200000, 0x3c257eb5, 0x3c257eb5,
        0x3c257eb5, 0x00000000, 0x00000000, 0x3c257eb5, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x3c257eb5, 0x00000000, 0x3d4ede62, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3df914c2,
        0x3d4ccccd, 0x3dcccccd, 0x3f4ccccd, 0x00000000, 0x3f3f5a81, 0x00000000, 0x3e4ede62, 0x00000000,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x00000000, 0x3f666666, 0x4080cc2a, 0x3f4ccccd, 0x42c80000, 0x3f19999a, 0x3d4ccccd, 0x3f19999a,
        0x3faccccd, 0x3d4ccccd, 0x42a4f333, 0x4087ae14, 0x40c00000, 0x40e56559, 0x403fbe77, 0x3f7f3b64,
        0x3d4ccccd, 0x00000000, 0x00000000, 0x3d4ccccd, 0x3dcccccd, 0x3d4ccccd, 0x3e19999a, 0x3dcccccd,
        0x3dcccccd, 0x00000000, 0x3f19999a, 0x40c4cf75, 0x40ce9423, 0x3d93cb37, 0x4083e6d6, 0x4087ef06,
        0x00000000, 0xbf68cde9, 0x3e46881b, 0x3ed7cc7b, 0x3ec4ef77, 0x3e73cf3d, 0x4081f45b, 0x3d4ccccd,
        0x3d4ccccd, 0x3e800000, 0x3e19999a, 0x3e19999a, 0x3e19999a, 0x3dcccccd, 0x00000000, 0x00000000,
        0x405c9276, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
    ],
    [
        0x43180000, 0x41e80000, 0x40000000, 0x3f800000, 0x40811a7c, 0x41680000, 0x3ca1af28, 0x3c579436,
        0x00000000, 0x00000000, 0x3bd79436, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x3c579436, 0x00000000, 0x3d86bca2, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3dfb2b79,
        0x00000000, 0x3ee5846a, 0x3ec234f7, 0x00000000, 0x3f3286bd, 0x3d9435e5, 0x3e286bca, 0x00000000,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x40a00000, 0x00000000,
        0x00000000, 0x3f53dcb1, 0x408e9d30, 0x3f39611a, 0x432677ef, 0x3e772c23, 0x3e0d3dcb, 0x3ec234f7,
        0x3fbdcb09, 0x3e0d3dcb, 0x42855a2c, 0x40f1f83b, 0x4135136c, 0x4133548e, 0x4069aa8d, 0x409a5137,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3dd3dcb1, 0x3e0d3dcb, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x3e772c23, 0x40ce9e99, 0x40e0032d, 0x3dcccccd, 0x408ec144, 0x4099d5da,
        0x00000000, 0xbeeaebf5, 0x3db577e6, 0x3e1b8b57, 0x3f426e2d, 0x3d9d89d9, 0x40333333, 0x3d9d89d9,
        0x3eec4ec5, 0x3d9d89d9, 0x3d9d89d9, 0x00000000, 0x00000000, 0x00000000, 0x3dec4ec5, 0x00000000,
        0x4033d0d9, 0x00000000, 0x3e44ec4f, 0x00000000, 0x3dec4ec5,
    ],
    [
        0x42c00000, 0x41a00000, 0x40400000, 0x3f800000, 0x40633333, 0x40d55555, 0x3d800000, 0x3c2aaaab,
        0x00000000, 0x3caaaaab, 0x00000000, 0x00000000, 0x3c2aaaab, 0x00000000, 0x3c2aaaab, 0x00000000,
        0x00000000, 0x00000000, 0x3e000000, 0x00000000, 0x00000000, 0x3c2aaaab, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x3f733333, 0x00000000, 0x3f380000, 0x00000000, 0x3e0aaaab, 0x3e0aaaab,
        0x3dd55555, 0x3caaaaab, 0x3f800000, 0x3f800000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x00000000, 0x3f800000, 0x408f1bbd, 0x3f800000, 0x00000000, 0x3eb33333, 0x3e19999a, 0x3f400000,
        0x3fa66666, 0x3dcccccd, 0x42b42d3a, 0x40166666, 0x40d55555, 0x40f964a9, 0x3d3c6a7f, 0xbfec6ff5,
        0x3d4ccccd, 0x00000000, 0x00000000, 0x3d4ccccd, 0x3dcccccd, 0x3d4ccccd, 0x3d4ccccd, 0x3dcccccd,
        0x00000000, 0x00000000, 0x3eb33333, 0x40cb7fa0, 0x40d110e5, 0x3c2e4c41, 0x408a4d3c, 0x4087ef06,
        0x00000000, 0x3f3b5e18, 0x3e847e80, 0x3dfd0100, 0x3f1e20a0, 0x3e321643, 0x3feccccd, 0x3e088889,
        0x00000000, 0x3e888889, 0x3d888889, 0x3d888889, 0x00000000, 0x3e4ccccd, 0x3e088889, 0x3d888889,
        0x4054afd3, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
    ],
    [
        0x42a40000, 0x41a80000, 0x3f800000, 0x3f800000, 0x403cf3cf, 0x41a80000, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x00000000, 0x00000000, 0x3f800000, 0x00000000, 0x3f418f9c, 0x00000000, 0x3e79c190, 0x00000000,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x00000000, 0x3eaaaaab, 0x3fc385f2, 0x3d430c31, 0x44a4662b, 0x3f061862, 0x00000000, 0x3f800000,
        0x3f800000, 0x00000000, 0x42c9d70a, 0x408ccccd, 0x41066666, 0x4048432d, 0x3e1a166e, 0x403e721a,
        0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3e924925, 0x3d430c31, 0x3e430c31, 0x00000000,
        0x00000000, 0x00000000, 0x3f061862, 0x4089c3dc, 0x409393e4, 0x3f233333, 0x4028496e, 0x404fc5aa,
        0x3ee66666, 0x00000000, 0x00000000, 0x00000000, 0x3f800000, 0x00000000, 0x00000000, 0x3eaaaaab,
        0x00000000, 0x3e124925, 0x3e124925, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        0x400f7958, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
    ],
];

#[test]
fn feature_values_are_pinned_bit_for_bit() {
    // A fresh thread: a fresh scratch, so the n-gram tables (whose iteration order the entropy
    // sums follow) grow as they did when the bits were recorded.
    let got = std::thread::spawn(|| PINNED_TEXTS.map(extract))
        .join()
        .unwrap();
    let names = feature_names();
    for ((text, want), got) in PINNED_TEXTS.iter().zip(&PINNED_BITS).zip(&got) {
        assert_eq!(got.len(), want.len());
        for ((name, &w), g) in names.iter().zip(want).zip(got) {
            assert_eq!(
                g.to_bits(),
                w,
                "{name} of {text:?}: {g} (bits {:#010x}), pinned {} (bits {w:#010x})",
                g.to_bits(),
                f32::from_bits(w)
            );
        }
    }
}

#[test]
fn extract_into_matches_extract() {
    let mut out = vec![f32::NAN; num_features()];
    extract_into(CAT, &mut out);
    assert_eq!(out, extract(CAT));
}

#[test]
#[should_panic(expected = "features")]
fn extract_into_rejects_a_wrong_length() {
    let mut out = vec![0.0; num_features() - 1];
    extract_into("x", &mut out);
}

#[test]
fn docs_list_every_feature() {
    let doc = include_str!("../../docs/features.md");
    assert!(
        doc.contains(&format!("{} named features", num_features())),
        "docs/features.md should state the feature count"
    );
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(
        rows.len(),
        num_features(),
        "docs/features.md should have one table row per feature"
    );
    for spec in feature_specs() {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{}` |", spec.name)))
            .unwrap_or_else(|| panic!("docs/features.md has no row for {}", spec.name));
        assert!(
            row.contains(&format!("| {} |", spec.group.name())),
            "docs/features.md gives {} the wrong group",
            spec.name
        );
        assert!(
            row.contains(&format!("| {} | {} |", spec.group.name(), spec.formula)),
            "docs/features.md should give {} the formula `{}` right after its group",
            spec.name,
            spec.formula
        );
    }
    // Same order as the table.
    let order: Vec<&str> = rows.iter().filter_map(|r| r.split('`').nth(1)).collect();
    assert_eq!(order, feature_names());
}

#[test]
fn random_unicode_soup_is_total_and_consistent() {
    // Deterministic xorshift over a palette of tricky chars and arbitrary scalar values.
    const PALETTE: &[char] = &[
        'a', 'Z', ' ', '\n', '.', '!', '?', '\'', '’', '-', '‐', '@', '#', '$', '€', '5', ',', '…',
        '。', '\u{301}', '\u{200D}', '\u{FE0F}', '👍', '🏽', '🇺', '東', 'é', 'İ', 'ǅ', '٣', '_',
        '/', ':', 'w', 'h', 't', 'p', 's', '\u{0}', '\u{202E}', '‽',
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2_000 {
        let len = (next() % 120) as usize;
        let text: String = (0..len)
            .map(|_| {
                let r = next();
                if r % 4 == 0 {
                    char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('\u{FFFD}')
                } else {
                    PALETTE[(r >> 8) as usize % PALETTE.len()]
                }
            })
            .collect();
        let v = extract(&text);
        assert!(v.iter().all(|x| x.is_finite()), "{text:?}");
        let (words, sentences) = (v[index("word_count")], v[index("sentence_count")]);
        assert_eq!(words > 0.0, sentences > 0.0, "{text:?}");
        assert_eq!(v[index("char_count")] as usize, text.chars().count());
        assert_eq!(extract(&text), v);
    }
}
