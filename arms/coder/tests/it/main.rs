//! The coder over real HTTP, in-process, against llm-sim and a scripted LLM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod coding;

use arm_kit::testing::TestArm;
use arm_protocol::ArmKind;
use coder_arm::Coder;
use llm_client::{LlmClient, LlmConfig};

/// A coder whose LLM is at `base_url`.
pub async fn coder(base_url: String) -> TestArm {
    arm_kit::testing::serve(ArmKind::Coder, move |kit| {
        let mut config = LlmConfig::new(base_url);
        config.backoff_base = std::time::Duration::from_millis(1);
        config.backoff_cap = std::time::Duration::from_millis(5);
        LlmClient::new(config, kit.registry()).map(|llm| arm_kit::ArmParts::new(Coder::new(llm)))
    })
    .await
}

/// An OpenAI-compatible endpoint that always answers `content`; returns its base URL.
pub async fn scripted_llm(content: &'static str) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || async move {
            axum::Json(serde_json::json!({
                "id": "scripted", "object": "chat.completion", "created": 0, "model": "sim-1",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}
