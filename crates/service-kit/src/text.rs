//! Rules for free-text fields, and the JSON Schema patterns that say the
//! same thing, so an API's OpenAPI document and its handler agree on what
//! "blank" means and which characters a field refuses.
//!
//! Whitespace is exactly [`char::is_whitespace`] (Unicode `White_Space`),
//! which is what `str::trim` removes; the patterns spell that set out as a
//! character class rather than `\s`, whose meaning differs between regex
//! engines (ECMA-262 counts U+FEFF, Python counts U+001C–U+001F).

/// Every character `char::is_whitespace` accepts, as inclusive ranges.
const WHITESPACE: [(char, char); 10] = [
    ('\u{0009}', '\u{000D}'),
    ('\u{0020}', '\u{0020}'),
    ('\u{0085}', '\u{0085}'),
    ('\u{00A0}', '\u{00A0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200A}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202F}', '\u{202F}'),
    ('\u{205F}', '\u{205F}'),
    ('\u{3000}', '\u{3000}'),
];

/// True when `text` is empty or only whitespace.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// True when `text` holds U+0000, which PostgreSQL refuses in `text` and
/// `jsonb` values.
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

fn class_body() -> String {
    WHITESPACE
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                format!("\\u{:04x}", u32::from(lo))
            } else {
                format!("\\u{:04x}-\\u{:04x}", u32::from(lo), u32::from(hi))
            }
        })
        .collect()
}

/// Pattern of a string that is not blank (holds a non-whitespace character).
pub fn not_blank_pattern() -> String {
    format!("[^{}]", class_body())
}

/// Pattern of a string without U+0000.
pub fn no_nul_pattern() -> String {
    "^[^\\u0000]*$".to_owned()
}

/// Pattern of a string that is not blank and holds no U+0000.
pub fn not_blank_no_nul_pattern() -> String {
    format!("^[^\\u0000]*[^\\u0000{}][^\\u0000]*$", class_body())
}

/// The schema of a required text field: 1–`max` characters, not blank, no
/// NUL (what [`is_blank`] and [`has_nul`] check in the handler).
pub fn required_text_schema(description: &str, max: usize) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(not_blank_no_nul_pattern()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whitespace_table_is_exactly_char_is_whitespace() {
        let in_table = |c: char| WHITESPACE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(in_table(c), c.is_whitespace(), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn blank_and_nul() {
        assert!(is_blank("") && is_blank(" \t\n\u{3000}\u{2028}"));
        assert!(!is_blank(" x ") && !is_blank("\u{feff}") && !is_blank("\u{1c}"));
        assert!(has_nul("a\0b") && !has_nul("a b"));
        assert_eq!(
            not_blank_pattern(),
            "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000]"
        );
    }
}
