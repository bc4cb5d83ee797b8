//! Plans: answers to the planner arm's plan schema drawn from a seeded,
//! weighted mix of plan shapes, so that tasks reach every arm under load.
//!
//! A request gets a plan when its `response_format.json_schema.schema` has
//! the plan's shape ([`plan_fields`]): an object whose `steps` property is an
//! array of objects with `id`, `action`, `capability` and `depends_on`
//! properties. (The name the planner sends, `plan`, is not relied on: a
//! schema that looks different gets the plain schema instance, and one that
//! looks the same gets a plan whatever it is called.)
//!
//! The k-th plan answered since the settings were last set is a pure
//! function of `(seed, k)`: the shape is drawn by weight, and each
//! `run_command` step's command from `commands`, with a [`SplitMix64`]
//! generator seeded from both. Concurrent requests may take the numbers in
//! any order, but the sequence of plans is always the same.

use arm_protocol::capability;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    config::{ConfigError, invalid},
    structured,
};

/// Most steps of a plan shape (the planner arm's limit).
pub const MAX_PLAN_STEPS: usize = 7;

/// Most shapes in a mix.
pub const MAX_SHAPES: usize = 64;

/// Most entries of [`PlanConfig::commands`].
pub const MAX_COMMANDS: usize = 32;

/// Longest [`PlanConfig::file`].
pub const MAX_FILE_CHARS: usize = 128;

/// The commands a `run_command` step may name: the executor arm's default
/// allow-list. Each gets fixed, harmless arguments ([`command_line`]).
pub const SUPPORTED_COMMANDS: [&str; 9] = [
    "echo", "cat", "ls", "wc", "head", "tail", "date", "uname", "sleep",
];

/// The default of [`PlanConfig::commands`]: the programs both the executor
/// arm (`EXECUTOR_ALLOWED_COMMANDS`) and the orchestrator
/// (`OCTOLLM_EXECUTOR_COMMANDS`) allow by default, so every generated
/// `run_command` step actually runs.
pub const DEFAULT_COMMANDS: [&str; 4] = ["echo", "date", "ls", "wc"];

/// The capabilities a plan step may name: every one but `plan`.
pub fn step_capabilities() -> impl Iterator<Item = &'static str> {
    capability::ALL
        .into_iter()
        .filter(|c| *c != capability::PLAN)
}

/// The plan mix (`plans` in the settings JSON).
///
/// With no `shapes` (the default) plan requests get the plain schema
/// instance like any other structured request: one `retrieve` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// Seed of the draws; the same seed gives the same sequence of plans.
    pub seed: u64,
    /// The shapes, drawn by weight.
    pub shapes: Vec<PlanShape>,
    /// Programs a `run_command` step may run, drawn uniformly (a name listed
    /// twice is drawn twice as often). Each must be in [`SUPPORTED_COMMANDS`].
    pub commands: Vec<String>,
    /// A file inside the executor's working directory that `cat`, `wc`,
    /// `head` and `tail` read; without one they read their (empty) stdin.
    pub file: Option<String>,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            seed: 0,
            shapes: Vec::new(),
            commands: DEFAULT_COMMANDS.map(str::to_owned).to_vec(),
            file: None,
        }
    }
}

/// One plan shape: the capabilities of its steps, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanShape {
    /// Relative weight (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Capability of each step, 1 to [`MAX_PLAN_STEPS`] of them.
    pub steps: Vec<String>,
    /// How the steps depend on each other (default `chain`).
    #[serde(default)]
    pub depends_on: PlanLinks,
}

fn one() -> f64 {
    1.0
}

/// Dependencies between the steps of a shape; always on earlier steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanLinks {
    /// Each step depends on the one before it.
    #[default]
    Chain,
    /// No step depends on another.
    Parallel,
    /// The last step depends on every other; the others on none.
    FanIn,
}

impl PlanLinks {
    /// The 0-based indexes step `i` of `n` depends on.
    fn of(self, i: usize, n: usize) -> Vec<usize> {
        match self {
            PlanLinks::Chain if i > 0 => vec![i - 1],
            PlanLinks::FanIn if i + 1 == n => (0..i).collect(),
            _ => Vec::new(),
        }
    }
}

impl PlanConfig {
    /// Whether plan requests get plans from the mix.
    pub fn enabled(&self) -> bool {
        !self.shapes.is_empty()
    }

    /// Rejects unknown capabilities and commands, bad weights and files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shapes.len() > MAX_SHAPES {
            return Err(invalid(format!(
                "plans.shapes has {} shapes, above the maximum of {MAX_SHAPES}",
                self.shapes.len()
            )));
        }
        let mut total = 0.0;
        let mut runs_commands = false;
        for (i, shape) in self.shapes.iter().enumerate() {
            if !(shape.weight.is_finite() && shape.weight >= 0.0) {
                return Err(invalid(format!(
                    "plans.shapes[{i}].weight must be a non-negative number, got {}",
                    shape.weight
                )));
            }
            total += shape.weight;
            if shape.steps.is_empty() || shape.steps.len() > MAX_PLAN_STEPS {
                return Err(invalid(format!(
                    "plans.shapes[{i}].steps must have 1 to {MAX_PLAN_STEPS} steps, got {}",
                    shape.steps.len()
                )));
            }
            for step in &shape.steps {
                if !step_capabilities().any(|c| c == step) {
                    return Err(invalid(format!(
                        "plans.shapes[{i}].steps names {step:?}; a step's capability is one of {}",
                        step_capabilities().collect::<Vec<_>>().join(", ")
                    )));
                }
                runs_commands |= step == capability::RUN_COMMAND;
            }
        }
        if !self.shapes.is_empty() && total <= 0.0 {
            return Err(invalid("every weight in plans.shapes is 0"));
        }
        if self.commands.len() > MAX_COMMANDS {
            return Err(invalid(format!(
                "plans.commands has {} entries, above the maximum of {MAX_COMMANDS}",
                self.commands.len()
            )));
        }
        if let Some(bad) = self
            .commands
            .iter()
            .find(|c| !SUPPORTED_COMMANDS.contains(&c.as_str()))
        {
            return Err(invalid(format!(
                "plans.commands names {bad:?}; supported: {}",
                SUPPORTED_COMMANDS.join(", ")
            )));
        }
        if runs_commands && self.commands.is_empty() {
            return Err(invalid(
                "plans.shapes has run_command steps but plans.commands is empty",
            ));
        }
        if let Some(file) = &self.file {
            check_file(file)?;
        }
        Ok(())
    }

    /// The plan numbered `k` (1-based, since the settings were set) for
    /// `schema`, whose shape [`plan_fields`] has checked; with the index of
    /// the shape drawn. `None` when the mix is empty.
    pub fn plan(&self, schema: &Value, k: u64) -> Option<(Value, usize)> {
        let mut rng = SplitMix64::for_draw(self.seed, k);
        let index = pick(&self.shapes, &mut rng)?;
        let shape = &self.shapes[index];
        let mut plan = match structured::instance(schema) {
            Value::Object(object) => object,
            _ => Map::new(),
        };
        let steps_schema = steps_items(schema);
        let n = shape.steps.len();
        let steps: Vec<Value> = shape
            .steps
            .iter()
            .enumerate()
            .map(|(i, capability)| {
                let mut step = match steps_schema.map(|s| structured::instance_within(schema, s, i))
                {
                    Some(Value::Object(object)) => object,
                    _ => Map::new(),
                };
                let action = if capability == capability::RUN_COMMAND {
                    let command = &self.commands[rng.below(self.commands.len())];
                    command_line(command, self.file.as_deref(), i + 1)
                } else {
                    action_of(capability).to_owned()
                };
                step.insert("id".into(), json!(format!("s{}", i + 1)));
                step.insert("action".into(), json!(action));
                step.insert("capability".into(), json!(capability));
                let criteria = steps_schema
                    .and_then(|s| s.get("properties"))
                    .is_some_and(|p| p.get("acceptance_criteria").is_some());
                if criteria {
                    step.insert(
                        "acceptance_criteria".into(),
                        json!([criterion_of(capability)]),
                    );
                }
                let depends_on: Vec<String> = shape
                    .depends_on
                    .of(i, n)
                    .into_iter()
                    .map(|d| format!("s{}", d + 1))
                    .collect();
                step.insert("depends_on".into(), json!(depends_on));
                Value::Object(step)
            })
            .collect();
        plan.insert("steps".into(), Value::Array(steps));
        Some((Value::Object(plan), index))
    }
}

/// A relative path without `..`, shell syntax or a leading `-`.
fn check_file(file: &str) -> Result<(), ConfigError> {
    let ok = !file.is_empty()
        && file.chars().count() <= MAX_FILE_CHARS
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !file.starts_with('/')
        && !file.starts_with('-')
        && file.split('/').all(|part| !part.is_empty() && part != "..");
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "plans.file must be a relative path inside the working directory \
             (1-{MAX_FILE_CHARS} characters of A-Z a-z 0-9 . _ - /, no `..`, \
             not starting with - or /), got {file:?}"
        )))
    }
}

/// The command line of a `run_command` step: `command` with harmless
/// arguments every layer accepts (no shell syntax, no absolute path, no
/// `..`, and for `date` display flags only).
pub fn command_line(command: &str, file: Option<&str>, step: usize) -> String {
    let with_file = |base: &str| match file {
        Some(file) => format!("{base} {file}"),
        None => base.to_owned(),
    };
    match command {
        "echo" => format!("echo llm-sim plan step {step}"),
        "date" => "date -u".to_owned(),
        "uname" => "uname -s".to_owned(),
        "sleep" => "sleep 0.1".to_owned(),
        "wc" => with_file("wc -c"),
        "head" => with_file("head -n 5"),
        "tail" => with_file("tail -n 5"),
        "cat" => with_file("cat"),
        other => other.to_owned(),
    }
}

fn action_of(capability: &str) -> &'static str {
    match capability {
        capability::RETRIEVE => "Find documents in the knowledge base relevant to the goal",
        capability::GENERATE_CODE => "Write a short function that does what the goal asks",
        capability::EXPLAIN_CODE => "Explain what the code from the earlier steps does",
        capability::VALIDATE => "Check the earlier output against the goal",
        capability::SAFETY_CHECK => {
            "Screen the earlier output for personal data, secrets and prompt injection"
        }
        _ => "Carry out the goal",
    }
}

fn criterion_of(capability: &str) -> &'static str {
    match capability {
        capability::RETRIEVE => "At least one relevant document is found",
        capability::GENERATE_CODE => "The code compiles and does what the goal asks",
        capability::EXPLAIN_CODE => "The explanation covers what the code does",
        capability::VALIDATE => "Every criterion is judged",
        capability::SAFETY_CHECK => "The text is judged safe or unsafe",
        capability::RUN_COMMAND => "The command runs and prints its output",
        _ => "The step is done",
    }
}

/// Whether `schema` has the plan's shape: `properties.steps` is an array
/// whose items (possibly a local `$ref`) have `id`, `action`, `capability`
/// and `depends_on` properties.
pub fn plan_fields(schema: &Value) -> bool {
    steps_items(schema)
        .and_then(|items| items.get("properties"))
        .and_then(Value::as_object)
        .is_some_and(|properties| {
            ["id", "action", "capability", "depends_on"]
                .iter()
                .all(|field| properties.contains_key(*field))
        })
}

/// The schema of one step: `properties.steps.items`, local `$ref`s followed.
fn steps_items(schema: &Value) -> Option<&Value> {
    let steps = follow(schema, schema.get("properties")?.get("steps")?)?;
    if steps.get("type").and_then(Value::as_str) != Some("array") {
        return None;
    }
    follow(schema, steps.get("items")?)
}

/// `value`, or what its local `$ref` points at (a few hops at most).
fn follow<'a>(root: &'a Value, mut value: &'a Value) -> Option<&'a Value> {
    for _ in 0..8 {
        match value.get("$ref").and_then(Value::as_str) {
            None => return Some(value),
            Some(reference) => {
                let pointer = reference.strip_prefix('#')?;
                value = if pointer.is_empty() {
                    root
                } else {
                    root.pointer(pointer)?
                };
            }
        }
    }
    None
}

/// The index of a shape drawn by weight.
fn pick(shapes: &[PlanShape], rng: &mut SplitMix64) -> Option<usize> {
    let total: f64 = shapes.iter().map(|s| s.weight).sum();
    if shapes.is_empty() || total <= 0.0 {
        return None;
    }
    let mut x = rng.unit() * total;
    for (i, shape) in shapes.iter().enumerate() {
        if x < shape.weight {
            return Some(i);
        }
        x -= shape.weight;
    }
    // Rounding at the top end: the last shape with weight.
    shapes.iter().rposition(|s| s.weight > 0.0)
}

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and its output is
/// fixed by its definition, so a seed means the same plans in every build.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The generator of draw number `k` under `seed`.
    pub fn for_draw(seed: u64, k: u64) -> Self {
        let mut base = SplitMix64(seed);
        let mixed = base.next_u64() ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut rng = SplitMix64(mixed);
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The planner arm's plan schema, as it sends it.
    fn planner_schema() -> Value {
        let text = json!({"type": "string", "pattern": "\\S"});
        json!({
            "type": "object", "additionalProperties": false, "required": ["steps"],
            "properties": {"steps": {
                "type": "array", "minItems": 1, "maxItems": 7,
                "items": {
                    "type": "object", "additionalProperties": false,
                    "required": ["id", "action", "capability", "acceptance_criteria", "depends_on"],
                    "properties": {
                        "id": text, "action": text,
                        "capability": {"type": "string", "enum": step_capabilities().collect::<Vec<_>>()},
                        "acceptance_criteria": {"type": "array", "minItems": 1, "maxItems": 10, "items": text},
                        "depends_on": {"type": "array", "maxItems": 6, "items": text}
                    }
                }
            }}
        })
    }

    fn shape(weight: f64, steps: &[&str], depends_on: PlanLinks) -> PlanShape {
        PlanShape {
            weight,
            steps: steps.iter().map(|s| (*s).to_owned()).collect(),
            depends_on,
        }
    }

    fn mix() -> PlanConfig {
        PlanConfig {
            seed: 7,
            shapes: vec![
                shape(3.0, &["retrieve"], PlanLinks::Chain),
                shape(1.0, &["retrieve", "generate_code"], PlanLinks::Chain),
                shape(1.0, &["run_command"], PlanLinks::Chain),
            ],
            ..PlanConfig::default()
        }
    }

    #[test]
    fn splitmix_matches_its_reference_output() {
        // First outputs of SplitMix64 seeded with 1234567 (the published
        // reference values of the algorithm).
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn the_planner_schema_is_recognised_and_others_are_not() {
        assert!(plan_fields(&planner_schema()));
        let mut by_ref = planner_schema();
        let items = by_ref["properties"]["steps"]["items"].take();
        by_ref["$defs"] = json!({ "step": items });
        by_ref["properties"]["steps"]["items"] = json!({"$ref": "#/$defs/step"});
        assert!(plan_fields(&by_ref));
        let mut no_action = planner_schema();
        no_action["properties"]["steps"]["items"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("action");
        assert!(!plan_fields(&no_action));
        assert!(!plan_fields(&json!({"type": "object"})));
        assert!(!plan_fields(&json!(true)));
    }

    #[test]
    fn plans_follow_their_shape_and_point_backwards() {
        let schema = planner_schema();
        for links in [PlanLinks::Chain, PlanLinks::Parallel, PlanLinks::FanIn] {
            let config = PlanConfig {
                shapes: vec![shape(
                    1.0,
                    &["retrieve", "run_command", "generate_code", "validate"],
                    links,
                )],
                file: Some("notes.txt".into()),
                ..PlanConfig::default()
            };
            let (plan, index) = config.plan(&schema, 1).unwrap();
            assert_eq!(index, 0);
            let steps = plan["steps"].as_array().unwrap();
            let capabilities: Vec<&str> = steps
                .iter()
                .map(|s| s["capability"].as_str().unwrap())
                .collect();
            assert_eq!(
                capabilities,
                ["retrieve", "run_command", "generate_code", "validate"]
            );
            for (i, step) in steps.iter().enumerate() {
                assert_eq!(step["id"], format!("s{}", i + 1));
                assert_eq!(step["acceptance_criteria"].as_array().unwrap().len(), 1);
                for dependency in step["depends_on"].as_array().unwrap() {
                    let d: usize = dependency.as_str().unwrap()[1..].parse().unwrap();
                    assert!(d <= i, "{links:?}: step {} depends on s{d}", i + 1);
                }
            }
            let depends: Vec<Value> = steps.iter().map(|s| s["depends_on"].clone()).collect();
            let expected = match links {
                PlanLinks::Chain => json!([[], ["s1"], ["s2"], ["s3"]]),
                PlanLinks::Parallel => json!([[], [], [], []]),
                PlanLinks::FanIn => json!([[], [], [], ["s1", "s2", "s3"]]),
            };
            assert_eq!(Value::Array(depends), expected);
            let command = steps[1]["action"].as_str().unwrap();
            let program = command.split(' ').next().unwrap();
            assert!(DEFAULT_COMMANDS.contains(&program), "{command}");
            if program == "wc" {
                assert_eq!(command, "wc -c notes.txt");
            }
        }
    }

    #[test]
    fn the_sequence_depends_only_on_seed_and_number() {
        let schema = planner_schema();
        let run = |config: &PlanConfig| -> Vec<Value> {
            (1..=50)
                .map(|k| config.plan(&schema, k).unwrap().0)
                .collect()
        };
        let config = mix();
        assert_eq!(run(&config), run(&config.clone()));
        let other = PlanConfig { seed: 8, ..mix() };
        assert_ne!(run(&config), run(&other));
        // Plan 17 is plan 17, whatever was asked before it.
        assert_eq!(config.plan(&schema, 17), config.plan(&schema, 17));
    }

    #[test]
    fn shapes_are_drawn_by_weight_and_commands_uniformly() {
        let schema = planner_schema();
        let mut config = mix();
        config.commands = SUPPORTED_COMMANDS.map(str::to_owned).to_vec();
        let mut shapes = [0u32; 3];
        let mut programs = std::collections::BTreeMap::<String, u32>::new();
        for k in 1..=10_000 {
            let (plan, index) = config.plan(&schema, k).unwrap();
            shapes[index] += 1;
            if index == 2 {
                let action = plan["steps"][0]["action"].as_str().unwrap();
                *programs
                    .entry(action.split(' ').next().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        // Weights 3:1:1 -> 6000:2000:2000, within 5%.
        assert!((5_700..6_300).contains(&shapes[0]), "{shapes:?}");
        assert!((1_800..2_200).contains(&shapes[1]), "{shapes:?}");
        assert!((1_800..2_200).contains(&shapes[2]), "{shapes:?}");
        assert_eq!(programs.len(), SUPPORTED_COMMANDS.len(), "{programs:?}");
        assert!(
            programs.values().all(|n| (150..300).contains(n)),
            "{programs:?}"
        );
        // A zero weight is never drawn.
        config.shapes[0].weight = 0.0;
        assert!((1..=1000).all(|k| config.plan(&schema, k).unwrap().1 != 0));
    }

    #[test]
    fn command_lines_are_plain_words_inside_the_working_directory() {
        for command in SUPPORTED_COMMANDS {
            for file in [None, Some("data/notes.txt")] {
                let line = command_line(command, file, 3);
                assert!(line.starts_with(command), "{line}");
                for word in line.split(' ').skip(1) {
                    assert!(!word.starts_with('/') && !word.contains(".."), "{line}");
                    assert!(
                        word.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-./_".contains(c)),
                        "{line}"
                    );
                }
            }
        }
        assert_eq!(command_line("date", None, 1), "date -u");
        assert_eq!(command_line("wc", Some("a.txt"), 1), "wc -c a.txt");
        assert_eq!(command_line("wc", None, 1), "wc -c");
    }

    #[test]
    fn nonsense_mixes_are_rejected() {
        let bad = |mutate: fn(&mut PlanConfig)| {
            let mut config = mix();
            mutate(&mut config);
            config.validate().unwrap_err().0
        };
        assert!(bad(|c| c.shapes[0].steps = vec!["plan".into()]).contains("\"plan\""));
        assert!(bad(|c| c.shapes[0].steps = vec!["fly".into()]).contains("capability"));
        assert!(bad(|c| c.shapes[0].steps.clear()).contains("1 to 7"));
        assert!(bad(|c| c.shapes[0].steps = vec!["retrieve".into(); 8]).contains("1 to 7"));
        assert!(bad(|c| c.shapes[1].weight = -1.0).contains("weight"));
        assert!(bad(|c| c.shapes.iter_mut().for_each(|s| s.weight = 0.0)).contains("every weight"));
        assert!(bad(|c| c.commands = vec!["rm".into()]).contains("\"rm\""));
        assert!(bad(|c| c.commands.clear()).contains("commands is empty"));
        for file in [
            "/etc/passwd",
            "../x",
            "a/../../b",
            "-n",
            "a b",
            "x;y",
            "",
            "a//b",
        ] {
            let mut config = mix();
            config.file = Some(file.into());
            assert!(
                config.validate().unwrap_err().0.contains("plans.file"),
                "{file:?}"
            );
        }
        mix().validate().unwrap();
        PlanConfig::default().validate().unwrap();
        // Commands are only needed when a shape runs one.
        let mut no_commands = PlanConfig {
            shapes: vec![shape(1.0, &["retrieve"], PlanLinks::Chain)],
            ..PlanConfig::default()
        };
        no_commands.commands.clear();
        no_commands.validate().unwrap();
    }
}
