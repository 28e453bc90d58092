//! Punctuation marks: which mark a char is, and the per-text counts of the `punctuation` group.
//!
//! [`classify`] is the one place that knows which chars are full stops, commas, quotes, ... in
//! ASCII, typographic, CJK full-width, Arabic and Devanagari forms; the sentence splitter uses it
//! too, so the `period_rate` marks and the sentence terminators agree. [`Punctuation`] also tracks
//! runs of marks for ellipses and repeated `!`/`?`.

/// What kind of punctuation mark a char is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    /// Not punctuation.
    None,
    /// `.` `。` `．` `｡` `।` (terminators).
    Period,
    /// `,` `，` `、` `､` `،`.
    Comma,
    /// `!` `！` (weight 1) or `‼` (weight 2): terminators.
    Exclamation(u8),
    /// `?` `？` `؟` (weight 1) or `⁇` (weight 2): terminators.
    Question(u8),
    /// `⁈` `⁉` `‽`: both at once (terminators).
    Interrobang,
    /// `¡`: counts as an exclamation mark but opens rather than ends a sentence.
    InvertedExclamation,
    /// `¿`: counts as a question mark but opens rather than ends a sentence.
    InvertedQuestion,
    /// `…` (terminator).
    Ellipsis,
    /// `;` `；` `؛`.
    Semicolon,
    /// `:` `：`.
    Colon,
    /// `'` `’` `‘`.
    Apostrophe,
    /// `"` `“` `”` `„` `«` `»` `「` `」` `『` `』`.
    Quote,
    /// `-` `‐` `‑`.
    Hyphen,
    /// `‒` `–` `—` `―`.
    Dash,
    /// `(` `)` `（` `）`.
    Parenthesis,
    /// `[` `]` `{` `}` `【` `】` `〔` `〕` `［` `］` `｛` `｝`.
    Bracket,
    /// Any other punctuation (see [`classify`]).
    Other,
}

impl Mark {
    /// Whether this mark ends a sentence (ASCII `.` only when not followed by an alphanumeric;
    /// the sentence splitter handles that look-ahead).
    #[inline]
    pub(super) fn ends_sentence(self) -> bool {
        matches!(
            self,
            Mark::Period
                | Mark::Exclamation(_)
                | Mark::Question(_)
                | Mark::Interrobang
                | Mark::Ellipsis
        )
    }
}

/// The punctuation mark `c` is. Punctuation means: the 32 ASCII punctuation chars (which include
/// symbols such as `$ % & * + < = > @ # ^ _ | ~ / \` `), Latin-1 `¡ § « ¶ · » ¿`, Greek `;` and `·`,
/// Arabic `، ؛ ؟`, Devanagari `। ॥`, General Punctuation U+2010–U+2027 and U+2030–U+205E, CJK
/// U+3001–U+3003, U+3008–U+3011 and U+3014–U+301F, and the full-width forms of ASCII
/// punctuation with the half-width CJK marks (U+FF01–U+FF0F, U+FF1A–U+FF20, U+FF3B–U+FF40,
/// U+FF5B–U+FF65).
#[inline]
pub(super) fn classify(c: char) -> Mark {
    if c.is_ascii() {
        return match c {
            '.' => Mark::Period,
            ',' => Mark::Comma,
            '!' => Mark::Exclamation(1),
            '?' => Mark::Question(1),
            ';' => Mark::Semicolon,
            ':' => Mark::Colon,
            '\'' => Mark::Apostrophe,
            '"' => Mark::Quote,
            '-' => Mark::Hyphen,
            '(' | ')' => Mark::Parenthesis,
            '[' | ']' | '{' | '}' => Mark::Bracket,
            c if c.is_ascii_punctuation() => Mark::Other,
            _ => Mark::None,
        };
    }
    match c {
        '。' | '．' | '｡' | '।' => Mark::Period,
        '，' | '、' | '､' | '،' => Mark::Comma,
        '！' => Mark::Exclamation(1),
        '‼' => Mark::Exclamation(2),
        '？' | '؟' => Mark::Question(1),
        '⁇' => Mark::Question(2),
        '⁈' | '⁉' | '‽' => Mark::Interrobang,
        '¡' => Mark::InvertedExclamation,
        '¿' => Mark::InvertedQuestion,
        '…' => Mark::Ellipsis,
        '；' | '؛' => Mark::Semicolon,
        '：' => Mark::Colon,
        '’' | '‘' => Mark::Apostrophe,
        '“' | '”' | '„' | '«' | '»' | '「' | '」' | '『' | '』' => Mark::Quote,
        '‐' | '‑' => Mark::Hyphen,
        '‒' | '–' | '—' | '―' => Mark::Dash,
        '（' | '）' => Mark::Parenthesis,
        '【' | '】' | '〔' | '〕' | '［' | '］' | '｛' | '｝' => Mark::Bracket,
        '§'
        | '¶'
        | '·'
        | '\u{37E}'
        | '\u{387}'
        | '॥'
        | '\u{2010}'..='\u{2027}'
        | '\u{2030}'..='\u{205E}'
        | '\u{3001}'..='\u{3003}'
        | '\u{3008}'..='\u{3011}'
        | '\u{3014}'..='\u{301F}'
        | '\u{FF01}'..='\u{FF0F}'
        | '\u{FF1A}'..='\u{FF20}'
        | '\u{FF3B}'..='\u{FF40}'
        | '\u{FF5B}'..='\u{FF65}' => Mark::Other,
        _ => Mark::None,
    }
}

/// Per-text counts of punctuation marks and runs.
#[derive(Debug, Default)]
pub(super) struct Punctuation {
    /// Full stops.
    pub period: u64,
    /// Commas.
    pub comma: u64,
    /// Exclamation marks (`‼` counts 2).
    pub exclamation: u64,
    /// Question marks (`⁇` counts 2).
    pub question: u64,
    /// Semicolons.
    pub semicolon: u64,
    /// Colons.
    pub colon: u64,
    /// Apostrophes / single quotes.
    pub apostrophe: u64,
    /// Double quotes.
    pub quote: u64,
    /// Hyphens.
    pub hyphen: u64,
    /// Dashes.
    pub dash: u64,
    /// Parentheses.
    pub parenthesis: u64,
    /// Brackets.
    pub bracket: u64,
    /// Every punctuation char.
    pub total: u64,
    /// Ellipses (runs).
    pub ellipses: u64,
    /// Runs of 2+ exclamation marks only.
    pub repeated_exclamation: u64,
    /// Runs of 2+ question marks only.
    pub repeated_question: u64,
    /// Runs mixing `!` and `?`.
    pub mixed: u64,
    /// Length of the current run of `.`/`…`.
    dot_run: u64,
    /// The current `.`/`…` run contains a `…`.
    dot_run_has_ellipsis: bool,
    /// Weight of `!` in the current `!`/`?` run.
    bang_run: u64,
    /// Weight of `?` in the current `!`/`?` run.
    query_run: u64,
}

impl Punctuation {
    /// Counts the mark `m` of the next char.
    #[inline]
    pub(super) fn feed(&mut self, m: Mark) {
        if m == Mark::None {
            if self.dot_run != 0 || self.bang_run != 0 || self.query_run != 0 {
                self.close_dot_run();
                self.close_bang_run();
            }
            return;
        }
        self.total += 1;
        match m {
            Mark::Period | Mark::Ellipsis => {
                self.dot_run += 1;
                self.dot_run_has_ellipsis |= m == Mark::Ellipsis;
            }
            _ => self.close_dot_run(),
        }
        match m {
            Mark::Exclamation(w) => self.bang_run += u64::from(w),
            Mark::Question(w) => self.query_run += u64::from(w),
            Mark::Interrobang => {
                self.bang_run += 1;
                self.query_run += 1;
            }
            _ => self.close_bang_run(),
        }
        match m {
            Mark::Period => self.period += 1,
            Mark::Comma => self.comma += 1,
            Mark::Exclamation(w) => self.exclamation += u64::from(w),
            Mark::InvertedExclamation => self.exclamation += 1,
            Mark::Question(w) => self.question += u64::from(w),
            Mark::InvertedQuestion => self.question += 1,
            Mark::Semicolon => self.semicolon += 1,
            Mark::Colon => self.colon += 1,
            Mark::Apostrophe => self.apostrophe += 1,
            Mark::Quote => self.quote += 1,
            Mark::Hyphen => self.hyphen += 1,
            Mark::Dash => self.dash += 1,
            Mark::Parenthesis => self.parenthesis += 1,
            Mark::Bracket => self.bracket += 1,
            Mark::Interrobang | Mark::Ellipsis | Mark::Other | Mark::None => {}
        }
    }

    /// Closes open runs at the end of the text.
    pub(super) fn finish(&mut self) {
        self.close_dot_run();
        self.close_bang_run();
    }

    fn close_dot_run(&mut self) {
        if self.dot_run >= 3 || self.dot_run_has_ellipsis {
            self.ellipses += 1;
        }
        self.dot_run = 0;
        self.dot_run_has_ellipsis = false;
    }

    fn close_bang_run(&mut self) {
        match (self.bang_run, self.query_run) {
            (0, 0) => return,
            (b, 0) if b >= 2 => self.repeated_exclamation += 1,
            (0, q) if q >= 2 => self.repeated_question += 1,
            (b, q) if b > 0 && q > 0 => self.mixed += 1,
            _ => {}
        }
        self.bang_run = 0;
        self.query_run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str) -> Punctuation {
        let mut p = Punctuation::default();
        for c in text.chars() {
            p.feed(classify(c));
        }
        p.finish();
        p
    }

    #[test]
    fn ascii_punctuation_is_all_classified() {
        for b in 0u8..128 {
            let c = b as char;
            assert_eq!(classify(c) != Mark::None, c.is_ascii_punctuation(), "{c:?}");
        }
        assert_eq!(classify('a'), Mark::None);
        assert_eq!(classify('€'), Mark::None); // currency is a symbol, counted by the web group
    }

    #[test]
    fn runs() {
        let p = count("Wait... what?! No!! Why?? Ok… fine.. ‽");
        assert_eq!(p.ellipses, 2); // "..." and "…"; ".." is too short
        assert_eq!(p.mixed, 2); // "?!" and "‽"
        assert_eq!(p.repeated_exclamation, 1);
        assert_eq!(p.repeated_question, 1);
        let p = count("‼ ⁇ !?!");
        assert_eq!(
            (p.repeated_exclamation, p.repeated_question, p.mixed),
            (1, 1, 1)
        );
        assert_eq!((p.exclamation, p.question), (4, 3));
    }

    #[test]
    fn full_width_and_other_scripts() {
        let p = count("。，！？；：「」（）【】、؟،");
        assert_eq!(p.period, 1);
        assert_eq!(p.comma, 3);
        assert_eq!(p.exclamation, 1);
        assert_eq!(p.question, 2);
        assert_eq!((p.semicolon, p.colon, p.quote), (1, 1, 2));
        assert_eq!((p.parenthesis, p.bracket), (2, 2));
        assert_eq!(p.total, 15);
    }
}
