//! The plan mix: the planner's plan schema answered with plans of the
//! configured shapes, in a sequence fixed by the seed.

use llm_sim::{PlanConfig, PlanLinks, PlanShape, SimConfig, StructuredConfig};
use serde_json::{Value, json};

use crate::{chat_body, metrics_text, post_chat};

/// The plan schema as the planner arm sends it (`arms/planner/src/plan.rs`).
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
                    "capability": {"type": "string", "enum": [
                        "retrieve", "generate_code", "explain_code", "validate",
                        "safety_check", "run_command"]},
                    "acceptance_criteria": {"type": "array", "minItems": 1, "maxItems": 10, "items": text},
                    "depends_on": {"type": "array", "maxItems": 6, "items": text}
                }
            }
        }}
    })
}

fn plan_request() -> Value {
    let mut body = chat_body(Some(2048));
    body["response_format"] = json!({
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": planner_schema(), "strict": true}
    });
    body
}

async fn plan(sim: &llm_sim::SimHandle) -> Value {
    let resp = post_chat(sim, &plan_request()).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap()
}

fn capabilities(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["capability"].as_str().unwrap().to_owned())
        .collect()
}

fn the_mix() -> Value {
    json!({"plans": {"seed": 42, "shapes": [
        {"weight": 3, "steps": ["retrieve"]},
        {"weight": 1, "steps": ["retrieve", "generate_code"]},
        {"weight": 1, "steps": ["run_command"]}
    ]}})
}

#[tokio::test]
async fn default_settings_keep_the_single_retrieve_step() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    for _ in 0..3 {
        let plan = plan(&sim).await;
        assert_eq!(capabilities(&plan), ["retrieve"]);
        assert_eq!(plan["steps"][0]["depends_on"], json!([]));
    }
}

#[tokio::test]
async fn the_mix_is_set_through_the_admin_api_and_repeats_by_seed() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/admin/config", sim.origin());
    let resp = client.put(&url).json(&the_mix()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let now: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["plans"]["seed"], 42);
    assert_eq!(now["plans"]["shapes"][1]["depends_on"], "chain");
    assert_eq!(
        now["plans"]["commands"],
        json!(["echo", "date", "ls", "wc"])
    );

    let mut first = Vec::new();
    for _ in 0..40 {
        first.push(plan(&sim).await);
    }
    let shapes: Vec<Vec<String>> = first.iter().map(capabilities).collect();
    for wanted in [
        vec!["retrieve"],
        vec!["retrieve", "generate_code"],
        vec!["run_command"],
    ] {
        assert!(
            shapes.contains(&wanted.iter().map(|s| (*s).to_owned()).collect()),
            "{wanted:?} never drawn in {shapes:?}"
        );
    }
    for plan in &first {
        let steps = plan["steps"].as_array().unwrap();
        for (i, step) in steps.iter().enumerate() {
            assert_eq!(step["id"], format!("s{}", i + 1));
            let expected = if i == 0 {
                json!([])
            } else {
                json!([format!("s{i}")])
            };
            assert_eq!(step["depends_on"], expected);
            assert!(!step["acceptance_criteria"][0].as_str().unwrap().is_empty());
            if step["capability"] == "run_command" {
                let action = step["action"].as_str().unwrap();
                let program = action.split(' ').next().unwrap();
                assert!(["echo", "date", "ls", "wc"].contains(&program), "{action}");
            }
        }
    }

    // The same settings again (or a reset to them) give the same sequence;
    // so does a second simulator with the same seed.
    let resp = client.put(&url).json(&the_mix()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut again = Vec::new();
    for _ in 0..40 {
        again.push(plan(&sim).await);
    }
    assert_eq!(again, first);
    let config: SimConfig = serde_json::from_value(the_mix()).unwrap();
    let twin = llm_sim::spawn(config).await.unwrap();
    assert_eq!(plan(&twin).await, first[0]);
    twin.reset();
    assert_eq!(plan(&twin).await, first[0]);

    // Another seed, another sequence.
    let mut other = the_mix();
    other["plans"]["seed"] = json!(43);
    client.put(&url).json(&other).send().await.unwrap();
    let mut third = Vec::new();
    for _ in 0..40 {
        third.push(plan(&sim).await);
    }
    assert_ne!(third, first);

    let metrics = metrics_text(&sim).await;
    let count = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0)
    };
    let plans: u64 = (0..3)
        .map(|i| count(&format!("llm_sim_plans_total{{shape=\"{i}\"}}")))
        .sum();
    assert_eq!(plans, 120, "{metrics}");
    let retrieve_steps = first
        .iter()
        .chain(&again)
        .chain(&third)
        .flat_map(capabilities)
        .filter(|c| c == "retrieve")
        .count() as u64;
    assert_eq!(
        count("llm_sim_plan_steps_total{capability=\"retrieve\"}"),
        retrieve_steps
    );
}

#[tokio::test]
async fn commands_and_file_are_configurable_and_other_schemas_are_untouched() {
    let sim = llm_sim::spawn(SimConfig {
        plans: PlanConfig {
            seed: 1,
            shapes: vec![PlanShape {
                weight: 1.0,
                steps: vec![
                    "run_command".into(),
                    "run_command".into(),
                    "safety_check".into(),
                ],
                depends_on: PlanLinks::FanIn,
            }],
            commands: vec!["wc".into()],
            file: Some("inbox/notes.txt".into()),
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let plan = plan(&sim).await;
    assert_eq!(plan["steps"][0]["action"], "wc -c inbox/notes.txt");
    assert_eq!(plan["steps"][1]["action"], "wc -c inbox/notes.txt");
    assert_eq!(plan["steps"][2]["depends_on"], json!(["s1", "s2"]));

    // A json_schema that is not a plan still gets its plain instance.
    let mut other = chat_body(None);
    other["response_format"] = json!({"type": "json_schema", "json_schema": {
        "name": "plan",
        "schema": {"type": "object", "required": ["verdict"],
                   "properties": {"verdict": {"type": "string", "enum": ["pass", "fail"]}}}
    }});
    let body: Value = post_chat(&sim, &other).await.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        r#"{"verdict":"pass"}"#
    );
}

#[tokio::test]
async fn invalid_answers_still_apply_to_plans() {
    let mut config: SimConfig = serde_json::from_value(the_mix()).unwrap();
    config.structured = StructuredConfig { invalid_rate: 0.5 };
    let sim = llm_sim::spawn(config).await.unwrap();
    let mut parsed = Vec::new();
    for _ in 0..4 {
        let body: Value = post_chat(&sim, &plan_request()).await.json().await.unwrap();
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        parsed.push(serde_json::from_str::<Value>(text).is_ok());
    }
    assert_eq!(parsed, [false, true, false, true]);
}
