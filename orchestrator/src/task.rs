//! The task domain: states, priorities, budgets, and validation of submissions.

use serde::{Deserialize, Serialize};
use service_kit::FieldError;
use service_kit::text::{has_nul, is_blank};
use sha2::Digest;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

// The bounds below are the arms' input schemas, seen from a submission: a
// task that passes them cannot fail `step_rejected` at an arm for its own
// text after spending its budget (what the plan adds is the planner's).

/// The judge arm's `criteria.description` holds 5,000 characters.
pub const JUDGE_DESCRIPTION_MAX_CHARS: usize = 5_000;
/// Without acceptance criteria the judge is asked whether "The output
/// achieves the goal: <goal>" (30 + goal ≤ 5,000), and the coder's
/// `instruction` (10,000) carries the step's action and inputs besides the
/// goal; 4,000 fits both with room (the planner's own bound is 10,000).
pub const GOAL_MAX_CHARS: usize = 4_000;
/// The planner's `context` holds 50,000 characters.
pub const CONTEXT_MAX_CHARS: usize = 50_000;
/// The planner's `context` is the task's context, then the constraints and
/// the acceptance criteria as `- item` lines under a heading each; all of
/// it must fit the planner's 50,000.
pub const PLANNER_CONTEXT_MAX_CHARS: usize = 50_000;
pub const LIST_MAX_ITEMS: usize = 32;
pub const LIST_ITEM_MAX_CHARS: usize = 2_000;
/// The task's acceptance criteria, one per line, become the judge's
/// description together with the plan's own criteria; 4,000 leaves the plan
/// 1,000 of the judge's 5,000.
pub const ACCEPTANCE_CRITERIA_MAX_TOTAL_CHARS: usize = 4_000;
/// Headings the planner's brief puts before the lists (arms flow).
const CONSTRAINTS_HEADING_CHARS: usize = "\nConstraints:\n".len();
const CRITERIA_HEADING_CHARS: usize = "\nAcceptance criteria:\n".len();
/// Each list item becomes `- item\n` in the planner's brief.
const LIST_LINE_OVERHEAD_CHARS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Timeout,
    Cancelled,
    Rejected,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Timeout,
        Self::Cancelled,
        Self::Rejected,
    ];
    pub const TERMINAL: [TaskStatus; 5] = [
        Self::Succeeded,
        Self::Failed,
        Self::Timeout,
        Self::Cancelled,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Stored as a small integer so the claim index sorts by urgency.
    pub fn rank(self) -> i16 {
        match self {
            Self::Low => 0,
            Self::Medium => 1,
            Self::High => 2,
            Self::Critical => 3,
        }
    }

    pub fn from_rank(rank: i16) -> Self {
        match rank {
            i16::MIN..=0 => Self::Low,
            1 => Self::Medium,
            2 => Self::High,
            _ => Self::Critical,
        }
    }
}

/// What kind of work a task is. A closed set: it is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    #[default]
    General,
    Code,
    Research,
    Analysis,
}

impl TaskType {
    pub const ALL: [TaskType; 4] = [Self::General, Self::Code, Self::Research, Self::Analysis];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Code => "code",
            Self::Research => "research",
            Self::Analysis => "analysis",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Limits on what one task may spend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Budget {
    pub max_tokens: i32,
    pub max_time_seconds: i32,
    pub max_cost_usd: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_tokens: 10_000,
            max_time_seconds: 300,
            max_cost_usd: 1.0,
        }
    }
}

/// `POST /v1/tasks` body. Text fields never hold U+0000 (NUL). Besides the
/// bounds of each field, the context with the constraints and acceptance
/// criteria (each as a `- item` line, under a heading per list) must fit
/// the planner's 50,000 characters, reported on `context` (or on the first
/// list when there is no context).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    /// What to achieve: 1–4,000 characters, not blank.
    #[schema(schema_with = goal_schema)]
    pub goal: String,
    /// Background material: at most 50,000 characters.
    #[serde(default)]
    #[schema(schema_with = context_schema)]
    pub context: Option<String>,
    /// Rules the answer must respect (at most 32, each 1–2,000 characters, not blank).
    #[serde(default)]
    #[schema(schema_with = constraints_schema)]
    pub constraints: Vec<String>,
    /// How to tell the answer is right (same limits as constraints, and at
    /// most 4,000 characters together, one per line).
    #[serde(default)]
    #[schema(schema_with = acceptance_criteria_schema)]
    pub acceptance_criteria: Vec<String>,
    #[serde(default)]
    pub task_type: TaskType,
    #[serde(default)]
    pub budget: BudgetInput,
    #[serde(default)]
    pub priority: Priority,
}

/// Budget as submitted; missing fields take the defaults.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    /// 1–100,000; default 10,000.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub max_tokens: Option<i64>,
    /// 1–3,600; default 300.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 3_600)]
    pub max_time_seconds: Option<i64>,
    /// 0–100; default 1.0.
    #[schema(minimum = 0, maximum = 100)]
    pub max_cost_usd: Option<f64>,
}

/// A JSON Schema `integer`: any number without a fractional part, so
/// `3600.0` is as good as `3600`.
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Int(n)) => Ok(Some(n)),
        Some(Number::Float(f)) if f.fract() == 0.0 && f.abs() < LIMIT => Ok(Some(f as i64)),
        Some(Number::Float(f)) => Err(serde::de::Error::custom(format!(
            "expected an integer, got {f}"
        ))),
    }
}

fn text_schema(description: &str, max: usize, pattern: String, nullable: bool) -> ObjectBuilder {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .description(Some(description))
        .max_length(Some(max))
        .pattern(Some(pattern))
}

fn goal_schema() -> utoipa::openapi::Object {
    text_schema(
        "What to achieve: 1–4,000 characters, not blank, no NUL.",
        GOAL_MAX_CHARS,
        service_kit::text::not_blank_no_nul_pattern(),
        false,
    )
    .min_length(Some(1))
    .build()
}

fn context_schema() -> utoipa::openapi::Object {
    text_schema(
        "Background material: at most 50,000 characters, no NUL.",
        CONTEXT_MAX_CHARS,
        service_kit::text::no_nul_pattern(),
        true,
    )
    .build()
}

fn list_schema(description: &str) -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .description(Some(description))
        .max_items(Some(LIST_MAX_ITEMS))
        .items(
            text_schema(
                "1–2,000 characters, not blank, no NUL.",
                LIST_ITEM_MAX_CHARS,
                service_kit::text::not_blank_no_nul_pattern(),
                false,
            )
            .min_length(Some(1)),
        )
        .build()
}

fn constraints_schema() -> utoipa::openapi::Array {
    list_schema("Rules the answer must respect: at most 32.")
}

fn acceptance_criteria_schema() -> utoipa::openapi::Array {
    list_schema(
        "How to tell the answer is right: at most 32, and at most 4,000 characters together, one per line.",
    )
}

/// A submission that passed validation.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub goal: String,
    pub context: Option<String>,
    pub constraints: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    pub task_type: TaskType,
    pub budget: Budget,
    pub priority: Priority,
}

impl NewTask {
    /// SHA-256 of the validated request, defaults filled in: a retry of a
    /// submission has its digest, a different request under the same
    /// idempotency key does not. Kept with the key; never the text itself.
    pub fn digest(&self) -> [u8; 32] {
        let canonical = serde_json::json!({
            "goal": self.goal,
            "context": self.context,
            "constraints": self.constraints,
            "acceptance_criteria": self.acceptance_criteria,
            "task_type": self.task_type.as_str(),
            "budget": self.budget,
            "priority": self.priority.as_str(),
        });
        sha2::Sha256::digest(canonical.to_string().as_bytes()).into()
    }
}

impl SubmitTask {
    /// Checks every bound and reports every violation at once, by field.
    pub fn validate(self) -> Result<NewTask, Vec<FieldError>> {
        let mut errors = Vec::new();
        let goal_chars = self.goal.chars().count();
        if is_blank(&self.goal) {
            errors.push(FieldError::new("goal", "must not be empty or blank"));
        } else if goal_chars > GOAL_MAX_CHARS {
            errors.push(FieldError::new(
                "goal",
                format!("must be at most {GOAL_MAX_CHARS} characters (got {goal_chars})"),
            ));
        } else if has_nul(&self.goal) {
            errors.push(nul_error("goal"));
        }
        let context_chars = self.context.as_deref().map_or(0, |c| c.chars().count());
        if context_chars > CONTEXT_MAX_CHARS {
            errors.push(FieldError::new(
                "context",
                format!("must be at most {CONTEXT_MAX_CHARS} characters (got {context_chars})"),
            ));
        } else if self.context.as_deref().is_some_and(has_nul) {
            errors.push(nul_error("context"));
        }
        let constraints = check_list("constraints", &self.constraints, &mut errors);
        let criteria = check_list(
            "acceptance_criteria",
            &self.acceptance_criteria,
            &mut errors,
        );
        let criteria_joined = (criteria + self.acceptance_criteria.len()).saturating_sub(1);
        if criteria_joined > ACCEPTANCE_CRITERIA_MAX_TOTAL_CHARS {
            errors.push(FieldError::new(
                "acceptance_criteria",
                format!(
                    "must be at most {ACCEPTANCE_CRITERIA_MAX_TOTAL_CHARS} characters together, \
                     one per line (got {criteria_joined}): they become the judge's description"
                ),
            ));
        }
        let brief = context_chars
            + list_lines(
                constraints,
                self.constraints.len(),
                CONSTRAINTS_HEADING_CHARS,
            )
            + list_lines(
                criteria,
                self.acceptance_criteria.len(),
                CRITERIA_HEADING_CHARS,
            );
        // A context over its own bound is reported once, above.
        if brief > PLANNER_CONTEXT_MAX_CHARS && context_chars <= CONTEXT_MAX_CHARS {
            let field = if context_chars > 0 || self.constraints.is_empty() {
                "context"
            } else {
                "constraints"
            };
            errors.push(FieldError::new(
                field,
                format!(
                    "context, constraints and acceptance_criteria make a planner brief of \
                     {brief} characters; at most {PLANNER_CONTEXT_MAX_CHARS}"
                ),
            ));
        }

        let defaults = Budget::default();
        let max_tokens = check_range(
            "budget.max_tokens",
            self.budget.max_tokens,
            defaults.max_tokens,
            1..=100_000,
            &mut errors,
        );
        let max_time_seconds = check_range(
            "budget.max_time_seconds",
            self.budget.max_time_seconds,
            defaults.max_time_seconds,
            1..=3_600,
            &mut errors,
        );
        let max_cost_usd = match self.budget.max_cost_usd {
            None => defaults.max_cost_usd,
            Some(v) if v.is_finite() && (0.0..=100.0).contains(&v) => v,
            Some(v) => {
                errors.push(FieldError::new(
                    "budget.max_cost_usd",
                    format!("must be between 0 and 100 (got {v})"),
                ));
                defaults.max_cost_usd
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewTask {
            goal: self.goal,
            context: self.context,
            constraints: self.constraints,
            acceptance_criteria: self.acceptance_criteria,
            task_type: self.task_type,
            budget: Budget {
                max_tokens,
                max_time_seconds,
                max_cost_usd,
            },
            priority: self.priority,
        })
    }
}

impl NewTask {
    /// Everything the submitter wrote and the task passes on, field by
    /// field (`goal`, `context`, `constraints[i]`, `acceptance_criteria[i]`),
    /// for the reflex layer to screen.
    pub fn screened_fields(&self) -> Vec<(String, &str)> {
        let mut fields = vec![("goal".to_owned(), self.goal.as_str())];
        if let Some(context) = &self.context {
            fields.push(("context".to_owned(), context.as_str()));
        }
        for (name, items) in [
            ("constraints", &self.constraints),
            ("acceptance_criteria", &self.acceptance_criteria),
        ] {
            for (index, item) in items.iter().enumerate() {
                fields.push((format!("{name}[{index}]"), item.as_str()));
            }
        }
        fields
    }
}

fn nul_error(field: impl Into<String>) -> FieldError {
    FieldError::new(field, "must not contain U+0000 (NUL)")
}

/// Characters `items` (of `chars` in all) add to the planner's brief.
fn list_lines(chars: usize, items: usize, heading: usize) -> usize {
    if items == 0 {
        0
    } else {
        heading + chars + items * LIST_LINE_OVERHEAD_CHARS
    }
}

/// Checks a list's bounds; returns its characters in all.
fn check_list(field: &str, items: &[String], errors: &mut Vec<FieldError>) -> usize {
    if items.len() > LIST_MAX_ITEMS {
        errors.push(FieldError::new(
            field,
            format!(
                "must have at most {LIST_MAX_ITEMS} items (got {})",
                items.len()
            ),
        ));
    }
    let mut total = 0;
    for (index, item) in items.iter().enumerate() {
        let chars = item.chars().count();
        total += chars;
        if is_blank(item) {
            errors.push(FieldError::new(
                format!("{field}[{index}]"),
                "must not be blank",
            ));
        } else if chars > LIST_ITEM_MAX_CHARS {
            errors.push(FieldError::new(
                format!("{field}[{index}]"),
                format!("must be at most {LIST_ITEM_MAX_CHARS} characters (got {chars})"),
            ));
        } else if has_nul(item) {
            errors.push(nul_error(format!("{field}[{index}]")));
        }
    }
    total
}

fn check_range(
    field: &str,
    value: Option<i64>,
    default: i32,
    range: std::ops::RangeInclusive<i32>,
    errors: &mut Vec<FieldError>,
) -> i32 {
    let Some(value) = value else {
        return default;
    };
    match i32::try_from(value) {
        Ok(v) if range.contains(&v) => v,
        _ => {
            errors.push(FieldError::new(
                field,
                format!(
                    "must be between {} and {} (got {value})",
                    range.start(),
                    range.end()
                ),
            ));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(json: serde_json::Value) -> Result<NewTask, Vec<FieldError>> {
        serde_json::from_value::<SubmitTask>(json)
            .map_err(|e| vec![FieldError::new("json", e.to_string())])?
            .validate()
    }

    fn fields(result: Result<NewTask, Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn defaults_apply() {
        let task = submit(serde_json::json!({"goal": "say hi"})).unwrap();
        assert_eq!(task.budget, Budget::default());
        assert_eq!(task.priority, Priority::Medium);
        assert_eq!(task.task_type, TaskType::General);
    }

    #[test]
    fn every_violated_bound_is_named() {
        let result = submit(serde_json::json!({
            "goal": "   ",
            "context": "x".repeat(CONTEXT_MAX_CHARS + 1),
            "constraints": [""],
            "budget": {"max_tokens": 0, "max_time_seconds": 3601, "max_cost_usd": -0.5}
        }));
        assert_eq!(
            fields(result),
            [
                "goal",
                "context",
                "constraints[0]",
                "budget.max_tokens",
                "budget.max_time_seconds",
                "budget.max_cost_usd"
            ]
        );
    }

    #[test]
    fn bounds_are_inclusive() {
        let task = submit(serde_json::json!({
            "goal": "é".repeat(GOAL_MAX_CHARS),
            "budget": {"max_tokens": 100000, "max_time_seconds": 1, "max_cost_usd": 0}
        }))
        .unwrap();
        assert_eq!(task.budget.max_tokens, 100_000);
        assert_eq!(
            fields(submit(
                serde_json::json!({"goal": "é".repeat(GOAL_MAX_CHARS + 1)})
            )),
            ["goal"]
        );
        assert_eq!(
            fields(submit(
                serde_json::json!({"goal": "x", "budget": {"max_tokens": 4294967297_i64}})
            )),
            ["budget.max_tokens"]
        );
    }

    #[test]
    fn nul_anywhere_is_refused_by_field() {
        let nul = "Summarise the report\u{0} please";
        assert_eq!(fields(submit(serde_json::json!({"goal": nul}))), ["goal"]);
        assert_eq!(
            fields(submit(serde_json::json!({"goal": "x", "context": nul}))),
            ["context"]
        );
        assert_eq!(
            fields(submit(serde_json::json!({
                "goal": "x", "constraints": ["fine", nul], "acceptance_criteria": [nul]
            }))),
            ["constraints[1]", "acceptance_criteria[0]"]
        );
    }

    #[test]
    fn what_the_arms_take_bounds_the_whole_task() {
        // The judge's description: the criteria, one per line.
        let item = "c".repeat(1_000);
        let four = serde_json::json!({"goal": "x", "acceptance_criteria": [item, item, item, "c".repeat(997)]});
        assert!(submit(four).is_ok(), "exactly 4,000 with the newlines");
        let over = serde_json::json!({"goal": "x", "acceptance_criteria": [item, item, item, "c".repeat(998)]});
        assert_eq!(fields(submit(over)), ["acceptance_criteria"]);
        // The planner's context: context plus "- item" lines under headings.
        let context = "x".repeat(CONTEXT_MAX_CHARS - CONSTRAINTS_HEADING_CHARS - 2_003);
        let fits = serde_json::json!({"goal": "x", "context": context, "constraints": ["y".repeat(2_000)]});
        let task = submit(fits).unwrap();
        let brief = format!(
            "{}\nConstraints:\n- {}\n",
            task.context.as_deref().unwrap(),
            task.constraints[0]
        );
        assert_eq!(brief.chars().count(), PLANNER_CONTEXT_MAX_CHARS);
        let over = serde_json::json!({"goal": "x", "context": format!("{context}x"), "constraints": ["y".repeat(2_000)]});
        assert_eq!(fields(submit(over)), ["context"]);
        // Without a context, the constraints are to blame.
        let many: Vec<String> = (0..26).map(|_| "z".repeat(2_000)).collect();
        assert_eq!(
            fields(submit(
                serde_json::json!({"goal": "x", "constraints": many})
            )),
            ["constraints"]
        );
        // The judge is asked about the goal itself when there are no criteria.
        assert!(
            "The output achieves the goal: ".len() + GOAL_MAX_CHARS <= JUDGE_DESCRIPTION_MAX_CHARS
        );
    }

    #[test]
    fn screened_fields_name_everything_passed_on() {
        let task = submit(serde_json::json!({
            "goal": "g", "context": "c", "constraints": ["k0", "k1"], "acceptance_criteria": ["a0"]
        }))
        .unwrap();
        let names: Vec<String> = task.screened_fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "goal",
                "context",
                "constraints[0]",
                "constraints[1]",
                "acceptance_criteria[0]"
            ]
        );
    }

    #[test]
    fn integral_numbers_are_integers() {
        let task = submit(serde_json::json!({
            "goal": "x", "budget": {"max_tokens": 500.0, "max_time_seconds": 3600.0}
        }))
        .unwrap();
        assert_eq!(
            (task.budget.max_tokens, task.budget.max_time_seconds),
            (500, 3_600)
        );
        for bad in [
            serde_json::json!(1.5),
            serde_json::json!("7"),
            serde_json::json!(1e300),
        ] {
            let result = submit(serde_json::json!({"goal": "x", "budget": {"max_tokens": bad}}));
            assert!(result.is_err(), "{bad}");
        }
        // An exact integer beyond the bound is named like any other.
        assert_eq!(
            fields(submit(
                serde_json::json!({"goal": "x", "budget": {"max_tokens": 1e15}})
            )),
            ["budget.max_tokens"]
        );
    }

    #[test]
    fn status_round_trips() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        assert!(TaskStatus::Timeout.is_terminal());
        assert!(!TaskStatus::Running.is_terminal());
    }
}
