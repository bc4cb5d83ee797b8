//! `ArmRegistry`: the configured arm instances, what each serves, whether it
//! is up, and how well it has been doing; and the routing score that picks
//! one for a step.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use arm_protocol::ArmDescription;
use service_kit::OutboundToken;
use tokio_util::sync::CancellationToken;

use super::config::ArmEndpoint;
use super::metrics::ArmMetrics;
use crate::circuit::{CircuitBreaker, CircuitState};

/// Weight of the newest outcome in the success-rate EWMA: about the last
/// ten calls matter.
const SUCCESS_EWMA_ALPHA: f64 = 0.2;
/// Score lost per cost tier above 1.
const COST_TIER_WEIGHT: f64 = 0.05;
/// Score lost per call in flight on the instance, up to [`MAX_LOAD_PENALTY`].
const LOAD_WEIGHT: f64 = 0.01;
const MAX_LOAD_PENALTY: f64 = 0.1;
/// Longest wait for one health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What routing knows about one instance at the moment of choosing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmSnapshot {
    /// It lists the capability in its `/v1/capabilities`.
    pub serves: bool,
    /// Its last health probes succeeded.
    pub available: bool,
    pub circuit: CircuitState,
    /// Its circuit would admit a call now (closed, or a trial is due).
    pub admits: bool,
    /// EWMA of call outcomes, 1.0 = every recent call answered.
    pub success_rate: f64,
    /// 1 (no LLM) to 3 (LLM calls), from its description.
    pub cost_tier: u8,
    pub in_flight: usize,
}

/// The routing score of an instance for a step; `None` when it cannot take it.
///
/// An instance is a candidate only if it serves the capability, its last
/// health probe succeeded and its circuit admits a call. Among candidates,
///
/// `score = success_rate × circuit_weight − 0.05 × (cost_tier − 1) − min(0.01 × in_flight, 0.1)`
///
/// where `circuit_weight` is 1 for a closed circuit and 0.5 when the call
/// would be a half-open trial. Recent success dominates: an instance that
/// keeps failing sinks below a healthy one whatever its cost; between
/// equally healthy instances the cheaper tier wins, then the less loaded
/// one. Ties keep configuration order.
pub fn score(arm: &ArmSnapshot) -> Option<f64> {
    if !(arm.serves && arm.available && arm.admits) {
        return None;
    }
    let circuit_weight = match arm.circuit {
        CircuitState::Closed => 1.0,
        CircuitState::HalfOpen | CircuitState::Open => 0.5,
    };
    let cost = COST_TIER_WEIGHT * f64::from(arm.cost_tier.clamp(1, 3) - 1);
    #[allow(clippy::cast_precision_loss)]
    let load = (LOAD_WEIGHT * arm.in_flight as f64).min(MAX_LOAD_PENALTY);
    Some(arm.success_rate.clamp(0.0, 1.0) * circuit_weight - cost - load)
}

/// One configured arm instance and its live state.
pub struct ArmInstance {
    pub endpoint: ArmEndpoint,
    pub breaker: CircuitBreaker,
    available: AtomicBool,
    description: RwLock<Option<ArmDescription>>,
    success_rate: Mutex<f64>,
    in_flight: AtomicUsize,
    metrics: ArmMetrics,
}

impl ArmInstance {
    pub fn label(&self) -> &str {
        &self.endpoint.label
    }

    fn snapshot(&self, capability: &str) -> ArmSnapshot {
        let description = self
            .description
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        ArmSnapshot {
            serves: description
                .as_ref()
                .is_some_and(|d| d.capabilities.iter().any(|c| c == capability)),
            available: self.available.load(Ordering::Relaxed),
            circuit: self.breaker.state(),
            admits: self.breaker.admits(),
            success_rate: *self
                .success_rate
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            cost_tier: description.as_ref().map_or(3, |d| d.cost_tier),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Feeds a call's outcome into the success rate: `true` when the arm
    /// answered (even a 4xx: the step was at fault, not the arm).
    pub fn record_outcome(&self, answered: bool) {
        let mut rate = self
            .success_rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sample = if answered { 1.0 } else { 0.0 };
        *rate = SUCCESS_EWMA_ALPHA * sample + (1.0 - SUCCESS_EWMA_ALPHA) * *rate;
    }

    /// Counts a call in flight until the guard drops.
    pub fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn set_available(&self, up: bool) {
        self.available.store(up, Ordering::Relaxed);
        self.metrics
            .available
            .with_label_values(&[self.label()])
            .set(i64::from(up));
    }
}

impl std::fmt::Debug for ArmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmInstance")
            .field("label", &self.endpoint.label)
            .field("url", &self.endpoint.url)
            .finish_non_exhaustive()
    }
}

pub struct InFlight(Arc<ArmInstance>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why an instance was not a candidate, for error messages.
fn exclusion(arm: &ArmSnapshot) -> &'static str {
    if !arm.available {
        "unavailable"
    } else if !arm.serves {
        "does not serve it"
    } else {
        CIRCUIT_OPEN
    }
}

const CIRCUIT_OPEN: &str = "circuit open";

pub struct ArmRegistry {
    arms: Vec<Arc<ArmInstance>>,
    http: reqwest::Client,
    token: OutboundToken,
}

impl ArmRegistry {
    pub fn new(
        endpoints: Vec<ArmEndpoint>,
        internal: crate::InternalHttp,
        token: OutboundToken,
        metrics: &ArmMetrics,
        circuit_failures: u32,
        circuit_cool_down: Duration,
    ) -> Result<Self, reqwest::Error> {
        let arms = endpoints
            .into_iter()
            .map(|endpoint| {
                let gauge = metrics
                    .circuit_state
                    .with_label_values(&[endpoint.label.as_str()]);
                Arc::new(ArmInstance {
                    breaker: CircuitBreaker::new(circuit_failures, circuit_cool_down, gauge),
                    endpoint,
                    available: AtomicBool::new(false),
                    description: RwLock::new(None),
                    success_rate: Mutex::new(1.0),
                    in_flight: AtomicUsize::new(0),
                    metrics: metrics.clone(),
                })
            })
            .collect();
        Ok(Self {
            arms,
            http: internal.client().timeout(PROBE_TIMEOUT).build()?,
            token,
        })
    }

    pub fn arms(&self) -> &[Arc<ArmInstance>] {
        &self.arms
    }

    /// Candidates for `capability`, best first, leaving out `skip` (labels
    /// already tried for this step). The error explains an empty answer.
    pub fn rank(&self, capability: &str, skip: &[String]) -> Result<Vec<Arc<ArmInstance>>, String> {
        let mut scored = Vec::new();
        let mut excluded = Vec::new();
        for arm in self
            .arms
            .iter()
            .filter(|a| !skip.iter().any(|s| s == a.label()))
        {
            let snapshot = arm.snapshot(capability);
            match score(&snapshot) {
                Some(score) => scored.push((score, arm.clone())),
                None if snapshot.serves
                    || arm.endpoint.kind.capabilities().contains(&capability) =>
                {
                    let why = exclusion(&snapshot);
                    if why == CIRCUIT_OPEN {
                        // A call it would have had, refused by its circuit.
                        arm.metrics
                            .requests
                            .with_label_values(&[arm.label(), "circuit_open"])
                            .inc();
                    }
                    excluded.push(format!("{} {why}", arm.label()));
                }
                None => {}
            }
        }
        if scored.is_empty() {
            return Err(if excluded.is_empty() {
                "no configured arm serves it".to_owned()
            } else {
                excluded.join(", ")
            });
        }
        // Stable: equal scores keep configuration order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(scored.into_iter().map(|(_, arm)| arm).collect())
    }

    /// The credential to present to the arms now (it follows its file).
    pub fn auth_token(&self) -> Arc<str> {
        self.token.get()
    }

    /// Probes every instance now, then every `interval` until `shutdown`.
    pub async fn keep_probing(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            futures::future::join_all(self.arms.iter().map(|arm| self.probe(arm))).await;
        }
    }

    /// `/ready` and `/v1/capabilities`: both must answer for the instance to
    /// be available. A successful probe also stands in for the half-open
    /// trial of an open circuit whose cool-down has passed, so a recovered
    /// arm's circuit closes even when no step happens to need it.
    async fn probe(&self, arm: &Arc<ArmInstance>) {
        let base = &arm.endpoint.url;
        let ready = self.http.get(format!("{base}/ready")).send();
        let described = self
            .http
            .get(format!("{base}/v1/capabilities"))
            .bearer_auth(&*self.token.get())
            .send();
        let (ready, described) = tokio::join!(ready, described);
        let ready = ready.is_ok_and(|r| r.status().is_success());
        let description = match described {
            Ok(r) if r.status().is_success() => r.json::<ArmDescription>().await.ok(),
            _ => None,
        };
        let was_up = arm.available.load(Ordering::Relaxed);
        let up = ready && description.is_some();
        if let Some(description) = description {
            *arm.description
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(description);
        }
        arm.set_available(up);
        if up != was_up {
            if up {
                tracing::info!(arm = arm.label(), "arm available");
            } else {
                tracing::warn!(
                    arm = arm.label(),
                    "arm unavailable: its /ready or /v1/capabilities probe failed"
                );
            }
        }
        if up && arm.breaker.state() != CircuitState::Closed && arm.breaker.allow() {
            arm.breaker.record_success();
            tracing::info!(
                arm = arm.label(),
                "arm circuit closed after a successful probe"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> ArmSnapshot {
        ArmSnapshot {
            serves: true,
            available: true,
            circuit: CircuitState::Closed,
            admits: true,
            success_rate: 1.0,
            cost_tier: 1,
            in_flight: 0,
        }
    }

    #[test]
    fn only_available_serving_admitting_arms_are_candidates() {
        assert_eq!(score(&healthy()), Some(1.0));
        for unfit in [
            ArmSnapshot {
                serves: false,
                ..healthy()
            },
            ArmSnapshot {
                available: false,
                ..healthy()
            },
            ArmSnapshot {
                circuit: CircuitState::Open,
                admits: false,
                ..healthy()
            },
        ] {
            assert_eq!(score(&unfit), None, "{unfit:?}");
        }
    }

    #[test]
    fn success_dominates_then_cost_then_load() {
        let score_of = |s: ArmSnapshot| score(&s).unwrap();
        let flaky_cheap = score_of(ArmSnapshot {
            success_rate: 0.6,
            ..healthy()
        });
        let healthy_dear = score_of(ArmSnapshot {
            cost_tier: 3,
            ..healthy()
        });
        assert!(healthy_dear > flaky_cheap);
        assert!(score_of(healthy()) > healthy_dear);
        let busy = score_of(ArmSnapshot {
            in_flight: 5,
            ..healthy()
        });
        assert!(busy < score_of(healthy()) && busy > healthy_dear);
        // The load penalty is capped: a busy healthy arm still beats a flaky one.
        let swamped = score_of(ArmSnapshot {
            in_flight: 10_000,
            ..healthy()
        });
        assert!((swamped - 0.9).abs() < 1e-9);
        assert!(swamped > flaky_cheap);
    }

    #[test]
    fn a_half_open_trial_ranks_below_a_closed_circuit() {
        let trial = score(&ArmSnapshot {
            circuit: CircuitState::Open,
            admits: true,
            ..healthy()
        })
        .unwrap();
        assert!((trial - 0.5).abs() < 1e-9);
        let flaky = score(&ArmSnapshot {
            success_rate: 0.55,
            ..healthy()
        })
        .unwrap();
        assert!(flaky > trial);
    }

    #[test]
    fn the_success_rate_is_an_ewma() {
        let metrics = ArmMetrics::register(&prometheus::Registry::new(), &["planner"]).unwrap();
        let endpoint = super::super::config::parse_endpoints("planner=http://127.0.0.1:1")
            .unwrap()
            .remove(0);
        let registry = ArmRegistry::new(
            vec![endpoint],
            crate::InternalHttp::default(),
            OutboundToken::fixed("test-token-0123456789").unwrap(),
            &metrics,
            3,
            Duration::ZERO,
        )
        .unwrap();
        let arm = &registry.arms()[0];
        arm.record_outcome(false);
        let after_one = arm.snapshot("plan").success_rate;
        assert!((after_one - 0.8).abs() < 1e-9);
        arm.record_outcome(true);
        assert!((arm.snapshot("plan").success_rate - 0.84).abs() < 1e-9);
        // Never probed: unavailable, so not a candidate, and the error says why.
        assert_eq!(
            registry.rank("plan", &[]).unwrap_err(),
            "planner unavailable"
        );
        assert_eq!(
            registry.rank("retrieve", &[]).unwrap_err(),
            "no configured arm serves it"
        );
    }
}
