//! `octollm-load ledger`: the write ledger of the DR drills.
//!
//! Submits tasks at a fixed rate until stopped (SIGTERM/SIGINT) or
//! `--duration` ends, and appends one line per *acknowledged* task to
//! `--out`: `task_id,sent_unix_us,acked_unix_us`. A drill compares the ledger
//! with the database after a restore: every line is a promise the system
//! made. Refused or failed submissions are expected while a disaster is in
//! progress; they are counted, never recorded as acknowledged.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    /// Orchestrator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// File holding the API bearer token.
    #[arg(long)]
    token_file: PathBuf,
    /// Where acknowledged tasks are appended (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Submissions per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Stop after this long (default: run until SIGTERM or SIGINT).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Submissions in flight at once; ticks beyond it are skipped and counted.
    #[arg(long, default_value_t = 32)]
    max_in_flight: usize,
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

#[derive(Default)]
struct Counts {
    acknowledged: AtomicU64,
    refused: AtomicU64,
    skipped: AtomicU64,
}

pub async fn run(args: LedgerArgs) -> Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?
        .trim()
        .to_owned();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    let ledger = Arc::new(Mutex::new(file));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let counts = Arc::new(Counts::default());
    let slots = Arc::new(Semaphore::new(args.max_in_flight));
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stop = stop_signal(args.duration);
    tokio::pin!(stop);
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counts.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        sequence += 1;
        let (http, url, token) = (http.clone(), args.url.clone(), token.clone());
        let (ledger, counts) = (ledger.clone(), counts.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let sent = unix_micros();
            match submit(&http, &url, &token, sequence).await {
                Some(id) => {
                    let acked = unix_micros();
                    let mut file = ledger.lock().await;
                    // One write per line, straight to the file: a killed
                    // ledger loses no acknowledged line it already printed.
                    if writeln!(file, "{id},{sent},{acked}").is_ok() {
                        counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    counts.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    // Let submissions in flight finish (each is bounded by the client timeout).
    let _ = slots.acquire_many(args.max_in_flight as u32).await;
    let report = json!({
        "acknowledged": counts.acknowledged.load(Ordering::Relaxed),
        "refused": counts.refused.load(Ordering::Relaxed),
        "skipped": counts.skipped.load(Ordering::Relaxed),
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    Ok(())
}

/// The task id when the orchestrator acknowledged the task with 202.
async fn submit(http: &reqwest::Client, url: &str, token: &str, sequence: u64) -> Option<String> {
    let response = http
        .post(format!("{url}/v1/tasks"))
        .bearer_auth(token)
        .json(&json!({ "goal": format!("DR drill ledger write {sequence}: answer briefly.") }))
        .send()
        .await
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["task_id"].as_str().map(str::to_owned)
}

async fn stop_signal(duration: Option<Duration>) {
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = deadline => {}
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
