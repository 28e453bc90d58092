//! Sentiment polarity and intensity: a port of VADER (Hutto & Gilbert, ICWSM 2014), the
//! lexicon-and-rules sentiment analyzer, computing what vaderSentiment 3.3.2's
//! `polarity_scores` computes (checked against its outputs in the tests).
//!
//! The lexicon (7,506 words, emoticons and slang with a mean valence in [−4, 4]) and the emoji
//! descriptions are VADER's (MIT licence, `data/VADER-LICENSE.txt`), compacted by
//! `scripts/vendor_vader.py` and compiled in. The rules, as VADER has them: boosters and
//! dampeners up to three words back (`very`, `kind of`), negation up to three words back
//! (`not`, `n't`, `never`, `without`; `never so`/`this` boosts instead; `without doubt` does
//! nothing), `no` before a lexicon word, `least`, upper case emphasis when only some words are
//! in capitals, `but` (halves what comes before it, one and a half times what follows, with
//! VADER's handling of repeated values), a few idioms (`the shit`, `to die for`, `yeah right`),
//! and `!` and `?` emphasis.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use foldhash::fast::FixedState;

/// Maps looked up per token: a fast fixed-seed hash (the keys are not attacker-chosen in bulk:
/// they are compiled in).
type Map<K, V> = HashMap<K, V, FixedState>;

/// `word <TAB> mean valence`, lower case, one per line.
const LEXICON: &str = include_str!("data/vader_lexicon.tsv");
/// `emoji <TAB> description`, one code point each.
const EMOJI: &str = include_str!("data/vader_emoji.tsv");

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const NEGATE: [&str; 59] = [
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS: [(&str, f64); 84] = [
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sort of", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// The entries of [`BOOSTERS`] with a space, the only ones an n-gram can match.
const MULTI_WORD_BOOSTERS: [(&str, f64); 3] = [
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("sort of", B_DECR),
];

const SPECIAL_CASES: [(&str, f64); 9] = [
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

/// What the rules know about one (lower-cased) word, from one lookup per token.
#[derive(Clone, Copy, Default)]
struct Word {
    /// The lexicon's valence.
    valence: Option<f64>,
    /// The booster or dampener value ([`BOOSTERS`]).
    boost: Option<f64>,
    /// In [`NEGATE`] (asked about up to three words before every lexicon word).
    negate: bool,
    /// A word of a phrase [`idioms_check`] looks for ([`SPECIAL_CASES`] and
    /// [`MULTI_WORD_BOOSTERS`]): where none is near a word, no phrase can match.
    idiom: bool,
}

struct Tables {
    /// The lexicon, the boosters, the negation words and the idioms' words, in one table: each
    /// word's index in `entries`.
    words: Map<&'static str, u32>,
    /// Every [`Word`]; the first one, [`NOT_LISTED`], is that of the words the table lacks.
    entries: Vec<Word>,
    emoji: Emoji,
}

/// VADER's emoji descriptions, with the 256-code-point pages that hold any of them as a bit
/// set: a char on another page (CJK, Arabic, most letters) needs no hash lookup.
struct Emoji {
    descriptions: Map<char, &'static str>,
    /// Bit `p` is set when page `p` (`c >> 8`, below 0x20000) holds a listed emoji.
    pages: [u64; 8],
}

impl Emoji {
    fn new(descriptions: Map<char, &'static str>) -> Emoji {
        let mut pages = [0u64; 8];
        for &c in descriptions.keys() {
            let p = c as usize >> 8;
            // Every listed emoji is below U+20000; one above would only cost a lookup.
            if let Some(word) = pages.get_mut(p / 64) {
                *word |= 1 << (p % 64);
            }
        }
        Emoji {
            descriptions,
            pages,
        }
    }

    /// The description of `c`, if VADER lists it.
    #[inline]
    fn get(&self, c: char) -> Option<&'static str> {
        let p = c as usize >> 8;
        let listed_page = self
            .pages
            .get(p / 64)
            .is_none_or(|w| w & (1 << (p % 64)) != 0);
        if !listed_page {
            return None;
        }
        self.descriptions.get(&c).copied()
    }
}

/// The index of the [`Word`] of every word that is not in [`Tables::words`].
const NOT_LISTED: u32 = 0;

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let (words, entries) = words();
        Tables {
            words,
            entries,
            emoji: Emoji::new(
                EMOJI
                    .lines()
                    .filter_map(|l| {
                        let (e, d) = l.split_once('\t')?;
                        let mut chars = e.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => Some((c, d)),
                            _ => None,
                        }
                    })
                    .collect(),
            ),
        }
    })
}

/// The [`Word`] table: the lexicon, [`BOOSTERS`], [`NEGATE`] and the idioms' words.
fn words() -> (Map<&'static str, u32>, Vec<Word>) {
    let mut words: Map<&'static str, Word> = Map::default();
    for l in LEXICON.lines() {
        if let Some((w, v)) = l.split_once('\t') {
            if let Ok(v) = v.parse() {
                words.entry(w).or_default().valence = Some(v);
            }
        }
    }
    for &(w, b) in &BOOSTERS {
        words.entry(w).or_default().boost = Some(b);
    }
    for w in NEGATE {
        words.entry(w).or_default().negate = true;
    }
    let phrases = SPECIAL_CASES.iter().chain(&MULTI_WORD_BOOSTERS);
    for w in phrases.flat_map(|(phrase, _)| phrase.split(' ')) {
        words.entry(w).or_default().idiom = true;
    }
    // Tokens keep a 4-byte index instead of the 40-byte entry (a long text has many tokens).
    let mut entries = vec![Word::default()];
    let mut index = Map::default();
    for (w, e) in words {
        index.insert(w, u32::try_from(entries.len()).expect("some 8,000 words"));
        entries.push(e);
    }
    (index, entries)
}

/// Python's `str.isupper()`: some cased character, and none lower case.
fn is_upper(s: &str) -> bool {
    if s.is_ascii() {
        // The same test without the Unicode case tables.
        let b = s.as_bytes();
        return b.iter().any(u8::is_ascii_uppercase) && !b.iter().any(u8::is_ascii_lowercase);
    }
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

/// Python's `str.split()` separators (`str.isspace()`).
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// VADER's scores of a text.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Scores {
    /// The normalized sum of valences, in [−1, 1].
    pub compound: f64,
    /// Shares of the text's positive, negative and neutral weight (they sum to 1).
    pub pos: f64,
    pub neg: f64,
    pub neu: f64,
    /// Tokens (VADER's: whitespace-separated, punctuation stripped) with a non-zero valence.
    pub sentiment_tokens: usize,
    /// All tokens.
    pub tokens: usize,
    /// The sum of the non-zero valences' magnitudes.
    pub magnitude: f64,
}

/// Buffers kept between calls.
#[derive(Default)]
pub(super) struct Scratch {
    text: String,
    lower: String,
    /// Each token's byte range in `text` and in `lower`.
    tokens: Vec<(usize, usize, usize, usize)>,
    /// Each token's [`Word`], as its index in [`Tables::entries`] (looked up once per token:
    /// the rules ask about a word's neighbours again and again).
    words: Vec<u32>,
    sentiments: Vec<f64>,
}

impl Scratch {
    /// Drops buffers a long text grew past `keep` bytes or entries.
    pub(super) fn trim(&mut self, keep: usize) {
        if self.text.capacity() > keep || self.lower.capacity() > keep {
            *self = Scratch::default();
        } else if self.tokens.capacity() > keep || self.sentiments.capacity() > keep {
            self.tokens = Vec::new();
            self.words = Vec::new();
            self.sentiments = Vec::new();
        }
    }
}

struct Words<'a> {
    text: &'a str,
    lower: &'a str,
    tokens: &'a [(usize, usize, usize, usize)],
    /// Each token's index in `entries`.
    words: &'a [u32],
    entries: &'a [Word],
}

impl Words<'_> {
    fn len(&self) -> usize {
        self.tokens.len()
    }
    fn raw(&self, i: usize) -> &str {
        let (a, b, _, _) = self.tokens[i];
        &self.text[a..b]
    }
    fn low(&self, i: usize) -> &str {
        let (_, _, a, b) = self.tokens[i];
        &self.lower[a..b]
    }
    /// What the tables say about word `i`.
    fn word(&self, i: usize) -> &Word {
        &self.entries[self.words[i] as usize]
    }
    /// Whether word `i` is in the lexicon.
    fn in_lex(&self, i: usize) -> bool {
        self.word(i).valence.is_some()
    }
    /// VADER's `negated([word])` of word `i`: a negation word, or any word with "n't".
    fn negated(&self, i: usize) -> bool {
        self.word(i).negate || self.low(i).contains("n't")
    }
}

/// `text` with every emoji VADER lists replaced by its description, as VADER does it, into
/// `out`: the runs between emoji are copied whole.
fn describe_emoji(text: &str, emoji: &Emoji, out: &mut String) {
    out.clear();
    // Whether the last thing written is a space (true at the start: no space goes first).
    let mut prev_space = true;
    let mut copied = 0;
    for (i, c) in text.char_indices() {
        // Every emoji VADER lists is above U+00A8: most characters need no lookup.
        let Some(d) = (c > '\u{a8}').then(|| emoji.get(c)).flatten() else {
            continue;
        };
        let run = &text[copied..i];
        if let Some(last) = run.chars().next_back() {
            prev_space = last == ' ';
        }
        out.push_str(run);
        if !prev_space {
            out.push(' ');
        }
        out.push_str(d);
        prev_space = false;
        copied = i + c.len_utf8();
    }
    out.push_str(&text[copied..]);
}

/// Appends `word`, lower-cased, to `out`.
fn push_lower(word: &str, out: &mut String) {
    if word.is_ascii() {
        // What `char::to_lowercase` gives for ASCII, without going char by char.
        let from = out.len();
        out.push_str(word);
        out[from..].make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

/// VADER's scores of `text`.
pub(super) fn scores(text: &str, s: &mut Scratch) -> Scores {
    let t = tables();
    // Emoji become their descriptions, as VADER replaces them.
    describe_emoji(text, &t.emoji, &mut s.text);
    let text = s.text.trim_matches(is_space);
    // Tokens: whitespace-separated, ASCII punctuation stripped from both ends unless that
    // leaves two characters or fewer (an emoticon).
    s.lower.clear();
    s.tokens.clear();
    s.words.clear();
    let base = text.as_ptr() as usize - s.text.as_ptr() as usize;
    for tok in text.split(is_space).filter(|t| !t.is_empty()) {
        let stripped = tok.trim_matches(|c: char| c.is_ascii_punctuation());
        let word = if stripped.chars().count() <= 2 {
            tok
        } else {
            stripped
        };
        let start = base + (word.as_ptr() as usize - text.as_ptr() as usize);
        let lo = s.lower.len();
        push_lower(word, &mut s.lower);
        let low = &s.lower[lo..];
        s.words
            .push(t.words.get(low).copied().unwrap_or(NOT_LISTED));
        s.tokens
            .push((start, start + word.len(), lo, s.lower.len()));
    }
    let words = Words {
        text: &s.text,
        lower: &s.lower,
        tokens: &s.tokens,
        words: &s.words,
        entries: &t.entries,
    };
    let n = words.len();
    let caps = (0..n).filter(|&i| is_upper(words.raw(i))).count();
    let cap_diff = n > caps && caps > 0;

    s.sentiments.clear();
    for i in 0..n {
        let low = words.low(i);
        if words.word(i).boost.is_some() || (low == "kind" && i + 1 < n && words.low(i + 1) == "of")
        {
            s.sentiments.push(0.0);
            continue;
        }
        let v = valence(&words, i, cap_diff);
        s.sentiments.push(v);
    }
    but_check(&words, &mut s.sentiments);
    score(&s.sentiments, text)
}

/// The valence of word `i` with the rules that look around it (VADER's `sentiment_valence`).
fn valence(w: &Words<'_>, i: usize, cap_diff: bool) -> f64 {
    let low = w.low(i);
    let Some(base) = w.word(i).valence else {
        return 0.0;
    };
    let n = w.len();
    let in_lex = |j: usize| w.in_lex(j);
    let mut v = base;
    if low == "no" && i + 1 < n && in_lex(i + 1) {
        v = 0.0;
    }
    if (i > 0 && w.low(i - 1) == "no")
        || (i > 1 && w.low(i - 2) == "no")
        || (i > 2 && w.low(i - 3) == "no" && matches!(w.low(i - 1), "or" | "nor"))
    {
        v = base * N_SCALAR;
    }
    if is_upper(w.raw(i)) && cap_diff {
        if v > 0.0 {
            v += C_INCR;
        } else {
            v -= C_INCR;
        }
    }
    for start in 0..3 {
        if i > start && !in_lex(i - (start + 1)) {
            let j = i - (start + 1);
            let mut sc = scalar_inc_dec(w.raw(j), w.word(j).boost, v, cap_diff);
            if start == 1 && sc != 0.0 {
                sc *= 0.95;
            }
            if start == 2 && sc != 0.0 {
                sc *= 0.9;
            }
            v += sc;
            v = negation_check(v, w, start, i);
            if start == 2 {
                v = idioms_check(v, w, i);
            }
        }
    }
    least_check(v, w, i, &in_lex)
}

/// VADER's `scalar_inc_dec` of a word (`raw`, with its `booster` value) before one of `valence`.
fn scalar_inc_dec(raw: &str, booster: Option<f64>, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = booster else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if is_upper(raw) && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn negation_check(v: f64, w: &Words<'_>, start: usize, i: usize) -> f64 {
    let so_this = |s: &str| s == "so" || s == "this";
    match start {
        0 if w.negated(i - 1) => v * N_SCALAR,
        1 if w.low(i - 2) == "never" && so_this(w.low(i - 1)) => v * 1.25,
        1 if w.low(i - 2) == "without" && w.low(i - 1) == "doubt" => v,
        1 if w.negated(i - 2) => v * N_SCALAR,
        2 if (w.low(i - 3) == "never" && so_this(w.low(i - 2))) || so_this(w.low(i - 1)) => {
            v * 1.25
        }
        2 if w.low(i - 3) == "without" && (w.low(i - 2) == "doubt" || w.low(i - 1) == "doubt") => v,
        2 if w.negated(i - 3) => v * N_SCALAR,
        _ => v,
    }
}

/// Whether the words at `ids` (lower-cased), joined by spaces, are `phrase`.
fn words_are(w: &Words<'_>, ids: &[usize], phrase: &str) -> bool {
    let mut parts = phrase.split(' ');
    ids.iter().all(|&j| parts.next() == Some(w.low(j))) && parts.next().is_none()
}

/// The value of the first entry of `table` whose phrase the words at `ids` are.
fn lookup(table: &[(&str, f64)], w: &Words<'_>, ids: &[usize]) -> Option<f64> {
    table
        .iter()
        .find(|(p, _)| words_are(w, ids, p))
        .map(|(_, v)| *v)
}

/// VADER's `_special_idioms_check` (called with i > 2).
fn idioms_check(mut v: f64, w: &Words<'_>, i: usize) -> f64 {
    // Every phrase it looks for is made of `idiom_words` and lies within words i-3 ..= i+2:
    // where none of those is one, nothing can match (and the phrase search is costly).
    if !(i - 3..w.len().min(i + 3)).any(|j| w.word(j).idiom) {
        return v;
    }
    let onezero = [i - 1, i];
    let twoonezero = [i - 2, i - 1, i];
    let twoone = [i - 2, i - 1];
    let threetwoone = [i - 3, i - 2, i - 1];
    let threetwo = [i - 3, i - 2];
    let before: [&[usize]; 5] = [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo];
    if let Some(x) = before.iter().find_map(|ids| lookup(&SPECIAL_CASES, w, ids)) {
        v = x;
    }
    let n = w.len();
    if n > i + 1 {
        if let Some(x) = lookup(&SPECIAL_CASES, w, &[i, i + 1]) {
            v = x;
        }
    }
    if n > i + 2 {
        if let Some(x) = lookup(&SPECIAL_CASES, w, &[i, i + 1, i + 2]) {
            v = x;
        }
    }
    for gram in [&threetwoone[..], &threetwo, &twoone] {
        // Only the boosters of several words can be spelled by two or three words.
        if let Some(b) = lookup(&MULTI_WORD_BOOSTERS, w, gram) {
            v += b;
        }
    }
    v
}

fn least_check(v: f64, w: &Words<'_>, i: usize, in_lex: &dyn Fn(usize) -> bool) -> f64 {
    if i > 1 && !in_lex(i - 1) && w.low(i - 1) == "least" {
        if w.low(i - 2) != "at" && w.low(i - 2) != "very" {
            return v * N_SCALAR;
        }
    } else if i > 0 && !in_lex(i - 1) && w.low(i - 1) == "least" {
        return v * N_SCALAR;
    }
    v
}

/// VADER's `_but_check`, including how it finds each value: by the first equal value in the
/// list (`list.index`), so a repeated valence is scaled at its first position, again.
fn but_check(w: &Words<'_>, s: &mut [f64]) {
    if let Some(bi) = (0..w.len()).find(|&i| w.low(i) == "but") {
        scale_around(s, bi);
    }
}

/// The scaling of [`but_check`] around the `but` at `bi`, in O(n log n): VADER searches the
/// list for every value (`list.index`, quadratic: minutes for a long text), so the first
/// position of each value is kept in a table instead, and updated as values change.
fn scale_around(s: &mut [f64], bi: usize) {
    // Python's == equates 0.0 and -0.0: one key for both.
    let key = |x: f64| if x == 0.0 { 0 } else { x.to_bits() };
    let mut at: HashMap<u64, BTreeSet<usize>> = HashMap::default();
    for (i, &x) in s.iter().enumerate() {
        at.entry(key(x)).or_default().insert(i);
    }
    for k in 0..s.len() {
        let v = s[k];
        if v.is_nan() {
            continue;
        }
        let Some(si) = at.get(&key(v)).and_then(|p| p.first().copied()) else {
            continue;
        };
        let scaled = match si.cmp(&bi) {
            std::cmp::Ordering::Less => v * 0.5,
            std::cmp::Ordering::Greater => v * 1.5,
            std::cmp::Ordering::Equal => continue,
        };
        if let Some(p) = at.get_mut(&key(v)) {
            p.remove(&si);
        }
        at.entry(key(scaled)).or_default().insert(si);
        s[si] = scaled;
    }
}

/// VADER's `score_valence`: punctuation emphasis, the compound score and the three shares.
fn score(sentiments: &[f64], text: &str) -> Scores {
    let mut out = Scores {
        tokens: sentiments.len(),
        sentiment_tokens: sentiments.iter().filter(|&&x| x != 0.0).count(),
        magnitude: sentiments.iter().map(|x| x.abs()).sum(),
        ..Scores::default()
    };
    if sentiments.is_empty() {
        return out;
    }
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = match text.matches('?').count() {
        q @ 2..=3 => q as f64 * 0.18,
        q if q > 3 => 0.96,
        _ => 0.0,
    };
    let punct = ep + qm;
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    out.compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos, mut neg, mut neu) = (0.0f64, 0.0f64, 0.0f64);
    for &x in sentiments {
        if x > 0.0 {
            pos += x + 1.0;
        }
        if x < 0.0 {
            neg += x - 1.0;
        }
        if x == 0.0 {
            neu += 1.0;
        }
    }
    if pos > neg.abs() {
        pos += punct;
    } else if pos < neg.abs() {
        neg -= punct;
    }
    let total = pos + neg.abs() + neu;
    out.pos = (pos / total).abs();
    out.neg = (neg / total).abs();
    out.neu = (neu / total).abs();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VADER's `_but_check` loop as VADER writes it (quadratic), for checking the fast one.
    fn scale_around_as_vader(s: &mut [f64], bi: usize) {
        for k in 0..s.len() {
            let v = s[k];
            let Some(si) = s.iter().position(|&x| x == v) else {
                continue;
            };
            if si < bi {
                s[si] = v * 0.5;
            } else if si > bi {
                s[si] = v * 1.5;
            }
        }
    }

    #[test]
    fn the_but_rule_scales_as_vaders_own_loop() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // Few distinct values, so that repeats (and values a scaling turns into another
        // present value: 1.0 * 1.5 = 1.5) exercise the first-position search; signed zeros too.
        let values = [0.0, -0.0, 1.0, 1.5, 0.75, 2.0, 3.0, -1.0, -0.5, 2.25];
        for case in 0..2_000 {
            let n = rng.random_range(1..40);
            let s: Vec<f64> = (0..n)
                .map(|_| values[rng.random_range(0..values.len())])
                .collect();
            let bi = rng.random_range(0..n);
            let (mut fast, mut slow) = (s.clone(), s.clone());
            scale_around(&mut fast, bi);
            scale_around_as_vader(&mut slow, bi);
            assert_eq!(fast, slow, "case {case}: {s:?}, but at {bi}");
        }
        // A long text with a `but` (100,000 valences): VADER's own loop took minutes here.
        let long = "good ".repeat(100_000) + "but bad";
        assert!(vader(&long).compound.is_finite());
    }

    fn vader(text: &str) -> Scores {
        scores(text, &mut Scratch::default())
    }

    /// VADER's own outputs (tests/fixtures/vader_reference.json, made by
    /// scripts/vendor_vader.py with vaderSentiment 3.3.2): every rule case and 300 real texts,
    /// to VADER's rounding (3 decimals for the shares, 4 for the compound).
    #[test]
    fn scores_match_vader_sentiment_itself() {
        let text = include_str!("../../tests/fixtures/vader_reference.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() >= 300);
        let mut scratch = Scratch::default();
        for it in items {
            let t = it["text"].as_str().unwrap();
            let got = scores(t, &mut scratch);
            let want = |k: &str| it[k].as_f64().unwrap();
            for (k, g, tol) in [
                ("compound", got.compound, 5.1e-5),
                ("pos", got.pos, 5.1e-4),
                ("neg", got.neg, 5.1e-4),
                ("neu", got.neu, 5.1e-4),
            ] {
                assert!(
                    (g - want(k)).abs() <= tol,
                    "{k} of {t:?}: {g} vs VADER {}",
                    want(k)
                );
            }
        }
    }

    #[test]
    fn the_multi_word_boosters_are_those_of_the_table() {
        let multi: Vec<_> = BOOSTERS.iter().filter(|(w, _)| w.contains(' ')).collect();
        assert_eq!(multi, MULTI_WORD_BOOSTERS.iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_rules_move_the_score_the_way_vader_says() {
        let c = |t: &str| vader(t).compound;
        assert!(c("The book was good.") > 0.0);
        assert!(c("The book was not good.") < 0.0);
        assert!(c("The book was very good.") > c("The book was good."));
        assert!(c("The book was good!!!") > c("The book was good."));
        assert!(c("The book was kind of good.") < c("The book was good."));
        assert!(c("The book was GOOD, really.") > c("The book was good, really."));
        assert_eq!(vader("").compound, 0.0);
        assert_eq!(vader("   ").tokens, 0);
        let s = vader("I love it but it is slow");
        assert!((s.pos + s.neg + s.neu - 1.0).abs() < 1e-9);
        assert_eq!(s.tokens, 7);
        assert!(s.sentiment_tokens >= 1);
    }
}
