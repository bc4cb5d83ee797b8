//! Compressed time: a copy of the alert rules on which the whole suite runs
//! in minutes instead of hours.
//!
//! `cargo xtask deploy --compress-time FACTOR` runs Prometheus with a 2 s
//! scrape and 1 s evaluation interval, Alertmanager with a 1 s `group_wait`
//! and a 2 s `group_interval`, and loads a copy of `deploy/monitoring/rules/*.yml`
//! (written to `<state>/config/rules/`) in which
//!
//! - every alert's `for:` is divided by FACTOR (`for: 5m` at 30 is `10s`);
//! - every range window, subquery range and step, and `offset` is divided
//!   by FACTOR too (`rate(x[5m])` becomes `rate(x[10s])`), never below
//!   [`MIN_WINDOW_SCRAPES`] scrape intervals so a `rate()` always has
//!   samples; `@` timestamps stay. The expression is parsed, rewritten as a
//!   tree, and printed back (one line, label matchers sorted);
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
use promql_parser::parser::{BinModifier, Expr, LabelModifier, Offset};
use serde_yaml_ng::Value;

use crate::prom::promql;
use crate::prom::rules::{parse_duration, yaml_files};

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

    /// `d / factor`, whole milliseconds (what PromQL can write), at least `floor`.
    fn scale(&self, d: Duration, floor: Duration) -> Duration {
        if d.is_zero() {
            return d;
        }
        let ms = (d / self.factor).as_millis();
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).max(floor)
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

/// Divides every range window, subquery range and step, and offset of a
/// PromQL expression (see [`scale_ast`]); an expression that does not parse
/// is returned as it is, for Prometheus to reject with its own message. Use
/// [`try_scale_expr`] to get the parse error instead.
pub fn scale_expr(expr: &str, c: &Compression) -> String {
    try_scale_expr(expr, c).unwrap_or_else(|_| expr.to_owned())
}

/// [`scale_expr`], or why `expr` cannot be scaled: it does not parse, or
/// the scaled tree does not print back to PromQL that parses to the same
/// tree (label matchers may come back sorted; that is all).
pub fn try_scale_expr(expr: &str, c: &Compression) -> Result<String> {
    let mut ast = promql::parse(expr)?;
    scale_ast(&mut ast, c);
    let printed = ast.to_string();
    let mut again = promql::parse(&printed)
        .with_context(|| format!("compressing `{}` printed `{printed}`", expr.trim()))?;
    normalize(&mut ast);
    normalize(&mut again);
    if again != ast {
        bail!(
            "compressing `{}` printed `{printed}`, which reads back differently",
            expr.trim()
        );
    }
    Ok(printed)
}

/// Scales, on every node: a range selector's window, a subquery's range and
/// step, and the offset of any selector or subquery, all with
/// [`Compression::range`] and its floor. An offset is a distance back in
/// time like a window, and is usually paired with one (`x[1h] offset 1h`
/// is the hour before `x[1h]`): scaled alike, the two still abut.
/// `@` timestamps are absolute times and stay as they are.
pub fn scale_ast(ast: &mut Expr, c: &Compression) {
    let offset = |o: &mut Option<Offset>| {
        *o = match o.take() {
            Some(Offset::Pos(d)) => Some(Offset::Pos(c.range(d))),
            Some(Offset::Neg(d)) => Some(Offset::Neg(c.range(d))),
            None => None,
        };
    };
    promql::for_each_node(ast, &mut |node| match node {
        Expr::MatrixSelector(ms) => {
            ms.range = c.range(ms.range);
            offset(&mut ms.vs.offset);
        }
        Expr::VectorSelector(vs) => offset(&mut vs.offset),
        Expr::Subquery(sq) => {
            sq.range = c.range(sq.range);
            sq.step = sq.step.map(|d| c.range(d));
            offset(&mut sq.offset);
        }
        _ => {}
    });
}

/// What printing may change without changing the meaning: the order of
/// label matchers (printed sorted), and an empty `by ()` or `ignoring ()`
/// (printed as nothing).
fn normalize(ast: &mut Expr) {
    promql::for_each_node(ast, &mut |node| match node {
        Expr::VectorSelector(vs) => vs.matchers.matchers.sort_by_key(ToString::to_string),
        Expr::MatrixSelector(ms) => ms.vs.matchers.matchers.sort_by_key(ToString::to_string),
        Expr::Aggregate(agg) => {
            if matches!(&agg.modifier, Some(LabelModifier::Include(by)) if by.is_empty()) {
                agg.modifier = None;
            }
        }
        Expr::Binary(bin) => {
            if let Some(m) = &mut bin.modifier {
                if matches!(&m.matching, Some(LabelModifier::Exclude(l)) if l.is_empty()) {
                    m.matching = None;
                }
                if *m == BinModifier::default() {
                    bin.modifier = None;
                }
            }
        }
        _ => {}
    });
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
                *expr = Value::from(try_scale_expr(&text, c)?);
            }
            if let Some(for_) = rule.get_mut("for") {
                let d = parse_duration(for_.as_str().context("for: is a string")?)?;
                *for_ = Value::from(format_duration(c.for_window(d)));
            }
        }
    }
    let header = format!(
        "# Generated by `cargo xtask deploy --compress-time {}` from deploy/monitoring/rules: every for:, range window and group interval divided by {} (xtask/src/prom/compress.rs). Do not edit.\n",
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
    let mut all = String::new();
    for path in yaml_files(source)? {
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

    /// Each `(expression, compressed at C30)`; printed back by the parser,
    /// so durations come in Prometheus' own units (`48m`, not `2880s`).
    fn assert_scaled(cases: &[(&str, &str)]) {
        for (expr, expected) in cases {
            assert_eq!(scale_expr(expr, &C30), *expected, "{expr}");
        }
    }

    #[test]
    fn windows_shrink_with_a_floor_and_strings_are_untouched() {
        assert_scaled(&[
            (
                r#"sum by (job) (rate(x{route!~"/a[5m]"}[5m])) / rate(y[1d]) > 0"#,
                r#"sum by (job) (rate(x{route!~"/a[5m]"}[10s])) / rate(y[48m]) > 0"#,
            ),
            // 2m / 30 = 4 s, exactly the floor; 1m / 30 = 2 s is raised to it.
            ("rate(x[2m]) + rate(x[1m])", "rate(x[4s]) + rate(x[4s])"),
            ("max_over_time(x[1h:5m])", "max_over_time(x[2m:10s])"),
            ("x[1h:]", "x[2m:]"),
            // Not PromQL: left as is, for Prometheus to say why.
            ("x[$window]", "x[$window]"),
        ]);
        let error = format!("{:#}", try_scale_expr("x[$window]", &C30).unwrap_err());
        assert!(error.contains("not valid PromQL"), "{error}");
    }

    #[test]
    fn odd_durations_keep_millisecond_precision() {
        let c = Compression { factor: 7, ..C30 };
        assert_eq!(scale_expr("rate(x[1m])", &c), "rate(x[8s571ms])");
    }

    #[test]
    fn offsets_shrink_like_windows_and_at_stays() {
        assert_scaled(&[
            (
                "rate(x[1h] offset 1h) - rate(x[1h])",
                "rate(x[2m] offset 2m) - rate(x[2m])",
            ),
            // Instant selectors, negative offsets, and the floor.
            (
                "x offset 5m + y offset -1h + z offset 1m",
                "x offset 10s + y offset -2m + z offset 4s",
            ),
            // `@` is an absolute time: the window shrinks, the timestamp stays.
            (
                "max_over_time(x[10m] @ start())",
                "max_over_time(x[20s] @ start())",
            ),
            (
                "rate(x[5m] @ 123 offset 5m) > x @ end()",
                "rate(x[10s] @ 123.000 offset 10s) > x @ end()",
            ),
        ]);
    }

    #[test]
    fn subqueries_shrink_range_step_and_offset() {
        assert_scaled(&[
            (
                "max_over_time(deriv(rate(x[5m])[1h:1m])[1d:5m] offset 1h)",
                "max_over_time(deriv(rate(x[10s])[2m:4s])[48m:10s] offset 2m)",
            ),
            (
                "quantile_over_time(0.9, (a + b)[30m:] @ 1700000000)",
                "quantile_over_time(0.9, (a + b)[1m:] @ 1700000000.000)",
            ),
        ]);
    }

    #[test]
    fn what_would_print_back_wrong_is_refused() {
        // The parser prints a timestamp before 1970 as 0: refused, not changed.
        let error = format!("{:#}", try_scale_expr("x @ -100", &C30).unwrap_err());
        assert_eq!(
            error,
            "compressing `x @ -100` printed `x @ 0.000`, which reads back differently"
        );
        assert_eq!(scale_expr("x @ -100", &C30), "x @ -100");
        // In a rule file, a rule that cannot be compressed is an error.
        let text =
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x) > 1\n";
        let error = format!("{:#}", scale_rule_file(text, &C30).unwrap_err());
        assert!(error.contains("expected type matrix"), "{error}");
    }

    /// Scaling keeps the expression's structure: the same selectors, and
    /// each window `w` in the same place now `c.range(w)`.
    fn assert_same_structure(expr: &str, c: &Compression) {
        let scaled = try_scale_expr(expr, c).unwrap();
        // The printer sorts label matchers.
        let sorted = |expr: &str| {
            let mut selectors = promql::selectors(expr).unwrap();
            for s in &mut selectors {
                s.matchers.sort();
            }
            selectors
        };
        assert_eq!(sorted(&scaled), sorted(expr), "{expr} -> {scaled}");
        let expected: Vec<Duration> = promql::ranges(expr)
            .unwrap()
            .into_iter()
            .map(|d| c.range(d))
            .collect();
        assert_eq!(
            promql::ranges(&scaled).unwrap(),
            expected,
            "{expr} -> {scaled}"
        );
    }

    #[test]
    fn scaling_keeps_selectors_and_the_place_of_every_window() {
        for expr in [
            r#"sum by (job) (rate(x{b="2", a=~"1|3"}[5m])) / ignoring (le) group_left () y > bool 0.5"#,
            "topk(scalar(k offset 1h), -rate(y[1h] @ 100)) unless on () count_values(\"v\", z)",
            "histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))[1h:1m] offset 5m",
            r#"label_replace(absent(m{job="a\"b"}), "dst", "$1", "src", "(.*)") or vector(1e-3)"#,
            "sum by () (x) + avg without () (y) - 2 ^ -3 ^ 4",
            "a + ignoring () b and ignoring () c > bool on () group_right (l) d",
        ] {
            assert_same_structure(expr, &C30);
        }
        let rules = crate::prom::rules::Rules::load(
            &crate::util::project_root().join("deploy/monitoring/rules"),
        )
        .unwrap();
        let mut checked = 0;
        for (_, rule) in rules.rules() {
            assert_same_structure(&rule.expr, &C30);
            checked += 1;
        }
        assert!(checked > 20, "only {checked} rules");
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
