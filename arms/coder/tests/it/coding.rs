use llm_sim::{ErrorConfig, SimConfig};
use serde_json::json;

use crate::{coder, scripted_llm};

#[tokio::test]
async fn filler_answers_are_reported_as_no_code() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let arm = coder(sim.base_url()).await;
    let answer = arm
        .execute(
            "generate_code",
            json!({"language": "rust", "instruction": "Write a function that adds two numbers."}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let out = &answer.body["output"];
    assert_eq!(out["language"], "rust");
    assert_eq!(out["syntax_check"], "no_code");
    assert_eq!(out["code_blocks"], json!([]));
    assert!(!out["answer"].as_str().unwrap().is_empty());
    assert_eq!(answer.body["confidence"], 0.2);
    assert!(answer.body["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    let explained = arm
        .execute(
            "explain_code",
            json!({"language": "python", "instruction": "What does this do?", "code": "print(1)"}),
        )
        .await;
    assert_eq!(explained.status, 200);
    assert_eq!(explained.body["confidence"], 0.7);
    let metrics = arm.metrics().await;
    for capability in ["generate_code", "explain_code"] {
        let series = format!(
            "octollm_arm_executions_total{{arm=\"coder\",capability=\"{capability}\",status=\"ok\"}} 1"
        );
        assert!(metrics.contains(&series), "{series}");
    }
}

#[tokio::test]
async fn fenced_code_is_checked() {
    let base = scripted_llm(
        "Here it is:\n```rust\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n```\nAnd config:\n```json\n{\"port\": 8003,}\n```\n",
    )
    .await;
    let arm = coder(base).await;
    let answer = arm
        .execute(
            "generate_code",
            json!({"language": "rust", "instruction": "Add."}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let out = &answer.body["output"];
    assert_eq!(out["syntax_check"], "failed");
    assert_eq!(out["code_blocks"][0]["language"], "rust");
    assert_eq!(out["code_blocks"][0]["check"], "well_formed");
    assert_eq!(out["code_blocks"][1]["check"], "malformed");
    assert!(
        out["code_blocks"][1]["issue"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(answer.body["confidence"], 0.3);
    assert_eq!(answer.body["usage"]["prompt_tokens"], 10);

    let good = scripted_llm("```python\ndef f(x):\n    return [x]\n```").await;
    let arm = coder(good).await;
    let answer = arm
        .execute(
            "generate_code",
            json!({"language": "python", "instruction": "A list."}),
        )
        .await;
    assert_eq!(answer.body["output"]["syntax_check"], "passed");
    assert_eq!(answer.body["confidence"], 0.8);
}

#[tokio::test]
async fn bad_input_is_422_and_llm_failures_are_502() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let arm = coder(sim.base_url()).await;
    for (capability, input, field) in [
        (
            "explain_code",
            json!({"language": "rust", "instruction": "Explain."}),
            "input.code",
        ),
        (
            "explain_code",
            json!({"language": "rust", "instruction": "Explain.", "code": "  "}),
            "input.code",
        ),
        (
            "generate_code",
            json!({"language": "rust; rm -rf /", "instruction": "x"}),
            "input.language",
        ),
        (
            "generate_code",
            json!({"language": "rust", "instruction": " "}),
            "input.instruction",
        ),
        ("generate_code", json!({"language": "rust"}), "input"),
        (
            "plan",
            json!({"language": "rust", "instruction": "x"}),
            "capability",
        ),
    ] {
        let answer = arm.execute(capability, input.clone()).await;
        assert_eq!(answer.status, 422, "{input}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{input}");
    }

    sim.set_config(SimConfig {
        errors: ErrorConfig {
            rate: 1.0,
            kinds: "500=1".parse().unwrap(),
            ..ErrorConfig::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    let answer = arm
        .execute(
            "generate_code",
            json!({"language": "go", "instruction": "Hello."}),
        )
        .await;
    assert_eq!(answer.status, 502);
    assert!(answer.body["detail"].as_str().unwrap().contains("500"));
}
