//! `ServiceProcess` against real child processes (`/bin/sh`, `sleep`); the
//! HTTP side is served by the test itself on the service's port.

use std::{error::Error, path::Path, time::Duration};

use test_support::{ServiceError, ServiceProcess, sample, scrape};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

type TestResult = Result<(), Box<dyn Error>>;

fn shell(name: &str, script: &str) -> Result<ServiceProcess, ServiceError> {
    let mut svc = ServiceProcess::new(name, "/bin/sh")?;
    svc.args(["-c", script]);
    Ok(svc)
}

/// Answers every request on `port`: 200 with `body` for `GET /health` and
/// `GET /metrics`, 404 otherwise.
async fn serve(port: u16, body: &'static str) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0_u8; 1024];
            let read = stream.read(&mut request).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..read]);
            let status =
                if request.starts_with("GET /health ") || request.starts_with("GET /metrics ") {
                    "200 OK"
                } else {
                    "404 Not Found"
                };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    Ok(())
}

#[tokio::test]
async fn an_exiting_service_fails_at_once_with_its_log_tail() -> TestResult {
    let mut svc = shell("exits", "echo starting; echo boom >&2; exit 3")?;
    let started = std::time::Instant::now();
    let err = svc.start(Duration::from_secs(30)).await.err();
    assert!(started.elapsed() < Duration::from_secs(10), "not at once");
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("exited with exit status: 3"), "{message}");
    assert!(message.contains("starting\nboom"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_silent_service_times_out_naming_the_path_and_the_last_answer() -> TestResult {
    let mut svc = shell("silent", "echo waiting; exec sleep 60")?;
    let err = svc.start(Duration::from_millis(500)).await.err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("silent: /health did not answer 200 within"),
        "{message}"
    );
    assert!(message.contains("log tail:\nwaiting"), "{message}");
    assert!(svc.is_running(), "a timeout does not kill the process");
    Ok(())
}

#[tokio::test]
async fn a_missing_binary_is_a_spawn_error() -> TestResult {
    let mut svc = ServiceProcess::new("missing", "/nonexistent/octollm-binary")?;
    let message = svc.spawn().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.starts_with("missing: cannot spawn:"), "{message}");
    Ok(())
}

#[tokio::test]
async fn healthy_then_metrics_then_restart_keeps_port_args_env_and_log() -> TestResult {
    let mut svc = shell(
        "healthy",
        r#"echo "started with $0 and $GREETING"; exec sleep 60"#,
    )?;
    svc.arg("first-arg").env("GREETING", "hello");
    let port = svc.port();
    assert_eq!(svc.listen_addr(), format!("127.0.0.1:{port}"));
    serve(port, "octollm_up{service=\"healthy\"} 1\n").await?;

    svc.start(Duration::from_secs(10)).await?;
    assert!(svc.is_running());
    let text = svc.metrics().await?;
    assert_eq!(
        sample(&text, "octollm_up", &[("service", "healthy")]),
        Some(1.0)
    );
    assert_eq!(scrape(&svc.url("/metrics")).await?, text);
    assert!(
        scrape(&svc.url("/nothing")).await.is_err(),
        "a 404 is an error"
    );

    let first = svc.pid();
    svc.restart(Duration::from_secs(10)).await?;
    assert_ne!(svc.pid(), first);
    assert_eq!(svc.port(), port);
    assert_eq!(
        svc.log_text(),
        "started with first-arg and hello\nstarted with first-arg and hello\n"
    );
    assert_eq!(svc.log_tail(1), "started with first-arg and hello");
    Ok(())
}

#[tokio::test]
async fn terminate_sends_sigterm_and_returns_the_exit_status() -> TestResult {
    let mut svc = shell(
        "terminated",
        "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
    )?;
    svc.spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !svc.log_text().contains("ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "the script never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = svc.terminate(Duration::from_secs(10))?;
    assert_eq!(status.code(), Some(7));
    assert!(svc.log_text().contains("got-term"));
    assert!(!svc.is_running());
    // Nothing left to terminate.
    assert!(matches!(
        svc.terminate(Duration::from_secs(1)),
        Err(ServiceError::NotRunning { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn drop_kills_the_process_and_removes_the_log() -> TestResult {
    let mut svc = shell("dropped", "echo up; exec sleep 60")?;
    svc.spawn()?;
    let pid = svc.pid().ok_or("no pid after spawn")?;
    let log = svc.log_path().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(log.exists());
    drop(svc);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "killed and reaped"
    );
    assert!(!log.exists(), "log removed when the test passes");
    Ok(())
}
