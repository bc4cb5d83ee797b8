//! CI's system test: deploy on the system test's planned ports, smoke, every
//! target up, tasks through the real arms and a guardian outage
//! (`arms_check`), each credential opening only its own services and the
//! runbook's credential rotations (`rotation_drill`), schemathesis against
//! every service's OpenAPI document (`api_fuzz`), no raw value of a
//! synthetic PII corpus in any log, Redis, metric or response
//! (`pii_scan`), the
//! load-test smoke profile with its report checked, the orchestrator and
//! an arm SIGKILLed under load (the faults profile's CI subset),
//! then `promtool check metrics` clean on the services (with that traffic
//! in them), then tear down.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use super::{api_fuzz, arms_check, pii_scan, rotation_drill};
use crate::commands::load_test;
use crate::commands::status::{down, statuses};
use crate::stack::Component;
use crate::stack::Stack;
use crate::stack::deploy::with_temporary_stack;
use crate::stack::ports::PlannedStack;
use crate::util::read_token;

pub fn run(sh: &Shell) -> Result<()> {
    with_temporary_stack(sh, PlannedStack::SystemTest, None, |stack| {
        arms_check::run(stack)?;
        credentials_are_separate(stack)?;
        rotation_drill::run(stack)?;
        api_fuzz::run(stack)?;
        pii_scan::run(stack)?;
        load_test::ci_smoke(sh, stack)?;
        load_test::ci_faults(stack)?;
        let services = [
            Component::Orchestrator,
            Component::ReflexLayer,
            Component::AlertSink,
        ];
        for component in services.into_iter().chain(Component::ARMS) {
            let url = format!("{}/metrics", stack.url(component));
            // `read` trims the final newline, which the exposition format needs.
            let metrics = cmd!(sh, "curl -sf {url}").read()? + "\n";
            let problems = cmd!(sh, "promtool check metrics")
                .stdin(&metrics)
                .ignore_status()
                .read_stderr()?;
            if !problems.trim().is_empty() {
                bail!("promtool check metrics on {component}:\n{problems}");
            }
        }
        let down = down(&statuses(stack));
        if !down.is_empty() {
            bail!(
                "status reports a healthy stack as unhealthy: {}",
                down.join(", ")
            );
        }
        crate::commands::doctor::ci_check(stack)?;
        Ok(())
    })
}

/// A user's token never opens an internal service: the reflex layer and
/// every arm answer the users' token 401 and take the orchestrator's; the
/// orchestrator's API takes the users' token.
fn credentials_are_separate(stack: &Stack) -> Result<()> {
    let user = read_token(&stack.token_path())?;
    let service = read_token(&stack.service_token_path()?)?;
    let mut wrong = Vec::new();
    let internal = [(Component::ReflexLayer, "/v1/reflex/check")]
        .into_iter()
        .chain(Component::ARMS.map(|arm| (arm, "/v1/capabilities")));
    for (component, path) in internal {
        let url = format!("{}{path}", stack.url(component));
        let as_user = rotation_drill::status_of(stack, &url, &user)?;
        let as_service = rotation_drill::status_of(stack, &url, &service)?;
        if as_user != 401 || as_service != 200 {
            wrong.push(format!(
                "{component}: users' token {as_user} (want 401), service token {as_service} (want 200)"
            ));
        }
    }
    let tasks = format!("{}/v1/tasks?limit=1", stack.url(Component::Orchestrator));
    let as_user = rotation_drill::status_of(stack, &tasks, &user)?;
    if as_user != 200 {
        wrong.push(format!("orchestrator: users' token {as_user} (want 200)"));
    }
    if !wrong.is_empty() {
        bail!(
            "credentials open the wrong services:\n  {}",
            wrong.join("\n  ")
        );
    }
    crate::say!(
        "credentials: the users' token opens only the orchestrator; the reflex layer and the six arms take only the service token"
    );
    Ok(())
}
