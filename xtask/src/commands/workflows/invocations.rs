//! Every `cargo xtask …` in a workflow's `run:` scripts must parse with the
//! real command line (`crate::Cli`), so a renamed flag or subcommand fails
//! `cargo test` and `cargo xtask ci`, not a nightly run.
//!
//! The scripts are split into simple commands the way a shell would (quotes,
//! `\` continuations, `;`, `&&`, `||`, `|`, comments). A variable takes its
//! value from the step's `env:`; a value that is a `workflow_dispatch`
//! input or a matrix entry takes every value that input or matrix can have
//! (each option, the default, and the literals of an `||` fallback), so
//! every choice an operator can make is parsed. `"${array[@]}"` expands to
//! nothing (its words are built at run time); any other unknown variable or
//! `$(…)` becomes the placeholder `VALUE`.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Finding, Input, RunStep, expressions};

/// A piece of a shell word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    /// `$NAME` or `${NAME}`.
    Var(String),
    /// `${NAME[@]}`: zero or more words.
    Array,
    /// A `${{ … }}` expression written into the script itself.
    Expr(String),
    /// `$(…)` or a `${…}` form this reader does not evaluate.
    Unknown,
}

type Word = Vec<Piece>;

const PLACEHOLDER: &str = "VALUE";

/// The simple commands of a script, each a list of words.
fn commands(script: &str) -> Vec<Vec<Word>> {
    let text = script.replace("\\\n", "");
    let chars: Vec<char> = text.chars().collect();
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut word: Word = Vec::new();
    let mut in_word = false;
    let mut i = 0;

    fn push_char(word: &mut Word, c: char) {
        if let Some(Piece::Lit(s)) = word.last_mut() {
            s.push(c);
        } else {
            word.push(Piece::Lit(c.to_string()));
        }
    }
    fn end_word(words: &mut Vec<Word>, word: &mut Word, in_word: &mut bool) {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    }
    fn end_command(commands: &mut Vec<Vec<Word>>, words: &mut Vec<Word>) {
        if !words.is_empty() {
            commands.push(std::mem::take(words));
        }
    }

    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                end_word(&mut words, &mut word, &mut in_word);
                end_command(&mut commands, &mut words);
                i += 1;
            }
            ' ' | '\t' => {
                end_word(&mut words, &mut word, &mut in_word);
                i += 1;
            }
            '>' | '<' => {
                // A redirection and its target are not arguments: `2>&1`,
                // `> file`, `>> file`, `<<< "$text"`.
                let fd = matches!(word.as_slice(), [Piece::Lit(s)] if s.chars().all(|c| c.is_ascii_digit()));
                if in_word && fd {
                    word.clear();
                    in_word = false;
                } else {
                    end_word(&mut words, &mut word, &mut in_word);
                }
                while i < chars.len() && matches!(chars[i], '>' | '<' | '&') {
                    i += 1;
                }
                while i < chars.len() && matches!(chars[i], ' ' | '\t') {
                    i += 1;
                }
                // The target: one word, quoted or not.
                let mut quote = None;
                while i < chars.len() {
                    let ch = chars[i];
                    match quote {
                        Some(q) if ch == q => quote = None,
                        Some(_) => {}
                        None if ch == '\'' || ch == '"' => quote = Some(ch),
                        None if matches!(ch, ' ' | '\t' | '\n' | ';' | '|' | '&' | ')') => break,
                        None => {}
                    }
                    i += 1;
                }
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                i += 1;
                let mut lit = String::new();
                while i < chars.len() && chars[i] != '\'' {
                    lit.push(chars[i]);
                    i += 1;
                }
                i += 1;
                for ch in lit.chars() {
                    push_char(&mut word, ch);
                }
                if lit.is_empty() {
                    word.push(Piece::Lit(String::new()));
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                let mut empty = true;
                while i < chars.len() && chars[i] != '"' {
                    empty = false;
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        push_char(&mut word, chars[i + 1]);
                        i += 2;
                    } else if chars[i] == '$' {
                        i = dollar(&chars, i, &mut word);
                    } else {
                        push_char(&mut word, chars[i]);
                        i += 1;
                    }
                }
                i += 1;
                if empty {
                    word.push(Piece::Lit(String::new()));
                }
            }
            '\\' => {
                in_word = true;
                if let Some(&next) = chars.get(i + 1) {
                    push_char(&mut word, next);
                }
                i += 2;
            }
            '$' => {
                in_word = true;
                i = dollar(&chars, i, &mut word);
            }
            _ => {
                in_word = true;
                push_char(&mut word, c);
                i += 1;
            }
        }
    }
    end_word(&mut words, &mut word, &mut in_word);
    end_command(&mut commands, &mut words);
    commands
}

/// Reads the `$…` form at `chars[at]` into `word`; returns the index after it.
fn dollar(chars: &[char], at: usize, word: &mut Word) -> usize {
    let rest: String = chars[at..].iter().take(4).collect();
    if rest.starts_with("${{") {
        let mut end = at + 3;
        while end + 1 < chars.len() && !(chars[end] == '}' && chars[end + 1] == '}') {
            end += 1;
        }
        let inner: String = chars[at + 3..end.min(chars.len())].iter().collect();
        word.push(Piece::Expr(inner.trim().to_owned()));
        return end + 2;
    }
    if rest.starts_with("$(") {
        let mut depth = 0usize;
        let mut end = at + 1;
        while end < chars.len() {
            match chars[end] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            end += 1;
        }
        word.push(Piece::Unknown);
        return end + 1;
    }
    if rest.starts_with("${") {
        let close = chars[at..]
            .iter()
            .position(|&c| c == '}')
            .map_or(chars.len(), |p| at + p);
        let inner: String = chars[at + 2..close].iter().collect();
        if inner.ends_with("[@]") || inner.ends_with("[*]") {
            word.push(Piece::Array);
        } else if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            word.push(Piece::Var(inner));
        } else {
            word.push(Piece::Unknown);
        }
        return close + 1;
    }
    let name: String = chars[at + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .collect();
    if name.is_empty() {
        if let Some(Piece::Lit(s)) = word.last_mut() {
            s.push('$');
        } else {
            word.push(Piece::Lit("$".into()));
        }
        return at + 1;
    }
    let end = at + 1 + name.len();
    word.push(Piece::Var(name));
    end
}

/// The values an expression can take: each option and default of the
/// inputs it names, each value of the matrix entries it names, and its
/// quoted literals (an `|| 'fallback'`). None found: the placeholder.
fn expression_values(
    expr: &str,
    inputs: &BTreeMap<String, Input>,
    matrix: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut values = Vec::new();
    let names = |prefix: &str| -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at + prefix.len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            found.push(name);
            rest = tail;
        }
        found
    };
    for name in names("inputs.") {
        if let Some(input) = inputs.get(&name) {
            values.extend(input.options.iter().cloned());
            values.extend(input.default.iter().cloned());
        }
    }
    for name in names("matrix.") {
        values.extend(matrix.get(&name).into_iter().flatten().cloned());
    }
    let mut rest = expr;
    while let Some(open) = rest.find('\'') {
        let tail = &rest[open + 1..];
        let Some(close) = tail.find('\'') else { break };
        values.push(tail[..close].to_owned());
        rest = &tail[close + 1..];
    }
    let mut seen = BTreeSet::new();
    values.retain(|v| seen.insert(v.clone()));
    if values.is_empty() {
        values.push(PLACEHOLDER.to_owned());
    }
    values
}

/// The values an `env:` value can take (one unless it holds expressions).
fn env_values(
    value: &str,
    inputs: &BTreeMap<String, Input>,
    matrix: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let found = expressions(value);
    match found.as_slice() {
        [] => vec![value.to_owned()],
        [(range, expr)] if *range == (0..value.len()) => expression_values(expr, inputs, matrix),
        _ => {
            // Several expressions in one value: each at its first value.
            let mut text = value.to_owned();
            for (range, expr) in found.iter().rev() {
                let first = expression_values(expr, inputs, matrix).remove(0);
                text.replace_range(range.clone(), &first);
            }
            vec![text]
        }
    }
}

/// One `cargo xtask` invocation and the argument lists it can expand to.
#[derive(Debug)]
pub struct Invocation {
    pub place: String,
    /// As written, for messages.
    pub written: String,
    pub variants: Vec<Vec<String>>,
}

/// Every `cargo xtask …` in a step's script, with the argument lists to parse.
pub fn in_step(step: &RunStep, inputs: &BTreeMap<String, Input>) -> Vec<Invocation> {
    let mut found = Vec::new();
    for words in commands(&step.script) {
        let is_lit = |w: &Word, text: &str| matches!(w.as_slice(), [Piece::Lit(s)] if s == text);
        let Some(at) = words
            .windows(2)
            .position(|pair| is_lit(&pair[0], "cargo") && is_lit(&pair[1], "xtask"))
        else {
            continue;
        };
        let args = &words[at + 2..];
        // Each distinct variable or expression and the values it can take.
        let mut choices: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for piece in args.iter().flatten() {
            match piece {
                Piece::Var(name) => {
                    let values = step.env.get(name).map_or_else(
                        || vec![PLACEHOLDER.to_owned()],
                        |v| env_values(v, inputs, &step.matrix),
                    );
                    choices.insert(format!("${name}"), values);
                }
                Piece::Expr(expr) => {
                    choices.insert(
                        format!("${{{{ {expr} }}}}"),
                        expression_values(expr, inputs, &step.matrix),
                    );
                }
                _ => {}
            }
        }
        // The first value of everything, then each other value of one
        // choice at a time.
        let baseline: BTreeMap<&String, &String> =
            choices.iter().map(|(k, v)| (k, &v[0])).collect();
        let mut assignments = vec![baseline.clone()];
        for (key, values) in &choices {
            for value in values.iter().skip(1) {
                let mut one = baseline.clone();
                one.insert(key, value);
                assignments.push(one);
            }
        }
        let variants = assignments
            .iter()
            .map(|assignment| {
                args.iter()
                    .filter(|word| !(word.len() == 1 && word[0] == Piece::Array))
                    .map(|word| {
                        word.iter()
                            .map(|piece| match piece {
                                Piece::Lit(s) => s.clone(),
                                Piece::Var(name) => assignment[&format!("${name}")].clone(),
                                Piece::Expr(expr) => {
                                    assignment[&format!("${{{{ {expr} }}}}")].clone()
                                }
                                Piece::Array => String::new(),
                                Piece::Unknown => PLACEHOLDER.to_owned(),
                            })
                            .collect::<String>()
                    })
                    .collect()
            })
            .collect();
        found.push(Invocation {
            place: step.place.clone(),
            written: written(args),
            variants,
        });
    }
    found
}

fn written(args: &[Word]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|word| {
            word.iter()
                .map(|piece| match piece {
                    Piece::Lit(s) => s.clone(),
                    Piece::Var(name) => format!("${name}"),
                    Piece::Array => "${…[@]}".to_owned(),
                    Piece::Expr(expr) => format!("${{{{ {expr} }}}}"),
                    Piece::Unknown => "$(…)".to_owned(),
                })
                .collect()
        })
        .collect();
    format!("cargo xtask {}", words.join(" "))
}

/// Parses every variant of every invocation with `parse`; returns how many
/// invocations there were and what failed.
pub fn check(
    steps: &[RunStep],
    inputs_of: &dyn Fn(&RunStep) -> BTreeMap<String, Input>,
    parse: &dyn Fn(&[String]) -> Result<(), String>,
) -> (usize, Vec<Finding>) {
    let mut count = 0;
    let mut findings = Vec::new();
    for step in steps {
        for invocation in in_step(step, &inputs_of(step)) {
            count += 1;
            for args in &invocation.variants {
                if let Err(error) = parse(args) {
                    findings.push(Finding {
                        check: "xtask-args",
                        place: invocation.place.clone(),
                        message: format!(
                            "`{}` as `cargo xtask {}`: {error}",
                            invocation.written,
                            args.join(" ")
                        ),
                    });
                }
            }
        }
    }
    (count, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(script: &str, env: &[(&str, &str)]) -> RunStep {
        RunStep {
            place: "w.yml job j, step #1".into(),
            script: script.into(),
            shell: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            matrix: BTreeMap::from([("drill".to_owned(), vec!["a".to_owned(), "b".to_owned()])]),
        }
    }

    fn inputs() -> BTreeMap<String, Input> {
        BTreeMap::from([(
            "profile".to_owned(),
            Input {
                options: vec!["smoke".into(), "soak".into()],
                default: Some("smoke".into()),
            },
        )])
    }

    #[test]
    fn words_quotes_operators_and_comments() {
        let found = in_step(
            &step(
                "echo 'cargo xtask nope' # cargo xtask nope\n\
                 runuser -u ci -- cargo xtask ci --no-system-test && cargo xtask \\\n  status --json\n\
                 x=1; cargo xtask images | tee log\n\
                 cargo xtask deploy --dry-run > \"out put.yaml\" 2>&1 < /dev/null\n\
                 cargo xtask status 2> err.log >>out.log",
                &[],
            ),
            &inputs(),
        );
        let variants: Vec<_> = found.iter().map(|i| i.variants[0].join(" ")).collect();
        assert_eq!(
            variants,
            [
                "ci --no-system-test",
                "status --json",
                "images",
                "deploy --dry-run",
                "status"
            ]
        );
    }

    #[test]
    fn variables_take_every_value_an_operator_can_give() {
        let found = in_step(
            &step(
                "cargo xtask load-test --profile \"$PROFILE\" --out \"$RUNNER_TEMP/x\" \"${thresholds[@]}\" --llm ${{ matrix.drill }}",
                &[("PROFILE", "${{ inputs.profile || 'stress' }}")],
            ),
            &inputs(),
        );
        assert_eq!(found.len(), 1);
        let all: BTreeSet<String> = found[0].variants.iter().map(|v| v.join(" ")).collect();
        assert_eq!(
            all,
            BTreeSet::from([
                "load-test --profile smoke --out VALUE/x --llm a".to_owned(),
                "load-test --profile soak --out VALUE/x --llm a".to_owned(),
                "load-test --profile stress --out VALUE/x --llm a".to_owned(),
                "load-test --profile smoke --out VALUE/x --llm b".to_owned(),
            ])
        );
        assert!(
            found[0].written.contains("$PROFILE"),
            "{}",
            found[0].written
        );
    }

    #[test]
    fn a_parser_refusal_is_a_finding_per_variant() {
        let steps = [step(
            "cargo xtask load-test --profile \"$PROFILE\"",
            &[("PROFILE", "${{ inputs.profile }}")],
        )];
        let parse = |args: &[String]| {
            if args.iter().any(|a| a == "soak") {
                Err("invalid value 'soak'".to_owned())
            } else {
                Ok(())
            }
        };
        let (count, findings) = check(&steps, &|_| inputs(), &parse);
        assert_eq!(count, 1);
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0].message.contains("--profile soak"),
            "{findings:?}"
        );
    }
}
