//! Structured output: a small JSON instance that satisfies a JSON Schema, for
//! OpenAI's `response_format: {"type": "json_schema", ...}`.
//!
//! The generator is deterministic and deliberately small. It understands
//! `type` (one or a list; `null` is chosen last), `enum` (first value, or the
//! n-th for the n-th item of an array so `uniqueItems` holds), `const`,
//! objects (every `required` property, nothing optional), arrays (exactly
//! `minItems` items, `prefixItems` first), strings (`minLength`,
//! `maxLength`, a few `format`s), integers and numbers (the middle of
//! `minimum`/`maximum`, exclusive bounds included), booleans, `anyOf` and
//! `oneOf` (first branch), `allOf` (object branches merged) and local
//! `$ref`s (`#/$defs/...`, `#/definitions/...`). It ignores `pattern`,
//! `multipleOf` and `not`. Nesting deeper than [`MAX_DEPTH`] becomes `null`.

use serde_json::{Map, Value, json};

/// Deepest schema nesting (including `$ref` hops) the generator follows.
pub const MAX_DEPTH: usize = 32;

/// Largest array the generator builds, whatever `minItems` says.
pub const MAX_ITEMS: u64 = 64;

/// Words of generated strings.
const WORDS: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];

/// A small instance of `schema` (items of an array differ from each other
/// where the schema allows: strings, enum picks and integers vary by index).
pub fn instance(schema: &Value) -> Value {
    Generator { root: schema }.value(schema, 0, 0)
}

/// A small instance of `schema`, a part of `root` (whose `$ref`s resolve
/// against `root`), as the `variant`-th item of an array.
pub fn instance_within(root: &Value, schema: &Value, variant: usize) -> Value {
    Generator { root }.value(schema, variant, 0)
}

/// `text` cut to about half its characters: never valid JSON when `text`
/// is a generated object, array or scalar (a truncated answer, as when a
/// model runs out of tokens).
pub fn truncated(text: &str) -> String {
    let keep = text.chars().count() / 2;
    text.chars().take(keep).collect()
}

struct Generator<'a> {
    root: &'a Value,
}

impl Generator<'_> {
    fn value(&self, schema: &Value, variant: usize, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(object) = schema.as_object() else {
            // `true` (anything) and `false` (nothing) schemas: null is the
            // smallest answer for either.
            return Value::Null;
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return match self.resolve(reference) {
                Some(target) => self.value(target, variant, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(value) = object.get("const") {
            return value.clone();
        }
        if let Some(options) = object.get("enum").and_then(Value::as_array)
            && !options.is_empty()
        {
            return options[variant % options.len()].clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(first) = object
                .get(key)
                .and_then(Value::as_array)
                .and_then(|b| b.first())
            {
                return self.value(first, variant, depth + 1);
            }
        }
        if let Some(branches) = object.get("allOf").and_then(Value::as_array) {
            return self.all_of(object, branches, variant, depth);
        }
        match type_of(object) {
            "object" => self.object(object, variant, depth),
            "array" => self.array(object, depth),
            "string" => Value::String(string(object, variant)),
            "integer" => integer(object, variant),
            "number" => number(object),
            "boolean" => Value::Bool(true),
            _ => Value::Null,
        }
    }

    /// `#/a/b` inside the root schema.
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }

    fn object(&self, object: &Map<String, Value>, variant: usize, depth: usize) -> Value {
        let properties = object.get("properties").and_then(Value::as_object);
        let additional = object.get("additionalProperties").filter(|v| v.is_object());
        let mut out = Map::new();
        for name in object
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let value = match properties.and_then(|p| p.get(name)).or(additional) {
                Some(property) => self.value(property, variant, depth + 1),
                None => Value::String(words(3, variant)),
            };
            out.insert(name.to_owned(), value);
        }
        Value::Object(out)
    }

    fn array(&self, object: &Map<String, Value>, depth: usize) -> Value {
        let wanted = object
            .get("minItems")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(MAX_ITEMS) as usize;
        let prefix = object
            .get("prefixItems")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let items = object.get("items").unwrap_or(&Value::Null);
        let mut out: Vec<Value> = prefix
            .iter()
            .enumerate()
            .map(|(i, schema)| self.value(schema, i, depth + 1))
            .collect();
        for i in out.len()..wanted {
            out.push(self.value(items, i, depth + 1));
        }
        Value::Array(out)
    }

    /// Object branches merged (properties and required); otherwise the first.
    fn all_of(
        &self,
        object: &Map<String, Value>,
        branches: &[Value],
        variant: usize,
        depth: usize,
    ) -> Value {
        let mut merged = object.clone();
        merged.remove("allOf");
        let mut properties = merged
            .remove("properties")
            .and_then(|p| p.as_object().cloned())
            .unwrap_or_default();
        let mut required: Vec<Value> = merged
            .remove("required")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        for branch in branches {
            let branch = match branch.get("$ref").and_then(Value::as_str) {
                Some(reference) => self.resolve(reference).unwrap_or(&Value::Null),
                None => branch,
            };
            if let Some(p) = branch.get("properties").and_then(Value::as_object) {
                properties.extend(p.clone());
            }
            if let Some(r) = branch.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
            if let Some(t) = branch.get("type")
                && !merged.contains_key("type")
            {
                merged.insert("type".to_owned(), t.clone());
            }
        }
        if properties.is_empty() && required.is_empty() {
            return match branches.first() {
                Some(first) => self.value(first, variant, depth + 1),
                None => Value::Null,
            };
        }
        merged.insert("type".to_owned(), json!("object"));
        merged.insert("properties".to_owned(), Value::Object(properties));
        merged.insert("required".to_owned(), Value::Array(required));
        self.object(&merged, variant, depth + 1)
    }
}

/// The schema's type: the first of a list that is not `null`, or guessed
/// from the keywords present.
fn type_of(object: &Map<String, Value>) -> &str {
    match object.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .or_else(|| types.iter().filter_map(Value::as_str).next())
            .unwrap_or("null"),
        _ if object.contains_key("properties") || object.contains_key("required") => "object",
        _ if object.contains_key("items") || object.contains_key("prefixItems") => "array",
        _ if object.contains_key("minLength") || object.contains_key("maxLength") => "string",
        _ if object.contains_key("minimum") || object.contains_key("maximum") => "number",
        _ => "null",
    }
}

/// `n` words starting at `variant`, e.g. `"bravo charlie delta"`.
fn words(n: usize, variant: usize) -> String {
    (0..n)
        .map(|i| WORDS[(variant + i) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn string(object: &Map<String, Value>, variant: usize) -> String {
    let formatted = match object.get("format").and_then(Value::as_str) {
        Some("date-time") => Some("2026-01-01T00:00:00Z".to_owned()),
        Some("date") => Some("2026-01-01".to_owned()),
        Some("time") => Some("00:00:00Z".to_owned()),
        Some("email") => Some(format!("sim{variant}@example.com")),
        Some("uri" | "url") => Some(format!("https://example.com/sim/{variant}")),
        Some("uuid") => Some(format!("00000000-0000-4000-8000-{variant:012}")),
        _ => None,
    };
    let min = object.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = object
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    let mut text = formatted.unwrap_or_else(|| words(3, variant));
    // Pad with more words until long enough, then cut to the maximum.
    let mut next = variant + 3;
    while text.chars().count() < min {
        text.push(' ');
        text.push_str(WORDS[next % WORDS.len()]);
        next += 1;
    }
    if let Some(max) = max {
        text = text.chars().take(max).collect();
    }
    text
}

/// Inclusive bounds from `minimum`/`maximum` and their exclusive forms.
fn bounds(object: &Map<String, Value>) -> (Option<f64>, Option<f64>, bool, bool) {
    let get = |key: &str| object.get(key).and_then(Value::as_f64);
    let (min, min_exclusive) = match (get("minimum"), get("exclusiveMinimum")) {
        (Some(a), Some(b)) if b >= a => (Some(b), true),
        (Some(a), _) => (Some(a), false),
        (None, Some(b)) => (Some(b), true),
        (None, None) => (None, false),
    };
    let (max, max_exclusive) = match (get("maximum"), get("exclusiveMaximum")) {
        (Some(a), Some(b)) if b <= a => (Some(b), true),
        (Some(a), _) => (Some(a), false),
        (None, Some(b)) => (Some(b), true),
        (None, None) => (None, false),
    };
    (min, max, min_exclusive, max_exclusive)
}

fn integer(object: &Map<String, Value>, variant: usize) -> Value {
    let (min, max, min_exclusive, max_exclusive) = bounds(object);
    let lo = min.map(|m| {
        if min_exclusive {
            m.floor() as i64 + 1
        } else {
            m.ceil() as i64
        }
    });
    let hi = max.map(|m| {
        if max_exclusive {
            m.ceil() as i64 - 1
        } else {
            m.floor() as i64
        }
    });
    let offset = i64::try_from(variant).unwrap_or(0);
    let value = match (lo, hi) {
        (Some(lo), Some(hi)) => (lo + (hi - lo) / 2 + offset).min(hi),
        (Some(lo), None) => lo + offset,
        (None, Some(hi)) => hi.min(0) - offset,
        (None, None) => offset,
    };
    json!(value)
}

fn number(object: &Map<String, Value>) -> Value {
    let (min, max, ..) = bounds(object);
    let value = match (min, max) {
        (Some(lo), Some(hi)) => lo + (hi - lo) / 2.0,
        (Some(lo), None) => lo + 1.0,
        (None, Some(hi)) => hi.min(0.0) - 1.0,
        (None, None) => 0.0,
    };
    // Keep integers-valued numbers looking like numbers (0.5, not 0.5000001).
    json!(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn objects_have_their_required_properties_only() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "count", "ok"],
            "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer", "minimum": 1, "maximum": 9},
                "ok": {"type": "boolean"},
                "optional": {"type": "string"}
            }
        });
        assert_eq!(
            instance(&schema),
            json!({"name": "alpha bravo charlie", "count": 5, "ok": true})
        );
    }

    #[test]
    fn arrays_have_min_items_and_distinct_siblings() {
        let schema = json!({
            "type": "array", "minItems": 3, "uniqueItems": true,
            "items": {"type": "string", "enum": ["a", "b", "c", "d"]}
        });
        assert_eq!(instance(&schema), json!(["a", "b", "c"]));
        let strings = json!({"type": "array", "minItems": 2, "items": {"type": "string"}});
        let got = instance(&strings);
        assert_ne!(got[0], got[1]);
        assert_eq!(instance(&json!({"type": "array"})), json!([]));
        let huge = json!({"type": "array", "minItems": 1_000_000, "items": {"type": "null"}});
        assert_eq!(
            instance(&huge).as_array().unwrap().len(),
            MAX_ITEMS as usize
        );
        let tuple = json!({"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}]});
        assert_eq!(instance(&tuple), json!([0, "x"]));
    }

    #[test]
    fn strings_respect_lengths_and_formats() {
        let short = instance(&json!({"type": "string", "maxLength": 4}));
        assert_eq!(short, json!("alph"));
        let long = instance(&json!({"type": "string", "minLength": 40}));
        assert!(long.as_str().unwrap().chars().count() >= 40);
        assert_eq!(
            instance(&json!({"type": "string", "format": "date-time"})),
            json!("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            instance(&json!({"type": "string", "minLength": 0, "maxLength": 0})),
            json!("")
        );
    }

    #[test]
    fn numbers_sit_inside_their_bounds() {
        assert_eq!(
            instance(&json!({"type": "number", "minimum": 0, "maximum": 1})),
            json!(0.5)
        );
        assert_eq!(
            instance(&json!({"type": "integer", "exclusiveMinimum": 3})),
            json!(4)
        );
        assert_eq!(
            instance(&json!({"type": "integer", "maximum": -7})),
            json!(-7)
        );
        let n = instance(&json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}));
        let n = n.as_f64().unwrap();
        assert!(n > 0.0 && n < 1.0);
    }

    #[test]
    fn enums_consts_unions_and_refs() {
        assert_eq!(instance(&json!({"enum": ["x", "y"]})), json!("x"));
        assert_eq!(instance(&json!({"const": {"k": 1}})), json!({"k": 1}));
        assert_eq!(
            instance(&json!({"type": ["null", "string"]})),
            json!("alpha bravo charlie")
        );
        assert_eq!(
            instance(&json!({"anyOf": [{"type": "integer"}, {"type": "string"}]})),
            json!(0)
        );
        let with_defs = json!({
            "type": "object",
            "required": ["step"],
            "properties": {"step": {"$ref": "#/$defs/step"}},
            "$defs": {"step": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "minimum": 1}}}}
        });
        assert_eq!(instance(&with_defs), json!({"step": {"id": 1}}));
        let merged = json!({"allOf": [
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "boolean"}}},
            {"required": ["b"], "properties": {"b": {"const": 2}}}
        ]});
        assert_eq!(instance(&merged), json!({"a": true, "b": 2}));
    }

    #[test]
    fn self_references_stop_at_the_depth_limit() {
        let schema = json!({
            "type": "object", "required": ["next"],
            "properties": {"next": {"$ref": "#"}}
        });
        let mut value = &instance(&schema);
        let mut depth = 0;
        while let Some(next) = value.get("next") {
            value = next;
            depth += 1;
        }
        assert!(depth <= MAX_DEPTH);
        assert_eq!(instance(&json!({"$ref": "#/nowhere"})), Value::Null);
        assert_eq!(instance(&json!(true)), Value::Null);
    }

    #[test]
    fn truncated_answers_never_parse() {
        for schema in [
            json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}),
            json!({"type": "object"}),
            json!({"type": "array", "minItems": 1, "items": {"type": "integer"}}),
            json!({"type": "boolean"}),
            json!({"type": "integer"}),
            json!({"type": "string"}),
        ] {
            let text = instance(&schema).to_string();
            let cut = truncated(&text);
            assert!(
                serde_json::from_str::<Value>(&cut).is_err(),
                "{text} cut to {cut} still parses"
            );
        }
    }
}
