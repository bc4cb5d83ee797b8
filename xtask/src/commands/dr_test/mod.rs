//! `cargo xtask dr-test`: disaster-recovery drills against a local stack,
//! with RTO and RPO measured against a ledger of acknowledged writes.
//!
//! Each scenario runs load → disaster → detection → restore → verification,
//! timing every phase. RTO runs from the disaster to the moment the service
//! acknowledges a new task again (or, for Redis and the backup repository, to
//! the moment the store is whole again). RPO is the time of the disaster
//! minus the newest acknowledged write that survived. A scenario passes when
//! no acknowledged write it promises to keep is missing, no write it must
//! discard is present, and both target sets hold: the seed's (RTO < 4 h,
//! RPO < 1 h) and ours (RTO ≤ 60 s, RPO ≤ 1 s).

mod ledger;
mod report;
mod scenarios;
mod steps;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::{OutputArgs, Pick, TargetStackArgs, status};
use crate::stack::Stack;
use crate::stack::deploy;
use crate::stack::ports::PlannedStack;
use crate::util::{check_failed, project_root};
use crate::{emit, say};

pub use self::ledger::Verdict;
use self::report::Report;
use self::scenarios::{SCENARIOS, Scenario};

#[derive(clap::Args)]
#[command(
    after_help = "Without --state-dir it deploys a throwaway stack on its planned ports (see \
docs/contracts.md), runs the drills and tears it down. With --state-dir it drills \
that stack: its data is destroyed and restored for real.\n\nExamples:\n  \
cargo xtask dr-test --list\n  \
cargo xtask dr-test                                 every scenario, throwaway stack\n  \
cargo xtask dr-test --scenario disk-loss --dataset-size 1GB\n  \
cargo xtask dr-test --state-dir .octollm --scenario redis-loss --json\n\n\
Exit codes: 0 every drill passed, 1 a drill failed (data lost, RTO/RPO missed), 2 usage, \
3 the tool failed."
)]
pub struct DrTest {
    /// Scenario to run (repeatable); default: every runnable scenario.
    #[arg(long = "scenario", value_name = "NAME", value_enum)]
    scenarios: Vec<Pick<Scenario>>,
    /// List the scenarios, including those that cannot run locally, and exit.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    target: TargetStackArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Task data loaded before the drills (e.g. 20MB, 1GB), for the RTO figure.
    #[arg(long, default_value = "20MB", value_parser = parse_size)]
    dataset_size: u64,
    /// Ledger writes per second during each drill.
    #[arg(long, default_value_t = 40)]
    rate: u32,
}

crate::pickable!(Scenario, SCENARIOS);

/// What every scenario gets.
pub struct Drill<'a> {
    pub sh: &'a Shell,
    pub stack: &'a Stack,
    /// Ledger files of this run.
    pub work_dir: PathBuf,
    pub rate: u32,
    /// How long the ledger writes before the disaster.
    pub load_for: Duration,
}

impl DrTest {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.list {
            scenarios::print_list(self.output.json)?;
            return Ok(());
        }
        let selected: Vec<&'static Scenario> = if self.scenarios.is_empty() {
            SCENARIOS.iter().filter(|s| s.in_default_run).collect()
        } else {
            self.scenarios.iter().map(|pick| pick.0).collect()
        };
        deploy::build_load_generator(sh)?;
        let report = match &self.target.state_dir {
            Some(dir) => run_scenarios(
                sh,
                &Stack::open(dir)?,
                &selected,
                self.dataset_size,
                self.rate,
            ),
            None => deploy::with_temporary_stack(sh, PlannedStack::DrTest, None, |stack| {
                run_scenarios(sh, stack, &selected, self.dataset_size, self.rate)
            }),
        }?;
        if self.output.json {
            emit!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            emit!("{}", report.table());
        }
        report.verdict()
    }
}

/// CI's drill: scenarios 1, 2 and 5 must pass, and the negative control (a
/// restore to the wrong point) must fail with data loss, all on one
/// throwaway stack.
pub fn ci(sh: &Shell) -> Result<()> {
    deploy::build_load_generator(sh)?;
    let must_pass = select(&["disk-loss", "accidental-delete", "redis-loss"])?;
    let must_fail = select(&["wrong-target"])?;
    deploy::with_temporary_stack(sh, PlannedStack::DrTest, None, |stack| {
        let report = run_scenarios(sh, stack, &must_pass, 5 << 20, 40)?;
        emit!("{}", report.table());
        report.verdict()?;
        match run_scenarios(sh, stack, &must_fail, 0, 40)?.verdict() {
            Ok(()) => {
                bail!("the negative control passed: a restore to the wrong point lost no data?")
            }
            Err(error) if format!("{error:#}").contains("acknowledged writes lost") => {
                say!("negative control failed as it must: {error:#}");
                Ok(())
            }
            Err(error) => Err(error.context("the negative control failed for the wrong reason")),
        }
    })
}

fn select(names: &[&str]) -> Result<Vec<&'static Scenario>> {
    names
        .iter()
        .map(|name| {
            SCENARIOS.iter().find(|s| s.name == *name).with_context(|| {
                let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                format!("no scenario {name:?}; scenarios: {}", known.join(", "))
            })
        })
        .collect()
}

fn run_scenarios(
    sh: &Shell,
    stack: &Stack,
    selected: &[&'static Scenario],
    dataset_size: u64,
    rate: u32,
) -> Result<Report> {
    let work_dir = project_root().join("target/dr-test");
    std::fs::create_dir_all(&work_dir)?;
    let drill = Drill {
        sh,
        stack,
        work_dir: work_dir.clone(),
        rate,
        load_for: Duration::from_secs(4),
    };
    if dataset_size > 0 {
        steps::seed_dataset(&drill, dataset_size)?;
    }
    let started = Instant::now();
    let mut report = Report::new(dataset_size);
    for (i, scenario) in selected.iter().enumerate() {
        let down = status::down(&status::statuses(stack));
        if !down.is_empty() {
            bail!(
                "the stack is not healthy before scenario {}: {} down; redeploy it (cargo xtask deploy) and rerun",
                scenario.name,
                down.join(", ")
            );
        }
        say!(
            "── scenario {}/{}: {} — {}",
            i + 1,
            selected.len(),
            scenario.name,
            scenario.summary
        );
        let result = report::ScenarioReport::from_run(
            scenario.name,
            scenario.summary,
            (scenario.run)(&drill),
        );
        say!("   {}", result.one_line());
        report.scenarios.push(result);
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    let paths = report.write(&work_dir, Some(&stack.state_dir))?;
    say!("reports: {}", paths.join(", "));
    Ok(report)
}

impl Report {
    /// Ok when every drill passed; otherwise a failed check naming each.
    fn verdict(&self) -> Result<()> {
        let failed: Vec<String> = self
            .scenarios
            .iter()
            .filter(|s| !s.passed)
            .map(|s| format!("{}: {}", s.name, s.reasons.join("; ")))
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(check_failed(format!(
            "{} scenario(s) failed — {}",
            failed.len(),
            failed.join(" | ")
        )))
    }
}

/// `20MB`, `1GB`, `512kB` or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 20MB or 1GB"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use B, KB, MB or GB")),
    };
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_size("20MB"), Ok(20 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn every_scenario_has_a_unique_name_and_unknown_names_are_refused() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
        let error = select(&["no-such"]).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("disk-loss")));
    }
}
