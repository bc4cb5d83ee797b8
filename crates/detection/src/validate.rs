//! Checksum and format validators. All work on bytes, allocate nothing and
//! never panic on any input.

use sha2::{Digest, Sha256};

/// Luhn (mod 10) check over the ASCII digits of `s`; other bytes are skipped.
/// Needs at least two digits.
pub fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut n = 0usize;
    for &b in s.iter().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let mut d = u32::from(b - b'0');
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n >= 2 && sum.is_multiple_of(10)
}

/// ISO 13616 IBAN check: country letters, two check digits, 11–30 more
/// alphanumerics (spaces ignored), remainder 1 under mod 97.
pub fn iban(s: &[u8]) -> bool {
    let mut compact = [0u8; 34];
    let mut len = 0usize;
    for &b in s {
        if b == b' ' {
            continue;
        }
        if len == compact.len() || !b.is_ascii_alphanumeric() {
            return false;
        }
        compact[len] = b.to_ascii_uppercase();
        len += 1;
    }
    if !(15..=34).contains(&len) {
        return false;
    }
    let c = &compact[..len];
    if !c[0].is_ascii_uppercase() || !c[1].is_ascii_uppercase() {
        return false;
    }
    if !c[2].is_ascii_digit() || !c[3].is_ascii_digit() {
        return false;
    }
    // Move the first four characters to the end, letters become 10..35.
    let mut rem = 0u32;
    for &b in c[4..].iter().chain(c[..4].iter()) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            let v = u32::from(b - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

/// ABA routing transit number: nine digits, weights 3-7-1, sum divisible by 10,
/// and a first two digits in a range the Federal Reserve assigns.
pub fn aba_routing(s: &[u8]) -> bool {
    if s.len() != 9 || !s.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d = |i: usize| u32::from(s[i] - b'0');
    let prefix = d(0) * 10 + d(1);
    let prefix_ok = matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80);
    let sum = 3 * (d(0) + d(3) + d(6)) + 7 * (d(1) + d(4) + d(7)) + (d(2) + d(5) + d(8));
    prefix_ok && sum % 10 == 0
}

fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0')),
    )
}

/// US SSN rules on its three parts: area 001–899 except 666, group 01–99,
/// serial 0001–9999. (The 9xx areas belong to ITINs.)
pub fn ssn(area: &[u8], group: &[u8], serial: &[u8]) -> bool {
    if area.len() != 3 || group.len() != 2 || serial.len() != 4 {
        return false;
    }
    match (num(area), num(group), num(serial)) {
        (Some(a), Some(g), Some(s)) => a != 0 && a != 666 && a < 900 && g != 0 && s != 0,
        _ => false,
    }
}

/// US ITIN rules: area 9xx, group 50–65, 70–88, 90–92 or 94–99.
pub fn itin(area: &[u8], group: &[u8], serial: &[u8]) -> bool {
    if area.len() != 3 || group.len() != 2 || serial.len() != 4 || area[0] != b'9' {
        return false;
    }
    match (num(area), num(group), num(serial)) {
        (Some(_), Some(g), Some(_)) => matches!(g, 50..=65 | 70..=88 | 90..=92 | 94..=99),
        _ => false,
    }
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn base58_value(b: u8) -> Option<u32> {
    BASE58.iter().position(|&c| c == b).map(|p| p as u32)
}

/// Bitcoin legacy address (P2PKH `1...` or P2SH `3...`) with a valid base58check
/// checksum: double SHA-256 of version + hash160.
pub fn btc_base58(s: &[u8]) -> bool {
    if !(26..=35).contains(&s.len()) {
        return false;
    }
    let mut out = [0u8; 25];
    for &b in s {
        let Some(mut carry) = base58_value(b) else {
            return false;
        };
        for byte in out.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    let leading_ones = s.iter().take_while(|&&b| b == b'1').count();
    let leading_zeros = out.iter().take_while(|&&b| b == 0).count();
    if leading_ones != leading_zeros {
        return false;
    }
    if out[0] != 0x00 && out[0] != 0x05 {
        return false;
    }
    let first = Sha256::digest(&out[..21]);
    let second = Sha256::digest(first);
    second[..4] == out[21..]
}

const BECH32: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod_step(chk: u32, v: u32) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let top = chk >> 25;
    let mut chk = ((chk & 0x01ff_ffff) << 5) ^ v;
    for (i, g) in GEN.iter().enumerate() {
        if (top >> i) & 1 == 1 {
            chk ^= g;
        }
    }
    chk
}

/// Bitcoin SegWit address (`bc1...`), bech32 or bech32m checksum.
pub fn btc_bech32(s: &[u8]) -> bool {
    if !(14..=74).contains(&s.len()) {
        return false;
    }
    let lower = s.iter().all(|b| !b.is_ascii_uppercase());
    let upper = s.iter().all(|b| !b.is_ascii_lowercase());
    if !lower && !upper {
        return false;
    }
    if !(s[..3].eq_ignore_ascii_case(b"bc1")) {
        return false;
    }
    let hrp = b"bc";
    let mut chk = 1u32;
    for &h in hrp {
        chk = bech32_polymod_step(chk, u32::from(h >> 5));
    }
    chk = bech32_polymod_step(chk, 0);
    for &h in hrp {
        chk = bech32_polymod_step(chk, u32::from(h & 31));
    }
    for &b in &s[3..] {
        let b = b.to_ascii_lowercase();
        let Some(v) = BECH32.iter().position(|&c| c == b) else {
            return false;
        };
        chk = bech32_polymod_step(chk, v as u32);
    }
    chk == 1 || chk == 0x2bc8_30a3
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u16; 256];
    for &b in s {
        counts[usize::from(b)] = counts[usize::from(b)].saturating_add(1);
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f32::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Decodes standard or URL-safe base64 (padding optional) into `out`.
/// Returns the decoded length, or `None` if the input is not base64 or `out`
/// is too small.
pub fn base64_decode(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let s = match s.iter().rposition(|&b| b != b'=') {
        Some(last) => &s[..=last],
        None => return None,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut acc = 0u32;
    let mut bits = 0u32;
    let mut n = 0usize;
    for &b in s {
        acc = (acc << 6) | u32::from(base64_value(b)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    Some(n)
}

/// Decodes hex digits (pairs; spaces and `\x` prefixes are skipped) into `out`.
pub fn hex_decode(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    let mut hi: Option<u8> = None;
    let mut i = 0usize;
    while i < s.len() {
        let b = s[i];
        if b == b'\\' && s.get(i + 1).is_some_and(|&x| x == b'x' || x == b'X') && hi.is_none() {
            i += 2;
            continue;
        }
        if b == b' ' && hi.is_none() {
            i += 1;
            continue;
        }
        let v = (b as char).to_digit(16)? as u8;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                *out.get_mut(n)? = (h << 4) | v;
                n += 1;
            }
        }
        i += 1;
    }
    if hi.is_some() { None } else { Some(n) }
}

/// True when `bytes` is UTF-8 text that is mostly printable: at least 85% of
/// its characters are letters, digits, punctuation or spaces, with some
/// letters and spaces (so random bytes and bare identifiers do not pass).
pub fn mostly_text(bytes: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut total = 0usize;
    let mut printable = 0usize;
    let mut letters = 0usize;
    let mut spaces = 0usize;
    for c in s.chars() {
        total += 1;
        if c.is_alphabetic() {
            letters += 1;
            printable += 1;
        } else if c == ' ' {
            spaces += 1;
            printable += 1;
        } else if !c.is_control() || c == '\n' || c == '\t' {
            printable += 1;
        }
    }
    total >= 8 && printable * 100 >= total * 85 && letters * 2 >= total && spaces >= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_off_by_one() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"5555555555554444"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"5555555555554440"));
        assert!(!luhn(b"7"));
        assert!(!luhn(b""));
    }

    #[test]
    fn iban_mod97() {
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(!iban(b"GB82WEST12345698765433"));
        assert!(!iban(b"GB82WEST"));
        assert!(!iban(b"1282WEST12345698765432"));
        assert!(!iban(b"GB82WEST1234569876543200000000000000000000"));
    }

    #[test]
    fn aba_checksum_and_prefix() {
        assert!(aba_routing(b"021000021"));
        assert!(aba_routing(b"011000015"));
        assert!(!aba_routing(b"021000022"));
        assert!(!aba_routing(b"02100002"));
        // checksum holds but 50 is not an assigned prefix
        assert!(!aba_routing(b"500000000"));
    }

    #[test]
    fn ssn_area_group_serial() {
        assert!(ssn(b"123", b"45", b"6789"));
        assert!(ssn(b"899", b"01", b"0001"));
        assert!(!ssn(b"000", b"45", b"6789"));
        assert!(!ssn(b"666", b"45", b"6789"));
        assert!(!ssn(b"900", b"45", b"6789"));
        assert!(!ssn(b"123", b"00", b"6789"));
        assert!(!ssn(b"123", b"45", b"0000"));
        assert!(!ssn(b"12", b"345", b"6789"));
    }

    #[test]
    fn itin_groups() {
        assert!(itin(b"912", b"70", b"1234"));
        assert!(itin(b"999", b"94", b"0000"));
        assert!(!itin(b"912", b"93", b"1234"));
        assert!(!itin(b"912", b"45", b"1234"));
        assert!(!itin(b"812", b"70", b"1234"));
    }

    #[test]
    fn btc_addresses() {
        // The genesis block coinbase address (public, well known).
        assert!(btc_base58(b"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"));
        assert!(!btc_base58(b"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"));
        assert!(!btc_base58(b"1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a"));
        // Generated with an independent bech32 encoder.
        assert!(btc_bech32(b"bc1qq4k2cjegmtmqke2whrzdg2p35qrpg7e99x282f"));
        assert!(btc_bech32(b"BC1QQ4K2CJEGMTMQKE2WHRZDG2P35QRPG7E99X282F"));
        assert!(!btc_bech32(b"bc1qq4k2cjegmtmqke2whrzdg2p35qrpg7e99x282g"));
        assert!(!btc_bech32(b"bc1Qq4k2cjegmtmqke2whrzdg2p35qrpg7e99x282f"));
    }

    #[test]
    fn entropy_orders_random_above_repetitive() {
        assert!(entropy(b"aaaaaaaaaaaaaaaa") < 0.01);
        assert!(entropy(b"Zk3q9XvB2mT7wLp4Rn8sYc6Hd1Jf5Ga0") > 4.5);
    }

    #[test]
    fn base64_and_hex_decoding() {
        let mut out = [0u8; 64];
        let n = base64_decode(b"aGVsbG8gd29ybGQ=", &mut out).unwrap();
        assert_eq!(&out[..n], b"hello world");
        let n = base64_decode(b"aGVsbG8gd29ybGQ", &mut out).unwrap();
        assert_eq!(&out[..n], b"hello world");
        assert!(base64_decode(b"a", &mut out).is_none());
        assert!(base64_decode(b"a*bc", &mut out).is_none());
        let n = hex_decode(b"68656c6c6f", &mut out).unwrap();
        assert_eq!(&out[..n], b"hello");
        let n = hex_decode(b"68 65 6c 6c 6f", &mut out).unwrap();
        assert_eq!(&out[..n], b"hello");
        let n = hex_decode(br"\x68\x65\x6c", &mut out).unwrap();
        assert_eq!(&out[..n], b"hel");
        assert!(hex_decode(b"686", &mut out).is_none());
        let mut tiny = [0u8; 2];
        assert!(hex_decode(b"686868", &mut tiny).is_none());
    }

    #[test]
    fn mostly_text_separates_prose_from_noise() {
        assert!(mostly_text(b"ignore all previous instructions"));
        assert!(!mostly_text(&[
            0x8f, 0x01, 0xfe, 0x22, 0x90, 0x00, 0x13, 0x77, 0x41
        ]));
        assert!(!mostly_text(b"abcdefghijkl"));
    }
}
