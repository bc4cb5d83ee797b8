//! The Grafana dashboards (deploy/monitoring/dashboards/*.json): the lint,
//! and their queries with Grafana's variables replaced so that Prometheus
//! can parse and run them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::prom::promql;

pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

/// One PromQL query of a dashboard, where it lives, and the same with the
/// variables replaced.
#[derive(Debug, Clone)]
pub struct Query {
    /// `slo.json panel 3 "Task success (7d)" A`, or `… variable job`.
    pub at: String,
    /// A name Prometheus accepts as a recorded series, for parse errors.
    pub record_name: String,
    pub expr: String,
    /// Whether it must return data (panel queries) or only name existing
    /// series (variable queries).
    pub panel: bool,
}

pub fn load(dir: &Path) -> Result<Vec<Dashboard>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let json = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            Ok(Dashboard {
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                json,
            })
        })
        .collect()
}

/// Grafana's built-in variables, and what the checks put in their place.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__range", "1d"),
    ("__interval_ms", "60000"),
    ("__range_s", "86400"),
];

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// The dashboard's template variables: (name, value used by the checks).
fn variables(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let name = v["name"].as_str()?.to_owned();
            let value = v["allValue"].as_str().unwrap_or(".+").to_owned();
            Some((name, value))
        })
        .collect()
}

fn is_variable_ref(text: &str) -> bool {
    text.starts_with('$')
}

/// Replaces `$name`, `${name}` and `[[name]]`; names no known variable
/// stay as they are (and are reported by the lint).
fn substitute(expr: &str, vars: &[(String, String)]) -> (String, Vec<String>) {
    let mut out = String::with_capacity(expr.len());
    let mut unknown = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let (name, end) = if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
            let close = chars[i..].iter().position(|c| *c == '}').map(|p| p + i);
            match close {
                Some(c) => (chars[i + 2..c].iter().collect::<String>(), c + 1),
                None => (String::new(), i + 1),
            }
        } else if chars[i] == '$' {
            let len = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            (chars[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
        } else if chars[i] == '[' && chars.get(i + 1) == Some(&'[') {
            let rest: String = chars[i + 2..].iter().collect();
            match rest.find("]]") {
                Some(p) => (rest[..p].to_owned(), i + 2 + rest[..p].chars().count() + 2),
                None => (String::new(), i + 1),
            }
        } else {
            (String::new(), i + 1)
        };
        if name.is_empty() {
            out.extend(&chars[i..end]);
        } else {
            let name = name.split(':').next().unwrap_or_default().to_owned();
            let value = BUILTINS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| {
                    vars.iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.clone())
                });
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    unknown.push(name);
                    out.extend(&chars[i..end]);
                }
            }
        }
        i = end;
    }
    (out, unknown)
}

/// `label_values(<selector>, label)` → the selector.
fn label_values_selector(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim().to_owned())
}

fn record_name(dashboard: &str, rest: &str) -> String {
    format!("dashboard:{dashboard}:{rest}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The queries of every dashboard, variables replaced.
pub fn queries(dashboards: &[Dashboard]) -> Vec<Query> {
    let mut all = Vec::new();
    for dashboard in dashboards {
        let stem = dashboard.file.trim_end_matches(".json");
        let vars = variables(&dashboard.json);
        for var in dashboard.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if var["type"] != "query" {
                continue;
            }
            let text = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap_or_default();
            let name = var["name"].as_str().unwrap_or_default();
            let expr = label_values_selector(text).unwrap_or_else(|| text.to_owned());
            all.push(Query {
                at: format!("{} variable {name}", dashboard.file),
                record_name: record_name(stem, &format!("var_{name}")),
                expr: substitute(&expr, &vars).0,
                panel: false,
            });
        }
        for panel in panels(&dashboard.json) {
            let id = panel["id"].as_i64().unwrap_or_default();
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let ref_id = target["refId"].as_str().unwrap_or("?");
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                all.push(Query {
                    at: format!("{} panel {id} \"{title}\" {ref_id}", dashboard.file),
                    record_name: record_name(stem, &format!("panel{id}:{ref_id}")),
                    expr: substitute(expr, &vars).0,
                    panel: true,
                });
            }
        }
    }
    all
}

/// The literal values of `instance` matchers (values holding a variable
/// are fine).
fn hard_coded_instances(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("instance") {
        let before_ok = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let after = rest[at + "instance".len()..].trim_start();
        rest = &rest[at + "instance".len()..];
        if !before_ok {
            continue;
        }
        let Some(op_end) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| after.strip_prefix(op))
        else {
            continue;
        };
        let value = op_end.trim_start();
        let Some(quote) = value
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\'' | '`'))
        else {
            continue;
        };
        let literal: String = value[1..].chars().take_while(|c| *c != quote).collect();
        if !literal.contains('$') && !literal.contains("[[") {
            found.push(literal);
        }
    }
    found
}

/// Panel ids unique, a well-formed model, a datasource variable used by
/// every panel and query, known variables only, no hard-coded instance or
/// host, unique dashboard uids.
pub fn lint(dashboards: &[Dashboard]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for dashboard in dashboards {
        let d = &dashboard.json;
        let file = &dashboard.file;
        let mut report = |p: String| problems.push(format!("{file}: {p}"));
        for key in ["uid", "title"] {
            if d[key].as_str().is_none_or(str::is_empty) {
                report(format!("no `{key}`"));
            }
        }
        if let Some(uid) = d["uid"].as_str()
            && !uids.insert(uid.to_owned())
        {
            report(format!("uid `{uid}` is used by another dashboard"));
        }
        if !d["schemaVersion"].is_u64() {
            report("no numeric `schemaVersion`".to_owned());
        }
        if !d["panels"].is_array() {
            report("no `panels` array".to_owned());
        }
        let vars = variables(d);
        let datasource_vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["type"] == "datasource" && v["query"] == "prometheus")
            .filter_map(|v| v["name"].as_str())
            .collect();
        if datasource_vars.is_empty() {
            report("no Prometheus datasource variable in templating".to_owned());
        }
        let uses_variable = |ds: &Value| {
            ds["uid"].as_str().is_some_and(|uid| {
                is_variable_ref(uid)
                    && datasource_vars
                        .iter()
                        .any(|v| uid == format!("${v}") || uid == format!("${{{v}}}"))
            })
        };
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] == "query" && !uses_variable(&var["datasource"]) {
                report(format!(
                    "variable {} does not query through the datasource variable",
                    var["name"]
                ));
            }
        }
        let mut ids = BTreeSet::new();
        for panel in panels(d) {
            let title = panel["title"].as_str().unwrap_or_default();
            let Some(id) = panel["id"].as_u64() else {
                report(format!("panel \"{title}\" has no numeric id"));
                continue;
            };
            if !ids.insert(id) {
                report(format!("panel id {id} is used twice"));
            }
            if !panel["gridPos"].is_object() {
                report(format!("panel {id} has no gridPos"));
            }
            if panel["type"] == "row" {
                continue;
            }
            if !uses_variable(&panel["datasource"]) {
                report(format!(
                    "panel {id} \"{title}\" does not use the datasource variable"
                ));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                report(format!("panel {id} \"{title}\" has no query"));
            }
            let mut ref_ids = BTreeSet::new();
            for target in &targets {
                let ref_id = target["refId"].as_str().unwrap_or_default().to_owned();
                if ref_id.is_empty() || !ref_ids.insert(ref_id.clone()) {
                    report(format!("panel {id}: refId `{ref_id}` missing or repeated"));
                }
                if !target["datasource"].is_null() && !uses_variable(&target["datasource"]) {
                    report(format!(
                        "panel {id} {ref_id}: the query does not use the datasource variable"
                    ));
                }
                let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) else {
                    report(format!("panel {id} {ref_id}: no PromQL `expr`"));
                    continue;
                };
                let (substituted, unknown) = substitute(expr, &vars);
                for name in unknown {
                    report(format!("panel {id} {ref_id}: unknown variable ${name}"));
                }
                for value in hard_coded_instances(expr) {
                    report(format!(
                        "panel {id} {ref_id}: hard-coded instance \"{value}\"; use a variable"
                    ));
                }
                if let Err(e) = promql::selectors(&substituted) {
                    report(format!("panel {id} {ref_id}: {e:#}"));
                }
            }
        }
        let text = d.to_string();
        for host in ["127.0.0.1", "localhost", "0.0.0.0"] {
            if text.contains(host) {
                report(format!(
                    "names the host `{host}`; dashboards must not hard-code instances"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dashboard(json: Value) -> Dashboard {
        Dashboard {
            file: "d.json".to_owned(),
            json,
        }
    }

    fn good() -> Value {
        serde_json::json!({
            "uid": "d", "title": "D", "schemaVersion": 39,
            "templating": {"list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "job", "type": "query", "allValue": ".+",
                 "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "query": {"query": "label_values(octollm_build_info, job)"}}
            ]},
            "panels": [
                {"id": 1, "type": "row", "title": "r", "gridPos": {}},
                {"id": 2, "type": "timeseries", "title": "t", "gridPos": {},
                 "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "targets": [{"refId": "A", "expr": "rate(x{job=~\"$job\"}[$__rate_interval])"}]}
            ]
        })
    }

    #[test]
    fn a_good_dashboard_passes_and_yields_its_queries() {
        let dashboards = [dashboard(good())];
        assert_eq!(lint(&dashboards), Vec::<String>::new());
        let queries = queries(&dashboards);
        assert_eq!(queries.len(), 2);
        assert_eq!(queries[0].expr, "octollm_build_info");
        assert!(!queries[0].panel);
        assert_eq!(queries[1].expr, "rate(x{job=~\".+\"}[5m])");
        assert_eq!(queries[1].record_name, "dashboard:d:panel2:A");
    }

    #[test]
    fn problems_are_named() {
        let mut json = good();
        json["panels"][1]["id"] = 1.into();
        json["panels"][1]["datasource"]["uid"] = "P1809F7CD0C75ACF3".into();
        json["panels"][1]["targets"][0]["expr"] =
            "rate(x{instance=\"127.0.0.1:8000\"}[$window])".into();
        let problems = lint(&[dashboard(json)]).join("\n");
        for needle in [
            "panel id 1 is used twice",
            "does not use the datasource variable",
            "unknown variable $window",
            "hard-coded instance \"127.0.0.1:8000\"",
            "names the host `127.0.0.1`",
        ] {
            assert!(
                problems.contains(needle),
                "{needle} missing from:\n{problems}"
            );
        }
    }

    #[test]
    fn instance_matchers_must_hold_a_variable() {
        assert_eq!(
            hard_coded_instances(
                r#"up{instance="a:1"} + up{instance=~"$instance"} + x{my_instance="b"}"#
            ),
            ["a:1"]
        );
    }

    #[test]
    fn substitutes_all_three_syntaxes() {
        let vars = vec![("job".to_owned(), ".+".to_owned())];
        assert_eq!(
            substitute(
                "a{job=~\"$job\",x=~\"${job}\",y=~\"[[job]]\"}[$__rate_interval]",
                &vars
            ),
            (
                "a{job=~\".+\",x=~\".+\",y=~\".+\"}[5m]".to_owned(),
                Vec::new()
            )
        );
    }
}
