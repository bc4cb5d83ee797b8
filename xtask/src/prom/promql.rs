//! PromQL as a tree: the series selectors of an expression (the metric names
//! and label matchers the live metric contract looks up), its range windows,
//! and a walk over every node that `compress` uses to rewrite durations.
//!
//! Parsing is `promql-parser`'s, which follows Prometheus' grammar and type
//! checks; promtool still runs over every rule and dashboard query, so a
//! difference between the two parsers shows up there.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use promql_parser::label::{self, METRIC_NAME};
use promql_parser::parser::{
    self as pp, AggregateExpr, BinaryExpr, Expr, ParenExpr, SubqueryExpr, UnaryExpr, VectorSelector,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl From<&label::MatchOp> for MatchOp {
    fn from(op: &label::MatchOp) -> Self {
        match op {
            label::MatchOp::Equal => MatchOp::Equal,
            label::MatchOp::NotEqual => MatchOp::NotEqual,
            label::MatchOp::Re(_) => MatchOp::Regex,
            label::MatchOp::NotRe(_) => MatchOp::NotRegex,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    /// The value as written (for a regex, the pattern, unanchored).
    pub value: String,
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.label, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// One instant or range vector selector, without its range, offset or `@`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    /// The metric name, from before the braces or from `__name__="…"`.
    pub metric: Option<String>,
    /// The matchers inside the braces (a `__name__="…"` one excluded), in
    /// the order written.
    pub matchers: Vec<Matcher>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(metric) = &self.metric {
            f.write_str(metric)?;
        }
        if self.matchers.is_empty() && self.metric.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl TryFrom<&VectorSelector> for Selector {
    type Error = anyhow::Error;

    fn try_from(vs: &VectorSelector) -> Result<Self> {
        if !vs.matchers.or_matchers.is_empty() {
            bail!("`or` between label matchers ({vs}) is not Prometheus PromQL");
        }
        let mut metric = vs.name.clone();
        let mut matchers = Vec::new();
        for m in &vs.matchers.matchers {
            let op = MatchOp::from(&m.op);
            if m.name == METRIC_NAME && op == MatchOp::Equal {
                metric.get_or_insert_with(|| m.value.clone());
            } else {
                matchers.push(Matcher {
                    label: m.name.clone(),
                    op,
                    value: m.value.clone(),
                });
            }
        }
        Ok(Self { metric, matchers })
    }
}

/// Parses `expr` as PromQL; the error names the expression and the reason.
pub fn parse(expr: &str) -> Result<Expr> {
    pp::parse(expr).map_err(|reason| anyhow!("not valid PromQL: {reason}: `{}`", expr.trim()))
}

/// Calls `visit` on every node of `ast`, parents before children, operands
/// left to right: aggregations (their parameter too, as in `topk(scalar(k), x)`),
/// unary and binary operations, parentheses, function arguments, subqueries,
/// matrix and vector selectors, number and string literals.
pub fn for_each_node(ast: &mut Expr, visit: &mut dyn FnMut(&mut Expr)) {
    visit(ast);
    match ast {
        Expr::Aggregate(AggregateExpr { expr, param, .. }) => {
            if let Some(param) = param {
                for_each_node(param, visit);
            }
            for_each_node(expr, visit);
        }
        Expr::Binary(BinaryExpr { lhs, rhs, .. }) => {
            for_each_node(lhs, visit);
            for_each_node(rhs, visit);
        }
        Expr::Unary(UnaryExpr { expr })
        | Expr::Paren(ParenExpr { expr })
        | Expr::Subquery(SubqueryExpr { expr, .. }) => for_each_node(expr, visit),
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                for_each_node(arg, visit);
            }
        }
        // Leaves. The parser never builds an `Extension` (a node for
        // callers' own expression types), so it has no children to visit.
        Expr::MatrixSelector(_)
        | Expr::VectorSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => {}
    }
}

/// Every selector of `expr`, in order of appearance (duplicates removed).
pub fn selectors(expr: &str) -> Result<Vec<Selector>> {
    let mut ast = parse(expr)?;
    let mut found: Vec<Selector> = Vec::new();
    let mut error = None;
    for_each_node(&mut ast, &mut |node| {
        let vs = match node {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return,
        };
        match Selector::try_from(vs) {
            Ok(selector) if !found.contains(&selector) => found.push(selector),
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// The metric names `expr` selects (a recording rule's output among them),
/// in order of appearance, each once.
pub fn metric_names(expr: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for name in selectors(expr)?.into_iter().filter_map(|s| s.metric) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The range windows of `expr`, in order of appearance: each range
/// selector's `[w]` and each subquery's range (`[w:step]`). Steps, offsets
/// and `@` timestamps are not windows and are left out.
pub fn ranges(expr: &str) -> Result<Vec<Duration>> {
    let mut ast = parse(expr)?;
    let mut found = Vec::new();
    for_each_node(&mut ast, &mut |node| match node {
        Expr::MatrixSelector(ms) => found.push(ms.range),
        Expr::Subquery(sq) => found.push(sq.range),
        _ => {}
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(expr: &str) -> Vec<String> {
        selectors(expr)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn finds_metrics_and_matchers() {
        assert_eq!(shown("up == 0"), ["up"]);
        assert_eq!(
            shown(
                r#"sum by (job, route) (rate(octollm_http_requests_total{status!~"5..", route!~"/metrics|/ready"}[5m]))"#
            ),
            [r#"octollm_http_requests_total{status!~"5..", route!~"/metrics|/ready"}"#]
        );
        assert_eq!(
            shown("histogram_quantile(0.95, sum by (job, le) (rate(x_bucket[5m])))"),
            ["x_bucket"]
        );
    }

    #[test]
    fn skips_label_lists_keywords_and_numbers() {
        let expr = r#"
            job:octollm_task_queue_depth:max > 50
            and on (job) deriv(job:octollm_task_queue_depth:max[15m]) > 0
            or sum without (instance) (a offset 5m) / ignoring (state) group_left (le) b
            unless max(c) by (job) > bool 1e-3 * Inf + NaN
        "#;
        assert_eq!(
            shown(expr),
            ["job:octollm_task_queue_depth:max", "a", "b", "c"]
        );
        assert_eq!(shown("time() - max by (store) (m) > 25 * 3600"), ["m"]);
        assert_eq!(
            shown("absent(octollm_backup_last_success_timestamp_seconds)"),
            ["octollm_backup_last_success_timestamp_seconds"]
        );
        assert_eq!(shown("deriv(q[15m:1m]) > 0.5"), ["q"]);
    }

    #[test]
    fn names_in_braces_and_strings() {
        assert_eq!(
            shown(r#"{__name__="up", job='a\'b'} + label_replace(m, "dst", "$1", "src", "(.*)")"#),
            [r#"up{job="a'b"}"#, "m"]
        );
        assert_eq!(shown(r#"{job=~".+"}"#), [r#"{job=~".+"}"#]);
    }

    #[test]
    fn offsets_and_at_modifiers_are_not_selectors() {
        assert_eq!(
            shown(r#"rate(x{job="a"}[5m] offset 1h) - rate(x{job="a"}[5m] offset -30m)"#),
            [r#"x{job="a"}"#]
        );
        assert_eq!(
            shown("max_over_time(y[10m] @ start()) / z @ end() + w @ 123"),
            ["y", "z", "w"]
        );
        assert_eq!(
            ranges("rate(x[5m] offset 1h) + y @ 123").unwrap(),
            [Duration::from_secs(300)]
        );
    }

    #[test]
    fn subqueries_and_aggregation_parameters_are_walked() {
        let expr = "max_over_time(rate(a[5m])[1h:30s] offset 10m) + topk(scalar(k), -sum_over_time(b[2m:]))";
        assert_eq!(shown(expr), ["a", "k", "b"]);
        assert_eq!(
            ranges(expr).unwrap(),
            [
                Duration::from_secs(3600),
                Duration::from_secs(300),
                Duration::from_secs(120),
            ]
        );
        assert_eq!(
            metric_names("r:x:rate5m / ignoring (le) r:x:rate5m + on () vector(1) * q").unwrap(),
            ["r:x:rate5m", "q"]
        );
        assert!(metric_names(r#"{job="a"}"#).unwrap().is_empty());
    }

    #[test]
    fn rejects_broken_input() {
        assert!(selectors("sum(rate(x[5m])").is_err());
        assert!(selectors(r#"x{job="unterminated}"#).is_err());
        assert!(selectors("x{job}").is_err());
        // promql-parser's own extension, not Prometheus'.
        assert!(selectors(r#"x{a="1" or b="2"}"#).is_err());
        // Type checks too: rate() takes a range vector.
        assert!(selectors("rate(x)").is_err());
    }

    #[test]
    fn a_parse_error_names_the_expression_and_the_reason() {
        let message = format!("{:#}", selectors("rate(x[5m]) +").unwrap_err());
        assert!(message.starts_with("not valid PromQL: "), "{message}");
        assert!(message.ends_with(": `rate(x[5m]) +`"), "{message}");
        let message = format!("{:#}", selectors("rate(x)").unwrap_err());
        assert_eq!(
            message,
            "not valid PromQL: expected type matrix in call to function 'rate', got vector: `rate(x)`"
        );
    }
}
