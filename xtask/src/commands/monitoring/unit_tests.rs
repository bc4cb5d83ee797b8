//! The promtool unit tests (deploy/monitoring/tests/*.yml): coverage of
//! every alert, and their run.
//!
//! Every alert needs, in the tests:
//! - an **edge**: in one test group, silent (`exp_alerts` empty) at T minus
//!   one evaluation interval and firing at T. Firing at T means the alert
//!   has been active since at least T minus its `for:`; silent one interval
//!   earlier then means pending. So the pair pins the `for:` window: make it
//!   shorter and the silent case fails, longer and the firing one does.
//! - a **healthy case**: a test group in which it is expected silent at a
//!   time past its `for:` window and never expected to fire.
//!
//! promtool checks the exact labels and annotations of each firing case;
//! this check also insists that they include `runbook_url`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::{Shell, cmd};

use super::rules::{Rules, parse_duration, yaml_files};

#[derive(Debug, Deserialize)]
pub struct TestFile {
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
pub struct TestGroup {
    #[serde(default)]
    pub alert_rule_test: Vec<AlertCase>,
}

#[derive(Debug, Deserialize)]
pub struct AlertCase {
    pub alertname: String,
    pub eval_time: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

impl TestFile {
    fn evaluation_interval(&self) -> Duration {
        self.evaluation_interval
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(Duration::from_secs(60))
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    fn rule_paths(&self) -> Vec<PathBuf> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.rule_files.iter().map(|f| dir.join(f)).collect()
    }
}

pub fn load(dir: &Path) -> Result<Vec<TestFile>> {
    yaml_files(dir)?
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let mut file: TestFile = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("reading test file {}", path.display()))?;
            file.path = path;
            Ok(file)
        })
        .collect()
}

/// What the tests lack; empty when every alert is covered.
pub fn coverage(rules: &Rules, tests: &[TestFile]) -> Vec<String> {
    let mut problems = Vec::new();
    for file in tests {
        problems.extend(check_eval_order(rules, file));
        for group in &file.tests {
            for case in &group.alert_rule_test {
                if rules.alert(&case.alertname).is_none() {
                    problems.push(format!(
                        "{}: tests alert `{}`, which no rule defines",
                        file.name(),
                        case.alertname
                    ));
                }
                if parse_duration(&case.eval_time).is_err() {
                    problems.push(format!(
                        "{}: {}: eval_time `{}` is not a duration",
                        file.name(),
                        case.alertname,
                        case.eval_time
                    ));
                }
            }
        }
    }
    for alert in rules.alerts() {
        let name = alert.name();
        let window = alert.for_duration();
        let mut edge = false;
        let mut healthy = false;
        let mut any = false;
        for file in tests {
            let step = file.evaluation_interval();
            edge |= has_edge(file, name);
            if step > window
                && file
                    .tests
                    .iter()
                    .flat_map(|g| &g.alert_rule_test)
                    .any(|c| c.alertname == name)
            {
                problems.push(format!(
                    "{}: its evaluation interval ({step:?}) is longer than {name}'s `for:` ({window:?}); edges cannot be seen",
                    file.name()
                ));
            }
            for group in &file.tests {
                let cases: Vec<&AlertCase> = group
                    .alert_rule_test
                    .iter()
                    .filter(|c| c.alertname == name)
                    .collect();
                any |= !cases.is_empty();
                let fires = cases.iter().any(|c| !c.exp_alerts.is_empty());
                healthy |= !fires
                    && cases
                        .iter()
                        .any(|c| parse_duration(&c.eval_time).is_ok_and(|t| t >= window.max(step)));
                for case in cases.iter().filter(|c| !c.exp_alerts.is_empty()) {
                    for expected in &case.exp_alerts {
                        if !expected.exp_annotations.contains_key("runbook_url") {
                            problems.push(format!(
                                "{}: {name} at {}: the expected alert has no runbook_url annotation",
                                file.name(),
                                case.eval_time
                            ));
                        }
                    }
                }
            }
        }
        if !any {
            problems.push(format!("{name}: no promtool test"));
            continue;
        }
        if !edge {
            problems.push(format!(
                "{name}: no edge test: a test group where it is silent (`exp_alerts: []`) one evaluation interval before it fires"
            ));
        }
        // A heartbeat's silence is its failure: it has no healthy case.
        let heartbeat = alert.labels.get("severity").map(String::as_str)
            == Some(crate::prom::rules::HEARTBEAT_SEVERITY);
        if !healthy && !heartbeat {
            problems.push(format!(
                "{name}: no healthy case: a test group where it stays silent past its `for:` window ({window:?}) and never fires"
            ));
        }
    }
    problems
}

/// promtool evaluates rule groups in random order unless the test names
/// them all: recording groups must come first.
fn check_eval_order(rules: &Rules, file: &TestFile) -> Vec<String> {
    let mut loaded = Vec::new();
    for path in file.rule_paths() {
        match rules.groups_of(&path) {
            Some(groups) => loaded.extend(groups.iter()),
            None => {
                return vec![format!(
                    "{}: rule file {} is not one of deploy/monitoring/rules",
                    file.name(),
                    path.display()
                )];
            }
        }
    }
    let listed: BTreeSet<&str> = file.group_eval_order.iter().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = loaded.iter().map(|g| g.name.as_str()).collect();
    if listed != wanted {
        return vec![format!(
            "{}: group_eval_order must list exactly the groups of its rule_files ({}), recording groups first",
            file.name(),
            wanted.into_iter().collect::<Vec<_>>().join(", ")
        )];
    }
    let recording = |name: &str| loaded.iter().any(|g| g.name == name && g.is_recording());
    let first_alerting = file.group_eval_order.iter().position(|g| !recording(g));
    let last_recording = file.group_eval_order.iter().rposition(|g| recording(g));
    match (first_alerting, last_recording) {
        (Some(a), Some(r)) if r > a => vec![format!(
            "{}: group_eval_order lists alerting group `{}` before recording group `{}`",
            file.name(),
            file.group_eval_order[a],
            file.group_eval_order[r]
        )],
        _ => Vec::new(),
    }
}

/// Whether some test group of `file` has the alert silent one evaluation
/// interval before it fires.
fn has_edge(file: &TestFile, alert: &str) -> bool {
    let step = file.evaluation_interval();
    file.tests.iter().any(|group| {
        let cases: Vec<(&AlertCase, Duration)> = group
            .alert_rule_test
            .iter()
            .filter(|c| c.alertname == alert)
            .filter_map(|c| parse_duration(&c.eval_time).ok().map(|t| (c, t)))
            .collect();
        cases.iter().any(|(firing, at)| {
            !firing.exp_alerts.is_empty()
                && at.checked_sub(step).is_some_and(|before| {
                    cases
                        .iter()
                        .any(|(c, t)| *t == before && c.exp_alerts.is_empty())
                })
        })
    })
}

/// Runs promtool over the test files.
pub fn run(sh: &Shell, tests: &[TestFile]) -> Result<()> {
    let files: Vec<&Path> = tests.iter().map(|t| t.path.as_path()).collect();
    let output = cmd!(sh, "promtool test rules {files...}")
        .quiet()
        .ignore_status()
        .output()?;
    if !output.status.success() {
        bail!(
            "promtool test rules:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Counts the alert test cases (one `alert_rule_test` entry each).
pub fn case_count(tests: &[TestFile]) -> usize {
    tests
        .iter()
        .flat_map(|f| &f.tests)
        .map(|g| g.alert_rule_test.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::rules::RuleFile;
    use super::*;

    const RULES: &str = r#"
groups:
  - name: g
    rules:
      - alert: Tested
        expr: up == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: s, description: d, runbook_url: runbooks/x.md#tested}
      - alert: Untested
        expr: up == 2
        for: 1m
        labels: {severity: warning}
        annotations: {summary: s, description: d, runbook_url: runbooks/x.md#untested}
"#;

    const TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
group_eval_order: [g]
tests:
  - interval: 1m
    input_series:
      - {series: 'up{job="a"}', values: '1 1 0 0 0'}
    alert_rule_test:
      - {alertname: Tested, eval_time: 2m}
      - alertname: Tested
        eval_time: 3m
        exp_alerts:
          - exp_labels: {severity: critical, job: a}
            exp_annotations: {summary: s, description: d, runbook_url: runbooks/x.md#tested}
  - interval: 1m
    input_series:
      - {series: 'up{job="a"}', values: '1x10'}
    alert_rule_test:
      - {alertname: Tested, eval_time: 10m}
"#;

    fn fixture() -> (Rules, Vec<TestFile>, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "xtask-unit-tests-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rules.yml"), RULES).unwrap();
        std::fs::write(dir.join("t.yml"), TESTS).unwrap();
        let mut file: RuleFile = serde_yaml_ng::from_str(RULES).unwrap();
        file.path = dir.join("rules.yml");
        let rules = Rules { files: vec![file] };
        let mut test: TestFile = serde_yaml_ng::from_str(TESTS).unwrap();
        test.path = dir.join("t.yml");
        (rules, vec![test], dir)
    }

    #[test]
    fn an_alert_without_a_promtool_test_fails_the_check() {
        let (rules, tests, dir) = fixture();
        assert_eq!(coverage(&rules, &tests), ["Untested: no promtool test"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_alert_without_edge_or_healthy_case_is_named() {
        let (rules, mut tests, dir) = fixture();
        // Silent two intervals before firing is no edge; drop the healthy group.
        tests[0].tests[0].alert_rule_test[0].eval_time = "1m".to_owned();
        tests[0].tests.pop();
        let problems = coverage(&rules, &tests).join("\n");
        assert!(problems.contains("Tested: no edge test"), "{problems}");
        assert!(problems.contains("Tested: no healthy case"), "{problems}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
