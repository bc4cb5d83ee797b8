//! The suite's results: the summary table printed at the end, and the
//! reports written to disk (`alert-sim.json`, `alert-sim.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::diagnose::Step;
use super::observe::{BOUND_SLACK, Bound, Expect, LEAD_TERMS};
use super::scenarios::Scenario;

#[derive(Debug, Serialize)]
pub struct Report {
    pub stack: String,
    pub time_compression: u32,
    pub scrape_interval: String,
    pub evaluation_interval: String,
    pub group_wait: String,
    pub total_s: f64,
    pub scenarios: Vec<ScenarioResult>,
    pub not_reproduced: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub fault: String,
    pub pages: Vec<PageResult>,
    /// Waiting for the previous scenario's alerts to clear.
    pub wait_quiet_s: f64,
    pub inject_s: f64,
    pub diagnose_s: f64,
    pub heal_s: f64,
    pub resolve_s: f64,
    pub total_s: f64,
    pub requests_sent: u64,
    /// Firing alerts the inhibit rules silence, checked not to have paged.
    pub inhibited_checked: usize,
    pub diagnosis: Vec<Step>,
    pub failures: Vec<String>,
}

impl ScenarioResult {
    pub fn new(scenario: &Scenario) -> Self {
        Self {
            name: scenario.name.to_owned(),
            fault: scenario.fault.describe(),
            pages: Vec::new(),
            wait_quiet_s: 0.0,
            inject_s: 0.0,
            diagnose_s: 0.0,
            heal_s: 0.0,
            resolve_s: 0.0,
            total_s: 0.0,
            requests_sent: 0,
            inhibited_checked: 0,
            diagnosis: Vec::new(),
            failures: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PageResult {
    pub alert: String,
    pub receiver: String,
    pub bound: Bound,
    pub bound_s: f64,
    /// Fault in place → notification recorded by the sink.
    pub time_to_page_s: Option<f64>,
    /// Fault in place → the alert's expression first held (Prometheus' activeAt).
    pub active_after_s: Option<f64>,
    /// Fault in place → resolved notification recorded.
    pub resolved_after_s: Option<f64>,
}

impl PageResult {
    pub fn new(expect: &Expect, bound: &Bound) -> Self {
        Self {
            alert: expect.name(),
            receiver: expect.receiver.to_owned(),
            bound: *bound,
            bound_s: bound.seconds(),
            time_to_page_s: None,
            active_after_s: None,
            resolved_after_s: None,
        }
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |s| format!("{s:.1}s"))
}

impl Report {
    /// One row per expected page.
    pub fn summary_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| scenario | alert | receiver | time to page | bound | ratio | resolved after | scenario time | result |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for s in &self.scenarios {
            let result = if s.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            };
            for p in &s.pages {
                let ratio = p
                    .time_to_page_s
                    .map_or_else(|| "—".to_owned(), |t| format!("{:.2}", t / p.bound_s));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.1}s | {ratio} | {} | {:.1}s | {result} |",
                    s.name,
                    p.alert,
                    p.receiver,
                    secs(p.time_to_page_s),
                    p.bound_s,
                    secs(p.resolved_after_s),
                    s.total_s
                );
            }
            if s.pages.is_empty() {
                let _ = writeln!(
                    out,
                    "| {} | — | — | — | — | — | — | {:.1}s | {result} |",
                    s.name, s.total_s
                );
            }
        }
        let passed = self
            .scenarios
            .iter()
            .filter(|s| s.failures.is_empty())
            .count();
        let _ = writeln!(
            out,
            "\n{passed}/{} scenarios passed in {:.0}s (time compressed {}×; bound = [lead +] for + scrape + evaluation × (1 + recording hops) + group_wait, limit {BOUND_SLACK}× bound)",
            self.scenarios.len(),
            self.total_s,
            self.time_compression
        );
        for (alert, _, why) in LEAD_TERMS {
            let _ = writeln!(out, "lead of {alert}: {why}");
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# alert-sim report\n\n");
        let _ = writeln!(
            out,
            "Stack `{}`, time compressed {}× (scrape {}, evaluation {}, group_wait {}).\n",
            self.stack,
            self.time_compression,
            self.scrape_interval,
            self.evaluation_interval,
            self.group_wait
        );
        out.push_str(&self.summary_table());
        for s in &self.scenarios {
            let _ = writeln!(out, "\n## {}\n", s.name);
            let _ = writeln!(
                out,
                "Fault: {}. Phases: wait for quiet {:.1}s, inject {:.1}s, diagnose {:.1}s, heal {:.1}s, resolve {:.1}s; {} requests sent; {} inhibited alert(s) checked silent.\n",
                s.fault,
                s.wait_quiet_s,
                s.inject_s,
                s.diagnose_s,
                s.heal_s,
                s.resolve_s,
                s.requests_sent,
                s.inhibited_checked
            );
            for f in &s.failures {
                let _ = writeln!(out, "- **FAILED:** {f}");
            }
            for step in &s.diagnosis {
                let _ = writeln!(
                    out,
                    "\n`{}` ({}, {}, exit {}, {:.1}s)\n\n```text\n{}\n```",
                    step.text.replace('`', "'"),
                    step.kind,
                    step.source,
                    step.exit_code
                        .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
                    step.seconds,
                    step.output.replace("```", "'''")
                );
            }
        }
        out.push_str("\n## Not reproduced locally\n\n| alert | why |\n|---|---|\n");
        for (alert, why) in &self.not_reproduced {
            let _ = writeln!(out, "| {alert} | {why} |");
        }
        out
    }

    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join("alert-sim.json");
        let markdown = dir.join("alert-sim.md");
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        std::fs::write(&markdown, self.markdown())?;
        Ok((json, markdown))
    }
}
