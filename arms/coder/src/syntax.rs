//! Cheap well-formedness checks of fenced code: JSON must parse; C-like
//! languages, Rust and Python must balance `()[]{}` outside strings and
//! comments and close every string and comment. Not a compiler: a block
//! that passes may still not build, but one that fails surely does not.

use serde::Serialize;

/// One fenced block of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeBlock {
    /// The fence's info string, or the requested language when it has none.
    pub language: String,
    pub code: String,
    pub check: Check,
    /// What is wrong, when `check` is `malformed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    WellFormed,
    Malformed,
    /// No cheap check exists for the language.
    Unchecked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Json,
    /// `//` and `/* */` comments, `"` strings, `'` characters.
    CLike {
        nested_comments: bool,
        backtick_strings: bool,
    },
    /// `#` comments, `'`/`"` strings and their triple-quoted forms.
    Python,
}

fn family(language: &str) -> Option<Family> {
    let c_like = |nested_comments, backtick_strings| {
        Some(Family::CLike {
            nested_comments,
            backtick_strings,
        })
    };
    match language.trim().to_ascii_lowercase().as_str() {
        "json" => Some(Family::Json),
        "rust" | "rs" => c_like(true, false),
        "javascript" | "js" | "typescript" | "ts" | "go" | "golang" => c_like(false, true),
        "c" | "h" | "cpp" | "c++" | "cc" | "java" | "csharp" | "c#" | "cs" | "kotlin" | "kt"
        | "swift" | "scala" => c_like(false, false),
        "python" | "py" => Some(Family::Python),
        _ => None,
    }
}

/// The fenced blocks (```lang … ``` or ~~~) of `text`, each checked in its
/// own language (or `default_language` when the fence names none). An
/// unclosed fence runs to the end and is malformed.
pub fn code_blocks(text: &str, default_language: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let fence = if trimmed.starts_with("```") {
            "```"
        } else if trimmed.starts_with("~~~") {
            "~~~"
        } else {
            continue;
        };
        let info = trimmed
            .trim_start_matches(fence.chars().next().unwrap_or('`'))
            .trim();
        let language = info
            .split_whitespace()
            .next()
            .filter(|l| !l.is_empty())
            .unwrap_or(default_language)
            .to_owned();
        let mut code = Vec::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line.trim_start().starts_with(fence)
                && line
                    .trim()
                    .trim_start_matches(fence.chars().next().unwrap_or('`'))
                    .is_empty()
            {
                closed = true;
                break;
            }
            code.push(line);
        }
        let code = code.join("\n");
        let (check, issue) = if closed {
            check(&language, &code)
        } else {
            (
                Check::Malformed,
                Some("the code fence is never closed".to_owned()),
            )
        };
        blocks.push(CodeBlock {
            language,
            code,
            check,
            issue,
        });
    }
    blocks
}

/// Checks `code` as `language`.
pub fn check(language: &str, code: &str) -> (Check, Option<String>) {
    let outcome = match family(language) {
        None => return (Check::Unchecked, None),
        Some(Family::Json) => serde_json::from_str::<serde_json::Value>(code)
            .map(drop)
            .map_err(|e| format!("not valid JSON: {e}")),
        Some(family) => balanced(code, family),
    };
    match outcome {
        Ok(()) => (Check::WellFormed, None),
        Err(issue) => (Check::Malformed, Some(issue)),
    }
}

/// Brackets balance outside strings and comments; strings and comments close.
fn balanced(code: &str, family: Family) -> Result<(), String> {
    let chars: Vec<char> = code.chars().collect();
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match (family, c) {
            (_, '\n') => line += 1,
            (Family::CLike { .. }, '/') if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            (
                Family::CLike {
                    nested_comments, ..
                },
                '/',
            ) if next == Some('*') => {
                let start = line;
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    match (chars.get(i), chars.get(i + 1)) {
                        (None, _) => {
                            return Err(format!(
                                "block comment opened at line {start} is never closed"
                            ));
                        }
                        (Some('*'), Some('/')) => {
                            depth -= 1;
                            i += 2;
                        }
                        (Some('/'), Some('*')) if nested_comments => {
                            depth += 1;
                            i += 2;
                        }
                        (Some(ch), _) => {
                            if *ch == '\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                }
                continue;
            }
            (Family::Python, '#') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            (
                Family::CLike {
                    nested_comments: true,
                    ..
                },
                'r',
            ) if matches!(next, Some('"' | '#')) && !ident_before(&chars, i) => {
                if let Some(end) = rust_raw_string(&chars, i + 1) {
                    line += chars[i..end].iter().filter(|c| **c == '\n').count();
                    i = end;
                    continue;
                }
            }
            (Family::CLike { .. }, '"') | (Family::Python, '"' | '\'') => {
                let end = string_end(&chars, i, &mut line, family)?;
                i = end;
                continue;
            }
            (
                Family::CLike {
                    backtick_strings: true,
                    ..
                },
                '`',
            ) => {
                let start = line;
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    if chars[i] == '\\' {
                        i += 1;
                    } else if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("string opened at line {start} is never closed"));
                }
                i += 1;
                continue;
            }
            (Family::CLike { .. }, '\'') => {
                // A character literal ('x', '\n', '\u{1F600}'); otherwise a
                // Rust lifetime or label, which is left alone.
                if let Some(end) = char_literal_end(&chars, i) {
                    i = end;
                    continue;
                }
            }
            (_, '(' | '[' | '{') => stack.push((c, line)),
            (_, ')' | ']' | '}') => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, opened)) => {
                        return Err(format!(
                            "'{c}' at line {line} does not close '{open}' opened at line {opened}"
                        ));
                    }
                    None => return Err(format!("'{c}' at line {line} closes nothing")),
                }
            }
            _ => {}
        }
        i += 1;
    }
    match stack.pop() {
        Some((open, opened)) => Err(format!("'{open}' opened at line {opened} is never closed")),
        None => Ok(()),
    }
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The index after a Rust raw string `r#*"…"#*` whose `#`s start at `i`.
fn rust_raw_string(chars: &[char], mut i: usize) -> Option<usize> {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    None
}

/// The index after a character literal starting at `i`, if it is one.
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i + 1)? {
        '\\' => {
            let close = (i + 3..chars.len().min(i + 14)).find(|&j| chars[j] == '\'')?;
            Some(close + 1)
        }
        '\'' | '\n' => None,
        _ => (chars.get(i + 2) == Some(&'\'')).then_some(i + 3),
    }
}

/// The index after the string starting at `i` (triple-quoted in Python).
fn string_end(chars: &[char], i: usize, line: &mut usize, family: Family) -> Result<usize, String> {
    let quote = chars[i];
    let start = *line;
    let triple = family == Family::Python
        && chars.get(i + 1) == Some(&quote)
        && chars.get(i + 2) == Some(&quote);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 1,
            '\n' if !triple && family == Family::Python => {
                return Err(format!("string opened at line {start} is never closed"));
            }
            '\n' => *line += 1,
            c if c == quote => {
                if !triple {
                    return Ok(j + 1);
                }
                if chars.get(j + 1) == Some(&quote) && chars.get(j + 2) == Some(&quote) {
                    return Ok(j + 3);
                }
            }
            _ => {}
        }
        j += 1;
    }
    Err(format!("string opened at line {start} is never closed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(language: &str, code: &str) -> String {
        match check(language, code) {
            (Check::Malformed, Some(issue)) => issue,
            other => panic!("{language} {code:?} passed: {other:?}"),
        }
    }

    #[test]
    fn well_formed_code_passes() {
        for (language, code) in [
            ("json", r#"{"a": [1, 2, {"b": null}]}"#),
            (
                "rust",
                "fn main() {\n    let s = \"}\"; // )\n    let c = '{';\n    let r = r#\"(\"#;\n    /* { /* nested */ } */\n    println!(\"{s}{c}{r}\");\n}\nfn f<'a>(x: &'a str) -> &'a str { x }",
            ),
            (
                "c",
                "int main(void) { char c = '}'; /* ( */ return (1 + 2) * 3; }",
            ),
            ("javascript", "const f = (x) => { return `${x} }`; };"),
            (
                "python",
                "def f(x):\n    s = '''a (\nb'''\n    return [x, {\"k\": (1, 2)}]  # ]\n",
            ),
            ("go", "func main() { s := `{`; fmt.Println(s) }"),
        ] {
            assert_eq!(
                check(language, code),
                (Check::WellFormed, None),
                "{language}"
            );
        }
        assert_eq!(check("haskell", "main = ("), (Check::Unchecked, None));
    }

    #[test]
    fn malformed_code_is_named() {
        assert!(malformed("json", "{\"a\": 1,}").contains("not valid JSON"));
        assert_eq!(
            malformed("rust", "fn main() {\n    (1\n}"),
            "'}' at line 3 does not close '(' opened at line 2"
        );
        assert_eq!(
            malformed("java", "class A {"),
            "'{' opened at line 1 is never closed"
        );
        assert_eq!(malformed("c", "x = 1);"), "')' at line 1 closes nothing");
        assert!(malformed("rust", "let s = \"open;").contains("string opened at line 1"));
        assert!(malformed("c", "/* never").contains("block comment"));
        assert!(malformed("python", "x = 'abc\ny = 1").contains("string opened at line 1"));
        assert!(malformed("py", "print((1)").contains("never closed"));
    }

    #[test]
    fn blocks_are_extracted_with_their_languages() {
        let text = "Here:\n```rust\nfn main() {}\n```\nand\n```\n{\"a\": 1}\n```\n~~~python\nprint((1)\n~~~\n```json\n{";
        let blocks = code_blocks(text, "json");
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[0].language, "rust");
        assert_eq!(blocks[0].code, "fn main() {}");
        assert_eq!(blocks[0].check, Check::WellFormed);
        assert_eq!(blocks[1].language, "json");
        assert_eq!(blocks[1].check, Check::WellFormed);
        assert_eq!(blocks[2].check, Check::Malformed);
        assert_eq!(
            blocks[3].issue.as_deref(),
            Some("the code fence is never closed")
        );
        assert!(code_blocks("no code here at all", "rust").is_empty());
    }
}
