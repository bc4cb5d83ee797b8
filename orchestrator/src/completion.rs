//! `CompletionFeed`: wakes long-polling clients when their task finishes.
//!
//! The worker that finishes a task announces it with `pg_notify` in the same
//! statement as the transition, so any replica's waiters wake, whichever
//! replica ran the task. Waiters also re-read the database every second, so a
//! lost notification (or a dropped LISTEN connection) only delays them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::TASK_DONE_CHANNEL;

#[derive(Clone, Default)]
pub struct CompletionFeed {
    waiters: Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
}

impl CompletionFeed {
    /// The handle a waiter selects on; drop it with [`CompletionFeed::forget`].
    pub fn watch(&self, id: Uuid) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.entry(id).or_default().clone()
    }

    /// Releases a waiter's handle; the entry goes when its last waiter leaves.
    pub fn forget(&self, id: Uuid, handle: Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // One count is the map's, one is `handle`.
        if Arc::strong_count(&handle) <= 2 {
            waiters.remove(&id);
        }
    }

    fn announce(&self, id: Uuid) {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = waiters.get(&id) {
            notify.notify_waiters();
        }
    }

    /// LISTENs for task completions until shutdown, reconnecting with backoff.
    pub async fn listen(self, config: tokio_postgres::Config, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(200);
        loop {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let feed = self.clone();
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let drive = async move {
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if let Ok(id) = Uuid::try_parse(n.payload()) {
                                        feed.announce(id);
                                    }
                                }
                                Ok(_) => {}
                                Err(error) => return error.to_string(),
                            }
                        }
                        "connection closed".to_owned()
                    };
                    let subscribe = async {
                        client
                            .batch_execute(&format!("LISTEN {TASK_DONE_CHANNEL}"))
                            .await
                            .map_err(|e| e.to_string())?;
                        tracing::debug!("listening for task completions");
                        std::future::pending::<Result<(), String>>().await
                    };
                    tokio::select! {
                        reason = drive => tracing::warn!(%reason, "completion feed lost its connection"),
                        Err(reason) = subscribe => tracing::warn!(%reason, "LISTEN failed"),
                        () = shutdown.cancelled() => return,
                    }
                    delay = Duration::from_millis(200);
                }
                Err(error) => {
                    tracing::debug!(%error, "completion feed cannot connect yet");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
