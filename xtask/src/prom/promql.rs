//! Just enough PromQL to find the series selectors of an expression: the
//! metric names and label matchers the live metric contract looks up.
//!
//! Whether an expression *parses* is left to Prometheus' own parser (promtool
//! runs over every rule and dashboard query); this module only has to walk
//! valid PromQL. It lexes the expression and skips what is not a selector:
//! function and aggregation names, the label lists of `by`/`without`/`on`/
//! `ignoring`/`group_left`/`group_right`, range and subquery brackets,
//! strings outside braces, numbers, durations and operators.

use std::fmt;

use anyhow::{Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.label, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// One instant or range vector selector, without its range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    /// The metric name, from before the braces or from `__name__="…"`.
    pub metric: Option<String>,
    /// The matchers inside the braces (a `__name__="…"` one excluded).
    pub matchers: Vec<Matcher>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(metric) = &self.metric {
            f.write_str(metric)?;
        }
        if self.matchers.is_empty() && self.metric.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// Numbers and durations (`0.95`, `1e3`, `5m`, `Inf`).
    Number,
    Open(char),
    Close(char),
    Comma,
    Op(String),
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2"];

fn lex(expr: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => {
                let (value, next) = lex_string(&chars, i)?;
                tokens.push(Token::Str(value));
                i = next;
            }
            '(' | '{' | '[' => {
                tokens.push(Token::Open(c));
                i += 1;
            }
            ')' | '}' | ']' => {
                tokens.push(Token::Close(c));
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // A number or a duration: digits, letters, dots, and the
                // sign of a decimal exponent (`1e-3`).
                let start = i;
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    let exponent_sign = (d == '+' || d == '-')
                        && matches!(chars[i - 1], 'e' | 'E')
                        && chars[start..i - 1]
                            .iter()
                            .all(|c| c.is_ascii_digit() || *c == '.')
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit);
                    if d.is_ascii_alphanumeric() || d == '.' || d == '_' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Number);
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan") {
                    tokens.push(Token::Number);
                } else {
                    tokens.push(Token::Ident(word));
                }
            }
            '=' | '!' | '<' | '>' | '+' | '-' | '*' | '/' | '%' | '^' | '@' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if ["==", "!=", "=~", "!~", ">=", "<="].contains(&two.as_str()) {
                    two
                } else {
                    c.to_string()
                };
                i += op.chars().count();
                tokens.push(Token::Op(op));
            }
            other => bail!("unexpected character {other:?} in PromQL"),
        }
    }
    Ok(tokens)
}

fn lex_string(chars: &[char], start: usize) -> Result<(String, usize)> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((value, i + 1));
        }
        if c == '\\' && quote != '`' {
            let Some(&escaped) = chars.get(i + 1) else {
                break;
            };
            value.push(match escaped {
                'n' => '\n',
                't' => '\t',
                other => other,
            });
            i += 2;
        } else {
            value.push(c);
            i += 1;
        }
    }
    bail!("unterminated string in PromQL")
}

/// Every selector of `expr`, in order of appearance (duplicates removed).
pub fn selectors(expr: &str) -> Result<Vec<Selector>> {
    let tokens = lex(expr)?;
    let mut depth = 0i32;
    for token in &tokens {
        match token {
            Token::Open(_) => depth += 1,
            Token::Close(_) => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            bail!("unbalanced brackets in PromQL");
        }
    }
    if depth != 0 {
        bail!("unbalanced brackets in PromQL");
    }
    let mut found: Vec<Selector> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) => {
                let next = tokens.get(i + 1);
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    i = if next == Some(&Token::Open('(')) {
                        skip_group(&tokens, i + 1)?
                    } else {
                        i + 1
                    };
                } else if next == Some(&Token::Open('('))
                    || AGGREGATIONS.contains(&word.as_str())
                    || KEYWORDS.contains(&word.as_str())
                {
                    // A function or aggregation call, or a binary keyword.
                    i += 1;
                } else if next == Some(&Token::Open('{')) {
                    let (matchers, after) = parse_matchers(&tokens, i + 1)?;
                    push(&mut found, Some(word.clone()), matchers);
                    i = after;
                } else {
                    push(&mut found, Some(word.clone()), Vec::new());
                    i += 1;
                }
            }
            Token::Open('{') => {
                let (matchers, after) = parse_matchers(&tokens, i)?;
                push(&mut found, None, matchers);
                i = after;
            }
            // Ranges, subqueries: `[5m]`, `[15m:1m]`.
            Token::Open('[') => i = skip_group(&tokens, i)?,
            _ => i += 1,
        }
    }
    Ok(found)
}

fn push(found: &mut Vec<Selector>, metric: Option<String>, matchers: Vec<Matcher>) {
    let (names, matchers): (Vec<Matcher>, Vec<Matcher>) = matchers
        .into_iter()
        .partition(|m| m.label == "__name__" && m.op == MatchOp::Equal);
    let metric = metric.or_else(|| names.into_iter().next().map(|m| m.value));
    let selector = Selector { metric, matchers };
    if !found.contains(&selector) {
        found.push(selector);
    }
}

/// Index after the bracket group opening at `open`.
fn skip_group(tokens: &[Token], open: usize) -> Result<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Open(_) => depth += 1,
            Token::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
    }
    bail!("unbalanced brackets in PromQL")
}

/// Parses `{label op "value", …}` starting at the `{`; returns the matchers
/// and the index after the `}`.
fn parse_matchers(tokens: &[Token], open: usize) -> Result<(Vec<Matcher>, usize)> {
    let mut matchers = Vec::new();
    let mut i = open + 1;
    loop {
        match tokens.get(i) {
            Some(Token::Close('}')) => return Ok((matchers, i + 1)),
            Some(Token::Comma) => i += 1,
            Some(Token::Ident(label)) => {
                let op = match tokens.get(i + 1) {
                    Some(Token::Op(op)) if op == "=" => MatchOp::Equal,
                    Some(Token::Op(op)) if op == "!=" => MatchOp::NotEqual,
                    Some(Token::Op(op)) if op == "=~" => MatchOp::Regex,
                    Some(Token::Op(op)) if op == "!~" => MatchOp::NotRegex,
                    other => bail!("expected a match operator after `{label}`, found {other:?}"),
                };
                let Some(Token::Str(value)) = tokens.get(i + 2) else {
                    bail!("expected a quoted value after `{label}{}`", op.as_str());
                };
                matchers.push(Matcher {
                    label: label.clone(),
                    op,
                    value: value.clone(),
                });
                i += 3;
            }
            other => bail!("unexpected {other:?} in label matchers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(expr: &str) -> Vec<String> {
        selectors(expr)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn finds_metrics_and_matchers() {
        assert_eq!(shown("up == 0"), ["up"]);
        assert_eq!(
            shown(
                r#"sum by (job, route) (rate(octollm_http_requests_total{status!~"5..", route!~"/metrics|/ready"}[5m]))"#
            ),
            [r#"octollm_http_requests_total{status!~"5..", route!~"/metrics|/ready"}"#]
        );
        assert_eq!(
            shown("histogram_quantile(0.95, sum by (job, le) (rate(x_bucket[5m])))"),
            ["x_bucket"]
        );
    }

    #[test]
    fn skips_label_lists_keywords_and_numbers() {
        let expr = r#"
            job:octollm_task_queue_depth:max > 50
            and on (job) deriv(job:octollm_task_queue_depth:max[15m]) > 0
            or sum without (instance) (a offset 5m) / ignoring (state) group_left (le) b
            unless max(c) by (job) > bool 1e-3 * Inf + NaN
        "#;
        assert_eq!(
            shown(expr),
            ["job:octollm_task_queue_depth:max", "a", "b", "c"]
        );
        assert_eq!(shown("time() - max by (store) (m) > 25 * 3600"), ["m"]);
        assert_eq!(
            shown("absent(octollm_backup_last_success_timestamp_seconds)"),
            ["octollm_backup_last_success_timestamp_seconds"]
        );
        assert_eq!(shown("deriv(q[15m:1m]) > 0.5"), ["q"]);
    }

    #[test]
    fn names_in_braces_and_strings() {
        assert_eq!(
            shown(r#"{__name__="up", job='a\'b'} + label_replace(m, "dst", "$1", "src", "(.*)")"#),
            [r#"up{job="a'b"}"#, "m"]
        );
        assert_eq!(shown(r#"{job=~".+"}"#), [r#"{job=~".+"}"#]);
    }

    #[test]
    fn rejects_broken_input() {
        assert!(selectors("sum(rate(x[5m])").is_err());
        assert!(selectors(r#"x{job="unterminated}"#).is_err());
        assert!(selectors("x{job}").is_err());
    }
}
