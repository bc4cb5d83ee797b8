//! The runbook's diagnosis, run against the incident: the `diagnose` and
//! `promql` blocks of the runbook the alert's `runbook_url` points into.
//!
//! The commands are written for the default stack (state in `.octollm`,
//! default ports). Run against the stack under test they get:
//!
//! - `OCTOLLM_STATE_DIR` set to its state directory: the runbooks write
//!   `${OCTOLLM_STATE_DIR:-.octollm}`, and `cargo xtask status|logs|restart|down`
//!   read it as their `--state-dir` default;
//! - every default port of a component (`localhost:8000`, `-p 5432`) shifted
//!   by the stack's port base;
//! - `cargo xtask` replaced by this very binary (no nested cargo run).
//!
//! A command exits however the incident makes it exit (`status` exits 1
//! while a component is down): its exit code and output are recorded, not
//! judged, except that a command the shell cannot run (126, 127) or one that
//! hangs past [`COMMAND_TIMEOUT`] fails the scenario; so does a PromQL query
//! Prometheus rejects.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::commands::runbooks::{Doc, blocks};
use crate::prom::client::Prometheus;
use crate::stack::{Component, Stack};

/// What an instant query that matched nothing reports.
pub const NO_SERIES: &str = "(no series)";
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// Output kept per command in the report.
const KEEP: usize = 1500;

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub kind: &'static str,
    /// `runbooks/<file>.md:<line>`
    pub source: String,
    pub text: String,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    pub output: String,
}

/// Numbered lines of a fenced block.
pub type Lines = Vec<(usize, String)>;

/// The `diagnose` commands and `promql` queries of the runbook `url` names,
/// with the runbook's path.
pub fn blocks_for(docs: &[Doc], runbook_url: &str) -> Result<(String, Lines, Lines)> {
    // Whatever the base URL the stack's rules carry, the file follows it.
    let file = runbook_url
        .rsplit_once("runbooks/")
        .and_then(|(_, r)| r.split('#').next())
        .with_context(|| {
            format!("runbook_url `{runbook_url}` is not <base>runbooks/<file>.md#<anchor>")
        })?;
    let doc = docs
        .iter()
        .find(|d| d.name == file)
        .with_context(|| format!("no runbooks/{file}"))?;
    Ok((
        format!("runbooks/{file}"),
        blocks(&doc.text, "diagnose"),
        blocks(&doc.text, "promql"),
    ))
}

/// A runbook command rewritten for the stack under test.
pub fn for_stack(command: &str, port_base: u16, xtask: &str) -> String {
    let mut text = command.replace("cargo xtask ", &format!("{xtask} "));
    if port_base == 0 {
        return text;
    }
    for port in Component::ALL.iter().filter_map(|c| c.default_port()) {
        let from = port.to_string();
        let to = (port + port_base).to_string();
        for prefix in ["localhost:", "127.0.0.1:", "-p "] {
            text = replace_port(&text, &format!("{prefix}{from}"), &format!("{prefix}{to}"));
        }
    }
    text
}

/// Replaces `from` where no digit follows it (`:8000`, not `:80001`).
fn replace_port(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Runs the commands and queries; returns the steps and the problems that
/// fail the scenario.
pub fn run(
    stack: &Stack,
    source: &str,
    commands: &[(usize, String)],
    queries: &[(usize, String)],
) -> Result<(Vec<Step>, Vec<String>)> {
    let xtask = std::env::current_exe()?.to_string_lossy().into_owned();
    let root = crate::util::project_root();
    let mut steps = Vec::new();
    let mut problems = Vec::new();
    for (line, command) in commands {
        let text = for_stack(command, stack.port_base, &xtask);
        let started = Instant::now();
        let output = Command::new("timeout")
            .arg(COMMAND_TIMEOUT.as_secs().to_string())
            .args(["bash", "-c", &text])
            .current_dir(&root)
            .env("OCTOLLM_STATE_DIR", &stack.state_dir)
            .output()
            .with_context(|| format!("running `{text}`"))?;
        let code = output.status.code();
        let mut out = String::from_utf8_lossy(&output.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&output.stderr));
        let at = format!("{source}:{line}");
        match code {
            Some(124) => problems.push(format!("{at}: `{command}` hung past {COMMAND_TIMEOUT:?}")),
            Some(126 | 127) => problems.push(format!(
                "{at}: `{command}` cannot run: {}",
                out.lines().last().unwrap_or_default()
            )),
            _ => {}
        }
        steps.push(Step {
            kind: "command",
            source: at,
            text,
            exit_code: code,
            seconds: started.elapsed().as_secs_f64(),
            output: tail(&out),
        });
    }
    let prometheus = stack.url(Component::Prometheus);
    for (line, query) in queries {
        let started = Instant::now();
        let at = format!("{source}:{line}");
        let result = query_prometheus(&prometheus, query);
        let output = match &result {
            Ok(text) => text.clone(),
            Err(error) => {
                problems.push(format!("{at}: `{query}`: {error:#}"));
                format!("{error:#}")
            }
        };
        steps.push(Step {
            kind: "promql",
            source: at,
            text: query.clone(),
            exit_code: Some(i32::from(result.is_err())),
            seconds: started.elapsed().as_secs_f64(),
            output: tail(&output),
        });
    }
    Ok((steps, problems))
}

/// An instant query; its series, one per line (`{labels} value`).
pub fn query_prometheus(url: &str, query: &str) -> Result<String> {
    let data = Prometheus::new(url).query(query)?;
    let result = &data["result"];
    let lines: Vec<String> = match result.as_array() {
        Some(series) if series.is_empty() => vec![NO_SERIES.to_owned()],
        Some(series) => series
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s["metric"],
                    s["value"][1].as_str().unwrap_or_default()
                )
            })
            .collect(),
        None => vec![result.to_string()],
    };
    Ok(lines.join("\n"))
}

fn tail(text: &str) -> String {
    let text = text.trim_end();
    if text.len() <= KEEP {
        return text.to_owned();
    }
    let mut start = text.len() - KEEP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_pointed_at_the_stack_under_test() {
        assert_eq!(
            for_stack(
                "curl -s localhost:8000/ready && psql -p 5432 && cargo xtask status && curl 127.0.0.1:9090/x localhost:80001",
                24_000,
                "/t/xtask"
            ),
            "curl -s localhost:32000/ready && psql -p 29432 && /t/xtask status && curl 127.0.0.1:33090/x localhost:80001"
        );
        assert_eq!(
            for_stack("curl localhost:8000", 0, "x"),
            "curl localhost:8000"
        );
    }

    #[test]
    fn the_real_runbooks_have_a_diagnosis_for_every_alert() {
        let root = crate::util::project_root();
        let docs = crate::commands::runbooks::load_docs(&root.join("runbooks")).unwrap();
        let rules = crate::prom::rules::Rules::load(&root.join("deploy/monitoring/rules")).unwrap();
        for alert in rules.alerts() {
            let (_, commands, queries) =
                blocks_for(&docs, &alert.annotations["runbook_url"]).unwrap();
            assert!(
                !commands.is_empty() && !queries.is_empty(),
                "{}: no diagnosis",
                alert.name()
            );
        }
        assert!(blocks_for(&docs, "https://example.com/runbooks/nope.md#x").is_err());
    }
}
