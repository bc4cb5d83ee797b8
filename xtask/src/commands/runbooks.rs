//! `cargo xtask runbooks`: the on-call runbooks (runbooks/) checked against
//! the alert rules (deploy/monitoring/rules) and this command line.
//!
//! - every alert's `runbook_url` resolves to an existing file and a heading
//!   whose GitHub-style anchor is the one named;
//! - every runbook has the sections of `TEMPLATE.md`;
//! - every runbook is referenced by an alert or by the quick reference;
//! - every `cargo xtask <sub>` named anywhere in runbooks/ is a subcommand of
//!   the clap `Cli`;
//! - every query of a `promql` block parses (Prometheus' own parser, through
//!   `promtool check rules`);
//! - the quick reference lists every alert with a link to its runbook;
//! - `diagnose` commands name the state directory as
//!   `${OCTOLLM_STATE_DIR:-.octollm}`, never a bare `.octollm`, so
//!   `cargo xtask alert-sim` can run them against the stack under test;
//! - every `curl` of a `diagnose` block has a timeout (`-m`/`--max-time`):
//!   the service being diagnosed may hang.
//!
//! Problems are reported as `file:line: reason`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use xshell::{Shell, cmd};

use crate::prom::rules::{DEFAULT_RUNBOOK_BASE_URL, Rules, runbook_path};
use crate::say;
use crate::util::project_root;

const TEMPLATE: &str = "TEMPLATE.md";
const QUICK_REFERENCE: &str = "on-call-quick-reference.md";
/// Files of runbooks/ that are not runbooks (no template sections needed).
const NOT_RUNBOOKS: &[&str] = &[TEMPLATE, "README.md", "on-call-guide.md", QUICK_REFERENCE];
/// The sections of `TEMPLATE.md`, each a `## ` heading of every runbook.
const SECTIONS: &[&str] = &[
    "Symptoms",
    "Impact",
    "Diagnosis",
    "Resolution",
    "Prevention",
    "Escalation",
];

/// How a runbook command names the stack's state directory.
pub const STATE_DIR_REF: &str = "${OCTOLLM_STATE_DIR:-.octollm}";

#[derive(clap::Args)]
pub struct Runbooks {}

impl Runbooks {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let started = Instant::now();
        let root = project_root();
        let rules = Rules::load(&root.join("deploy/monitoring/rules"))?;
        let alerts = alerts_of(&rules, &root)?;
        let docs = load_docs(&root.join("runbooks"))?;
        let mut problems = check(&alerts, &docs, &subcommands());
        let queries = promql_queries(&docs);
        problems.extend(parse_queries(sh, &queries)?);
        if !problems.is_empty() {
            for problem in &problems {
                say!("{problem}");
            }
            bail!("{} runbook problem(s)", problems.len());
        }
        let runbooks = docs.iter().filter(|d| is_runbook(&d.name)).count();
        say!(
            "runbooks ok: {runbooks} runbooks, {} alerts, {} PromQL queries, in {:.1?}",
            alerts.len(),
            queries.len(),
            started.elapsed()
        );
        Ok(())
    }
}

/// An alert rule and where it is defined.
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub runbook_url: String,
    pub file: String,
    pub line: usize,
}

/// A Markdown file of runbooks/.
#[derive(Debug, Clone)]
pub struct Doc {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

fn problem(file: &str, line: usize, reason: impl Into<String>) -> Problem {
    Problem {
        file: file.to_owned(),
        line,
        reason: reason.into(),
    }
}

fn is_runbook(name: &str) -> bool {
    !NOT_RUNBOOKS.contains(&name)
}

/// The subcommands of `cargo xtask`, from the clap definition itself.
pub fn subcommands() -> BTreeSet<String> {
    crate::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect()
}

fn alerts_of(rules: &Rules, root: &Path) -> Result<Vec<Alert>> {
    let mut alerts = Vec::new();
    for file in &rules.files {
        let text = std::fs::read_to_string(&file.path)?;
        let shown = file
            .path
            .strip_prefix(root)
            .unwrap_or(&file.path)
            .display()
            .to_string();
        for group in &file.groups {
            for rule in &group.rules {
                let Some(name) = &rule.alert else { continue };
                let line = text
                    .lines()
                    .position(|l| {
                        l.trim_start().trim_start_matches("- ").trim() == format!("alert: {name}")
                    })
                    .map_or(1, |i| i + 1);
                alerts.push(Alert {
                    name: name.clone(),
                    runbook_url: rule
                        .annotations
                        .get("runbook_url")
                        .cloned()
                        .unwrap_or_default(),
                    file: shown.clone(),
                    line,
                });
            }
        }
    }
    Ok(alerts)
}

pub fn load_docs(dir: &Path) -> Result<Vec<Doc>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(Doc { name, text })
        })
        .collect()
}

/// A Markdown heading outside code blocks: (line, level, text).
fn headings(text: &str) -> Vec<(usize, usize, String)> {
    let mut found = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            found.push((
                i + 1,
                level,
                line[level..].trim().trim_end_matches('#').trim().to_owned(),
            ));
        }
    }
    found
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// become hyphens.
pub fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a document, duplicates suffixed `-1`, `-2`… as GitHub does.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = BTreeSet::new();
    for (_, _, heading) in headings(text) {
        let base = slug(&heading);
        let count = seen.entry(base.clone()).or_insert(0);
        found.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    found
}

/// The fenced blocks with the given info string: (line, content) per line.
pub fn blocks(text: &str, info: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut inside: Option<bool> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("```") {
            inside = match inside {
                None => Some(rest.trim() == info),
                Some(_) => None,
            };
            continue;
        }
        if inside == Some(true) && !trimmed.is_empty() && !trimmed.starts_with('#') {
            found.push((i + 1, trimmed.to_owned()));
        }
    }
    found
}

/// Relative link targets of a document (`](file.md#anchor)`), without anchors.
fn linked_files(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split('#').next().unwrap_or_default();
        let target = target
            .trim_start_matches("./")
            .trim_start_matches("runbooks/");
        if !target.is_empty() {
            found.insert(target.to_owned());
        }
    }
    found
}

/// Whether `line` names `word` with no identifier character either side.
fn names(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// Every check that needs no external tool.
pub fn check(alerts: &[Alert], docs: &[Doc], subcommands: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let by_name: BTreeMap<&str, &Doc> = docs.iter().map(|d| (d.name.as_str(), d)).collect();

    // The template has every section.
    match by_name.get(TEMPLATE) {
        None => problems.push(problem("runbooks", 0, format!("no {TEMPLATE}"))),
        Some(doc) => problems.extend(missing_sections(doc)),
    }

    // Every runbook_url resolves.
    let mut referenced = BTreeSet::new();
    for alert in alerts {
        let at =
            |reason: String| problem(&alert.file, alert.line, format!("{}: {reason}", alert.name));
        let url = &alert.runbook_url;
        let Some((file, anchor)) = runbook_path(url)
            .and_then(|path| path.strip_prefix("runbooks/"))
            .and_then(|r| r.split_once('#'))
        else {
            problems.push(at(format!(
                "runbook_url `{url}` is not {DEFAULT_RUNBOOK_BASE_URL}runbooks/<file>.md#<anchor>"
            )));
            continue;
        };
        referenced.insert(file.to_owned());
        match by_name.get(file) {
            None => problems.push(at(format!("runbook_url `{url}`: no file runbooks/{file}"))),
            Some(doc) if !anchors(&doc.text).contains(anchor) => problems.push(at(format!(
                "runbook_url `{url}`: runbooks/{file} has no heading with anchor #{anchor}"
            ))),
            Some(_) => {}
        }
    }

    // The quick reference lists every alert, linked to its runbook.
    match by_name.get(QUICK_REFERENCE) {
        None => problems.push(problem("runbooks", 0, format!("no {QUICK_REFERENCE}"))),
        Some(doc) => {
            referenced.extend(linked_files(&doc.text));
            for alert in alerts {
                let path = runbook_path(&alert.runbook_url).unwrap_or(&alert.runbook_url);
                let link = format!("({})", path.trim_start_matches("runbooks/"));
                let listed = doc.text.lines().any(|l| {
                    l.trim_start().starts_with('|') && names(l, &alert.name) && l.contains(&link)
                });
                if !listed {
                    problems.push(problem(
                        &format!("runbooks/{QUICK_REFERENCE}"),
                        1,
                        format!(
                            "alert {} is not listed in a table row linking {link}",
                            alert.name
                        ),
                    ));
                }
            }
        }
    }

    for doc in docs {
        let file = format!("runbooks/{}", doc.name);
        if is_runbook(&doc.name) {
            problems.extend(missing_sections(doc));
            if !referenced.contains(&doc.name) {
                problems.push(problem(
                    &file,
                    1,
                    "referenced by no alert's runbook_url and not by the quick reference",
                ));
            }
        }
        // Diagnosis follows OCTOLLM_STATE_DIR, and never hangs on a hung service.
        for (line, command) in blocks(&doc.text, "diagnose") {
            let curl_without_timeout = command.split('|').any(|part| {
                let words: Vec<&str> = part.split_whitespace().collect();
                words.first() == Some(&"curl")
                    && !words.iter().any(|w| *w == "-m" || *w == "--max-time")
            });
            if curl_without_timeout {
                problems.push(problem(
                    &file,
                    line,
                    "diagnose curl without a timeout (add -m 5): the service it asks may hang",
                ));
            }
            if command.contains("Bearer $(") || command.contains("Bearer `") {
                problems.push(problem(
                    &file,
                    line,
                    "diagnose command expands a token into curl's argv (every local user sees it in `ps`): use `-H @${OCTOLLM_STATE_DIR:-.octollm}/secrets/api-token.header`",
                ));
            }
            if command.replace(STATE_DIR_REF, "").contains(".octollm") {
                problems.push(problem(
                    &file,
                    line,
                    format!("diagnose command names `.octollm`: write `{STATE_DIR_REF}` so it runs against any stack"),
                ));
            }
        }
        // Every `cargo xtask <sub>` is a real subcommand.
        for (i, line) in doc.text.lines().enumerate() {
            for (at, _) in line.match_indices("cargo xtask ") {
                let sub: String = line[at + "cargo xtask ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if sub.is_empty() || sub.starts_with('-') || subcommands.contains(&sub) {
                    continue;
                }
                problems.push(problem(
                    &file,
                    i + 1,
                    format!(
                        "`cargo xtask {sub}` is not a subcommand (there are: {})",
                        subcommands.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    problems
}

fn missing_sections(doc: &Doc) -> Vec<Problem> {
    let present: BTreeSet<String> = headings(&doc.text)
        .into_iter()
        .filter(|(_, level, _)| *level == 2)
        .map(|(_, _, text)| text.to_lowercase())
        .collect();
    SECTIONS
        .iter()
        .filter(|s| !present.contains(&s.to_lowercase()))
        .map(|s| {
            problem(
                &format!("runbooks/{}", doc.name),
                1,
                format!("missing section `## {s}`"),
            )
        })
        .collect()
}

/// A PromQL query of a runbook: file, line, expression.
pub type Query = (String, usize, String);

pub fn promql_queries(docs: &[Doc]) -> Vec<Query> {
    docs.iter()
        .flat_map(|d| {
            blocks(&d.text, "promql")
                .into_iter()
                .map(|(line, expr)| (format!("runbooks/{}", d.name), line, expr))
        })
        .collect()
}

/// Prometheus' parser over every query: each becomes a recording rule and
/// `promtool check rules` parses them all at once; on failure, one at a time
/// to name the culprits.
pub fn parse_queries(sh: &Shell, queries: &[Query]) -> Result<Vec<Problem>> {
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let work = std::env::temp_dir().join(format!("octollm-runbooks-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        if promtool_rules(sh, &work, queries)?.is_none() {
            return Ok(Vec::new());
        }
        let mut problems = Vec::new();
        for query in queries {
            if let Some(error) = promtool_rules(sh, &work, std::slice::from_ref(query))? {
                problems.push(problem(
                    &query.0,
                    query.1,
                    format!("PromQL does not parse: {error}"),
                ));
            }
        }
        Ok(problems)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// `None` when promtool accepts the queries, else its complaint.
fn promtool_rules(sh: &Shell, work: &Path, queries: &[Query]) -> Result<Option<String>> {
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, _, expr))| serde_json::json!({ "record": format!("runbook:query:q{i}"), "expr": expr }))
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "runbook-queries", "rules": rules }] });
    let path = work.join("runbook-queries.yml");
    // JSON is YAML.
    std::fs::write(&path, file.to_string())?;
    let output = cmd!(sh, "promtool check rules {path}")
        .quiet()
        .ignore_status()
        .output()
        .context("running promtool (installed by `cargo xtask deploy`'s prerequisites)")?;
    if output.status.success() {
        return Ok(None);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let reason = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Checking") && !l.starts_with("FAILED"))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Some(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = "# Service unavailable

## Alerts

### ServiceDown

A target is down.

## Symptoms
s
## Impact
i
## Diagnosis

```diagnose
cargo xtask status
cargo xtask logs orchestrator
curl -s -m 5 localhost:8000/ready
```

```promql
up == 0
```

## Resolution
r
## Prevention
p
## Escalation
e
";

    const TEMPLATE_TEXT: &str = "# Title\n## Symptoms\n## Impact\n## Diagnosis\n## Resolution\n## Prevention\n## Escalation\n";

    const QUICK: &str = "| alert | runbook |\n|---|---|\n| `ServiceDown` | [service-unavailable](service-unavailable.md#servicedown) |\n";

    fn doc(name: &str, text: &str) -> Doc {
        Doc {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    fn alert(url: &str) -> Alert {
        Alert {
            name: "ServiceDown".to_owned(),
            runbook_url: url.to_owned(),
            file: "deploy/monitoring/rules/availability.yml".to_owned(),
            line: 9,
        }
    }

    fn run(runbook: &str, url: &str) -> Vec<String> {
        let docs = [
            doc(TEMPLATE, TEMPLATE_TEXT),
            doc(QUICK_REFERENCE, QUICK),
            doc("service-unavailable.md", runbook),
        ];
        check(&[alert(url)], &docs, &subcommands())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const URL: &str = "https://github.com/octollm/octollm-ops/blob/main/runbooks/service-unavailable.md#servicedown";

    #[test]
    fn a_complete_fixture_passes() {
        assert_eq!(run(RUNBOOK, URL), Vec::<String>::new());
    }

    #[test]
    fn a_missing_section_fails() {
        let problems = run(&RUNBOOK.replace("## Prevention\n", ""), URL);
        assert_eq!(
            problems,
            ["runbooks/service-unavailable.md:1: missing section `## Prevention`"]
        );
    }

    #[test]
    fn a_relative_runbook_url_fails() {
        let problems = run(RUNBOOK, "runbooks/service-unavailable.md#servicedown");
        assert!(
            problems.iter().any(|p| p.contains("is not https://github.com/octollm/octollm-ops/blob/main/runbooks/<file>.md#<anchor>")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_dangling_runbook_url_file_fails() {
        let problems = run(
            RUNBOOK,
            "https://github.com/octollm/octollm-ops/blob/main/runbooks/no-such.md#servicedown",
        );
        assert!(
            problems.contains(
                &"deploy/monitoring/rules/availability.yml:9: ServiceDown: runbook_url `https://github.com/octollm/octollm-ops/blob/main/runbooks/no-such.md#servicedown`: no file runbooks/no-such.md"
                    .to_owned()
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_dangling_runbook_url_anchor_fails() {
        let problems = run(&RUNBOOK.replace("### ServiceDown", "### Service Down"), URL);
        assert_eq!(
            problems,
            [
                "deploy/monitoring/rules/availability.yml:9: ServiceDown: runbook_url `https://github.com/octollm/octollm-ops/blob/main/runbooks/service-unavailable.md#servicedown`: runbooks/service-unavailable.md has no heading with anchor #servicedown"
            ]
        );
    }

    #[test]
    fn an_unknown_xtask_command_fails() {
        let problems = run(
            &RUNBOOK.replace("cargo xtask logs", "cargo xtask tail"),
            URL,
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with(
                "runbooks/service-unavailable.md:17: `cargo xtask tail` is not a subcommand"
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_diagnose_command_with_a_fixed_state_dir_fails() {
        let fixed = RUNBOOK.replace(
            "cargo xtask status\n",
            "cargo xtask status\ncat .octollm/api-token\ncat ${OCTOLLM_STATE_DIR:-.octollm}/api-token\n",
        );
        let problems = run(&fixed, URL);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with(
                "runbooks/service-unavailable.md:17: diagnose command names `.octollm`"
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_diagnose_curl_without_a_timeout_fails() {
        let problems = run(&RUNBOOK.replace("curl -s -m 5 ", "curl -s "), URL);
        assert_eq!(
            problems,
            [
                "runbooks/service-unavailable.md:18: diagnose curl without a timeout (add -m 5): the service it asks may hang"
            ]
        );
    }

    #[test]
    fn a_diagnose_token_on_curls_argv_fails() {
        let problems = run(
            &RUNBOOK.replace(
                "curl -s -m 5 ",
                "curl -s -m 5 -H \"Authorization: Bearer $(cat ${OCTOLLM_STATE_DIR:-.octollm}/api-token)\" ",
            ),
            URL,
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("expands a token into curl's argv"),
            "{problems:#?}"
        );
    }

    #[test]
    fn an_alert_missing_from_the_quick_reference_fails() {
        let docs = [
            doc(TEMPLATE, TEMPLATE_TEXT),
            doc(
                QUICK_REFERENCE,
                "nothing here, see [x](service-unavailable.md)\n",
            ),
            doc("service-unavailable.md", RUNBOOK),
        ];
        let problems = check(&[alert(URL)], &docs, &subcommands());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0]
                .reason
                .contains("alert ServiceDown is not listed")
        );
    }

    #[test]
    fn an_unreferenced_runbook_fails() {
        let docs = [
            doc(TEMPLATE, TEMPLATE_TEXT),
            doc(QUICK_REFERENCE, QUICK),
            doc("service-unavailable.md", RUNBOOK),
            doc("orphan.md", &RUNBOOK.replace("ServiceDown", "Orphan")),
        ];
        let problems = check(&[alert(URL)], &docs, &subcommands());
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "runbooks/orphan.md:1: referenced by no alert's runbook_url and not by the quick reference"
            ]
        );
    }

    #[test]
    fn subcommands_come_from_clap() {
        let subs = subcommands();
        for sub in ["status", "logs", "restart", "deploy", "down", "runbooks"] {
            assert!(subs.contains(sub), "{sub} missing from {subs:?}");
        }
    }

    #[test]
    fn slugs_and_blocks() {
        assert_eq!(slug("ServiceDown"), "servicedown");
        assert_eq!(slug("Backup / DR: `pgBackRest`"), "backup--dr-pgbackrest");
        let anchors = anchors("## A\n```\n## Not\n```\n## A\n");
        assert_eq!(anchors, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
        let queries = promql_queries(&[doc("x.md", RUNBOOK)]);
        assert_eq!(
            queries,
            [("runbooks/x.md".to_owned(), 22, "up == 0".to_owned())]
        );
    }

    #[test]
    fn a_query_that_does_not_parse_is_named() {
        let sh = Shell::new().unwrap();
        let queries = vec![
            ("runbooks/x.md".to_owned(), 3, "rate(up[5m])".to_owned()),
            ("runbooks/x.md".to_owned(), 4, "sum by (job (up)".to_owned()),
        ];
        let problems = parse_queries(&sh, &queries).unwrap();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(
            (problems[0].file.as_str(), problems[0].line),
            ("runbooks/x.md", 4)
        );
        assert!(problems[0].reason.starts_with("PromQL does not parse"));
    }
}
