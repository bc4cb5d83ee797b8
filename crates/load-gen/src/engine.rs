//! `octollm-load run`: task load through the orchestrator's API.
//!
//! Open model (constant or ramping arrival rate, or the `--find-knee`
//! staircase): each arrival is an iteration — submit, then long-poll to a
//! terminal state — spawned at its scheduled time; latency runs from that
//! scheduled time, so a stalled server or a lagging generator shows in the
//! figures (late starts are counted too). At `--max-in-flight` arrivals are
//! dropped and counted, never queued. Closed model: `--vus` loops.
//!
//! Every 202 goes into the ledger (memory and `acknowledged.jsonl`). After
//! the send phase and a bounded drain, every acknowledged task is asked for
//! through the API: its final state, `lost` (404) or `stuck`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::mix::{Class, Mix, MixFile, TERMINAL};
use crate::profile::{Profile, Stage};
use crate::progress::Progress;
use crate::report::{self, Generator, KneeReport, KneeStep, LedgerReport, Rates, ReportData};
use crate::sampler::{self, Target};
use crate::stats::{self, Percentiles, Shared};
use crate::threshold::{Measured, Metric, Pct, Threshold, Verdict};
use crate::{Failure, Outcome};

const RUN_HELP: &str = "\
Open model (default): arrivals at a constant (--rate) or ramping (--stages) rate; each
arrival submits one task and long-polls it to a terminal state. Latency is measured from
the arrival's scheduled time. Closed model: --model closed --vus N.

Exit codes: 0 all thresholds passed, 1 a threshold failed (or --abort-on-fail fired),
2 usage error, 3 the tool itself failed (cannot reach the orchestrator, cannot write --out).

Examples:
  octollm-load run --url http://127.0.0.1:8000 --token-file token --out target/load-test/smoke \\
      --rate 50 --duration 30s --threshold 'p95<5s' --threshold 'errors<0.1%' --threshold 'lost==0'
  octollm-load run --token-file token --out out/ramp --stages 30s:100,60s:1000,30s:0 \\
      --injection-share 2% --pii-share 5% --priorities low=1,medium=6,high=2,critical=1
  octollm-load run --token-file token --out out/closed --model closed --vus 64 --duration 2m
  octollm-load run --token-file token --out out/knee --find-knee --knee-start 100 \\
      --knee-step 100 --knee-step-duration 30s --knee-max 5000
  octollm-load run --token-file token --out out/soak --rate 200 --duration 2h \\
      --sample-process orchestrator=4242 --threshold 'rss_growth[orchestrator]<10MB/h' --threshold 'leak==0'";

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = RUN_HELP)]
pub struct RunArgs {
    /// Orchestrator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// File holding the API bearer token (never pass the token itself).
    #[arg(long)]
    pub token_file: PathBuf,
    /// Directory for report.json, report.md, plots and acknowledged.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// open: arrival rate independent of answers; closed: --vus users back to back.
    #[arg(long, value_enum, default_value_t = Model::Open)]
    pub model: Model,
    /// Open model: constant arrival rate (e.g. 500 or 500/s).
    #[arg(long, value_parser = crate::profile::parse_rate, conflicts_with = "stages")]
    pub rate: Option<f64>,
    /// Open model: ramping arrival rate, DURATION:TARGET stages ramped linearly (e.g. 30s:100,60s:1000).
    #[arg(long, value_parser = |s: &str| crate::profile::parse_stages(s).map(Stages))]
    pub stages: Option<Stages>,
    /// Rate the first stage ramps from.
    #[arg(long, default_value = "0", value_parser = parse_rate_or_zero)]
    pub start_rate: f64,
    /// Length of the send phase (constant rate and closed model).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Closed model: virtual users, each looping submit → wait for completion.
    #[arg(long)]
    pub vus: Option<u64>,
    /// Closed model: start the users evenly over this long instead of all at
    /// once, so their iterations do not move in lockstep waves (part of --duration).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub ramp_up: Duration,
    /// Open model: iterations in flight at most; arrivals beyond it are dropped and counted.
    #[arg(long, default_value_t = 20_000)]
    pub max_in_flight: u64,
    /// An arrival sent more than this after its scheduled time is a late start.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub late_start_tolerance: Duration,
    /// Step the arrival rate up until the system stops following it; report the knee.
    #[arg(long, conflicts_with_all = ["rate", "stages"])]
    pub find_knee: bool,
    /// --find-knee: first rate.
    #[arg(long, default_value = "50", value_parser = crate::profile::parse_rate)]
    pub knee_start: f64,
    /// --find-knee: rate added each step.
    #[arg(long, default_value = "50", value_parser = crate::profile::parse_rate)]
    pub knee_step: f64,
    /// --find-knee: how long each step holds its rate (whole seconds, ≥ 2 s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub knee_step_duration: Duration,
    /// --find-knee: highest rate tried.
    #[arg(long, default_value = "10000", value_parser = crate::profile::parse_rate)]
    pub knee_max: f64,
    /// Mix file (JSON): priorities, task_types, pii_share, injection_share, expect, budget.
    #[arg(long)]
    pub mix: Option<PathBuf>,
    /// Priority weights, e.g. low=1,medium=6,high=2,critical=1.
    #[arg(long, value_parser = |s: &str| crate::mix::parse_weights(s).map(Weights))]
    pub priorities: Option<Weights>,
    /// Task type weights, e.g. general=2,code=1,research=1,analysis=1.
    #[arg(long, value_parser = |s: &str| crate::mix::parse_weights(s).map(Weights))]
    pub task_types: Option<Weights>,
    /// Share of tasks carrying synthetic PII (expected: succeeded unless the mix says otherwise).
    #[arg(long, value_parser = crate::mix::parse_share)]
    pub pii_share: Option<f64>,
    /// Share of prompt-injection tasks (expected: rejected).
    #[arg(long, value_parser = crate::mix::parse_share)]
    pub injection_share: Option<f64>,
    /// Long-poll wait per GET, seconds.
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
    /// Timeout of a submission.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// After the send phase, wait at most this long for acknowledged tasks to end.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Acknowledged tasks asked for at once in the final ledger check.
    #[arg(long, default_value_t = 64)]
    pub verify_concurrency: usize,
    /// Pass/fail criterion, repeatable: p95<30s, errors<0.1%, lost==0, rate>=1000, rejected_429<1% ...
    #[arg(long = "threshold")]
    pub thresholds: Vec<Threshold>,
    /// Stop as soon as a threshold judgeable mid-run (errors, lost, latency over 5 s) is crossed.
    #[arg(long)]
    pub abort_on_fail: bool,
    /// JSON of server-side figures gathered by the caller, shown in the report.
    #[arg(long)]
    pub server_metrics: Option<PathBuf>,
    /// Sample RSS, open fds and threads of a process: NAME=PID (repeatable).
    #[arg(long = "sample-process", value_parser = sampler::parse_target)]
    pub sample_process: Vec<Target>,
    /// Interval between process samples.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,
    /// File holding a PostgreSQL URL: cross-check the ledger against the `tasks` table.
    #[arg(long)]
    pub database_url_file: Option<PathBuf>,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// No live progress on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

/// `--stages` (a newtype: clap reads `Option<Vec<_>>` as a repeatable flag).
#[derive(Debug, Clone)]
pub struct Stages(pub Vec<Stage>);

/// `--priorities`, `--task-types`.
#[derive(Debug, Clone)]
pub struct Weights(pub Vec<(String, f64)>);

fn parse_rate_or_zero(text: &str) -> Result<f64, String> {
    if text.trim() == "0" {
        Ok(0.0)
    } else {
        crate::profile::parse_rate(text)
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Open,
    Closed,
}

enum Plan {
    Open {
        profile: Profile,
        knee: Option<Knee>,
    },
    Closed {
        vus: u64,
        ramp_up: Duration,
        duration: Duration,
    },
}

#[derive(Clone)]
struct Knee {
    hold_s: u64,
    rates: Vec<f64>,
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

fn plan(args: &RunArgs) -> Result<Plan, Failure> {
    for t in &args.thresholds {
        if t.metric.needs_samples() && args.sample_process.is_empty() {
            return Err(usage(format!(
                "threshold `{}` needs --sample-process NAME=PID",
                t.source
            )));
        }
    }
    if args.threads == 0 || args.threads > 64 {
        return Err(usage("--threads must be between 1 and 64"));
    }
    if args.wait == 0 || args.wait > 3600 {
        return Err(usage("--wait must be between 1 and 3600 seconds"));
    }
    match args.model {
        Model::Closed => {
            if args.rate.is_some() || args.stages.is_some() || args.find_knee {
                return Err(usage(
                    "--rate, --stages and --find-knee belong to the open model (drop --model closed)",
                ));
            }
            let vus = args
                .vus
                .filter(|v| *v > 0)
                .ok_or_else(|| usage("the closed model needs --vus N (N ≥ 1)"))?;
            let duration = args
                .duration
                .ok_or_else(|| usage("the closed model needs --duration"))?;
            if args.ramp_up > duration {
                return Err(usage("--ramp-up must not be longer than --duration"));
            }
            Ok(Plan::Closed {
                vus,
                ramp_up: args.ramp_up,
                duration,
            })
        }
        Model::Open => {
            if args.vus.is_some() {
                return Err(usage("--vus belongs to the closed model (--model closed)"));
            }
            if args.max_in_flight == 0 {
                return Err(usage("--max-in-flight must be ≥ 1"));
            }
            if args.find_knee {
                if args.duration.is_some() {
                    return Err(usage("--find-knee sets its own length; drop --duration"));
                }
                let hold = args.knee_step_duration;
                if hold < Duration::from_secs(2) || hold.subsec_nanos() != 0 {
                    return Err(usage(
                        "--knee-step-duration must be whole seconds, at least 2 s",
                    ));
                }
                if args.knee_max < args.knee_start {
                    return Err(usage("--knee-max must be ≥ --knee-start"));
                }
                let profile =
                    Profile::staircase(args.knee_start, args.knee_step, args.knee_max, hold);
                let rates = profile.segments.iter().map(|s| s.from).collect();
                return Ok(Plan::Open {
                    profile,
                    knee: Some(Knee {
                        hold_s: hold.as_secs(),
                        rates,
                    }),
                });
            }
            match (&args.rate, &args.stages) {
                (Some(rate), None) => {
                    let duration = args
                        .duration
                        .ok_or_else(|| usage("--rate needs --duration"))?;
                    Ok(Plan::Open {
                        profile: Profile::constant(*rate, duration),
                        knee: None,
                    })
                }
                (None, Some(stages)) => {
                    if args.duration.is_some() {
                        return Err(usage("--stages sets the length itself; drop --duration"));
                    }
                    Ok(Plan::Open {
                        profile: Profile::stages(args.start_rate, &stages.0),
                        knee: None,
                    })
                }
                _ => Err(usage(
                    "the open model needs --rate N --duration D, --stages, or --find-knee",
                )),
            }
        }
    }
}

pub fn read_secret(path: &PathBuf, what: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))?;
    // A token file holds the new token first during a rotation.
    let secret = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
        .to_owned();
    if secret.is_empty() {
        return Err(usage(format!("{what} {} is empty", path.display())));
    }
    Ok(secret)
}

pub fn bearer(token: &str) -> Result<HeaderValue, Failure> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| usage("the token holds characters not allowed in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const PHASE_SENDING: u8 = 0;
const PHASE_DRAINING: u8 = 1;
const PHASE_VERIFYING: u8 = 2;

#[derive(Serialize)]
struct AckLine<'a> {
    task_id: &'a str,
    class: &'a str,
    expected: &'a str,
    acked_unix_ms: u64,
}

/// An acknowledged task id, 16 bytes when it is a UUID (the orchestrator's are).
#[derive(Debug, Clone)]
enum TaskId {
    Uuid(uuid::Uuid),
    Text(Box<str>),
}

impl TaskId {
    fn new(id: &str) -> Self {
        uuid::Uuid::try_parse(id).map_or_else(|_| TaskId::Text(id.into()), TaskId::Uuid)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskId::Uuid(u) => u.hyphenated().fmt(f),
            TaskId::Text(t) => f.write_str(t),
        }
    }
}

/// A status from the API as a static string (no allocation per task).
fn known_status(status: &str) -> &'static str {
    TERMINAL
        .iter()
        .chain(&["queued", "running"])
        .find(|s| **s == status)
        .copied()
        .unwrap_or("unknown")
}

struct AckLog {
    entries: Vec<(TaskId, Class)>,
    file: std::io::BufWriter<std::fs::File>,
    write_error: Option<String>,
}

struct Ctx {
    http: reqwest::Client,
    submit_url: String,
    task_url: String,
    auth: HeaderValue,
    wait: u64,
    request_timeout: Duration,
    mix: Mix,
    shared: Arc<Shared>,
    acks: Mutex<AckLog>,
    phase: AtomicU8,
    next_n: AtomicU64,
    verified: AtomicUsize,
    acked: AtomicUsize,
    /// The open model's profile, for the offered rate in the progress line.
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Accepted {
    task_id: String,
    status: String,
}

#[derive(Deserialize)]
struct StatusOnly {
    status: String,
    usage: Option<UsageOnly>,
    error: Option<ErrorOnly>,
}

#[derive(Deserialize)]
struct ErrorOnly {
    kind: String,
}

#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    simulated_llm_ms: u64,
}

enum IterEnd {
    Done,
    RateLimited(Duration),
    Transport,
}

fn is_terminal(status: &str) -> bool {
    TERMINAL.contains(&status)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), |s| {
            Duration::from_secs(s.clamp(0, 60))
        })
}

impl Ctx {
    fn lock_acks(&self) -> std::sync::MutexGuard<'_, AckLog> {
        self.acks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_ack(&self, id: &str, class: Class) {
        let line = AckLine {
            task_id: id,
            class: class.as_str(),
            expected: self.mix.expected(class),
            acked_unix_ms: unix_ms(),
        };
        let mut log = self.lock_acks();
        log.entries.push((TaskId::new(id), class));
        self.acked.fetch_add(1, Ordering::Relaxed);
        let written = serde_json::to_writer(&mut log.file, &line)
            .map_err(|e| e.to_string())
            .and_then(|()| log.file.write_all(b"\n").map_err(|e| e.to_string()));
        if let Err(e) = written
            && log.write_error.is_none()
        {
            log.write_error = Some(e);
        }
    }

    fn flush_acks(&self) {
        let mut log = self.lock_acks();
        if let Err(e) = log.file.flush()
            && log.write_error.is_none()
        {
            log.write_error = Some(e.to_string());
        }
    }

    fn get(&self, id: &str, wait: u64) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{id}?wait={wait}", self.task_url))
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(Duration::from_secs(wait) + Duration::from_secs(15))
    }

    /// One task: submit, then long-poll until terminal. Records everything.
    async fn iteration(&self, due: Instant) -> IterEnd {
        let n = self.next_n.fetch_add(1, Ordering::Relaxed);
        let spec = self.mix.task(n, &mut rand::rng());
        let shared = &self.shared;
        let sent_at = Instant::now();
        let answer = self
            .http
            .post(&self.submit_url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(spec.body)
            .timeout(self.request_timeout)
            .send()
            .await;
        let response = match answer {
            Ok(r) => r,
            Err(_) => {
                shared.with(|r| r.error(Instant::now(), "submit_transport"));
                return IterEnd::Transport;
            }
        };
        match response.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after(response.headers());
                shared.with(|r| r.rate_limited(Instant::now()));
                return IterEnd::RateLimited(wait);
            }
            other => {
                let _ = response.bytes().await;
                let kind = format!("submit_http_{}", other.as_u16());
                shared.with(|r| r.error(Instant::now(), &kind));
                return IterEnd::Done;
            }
        }
        let accepted: Accepted = match response.json().await {
            Ok(a) => a,
            Err(_) => {
                shared.with(|r| r.error(Instant::now(), "submit_unreadable_202"));
                return IterEnd::Done;
            }
        };
        let acked = Instant::now();
        shared.with(|r| r.ack(acked - sent_at));
        self.record_ack(&accepted.task_id, spec.class);
        let expected = self.mix.expected(spec.class);
        let mut status = accepted.status;
        let mut llm = None;
        let mut failures = 0u32;
        while !is_terminal(&status) {
            match self.get(&accepted.task_id, self.wait).send().await {
                Ok(r) if r.status() == StatusCode::OK => match r.json::<StatusOnly>().await {
                    Ok(s) => {
                        status = s.status;
                        llm = s.usage.map(|u| Duration::from_millis(u.simulated_llm_ms));
                        failures = 0;
                        continue;
                    }
                    Err(_) => failures += 1,
                },
                Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                    shared.with(|r| {
                        r.lost_seen();
                        r.error(Instant::now(), "lost_404");
                    });
                    return IterEnd::Done;
                }
                Ok(_) | Err(_) => failures += 1,
            }
            if failures > 5 {
                shared.with(|r| r.error(Instant::now(), "poll_failed"));
                return IterEnd::Done;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let now = Instant::now();
        shared.with(|r| {
            r.completed(now, now.saturating_duration_since(due), llm);
            if status != expected {
                r.error(now, &format!("ended_{status}_expected_{expected}"));
            }
        });
        IterEnd::Done
    }
}

async fn open_generator(
    ctx: Arc<Ctx>,
    profile: Profile,
    start: Instant,
    max_in_flight: u64,
    tolerance: Duration,
) -> JoinSet<()> {
    let shared = ctx.shared.clone();
    let mut set = JoinSet::new();
    let mut dispatched = 0u64;
    for t in profile.arrivals() {
        let due = start + Duration::from_secs_f64(t);
        if Instant::now() < due {
            while set.try_join_next().is_some() {}
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = shared.stopped() => break,
            }
        }
        if shared.stopping() {
            break;
        }
        let late = Instant::now().saturating_duration_since(due) > tolerance;
        if shared.in_flight() >= max_in_flight {
            shared.with(|r| r.dropped(due));
            continue;
        }
        shared.with(|r| {
            r.sent(due);
            if late {
                r.late(due);
            }
        });
        let guard = shared.enter();
        let ctx = ctx.clone();
        set.spawn(async move {
            let _guard = guard;
            ctx.iteration(due).await;
        });
        dispatched += 1;
        if dispatched.is_multiple_of(256) {
            while set.try_join_next().is_some() {}
        }
    }
    // The profile may end before its last second is over.
    let end = start + profile.duration();
    tokio::select! {
        () = tokio::time::sleep_until(end.into()) => {}
        () = shared.stopped() => {}
    }
    set
}

async fn closed_generator(
    ctx: Arc<Ctx>,
    vus: u64,
    ramp_up: Duration,
    duration: Duration,
) -> JoinSet<()> {
    let shared = ctx.shared.clone();
    let mut set = JoinSet::new();
    let first = tokio::time::Instant::now();
    for user in 0..vus {
        let ctx = ctx.clone();
        // User `user` starts at user/vus of the ramp.
        let start_at = first + ramp_up.mul_f64(user as f64 / vus as f64);
        set.spawn(async move {
            let shared = ctx.shared.clone();
            tokio::select! {
                () = tokio::time::sleep_until(start_at) => {}
                () = shared.stopped() => return,
            }
            while !shared.stopping() {
                let started = Instant::now();
                let end = {
                    let _guard = shared.enter();
                    shared.with(|r| r.sent(started));
                    ctx.iteration(started).await
                };
                let pause = match end {
                    IterEnd::Done => continue,
                    IterEnd::RateLimited(wait) => wait,
                    // A refused connection answers at once: do not spin.
                    IterEnd::Transport => Duration::from_millis(100),
                };
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shared.stopped() => {}
                }
            }
        });
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = shared.stopped() => {}
    }
    set
}

/// Final word of the API on one acknowledged task.
enum Final {
    /// A terminal status, and the error kind of a task that did not succeed.
    Status(&'static str, Option<String>),
    Lost,
    Stuck(&'static str),
    Unverified,
}

async fn verify_one(ctx: &Ctx, id: &str, deadline: Instant) -> Final {
    let mut failures = 0;
    let mut last_status = "";
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now()).as_secs();
        let wait = if last_status.is_empty() {
            0
        } else {
            remaining.min(ctx.wait)
        };
        if !last_status.is_empty() && wait == 0 {
            return Final::Stuck(last_status);
        }
        match ctx.get(id, wait).send().await {
            Ok(r) if r.status() == StatusCode::OK => match r.json::<StatusOnly>().await {
                Ok(s) if is_terminal(&s.status) => {
                    return Final::Status(known_status(&s.status), s.error.map(|e| e.kind));
                }
                Ok(s) => last_status = known_status(&s.status),
                Err(_) => failures += 1,
            },
            Ok(r) if r.status() == StatusCode::NOT_FOUND => return Final::Lost,
            Ok(_) | Err(_) => failures += 1,
        }
        if failures >= 3 {
            return Final::Unverified;
        }
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Asks the API for every acknowledged task; with `keep_view`, also hands
/// back (id, status or None for 404) for the database cross-check.
async fn verify(
    ctx: &Arc<Ctx>,
    deadline: Instant,
    drain_timeout: Duration,
    concurrency: usize,
    keep_view: bool,
) -> (LedgerReport, Vec<(String, Option<&'static str>)>) {
    let entries = Arc::new(std::mem::take(&mut ctx.lock_acks().entries));
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(entries.len())));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, entries.len().max(1)) {
        let (ctx, entries, next, results) =
            (ctx.clone(), entries.clone(), next.clone(), results.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, _)) = entries.get(i) else {
                    break;
                };
                let end = verify_one(&ctx, &id.to_string(), deadline).await;
                ctx.verified.fetch_add(1, Ordering::Relaxed);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, end));
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    let mut report = LedgerReport {
        acknowledged: entries.len() as u64,
        drain_timeout_s: drain_timeout.as_secs_f64(),
        ..LedgerReport::default()
    };
    let mut api_view = Vec::new();
    for (i, end) in results {
        let Some((id, class)) = entries.get(i) else {
            continue;
        };
        let expected = ctx.mix.expected(*class);
        let label = match &end {
            Final::Status(s, _) => (*s).to_owned(),
            Final::Lost => "lost".to_owned(),
            Final::Stuck(s) => format!("stuck_{s}"),
            Final::Unverified => "unverified".to_owned(),
        };
        *report
            .by_class
            .entry(class.as_str().to_owned())
            .or_default()
            .entry(label)
            .or_default() += 1;
        let seen = match end {
            Final::Status(s, kind) => {
                if s != expected {
                    report.unexpected += 1;
                }
                if let Some(kind) = kind {
                    *report.error_kinds.entry(kind).or_default() += 1;
                }
                *report.final_status.entry(s.to_owned()).or_default() += 1;
                Some(Some(s))
            }
            Final::Lost => {
                report.lost += 1;
                Some(None)
            }
            Final::Stuck(s) => {
                report.stuck += 1;
                *report.final_status.entry(s.to_owned()).or_default() += 1;
                Some(Some(s))
            }
            Final::Unverified => {
                report.unverified += 1;
                None
            }
        };
        if keep_view && let Some(status) = seen {
            api_view.push((id.to_string(), status));
        }
    }
    (report, api_view)
}

struct KneeState {
    knee: Knee,
    steps: Vec<KneeStep>,
    first_p99: Option<f64>,
    stopped_because: Option<String>,
}

impl KneeState {
    fn knee_rate(&self) -> Option<f64> {
        self.steps
            .iter()
            .take_while(|s| s.good)
            .last()
            .map(|s| s.offered_per_s)
    }

    /// At whole second `sec`: reset the step histogram at a step's half,
    /// judge the step at its end.
    fn at_second(&mut self, sec: u64, shared: &Shared) {
        let hold = self.knee.hold_s;
        let step = (sec / hold) as usize;
        let into = sec % hold;
        let half = hold.div_ceil(2);
        if into == half && step < self.knee.rates.len() {
            shared.with(|r| {
                r.take_step_histogram();
            });
        }
        if into != 0 || sec == 0 || self.stopped_because.is_some() {
            return;
        }
        let finished = step - 1;
        let Some(offered) = self.knee.rates.get(finished).copied() else {
            return;
        };
        let from = finished as u64 * hold + half;
        let to = (finished as u64 + 1) * hold;
        let (h, completed, errors, sent) = shared.with(|r| {
            let rows = r.rows();
            let window = rows.iter().filter(|row| row.t >= from && row.t < to);
            let (c, e, s) = window.fold((0, 0, 0), |a, row| {
                (a.0 + row.completed, a.1 + row.errors, a.2 + row.sent)
            });
            (r.take_step_histogram(), c, e, s)
        });
        let seconds = (to - from) as f64;
        let completed_per_s = completed as f64 / seconds;
        let errors_share = if sent == 0 {
            0.0
        } else {
            errors as f64 / sent as f64
        };
        let p99 = (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0);
        let mut why = None;
        if completed_per_s < 0.9 * offered {
            why = Some(format!(
                "completed {completed_per_s:.1}/s < 90% of the offered {offered:.0}/s"
            ));
        } else if errors_share > 0.01 {
            why = Some(format!("errors {:.2}% > 1%", errors_share * 100.0));
        } else if let (Some(first), Some(p99)) = (self.first_p99, p99)
            && p99 > 3.0 * first
        {
            why = Some(format!(
                "p99 {} > 3 × the first step's {}",
                crate::threshold::show_ms(p99),
                crate::threshold::show_ms(first)
            ));
        }
        if finished == 0 && why.is_none() {
            self.first_p99 = p99;
        }
        let good = why.is_none();
        self.steps.push(KneeStep {
            offered_per_s: offered,
            completed_per_s,
            p99_ms: p99,
            errors_share,
            good,
            why: why.clone(),
        });
        if let Some(why) = why {
            self.stopped_because = Some(format!("at {offered:.0}/s: {why}"));
            shared.request_stop();
        }
    }
}

/// Judges the thresholds that can fail while the test runs.
fn judge_mid_run(thresholds: &[Threshold], shared: &Shared) -> Option<String> {
    let (window, sent, errors, lost) = shared.with(|r| {
        (
            r.window(),
            r.totals.sent,
            r.totals.errors,
            r.totals.lost_seen,
        )
    });
    for t in thresholds {
        if !t.op.is_upper_bound() {
            continue;
        }
        let value = match &t.metric {
            Metric::Errors if sent >= 100 => errors as f64 / sent as f64,
            Metric::Lost => lost as f64,
            Metric::Latency(p) if !window.is_empty() => {
                let us = match (p, p.quantile()) {
                    (_, Some(q)) => window.value_at_quantile(q) as f64,
                    (Pct::Max, None) => window.max() as f64,
                    _ => window.mean(),
                };
                us / 1000.0
            }
            _ => continue,
        };
        if !t.op.holds(value, t.value) {
            let scope = if matches!(t.metric, Metric::Latency(_)) {
                " over the last 5 s"
            } else {
                ""
            };
            return Some(format!(
                "threshold `{}` crossed mid-run: {} = {}{scope}",
                t.source,
                t.metric.name(),
                t.show(value)
            ));
        }
    }
    None
}

fn progress_line(ctx: &Ctx, elapsed: Duration) -> String {
    let shared = &ctx.shared;
    let in_flight = shared.in_flight();
    let phase = ctx.phase.load(Ordering::Relaxed);
    let (row, totals) = shared.with(|r| {
        let sec = elapsed.as_secs();
        let row = sec
            .checked_sub(1)
            .and_then(|s| {
                r.rows()
                    .get(usize::try_from(s).unwrap_or(usize::MAX))
                    .cloned()
            })
            .unwrap_or_default();
        (row, r.totals.clone())
    });
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), crate::threshold::show_ms);
    let head = match phase {
        PHASE_SENDING => "sending",
        PHASE_DRAINING => "draining",
        _ => "verifying",
    };
    if phase == PHASE_VERIFYING {
        let done = ctx.verified.load(Ordering::Relaxed);
        let all = ctx.acked.load(Ordering::Relaxed);
        return format!(
            "[{:>5}s {head}] checked {done}/{all} acknowledged tasks",
            elapsed.as_secs()
        );
    }
    let offered = match (&ctx.profile, phase) {
        (Some(p), PHASE_SENDING) => format!(" offered {:.0}/s", p.rate_at(elapsed.as_secs_f64())),
        _ => String::new(),
    };
    format!(
        "[{:>5}s {head}]{offered} sent {}/s done {}/s in-flight {in_flight} p50 {} p99 {} | errors {} 429s {} dropped {} late {}",
        elapsed.as_secs(),
        row.sent,
        row.completed,
        ms(row.p50_ms),
        ms(row.p99_ms),
        totals.errors,
        totals.rate_limited,
        totals.dropped,
        totals.late
    )
}

/// The soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn preflight(http: &reqwest::Client, url: &str, auth: &HeaderValue) -> Result<(), Failure> {
    let probe = format!("{url}/v1/tasks/00000000-0000-0000-0000-000000000000");
    let response = http
        .get(&probe)
        .header(AUTHORIZATION, auth.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Failure::Tool(anyhow!("cannot reach the orchestrator at {url}: {e}")))?;
    match response.status() {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::Tool(anyhow!(
            "the orchestrator at {url} refused the token ({})",
            response.status()
        ))),
        _ => Ok(()),
    }
}

pub async fn run(args: RunArgs) -> Result<Outcome, Failure> {
    let plan = plan(&args)?;
    let token = read_secret(&args.token_file, "token file")?;
    let auth = bearer(&token)?;
    drop(token);
    let mix_file = match &args.mix {
        Some(path) => MixFile::load(path).map_err(|e| usage(format!("{e:#}")))?,
        None => MixFile::default(),
    };
    let mix = Mix::new(
        mix_file,
        args.priorities.clone().map(|w| w.0),
        args.task_types.clone().map(|w| w.0),
        args.pii_share,
        args.injection_share,
    )
    .map_err(|e| usage(format!("{e:#}")))?;
    let server_metrics = match &args.server_metrics {
        Some(path) => Some(report::read_server_metrics(path).map_err(|e| usage(format!("{e:#}")))?),
        None => None,
    };
    let db_url = match &args.database_url_file {
        Some(path) => Some(read_secret(path, "database URL file")?),
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ack_path = args.out.join("acknowledged.jsonl");
    let ack_file = std::fs::File::create(&ack_path)
        .with_context(|| format!("creating {}", ack_path.display()))?;

    let url = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    preflight(&http, &url, &auth).await?;

    let start = Instant::now();
    let started_unix_ms = unix_ms();
    let shared = Arc::new(Shared::new(start)?);
    let ctx = Arc::new(Ctx {
        http,
        submit_url: format!("{url}/v1/tasks"),
        task_url: format!("{url}/v1/tasks/"),
        auth,
        wait: args.wait,
        request_timeout: args.request_timeout,
        mix,
        shared: shared.clone(),
        acks: Mutex::new(AckLog {
            entries: Vec::new(),
            file: std::io::BufWriter::new(ack_file),
            write_error: None,
        }),
        phase: AtomicU8::new(PHASE_SENDING),
        next_n: AtomicU64::new(0),
        verified: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        profile: match &plan {
            Plan::Open { profile, .. } => Some(profile.clone()),
            Plan::Closed { .. } => None,
        },
    });

    // Process samplers run until the report is assembled.
    let samplers_stop = Arc::new(tokio::sync::Notify::new());
    let mut samplers = JoinSet::new();
    for target in args.sample_process.clone() {
        let stop = samplers_stop.clone();
        let every = args.sample_interval;
        samplers.spawn(async move {
            let stop = async move { stop.notified().await };
            sampler::sample(target, every, start, stop).await
        });
    }

    // Monitor: progress, mid-run judging, knee steps, ledger flushes.
    let knee = match &plan {
        Plan::Open { knee: Some(k), .. } => Some(Arc::new(Mutex::new(KneeState {
            knee: k.clone(),
            steps: Vec::new(),
            first_p99: None,
            stopped_because: None,
        }))),
        _ => None,
    };
    let monitor_done = Arc::new(tokio::sync::Notify::new());
    let monitor = {
        let (ctx, knee, done) = (ctx.clone(), knee.clone(), monitor_done.clone());
        let thresholds = if args.abort_on_fail {
            args.thresholds.clone()
        } else {
            Vec::new()
        };
        let mut progress = Progress::new(!args.no_progress);
        tokio::spawn(async move {
            let mut sec = 0u64;
            let done = done.notified();
            tokio::pin!(done);
            loop {
                sec += 1;
                tokio::select! {
                    () = tokio::time::sleep_until((start + Duration::from_secs(sec)).into()) => {}
                    () = &mut done => break,
                }
                let now = Instant::now();
                let shared = &ctx.shared;
                shared.with(|r| r.tick(now, shared.in_flight()));
                ctx.flush_acks();
                let sending = ctx.phase.load(Ordering::Relaxed) == PHASE_SENDING;
                if sending {
                    if let Some(k) = &knee {
                        k.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .at_second(sec, shared);
                    }
                    if !thresholds.is_empty()
                        && let Some(reason) = judge_mid_run(&thresholds, shared)
                    {
                        shared.abort(reason);
                    }
                }
                progress.update(&progress_line(&ctx, now - start), sec);
            }
            progress.finish();
        })
    };

    // SIGINT or SIGTERM: stop sending, check the ledger, write the report.
    let interrupt = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            let which = tokio::select! {
                () = terminate => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
            shared.abort(format!("interrupted by {which}"));
        })
    };

    // Send phase.
    let (mut set, offered) = match &plan {
        Plan::Open { profile, .. } => {
            let set = open_generator(
                ctx.clone(),
                profile.clone(),
                start,
                args.max_in_flight,
                args.late_start_tolerance,
            )
            .await;
            // Offered up to where the send phase ended (a knee search or an
            // abort ends it before the profile does).
            let sent_for = start.elapsed().as_secs_f64().max(1e-9);
            (set, Some(profile.arrivals_before(sent_for) / sent_for))
        }
        Plan::Closed {
            vus,
            ramp_up,
            duration,
        } => (
            closed_generator(ctx.clone(), *vus, *ramp_up, *duration).await,
            None,
        ),
    };
    shared.request_stop();
    let send_end = Instant::now();
    let send_s = (send_end - start).as_secs_f64();
    let completed_in_send = shared.with(|r| r.totals.completed);
    ctx.phase.store(PHASE_DRAINING, Ordering::Relaxed);

    // Drain: iterations in flight finish, within the bound.
    let aborted = shared.aborted();
    let drain_deadline = send_end + args.drain_timeout;
    if aborted.is_none() {
        while !set.is_empty() && Instant::now() < drain_deadline {
            tokio::select! {
                _ = set.join_next() => {}
                () = tokio::time::sleep_until(drain_deadline.into()) => {}
            }
        }
    }
    set.abort_all();
    while set.join_next().await.is_some() {}
    let drain_s = send_end.elapsed().as_secs_f64();

    // Ledger check through the API.
    ctx.phase.store(PHASE_VERIFYING, Ordering::Relaxed);
    let verify_deadline = if aborted.is_some() {
        Instant::now()
    } else {
        drain_deadline
    };
    let (mut ledger, api_view) = verify(
        &ctx,
        verify_deadline,
        args.drain_timeout,
        args.verify_concurrency,
        db_url.is_some(),
    )
    .await;
    ctx.flush_acks();
    if let Some(url) = &db_url {
        ledger.database = Some(crate::dbcheck::check(url, &api_view).await);
    }
    interrupt.abort();
    monitor_done.notify_one();
    let _ = monitor.await;
    samplers_stop.notify_waiters();
    let mut processes = Vec::new();
    while let Some(p) = samplers.join_next().await {
        if let Ok(p) = p {
            processes.push(p);
        }
    }
    processes.sort_by(|a, b| a.name.cmp(&b.name));

    let end = Instant::now();
    let (series, totals, latency, ack_latency, overhead, spectrum) = shared.with(|r| {
        (
            r.finish(end),
            r.totals.clone(),
            Percentiles::of(&r.latency),
            Percentiles::of(&r.ack_latency),
            Percentiles::of(&r.overhead),
            stats::spectrum(&r.latency),
        )
    });
    let pre_ack_errors: u64 = totals
        .error_kinds
        .iter()
        .filter(|(k, _)| k.starts_with("submit_"))
        .map(|(_, n)| n)
        .sum();
    let errors =
        pre_ack_errors + ledger.unexpected + ledger.lost + ledger.stuck + ledger.unverified;
    let mut notes = Vec::new();
    if let (Plan::Open { .. }, Some(limit)) = (&plan, open_files_limit())
        && args.max_in_flight + 64 > limit
    {
        notes.push(format!(
            "each iteration in flight holds a connection: --max-in-flight {} is above this process's open-file limit {limit} (ulimit -n), so that many could not have been in flight",
            args.max_in_flight
        ));
    }
    if let Some(e) = &ctx.lock_acks().write_error {
        notes.push(format!("acknowledged.jsonl is incomplete: {e}"));
    }
    let knee_report = knee.map(|k| {
        let k = k.lock().unwrap_or_else(|p| p.into_inner());
        let stopped_because = k.stopped_because.clone().or_else(|| {
            Some(format!(
                "not reached: the system followed every step up to --knee-max {:.0}/s",
                k.knee.rates.last().copied().unwrap_or(0.0)
            ))
        });
        KneeReport {
            knee_per_s: k.knee_rate(),
            stopped_because,
            steps: k.steps.clone(),
        }
    });
    let model = match (&plan, args.find_knee) {
        (Plan::Closed { .. }, _) => "closed",
        (_, true) => "find-knee",
        _ => "open",
    };
    let measured = Measured {
        latency_ms: (latency.count > 0).then(|| latency.as_array()),
        overhead_ms: (overhead.count > 0).then(|| overhead.as_array()),
        attempts: totals.sent,
        errors,
        lost: Some(ledger.lost),
        stuck: Some(ledger.stuck),
        rate: Some(completed_in_send as f64 / send_s.max(1e-9)),
        rejected_429: totals.rate_limited,
        dropped: totals.dropped,
        late: totals.late,
        growth: processes
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.rss.slope_per_h,
                    p.fds.slope_per_h,
                    p.threads.slope_per_h,
                )
            })
            .collect(),
        leaks: (!processes.is_empty()).then(|| {
            processes
                .iter()
                .map(|p| u64::from(p.rss_leak) + u64::from(p.fd_leak))
                .sum()
        }),
    };
    let verdicts: Vec<Verdict> = args.thresholds.iter().map(|t| t.judge(&measured)).collect();
    let passed = aborted.is_none() && verdicts.iter().all(|v| v.passed);
    let config = serde_json::json!({
        "url": url,
        "model": model,
        "rate": args.rate,
        "stages": args.stages.as_ref().map(|s| &s.0),
        "start_rate": args.start_rate,
        "duration_s": args.duration.map(|d| d.as_secs_f64()),
        "vus": args.vus,
        "ramp_up_s": args.ramp_up.as_secs_f64(),
        "max_in_flight": args.max_in_flight,
        "late_start_tolerance_ms": args.late_start_tolerance.as_secs_f64() * 1000.0,
        "knee": args.find_knee.then(|| serde_json::json!({
            "start": args.knee_start, "step": args.knee_step,
            "step_s": args.knee_step_duration.as_secs_f64(), "max": args.knee_max,
        })),
        "mix": &ctx.mix,
        "wait_s": args.wait,
        "drain_timeout_s": args.drain_timeout.as_secs_f64(),
        "thresholds": args.thresholds.iter().map(|t| t.source.clone()).collect::<Vec<_>>(),
        "abort_on_fail": args.abort_on_fail,
        "sample_process": args.sample_process.iter().map(|t| format!("{}={}", t.name, t.pid)).collect::<Vec<_>>(),
        "database_cross_check": db_url.is_some(),
    });
    let data = ReportData {
        tool: format!("octollm-load {}", env!("CARGO_PKG_VERSION")),
        command: "run".into(),
        model: model.into(),
        target: url.clone(),
        started_unix_ms,
        config,
        send_s,
        drain_s,
        attempts: totals.sent,
        errors,
        in_flight_max: shared.in_flight_max.load(Ordering::Relaxed),
        rates: Rates {
            offered_per_s: offered,
            sent_per_s: totals.sent as f64 / send_s.max(1e-9),
            completed_per_s: completed_in_send as f64 / send_s.max(1e-9),
        },
        totals,
        latency_ms: latency,
        ack_latency_ms: Some(ack_latency),
        overhead_ms: (overhead.count > 0).then_some(overhead),
        spectrum,
        series,
        ledger: Some(ledger),
        knee: knee_report,
        processes,
        server_metrics,
        thresholds: verdicts,
        aborted,
        passed,
        generator: Generator {
            threads: args.threads,
            cpu_s: report::own_cpu_seconds(),
        },
        notes,
    };
    report::write(&args.out, &data).map_err(Failure::Tool)?;
    report::print_summary(&data).map_err(Failure::Tool)?;
    Ok(if passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Recorder;

    fn thresholds(list: &[&str]) -> Vec<Threshold> {
        list.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn mid_run_judging_uses_the_last_five_seconds() {
        let start = Instant::now() - Duration::from_secs(20);
        let shared = Shared::new(start).unwrap();
        let at = |s: u64| start + Duration::from_secs(s);
        // Slow at first, fast for the last five seconds.
        shared.with(|r| {
            for s in 0..5 {
                r.completed(at(s), Duration::from_secs(3), None);
            }
            for s in 5..10 {
                r.completed(at(s), Duration::from_millis(20), None);
            }
            r.tick(at(10), 0);
        });
        assert_eq!(judge_mid_run(&thresholds(&["p99<1s"]), &shared), None);
        shared.with(|r| {
            r.completed(at(10), Duration::from_secs(4), None);
            r.tick(at(11), 0);
        });
        let reason = judge_mid_run(&thresholds(&["p99<1s"]), &shared).unwrap();
        assert!(
            reason.contains("p99 = 4.") && reason.contains("over the last 5 s"),
            "{reason}"
        );
        // Lower bounds are not judged mid-run.
        assert_eq!(judge_mid_run(&thresholds(&["p50>10s"]), &shared), None);
    }

    #[test]
    fn mid_run_errors_wait_for_a_hundred_attempts_and_lost_does_not() {
        let start = Instant::now();
        let shared = Shared::new(start).unwrap();
        shared.with(|r| {
            for _ in 0..50 {
                r.sent(start);
            }
            r.error(start, "submit_http_503");
        });
        let t = thresholds(&["errors<1%", "lost==0"]);
        assert_eq!(
            judge_mid_run(&t, &shared),
            None,
            "2% of 50 is too few to judge"
        );
        shared.with(|r| {
            for _ in 0..50 {
                r.sent(start);
            }
            r.error(start, "submit_http_503");
        });
        assert!(judge_mid_run(&t, &shared).unwrap().contains("errors<1%"));
        let shared = Shared::new(start).unwrap();
        shared.with(Recorder::lost_seen);
        assert!(judge_mid_run(&t, &shared).unwrap().contains("lost = 1"));
    }

    #[test]
    fn task_ids_are_kept_compactly_and_printed_back() {
        let id = "01a25078-27a2-749c-a66e-69e9edb2ace2";
        assert!(matches!(TaskId::new(id), TaskId::Uuid(_)));
        assert_eq!(TaskId::new(id).to_string(), id);
        assert_eq!(TaskId::new("task-7").to_string(), "task-7");
        assert_eq!(known_status("rejected"), "rejected");
        assert_eq!(known_status("exploded"), "unknown");
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
