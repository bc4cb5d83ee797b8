//! Compressed time: a copy of the alert rules on which the whole suite runs
//! in minutes instead of hours.
//!
//! `cargo xtask deploy --compress-time FACTOR` runs Prometheus with a 2 s
//! scrape and 1 s evaluation interval, Alertmanager with a 1 s `group_wait`
//! and a 2 s `group_interval`, and loads a copy of `deploy/monitoring/rules/*.yml`
//! (written to `<state>/config/rules/`) in which
//!
//! - every alert's `for:` is divided by FACTOR (`for: 5m` at 30 is `10s`);
//! - every range window and subquery range is divided by FACTOR too
//!   (`rate(x[5m])` becomes `rate(x[10s])`), never below
//!   [`MIN_WINDOW_SCRAPES`] scrape intervals so a `rate()` always has samples;
//! - a rule group's own `interval:` is divided by FACTOR, never below the
//!   evaluation interval.
//!
//! Why the windows too: with `[5m]` windows and a 10 s `for:`, how long a
//! fault takes to push a 5-minute rate over its threshold would dominate the
//! time to page, and the bound `for + scrape + evaluation + group_wait`
//! would measure the fault generator rather than the alerting path. Scaled
//! windows keep every rule the same function of time, only faster: a rate or
//! ratio threshold means the same thing, and a fault that holds a rate over
//! its threshold makes the expression true within a scrape or two. The cost
//! is that `increase(…[w]) > N` thresholds (the LLM spend alerts) now need
//! the same amount spent in a window FACTOR times shorter: their scenarios
//! inject that much.
//!
//! Thresholds, labels and annotations are untouched: the alerts that page
//! are the production alerts, on a faster clock.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_yaml_ng::Value;

use crate::prom::rules::parse_duration;

/// A range window never shrinks below this many scrape intervals.
pub const MIN_WINDOW_SCRAPES: u32 = 4;

/// The compressed Prometheus and Alertmanager timings (the strings go into
/// their configs; see `crate::stack::launch::Timings`). Scrapes stay at 2 s:
/// the scrape timeout equals the interval, and the postgres exporter takes
/// over a second to report `pg_up 0` when PostgreSQL is down; at 1 s the
/// scrape would time out and ServiceDown would fire instead of PostgresDown.
pub const SCRAPE_INTERVAL: &str = "2s";
pub const EVALUATION_INTERVAL: &str = "1s";
pub const GROUP_WAIT: &str = "1s";
pub const GROUP_INTERVAL: &str = "2s";

/// How durations shrink.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    pub factor: u32,
    pub scrape_interval: Duration,
    pub evaluation_interval: Duration,
}

impl Compression {
    /// Windows divided by `factor` on a Prometheus with these intervals.
    pub fn of(factor: u32, scrape_interval: &str, evaluation_interval: &str) -> Result<Self> {
        Ok(Self {
            factor,
            scrape_interval: parse_duration(scrape_interval)?,
            evaluation_interval: parse_duration(evaluation_interval)?,
        })
    }

    fn scale(&self, d: Duration, floor: Duration) -> Duration {
        if d.is_zero() {
            return d;
        }
        (d / self.factor).max(floor)
    }

    pub fn for_window(&self, d: Duration) -> Duration {
        self.scale(d, Duration::ZERO)
    }

    pub fn range(&self, d: Duration) -> Duration {
        self.scale(d, self.scrape_interval * MIN_WINDOW_SCRAPES)
    }

    pub fn group_interval(&self, d: Duration) -> Duration {
        self.scale(d, self.evaluation_interval)
    }
}

/// A duration as Prometheus writes it: whole seconds when exact, else ms.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Divides every range window and subquery range of a PromQL expression.
/// Brackets inside string literals (label values) are left alone.
pub fn scale_expr(expr: &str, c: &Compression) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut chars = expr.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        match quote {
            Some(q) => {
                out.push(ch);
                if ch == '\\' {
                    if let Some((_, next)) = chars.next() {
                        out.push(next);
                    }
                } else if ch == q {
                    quote = None;
                }
            }
            None if ch == '"' || ch == '\'' || ch == '`' => {
                quote = Some(ch);
                out.push(ch);
            }
            None if ch == '[' => {
                let rest = &expr[i + 1..];
                let scaled = rest.find(']').and_then(|end| {
                    let inner = &rest[..end];
                    scale_range(inner, c).map(|s| (s, end))
                });
                match scaled {
                    Some((text, end)) => {
                        out.push('[');
                        out.push_str(&text);
                        out.push(']');
                        // Skip the inner text and the closing bracket.
                        while chars.peek().is_some_and(|(j, _)| *j <= i + 1 + end) {
                            chars.next();
                        }
                    }
                    None => out.push(ch),
                }
            }
            None => out.push(ch),
        }
    }
    out
}

/// `5m` or a subquery's `1h:5m` (the step may be empty), scaled.
fn scale_range(inner: &str, c: &Compression) -> Option<String> {
    let inner = inner.trim();
    let (range, step) = match inner.split_once(':') {
        Some((range, step)) => (range, Some(step)),
        None => (inner, None),
    };
    let range = format_duration(c.range(parse_duration(range).ok()?));
    Some(match step {
        None => range,
        Some("") => format!("{range}:"),
        Some(step) => format!(
            "{range}:{}",
            format_duration(c.range(parse_duration(step).ok()?))
        ),
    })
}

/// Rewrites one rule file (YAML text) on compressed time.
pub fn scale_rule_file(text: &str, c: &Compression) -> Result<String> {
    let mut doc: Value = serde_yaml_ng::from_str(text)?;
    let groups = doc
        .get_mut("groups")
        .and_then(Value::as_sequence_mut)
        .context("a rule file has a `groups` list")?;
    for group in groups {
        if let Some(interval) = group.get_mut("interval") {
            let d = parse_duration(interval.as_str().context("group interval")?)?;
            *interval = Value::from(format_duration(c.group_interval(d)));
        }
        let Some(rules) = group.get_mut("rules").and_then(Value::as_sequence_mut) else {
            continue;
        };
        for rule in rules {
            if let Some(expr) = rule.get_mut("expr") {
                let text = expr.as_str().context("expr is a string")?.to_owned();
                *expr = Value::from(scale_expr(&text, c));
            }
            if let Some(for_) = rule.get_mut("for") {
                let d = parse_duration(for_.as_str().context("for: is a string")?)?;
                *for_ = Value::from(format_duration(c.for_window(d)));
            }
        }
    }
    let header = format!(
        "# Generated by `cargo xtask deploy --compress-time {}` from deploy/monitoring/rules: every for:, range window and group interval divided by {} (xtask/src/alert_sim/compress.rs). Do not edit.\n",
        c.factor, c.factor
    );
    Ok(header + &serde_yaml_ng::to_string(&doc)?)
}

/// Writes the compressed copy of every `*.yml` of `source` into `target`
/// (emptied first); returns the concatenated text (part of Prometheus'
/// fingerprint).
pub fn write_scaled_rules(source: &Path, target: &Path, c: &Compression) -> Result<String> {
    if c.factor < 2 {
        bail!(
            "time compression factor must be at least 2, got {}",
            c.factor
        );
    }
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::create_dir_all(target)?;
    let mut entries: Vec<_> = std::fs::read_dir(source)
        .with_context(|| format!("reading {}", source.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    entries.sort();
    let mut all = String::new();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        let scaled =
            scale_rule_file(&text, c).with_context(|| format!("compressing {}", path.display()))?;
        if let Some(name) = path.file_name() {
            std::fs::write(target.join(name), &scaled)?;
        }
        all.push_str(&scaled);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C30: Compression = Compression {
        factor: 30,
        scrape_interval: Duration::from_secs(1),
        evaluation_interval: Duration::from_secs(1),
    };

    #[test]
    fn windows_shrink_with_a_floor_and_strings_are_untouched() {
        assert_eq!(
            scale_expr(
                r#"sum by (job) (rate(x{route!~"/a[5m]"}[5m])) / rate(y[1d]) > 0"#,
                &C30
            ),
            r#"sum by (job) (rate(x{route!~"/a[5m]"}[10s])) / rate(y[2880s]) > 0"#
        );
        // 2m / 30 = 4 s, exactly the floor; 1m / 30 = 2 s is raised to it.
        assert_eq!(
            scale_expr("rate(x[2m]) + rate(x[1m])", &C30),
            "rate(x[4s]) + rate(x[4s])"
        );
        assert_eq!(
            scale_expr("max_over_time(x[1h:5m])", &C30),
            "max_over_time(x[120s:10s])"
        );
        assert_eq!(scale_expr("x[1h:]", &C30), "x[120s:]");
        // Not a duration: left as is.
        assert_eq!(scale_expr("x[$window]", &C30), "x[$window]");
    }

    #[test]
    fn odd_durations_keep_millisecond_precision() {
        let c = Compression { factor: 7, ..C30 };
        assert_eq!(scale_expr("rate(x[1m])", &c), "rate(x[8571ms])");
    }

    #[test]
    fn a_rule_file_gets_scaled_for_intervals_and_windows() {
        let text = "groups:\n  - name: g\n    interval: 1m\n    rules:\n      - alert: A\n        expr: rate(x[5m]) > 1\n        for: 15m\n        labels: { severity: warning }\n      - record: r:x:rate5m\n        expr: rate(x[5m])\n";
        let scaled = scale_rule_file(text, &C30).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&scaled).unwrap();
        let group = &doc["groups"][0];
        assert_eq!(group["interval"], Value::from("2s"));
        assert_eq!(group["rules"][0]["for"], Value::from("30s"));
        assert_eq!(group["rules"][0]["expr"], Value::from("rate(x[10s]) > 1"));
        assert_eq!(
            group["rules"][0]["labels"]["severity"],
            Value::from("warning")
        );
        assert_eq!(group["rules"][1]["expr"], Value::from("rate(x[10s])"));
        assert!(group["rules"][1].get("for").is_none());
    }

    #[test]
    fn the_real_rules_compress_and_still_parse() {
        let source = crate::util::project_root().join("deploy/monitoring/rules");
        let target = std::env::temp_dir().join(format!("octollm-compress-{}", std::process::id()));
        write_scaled_rules(&source, &target, &C30).unwrap();
        let rules = crate::prom::rules::Rules::load(&target).unwrap();
        let down = rules.alert("ServiceDown").unwrap();
        assert_eq!(down.for_duration(), Duration::from_secs(2));
        let errors = rules.alert("HighErrorRate").unwrap();
        assert_eq!(errors.for_duration(), Duration::from_secs(10));
        let sh = xshell::Shell::new().unwrap();
        let files: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        xshell::cmd!(sh, "promtool check rules {files...}")
            .quiet()
            .read()
            .unwrap();
        std::fs::remove_dir_all(&target).unwrap();
    }
}
