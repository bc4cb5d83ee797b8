//! Soak support: samples a process's resident memory, open file
//! descriptors and threads from /proc, and fits a least-squares growth
//! slope per hour to each series.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// `NAME=PID` from `--sample-process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub pid: u32,
}

pub fn parse_target(text: &str) -> Result<Target, String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected NAME=PID, e.g. orchestrator=4242"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "`{name}`: a process name is letters, digits, '-', '_' or '.'"
        ));
    }
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("`{pid}` is not a process id"))?;
    Ok(Target {
        name: name.to_owned(),
        pid,
    })
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since sampling began.
    pub t_s: f64,
    pub rss_bytes: u64,
    pub fds: u64,
    pub threads: u64,
}

/// One reading of /proc/PID, or None once the process is gone.
pub fn read(pid: u32, t_s: f64) -> Option<Sample> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(base.join("status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
    };
    let rss_kb = field("VmRSS:").unwrap_or(0);
    let threads = field("Threads:").unwrap_or(0);
    let fds = std::fs::read_dir(base.join("fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(Sample {
        t_s,
        rss_bytes: rss_kb * 1024,
        fds,
        threads,
    })
}

/// A least-squares line through (hours, value).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Fit {
    /// Units per hour.
    pub slope_per_h: f64,
    /// Standard error of the slope (0 with fewer than 3 points).
    pub stderr_per_h: f64,
}

pub fn fit(points: &[(f64, f64)]) -> Fit {
    let n = points.len() as f64;
    if points.len() < 2 {
        return Fit::default();
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return Fit::default();
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    let stderr = if points.len() > 2 {
        let intercept = mean_y - slope * mean_x;
        let residuals: f64 = points
            .iter()
            .map(|p| (p.1 - (intercept + slope * p.0)).powi(2))
            .sum();
        (residuals / (n - 2.0) / sxx).sqrt()
    } else {
        0.0
    };
    Fit {
        slope_per_h: slope,
        stderr_per_h: stderr,
    }
}

/// A leak: sampled for at least ten minutes, with a slope more than three
/// standard errors above zero.
pub const LEAK_MIN_SPAN: Duration = Duration::from_secs(600);
pub const LEAK_T: f64 = 3.0;

pub fn is_leak(fit: &Fit, span_s: f64, points: usize) -> bool {
    span_s >= LEAK_MIN_SPAN.as_secs_f64()
        && points >= 3
        && fit.slope_per_h > 0.0
        && (fit.stderr_per_h == 0.0 || fit.slope_per_h / fit.stderr_per_h > LEAK_T)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessReport {
    pub name: String,
    pub pid: u32,
    pub samples: Vec<Sample>,
    pub span_s: f64,
    pub rss: Fit,
    pub fds: Fit,
    pub threads: Fit,
    pub rss_leak: bool,
    pub fd_leak: bool,
    /// Set when the process went away during the run.
    pub exited_at_s: Option<f64>,
}

impl ProcessReport {
    pub fn new(target: &Target, samples: Vec<Sample>, exited_at_s: Option<f64>) -> Self {
        let hours = |s: &Sample| s.t_s / 3600.0;
        let series = |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            samples.iter().map(|s| (hours(s), f(s))).collect()
        };
        let rss = fit(&series(|s| s.rss_bytes as f64));
        let fds = fit(&series(|s| s.fds as f64));
        let threads = fit(&series(|s| s.threads as f64));
        let span_s = match (samples.first(), samples.last()) {
            (Some(a), Some(b)) => b.t_s - a.t_s,
            _ => 0.0,
        };
        Self {
            name: target.name.clone(),
            pid: target.pid,
            rss_leak: is_leak(&rss, span_s, samples.len()),
            fd_leak: is_leak(&fds, span_s, samples.len()),
            samples,
            span_s,
            rss,
            fds,
            threads,
            exited_at_s,
        }
    }
}

/// Samples `target` every `every` until `stop` resolves.
pub async fn sample(
    target: Target,
    every: Duration,
    started: Instant,
    stop: impl std::future::Future<Output = ()>,
) -> ProcessReport {
    tokio::pin!(stop);
    let mut samples = Vec::new();
    let mut exited = None;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let finishing = tokio::select! {
            _ = ticker.tick() => false,
            () = &mut stop => true,
        };
        let t_s = started.elapsed().as_secs_f64();
        match read(target.pid, t_s) {
            Some(s) => samples.push(s),
            None => {
                exited = Some(t_s);
                break;
            }
        }
        if finishing {
            break;
        }
    }
    if exited.is_some() {
        stop.await;
    }
    ProcessReport::new(&target, samples, exited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_exact() {
        // 1 MB every 6 minutes = 10 MB/h.
        let points: Vec<(f64, f64)> = (0..20)
            .map(|i| (i as f64 * 0.1, 50e6 + i as f64 * 1e6))
            .collect();
        let f = fit(&points);
        assert!((f.slope_per_h - 10e6).abs() < 1.0, "{f:?}");
        assert!(f.stderr_per_h < 1e-3);
        assert!(is_leak(&f, 1900.0, points.len()));
        assert!(!is_leak(&f, 300.0, points.len()), "too short to call");
    }

    #[test]
    fn noise_without_trend_is_no_leak() {
        let points: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64 / 240.0, if i % 2 == 0 { 100.0 } else { 110.0 }))
            .collect();
        let f = fit(&points);
        assert!(!is_leak(&f, 59.0 * 15.0, points.len()), "{f:?}");
    }

    #[test]
    fn reads_this_process() {
        let s = read(std::process::id(), 0.0).unwrap();
        assert!(s.rss_bytes > 1_000_000);
        assert!(s.fds >= 3);
        assert!(s.threads >= 1);
        assert!(read(u32::MAX, 0.0).is_none());
        assert_eq!(
            parse_target("orchestrator=42").unwrap(),
            Target {
                name: "orchestrator".into(),
                pid: 42
            }
        );
        assert!(parse_target("x").is_err());
        assert!(parse_target("a b=1").is_err());
    }
}
