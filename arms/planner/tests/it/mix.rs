//! The planner accepts every plan shape llm-sim's plan mix can answer.

use llm_sim::{PlanConfig, PlanLinks, PlanShape, SimConfig, plans};
use serde_json::{Value, json};

use crate::{planner, sim};

fn shape(steps: &[&str], depends_on: PlanLinks) -> PlanShape {
    PlanShape {
        weight: 1.0,
        steps: steps.iter().map(|s| (*s).to_owned()).collect(),
        depends_on,
    }
}

/// Plans `count` goals and returns the plans.
async fn plan_all(config: PlanConfig, count: usize) -> Vec<Value> {
    let sim = sim(SimConfig {
        plans: config,
        ..SimConfig::default()
    })
    .await;
    let arm = planner(&sim).await;
    let schema = arm_kit::Schema::compile(planner_arm::plan::schema()).unwrap();
    let mut out = Vec::new();
    for i in 0..count {
        let answer = arm
            .execute("plan", json!({"goal": format!("Load-test goal {i}")}))
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        // First time right: the mix answers valid plans.
        assert_eq!(answer.body["confidence"], 0.9, "{:?}", answer.body);
        let plan = answer.body["output"].clone();
        assert!(schema.is_valid(&plan), "{plan}");
        out.push(plan);
    }
    out
}

fn capabilities(plan: &Value) -> Vec<&str> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["capability"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_capability_and_dependency_shape_is_accepted() {
    let every: Vec<&str> = planner_arm::plan::step_capabilities();
    let mut shapes: Vec<PlanShape> = every
        .iter()
        .map(|c| shape(&[c], PlanLinks::Chain))
        .collect();
    let seven = [
        "retrieve",
        "generate_code",
        "explain_code",
        "validate",
        "safety_check",
        "run_command",
        "retrieve",
    ];
    for links in [PlanLinks::Chain, PlanLinks::Parallel, PlanLinks::FanIn] {
        shapes.push(shape(&seven, links));
    }
    for (i, wanted) in shapes.iter().enumerate() {
        let config = PlanConfig {
            seed: i as u64,
            shapes: vec![wanted.clone()],
            commands: plans::SUPPORTED_COMMANDS.map(str::to_owned).to_vec(),
            file: Some("notes.txt".into()),
        };
        for plan in plan_all(config, 2).await {
            assert_eq!(capabilities(&plan), wanted.steps, "{plan}");
            let steps = plan["steps"].as_array().unwrap();
            let n = steps.len();
            for (j, step) in steps.iter().enumerate() {
                let expected: Vec<String> = match wanted.depends_on {
                    PlanLinks::Chain if j > 0 => vec![format!("s{j}")],
                    PlanLinks::FanIn if j + 1 == n => (1..n).map(|d| format!("s{d}")).collect(),
                    _ => vec![],
                };
                assert_eq!(step["depends_on"], json!(expected), "{plan}");
            }
        }
    }
}

#[tokio::test]
async fn the_documented_mix_reaches_the_coder_and_the_executor() {
    let config: PlanConfig = serde_json::from_value(json!({
        "seed": 42,
        "shapes": [
            {"weight": 3, "steps": ["retrieve"]},
            {"weight": 1, "steps": ["retrieve", "generate_code"]},
            {"weight": 1, "steps": ["run_command"]}
        ]
    }))
    .unwrap();
    let plans = plan_all(config, 30).await;
    let mut seen: Vec<Vec<&str>> = plans.iter().map(capabilities).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            vec!["retrieve"],
            vec!["retrieve", "generate_code"],
            vec!["run_command"]
        ]
    );
    for plan in &plans {
        if capabilities(plan) == ["run_command"] {
            let action = plan["steps"][0]["action"].as_str().unwrap();
            let program = action.split(' ').next().unwrap();
            assert!(plans::DEFAULT_COMMANDS.contains(&program), "{action}");
        }
    }
}
