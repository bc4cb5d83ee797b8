//! `cargo xtask bench`: orchestration overhead per task, with llm-sim
//! answering at once, on a dedicated stack (so the figure is the
//! orchestrator's own cost: HTTP, PostgreSQL transitions, claiming, polling).

use std::time::Duration;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::deploy::postgres::Postgres;
use crate::deploy::stack::{LLM_SIM_PORT, ORCHESTRATOR_PORT, Stack};
use crate::deploy::{self, Deploy};
use crate::{project_root, say};

#[derive(clap::Args)]
pub struct Bench {
    /// Tasks in the measured phase.
    #[arg(long, default_value_t = 3000)]
    tasks: u64,
    /// Clients submitting and long-polling at once.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Port base of the dedicated benchmark stack.
    #[arg(long, default_value_t = 21_000)]
    port_base: u16,
}

impl Bench {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        cmd!(sh, "cargo build --release --locked -p load-gen").run()?;
        let state_dir = project_root().join("target/bench-stack");
        Deploy {
            state_dir: state_dir.clone(),
            port_base: self.port_base,
            no_smoke: true,
        }
        .run(sh)?;
        let result = self.measure(sh, &Stack::open(&state_dir)?);
        let teardown = Stack::open(&state_dir).and_then(|stack| {
            deploy::stop_all(&stack)?;
            Postgres::new(&stack).purge()
        });
        let _ = std::fs::remove_dir_all(&state_dir);
        result?;
        teardown
    }

    fn measure(&self, sh: &Shell, stack: &Stack) -> Result<()> {
        let sim = format!("http://127.0.0.1:{}/admin/config", stack.port(LLM_SIM_PORT));
        say!("llm-sim: zero latency, 16 tokens, no errors");
        let defaults = "{}";
        cmd!(
            sh,
            "curl -sSf -X PUT -H 'Content-Type: application/json' -d {defaults} {sim}"
        )
        .quiet()
        .read()?;
        std::thread::sleep(Duration::from_secs(1));
        let url = format!("http://127.0.0.1:{}", stack.port(ORCHESTRATOR_PORT));
        let token = stack.token_path();
        let load = deploy::release_dir().join("octollm-load");
        let (tasks, concurrency) = (self.tasks.to_string(), self.concurrency.to_string());
        say!("measuring {tasks} tasks at concurrency {concurrency}");
        let report = cmd!(
            sh,
            "{load} --url {url} --token-file {token} --tasks {tasks} --concurrency {concurrency}"
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
