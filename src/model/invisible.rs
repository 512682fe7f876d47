//! Characters that render as nothing (or as blank space) without being format characters or
//! white space, refused in branch names like those: blank letters and symbols (Hangul fillers,
//! the Braille blank), variation selectors, the combining grapheme joiner, and combining marks
//! with nothing to combine with. The runner keeps the same table (`INVISIBLE_RANGES` in
//! `deploy/runner/lib/config.mjs`); the shared input cases hold both to it.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Inclusive code point ranges of invisible characters that are neither Cf nor White_Space.
pub const INVISIBLE_RANGES: &[(u32, u32)] = &[
    (0x034F, 0x034F),   // combining grapheme joiner
    (0x115F, 0x1160),   // Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),   // Khmer inherent vowels
    (0x180B, 0x180D),   // Mongolian free variation selectors
    (0x180F, 0x180F),   // Mongolian free variation selector four
    (0x2800, 0x2800),   // Braille pattern blank
    (0x3164, 0x3164),   // Hangul filler
    (0xFE00, 0xFE0F),   // variation selectors (incl. the emoji presentation selector)
    (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
    (0xE0100, 0xE01EF), // variation selectors supplement
];

pub fn is_invisible(c: char) -> bool {
    let cp = u32::from(c);
    INVISIBLE_RANGES.iter().any(|&(a, b)| (a..=b).contains(&cp))
}

fn is_mark(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Mark
}

/// The first combining mark that follows no letter, digit or other mark (at the start, after
/// '/', '-', '.', …): it would draw on nothing, or on the punctuation before it.
pub fn lone_mark(s: &str) -> Option<char> {
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if is_mark(c) && !prev.is_some_and(|p| p.is_alphanumeric() || is_mark(p)) {
            return Some(c);
        }
        prev = Some(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_lone_characters_are_found() {
        for c in ['\u{3164}', '\u{2800}', '\u{FE0F}', '\u{115F}', '\u{E0100}', '\u{034F}'] {
            assert!(is_invisible(c), "U+{:04X}", u32::from(c));
        }
        assert!(!is_invisible('a') && !is_invisible('\u{00FC}'));
        assert_eq!(lone_mark("\u{0301}main"), Some('\u{0301}'));
        assert_eq!(lone_mark("feature/\u{0301}x"), Some('\u{0301}'));
        assert_eq!(lone_mark("cafe\u{0301}"), None, "a mark on a letter is text");
        assert_eq!(lone_mark("\u{0915}\u{093F}"), None, "Devanagari ki");
    }
}
