//! Part-of-speech tags and named entities: a port of Pattern's English Brill tagger as TextBlob
//! ships it (`textblob/_text.py`, `find_tags` with its lexicon, morphology, context and entity
//! rules), computing the tags that code computes (checked against its outputs in the tests).
//!
//! The data is TextBlob's (MIT; Pattern's copy of Eric Brill's tagger v1.14 lexicon and rules,
//! trained on the Brown corpus and the Penn Treebank, and a list of named people, places and
//! organisations), vendored by `scripts/vendor_brill.py` into `data/` and compiled in.
//!
//! How a text is tagged: its tokens ([`tokenize`]) are looked up in the lexicon of 94,000 words
//! (the first token also lower-cased); unknown ones become NNP when title-cased, CD when made of
//! digits and number punctuation, else NN changed by the morphological rules (suffixes,
//! prefixes, neighbours); then the contextual rules retag every token by its neighbours' tags
//! and words; then runs of tokens that spell a listed entity become NNP with its type
//! (`NNP-PERS`, `NNP-LOC`, `NNP-ORG`).

use std::collections::HashMap;
use std::sync::OnceLock;

use foldhash::fast::FixedState;

/// Maps looked up per token, with a fast fixed-seed hash (their keys are compiled in).
type Map<K, V> = HashMap<K, V, FixedState>;

const LEXICON: &str = include_str!("data/brill_lexicon.txt");
const MORPHOLOGY: &str = include_str!("data/brill_morphology.txt");
const CONTEXT: &str = include_str!("data/brill_context.txt");
const ENTITIES: &str = include_str!("data/brill_entities.txt");

/// The morphological rules' commands (each also with an `f` prefix: "only if tagged r[0]").
const MORPH_CMDS: [&str; 9] = [
    "char",
    "haspref",
    "hassuf",
    "addpref",
    "addsuf",
    "deletepref",
    "deletesuf",
    "goodleft",
    "goodright",
];

/// The tags an entity run gets: NNP, or NNPS where the token was one, with the entity's type.
const ENTITY_TAGS: [[&str; 4]; 2] = [
    ["NNP", "NNP-PERS", "NNP-LOC", "NNP-ORG"],
    ["NNPS", "NNPS-PERS", "NNPS-LOC", "NNPS-ORG"],
];

struct MorphRule {
    /// Only for words currently tagged this (the `f` commands).
    only: Option<&'static str>,
    x: &'static str,
    tag: &'static str,
    /// Index into [`MORPH_CMDS`].
    cmd: u8,
}

struct ContextRule {
    to: &'static str,
    /// Index into [`CONTEXT_CMDS`].
    cmd: u8,
    x: &'static str,
    y: &'static str,
}

/// The contextual rules (in file order), and for each tag the indices of the rules that apply
/// to it (its own and the `*` ones, in order), so a token only tries those.
struct ContextRules {
    rules: Vec<ContextRule>,
    by_tag: Map<&'static str, Vec<usize>>,
    any: Vec<usize>,
}

struct Entity {
    /// The lower-cased words.
    words: Vec<String>,
    /// 0 for no type, 1 PERS, 2 LOC, 3 ORG.
    kind: usize,
}

struct Tagger {
    lexicon: Map<&'static str, &'static str>,
    morphology: Vec<MorphRule>,
    context: ContextRules,
    entities: Map<String, Vec<Entity>>,
}

/// Context commands as the rule files spell them, lower-cased.
const CONTEXT_CMDS: [&str; 27] = [
    "prevtag",
    "nexttag",
    "prev2tag",
    "next2tag",
    "prev1or2tag",
    "next1or2tag",
    "prev1or2or3tag",
    "next1or2or3tag",
    "surroundtag",
    "curwd",
    "prevwd",
    "nextwd",
    "prev1or2wd",
    "next1or2wd",
    "next1or2or3wd",
    "prev1or2or3wd",
    "prevwdtag",
    "nextwdtag",
    "wdprevtag",
    "wdnexttag",
    "wdand2aft",
    "wdand2tagbfr",
    "wdand2tagaft",
    "lbigram",
    "rbigram",
    "prevbigram",
    "nextbigram",
];

fn tagger() -> &'static Tagger {
    static TAGGER: OnceLock<Tagger> = OnceLock::new();
    TAGGER.get_or_init(|| {
        let mut lexicon = Map::default();
        for line in LEXICON.lines() {
            let mut parts = line.split(' ');
            if let (Some(w), Some(t)) = (parts.next(), parts.next()) {
                lexicon.insert(w, t);
            }
        }
        let cmd_of = |s: &str| MORPH_CMDS.iter().position(|c| *c == s).map(|k| k as u8);
        let is_cmd = |s: &str| cmd_of(s.strip_prefix('f').unwrap_or(s)).is_some();
        let mut morphology = Vec::new();
        for line in MORPHOLOGY.lines() {
            let r: Vec<&'static str> = line.split_whitespace().collect();
            if r.len() < 4 {
                continue;
            }
            // `ly hassuf 2 RB x`, or `NN s fhassuf 1 NNS x` (which wins when both read as one).
            let tag = r[r.len() - 2];
            let rule = if is_cmd(r[2]) && r[2].starts_with('f') {
                MorphRule {
                    only: Some(r[0]),
                    x: r[1],
                    tag,
                    cmd: cmd_of(&r[2][1..]).unwrap_or(0),
                }
            } else if let Some(cmd) = cmd_of(r[1]) {
                MorphRule {
                    only: None,
                    x: r[0],
                    tag,
                    cmd,
                }
            } else {
                continue;
            };
            morphology.push(rule);
        }
        let mut context = ContextRules {
            rules: Vec::new(),
            by_tag: Map::default(),
            any: Vec::new(),
        };
        let mut froms = Vec::new();
        for line in CONTEXT.lines() {
            let r: Vec<&'static str> = line.split_whitespace().collect();
            if r.len() < 4 {
                continue;
            }
            let lower = r[2].to_lowercase();
            let Some(cmd) = CONTEXT_CMDS.iter().position(|c| *c == lower) else {
                continue;
            };
            let cmd = cmd as u8;
            froms.push(r[0]);
            context.rules.push(ContextRule {
                to: r[1],
                cmd,
                x: r[3],
                y: r.get(4).copied().unwrap_or(""),
            });
        }
        for (k, from) in froms.iter().enumerate() {
            if *from == "*" {
                context.any.push(k);
            }
        }
        for (k, from) in froms.iter().enumerate() {
            if *from != "*" {
                let list = context
                    .by_tag
                    .entry(from)
                    .or_insert_with(|| context.any.clone());
                list.push(k);
                list.sort_unstable();
                list.dedup();
            }
        }
        let mut entities: Map<String, Vec<Entity>> = Map::default();
        for line in ENTITIES.lines() {
            let mut words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
            let kind = match words.last().map(String::as_str) {
                Some("pers") => 1,
                Some("loc") => 2,
                Some("org") => 3,
                _ => 0,
            };
            if kind > 0 {
                words.pop();
            }
            if let Some(first) = words.first().cloned() {
                entities
                    .entry(first)
                    .or_default()
                    .push(Entity { words, kind });
            }
        }
        Tagger {
            lexicon,
            morphology,
            context,
            entities,
        }
    })
}

/// Python's `\w`: a Unicode letter or digit, or `_`.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Python's `str.istitle()`: upper-case letters only after uncased characters, lower-case ones
/// only after cased ones, and at least one cased character.
fn is_title(s: &str) -> bool {
    let (mut cased, mut prev_cased) = (false, false);
    for c in s.chars() {
        if c.is_uppercase() {
            if prev_cased {
                return false;
            }
            prev_cased = true;
            cased = true;
        } else if c.is_lowercase() {
            if !prev_cased {
                return false;
            }
            prev_cased = true;
            cased = true;
        } else {
            prev_cased = false;
        }
    }
    cased
}

/// Pattern's `CD` pattern: digits and `-,.:/%$` only.
fn is_number(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || "-,.:/%$".contains(c))
}

/// The byte offset after the run of chars satisfying `ok` that starts at byte `from` of `s`.
fn run(s: &str, from: usize, ok: impl Fn(char) -> bool) -> usize {
    s[from..]
        .char_indices()
        .find(|&(_, c)| !ok(c))
        .map_or(s.len(), |(k, _)| from + k)
}

/// The char at byte `at` of `s`, if any.
fn char_at(s: &str, at: usize) -> Option<char> {
    s.get(at..).and_then(|r| r.chars().next())
}

/// The byte length of the token starting at `s` (non-empty, no whitespace), by the rules of
/// [`tokenize`]. Looks no further than the token itself, so a long chunk tokenizes in linear
/// time.
fn token_len(s: &str) -> usize {
    // A URL, up to its last word character or slash.
    for prefix in ["https://", "http://", "www."] {
        if s.starts_with(prefix) {
            let from = prefix.len();
            let stop = run(s, from, |c| is_word(c) || "./?=&%#:~+-".contains(c));
            let last = s[from..stop]
                .char_indices()
                .rfind(|&(_, c)| is_word(c) || c == '/');
            if let Some((k, c)) = last {
                return from + k + c.len_utf8();
            }
        }
    }
    // An e-mail address: local@label(.label)+.
    let local = run(s, 0, |c| is_word(c) || ".+-".contains(c));
    if local > 0 && char_at(s, local) == Some('@') {
        let label = |from: usize| run(s, from, |c| is_word(c) || c == '-');
        let mut k = label(local + 1);
        if k > local + 1 {
            let mut parts = 0;
            while char_at(s, k) == Some('.') && label(k + 1) > k + 1 {
                k = label(k + 1);
                parts += 1;
            }
            if parts > 0 {
                return k;
            }
        }
    }
    // A slashed date: 3/4/2009.
    let digits = |from: usize| run(s, from, |c| c.is_ascii_digit());
    let d = digits(0);
    if d > 0 {
        let (mut k, mut parts) = (d, 0);
        while char_at(s, k) == Some('/') && digits(k + 1) > k + 1 {
            k = digits(k + 1);
            parts += 1;
        }
        if parts > 0 {
            return k;
        }
    }
    // Clitics: the word before n't, n't itself, 's 're 've 'll 'd 'm.
    let w = run(s, 0, is_word);
    if w >= 2
        && s[..w].ends_with('n')
        && s[w..].starts_with("'t")
        && s[..w].chars().nth(1).is_some()
    {
        return w - 1;
    }
    if s.starts_with("n't") {
        return 3;
    }
    if let Some(rest) = s.strip_prefix('\'') {
        for c in ["s", "re", "ve", "ll", "d", "m"] {
            if rest.starts_with(c) && !rest[c.len()..].chars().next().is_some_and(is_word) {
                return 1 + c.len();
            }
        }
    }
    // A word, inner hyphens and dots kept; or one other character.
    if w == 0 {
        return s.chars().next().map_or(0, char::len_utf8);
    }
    let mut k = w;
    while matches!(char_at(s, k), Some('-' | '.')) && char_at(s, k + 1).is_some_and(is_word) {
        k = run(s, k + 1, is_word);
    }
    k
}

/// The tagger's tokens of `text` as byte ranges: whitespace-separated chunks split into URLs,
/// e-mail addresses, slashed dates, words (inner hyphens and dots kept: `well-known`, `U.S`),
/// English clitics (`do` `n't`, `it` `'s`) and single other characters.
pub(super) fn tokenize(text: &str, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let base = text.as_ptr() as usize;
    for chunk in text.split(char::is_whitespace).filter(|c| !c.is_empty()) {
        let mut at = chunk.as_ptr() as usize - base;
        let stop = at + chunk.len();
        while at < stop {
            let n = token_len(&text[at..stop]);
            out.push((at, at + n));
            at += n;
        }
    }
}

/// Buffers kept between calls.
#[derive(Default)]
pub(super) struct Scratch {
    tokens: Vec<(usize, usize)>,
    lower: String,
    lowers: Vec<(usize, usize)>,
    tags: Vec<&'static str>,
    buf: String,
}

impl Scratch {
    /// Drops buffers a long text grew past `keep` entries or bytes.
    pub(super) fn trim(&mut self, keep: usize) {
        if self.tokens.capacity() > keep || self.lower.capacity() > keep {
            *self = Scratch::default();
        }
    }
}

/// Tags `tokens` (the words themselves) into `tags`, as Pattern's `find_tags` does.
fn tag_into(tokens: &[&str], lower: &[&str], tags: &mut Vec<&'static str>, buf: &mut String) {
    let t = tagger();
    let n = tokens.len();
    let known: Vec<Option<&'static str>> = tokens
        .iter()
        .enumerate()
        .map(|(i, tok)| {
            t.lexicon
                .get(tok)
                .or_else(|| {
                    if i == 0 {
                        t.lexicon.get(lower[i])
                    } else {
                        None
                    }
                })
                .copied()
        })
        .collect();
    tags.clear();
    for (i, tok) in tokens.iter().enumerate() {
        let tag = match known[i] {
            Some(tag) => tag,
            None if is_title(tok) => "NNP",
            None if is_number(tok) => "CD",
            None => morphology(
                t,
                tok,
                (i > 0).then(|| tokens[i - 1]),
                tokens.get(i + 1).copied(),
                buf,
            ),
        };
        tags.push(tag);
    }
    context(t, tokens, tags);
    entities(t, lower, tags);
    debug_assert_eq!(tags.len(), n);
}

fn morphology(
    t: &Tagger,
    w: &str,
    prev: Option<&str>,
    next: Option<&str>,
    buf: &mut String,
) -> &'static str {
    let mut tag = "NN";
    let mut joined = |a: &str, b: &str| {
        buf.clear();
        buf.push_str(a);
        buf.push_str(b);
        t.lexicon.contains_key(buf.as_str())
    };
    for r in &t.morphology {
        if r.only.is_some_and(|o| o != tag) {
            continue;
        }
        let x = r.x;
        // In MORPH_CMDS' order.
        let hit = match r.cmd {
            0 => w.contains(x),
            1 => w.starts_with(x),
            2 => w.ends_with(x),
            3 => joined(x, w),
            4 => joined(w, x),
            5 => w
                .strip_prefix(x)
                .is_some_and(|rest| t.lexicon.contains_key(rest)),
            6 => w
                .strip_suffix(x)
                .is_some_and(|rest| t.lexicon.contains_key(rest)),
            7 => next == Some(x),
            8 => prev == Some(x),
            _ => false,
        };
        if hit {
            tag = r.tag;
        }
    }
    tag
}

fn context(t: &Tagger, tokens: &[&str], tags: &mut [&'static str]) {
    let n = tokens.len();
    for i in 0..n {
        // Rules match on the tag the token had when its turn came (Pattern keeps that one).
        let own = tags[i];
        let word = |j: isize| -> &str {
            let k = i as isize + j;
            if k < 0 || k >= n as isize {
                "STAART"
            } else {
                tokens[k as usize]
            }
        };
        let which = t.context.by_tag.get(own).unwrap_or(&t.context.any);
        for r in which.iter().map(|&k| &t.context.rules[k]) {
            let tag = |j: isize| -> &str {
                let k = i as isize + j;
                if k < 0 || k >= n as isize {
                    "STAART"
                } else {
                    tags[k as usize]
                }
            };
            let (x, y) = (r.x, r.y);
            // In CONTEXT_CMDS' order; the two "or3wd" commands are listed by Pattern but never
            // matched by its code, so not here either.
            let hit = match r.cmd {
                0 => x == tag(-1),
                1 => x == tag(1),
                2 => x == tag(-2),
                3 => x == tag(2),
                4 => x == tag(-1) || x == tag(-2),
                5 => x == tag(1) || x == tag(2),
                6 => x == tag(-1) || x == tag(-2) || x == tag(-3),
                7 => x == tag(1) || x == tag(2) || x == tag(3),
                8 => x == tag(-1) && y == tag(1),
                9 => x == word(0),
                10 => x == word(-1),
                11 => x == word(1),
                12 => x == word(-1) || x == word(-2),
                13 => x == word(1) || x == word(2),
                16 => x == word(-1) && y == tag(-1),
                17 => x == word(1) && y == tag(1),
                18 => x == tag(-1) && y == word(0),
                19 => x == word(0) && y == tag(1),
                20 => x == word(0) && y == word(2),
                21 => x == tag(-2) && y == word(0),
                22 => x == word(0) && y == tag(2),
                23 => x == word(-1) && y == word(0),
                24 => x == word(0) && y == word(1),
                25 => x == tag(-2) && y == tag(-1),
                26 => x == tag(1) && y == tag(2),
                _ => false,
            };
            if hit {
                tags[i] = r.to;
            }
        }
    }
}

fn entities(t: &Tagger, lower: &[&str], tags: &mut [&'static str]) {
    let n = lower.len();
    let mut i = 0;
    while i < n {
        let w = lower[i];
        if w.starts_with("http://") || is_www(w) || is_email(w) {
            tags[i] = "NNP";
        }
        if let Some(list) = t.entities.get(w) {
            for e in list {
                let len = e.words.len();
                if i + len <= n && e.words.iter().zip(&lower[i..]).all(|(a, b)| a == b) {
                    for tag in &mut tags[i..i + len] {
                        *tag = ENTITY_TAGS[usize::from(*tag == "NNPS")][e.kind];
                    }
                    i += len - 1;
                    break;
                }
            }
        }
        i += 1;
    }
}

/// Pattern's `^www\..*?\.[com|org|net|edu|de|uk]$` (a character class: the last character is
/// one of those letters or `|`, after a dot).
fn is_www(w: &str) -> bool {
    let c: Vec<char> = w.chars().collect();
    c.len() >= 6
        && w.starts_with("www.")
        && c[c.len() - 2] == '.'
        && "com|orgnetdeuk".contains(c[c.len() - 1])
}

/// Pattern's `^[\w\-\.\+]+@(\w[\w\-]+\.)+[\w\-]+$`.
fn is_email(w: &str) -> bool {
    let Some((local, domain)) = w.split_once('@') else {
        return false;
    };
    let part = |s: &str| !s.is_empty() && s.chars().all(|c| is_word(c) || c == '-');
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.chars().all(|c| is_word(c) || "-.+".contains(c))
        && labels.len() >= 2
        && labels[..labels.len() - 1]
            .iter()
            .all(|l| l.chars().count() >= 2 && l.chars().next().is_some_and(is_word) && part(l))
        && part(labels[labels.len() - 1])
}

/// The tags of `text`'s tokens, with the tokens' byte ranges, in `s`.
pub(super) fn tag<'s>(
    text: &str,
    s: &'s mut Scratch,
) -> (&'s [(usize, usize)], &'s [&'static str]) {
    tokenize(text, &mut s.tokens);
    s.lower.clear();
    s.lowers.clear();
    for &(a, b) in &s.tokens {
        let from = s.lower.len();
        s.lower
            .extend(text[a..b].chars().flat_map(char::to_lowercase));
        s.lowers.push((from, s.lower.len()));
    }
    let tokens: Vec<&str> = s.tokens.iter().map(|&(a, b)| &text[a..b]).collect();
    let lower: Vec<&str> = s.lowers.iter().map(|&(a, b)| &s.lower[a..b]).collect();
    tag_into(&tokens, &lower, &mut s.tags, &mut s.buf);
    (&s.tokens, &s.tags)
}

/// What the feature vector reads from a text's tags: counts over its word tokens (tokens with
/// a letter or digit).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Counts {
    pub words: f64,
    pub nouns: f64,
    pub proper_nouns: f64,
    pub verbs: f64,
    pub past_verbs: f64,
    pub adjectives: f64,
    pub adverbs: f64,
    pub pronouns: f64,
    pub numerals: f64,
    pub interjections: f64,
    /// Shannon entropy in bits of the word tokens' tags.
    pub tag_entropy: f64,
    pub persons: f64,
    pub locations: f64,
    pub organisations: f64,
    pub dates: f64,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const MONTH_ABBREVIATIONS: [&str; 13] = [
    "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "Febr",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Whether a token names a date: a weekday, a month (`March` and `May` only capitalized, and
/// the abbreviations `Jan` ... `Dec` only so), a slashed date (`3/4/2009`), an ISO date
/// (`2009-03-04`), or a year from 1900 to 2099.
fn is_date(tok: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let named = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(tok));
    if named(&WEEKDAYS) || MONTH_ABBREVIATIONS.contains(&tok) {
        return true;
    }
    if named(&MONTHS) {
        return !(tok.eq_ignore_ascii_case("march") || tok.eq_ignore_ascii_case("may"))
            || is_title(tok);
    }
    if tok.contains('/') {
        let parts: Vec<&str> = tok.split('/').collect();
        return (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    }
    let iso: Vec<&str> = tok.split('-').collect();
    if iso.len() == 3 {
        return digits(iso[0], 4) && digits(iso[1], 2) && digits(iso[2], 2);
    }
    digits(tok, 4) && (1900..=2099).contains(&tok.parse::<u32>().unwrap_or(0))
}

/// [`Counts`] of `text`.
pub(super) fn counts(text: &str, s: &mut Scratch) -> Counts {
    let (ranges, tags) = tag(text, s);
    let mut c = Counts::default();
    let mut seen: Vec<(&str, f64)> = Vec::new();
    for (&(a, b), &tag) in ranges.iter().zip(tags) {
        let tok = &text[a..b];
        if !tok.chars().any(char::is_alphanumeric) {
            continue;
        }
        c.words += 1.0;
        let (base, kind) = tag.split_once('-').unwrap_or((tag, ""));
        match base {
            "NN" | "NNS" => c.nouns += 1.0,
            "NNP" | "NNPS" => c.proper_nouns += 1.0,
            "VB" | "VBG" | "VBP" | "VBZ" | "MD" => c.verbs += 1.0,
            "VBD" | "VBN" => {
                c.verbs += 1.0;
                c.past_verbs += 1.0;
            }
            "JJ" | "JJR" | "JJS" => c.adjectives += 1.0,
            "RB" | "RBR" | "RBS" | "WRB" => c.adverbs += 1.0,
            "PRP" | "PRP$" | "WP" | "WP$" => c.pronouns += 1.0,
            "CD" => c.numerals += 1.0,
            "UH" => c.interjections += 1.0,
            _ => {}
        }
        match kind {
            "PERS" => c.persons += 1.0,
            "LOC" => c.locations += 1.0,
            "ORG" => c.organisations += 1.0,
            _ => {}
        }
        if is_date(tok) {
            c.dates += 1.0;
        }
        match seen.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, n)) => *n += 1.0,
            None => seen.push((tag, 1.0)),
        }
    }
    if c.words > 0.0 {
        let n = c.words;
        c.tag_entropy = seen
            .iter()
            .map(|&(_, k)| -(k / n) * (k / n).log2())
            .sum::<f64>()
            .max(0.0);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pattern's own tags (tests/fixtures/pos_reference.json, made by scripts/vendor_brill.py
    /// with textblob 0.20.1's `_text.py`): every rule case and 150 demo texts, tag for tag; and
    /// this tokenizer splits each text into the tokens the fixture was tagged from.
    #[test]
    fn tags_match_patterns_tagger_itself() {
        let text = include_str!("../../tests/fixtures/pos_reference.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() >= 150);
        let mut scratch = Scratch::default();
        let (mut tokens_seen, mut mismatched) = (0, Vec::new());
        for it in items {
            let text = it["text"].as_str().unwrap();
            let want_tokens: Vec<&str> = it["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let want_tags: Vec<&str> = it["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let (ranges, tags) = tag(text, &mut scratch);
            let got_tokens: Vec<&str> = ranges.iter().map(|&(a, b)| &text[a..b]).collect();
            assert_eq!(got_tokens, want_tokens, "tokens of {text:?}");
            tokens_seen += tags.len();
            if tags != want_tags.as_slice() {
                mismatched.push((text.to_string(), tags.to_vec(), want_tags.clone()));
            }
        }
        assert!(tokens_seen > 5000);
        assert!(
            mismatched.is_empty(),
            "{:#?}",
            &mismatched[..mismatched.len().min(3)]
        );
    }

    #[test]
    fn tokens_split_clitics_and_keep_urls_addresses_and_dates() {
        let mut out = Vec::new();
        let text = "I don't know (www.x.org/a?b=1), mail a.b@c.co.uk on 3/4/2009; it's co-op.";
        tokenize(text, &mut out);
        let got: Vec<&str> = out.iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(
            got,
            [
                "I",
                "do",
                "n't",
                "know",
                "(",
                "www.x.org/a?b=1",
                ")",
                ",",
                "mail",
                "a.b@c.co.uk",
                "on",
                "3/4/2009",
                ";",
                "it",
                "'s",
                "co-op",
                "."
            ]
        );
        assert!(is_title("Hello") && is_title("Hello-World") && !is_title("HELLO"));
        assert!(!is_title("McDonald") && !is_title("1st") && is_title("A"));
    }

    #[test]
    fn dates_are_names_of_days_and_months_and_date_shaped_numbers() {
        for (tok, yes) in [
            ("Monday", true),
            ("december", true),
            ("March", true),
            ("march", false),
            ("May", true),
            ("may", false),
            ("Sept", true),
            ("3/4/2009", true),
            ("12/25", true),
            ("1/2/3/4", false),
            ("2009-03-04", true),
            ("2009-3-4", false),
            ("1999", true),
            ("2150", false),
            ("123", false),
        ] {
            assert_eq!(is_date(tok), yes, "{tok}");
        }
    }
}
