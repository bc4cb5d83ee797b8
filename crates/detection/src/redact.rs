//! Redaction of PII spans.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{PiiFinding, PiiKind};

/// How [`crate::Detector::redact`] replaces each PII span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedactMode {
    /// Every character becomes `*` (length preserved).
    #[default]
    Mask,
    /// `[EMAIL_1]`, `[PHONE_2]`: numbered per kind; the same value gets the
    /// same number within one call.
    TypedToken,
    /// `[EMAIL:3fa2b1c4d5e6f708]`: HMAC-SHA256 of kind and value under the
    /// detector's key, first 8 bytes in hex. Stable for one key, useless
    /// without it (never a plain hash).
    KeyedHash,
    /// Mask all letters and digits except the last four; separators stay.
    /// Values with fewer than eight letters and digits are masked entirely.
    KeepLast4,
}

/// Number of hex characters of the keyed hash (8 bytes).
const HASH_HEX: usize = 16;

pub(crate) fn redact(text: &str, findings: &[PiiFinding], mode: RedactMode, key: &[u8]) -> String {
    // Valid spans only, sorted, overlaps merged.
    let mut spans: Vec<(usize, usize, PiiKind)> = findings
        .iter()
        .filter(|f| {
            f.start < f.end
                && f.end <= text.len()
                && text.is_char_boundary(f.start)
                && text.is_char_boundary(f.end)
        })
        .map(|f| (f.start, f.end, f.kind))
        .collect();
    spans.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
    let mut merged: Vec<(usize, usize, PiiKind)> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.0 < last.1 => last.1 = last.1.max(span.1),
            _ => merged.push(span),
        }
    }

    let mut out = String::with_capacity(text.len() + merged.len() * 8);
    let mut numbering: Vec<(PiiKind, &str, usize)> = Vec::new();
    let mut counters = [0usize; PiiKind::ALL.len()];
    let mut last = 0usize;
    for (s, e, kind) in merged {
        out.push_str(&text[last..s]);
        let value = &text[s..e];
        match mode {
            RedactMode::Mask => out.extend(std::iter::repeat_n('*', value.chars().count())),
            RedactMode::TypedToken => {
                let n = match numbering.iter().find(|(k, v, _)| *k == kind && *v == value) {
                    Some(&(_, _, n)) => n,
                    None => {
                        counters[kind as usize] += 1;
                        let n = counters[kind as usize];
                        numbering.push((kind, value, n));
                        n
                    }
                };
                out.push('[');
                out.push_str(kind.token_label());
                out.push('_');
                out.push_str(&n.to_string());
                out.push(']');
            }
            RedactMode::KeyedHash => {
                out.push('[');
                out.push_str(kind.token_label());
                out.push(':');
                out.push_str(&keyed_hash(key, kind, value));
                out.push(']');
            }
            RedactMode::KeepLast4 => keep_last4(value, &mut out),
        }
        last = e;
    }
    out.push_str(&text[last..]);
    out
}

fn keyed_hash(key: &[u8], kind: PiiKind, value: &str) -> String {
    let mut hex = String::with_capacity(HASH_HEX);
    // HMAC accepts keys of any length, so this never fails.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
        mac.update(kind.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        for b in tag.iter().take(HASH_HEX / 2) {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
    }
    hex
}

fn keep_last4(value: &str, out: &mut String) {
    let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
    let keep_from = if alnum >= 8 { alnum - 4 } else { usize::MAX };
    let mut seen = 0usize;
    for c in value.chars() {
        if c.is_alphanumeric() {
            out.push(if seen >= keep_from { c } else { '*' });
            seen += 1;
        } else if alnum >= 8 {
            out.push(c);
        } else {
            out.push('*');
        }
    }
}
