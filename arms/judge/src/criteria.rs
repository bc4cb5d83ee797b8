//! The deterministic checks: criteria are compiled once per request (an
//! invalid schema or regex is the request's fault, 422), then applied.

use arm_kit::{ArmError, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::FieldError;

/// Compiled-size bound of one regex (the `regex` crate matches in linear time).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest quoted criterion in an issue message, in characters.
const QUOTE_MAX_CHARS: usize = 80;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    #[serde(default)]
    pub json_schema: Option<Value>,
    #[serde(default)]
    pub required_substrings: Vec<String>,
    #[serde(default)]
    pub regexes: Vec<String>,
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One way the output falls short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// `json_schema`, `required_substring`, `regex`, `min_length`, `max_length` or `llm`.
    pub check: &'static str,
    pub message: String,
}

impl Issue {
    pub fn new(check: &'static str, message: impl Into<String>) -> Self {
        Self {
            check,
            message: message.into(),
        }
    }
}

/// Criteria ready to apply.
pub struct Compiled {
    schema: Option<Schema>,
    substrings: Vec<String>,
    regexes: Vec<(String, regex::Regex)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
}

/// The result of the deterministic checks.
#[derive(Debug)]
pub struct Verdict {
    pub issues: Vec<Issue>,
    pub passed: usize,
    pub total: usize,
}

impl Criteria {
    /// Compiles the schema and regexes; every invalid one is a 422 field error.
    pub fn compile(&self) -> Result<Compiled, ArmError> {
        let mut errors = Vec::new();
        let schema = match &self.json_schema {
            None => None,
            Some(source) => match Schema::compile(source.clone()) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    errors.push(FieldError::new(
                        "input.criteria.json_schema",
                        format!("not a valid JSON Schema: {e}"),
                    ));
                    None
                }
            },
        };
        let mut regexes = Vec::new();
        for (i, pattern) in self.regexes.iter().enumerate() {
            match regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => regexes.push((pattern.clone(), re)),
                Err(e) => errors.push(FieldError::new(
                    format!("input.criteria.regexes[{i}]"),
                    format!("not a valid regex: {}", first_line(&e.to_string())),
                )),
            }
        }
        if let (Some(min), Some(max)) = (self.min_length, self.max_length)
            && min > max
        {
            errors.push(FieldError::new(
                "input.criteria.min_length",
                format!("is above max_length ({min} > {max})"),
            ));
        }
        if !errors.is_empty() {
            return Err(ArmError::Invalid(errors));
        }
        Ok(Compiled {
            schema,
            substrings: self.required_substrings.clone(),
            regexes,
            min_length: self.min_length,
            max_length: self.max_length,
        })
    }
}

impl Compiled {
    /// Applies every check to `output` (its text: a string as is, anything
    /// else as compact JSON). Messages never quote the output.
    pub fn apply(&self, output: &Value) -> Verdict {
        let text = text_of(output);
        let mut issues = Vec::new();
        let mut total = 0;
        if let Some(schema) = &self.schema {
            total += 1;
            let instance = match output {
                Value::String(s) => serde_json::from_str::<Value>(s).map_err(|e| e.to_string()),
                other => Ok(other.clone()),
            };
            match instance {
                Err(e) => issues.push(Issue::new(
                    "json_schema",
                    format!("the output is not JSON ({e})"),
                )),
                Ok(instance) => {
                    for problem in schema.problems(&instance) {
                        issues.push(Issue::new("json_schema", problem.to_string()));
                    }
                }
            }
        }
        for substring in &self.substrings {
            total += 1;
            if !text.contains(substring.as_str()) {
                issues.push(Issue::new(
                    "required_substring",
                    format!("does not contain {:?}", quote(substring)),
                ));
            }
        }
        for (pattern, re) in &self.regexes {
            total += 1;
            if !re.is_match(&text) {
                issues.push(Issue::new(
                    "regex",
                    format!("does not match /{}/", quote(pattern)),
                ));
            }
        }
        let chars = text.chars().count() as u64;
        if let Some(min) = self.min_length {
            total += 1;
            if chars < min {
                issues.push(Issue::new(
                    "min_length",
                    format!("is {chars} characters, under the minimum of {min}"),
                ));
            }
        }
        if let Some(max) = self.max_length {
            total += 1;
            if chars > max {
                issues.push(Issue::new(
                    "max_length",
                    format!("is {chars} characters, over the maximum of {max}"),
                ));
            }
        }
        let failed_checks = failed_checks(&issues);
        Verdict {
            passed: total - failed_checks.min(total),
            total,
            issues,
        }
    }
}

/// The schema check counts once however many problems it found.
fn failed_checks(issues: &[Issue]) -> usize {
    let schema = usize::from(issues.iter().any(|i| i.check == "json_schema"));
    schema + issues.iter().filter(|i| i.check != "json_schema").count()
}

/// The text the substring, regex and length checks see.
pub fn text_of(output: &Value) -> String {
    match output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTE_MAX_CHARS).collect();
    if text.chars().count() > QUOTE_MAX_CHARS {
        quoted.push('…');
    }
    quoted
}

/// The `error: …` line of a regex error (which also draws the pattern).
fn first_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .or_else(|| text.lines().next())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn criteria(value: Value) -> Criteria {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_check_reports_its_own_issue() {
        let compiled = criteria(json!({
            "required_substrings": ["WAL", "missing words"],
            "regexes": ["(?i)postgres(ql)?", "^\\d+$"],
            "min_length": 10,
            "max_length": 20
        }))
        .compile()
        .unwrap();
        let verdict = compiled.apply(&json!("PostgreSQL writes the WAL first."));
        let checks: Vec<&str> = verdict.issues.iter().map(|i| i.check).collect();
        assert_eq!(checks, ["required_substring", "regex", "max_length"]);
        assert_eq!((verdict.passed, verdict.total), (3, 6));
        assert_eq!(
            verdict.issues[0].message,
            "does not contain \"missing words\""
        );
    }

    #[test]
    fn schemas_apply_to_json_values_and_json_strings() {
        let compiled = criteria(json!({"json_schema": {
            "type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}
        }}))
        .compile()
        .unwrap();
        assert!(compiled.apply(&json!({"ok": true})).issues.is_empty());
        assert!(compiled.apply(&json!("{\"ok\": false}")).issues.is_empty());
        let bad = compiled.apply(&json!({"ok": "secret-value"}));
        assert_eq!(bad.issues.len(), 1);
        assert!(!bad.issues[0].message.contains("secret-value"));
        assert_eq!((bad.passed, bad.total), (0, 1));
        let not_json = compiled.apply(&json!("plain words"));
        assert!(
            not_json.issues[0]
                .message
                .starts_with("the output is not JSON")
        );
    }

    #[test]
    fn invalid_criteria_are_422_naming_each() {
        let error = criteria(json!({
            "json_schema": {"type": 7},
            "regexes": ["ok", "(unclosed", "[z-a]"],
            "min_length": 5,
            "max_length": 2
        }))
        .compile()
        .err()
        .unwrap();
        let ArmError::Invalid(errors) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "input.criteria.json_schema",
                "input.criteria.regexes[1]",
                "input.criteria.regexes[2]",
                "input.criteria.min_length"
            ]
        );
    }
}
