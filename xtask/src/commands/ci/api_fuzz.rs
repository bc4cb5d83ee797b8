//! schemathesis (PyPI) against every service's `/openapi.json` on the live
//! system-test stack: generated and mutated requests for each operation,
//! with the credential that API takes and every check on (`--checks all`:
//! no 5xx, responses that match the document, schema-valid requests
//! accepted, invalid ones refused with 4xx). The token reaches schemathesis
//! through its environment and a config file, never its argv.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::stack::tools::pip_tool;
use crate::stack::{Component, Stack};
use crate::util::{check_failed, project_root, read_token};
use crate::{emit, say};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Examples generated per operation and phase.
const EXAMPLES: &str = "40";
/// schemathesis's settings: the header it adds to every request (from its
/// environment); 413 counted as a rejection of schema-violating input (a
/// body over the service's limit is refused before it is parsed); and an
/// arm's 422 for a schema-valid request, because a schema cannot say that
/// `deadline` must still be in the future (a deadline already past is the
/// caller's mistake, named in the problem's `errors`).
const CONFIG: &str = r#"headers = { Authorization = "Bearer ${OCTOLLM_FUZZ_TOKEN}" }

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

[[operations]]
include-path = "/v1/execute"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"#;

pub fn run(stack: &Stack) -> Result<()> {
    let schemathesis = pip_tool("schemathesis-venv", &[SCHEMATHESIS], "schemathesis")?;
    let dir = project_root().join("target/schemathesis");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("schemathesis.toml"), CONFIG)?;
    let services = [Component::Orchestrator, Component::ReflexLayer]
        .into_iter()
        .chain(Component::ARMS);
    let mut failed = Vec::new();
    for component in services {
        let started = Instant::now();
        let (passed, summary) = fuzz(&schemathesis, &dir, stack, component)?;
        emit!(
            "schemathesis {component:<14} {summary} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        if !passed {
            failed.push(component.name());
        }
    }
    if !failed.is_empty() {
        return Err(check_failed(format!(
            "schemathesis found failures in {}: see target/schemathesis/<service>.log",
            failed.join(", ")
        )));
    }
    say!("schemathesis: every operation of every service held every check");
    Ok(())
}

/// One service; whether every check held, and schemathesis's count line.
fn fuzz(
    schemathesis: &Path,
    dir: &Path,
    stack: &Stack,
    component: Component,
) -> Result<(bool, String)> {
    let token = read_token(&stack.credential_for(component)?)?;
    let output = Command::new(schemathesis)
        .current_dir(dir)
        .env("OCTOLLM_FUZZ_TOKEN", token)
        .args(["run", "--checks", "all", "-n", EXAMPLES, "--no-color"])
        .args(["--generation-deterministic", "--request-timeout", "30"])
        .arg(format!("{}/openapi.json", stack.url(component)))
        .output()
        .context("running schemathesis")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    std::fs::write(dir.join(format!("{}.log", component.name())), &text)?;
    // The count line: "  124 generated, 124 passed, 4 skipped".
    let summary = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(|c: char| c.is_ascii_digit()) && line.contains(" generated"))
        .map_or_else(|| "no test cases".to_owned(), str::to_owned);
    Ok((output.status.success(), summary))
}
