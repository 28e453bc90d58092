//! The feature table: every feature's stable name, group, formula and one-line definition, in
//! output order.
//!
//! This is the single source of truth for the layout of the vectors that [`super::extract`]
//! returns. One macro invocation declares both the public [`FeatureSpec`] table and the private
//! index enum that the extractor writes through, so the two cannot drift apart.

use std::fmt;

/// The family a feature belongs to; features of one group are contiguous in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeatureGroup {
    /// Sizes of the text: characters, words, sentences, lines and their means.
    Length,
    /// Punctuation marks, repeated marks and ellipses, each per character.
    Punctuation,
    /// Upper/lower case of letters and of whole words.
    Casing,
    /// Shares of character classes: letters, digits, whitespace, non-ASCII, CJK, emoji.
    CharClass,
    /// Counts of web and numeric tokens: URLs, e-mails, mentions, hashtags, numbers, money.
    Web,
    /// Vocabulary statistics over words: type-token ratios, hapaxes, stop words, word lengths.
    Lexical,
    /// Syllable statistics and the published English readability formulas.
    Readability,
    /// English closed-class word profiles (pronouns, determiners, ...), each per word.
    FunctionWords,
    /// Character and word n-gram statistics: entropies and repetition rates.
    Ngrams,
    /// Sentiment polarity and intensity (VADER's lexicon and rules).
    Sentiment,
    /// Part-of-speech distribution (Pattern's Brill tagger).
    PartOfSpeech,
    /// Named entities and dates: people, places, organisations (Pattern's entity list) and dates.
    Entities,
}

impl FeatureGroup {
    /// Every group, in output order.
    pub const ALL: [FeatureGroup; 12] = [
        FeatureGroup::Length,
        FeatureGroup::Punctuation,
        FeatureGroup::Casing,
        FeatureGroup::CharClass,
        FeatureGroup::Web,
        FeatureGroup::Lexical,
        FeatureGroup::Readability,
        FeatureGroup::FunctionWords,
        FeatureGroup::Ngrams,
        FeatureGroup::Sentiment,
        FeatureGroup::PartOfSpeech,
        FeatureGroup::Entities,
    ];

    /// A short snake_case name, stable like the feature names.
    pub fn name(self) -> &'static str {
        match self {
            FeatureGroup::Length => "length",
            FeatureGroup::Punctuation => "punctuation",
            FeatureGroup::Casing => "casing",
            FeatureGroup::CharClass => "char_class",
            FeatureGroup::Web => "web",
            FeatureGroup::Lexical => "lexical",
            FeatureGroup::Readability => "readability",
            FeatureGroup::FunctionWords => "function_words",
            FeatureGroup::Ngrams => "ngrams",
            FeatureGroup::Sentiment => "sentiment",
            FeatureGroup::PartOfSpeech => "part_of_speech",
            FeatureGroup::Entities => "entities",
        }
    }
}

impl fmt::Display for FeatureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The description of one feature: its position in the output is its position in
/// [`feature_specs`](super::feature_specs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSpec {
    /// Stable snake_case name. Names are stored in model bundles: renaming, removing or
    /// reordering a feature is a format change.
    pub name: &'static str,
    /// The group the feature belongs to.
    pub group: FeatureGroup,
    /// The formula, in the symbols of `docs/features.md`: C characters, W words, S sentences,
    /// Syl syllables, complex words with at least 3 syllables, types distinct words, f the
    /// frequency of a type. Every ratio is 0 when its denominator is 0.
    pub formula: &'static str,
    /// One-line definition, including the denominator for ratios and rates.
    pub description: &'static str,
}

macro_rules! features {
    ($( $var:ident = $name:literal, $group:ident, $formula:literal, $desc:literal; )*) => {
        /// Position of each feature in the output vector (the discriminant is the index).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub(super) enum F {
            $( $var, )*
        }

        /// The table behind [`super::feature_specs`].
        pub(super) static SPECS: &[FeatureSpec] = &[
            $( FeatureSpec { name: $name, group: FeatureGroup::$group, formula: $formula, description: $desc }, )*
        ];
    };
}

// Conventions: `*_count` is a raw count; `*_ratio` is a share of a whole (of characters, letters
// or words, as stated); `*_rate` is occurrences per character (punctuation) or per word
// (function words). Every ratio or rate is 0 when its denominator is 0.
features! {
    CharCount = "char_count", Length, "C = count(chars)",
        "Number of Unicode scalar values (Rust chars; not bytes, not graphemes).";
    WordCount = "word_count", Length, "W = count(words)",
        "Number of words (maximal runs of alphanumerics with inner apostrophes/hyphens).";
    SentenceCount = "sentence_count", Length, "S = count(sentences)",
        "Number of word-containing segments delimited by sentence terminators (. ! ? … 。！？); runs count once.";
    LineCount = "line_count", Length, "count(non-blank lines)",
        "Number of lines that contain at least one non-whitespace character.";
    MeanWordLength = "mean_word_length", Length, "chars in words / W",
        "Characters in words / words.";
    MeanSentenceLength = "mean_sentence_length", Length, "W / S",
        "Words / sentences.";

    PeriodRate = "period_rate", Punctuation, "full stops / C",
        "Full stops (. 。 ． ｡ ।) per character.";
    CommaRate = "comma_rate", Punctuation, "commas / C",
        "Commas (, ， 、 ､ ،) per character.";
    ExclamationRate = "exclamation_rate", Punctuation, "exclamation marks / C",
        "Exclamation marks (! ！ ¡ ‼) per character.";
    QuestionRate = "question_rate", Punctuation, "question marks / C",
        "Question marks (? ？ ؟ ¿ ⁇) per character.";
    SemicolonRate = "semicolon_rate", Punctuation, "semicolons / C",
        "Semicolons (; ； ؛) per character.";
    ColonRate = "colon_rate", Punctuation, "colons / C",
        "Colons (: ：) per character.";
    ApostropheRate = "apostrophe_rate", Punctuation, "apostrophes / C",
        "Apostrophes and single quotes (' ’ ‘) per character.";
    QuoteRate = "quote_rate", Punctuation, "double quotes / C",
        "Double quotes and guillemets (\" “ ” „ « » 「 」 『 』) per character.";
    HyphenRate = "hyphen_rate", Punctuation, "hyphens / C",
        "Hyphens (- ‐ ‑) per character.";
    DashRate = "dash_rate", Punctuation, "dashes / C",
        "Dashes (‒ – — ―) per character.";
    ParenthesisRate = "parenthesis_rate", Punctuation, "parentheses / C",
        "Parentheses, opening and closing (( ) （ ）) per character.";
    BracketRate = "bracket_rate", Punctuation, "brackets / C",
        "Square and curly brackets ([ ] { } 【 】 〔 〕 ［ ］ ｛ ｝) per character.";
    PunctuationRate = "punctuation_rate", Punctuation, "punctuation chars / C",
        "All punctuation characters (ASCII punctuation plus the Unicode marks listed in docs/features.md) per character.";
    EllipsisRate = "ellipsis_rate", Punctuation, "ellipses / C",
        "Ellipses per character: maximal runs of . and … that contain a … or are at least 3 long.";
    RepeatedExclamationRate = "repeated_exclamation_rate", Punctuation, "runs of ≥ 2 ! marks / C",
        "Maximal runs of ! marks at least 2 long (\"!!\", \"!!!\"), containing no ?, per character.";
    RepeatedQuestionRate = "repeated_question_rate", Punctuation, "runs of ≥ 2 ? marks / C",
        "Maximal runs of ? marks at least 2 long (\"??\"), containing no !, per character.";
    MixedExclamationQuestionRate = "mixed_exclamation_question_rate", Punctuation, "mixed !/? runs / C",
        "Maximal runs of ! and ? marks containing both (\"?!\", \"!?!\", ‽) per character.";

    UppercaseRatio = "uppercase_ratio", Casing, "upper-case letters / (upper- + lower-case letters)",
        "Upper-case letters / cased letters (upper + lower case; caseless scripts excluded).";
    AllCapsWordRatio = "all_caps_word_ratio", Casing, "all-caps words / W",
        "Words with at least 2 cased letters, all upper case (\"NASA\") / words.";
    TitleCaseWordRatio = "title_case_word_ratio", Casing, "title-case words / W",
        "Words whose first character is the only upper-case letter and that have a lower-case letter (\"Hello\") / words.";
    LowercaseWordRatio = "lowercase_word_ratio", Casing, "lower-case words / W",
        "Words with at least one cased letter, all lower case / words.";
    MixedCaseWordRatio = "mixed_case_word_ratio", Casing, "mixed-case words / W",
        "Words with upper- and lower-case letters that are not title case (\"iPhone\", \"McDonald\") / words.";

    LetterRatio = "letter_ratio", CharClass, "letters / C",
        "Alphabetic characters / characters.";
    DigitRatio = "digit_ratio", CharClass, "digits / C",
        "Numeric characters (Unicode Numeric, e.g. 0-9, ٣, ½) / characters.";
    WhitespaceRatio = "whitespace_ratio", CharClass, "whitespace chars / C",
        "Whitespace characters (Unicode White_Space) / characters.";
    NonAsciiRatio = "non_ascii_ratio", CharClass, "non-ASCII chars / C",
        "Characters outside ASCII / characters.";
    CjkRatio = "cjk_ratio", CharClass, "CJK chars / C",
        "CJK ideographs, kana and Hangul / characters.";
    EmojiRatio = "emoji_ratio", CharClass, "emoji / C",
        "Emoji (a ZWJ sequence, a modified emoji or a flag counts once) / characters.";

    UrlCount = "url_count", Web, "count(URL tokens)",
        "Whitespace-delimited tokens starting with http://, https://, ftp:// or www.";
    EmailCount = "email_count", Web, "count(e-mail tokens)",
        "Tokens of the form local@domain.tld.";
    MentionCount = "mention_count", Web, "count(@mention tokens)",
        "Tokens starting with @ followed by a letter, digit or _ (and not an e-mail).";
    HashtagCount = "hashtag_count", Web, "count(#hashtag tokens)",
        "Tokens starting with # followed by letters, digits or _, at least one a letter.";
    NumberCount = "number_count", Web, "count(numbers)",
        "Numbers: maximal alphanumeric runs (with . or , between digits) that start with a digit (42, 3.14, 1,000, 2nd).";
    CurrencySymbolCount = "currency_symbol_count", Web, "count(currency symbols)",
        "Currency symbols ($ € £ ¥ ₹ ¢ and the rest of Unicode's currency symbols).";
    CurrencyAmountCount = "currency_amount_count", Web, "count(priced numbers)",
        "Numbers directly preceded or followed by a currency symbol (\"$5\", \"5€\", \"€ 5\").";

    TypeTokenRatio = "type_token_ratio", Lexical, "types / W",
        "Distinct lower-cased words / words.";
    RootTypeTokenRatio = "root_type_token_ratio", Lexical, "types / √W",
        "Distinct lower-cased words / sqrt(words) (Guiraud's index).";
    HapaxRatio = "hapax_ratio", Lexical, "types occurring once / W",
        "Lower-cased words that occur exactly once / words.";
    YuleK = "yule_k", Lexical, "10⁴ · (Σ f² − W) / W²",
        "Yule's K: 10^4 * (sum of squared word frequencies - words) / words^2.";
    StopWordRatio = "stop_word_ratio", Lexical, "stop words / W",
        "English stop words / words.";
    LongWordRatio = "long_word_ratio", Lexical, "words with > 6 letters / W",
        "Words with more than 6 letters / words.";
    ShortWordRatio = "short_word_ratio", Lexical, "words with 1–3 letters / W",
        "Words with 1 to 3 letters / words.";

    SyllablesPerWord = "syllables_per_word", Readability, "Syl / W",
        "Estimated English syllables / words.";
    ComplexWordRatio = "complex_word_ratio", Readability, "complex / W",
        "Words with at least 3 estimated syllables / words.";
    FleschReadingEase = "flesch_reading_ease", Readability, "206.835 − 1.015 · W/S − 84.6 · Syl/W",
        "206.835 - 1.015 * words/sentences - 84.6 * syllables/words.";
    FleschKincaidGrade = "flesch_kincaid_grade", Readability, "0.39 · W/S + 11.8 · Syl/W − 15.59",
        "0.39 * words/sentences + 11.8 * syllables/words - 15.59.";
    GunningFog = "gunning_fog", Readability, "0.4 · (W/S + 100 · complex/W)",
        "0.4 * (words/sentences + 100 * complex words/words).";
    SmogIndex = "smog_index", Readability, "1.0430 · √(30 · complex/S) + 3.1291",
        "1.0430 * sqrt(complex words * 30 / sentences) + 3.1291.";
    ColemanLiauIndex = "coleman_liau_index", Readability, "0.0588 · (100 · letters/W) − 0.296 · (100 · S/W) − 15.8",
        "0.0588 * letters per 100 words - 0.296 * sentences per 100 words - 15.8.";
    AutomatedReadabilityIndex = "automated_readability_index", Readability, "4.71 · alnum chars in words/W + 0.5 · W/S − 21.43",
        "4.71 * alphanumeric characters in words/words + 0.5 * words/sentences - 21.43.";

    PronounFirstSingularRate = "pronoun_first_singular_rate", FunctionWords, "first-person singular pronouns / W",
        "First-person singular pronouns (I, me, my, mine, myself, I'm, ...) per word.";
    PronounFirstPluralRate = "pronoun_first_plural_rate", FunctionWords, "first-person plural pronouns / W",
        "First-person plural pronouns (we, us, our, ours, ourselves, let's, ...) per word.";
    PronounSecondRate = "pronoun_second_rate", FunctionWords, "second-person pronouns / W",
        "Second-person pronouns (you, your, yours, yourself, y'all, thou, ...) per word.";
    PronounThirdRate = "pronoun_third_rate", FunctionWords, "third-person pronouns / W",
        "Third-person personal pronouns (he, she, it, they and their forms) per word.";
    DeterminerRate = "determiner_rate", FunctionWords, "determiners / W",
        "Articles, demonstratives and quantifying determiners (the, a, this, some, every, ...) per word.";
    PrepositionRate = "preposition_rate", FunctionWords, "prepositions / W",
        "Prepositions (of, in, to, with, from, ...) per word.";
    ConjunctionRate = "conjunction_rate", FunctionWords, "conjunctions / W",
        "Coordinating and subordinating conjunctions (and, but, or, because, if, ...) per word.";
    AuxiliaryRate = "auxiliary_rate", FunctionWords, "auxiliaries / W",
        "Auxiliary and modal verbs, including contracted and negated forms (is, have, can, 're, don't) per word.";
    NegationRate = "negation_rate", FunctionWords, "negations / W",
        "Negations (not, no, never, nothing, ... and every n't contraction) per word.";
    QuestionWordRate = "question_word_rate", FunctionWords, "question words / W",
        "Question words (what, when, where, which, who, whom, whose, why, how) per word.";
    FunctionWordRate = "function_word_rate", FunctionWords, "function words / W",
        "Words in any of the function-word classes above / words.";

    CharBigramEntropy = "char_bigram_entropy", Ngrams, "H(char bigrams) = log2 N - sum(f log2 f) / N",
        "Shannon entropy in bits of the text's character bigrams (lowercased chars, N bigrams, f each bigram's count).";
    CharTrigramEntropy = "char_trigram_entropy", Ngrams, "H(char trigrams)",
        "Shannon entropy in bits of the text's character trigrams (lowercased chars).";
    RepeatedCharTrigramRatio = "repeated_char_trigram_ratio", Ngrams, "(N - distinct) / N over char trigrams",
        "Share of character trigram occurrences that repeat an earlier one.";
    WordEntropy = "word_entropy", Ngrams, "H(words)",
        "Shannon entropy in bits of the text's normalized words.";
    WordBigramEntropy = "word_bigram_entropy", Ngrams, "H(word bigrams)",
        "Shannon entropy in bits of the pairs of consecutive normalized words.";
    RepeatedWordBigramRatio = "repeated_word_bigram_ratio", Ngrams, "(N - distinct) / N over word bigrams",
        "Share of word bigram occurrences that repeat an earlier one (copy-paste, chants, spam).";

    SentimentCompound = "sentiment_compound", Sentiment, "VADER compound = s / sqrt(s^2 + 15)",
        "VADER's compound polarity in [-1, 1]: the sum s of the tokens' valences after its rules, with ! and ? emphasis, normalized.";
    SentimentPositive = "sentiment_positive", Sentiment, "VADER pos",
        "VADER's share of the text's weight that is positive (pos + neg + neu = 1).";
    SentimentNegative = "sentiment_negative", Sentiment, "VADER neg",
        "VADER's share of the text's weight that is negative.";
    SentimentNeutral = "sentiment_neutral", Sentiment, "VADER neu",
        "VADER's share of the text's weight that is neutral (tokens without valence).";
    SentimentTokenRatio = "sentiment_token_ratio", Sentiment, "tokens with valence / VADER tokens",
        "Share of VADER's tokens (whitespace-separated, punctuation stripped) whose valence after the rules is not 0.";
    SentimentIntensity = "sentiment_intensity", Sentiment, "sum abs(valence) / tokens with valence",
        "Mean magnitude of the non-zero valences after the rules (VADER's scale, about 0 to 4.5): how strong the sentiment words are.";

    PosNounRate = "pos_noun_rate", PartOfSpeech, "NN, NNS / T",
        "Common nouns per word token (T: the tagger's tokens with a letter or digit).";
    PosProperNounRate = "pos_proper_noun_rate", PartOfSpeech, "NNP, NNPS / T",
        "Proper nouns per word token.";
    PosVerbRate = "pos_verb_rate", PartOfSpeech, "VB* and MD / T",
        "Verbs and modals per word token.";
    PosPastVerbRate = "pos_past_verb_rate", PartOfSpeech, "VBD, VBN / T",
        "Past-tense verbs and past participles per word token.";
    PosAdjectiveRate = "pos_adjective_rate", PartOfSpeech, "JJ, JJR, JJS / T",
        "Adjectives per word token.";
    PosAdverbRate = "pos_adverb_rate", PartOfSpeech, "RB, RBR, RBS, WRB / T",
        "Adverbs per word token.";
    PosPronounRate = "pos_pronoun_rate", PartOfSpeech, "PRP, PRP$, WP, WP$ / T",
        "Pronouns per word token.";
    PosNumeralRate = "pos_numeral_rate", PartOfSpeech, "CD / T",
        "Cardinal numbers per word token.";
    PosInterjectionRate = "pos_interjection_rate", PartOfSpeech, "UH / T",
        "Interjections per word token.";
    PosTagEntropy = "pos_tag_entropy", PartOfSpeech, "H(tags of word tokens)",
        "Shannon entropy in bits of the word tokens' tags: how varied the syntax is.";

    EntityPersonRate = "entity_person_rate", Entities, "tokens of listed people / T",
        "Word tokens in a listed person's name (NNP-PERS) per word token.";
    EntityLocationRate = "entity_location_rate", Entities, "tokens of listed places / T",
        "Word tokens in a listed place's name (NNP-LOC) per word token.";
    EntityOrganisationRate = "entity_organisation_rate", Entities, "tokens of listed organisations / T",
        "Word tokens in a listed organisation's name (NNP-ORG) per word token.";
    EntityDateRate = "entity_date_rate", Entities, "date tokens / T",
        "Weekdays, months, slashed and ISO dates and years 1900-2099 per word token.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_groups_contiguous_in_order() {
        let mut seen = std::collections::HashSet::new();
        for s in SPECS {
            assert!(seen.insert(s.name), "duplicate feature name {}", s.name);
            assert!(
                !s.name.is_empty()
                    && s.name.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !s.name.contains("__")
                    && !s.name.ends_with('_'),
                "not snake_case: {}",
                s.name
            );
            assert!(!s.description.is_empty(), "{} has no description", s.name);
            assert!(
                !s.formula.is_empty() && !s.formula.contains('|'),
                "{} needs a formula without `|` (it goes into a Markdown table)",
                s.name
            );
        }
        let groups: Vec<usize> = SPECS
            .iter()
            .map(|s| {
                FeatureGroup::ALL
                    .iter()
                    .position(|g| *g == s.group)
                    .unwrap()
            })
            .collect();
        assert!(
            groups.windows(2).all(|w| w[0] <= w[1]),
            "groups out of order"
        );
        for g in FeatureGroup::ALL {
            assert!(SPECS.iter().any(|s| s.group == g), "empty group {g}");
        }
    }

    #[test]
    fn index_enum_matches_table() {
        assert_eq!(F::CharCount as usize, 0);
        assert_eq!(SPECS[F::CommaRate as usize].name, "comma_rate");
        assert_eq!(SPECS[F::YuleK as usize].name, "yule_k");
        assert_eq!(F::EntityDateRate as usize, SPECS.len() - 1);
        assert_eq!(
            SPECS[F::FunctionWordRate as usize].name,
            "function_word_rate"
        );
    }

    #[test]
    fn group_names_are_stable() {
        let names: Vec<&str> = FeatureGroup::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                "length",
                "punctuation",
                "casing",
                "char_class",
                "web",
                "lexical",
                "readability",
                "function_words",
                "ngrams",
                "sentiment",
                "part_of_speech",
                "entities"
            ]
        );
        assert_eq!(FeatureGroup::Web.to_string(), "web");
    }
}
