//! k6-style pass/fail criteria: `p95<30s`, `errors<0.1%`, `lost==0`,
//! `rate>=1000`, `rss_growth[orchestrator]<10MB/h`.
//!
//! A threshold is `METRIC OP VALUE`. Values carry units where the metric
//! has one; parsing checks that the unit fits the metric, so a typo is a
//! usage error (exit 2) rather than a threshold that can never fail.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A latency percentile (or the maximum / mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pct {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Pct {
    pub const ALL: [Pct; 7] = [
        Pct::P50,
        Pct::P90,
        Pct::P95,
        Pct::P99,
        Pct::P999,
        Pct::Max,
        Pct::Mean,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pct::P50 => "p50",
            Pct::P90 => "p90",
            Pct::P95 => "p95",
            Pct::P99 => "p99",
            Pct::P999 => "p999",
            Pct::Max => "max",
            Pct::Mean => "mean",
        }
    }

    /// The quantile, for the percentiles (None for max and mean).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Pct::P50 => Some(0.50),
            Pct::P90 => Some(0.90),
            Pct::P95 => Some(0.95),
            Pct::P99 => Some(0.99),
            Pct::P999 => Some(0.999),
            Pct::Max | Pct::Mean => None,
        }
    }
}

/// What a threshold measures. Optional names select one sampled process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// End-to-end latency, in milliseconds.
    Latency(Pct),
    /// End-to-end latency minus the task's own simulated LLM time (the
    /// `usage.simulated_llm_ms` the orchestrator reports), in milliseconds.
    Overhead(Pct),
    /// Share of attempts that ended in error (0.0–1.0).
    Errors,
    /// Acknowledged tasks the API no longer knows (404).
    Lost,
    /// Acknowledged tasks still not terminal after the drain.
    Stuck,
    /// Completed tasks (or responses) per second in the measured window.
    Rate,
    /// 429 answers: a share of submissions when the value is a percentage, else a count.
    Rejected429,
    /// Arrivals not sent because `--max-in-flight` was reached.
    DroppedIterations,
    /// Arrivals the generator sent later than the late-start tolerance.
    LateStarts,
    /// Resident memory growth, bytes per hour (largest over processes unless named).
    RssGrowth(Option<String>),
    /// Open file descriptors growth per hour.
    FdGrowth(Option<String>),
    /// Thread count growth per hour.
    ThreadGrowth(Option<String>),
    /// Sampled series (RSS, fds) whose growth is significantly positive over ≥ 10 min.
    Leak,
}

impl Metric {
    pub fn name(&self) -> String {
        let named = |base: &str, name: &Option<String>| match name {
            Some(n) => format!("{base}[{n}]"),
            None => base.to_owned(),
        };
        match self {
            Metric::Latency(p) => p.name().to_owned(),
            Metric::Overhead(p) => format!("overhead_{}", p.name()),
            Metric::Errors => "errors".into(),
            Metric::Lost => "lost".into(),
            Metric::Stuck => "stuck".into(),
            Metric::Rate => "rate".into(),
            Metric::Rejected429 => "rejected_429".into(),
            Metric::DroppedIterations => "dropped_iterations".into(),
            Metric::LateStarts => "late_starts".into(),
            Metric::RssGrowth(n) => named("rss_growth", n),
            Metric::FdGrowth(n) => named("fd_growth", n),
            Metric::ThreadGrowth(n) => named("thread_growth", n),
            Metric::Leak => "leak".into(),
        }
    }

    /// Needs the task ledger (only `run` has one).
    pub fn needs_ledger(&self) -> bool {
        matches!(self, Metric::Lost | Metric::Stuck)
    }

    /// Needs `--sample-process`.
    pub fn needs_samples(&self) -> bool {
        matches!(
            self,
            Metric::RssGrowth(_) | Metric::FdGrowth(_) | Metric::ThreadGrowth(_) | Metric::Leak
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    pub fn holds(self, measured: f64, bound: f64) -> bool {
        match self {
            Op::Lt => measured < bound,
            Op::Le => measured <= bound,
            Op::Gt => measured > bound,
            Op::Ge => measured >= bound,
            Op::Eq => (measured - bound).abs() <= f64::EPSILON * bound.abs().max(1.0),
        }
    }

    /// True for bounds from above (`<`, `<=`, `==`): the only ones a
    /// running test can already have crossed.
    pub fn is_upper_bound(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Eq)
    }
}

/// One parsed threshold. `value` is in the metric's base unit:
/// milliseconds, a fraction, a count, per second, bytes per hour or per hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub source: String,
    pub metric: Metric,
    pub op: Op,
    pub value: f64,
    /// For `rejected_429`, `dropped_iterations`, `late_starts`: the value was
    /// a percentage, so compare the share rather than the count.
    pub as_share: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

const METRICS_HELP: &str = "p50, p90, p95, p99, p999, max, mean (and each as overhead_p95 …), errors, lost, stuck, rate, \
     rejected_429, dropped_iterations, late_starts, rss_growth[NAME], fd_growth[NAME], \
     thread_growth[NAME], leak";

fn err(source: &str, why: impl fmt::Display) -> ParseError {
    ParseError(format!("threshold `{source}`: {why}"))
}

impl FromStr for Threshold {
    type Err = ParseError;

    fn from_str(source: &str) -> Result<Self, ParseError> {
        let text: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        let at = text.find(['<', '>', '=']).ok_or_else(|| {
            err(
                source,
                "expected METRIC OP VALUE with OP one of <, <=, >, >=, == (e.g. p95<30s)",
            )
        })?;
        let (name, rest) = text.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix("==") {
            (Op::Eq, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            return Err(err(
                source,
                "`=` alone is not an operator; use == (or <, <=, >, >=)",
            ));
        };
        if value.is_empty() {
            return Err(err(source, "missing value after the operator"));
        }
        let metric = parse_metric(source, name)?;
        let (value, as_share) = parse_value(source, &metric, value)?;
        Ok(Threshold {
            source: source.trim().to_owned(),
            metric,
            op,
            value,
            as_share,
        })
    }
}

fn parse_metric(source: &str, name: &str) -> Result<Metric, ParseError> {
    let (base, process) = match name.split_once('[') {
        Some((base, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err(source, "a process name goes in brackets: rss_growth[NAME]"))?;
            (base, Some(inner.to_owned()))
        }
        None => (name, None),
    };
    if let Some(Metric::Latency(p)) = base
        .strip_prefix("overhead_")
        .and_then(|pct| parse_metric(source, pct).ok())
    {
        return Ok(Metric::Overhead(p));
    }
    let metric = match base {
        "p50" | "med" => Metric::Latency(Pct::P50),
        "p90" => Metric::Latency(Pct::P90),
        "p95" => Metric::Latency(Pct::P95),
        "p99" => Metric::Latency(Pct::P99),
        "p999" | "p99.9" => Metric::Latency(Pct::P999),
        "max" => Metric::Latency(Pct::Max),
        "mean" | "avg" => Metric::Latency(Pct::Mean),
        "errors" => Metric::Errors,
        "lost" => Metric::Lost,
        "stuck" => Metric::Stuck,
        "rate" => Metric::Rate,
        "rejected_429" => Metric::Rejected429,
        "dropped_iterations" => Metric::DroppedIterations,
        "late_starts" => Metric::LateStarts,
        "rss_growth" => Metric::RssGrowth(process.clone()),
        "fd_growth" => Metric::FdGrowth(process.clone()),
        "thread_growth" => Metric::ThreadGrowth(process.clone()),
        "leak" => Metric::Leak,
        "" => return Err(err(source, "missing metric name")),
        other => {
            return Err(err(
                source,
                format!("unknown metric `{other}` (known: {METRICS_HELP})"),
            ));
        }
    };
    if process.is_some() && !metric.needs_samples()
        || matches!(metric, Metric::Leak) && process.is_some()
    {
        return Err(err(
            source,
            format!("`{base}` takes no [NAME]; only rss_growth, fd_growth and thread_growth do"),
        ));
    }
    Ok(metric)
}

fn number(source: &str, text: &str) -> Result<f64, ParseError> {
    let value: f64 = text
        .parse()
        .map_err(|_| err(source, format!("`{text}` is not a number")))?;
    if !value.is_finite() || value < 0.0 {
        return Err(err(source, "the value must be a finite number ≥ 0"));
    }
    Ok(value)
}

/// Splits `12.5ms` into (`12.5`, `ms`).
fn split_unit(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+')
        })
        .unwrap_or(text.len());
    // `1e3` is a number, but `1ms`'s `m` is not an exponent; only digits,
    // dots and exponents before the first letter other than e/E.
    let (n, u) = text.split_at(end);
    (n, u)
}

fn parse_value(source: &str, metric: &Metric, text: &str) -> Result<(f64, bool), ParseError> {
    let (num, unit) = split_unit(text);
    let n = number(source, num)?;
    match metric {
        Metric::Latency(_) | Metric::Overhead(_) => {
            let ms = match unit {
                "" | "ms" => n,
                "us" | "µs" => n / 1000.0,
                "s" => n * 1000.0,
                "m" | "min" => n * 60_000.0,
                other => {
                    return Err(err(
                        source,
                        format!(
                            "latency unit `{other}` unknown (use us, ms, s or m; bare numbers are ms)"
                        ),
                    ));
                }
            };
            Ok((ms, false))
        }
        Metric::Errors => match unit {
            "%" => Ok((n / 100.0, true)),
            "" if n <= 1.0 => Ok((n, true)),
            "" => Err(err(
                source,
                "errors is a share: write a percentage (0.1%) or a fraction ≤ 1 (0.001)",
            )),
            other => Err(err(
                source,
                format!("errors takes % or a fraction, not `{other}`"),
            )),
        },
        Metric::Lost | Metric::Stuck | Metric::Leak => match unit {
            "" => Ok((n, false)),
            other => Err(err(
                source,
                format!("{} is a count; drop `{other}`", metric.name()),
            )),
        },
        Metric::Rejected429 | Metric::DroppedIterations | Metric::LateStarts => match unit {
            "%" => Ok((n / 100.0, true)),
            "" => Ok((n, false)),
            other => Err(err(
                source,
                format!(
                    "{} takes a count or a percentage, not `{other}`",
                    metric.name()
                ),
            )),
        },
        Metric::Rate => match unit {
            "" | "/s" => Ok((n, false)),
            "/m" | "/min" => Ok((n / 60.0, false)),
            other => Err(err(
                source,
                format!("rate unit `{other}` unknown (use /s or /min)"),
            )),
        },
        Metric::RssGrowth(_) => {
            let per_hour = unit
                .strip_suffix("/h")
                .ok_or_else(|| err(source, "rss_growth needs a unit per hour, e.g. 10MB/h"))?;
            let scale = match per_hour {
                "B" => 1.0,
                "kB" | "KB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                other => {
                    return Err(err(
                        source,
                        format!("size unit `{other}` unknown (B, KB, MB, GB, KiB, MiB, GiB)"),
                    ));
                }
            };
            Ok((n * scale, false))
        }
        Metric::FdGrowth(_) | Metric::ThreadGrowth(_) => match unit {
            "/h" | "" => Ok((n, false)),
            other => Err(err(
                source,
                format!("{} is per hour (/h), not `{other}`", metric.name()),
            )),
        },
    }
}

/// Everything a threshold can be judged against, in base units.
/// `None` means not measured in this run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Latency in ms for each of [`Pct::ALL`], in that order.
    pub latency_ms: Option<[f64; 7]>,
    /// Overhead (latency minus simulated LLM time) in ms, like `latency_ms`.
    pub overhead_ms: Option<[f64; 7]>,
    pub attempts: u64,
    pub errors: u64,
    pub lost: Option<u64>,
    pub stuck: Option<u64>,
    pub rate: Option<f64>,
    pub rejected_429: u64,
    pub dropped: u64,
    pub late: u64,
    /// (process name, rss bytes/h, fds/h, threads/h)
    pub growth: Vec<(String, f64, f64, f64)>,
    pub leaks: Option<u64>,
}

impl Measured {
    fn share(&self, count: u64, of: u64) -> f64 {
        if of == 0 {
            0.0
        } else {
            count as f64 / of as f64
        }
    }

    /// The measured value in the threshold's unit, or why there is none.
    pub fn value_for(&self, t: &Threshold) -> Result<f64, String> {
        let growth = |name: &Option<String>, pick: fn(&(String, f64, f64, f64)) -> f64| {
            let rows: Vec<&(String, f64, f64, f64)> = self
                .growth
                .iter()
                .filter(|g| name.as_ref().is_none_or(|n| &g.0 == n))
                .collect();
            if rows.is_empty() {
                return Err(match name {
                    Some(n) => format!("no sampled process named `{n}`"),
                    None => "no process was sampled (--sample-process)".to_owned(),
                });
            }
            Ok(rows.into_iter().map(pick).fold(f64::NEG_INFINITY, f64::max))
        };
        match &t.metric {
            Metric::Latency(p) => {
                let all = self.latency_ms.ok_or("no latency was measured")?;
                let index = Pct::ALL.iter().position(|q| q == p).unwrap_or(0);
                Ok(all[index])
            }
            Metric::Overhead(p) => {
                let all = self.overhead_ms.ok_or("no overhead was measured")?;
                let index = Pct::ALL.iter().position(|q| q == p).unwrap_or(0);
                Ok(all[index])
            }
            Metric::Errors => Ok(self.share(self.errors, self.attempts)),
            Metric::Lost => self
                .lost
                .map(|v| v as f64)
                .ok_or_else(|| "no ledger in this run".into()),
            Metric::Stuck => self
                .stuck
                .map(|v| v as f64)
                .ok_or_else(|| "no ledger in this run".into()),
            Metric::Rate => self.rate.ok_or_else(|| "no rate was measured".into()),
            Metric::Rejected429 => Ok(self.count_or_share(t, self.rejected_429)),
            Metric::DroppedIterations => Ok(self.count_or_share(t, self.dropped)),
            Metric::LateStarts => Ok(self.count_or_share(t, self.late)),
            Metric::RssGrowth(n) => growth(n, |g| g.1),
            Metric::FdGrowth(n) => growth(n, |g| g.2),
            Metric::ThreadGrowth(n) => growth(n, |g| g.3),
            Metric::Leak => self
                .leaks
                .map(|v| v as f64)
                .ok_or_else(|| "no process was sampled (--sample-process)".into()),
        }
    }

    fn count_or_share(&self, t: &Threshold, count: u64) -> f64 {
        if t.as_share {
            self.share(count, self.attempts + self.dropped)
        } else {
            count as f64
        }
    }
}

/// A threshold's outcome, as reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub threshold: String,
    pub metric: String,
    pub passed: bool,
    /// In the metric's base unit (ms, fraction, count, /s, bytes/h, /h).
    pub measured: Option<f64>,
    /// Human-readable measured value, e.g. `p95 = 31.2 s`.
    pub detail: String,
}

impl Threshold {
    pub fn judge(&self, measured: &Measured) -> Verdict {
        match measured.value_for(self) {
            Ok(value) => {
                let passed = self.op.holds(value, self.value);
                Verdict {
                    threshold: self.source.clone(),
                    metric: self.metric.name(),
                    passed,
                    measured: Some(value),
                    detail: format!("{} = {}", self.metric.name(), self.show(value)),
                }
            }
            Err(why) => Verdict {
                threshold: self.source.clone(),
                metric: self.metric.name(),
                passed: false,
                measured: None,
                detail: format!("{}: not measured ({why})", self.metric.name()),
            },
        }
    }

    /// A value in this threshold's unit, for people.
    pub fn show(&self, value: f64) -> String {
        match &self.metric {
            Metric::Latency(_) | Metric::Overhead(_) => show_ms(value),
            Metric::Errors => format!("{:.4}%", value * 100.0),
            Metric::Rejected429 | Metric::DroppedIterations | Metric::LateStarts
                if self.as_share =>
            {
                format!("{:.4}%", value * 100.0)
            }
            Metric::Rate => format!("{value:.1}/s"),
            Metric::RssGrowth(_) => format!("{:.2} MB/h", value / 1e6),
            Metric::FdGrowth(_) | Metric::ThreadGrowth(_) => format!("{value:.2}/h"),
            _ => format!("{value}"),
        }
    }
}

pub fn show_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    fn perr(s: &str) -> String {
        s.parse::<Threshold>().unwrap_err().to_string()
    }

    #[test]
    fn parses_the_documented_forms() {
        let p95 = t("p95<30s");
        assert_eq!(p95.metric, Metric::Latency(Pct::P95));
        assert_eq!(p95.op, Op::Lt);
        assert_eq!(p95.value, 30_000.0);
        assert_eq!(t("p99 <= 250ms").value, 250.0);
        let overhead = t("overhead_p95<=100ms");
        assert_eq!(overhead.metric, Metric::Overhead(Pct::P95));
        assert_eq!(overhead.metric.name(), "overhead_p95");
        assert_eq!(overhead.value, 100.0);
        assert!(perr("overhead_errors<1").contains("unknown metric"));
        assert_eq!(t("max<1m").value, 60_000.0);
        assert_eq!(t("p50<800us").value, 0.8);
        assert_eq!(t("p90<120").value, 120.0, "bare latency numbers are ms");
        let errors = t("errors<0.1%");
        assert_eq!(errors.metric, Metric::Errors);
        assert!((errors.value - 0.001).abs() < 1e-12);
        assert_eq!(t("errors<0.001").value, 0.001);
        let lost = t("lost==0");
        assert_eq!(
            (lost.metric, lost.op, lost.value),
            (Metric::Lost, Op::Eq, 0.0)
        );
        let rate = t("rate>=1000");
        assert_eq!(
            (rate.metric, rate.op, rate.value),
            (Metric::Rate, Op::Ge, 1000.0)
        );
        assert_eq!(t("rate>=600/min").value, 10.0);
        let r429 = t("rejected_429<1%");
        assert!(r429.as_share);
        assert!(!t("rejected_429<10").as_share);
        let rss = t("rss_growth[orchestrator]<10MB/h");
        assert_eq!(rss.metric, Metric::RssGrowth(Some("orchestrator".into())));
        assert_eq!(rss.value, 10e6);
        assert_eq!(t("rss_growth<1MiB/h").value, 1_048_576.0);
        assert_eq!(t("fd_growth<5/h").metric, Metric::FdGrowth(None));
        assert_eq!(t("leak==0").metric, Metric::Leak);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert!(
            perr("p96<1s").contains("unknown metric `p96`"),
            "{}",
            perr("p96<1s")
        );
        assert!(perr("p95 30s").contains("expected METRIC OP VALUE"));
        assert!(perr("p95=30s").contains("use =="));
        assert!(perr("p95<").contains("missing value"));
        assert!(perr("p95<30h").contains("latency unit `h`"));
        assert!(perr("errors<5").contains("a share"));
        assert!(perr("lost==0%").contains("count"));
        assert!(perr("rss_growth<10MB").contains("per hour"));
        assert!(perr("rss_growth<10XB/h").contains("size unit"));
        assert!(perr("p95[x]<1s").contains("takes no [NAME]"));
        assert!(perr("rss_growth[]<1MB/h").contains("brackets"));
        assert!(perr("rate>abc").contains("not a number"));
        assert!(perr("<1s").contains("missing metric"));
    }

    fn measured() -> Measured {
        Measured {
            latency_ms: Some([10.0, 20.0, 25.0, 40.0, 90.0, 120.0, 12.0]),
            overhead_ms: Some([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.5]),
            attempts: 1000,
            errors: 2,
            lost: Some(1),
            stuck: Some(0),
            rate: Some(950.0),
            rejected_429: 30,
            dropped: 0,
            late: 0,
            growth: vec![
                ("orchestrator".into(), 2e6, 0.5, 0.0),
                ("arm".into(), 20e6, 0.0, 0.0),
            ],
            leaks: Some(0),
        }
    }

    #[test]
    fn judges_against_measurements() {
        let m = measured();
        let pass = |s: &str| t(s).judge(&m).passed;
        assert!(pass("p95<30ms"));
        assert!(!pass("p99<30ms"));
        assert!(pass("p99<=40ms"));
        assert!(pass("overhead_p95<=3ms"));
        assert!(!pass("overhead_p99<4ms"));
        assert!(pass("errors<0.5%"), "2/1000 = 0.2%");
        assert!(!pass("errors<0.1%"));
        assert!(!pass("lost==0"));
        assert!(pass("stuck==0"));
        assert!(!pass("rate>=1000"));
        assert!(pass("rate>=900"));
        assert!(pass("rejected_429<5%"), "30/1000 = 3%");
        assert!(!pass("rejected_429<10"));
        assert!(!pass("rss_growth<10MB/h"), "the arm grows 20 MB/h");
        assert!(pass("rss_growth[orchestrator]<10MB/h"));
        assert!(pass("leak==0"));
        let verdict = t("p99<30ms").judge(&m);
        assert_eq!(verdict.measured, Some(40.0));
        assert_eq!(verdict.detail, "p99 = 40.0 ms");
        let missing = t("rss_growth[nope]<1MB/h").judge(&m);
        assert!(!missing.passed);
        assert!(missing.detail.contains("no sampled process named `nope`"));
    }

    #[test]
    fn unmeasured_metrics_fail_with_a_reason() {
        let m = Measured::default();
        let v = t("lost==0").judge(&m);
        assert!(!v.passed);
        assert!(v.detail.contains("not measured"));
        assert!(t("errors==0").judge(&m).passed, "no attempts, no errors");
    }
}
