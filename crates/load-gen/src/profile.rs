//! Arrival-rate profiles for the open model: constant, ramping stages, and
//! the staircase of `--find-knee`. A profile is a list of segments, each a
//! linear ramp of the arrival rate; `Arrivals` yields the exact send time of
//! every arrival (the inverse of the cumulative arrival count).

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Segment {
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Arrivals per second at the segment's start and end.
    pub from: f64,
    pub to: f64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Segment {
    fn arrivals(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }

    /// Time into the segment at which `m` arrivals have accumulated.
    fn time_of(&self, m: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        if d == 0.0 {
            return 0.0;
        }
        let k = (self.to - self.from) / d;
        // from·x + k·x²/2 = m, in the form stable for every k (also k = 0).
        let root = (self.from * self.from + 2.0 * k * m).max(0.0).sqrt();
        let denominator = self.from + root;
        if denominator <= 0.0 {
            0.0
        } else {
            (2.0 * m / denominator).min(d)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub segments: Vec<Segment>,
}

impl Profile {
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self {
            segments: vec![Segment {
                duration,
                from: rate,
                to: rate,
            }],
        }
    }

    /// k6's ramping-arrival-rate: from `start_rate`, ramp linearly to each
    /// stage's target over its duration.
    pub fn stages(start_rate: f64, stages: &[Stage]) -> Self {
        let mut from = start_rate;
        let segments = stages
            .iter()
            .map(|s| {
                let segment = Segment {
                    duration: s.duration,
                    from,
                    to: s.target,
                };
                from = s.target;
                segment
            })
            .collect();
        Self { segments }
    }

    /// Constant steps: `start`, `start + step`, ... up to `max`, each `hold` long.
    pub fn staircase(start: f64, step: f64, max: f64, hold: Duration) -> Self {
        let mut segments = Vec::new();
        let mut rate = start;
        while rate <= max + 1e-9 && segments.len() < 10_000 {
            segments.push(Segment {
                duration: hold,
                from: rate,
                to: rate,
            });
            if step <= 0.0 {
                break;
            }
            rate += step;
        }
        Self { segments }
    }

    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Arrivals offered in the first `t` seconds (the integral of the rate).
    pub fn arrivals_before(&self, t: f64) -> f64 {
        let mut start = 0.0;
        let mut total = 0.0;
        for s in &self.segments {
            let d = s.duration.as_secs_f64();
            if t >= start + d {
                total += s.arrivals();
            } else {
                let x = (t - start).max(0.0);
                let k = if d > 0.0 { (s.to - s.from) / d } else { 0.0 };
                total += s.from * x + k * x * x / 2.0;
                break;
            }
            start += d;
        }
        total
    }

    /// The offered arrival rate `t` seconds into the run.
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for s in &self.segments {
            let d = s.duration.as_secs_f64();
            if t < start + d {
                return s.from + (s.to - s.from) * (t - start) / d;
            }
            start += d;
        }
        0.0
    }

    pub fn arrivals(&self) -> Arrivals<'_> {
        Arrivals {
            profile: self,
            segment: 0,
            segment_start: 0.0,
            before_segment: 0.0,
            n: 0,
        }
    }
}

/// Iterator over send times (seconds from the start), in order.
pub struct Arrivals<'a> {
    profile: &'a Profile,
    segment: usize,
    segment_start: f64,
    before_segment: f64,
    n: u64,
}

impl Iterator for Arrivals<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        loop {
            let s = self.profile.segments.get(self.segment)?;
            let m = self.n as f64 - self.before_segment;
            // Arrival n happens when the cumulative count reaches n (the
            // first at t = 0); it belongs to this segment if that is inside it.
            if m < s.arrivals() - 1e-9 {
                self.n += 1;
                return Some(self.segment_start + s.time_of(m));
            }
            self.before_segment += s.arrivals();
            self.segment_start += s.duration.as_secs_f64();
            self.segment += 1;
        }
    }
}

/// One `DURATION:TARGET` stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stage {
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub target: f64,
}

/// Parses `30s:100,60s:1000`.
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, String> {
    let stages: Vec<Stage> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (d, r) = s
                .split_once(':')
                .ok_or_else(|| format!("stage `{s}`: expected DURATION:RATE, e.g. 30s:100"))?;
            let duration = humantime::parse_duration(d.trim())
                .map_err(|e| format!("stage `{s}`: duration `{d}`: {e}"))?;
            let target: f64 = r
                .trim()
                .trim_end_matches("/s")
                .parse()
                .map_err(|_| format!("stage `{s}`: rate `{r}` is not a number"))?;
            if !target.is_finite() || target < 0.0 {
                return Err(format!("stage `{s}`: rate must be ≥ 0"));
            }
            Ok(Stage { duration, target })
        })
        .collect::<Result<_, _>>()?;
    if stages.is_empty() {
        return Err("no stages given".into());
    }
    Ok(stages)
}

/// Parses a rate: `1000`, `1000/s`, `60000/min`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per) = if let Some(n) = text.strip_suffix("/s") {
        (n, 1.0)
    } else if let Some(n) = text
        .strip_suffix("/min")
        .or_else(|| text.strip_suffix("/m"))
    {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a rate (e.g. 1000 or 1000/s)"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{text}`: the rate must be > 0"));
    }
    Ok(value / per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let p = Profile::constant(100.0, Duration::from_secs(2));
        let times: Vec<f64> = p.arrivals().collect();
        assert_eq!(times.len(), 200);
        assert!((times[1] - 0.01).abs() < 1e-9);
        assert!((times[199] - 1.99).abs() < 1e-9);
    }

    #[test]
    fn ramps_follow_the_integral_of_the_rate() {
        // 0 → 100/s over 10 s: 500 arrivals, half of them in the last 2.93 s.
        let p = Profile::stages(0.0, &parse_stages("10s:100,5s:100,5s:0").unwrap());
        let times: Vec<f64> = p.arrivals().collect();
        let expected = p.arrivals_before(f64::INFINITY);
        assert_eq!(expected, 500.0 + 500.0 + 250.0);
        assert!(
            (times.len() as f64 - expected).abs() <= 1.0,
            "{}",
            times.len()
        );
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");
        let in_first_7_07s = times.iter().filter(|t| **t < 50f64.sqrt()).count();
        assert!((in_first_7_07s as i64 - 250).abs() <= 1, "{in_first_7_07s}");
        let plateau = times.iter().filter(|t| (10.0..15.0).contains(*t)).count();
        assert!((plateau as i64 - 500).abs() <= 1, "{plateau}");
        assert!(*times.last().unwrap() < 20.0);
        assert!((p.rate_at(5.0) - 50.0).abs() < 1e-9);
        assert!((p.arrivals_before(50f64.sqrt()) - 250.0).abs() < 1e-9);
        assert!((p.arrivals_before(12.0) - 700.0).abs() < 1e-9);
        assert!((p.arrivals_before(99.0) - expected).abs() < 1e-9);
        assert!((p.rate_at(17.5) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn staircase_steps_up_to_the_maximum() {
        let p = Profile::staircase(100.0, 50.0, 200.0, Duration::from_secs(10));
        let rates: Vec<f64> = p.segments.iter().map(|s| s.from).collect();
        assert_eq!(rates, [100.0, 150.0, 200.0]);
        assert_eq!(p.duration(), Duration::from_secs(30));
    }

    #[test]
    fn stage_and_rate_syntax() {
        let s = parse_stages("30s:100, 1m:1000/s").unwrap();
        assert_eq!(s[1].duration, Duration::from_secs(60));
        assert_eq!(s[1].target, 1000.0);
        assert!(parse_stages("30s").unwrap_err().contains("DURATION:RATE"));
        assert!(parse_stages("3x:1").unwrap_err().contains("duration"));
        assert_eq!(parse_rate("600/min").unwrap(), 10.0);
        assert!(parse_rate("0").is_err());
    }
}
