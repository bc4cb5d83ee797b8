//! What a run measures, second by second: counts keyed by the second an
//! event happened in, latency percentiles per second, and whole-run HDR
//! histograms. One `Recorder` behind a mutex; each record is a few
//! additions, so a generator at tens of thousands of requests per second
//! spends little time here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Latencies up to an hour, in microseconds.
const MAX_US: u64 = 3_600_000_000;
/// Seconds kept for the rolling latency window (`--abort-on-fail`).
pub const WINDOW_SECS: usize = 5;

pub fn histogram(sigfig: u8) -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_US, sigfig)?)
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Counts of one second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondRow {
    /// Seconds since the start of the run (this row covers [t, t+1)).
    pub t: u64,
    /// Arrivals sent (open model: by scheduled time) / iterations started.
    pub sent: u64,
    /// Iterations that ended (task terminal, or a response received).
    pub completed: u64,
    pub errors: u64,
    pub rate_limited: u64,
    pub dropped: u64,
    pub late: u64,
    /// In flight at the end of the second.
    pub in_flight: u64,
    /// Latency of the iterations that ended in this second (ms).
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Whole-run counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub rate_limited: u64,
    pub dropped: u64,
    pub late: u64,
    /// 404 on a long poll of an acknowledged task (seen while running).
    pub lost_seen: u64,
    pub error_kinds: BTreeMap<String, u64>,
}

pub struct Recorder {
    start: Instant,
    rows: Vec<SecondRow>,
    open_sec: u64,
    open: Histogram<u64>,
    recent: VecDeque<Histogram<u64>>,
    /// Every latency of the run.
    pub latency: Histogram<u64>,
    /// Submission → acknowledgement (tasks only).
    pub ack_latency: Histogram<u64>,
    /// Latency minus each task's simulated LLM time, for tasks that report it.
    pub overhead: Histogram<u64>,
    /// Latencies since the last `take_window_histogram` (find-knee steps).
    step: Histogram<u64>,
    pub totals: Totals,
}

impl Recorder {
    pub fn new(start: Instant) -> anyhow::Result<Self> {
        Ok(Self {
            start,
            rows: Vec::new(),
            open_sec: 0,
            open: histogram(2)?,
            recent: VecDeque::with_capacity(WINDOW_SECS + 1),
            latency: histogram(3)?,
            ack_latency: histogram(3)?,
            overhead: histogram(3)?,
            step: histogram(2)?,
            totals: Totals::default(),
        })
    }

    fn sec_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs()
    }

    fn row(&mut self, sec: u64) -> &mut SecondRow {
        let index = usize::try_from(sec).unwrap_or(usize::MAX).min(1 << 24);
        while self.rows.len() <= index {
            let t = self.rows.len() as u64;
            self.rows.push(SecondRow {
                t,
                ..SecondRow::default()
            });
        }
        &mut self.rows[index]
    }

    /// Closes every second before `sec`: its latency percentiles are final.
    fn roll_to(&mut self, sec: u64) {
        while self.open_sec < sec {
            let fresh = Histogram::new_from(&self.open);
            let h = std::mem::replace(&mut self.open, fresh);
            let open_sec = self.open_sec;
            let row = self.row(open_sec);
            if !h.is_empty() {
                let ms = |v: u64| v as f64 / 1000.0;
                row.p50_ms = Some(ms(h.value_at_quantile(0.50)));
                row.p90_ms = Some(ms(h.value_at_quantile(0.90)));
                row.p99_ms = Some(ms(h.value_at_quantile(0.99)));
                row.max_ms = Some(ms(h.max()));
            }
            self.recent.push_back(h);
            while self.recent.len() > WINDOW_SECS {
                self.recent.pop_front();
            }
            self.open_sec += 1;
            // A long gap (a stalled generator) closes many empty seconds; the
            // window needs only the last few.
            if sec - self.open_sec > WINDOW_SECS as u64 * 2 {
                let skip_to = sec - WINDOW_SECS as u64;
                for s in self.open_sec..skip_to {
                    self.row(s);
                }
                self.recent.clear();
                self.open_sec = skip_to;
            }
        }
    }

    /// An arrival was sent (or an iteration started), scheduled at `at`.
    pub fn sent(&mut self, at: Instant) {
        let sec = self.sec_of(at);
        self.row(sec).sent += 1;
        self.totals.sent += 1;
    }

    pub fn late(&mut self, at: Instant) {
        let sec = self.sec_of(at);
        self.row(sec).late += 1;
        self.totals.late += 1;
    }

    pub fn dropped(&mut self, at: Instant) {
        self.dropped_n(at, 1);
    }

    pub fn dropped_n(&mut self, at: Instant, n: u64) {
        let sec = self.sec_of(at);
        self.row(sec).dropped += n;
        self.totals.dropped += n;
    }

    pub fn rate_limited(&mut self, now: Instant) {
        let sec = self.sec_of(now);
        self.row(sec).rate_limited += 1;
        self.totals.rate_limited += 1;
    }

    pub fn error(&mut self, now: Instant, kind: &str) {
        let sec = self.sec_of(now);
        self.row(sec).errors += 1;
        self.totals.errors += 1;
        match self.totals.error_kinds.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.totals.error_kinds.insert(kind.to_owned(), 1);
            }
        }
    }

    pub fn lost_seen(&mut self) {
        self.totals.lost_seen += 1;
    }

    pub fn ack(&mut self, took: Duration) {
        self.ack_latency.saturating_record(micros(took));
    }

    /// An iteration ended at `now`, `latency` after it was due; `llm` is
    /// the simulated LLM time the task reported, when it did.
    pub fn completed(&mut self, now: Instant, latency: Duration, llm: Option<Duration>) {
        if let Some(llm) = llm {
            self.overhead
                .saturating_record(micros(latency.saturating_sub(llm)));
        }
        let sec = self.sec_of(now);
        self.roll_to(sec);
        let us = micros(latency);
        if sec >= self.open_sec {
            self.open.saturating_record(us);
        }
        self.latency.saturating_record(us);
        self.step.saturating_record(us);
        self.row(sec).completed += 1;
        self.totals.completed += 1;
    }

    /// Called each second: closes finished seconds and stores the in-flight gauge.
    pub fn tick(&mut self, now: Instant, in_flight: u64) {
        let sec = self.sec_of(now);
        self.roll_to(sec);
        if sec > 0 {
            self.row(sec - 1).in_flight = in_flight;
        }
    }

    /// Latencies of the last `WINDOW_SECS` closed seconds, merged.
    pub fn window(&self) -> Histogram<u64> {
        let mut merged = Histogram::new_from(&self.open);
        for h in &self.recent {
            let _ = merged.add(h);
        }
        merged
    }

    /// The latency histogram since the last call, and a fresh one.
    pub fn take_step_histogram(&mut self) -> Histogram<u64> {
        let fresh = Histogram::new_from(&self.step);
        std::mem::replace(&mut self.step, fresh)
    }

    /// The rows so far (the last one may be incomplete).
    pub fn rows(&self) -> &[SecondRow] {
        &self.rows
    }

    /// Closes every second up to `now` and hands back the rows.
    pub fn finish(&mut self, now: Instant) -> Vec<SecondRow> {
        let sec = self.sec_of(now) + 1;
        self.roll_to(sec);
        self.rows.clone()
    }
}

/// State shared by the generator, iterations, progress and judges.
pub struct Shared {
    pub rec: Mutex<Recorder>,
    pub in_flight: AtomicU64,
    pub in_flight_max: AtomicU64,
    stop: AtomicBool,
    stop_notify: Notify,
    pub abort_reason: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(start: Instant) -> anyhow::Result<Self> {
        Ok(Self {
            rec: Mutex::new(Recorder::new(start)?),
            in_flight: AtomicU64::new(0),
            in_flight_max: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stop_notify: Notify::new(),
            abort_reason: Mutex::new(None),
        })
    }

    /// Runs `f` on the recorder. A poisoned lock (a panic while recording)
    /// still holds valid counts, so it is used as is.
    pub fn with<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        let mut guard = self.rec.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_notify.notify_waiters();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Resolves when a stop is requested.
    pub async fn stopped(&self) {
        loop {
            let notified = self.stop_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stopping() {
                return;
            }
            notified.await;
        }
    }

    pub fn abort(&self, reason: String) {
        let mut slot = self.abort_reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.request_stop();
    }

    pub fn aborted(&self) -> Option<String> {
        self.abort_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts an iteration in flight until the guard drops (also when the
    /// iteration is aborted).
    pub fn enter(self: &std::sync::Arc<Self>) -> InFlight {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.in_flight_max.fetch_max(now, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

pub struct InFlight(std::sync::Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Latency percentiles of a histogram, in ms.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }

    /// In the order of `threshold::Pct::ALL`.
    pub fn as_array(&self) -> [f64; 7] {
        [
            self.p50, self.p90, self.p95, self.p99, self.p999, self.max, self.mean,
        ]
    }
}

/// One point of the percentile spectrum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// Percentile, 0–100.
    pub percentile: f64,
    pub latency_ms: f64,
}

/// The latency at percentiles spaced evenly in −log10(1 − p): as many
/// points between 90% and 99% as between 0% and 90%.
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    // Up to the resolution the sample count supports.
    let depth = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = (depth * 20.0) as usize;
    let mut points: Vec<SpectrumPoint> = (0..=steps)
        .map(|i| {
            let x = depth * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            SpectrumPoint {
                percentile: q * 100.0,
                latency_ms: h.value_at_quantile(q) as f64 / 1000.0,
            }
        })
        .collect();
    points.push(SpectrumPoint {
        percentile: 100.0,
        latency_ms: h.max() as f64 / 1000.0,
    });
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_close_with_their_percentiles() {
        let start = Instant::now();
        let mut rec = Recorder::new(start).unwrap();
        for ms in [10, 20, 30, 40] {
            rec.sent(start);
            // Each task reports 8 ms of simulated LLM time.
            rec.completed(
                start + Duration::from_millis(500),
                Duration::from_millis(ms),
                Some(Duration::from_millis(8)),
            );
        }
        rec.completed(
            start + Duration::from_millis(2500),
            Duration::from_millis(900),
            None,
        );
        rec.error(start + Duration::from_millis(2600), "transport");
        let rows = rec.finish(start + Duration::from_millis(2700));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].completed, 4);
        assert_eq!(rows[0].sent, 4);
        let p99 = rows[0].p99_ms.unwrap();
        assert!((39.0..41.0).contains(&p99), "{p99}");
        assert_eq!(rows[1].completed, 0);
        assert_eq!(rows[1].p50_ms, None);
        assert_eq!(rows[2].errors, 1);
        assert!(rows[2].max_ms.unwrap() >= 899.0);
        assert_eq!(rec.totals.error_kinds["transport"], 1);
        assert_eq!(Percentiles::of(&rec.latency).count, 5);
        // Only the four that reported their LLM time have an overhead: 2–32 ms.
        let overhead = Percentiles::of(&rec.overhead);
        assert_eq!(overhead.count, 4);
        assert!((31.0..33.0).contains(&overhead.max), "{overhead:?}");
        assert!((16.5..17.5).contains(&overhead.mean), "{overhead:?}");
    }

    #[test]
    fn the_window_holds_the_last_seconds_only() {
        let start = Instant::now();
        let mut rec = Recorder::new(start).unwrap();
        rec.completed(start, Duration::from_secs(9), None);
        for s in 1..=6 {
            rec.completed(
                start + Duration::from_secs(s),
                Duration::from_millis(5),
                None,
            );
        }
        rec.tick(start + Duration::from_secs(7), 0);
        let w = rec.window();
        assert_eq!(w.len(), 5);
        assert!(
            w.max() < 10_000,
            "the 9 s latency of second 0 left the window"
        );
    }

    #[test]
    fn spectrum_reaches_the_tail() {
        let mut h = histogram(3).unwrap();
        for v in 1..=100_000u64 {
            h.record(v).unwrap();
        }
        let s = spectrum(&h);
        assert!(s.iter().any(|p| (p.percentile - 99.9).abs() < 1e-6));
        assert!(s.windows(2).all(|w| w[0].latency_ms <= w[1].latency_ms));
        assert_eq!(s.last().unwrap().percentile, 100.0);
    }
}
