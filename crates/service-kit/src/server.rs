//! The accept loop under [`crate::service::Kit::serve`]: HTTP/1.1 and
//! HTTP/2 on one port, told apart by the connection's first bytes.
//!
//! Internal callers (the orchestrator to the reflex layer and the arms) speak
//! HTTP/2 with prior knowledge, so one connection carries every call in
//! flight between two processes. Over HTTP/1.1 each concurrent call needs its
//! own socket: 10,000 tasks waiting on slow LLM calls were 10,000 sockets to
//! the arms on top of 10,000 long-polling clients, and the orchestrator hit
//! its open-files limit. Hence the stream limit, far above hyper's default
//! of 200, which would queue calls behind one another instead.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Concurrent HTTP/2 streams one connection may carry: every task in flight
/// (10,000 with a slow LLM) may be in a call to the same arm at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 65_536;

/// Pause after a failed accept (out of file descriptors, say) before the
/// next: retrying at once would spin a core while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops
/// accepting and waits for the open connections to finish their requests
/// (the caller bounds that wait). Handlers see the peer as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve_http(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let connections = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Small responses go out at once rather than wait for an ACK.
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;

    /// One HTTP/2 connection carries far more calls at once than hyper's
    /// default stream limit (200): 1,000 requests that each wait until all
    /// 1,000 have arrived can only finish if none is queued behind another.
    #[tokio::test]
    async fn one_http2_connection_carries_a_thousand_calls_at_once() {
        const CALLS: usize = 1_000;
        let arrived = std::sync::Arc::new(tokio::sync::Barrier::new(CALLS));
        let app = Router::new().route(
            "/wait",
            get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
                let arrived = arrived.clone();
                async move {
                    arrived.wait().await;
                    peer.ip().to_string()
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_http(listener, app, shutdown.clone()));

        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let calls = (0..CALLS).map(|_| {
            let client = client.clone();
            async move {
                let response = client
                    .get(format!("http://{addr}/wait"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.version(), reqwest::Version::HTTP_2);
                response.text().await.unwrap()
            }
        });
        let answers =
            tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(calls))
                .await
                .expect("every call was served at once");
        assert!(
            answers.iter().all(|peer| peer == "127.0.0.1"),
            "{answers:?}"
        );

        // HTTP/1.1 on the same port still works.
        let plain = reqwest::get(format!("http://{addr}/missing"))
            .await
            .unwrap();
        assert_eq!(plain.version(), reqwest::Version::HTTP_11);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops once its connections are idle")
            .unwrap();
    }
}
