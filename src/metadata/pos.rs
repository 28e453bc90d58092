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

/// What Pattern's context rules see beyond either end of the text, as a tag and as a word.
const STAART: &str = "STAART";

/// A part-of-speech tag, interned when the tagger is loaded: an index into [`Tagger::names`].
/// The rules compare these small integers instead of tag strings (string compares were a third
/// of the tagger's time).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Tag(u8);

/// A word one of the contextual rules names, interned when the tagger is loaded;
/// [`NO_WORD`] stands for every other token, which no rule names, so none can match it.
type WordId = u16;
const NO_WORD: WordId = WordId::MAX;

/// How many tags or words the contextual rules look past a token on either side: the tag and
/// word buffers are padded with this many [`STAART`]s so those lookups need no bounds checks.
const PAD: usize = 3;

/// Interns strings into consecutive small ids.
struct Interner<T> {
    ids: Map<&'static str, T>,
    names: Vec<&'static str>,
}

impl<T: Copy> Interner<T> {
    fn new() -> Self {
        Interner {
            ids: Map::default(),
            names: Vec::new(),
        }
    }

    /// The id of `name`, a new one if it has none yet; `make` turns an index into an id, and
    /// fails if the ids ran out (the data has a fixed, small number of tags and words).
    fn intern(&mut self, name: &'static str, make: impl Fn(usize) -> Option<T>) -> T {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = make(self.names.len()).expect("the tagger's data has few tags and rule words");
        self.names.push(name);
        self.ids.insert(name, id);
        id
    }
}

fn tag_id(k: usize) -> Option<Tag> {
    u8::try_from(k).ok().map(Tag)
}

fn word_id(k: usize) -> Option<WordId> {
    WordId::try_from(k).ok().filter(|&w| w != NO_WORD)
}

struct MorphRule {
    /// Only for words currently tagged this (the `f` commands).
    only: Option<Tag>,
    x: &'static str,
    tag: Tag,
    /// Index into [`MORPH_CMDS`].
    cmd: u8,
    /// For `addpref` and `addsuf` rules, the rule's own bit of [`Entry::affixes`].
    affix: u32,
}

/// A contextual rule. `x` and `y` are a [`Tag`]'s number or a [`WordId`], depending on what
/// the command compares them with.
#[derive(Clone, Copy)]
struct ContextRule {
    to: Tag,
    /// Index into [`CONTEXT_CMDS`].
    cmd: u8,
    x: u16,
    y: u16,
}

struct Entity {
    /// The lower-cased words.
    words: Vec<String>,
    /// 0 for no type, 1 PERS, 2 LOC, 3 ORG.
    kind: usize,
}

/// What [`counts`] counts a tag as, worked out from its name once, when the tagger is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Noun,
    ProperNoun,
    Verb,
    PastVerb,
    Adjective,
    Adverb,
    Pronoun,
    Numeral,
    Interjection,
    Other,
}

/// The named-entity type a tag carries (its suffix after `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntityKind {
    Person,
    Location,
    Organisation,
    None,
}

/// [`Class`] and [`EntityKind`] of a tag named `name`.
fn classify(name: &str) -> (Class, EntityKind) {
    let (base, kind) = name.split_once('-').unwrap_or((name, ""));
    let class = match base {
        "NN" | "NNS" => Class::Noun,
        "NNP" | "NNPS" => Class::ProperNoun,
        "VB" | "VBG" | "VBP" | "VBZ" | "MD" => Class::Verb,
        "VBD" | "VBN" => Class::PastVerb,
        "JJ" | "JJR" | "JJS" => Class::Adjective,
        "RB" | "RBR" | "RBS" | "WRB" => Class::Adverb,
        "PRP" | "PRP$" | "WP" | "WP$" => Class::Pronoun,
        "CD" => Class::Numeral,
        "UH" => Class::Interjection,
        _ => Class::Other,
    };
    let kind = match kind {
        "PERS" => EntityKind::Person,
        "LOC" => EntityKind::Location,
        "ORG" => EntityKind::Organisation,
        _ => EntityKind::None,
    };
    (class, kind)
}

/// What the tagger knows about one word: its lexicon tag, its id as a word the contextual rules
/// name, and the entities that start with it. One table holds all three, so a token costs one
/// lookup instead of three.
#[derive(Clone, Copy)]
struct Entry {
    /// The lexicon's tag, `None` for a word only the rules or the entity list know.
    tag: Option<Tag>,
    /// [`NO_WORD`] unless a contextual rule names the word.
    word: WordId,
    /// Index into [`Tagger::entities`] of the entities whose first (lower-cased) word this is.
    entities: Option<u32>,
    /// The `addpref`/`addsuf` morphological rules ([`MorphRule::affix`]) whose affix makes a
    /// lexicon word of this word: those rules test a bit instead of joining and looking up.
    affixes: u32,
}

/// An [`Entry`] that knows nothing.
const UNKNOWN: Entry = Entry {
    tag: None,
    word: NO_WORD,
    entities: None,
    affixes: 0,
};

struct Tagger {
    /// The lexicon, the rule words and the entities' first words, in one table.
    table: Map<&'static str, Entry>,
    /// Every tag's name, by [`Tag`] number; only the parity test reads tags back as names.
    #[cfg(test)]
    names: Vec<&'static str>,
    /// Every tag's [`classify`], by [`Tag`] number.
    classes: Vec<(Class, EntityKind)>,
    morphology: Vec<MorphRule>,
    /// The contextual rules that apply to a token with each tag (by [`Tag`] number): its own
    /// and the `*` ones, in file order, so a token only tries those.
    context: Vec<Vec<ContextRule>>,
    /// The listed entities, grouped by their first word ([`Entry::entities`] indexes this).
    entities: Vec<Vec<Entity>>,
    /// Tags and words the code itself uses.
    nn: Tag,
    nnp: Tag,
    nnps: Tag,
    cd: Tag,
    staart: Tag,
    staart_word: WordId,
    /// [`ENTITY_TAGS`], interned.
    entity_tags: [[Tag; 4]; 2],
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

/// Whether the command numbered `cmd` (in [`CONTEXT_CMDS`]) compares its `x` and its `y` with
/// words (true) or tags (false); must agree with the `match` in [`context`].
fn operands_are_words(cmd: u8) -> (bool, bool) {
    match cmd {
        9..=15 => (true, false),
        16 | 17 | 19 | 22 => (true, false),
        18 | 21 => (false, true),
        20 | 23 | 24 => (true, true),
        _ => (false, false),
    }
}

fn tagger() -> &'static Tagger {
    static TAGGER: OnceLock<Tagger> = OnceLock::new();
    TAGGER.get_or_init(load)
}

/// Parses the vendored data and interns its tags and rule words.
fn load() -> Tagger {
    let mut tags = Interner::new();
    let mut tag = |name: &'static str| tags.intern(name, tag_id);
    let mut table: Map<&'static str, Entry> = Map::default();
    for line in LEXICON.lines() {
        let mut parts = line.split(' ');
        if let (Some(w), Some(t)) = (parts.next(), parts.next()) {
            table.entry(w).or_insert(UNKNOWN).tag = Some(tag(t));
        }
    }
    let mut morphology = load_morphology(&mut tag);
    let (context_rules, words) = load_context(&mut tag);
    let entity_tags = ENTITY_TAGS.map(|row| row.map(&mut tag));
    let (nn, nnp, nnps, cd, staart) = (tag("NN"), tag("NNP"), tag("NNPS"), tag("CD"), tag(STAART));
    let names = tags.names;
    let context = (0..names.len())
        .map(|k| {
            let own = names[k];
            context_rules
                .iter()
                .filter(|(from, _)| *from == "*" || *from == own)
                .map(|&(_, r)| r)
                .collect()
        })
        .collect();
    for (&w, &id) in &words.ids {
        table.entry(w).or_insert(UNKNOWN).word = id;
    }
    add_affixes(&mut table, &mut morphology);
    let mut entities = Vec::new();
    for (first, list) in load_entities() {
        let k = u32::try_from(entities.len()).expect("a few hundred entities");
        // The table lives as long as the process (a `OnceLock`): its few hundred keys that are
        // not slices of the compiled-in data are leaked once, so every key is a `&'static str`
        // (a smaller slot than an owned string, and the lexicon's 94,000 keys are not copied).
        // A word the table already holds keeps its key: leaking a copy that the table then
        // drops would lose it for good.
        let first: &'static str = match table.get_key_value(first.as_str()) {
            Some((&key, _)) => key,
            None => Box::leak(first.into_boxed_str()),
        };
        table.entry(first).or_insert(UNKNOWN).entities = Some(k);
        entities.push(list);
    }
    Tagger {
        table,
        classes: names.iter().map(|n| classify(n)).collect(),
        #[cfg(test)]
        names,
        morphology,
        context,
        staart_word: words.ids[STAART],
        entities,
        nn,
        nnp,
        nnps,
        cd,
        staart,
        entity_tags,
    }
}

/// Gives each `addpref`/`addsuf` rule a bit, and sets it in the [`Entry`] of every word that
/// the rule's affix turns into a lexicon word: `w + x` is a lexicon key exactly when the key
/// ends with `x` and `w` is the rest.
fn add_affixes(table: &mut Map<&'static str, Entry>, morphology: &mut [MorphRule]) {
    let mut adds = Vec::new();
    for r in morphology.iter_mut().filter(|r| matches!(r.cmd, 3 | 4)) {
        let bit = u32::try_from(adds.len())
            .ok()
            .and_then(|k| 1u32.checked_shl(k))
            .expect("the morphology has few affix rules");
        r.affix = bit;
        adds.push((r.cmd, r.x, bit));
    }
    let mut stems: Vec<(&'static str, u32)> = Vec::new();
    for (&key, entry) in table.iter() {
        if entry.tag.is_none() {
            continue;
        }
        for &(cmd, x, bit) in &adds {
            let stem = if cmd == 3 {
                key.strip_prefix(x)
            } else {
                key.strip_suffix(x)
            };
            if let Some(stem) = stem {
                stems.push((stem, bit));
            }
        }
    }
    for (stem, bit) in stems {
        table.entry(stem).or_insert(UNKNOWN).affixes |= bit;
    }
}

fn load_morphology(tag: &mut impl FnMut(&'static str) -> Tag) -> Vec<MorphRule> {
    let cmd_of = |s: &str| MORPH_CMDS.iter().position(|c| *c == s).map(|k| k as u8);
    let is_cmd = |s: &str| cmd_of(s.strip_prefix('f').unwrap_or(s)).is_some();
    let mut morphology = Vec::new();
    for line in MORPHOLOGY.lines() {
        let r: Vec<&'static str> = line.split_whitespace().collect();
        if r.len() < 4 {
            continue;
        }
        // `ly hassuf 2 RB x`, or `NN s fhassuf 1 NNS x` (which wins when both read as one).
        let to = tag(r[r.len() - 2]);
        let rule = if is_cmd(r[2]) && r[2].starts_with('f') {
            MorphRule {
                only: Some(tag(r[0])),
                x: r[1],
                tag: to,
                cmd: cmd_of(&r[2][1..]).unwrap_or(0),
                affix: 0,
            }
        } else if let Some(cmd) = cmd_of(r[1]) {
            MorphRule {
                only: None,
                x: r[0],
                tag: to,
                cmd,
                affix: 0,
            }
        } else {
            continue;
        };
        morphology.push(rule);
    }
    morphology
}

/// A contextual rule with the tag it applies to (`*` for any).
type RuleFor = (&'static str, ContextRule);

/// The contextual rules in file order, and the interned words they name ([`STAART`] always
/// among them).
fn load_context(tag: &mut impl FnMut(&'static str) -> Tag) -> (Vec<RuleFor>, Interner<WordId>) {
    let mut words = Interner::new();
    words.intern(STAART, word_id);
    let mut rules = Vec::new();
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
        let to = tag(r[1]);
        let (x_is_word, y_is_word) = operands_are_words(cmd);
        let mut operand = |s: &'static str, is_word: bool| {
            if is_word {
                words.intern(s, word_id)
            } else {
                u16::from(tag(s).0)
            }
        };
        let rule = ContextRule {
            to,
            cmd,
            x: operand(r[3], x_is_word),
            y: operand(r.get(4).copied().unwrap_or(""), y_is_word),
        };
        rules.push((r[0], rule));
    }
    (rules, words)
}

fn load_entities() -> Map<String, Vec<Entity>> {
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
    entities
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
            .all(|c| matches!(c, '0'..='9' | '-' | ',' | '.' | ':' | '/' | '%' | '$'))
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
            let stop = run(s, from, |c| {
                is_word(c)
                    || matches!(
                        c,
                        '.' | '/' | '?' | '=' | '&' | '%' | '#' | ':' | '~' | '+' | '-'
                    )
            });
            let last = s[from..stop]
                .char_indices()
                .rfind(|&(_, c)| is_word(c) || c == '/');
            if let Some((k, c)) = last {
                return from + k + c.len_utf8();
            }
        }
    }
    // An e-mail address: local@label(.label)+.
    // (Only where the chunk has an `@`: most have none, and then its scan is skipped.)
    let local = if s.as_bytes().contains(&b'@') {
        run(s, 0, |c| is_word(c) || matches!(c, '.' | '+' | '-'))
    } else {
        0
    };
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
    /// The tokens' byte ranges in the text.
    tokens: Vec<(usize, usize)>,
    /// The tokens lower-cased, one after the other, and each one's byte range in it.
    lower: String,
    lowers: Vec<(usize, usize)>,
    /// The tokens' tags, with [`PAD`] [`STAART`] tags on either side.
    tags: Vec<Tag>,
    /// The tokens' [`WordId`]s, padded like `tags`.
    words: Vec<WordId>,
    /// The entities each lower-cased token starts ([`Entry::entities`]).
    ents: Vec<Option<u32>>,
    /// The word tokens' tags with their counts, in order of first appearance (the order the
    /// tag entropy sums them in).
    seen: Vec<(Tag, f64)>,
}

impl Scratch {
    /// Drops buffers a long text grew past `keep` entries or bytes.
    pub(super) fn trim(&mut self, keep: usize) {
        if self.tokens.capacity() > keep || self.lower.capacity() > keep {
            *self = Scratch::default();
        }
    }
}

/// Appends each token of `text` at `tokens`, lower-cased, to `lower`, and its range there to
/// `lowers`.
fn lower_tokens(
    text: &str,
    tokens: &[(usize, usize)],
    lower: &mut String,
    lowers: &mut Vec<(usize, usize)>,
) {
    lower.clear();
    lowers.clear();
    for &(a, b) in tokens {
        let from = lower.len();
        let tok = &text[a..b];
        if tok.is_ascii() {
            // What `char::to_lowercase` gives for ASCII, without going char by char.
            lower.push_str(tok);
            lower[from..].make_ascii_lowercase();
        } else {
            lower.extend(tok.chars().flat_map(char::to_lowercase));
        }
        lowers.push((from, lower.len()));
    }
}

/// Tags `text`'s tokens as Pattern's `find_tags` does: into `s.tokens` and `s.tags` (padded).
fn tag_text(text: &str, s: &mut Scratch) {
    let t = tagger();
    tokenize(text, &mut s.tokens);
    lower_tokens(text, &s.tokens, &mut s.lower, &mut s.lowers);
    let n = s.tokens.len();
    let token = |i: usize| {
        let (a, b) = s.tokens[i];
        &text[a..b]
    };
    s.tags.clear();
    s.words.clear();
    s.tags.resize(PAD, t.staart);
    s.words.resize(PAD, t.staart_word);
    s.ents.clear();
    for i in 0..n {
        let tok = token(i);
        let entry = t.table.get(tok).copied().unwrap_or(UNKNOWN);
        s.words.push(entry.word);
        // The lower-cased token: the key of the entity list, and the first token's second try
        // in the lexicon (a capital that starts a sentence). Mostly it is the token itself.
        let (a, b) = s.lowers[i];
        let low = &s.lower[a..b];
        // (For ASCII: no capital. A byte scan, not a `memcmp` call.)
        let same = if tok.is_ascii() {
            !tok.bytes().any(|b| b.is_ascii_uppercase())
        } else {
            low == tok
        };
        let lowered = if same {
            entry
        } else {
            t.table.get(low).copied().unwrap_or(UNKNOWN)
        };
        s.ents.push(lowered.entities);
        let known = entry.tag.or(if i == 0 { lowered.tag } else { None });
        let tag = match known {
            Some(tag) => tag,
            None if is_title(tok) => t.nnp,
            None if is_number(tok) => t.cd,
            None => {
                let prev = (i > 0).then(|| token(i - 1));
                let next = (i + 1 < n).then(|| token(i + 1));
                morphology(t, tok, entry.affixes, prev, next)
            }
        };
        s.tags.push(tag);
    }
    s.tags.resize(n + 2 * PAD, t.staart);
    s.words.resize(n + 2 * PAD, t.staart_word);
    context(t, &s.words, &mut s.tags);
    entities(t, &s.lower, &s.lowers, &s.ents, &mut s.tags[PAD..PAD + n]);
}

/// Whether the lexicon has `w` (the table also holds words that only the rules name).
fn in_lexicon(t: &Tagger, w: &str) -> bool {
    t.table.get(w).is_some_and(|e| e.tag.is_some())
}

/// The tag of the unknown word `w` by the morphological rules; `affixes` is its
/// [`Entry::affixes`], `prev` and `next` its neighbours.
fn morphology(t: &Tagger, w: &str, affixes: u32, prev: Option<&str>, next: Option<&str>) -> Tag {
    let mut tag = t.nn;
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
            // `x + w` or `w + x` is a lexicon word (see `add_affixes`).
            3 | 4 => affixes & r.affix != 0,
            5 => w.strip_prefix(x).is_some_and(|rest| in_lexicon(t, rest)),
            6 => w.strip_suffix(x).is_some_and(|rest| in_lexicon(t, rest)),
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

/// Pattern's contextual rules over `tags` and `words`, both padded with [`PAD`] entries on
/// either side, so the neighbours of a token at `i` are plain `i ± k` indices.
fn context(t: &Tagger, words: &[WordId], tags: &mut [Tag]) {
    for i in PAD..tags.len() - PAD {
        // Rules match on the tag the token had when its turn came (Pattern keeps that one).
        let own = tags[i];
        // No rule reads the token's own tag (only its neighbours' tags and the words), so the
        // last rule that matches decides: try them from the last and stop at the first hit.
        for r in t.context[usize::from(own.0)].iter().rev() {
            let tag = |k: usize| u16::from(tags[k].0);
            let word = |k: usize| words[k];
            let (x, y) = (r.x, r.y);
            // In CONTEXT_CMDS' order; the two "or3wd" commands are listed by Pattern but never
            // matched by its code, so not here either. Which operand is a word and which a tag
            // must agree with `operands_are_words`.
            let hit = match r.cmd {
                0 => x == tag(i - 1),
                1 => x == tag(i + 1),
                2 => x == tag(i - 2),
                3 => x == tag(i + 2),
                4 => x == tag(i - 1) || x == tag(i - 2),
                5 => x == tag(i + 1) || x == tag(i + 2),
                6 => x == tag(i - 1) || x == tag(i - 2) || x == tag(i - 3),
                7 => x == tag(i + 1) || x == tag(i + 2) || x == tag(i + 3),
                8 => x == tag(i - 1) && y == tag(i + 1),
                9 => x == word(i),
                10 => x == word(i - 1),
                11 => x == word(i + 1),
                12 => x == word(i - 1) || x == word(i - 2),
                13 => x == word(i + 1) || x == word(i + 2),
                16 => x == word(i - 1) && y == tag(i - 1),
                17 => x == word(i + 1) && y == tag(i + 1),
                18 => x == tag(i - 1) && y == word(i),
                19 => x == word(i) && y == tag(i + 1),
                20 => x == word(i) && y == word(i + 2),
                21 => x == tag(i - 2) && y == word(i),
                22 => x == word(i) && y == tag(i + 2),
                23 => x == word(i - 1) && y == word(i),
                24 => x == word(i) && y == word(i + 1),
                25 => x == tag(i - 2) && y == tag(i - 1),
                26 => x == tag(i + 1) && y == tag(i + 2),
                _ => false,
            };
            if hit {
                tags[i] = r.to;
                break;
            }
        }
    }
}

/// Pattern's entity pass over the lower-cased tokens (`lowers`' ranges of `lower`, with the
/// entities each one starts in `ents`) and their tags: URLs and e-mail addresses become NNP,
/// and runs of tokens that spell a listed entity NNP (NNPS where the token was one) with the
/// entity's type.
fn entities(
    t: &Tagger,
    lower: &str,
    lowers: &[(usize, usize)],
    ents: &[Option<u32>],
    tags: &mut [Tag],
) {
    let low = |i: usize| &lower[lowers[i].0..lowers[i].1];
    let n = lowers.len();
    let mut i = 0;
    while i < n {
        let w = low(i);
        if w.starts_with("http://") || is_www(w) || is_email(w) {
            tags[i] = t.nnp;
        }
        if let Some(list) = ents[i].map(|k| &t.entities[k as usize]) {
            for e in list {
                let len = e.words.len();
                if i + len <= n && e.words.iter().enumerate().all(|(k, a)| *a == low(i + k)) {
                    for tag in &mut tags[i..i + len] {
                        *tag = t.entity_tags[usize::from(*tag == t.nnps)][e.kind];
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
    if !w.starts_with("www.") {
        return false;
    }
    let mut back = w.chars().rev();
    let (last, before) = (back.next(), back.next());
    w.chars().count() >= 6
        && before == Some('.')
        && last.is_some_and(|c| "com|orgnetdeuk".contains(c))
}

/// Pattern's `^[\w\-\.\+]+@(\w[\w\-]+\.)+[\w\-]+$`.
fn is_email(w: &str) -> bool {
    let Some((local, domain)) = w.split_once('@') else {
        return false;
    };
    let part = |s: &str| !s.is_empty() && s.chars().all(|c| is_word(c) || c == '-');
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local
            .chars()
            .all(|c| is_word(c) || matches!(c, '-' | '.' | '+'))
        && labels.len() >= 2
        && labels[..labels.len() - 1]
            .iter()
            .all(|l| l.chars().count() >= 2 && l.chars().next().is_some_and(is_word) && part(l))
        && part(labels[labels.len() - 1])
}

/// The tags of `text`'s tokens by name, with the tokens' byte ranges, in `s` (the parity test
/// compares them with Pattern's).
#[cfg(test)]
fn tag<'s>(text: &str, s: &'s mut Scratch) -> (&'s [(usize, usize)], Vec<&'static str>) {
    tag_text(text, s);
    let t = tagger();
    let n = s.tokens.len();
    let names = s.tags[PAD..PAD + n]
        .iter()
        .map(|g| t.names[usize::from(g.0)])
        .collect();
    (&s.tokens, names)
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
    // Every date shape starts with an ASCII letter (a name of 3 to 9 letters) or an ASCII digit:
    // most tokens are rejected here, before the names are compared.
    match tok.as_bytes().first() {
        Some(b) if b.is_ascii_digit() => {}
        Some(b) if b.is_ascii_alphabetic() && (3..=9).contains(&tok.len()) => {}
        _ => return false,
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let named = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(tok));
    if named(&WEEKDAYS) || MONTH_ABBREVIATIONS.contains(&tok) {
        return true;
    }
    if named(&MONTHS) {
        return !(tok.eq_ignore_ascii_case("march") || tok.eq_ignore_ascii_case("may"))
            || is_title(tok);
    }
    // The splits are walked, not collected: this runs for every word token.
    if tok.contains('/') {
        return (2..=3).contains(&tok.split('/').count())
            && tok
                .split('/')
                .all(|p| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    }
    let mut iso = tok.split('-');
    if let (Some(y), Some(m), Some(d), None) = (iso.next(), iso.next(), iso.next(), iso.next()) {
        return digits(y, 4) && digits(m, 2) && digits(d, 2);
    }
    digits(tok, 4) && (1900..=2099).contains(&tok.parse::<u32>().unwrap_or(0))
}

/// [`Counts`] of `text`.
pub(super) fn counts(text: &str, s: &mut Scratch) -> Counts {
    // Only tokens with a letter or digit are counted, and every token is a piece of the text:
    // a text without any has nothing to count, and tagging it would find nothing.
    if !text.chars().any(char::is_alphanumeric) {
        return Counts::default();
    }
    tag_text(text, s);
    let t = tagger();
    let n = s.tokens.len();
    let mut c = Counts::default();
    s.seen.clear();
    for (&(a, b), &tag) in s.tokens.iter().zip(&s.tags[PAD..PAD + n]) {
        let tok = &text[a..b];
        if !tok.chars().any(char::is_alphanumeric) {
            continue;
        }
        c.words += 1.0;
        let (class, kind) = t.classes[usize::from(tag.0)];
        match class {
            Class::Noun => c.nouns += 1.0,
            Class::ProperNoun => c.proper_nouns += 1.0,
            Class::Verb => c.verbs += 1.0,
            Class::PastVerb => {
                c.verbs += 1.0;
                c.past_verbs += 1.0;
            }
            Class::Adjective => c.adjectives += 1.0,
            Class::Adverb => c.adverbs += 1.0,
            Class::Pronoun => c.pronouns += 1.0,
            Class::Numeral => c.numerals += 1.0,
            Class::Interjection => c.interjections += 1.0,
            Class::Other => {}
        }
        match kind {
            EntityKind::Person => c.persons += 1.0,
            EntityKind::Location => c.locations += 1.0,
            EntityKind::Organisation => c.organisations += 1.0,
            EntityKind::None => {}
        }
        if is_date(tok) {
            c.dates += 1.0;
        }
        match s.seen.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, n)) => *n += 1.0,
            None => s.seen.push((tag, 1.0)),
        }
    }
    if c.words > 0.0 {
        let n = c.words;
        c.tag_entropy = s
            .seen
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
