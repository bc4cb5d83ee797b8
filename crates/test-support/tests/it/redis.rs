use std::error::Error;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

type TestResult = Result<(), Box<dyn Error>>;

/// Sends one RESP command and reads one reply line.
async fn command(stream: &mut TcpStream, args: &[&str]) -> Result<String, Box<dyn Error>> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") {
        let mut byte = [0_u8; 1];
        stream.read_exact(&mut byte).await?;
        reply.push(byte[0]);
    }
    Ok(String::from_utf8(reply)?)
}

#[tokio::test]
async fn ping_answers_pong_over_resp() -> TestResult {
    let redis = test_support::redis().await?;
    assert_eq!(
        redis.url(),
        format!("redis://127.0.0.1:{}", redis.host_port())
    );
    let mut stream = TcpStream::connect(("127.0.0.1", redis.host_port())).await?;
    assert_eq!(command(&mut stream, &["PING"]).await?, "+PONG\r\n");
    assert_eq!(command(&mut stream, &["SET", "k", "v"]).await?, "+OK\r\n");
    Ok(())
}

#[tokio::test]
async fn restart_keeps_the_port() -> TestResult {
    let redis = test_support::redis().await?;
    let port = redis.host_port();
    redis.stop().await?;
    redis.start().await?;
    assert_eq!(redis.host_port(), port);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    assert_eq!(command(&mut stream, &["PING"]).await?, "+PONG\r\n");
    Ok(())
}
