//! `RedisLink`: the reflex layer's optional connection to Redis.
//!
//! Losing Redis degrades the service, never breaks it: every call has a short
//! deadline and callers fall back (L1 cache only, per-instance buckets). A
//! background task keeps (re)connecting.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use service_kit::DependencyCheck;
use tokio_util::sync::CancellationToken;

/// Longest a request waits on Redis before falling back.
pub const CALL_DEADLINE: Duration = Duration::from_millis(100);

#[derive(Clone, Default)]
pub struct RedisLink {
    connection: Arc<RwLock<Option<ConnectionManager>>>,
    configured: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis not connected")]
    NotConnected,
    #[error("Redis did not answer within {}ms", CALL_DEADLINE.as_millis())]
    Timeout,
    #[error("Redis: {0}")]
    Command(#[from] redis::RedisError),
}

impl RedisLink {
    /// No Redis configured: every call reports `NotConnected`.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Connects in the background (and again whenever the link is lost).
    pub fn connect(url: &str, shutdown: CancellationToken) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let link = Self {
            connection: Arc::default(),
            configured: true,
        };
        let background = link.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                let connected = background
                    .connection
                    .read()
                    .map(|c| c.is_some())
                    .unwrap_or(false);
                if !connected {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(2)))
                        .set_response_timeout(Some(Duration::from_secs(1)));
                    match ConnectionManager::new_with_config(client.clone(), config).await {
                        Ok(manager) => {
                            tracing::info!("connected to Redis");
                            if let Ok(mut slot) = background.connection.write() {
                                *slot = Some(manager);
                            }
                            delay = Duration::from_millis(200);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "Redis unavailable; serving from L1 with local rate limits");
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
        Ok(link)
    }

    fn manager(&self) -> Result<ConnectionManager, RedisError> {
        self.connection
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or(RedisError::NotConnected)
    }

    /// Runs `f` on the connection within [`CALL_DEADLINE`].
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let manager = self.manager()?;
        match tokio::time::timeout(CALL_DEADLINE, f(manager)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisError::Timeout),
        }
    }
}

/// `/health/deep` shows Redis; it never makes the service unready.
pub struct RedisCheck(pub RedisLink);

impl DependencyCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if !self.0.configured {
                return Err("not configured (REDIS_URL unset)".into());
            }
            self.0
                .call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn required(&self) -> bool {
        false
    }
}
