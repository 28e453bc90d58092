//! Character classes, computed once per character and shared by every scanner.
//!
//! [`kind`] turns a char into a few bit flags (ASCII through a lookup table, the rest through
//! std's Unicode tables), so that the word, punctuation and web scanners do not each ask the
//! Unicode tables again. [`CharClasses`] counts the classes behind the `char_class` group and the
//! letter case behind `uppercase_ratio`, and counts emoji as whole sequences.

/// Alphabetic (Unicode Alphabetic).
pub(super) const ALPHA: u8 = 1;
/// Numeric (Unicode Numeric: Nd, Nl, No).
pub(super) const NUMERIC: u8 = 1 << 1;
/// Whitespace (Unicode White_Space).
pub(super) const SPACE: u8 = 1 << 2;
/// Upper case (only set together with `ALPHA`).
pub(super) const UPPER: u8 = 1 << 3;
/// Lower case (only set together with `ALPHA`).
pub(super) const LOWER: u8 = 1 << 4;
/// Ends a line: \n \r VT FF NEL U+2028 U+2029 (also `SPACE`).
pub(super) const LINE_BREAK: u8 = 1 << 5;
/// A letter of a caseless script block that [`kind`] recognizes without std's tables (Han,
/// kana, Hangul, Hebrew, Arabic): lower-casing leaves it alone.
pub(super) const CASELESS: u8 = 1 << 6;
/// Alphabetic or numeric.
pub(super) const ALNUM: u8 = ALPHA | NUMERIC;

const fn ascii_table() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = if b.is_ascii_uppercase() {
            ALPHA | UPPER
        } else if b.is_ascii_lowercase() {
            ALPHA | LOWER
        } else if b.is_ascii_digit() {
            NUMERIC
        } else if b == b'\n' || b == b'\r' || b == 0x0B || b == 0x0C {
            SPACE | LINE_BREAK
        } else if b == b' ' || b == b'\t' {
            SPACE
        } else {
            0
        };
        i += 1;
    }
    t
}

static ASCII: [u8; 128] = ascii_table();

/// The class flags of `c`.
#[inline(always)]
pub(super) fn kind(c: char) -> u8 {
    if c.is_ascii() {
        return ASCII[c as usize];
    }
    // Shortcuts around std's table searches for the commonest blocks (a test checks that they
    // agree with std).
    match c {
        '\u{3041}'..='\u{3096}'        // Hiragana letters
        | '\u{30A1}'..='\u{30FA}'      // Katakana letters
        | '\u{4E00}'..='\u{9FFF}'      // CJK Unified Ideographs
        | '\u{AC00}'..='\u{D7A3}'      // Hangul syllables
        | '\u{5D0}'..='\u{5EA}'        // Hebrew letters
        | '\u{621}'..='\u{63A}'        // Arabic letters
        | '\u{641}'..='\u{64A}' => {
            return ALPHA | CASELESS;
        }
        '\u{1F300}'..='\u{1FAFF}' => return 0, // pictographs
        _ => {}
    }
    let alphabetic = if matches!(c, '\u{C0}'..='\u{24F}') {
        c != '×' && c != '÷' // Latin-1 Supplement and Latin Extended-A/B letters
    } else {
        c.is_alphabetic()
    };
    if alphabetic {
        let case = if c.is_uppercase() {
            UPPER
        } else if c.is_lowercase() {
            LOWER
        } else {
            0
        };
        ALPHA | case
    } else if c.is_numeric() {
        NUMERIC
    } else if c.is_whitespace() {
        if matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') {
            SPACE | LINE_BREAK
        } else {
            SPACE
        }
    } else {
        0
    }
}

/// CJK ideographs (with extensions and compatibility ideographs), Hiragana, Katakana and Hangul.
#[inline]
pub(super) fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}'     // Hangul Jamo
        | '\u{3040}'..='\u{30FF}'   // Hiragana, Katakana
        | '\u{3130}'..='\u{318F}'   // Hangul Compatibility Jamo
        | '\u{31F0}'..='\u{31FF}'   // Katakana Phonetic Extensions
        | '\u{3400}'..='\u{4DBF}'   // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK Unified Ideographs
        | '\u{A960}'..='\u{A97F}'   // Hangul Jamo Extended-A
        | '\u{AC00}'..='\u{D7FF}'   // Hangul Syllables, Jamo Extended-B
        | '\u{F900}'..='\u{FAFF}'   // CJK Compatibility Ideographs
        | '\u{FF66}'..='\u{FF9F}'   // half-width Katakana
        | '\u{20000}'..='\u{3134F}' // CJK Extensions B..G, compatibility supplement
    )
}

/// Emoji pictographs: an approximation of Unicode's Extended_Pictographic property without the
/// ASCII-looking members (© ® ™ ‼ ⁉), which count as ordinary symbols or punctuation here.
#[inline]
pub(super) fn is_pictograph(c: char) -> bool {
    matches!(c,
        '\u{1F000}'..='\u{1FAFF}'   // Mahjong .. Symbols and Pictographs Extended-A
        | '\u{2600}'..='\u{27BF}'   // Miscellaneous Symbols, Dingbats
        | '\u{231A}' | '\u{231B}' | '\u{2328}' | '\u{23CF}'
        | '\u{23E9}'..='\u{23F3}' | '\u{23F8}'..='\u{23FA}'
        | '\u{2B05}'..='\u{2B07}' | '\u{2B1B}' | '\u{2B1C}' | '\u{2B50}' | '\u{2B55}'
        | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
    )
}

fn is_regional_indicator(c: char) -> bool {
    matches!(c, '\u{1F1E6}'..='\u{1F1FF}')
}

fn is_skin_tone(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}')
}

/// Counts of the character classes of one text.
#[derive(Debug, Default)]
pub(super) struct CharClasses {
    /// Every char.
    pub chars: u64,
    /// Alphabetic chars.
    pub letters: u64,
    /// Numeric chars.
    pub digits: u64,
    /// Whitespace chars.
    pub whitespace: u64,
    /// Chars outside ASCII.
    pub non_ascii: u64,
    /// CJK chars (see [`is_cjk`]).
    pub cjk: u64,
    /// Upper-case letters.
    pub upper: u64,
    /// Lower-case letters.
    pub lower: u64,
    /// Emoji sequences.
    pub emoji: u64,
    /// The previous char belongs to an emoji sequence (pictograph, modifier, VS16, tag).
    in_emoji: bool,
    /// The previous char is a ZWJ inside an emoji sequence: the next pictograph joins it.
    after_zwj: bool,
    /// The previous char is the first regional indicator of a flag.
    half_flag: bool,
}

impl CharClasses {
    /// Counts `c`, whose flags are `k`.
    #[inline]
    pub(super) fn feed(&mut self, c: char, k: u8) {
        self.chars += 1;
        self.letters += u64::from(k & ALPHA != 0);
        self.digits += u64::from(k & NUMERIC != 0);
        self.whitespace += u64::from(k & SPACE != 0);
        self.upper += u64::from(k & UPPER != 0);
        self.lower += u64::from(k & LOWER != 0);
        if c.is_ascii() {
            self.in_emoji = false;
            self.after_zwj = false;
            self.half_flag = false;
            return;
        }
        self.non_ascii += 1;
        if k & ALPHA != 0 {
            self.cjk += u64::from(is_cjk(c));
            self.end_emoji();
        } else {
            self.emoji_step(c);
        }
    }

    fn end_emoji(&mut self) {
        self.in_emoji = false;
        self.after_zwj = false;
        self.half_flag = false;
    }

    /// One step of the emoji-sequence machine: a pictograph starts an emoji unless it follows a
    /// ZWJ inside one; skin tones, VS16, tags and ZWJ continue a sequence; two regional
    /// indicators make one flag; a keycap mark (U+20E3) makes an emoji of the char before it.
    fn emoji_step(&mut self, c: char) {
        if is_regional_indicator(c) {
            if self.half_flag {
                self.half_flag = false;
            } else {
                self.emoji += 1;
                self.half_flag = true;
            }
            self.in_emoji = true;
            self.after_zwj = false;
        } else if is_skin_tone(c) {
            if !self.in_emoji {
                self.emoji += 1; // a lone modifier shows as a colour swatch
            }
            self.in_emoji = true;
            self.after_zwj = false;
            self.half_flag = false;
        } else if is_pictograph(c) {
            if !(self.in_emoji && self.after_zwj) {
                self.emoji += 1;
            }
            self.in_emoji = true;
            self.after_zwj = false;
            self.half_flag = false;
        } else if c == '\u{200D}' {
            self.after_zwj = self.in_emoji;
            self.half_flag = false;
        } else if c == '\u{20E3}' {
            if !self.in_emoji {
                self.emoji += 1;
            }
            self.in_emoji = true;
            self.after_zwj = false;
        } else if matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{E0020}'..='\u{E007F}') {
            // Variation selectors and tag characters continue whatever came before.
        } else {
            self.end_emoji();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> CharClasses {
        let mut cc = CharClasses::default();
        for c in text.chars() {
            cc.feed(c, kind(c));
        }
        cc
    }

    #[test]
    fn kind_matches_std_for_ascii_and_beyond() {
        for c in (0u32..0x3_2000).filter_map(char::from_u32) {
            let k = kind(c);
            assert_eq!(k & ALPHA != 0, c.is_alphabetic(), "{c:?}");
            assert_eq!(
                k & NUMERIC != 0,
                c.is_numeric() && !c.is_alphabetic(),
                "{c:?}"
            );
            assert_eq!(k & SPACE != 0, c.is_whitespace(), "{c:?}");
            if k & ALPHA != 0 {
                assert_eq!(k & UPPER != 0, c.is_uppercase(), "{c:?}");
            }
            if k & LOWER != 0 || (k & NUMERIC != 0 && k & ALPHA == 0) {
                assert!(c.to_lowercase().eq([c]), "{c:?}");
            }
            if k & CASELESS != 0 {
                assert!(!c.is_uppercase() && !c.is_lowercase(), "{c:?}");
                assert!(c.to_lowercase().eq([c]), "{c:?}");
            }
        }
    }

    #[test]
    fn emoji_sequences_count_once() {
        assert_eq!(classes("👍").emoji, 1);
        assert_eq!(classes("👍🏽").emoji, 1); // skin tone modifier
        assert_eq!(classes("👨\u{200D}👩\u{200D}👧").emoji, 1); // ZWJ family
        assert_eq!(classes("🇺🇸🇫🇷").emoji, 2); // two flags
        assert_eq!(classes("❤\u{FE0F}").emoji, 1); // VS16
        assert_eq!(classes("1\u{FE0F}\u{20E3}").emoji, 1); // keycap
        assert_eq!(classes("👍 👍").emoji, 2);
        assert_eq!(classes("👍👍").emoji, 2); // adjacent, no ZWJ
        assert_eq!(classes("a\u{200D}👍").emoji, 1); // ZWJ outside a sequence
        assert_eq!(
            classes("🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}").emoji,
            1
        );
    }

    #[test]
    fn cjk_and_case() {
        let cc = classes("東京は日本の首都です。한국어 Ab");
        // 東京は日本の首都です = 10, 한국어 = 3, 。 is punctuation.
        assert_eq!(cc.cjk, 13);
        assert_eq!((cc.upper, cc.lower), (1, 1));
        assert_eq!(cc.letters, 15);
    }
}
