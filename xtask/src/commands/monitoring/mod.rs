//! `cargo xtask monitoring check`: monitoring as code (deploy/monitoring)
//! checked the way CI checks it.
//!
//! Offline: `promtool check config` (the local Prometheus template rendered
//! with test values), `promtool check rules`, the rule conventions (severity,
//! summary, description, runbook_url, `for:`), promtool unit-test coverage
//! of every alert and the tests themselves, `amtool check-config`, routing
//! and inhibition tests, and the dashboard lint with every query parsed by
//! Prometheus' own parser.
//!
//! `--live`: the metric contract against a running stack (a temporary one on
//! shifted ports unless `--state-dir` names a deployed stack).

mod alertmanager;
mod dashboards;
mod live;
pub(crate) mod unit_tests;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::prom::rules;
use crate::say;
use crate::stack::Stack;
use crate::stack::deploy::with_temporary_stack;
use crate::stack::ports::PlannedStack;
use crate::stack::template::{self, Vars};
use crate::util::project_root;

#[derive(clap::Args)]
pub struct Monitoring {
    #[command(subcommand)]
    command: MonitoringCommand,
}

#[derive(clap::Subcommand)]
enum MonitoringCommand {
    /// Check rules, promtool tests, Alertmanager routing and dashboards; with
    /// --live, also prove every selector and panel against a running stack.
    Check(Check),
}

impl Monitoring {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        match &self.command {
            MonitoringCommand::Check(check) => check.run(sh),
        }
    }
}

#[derive(clap::Args)]
pub struct Check {
    /// Also check the metric contract against a live stack (deploys a
    /// temporary one unless --state-dir is given).
    #[arg(long)]
    pub live: bool,
    /// With --live: use the stack already deployed with this state directory
    /// (it only reads it, and sends a little traffic).
    #[arg(long, requires = "live")]
    pub state_dir: Option<PathBuf>,
}

impl Check {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let started = Instant::now();
        let dir = project_root().join("deploy/monitoring");
        let work =
            std::env::temp_dir().join(format!("octollm-monitoring-check-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let result = self.check(sh, &dir, &work);
        let _ = std::fs::remove_dir_all(&work);
        result?;
        say!("monitoring check passed in {:.1?}", started.elapsed());
        Ok(())
    }

    fn check(&self, sh: &Shell, dir: &Path, work: &Path) -> Result<()> {
        let rules = rules::Rules::load(&dir.join("rules"))?;
        let tests = unit_tests::load(&dir.join("tests"))?;
        let boards = dashboards::load(&dir.join("dashboards"))?;
        let queries = dashboards::queries(&boards);

        step("promtool check config", || {
            let config = render_prometheus_config(dir, work)?;
            promtool(sh, &["check", "config"], &[config])
        })?;
        step("promtool check rules", || {
            let files: Vec<PathBuf> = rules.files.iter().map(|f| f.path.clone()).collect();
            promtool(sh, &["check", "rules"], &files)
        })?;
        step("rule conventions", || problems("rule", rules::lint(&rules)))?;
        step("promtool test coverage", || {
            problems("test coverage", unit_tests::coverage(&rules, &tests))
        })?;
        step("promtool test rules", || unit_tests::run(sh, &tests))?;
        let spec = alertmanager::Spec::load(&dir.join("alertmanager.test.yml"))?;
        let am_config = alertmanager::render(&dir.join("alertmanager.yml.tmpl"), work)?;
        step("amtool check-config", || {
            alertmanager::check_config(sh, &am_config)
        })?;
        step("alertmanager routes", || {
            problems(
                "routing",
                alertmanager::check_routes(sh, &am_config, &spec, &rules)?,
            )
        })?;
        step("alertmanager inhibitions", || {
            problems(
                "inhibition",
                alertmanager::check_inhibitions(&am_config, work, &spec)?,
            )
        })?;
        step("dashboard lint", || {
            problems("dashboard", dashboards::lint(&boards))
        })?;
        step("dashboard queries parse", || {
            parse_queries(sh, &queries, work)
        })?;

        let alerts = rules.alerts().count();
        say!(
            "{} recording rules, {alerts} alerts, {} promtool alert test cases, {} dashboards with {} queries",
            rules.recordings().count(),
            unit_tests::case_count(&tests),
            boards.len(),
            queries.len()
        );

        if self.live {
            let contract = live::Contract::build(&rules, &queries)?;
            step("live metric contract", || match &self.state_dir {
                Some(state_dir) => live::check(&Stack::open(state_dir)?, &contract),
                None => with_temporary_stack(sh, PlannedStack::MonitoringLive, None, |stack| {
                    live::check(stack, &contract)
                }),
            })?;
        }
        Ok(())
    }
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let started = Instant::now();
    f().with_context(|| format!("monitoring check: {name}"))?;
    say!("  ok  {name} ({:.1?})", started.elapsed());
    Ok(())
}

fn problems(what: &str, list: Vec<String>) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    bail!("{} {what} problem(s):\n  {}", list.len(), list.join("\n  "))
}

fn promtool(sh: &Shell, args: &[&str], files: &[PathBuf]) -> Result<()> {
    let output = cmd!(sh, "promtool {args...} {files...}")
        .quiet()
        .ignore_status()
        .output()?;
    if !output.status.success() {
        bail!(
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Test values for a template's variables: ports for `*_PORT`, the real
/// rules directory, default timings; an unknown name is an error.
fn test_vars(text: &str, rules_dir: &Path) -> Result<Vars> {
    let mut vars = Vars::new();
    let mut rest = text;
    let mut port = 40_000u16;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').context("unterminated `${` in template")?;
        let name = &after[..end];
        rest = &after[end + 1..];
        if vars.keys().any(|k| *k == name) {
            continue;
        }
        let value = match name {
            "RULES_DIR" => rules_dir.to_string_lossy().into_owned(),
            "SCRAPE_INTERVAL" | "EVALUATION_INTERVAL" => "15s".to_owned(),
            n if n.ends_with("_PORT") => {
                port += 1;
                port.to_string()
            }
            other => bail!("no test value for template variable ${{{other}}}"),
        };
        // Template variable names are few and live as long as the command.
        vars.insert(Box::leak(name.to_owned().into_boxed_str()), value);
    }
    Ok(vars)
}

fn render_prometheus_config(dir: &Path, work: &Path) -> Result<PathBuf> {
    let template_path = project_root().join("deploy/local/prometheus.yml.tmpl");
    let text = std::fs::read_to_string(&template_path)?;
    let vars = test_vars(&text, &dir.join("rules"))?;
    let rendered = template::render(&text, &vars)?;
    let path = work.join("prometheus.yml");
    std::fs::write(&path, rendered)?;
    Ok(path)
}

/// Prometheus' parser over every dashboard query: each becomes a recording
/// rule named after its panel, and `promtool check rules` parses them.
fn parse_queries(sh: &Shell, queries: &[dashboards::Query], work: &Path) -> Result<()> {
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .map(|q| serde_json::json!({ "record": q.record_name, "expr": q.expr }))
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "dashboard-queries", "rules": rules }] });
    let path = work.join("dashboard-queries.yml");
    // JSON is YAML.
    std::fs::write(&path, file.to_string())?;
    promtool(sh, &["check", "rules"], &[path]).context(
        "a dashboard query does not parse (the failing rule is named dashboard:<file>:panel<id>:<refId>)",
    )
}
