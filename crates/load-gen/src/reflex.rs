//! Fixed-rate (open-model) load on the reflex layer's check endpoint.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::mpsc;

#[derive(clap::Args, Debug)]
pub struct ReflexArgs {
    /// Reflex layer base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// File holding the API bearer token.
    #[arg(long)]
    token_file: std::path::PathBuf,
    /// Requests per second to send.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds to send for (after a 2 s warm-up at the same rate).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// A realistic message: some sentences, an email now and then; unique per `n`.
fn text(n: u64) -> String {
    let contact = if n.is_multiple_of(4) {
        format!(" Reach me at user{n}@example.com.")
    } else {
        String::new()
    };
    format!(
        "Request {n}: please summarise the attached quarterly report and list three risks \
         the finance team should watch next quarter.{contact} Keep it under 200 words."
    )
}

pub async fn run(args: ReflexArgs) -> Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?
        .trim()
        .to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/v1/reflex/check", args.url.trim_end_matches('/'));
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let warmup = args.rate * 2;
    let total = warmup + args.rate * args.seconds;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Duration, bool)>();
    let started = Instant::now();
    for n in 0..total {
        let scheduled = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (http, url, token, tx) = (http.clone(), url.clone(), token.clone(), tx.clone());
        tokio::spawn(async move {
            let ok = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "text": text(n) }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            // Latency from the scheduled send time: no coordinated omission.
            let _ = tx.send((n, scheduled.elapsed(), ok));
        });
    }
    drop(tx);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut failed, mut measured) = (0u64, 0u64);
    while let Some((n, took, ok)) = rx.recv().await {
        if n < warmup {
            continue;
        }
        measured += 1;
        if !ok {
            failed += 1;
        }
        latency.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
    }
    let elapsed = started.elapsed().as_secs_f64() - 2.0;
    let us = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let report = json!({
        "target_rate": args.rate,
        "achieved_rate": measured as f64 / elapsed,
        "requests": measured,
        "failed": failed,
        "latency_ms": { "p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p999": us(0.999), "max": latency.max() as f64 / 1000.0 },
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(())
}
