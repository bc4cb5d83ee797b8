//! A plan: its JSON Schema (the arm's output schema, and the structured
//! output asked of the LLM) and the rules a schema cannot say.
//!
//! Dependencies are *validated, then canonicalised*: each `depends_on`
//! entry must name an earlier step (by the id the LLM gave it); anything
//! else — a later step, the step itself, an unknown id, a duplicate id — is
//! an invalid plan (retried once, then a 502 naming the problem). A valid
//! plan's ids are then rewritten to `s1`…`sN` in order and its dependencies
//! mapped to them (duplicates dropped), so every plan the arm returns has
//! the same id scheme and is acyclic by construction.

use arm_protocol::capability;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Most steps in a plan.
pub const MAX_STEPS: usize = 7;
/// Most acceptance criteria of one step.
pub const MAX_CRITERIA: usize = 10;
/// Longest action, criterion or id, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// The capabilities a step may ask for: every one but `plan`.
pub fn step_capabilities() -> Vec<&'static str> {
    capability::ALL
        .into_iter()
        .filter(|c| *c != capability::PLAN)
        .collect()
}

/// The JSON Schema of a plan. Keywords stay within what OpenAI's strict
/// structured outputs accept (no string lengths: those are rules below).
pub fn schema() -> Value {
    let text = json!({"type": "string", "pattern": "\\S"});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["steps"],
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_STEPS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id", "action", "capability", "acceptance_criteria", "depends_on"],
                    "properties": {
                        "id": text,
                        "action": text,
                        "capability": {"type": "string", "enum": step_capabilities()},
                        "acceptance_criteria": {
                            "type": "array", "minItems": 1, "maxItems": MAX_CRITERIA, "items": text
                        },
                        "depends_on": {
                            "type": "array", "maxItems": MAX_STEPS - 1, "items": text
                        }
                    }
                }
            }
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub action: String,
    pub capability: String,
    pub acceptance_criteria: Vec<String>,
    pub depends_on: Vec<String>,
}

/// Checks a schema-valid plan against the rules and canonicalises it; the
/// error names the first broken rule (it is shown to the LLM on the retry).
pub fn check(value: Value) -> Result<Plan, String> {
    let plan: Plan = serde_json::from_value(value).map_err(|e| format!("not a plan: {e}"))?;
    if plan.steps.is_empty() || plan.steps.len() > MAX_STEPS {
        return Err(format!(
            "a plan has 1 to {MAX_STEPS} steps, not {}",
            plan.steps.len()
        ));
    }
    let allowed = step_capabilities();
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.trim()).collect();
    for (i, step) in plan.steps.iter().enumerate() {
        let n = i + 1;
        let texts = std::iter::once(&step.id)
            .chain(std::iter::once(&step.action))
            .chain(step.acceptance_criteria.iter());
        for text in texts {
            if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
                return Err(format!(
                    "step {n} has a blank text or one over {MAX_TEXT_CHARS} characters"
                ));
            }
        }
        if !allowed.contains(&step.capability.as_str()) {
            return Err(format!(
                "step {n} asks for capability {:?}; steps may use {}",
                step.capability,
                allowed.join(", ")
            ));
        }
        if ids[..i].contains(&ids[i]) {
            return Err(format!("step {n} repeats the id {:?}", ids[i]));
        }
        for dependency in &step.depends_on {
            let dependency = dependency.trim();
            if !ids[..i].contains(&dependency) {
                let why = if dependency == ids[i] {
                    "itself"
                } else if ids[i..].contains(&dependency) {
                    "a later step"
                } else {
                    "no step of the plan"
                };
                return Err(format!(
                    "step {n} ({:?}) depends on {dependency:?}, which is {why}; depends_on may only name earlier steps",
                    ids[i]
                ));
            }
        }
    }
    Ok(canonical(&plan, &ids))
}

/// Ids `s1`…`sN`, dependencies mapped to them in plan order, duplicates dropped.
fn canonical(plan: &Plan, ids: &[&str]) -> Plan {
    let new_id = |old: &str| {
        let index = ids.iter().position(|id| *id == old.trim()).unwrap_or(0);
        format!("s{}", index + 1)
    };
    Plan {
        steps: plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let mut depends_on: Vec<String> = Vec::new();
                for dependency in &step.depends_on {
                    let id = new_id(dependency);
                    if !depends_on.contains(&id) {
                        depends_on.push(id);
                    }
                }
                depends_on.sort_by_key(|id| id[1..].parse::<usize>().unwrap_or(0));
                Step {
                    id: format!("s{}", i + 1),
                    action: step.action.trim().to_owned(),
                    capability: step.capability.clone(),
                    acceptance_criteria: step
                        .acceptance_criteria
                        .iter()
                        .map(|c| c.trim().to_owned())
                        .collect(),
                    depends_on,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn step(id: &str, depends_on: &[&str]) -> Value {
        json!({
            "id": id,
            "action": format!("do {id}"),
            "capability": "retrieve",
            "acceptance_criteria": ["done"],
            "depends_on": depends_on,
        })
    }

    #[test]
    fn dependencies_are_canonicalised() {
        let plan = check(json!({"steps": [
            step("find", &[]),
            step("code", &["find"]),
            step("check", &["code", "find", "code"]),
        ]}))
        .unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2", "s3"]);
        assert_eq!(plan.steps[1].depends_on, ["s1"]);
        assert_eq!(plan.steps[2].depends_on, ["s1", "s2"]);
        assert_eq!(plan.steps[2].action, "do check");
    }

    #[test]
    fn dependencies_must_point_backwards() {
        for (steps, needle) in [
            (vec![step("a", &["a"])], "which is itself"),
            (
                vec![step("a", &["b"]), step("b", &[])],
                "which is a later step",
            ),
            (vec![step("a", &[]), step("b", &["zz"])], "which is no step"),
            (vec![step("a", &[]), step("a", &[])], "repeats the id"),
        ] {
            let error = check(json!({ "steps": steps })).unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn texts_and_capabilities_are_checked() {
        let mut blank = step("a", &[]);
        blank["action"] = json!("   ");
        assert!(
            check(json!({ "steps": [blank] }))
                .unwrap_err()
                .contains("blank")
        );
        let mut planning = step("a", &[]);
        planning["capability"] = json!("plan");
        assert!(
            check(json!({ "steps": [planning] }))
                .unwrap_err()
                .contains("capability \"plan\"")
        );
        assert!(check(json!({"steps": []})).is_err());
    }

    #[test]
    fn the_schema_offers_every_capability_but_plan() {
        let schema = schema();
        let offered = &schema["properties"]["steps"]["items"]["properties"]["capability"]["enum"];
        assert_eq!(offered.as_array().unwrap().len(), capability::ALL.len() - 1);
        assert!(!offered.as_array().unwrap().contains(&json!("plan")));
        arm_kit::Schema::compile(schema).unwrap();
    }
}
