//! The Prometheus rule files (deploy/monitoring/rules/*.yml): loading, and
//! the conventions promtool does not check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The severities Alertmanager routes, and the receiver each goes to
/// (docs/contracts.md).
pub const SEVERITY_RECEIVERS: &[(&str, &str)] = &[
    ("critical", "pagerduty"),
    ("warning", "slack"),
    ("info", "email"),
    // The dead man's switch (Watchdog): always firing, never a page.
    (HEARTBEAT_SEVERITY, "heartbeat"),
];

/// The severity of an alert that fires all the time as a heartbeat.
pub const HEARTBEAT_SEVERITY: &str = "none";

#[derive(Debug, Deserialize)]
pub struct RuleFile {
    #[serde(skip)]
    pub path: PathBuf,
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// The alert or record name.
    pub fn name(&self) -> &str {
        self.alert
            .as_deref()
            .or(self.record.as_deref())
            .unwrap_or("<unnamed>")
    }

    /// The `for:` window (zero when absent or unreadable).
    pub fn for_duration(&self) -> Duration {
        self.for_
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or_default()
    }
}

impl RuleGroup {
    pub fn is_recording(&self) -> bool {
        self.rules.iter().all(|r| r.record.is_some())
    }
}

pub struct Rules {
    pub files: Vec<RuleFile>,
}

impl Rules {
    /// Every `*.yml` in `dir`, as the local Prometheus loads them.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        for path in yaml_files(dir)? {
            let text = std::fs::read_to_string(&path)?;
            let mut file: RuleFile = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("reading rule file {}", path.display()))?;
            file.path = path;
            files.push(file);
        }
        if files.is_empty() {
            bail!("no rule files in {}", dir.display());
        }
        Ok(Self { files })
    }

    pub fn rules(&self) -> impl Iterator<Item = (&RuleFile, &Rule)> {
        self.files.iter().flat_map(|f| {
            f.groups
                .iter()
                .flat_map(move |g| g.rules.iter().map(move |r| (f, r)))
        })
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Rule> {
        self.rules().map(|(_, r)| r).filter(|r| r.alert.is_some())
    }

    pub fn recordings(&self) -> impl Iterator<Item = &Rule> {
        self.rules().map(|(_, r)| r).filter(|r| r.record.is_some())
    }

    pub fn alert(&self, name: &str) -> Option<&Rule> {
        self.alerts().find(|r| r.alert.as_deref() == Some(name))
    }

    /// The groups of the rule file at `path` (compared by canonical path).
    pub fn groups_of(&self, path: &Path) -> Option<&[RuleGroup]> {
        let wanted = path.canonicalize().ok()?;
        self.files
            .iter()
            .find(|f| f.path.canonicalize().ok().as_deref() == Some(wanted.as_path()))
            .map(|f| f.groups.as_slice())
    }
}

/// The `*.yml` files of `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// What promtool leaves to us: every alert has a known severity, a summary,
/// a description, a `runbook_url` of the form `<base>runbooks/<file>.md#<alert
/// name in lower case>` and a `for:` window; names are unique; recorded
/// series follow `level:metric:operation`.
pub fn lint(rules: &Rules) -> Vec<String> {
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for file in &rules.files {
        let file_name = file.path.file_name().map_or_else(
            || file.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for group in &file.groups {
            if !groups.insert(group.name.clone()) {
                problems.push(format!(
                    "{file_name}: rule group name `{}` is used twice (promtool tests order groups by name)",
                    group.name
                ));
            }
            for rule in &group.rules {
                let at = format!("{file_name}: {}", rule.name());
                match (&rule.alert, &rule.record) {
                    (Some(alert), None) => {
                        if !alerts.insert(alert.clone()) {
                            problems.push(format!("{at}: alert name used twice"));
                        }
                        problems.extend(lint_alert(rule).into_iter().map(|p| format!("{at}: {p}")));
                    }
                    (None, Some(record)) => {
                        if record.split(':').count() != 3 {
                            problems.push(format!(
                                "{at}: recorded series should be named level:metric:operation"
                            ));
                        }
                    }
                    _ => problems.push(format!(
                        "{at}: a rule needs exactly one of `alert` and `record`"
                    )),
                }
            }
        }
    }
    problems
}

fn lint_alert(rule: &Rule) -> Vec<String> {
    let mut problems = Vec::new();
    let name = rule.name();
    match rule.labels.get("severity") {
        None => problems.push("no `severity` label".to_owned()),
        Some(s) if !SEVERITY_RECEIVERS.iter().any(|(sev, _)| sev == s) => problems.push(format!(
            "severity `{s}` is none of {}",
            SEVERITY_RECEIVERS
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(_) => {}
    }
    for key in ["summary", "description"] {
        if rule
            .annotations
            .get(key)
            .is_none_or(|v| v.trim().is_empty())
        {
            problems.push(format!("no `{key}` annotation"));
        }
    }
    match rule.annotations.get("runbook_url") {
        None => problems.push("no `runbook_url` annotation".to_owned()),
        Some(url) => {
            if let Err(problem) = check_runbook_url(url, name) {
                problems.push(problem);
            }
        }
    }
    match rule.for_.as_deref().map(parse_duration) {
        None => problems.push("no `for:` window (an alert must survive one bad scrape)".to_owned()),
        Some(Err(e)) => problems.push(format!("`for:` {e:#}")),
        Some(Ok(d)) if d.is_zero() => problems.push("`for:` is zero".to_owned()),
        Some(Ok(_)) => {}
    }
    problems
}

/// Where every alert's `runbook_url` points, so a page or a chat message
/// opens the runbook: the repository's URL (the workspace's `repository`)
/// and the path of the file on its main branch. A deployment that serves
/// the runbooks elsewhere sets `OCTOLLM_RUNBOOK_BASE_URL`, and `cargo xtask
/// deploy` rewrites the links of the rules Prometheus loads.
pub const DEFAULT_RUNBOOK_BASE_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/");

/// The runbook base URL in force: `OCTOLLM_RUNBOOK_BASE_URL`, else the default.
pub fn runbook_base_url() -> String {
    let base = std::env::var("OCTOLLM_RUNBOOK_BASE_URL")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_RUNBOOK_BASE_URL.to_owned());
    if base.ends_with('/') {
        base
    } else {
        base + "/"
    }
}

/// Copies every `*.yml` rule file of `source` into `target` (emptied first).
pub fn copy_rule_files(source: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::create_dir_all(target)?;
    for path in yaml_files(source)? {
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, target.join(name))?;
        }
    }
    Ok(())
}

/// Points every runbook link of the rule files in `dir` at `base` instead
/// of [`DEFAULT_RUNBOOK_BASE_URL`]; returns their concatenated text.
pub fn rebase_runbook_urls(dir: &Path, base: &str) -> Result<String> {
    let mut all = String::new();
    for path in yaml_files(dir)? {
        let text = std::fs::read_to_string(&path)?.replace(
            &format!("runbook_url: {DEFAULT_RUNBOOK_BASE_URL}"),
            &format!("runbook_url: {base}"),
        );
        std::fs::write(&path, &text)?;
        all.push_str(&text);
    }
    Ok(all)
}

/// The repository path (`runbooks/<file>.md#<anchor>`) of a committed
/// rule's `runbook_url`, which starts with [`DEFAULT_RUNBOOK_BASE_URL`].
pub fn runbook_path(url: &str) -> Option<&str> {
    url.strip_prefix(DEFAULT_RUNBOOK_BASE_URL)
}

/// `<base>runbooks/<file>.md#<anchor>`, the anchor being the alert name in
/// lower case (the anchor of a `## AlertName` heading).
pub fn check_runbook_url(url: &str, alert: &str) -> std::result::Result<(), String> {
    let wanted = alert.to_lowercase();
    let shape = || {
        format!("runbook_url `{url}` is not {DEFAULT_RUNBOOK_BASE_URL}runbooks/<file>.md#{wanted}")
    };
    let Some(rest) = runbook_path(url).and_then(|path| path.strip_prefix("runbooks/")) else {
        return Err(shape());
    };
    let Some((file, anchor)) = rest.split_once(".md#") else {
        return Err(shape());
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !plain(file) || anchor != wanted {
        return Err(shape());
    }
    Ok(())
}

/// A Prometheus duration: `90s`, `5m`, `1h30m`, `1d`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            bail!("`{text}` is not a duration");
        }
        let number: u64 = rest[..digits].parse()?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            other => bail!("`{text}` has an unknown unit `{other}`"),
        };
        rest = &rest[unit_len..];
        total_ms += number * unit_ms;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_from(yaml: &str) -> Rules {
        let mut file: RuleFile = serde_yaml_ng::from_str(yaml).unwrap();
        file.path = PathBuf::from("fixture.yml");
        Rules { files: vec![file] }
    }

    const GOOD: &str = r#"
groups:
  - name: g
    rules:
      - record: job:x:rate5m
        expr: sum by (job) (rate(x[5m]))
      - alert: ServiceDown
        expr: up == 0
        for: 1m
        labels: {severity: critical}
        annotations:
          summary: s
          description: d
          runbook_url: https://github.com/octollm/octollm-ops/blob/main/runbooks/service-unavailable.md#servicedown
"#;

    #[test]
    fn a_complete_alert_passes() {
        assert_eq!(lint(&rules_from(GOOD)), Vec::<String>::new());
    }

    #[test]
    fn runbook_links_move_to_another_base() {
        let dir = std::env::temp_dir().join(format!("rebase-{}", std::process::id()));
        copy_rule_files(
            &crate::util::project_root().join("deploy/monitoring/rules"),
            &dir,
        )
        .unwrap();
        let text = rebase_runbook_urls(&dir, "https://runbooks.example.com/ops/").unwrap();
        assert!(!text.contains(DEFAULT_RUNBOOK_BASE_URL));
        let rules = Rules::load(&dir).unwrap();
        for alert in rules.alerts() {
            let url = &alert.annotations["runbook_url"];
            assert!(
                url.starts_with("https://runbooks.example.com/ops/runbooks/"),
                "{url}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_alert_without_runbook_url_fails() {
        let yaml = GOOD.replace(
            "          runbook_url: https://github.com/octollm/octollm-ops/blob/main/runbooks/service-unavailable.md#servicedown\n",
            "",
        );
        let problems = lint(&rules_from(&yaml));
        assert_eq!(
            problems,
            ["fixture.yml: ServiceDown: no `runbook_url` annotation"]
        );
    }

    #[test]
    fn other_gaps_are_named() {
        let yaml = GOOD
            .replace("for: 1m", "for: 0s")
            .replace("severity: critical", "severity: page")
            .replace("description: d", "description: ' '")
            .replace("#servicedown", "#service-down")
            .replace("job:x:rate5m", "x_rate");
        let problems = lint(&rules_from(&yaml)).join("\n");
        for needle in [
            "x_rate: recorded series should be named level:metric:operation",
            "severity `page` is none of critical, warning, info",
            "no `description` annotation",
            "is not https://github.com/octollm/octollm-ops/blob/main/runbooks/<file>.md#servicedown",
            "`for:` is zero",
        ] {
            assert!(
                problems.contains(needle),
                "{needle} missing from:\n{problems}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
