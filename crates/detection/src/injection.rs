//! Prompt-injection detection: one multi-pattern scan over the folded text
//! finds attack phrases and benign-context signals together; a second cheap
//! byte loop finds base64/hex blobs, which are decoded and scanned again.

use std::cell::RefCell;

use regex_automata::{Input, MatchKind, meta, util::syntax};

use crate::injection_patterns::{ATTACKS, SIGNALS, Signal, expand, rot13_pattern};
use crate::learned::Model;
use crate::normalize::{map_range, normalize_into};
use crate::validate::{base64_decode, hex_decode, mostly_text};
use crate::{InjectionCategory, InjectionFinding, Severity};

#[derive(Debug, Clone, Copy)]
struct Rule {
    category: InjectionCategory,
    severity: Severity,
    confidence: f32,
}

/// A finding in haystack coordinates, before benign-context adjustment.
#[derive(Debug, Clone, Copy)]
struct Raw {
    category: InjectionCategory,
    severity: Severity,
    confidence: f32,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy)]
struct Marker {
    signal: Signal,
    start: usize,
    end: usize,
}

/// Reusable per-thread buffers.
#[derive(Default)]
struct Scratch {
    norm: Vec<u8>,
    map: Vec<(usize, usize)>,
    raw: Vec<Raw>,
    markers: Vec<Marker>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Lazy-DFA cache per thread for the attack patterns. Smaller caches thrash
/// on varied text (the DFA keeps rebuilding states) and run several times
/// slower; this is an upper bound, filled only as states are needed.
const LAZY_DFA_CACHE: usize = 32 * 1024 * 1024;

/// Minimum length of a base64/hex run worth decoding.
const MIN_BLOB: usize = 20;
/// Decode attempts that pass the prefix check, per scan level.
const MAX_FULL_DECODES: usize = 16;
/// Largest blob decoded in full.
const MAX_BLOB: usize = 64 * 1024;

pub(crate) struct InjectionEngine {
    re: meta::Regex,
    signals: meta::Regex,
    rules: Vec<Rule>,
    max_depth: u8,
}

impl InjectionEngine {
    pub(crate) fn new(max_depth: u8) -> Result<InjectionEngine, String> {
        let mut pats = Vec::new();
        let mut rules = Vec::new();
        for rule in ATTACKS {
            pats.push(expand(rule.pattern));
            rules.push(Rule {
                category: rule.category,
                severity: rule.severity,
                confidence: rule.confidence,
            });
        }
        for rule in ATTACKS.iter().filter(|r| r.rot13) {
            pats.push(expand(&rot13_pattern(rule.pattern)));
            rules.push(Rule {
                category: InjectionCategory::EncodedInstruction,
                severity: rule.severity.max(Severity::High),
                confidence: 0.85,
            });
        }
        let build = |pats: &[String], cache: usize| {
            meta::Regex::builder()
                .syntax(
                    syntax::Config::new()
                        .unicode(false)
                        .utf8(false)
                        .case_insensitive(true),
                )
                .configure(
                    meta::Config::new()
                        .match_kind(MatchKind::LeftmostFirst)
                        .hybrid_cache_capacity(cache),
                )
                .build_many(pats)
                .map_err(|e| e.to_string())
        };
        let re = build(&pats, LAZY_DFA_CACHE)?;
        let signal_pats: Vec<String> = SIGNALS.iter().map(|(_, p)| expand(p)).collect();
        let signals = build(&signal_pats, 2 * 1024 * 1024)?;
        Ok(InjectionEngine {
            re,
            signals,
            rules,
            max_depth,
        })
    }

    /// Appends findings (original-text offsets) to `out`; returns the learned
    /// model's score of the same folded haystack when a model is given.
    pub(crate) fn scan(
        &self,
        text: &str,
        out: &mut Vec<InjectionFinding>,
        model: Option<&Model>,
    ) -> Option<f32> {
        let run = |scratch: &mut Scratch, out: &mut Vec<InjectionFinding>| {
            self.scan_with(text, 0, scratch, out);
            // scan_with folded non-ASCII text into `norm` (nested decodes use
            // their own scratch), so the model reads the rules' haystack.
            model.map(|m| {
                if text.is_ascii() {
                    m.score(text.as_bytes())
                } else {
                    m.score(&scratch.norm)
                }
            })
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => run(&mut scratch, out),
            Err(_) => run(&mut Scratch::default(), out),
        })
    }

    fn scan_with(&self, text: &str, depth: u8, sc: &mut Scratch, out: &mut Vec<InjectionFinding>) {
        let Scratch {
            norm,
            map,
            raw,
            markers,
        } = sc;
        raw.clear();
        markers.clear();
        let folded = !text.is_ascii();
        let hay: &[u8] = if folded {
            normalize_into(text, norm, map);
            norm
        } else {
            text.as_bytes()
        };
        self.find(hay, raw);
        if depth < self.max_depth {
            self.find_blobs(hay, depth, raw);
        }
        if raw.is_empty() {
            return;
        }
        self.find_signals(hay, raw, markers);
        adjust(hay, raw, markers);
        merge(raw);
        for r in raw.iter() {
            let (start, end) = if folded {
                map_range(text, map, r.start, r.end)
            } else {
                (r.start, r.end)
            };
            out.push(InjectionFinding {
                category: r.category,
                severity: r.severity,
                confidence: r.confidence,
                start,
                end,
            });
        }
    }

    fn find(&self, hay: &[u8], raw: &mut Vec<Raw>) {
        let mut pos = 0usize;
        while pos < hay.len() {
            let input = Input::new(hay).span(pos..hay.len());
            let Some(m) = self.re.search(&input) else {
                break;
            };
            let (s, e) = (m.start(), m.end());
            let Rule {
                category,
                severity,
                confidence,
            } = self.rules[m.pattern().as_usize()];
            raw.push(Raw {
                category,
                severity,
                confidence,
                start: s,
                end: e,
            });
            // Resume at the last word of the match, so an attack that starts
            // where a longer one ends ("SYSTEM: ignore all previous ...") is
            // still seen; overlaps of one category are merged later.
            pos = match hay[s..e].iter().rposition(u8::is_ascii_whitespace) {
                Some(i) => s + i + 1,
                None => e,
            }
            .max(s + 1);
        }
    }

    /// Collects benign-context markers, only in the windows around findings.
    fn find_signals(&self, hay: &[u8], raw: &[Raw], markers: &mut Vec<Marker>) {
        let mut windows: Vec<(usize, usize)> = raw
            .iter()
            .map(|r| {
                (
                    r.start.saturating_sub(ACADEMIC_BEFORE),
                    (r.end + ACADEMIC_AFTER).min(hay.len()),
                )
            })
            .collect();
        windows.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(windows.len());
        for w in windows {
            match merged.last_mut() {
                Some(last) if w.0 <= last.1 => last.1 = last.1.max(w.1),
                _ => merged.push(w),
            }
        }
        for (lo, hi) in merged {
            let input = Input::new(hay).span(lo..hi);
            for m in self.signals.find_iter(input) {
                markers.push(Marker {
                    signal: SIGNALS[m.pattern().as_usize()].0,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }

    /// Finds base64, hex, `\xNN` and spaced-hex runs, decodes those whose
    /// prefix decodes to text, scans the text again, and reports any attack
    /// inside as `encoded_instruction` over the blob's span.
    fn find_blobs(&self, hay: &[u8], depth: u8, raw: &mut Vec<Raw>) {
        let mut decodes = 0usize;
        let mut i = 0usize;
        while i < hay.len() {
            let b = hay[i];
            if b == b'\\' && hay.get(i + 1).is_some_and(|&x| x == b'x' || x == b'X') {
                let st = i;
                while i + 3 < hay.len()
                    && hay[i] == b'\\'
                    && (hay[i + 1] | 0x20) == b'x'
                    && hay[i + 2].is_ascii_hexdigit()
                    && hay[i + 3].is_ascii_hexdigit()
                {
                    i += 4;
                }
                if i - st >= 4 * 8 && decodes < MAX_FULL_DECODES {
                    decodes += self.try_blob(hay, st, i, depth, raw);
                }
                i = i.max(st + 1);
                continue;
            }
            if !is_b64(b) {
                i += 1;
                continue;
            }
            let st = i;
            while i < hay.len() && is_b64(hay[i]) {
                i += 1;
            }
            let mut en = i;
            while en < hay.len() && en - i < 2 && hay[en] == b'=' {
                en += 1;
            }
            let len = i - st;
            if len >= MIN_BLOB {
                if decodes < MAX_FULL_DECODES {
                    decodes += self.try_blob(hay, st, en, depth, raw);
                }
                i = en;
            } else if len == 2 && hay[st].is_ascii_hexdigit() && hay[st + 1].is_ascii_hexdigit() {
                // Spaced hex: "69 67 6e 6f ..."
                let mut j = st + 2;
                let mut pairs = 1;
                while j + 2 < hay.len()
                    && hay[j] == b' '
                    && hay[j + 1].is_ascii_hexdigit()
                    && hay[j + 2].is_ascii_hexdigit()
                    && hay.get(j + 3).is_none_or(|&x| !is_b64(x))
                {
                    j += 3;
                    pairs += 1;
                }
                if pairs >= 8 && decodes < MAX_FULL_DECODES {
                    decodes += self.try_blob(hay, st, j, depth, raw);
                    i = j;
                }
            }
        }
    }

    /// Returns 1 if a full decode was attempted (to bound the work per scan).
    fn try_blob(&self, hay: &[u8], st: usize, en: usize, depth: u8, raw: &mut Vec<Raw>) -> usize {
        let t = &hay[st..en];
        let hex = t
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b' ' || b == b'\\' || b == b'x' || b == b'X')
            && t.iter().filter(|b| b.is_ascii_hexdigit()).count() % 2 == 0;
        // Cheap check on a prefix first.
        let mut head = [0u8; 96];
        let head_len = if hex {
            let cut = prefix_cut(t, 192, |b| b.is_ascii_hexdigit());
            hex_decode(&t[..cut], &mut head)
        } else {
            let cut = t.len().min(128);
            let cut = cut - cut % 4;
            base64_decode(&t[..cut], &mut head)
        };
        let Some(head_len) = head_len else {
            return 0;
        };
        if !text_prefix(&head[..head_len]) {
            return 0;
        }
        if t.len() > MAX_BLOB {
            return 1;
        }
        let mut full = vec![0u8; t.len()];
        let n = if hex {
            hex_decode(t, &mut full)
        } else {
            base64_decode(t, &mut full)
        };
        let Some(n) = n else {
            return 1;
        };
        full.truncate(n);
        let decoded = String::from_utf8_lossy(&full);
        let mut inner = Vec::new();
        self.scan_with(&decoded, depth + 1, &mut Scratch::default(), &mut inner);
        let worst = inner.iter().max_by(|a, b| {
            (a.severity, a.confidence)
                .partial_cmp(&(b.severity, b.confidence))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        if let Some(w) = worst {
            let severity = if w.confidence >= 0.5 {
                w.severity.max(Severity::High)
            } else {
                w.severity
            };
            raw.push(Raw {
                category: InjectionCategory::EncodedInstruction,
                severity,
                confidence: w.confidence.clamp(0.5, 1.0),
                start: st,
                end: en,
            });
        }
        1
    }
}

static B64: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'_' || b == b'-';
        i += 1;
    }
    t
};

#[inline]
fn is_b64(b: u8) -> bool {
    B64[usize::from(b)]
}

/// Index after at most `max` bytes of `t`, cut after an even number of bytes
/// that satisfy `unit`.
fn prefix_cut(t: &[u8], max: usize, unit: impl Fn(&u8) -> bool) -> usize {
    let mut count = 0;
    for (i, b) in t.iter().enumerate() {
        if i >= max {
            return cut_even(t, i, count, &unit);
        }
        if unit(b) {
            count += 1;
        }
    }
    t.len()
}

fn cut_even(t: &[u8], mut i: usize, count: usize, unit: &impl Fn(&u8) -> bool) -> usize {
    if count % 2 == 1 {
        // Drop the dangling half pair.
        while i > 0 && !unit(&t[i - 1]) {
            i -= 1;
        }
        i = i.saturating_sub(1);
    }
    i
}

/// The decoded prefix looks like text (tolerating a cut multi-byte char).
fn text_prefix(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => return false,
    };
    mostly_text(&bytes[..valid])
}

/// Context windows, in bytes.
const ACADEMIC_BEFORE: usize = 200;
const ACADEMIC_AFTER: usize = 120;
const HOWTO_BEFORE: usize = 120;
const QUOTE_BEFORE: usize = 60;
const QUOTE_LOOKBACK: usize = 512;

fn adjust(hay: &[u8], raw: &mut [Raw], markers: &[Marker]) {
    for r in raw.iter_mut() {
        let mut levels = 0u8;
        let mut mult = 1.0f32;
        let window = |before: usize, after: usize, signal: Signal| {
            let lo = r.start.saturating_sub(before);
            let hi = r.end + after;
            let first = markers.partition_point(|m| m.end < lo);
            markers[first..]
                .iter()
                .take_while(|m| m.start <= hi)
                .any(|m| m.signal == signal && (m.end <= r.start || m.start >= r.end))
        };
        if negated(hay, r.start, markers) {
            levels += 2;
            mult *= 0.3;
        }
        if quoted(hay, r.start, r.end) || window(QUOTE_BEFORE, 0, Signal::Quote) {
            levels += 1;
            mult *= 0.5;
        }
        if window(ACADEMIC_BEFORE, ACADEMIC_AFTER, Signal::Academic) {
            levels += 1;
            mult *= 0.5;
        }
        if window(HOWTO_BEFORE, 20, Signal::HowTo) {
            levels += 1;
            mult *= 0.55;
            if window(HOWTO_BEFORE, 80, Signal::Tech) {
                levels += 1;
                mult *= 0.6;
            }
        }
        for _ in 0..levels {
            r.severity = r.severity.lower();
        }
        r.confidence *= mult;
    }
    // Several distinct attack categories together are more convincing.
    let mut seen = [false; InjectionCategory::ALL.len()];
    for r in raw.iter().filter(|r| r.confidence >= 0.25) {
        seen[r.category as usize] = true;
    }
    let distinct = seen.iter().filter(|&&x| x).count();
    if distinct >= 2 {
        let boost = (0.15 * (distinct - 1) as f32).min(0.3);
        for r in raw.iter_mut() {
            r.confidence = (r.confidence + boost).min(1.0);
        }
    }
    for r in raw.iter_mut() {
        r.confidence = r.confidence.clamp(0.0, 1.0);
    }
}

/// A negation word directly before the match ("don't ever ignore ...").
fn negated(hay: &[u8], start: usize, markers: &[Marker]) -> bool {
    let idx = markers.partition_point(|m| m.end <= start);
    let Some(m) = idx.checked_sub(1).map(|i| markers[i]) else {
        return false;
    };
    if m.signal != Signal::Negation || start - m.end > 24 {
        return false;
    }
    let gap = &hay[m.end..start];
    let words = gap
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let mut n = 0;
    for w in words {
        n += 1;
        let allowed = [
            &b"ever"[..],
            b"just",
            b"simply",
            b"blindly",
            b"accidentally",
            b"automatically",
            b"immediately",
            b"actually",
            b"really",
            b"you",
            b"to",
            b"try",
        ]
        .iter()
        .any(|a| w.eq_ignore_ascii_case(a));
        if !allowed || n > 2 {
            return false;
        }
    }
    true
}

/// Inside a quotation on the same line: an odd number of `"` before and one
/// after, or a single quote opening right before and closing after.
fn quoted(hay: &[u8], start: usize, end: usize) -> bool {
    let lo = start.saturating_sub(QUOTE_LOOKBACK);
    let line_start = memchr::memrchr(b'\n', &hay[lo..start]).map_or(lo, |i| lo + i + 1);
    let before = &hay[line_start..start];
    let hi = (end + QUOTE_LOOKBACK).min(hay.len());
    let line_end = memchr::memchr(b'\n', &hay[end..hi]).map_or(hi, |i| end + i);
    let after = &hay[end..line_end];
    let doubles = memchr::memchr_iter(b'"', before).count();
    if doubles % 2 == 1 && memchr::memchr(b'"', after).is_some() {
        return true;
    }
    let opens_single = before
        .iter()
        .rev()
        .take(3)
        .position(|&b| b == b'\'' || b == b'`')
        .is_some_and(|p| {
            let q = before.len() - 1 - p;
            q == 0 || !before[q - 1].is_ascii_alphanumeric()
        });
    opens_single
        && after.iter().take(120).enumerate().any(|(i, &b)| {
            (b == b'\'' || b == b'`') && after.get(i + 1).is_none_or(|x| !x.is_ascii_alphanumeric())
        })
}

/// Merges overlapping findings of the same category (keeping the strongest).
fn merge(raw: &mut Vec<Raw>) {
    raw.sort_by_key(|a| (a.category, a.start));
    let mut w = 0usize;
    for i in 0..raw.len() {
        if w > 0 && raw[w - 1].category == raw[i].category && raw[i].start < raw[w - 1].end {
            let cur = raw[i];
            let prev = &mut raw[w - 1];
            prev.end = prev.end.max(cur.end);
            if (cur.severity, cur.confidence) > (prev.severity, prev.confidence) {
                prev.severity = cur.severity;
                prev.confidence = cur.confidence;
            }
        } else {
            raw[w] = raw[i];
            w += 1;
        }
    }
    raw.truncate(w);
    raw.sort_by_key(|r| r.start);
}
