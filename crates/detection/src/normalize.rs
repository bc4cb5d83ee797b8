//! Unicode folding for injection matching: drops invisible characters, folds
//! look-alike letters and full-width forms to ASCII, and keeps a map from every
//! output byte back to the original text so findings report original offsets.

/// What one input character becomes.
enum Fold {
    Drop,
    Ascii(u8),
    Keep,
}

fn fold(c: char) -> Fold {
    let cp = u32::from(c);
    let ascii = |b: u8| Fold::Ascii(b);
    match cp {
        // Zero-width and formatting characters, bidi controls, variation
        // selectors, soft hyphen, combining diacritics.
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180E | 0x3164 | 0xFEFF
        | 0xFFA0 => Fold::Drop,
        0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F => Fold::Drop,
        0x0300..=0x036F | 0xFE00..=0xFE0F | 0xE0100..=0xE01EF => Fold::Drop,
        // Unicode "tag" characters mirror ASCII invisibly ("ASCII smuggling").
        0xE0020..=0xE007E => ascii((cp - 0xE0000) as u8),
        0xE0000..=0xE001F | 0xE007F => Fold::Drop,
        // Spaces.
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000 => {
            ascii(b' ')
        }
        // Full-width ASCII.
        0xFF01..=0xFF5E => ascii((cp - 0xFEE0) as u8),
        // Quotes.
        0x2018 | 0x2019 | 0x201A | 0x201B | 0x2032 => ascii(b'\''),
        0x201C | 0x201D | 0x201E | 0x201F | 0x00AB | 0x00BB | 0x2033 => ascii(b'"'),
        // Dashes.
        0x2010..=0x2015 | 0x2212 => ascii(b'-'),
        // Mathematical alphanumeric letters and digits.
        0x1D400..=0x1D6A3 => {
            let n = ((cp - 0x1D400) % 52) as u8;
            if n < 26 {
                ascii(b'A' + n)
            } else {
                ascii(b'a' + n - 26)
            }
        }
        0x1D7CE..=0x1D7FF => ascii(b'0' + ((cp - 0x1D7CE) % 10) as u8),
        // Circled letters.
        0x24B6..=0x24CF => ascii(b'A' + (cp - 0x24B6) as u8),
        0x24D0..=0x24E9 => ascii(b'a' + (cp - 0x24D0) as u8),
        _ => fold_letter(c),
    }
}

fn fold_letter(c: char) -> Fold {
    let b = match c {
        // Cyrillic look-alikes.
        'а' => b'a',
        'е' | 'ё' => b'e',
        'о' => b'o',
        'р' => b'p',
        'с' => b'c',
        'у' => b'y',
        'х' => b'x',
        'і' | 'ї' => b'i',
        'ј' => b'j',
        'ѕ' => b's',
        'ԁ' => b'd',
        'ԛ' => b'q',
        'ԝ' => b'w',
        'һ' => b'h',
        'ӏ' => b'l',
        'А' => b'A',
        'В' => b'B',
        'Е' => b'E',
        'К' => b'K',
        'М' => b'M',
        'Н' => b'H',
        'О' => b'O',
        'Р' => b'P',
        'С' => b'C',
        'Т' => b'T',
        'Х' => b'X',
        'І' => b'I',
        'Ј' => b'J',
        'Ѕ' => b'S',
        'У' => b'Y',
        // Greek look-alikes.
        'α' => b'a',
        'ο' => b'o',
        'ι' => b'i',
        'ν' => b'v',
        'ρ' => b'p',
        'τ' => b't',
        'κ' => b'k',
        'ε' => b'e',
        'υ' => b'u',
        'χ' => b'x',
        'γ' => b'y',
        'Α' => b'A',
        'Β' => b'B',
        'Ε' => b'E',
        'Ζ' => b'Z',
        'Η' => b'H',
        'Ι' => b'I',
        'Κ' => b'K',
        'Μ' => b'M',
        'Ν' => b'N',
        'Ο' => b'O',
        'Ρ' => b'P',
        'Τ' => b'T',
        'Υ' => b'Y',
        'Χ' => b'X',
        // Latin letters with diacritics and other look-alikes.
        'À'..='Å' => b'A',
        'à'..='å' => b'a',
        'Ç' => b'C',
        'ç' => b'c',
        'È'..='Ë' => b'E',
        'è'..='ë' => b'e',
        'Ì'..='Ï' => b'I',
        'ì'..='ï' | 'ı' => b'i',
        'Ñ' => b'N',
        'ñ' => b'n',
        'Ò'..='Ö' | 'Ø' => b'O',
        'ò'..='ö' | 'ø' => b'o',
        'Ù'..='Ü' => b'U',
        'ù'..='ü' => b'u',
        'Ý' => b'Y',
        'ý' | 'ÿ' => b'y',
        'ɡ' => b'g',
        'ʀ' => b'r',
        'ꜱ' => b's',
        'ᴀ' => b'a',
        'ᴇ' => b'e',
        'ɪ' => b'i',
        'ᴏ' => b'o',
        _ => return Fold::Keep,
    };
    Fold::Ascii(b)
}

/// Writes the folded form of `text` into `out`, and into `map` the segments
/// where output maps linearly to input: `(output start, input start)`, one
/// segment per run between folded or dropped characters.
pub(crate) fn normalize_into(text: &str, out: &mut Vec<u8>, map: &mut Vec<(usize, usize)>) {
    out.clear();
    map.clear();
    out.reserve(text.len());
    map.push((0, 0));
    let bytes = text.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        // Copy the ASCII run as is.
        let run = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(bytes.len() - i);
        out.extend_from_slice(&bytes[i..i + run]);
        i += run;
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            break;
        };
        let len = c.len_utf8();
        match fold(c) {
            Fold::Drop => map.push((out.len(), i + len)),
            Fold::Ascii(b) => {
                map.push((out.len(), i));
                out.push(b);
                map.push((out.len(), i + len));
            }
            Fold::Keep => out.extend_from_slice(&bytes[i..i + len]),
        }
        i += len;
    }
}

/// Original offset of folded byte `p` (floored to a char boundary).
fn lookup(text: &str, map: &[(usize, usize)], p: usize) -> usize {
    let idx = map.partition_point(|&(n, _)| n <= p).saturating_sub(1);
    let (n, o) = map.get(idx).copied().unwrap_or((0, 0));
    let mut orig = (o + (p - n.min(p))).min(text.len());
    while !text.is_char_boundary(orig) {
        orig -= 1;
    }
    orig
}

/// Maps a `[start, end)` byte range in the folded text back to the original
/// text. Both results are char boundaries of `text`.
pub(crate) fn map_range(
    text: &str,
    map: &[(usize, usize)],
    start: usize,
    end: usize,
) -> (usize, usize) {
    let s = lookup(text, map, start);
    let e = if end <= start {
        s
    } else {
        // End of the original character that produced the last byte.
        let src = lookup(text, map, end - 1);
        src + text[src..].chars().next().map_or(0, char::len_utf8)
    };
    (s, e.max(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> (String, Vec<(usize, usize)>) {
        let mut out = Vec::new();
        let mut map = Vec::new();
        normalize_into(text, &mut out, &mut map);
        (String::from_utf8(out).unwrap(), map)
    }

    #[test]
    fn folds_confusables_and_strips_invisibles() {
        assert_eq!(norm("іgnоrе").0, "ignore");
        assert_eq!(norm("ｉｇｎｏｒｅ").0, "ignore");
        assert_eq!(norm("ig\u{200b}no\u{200d}re").0, "ignore");
        assert_eq!(norm("𝐢𝐠𝐧𝐨𝐫𝐞").0, "ignore");
        assert_eq!(norm("ΑΒΕ").0, "ABE");
        assert_eq!(norm("“quoted”").0, "\"quoted\"");
        assert_eq!(norm("日本").0, "日本");
    }

    #[test]
    fn maps_back_to_original_offsets() {
        let text = "a\u{200b}іgnоrе b";
        let (out, map) = norm(text);
        let start = out.find("ignore").unwrap();
        let (s, e) = map_range(text, &map, start, start + "ignore".len());
        assert_eq!(&text[s..e], "іgnоrе");
    }
}
