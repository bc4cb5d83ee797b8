//! `cargo xtask bench`: orchestration overhead per task, with llm-sim
//! answering at once, on a dedicated stack (so the figure is the
//! orchestrator's own cost: HTTP, PostgreSQL transitions, claiming, polling).

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::say;
use crate::stack::deploy::with_temporary_stack;
use crate::stack::ports::PlannedStack;
use crate::stack::{Component, Stack};
use crate::util::project_root;

#[derive(clap::Args)]
pub struct Bench {
    /// Tasks in the measured phase.
    #[arg(long, default_value_t = 3000)]
    tasks: u64,
    /// Clients submitting and long-polling at once.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
}

impl Bench {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        cmd!(sh, "cargo build --release --locked -p load-gen").run()?;
        with_temporary_stack(sh, PlannedStack::LoadTest, None, |stack| {
            self.measure(sh, stack)
        })
    }

    fn measure(&self, sh: &Shell, stack: &Stack) -> Result<()> {
        let sim = format!("{}/admin/config", stack.url(Component::LlmSim));
        say!("llm-sim: zero latency, 16 tokens, no errors");
        let defaults = "{}";
        cmd!(
            sh,
            "curl -sSf -X PUT -H 'Content-Type: application/json' -d {defaults} {sim}"
        )
        .quiet()
        .read()?;
        let url = stack.url(Component::Orchestrator);
        let token = stack.token_path();
        let load = crate::stack::launch::release_dir().join("octollm-load");
        let (tasks, concurrency) = (self.tasks.to_string(), self.concurrency.to_string());
        say!("measuring {tasks} tasks at concurrency {concurrency}");
        let report = cmd!(
            sh,
            "{load} tasks --url {url} --token-file {token} --tasks {tasks} --concurrency {concurrency}"
        )
        .read()
        .context("load generator failed")?;
        let out = project_root().join("target/bench");
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("orchestrator-overhead.json"), &report)?;
        say!("report (also in target/bench/orchestrator-overhead.json):\n{report}");
        Ok(())
    }
}
