//! `CircuitBreaker`: stops calling a dependency that keeps failing, and
//! probes it again after a cool-down.
//!
//! Closed: calls pass; `failure_threshold` consecutive failures open it.
//! Open: calls are refused at once until `cool_down` has passed.
//! Half-open: one trial call passes; success closes, failure reopens. A trial
//! whose caller never reports back (its task was cancelled mid-call) expires
//! after another `cool_down`, so the breaker cannot stay half-open for ever.
//!
//! Used for the reflex layer (one breaker) and for every arm instance (one
//! breaker each, fed by calls and by successful health probes).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGauge;

/// A half-open trial unreported for this long (or `cool_down`, if longer)
/// is presumed abandoned and another is admitted.
const MIN_TRIAL_EXPIRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    /// The gauge value (docs/contracts.md, "Metrics"): 0 closed, 1 half-open, 2 open.
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
    /// When the half-open trial in flight started.
    trial_started: Option<Instant>,
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
                trial_started: None,
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

    /// Whether a call may go ahead now. Admitting a half-open trial is a
    /// change of state: call this only right before making the call.
    pub fn allow(&self) -> bool {
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => true,
            CircuitState::Open => {
                if self.cooled_down(&inner) {
                    self.set(&mut inner, CircuitState::HalfOpen);
                    inner.trial_started = Some(Instant::now());
                    true
                } else {
                    false
                }
            }
            CircuitState::HalfOpen => {
                if self.trial_pending(&inner) {
                    false
                } else {
                    inner.trial_started = Some(Instant::now());
                    true
                }
            }
        }
    }

    /// Whether [`allow`](Self::allow) would admit a call now, without
    /// admitting one: for ranking candidates before picking one.
    pub fn admits(&self) -> bool {
        let inner = self.lock();
        match inner.state {
            CircuitState::Closed => true,
            CircuitState::Open => self.cooled_down(&inner),
            CircuitState::HalfOpen => !self.trial_pending(&inner),
        }
    }

    fn cooled_down(&self, inner: &Inner) -> bool {
        inner
            .opened_at
            .is_some_and(|at| at.elapsed() >= self.cool_down)
    }

    fn trial_pending(&self, inner: &Inner) -> bool {
        inner
            .trial_started
            .is_some_and(|at| at.elapsed() < self.cool_down.max(MIN_TRIAL_EXPIRY))
    }

    pub fn record_success(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.trial_started = None;
        inner.opened_at = None;
        self.set(&mut inner, CircuitState::Closed);
    }

    pub fn record_failure(&self) {
        let mut inner = self.lock();
        inner.failures += 1;
        inner.trial_started = None;
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
        assert!(b.admits());
        assert!(b.allow());
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(!b.admits());
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
        assert!(!b.admits());
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
