//! The task domain: states, priorities, budgets, and validation of submissions.

use serde::{Deserialize, Serialize};
use service_kit::FieldError;
use utoipa::ToSchema;

pub const GOAL_MAX_CHARS: usize = 10_000;
pub const CONTEXT_MAX_CHARS: usize = 50_000;
pub const LIST_MAX_ITEMS: usize = 32;
pub const LIST_ITEM_MAX_CHARS: usize = 2_000;

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

/// `POST /v1/tasks` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    /// What to achieve: 1–10,000 characters, not blank.
    pub goal: String,
    /// Background material: at most 50,000 characters.
    #[serde(default)]
    pub context: Option<String>,
    /// Rules the answer must respect (at most 32, each at most 2,000 characters).
    #[serde(default)]
    pub constraints: Vec<String>,
    /// How to tell the answer is right (same limits as constraints).
    #[serde(default)]
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
    pub max_tokens: Option<i64>,
    /// 1–3,600; default 300.
    pub max_time_seconds: Option<i64>,
    /// 0–100; default 1.0.
    pub max_cost_usd: Option<f64>,
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

impl SubmitTask {
    /// Checks every bound and reports every violation at once, by field.
    pub fn validate(self) -> Result<NewTask, Vec<FieldError>> {
        let mut errors = Vec::new();
        let goal_chars = self.goal.chars().count();
        if self.goal.trim().is_empty() {
            errors.push(FieldError::new("goal", "must not be empty or blank"));
        } else if goal_chars > GOAL_MAX_CHARS {
            errors.push(FieldError::new(
                "goal",
                format!("must be at most {GOAL_MAX_CHARS} characters (got {goal_chars})"),
            ));
        }
        if let Some(context) = &self.context {
            let chars = context.chars().count();
            if chars > CONTEXT_MAX_CHARS {
                errors.push(FieldError::new(
                    "context",
                    format!("must be at most {CONTEXT_MAX_CHARS} characters (got {chars})"),
                ));
            }
        }
        check_list("constraints", &self.constraints, &mut errors);
        check_list(
            "acceptance_criteria",
            &self.acceptance_criteria,
            &mut errors,
        );

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
    /// Everything the submitter wrote, for the reflex layer to screen.
    pub fn screening_text(&self) -> String {
        let mut text = self.goal.clone();
        for part in self
            .context
            .iter()
            .chain(&self.constraints)
            .chain(&self.acceptance_criteria)
        {
            text.push('\n');
            text.push_str(part);
        }
        text
    }
}

fn check_list(field: &str, items: &[String], errors: &mut Vec<FieldError>) {
    if items.len() > LIST_MAX_ITEMS {
        errors.push(FieldError::new(
            field,
            format!(
                "must have at most {LIST_MAX_ITEMS} items (got {})",
                items.len()
            ),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        let chars = item.chars().count();
        if item.trim().is_empty() {
            errors.push(FieldError::new(
                format!("{field}[{index}]"),
                "must not be blank",
            ));
        } else if chars > LIST_ITEM_MAX_CHARS {
            errors.push(FieldError::new(
                format!("{field}[{index}]"),
                format!("must be at most {LIST_ITEM_MAX_CHARS} characters (got {chars})"),
            ));
        }
    }
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
    fn status_round_trips() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        assert!(TaskStatus::Timeout.is_terminal());
        assert!(!TaskStatus::Running.is_terminal());
    }
}
