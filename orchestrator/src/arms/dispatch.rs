//! `ArmCaller`: sends one step to an arm, with per-attempt timeouts bounded
//! by the task's deadline, jittered retries on the same instance, then
//! failover to the next-best instance with the same capability. When no
//! instance can be called (all unavailable, circuits open, or all tried),
//! the step waits up to `route_wait` for one to come back before it fails:
//! a crash and restart delays tasks instead of failing them.
//!
//! Who is at fault decides what happens next (arm-protocol's contract):
//! a 4xx answer is the step's fault (its input), so it is neither retried
//! nor sent elsewhere; 5xx, 408, 429, timeouts, refused connections and
//! unreadable answers are the arm's fault, so they count against its circuit
//! and success rate, are retried, and then fail over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arm_protocol::{CAPABILITY_TOKEN_HEADER, ExecuteRequest, ExecuteResponse};
use serde_json::Value;

use super::metrics::ArmMetrics;
use super::registry::{ArmInstance, ArmRegistry};
use crate::pipeline::StepError;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// How often a step waiting for a callable instance looks again (ranking
/// reads in-memory state only).
const ROUTE_POLL: Duration = Duration::from_millis(200);
/// Longest error detail quoted from an arm's problem answer.
const MAX_DETAIL: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// No instance could take the step (none available, or all failed).
    #[error("no arm could take capability {capability:?}: {detail}")]
    Routing { capability: String, detail: String },
    /// An arm refused the step's input (4xx).
    #[error("arm {arm} refused the step ({status}): {detail}")]
    Rejected {
        arm: String,
        status: u16,
        detail: String,
    },
}

/// The seam's view of an arm failure: the same text, and the kind
/// (`routing_error`, `step_rejected`) stored on the task.
impl From<ArmError> for StepError {
    fn from(error: ArmError) -> Self {
        let message = error.to_string();
        match error {
            ArmError::Routing { .. } => StepError::Routing(message),
            ArmError::Rejected { .. } => StepError::Rejected(message),
        }
    }
}

/// A step's answer and who gave it.
pub struct Dispatched {
    pub response: ExecuteResponse,
    pub arm: String,
}

/// How one attempt ended when it did not succeed.
enum AttemptError {
    Rejected {
        status: u16,
        detail: String,
    },
    /// The arm's fault; `timeout` picks the metric status.
    Failed {
        reason: String,
        timeout: bool,
    },
}

pub struct ArmCaller {
    registry: Arc<ArmRegistry>,
    http: reqwest::Client,
    metrics: ArmMetrics,
    attempt_timeout: Duration,
    retries: u32,
    route_wait: Duration,
}

impl ArmCaller {
    pub fn new(
        registry: Arc<ArmRegistry>,
        internal: crate::InternalHttp,
        metrics: ArmMetrics,
        attempt_timeout: Duration,
        retries: u32,
        route_wait: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            registry,
            http: internal.client().build()?,
            metrics,
            attempt_timeout,
            retries,
            route_wait,
        })
    }

    pub fn registry(&self) -> &ArmRegistry {
        &self.registry
    }

    /// Runs `request` on the best instance for its capability, retrying and
    /// failing over as the module doc says. `capability_token` is sent in
    /// [`CAPABILITY_TOKEN_HEADER`] when given.
    pub async fn dispatch(
        &self,
        request: &ExecuteRequest,
        capability_token: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<Dispatched, ArmError> {
        let capability = request.capability.as_str();
        let mut tried: Vec<String> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        // The route wait starts when nothing is callable, not when the step
        // starts: a call cut off after seconds (its arm died under it) still
        // waits the whole cool-down and probe for the arm to come back.
        let mut wait_until = None;
        loop {
            let ranked = match self.registry.rank(capability, &tried) {
                Ok(ranked) => ranked,
                Err(why) => {
                    let now = tokio::time::Instant::now();
                    let wait_until =
                        *wait_until.get_or_insert((now + self.route_wait).min(deadline));
                    if now >= wait_until {
                        failures.push(why);
                        break;
                    }
                    // Nothing callable now: look again shortly, every
                    // instance a candidate again (one that failed may be
                    // back; its circuit decides).
                    tried.clear();
                    tokio::time::sleep_until((now + ROUTE_POLL).min(wait_until)).await;
                    continue;
                }
            };
            let Some(arm) = ranked.into_iter().next() else {
                break;
            };
            tried.push(arm.label().to_owned());
            let mut last = String::new();
            let mut attempts = 0;
            for retry in 0..=self.retries {
                if !arm.breaker.allow() {
                    self.count(&arm, "circuit_open");
                    last = "circuit open".into();
                    break;
                }
                attempts += 1;
                match self
                    .attempt(&arm, request, capability_token, deadline)
                    .await
                {
                    Ok(response) => {
                        arm.breaker.record_success();
                        arm.record_outcome(true);
                        return Ok(Dispatched {
                            response,
                            arm: arm.label().to_owned(),
                        });
                    }
                    Err(AttemptError::Rejected { status, detail }) => {
                        arm.breaker.record_success();
                        arm.record_outcome(true);
                        return Err(ArmError::Rejected {
                            arm: arm.label().to_owned(),
                            status,
                            detail,
                        });
                    }
                    Err(AttemptError::Failed { reason, .. }) => {
                        arm.breaker.record_failure();
                        arm.record_outcome(false);
                        tracing::warn!(arm = arm.label(), capability, attempt = attempts, %reason, "arm call failed");
                        last = reason;
                    }
                }
                if retry < self.retries {
                    let delay = llm_client::backoff_delay(
                        BACKOFF_BASE,
                        BACKOFF_CAP,
                        retry + 1,
                        &mut rand::rng(),
                    );
                    tokio::time::sleep_until((tokio::time::Instant::now() + delay).min(deadline))
                        .await;
                }
            }
            failures.push(if attempts == 0 {
                format!("{} {last}", arm.label())
            } else {
                format!("{} failed {attempts} attempt(s), last: {last}", arm.label())
            });
        }
        Err(ArmError::Routing {
            capability: capability.to_owned(),
            detail: failures.join("; "),
        })
    }

    fn count(&self, arm: &ArmInstance, status: &str) {
        self.metrics
            .requests
            .with_label_values(&[arm.label(), status])
            .inc();
    }

    async fn attempt(
        &self,
        arm: &Arc<ArmInstance>,
        request: &ExecuteRequest,
        capability_token: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<ExecuteResponse, AttemptError> {
        let _in_flight = arm.in_flight();
        let timeout = self
            .attempt_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let started = Instant::now();
        let result = self.send(arm, request, capability_token, timeout).await;
        self.metrics
            .duration
            .with_label_values(&[arm.label()])
            .observe(started.elapsed().as_secs_f64());
        let status = match &result {
            Ok(_) => "ok",
            Err(AttemptError::Failed { timeout: true, .. }) => "timeout",
            Err(_) => "error",
        };
        self.count(arm, status);
        result
    }

    async fn send(
        &self,
        arm: &ArmInstance,
        request: &ExecuteRequest,
        capability_token: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecuteResponse, AttemptError> {
        if timeout.is_zero() {
            return Err(AttemptError::Failed {
                reason: "the task's deadline has passed".into(),
                timeout: true,
            });
        }
        let mut call = self
            .http
            .post(format!("{}/v1/execute", arm.endpoint.url))
            .bearer_auth(&*self.registry.auth_token())
            .timeout(timeout)
            .json(request);
        if let Some(token) = capability_token {
            call = call.header(CAPABILITY_TOKEN_HEADER, token);
        }
        if let Some(traceparent) = service_kit::telemetry::current_traceparent() {
            call = call.header("traceparent", traceparent);
        }
        let failed = |e: reqwest::Error| AttemptError::Failed {
            timeout: e.is_timeout(),
            reason: if e.is_timeout() {
                format!("no answer within {}ms", timeout.as_millis())
            } else if e.is_connect() {
                "cannot connect".into()
            } else {
                format!("transport error: {e}")
            },
        };
        let response = call.send().await.map_err(failed)?;
        let status = response.status();
        if status.is_success() {
            let body = response.bytes().await.map_err(failed)?;
            return serde_json::from_slice(&body).map_err(|e| AttemptError::Failed {
                reason: format!("unreadable answer: {e}"),
                timeout: false,
            });
        }
        let detail = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|p| {
                p.get("detail")
                    .or_else(|| p.get("title"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let detail: String = detail.chars().take(MAX_DETAIL).collect();
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(AttemptError::Rejected {
                status: status.as_u16(),
                detail,
            })
        } else {
            Err(AttemptError::Failed {
                reason: if detail.is_empty() {
                    format!("answered {status}")
                } else {
                    format!("answered {status}: {detail}")
                },
                timeout: status.as_u16() == 504 || status.as_u16() == 408,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_errors_keep_their_text_and_stored_kind_at_the_seam() {
        let routing = ArmError::Routing {
            capability: "retrieve".into(),
            detail: "retriever circuit open".into(),
        };
        let rejected = ArmError::Rejected {
            arm: "retriever".into(),
            status: 422,
            detail: "query is too vague".into(),
        };
        for (error, kind) in [(routing, "routing_error"), (rejected, "step_rejected")] {
            let text = error.to_string();
            let step = StepError::from(error);
            assert_eq!(step.kind(), kind);
            assert_eq!(step.to_string(), text);
        }
    }
}
