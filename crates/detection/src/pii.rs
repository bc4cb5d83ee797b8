//! PII detection: one multi-pattern scan over the text finds candidate shapes
//! (and context words); only candidates are classified and validated.

use regex_automata::{Input, MatchKind, meta, util::syntax};

use crate::validate;
use crate::{PiiFinding, PiiKind};

/// Candidate shapes found by the single pass. The classifier decides the kind.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Pem,
    Jwt,
    Email,
    IbanSpaced,
    HexColon,
    MacHyphen,
    DateWords,
    Word,
    Numeric,
}

/// Context words that raise confidence or unlock context-gated kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Ssn,
    Itin,
    Routing,
    Account,
    Card,
    Phone,
    Dob,
    Passport,
    License,
    Secret,
}

/// Priority order matters: at one start position the first pattern that
/// matches wins.
const PATTERNS: &[(Shape, &str)] = &[
    (
        Shape::Pem,
        r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----",
    ),
    (
        Shape::Jwt,
        r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
    (
        Shape::Email,
        r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}",
    ),
    (
        Shape::IbanSpaced,
        r"\b[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?\b",
    ),
    (
        Shape::HexColon,
        r"[0-9A-Fa-f]{0,4}(?:::?[0-9A-Fa-f]{1,4}){2,7}",
    ),
    (
        Shape::MacHyphen,
        r"\b[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}\b",
    ),
    (
        Shape::DateWords,
        r"\b(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[A-Za-z]*\.? [0-9]{1,2}(?:st|nd|rd|th)?,? [0-9]{4}\b",
    ),
    (
        Shape::DateWords,
        r"\b[0-9]{1,2}(?:st|nd|rd|th)? (?:of )?(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[A-Za-z]*\.?,? [0-9]{4}\b",
    ),
    (
        Shape::Word,
        r"[A-Za-z0-9_\-+/]*(?:[A-Za-z][A-Za-z0-9_\-+/]*[0-9]|[0-9][A-Za-z0-9_\-+/]*[A-Za-z])[A-Za-z0-9_\-+/]*={0,2}",
    ),
    (
        Shape::Numeric,
        r"(?:\+|\()?[0-9]+(?:(?:[ .\-/]|\) ?|\)-| \()[0-9]+)+|(?:\+|\()?[0-9]{5,}",
    ),
];

/// Context words, searched only in the window before a candidate that needs them.
const CONTEXT_PATTERNS: &[(Ctx, &str)] = &[
    (
        Ctx::Ssn,
        r"\b(?i:ssn|social\s+security(?:\s+number)?|soc\.?\s*sec)\b",
    ),
    (
        Ctx::Itin,
        r"\b(?i:itin|taxpayer\s+id(?:entification)?|tax\s+id(?:entification)?)\b",
    ),
    (Ctx::Routing, r"\b(?i:routing|aba|rtn|transit\s+number)\b"),
    (Ctx::Account, r"\b(?i:account|acct|a/c|checking|savings)\b"),
    (
        Ctx::Card,
        r"\b(?i:card|cards|visa|mastercard|amex|credit|debit|cc)\b",
    ),
    (
        Ctx::Phone,
        r"\b(?i:phone|telephone|tel|mobile|cell|cellphone|call|text|fax|whatsapp|sms|ring|landline|contact\s+number)\b",
    ),
    (
        Ctx::Dob,
        r"\b(?i:dob|d\.o\.b|date\s+of\s+birth|birth\s*date|birthday|born|birth)\b",
    ),
    (Ctx::Passport, r"\b(?i:passport)\b"),
    (
        Ctx::License,
        r"\b(?i:driver'?s?\s+licen[cs]e|driving\s+licen[cs]e|licen[cs]e\s+(?:no|number)|dl|dln)\b",
    ),
    (
        Ctx::Secret,
        r"\b(?i:bearer|token|api[_\s-]?key|apikey|secret|password|passwd|authorization|credentials?|access[_\s-]?key|[a-z0-9]+_(?:secret|token|key|password)[a-z0-9_]*)\b",
    ),
];

/// How far (bytes) before a candidate a context word may end.
const CONTEXT_WINDOW: usize = 48;
const MAX_GROUPS: usize = 16;
/// How far past a PEM header we look for its footer.
const PEM_MAX: usize = 16 * 1024;

pub(crate) struct PiiEngine {
    re: meta::Regex,
    ctx: meta::Regex,
}

impl PiiEngine {
    pub(crate) fn new() -> Result<PiiEngine, String> {
        let build = |pats: Vec<&str>| {
            meta::Regex::builder()
                .syntax(syntax::Config::new().unicode(false).utf8(false))
                .configure(meta::Config::new().match_kind(MatchKind::LeftmostFirst))
                .build_many(&pats)
                .map_err(|e| e.to_string())
        };
        let re = build(PATTERNS.iter().map(|(_, p)| *p).collect())?;
        let ctx = build(CONTEXT_PATTERNS.iter().map(|(_, p)| *p).collect())?;
        Ok(PiiEngine { re, ctx })
    }

    /// Appends findings for `text` to `out` (in order of position).
    pub(crate) fn scan(&self, text: &str, min_confidence: f32, out: &mut Vec<PiiFinding>) {
        let hay = text.as_bytes();
        let mut pos = 0usize;
        while pos < hay.len() {
            let input = Input::new(hay).span(pos..hay.len());
            let Some(m) = self.re.search(&input) else {
                break;
            };
            let (s, e) = (m.start(), m.end());
            let mut next = e.max(s + 1);
            let mut recent = Recent::new(hay, &self.ctx, s);
            let mut emit = |kind: PiiKind, start: usize, end: usize, confidence: f32| {
                if confidence >= min_confidence {
                    out.push(PiiFinding {
                        kind,
                        start,
                        end,
                        confidence,
                    });
                }
            };
            match PATTERNS[m.pattern().as_usize()].0 {
                Shape::Pem => {
                    next = pem_end(hay, e);
                    emit(PiiKind::PrivateKey, s, next, 0.99);
                }
                Shape::Jwt => emit(PiiKind::BearerToken, s, e, 0.95),
                Shape::Email => {
                    if bounded(hay, s, e) && !looks_like_file(&hay[s..e]) {
                        emit(PiiKind::Email, s, e, 0.95);
                    }
                }
                Shape::IbanSpaced => {
                    if validate::iban(&hay[s..e]) {
                        emit(PiiKind::Iban, s, e, 0.97);
                    }
                }
                Shape::HexColon => {
                    if bounded(hay, s, e)
                        && let Some(kind) = hex_colon_kind(&hay[s..e])
                    {
                        emit(kind, s, e, 0.9);
                    }
                }
                Shape::MacHyphen => emit(PiiKind::MacAddress, s, e, 0.9),
                Shape::DateWords => {
                    if recent.near(Ctx::Dob, s) && date_words_valid(&hay[s..e]) {
                        emit(PiiKind::DateOfBirth, s, e, 0.9);
                    }
                }
                Shape::Word => {
                    if bounded(hay, s, e) {
                        classify_word(hay, s, e, &mut recent, &mut emit);
                    }
                }
                Shape::Numeric => {
                    if bounded(hay, s, e) {
                        classify_numeric(hay, s, e, &mut recent, &mut emit);
                    }
                }
            }
            pos = next;
        }
    }
}

/// Context words before a candidate, looked up only when a classifier asks.
struct Recent<'a> {
    hay: &'a [u8],
    re: &'a meta::Regex,
    from: usize,
    items: Option<[(Option<Ctx>, usize); 4]>,
}

impl<'a> Recent<'a> {
    fn new(hay: &'a [u8], re: &'a meta::Regex, candidate_start: usize) -> Recent<'a> {
        Recent {
            hay,
            re,
            from: candidate_start,
            items: None,
        }
    }

    /// The last four context words ending within the window before the candidate.
    fn items(&mut self) -> [(Option<Ctx>, usize); 4] {
        if let Some(items) = self.items {
            return items;
        }
        let mut items = [(None, 0usize); 4];
        let lo = self.from.saturating_sub(CONTEXT_WINDOW);
        let input = Input::new(self.hay).span(lo..self.from);
        for (n, m) in self.re.find_iter(input).enumerate() {
            items[n % 4] = (Some(CONTEXT_PATTERNS[m.pattern().as_usize()].0), m.end());
        }
        self.items = Some(items);
        items
    }

    fn near(&mut self, c: Ctx, pos: usize) -> bool {
        self.items()
            .iter()
            .any(|&(k, end)| k == Some(c) && end <= pos && pos - end <= CONTEXT_WINDOW)
    }

    /// Context words within the window, nearest first (at most 4).
    fn nearest(&mut self, pos: usize) -> impl Iterator<Item = Ctx> + use<> {
        let mut items = self.items();
        items.sort_by_key(|&(_, end)| std::cmp::Reverse(end));
        items
            .into_iter()
            .filter_map(move |(k, end)| k.filter(|_| end <= pos && pos - end <= CONTEXT_WINDOW))
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The candidate is not glued to surrounding letters or digits.
fn bounded(hay: &[u8], s: usize, e: usize) -> bool {
    let before = s == 0 || !is_word_byte(hay[s - 1]);
    let after = e >= hay.len() || !is_word_byte(hay[e]);
    before && after
}

fn looks_like_file(email: &[u8]) -> bool {
    let tld = email.rsplit(|&b| b == b'.').next().unwrap_or_default();
    [&b"png"[..], b"jpg", b"jpeg", b"gif", b"svg", b"webp"]
        .iter()
        .any(|ext| tld.eq_ignore_ascii_case(ext))
}

fn pem_end(hay: &[u8], header_end: usize) -> usize {
    let limit = (header_end + PEM_MAX).min(hay.len());
    let body = &hay[header_end..limit];
    let Some(i) = memchr::memmem::find(body, b"-----END ") else {
        return header_end;
    };
    let after = header_end + i + b"-----END ".len();
    match memchr::memmem::find(&hay[after..limit], b"-----") {
        Some(j) if j <= 40 => after + j + 5,
        _ => header_end,
    }
}

fn hex_colon_kind(t: &[u8]) -> Option<PiiKind> {
    let colons = t.iter().filter(|&&b| b == b':').count();
    let groups_of_two = t
        .split(|&b| b == b':')
        .all(|g| g.len() == 2 && g.iter().all(u8::is_ascii_hexdigit));
    if colons == 5 && groups_of_two {
        return Some(PiiKind::MacAddress);
    }
    let s = std::str::from_utf8(t).ok()?;
    let has_digit = t.iter().any(u8::is_ascii_digit);
    let double = memchr::memmem::find(t, b"::").is_some();
    if has_digit
        && (colons >= 4 || (double && colons >= 2))
        && s.parse::<std::net::Ipv6Addr>().is_ok()
    {
        Some(PiiKind::Ipv6)
    } else {
        None
    }
}

const MONTHS: [&[u8]; 12] = [
    b"january",
    b"february",
    b"march",
    b"april",
    b"may",
    b"june",
    b"july",
    b"august",
    b"september",
    b"october",
    b"november",
    b"december",
];

fn month_of(word: &[u8]) -> Option<u32> {
    let word = word.strip_suffix(b".").unwrap_or(word);
    if word.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| {
            word.len() <= m.len()
                && m[..word.len()].eq_ignore_ascii_case(word)
                && (word.len() == 3
                    || word.len() == m.len()
                    || (m == b"september" && word.len() == 4))
        })
        .map(|i| i as u32 + 1)
}

fn digits_value(t: &[u8]) -> Option<u32> {
    if t.is_empty() || t.len() > 4 {
        return None;
    }
    let mut v = 0u32;
    for &b in t {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return false,
    };
    (1900..=2030).contains(&year) && (1..=max).contains(&day)
}

fn date_words_valid(t: &[u8]) -> bool {
    let (mut month, mut day, mut year) = (None, None, None);
    for word in t.split(|&b| b == b' ' || b == b',') {
        if word.is_empty() || word == b"of" {
            continue;
        }
        if word[0].is_ascii_digit() {
            let digits: &[u8] = {
                let n = word.iter().take_while(|b| b.is_ascii_digit()).count();
                &word[..n]
            };
            if digits.len() == 4 {
                year = digits_value(digits);
            } else {
                day = digits_value(digits);
            }
        } else {
            month = month_of(word);
        }
    }
    matches!((year, month, day), (Some(y), Some(m), Some(d)) if valid_date(y, m, d))
}

fn classify_word(
    hay: &[u8],
    s: usize,
    mut e: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) {
    let mut s = s;
    while e > s && matches!(hay[e - 1], b'-' | b'/' | b'+') {
        e -= 1;
    }
    while s < e && matches!(hay[s], b'-' | b'/' | b'+') {
        s += 1;
    }
    let t = &hay[s..e];
    let upper_digits = |t: &[u8]| {
        t.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    let alnum = |t: &[u8]| t.iter().all(u8::is_ascii_alphanumeric);
    let starts = |p: &[u8]| t.starts_with(p);

    if t.len() == 20
        && [
            &b"AKIA"[..],
            b"ASIA",
            b"AGPA",
            b"AIDA",
            b"AROA",
            b"ANPA",
            b"ANVA",
            b"AIPA",
        ]
        .iter()
        .any(|p| starts(p))
        && upper_digits(t)
    {
        return emit(PiiKind::AwsAccessKey, s, e, 0.97);
    }
    if (t.len() >= 40
        && t.len() <= 255
        && t.starts_with(b"gh")
        && matches!(t[2], b'p' | b'o' | b'u' | b's' | b'r')
        && t[3] == b'_'
        && alnum(&t[4..]))
        || (starts(b"github_pat_") && t.len() >= 40)
    {
        return emit(PiiKind::GithubToken, s, e, 0.97);
    }
    if t.len() >= 20
        && starts(b"xox")
        && matches!(t[3], b'a' | b'b' | b'p' | b'o' | b's' | b'r')
        && t[4] == b'-'
    {
        return emit(PiiKind::SlackToken, s, e, 0.95);
    }
    if (t.len() >= 24
        && [&b"sk_live_"[..], b"sk_test_", b"rk_live_", b"rk_test_"]
            .iter()
            .any(|p| starts(p))
        && alnum(&t[8..]))
        || (starts(b"whsec_") && t.len() >= 30)
    {
        return emit(PiiKind::StripeKey, s, e, 0.95);
    }
    if t.len() == 42 && (starts(b"0x") || starts(b"0X")) && t[2..].iter().all(u8::is_ascii_hexdigit)
    {
        return emit(PiiKind::EthAddress, s, e, 0.92);
    }
    if t.len() >= 3 && t[..3].eq_ignore_ascii_case(b"bc1") && validate::btc_bech32(t) {
        return emit(PiiKind::BtcAddress, s, e, 0.97);
    }
    if matches!(t.first(), Some(b'1' | b'3')) && validate::btc_base58(t) {
        return emit(PiiKind::BtcAddress, s, e, 0.97);
    }
    if (15..=34).contains(&t.len())
        && t[..2].iter().all(u8::is_ascii_uppercase)
        && t[2..4].iter().all(u8::is_ascii_digit)
        && upper_digits(t)
        && validate::iban(t)
    {
        return emit(PiiKind::Iban, s, e, 0.97);
    }
    let nearest = if t.len() >= 5 {
        Some(recent.nearest(s))
    } else {
        None
    };
    for ctx in nearest.into_iter().flatten() {
        match ctx {
            Ctx::Passport if (6..=12).contains(&t.len()) && alnum(t) => {
                return emit(PiiKind::Passport, s, e, 0.88);
            }
            Ctx::License if (5..=20).contains(&t.len()) => {
                return emit(PiiKind::DriversLicense, s, e, 0.85);
            }
            Ctx::Secret if t.len() >= 16 && validate::entropy(t) >= 3.0 => {
                return emit(PiiKind::BearerToken, s, e, 0.88);
            }
            _ => {}
        }
    }
    if t.len() >= 32 && looks_random(t) {
        emit(PiiKind::BearerToken, s, e, 0.7);
    }
}

/// A long token with mixed case and digits, high entropy, that does not decode
/// to readable text (base64-encoded prose is not a secret).
fn looks_random(t: &[u8]) -> bool {
    let upper = t.iter().any(u8::is_ascii_uppercase);
    let lower = t.iter().any(u8::is_ascii_lowercase);
    let digits = t.iter().filter(|b| b.is_ascii_digit()).count();
    if !(upper && lower && digits >= 2) || validate::entropy(t) < 4.2 {
        return false;
    }
    let mut buf = [0u8; 192];
    let window = &t[..t.len().min(256)];
    let window = &window[..window.len() - window.len() % 4];
    !matches!(validate::base64_decode(window, &mut buf), Some(n) if validate::mostly_text(&buf[..n]))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Sep {
    #[default]
    None,
    Space,
    Dash,
    Dot,
    Slash,
    Paren,
    Plus,
}

#[derive(Debug, Clone, Copy, Default)]
struct Group {
    s: usize,
    e: usize,
    /// The separator before this group (for the first group: a leading `+` or `(`).
    sep: Sep,
}

impl Group {
    fn len(&self) -> usize {
        self.e - self.s
    }
}

fn sep_of(bytes: &[u8]) -> Sep {
    match bytes {
        b" " => Sep::Space,
        b"-" => Sep::Dash,
        b"." => Sep::Dot,
        b"/" => Sep::Slash,
        b"" => Sep::None,
        _ => Sep::Paren,
    }
}

fn classify_numeric(
    hay: &[u8],
    s: usize,
    e: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) {
    let mut groups = [Group::default(); MAX_GROUPS];
    let mut i = s;
    let mut lead = Sep::None;
    if hay[i] == b'+' {
        lead = Sep::Plus;
        i += 1;
    } else if hay[i] == b'(' {
        lead = Sep::Paren;
        i += 1;
    }
    let mut pending = lead;
    while i < e {
        let mut n = 0;
        while i < e {
            // Parse up to MAX_GROUPS groups, classify them, continue with the rest.
            let gs = i;
            while i < e && hay[i].is_ascii_digit() {
                i += 1;
            }
            groups[n] = Group {
                s: gs,
                e: i,
                sep: pending,
            };
            n += 1;
            let ss = i;
            while i < e && !hay[i].is_ascii_digit() {
                i += 1;
            }
            pending = sep_of(&hay[ss..i]);
            if n == MAX_GROUPS {
                break;
            }
        }
        classify_groups(hay, &groups[..n], recent, emit);
    }
}

fn classify_groups(
    hay: &[u8],
    g: &[Group],
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) {
    let mut i = 0;
    while i < g.len() {
        let used = try_ipv4(hay, g, i, emit)
            .or_else(|| try_plus_phone(hay, g, i, emit))
            .or_else(|| try_card(hay, g, i, recent, emit))
            .or_else(|| try_ssn(hay, g, i, recent, emit))
            .or_else(|| try_date(hay, g, i, recent, emit))
            .or_else(|| try_nanp(hay, g, i, recent, emit))
            .or_else(|| try_context_number(hay, g, i, recent, emit))
            .unwrap_or(1);
        i += used;
    }
}

fn try_ipv4(
    hay: &[u8],
    g: &[Group],
    i: usize,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    let q = g.get(i..i + 4)?;
    let dotted = q[1..].iter().all(|x| x.sep == Sep::Dot);
    let more = g.get(i + 4).is_some_and(|x| x.sep == Sep::Dot) || (i > 0 && g[i].sep == Sep::Dot);
    if !dotted || more || g[i].sep == Sep::Plus {
        return None;
    }
    let ok = q.iter().all(|x| {
        let t = &hay[x.s..x.e];
        (1..=3).contains(&t.len())
            && !(t.len() > 1 && t[0] == b'0')
            && digits_value(t).is_some_and(|v| v <= 255)
    });
    if ok {
        emit(PiiKind::Ipv4, q[0].s, q[3].e, 0.9);
        Some(4)
    } else {
        None
    }
}

fn try_plus_phone(
    hay: &[u8],
    g: &[Group],
    i: usize,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    if g[i].sep != Sep::Plus {
        return None;
    }
    let k = digit_run(g, i, &[Sep::Space, Sep::Dash, Sep::Dot, Sep::Paren], 8, 15)?;
    // The span starts at the '+' sign.
    emit(PiiKind::Phone, g[i].s - 1, ext_end(hay, g, k), 0.92);
    Some(k - i + 1)
}

/// The end of a phone number whose digits end with group `k`, extended over
/// an extension that follows the candidate: `ext. 123`, `extension 12`,
/// `x1234`, `#12`, `;ext=123` (1–6 digits). Reads at most a few bytes.
fn ext_end(hay: &[u8], g: &[Group], k: usize) -> usize {
    let end = g[k].e;
    if k + 1 != g.len() {
        return end;
    }
    let mut i = end;
    let mut spaces = 0;
    while i < hay.len() && (hay[i] == b' ' || hay[i] == b',') && spaces < 2 {
        i += 1;
        spaces += 1;
    }
    let rest = &hay[i..];
    let starts = |p: &[u8]| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p);
    let marker = [
        &b";ext="[..],
        b"extension",
        b"ext.",
        b"ext",
        b"x.",
        b"x",
        b"#",
    ]
    .into_iter()
    .find(|p| starts(p));
    let Some(marker) = marker else {
        return end;
    };
    // "x"/"#" must follow the number directly or after one space.
    i += marker.len();
    let mut gap = 0;
    while i < hay.len() && matches!(hay[i], b' ' | b':' | b'.') && gap < 2 {
        i += 1;
        gap += 1;
    }
    let digits = hay[i..]
        .iter()
        .take(7)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let after = hay.get(i + digits);
    if (1..=6).contains(&digits) && after.is_none_or(|b| !b.is_ascii_alphanumeric()) {
        i + digits
    } else {
        end
    }
}

/// Could this digit start a card number? (A cheap gate before Luhn.)
fn iin_ok(first: u8) -> bool {
    (b'1'..=b'6').contains(&first)
}

/// Whether the issuer ranges allow a card number of `len` digits whose
/// first digits are `lead` (separators skipped, up to four digits, fewer
/// only when the number is shorter). Visa 4: 13, 16, 19; Mastercard 51–55
/// and 2221–2720: 16; Mir 2200–2204: 16–19; Amex 34/37: 15; Diners 300–305,
/// 3095, 36, 38, 39: 14–19; JCB 3528–3589: 16–19 and 1800/2131: 15; Maestro
/// 50 and 56–69 (which holds Discover, UnionPay, RuPay 60/65): 12–19.
fn issuer_allows(lead: u32, len: usize) -> bool {
    let two = lead / 100;
    let three = lead / 10;
    match two {
        40..=49 => matches!(len, 13 | 16 | 19),
        51..=55 => len == 16,
        50 | 56..=69 => (12..=19).contains(&len),
        34 | 37 => len == 15,
        36 | 38 | 39 => (14..=19).contains(&len),
        30 if three <= 305 || lead == 3095 => (14..=19).contains(&len),
        35 if (3528..=3589).contains(&lead) => (16..=19).contains(&len),
        18 if lead == 1800 => len == 15,
        21 if lead == 2131 => len == 15,
        22 if (2200..=2204).contains(&lead) => (16..=19).contains(&len),
        22..=27 if (2221..=2720).contains(&lead) => len == 16,
        _ => false,
    }
}

/// The first four digits of `t` (separators skipped) and the digit count.
fn card_lead(t: &[u8]) -> (u32, usize) {
    let mut lead = 0u32;
    let mut n = 0usize;
    for &b in t {
        if b.is_ascii_digit() {
            if n < 4 {
                lead = lead * 10 + u32::from(b - b'0');
            }
            n += 1;
        }
    }
    (lead, n)
}

/// Luhn-valid and inside an issuer range for its length.
fn card_ok(t: &[u8]) -> bool {
    let (lead, len) = card_lead(t);
    len >= 12 && issuer_allows(lead, len) && validate::luhn(t)
}

fn try_card(
    hay: &[u8],
    g: &[Group],
    i: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    let at = g[i].s;
    let conf = |recent: &mut Recent<'_>| {
        if recent.near(Ctx::Card, at) {
            0.99
        } else {
            0.9
        }
    };
    let first = &g[i];
    if (12..=19).contains(&first.len()) && iin_ok(hay[first.s]) && card_ok(&hay[first.s..first.e]) {
        // A bare 12-digit run next to an account word is the account's.
        if first.len() == 12 && !recent.near(Ctx::Card, at) && recent.near(Ctx::Account, at) {
            return None;
        }
        emit(PiiKind::CreditCard, first.s, first.e, conf(recent));
        return Some(1);
    }
    if first.len() != 4 || !iin_ok(hay[first.s]) {
        return None;
    }
    let sep = g.get(i + 1)?.sep;
    if !matches!(sep, Sep::Space | Sep::Dash) {
        return None;
    }
    let mut total = 4;
    let mut best = None;
    for (k, x) in g.iter().enumerate().skip(i + 1) {
        if x.sep != sep || x.len() > 6 {
            break;
        }
        total += x.len();
        if total > 19 {
            break;
        }
        if total >= 12 && card_ok(&hay[first.s..x.e]) {
            best = Some(k);
        }
    }
    let k = best?;
    emit(PiiKind::CreditCard, first.s, g[k].e, conf(recent));
    Some(k - i + 1)
}

/// The last group `k` such that groups `i..=k`, joined by separators in
/// `joins`, hold between `min` and `max` digits in all.
fn digit_run(g: &[Group], i: usize, joins: &[Sep], min: usize, max: usize) -> Option<usize> {
    let mut total = 0;
    let mut best = None;
    for (k, x) in g.iter().enumerate().skip(i) {
        if k > i && !joins.contains(&x.sep) {
            break;
        }
        total += x.len();
        if total > max {
            break;
        }
        if total >= min {
            best = Some(k);
        }
    }
    best
}

fn try_ssn(
    hay: &[u8],
    g: &[Group],
    i: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    let q = g.get(i..i + 3)?;
    let sep = q[1].sep;
    if q[2].sep != sep || !matches!(sep, Sep::Dash | Sep::Space | Sep::Dot) {
        return None;
    }
    if q[0].len() != 3 || q[1].len() != 2 || q[2].len() != 4 {
        return None;
    }
    let (a, b, c) = (
        &hay[q[0].s..q[0].e],
        &hay[q[1].s..q[1].e],
        &hay[q[2].s..q[2].e],
    );
    let at = q[0].s;
    if validate::itin(a, b, c) {
        let ctx = recent.near(Ctx::Itin, at);
        if sep == Sep::Dash || ctx {
            emit(PiiKind::Itin, at, q[2].e, if ctx { 0.99 } else { 0.85 });
        }
        return Some(3);
    }
    if validate::ssn(a, b, c) {
        let ctx = recent.near(Ctx::Ssn, at);
        if sep == Sep::Dash || ctx {
            emit(PiiKind::Ssn, at, q[2].e, if ctx { 0.99 } else { 0.85 });
        }
        return Some(3);
    }
    None
}

fn try_date(
    hay: &[u8],
    g: &[Group],
    i: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    let q = g.get(i..i + 3)?;
    let sep = q[1].sep;
    if q[2].sep != sep || !matches!(sep, Sep::Slash | Sep::Dash | Sep::Dot) {
        return None;
    }
    let v = |x: &Group| digits_value(&hay[x.s..x.e]);
    let (a, b, c) = (v(&q[0])?, v(&q[1])?, v(&q[2])?);
    let valid = if q[0].len() == 4 && q[1].len() <= 2 && q[2].len() <= 2 {
        valid_date(a, b, c)
    } else if q[0].len() <= 2 && q[1].len() <= 2 && q[2].len() == 4 {
        valid_date(c, a, b) || valid_date(c, b, a)
    } else {
        false
    };
    if !valid {
        return None;
    }
    if recent.near(Ctx::Dob, q[0].s) {
        emit(PiiKind::DateOfBirth, q[0].s, q[2].e, 0.9);
    }
    Some(3)
}

fn try_nanp(
    hay: &[u8],
    g: &[Group],
    i: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    let phone_sep = |s: Sep| matches!(s, Sep::Space | Sep::Dash | Sep::Dot | Sep::Paren);
    let at = g[i].s;
    // Optional leading country code "1".
    let j =
        if g[i].len() == 1 && hay[g[i].s] == b'1' && g.get(i + 1).is_some_and(|x| phone_sep(x.sep))
        {
            i + 1
        } else {
            i
        };
    if let Some(q) = g.get(j..j + 3) {
        let shape = q[0].len() == 3 && q[1].len() == 3 && q[2].len() == 4;
        let seps = phone_sep(q[1].sep) && phone_sep(q[2].sep);
        let digits_ok = hay[q[0].s] >= b'2' && hay[q[1].s] >= b'2';
        let only_spaces =
            q[1].sep == Sep::Space && q[2].sep == Sep::Space && q[0].sep != Sep::Paren;
        let ctx = shape && seps && digits_ok && recent.near(Ctx::Phone, at);
        if shape && seps && digits_ok && (ctx || !only_spaces) {
            let start = if q[0].sep == Sep::Paren && j == i && q[0].s > 0 && hay[q[0].s - 1] == b'('
            {
                q[0].s - 1
            } else {
                g[i].s
            };
            let end = ext_end(hay, g, j + 2);
            emit(PiiKind::Phone, start, end, if ctx { 0.95 } else { 0.85 });
            return Some(j - i + 3);
        }
    }
    let first = &g[i];
    if !(first.len() == 10 || hay[first.s] == b'0') || !recent.near(Ctx::Phone, at) {
        return None;
    }
    // National formats next to a phone word: 10 bare digits, or a trunk-0 number.
    if first.len() == 10 && hay[first.s] >= b'2' {
        emit(PiiKind::Phone, first.s, first.e, 0.85);
        return Some(1);
    }
    if hay[first.s] == b'0' {
        let k = digit_run(g, i, &[Sep::Space, Sep::Dash], 9, 11)?;
        emit(PiiKind::Phone, first.s, g[k].e, 0.85);
        return Some(k - i + 1);
    }
    None
}

fn try_context_number(
    hay: &[u8],
    g: &[Group],
    i: usize,
    recent: &mut Recent<'_>,
    emit: &mut impl FnMut(PiiKind, usize, usize, f32),
) -> Option<usize> {
    let x = &g[i];
    let t = &hay[x.s..x.e];
    // Licence numbers are often written in dashed groups.
    let mut dashed = i;
    let mut digits = x.len();
    while g.get(dashed + 1).is_some_and(|n| n.sep == Sep::Dash)
        && digits + g[dashed + 1].len() <= 16
    {
        dashed += 1;
        digits += g[dashed].len();
    }
    if x.len() < 5 && digits < 5 {
        return None;
    }
    for ctx in recent.nearest(x.s) {
        if ctx == Ctx::License && dashed > i && (5..=16).contains(&digits) {
            emit(PiiKind::DriversLicense, x.s, g[dashed].e, 0.85);
            return Some(dashed - i + 1);
        }
        let found = match ctx {
            Ctx::Routing if validate::aba_routing(t) => Some((PiiKind::RoutingNumber, 0.97)),
            Ctx::Ssn if t.len() == 9 && validate::ssn(&t[..3], &t[3..5], &t[5..]) => {
                Some((PiiKind::Ssn, 0.95))
            }
            Ctx::Itin if t.len() == 9 && validate::itin(&t[..3], &t[3..5], &t[5..]) => {
                Some((PiiKind::Itin, 0.95))
            }
            Ctx::Account if (6..=17).contains(&t.len()) => Some((PiiKind::BankAccount, 0.85)),
            Ctx::Passport if (6..=10).contains(&t.len()) => Some((PiiKind::Passport, 0.88)),
            Ctx::License if (5..=13).contains(&t.len()) => Some((PiiKind::DriversLicense, 0.85)),
            _ => None,
        };
        if let Some((kind, conf)) = found {
            emit(kind, x.s, x.e, conf);
            return Some(1);
        }
    }
    None
}
