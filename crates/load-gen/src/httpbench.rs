//! `octollm-load http`: open-model, fixed-rate requests to one endpoint, to
//! compare this generator with k6 and wrk on the same target. The recorder
//! of `run`; `--connections` workers, each with its own keep-alive
//! connection (`wire`) and one request on the wire at a time, claim
//! the arrivals in schedule order (k6's constant-arrival-rate with
//! pre-allocated VUs, without a task per request). Latency runs from each
//! arrival's scheduled time, so waiting for a free worker counts; arrivals
//! more than `--max-in-flight` behind the schedule are dropped and counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::task::JoinSet;

use crate::engine::{bearer, read_secret, unix_ms};
use crate::progress::Progress;
use crate::report::{self, Generator, Rates, ReportData};
use crate::stats::{self, Percentiles, Shared};
use crate::threshold::{Measured, Threshold};
use crate::wire::{Connection, Target};
use crate::{Failure, Outcome};

const HTTP_HELP: &str = "\
Prints the same JSON summary as `run` (achieved rate in rates.completed_per_s, latency
percentiles in latency_ms); with --out also writes the report and plots.

Examples:
  octollm-load serve-mock --listen 127.0.0.1:18080 &
  octollm-load http --url http://127.0.0.1:18080/ --rate 20000 --duration 20s --connections 64
  octollm-load http --url http://127.0.0.1:8080/v1/reflex/check --method POST \\
      --body-file body.json --token-file token --rate 5000 --duration 30s --threshold 'p99<20ms'";

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = HTTP_HELP)]
pub struct HttpArgs {
    /// The endpoint.
    #[arg(long)]
    pub url: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request body, sent as is with every request.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Content-Type of the body.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// File holding a bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Requests per second (e.g. 20000 or 20000/s).
    #[arg(long, value_parser = crate::profile::parse_rate)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Requests on the wire at once (≈ keep-alive connections).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Arrivals allowed behind the schedule; beyond it they are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: u64,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// An arrival sent more than this after its scheduled time is a late start.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub late_start_tolerance: Duration,
    /// Pass/fail criterion, repeatable (as for `run`; no ledger metrics).
    #[arg(long = "threshold")]
    pub thresholds: Vec<Threshold>,
    /// Also write report.json, report.md and plots here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// No live progress on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

pub async fn run(args: HttpArgs) -> Result<Outcome, Failure> {
    for t in &args.thresholds {
        if t.metric.needs_ledger() || t.metric.needs_samples() {
            return Err(Failure::Usage(format!(
                "threshold `{}` does not apply to `http` (no ledger, no process samples)",
                t.source
            )));
        }
    }
    if args.connections == 0 || args.max_in_flight == 0 {
        return Err(Failure::Usage(
            "--connections and --max-in-flight must be ≥ 1".into(),
        ));
    }
    let method = hyper::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::Usage(format!("`{}` is not an HTTP method", args.method)))?;
    let body = match &args.body_file {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let auth = match &args.token_file {
        Some(p) => Some(bearer(&read_secret(p, "token file")?)?),
        None => None,
    };
    let content_type = HeaderValue::from_str(&args.content_type)
        .map_err(|_| Failure::Usage("--content-type is not a valid header value".into()))?;
    let target = Arc::new(
        Target::new(
            &args.url,
            method,
            auth,
            body.map(|b| (content_type, Bytes::from(b))),
        )
        .map_err(Failure::Usage)?,
    );
    // The target must answer before the clock starts.
    Connection::new(target.clone())
        .send(Duration::from_secs(10))
        .await
        .map_err(|e| Failure::Tool(anyhow!("cannot reach {}: {}", args.url, e.as_str())))?;

    let start = Instant::now();
    let started_unix_ms = unix_ms();
    let shared = Arc::new(Shared::new(start)?);

    let monitor = {
        let shared = shared.clone();
        let mut progress = Progress::new(!args.no_progress);
        tokio::spawn(async move {
            let mut sec = 0;
            while !shared.stopping() || shared.in_flight() > 0 {
                sec += 1;
                tokio::time::sleep_until((start + Duration::from_secs(sec)).into()).await;
                let now = Instant::now();
                shared.with(|r| r.tick(now, shared.in_flight()));
                let (row, t) = shared.with(|r| {
                    let row = r
                        .rows()
                        .get(usize::try_from(sec - 1).unwrap_or(usize::MAX))
                        .cloned()
                        .unwrap_or_default();
                    (row, r.totals.clone())
                });
                let ms =
                    |v: Option<f64>| v.map_or_else(|| "–".to_owned(), crate::threshold::show_ms);
                progress.update(
                    &format!(
                        "[{sec:>5}s] sent {}/s done {}/s in-flight {} p50 {} p99 {} | errors {} dropped {} late {}",
                        row.sent,
                        row.completed,
                        shared.in_flight(),
                        ms(row.p50_ms),
                        ms(row.p99_ms),
                        t.errors,
                        t.dropped,
                        t.late
                    ),
                    sec,
                );
            }
            progress.finish();
        })
    };

    // `--connections` workers claim arrivals in order (arrival k is due at
    // k / rate) and each sends one request at a time: no task per request.
    // A worker ahead of the schedule sleeps until the arrival's due time; one
    // behind sends at once (a late start past the tolerance). Arrivals more
    // than `--max-in-flight` behind the schedule are dropped, in bulk.
    // Latency runs from the due time either way.
    let rate = args.rate;
    let total = (rate * args.duration.as_secs_f64()).floor() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..args.connections {
        let (shared, next) = (shared.clone(), next.clone());
        let mut connection = Connection::new(target.clone());
        let (tolerance, max_behind, timeout) =
            (args.late_start_tolerance, args.max_in_flight, args.timeout);
        set.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total || shared.stopping() {
                    break;
                }
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                let now = Instant::now();
                if now < due {
                    tokio::select! {
                        () = tokio::time::sleep_until(due.into()) => {}
                        () = shared.stopped() => break,
                    }
                } else {
                    let due_by_now = (((now - start).as_secs_f64() * rate) as u64).min(total);
                    if due_by_now.saturating_sub(k) > max_behind {
                        // Skip to `max_behind` behind now; this arrival and
                        // every one skipped are dropped.
                        let resume = due_by_now - max_behind;
                        let before = next.fetch_max(resume, Ordering::Relaxed);
                        let skipped = resume.saturating_sub(before);
                        shared.with(|r| r.dropped_n(due, 1 + skipped));
                        continue;
                    }
                }
                let late = Instant::now().saturating_duration_since(due) > tolerance;
                shared.with(|r| {
                    r.sent(due);
                    if late {
                        r.late(due);
                    }
                });
                let guard = shared.enter();
                let outcome = connection.send(timeout).await;
                drop(guard);
                let now = Instant::now();
                shared.with(|r| match outcome {
                    Ok(status) => {
                        r.completed(now, now.saturating_duration_since(due), None);
                        if status.as_u16() == 429 {
                            r.rate_limited(now);
                        } else if !(status.is_success() || status.is_redirection()) {
                            r.error(now, &format!("http_{}", status.as_u16()));
                        }
                    }
                    Err(error) => r.error(now, error.as_str()),
                });
            }
        });
    }
    tokio::time::sleep_until((start + args.duration).into()).await;
    let send_end = Instant::now();
    let send_s = (send_end - start).as_secs_f64();
    let completed_in_send = shared.with(|r| r.totals.completed);
    shared.request_stop();
    let drain_deadline = send_end + args.timeout + Duration::from_secs(1);
    while !set.is_empty() && Instant::now() < drain_deadline {
        tokio::select! {
            _ = set.join_next() => {}
            () = tokio::time::sleep_until(drain_deadline.into()) => {}
        }
    }
    set.abort_all();
    while set.join_next().await.is_some() {}
    // Arrivals no worker got to before the end were not sent either.
    shared.with(|r| {
        let unsent = total.saturating_sub(r.totals.sent + r.totals.dropped);
        if unsent > 0 {
            r.dropped_n(send_end, unsent);
        }
    });
    let drain_s = send_end.elapsed().as_secs_f64();
    let _ = monitor.await;

    let end = Instant::now();
    let (series, totals, latency, spectrum) = shared.with(|r| {
        (
            r.finish(end),
            r.totals.clone(),
            Percentiles::of(&r.latency),
            stats::spectrum(&r.latency),
        )
    });
    let rate = completed_in_send as f64 / send_s.max(1e-9);
    let measured = Measured {
        latency_ms: (latency.count > 0).then(|| latency.as_array()),
        attempts: totals.sent,
        errors: totals.errors,
        rate: Some(rate),
        rejected_429: totals.rate_limited,
        dropped: totals.dropped,
        late: totals.late,
        ..Measured::default()
    };
    let thresholds: Vec<_> = args.thresholds.iter().map(|t| t.judge(&measured)).collect();
    let passed = thresholds.iter().all(|v| v.passed);
    let data = ReportData {
        tool: format!("octollm-load {}", env!("CARGO_PKG_VERSION")),
        command: "http".into(),
        model: "open".into(),
        target: args.url.clone(),
        started_unix_ms,
        config: serde_json::json!({
            "url": args.url,
            "method": args.method,
            "body_file": args.body_file,
            "rate": args.rate,
            "duration_s": args.duration.as_secs_f64(),
            "connections": args.connections,
            "max_in_flight": args.max_in_flight,
            "thresholds": args.thresholds.iter().map(|t| t.source.clone()).collect::<Vec<_>>(),
        }),
        send_s,
        drain_s,
        attempts: totals.sent,
        errors: totals.errors,
        in_flight_max: shared.in_flight_max.load(Ordering::Relaxed),
        rates: Rates {
            offered_per_s: Some(args.rate),
            sent_per_s: totals.sent as f64 / send_s.max(1e-9),
            completed_per_s: rate,
        },
        totals,
        latency_ms: latency,
        ack_latency_ms: None,
        overhead_ms: None,
        spectrum,
        series,
        thresholds,
        passed,
        generator: Generator {
            threads: args.threads,
            cpu_s: report::own_cpu_seconds(),
        },
        ..ReportData::default()
    };
    if let Some(out) = &args.out {
        report::write(out, &data).map_err(Failure::Tool)?;
    }
    report::print_summary(&data).map_err(Failure::Tool)?;
    Ok(if passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
