//! The only place that writes reports: `report.json` (everything, including
//! the per-second series, so a report can be rendered again), `report.md`,
//! and the plots (SVG and PNG), all into one directory.

mod plots;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sampler::ProcessReport;
use crate::stats::{Percentiles, SecondRow, SpectrumPoint, Totals};
use crate::threshold::{Verdict, show_ms};

/// Plots each report has, as `<name>.svg` and `<name>.png`.
pub const PLOTS: [&str; 4] = ["latency", "throughput", "errors", "spectrum"];
/// Only when processes were sampled.
pub const PROCESS_PLOT: &str = "processes";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rates {
    /// Arrivals offered by the profile, per second of the send phase.
    pub offered_per_s: Option<f64>,
    /// Iterations started per second of the send phase.
    pub sent_per_s: f64,
    /// Iterations that ended during the send phase, per second of it.
    pub completed_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DbCheck {
    pub checked: u64,
    /// Acknowledged, but no row in `tasks`.
    pub missing: u64,
    /// The row's status differs from what the API answered.
    pub status_mismatch: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LedgerReport {
    /// Tasks the orchestrator acknowledged with 202 (all in `acknowledged.jsonl`).
    pub acknowledged: u64,
    /// Final status per the API after the drain, by status.
    pub final_status: BTreeMap<String, u64>,
    /// Final status per class of text: class → status → count.
    pub by_class: BTreeMap<String, BTreeMap<String, u64>>,
    /// `error_kind` of the tasks that ended without success, by kind.
    #[serde(default)]
    pub error_kinds: BTreeMap<String, u64>,
    /// Terminal, but not in the state the task was expected to end in.
    pub unexpected: u64,
    /// Acknowledged tasks the API answers 404 for.
    pub lost: u64,
    /// Still queued or running when the drain ended.
    pub stuck: u64,
    /// The API could not be asked (transport errors after retries).
    pub unverified: u64,
    pub drain_timeout_s: f64,
    pub database: Option<DbCheck>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KneeStep {
    pub offered_per_s: f64,
    pub completed_per_s: f64,
    pub p99_ms: Option<f64>,
    pub errors_share: f64,
    pub good: bool,
    pub why: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KneeReport {
    /// The last offered rate the system followed; None if even the first step failed.
    pub knee_per_s: Option<f64>,
    pub stopped_because: Option<String>,
    pub steps: Vec<KneeStep>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportData {
    pub tool: String,
    /// `run` or `http`.
    pub command: String,
    /// `open`, `closed` or `find-knee`.
    pub model: String,
    pub target: String,
    pub started_unix_ms: u64,
    /// The options of the run (no secrets: files are named, never read into it).
    pub config: Value,
    pub send_s: f64,
    pub drain_s: f64,
    pub totals: Totals,
    /// Attempts judged for `errors` (sent iterations).
    pub attempts: u64,
    /// Errors after the ledger check: pre-acknowledgement failures plus
    /// acknowledged tasks not ending as expected (lost and stuck included).
    pub errors: u64,
    pub in_flight_max: u64,
    pub rates: Rates,
    pub latency_ms: Percentiles,
    pub ack_latency_ms: Option<Percentiles>,
    /// End to end minus each task's simulated LLM time (tasks that report it).
    #[serde(default)]
    pub overhead_ms: Option<Percentiles>,
    pub spectrum: Vec<SpectrumPoint>,
    pub series: Vec<SecondRow>,
    pub ledger: Option<LedgerReport>,
    pub knee: Option<KneeReport>,
    pub processes: Vec<ProcessReport>,
    pub server_metrics: Option<Value>,
    pub thresholds: Vec<Verdict>,
    pub aborted: Option<String>,
    pub passed: bool,
    pub generator: Generator,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Generator {
    pub threads: usize,
    /// CPU seconds this process used (user + system).
    pub cpu_s: Option<f64>,
}

/// CPU seconds of this process so far, from /proc/self/stat (USER_HZ = 100).
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Reads `--server-metrics`: any JSON value (an object is expected).
pub fn read_server_metrics(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// The stdout summary: the report without its long series.
pub fn summary(data: &ReportData) -> Value {
    let mut value = serde_json::to_value(data).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("series");
        object.remove("spectrum");
        if let Some(Value::Array(processes)) = object.get_mut("processes") {
            for p in processes {
                if let Some(p) = p.as_object_mut() {
                    p.remove("samples");
                }
            }
        }
    }
    value
}

/// The summary JSON on stdout; each failed threshold, with its measured
/// value, on stderr.
pub fn print_summary(data: &ReportData) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &summary(data))?;
    writeln!(out)?;
    out.flush()?;
    let mut err = std::io::stderr().lock();
    for v in data.thresholds.iter().filter(|v| !v.passed) {
        writeln!(err, "threshold `{}` FAILED: {}", v.threshold, v.detail)?;
    }
    if let Some(reason) = &data.aborted {
        writeln!(err, "aborted: {reason}")?;
    }
    Ok(())
}

/// Writes the whole report into `dir`; the paths written.
pub fn write(dir: &Path, data: &ReportData) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(data)?)
        .with_context(|| format!("writing {}", json.display()))?;
    written.push(json);
    let plot_note = plots::draw_all(dir, data, &mut written);
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(data, plot_note.as_deref()))
        .with_context(|| format!("writing {}", md.display()))?;
    written.push(md);
    Ok(written)
}

/// Renders an existing report again, e.g. with server-side figures added.
pub fn rerender(dir: &Path, server_metrics: Option<Value>) -> Result<ReportData> {
    let path = dir.join("report.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut data: ReportData = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an octollm-load report", path.display()))?;
    if server_metrics.is_some() {
        data.server_metrics = server_metrics;
    }
    write(dir, &data)?;
    Ok(data)
}

fn fmt_opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), show_ms)
}

fn share(n: u64, of: u64) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.3}%", n as f64 * 100.0 / of as f64)
    }
}

/// Flattens nested objects to dotted keys, for the server-side table.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Number(n) => out.push((prefix.to_owned(), n.to_string())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
        Value::Null => out.push((prefix.to_owned(), "–".into())),
        Value::Array(items) => out.push((
            prefix.to_owned(),
            items
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

pub fn markdown(d: &ReportData, plot_note: Option<&str>) -> String {
    let mut m = String::new();
    let verdict = if let Some(reason) = &d.aborted {
        format!("**ABORTED** — {reason}")
    } else if d.passed {
        "**PASSED**".to_owned()
    } else {
        let failed = d.thresholds.iter().filter(|t| !t.passed).count();
        format!("**FAILED** — {failed} threshold(s) crossed")
    };
    let _ = writeln!(m, "# Load test report: `{}` ({})\n", d.command, d.model);
    let _ = writeln!(m, "Result: {verdict}\n");
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(m, "| target | `{}` |", d.target);
    let _ = writeln!(m, "| started (unix ms) | {} |", d.started_unix_ms);
    let _ = writeln!(m, "| send phase | {:.1} s |", d.send_s);
    let _ = writeln!(m, "| drain | {:.1} s |", d.drain_s);
    if let Some(offered) = d.rates.offered_per_s {
        let _ = writeln!(m, "| offered | {offered:.1}/s |");
    }
    let _ = writeln!(
        m,
        "| sent | {:.1}/s ({} in all) |",
        d.rates.sent_per_s, d.totals.sent
    );
    let _ = writeln!(
        m,
        "| completed in the send phase | {:.1}/s |",
        d.rates.completed_per_s
    );
    let _ = writeln!(m, "| completed in all | {} |", d.totals.completed);
    let _ = writeln!(
        m,
        "| errors | {} ({}) |",
        d.errors,
        share(d.errors, d.attempts)
    );
    let _ = writeln!(
        m,
        "| 429 answers | {} ({}) |",
        d.totals.rate_limited,
        share(d.totals.rate_limited, d.attempts)
    );
    let _ = writeln!(m, "| dropped iterations | {} |", d.totals.dropped);
    let _ = writeln!(m, "| late starts | {} |", d.totals.late);
    let _ = writeln!(m, "| in flight (max) | {} |", d.in_flight_max);
    let cpu = d
        .generator
        .cpu_s
        .map_or_else(|| "–".to_owned(), |c| format!("{c:.2} s"));
    let _ = writeln!(
        m,
        "| generator | {} thread(s), {cpu} CPU |",
        d.generator.threads
    );

    let _ = writeln!(m, "\n## Thresholds\n");
    if d.thresholds.is_empty() {
        let _ = writeln!(m, "None given.");
    } else {
        let _ = writeln!(m, "| threshold | result | measured |\n|---|---|---|");
        for t in &d.thresholds {
            let result = if t.passed { "pass" } else { "**FAIL**" };
            let _ = writeln!(m, "| `{}` | {result} | {} |", t.threshold, t.detail);
        }
    }

    let _ = writeln!(m, "\n## Latency\n");
    let _ = writeln!(
        m,
        "Measured from each iteration's scheduled start (open model) or its start (closed model) to the end it waited for.\n"
    );
    let _ = writeln!(
        m,
        "| | count | p50 | p90 | p95 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|---|---|---|"
    );
    let mut row = |name: &str, p: &Percentiles| {
        let _ = writeln!(
            m,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.count,
            show_ms(p.p50),
            show_ms(p.p90),
            show_ms(p.p95),
            show_ms(p.p99),
            show_ms(p.p999),
            show_ms(p.max),
            show_ms(p.mean)
        );
    };
    row("end to end", &d.latency_ms);
    if let Some(ack) = &d.ack_latency_ms {
        row("submit → 202", ack);
    }
    if let Some(overhead) = &d.overhead_ms {
        row("minus simulated LLM time", overhead);
    }

    if let Some(l) = &d.ledger {
        let _ = writeln!(m, "\n## Task ledger\n");
        let _ = writeln!(
            m,
            "Every acknowledged task id is in `acknowledged.jsonl`; after a drain of at most {:.0} s each was asked for through the API.\n",
            l.drain_timeout_s
        );
        let _ = writeln!(m, "| | |\n|---|---|");
        let _ = writeln!(m, "| acknowledged | {} |", l.acknowledged);
        for (status, n) in &l.final_status {
            let _ = writeln!(m, "| final: {status} | {n} |");
        }
        let _ = writeln!(m, "| not the expected state | {} |", l.unexpected);
        let _ = writeln!(m, "| **lost** (404) | {} |", l.lost);
        let _ = writeln!(
            m,
            "| **stuck** (not terminal after the drain) | {} |",
            l.stuck
        );
        let _ = writeln!(m, "| unverified (API unreachable) | {} |", l.unverified);
        if !l.by_class.is_empty() {
            let _ = writeln!(m, "\n| class | final states |\n|---|---|");
            for (class, states) in &l.by_class {
                let states: Vec<String> = states.iter().map(|(s, n)| format!("{s}: {n}")).collect();
                let _ = writeln!(m, "| {class} | {} |", states.join(", "));
            }
        }
        if !l.error_kinds.is_empty() {
            let _ = writeln!(m, "\n| task error_kind | tasks |\n|---|---|");
            for (kind, n) in &l.error_kinds {
                let _ = writeln!(m, "| {kind} | {n} |");
            }
        }
        match &l.database {
            Some(db) => {
                let _ = writeln!(m, "\nDatabase cross-check: ");
                match &db.error {
                    Some(e) => {
                        let _ = writeln!(m, "failed ({e}).");
                    }
                    None => {
                        let _ = writeln!(
                            m,
                            "{} ids checked, {} missing from `tasks`, {} with a status other than the API's.",
                            db.checked, db.missing, db.status_mismatch
                        );
                    }
                }
            }
            None => {
                let _ = writeln!(m, "\nDatabase cross-check: not requested.");
            }
        }
    }

    if let Some(k) = &d.knee {
        let _ = writeln!(m, "\n## Knee\n");
        match k.knee_per_s {
            Some(rate) => {
                let _ = writeln!(
                    m,
                    "Knee (last offered rate the system followed): **{rate:.0}/s**."
                );
            }
            None => {
                let _ = writeln!(m, "Knee: none — the first step already failed.");
            }
        }
        if let Some(why) = &k.stopped_because {
            let _ = writeln!(m, "Stopped because: {why}.");
        }
        let _ = writeln!(
            m,
            "\n| offered/s | completed/s | p99 | errors | verdict |\n|---|---|---|---|---|"
        );
        for s in &k.steps {
            let verdict = if s.good {
                "good".to_owned()
            } else {
                format!("**{}**", s.why.as_deref().unwrap_or("bad"))
            };
            let _ = writeln!(
                m,
                "| {:.0} | {:.1} | {} | {:.3}% | {verdict} |",
                s.offered_per_s,
                s.completed_per_s,
                fmt_opt_ms(s.p99_ms),
                s.errors_share * 100.0
            );
        }
    }

    let _ = writeln!(m, "\n## Server-side figures\n");
    match &d.server_metrics {
        None => {
            let _ = writeln!(m, "Not collected.");
        }
        Some(value) => {
            let mut rows = Vec::new();
            flatten("", value, &mut rows);
            if rows.is_empty() {
                let _ = writeln!(m, "Not collected (empty).");
            } else {
                let _ = writeln!(m, "| figure | value |\n|---|---|");
                for (k, v) in rows {
                    let _ = writeln!(m, "| {k} | {v} |");
                }
            }
        }
    }

    if !d.processes.is_empty() {
        let _ = writeln!(m, "\n## Sampled processes\n");
        let _ = writeln!(
            m,
            "Least-squares growth per hour; a leak is a slope more than 3 standard errors above zero over at least 10 minutes.\n"
        );
        let _ = writeln!(
            m,
            "| process | pid | samples | span | RSS first → last | RSS growth | fds | fd growth | threads growth | leak |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in &d.processes {
            let (first, last) = (p.samples.first(), p.samples.last());
            let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
            let rss = match (first, last) {
                (Some(a), Some(b)) => format!("{} → {}", mb(a.rss_bytes), mb(b.rss_bytes)),
                _ => "–".into(),
            };
            let fds = match (first, last) {
                (Some(a), Some(b)) => format!("{} → {}", a.fds, b.fds),
                _ => "–".into(),
            };
            let mut leak = Vec::new();
            if p.rss_leak {
                leak.push("RSS");
            }
            if p.fd_leak {
                leak.push("fds");
            }
            let exited = p
                .exited_at_s
                .map(|t| format!(" (exited at {t:.0} s)"))
                .unwrap_or_default();
            let _ = writeln!(
                m,
                "| {}{exited} | {} | {} | {:.0} s | {rss} | {:.2} MB/h | {fds} | {:.2}/h | {:.2}/h | {} |",
                p.name,
                p.pid,
                p.samples.len(),
                p.span_s,
                p.rss.slope_per_h / 1e6,
                p.fds.slope_per_h,
                p.threads.slope_per_h,
                if leak.is_empty() {
                    "no".to_owned()
                } else {
                    format!("**{}**", leak.join(", "))
                }
            );
        }
    }

    if !d.totals.error_kinds.is_empty() {
        let _ = writeln!(m, "\n## Errors seen while running\n");
        let _ = writeln!(m, "| kind | count |\n|---|---|");
        for (kind, n) in &d.totals.error_kinds {
            let _ = writeln!(m, "| {kind} | {n} |");
        }
    }

    let _ = writeln!(m, "\n## Plots\n");
    if let Some(note) = plot_note {
        let _ = writeln!(m, "{note}\n");
    }
    let mut names: Vec<&str> = PLOTS.to_vec();
    if !d.processes.is_empty() {
        names.push(PROCESS_PLOT);
    }
    for name in names {
        let _ = writeln!(m, "![{name}]({name}.svg) ([PNG]({name}.png))\n");
    }

    if !d.notes.is_empty() {
        let _ = writeln!(m, "## Notes\n");
        for n in &d.notes {
            let _ = writeln!(m, "- {n}");
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_figures_render_as_a_table_or_not_collected() {
        let mut d = ReportData::default();
        assert!(markdown(&d, None).contains("## Server-side figures\n\nNot collected."));
        d.server_metrics = Some(serde_json::json!({
            "cpu_seconds_per_task": {"orchestrator": 0.0021, "reflex": 0.0004},
            "pg_commits_per_s": 1234.5
        }));
        let md = markdown(&d, None);
        assert!(
            md.contains("| cpu_seconds_per_task.orchestrator | 0.0021 |"),
            "{md}"
        );
        assert!(md.contains("| pg_commits_per_s | 1234.5 |"));
    }

    #[test]
    fn summary_drops_the_series() {
        let d = ReportData {
            series: vec![SecondRow::default()],
            ..ReportData::default()
        };
        let s = summary(&d);
        assert!(s.get("series").is_none());
        assert!(s.get("latency_ms").is_some());
    }
}
