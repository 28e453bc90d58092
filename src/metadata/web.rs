//! Web and numeric tokens: URLs, e-mails, @mentions, #hashtags, numbers and money.
//!
//! These are properties of whitespace-delimited tokens rather than of words (a URL spans many
//! words), so this scanner cuts the text at whitespace as the main pass goes by, remembers which
//! interesting chars each token holds, and looks again only at tokens that can match. Before
//! matching, a token loses its leading opening punctuation (`( [ { < " ' “ ‘ „ « ¿ ¡ 「 『 * _ ~`
//! and full-width forms) and trailing closing punctuation (`) ] } > " ' ” ’ » . , ; : ! ? …` and
//! the like). Then, in this order, the first rule that matches wins:
//!
//! - **URL**: starts with `http://`, `https://`, `ftp://` or `www.` (any case), with more after;
//! - **e-mail**: `local@domain`, where `local` is non-empty and made of alphanumerics and
//!   `. _ % + - '`, and `domain` has at least two non-empty dot-separated labels of alphanumerics
//!   and `-`, the last at least 2 letters long;
//! - **mention**: `@` followed by an alphanumeric or `_`;
//! - **hashtag**: `#` followed by a run of alphanumerics and `_` that holds a letter;
//! - otherwise the token is searched for **numbers**: maximal runs of alphanumerics, with `.` or
//!   `,` allowed between two digits, that start with a numeric char (`42`, `3.14`, `1,000.50`,
//!   `2nd`, `10am`; not `v2` or `mp3`). A number is a **currency amount** when the char right
//!   before or right after it is a currency symbol (`$5`, `US$5`, `5€`, `$5k`), or when the
//!   neighbouring token is nothing but currency symbols (`€ 5`, `5 €`); each symbol prices at
//!   most one number.
//!
//! Currency symbols are counted everywhere, inside URLs too: Unicode's currency symbols
//! (general category Sc), which include `$`, `¢ £ ¤ ¥`, `₠`–`⃁` (`€ ₹ ₽ ₩ ₪ ₫ ₴ ₦ ₱ ₺ ₿` ...), `฿`,
//! `﷼` and their full-width forms.

use super::chars::{kind, ALNUM, ALPHA, NUMERIC, SPACE};

const DIGIT: u8 = 1;
const AT: u8 = 1 << 1;
const HASH: u8 = 1 << 2;
const URLISH: u8 = 1 << 3;
const CURRENCY: u8 = 1 << 4;

/// Unicode currency symbols (general category Sc, Unicode 16 plus U+20C1).
#[inline]
pub(super) fn is_currency(c: char) -> bool {
    matches!(c,
        '$' | '\u{A2}'..='\u{A5}' | '\u{58F}' | '\u{60B}' | '\u{7FE}' | '\u{7FF}'
        | '\u{9F2}' | '\u{9F3}' | '\u{9FB}' | '\u{AF1}' | '\u{BF9}' | '\u{E3F}' | '\u{17DB}'
        | '\u{20A0}'..='\u{20C1}' | '\u{A838}' | '\u{FDFC}' | '\u{FE69}' | '\u{FF04}'
        | '\u{FFE0}' | '\u{FFE1}' | '\u{FFE5}' | '\u{FFE6}' | '\u{11FDD}'..='\u{11FE0}'
        | '\u{1E2FF}' | '\u{1ECB0}'
    )
}

fn is_opening(c: char) -> bool {
    matches!(
        c,
        '(' | '['
            | '{'
            | '<'
            | '"'
            | '\''
            | '“'
            | '‘'
            | '„'
            | '«'
            | '¿'
            | '¡'
            | '「'
            | '『'
            | '（'
            | '［'
            | '｛'
            | '*'
            | '_'
            | '~'
    )
}

fn is_closing(c: char) -> bool {
    matches!(
        c,
        ')' | ']'
            | '}'
            | '>'
            | '"'
            | '\''
            | '”'
            | '’'
            | '»'
            | '.'
            | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | '…'
            | '」'
            | '』'
            | '）'
            | '］'
            | '｝'
            | '。'
            | '，'
            | '、'
            | '！'
            | '？'
            | '：'
            | '；'
            | '‼'
            | '⁇'
            | '⁈'
            | '⁉'
            | '‽'
            | '*'
            | '_'
            | '~'
    )
}

fn is_url(tok: &str) -> bool {
    const PREFIXES: [&str; 4] = ["http://", "https://", "ftp://", "www."];
    let b = tok.as_bytes();
    PREFIXES.iter().any(|p| {
        b.len() > p.len()
            && b.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
    })
}

fn is_email(tok: &str) -> bool {
    let Some((local, domain)) = tok.split_once('@') else {
        return false;
    };
    if local.is_empty()
        || !local
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\''))
    {
        return false;
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() || !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.chars().count() >= 2 && last.chars().all(char::is_alphabetic)
}

fn is_mention(tok: &str) -> bool {
    tok.strip_prefix('@')
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

fn is_hashtag(tok: &str) -> bool {
    tok.strip_prefix('#').is_some_and(|rest| {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .any(char::is_alphabetic)
    })
}

/// Counts of web and numeric tokens, and the state of the token being read.
#[derive(Debug, Default)]
pub(super) struct Web {
    /// URLs.
    pub urls: u64,
    /// E-mail addresses.
    pub emails: u64,
    /// @mentions.
    pub mentions: u64,
    /// #hashtags.
    pub hashtags: u64,
    /// Numbers.
    pub numbers: u64,
    /// Currency symbols.
    pub currency_symbols: u64,
    /// Numbers priced by a currency symbol.
    pub currency_amounts: u64,
    in_token: bool,
    start: usize,
    flags: u8,
    /// The previous token ended with a number that no symbol priced.
    prev_unpriced_number: bool,
    /// The previous token was only currency symbols, not yet used to price a number.
    prev_bare_currency: bool,
}

impl Web {
    /// Processes `c` at byte offset `i` of `text`; `k` is its class.
    #[inline]
    pub(super) fn feed(&mut self, text: &str, i: usize, c: char, k: u8) {
        if k & SPACE != 0 {
            if self.in_token {
                self.in_token = false;
                self.token(text.get(self.start..i).unwrap_or(""));
            }
            return;
        }
        if !self.in_token {
            self.in_token = true;
            self.start = i;
            self.flags = 0;
        }
        if k & NUMERIC != 0 {
            self.flags |= DIGIT;
        } else if c.is_ascii() {
            self.flags |= match c {
                '@' => AT,
                '#' => HASH,
                ':' | '.' => URLISH,
                '$' => {
                    self.currency_symbols += 1;
                    CURRENCY
                }
                _ => 0,
            };
        } else if k & ALPHA == 0 && is_currency(c) {
            self.currency_symbols += 1;
            self.flags |= CURRENCY;
        }
    }

    /// Processes the last token of `text`.
    pub(super) fn finish(&mut self, text: &str) {
        if self.in_token {
            self.in_token = false;
            self.token(text.get(self.start..).unwrap_or(""));
        }
    }

    fn token(&mut self, raw: &str) {
        let (unpriced, bare) = self.classify(raw);
        self.prev_unpriced_number = unpriced;
        self.prev_bare_currency = bare;
    }

    /// Counts one token; returns (ends with an unpriced number, is bare unused currency).
    fn classify(&mut self, raw: &str) -> (bool, bool) {
        let flags = self.flags;
        if flags == 0 {
            return (false, false);
        }
        let tok = raw
            .trim_start_matches(is_opening)
            .trim_end_matches(is_closing);
        if tok.is_empty() {
            return (false, false);
        }
        if flags & URLISH != 0 && is_url(tok) {
            self.urls += 1;
            return (false, false);
        }
        if flags & AT != 0 {
            if is_email(tok) {
                self.emails += 1;
                return (false, false);
            }
            if is_mention(tok) {
                self.mentions += 1;
                return (false, false);
            }
        }
        if flags & HASH != 0 && is_hashtag(tok) {
            self.hashtags += 1;
            return (false, false);
        }
        if flags & DIGIT != 0 {
            return (self.numbers(tok), false);
        }
        if flags & CURRENCY != 0 && tok.chars().all(is_currency) {
            if self.prev_unpriced_number {
                self.currency_amounts += 1; // "5 €"
                return (false, false);
            }
            return (false, true);
        }
        (false, false)
    }

    /// Counts the numbers in `tok`; returns whether it ends with an unpriced number.
    fn numbers(&mut self, tok: &str) -> bool {
        let mut it = tok.char_indices().peekable();
        let mut prev: Option<char> = None;
        let mut ends_unpriced = false;
        while let Some((i, c)) = it.next() {
            let k = kind(c);
            if k & ALNUM == 0 {
                prev = Some(c);
                ends_unpriced = false;
                continue;
            }
            let before = prev;
            let mut last = c;
            loop {
                match it.peek() {
                    Some(&(_, d)) if kind(d) & ALNUM != 0 => {
                        last = d;
                        it.next();
                    }
                    Some(&(_, '.' | ',')) if kind(last) & NUMERIC != 0 => {
                        let mut look = it.clone();
                        look.next();
                        if look.peek().is_some_and(|&(_, d)| kind(d) & NUMERIC != 0) {
                            it.next();
                        } else {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let next = it.peek().map(|&(_, d)| d);
            prev = Some(last);
            if k & NUMERIC == 0 {
                ends_unpriced = false;
                continue;
            }
            self.numbers += 1;
            let mut priced = before.is_some_and(is_currency) || next.is_some_and(is_currency);
            if !priced && i == 0 && self.prev_bare_currency {
                self.prev_bare_currency = false; // "€ 5"
                priced = true;
            }
            self.currency_amounts += u64::from(priced);
            ends_unpriced = next.is_none() && !priced;
        }
        ends_unpriced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(text: &str) -> Web {
        let mut w = Web::default();
        for (i, c) in text.char_indices() {
            w.feed(text, i, c, kind(c));
        }
        w.finish(text);
        w
    }

    #[test]
    fn urls_emails_mentions_hashtags() {
        let w = web(
            "See https://example.com/a?b=1, (www.rust-lang.org) and HTTP://X.IO. \
                     Mail bob.smith+tag@mail.example.co.uk or @alice_1; #rustlang #1 #_ok \
                     www. http:// a@b x@y.z @ #",
        );
        assert_eq!(w.urls, 3);
        assert_eq!(w.emails, 1);
        assert_eq!(w.mentions, 1); // @alice_1; "a@b", "x@y.z" and a lone "@" are neither
        assert_eq!(w.hashtags, 2); // #rustlang, #_ok; "#1" has no letter
        assert_eq!(w.numbers, 1); // the 1 of "#1"; digits inside URLs, e-mails and tags do not count
    }

    #[test]
    fn numbers() {
        let w = web("42 3.14 1,000.50 2nd 10am v2 mp3 2024-01-15 12:30 end. 7.");
        // 42, 3.14, 1,000.50, 2nd, 10am, 2024, 01, 15, 12, 30, 7
        assert_eq!(w.numbers, 11);
        assert_eq!(w.currency_amounts, 0);
    }

    #[test]
    fn currency() {
        let w = web("$5 US$5 5€ $5k €5-€10 € 20 30 £ ¥ ₹1,000 $ $");
        // Amounts: $5, US$5, 5€, $5k, €5, €10, € 20, 30 £, ₹1,000 = 9; the "¥" and the two "$"
        // at the end price nothing.
        assert_eq!(w.numbers, 9);
        assert_eq!(w.currency_amounts, 9);
        // $ $ € $ € € € £ ¥ ₹ $ $ = 12
        assert_eq!(w.currency_symbols, 12);
        let w = web("5 € 6");
        assert_eq!((w.numbers, w.currency_amounts), (2, 1));
    }
}
