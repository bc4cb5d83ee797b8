//! An OpenAI-compatible chat-completions client for OctoLLM services.
//!
//! Pointing it at OpenAI, vLLM, Ollama or llm-sim is configuration only
//! ([`LlmArgs`] / [`LlmConfig`]). Every call is retried on 429, 5xx,
//! timeouts and connection errors with full-jitter exponential backoff
//! (honouring `Retry-After`), never past the caller's deadline, and is
//! accounted in the `octollm_llm_api_*` metrics: attempts, tokens, cost from
//! a price table, and per-attempt duration. [`LlmClient::chat_stream`] reads
//! the answer as server-sent events and observes the time to first token
//! (`octollm_llm_time_to_first_token_seconds`). The model is chosen per call
//! ([`ChatRequest::with_model`]) and priced from the table by that name. A
//! delay simulated by llm-sim comes back in [`ChatResponse::simulated_delay`].
//! Prompt text is never logged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), llm_client::LlmError> {
//! use llm_client::{ChatMessage, ChatRequest, LlmClient, LlmConfig};
//!
//! let registry = prometheus::Registry::new();
//! let client = LlmClient::new(LlmConfig::new("http://127.0.0.1:8090/v1"), &registry)?;
//! let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
//! let answer = client
//!     .chat(ChatRequest::new(vec![ChatMessage::user("Plan the task.")]), Some(deadline))
//!     .await?;
//! # let _ = answer.cost_usd;
//! # Ok(()) }
//! ```

mod client;
mod config;
mod error;
mod metrics;
mod price;

pub use client::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, MAX_RETRY_AFTER, Role,
    SIMULATED_DELAY_HEADER, Usage, backoff_delay,
};
pub use config::{ApiKey, LlmArgs, LlmConfig};
pub use error::LlmError;
pub use metrics::{DURATION_BUCKETS, TTFT_BUCKETS};
pub use price::{BUILTIN_PRICES, ModelPrice, PriceTable};
