//! An English syllable estimate for the readability formulas.
//!
//! Readability formulas were fitted on syllable counts, but a dictionary (CMUdict) is megabytes;
//! this is the usual vowel-group heuristic instead, exact on most common English words and never
//! far off:
//!
//! 1. Split the normalized word at hyphens; count each part and add the parts up.
//! 2. In a part, count maximal groups of vowel letters: `a e i o u`, their accented Latin forms,
//!    and `y` except as the part's first letter. Apostrophes, digits and combining marks are
//!    skipped without breaking a group; every other letter is a consonant.
//! 3. Silent e: if the part ends in `e` after a consonant and has more than one group, drop one
//!    group — unless it ends in consonant + `le` (`ta-ble`, `peo-ple`).
//! 4. A part with an alphanumeric char counts at least 1; a word counts at least 1.
//!
//! Words in other scripts have no vowel letters here and count 1 syllable per part.

use super::tokens::is_combining_mark;

/// Whether `c` (lower case) is a vowel letter; `y` is one except as the first letter.
#[inline]
fn is_vowel(c: char, first: bool) -> bool {
    match c {
        'a' | 'e' | 'i' | 'o' | 'u' => true,
        'y' => !first,
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'æ' | 'è' | 'é' | 'ê' | 'ë' | 'ì' | 'í' | 'î' | 'ï'
        | 'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ù' | 'ú' | 'û' | 'ü' | 'ý' | 'ÿ' | 'œ' => {
            true
        }
        _ => false,
    }
}

/// The syllable state of one hyphen-free part, fed letter by letter.
#[derive(Default)]
struct Part {
    groups: u64,
    in_vowels: bool,
    any_alnum: bool,
    letters: u64,
    /// The last three letters and whether each was a vowel, most recent first.
    last: [(char, bool); 3],
}

impl Part {
    #[inline(always)]
    fn letter(&mut self, c: char) {
        self.any_alnum = true;
        let v = is_vowel(c, self.letters == 0);
        if v && !self.in_vowels {
            self.groups += 1;
        }
        self.in_vowels = v;
        self.letters += 1;
        self.last = [(c, v), self.last[0], self.last[1]];
    }

    fn finish(self) -> u64 {
        let last = self.last;
        let consonant = |i: usize| last[i].0 != '\0' && !last[i].1;
        let mut groups = self.groups;
        if last[0].0 == 'e' && consonant(1) && groups > 1 && !(last[1].0 == 'l' && consonant(2)) {
            groups -= 1;
        }
        if self.any_alnum {
            groups.max(1)
        } else {
            0
        }
    }
}

/// Estimated syllables of one hyphen-free part of a normalized word. The part holds only
/// alphanumerics, apostrophes and combining marks (see `tokens`), so no Unicode tables are
/// needed: ASCII letters are told from ASCII digits, and any other char except a combining mark
/// counts as a letter (a consonant unless it is an accented Latin vowel).
fn part(p: &str) -> u64 {
    let mut state = Part::default();
    if p.is_ascii() {
        for &b in p.as_bytes() {
            if b.is_ascii_alphabetic() {
                state.letter(char::from(b));
            } else if b.is_ascii_digit() {
                state.any_alnum = true;
            }
        }
    } else {
        for c in p.chars() {
            if c.is_ascii_alphabetic() {
                state.letter(c);
            } else if c.is_ascii_digit() {
                state.any_alnum = true;
            } else if !c.is_ascii() && !is_combining_mark(c) {
                state.letter(c);
            }
        }
    }
    state.finish()
}

/// Estimated syllables of a normalized (lower-case) word; at least 1.
pub(super) fn count(word: &str) -> u64 {
    if !word.contains('-') {
        return part(word).max(1);
    }
    word.split('-').map(part).sum::<u64>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_words() {
        let cases = [
            ("the", 1),
            ("a", 1),
            ("cat", 1),
            ("make", 1),  // silent e
            ("whole", 1), // -le after a vowel is silent too
            ("free", 1),  // ee is one group
            ("are", 1),
            ("table", 2), // consonant + le
            ("people", 2),
            ("style", 1), // y is a vowel, so -le follows a vowel
            ("yes", 1),   // initial y is a consonant
            ("rhythm", 1),
            ("because", 2),
            ("beautiful", 3),
            ("readability", 5),
            ("they're", 1),
            ("don't", 1),
            ("well-known", 2),
            ("x-ray", 2),
            ("2024", 1),
            ("東京", 1),
            ("café", 2),
            ("", 1),
        ];
        for (w, n) in cases {
            assert_eq!(count(w), n, "{w}");
        }
    }

    #[test]
    fn never_zero_and_no_overflow_on_long_words() {
        assert_eq!(count("-"), 1);
        assert_eq!(count("'"), 1);
        let long = "ab".repeat(5000);
        assert_eq!(count(&long), 5000);
    }
}
