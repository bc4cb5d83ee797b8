//! JSON Schema checks whose messages never echo the checked values (inputs
//! may hold PII or be large): `"/goal: value is shorter than 1 character"`.

use std::fmt::Write as _;

use serde_json::Value;
use service_kit::FieldError;

/// At most this many problems are reported for one instance.
pub const MAX_PROBLEMS: usize = 10;

/// A compiled JSON Schema.
pub struct Schema {
    source: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// One way an instance fails its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// JSON pointer into the instance, e.g. `/steps/0/capability` (empty: the root).
    pub pointer: String,
    /// What is wrong, without the value.
    pub message: String,
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

impl Schema {
    /// Compiles `source`. Remote `$ref`s are not fetched (no network, no
    /// files): a schema that needs one does not compile. The error says why.
    pub fn compile(source: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&source).map_err(|e| e.masked().to_string())?;
        Ok(Self { source, validator })
    }

    /// The schema document.
    pub fn source(&self) -> &Value {
        &self.source
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Up to [`MAX_PROBLEMS`] problems; empty when `instance` is valid.
    pub fn problems(&self, instance: &Value) -> Vec<SchemaProblem> {
        self.validator
            .iter_errors(instance)
            .take(MAX_PROBLEMS)
            .map(|error| SchemaProblem {
                pointer: error.instance_path().to_string(),
                message: error.masked().to_string(),
            })
            .collect()
    }

    /// The problems as 422 field errors under `root`, e.g. `input.steps[0].id`.
    pub fn field_errors(&self, instance: &Value, root: &str) -> Vec<FieldError> {
        self.problems(instance)
            .into_iter()
            .map(|p| FieldError::new(field_path(root, &p.pointer), p.message))
            .collect()
    }

    /// The problems in one line, e.g. for a 502 naming an invalid LLM answer.
    pub fn describe_problems(&self, instance: &Value) -> String {
        let problems = self.problems(instance);
        let mut text = String::new();
        for (i, problem) in problems.iter().enumerate() {
            if i > 0 {
                text.push_str("; ");
            }
            let _ = write!(text, "{problem}");
        }
        text
    }
}

/// `root` plus a JSON pointer as a field path: `input` + `/args/3/x` is
/// `input.args[3].x`.
pub fn field_path(root: &str, pointer: &str) -> String {
    let mut path = root.to_owned();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            let _ = write!(path, "[{segment}]");
        } else if path.is_empty() {
            path = segment;
        } else {
            let _ = write!(path, ".{segment}");
        }
    }
    path
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn problems_name_the_place_but_not_the_value() {
        let schema = Schema::compile(json!({
            "type": "object",
            "required": ["goal", "args"],
            "additionalProperties": false,
            "properties": {
                "goal": {"type": "string", "minLength": 1},
                "args": {"type": "array", "items": {"type": "string"}}
            }
        }))
        .unwrap();
        assert!(schema.is_valid(&json!({"goal": "x", "args": []})));
        let secret = "jane.doe@example.com";
        let bad = json!({"goal": "", "args": ["ok", 7], "extra": secret});
        let errors = schema.field_errors(&bad, "input");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"input.goal"), "{errors:?}");
        assert!(fields.contains(&"input.args[1]"), "{errors:?}");
        assert!(fields.contains(&"input"), "{errors:?}");
        assert!(!format!("{errors:?}").contains(secret));
        let missing = schema.describe_problems(&json!({}));
        assert!(
            missing.contains("\"goal\" is a required property"),
            "{missing}"
        );
    }

    #[test]
    fn invalid_schemas_and_remote_refs_do_not_compile() {
        assert!(Schema::compile(json!({"type": "no-such-type"})).is_err());
        assert!(Schema::compile(json!({"$ref": "https://example.com/schema.json"})).is_err());
        assert!(Schema::compile(json!({"minLength": -1})).is_err());
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_path("input", ""), "input");
        assert_eq!(field_path("input", "/a/0/b~1c"), "input.a[0].b/c");
        assert_eq!(field_path("", "/a/2"), "a[2]");
    }
}
