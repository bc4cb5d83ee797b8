//! `octollm-load http` against `octollm-load serve-mock`.

use std::time::Duration;

use crate::octollm_load;

struct Mock(tokio::process::Child, String);

async fn serve_mock() -> Mock {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_octollm-load"))
        .args(["serve-mock", "--listen", &listen])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return Mock(child, format!("http://{listen}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve-mock did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_meets_a_fixed_rate_against_serve_mock() {
    let mock = serve_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let url = format!("{}/", mock.1);
    let o = octollm_load(&[
        "http",
        "--url",
        &url,
        "--rate",
        "500",
        "--duration",
        "2s",
        "--connections",
        "8",
        "--out",
        out.to_str().unwrap(),
        "--threshold",
        "errors==0",
        "--threshold",
        "rate>=400",
    ])
    .await;
    assert_eq!(o.code, 0, "{o:?}");
    let summary = o.summary();
    assert_eq!(summary["command"], "http");
    let completed = summary["totals"]["completed"].as_u64().unwrap();
    assert!((990..=1001).contains(&completed), "{completed}");
    assert_eq!(summary["errors"], 0);
    assert!(summary["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(out.join("spectrum.png").exists());

    // A path the mock does not serve: every answer is an error.
    let missing = format!("{}/missing", mock.1);
    let o = octollm_load(&[
        "http",
        "--url",
        &missing,
        "--rate",
        "100",
        "--duration",
        "1s",
        "--threshold",
        "errors==0",
    ])
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.summary()["totals"]["error_kinds"]["http_404"]
            .as_u64()
            .unwrap()
            >= 99
    );
    assert!(
        o.stderr
            .contains("threshold `errors==0` FAILED: errors = 100.0000%"),
        "{o:?}"
    );

    // One connection cannot carry 20,000/s: arrivals beyond 50 behind the
    // schedule are dropped and counted, and every arrival is accounted for.
    let o = octollm_load(&[
        "http",
        "--url",
        &url,
        "--rate",
        "20000",
        "--duration",
        "1s",
        "--connections",
        "1",
        "--max-in-flight",
        "50",
        "--threshold",
        "dropped_iterations==0",
    ])
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    let summary = o.summary();
    let (sent, dropped) = (
        summary["totals"]["sent"].as_u64().unwrap(),
        summary["totals"]["dropped"].as_u64().unwrap(),
    );
    assert!(dropped > 1000, "{dropped}");
    assert_eq!(sent + dropped, 20_000);
    drop(mock.0);
}
