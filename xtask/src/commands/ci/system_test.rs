//! CI's system test: deploy on the system test's planned ports, smoke, every
//! target up, tasks through the real arms and a guardian outage
//! (`arms_check`), the load-test smoke profile with its report checked,
//! then `promtool check metrics` clean on the services (with that traffic
//! in them), then tear down.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use super::arms_check;
use crate::commands::load_test;
use crate::commands::status::{down, statuses};
use crate::stack::Component;
use crate::stack::deploy::with_temporary_stack;
use crate::stack::ports::PlannedStack;

pub fn run(sh: &Shell) -> Result<()> {
    with_temporary_stack(sh, PlannedStack::SystemTest, None, |stack| {
        arms_check::run(stack)?;
        load_test::ci_smoke(sh, stack)?;
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
        Ok(())
    })
}
