//! `docs/contracts.md` against the code, so the contract stays true.
//!
//! **Which metrics the code registers.** The workspace's non-test Rust
//! source is read from disk: every `.rs` file under a `src/` directory of
//! `crates/*`, `orchestrator`, `reflex-layer`, `arms/*` and `xtask`, less
//! every item behind `#[cfg(test)]` (and files of `#[cfg(test)] mod x;`).
//! Files under `tests/`, `benches/` and `examples/` are never read, so names
//! that only tests mention (`…_count` series, made-up names of parser tests)
//! do not count. In what is left, a metric is registered where
//!
//! 1. a string literal is the first argument of a name-taking prometheus
//!    constructor: `Opts::new`, `HistogramOpts::new`, `IntCounter::new`,
//!    `IntGauge::new`, `Counter::new`, `Gauge::new`; or
//! 2. a `"octollm_…"` literal is the first argument of any other call and a
//!    second string literal follows it: the `(name, help, …)` shape of
//!    helpers such as the reflex layer's `counter(name, help, labels)`; or
//! 3. a string literal holds a line `# TYPE <name> <type>`: exposition text
//!    the code pushes to the Pushgateway (the backup metrics).
//!
//! A literal anywhere else names no metric: PromQL in checks, names looked
//! up in a scrape, `octollm_task_done` (a LISTEN channel), database and role
//! names. A histogram is registered (and listed in the doc) by its base name;
//! its `_bucket`, `_sum` and `_count` series are not separate metrics.
//!
//! **Type and labels** come from the same place: the constructor wrapping the
//! options (`IntCounterVec::new(Opts::new(..), &["a", "b"])` is a counter
//! with labels `a`, `b`; `HistogramOpts` makes a histogram; a helper's type
//! is the one its name says, e.g. `counter`), or for pushed text the
//! `# TYPE` line, the labels of its sample lines (`name{kind="…"} value`)
//! and the Pushgateway grouping-key labels of `/metrics/job/<job>/<label>/…`
//! URLs (`job` is left out: every scraped series has one).
//!
//! The metrics table of the doc must list exactly those names, once each,
//! with the same type and labels, and no registered label may be named like
//! an id or raw text ([`FORBIDDEN_LABELS`]). One package is left out
//! ([`OUTSIDE_THE_CONTRACT`]): llm-sim, a test double whose `llm_sim_*`
//! counters are its own business, not the system's.
//!
//! Besides: the arms' rows of the ports table must carry
//! `ArmKind::default_port`; the job table must list exactly the jobs of the
//! local Prometheus' scrape configuration; and every `docs/contracts.md,
//! "Section"` citation in the workspace's `.rs` and `.md` files must name a
//! `## ` heading of the doc.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arm_protocol::ArmKind;

const DOC: &str = "docs/contracts.md";
/// Package directories whose `src/` trees hold the code that registers metrics.
const SOURCE_ROOTS: [&str; 5] = ["crates", "orchestrator", "reflex-layer", "arms", "xtask"];
/// Packages whose metrics the contract does not cover, and why.
const OUTSIDE_THE_CONTRACT: [(&str, &str); 1] = [(
    "crates/llm-sim",
    "a test double standing in for an LLM provider",
)];
/// Label names that would carry an identity or raw text (docs/contracts.md,
/// "Metrics", label rules): a tripwire on names; the values are the code's
/// to keep bounded.
const FORBIDDEN_LABELS: [&str; 12] = [
    "task_id",
    "user_id",
    "user",
    "ip",
    "client_ip",
    "email",
    "text",
    "prompt",
    "content",
    "input",
    "output",
    "message",
];
/// Constructors whose first argument is a metric name.
const NAME_CONSTRUCTORS: [&str; 6] = [
    "Opts::new",
    "HistogramOpts::new",
    "IntCounter::new",
    "IntGauge::new",
    "Counter::new",
    "Gauge::new",
];
const SCRAPE_CONFIG: &str = "deploy/local/prometheus.yml.tmpl";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn doc() -> String {
    let path = workspace().join(DOC);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------- the doc

/// The rows of the Markdown table whose header's first cell is `first`.
fn table(doc: &str, first: &str) -> Vec<Vec<String>> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut lines = doc.lines().skip_while(|l| {
        !(l.trim_start().starts_with('|') && cells(l).first().map(String::as_str) == Some(first))
    });
    assert!(
        lines.next().is_some(),
        "{DOC} has no table whose header starts with `| {first} |`"
    );
    lines
        .skip(1) // |---|---|
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .collect()
}

/// The words in backticks of a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The one name in backticks that starts a table row.
fn row_name(row: &[String]) -> String {
    let names = ticked(&row[0]);
    assert!(
        names.len() == 1,
        "{DOC}: the first cell of `{}` must be one name in backticks",
        row.join(" | ")
    );
    names[0].clone()
}

// ---------------------------------------------------------------- lexing Rust

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A string literal's value (escapes resolved, `\`-newline continuations joined).
    Str(String),
    Ident(String),
    Num(String),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source as tokens, comments dropped. Enough of Rust's lexical grammar
/// for this test: strings (plain, byte, C and raw), chars vs lifetimes, nested
/// block comments.
fn lex(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    while i < s.len() {
        let c = s[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            let (value, next) = plain_string(&s, i + 1, &mut line);
            out.push(Token {
                tok: Tok::Str(value),
                line: start_line,
            });
            i = next;
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // '\n', '\'', '\u{..}': past the escaped character, to the quote.
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(Token {
                    tok: Tok::Punct('\''),
                    line,
                });
            } else if at(i + 2) == '\'' {
                i += 3;
                out.push(Token {
                    tok: Tok::Punct('\''),
                    line,
                });
            } else {
                // A lifetime: the quote, then its name as an identifier.
                out.push(Token {
                    tok: Tok::Punct('\''),
                    line,
                });
                i += 1;
            }
        } else if c.is_ascii_digit() {
            let begin = i;
            while i < s.len()
                && (s[i].is_ascii_alphanumeric()
                    || s[i] == '_'
                    || (s[i] == '.' && at(i + 1).is_ascii_digit()))
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Num(s[begin..i].iter().collect()),
                line,
            });
        } else if c.is_alphabetic() || c == '_' {
            let begin = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            let word: String = s[begin..i].iter().collect();
            let prefix = matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr");
            if prefix && word.ends_with('r') && (at(i) == '#' || at(i) == '"') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    // A raw string: up to `"` followed by as many `#`.
                    let mut j = i + hashes + 1;
                    let body = j;
                    loop {
                        if j >= s.len() {
                            break;
                        }
                        if s[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                            break;
                        }
                        if s[j] == '\n' {
                            line += 1;
                        }
                        j += 1;
                    }
                    out.push(Token {
                        tok: Tok::Str(s[body..j.min(s.len())].iter().collect()),
                        line: start_line,
                    });
                    i = j + 1 + hashes;
                } else {
                    // `r#ident`, a raw identifier: the identifier comes next.
                    i += 1;
                }
            } else if prefix && at(i) == '"' {
                let (value, next) = plain_string(&s, i + 1, &mut line);
                out.push(Token {
                    tok: Tok::Str(value),
                    line: start_line,
                });
                i = next;
            } else {
                out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                });
            }
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The value of a `"…"` string whose body starts at `i`, and the index after it.
fn plain_string(s: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut value = String::new();
    while i < s.len() && s[i] != '"' {
        match s[i] {
            '\\' => {
                let escaped = s.get(i + 1).copied().unwrap_or('\\');
                i += 2;
                match escaped {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '0' => value.push('\0'),
                    '\n' => {
                        // A continuation: the newline and the next line's indent go.
                        *line += 1;
                        while i < s.len() && s[i].is_whitespace() {
                            if s[i] == '\n' {
                                *line += 1;
                            }
                            i += 1;
                        }
                    }
                    'x' => {
                        let hex: String = s[i..(i + 2).min(s.len())].iter().collect();
                        value.push(char::from(u8::from_str_radix(&hex, 16).unwrap_or(b'?')));
                        i += 2;
                    }
                    'u' => {
                        let close = s[i..].iter().position(|&c| c == '}').unwrap_or(0);
                        let hex: String = s[i + 1..i + close]
                            .iter()
                            .filter(|c| c.is_ascii_hexdigit())
                            .collect();
                        value.push(
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('?'),
                        );
                        i += close + 1;
                    }
                    other => value.push(other),
                }
            }
            c => {
                if c == '\n' {
                    *line += 1;
                }
                value.push(c);
                i += 1;
            }
        }
    }
    (value, i + 1)
}

fn is_punct(tokens: &[Token], i: usize, c: char) -> bool {
    tokens.get(i).is_some_and(|t| t.tok == Tok::Punct(c))
}

fn is_ident(tokens: &[Token], i: usize, word: &str) -> bool {
    tokens
        .get(i)
        .is_some_and(|t| matches!(&t.tok, Tok::Ident(w) if w == word))
}

/// The index just past the bracketed group that opens at `open`.
fn skip_group(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < tokens.len() {
        match tokens[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Test-free tokens of one file, and the names of `#[cfg(test)] mod x;` files.
fn without_tests(tokens: Vec<Token>) -> (Vec<Token>, Vec<String>) {
    // `[cfg(test)]` from `i` on.
    let cfg_test_from = |i: usize| {
        is_punct(&tokens, i, '[')
            && is_ident(&tokens, i + 1, "cfg")
            && is_punct(&tokens, i + 2, '(')
            && is_ident(&tokens, i + 3, "test")
            && is_punct(&tokens, i + 4, ')')
            && is_punct(&tokens, i + 5, ']')
    };
    let cfg_test = |i: usize| is_punct(&tokens, i, '#') && cfg_test_from(i + 1);
    // `#![cfg(test)]`: the whole file is test code.
    if is_punct(&tokens, 0, '#') && is_punct(&tokens, 1, '!') && cfg_test_from(2) {
        return (Vec::new(), Vec::new());
    }
    let mut kept = Vec::new();
    let mut test_modules = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !cfg_test(i) {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        // Further attributes of the same item.
        while is_punct(&tokens, i, '#') && is_punct(&tokens, i + 1, '[') {
            i = skip_group(&tokens, i + 1);
        }
        let item = i;
        // The item ends at its first `;` or its body's closing brace.
        while i < tokens.len() {
            match tokens[i].tok {
                Tok::Punct(';') => {
                    i += 1;
                    break;
                }
                Tok::Punct('{') => {
                    i = skip_group(&tokens, i);
                    break;
                }
                Tok::Punct('(' | '[') => i = skip_group(&tokens, i),
                _ => i += 1,
            }
        }
        let words: Vec<&Tok> = tokens[item..i].iter().map(|t| &t.tok).collect();
        if let [.., Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')] = words.as_slice()
            && m == "mod"
        {
            test_modules.push(name.clone());
        }
    }
    (kept, test_modules)
}

// ---------------------------------------------------------------- the code's metrics

#[derive(Debug, Clone, PartialEq, Eq)]
struct Registration {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
    at: String,
}

/// The call whose argument list opens at `open`: its path (`T::new`, `counter`).
fn callee(tokens: &[Token], open: usize) -> Option<(String, usize)> {
    let f = open.checked_sub(1)?;
    let Tok::Ident(name) = &tokens[f].tok else {
        return None;
    };
    if f >= 3
        && is_punct(tokens, f - 1, ':')
        && is_punct(tokens, f - 2, ':')
        && let Tok::Ident(ty) = &tokens[f - 3].tok
    {
        return Some((format!("{ty}::{name}"), f - 3));
    }
    Some((name.clone(), f))
}

/// The metric type a constructor or helper name says, if it says one.
fn kind_of(path: &str) -> Option<&'static str> {
    let word = path.split("::").next().unwrap_or(path).to_lowercase();
    ["histogram", "counter", "gauge"]
        .into_iter()
        .find(|k| word.contains(k))
}

/// The start of argument `n` of the call whose list opens at `open`, if it has one.
fn argument(tokens: &[Token], open: usize, n: usize) -> Option<usize> {
    let mut i = open + 1;
    let mut seen = 0;
    loop {
        if seen == n {
            return (!is_punct(tokens, i, ')')).then_some(i);
        }
        // Skip one argument.
        loop {
            match tokens.get(i)?.tok {
                Tok::Punct(',') => {
                    i += 1;
                    break;
                }
                Tok::Punct(')') => return None,
                Tok::Punct('(' | '[' | '{') => i = skip_group(tokens, i),
                _ => i += 1,
            }
        }
        seen += 1;
    }
}

/// Label names given as `&["a", "b"]` at `i` (absent argument: none).
fn label_array(tokens: &[Token], i: Option<usize>) -> Result<BTreeSet<String>, String> {
    let Some(i) = i else {
        return Ok(BTreeSet::new());
    };
    if !(is_punct(tokens, i, '&') && is_punct(tokens, i + 1, '[')) {
        return Err("its labels are not a literal `&[\"…\"]` array".to_owned());
    }
    let end = skip_group(tokens, i + 1);
    let mut labels = BTreeSet::new();
    for t in &tokens[i + 2..end - 1] {
        match &t.tok {
            Tok::Str(label) => {
                labels.insert(label.clone());
            }
            Tok::Punct(',') => {}
            other => return Err(format!("its label array holds {other:?}")),
        }
    }
    Ok(labels)
}

/// What one file's test-free tokens register by rules 1 and 2, and the
/// `# TYPE` lines (rule 3) and sample-line labels of its strings.
#[derive(Default)]
struct Scan {
    registrations: Vec<Registration>,
    pushed: Vec<Registration>,
    sample_labels: BTreeMap<String, BTreeSet<String>>,
    grouping_labels: BTreeSet<String>,
    problems: Vec<String>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn scan(file: &str, tokens: &[Token], out: &mut Scan) {
    for (i, token) in tokens.iter().enumerate() {
        let Tok::Str(value) = &token.tok else {
            continue;
        };
        let at = format!("{file}:{}", token.line);
        scan_text(value, &at, out);
        if i == 0 || !is_punct(tokens, i - 1, '(') || !is_metric_name(value) {
            continue;
        }
        let Some((path, path_start)) = callee(tokens, i - 1) else {
            continue;
        };
        let constructor = NAME_CONSTRUCTORS.contains(&path.as_str());
        let helper = value.starts_with("octollm_")
            && is_punct(tokens, i + 1, ',')
            && matches!(tokens.get(i + 2).map(|t| &t.tok), Some(Tok::Str(_)));
        if !constructor && !helper {
            continue;
        }
        let found = if path == "Opts::new" || path == "HistogramOpts::new" {
            // The options' constructor: `IntCounterVec::new(Opts::new(..), &[..])`.
            let outer = path_start
                .checked_sub(1)
                .filter(|&o| is_punct(tokens, o, '('));
            match outer.and_then(|o| callee(tokens, o).map(|(p, _)| (o, p))) {
                None => Err(format!("{path} is not an argument of a metric constructor")),
                Some((open, outer_path)) => {
                    let kind = if path == "HistogramOpts::new" {
                        Some("histogram")
                    } else {
                        kind_of(&outer_path)
                    };
                    match kind {
                        None => Err(format!("{outer_path} names no metric type")),
                        Some(kind) => label_array(tokens, argument(tokens, open, 1))
                            .map(|labels| (kind, labels)),
                    }
                }
            }
        } else {
            match kind_of(&path) {
                None => Err(format!(
                    "{path}(\"{value}\", …) names no metric type (counter, gauge, histogram)"
                )),
                Some(kind) if constructor => Ok((kind, BTreeSet::new())),
                Some(kind) => label_array(tokens, argument(tokens, i - 1, 2)).map(|l| (kind, l)),
            }
        };
        match found {
            Ok((kind, labels)) => out.registrations.push(Registration {
                name: value.clone(),
                kind: kind.to_owned(),
                labels,
                at,
            }),
            Err(why) => out.problems.push(format!(
                "{at}: `{value}` looks registered but {why}; register it as the rule at the top of xtask/tests/it/contracts.rs says, or extend that rule"
            )),
        }
    }
}

/// Rule 3 in one string's value: `# TYPE` lines, sample lines, grouping keys.
fn scan_text(value: &str, at: &str, out: &mut Scan) {
    for line in value.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                out.pushed.push(Registration {
                    name: name.to_owned(),
                    kind: kind.to_owned(),
                    labels: BTreeSet::new(),
                    at: at.to_owned(),
                });
            }
        } else if let Some((name, rest)) = line.split_once('{')
            && is_metric_name(name)
            && let Some((labels, value)) = label_block(rest.trim_start_matches('{'))
            && (1..=2).contains(&value.trim_start_matches('}').split_whitespace().count())
        {
            // A sample line `name{a="x",b="y"} value` (`{{`…`}}` in format strings).
            let names = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(label, _)| label.trim().to_owned());
            out.sample_labels
                .entry(name.to_owned())
                .or_default()
                .extend(names);
        }
    }
    // `/metrics/job/<job>/<label>/<value>/…`: the Pushgateway's grouping key.
    if let Some((_, path)) = value.split_once("/metrics/job/") {
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        out.grouping_labels
            .extend(segments.chunks(2).map(|pair| pair[0].to_owned()));
    }
}

/// `a="x",b="y"} rest` split at the first `}` outside quotes.
fn label_block(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Every `.rs` file under a `src/` directory below `dir`.
fn source_files(dir: &Path, in_src: bool, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "tests" | "benches" | "examples" | "target") {
                source_files(&path, in_src || name == "src", files);
            }
        } else if in_src && name.ends_with(".rs") {
            files.push(path);
        }
    }
}

/// Everything the workspace's non-test source registers.
fn code_metrics() -> (Scan, usize) {
    let root = workspace();
    let mut files = Vec::new();
    for dir in SOURCE_ROOTS {
        source_files(&root.join(dir), false, &mut files);
    }
    files.retain(|f| {
        !OUTSIDE_THE_CONTRACT
            .iter()
            .any(|(package, _)| f.starts_with(root.join(package)))
    });
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out = Scan::default();
    let mut read = 0;
    // Files in path order: a parent module comes before its children.
    for path in &files {
        if test_only.iter().any(|t| path.starts_with(t)) {
            continue;
        }
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (tokens, test_modules) = without_tests(lex(&text));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dir = if matches!(stem, "mod" | "lib" | "main") {
            path.parent().map(Path::to_path_buf)
        } else {
            path.parent().map(|p| p.join(stem))
        }
        .unwrap_or_default();
        for module in test_modules {
            test_only.insert(dir.join(format!("{module}.rs")));
            test_only.insert(dir.join(module));
        }
        let file = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        scan(&file, &tokens, &mut out);
        read += 1;
    }
    (out, read)
}

/// One entry per metric: type, labels and where, or why the sites disagree.
fn merged(scan: &Scan) -> (BTreeMap<String, Registration>, Vec<String>) {
    let mut problems = scan.problems.clone();
    let mut metrics: BTreeMap<String, Registration> = BTreeMap::new();
    let grouping: BTreeSet<String> = scan
        .grouping_labels
        .iter()
        .filter(|l| *l != "job")
        .cloned()
        .collect();
    let pushed = scan.pushed.iter().map(|r| {
        let mut r = r.clone();
        r.labels = scan
            .sample_labels
            .get(&r.name)
            .cloned()
            .unwrap_or_default()
            .union(&grouping)
            .cloned()
            .collect();
        r
    });
    for r in scan.registrations.iter().cloned().chain(pushed) {
        match metrics.get_mut(&r.name) {
            None => {
                metrics.insert(r.name.clone(), r);
            }
            Some(first) if first.kind != r.kind || first.labels != r.labels => {
                problems.push(format!(
                    "`{}` is a {} with labels {:?} at {} but a {} with labels {:?} at {}: one metric, one type, one label set",
                    r.name, first.kind, first.labels, first.at, r.kind, r.labels, r.at
                ));
            }
            Some(first) => first.at = format!("{}, {}", first.at, r.at),
        }
    }
    (metrics, problems)
}

// ---------------------------------------------------------------- the tests

#[test]
fn metrics_table_matches_what_the_code_registers() {
    let (scan, files) = code_metrics();
    assert!(
        files > 50,
        "read only {files} source files: is the workspace layout what SOURCE_ROOTS says?"
    );
    let (code, mut problems) = merged(&scan);

    let doc = doc();
    let mut listed: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for row in table(&doc, "Metric") {
        assert!(
            row.len() >= 4,
            "{DOC}: metrics row `{}` needs name, type, labels and who emits it",
            row.join(" | ")
        );
        let name = row_name(&row);
        let labels: BTreeSet<String> = ticked(&row[2]).into_iter().collect();
        if row[3].is_empty() {
            problems.push(format!("{DOC}: `{name}` says nothing in \"Emitted by\""));
        }
        if listed
            .insert(name.clone(), (row[1].clone(), labels))
            .is_some()
        {
            problems.push(format!("{DOC}: `{name}` has two rows in the metrics table"));
        }
    }

    for (name, r) in &code {
        for label in r
            .labels
            .iter()
            .filter(|l| FORBIDDEN_LABELS.contains(&l.as_str()))
        {
            problems.push(format!(
                "`{name}` ({}) has the label `{label}`: a metric label never carries an id or raw text",
                r.at
            ));
        }
        let labels = r
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match listed.get(name) {
            None => problems.push(format!(
                "missing from {DOC} (Metrics): `{name}`, a {} with labels [{labels}] registered at {}; add its row",
                r.kind, r.at
            )),
            Some((kind, doc_labels)) => {
                if *kind != r.kind {
                    problems.push(format!(
                        "{DOC} (Metrics) calls `{name}` a {kind}, the code registers a {} ({}); fix the row",
                        r.kind, r.at
                    ));
                }
                if *doc_labels != r.labels {
                    problems.push(format!(
                        "{DOC} (Metrics) gives `{name}` labels {doc_labels:?}, the code {:?} ({}); fix the row",
                        r.labels, r.at
                    ));
                }
            }
        }
    }
    for name in listed.keys().filter(|n| !code.contains_key(*n)) {
        let histogram = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            code.get(base)
                .filter(|r| r.kind == "histogram")
                .map(|_| base)
        });
        problems.push(match histogram {
            Some(base) => format!(
                "{DOC} (Metrics) lists `{name}`, a series of the histogram `{base}`: list the histogram once, by its base name"
            ),
            None => format!(
                "{DOC} (Metrics) lists `{name}`, which no non-test code registers (rule: top of xtask/tests/it/contracts.rs); remove the row, or register the metric"
            ),
        });
    }
    assert!(
        problems.is_empty(),
        "docs/contracts.md and the code disagree on metrics:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn arm_ports_are_the_protocols() {
    let rows = table(&doc(), "Component");
    for kind in ArmKind::ALL {
        let component = format!("{}-arm", kind.name());
        let row = rows
            .iter()
            .find(|row| row_name(row) == component)
            .unwrap_or_else(|| panic!("{DOC} (Ports) has no row for `{component}`"));
        assert_eq!(
            row[1].parse::<u16>().ok(),
            Some(kind.default_port()),
            "{DOC} (Ports) gives `{component}` port {:?}; arm_protocol::ArmKind::default_port says {}",
            row[1],
            kind.default_port()
        );
    }
}

#[test]
fn prometheus_jobs_are_the_scrape_configs() {
    let path = workspace().join(SCRAPE_CONFIG);
    let config =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let scraped: BTreeSet<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- job_name:"))
        .map(|j| j.trim().trim_matches(['"', '\'']).to_owned())
        .collect();
    assert!(
        !scraped.is_empty(),
        "{SCRAPE_CONFIG} has no `- job_name:` lines"
    );
    let documented: BTreeSet<String> = table(&doc(), "Job").iter().map(|r| row_name(r)).collect();
    let mut problems: Vec<String> = scraped
        .difference(&documented)
        .map(|job| {
            format!("job `{job}` of {SCRAPE_CONFIG} is missing from {DOC} (Prometheus jobs)")
        })
        .collect();
    problems.extend(documented.difference(&scraped).map(|job| {
        format!("{DOC} (Prometheus jobs) lists `{job}`, which {SCRAPE_CONFIG} does not scrape")
    }));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every `.rs` and `.md` file of the workspace, build output and hidden
/// directories left out.
fn all_text_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            all_text_files(&path, files);
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            files.push(path);
        }
    }
}

#[test]
fn cited_sections_exist() {
    let doc = doc();
    let headings: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(str::trim)
        .collect();
    let root = workspace();
    let mut files = Vec::new();
    all_text_files(&root, &mut files);
    files.sort();
    let mut cited = 0;
    let mut problems = Vec::new();
    // The doc and this file say how to cite; they cite nothing.
    let explaining = [DOC, "xtask/tests/it/contracts.rs"];
    for path in files
        .iter()
        .filter(|p| !explaining.iter().any(|e| p.ends_with(e)))
    {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let file = path.strip_prefix(&root).unwrap_or(path).display();
        // `docs/contracts.md, "Section"`; the text may wrap after the comma.
        let marker = "docs/contracts.md,";
        for (offset, _) in text.match_indices(marker) {
            let line = text[..offset].lines().count().max(1);
            let rest = text[offset + marker.len()..]
                .trim_start()
                .trim_start_matches(['/', '!', '#', '>'])
                .trim_start();
            // In a Rust string literal the quotes are escaped: `\"Ports\"`.
            let section = rest
                .trim_start_matches('\\')
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(s, _)| s.trim_end_matches('\\'));
            cited += 1;
            match section {
                Some(s) if headings.contains(s) => {}
                Some(s) => problems.push(format!(
                    "{file}:{line} cites section \"{s}\" of {DOC}, which has no such `## ` heading (it has: {})",
                    headings.iter().copied().collect::<Vec<_>>().join(", ")
                )),
                None => problems.push(format!(
                    "{file}:{line}: after `{marker}` comes no quoted section name; cite as `{DOC}, \"Section\"`"
                )),
            }
        }
    }
    assert!(cited > 0, "no file cites {DOC}, \"Section\"");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------- the extractor itself

#[test]
fn the_extraction_rule_on_a_sample() {
    let source = r##"
        use prometheus::{IntCounterVec, HistogramVec, IntGauge, Opts, HistogramOpts};
        const CHANNEL: &str = "octollm_task_done";
        fn register() {
            let a = IntCounterVec::new(Opts::new("octollm_a_total", "A."), &["x", "y"])?;
            let b = HistogramVec::new(
                HistogramOpts::new("octollm_b_seconds", "B.").buckets(B.to_vec()),
                &["x"],
            )?;
            let c = IntGauge::new("octollm_c", "C, a \"quoted\" help.")?;
            let counter = |name: &str, help: &str, labels: &[&str]| {
                IntCounterVec::new(Opts::new(name, help), labels)
            };
            let d = counter("octollm_d_total", "D.", &["z"])?;
            let e = '{'; // not a brace to count
            let text = format!(
                "# TYPE octollm_pushed gauge\n\
                 octollm_pushed{{kind=\"{kind}\"}} {value}\n"
            );
            let url = format!("{}/metrics/job/octollm-backup/store/{store}", base);
            scrape.value("octollm_a_total", &[("x", "1")]);
            let promql = r#"rate(octollm_a_total{x="1"}[5m]) > 0"#;
        }
        #[cfg(test)]
        #[allow(dead_code)]
        mod tests {
            fn t() { let _ = IntGauge::new("octollm_test_only", "T."); }
        }
        #[cfg(test)]
        mod more_tests;
    "##;
    let (tokens, test_modules) = without_tests(lex(source));
    assert_eq!(test_modules, ["more_tests"]);
    let mut out = Scan::default();
    scan("sample.rs", &tokens, &mut out);
    let (metrics, problems) = merged(&out);
    assert!(problems.is_empty(), "{problems:?}");
    let got: Vec<(&str, &str, Vec<&str>)> = metrics
        .values()
        .map(|r| {
            (
                r.name.as_str(),
                r.kind.as_str(),
                r.labels.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("octollm_a_total", "counter", vec!["x", "y"]),
            ("octollm_b_seconds", "histogram", vec!["x"]),
            ("octollm_c", "gauge", vec![]),
            ("octollm_d_total", "counter", vec!["z"]),
            ("octollm_pushed", "gauge", vec!["kind", "store"]),
        ]
    );
    assert_eq!(metrics["octollm_c"].at, "sample.rs:10");
}

#[test]
fn a_name_with_two_types_is_a_problem() {
    let source = r#"
        fn a() { IntCounterVec::new(Opts::new("octollm_x", "X."), &["a"]) }
        fn b() { IntGaugeVec::new(Opts::new("octollm_x", "X."), &["a"]) }
        fn c() { something(Opts::new("octollm_y", "Y.")) }
    "#;
    let (tokens, _) = without_tests(lex(source));
    let mut out = Scan::default();
    scan("two.rs", &tokens, &mut out);
    let (_, problems) = merged(&out);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`octollm_y`") && p.contains("two.rs:4"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`octollm_x` is a counter") && p.contains("gauge"))
    );
}
