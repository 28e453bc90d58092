//! Words, sentences and lines, found in one pass over the chars with one char of look-ahead.
//!
//! The rules (they define every per-word feature, so they are part of the feature format):
//!
//! - **Word**: a maximal run of alphanumeric chars (`char::is_alphanumeric`, Unicode-aware) in
//!   which single apostrophes (`'` `’` `‘`) or hyphens (`-` `‐` `‑`) may appear *between* two
//!   alphanumerics (`don't`, `well-known`, `rock'n'roll`), and combining marks (U+0300–U+036F,
//!   U+1AB0–U+1AFF, U+1DC0–U+1DFF, U+20D0–U+20FF, U+FE20–U+FE2F) may follow any char of the word
//!   (`cafe\u{301}`). Everything else separates words: `_`, `.`, `@`, `/`, emoji, CJK
//!   punctuation. Scripts written without spaces (Chinese, Japanese) are not segmented: a run of
//!   ideographs is one word.
//! - **Normalized form** of a word: lower-cased with `char::to_lowercase`, `’`/`‘` replaced by
//!   `'` and `‐`/`‑` by `-`. The lexicon, the syllable counter and the type counts use it.
//! - **Sentence**: the text is cut at terminator chars (`.` `!` `?` `…` `。` `！` `？` `．` `｡`
//!   `।` `؟` `‼` `⁇` `⁈` `⁉` `‽`); each piece that contains at least one word is a sentence. So a
//!   run of terminators ends one sentence, a text with words and no terminator is one sentence,
//!   and a text without words has none. An ASCII `.` directly followed by an alphanumeric (`3.14`,
//!   `example.com`, the inner dot of `e.g.`) is not a terminator.
//! - **Line**: a piece between line breaks (`\n` `\r` VT FF NEL U+2028 U+2029) that contains a
//!   non-whitespace char.

use super::chars::{kind, ALNUM, ALPHA, CASELESS, LINE_BREAK, LOWER, SPACE, UPPER};
use super::punct::Mark;

/// What the per-word features need to know about one word, besides its normalized form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct WordInfo {
    /// Chars in the word, joiners and combining marks included.
    pub chars: u64,
    /// Alphabetic chars.
    pub letters: u64,
    /// Alphabetic or numeric chars.
    pub alnum: u64,
    /// Upper-case letters.
    pub upper: u64,
    /// Lower-case letters.
    pub lower: u64,
    /// The first char is an upper-case letter.
    pub first_upper: bool,
}

/// Receives each word as it ends.
pub(super) trait WordSink {
    /// `norm` is the normalized form (see the module docs).
    fn word(&mut self, norm: &str, info: &WordInfo);
}

/// Apostrophes and hyphens that may join two parts of a word, as their normalized char.
#[inline]
fn joiner(c: char) -> Option<char> {
    match c {
        '\'' | '’' | '‘' => Some('\''),
        '-' | '‐' | '‑' => Some('-'),
        _ => None,
    }
}

/// Combining marks that may continue a word (also skipped by the syllable counter).
#[inline]
pub(super) fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{300}'..='\u{36F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Writes the normalized form of `word` into `buf`.
fn normalize(word: &str, ascii: bool, buf: &mut String) {
    buf.clear();
    if ascii {
        buf.push_str(word);
        buf.make_ascii_lowercase();
        return;
    }
    for c in word.chars() {
        if c.is_ascii() {
            buf.push(c.to_ascii_lowercase());
        } else if let Some(j) = joiner(c) {
            buf.push(j);
        } else {
            let k = kind(c);
            if k & (LOWER | CASELESS) != 0 || k & ALPHA == 0 {
                // Lower-case and caseless letters, non-letter numerics (`٣`, `½`) and combining
                // marks map to themselves; skip the case-mapping table.
                buf.push(c);
            } else {
                buf.extend(c.to_lowercase());
            }
        }
    }
}

/// The word, sentence and line scanner. Feed every char of the text it was made for, then call
/// [`Scanner::finish`].
///
/// A word is not copied as it is read: the scanner remembers where it starts and ends in the
/// text, and normalizes it only when it ends — and only when it needs it (upper case or non-ASCII
/// chars); a lower-case ASCII word goes to the sink as a slice of the text.
pub(super) struct Scanner<'t, 'b> {
    text: &'t str,
    /// Where normalized words are written (reused between words and calls).
    buf: &'b mut String,
    info: WordInfo,
    in_word: bool,
    /// Byte range of the current word in `text` (the end excludes a pending joiner).
    start: usize,
    end: usize,
    /// The current word has a non-ASCII char.
    non_ascii: bool,
    /// A joiner seen inside a word, waiting for an alphanumeric to confirm it.
    pending_joiner: Option<char>,
    /// An ASCII `.` waiting to see whether an alphanumeric follows.
    pending_period: bool,
    /// The current sentence piece contains a word.
    piece_has_word: bool,
    /// The current line contains a non-whitespace char.
    line_has_content: bool,
    /// Words so far.
    pub words: u64,
    /// Sentences so far.
    pub sentences: u64,
    /// Non-blank lines so far.
    pub lines: u64,
}

impl<'t, 'b> Scanner<'t, 'b> {
    /// A scanner for `text` that normalizes words in `buf`.
    pub(super) fn new(text: &'t str, buf: &'b mut String) -> Self {
        Scanner {
            text,
            buf,
            info: WordInfo::default(),
            in_word: false,
            start: 0,
            end: 0,
            non_ascii: false,
            pending_joiner: None,
            pending_period: false,
            piece_has_word: false,
            line_has_content: false,
            words: 0,
            sentences: 0,
            lines: 0,
        }
    }

    /// Processes `c` at byte offset `i`, whose class flags are `k` and punctuation mark `m`.
    #[inline]
    pub(super) fn feed(&mut self, i: usize, c: char, k: u8, m: Mark, sink: &mut impl WordSink) {
        let alnum = k & ALNUM != 0;
        if self.pending_period {
            self.pending_period = false;
            if !alnum {
                self.end_sentence();
            }
        }

        if alnum {
            if self.in_word {
                if let Some(j) = self.pending_joiner.take() {
                    self.info.chars += 1;
                    self.non_ascii |= !j.is_ascii();
                }
            } else {
                self.in_word = true;
                self.piece_has_word = true;
                self.start = i;
                self.non_ascii = false;
                self.info = WordInfo {
                    first_upper: k & UPPER != 0,
                    ..WordInfo::default()
                };
            }
            let info = &mut self.info;
            info.chars += 1;
            info.alnum += 1;
            if k & ALPHA != 0 {
                info.letters += 1;
                info.upper += u64::from(k & UPPER != 0);
                info.lower += u64::from(k & LOWER != 0);
            }
            self.non_ascii |= !c.is_ascii();
            self.end = i + c.len_utf8();
        } else if self.in_word {
            match joiner(c) {
                Some(_) if self.pending_joiner.is_none() => self.pending_joiner = Some(c),
                _ if self.pending_joiner.is_none() && is_combining_mark(c) => {
                    self.info.chars += 1;
                    self.non_ascii = true;
                    self.end = i + c.len_utf8();
                }
                _ => self.end_word(sink),
            }
        }

        if m.ends_sentence() {
            if c == '.' {
                self.pending_period = true;
            } else {
                self.end_sentence();
            }
        }

        if k & LINE_BREAK != 0 {
            self.end_line();
        } else if k & SPACE == 0 {
            self.line_has_content = true;
        }
    }

    /// Ends the last word, sentence and line.
    pub(super) fn finish(&mut self, sink: &mut impl WordSink) {
        if self.in_word {
            self.end_word(sink);
        }
        self.pending_period = false;
        self.end_sentence();
        self.end_line();
    }

    fn end_word(&mut self, sink: &mut impl WordSink) {
        self.in_word = false;
        self.pending_joiner = None;
        self.words += 1;
        let word = self.text.get(self.start..self.end).unwrap_or("");
        if self.non_ascii || self.info.upper > 0 {
            normalize(word, !self.non_ascii, self.buf);
            sink.word(self.buf, &self.info);
        } else {
            sink.word(word, &self.info);
        }
    }

    fn end_sentence(&mut self) {
        if self.piece_has_word {
            self.sentences += 1;
            self.piece_has_word = false;
        }
    }

    fn end_line(&mut self) {
        if self.line_has_content {
            self.lines += 1;
            self.line_has_content = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{chars, punct};
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<(String, WordInfo)>);

    impl WordSink for Collect {
        fn word(&mut self, norm: &str, info: &WordInfo) {
            self.0.push((norm.to_string(), *info));
        }
    }

    fn scan(text: &str) -> (Vec<String>, u64, u64) {
        let mut buf = String::new();
        let mut sink = Collect::default();
        let mut s = Scanner::new(text, &mut buf);
        for (i, c) in text.char_indices() {
            s.feed(i, c, chars::kind(c), punct::classify(c), &mut sink);
        }
        s.finish(&mut sink);
        assert_eq!(s.words as usize, sink.0.len());
        let words = sink.0.into_iter().map(|(w, _)| w).collect();
        (words, s.sentences, s.lines)
    }

    #[test]
    fn words_follow_the_documented_rule() {
        let (w, _, _) = scan("Don’t over-think 'quoted' rock'n'roll -x- a--b snake_case e.g. 3.14");
        assert_eq!(
            w,
            [
                "don't",
                "over-think",
                "quoted",
                "rock'n'roll",
                "x",
                "a",
                "b",
                "snake",
                "case",
                "e",
                "g",
                "3",
                "14"
            ]
        );
        let (w, _, _) = scan("Cafe\u{301} ÉCOLE İ");
        assert_eq!(w, ["cafe\u{301}", "école", "i\u{307}"]);
        let (w, _, _) = scan("東京は日本の首都です。👍🏽hi");
        assert_eq!(w, ["東京は日本の首都です", "hi"]);
    }

    #[test]
    fn word_info_counts() {
        let mut buf = String::new();
        let mut sink = Collect::default();
        let text = "McDonald's 42nd";
        let mut s = Scanner::new(text, &mut buf);
        for (i, c) in text.char_indices() {
            s.feed(i, c, chars::kind(c), punct::classify(c), &mut sink);
        }
        s.finish(&mut sink);
        let first = sink.0[0].1;
        // M c D o n a l d ' s: 10 chars, 9 letters, 2 upper, 7 lower.
        assert_eq!(
            first,
            WordInfo {
                chars: 10,
                letters: 9,
                alnum: 9,
                upper: 2,
                lower: 7,
                first_upper: true
            }
        );
        let second = sink.0[1].1;
        assert_eq!((second.chars, second.letters, second.alnum), (4, 2, 4));
        assert!(!second.first_upper);
    }

    #[test]
    fn sentences_and_lines() {
        assert_eq!(scan("").1, 0);
        assert_eq!(scan("   ").1, 0);
        assert_eq!(scan("...!?").1, 0);
        assert_eq!(scan("Hello").1, 1);
        assert_eq!(scan("Hello, world! How are you?").1, 2);
        assert_eq!(scan("Wait... what?! Fine").1, 3);
        assert_eq!(scan("Pi is 3.14. See example.com now").1, 2);
        assert_eq!(scan("東京は日本の首都です。大阪も。").1, 2);
        assert_eq!(scan("\"Hi.\" He left.").1, 2);
        assert_eq!(scan("a\n\n  \nb\r\nc").2, 3);
        assert_eq!(scan("\n").2, 0);
    }
}
