//! `CircuitBreaker`: stops calling a dependency that keeps failing, and
//! probes it again after a cool-down.
//!
//! Closed: calls pass; `failure_threshold` consecutive failures open it.
//! Open: calls are refused at once until `cool_down` has passed.
//! Half-open: one trial call passes; success closes, failure reopens.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGauge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    /// The gauge value of TARGET.md §4: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    gauge: IntGauge,
    inner: Mutex<Inner>,
}

struct Inner {
    state: CircuitState,
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, cool_down: Duration, gauge: IntGauge) -> Self {
        gauge.set(0);
        Self {
            failure_threshold: failure_threshold.max(1),
            cool_down,
            gauge,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                failures: 0,
                opened_at: None,
                trial_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, inner: &mut Inner, state: CircuitState) {
        inner.state = state;
        self.gauge.set(state.gauge());
    }

    pub fn state(&self) -> CircuitState {
        self.lock().state
    }

    /// Whether a call may go ahead now.
    pub fn allow(&self) -> bool {
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => true,
            CircuitState::Open => {
                if inner
                    .opened_at
                    .is_some_and(|at| at.elapsed() >= self.cool_down)
                {
                    self.set(&mut inner, CircuitState::HalfOpen);
                    inner.trial_in_flight = true;
                    true
                } else {
                    false
                }
            }
            CircuitState::HalfOpen => {
                if inner.trial_in_flight {
                    false
                } else {
                    inner.trial_in_flight = true;
                    true
                }
            }
        }
    }

    pub fn record_success(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.trial_in_flight = false;
        inner.opened_at = None;
        self.set(&mut inner, CircuitState::Closed);
    }

    pub fn record_failure(&self) {
        let mut inner = self.lock();
        inner.failures += 1;
        inner.trial_in_flight = false;
        if inner.state == CircuitState::HalfOpen || inner.failures >= self.failure_threshold {
            inner.opened_at = Some(Instant::now());
            self.set(&mut inner, CircuitState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cool_down: Duration) -> CircuitBreaker {
        CircuitBreaker::new(3, cool_down, IntGauge::new("test_state", "test").unwrap())
    }

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let b = breaker(Duration::ZERO);
        for _ in 0..2 {
            assert!(b.allow());
            b.record_failure();
        }
        assert_eq!(b.state(), CircuitState::Closed);
        b.record_failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.gauge.get(), 2);
        // Cool-down (zero here) passed: one trial only.
        assert!(b.allow());
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(!b.allow(), "only one trial while half-open");
        b.record_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.gauge.get(), 0);
    }

    #[test]
    fn open_refuses_until_cool_down_and_failed_trial_reopens() {
        let b = breaker(Duration::from_secs(3600));
        for _ in 0..3 {
            b.record_failure();
        }
        assert!(!b.allow());
        let quick = breaker(Duration::ZERO);
        for _ in 0..3 {
            quick.record_failure();
        }
        assert!(quick.allow());
        quick.record_failure();
        assert_eq!(quick.state(), CircuitState::Open);
    }
}
