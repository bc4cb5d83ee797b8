//! `octollm-load tasks`: the closed-model benchmark `cargo xtask bench`
//! runs. `--concurrency` clients each submit a task, long-poll it to a
//! terminal state, and repeat, until `--tasks` tasks have finished. It
//! reports throughput, end-to-end latency percentiles (HDR histogram) and,
//! from the orchestrator's own `/metrics`, the CPU seconds it spent per
//! task. Its output shape is fixed (`target/bench/orchestrator-overhead.json`);
//! `run --model closed` is the general closed model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Orchestrator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// File holding the API bearer token.
    #[arg(long)]
    token_file: std::path::PathBuf,
    /// Tasks to complete in the measured phase.
    #[arg(long, default_value_t = 2000)]
    tasks: u64,
    /// Tasks to complete first, unmeasured (connections, caches, JIT of the DB plan cache).
    #[arg(long, default_value_t = 200)]
    warmup: u64,
    /// Clients running at once.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
}

struct Run {
    latency_us: Histogram<u64>,
    failed: u64,
}

pub async fn tasks(args: Args) -> Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?
        .trim()
        .to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(args.concurrency).unwrap_or(64))
        .timeout(Duration::from_secs(60))
        .build()?;

    run(&http, &args, &token, args.warmup).await?;
    let cpu_before = process_cpu_seconds(&http, &args.url).await?;
    let started = Instant::now();
    let measured = run(&http, &args, &token, args.tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = process_cpu_seconds(&http, &args.url).await?;

    let h = &measured.latency_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let report = json!({
        "tasks": args.tasks,
        "failed": measured.failed,
        "concurrency": args.concurrency,
        "elapsed_s": elapsed,
        "throughput_tasks_per_s": args.tasks as f64 / elapsed,
        "latency_ms": { "p50": ms(0.50), "p90": ms(0.90), "p95": ms(0.95), "p99": ms(0.99), "max": h.max() as f64 / 1000.0 },
        "orchestrator_cpu_ms_per_task": (cpu_after - cpu_before) * 1000.0 / args.tasks as f64,
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if measured.failed > 0 {
        bail!("{} tasks did not succeed", measured.failed);
    }
    Ok(())
}

async fn run(http: &reqwest::Client, args: &Args, token: &str, tasks: u64) -> Result<Run> {
    let remaining = Arc::new(AtomicU64::new(tasks));
    let results = Arc::new(Mutex::new(Run {
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        failed: 0,
    }));
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        let (http, url, token) = (http.clone(), args.url.clone(), token.to_owned());
        let (remaining, results) = (remaining.clone(), results.clone());
        clients.push(tokio::spawn(async move {
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let started = Instant::now();
                let ok = one_task(&http, &url, &token).await?;
                let mut results = results.lock().await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                results.latency_us.saturating_record(micros.max(1));
                if !ok {
                    results.failed += 1;
                }
            }
            anyhow::Ok(())
        }));
    }
    for client in clients {
        client.await??;
    }
    let results = Arc::try_unwrap(results)
        .map_err(|_| anyhow::anyhow!("clients still running"))?
        .into_inner();
    Ok(results)
}

/// Submits one task and long-polls it; true when it succeeded.
async fn one_task(http: &reqwest::Client, url: &str, token: &str) -> Result<bool> {
    let response = http
        .post(format!("{url}/v1/tasks"))
        .bearer_auth(token)
        .json(&json!({ "goal": "Benchmark task: answer briefly." }))
        .send()
        .await?;
    if response.status() != 202 {
        bail!(
            "submit answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let accepted: Value = response.json().await?;
    let id = accepted["task_id"]
        .as_str()
        .context("no task_id")?
        .to_owned();
    loop {
        let task: Value = http
            .get(format!("{url}/v1/tasks/{id}?wait=30"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        match task["status"].as_str() {
            Some("queued" | "running") => continue,
            Some(status) => return Ok(status == "succeeded"),
            None => bail!("unexpected answer: {task}"),
        }
    }
}

async fn process_cpu_seconds(http: &reqwest::Client, url: &str) -> Result<f64> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("process_cpu_seconds_total ")?
                .trim()
                .parse()
                .ok()
        })
        .context("orchestrator /metrics has no process_cpu_seconds_total")
}
