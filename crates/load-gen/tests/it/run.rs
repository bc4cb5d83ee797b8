//! `octollm-load run` against the fake orchestrator.

use std::time::Duration;

use crate::fake::{self, Knobs};
use crate::{octollm_load, read_json, token_file};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn knobs(task_ms: u64) -> Knobs {
    Knobs {
        task_time: Duration::from_millis(task_ms),
        ..Knobs::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_passes_and_accounts_for_every_task() {
    let fake = fake::start(knobs(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "40",
        "--duration",
        "3s",
        "--injection-share",
        "20%",
        "--pii-share",
        "10%",
        "--priorities",
        "low=1,medium=1,high=1,critical=1",
        "--task-types",
        "code=1,analysis=1",
        "--threshold",
        "errors==0",
        "--threshold",
        "lost==0",
        "--threshold",
        "stuck==0",
        "--threshold",
        "p99<10s",
        "--threshold",
        "rate>=10",
    ])
    .await;
    assert_eq!(o.code, 0, "{o:?}");
    let summary = o.summary();
    assert_eq!(summary["passed"], true);
    let ledger = &summary["ledger"];
    let sent = summary["totals"]["sent"].as_u64().unwrap();
    assert!((110..=121).contains(&sent), "≈ 40/s × 3 s, got {sent}");
    assert_eq!(ledger["acknowledged"].as_u64().unwrap(), sent);
    let rejected = ledger["final_status"]["rejected"].as_u64().unwrap_or(0);
    let succeeded = ledger["final_status"]["succeeded"].as_u64().unwrap_or(0);
    assert_eq!(rejected + succeeded, sent);
    assert!(rejected > 5, "injection texts end rejected: {ledger}");
    assert_eq!(
        ledger["by_class"]["injection"]["rejected"].as_u64(),
        Some(rejected)
    );
    assert_eq!(ledger["unexpected"], 0);
    assert_eq!(summary["errors"], 0);
    // Every acknowledged id is in the ledger file.
    let lines = std::fs::read_to_string(out.join("acknowledged.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, sent);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(first["task_id"].as_str().unwrap().len() == 36);
    assert!(["succeeded", "rejected"].contains(&first["expected"].as_str().unwrap()));
    // Latency includes the fake's 200 ms run time for the accepted tasks.
    let p99 = summary["latency_ms"]["p99"].as_f64().unwrap();
    assert!(p99 >= 190.0, "{p99}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_stages_send_the_integral_of_the_rate() {
    let fake = fake::start(knobs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let mix = dir.path().join("mix.json");
    std::fs::write(
        &mix,
        r#"{"priorities": {"high": 1}, "budget": {"max_tokens": 500}}"#,
    )
    .unwrap();
    // 0 → 40/s over 2 s (40 arrivals), 40/s for 1 s (40), 40 → 0 over 1 s (20).
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--stages",
        "2s:40,1s:40,1s:0",
        "--mix",
        s(&mix),
        "--threshold",
        "errors==0",
    ])
    .await;
    assert_eq!(o.code, 0, "{o:?}");
    let summary = o.summary();
    let sent = summary["totals"]["sent"].as_u64().unwrap();
    assert!((98..=101).contains(&sent), "{sent}");
    assert!((summary["rates"]["offered_per_s"].as_f64().unwrap() - 25.0).abs() < 0.1);
    let rows = read_json(&out.join("report.json"))["series"].clone();
    let sent_in = |t: usize| rows[t]["sent"].as_u64().unwrap();
    assert!(
        sent_in(0) < sent_in(1),
        "the ramp rises: {} then {}",
        sent_in(0),
        sent_in(1)
    );
    assert_eq!(summary["config"]["mix"]["priorities"]["names"][0], "high");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_threshold_fails_the_run_with_exit_1() {
    let fake = fake::start(knobs(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "20",
        "--duration",
        "2s",
        "--threshold",
        "p50<1us",
        "--threshold",
        "lost==0",
    ])
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("threshold `p50<1us` FAILED: p50 = "),
        "{o:?}"
    );
    let summary = o.summary();
    assert_eq!(summary["passed"], false);
    let verdicts = summary["thresholds"].as_array().unwrap();
    assert_eq!(verdicts[0]["passed"], false);
    assert!(verdicts[0]["measured"].as_f64().unwrap() >= 50.0);
    assert_eq!(verdicts[1]["passed"], true, "lost==0 held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_catches_a_lost_task() {
    let fake = fake::start(Knobs {
        forget_nth: Some(7),
        ..knobs(100)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "20",
        "--duration",
        "2s",
        "--threshold",
        "lost==0",
    ])
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("threshold `lost==0` FAILED: lost = 1"),
        "{o:?}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["ledger"]["lost"], 1, "{}", report["ledger"]);
    assert_eq!(report["ledger"]["by_class"]["normal"]["lost"], 1);
    assert_eq!(report["errors"], 1, "the lost task is the one error");
    // The iteration itself saw it succeed: only the final check finds it.
    assert_eq!(report["totals"]["lost_seen"], 0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| **lost** (404) | 1 |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_does_not_hide_a_stall() {
    let fake = fake::start(knobs(0)).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let state = fake.state.clone();
    let stall = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        state.stall_for(Duration::from_secs(2));
    });
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "50",
        "--duration",
        "6s",
        "--threshold",
        "p99<500ms",
    ])
    .await;
    stall.await.unwrap();
    assert_eq!(o.code, 1, "the stall must break p99<500ms: {o:?}");
    let summary = o.summary();
    let p99 = summary["latency_ms"]["p99"].as_f64().unwrap();
    assert!(
        p99 >= 1500.0,
        "arrivals during the 2 s stall waited up to 2 s: p99 = {p99} ms"
    );
    let p50 = summary["latency_ms"]["p50"].as_f64().unwrap();
    assert!(
        p50 < 1000.0,
        "most arrivals were outside the stall: p50 = {p50} ms"
    );
    assert_eq!(summary["errors"], 0);
    // The stall shows in the per-second series too.
    let report = read_json(&out.join("report.json"));
    let worst = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["max_ms"].as_f64())
        .fold(0.0, f64::max);
    assert!(worst >= 1500.0, "{worst}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_directory_has_json_markdown_and_every_plot() {
    let fake = fake::start(knobs(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let metrics = dir.path().join("server.json");
    std::fs::write(
        &metrics,
        r#"{"cpu_seconds_per_task": {"orchestrator": 0.0021}, "pg_commits_per_s": 812.5}"#,
    )
    .unwrap();
    let me = format!("fake={}", std::process::id());
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "30",
        "--duration",
        "3s",
        "--server-metrics",
        s(&metrics),
        "--sample-process",
        &me,
        "--sample-interval",
        "1s",
        "--threshold",
        "rss_growth[fake]<100GB/h",
    ])
    .await;
    assert_eq!(o.code, 0, "{o:?}");
    let mut expected = vec![
        "report.json".to_owned(),
        "report.md".to_owned(),
        "acknowledged.jsonl".to_owned(),
    ];
    for plot in ["latency", "throughput", "errors", "spectrum", "processes"] {
        expected.push(format!("{plot}.svg"));
        expected.push(format!("{plot}.png"));
    }
    for name in &expected {
        let bytes = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(bytes.len() > 100, "{name} is too small");
        if name.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
        }
        if name.ends_with(".svg") {
            assert!(
                String::from_utf8_lossy(&bytes).contains("<svg"),
                "{name} is an SVG"
            );
        }
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| pg_commits_per_s | 812.5 |"), "{md}");
    assert!(md.contains("| cpu_seconds_per_task.orchestrator | 0.0021 |"));
    assert!(md.contains("## Sampled processes"));
    assert!(md.contains("![spectrum](spectrum.svg)"));
    let report = read_json(&out.join("report.json"));
    let samples = report["processes"][0]["samples"].as_array().unwrap();
    assert!(samples.len() >= 3, "sampled each second: {}", samples.len());
    assert!(samples[0]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(report["series"].as_array().unwrap().len() >= 3);

    // Re-rendering with other server figures replaces the section.
    std::fs::write(&metrics, r#"{"queue_depth_max": 17}"#).unwrap();
    let again = octollm_load(&["report", "--dir", s(&out), "--server-metrics", s(&metrics)]).await;
    assert_eq!(again.code, 0, "{again:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| queue_depth_max | 17 |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_honours_retry_after() {
    let fake = fake::start(knobs(50)).await;
    fake.state
        .reject_next
        .store(4, std::sync::atomic::Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let started = std::time::Instant::now();
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--model",
        "closed",
        "--vus",
        "4",
        "--duration",
        "3s",
        "--threshold",
        "errors==0",
        "--threshold",
        "rejected_429<=4",
    ])
    .await;
    assert_eq!(o.code, 0, "{o:?}");
    let summary = o.summary();
    assert_eq!(summary["totals"]["rate_limited"], 4);
    assert_eq!(summary["model"], "closed");
    let completed = summary["totals"]["completed"].as_u64().unwrap();
    // Each VU sat out its 429 for Retry-After (1 s): 4 VUs × ~2 s of work
    // at ~50 ms per task, far fewer than without the pause.
    assert!(completed > 20, "{completed}");
    assert!(completed < 4 * 3 * 20, "{completed}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_early() {
    let fake = fake::start(knobs(10)).await;
    fake.state
        .fail_submits
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "100",
        "--duration",
        "30s",
        "--threshold",
        "errors<1%",
        "--abort-on-fail",
    ])
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    let summary = o.summary();
    assert!(
        summary["send_s"].as_f64().unwrap() < 10.0,
        "{}",
        summary["send_s"]
    );
    let reason = summary["aborted"].as_str().unwrap();
    assert!(reason.contains("errors<1%"), "{reason}");
    assert!(
        summary["totals"]["error_kinds"]["submit_http_503"]
            .as_u64()
            .unwrap()
            >= 100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_knee_stops_where_completions_fall_behind() {
    // The fake finishes at most 50 tasks/s: steps of 20, 40, 60, 80 per second.
    // Tasks take 200 ms, so scheduling jitter is small next to the first
    // step's p99 (the 3× p99 criterion must not fire at 40/s).
    let fake = fake::start(Knobs {
        capacity_per_s: 50.0,
        ..knobs(200)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let o = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--find-knee",
        "--knee-start",
        "20",
        "--knee-step",
        "20",
        "--knee-max",
        "80",
        "--knee-step-duration",
        "4s",
        "--drain-timeout",
        "5s",
    ])
    .await;
    let summary = o.summary();
    let knee = &summary["knee"];
    assert_eq!(knee["knee_per_s"], 40.0, "{o:?}");
    assert!(
        knee["stopped_because"]
            .as_str()
            .unwrap()
            .contains("at 60/s"),
        "{knee}"
    );
    assert_eq!(knee["steps"].as_array().unwrap().len(), 3, "{knee}");
    assert!(
        summary["send_s"].as_f64().unwrap() < 14.0,
        "stopped after the third step"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**40/s**"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_tool_failures_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let (token, out) = (token_file(dir.path()), dir.path().join("out"));
    let bad = octollm_load(&[
        "run",
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "1",
        "--duration",
        "1s",
        "--threshold",
        "p96<1s",
    ])
    .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("unknown metric `p96`"), "{bad:?}");
    let no_duration = octollm_load(&[
        "run",
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "1",
    ])
    .await;
    assert_eq!(no_duration.code, 2, "{no_duration:?}");
    assert!(no_duration.stderr.contains("--rate needs --duration"));
    let bad_priority = octollm_load(&[
        "run",
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "1",
        "--duration",
        "1s",
        "--priorities",
        "normal=1",
    ])
    .await;
    assert_eq!(bad_priority.code, 2, "{bad_priority:?}");
    assert!(bad_priority.stderr.contains("low, medium, high, critical"));

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let down = octollm_load(&[
        "run",
        "--url",
        &url,
        "--token-file",
        s(&token),
        "--out",
        s(&out),
        "--rate",
        "1",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(down.code, 3, "{down:?}");
    assert!(
        down.stderr.contains("cannot reach the orchestrator"),
        "{down:?}"
    );

    let fake = fake::start(knobs(0)).await;
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let refused = octollm_load(&[
        "run",
        "--url",
        &fake.url,
        "--token-file",
        s(&wrong),
        "--out",
        s(&out),
        "--rate",
        "1",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("refused the token"), "{refused:?}");
}
