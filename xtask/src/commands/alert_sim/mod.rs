//! `cargo xtask alert-sim`: every alert that can be reproduced locally,
//! proven end to end on a live stack.
//!
//! Per scenario (`scenarios::SCENARIOS`): inject the fault (and start its
//! traffic) → wait until each expected alert is firing in Prometheus AND its
//! notification reached the expected receiver of the alert sink → check the
//! time to page against its bound (`observe::Bound`, ×1.2) → run the
//! runbook's diagnosis against the incident (`diagnose`) → check that no
//! alert the Alertmanager inhibit rules silence paged anyway → heal → wait
//! for each resolved notification. Every phase is timed; a summary table is
//! printed and a JSON and a Markdown report are written.
//!
//! Scenarios run one after another, never concurrently: faults share the
//! stack (a PostgreSQL outage fails the traffic another scenario relies on),
//! inhibition is judged over everything firing, and the machine's load would
//! leak into each other's time to page. The suite fits in minutes because
//! the stack runs on compressed time (`compress`).

mod backup_faults;
mod client_faults;
mod diagnose;
mod fault;
mod observe;
mod report;
mod scenarios;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use self::fault::{FaultContext, Traffic};
use self::observe::{Bound, Expect, Live, Observer};
use self::report::{PageResult, Report, ScenarioResult};
use self::scenarios::{NOT_REPRODUCED, SCENARIOS, Scenario};
use super::{OutputArgs, Pick, TargetStackArgs, status};
use crate::commands::runbooks::Doc;
use crate::prom::rules::{Rules, parse_duration};
use crate::stack::deploy::with_temporary_stack;
use crate::stack::launch::{self, Timings};
use crate::stack::ports::PlannedStack;
use crate::stack::{Component, Stack};
use crate::util::{check_failed, project_root};
use crate::{emit, say};

/// Time compression of alert-sim's own temporary stack.
pub const DEFAULT_COMPRESSION: u32 = 30;
const POLL: Duration = Duration::from_millis(200);
/// How long a scenario waits for the previous one's alerts to clear.
const QUIET_DEADLINE: Duration = Duration::from_secs(240);
/// The longest wait for a resolved notification.
const MAX_RESOLVE: Duration = Duration::from_secs(300);

/// `cargo xtask alert-sim --help`.
pub const LONG_ABOUT: &str = "Fire, route and resolve every alert that can be reproduced locally.\n\n\
Each scenario injects a fault into a live stack, waits until its alerts fire in Prometheus and \
page the right receiver of the alert sink within 1.2× their theoretical bound \
(for + scrape + evaluation + group_wait, plus a documented lead for a few alerts), runs the runbook's diagnosis against the incident, \
heals it and waits for the resolved notifications. Reports: alert-sim.json and alert-sim.md.\n\n\
Examples:\n  \
cargo xtask alert-sim --list\n  \
cargo xtask alert-sim                                 temporary stack on its planned ports, compressed time\n  \
cargo xtask deploy --state-dir /tmp/as --port-base 22800 --compress-time 30\n  \
cargo xtask alert-sim --state-dir /tmp/as --scenario service-down --scenario llm-errors --json\n\n\
Exit codes: 0 every scenario paged and resolved in time, 1 a scenario failed, 2 usage, 3 the tool failed.";

#[derive(clap::Args)]
pub struct AlertSim {
    /// Run only this scenario (repeat for more); default: every scenario.
    #[arg(long = "scenario", value_name = "NAME", value_enum)]
    pub scenarios: Vec<Pick<Scenario>>,
    /// Only the scenarios `cargo xtask ci` runs.
    #[arg(long, conflicts_with = "scenarios")]
    pub ci_subset: bool,
    /// List the scenarios and the alerts not reproduced locally, then exit.
    #[arg(long)]
    pub list: bool,
    /// Deploy the live stack with --compress-time, or the suite takes hours.
    #[command(flatten)]
    pub target: TargetStackArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Time compression of the temporary stack (see `deploy --compress-time`).
    #[arg(long, default_value_t = DEFAULT_COMPRESSION, value_parser = clap::value_parser!(u32).range(2..=3600))]
    pub compress_time: u32,
    /// Where to write the reports. Default: `<state-dir>/alert-sim/`, or
    /// `target/alert-sim/` for a temporary stack.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
}

impl AlertSim {
    /// `cargo xtask ci`'s run: the CI subset on a temporary stack.
    pub fn ci_subset() -> Self {
        Self {
            scenarios: Vec::new(),
            ci_subset: true,
            list: false,
            target: TargetStackArgs { state_dir: None },
            output: OutputArgs { json: false },
            compress_time: DEFAULT_COMPRESSION,
            report_dir: None,
        }
    }

    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.list {
            return list(self.output.json);
        }
        let selected = self.select()?;
        let report = match &self.target.state_dir {
            Some(dir) => {
                let stack = Stack::open(dir)?;
                let reports = self
                    .report_dir
                    .clone()
                    .unwrap_or_else(|| stack.state_dir.join("alert-sim"));
                run_suite(&stack, &selected, &reports)
            }
            None => {
                let reports = self
                    .report_dir
                    .clone()
                    .unwrap_or_else(|| project_root().join("target/alert-sim"));
                with_temporary_stack(
                    sh,
                    PlannedStack::AlertSim,
                    Some(self.compress_time),
                    |stack| run_suite(stack, &selected, &reports),
                )
            }
        }?;
        if self.output.json {
            emit!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            emit!("{}", report.summary_table());
        }
        report.verdict()
    }

    fn select(&self) -> Result<Vec<&'static Scenario>> {
        if self.ci_subset {
            return Ok(SCENARIOS.iter().filter(|s| s.in_ci).collect());
        }
        if self.scenarios.is_empty() {
            return Ok(SCENARIOS.iter().collect());
        }
        Ok(self.scenarios.iter().map(|pick| pick.0).collect())
    }
}

/// `--list`: the scenarios and the alerts not reproduced locally, on
/// stdout as a table or JSON.
fn list(json: bool) -> Result<()> {
    if json {
        let scenarios: Vec<serde_json::Value> = SCENARIOS
            .iter()
            .map(|s| {
                let pages: Vec<serde_json::Value> = s
                    .pages
                    .iter()
                    .map(|p| serde_json::json!({"alert": p.name(), "receiver": p.receiver}))
                    .collect();
                serde_json::json!({
                    "name": s.name,
                    "summary": s.summary,
                    "in_ci": s.in_ci,
                    "fault": s.fault.describe(),
                    "pages": pages,
                })
            })
            .collect();
        let not_reproduced: Vec<serde_json::Value> = NOT_REPRODUCED
            .iter()
            .map(|(alert, why)| serde_json::json!({"alert": alert, "why": why}))
            .collect();
        emit!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"scenarios": scenarios, "not_reproduced": not_reproduced})
            )?
        );
        return Ok(());
    }
    emit!("{:<26} {:<4} {:<55} alerts", "scenario", "ci", "fault");
    for s in SCENARIOS {
        let alerts: Vec<String> = s
            .pages
            .iter()
            .map(|p| format!("{} → {}", p.name(), p.receiver))
            .collect();
        emit!(
            "{:<26} {:<4} {:<55} {}",
            s.name,
            if s.in_ci { "yes" } else { "" },
            s.fault.describe(),
            alerts.join(", ")
        );
    }
    emit!("not reproduced locally:");
    for (alert, why) in NOT_REPRODUCED {
        emit!("  {alert:<26} {why}");
    }
    Ok(())
}

crate::pickable!(Scenario, SCENARIOS);

/// What the suite knows about the stack's alerting path.
struct Setup<'a> {
    stack: &'a Stack,
    timings: Timings,
    rules: Rules,
    inhibit: Vec<observe::InhibitRule>,
    docs: Vec<Doc>,
    observer: Live,
}

impl Setup<'_> {
    fn rule(&self, alert: &str) -> Result<&crate::prom::rules::Rule> {
        self.rules
            .alert(alert)
            .with_context(|| format!("no alert rule {alert}"))
    }

    fn bound(&self, alert: &str) -> Result<Bound> {
        let secs = |d: &str| parse_duration(d).map(|d| d.as_secs_f64());
        Ok(Bound {
            lead_s: match observe::LEAD_TERMS.iter().find(|(a, _, _)| *a == alert) {
                None => 0.0,
                Some((_, observe::Lead::Sampled(period), _)) => *period,
                Some((_, observe::Lead::QuietWindow, _)) => {
                    longest_window(&self.rules, &self.rule(alert)?.expr, 0).as_secs_f64()
                }
            },
            for_s: self.rule(alert)?.for_duration().as_secs_f64(),
            scrape_s: secs(self.timings.scrape_interval)?,
            evaluation_s: secs(self.timings.evaluation_interval)?,
            recording_hops: recording_hops(&self.rules, &self.rule(alert)?.expr, 0),
            group_wait_s: secs(self.timings.group_wait)?,
        })
    }

    /// Generous: the longest range window behind the alert (data must leave
    /// it), plus a minute.
    fn resolve_deadline(&self, alert: &str) -> Result<Duration> {
        let window = longest_window(&self.rules, &self.rule(alert)?.expr, 0);
        Ok((window + window / 2 + Duration::from_secs(60)).min(MAX_RESOLVE))
    }
}

/// Recording rules between the raw series and `expr` (the longest chain).
fn recording_hops(rules: &Rules, expr: &str, depth: u32) -> u32 {
    if depth > 8 {
        return depth;
    }
    recordings_used(rules, expr)
        .map(|r| 1 + recording_hops(rules, &r.expr, depth + 1))
        .max()
        .unwrap_or(0)
}

/// The longest range window (or subquery range) in `expr` and the
/// recording rules it uses.
fn longest_window(rules: &Rules, expr: &str, depth: u32) -> Duration {
    // The rules are promtool-checked (or compressed, which parses them), so
    // they parse; one that did not would have no window to wait out.
    let own = crate::prom::promql::ranges(expr)
        .unwrap_or_default()
        .into_iter()
        .max()
        .unwrap_or_default();
    if depth > 8 {
        return own;
    }
    recordings_used(rules, expr)
        .map(|r| longest_window(rules, &r.expr, depth + 1))
        .fold(own, Duration::max)
}

/// The recording rules whose output `expr` selects.
fn recordings_used<'r>(
    rules: &'r Rules,
    expr: &str,
) -> impl Iterator<Item = &'r crate::prom::rules::Rule> {
    crate::prom::promql::metric_names(expr)
        .unwrap_or_default()
        .into_iter()
        .filter_map(move |name| {
            rules
                .recordings()
                .find(|r| r.record.as_deref() == Some(name.as_str()))
        })
}

fn run_suite(stack: &Stack, selected: &[&'static Scenario], report_dir: &Path) -> Result<Report> {
    let started = Instant::now();
    let timings = launch::timings_of(stack);
    let rules_dir = if timings.time_compression > 1 {
        stack.config_path("rules")
    } else {
        say!(
            "warning: this stack runs on normal time (deploy it with --compress-time): the suite takes hours"
        );
        project_root().join("deploy/monitoring/rules")
    };
    let alertmanager = std::fs::read_to_string(stack.config_path("alertmanager.yml"))
        .context("reading the stack's rendered alertmanager.yml")?;
    let setup = Setup {
        stack,
        rules: Rules::load(&rules_dir)?,
        inhibit: observe::parse_inhibit_rules(&alertmanager)?,
        docs: crate::commands::runbooks::load_docs(&project_root().join("runbooks"))?,
        observer: Live {
            prometheus: stack.url(Component::Prometheus),
            sink_dir: stack.data_dir(Component::AlertSink),
        },
        timings,
    };
    let down = status::down(&status::statuses(stack));
    if !down.is_empty() {
        bail!(
            "the stack is not healthy ({}); fix it before simulating alerts",
            down.join(", ")
        );
    }
    say!(
        "alert-sim: {} scenario(s) on {} (time compressed {}×: scrape {}, evaluation {}, group_wait {})",
        selected.len(),
        stack.state_dir.display(),
        setup.timings.time_compression,
        setup.timings.scrape_interval,
        setup.timings.evaluation_interval,
        setup.timings.group_wait
    );
    let mut results = Vec::new();
    for (i, scenario) in selected.iter().enumerate() {
        say!(
            "── [{}/{}] {}: {}",
            i + 1,
            selected.len(),
            scenario.name,
            scenario.summary
        );
        let result = run_scenario(&setup, scenario);
        match &result.failures[..] {
            [] => say!("   ok in {:.1}s", result.total_s),
            failures => {
                for f in failures {
                    say!("   FAILED: {f}");
                }
            }
        }
        results.push(result);
    }
    let report = Report {
        stack: stack.state_dir.display().to_string(),
        time_compression: setup.timings.time_compression,
        scrape_interval: setup.timings.scrape_interval.to_owned(),
        evaluation_interval: setup.timings.evaluation_interval.to_owned(),
        group_wait: setup.timings.group_wait.to_owned(),
        total_s: started.elapsed().as_secs_f64(),
        scenarios: results,
        not_reproduced: NOT_REPRODUCED
            .iter()
            .map(|(a, why)| ((*a).to_owned(), (*why).to_owned()))
            .collect(),
    };
    let (json, markdown) = report.write(report_dir)?;
    say!(
        "alert-sim ran in {:.0?}; reports: {} and {}",
        started.elapsed(),
        json.display(),
        markdown.display()
    );
    Ok(report)
}

impl Report {
    /// Ok when every scenario paged and resolved in time.
    fn verdict(&self) -> Result<()> {
        let failed: Vec<&str> = self
            .scenarios
            .iter()
            .filter(|s| !s.failures.is_empty())
            .map(|s| s.name.as_str())
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(check_failed(format!(
            "{} scenario(s) failed: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}

fn run_scenario(setup: &Setup, scenario: &Scenario) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult::new(scenario);
    if let Err(error) = scenario_phases(setup, scenario, &mut result) {
        result.failures.push(format!("{error:#}"));
    }
    result.total_s = started.elapsed().as_secs_f64();
    result
}

fn scenario_phases(setup: &Setup, scenario: &Scenario, result: &mut ScenarioResult) -> Result<()> {
    let stack = setup.stack;
    let observer: &dyn Observer = &setup.observer;
    let cx = FaultContext {
        stack,
        timings: &setup.timings,
    };

    // Nothing this scenario expects may be active already (a previous run),
    // nor anything that would inhibit it (a critical alert of the same job
    // still resolving from the previous scenario).
    let quiet_since = Instant::now();
    loop {
        let blockers = blockers(setup, scenario)?;
        if blockers.is_empty() {
            break;
        }
        if quiet_since.elapsed() > QUIET_DEADLINE {
            bail!(
                "still active before the fault, after {QUIET_DEADLINE:?}: {}",
                blockers.join(", ")
            );
        }
        if quiet_since.elapsed() < Duration::from_millis(1500) {
            say!("   waiting for {} to clear", blockers.join(", "));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    result.wait_quiet_s = quiet_since.elapsed().as_secs_f64();

    if let Some((query, why)) = scenario.precondition {
        let query = crate::prom::compress::scale_expr(query, &setup.timings.compression()?);
        let found = diagnose::query_prometheus(&setup.observer.prometheus, &query)?;
        if found != diagnose::NO_SERIES {
            bail!("precondition `{query}` holds ({found}): {why}");
        }
    }

    // Inject (after the warm-up, if any).
    let traffic = Traffic::start(stack, scenario.load)?;
    std::thread::sleep(Duration::from_secs(scenario.warm_up_s));
    let t = Instant::now();
    let injected = scenario.fault.inject(&cx);
    let injected_at = observe::now();
    result.inject_s = t.elapsed().as_secs_f64();
    let injected = match injected {
        Ok(injected) => injected,
        Err(error) => {
            drop(traffic);
            // Half a fault is still a fault: heal what may be in place.
            if let Err(heal) = scenario.fault.heal(&cx, fault::Injected::Nothing) {
                result
                    .failures
                    .push(format!("healing after a failed injection: {heal:#}"));
            }
            return Err(error.context(format!("injecting: {}", scenario.fault.describe())));
        }
    };
    say!(
        "   injected: {} ({:.1}s)",
        scenario.fault.describe(),
        result.inject_s
    );

    // Wait for every page, then diagnose, then check inhibitions. A failure
    // here still heals.
    let outcome = (|| -> Result<()> {
        for expect in scenario.pages {
            let mut bound = setup.bound(expect.alert)?;
            bound.lead_s += scenario.fault.lead_s(expect.alert, bound.scrape_s);
            let limit = bound.seconds() * observe::BOUND_SLACK;
            // Wait past the limit to report how late a late page was.
            let waited = observe::now() - injected_at;
            let deadline = Duration::from_secs_f64((limit + 30.0 - waited).max(1.0));
            let page = observe::wait_for_page(observer, expect, injected_at, deadline, POLL);
            let mut entry = PageResult::new(expect, &bound);
            match page {
                Ok(page) => {
                    let ttp = page.received_at - injected_at;
                    entry.time_to_page_s = Some(ttp);
                    entry.active_after_s = Some(page.active_at - injected_at);
                    say!(
                        "   paged {} at {} after {ttp:.1}s (bound {:.1}s, limit {limit:.1}s)",
                        expect.name(),
                        expect.receiver,
                        bound.seconds()
                    );
                    if let Err(error) = bound.check(ttp) {
                        result.failures.push(format!("{}: {error}", expect.name()));
                    }
                }
                Err(error) => result.failures.push(format!("{error:#}")),
            }
            result.pages.push(entry);
        }

        let t = Instant::now();
        let mut seen = BTreeSet::new();
        for expect in scenario.pages {
            let url = &setup.rule(expect.alert)?.annotations["runbook_url"];
            let (source, commands, queries) = diagnose::blocks_for(&setup.docs, url)?;
            if !seen.insert(source.clone()) {
                continue;
            }
            let (steps, problems) = diagnose::run(stack, &source, &commands, &queries)?;
            say!(
                "   diagnosis: {} ({} commands, {} queries)",
                source,
                commands.len(),
                queries.len()
            );
            result.diagnosis.extend(steps);
            result.failures.extend(problems);
        }
        result.diagnose_s = t.elapsed().as_secs_f64();

        let evaluation = parse_duration(setup.timings.evaluation_interval)?.as_secs_f64();
        let (checked, violations) = check_inhibitions(setup, injected_at, evaluation)?;
        result.inhibited_checked = checked;
        result.failures.extend(violations);
        Ok(())
    })();
    if let Err(error) = outcome {
        result.failures.push(format!("{error:#}"));
    }

    // Heal.
    let t = Instant::now();
    let traffic = if scenario.load_while_healing {
        Some(traffic)
    } else {
        result.requests_sent = traffic.stop();
        None
    };
    scenario
        .fault
        .heal(&cx, injected)
        .with_context(|| format!("healing: {}", scenario.fault.describe()))?;
    result.heal_s = t.elapsed().as_secs_f64();
    say!("   healed ({:.1}s)", result.heal_s);

    // Resolve.
    let resolving = Instant::now();
    for (expect, entry) in scenario.pages.iter().zip(result.pages.iter_mut()) {
        if entry.time_to_page_s.is_none() {
            continue;
        }
        let deadline = setup
            .resolve_deadline(expect.alert)?
            .saturating_sub(resolving.elapsed());
        // Resolved after its own page: not a resolve of an earlier incident.
        let paged_at = entry
            .time_to_page_s
            .map_or(injected_at, |ttp| injected_at + ttp);
        match observe::wait_for_resolve(observer, expect, paged_at, deadline, POLL) {
            Ok(at) => {
                let after = at - injected_at;
                entry.resolved_after_s = Some(after);
                say!(
                    "   resolved {} at {} ({after:.1}s after the fault)",
                    expect.name(),
                    expect.receiver
                );
            }
            Err(error) => result.failures.push(format!("{error:#}")),
        }
    }
    result.resolve_s = resolving.elapsed().as_secs_f64();
    if let Some(traffic) = traffic {
        result.requests_sent = traffic.stop();
    }
    Ok(())
}

/// What must clear before `scenario` injects: its own alerts, and alerts
/// that would inhibit them.
fn blockers(setup: &Setup, scenario: &Scenario) -> Result<Vec<String>> {
    let active = setup.observer.active_alerts()?;
    let mut found: Vec<String> = active
        .iter()
        .filter(|a| scenario.pages.iter().any(|p| p.matches(&a.labels)))
        .map(|a| Expect::describe_labels(&a.labels))
        .collect();
    // The expected alerts as if firing now, among what is active.
    let mut world = active.clone();
    let first_expected = world.len();
    for page in scenario.pages {
        let mut labels = observe::Labels::new();
        labels.insert("alertname".to_owned(), page.alert.to_owned());
        if let Some(job) = page.job {
            labels.insert("job".to_owned(), job.to_owned());
        }
        if let Some(severity) = setup.rule(page.alert)?.labels.get("severity") {
            labels.insert("severity".to_owned(), severity.clone());
        }
        world.push(observe::ActiveAlert {
            labels,
            state: "firing".to_owned(),
            active_at: 0.0,
        });
    }
    let expected = &world[first_expected..];
    for (target, _) in observe::inhibited(&world, &setup.inhibit, &|_| 0.0) {
        if expected.iter().any(|e| std::ptr::eq(e, target)) {
            let sources: Vec<String> = active
                .iter()
                .map(|a| Expect::describe_labels(&a.labels))
                .collect();
            found.push(format!(
                "an inhibitor of {} (active: {})",
                Expect::describe_labels(&target.labels),
                sources.join(", ")
            ));
        }
    }
    Ok(found)
}

/// Alerts the inhibit rules silence must not page once their inhibitor
/// fires: returns how many inhibited alerts were checked, and the violations.
fn check_inhibitions(setup: &Setup, since: f64, evaluation: f64) -> Result<(usize, Vec<String>)> {
    let active = setup.observer.active_alerts()?;
    let firing: Vec<_> = active.into_iter().filter(|a| a.state == "firing").collect();
    let for_of = |name: &str| {
        setup
            .rules
            .alert(name)
            .map_or(0.0, |r| r.for_duration().as_secs_f64())
    };
    let inhibited = observe::inhibited(&firing, &setup.inhibit, &for_of);
    let mut notes = BTreeMap::new();
    for receiver in observe::RECEIVERS {
        notes.insert(receiver, setup.observer.notifications(receiver)?);
    }
    let mut violations = Vec::new();
    for (alert, inhibited_from) in &inhibited {
        // Alertmanager may already have sent it before its inhibitor fired.
        let cutoff = since.max(inhibited_from + evaluation + 1.0);
        for (receiver, list) in &notes {
            let paged = list.iter().any(|n| {
                n.received_at > cutoff
                    && n.alerts
                        .iter()
                        .any(|(status, labels)| status == "firing" && labels == &alert.labels)
            });
            if paged {
                violations.push(format!(
                    "{:?} paged {receiver} although an inhibit rule silences it",
                    alert.labels
                ));
            }
        }
    }
    if !inhibited.is_empty() {
        let names: Vec<String> = inhibited
            .iter()
            .map(|(a, _)| Expect::describe_labels(&a.labels))
            .collect();
        say!("   inhibited (checked silent): {}", names.join(", "));
    }
    Ok((inhibited.len(), violations))
}
