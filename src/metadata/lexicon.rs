//! Curated English closed-class word lists: pronouns by person, determiners, prepositions,
//! conjunctions, auxiliaries, negations, question words, and the stop-word list.
//!
//! The lists are the part of the feature definitions most likely to be argued about, so they are
//! kept here as plain readable slices. At first use they are merged into one small hash table of
//! `(word, class bits)`, probed with the word's hash (which the extractor computes once per word
//! anyway); a word may be in several classes (`no` is a determiner and a negation; `since` a
//! preposition and a conjunction).
//!
//! Words are looked up in their normalized form (lower case, `'` apostrophes). A word not in the
//! table may still be classified by its contraction suffix:
//! - any word ending in `n't` (`don't`, `can't`, `ain't`) is a negation and an auxiliary;
//! - `'m 're 've 'll 'd 's` after a personal pronoun, a question word, `that`, `there` or `here`
//!   (`I'm`, `they're`, `it's`, `what's`, `there's`) is an auxiliary, and keeps the pronoun or
//!   question-word class of its stem; after any other stem (`John's`) it is nothing.
//!
//! Every word in a class is also a stop word; [`STOP_ONLY`] adds the stop words that are in no
//! class.

use std::sync::OnceLock;

/// First-person singular pronoun.
pub(super) const FIRST_SINGULAR: u16 = 1;
/// First-person plural pronoun.
pub(super) const FIRST_PLURAL: u16 = 1 << 1;
/// Second-person pronoun.
pub(super) const SECOND: u16 = 1 << 2;
/// Third-person personal pronoun.
pub(super) const THIRD: u16 = 1 << 3;
/// Determiner.
pub(super) const DETERMINER: u16 = 1 << 4;
/// Preposition.
pub(super) const PREPOSITION: u16 = 1 << 5;
/// Conjunction.
pub(super) const CONJUNCTION: u16 = 1 << 6;
/// Auxiliary or modal verb.
pub(super) const AUXILIARY: u16 = 1 << 7;
/// Negation.
pub(super) const NEGATION: u16 = 1 << 8;
/// Question word.
pub(super) const QUESTION: u16 = 1 << 9;
/// Stop word (set for every word in a class, and for [`STOP_ONLY`]).
pub(super) const STOP: u16 = 1 << 10;
/// Any of the function-word classes.
pub(super) const FUNCTION: u16 = (1 << 10) - 1;
const PRONOUN: u16 = FIRST_SINGULAR | FIRST_PLURAL | SECOND | THIRD;

/// First-person singular pronouns.
pub(super) const FIRST_SINGULAR_WORDS: &[&str] = &["i", "me", "mine", "my", "myself"];

/// First-person plural pronouns (`let's` = let us).
pub(super) const FIRST_PLURAL_WORDS: &[&str] = &["let's", "our", "ours", "ourselves", "us", "we"];

/// Second-person pronouns, archaic and dialect forms included.
pub(super) const SECOND_WORDS: &[&str] = &[
    "thee",
    "thine",
    "thou",
    "thy",
    "y'all",
    "ye",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Third-person personal pronouns.
pub(super) const THIRD_WORDS: &[&str] = &[
    "he",
    "her",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "it",
    "its",
    "itself",
    "she",
    "their",
    "theirs",
    "them",
    "themself",
    "themselves",
    "they",
];

/// Articles, demonstratives and quantifiers used as determiners. Possessives are pronouns and
/// `what`/`which`/`whose` are question words, so they are not repeated here.
pub(super) const DETERMINER_WORDS: &[&str] = &[
    "a", "all", "an", "another", "any", "both", "each", "either", "enough", "every", "few",
    "fewer", "least", "less", "many", "more", "most", "much", "neither", "no", "other", "several",
    "some", "such", "that", "the", "these", "this", "those",
];

/// Prepositions, single words only.
pub(super) const PREPOSITION_WORDS: &[&str] = &[
    "aboard",
    "about",
    "above",
    "across",
    "after",
    "against",
    "along",
    "alongside",
    "amid",
    "amidst",
    "among",
    "amongst",
    "around",
    "as",
    "at",
    "atop",
    "before",
    "behind",
    "below",
    "beneath",
    "beside",
    "besides",
    "between",
    "beyond",
    "by",
    "concerning",
    "despite",
    "down",
    "during",
    "except",
    "for",
    "from",
    "in",
    "inside",
    "into",
    "like",
    "near",
    "of",
    "off",
    "on",
    "onto",
    "opposite",
    "out",
    "outside",
    "over",
    "past",
    "per",
    "regarding",
    "since",
    "through",
    "throughout",
    "till",
    "to",
    "toward",
    "towards",
    "under",
    "underneath",
    "unlike",
    "until",
    "unto",
    "up",
    "upon",
    "versus",
    "via",
    "with",
    "within",
    "without",
];

/// Coordinating and subordinating conjunctions.
pub(super) const CONJUNCTION_WORDS: &[&str] = &[
    "although", "and", "because", "but", "if", "lest", "nor", "or", "since", "so", "than",
    "though", "unless", "until", "whereas", "whether", "while", "whilst", "yet",
];

/// Auxiliary and modal verbs (contractions are handled by suffix, see the module docs).
pub(super) const AUXILIARY_WORDS: &[&str] = &[
    "am", "are", "be", "been", "being", "can", "cannot", "could", "did", "do", "does", "had",
    "has", "have", "having", "is", "may", "might", "must", "ought", "shall", "should", "was",
    "were", "will", "would",
];

/// Negations (every `n't` contraction is one too, by suffix).
pub(super) const NEGATION_WORDS: &[&str] = &[
    "cannot", "neither", "never", "no", "nobody", "none", "nor", "not", "nothing", "nowhere",
];

/// Question words.
pub(super) const QUESTION_WORDS: &[&str] = &[
    "how", "what", "when", "where", "which", "who", "whom", "whose", "why",
];

/// Stop words that are in none of the classes above (the stop list is the union of the classes
/// and these; it covers NLTK's English list).
pub(super) const STOP_ONLY: &[&str] = &[
    "again", "also", "doing", "else", "even", "ever", "further", "here", "just", "now", "once",
    "only", "own", "same", "then", "there", "too", "very",
];

/// A fast 64-bit hash of a word: 8 bytes at a time, multiply-xorshift, then the splitmix64
/// finalizer so that every output bit depends on every input byte. The extractor hashes each
/// word once and uses the hash both here and for its type counts.
#[inline]
pub(super) fn hash(word: &str) -> u64 {
    let bytes = word.as_bytes();
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        // Little-endian load of up to 8 bytes (a byte loop: a variable-length memcpy would be a
        // library call).
        let block = chunk
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        h = (h ^ block).wrapping_mul(0x9fb2_1c65_1e98_df25);
        h ^= h >> 29;
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The merged word lists as an open-addressing hash table (linear probing, at most half full).
/// `tags` holds the high half of each slot's hash (0 = empty) in 4 KB that stay in L1 cache,
/// so a miss — most words — usually costs one tag load and no string comparison.
struct Table {
    tags: Vec<u32>,
    entries: Vec<(&'static str, u16)>,
    mask: usize,
}

/// The nonzero tag of a hash.
#[inline]
fn tag(h: u64) -> u32 {
    ((h >> 32) as u32) | 1
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let lists: [(&[&'static str], u16); 11] = [
            (FIRST_SINGULAR_WORDS, FIRST_SINGULAR),
            (FIRST_PLURAL_WORDS, FIRST_PLURAL),
            (SECOND_WORDS, SECOND),
            (THIRD_WORDS, THIRD),
            (DETERMINER_WORDS, DETERMINER),
            (PREPOSITION_WORDS, PREPOSITION),
            (CONJUNCTION_WORDS, CONJUNCTION),
            (AUXILIARY_WORDS, AUXILIARY),
            (NEGATION_WORDS, NEGATION),
            (QUESTION_WORDS, QUESTION),
            (STOP_ONLY, 0),
        ];
        let total: usize = lists.iter().map(|(words, _)| words.len()).sum();
        let size = (total * 2).next_power_of_two();
        let mut t = Table {
            tags: vec![0; size],
            entries: vec![("", 0); size],
            mask: size - 1,
        };
        for (words, class) in lists {
            for &w in words {
                let h = hash(w);
                let mut i = h as usize & t.mask;
                loop {
                    if t.tags[i] == 0 {
                        t.tags[i] = tag(h);
                        t.entries[i] = (w, class | STOP);
                        break;
                    }
                    if t.entries[i].0 == w {
                        t.entries[i].1 |= class;
                        break;
                    }
                    i = (i + 1) & t.mask;
                }
            }
        }
        t
    })
}

/// Longest word in the table, so longer words skip the search.
const MAX_LEN: usize = 12;

/// The table's bits for `word`, whose [`hash`] is `h`.
#[inline]
fn lookup(word: &str, h: u64) -> u16 {
    if word.len() > MAX_LEN {
        return 0;
    }
    let t = table();
    let want = tag(h);
    let mut i = h as usize & t.mask;
    loop {
        let found = t.tags[i];
        if found == 0 {
            return 0;
        }
        if found == want && t.entries[i].0 == word {
            return t.entries[i].1;
        }
        i = (i + 1) & t.mask;
    }
}

/// The class bits of a normalized word whose [`hash`] is `h` (0 for content words).
#[inline]
pub(super) fn classify(word: &str, h: u64) -> u16 {
    let direct = lookup(word, h);
    if direct != 0 || !word.contains('\'') {
        return direct;
    }
    if word.len() > 3 && word.ends_with("n't") {
        return NEGATION | AUXILIARY | STOP;
    }
    for suffix in ["'s", "'m", "'re", "'ve", "'ll", "'d"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            let f = lookup(stem, hash(stem));
            if f & (PRONOUN | QUESTION) != 0 || matches!(stem, "that" | "there" | "here") {
                return (f & (PRONOUN | QUESTION)) | AUXILIARY | STOP;
            }
            return 0;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_lowercase_sorted_and_short() {
        let lists = [
            FIRST_SINGULAR_WORDS,
            FIRST_PLURAL_WORDS,
            SECOND_WORDS,
            THIRD_WORDS,
            DETERMINER_WORDS,
            PREPOSITION_WORDS,
            CONJUNCTION_WORDS,
            AUXILIARY_WORDS,
            NEGATION_WORDS,
            QUESTION_WORDS,
            STOP_ONLY,
        ];
        for list in lists {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "unsorted: {list:?}");
            for w in list {
                assert!(w.len() <= MAX_LEN, "{w}");
                assert!(
                    w.bytes().all(|b| b.is_ascii_lowercase() || b == b'\''),
                    "{w}"
                );
            }
        }
        let t = table();
        let filled = t.tags.iter().filter(|&&tag| tag != 0).count();
        assert!(filled * 2 <= t.tags.len());
        let mut words: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(filled, words.len());
    }

    fn classify(word: &str) -> u16 {
        super::classify(word, hash(word))
    }

    #[test]
    fn classes() {
        assert_eq!(classify("i"), FIRST_SINGULAR | STOP);
        assert_eq!(classify("no"), DETERMINER | NEGATION | STOP);
        assert_eq!(classify("since"), PREPOSITION | CONJUNCTION | STOP);
        assert_eq!(classify("very"), STOP);
        assert_eq!(classify("house"), 0);
        assert_eq!(classify("The"), 0); // callers pass normalized (lower-case) words
    }

    #[test]
    fn contractions() {
        assert_eq!(classify("don't"), NEGATION | AUXILIARY | STOP);
        assert_eq!(classify("can't"), NEGATION | AUXILIARY | STOP);
        assert_eq!(classify("i'm"), FIRST_SINGULAR | AUXILIARY | STOP);
        assert_eq!(classify("they're"), THIRD | AUXILIARY | STOP);
        assert_eq!(classify("it's"), THIRD | AUXILIARY | STOP);
        assert_eq!(classify("what's"), QUESTION | AUXILIARY | STOP);
        assert_eq!(classify("there's"), AUXILIARY | STOP);
        assert_eq!(classify("that'll"), AUXILIARY | STOP);
        assert_eq!(classify("let's"), FIRST_PLURAL | STOP);
        assert_eq!(classify("y'all"), SECOND | STOP);
        assert_eq!(classify("john's"), 0);
        assert_eq!(classify("n't"), 0);
    }

    #[test]
    fn covers_nltk_english_stop_words() {
        // NLTK's list without its tokenizer fragments (s, t, d, ll, m, o, re, ve, y, ain, ma)
        // and without the negated contractions, which the suffix rule covers.
        let nltk = "i me my myself we our ours ourselves you your yours yourself yourselves he \
            him his himself she her hers herself it its itself they them their theirs themselves \
            what which who whom this that these those am is are was were be been being have has \
            had having do does did doing a an the and but if or because as until while of at by \
            for with about against between into through during before after above below to from \
            up down in out on off over under again further then once here there when where why \
            how all any both each few more most other some such no nor not only own same so than \
            too very can will just should now you're you've you'll you'd she's it's that'll";
        for w in nltk.split_whitespace() {
            assert_ne!(classify(w) & STOP, 0, "{w}");
        }
    }
}
